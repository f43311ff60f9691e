//! DNS lists: the client IP against DNSBL/DNSWL zones, the domains a message links to against
//! URI blocklists. Lookups only — nothing a message links to is ever fetched. The resolver is
//! the system's, or `uce.resolver` (tests run a small DNS server on loopback); it is shared
//! with SPF/DKIM/DMARC verification.

use anyhow::Result;
use mail_auth::MessageAuthenticator;
use mail_auth::hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use std::net::IpAddr;
use std::time::Duration;

use crate::config::{DnsList, UceConfig};

/// One listing found: the zone, its weight, and the address it answered.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub zone: String,
    pub weight: f64,
    pub name: String,
}

/// Domains of links looked up per message, at most.
const MAX_URI_DOMAINS: usize = 20;

/// The resolver sponts uses for every lookup.
pub fn authenticator(config: &UceConfig) -> Result<MessageAuthenticator> {
    let mut opts = ResolverOpts::default();
    opts.timeout = config.dns_timeout.0;
    opts.attempts = 2;
    if config.resolver.is_empty() {
        return match MessageAuthenticator::new_system_conf() {
            Ok(a) => Ok(a),
            Err(e) => anyhow::bail!(
                "uce: cannot read the system's resolver configuration (set uce.resolver): {e}"
            ),
        };
    }
    let (host, port) = crate::net::parse_host_port(&config.resolver)
        .ok_or_else(|| anyhow::anyhow!("uce.resolver: not IP:PORT"))?;
    let ip: IpAddr = host.parse()?;
    let mut server = NameServerConfig::udp_and_tcp(ip);
    for c in &mut server.connections {
        c.port = port;
    }
    MessageAuthenticator::new(ResolverConfig::from_name_servers(vec![server]), opts)
        .map_err(|e| anyhow::anyhow!("uce.resolver: {e}"))
}

/// The name to query for `ip` in `zone`: reversed octets (IPv4) or nibbles (IPv6).
pub fn reversed(ip: IpAddr, zone: &str) -> String {
    let zone = zone.trim_end_matches('.');
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            format!("{}.{}.{}.{}.{zone}.", o[3], o[2], o[1], o[0])
        }
        IpAddr::V6(v6) => {
            let mut name = String::with_capacity(64 + zone.len());
            for byte in v6.octets().iter().rev() {
                name.push_str(&format!("{:x}.{:x}.", byte & 0xf, byte >> 4));
            }
            format!("{name}{zone}.")
        }
    }
}

/// A listing is an answer in 127.0.0.0/8 — except 127.0.0.1 and 127.255.255.0/24, which lists
/// use to say "query refused" (public resolvers, over quota): those must never list everyone.
fn is_listing(a: std::net::Ipv4Addr) -> bool {
    let o = a.octets();
    o[0] == 127 && a != std::net::Ipv4Addr::new(127, 0, 0, 1) && !(o[1] == 255 && o[2] == 255)
}

/// Is `name` listed? A list's error answer or a timeout counts as not listed.
async fn listed(auth: &MessageAuthenticator, name: &str, timeout: Duration) -> Option<String> {
    let lookup = tokio::time::timeout(timeout, auth.resolver().ipv4_lookup(name))
        .await
        .ok()?;
    match lookup {
        Ok(l) => l.answers().iter().find_map(|r| match &r.data {
            mail_auth::hickory_resolver::proto::rr::RData::A(a) if is_listing(a.0) => Some(a.0.to_string()),
            mail_auth::hickory_resolver::proto::rr::RData::A(a) => {
                tracing::warn!("DNS list answered {} for {name}: an error code (query refused or over quota), not a listing", a.0);
                None
            }
            _ => None,
        }),
        Err(e) => {
            if !e.is_nx_domain() && !e.is_no_records_found() {
                tracing::debug!("DNS list lookup of {name} failed: {e}");
            }
            None
        }
    }
}

/// The lists among `lists` that name the client IP.
pub async fn ip_hits(
    auth: &MessageAuthenticator,
    ip: IpAddr,
    lists: &[DnsList],
    timeout: Duration,
) -> Vec<Hit> {
    if ip.is_loopback() && lists.is_empty() {
        return Vec::new();
    }
    let lookups: Vec<_> = lists
        .iter()
        .map(|l| (reversed(ip, &l.zone), l.zone.clone(), l.weight))
        .map(|(name, zone, weight)| async move {
            listed(auth, &name, timeout).await.map(|a| Hit {
                zone,
                weight,
                name: format!("{ip} ({a})"),
            })
        })
        .collect();
    futures_join(lookups).await
}

