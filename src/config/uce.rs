//! The `[uce]` section: how spam is recognised and what happens to it. With no section the
//! defaults apply: "I don't exist" for spam, disposable addresses and the built-in learning
//! filter on, and no network lookups until zones or engines are configured.

use serde::Deserialize;
use std::collections::BTreeMap;

use super::{ConfigError, Duration};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UceConfig {
    /// What happens to spam, unless a domain says otherwise.
    pub policy: SpamPolicy,
    /// Per local domain, e.g. `{ "example.org" = "tag" }`.
    pub domain_policy: BTreeMap<String, SpamPolicy>,
    /// Points from which a message is tagged; from `reject_score` it is refused.
    pub tag_score: f64,
    pub reject_score: f64,
    /// Trap addresses; `*` in one stands for any run of characters (`honeypot-*@example.org`).
    pub traps: Vec<String>,
    /// How long a trap hit (or another sure sign) keeps the client IP in the penalty box.
    pub penalty_hours: u64,
    /// Disposable addresses `tag.N.user@domain`.
    pub disposable: bool,
    pub disposable_separator: String,
    /// `prefix`: `tag.N.user`; `suffix`: `user.tag.N`.
    pub disposable_position: DisposablePosition,
    /// The largest N a disposable address may ask for.
    pub disposable_max: u32,
    /// Each reply to a suspicious client is delayed this much ...
    pub tarpit_delay: Duration,
    /// ... or sent one byte at a time over that delay.
    pub tarpit_stutter: bool,
    /// The most a session is slowed down in total.
    pub tarpit_max: Duration,
    /// Unknown recipients in one session after which it is tarpitted (0: never).
    pub tarpit_unknown_recipients: usize,
    /// Protocol errors in one session after which it is tarpitted (0: never).
    pub tarpit_errors: usize,
    /// The pause between the greeting's first line (`220-`) and its last (`220 `): a client that
    /// talks in between is a bot — tarpitted, boxed and refused at RCPT per the domain's policy.
    /// A client that waited is not paused again for a day; our own networks never are (0: off).
    pub greet_delay: Duration,
    /// Points for a client that greets as this gateway, as a domain it receives mail for, or
    /// with a public address literal not its own (0: off).
    pub helo_forged: f64,
    /// Points for a greeting that is no host name: a bare address, brackets around no address,
    /// characters or labels no name has (0: off). A name without a dot is not counted.
    pub helo_invalid: f64,
    /// `HOST:PORT` of the DNS resolver for DNSBL, URIBL and SPF/DKIM. Empty: the system's.
    pub resolver: String,
    pub dns_timeout: Duration,
    pub dnsbl: Vec<DnsList>,
    /// Allow lists: their (negative) weight lowers the score.
    pub dnswl: Vec<DnsList>,
    pub uribl: Vec<DnsList>,
    pub greylist: GreylistConfig,
    pub callback: CallbackConfig,
    pub rspamd: Option<EngineConfig>,
    pub spamd: Option<EngineConfig>,
    pub learning: LearningConfig,
    pub auth: AuthConfig,
}

