//! Configuration: the TOML file (or the embedded defaults) parsed into typed structs and
//! validated once at start-up, so that a mistake is reported with its key before any mail flows.
//!
//! Every section is deserialized on its own, so `sponts check-config` can report the problems of
//! all sections in one run; each error names the key (`smtp.max_recipients: ...`).

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::net::Cidr;

mod directory;
pub mod dkim;
mod intercept;
mod report;
mod uce;
mod virus;
pub use directory::{DirectoryConfig, ImapLogin, LdapConfig};
pub mod archive;
pub mod outbound;
pub mod outbound_delivery;
pub use dkim::DkimConfig;
pub use intercept::{BackendTls, InterceptConfig, MailProxyConfig};
pub use report::{MailEvery, MetricsConfig, ReportConfig};
pub use uce::{
    AuthConfig, CallbackConfig, DisposablePosition, DnsList, EngineConfig, GreylistConfig,
    LearningConfig, SpamPolicy, UceConfig,
};
pub use virus::{OnScanError, VirusConfig};

/// The whole configuration, as the rest of sponts sees it.
#[derive(Debug, Clone, Default)]
pub struct Config {
    pub smtp: SmtpConfig,
    pub backend: BackendConfig,
    pub domains: DomainsConfig,
    pub storage: StorageConfig,
    pub log: LogConfig,
    /// Modules that run, in order. `None`: every module that needs no outside service.
    pub modules: Option<Vec<String>>,
    pub access: AccessConfig,
    pub backup: BackupConfig,
    pub web: WebConfig,
    pub digest: DigestConfig,
    pub queue: QueueConfig,
    pub pop3: Pop3Config,
    pub uce: UceConfig,
    pub virus: VirusConfig,
    pub report: ReportConfig,
    pub metrics: MetricsConfig,
    pub intercept: InterceptConfig,
    pub pop3_proxy: MailProxyConfig,
    pub imap_proxy: MailProxyConfig,
    pub directory: DirectoryConfig,
    /// The delivery keys of `[outbound]` (MX delivery, transport security).
    pub outbound_delivery: outbound_delivery::DeliveryConfig,
    /// The acceptance keys of `[outbound]` (who may relay, sender domains, limits, listeners).
    pub outbound: outbound::OutboundConfig,
    pub archive: archive::ArchiveConfig,
    pub dkim: DkimConfig,
}

/// POP3 emergency access: users read their new mail while the mail server is down.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Pop3Config {
    pub enabled: bool,
    pub listen: SocketAddr,
    /// Implicit TLS (POP3S), e.g. 127.0.0.1:1995. None: only STLS.
    pub tls_listen: Option<SocketAddr>,
    /// Allow USER/PASS and AUTH before TLS (never by default, loopback included).
    pub allow_plaintext_auth: bool,
    /// Besides queued mail, what was delivered in the last this many days (0: queued mail only).
    pub recent_days: u64,
    /// Idle time before the server closes a session.
    pub idle_timeout: Duration,
    pub session_timeout: Duration,
}

impl Default for Pop3Config {
    fn default() -> Self {
        Pop3Config {
            enabled: true,
            listen: "127.0.0.1:1110".parse().expect("static address"),
            tls_listen: None,
            allow_plaintext_auth: false,
            recent_days: 7,
            idle_timeout: Duration::secs(600),
            session_timeout: Duration::secs(3600),
        }
    }
}

/// Queue mode: while the backend is down, mail for known recipients is kept and delivered later.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueueConfig {
    pub enabled: bool,
    /// Recipients the backend accepted within this many days count as known in queue mode.
    pub known_recipient_days: u64,
    /// How often the queue runner looks for due messages (and so probes the backend).
    pub probe: Duration,
    /// The longest wait between two attempts of one message.
    pub max_retry: Duration,
    /// Older queued mail raises an alert (log, events on the queue page) — it is never deleted.
    pub max_age: Duration,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            enabled: true,
            known_recipient_days: 90,
            probe: Duration::secs(5),
            max_retry: Duration::secs(3600),
            max_age: Duration::secs(3 * 86_400),
        }
    }
}

