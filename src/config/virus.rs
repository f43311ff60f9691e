//! The `[virus]` section: ClamAV's clamd and the attachment policy. Setting `clamd` or a block
//! list turns the module on.

use serde::Deserialize;

use super::{ConfigError, Duration};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VirusConfig {
    /// `HOST:PORT` or the path of clamd's unix socket. Empty: no virus scanning.
    pub clamd: String,
    /// The longest a scan may take.
    pub timeout: Duration,
    /// When clamd cannot scan: `tempfail` (451, the sender retries) or `accept` (deliver
    /// unscanned; the journal says so).
    pub on_error: OnScanError,
    /// Attachments refused by file name extension (`exe`, `scr` ...), also inside zip archives.
    pub block_extensions: Vec<String>,
    /// Attachments refused by MIME type (`application/x-msdownload`, or `audio/*`).
    pub block_types: Vec<String>,
}

impl Default for VirusConfig {
    fn default() -> Self {
        VirusConfig {
            clamd: String::new(),
            timeout: Duration::secs(60),
            on_error: OnScanError::Tempfail,
            block_extensions: Vec::new(),
            block_types: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnScanError {
    Tempfail,
    Accept,
}

impl VirusConfig {
    /// Is a scanner configured?
    pub fn scans(&self) -> bool {
        !self.clamd.is_empty()
    }

    /// Does the module have anything to do?
    pub fn enabled(&self) -> bool {
        self.scans() || !self.block_extensions.is_empty() || !self.block_types.is_empty()
    }

    /// A unix socket path (starts with `/`) or `HOST:PORT`.
    pub fn is_socket_path(&self) -> bool {
        self.clamd.starts_with('/')
    }
}

pub(super) fn collect(config: &super::Config, errors: &mut Vec<ConfigError>) {
    let v = &config.virus;
    if v.scans() && !v.is_socket_path() && crate::net::parse_host_port(&v.clamd).is_none() {
        errors.push(ConfigError {
            key: "virus.clamd".into(),
            message: format!("`{}` is neither HOST:PORT nor a socket path", v.clamd),
        });
    }
    if v.timeout.0 < std::time::Duration::from_secs(1) {
        errors.push(ConfigError {
            key: "virus.timeout".into(),
            message: "must be at least 1s".into(),
        });
    }
    let listed = config
        .modules
        .as_ref()
        .is_some_and(|m| m.iter().any(|n| n == "virus"));
    if listed && !v.enabled() {
        errors.push(ConfigError {
            key: "modules".into(),
            message: "`virus` needs virus.clamd (HOST:PORT or a socket path) or a block list"
                .into(),
        });
    }
    for (i, t) in v.block_types.iter().enumerate() {
        if t.split_once('/')
            .is_none_or(|(a, b)| a.is_empty() || b.is_empty())
        {
            errors.push(ConfigError {
                key: format!("virus.block_types[{i}]"),
                message: format!("`{t}` is not a MIME type (type/subtype or type/*)"),
            });
        }
    }
}
