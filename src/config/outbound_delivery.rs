//! The delivery keys of `[outbound]`: how sponts reaches the internet's mail exchangers (DNS
//! resolver, retries, DSN timing, parallelism) and per-destination transport security overrides.
//! They sit flat in `[outbound]` next to the acceptance keys; this file parses only its own.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use super::{ConfigError, Duration};

/// The keys of `[outbound]` this struct owns; the acceptance side parses the rest.
pub const DELIVERY_KEYS: &[&str] = &[
    "resolver",
    "retry",
    "max_retry",
    "delay_dsn_after",
    "lifetime",
    "max_sessions",
    "max_sessions_per_domain",
    "mta_sts_ca",
    "destinations",
    "tls_reports",
    "tls_report_from",
];

fn is_delivery_key(key: &str) -> bool {
    DELIVERY_KEYS.contains(&key)
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeliveryConfig {
    /// The DNS resolver (`IP:PORT`) for MX, A/AAAA, TLSA and MTA-STS lookups. DANE needs it to
    /// validate DNSSEC (its answers carry the AD bit). None: the first nameserver of /etc/resolv.conf.
    pub resolver: Option<SocketAddr>,
    /// The first wait after a deferral; it doubles per attempt up to `max_retry`.
    pub retry: Duration,
    pub max_retry: Duration,
    /// A still-undelivered message gets one delay notice (DSN) to its sender after this long.
    pub delay_dsn_after: Duration,
    /// After this long undelivered, a message is bounced to its sender (final DSN).
    pub lifetime: Duration,
    /// Sessions to remote MX hosts at once, overall and per destination domain.
    pub max_sessions: usize,
    pub max_sessions_per_domain: usize,
    /// A CA (PEM) trusted for MTA-STS policy fetches and MX certificates, besides the system's.
    pub mta_sts_ca: Option<PathBuf>,
    /// Per destination domain overrides.
    pub destinations: BTreeMap<String, Destination>,
    /// Send TLS-RPT reports (RFC 8460) once a day to the domains that publish `_smtp._tls`.
    pub tls_reports: bool,
    /// The reports' sender and contact address; default `postmaster@` the first local domain.
    pub tls_report_from: Option<String>,
}

/// `[outbound.destinations."partner.example"]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Destination {
    /// None: the default (DANE, then MTA-STS, then opportunistic STARTTLS).
    pub tls: Option<TlsOverride>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsOverride {
    /// STARTTLS with a certificate that verifies for the MX name, or no delivery.
    Require,
    /// STARTTLS when offered, any certificate; the default without DANE or MTA-STS.
    Opportunistic,
    /// Never STARTTLS (a partner whose TLS is broken).
    Never,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            resolver: None,
            retry: Duration::secs(300),
            max_retry: Duration::secs(4 * 3600),
            delay_dsn_after: Duration::secs(4 * 3600),
            lifetime: Duration::secs(5 * 86400),
            max_sessions: 20,
            max_sessions_per_domain: 4,
            mta_sts_ca: None,
            destinations: BTreeMap::new(),
            tls_reports: true,
            tls_report_from: None,
        }
    }
}

impl DeliveryConfig {
    /// The override for a destination domain (case-insensitive), if any.
    pub fn destination(&self, domain: &str) -> Option<&Destination> {
        self.destinations
            .iter()
            .find(|(d, _)| d.eq_ignore_ascii_case(domain))
            .map(|(_, v)| v)
    }
}

/// The delivery keys of the top-level `outbound` table, parsed with errors named `outbound.KEY`.
/// Other keys are the acceptance side's (`outbound.rs`), which names the unknown ones.
pub(super) fn section(table: &toml::Table, errors: &mut Vec<ConfigError>) -> DeliveryConfig {
    let Some(toml::Value::Table(outbound)) = table.get("outbound") else {
        return DeliveryConfig::default();
    };
    let ours: toml::Table = outbound
        .iter()
        .filter(|(k, _)| is_delivery_key(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let mut wrapped = toml::Table::new();
    wrapped.insert("outbound".into(), toml::Value::Table(ours));
    super::section(&wrapped, "outbound", errors)
}

/// The top-level table without the delivery keys in `outbound`, for the acceptance keys' parser.
pub fn without_delivery_keys(table: &toml::Table) -> toml::Table {
    let mut rest = table.clone();
    if let Some(toml::Value::Table(outbound)) = rest.get_mut("outbound") {
        outbound.retain(|k, _| !is_delivery_key(k));
    }
    rest
}

pub(super) fn collect(config: &super::Config, errors: &mut Vec<ConfigError>) {
    let d = &config.outbound_delivery;
    let mut err = |key: &str, message: String| {
        errors.push(ConfigError {
            key: format!("outbound.{key}"),
            message,
        })
    };
    if d.retry.0 < std::time::Duration::from_secs(1) {
        err("retry", "must be at least 1s".into());
    }
    if d.max_retry.0 < d.retry.0 {
        err(
            "max_retry",
            "must not be shorter than outbound.retry".into(),
        );
    }
    if d.lifetime.0 < d.retry.0 {
        err("lifetime", "must not be shorter than outbound.retry".into());
    }
    if d.delay_dsn_after.0 >= d.lifetime.0 {
        err(
            "delay_dsn_after",
            "must be shorter than outbound.lifetime".into(),
        );
    }
    if d.max_sessions == 0 {
        err("max_sessions", "must be at least 1".into());
    }
    if d.max_sessions_per_domain == 0 || d.max_sessions_per_domain > d.max_sessions {
        err(
            "max_sessions_per_domain",
            "must be between 1 and outbound.max_sessions".into(),
        );
    }
    if let Some(from) = &d.tls_report_from
        && !matches!(
            crate::address::parse_path(from, crate::address::Side::Recipient),
            Ok(Some(_))
        )
    {
        err(
            "tls_report_from",
            format!("`{from}` is not an email address"),
        );
    }
    for domain in d.destinations.keys() {
        if !crate::address::is_domain(domain) {
            err(
                &format!("destinations.\"{domain}\""),
                format!("`{domain}` is not a domain name"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    #[test]
    fn delivery_keys_parse_and_bad_ones_are_named() {
        let c = Config::parse("[outbound]\nresolver = \"127.0.0.1:5353\"\nlifetime = \"2d\"\n[outbound.destinations.\"partner.example\"]\ntls = \"require\"\n").unwrap();
        assert_eq!(
            c.outbound_delivery.resolver,
            Some("127.0.0.1:5353".parse().unwrap())
        );
        assert_eq!(c.outbound_delivery.lifetime.0.as_secs(), 2 * 86400);
        assert_eq!(
            c.outbound_delivery
                .destination("Partner.Example")
                .unwrap()
                .tls,
            Some(super::TlsOverride::Require)
        );
        let e = Config::parse("[outbound]\nresolver = \"dns.example\"\ndelay_dsn_after = \"9d\"\n[outbound.destinations.\"p.example\"]\ntls = \"maybe\"\n").unwrap_err();
        let e: Vec<String> = e.0.iter().map(|e| e.to_string()).collect();
        assert!(
            e.iter().any(|m| m.starts_with("outbound.resolver: ")),
            "{e:?}"
        );
        assert!(
            e.iter().any(|m| m.starts_with("outbound.destinations.")),
            "{e:?}"
        );
        assert!(
            e.iter()
                .any(|m| m.starts_with("outbound.delay_dsn_after: must be shorter")),
            "{e:?}"
        );
    }
}
