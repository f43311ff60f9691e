//! The `[report]` section (how often this node writes its live figures, the report mailed to the
//! admins) and the `[metrics]` section (a Prometheus listener of its own).

use serde::Deserialize;
use std::net::SocketAddr;

use super::{ConfigError, Duration};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReportConfig {
    /// How often connections, peak sessions, queue length and scanner figures are written.
    pub sample_every: Duration,
    /// The report mail: `off`, `daily` or `weekly` (Mondays, for the week before).
    pub mail: MailEvery,
    /// The hour (UTC) the report mail goes out.
    pub mail_hour: u32,
    /// Who gets it. Empty: every admin user.
    pub mail_to: Vec<String>,
    /// The report's sender. Empty: postmaster@ the first local domain.
    pub mail_from: String,
}

/// `[metrics]`: Prometheus' `/metrics` on an address of its own.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// `/metrics` also on this address, without a login (bind it to an address only the
    /// monitoring network reaches). None: only on the web listener, for admins.
    pub listen: Option<SocketAddr>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MailEvery {
    Off,
    Daily,
    Weekly,
}

impl Default for ReportConfig {
    fn default() -> Self {
        ReportConfig {
            sample_every: Duration::secs(60),
            mail: MailEvery::Weekly,
            mail_hour: 6,
            mail_to: Vec::new(),
            mail_from: String::new(),
        }
    }
}

pub(super) fn collect(config: &super::Config, errors: &mut Vec<ConfigError>) {
    let r = &config.report;
    if r.sample_every.0 < std::time::Duration::from_millis(100)
        || r.sample_every.0 > std::time::Duration::from_secs(3600)
    {
        errors.push(ConfigError {
            key: "report.sample_every".into(),
            message: "must be between 100ms and 1h".into(),
        });
    }
    if r.mail_hour > 23 {
        errors.push(ConfigError {
            key: "report.mail_hour".into(),
            message: format!("{} is not an hour (0 to 23)", r.mail_hour),
        });
    }
    for a in &r.mail_to {
        if !matches!(
            crate::address::parse_path(a, crate::address::Side::Recipient),
            Ok(Some(_))
        ) {
            errors.push(ConfigError {
                key: "report.mail_to".into(),
                message: format!("`{a}` is not a mail address"),
            });
        }
    }
    if Some(config.web.listen) == config.metrics.listen && config.web.enabled {
        errors.push(ConfigError {
            key: "metrics.listen".into(),
            message: "is web.listen; leave it out to serve /metrics there".into(),
        });
    }
}