/// The digest mail: each user is told what was refused for them, with one-click replay links.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DigestConfig {
    pub enabled: bool,
    /// How often (a user gets a digest only when something was refused for them).
    pub every: Duration,
    /// Where the links point, e.g. `https://mail-gw.example.org:8025`. Empty: web.listen.
    pub base_url: String,
    /// How long a replay link works.
    pub link_days: u64,
    /// The digest's sender. Empty: postmaster@ the first local domain.
    pub from: String,
}

impl Default for DigestConfig {
    fn default() -> Self {
        DigestConfig {
            enabled: true,
            every: Duration::secs(86_400),
            base_url: String::new(),
            link_days: 7,
            from: String::new(),
        }
    }
}

/// The web UI and JSON API.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebConfig {
    pub enabled: bool,
    pub listen: SocketAddr,
    /// HTTPS with the SMTP certificate (smtp.tls, or the self-signed one).
    pub tls: bool,
    /// How long a login lasts.
    pub session_hours: u64,
    /// Roles that must sign in with a second factor (TOTP): `admin`, `interception`, `user`.
    pub require_2fa_for: Vec<String>,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            enabled: true,
            listen: "127.0.0.1:8025".parse().expect("static address"),
            tls: false,
            session_hours: 12,
            require_2fa_for: vec!["interception".into()],
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmtpConfig {
    pub listen: Vec<SocketAddr>,
    pub hostname: String,
    pub max_message_size: ByteSize,
    pub max_recipients: usize,
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    /// Protocol errors tolerated in one session before 421 and close.
    pub max_errors: usize,
    /// RFC 5321 4.5.3.2: at least 5 minutes waiting for a command.
    pub command_timeout: Duration,
    /// Waiting for the next data block inside DATA (RFC 5321 4.5.3.2: 3 minutes).
    pub data_timeout: Duration,
    /// Hard cap on the whole session, whatever the client does.
    pub session_timeout: Duration,
    /// Client networks allowed to relay to any domain (none by default, loopback included).
    pub relay_networks: Vec<Cidr>,
    pub tls: TlsConfig,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        SmtpConfig {
            listen: vec!["127.0.0.1:2525".parse().expect("static address")],
            hostname: system_hostname(),
            max_message_size: ByteSize(25 * 1024 * 1024),
            max_recipients: 100,
            max_connections: 500,
            max_connections_per_ip: 20,
            max_errors: 10,
            command_timeout: Duration::secs(300),
            data_timeout: Duration::secs(180),
            session_timeout: Duration::secs(1800),
            relay_networks: Vec::new(),
            tls: TlsConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// PEM certificate chain. Absent: a self-signed certificate kept in the data dir.
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BackendConfig {
    /// `HOST:PORT` of the real mail server.
    pub address: String,
    pub starttls: StartTls,
    /// A CA (PEM) the backend's certificate must chain to, its name matching the host of
    /// `address`; needs `starttls = "required"`. Unset: encrypted, not verified (LAN).
    pub tls_ca: Option<PathBuf>,
    pub connect_timeout: Duration,
    /// Idle backend connections kept for the next message (0: a new connection per session).
    pub pool_size: usize,
}

impl Default for BackendConfig {
    fn default() -> Self {
        BackendConfig {
            address: "127.0.0.1:25".into(),
            starttls: StartTls::Opportunistic,
            tls_ca: None,
            connect_timeout: Duration::secs(30),
            pool_size: 32,
        }
    }
}

/// How sponts talks TLS to the backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StartTls {
    /// Never.
    Off,
    /// When the backend offers it (encryption on the LAN; the certificate is not verified).
    Opportunistic,
    /// Always; a backend that does not offer STARTTLS gets no mail (4xx to the client).
    Required,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DomainsConfig {
    /// The domains sponts accepts mail for; every other recipient is refused (no relay).
    pub local: Vec<String>,
}

impl Default for DomainsConfig {
    fn default() -> Self {
        DomainsConfig {
            local: vec!["localhost".into()],
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    pub data_dir: PathBuf,
    /// A SQLite file path (relative to `data_dir`) or a `postgres://` URL.
    pub database: String,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            data_dir: PathBuf::from("./sponts-data"),
            database: "sponts.db".into(),
        }
    }
}

impl StorageConfig {
    /// The database as sponts opens it: a postgres URL, or the SQLite file resolved against `data_dir`.
    pub fn database_location(&self) -> DatabaseLocation {
        if self.database.starts_with("postgres://") || self.database.starts_with("postgresql://") {
            DatabaseLocation::Postgres(self.database.clone())
        } else {
            DatabaseLocation::Sqlite(self.data_dir.join(&self.database))
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseLocation {
    Sqlite(PathBuf),
    Postgres(String),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `error`, `warn`, `info`, `debug` or `trace`.
    pub level: String,
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".into(),
            format: LogFormat::Text,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// Settings of the `access` module: static refusals by client network, HELO and sender.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AccessConfig {
    pub reject_networks: Vec<Cidr>,
    /// Sender addresses (`user@domain`) or whole domains (`@domain`), case-insensitive.
    pub reject_senders: Vec<String>,
    /// HELO/EHLO names refused, case-insensitive.
    pub reject_helo: Vec<String>,
}

/// Settings of the `backup` module: every message kept, compressed, for a while.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BackupConfig {
    pub retention_days: u64,
    /// Upper bound of the stored (compressed) bytes; the oldest go first. None: no bound.
    pub max_bytes: Option<ByteSize>,
    /// zstd level, 1 (fast) to 19 (small).
    pub compression_level: i32,
}

impl Default for BackupConfig {
    fn default() -> Self {
        BackupConfig {
            retention_days: 180,
            max_bytes: None,
            compression_level: 3,
        }
    }
}

/// One problem found in a configuration, with the key it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.key, self.message)
        }
    }
}

/// Every problem of a configuration file.
#[derive(Debug, Clone)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

const SECTIONS: &[&str] = &[
    "smtp",
    "backend",
    "domains",
    "storage",
    "log",
    "modules",
    "access",
    "backup",
    "web",
    "digest",
    "queue",
    "pop3",
    "uce",
    "virus",
    "report",
    "metrics",
    "intercept",
    "pop3_proxy",
    "imap_proxy",
    "directory",
    "outbound",
    "archive",
    "dkim",
];

impl Config {
    /// Reads and validates a file; the errors name the file's keys.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        Config::parse(&Config::read(path)?)
    }

    /// A config file's text.
    pub fn read(path: &Path) -> Result<String, ConfigErrors> {
        std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors(vec![ConfigError {
                key: String::new(),
                message: format!("cannot read {}: {e}", path.display()),
            }])
        })
    }

    /// Parses TOML text; collects the problems of every section before giving up.
    pub fn parse(text: &str) -> Result<Config, ConfigErrors> {
        let (config, errors) = Config::parse_with_problems(text)?;
        if errors.is_empty() {
            Ok(config)
        } else {
            Err(ConfigErrors(errors))
        }
    }

    /// Parses TOML text into a config (defaults where a section is wrong) and its problems, so a
    /// caller can add the checks of the parts above the config ([`crate::preflight`]) and name
    /// every problem at once. Only text that is no TOML at all gives no config.
    pub fn parse_with_problems(text: &str) -> Result<(Config, Vec<ConfigError>), ConfigErrors> {
        let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            ConfigErrors(vec![ConfigError {
                key: String::new(),
                message: format!("invalid TOML: {}", e.to_string().trim_end()),
            }])
        })?;
        let mut errors = Vec::new();
        for key in table.keys() {
            if !SECTIONS.contains(&key.as_str()) {
                errors.push(ConfigError {
                    key: key.clone(),
                    message: format!("unknown key (expected one of: {})", SECTIONS.join(", ")),
                });
            }
        }
        let config = Config {
            smtp: section(&table, "smtp", &mut errors),
            backend: section(&table, "backend", &mut errors),
            domains: section(&table, "domains", &mut errors),
            storage: section(&table, "storage", &mut errors),
            log: section(&table, "log", &mut errors),
            modules: section::<Option<Vec<String>>>(&table, "modules", &mut errors),
            access: section(&table, "access", &mut errors),
            backup: section(&table, "backup", &mut errors),
            web: section(&table, "web", &mut errors),
            digest: section(&table, "digest", &mut errors),
            queue: section(&table, "queue", &mut errors),
            pop3: section(&table, "pop3", &mut errors),
            uce: section(&table, "uce", &mut errors),
            virus: section(&table, "virus", &mut errors),
            report: section(&table, "report", &mut errors),
            metrics: section(&table, "metrics", &mut errors),
            intercept: section(&table, "intercept", &mut errors),
            pop3_proxy: section(&table, "pop3_proxy", &mut errors),
            imap_proxy: section(&table, "imap_proxy", &mut errors),
            directory: section(&table, "directory", &mut errors),
            outbound_delivery: outbound_delivery::section(&table, &mut errors),
            outbound: section(
                &outbound_delivery::without_delivery_keys(&table),
                "outbound",
                &mut errors,
            ),
            archive: section(&table, "archive", &mut errors),
            dkim: section(&table, "dkim", &mut errors),
        };
        errors.extend(config.validate());
        Ok((config, errors))
    }

    /// Semantic checks that serde cannot express; one error per problem.
    pub fn validate(&self) -> Vec<ConfigError> {
        let mut errors = Vec::new();
        let mut err = |key: &str, message: String| {
            errors.push(ConfigError {
                key: key.into(),
                message,
            })
        };
        if self.smtp.listen.is_empty() {
            err("smtp.listen", "at least one address is needed".into());
        }
        if !crate::address::is_domain(&self.smtp.hostname) {
            err(
                "smtp.hostname",
                format!(
                    "`{}` is not a fully qualified host name",
                    self.smtp.hostname
                ),
            );
        }
        for (key, value, min) in [
            (
                "smtp.max_message_size",
                self.smtp.max_message_size.0 as usize,
                1024,
            ),
            ("smtp.max_recipients", self.smtp.max_recipients, 1),
            ("smtp.max_connections", self.smtp.max_connections, 1),
            (
                "smtp.max_connections_per_ip",
                self.smtp.max_connections_per_ip,
                1,
            ),
            ("smtp.max_errors", self.smtp.max_errors, 1),
        ] {
            if value < min {
                err(key, format!("must be at least {min}"));
            }
        }
        if self.smtp.max_connections_per_ip > self.smtp.max_connections {
            err(
                "smtp.max_connections_per_ip",
                "must not exceed smtp.max_connections".into(),
            );
        }
        if self.smtp.command_timeout.0 < std::time::Duration::from_secs(1) {
            err("smtp.command_timeout", "must be at least 1s".into());
        }
        if self.smtp.tls.cert.is_some() != self.smtp.tls.key.is_some() {
            err("smtp.tls", "cert and key must be given together".into());
        }
        for (key, path) in [
            ("smtp.tls.cert", &self.smtp.tls.cert),
            ("smtp.tls.key", &self.smtp.tls.key),
        ] {
            if let Some(p) = path {
                if !p.is_file() {
                    err(key, format!("{} is not a readable file", p.display()));
                }
            }
        }
        if crate::net::parse_host_port(&self.backend.address).is_none() {
            err(
                "backend.address",
                format!("`{}` is not HOST:PORT", self.backend.address),
            );
        }
        if self.backend.tls_ca.is_some() && self.backend.starttls != StartTls::Required {
            err("backend.tls_ca", "needs backend.starttls = \"required\" (a verified link that could be left out is no check)".into());
        }
        for (i, d) in self.domains.local.iter().enumerate() {
            if !crate::address::is_domain(d) && d != "localhost" {
                err(
                    &format!("domains.local[{i}]"),
                    format!("`{d}` is not a domain name"),
                );
            }
        }
        if self.storage.database.trim().is_empty() {
            err(
                "storage.database",
                "must be a SQLite file name or a postgres:// URL".into(),
            );
        }
        if !["error", "warn", "info", "debug", "trace"].contains(&self.log.level.as_str()) {
            err(
                "log.level",
                format!(
                    "`{}` is not one of error, warn, info, debug, trace",
                    self.log.level
                ),
            );
        }
        if self.backup.retention_days == 0 {
            err("backup.retention_days", "must be at least 1".into());
        }
        if !(1..=19).contains(&self.backup.compression_level) {
            err(
                "backup.compression_level",
                "must be between 1 and 19".into(),
            );
        }
        if self.web.session_hours == 0 || self.web.session_hours > 24 * 30 {
            err("web.session_hours", "must be between 1 and 720".into());
        }
        for (i, role) in self.web.require_2fa_for.iter().enumerate() {
            if !["admin", "interception", "user"].contains(&role.as_str()) {
                err(
                    &format!("web.require_2fa_for[{i}]"),
                    format!("`{role}` is not a role (admin, interception, user)"),
                );
            }
        }
        if self.digest.every.0 < std::time::Duration::from_secs(60) {
            err("digest.every", "must be at least 1m".into());
        }
        if self.digest.link_days == 0 {
            err("digest.link_days", "must be at least 1".into());
        }
        if !self.digest.base_url.is_empty()
            && !(self.digest.base_url.starts_with("http://")
                || self.digest.base_url.starts_with("https://"))
        {
            err(
                "digest.base_url",
                "must start with http:// or https://".into(),
            );
        }
        if self.queue.probe.0 < std::time::Duration::from_secs(1)
            || self.queue.probe.0 > std::time::Duration::from_secs(30)
        {
            err("queue.probe", "must be between 1s and 30s (the drain must start within 30 s of the backend's return)".into());
        }
        if self.queue.max_retry.0 < self.queue.probe.0 {
            err(
                "queue.max_retry",
                "must not be shorter than queue.probe".into(),
            );
        }
        uce::collect(self, &mut errors);
        virus::collect(self, &mut errors);
        report::collect(self, &mut errors);
        intercept::collect(self, &mut errors);
        directory::collect(self, &mut errors);
        outbound_delivery::collect(self, &mut errors);
        outbound::collect(self, &mut errors);
        archive::collect(self, &mut errors);
        dkim::collect(self, &mut errors);
        errors
    }

    /// Is `domain` one sponts accepts mail for?
    pub fn is_local_domain(&self, domain: &str) -> bool {
        self.domains
            .local
            .iter()
            .any(|d| d.eq_ignore_ascii_case(domain))
    }
}