impl Default for UceConfig {
    fn default() -> Self {
        UceConfig {
            policy: SpamPolicy::RejectAsUnknown,
            domain_policy: BTreeMap::new(),
            tag_score: 5.0,
            reject_score: 10.0,
            traps: Vec::new(),
            penalty_hours: 24,
            disposable: true,
            disposable_separator: ".".into(),
            disposable_position: DisposablePosition::Prefix,
            disposable_max: 1000,
            tarpit_delay: Duration::secs(5),
            tarpit_stutter: false,
            tarpit_max: Duration::secs(600),
            tarpit_unknown_recipients: 3,
            tarpit_errors: 3,
            greet_delay: Duration(std::time::Duration::from_millis(500)),
            helo_forged: 5.0,
            helo_invalid: 2.0,
            resolver: String::new(),
            dns_timeout: Duration::secs(3),
            dnsbl: Vec::new(),
            dnswl: Vec::new(),
            uribl: Vec::new(),
            greylist: GreylistConfig::default(),
            callback: CallbackConfig::default(),
            rspamd: None,
            spamd: None,
            learning: LearningConfig::default(),
            auth: AuthConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SpamPolicy {
    /// `550 5.1.1 ... User unknown`: list cleaners drop the address.
    RejectAsUnknown,
    /// `554 5.7.1`.
    Reject,
    /// Deliver with `X-Spam-*` headers.
    Tag,
    /// Accept, keep in the backup, do not deliver.
    Quarantine,
}

impl SpamPolicy {
    pub fn as_str(&self) -> &'static str {
        match self {
            SpamPolicy::RejectAsUnknown => "reject_as_unknown",
            SpamPolicy::Reject => "reject",
            SpamPolicy::Tag => "tag",
            SpamPolicy::Quarantine => "quarantine",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DisposablePosition {
    Prefix,
    Suffix,
}

/// A DNS list: `zone` is queried, a listing adds `weight` points.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsList {
    pub zone: String,
    #[serde(default = "default_weight")]
    pub weight: f64,
}

fn default_weight() -> f64 {
    5.0
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GreylistConfig {
    pub enabled: bool,
    /// A first attempt is refused for now; a retry after this long passes.
    pub delay: Duration,
    /// A retry must come within this long of the first attempt, or it starts over.
    pub retry_window: Duration,
    /// After a passed retry the client network is let through without waiting for this many days.
    pub allow_days: u64,
    /// Client addresses are grouped by these prefix lengths (mail farms retry from other hosts).
    pub ipv4_prefix: u8,
    pub ipv6_prefix: u8,
}

impl Default for GreylistConfig {
    fn default() -> Self {
        GreylistConfig {
            enabled: false,
            delay: Duration::secs(300),
            retry_window: Duration::secs(86_400),
            allow_days: 36,
            ipv4_prefix: 24,
            ipv6_prefix: 64,
        }
    }
}

/// Does the connecting host answer SMTP itself? Real mail servers do, bots rarely.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CallbackConfig {
    pub enabled: bool,
    pub port: u16,
    pub timeout: Duration,
    /// Points added when no SMTP greeting comes back.
    pub weight: f64,
    pub cache_hours: u64,
}

impl Default for CallbackConfig {
    fn default() -> Self {
        CallbackConfig {
            enabled: false,
            port: 25,
            timeout: Duration::secs(5),
            weight: 3.0,
            cache_hours: 24,
        }
    }
}

/// An external engine (rspamd over HTTP, spamd over its own protocol).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineConfig {
    /// `HOST:PORT`.
    pub address: String,
    #[serde(default = "default_engine_timeout")]
    pub timeout: Duration,
    /// The engine's own score from which the message is tagged / refused.
    pub tag: f64,
    pub reject: f64,
}

fn default_engine_timeout() -> Duration {
    Duration::secs(15)
}

/// The built-in token filter.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LearningConfig {
    pub enabled: bool,
    /// Points for a sure spam verdict; a sure ham verdict (probability 0.05 or less) subtracts as much.
    pub weight: f64,
    /// The spam probability from which the verdict counts as sure (full `weight`); halfway
    /// between 0.5 and this it reaches `tag_score` with the default weights.
    pub spam_probability: f64,
    /// The filter gives no verdict before it learned this many spam and this many ham messages.
    pub min_messages: u64,
    /// Learn spam from trap hits and ham from replays by users.
    pub auto_learn: bool,
}

impl Default for LearningConfig {
    fn default() -> Self {
        LearningConfig {
            enabled: true,
            weight: 10.0,
            spam_probability: 0.9,
            min_messages: 20,
            auto_learn: true,
        }
    }
}

/// SPF, DKIM and DMARC verification, with the points a failure adds.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    pub enabled: bool,
    pub spf_fail: f64,
    pub dkim_fail: f64,
    /// The client's address has no reverse name, or its name does not resolve back to it
    /// (RFC 8601 `iprev`): what most bots look like, and some small servers too.
    pub iprev_fail: f64,
    /// A DMARC failure whose domain asks for `reject` / `quarantine`.
    pub dmarc_reject: f64,
    pub dmarc_quarantine: f64,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            enabled: false,
            spf_fail: 3.0,
            dkim_fail: 1.0,
            iprev_fail: 1.5,
            dmarc_reject: 10.0,
            dmarc_quarantine: 5.0,
        }
    }
}

