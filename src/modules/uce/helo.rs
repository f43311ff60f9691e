//! The client's EHLO/HELO name against what it cannot honestly be: this gateway, a domain the
//! gateway receives mail for, or a public address other than the one it connects from. Bots
//! greet with the recipient's own domain or a borrowed address; a real server names itself.
//! A name without a dot, or a private address literal (a server behind NAT), is not held
//! against anyone: both are common among real senders.

use std::net::IpAddr;

/// Why `helo` is forged, or None. `hostname`: this gateway's name; `local_domains`: the
/// domains it receives mail for; `client`: the address the client connects from.
pub fn forged(
    helo: &str,
    client: IpAddr,
    hostname: &str,
    local_domains: &[String],
) -> Option<String> {
    let name = helo.trim().trim_end_matches('.');
    if let Some(literal) = name.strip_prefix('[').and_then(|n| n.strip_suffix(']')) {
        let literal = literal
            .strip_prefix("IPv6:")
            .or_else(|| literal.strip_prefix("ipv6:"))
            .unwrap_or(literal);
        let address: IpAddr = literal.parse().ok()?;
        let address = address.to_canonical();
        return (address != client.to_canonical() && public(address))
            .then(|| format!("[{address}] is not the client's address"));
    }
    if name.eq_ignore_ascii_case(hostname.trim_end_matches('.')) {
        return Some(format!("{name} is this gateway"));
    }
    local_domains
        .iter()
        .any(|d| d.eq_ignore_ascii_case(name))
        .then(|| format!("{name} is a domain this gateway receives mail for"))
}

/// An address on the public internet: not private, shared (100.64.0.0/10), loopback,
/// link-local or unspecified — the spaces where a server behind NAT finds its own literal.
fn public(address: IpAddr) -> bool {
    match address {
        IpAddr::V4(a) => {
            !(a.is_private()
                || a.is_loopback()
                || a.is_link_local()
                || a.is_unspecified()
                || a.is_broadcast()
                || a.octets()[0] == 100 && (a.octets()[1] & 0xc0) == 64)
        }
        IpAddr::V6(a) => {
            let first = a.segments()[0];
            !(a.is_loopback()
                || a.is_unspecified()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::forged;

    fn judge(helo: &str, client: &str) -> Option<String> {
        let local = vec!["example.org".to_string()];
        forged(helo, client.parse().unwrap(), "gw.example.net", &local)
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
            judge("[IPv6:2001:db8::1]", "2001:db8::2").as_deref(),
            Some("[2001:db8::1] is not the client's address")
        );
    }

    #[test]
    fn honest_or_common_names_pass() {
        for (helo, client) in [
            ("mx.sender.example", "198.51.100.7"),
            ("mail.example.org", "198.51.100.7"), // a host in our domain, not the domain
            ("laptop", "198.51.100.7"),           // no dot: common, not forged
            ("[198.51.100.7]", "198.51.100.7"),   // its own address
            ("[192.168.1.20]", "198.51.100.7"),   // behind NAT
            ("[10.0.0.5]", "198.51.100.7"),
            ("[IPv6:2001:db8::2]", "2001:db8::2"),
            ("[198.51.100.7]", "::ffff:198.51.100.7"),
            ("[not an address]", "198.51.100.7"),
        ] {
            assert_eq!(judge(helo, client), None, "{helo} from {client}");
        }
    }
}