/// Deserializes one section. On an error the offending key is set aside and the rest is tried
/// again, so every bad key of the section is reported, not just the first.
fn section<T: DeserializeOwned + Default>(
    table: &toml::Table,
    name: &str,
    errors: &mut Vec<ConfigError>,
) -> T {
    let Some(mut value) = table.get(name).cloned() else {
        return T::default();
    };
    for _ in 0..64 {
        match serde_path_to_error::deserialize::<_, T>(value.clone()) {
            Ok(v) => return v,
            Err(e) => {
                let path = e.path().to_string();
                let message = tidy(&e.inner().to_string());
                let unknown = message
                    .strip_prefix("unknown field `")
                    .and_then(|m| m.split('`').next())
                    .map(str::to_string);
                let key = match (&unknown, path.as_str()) {
                    (Some(field), "." | "") => format!("{name}.{field}"),
                    // The path may already end in the unknown field itself.
                    (Some(field), p) if p == field || p.ends_with(&format!(".{field}")) => {
                        format!("{name}.{p}")
                    }
                    (Some(field), p) => format!("{name}.{p}.{field}"),
                    (None, "." | "") => name.to_string(),
                    (None, p) => format!("{name}.{p}"),
                };
                errors.push(ConfigError { key, message });
                // Set the key aside (the unknown one, or the first segment of the bad path).
                let first = path.split(['.', '[']).next().unwrap_or("").to_string();
                let culprit = if unknown.is_some() && (path == "." || path.is_empty()) {
                    unknown.unwrap()
                } else {
                    first
                };
                let removed = value.as_table_mut().and_then(|t| t.remove(&culprit));
                if removed.is_none() {
                    return T::default();
                }
            }
        }
    }
    T::default()
}

