//! The `access` module: static refusals an administrator writes into the config — client
//! networks, HELO names and senders that sponts refuses outright (`[access]`).

use async_trait::async_trait;

use crate::config::AccessConfig;
use crate::net::Cidr;
use crate::pipeline::{Module, SessionInfo, TxInfo, Verdict};
use crate::smtp::reply::Reply;

pub struct Access {
    networks: Vec<Cidr>,
    helo: Vec<String>,
    senders: Vec<String>,
}

impl Access {
    pub fn new(c: &AccessConfig) -> Access {
        Access {
            networks: c.reject_networks.clone(),
            helo: c
                .reject_helo
                .iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
            senders: c
                .reject_senders
                .iter()
                .map(|s| s.to_ascii_lowercase())
                .collect(),
        }
    }
}

fn refused() -> Verdict {
    Verdict::Reject(Reply::new(554, "5.7.1", "Access denied"))
}

#[async_trait]
impl Module for Access {
    fn name(&self) -> &'static str {
        "access"
    }

    async fn connect(&self, s: &SessionInfo) -> Verdict {
        if self.networks.iter().any(|n| n.contains(s.peer.ip())) {
            refused()
        } else {
            Verdict::Continue
        }
    }

    async fn helo(&self, s: &SessionInfo) -> Verdict {
        let helo = s.helo.as_deref().unwrap_or("").to_ascii_lowercase();
        if self.helo.contains(&helo) {
            refused()
        } else {
            Verdict::Continue
        }
    }

    async fn mail(&self, _s: &SessionInfo, tx: &TxInfo) -> Verdict {
        let Some(sender) = &tx.sender else {
            return Verdict::Continue;
        };
        let full = sender.to_string().to_ascii_lowercase();
        let domain = format!("@{}", sender.domain.to_ascii_lowercase());
        if self.senders.iter().any(|s| *s == full || *s == domain) {
            refused()
        } else {
            Verdict::Continue
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smtp::address::Address;

    #[tokio::test]
    async fn refuses_what_is_listed() {
        let a = Access::new(&AccessConfig {
            reject_networks: vec![Cidr::parse("198.51.100.0/24").unwrap()],
            reject_senders: vec!["@Spam.example".into(), "bad@ok.example".into()],
            reject_helo: vec!["Friend".into()],
        });
        let mut s = SessionInfo::new(
            "198.51.100.9:1000".parse().unwrap(),
            "192.0.2.1:25".parse().unwrap(),
        );
        assert_eq!(a.connect(&s).await, refused());
        s.peer = "192.0.2.9:1000".parse().unwrap();
        assert_eq!(a.connect(&s).await, Verdict::Continue);
        s.helo = Some("FRIEND".into());
        assert_eq!(a.helo(&s).await, refused());
        let tx = |l: &str, d: &str| TxInfo {
            id: "x".into(),
            sender: Some(Address {
                local: l.into(),
                domain: d.into(),
            }),
            recipients: vec![],
            outbound: false,
        };
        assert_eq!(a.mail(&s, &tx("x", "spam.EXAMPLE")).await, refused());
        assert_eq!(a.mail(&s, &tx("BAD", "ok.example")).await, refused());
        assert_eq!(
            a.mail(&s, &tx("good", "ok.example")).await,
            Verdict::Continue
        );
        assert_eq!(
            a.mail(
                &s,
                &TxInfo {
                    id: "x".into(),
                    sender: None,
                    recipients: vec![],
                    outbound: false
                }
            )
            .await,
            Verdict::Continue
        );
    }
}
