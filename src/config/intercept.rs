//! `[intercept]` (how interception copies reach the agency) and `[pop3_proxy]` / `[imap_proxy]`
//! (sponts in front of the backend's POP3 and IMAP services, so a target's retrievals can be
//! copied; everyone else passes through untouched).

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;

use super::{ConfigError, Duration};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InterceptConfig {
    /// PEM file with the certificates an `smtp://` destination must chain to (the agency's CA,
    /// or its server certificate itself). Without it, copies to `smtp://` wait undelivered.
    pub agency_ca: Option<PathBuf>,
    /// Envelope sender and From: of copies sent by SMTP. Empty: postmaster@`smtp.hostname`.
    pub from: String,
    /// The wait after a failed delivery; it doubles with each attempt, up to an hour.
    pub retry_after: Duration,
}

impl Default for InterceptConfig {
    fn default() -> Self {
        InterceptConfig {
            agency_ca: None,
            from: String::new(),
            retry_after: Duration::secs(60),
        }
    }
}

/// How sponts reaches the backend's POP3 or IMAP service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendTls {
    /// STLS / STARTTLS right after the greeting.
    Starttls,
    /// Implicit TLS (POP3S, IMAPS).
    Tls,
    /// Plaintext (loopback or a trusted LAN only).
    Off,
}

/// `[pop3_proxy]` and `[imap_proxy]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MailProxyConfig {
    /// Plaintext listeners offering STLS / STARTTLS with sponts' certificate.
    pub listen: Vec<SocketAddr>,
    /// Implicit-TLS listeners (995, 993).
    pub tls_listen: Vec<SocketAddr>,
    /// The backend's service, HOST:PORT.
    pub backend: String,
    pub backend_tls: BackendTls,
    /// A CA (PEM) the backend's certificate must chain to, its name matching the host of
    /// `backend`. Unset: encrypted, not verified (LAN).
    pub backend_ca: Option<PathBuf>,
    /// Allow logins before TLS (never by default): the backend sees sponts' TLS, so it could
    /// not refuse a password sent in clear itself.
    pub allow_plaintext_auth: bool,
    /// A session with no bytes either way this long is closed (a target's or anyone's).
    pub idle_timeout: Duration,
    /// After this many failed logins from one client address (an IPv6 /64), sponts refuses that
    /// address's logins itself (0: never); the backend sees the client's address too, but one
    /// attacker must not cost the backend's attention (or its per-address delays) for long.
    pub max_failed_logins: u32,
    /// How long such an address stays refused, counted from its last failed login.
    pub failed_login_block: Duration,
}

impl Default for MailProxyConfig {
    fn default() -> Self {
        MailProxyConfig {
            listen: Vec::new(),
            tls_listen: Vec::new(),
            backend: String::new(),
            backend_tls: BackendTls::Starttls,
            backend_ca: None,
            allow_plaintext_auth: false,
            idle_timeout: Duration::secs(1800),
            max_failed_logins: 10,
            failed_login_block: Duration::secs(900),
        }
    }
}

impl MailProxyConfig {
    pub fn enabled(&self) -> bool {
        !self.listen.is_empty() || !self.tls_listen.is_empty()
    }
}

pub(super) fn collect(config: &super::Config, errors: &mut Vec<ConfigError>) {
    let i = &config.intercept;
    if !i.from.is_empty()
        && !matches!(
            crate::address::parse_path(&i.from, crate::address::Side::Sender),
            Ok(Some(_))
        )
    {
        errors.push(ConfigError {
            key: "intercept.from".into(),
            message: format!("`{}` is not a mail address", i.from),
        });
    }
    if i.retry_after.0 < std::time::Duration::from_secs(1)
        || i.retry_after.0 > std::time::Duration::from_secs(3600)
    {
        errors.push(ConfigError {
            key: "intercept.retry_after".into(),
            message: "must be between 1s and 1h".into(),
        });
    }
    for (name, p) in [
        ("pop3_proxy", &config.pop3_proxy),
        ("imap_proxy", &config.imap_proxy),
    ] {
        if p.enabled() && crate::net::parse_host_port(&p.backend).is_none() {
            errors.push(ConfigError {
                key: format!("{name}.backend"),
                message: format!(
                    "`{}` is not HOST:PORT (needed when {name} listens)",
                    p.backend
                ),
            });
        }
        if p.backend_ca.is_some() && p.backend_tls == BackendTls::Off {
            errors.push(ConfigError {
                key: format!("{name}.backend_ca"),
                message: format!("needs {name}.backend_tls = \"starttls\" or \"tls\""),
            });
        }
        if p.idle_timeout.0 < std::time::Duration::from_secs(10) {
            errors.push(ConfigError {
                key: format!("{name}.idle_timeout"),
                message: "must be at least 10s".into(),
            });
        }
        if p.failed_login_block.0 < std::time::Duration::from_secs(1)
            || p.failed_login_block.0 > std::time::Duration::from_secs(86_400)
        {
            errors.push(ConfigError {
                key: format!("{name}.failed_login_block"),
                message: "must be between 1s and 24h".into(),
            });
        }
    }
}