/// toml's messages may carry a trailing "in `key`" line; the key is named by us already.
fn tidy(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("in `"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The kernel's host name, by uname(2): /proc/sys may be hidden (systemd's ProcSubset=pid).
fn system_hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is writable for its whole length; gethostname NUL-terminates within it
    // or the last byte stays 0.
    let ok = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len() - 1) } == 0;
    let name = if ok {
        String::from_utf8_lossy(&buf[..buf.iter().position(|b| *b == 0).unwrap_or(0)])
            .trim()
            .to_string()
    } else {
        String::new()
    };
    Some(name)
        .filter(|h| crate::address::is_domain(h))
        .unwrap_or_else(|| "localhost.localdomain".into())
}

/// A duration written as `30s`, `5m`, `2h`, `7d`, or a number of seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Duration(pub std::time::Duration);

impl Duration {
    pub const fn secs(s: u64) -> Self {
        Duration(std::time::Duration::from_secs(s))
    }

    pub fn parse(text: &str) -> Option<Duration> {
        let text = text.trim();
        let split = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        let (num, unit) = text.split_at(split);
        let n: u64 = num.parse().ok()?;
        let mult = match unit.trim() {
            "ms" => return Some(Duration(std::time::Duration::from_millis(n))),
            "" | "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86400,
            "w" => 7 * 86400,
            _ => return None,
        };
        Some(Duration::secs(n.checked_mul(mult)?))
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        number_or_text(
            d,
            Duration::secs,
            Duration::parse,
            "a duration (e.g. 500ms, 30s, 5m, 2h, 7d)",
        )
    }
}