impl UceConfig {
    /// The policy for mail to `domain`.
    pub fn policy_for(&self, domain: &str) -> SpamPolicy {
        self.domain_policy
            .iter()
            .find(|(d, _)| d.eq_ignore_ascii_case(domain))
            .map(|(_, p)| *p)
            .unwrap_or(self.policy)
    }

    pub fn validate(&self, local_domains: &[String], err: &mut dyn FnMut(&str, String)) {
        if !(self.tag_score < self.reject_score) {
            err(
                "uce.tag_score",
                format!("must be below uce.reject_score ({})", self.reject_score),
            );
        }
        for d in self.domain_policy.keys() {
            if !local_domains.iter().any(|l| l.eq_ignore_ascii_case(d)) {
                err(
                    &format!("uce.domain_policy.{d}"),
                    "is not one of domains.local".into(),
                );
            }
        }
        for (i, t) in self.traps.iter().enumerate() {
            if t.rsplit_once('@')
                .is_none_or(|(l, d)| l.is_empty() || d.is_empty())
            {
                err(
                    &format!("uce.traps[{i}]"),
                    format!("`{t}` is not an address or address pattern"),
                );
            }
        }
        if self.disposable_separator.chars().count() != 1
            || self
                .disposable_separator
                .chars()
                .any(|c| c.is_ascii_alphanumeric() || c == '@')
        {
            err(
                "uce.disposable_separator",
                "must be one character that is not a letter, digit or @".into(),
            );
        }
        if self.disposable_max == 0 {
            err("uce.disposable_max", "must be at least 1".into());
        }
        if self.penalty_hours == 0 {
            err("uce.penalty_hours", "must be at least 1".into());
        }
        if self.greet_delay.0 > std::time::Duration::from_secs(30) {
            err(
                "uce.greet_delay",
                "must be at most 30s (clients give up after a while)".into(),
            );
        }
        if !self.resolver.is_empty()
            && crate::net::parse_host_port(&self.resolver)
                .is_none_or(|(h, _)| h.parse::<std::net::IpAddr>().is_err())
        {
            err(
                "uce.resolver",
                format!("`{}` is not IP:PORT", self.resolver),
            );
        }
        for (key, lists) in [
            ("uce.dnsbl", &self.dnsbl),
            ("uce.dnswl", &self.dnswl),
            ("uce.uribl", &self.uribl),
        ] {
            for (i, l) in lists.iter().enumerate() {
                if !crate::address::is_domain(l.zone.trim_end_matches('.')) {
                    err(
                        &format!("{key}[{i}].zone"),
                        format!("`{}` is not a DNS zone", l.zone),
                    );
                }
            }
        }
        if self.greylist.ipv4_prefix > 32 || self.greylist.ipv6_prefix > 128 {
            err(
                "uce.greylist",
                "ipv4_prefix must be at most 32 and ipv6_prefix at most 128".into(),
            );
        }
        for (key, engine) in [("uce.rspamd", &self.rspamd), ("uce.spamd", &self.spamd)] {
            if let Some(e) = engine {
                if crate::net::parse_host_port(&e.address).is_none() {
                    err(
                        &format!("{key}.address"),
                        format!("`{}` is not HOST:PORT", e.address),
                    );
                }
                if !(e.tag < e.reject) {
                    err(
                        &format!("{key}.tag"),
                        format!("must be below {key}.reject ({})", e.reject),
                    );
                }
            }
        }
        if self.learning.weight < 0.0 {
            err("uce.learning.weight", "must not be negative".into());
        }
        if !(self.learning.spam_probability > 0.5 && self.learning.spam_probability <= 1.0) {
            err(
                "uce.learning.spam_probability",
                "must be above 0.5 and at most 1.0".into(),
            );
        }
    }
}

pub(super) fn collect(config: &super::Config, errors: &mut Vec<ConfigError>) {
    config
        .uce
        .validate(&config.domains.local, &mut |key, message| {
            errors.push(ConfigError {
                key: key.into(),
                message,
            })
        });
}
