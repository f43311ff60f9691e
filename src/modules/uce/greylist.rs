//! Greylisting keys: the client's network (mail farms retry from a neighbouring host), the
//! sender and the recipient.

use std::net::IpAddr;

use crate::config::GreylistConfig;

/// The client's network, `192.0.2.0/24` with the default prefix lengths.
pub fn network(config: &GreylistConfig, ip: IpAddr) -> String {
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            let bits = config.ipv4_prefix.min(32) as u32;
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits)
            };
            format!("{}/{bits}", std::net::Ipv4Addr::from(u32::from(v4) & mask))
        }
        IpAddr::V6(v6) => {
            let bits = config.ipv6_prefix.min(128) as u32;
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - bits)
            };
            format!("{}/{bits}", std::net::Ipv6Addr::from(u128::from(v6) & mask))
        }
    }
}

pub fn triplet(network: &str, sender: &str, rcpt: &str) -> String {
    format!(
        "{network} {} {}",
        sender.to_lowercase(),
        rcpt.to_lowercase()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks() {
        let c = GreylistConfig::default();
        assert_eq!(network(&c, "192.0.2.77".parse().unwrap()), "192.0.2.0/24");
        assert_eq!(
            network(&c, "::ffff:192.0.2.77".parse().unwrap()),
            "192.0.2.0/24"
        );
        assert_eq!(
            network(&c, "2001:db8:1:2:3::9".parse().unwrap()),
            "2001:db8:1:2::/64"
        );
        assert_eq!(
            triplet("192.0.2.0/24", "A@X.example", "b@example.org"),
            "192.0.2.0/24 a@x.example b@example.org"
        );
    }
}
