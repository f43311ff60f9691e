//! The client's EHLO/HELO name against what it cannot honestly be: this gateway, a domain the
//! gateway receives mail for, or a public address other than the one it connects from. Bots
//! greet with the recipient's own domain or a borrowed address; a real server names itself.
//! A name without a dot (`localhost`, `laptop`) or a private address literal (a server behind
//! NAT) is not held against anyone: both are common among real senders.

use mail_auth::MessageAuthenticator;
use std::net::IpAddr;

use crate::address::literal_address;
use crate::net::{client_key, is_public};

/// A forged greeting: why, and the name it claims when DNS could still show the claim true (a
/// host of ours that greets as the domain it serves and resolves to the client's address).
#[derive(Debug, PartialEq)]
pub struct Forged {
    pub reason: String,
    pub name: Option<String>,
}

/// Is `helo` forged? `hostname`: this gateway's name; `local_domains`: the domains it receives
/// mail for; `client`: the address the client connects from.
pub fn forged(
    helo: &str,
    client: IpAddr,
    hostname: &str,
    local_domains: &[String],
) -> Option<Forged> {
    let name = helo.trim().trim_end_matches('.');
    if name.starts_with('[') {
        let address = literal_address(name)?.to_canonical();
        let own = client_key(address) == client_key(client);
        return (!own && is_public(address)).then(|| Forged {
            reason: format!("[{address}] is not the client's address"),
            name: None,
        });
    }
    // `localhost.localdomain` is what unconfigured machines say, ours included.
    if !name.contains('.') || name.to_ascii_lowercase().starts_with("localhost") {
        return None;
    }
    let reason = if name.eq_ignore_ascii_case(hostname.trim_end_matches('.')) {
        format!("{name} is this gateway")
    } else if local_domains.iter().any(|d| d.eq_ignore_ascii_case(name)) {
        format!("{name} is a domain this gateway receives mail for")
    } else {
        return None;
    };
    Some(Forged {
        reason,
        name: Some(name.to_string()),
    })
}

/// Does `name` resolve to `client`? False when it does not, or when DNS cannot tell.
pub async fn resolves_to(dns: &MessageAuthenticator, name: &str, client: IpAddr) -> bool {
    match client.to_canonical() {
        IpAddr::V4(ip) => dns
            .ipv4_lookup_raw(name)
            .await
            .is_ok_and(|found| found.entry.contains(&ip)),
        IpAddr::V6(ip) => dns
            .ipv6_lookup_raw(name)
            .await
            .is_ok_and(|found| found.entry.contains(&ip)),
    }
}

#[cfg(test)]
mod tests {
    use super::forged;

    fn judge(helo: &str, client: &str) -> Option<String> {
        let local = vec!["example.org".to_string(), "localhost".to_string()];
        forged(helo, client.parse().unwrap(), "gw.example.net", &local).map(|f| f.reason)
    }

    #[test]
    fn names_it_cannot_be() {
        assert_eq!(
            judge("GW.example.net", "198.51.100.7").as_deref(),
            Some("GW.example.net is this gateway")
        );
        assert_eq!(
            judge("example.org.", "198.51.100.7").as_deref(),
            Some("example.org is a domain this gateway receives mail for")
        );
        assert_eq!(
            judge("[203.0.113.9]", "198.51.100.7").as_deref(),
            Some("[203.0.113.9] is not the client's address")
        );
        assert_eq!(
            judge("[IPV6:2001:db8:1::1]", "2001:db8:2::1").as_deref(),
            Some("[2001:db8:1::1] is not the client's address")
        );
    }

    #[test]
    fn honest_or_common_names_pass() {
        for (helo, client) in [
            ("mx.sender.example", "198.51.100.7"),
            ("mail.example.org", "198.51.100.7"), // a host in our domain, not the domain
            ("laptop", "198.51.100.7"),           // no dot: common, not forged
            ("localhost", "198.51.100.7"),        // a local domain by default, but no dot
            ("localhost.localdomain", "198.51.100.7"),
            ("[198.51.100.7]", "198.51.100.7"), // its own address
            ("[192.168.1.20]", "198.51.100.7"), // behind NAT
            ("[10.0.0.5]", "198.51.100.7"),
            ("[IPv6:2001:db8::2]", "2001:db8::2"),
            ("[ipv6:2001:db8::1:1]", "2001:db8::2"), // its own /64
            ("[198.51.100.7]", "::ffff:198.51.100.7"),
            ("[not an address]", "198.51.100.7"),
        ] {
            assert_eq!(judge(helo, client), None, "{helo} from {client}");
        }
    }

    #[test]
    fn a_name_dns_could_vindicate_is_named() {
        let f = forged(
            "example.org",
            "198.51.100.7".parse().unwrap(),
            "gw",
            &["example.org".into()],
        );
        assert_eq!(f.unwrap().name.as_deref(), Some("example.org"));
        let f = forged("[203.0.113.9]", "198.51.100.7".parse().unwrap(), "gw", &[]);
        assert_eq!(f.unwrap().name, None, "an address literal is what it is");
    }
}