/// The URI blocklist hits of the domains a message links to (each domain as written, and its
/// registered part: the last two labels).
pub async fn uri_hits(
    auth: &MessageAuthenticator,
    message: &[u8],
    lists: &[DnsList],
    timeout: Duration,
) -> Vec<Hit> {
    if lists.is_empty() {
        return Vec::new();
    }
    let mut domains: Vec<String> = Vec::new();
    for host in link_hosts(message) {
        let labels: Vec<&str> = host.split('.').collect();
        let base = labels[labels.len().saturating_sub(2)..].join(".");
        for d in [host.clone(), base] {
            if !domains.contains(&d)
                && domains.len() < MAX_URI_DOMAINS
                && d.parse::<IpAddr>().is_err()
            {
                domains.push(d);
            }
        }
    }
    let mut queries = Vec::new();
    for l in lists {
        for d in &domains {
            queries.push((
                format!("{d}.{}.", l.zone.trim_end_matches('.')),
                d.clone(),
                l.zone.clone(),
                l.weight,
            ));
        }
    }
    let lookups: Vec<_> = queries
        .into_iter()
        .map(|(name, d, zone, weight)| async move {
            listed(auth, &name, timeout).await.map(|a| Hit {
                zone,
                weight,
                name: format!("{d} ({a})"),
            })
        })
        .collect();
    let mut hits = futures_join(lookups).await;
    // One listing per zone counts: a message with many links to one listed site is not worse.
    let mut seen = Vec::new();
    hits.retain(|h| {
        if seen.contains(&h.zone) {
            false
        } else {
            seen.push(h.zone.clone());
            true
        }
    });
    hits
}

/// Hosts of http(s) links anywhere in the message text (raw, so encoded bodies count as
/// written; decoding is the learning filter's job).
fn link_hosts(message: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(&message[..message.len().min(512 * 1024)]);
    let lower = text.to_ascii_lowercase();
    let mut out: Vec<String> = Vec::new();
    let mut from = 0;
    while let Some(i) = lower[from..].find("http") {
        let start = from + i;
        from = start + 4;
        // At most 300 bytes, cut on a character boundary (the text is not ASCII everywhere).
        let end = (start..=lower.len().min(start + 300))
            .rev()
            .find(|&i| lower.is_char_boundary(i))
            .unwrap_or(start);
        if let Some(host) = super::learn::tokens::url_host(&lower[start..end]) {
            if !out.contains(&host) {
                out.push(host);
            }
        }
        if out.len() >= MAX_URI_DOMAINS {
            break;
        }
    }
    out
}

/// Runs lookups concurrently (the slowest, bounded by its timeout, decides the wait) and
/// keeps the hits.
async fn futures_join<F: std::future::Future<Output = Option<Hit>>>(lookups: Vec<F>) -> Vec<Hit> {
    futures_util::future::join_all(lookups)
        .await
        .into_iter()
        .flatten()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reversed_names() {
        assert_eq!(
            reversed("192.0.2.99".parse().unwrap(), "zen.example"),
            "99.2.0.192.zen.example."
        );
        assert_eq!(
            reversed("::ffff:192.0.2.99".parse().unwrap(), "zen.example."),
            "99.2.0.192.zen.example."
        );
        let v6 = reversed("2001:db8::1".parse().unwrap(), "l.example");
        assert!(
            v6.starts_with(
                "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.l.example."
            ),
            "{v6}"
        );
    }

    #[test]
    fn error_answers_are_not_listings() {
        assert!(is_listing("127.0.0.2".parse().unwrap()));
        assert!(is_listing("127.0.1.4".parse().unwrap()));
        for e in [
            "127.0.0.1",
            "127.255.255.254",
            "127.255.255.252",
            "10.0.0.2",
        ] {
            assert!(!is_listing(e.parse().unwrap()), "{e}");
        }
    }

    #[test]
    fn non_ascii_after_a_link_does_not_panic() {
        let mut m = b"Subject: x\r\n\r\nhttp://a.example/".to_vec();
        m.extend(std::iter::repeat_n("ä".as_bytes(), 200).flatten());
        m.extend_from_slice(b" http\xff\xfe\xc3 http://b.example");
        assert_eq!(
            link_hosts(&m),
            vec!["a.example".to_string(), "b.example".to_string()]
        );
    }

    #[test]
    fn link_hosts_are_found_once() {
        let m = b"Subject: x\r\n\r\nsee HTTP://Bad.Example/a and https://bad.example/b, <a href=\"http://other.example:80/\">\r\n";
        assert_eq!(
            link_hosts(m),
            vec!["bad.example".to_string(), "other.example".to_string()]
        );
    }
}
