//! Acceptance of outbound mail: who is one of our own clients, which senders they may use, where
//! each recipient goes. A transaction of our client with any recipient outside `domains.local`
//! is queued whole (fsync before the 250) — its MX recipients for MX delivery, its local ones for
//! the queue runner to hand to the backend — so one message never takes two paths at once.

use crate::address::Address;
use crate::config::Config;
use crate::smtp::reply::Reply;
use crate::storage::{Route, Store};

/// An account signed in with SMTP AUTH, as sender authorization needs it.
#[derive(Debug, Clone)]
pub struct Submitter {
    pub address: String,
    pub admin: bool,
    pub aliases: Vec<String>,
}

impl Submitter {
    fn may_send_as(&self, sender: &str) -> bool {
        self.address.eq_ignore_ascii_case(sender)
            || self.aliases.iter().any(|a| a.eq_ignore_ascii_case(sender))
    }
}

/// Is this client one of the organisation's own (relay networks)?
pub fn in_relay_networks(config: &Config, ip: std::net::IpAddr) -> bool {
    config.smtp.relay_networks.iter().any(|n| n.contains(ip))
}

/// MAIL from one of our own clients: the sender must be of our sender domains, and a signed-in
/// user may send only as their own address or aliases (an admin: as any address of them). The
/// null sender (bounces of the mail server) only from the relay networks. `None`: allowed.
pub fn check_sender(
    config: &Config,
    sender: Option<&Address>,
    user: Option<&Submitter>,
) -> Option<Reply> {
    let Some(sender) = sender else {
        return user.map(|_| {
            Reply::new(
                550,
                "5.7.1",
                "<>: a signed-in user must send with their own address",
            )
        });
    };
    let address = sender.to_string();
    if !config
        .outbound
        .is_sender_domain(&sender.domain, &config.domains.local)
    {
        return Some(Reply::new(
            550,
            "5.7.1",
            format!(
                "<{address}>: Sender address rejected: {} is not one of our sender domains",
                sender.domain
            ),
        ));
    }
    match user {
        Some(u) if !u.admin && !u.may_send_as(&address) => Some(Reply::new(
            550,
            "5.7.1",
            format!(
                "<{address}>: Sender address rejected: not owned by user {}",
                u.address
            ),
        )),
        _ => None,
    }
}

/// Where a recipient of an outbound message goes.
pub fn route(config: &Config, recipient: &Address) -> Route {
    if config.is_local_domain(&recipient.domain) {
        Route::Backend
    } else {
        Route::Mx
    }
}

/// The largest outbound message.
pub fn max_message_size(config: &Config) -> u64 {
    config
        .outbound
        .max_message_size
        .map_or(config.smtp.max_message_size.0, |s| s.0)
}

/// The DKIM-Signature header(s) to put on top of an outbound message before it is kept,
/// journaled and queued (so every copy is the signed one). `None`: signing is off or no key
/// applies to the From: domain.
pub async fn dkim_signature(
    store: &Store,
    config: &Config,
    message: &[u8],
) -> anyhow::Result<Option<String>> {
    crate::dkim::sign(store, &config.dkim, message).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> Address {
        let (l, d) = s.split_once('@').unwrap();
        Address {
            local: l.into(),
            domain: d.into(),
        }
    }

    #[test]
    fn senders_are_checked_by_domain_and_by_account() {
        let config = Config::parse("[domains]\nlocal = [\"example.org\"]\n").unwrap();
        assert!(check_sender(&config, Some(&addr("a@example.org")), None).is_none());
        assert!(
            check_sender(&config, None, None).is_none(),
            "bounces of the mail server"
        );
        let r = check_sender(&config, Some(&addr("a@elsewhere.example")), None).unwrap();
        assert_eq!((r.code, r.enhanced.as_str()), (550, "5.7.1"));
        let alice = Submitter {
            address: "alice@example.org".into(),
            admin: false,
            aliases: vec!["sales@example.org".into()],
        };
        assert!(check_sender(&config, Some(&addr("Sales@example.org")), Some(&alice)).is_none());
        assert_eq!(
            check_sender(&config, Some(&addr("bob@example.org")), Some(&alice))
                .unwrap()
                .enhanced,
            "5.7.1"
        );
        assert!(check_sender(&config, None, Some(&alice)).is_some());
        let admin = Submitter {
            admin: true,
            ..alice
        };
        assert!(check_sender(&config, Some(&addr("bob@example.org")), Some(&admin)).is_none());
        assert!(check_sender(&config, Some(&addr("x@elsewhere.example")), Some(&admin)).is_some());
    }
}
