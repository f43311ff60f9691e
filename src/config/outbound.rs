//! The acceptance keys of `[outbound]`: who may send the organisation's mail out through sponts
//! (clients in `smtp.relay_networks`, or signed in with SMTP AUTH after STARTTLS), as which
//! sender domains, with what limits, and on which extra listeners (submission, port 587). The
//! delivery keys of the same table are `outbound_delivery.rs`'s.

use serde::Deserialize;
use std::net::SocketAddr;

use super::{ByteSize, ConfigError, Duration};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutboundConfig {
    /// Our own clients' mail to other domains takes the outbound path (queue, then MX delivery).
    /// Off: it goes to the backend like any other mail, as before.
    pub enabled: bool,
    /// Extra listeners (e.g. `0.0.0.0:587`, submission): the same SMTP service, but MAIL needs a
    /// client of the relay networks or an SMTP AUTH sign-in.
    pub listen: Vec<SocketAddr>,
    /// Offer SMTP AUTH (PLAIN, LOGIN) — only ever after STARTTLS.
    pub auth: bool,
    /// Failed AUTH attempts from one client address (IPv6: its /64) before its attempts are
    /// refused for `auth_failure_block` after the last one. 0: no limit.
    pub max_auth_failures: u32,
    pub auth_failure_block: Duration,
    /// The sender domains our clients may use. Empty: `domains.local`.
    pub sender_domains: Vec<String>,
    /// Recipients per outbound message.
    pub max_recipients: usize,
    /// Size of one outbound message. Unset: `smtp.max_message_size`.
    pub max_message_size: Option<ByteSize>,
    /// Per sender and hour, and per SMTP AUTH account over all its senders (compromised-account
    /// protection): past any of these, the sender's
    /// further outbound mail is held in the queue and the admins are mailed. 0: no limit.
    pub max_messages_per_hour: u32,
    pub max_recipients_per_hour: u32,
    pub max_domains_per_hour: u32,
    /// Past this share of the hour's recipients refused by the far side (5xx: unknown users,
    /// spam), once there are at least `REFUSED_SHARE_SAMPLE` of them, the sender's mail is held
    /// too: a hijacked account mails lists of guessed or stale addresses. 0: no limit.
    pub max_refused_share: f64,
    /// Against each sender's (and account's) own habit: past this many times the recipients of
    /// its busiest hour in the last `baseline_days` (at least `baseline_floor`), further mail is
    /// held — a hijacked account spikes far above what its owner ever sent, long before it
    /// reaches limits made for everyone. 0: no baseline.
    pub baseline_factor: f64,
    pub baseline_days: u32,
    pub baseline_floor: u32,
}

/// Recipients in the hour before `max_refused_share` is judged: a few bounces are no pattern.
pub const REFUSED_SHARE_SAMPLE: usize = 20;

impl Default for OutboundConfig {
    fn default() -> Self {
        OutboundConfig {
            enabled: true,
            listen: Vec::new(),
            auth: true,
            max_auth_failures: 5,
            auth_failure_block: Duration::secs(900),
            sender_domains: Vec::new(),
            max_recipients: 100,
            max_message_size: None,
            max_messages_per_hour: 200,
            max_recipients_per_hour: 1000,
            max_domains_per_hour: 200,
            max_refused_share: 0.5,
            baseline_factor: 10.0,
            baseline_days: 14,
            baseline_floor: 20,
        }
    }
}

impl OutboundConfig {
    /// May our clients send as `domain`?
    pub fn is_sender_domain(&self, domain: &str, local: &[String]) -> bool {
        let ours = if self.sender_domains.is_empty() {
            local
        } else {
            &self.sender_domains
        };
        ours.iter().any(|d| d.eq_ignore_ascii_case(domain))
    }
}

pub(super) fn collect(config: &super::Config, errors: &mut Vec<ConfigError>) {
    let o = &config.outbound;
    let mut err = |key: &str, message: String| {
        errors.push(ConfigError {
            key: format!("outbound.{key}"),
            message,
        })
    };
    for d in &o.sender_domains {
        if !crate::address::is_domain(d) {
            err("sender_domains", format!("`{d}` is not a domain name"));
        }
    }
    if !(0.0..=1.0).contains(&o.max_refused_share) {
        err(
            "max_refused_share",
            "must be between 0 (no limit) and 1".into(),
        );
    }
    if o.baseline_factor != 0.0 && !(1.0..=1000.0).contains(&o.baseline_factor) {
        err(
            "baseline_factor",
            "must be 0 (no baseline) or between 1 and 1000".into(),
        );
    }
    if o.baseline_factor != 0.0 && !(1..=366).contains(&o.baseline_days) {
        err("baseline_days", "must be between 1 and 366".into());
    }
    if o.max_recipients == 0 {
        err("max_recipients", "must be at least 1".into());
    }
    if let Some(size) = o.max_message_size {
        if size.0 < 1024 || size.0 > config.smtp.max_message_size.0 {
            err(
                "max_message_size",
                "must be between 1 KB and smtp.max_message_size".into(),
            );
        }
    }
    for a in &o.listen {
        if config.smtp.listen.contains(a) {
            err("listen", format!("{a} is already in smtp.listen"));
        }
    }
    if o.enabled && o.sender_domains.is_empty() && config.domains.local.is_empty() {
        err(
            "sender_domains",
            "no sender domain: set domains.local or outbound.sender_domains".into(),
        );
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    #[test]
    fn acceptance_and_delivery_keys_share_the_table_and_bad_ones_are_named() {
        let c = Config::parse("[domains]\nlocal = [\"example.org\"]\n[outbound]\nlisten = [\"127.0.0.1:1587\"]\nsender_domains = [\"example.com\"]\nmax_recipients = 5\nlifetime = \"2d\"\n").unwrap();
        assert_eq!(c.outbound.max_recipients, 5);
        assert!(c.outbound.is_sender_domain("Example.COM", &c.domains.local));
        assert!(!c.outbound.is_sender_domain("example.org", &c.domains.local));
        assert_eq!(c.outbound_delivery.lifetime.0.as_secs(), 2 * 86400);
        let e = Config::parse("[domains]\nlocal = [\"example.org\"]\n[outbound]\nsender_domain = [\"x\"]\nmax_recipients = 0\nsender_domains = [\"not a domain\"]\n").unwrap_err();
        let e: Vec<String> = e.0.iter().map(|e| e.to_string()).collect();
        assert!(
            e.iter()
                .any(|m| m.starts_with("outbound.sender_domain: unknown field")),
            "{e:?}"
        );
        assert!(
            e.iter().any(|m| m.starts_with("outbound.max_recipients: ")),
            "{e:?}"
        );
        assert!(
            e.iter().any(|m| m.starts_with("outbound.sender_domains: ")),
            "{e:?}"
        );
    }
}