/// A value written either as a plain number or as text with a unit.
fn number_or_text<'de, D: Deserializer<'de>, T>(
    d: D,
    from_number: fn(u64) -> T,
    parse: fn(&str) -> Option<T>,
    what: &str,
) -> Result<T, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        N(u64),
        S(String),
    }
    match Raw::deserialize(d)? {
        Raw::N(n) => Ok(from_number(n)),
        Raw::S(s) => {
            parse(&s).ok_or_else(|| serde::de::Error::custom(format!("`{s}` is not {what}")))
        }
    }
}

/// A size in bytes written as a number or with a suffix: `512K`, `25M`, `1G` (powers of 1024).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub u64);

impl ByteSize {
    pub fn parse(text: &str) -> Option<ByteSize> {
        let t = text.trim();
        let t = t.strip_suffix(['B', 'b']).unwrap_or(t);
        let (num, mult) = match t.chars().last()? {
            'K' | 'k' => (&t[..t.len() - 1], 1024),
            'M' | 'm' => (&t[..t.len() - 1], 1024 * 1024),
            'G' | 'g' => (&t[..t.len() - 1], 1024 * 1024 * 1024),
            _ => (t, 1),
        };
        num.trim()
            .parse::<u64>()
            .ok()?
            .checked_mul(mult)
            .map(ByteSize)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        number_or_text(
            d,
            ByteSize,
            ByteSize::parse,
            "a size (e.g. 10485760, 512K, 25M)",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(text: &str) -> Vec<String> {
        Config::parse(text)
            .unwrap_err()
            .0
            .iter()
            .map(|e| e.to_string())
            .collect()
    }

    #[test]
    fn empty_file_gives_the_embedded_defaults() {
        let c = Config::parse("").unwrap();
        assert_eq!(c.smtp.listen, vec!["127.0.0.1:2525".parse().unwrap()]);
        assert_eq!(c.backend.address, "127.0.0.1:25");
        assert_eq!(
            c.storage.database_location(),
            DatabaseLocation::Sqlite(PathBuf::from("./sponts-data/sponts.db"))
        );
    }

    #[test]
    fn wrong_type_names_the_key() {
        let e = errors("[smtp]\nmax_recipients = \"many\"\n");
        assert_eq!(e.len(), 1);
        assert!(e[0].starts_with("smtp.max_recipients: "), "{e:?}");
    }

    #[test]
    fn unknown_keys_are_named() {
        let e = errors("[smtp]\nmax_recipient = 5\n[bogus]\n");
        assert!(
            e.iter()
                .any(|m| m.starts_with("smtp.max_recipient: unknown field")),
            "the key once: {e:?}"
        );
        assert!(
            e.iter().any(|m| m.starts_with("bogus: unknown key")),
            "{e:?}"
        );
    }

    #[test]
    fn problems_of_all_sections_are_reported_together() {
        let e = errors(
            "[smtp]\nmax_recipients = 0\n[backend]\naddress = \"nowhere\"\n[log]\nlevel = \"loud\"\n[domains]\nlocal = [\"ex ample.org\"]\n",
        );
        assert!(
            e.iter()
                .any(|m| m.starts_with("smtp.max_recipients: must be at least 1")),
            "{e:?}"
        );
        assert!(
            e.iter().any(|m| m.starts_with("backend.address: ")),
            "{e:?}"
        );
        assert!(e.iter().any(|m| m.starts_with("log.level: ")), "{e:?}");
        assert!(
            e.iter().any(|m| m.starts_with("domains.local[0]: ")),
            "{e:?}"
        );
    }

    #[test]
    fn backend_ca_keys_need_tls() {
        let e = errors(
            "[backend]\ntls_ca = \"/nonexistent/ca.pem\"\n[pop3_proxy]\nlisten = [\"127.0.0.1:1110\"]\nbackend = \"127.0.0.1:110\"\nbackend_tls = \"off\"\nbackend_ca = \"/nonexistent/ca.pem\"\n",
        );
        for key in [
            "backend.tls_ca: needs backend.starttls = \"required\"",
            "pop3_proxy.backend_ca: needs pop3_proxy.backend_tls",
        ] {
            assert!(e.iter().any(|m| m.starts_with(key)), "{key}: {e:?}");
        }
        // Whether the file holds a certificate is smtp::tls's to say (crate::preflight).
        assert_eq!(e.len(), 2, "{e:?}");
    }

    #[test]
    fn interception_and_proxy_keys_are_checked() {
        let e = errors(
            "[intercept]\nretry_after = \"0s\"\nagency_ca = \"/nonexistent/ca.pem\"\nfrom = \"nobody\"\n[imap_proxy]\nlisten = [\"127.0.0.1:1143\"]\nfailed_login_block = \"0s\"\n[pop3_proxy]\nbackend_tls = \"sometimes\"\n",
        );
        for key in [
            "intercept.retry_after: must be between",
            "intercept.from: `nobody`",
            "imap_proxy.backend: ",
            "imap_proxy.failed_login_block: must be between",
            "pop3_proxy.backend_tls: ",
        ] {
            assert!(e.iter().any(|m| m.starts_with(key)), "{key}: {e:?}");
        }
    }

    #[test]
    fn report_and_metrics_keys_are_checked() {
        let e = errors(
            "[report]\nsample_every = \"1ms\"\nmail_hour = 24\nmail_to = [\"nobody\"]\n[web]\nlisten = \"127.0.0.1:8025\"\n[metrics]\nlisten = \"127.0.0.1:8025\"\n",
        );
        assert!(
            e.iter()
                .any(|m| m.starts_with("report.sample_every: must be between")),
            "{e:?}"
        );
        assert!(
            e.iter()
                .any(|m| m.starts_with("report.mail_hour: 24 is not an hour")),
            "{e:?}"
        );
        assert!(
            e.iter()
                .any(|m| m.starts_with("report.mail_to: `nobody` is not a mail address")),
            "{e:?}"
        );
        assert!(
            e.iter()
                .any(|m| m.starts_with("metrics.listen: is web.listen")),
            "{e:?}"
        );
        let e = errors("[report]\nmail = \"sometimes\"\n");
        assert!(e[0].starts_with("report.mail: "), "{e:?}");
    }

    #[test]
    fn second_factor_roles_are_checked() {
        let e = errors("[web]\nrequire_2fa_for = [\"admin\", \"root\"]\n");
        assert_eq!(
            e,
            vec![
                "web.require_2fa_for[1]: `root` is not a role (admin, interception, user)"
                    .to_string()
            ]
        );
        assert_eq!(
            Config::parse("").unwrap().web.require_2fa_for,
            vec!["interception".to_string()]
        );
    }

    #[test]
    fn durations_and_sizes_parse_with_units() {
        let c = Config::parse("[smtp]\ncommand_timeout = \"2m\"\nmax_message_size = \"10M\"\n")
            .unwrap();
        assert_eq!(c.smtp.command_timeout.0.as_secs(), 120);
        assert_eq!(c.smtp.max_message_size.0, 10 * 1024 * 1024);
        let e = errors("[smtp]\ndata_timeout = \"soon\"\n");
        assert!(
            e[0].starts_with("smtp.data_timeout: `soon` is not a duration"),
            "{e:?}"
        );
    }

    #[test]
    fn syntax_errors_carry_the_line() {
        let e = errors("[smtp\n");
        assert!(e[0].contains("line 1"), "{e:?}");
    }

    #[test]
    fn postgres_urls_select_postgres() {
        let c = Config::parse("[storage]\ndatabase = \"postgres://localhost/sponts\"\n").unwrap();
        assert_eq!(
            c.storage.database_location(),
            DatabaseLocation::Postgres("postgres://localhost/sponts".into())
        );
    }

    #[test]
    fn the_example_config_is_valid() {
        let text = include_str!("../../sponts.example.toml");
        if let Err(e) = Config::parse(text) {
            panic!("sponts.example.toml: {e}");
        }
    }
}
