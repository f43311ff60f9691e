//! The client's EHLO/HELO name against what it cannot honestly be: this gateway, a domain the
//! gateway receives mail for, or a public address other than the one it connects from. Bots
//! greet with the recipient's own domain or a borrowed address; a real server names itself.
//! A name without a dot (`localhost`, `laptop`) or a private address literal (a server behind
//! NAT) is not held against anyone: both are common among real senders. A greeting that is no
//! host name at all — a bare address, characters or labels no name has — is what ratware
//! sends; it counts less (`invalid`).

use mail_auth::MessageAuthenticator;
use std::net::IpAddr;

use crate::address::{is_domain, literal_address};
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
    // An address, as RFC 5321 writes it or bare (which `invalid` counts besides).
    let bracketed = name.starts_with('[');
    let address = if bracketed {
        Some(literal_address(name)?)
    } else {
        name.parse::<IpAddr>().ok()
    };
    if let Some(address) = address.map(|a| a.to_canonical()) {
        let own = client_key(address) == client_key(client);
        let shown = if bracketed {
            format!("[{address}]")
        } else {
            address.to_string()
        };
        return (!own && is_public(address)).then(|| Forged {
            reason: format!("{shown} is not the client's address"),
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

/// Why `helo` is no host name (RFC 5321: a domain, or an address in brackets): an address
/// without its brackets (even the client's own), brackets around no address, an empty or
/// over-long label, a label that starts or ends with a hyphen, a character no name has, or a
/// top label of digits only. A name without a dot (`laptop`) and an underscore (some Windows
/// hosts' names) pass.
pub fn invalid(helo: &str) -> Option<String> {
    let name = helo.trim();
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.starts_with('[') {
        return literal_address(name)
            .is_none()
            .then(|| format!("{name} is no address literal"));
    }
    if let Ok(address) = name.parse::<IpAddr>() {
        let bracketed = match address {
            IpAddr::V4(_) => format!("[{address}]"),
            IpAddr::V6(_) => format!("[IPv6:{address}]"),
        };
        return Some(format!("bare address {name}, not {bracketed}"));
    }
    if !name.contains('.') {
        return None;
    }
    // An underscore counts as a letter here: some Windows hosts' names carry one.
    let numeric_top = name
        .rsplit('.')
        .next()
        .is_some_and(|l| l.bytes().all(|b| b.is_ascii_digit()));
    (!is_domain(&name.replace('_', "u")) || numeric_top)
        .then(|| format!("{name} is not a host name"))
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
    use super::{forged, invalid};

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
        assert_eq!(
            judge("203.0.113.9", "198.51.100.7").as_deref(),
            Some("203.0.113.9 is not the client's address"),
            "bare, too"
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
            ("198.51.100.7", "198.51.100.7"), // bare: `invalid`'s, not forged
            ("192.168.1.20", "198.51.100.7"),
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

    #[test]
    fn greetings_that_are_no_host_name() {
        for (helo, why) in [
            ("203.0.113.9", "bare address 203.0.113.9, not [203.0.113.9]"),
            (
                "2001:db8::1",
                "bare address 2001:db8::1, not [IPv6:2001:db8::1]",
            ),
            ("mail..example.com", "mail..example.com is not a host name"),
            (".example.com", ".example.com is not a host name"),
            ("-mx.example.com", "-mx.example.com is not a host name"),
            ("mx-.example.com", "mx-.example.com is not a host name"),
            ("mx!.example.com", "mx!.example.com is not a host name"),
            ("host.123", "host.123 is not a host name"),
            ("10.0.0", "10.0.0 is not a host name"),
            ("mx.example.com..", "mx.example.com. is not a host name"),
            ("[not an address]", "[not an address] is no address literal"),
            ("[localhost]", "[localhost] is no address literal"),
            ("[1.2.3]", "[1.2.3] is no address literal"),
        ] {
            assert_eq!(invalid(helo).as_deref(), Some(why), "{helo}");
        }
        let long = format!("{}.example.com", "a".repeat(64));
        assert!(invalid(&long).is_some());
    }

    #[test]
    fn names_and_literals_are_valid() {
        for helo in [
            "mx.example.com",
            "mx.example.com.",
            "MX-1.Example.COM",
            "laptop",
            "localhost",
            "win_server.corp.example",
            "xn--bcher-kva.example",
            "1password.example",
            "my#pc", // no dot: not judged
            "[203.0.113.9]",
            "[IPv6:2001:db8::1]",
            "[ipv6:2001:db8::1]",
        ] {
            assert_eq!(invalid(helo), None, "{helo}");
        }
    }
}
