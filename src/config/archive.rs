//! The `[archive]` section: retention rules per domain, per user and per class of mail
//! (`backup.retention_days` stays the default for mail no rule covers). Legal holds live in
//! the database (`sponts archive hold`), not here: they must not vanish with a config edit.

use serde::Deserialize;

use super::ConfigError;

/// The classes a rule can name (what `crate::archive::retention::class_of` gives).
pub const CLASSES: [&str; 5] = ["clean", "spam", "virus", "sent", "other"];

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ArchiveConfig {
    /// `[[archive.retention]]` rules; see [`RetentionRule`].
    pub retention: Vec<RetentionRule>,
}

/// Keep the mail this rule matches `days` days. A rule matches when every field it sets
/// matches; of the rules matching one person of a message the most specific wins (user, then
/// domain, then class), and a message is kept as long as the longest of its people's rules.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionRule {
    /// One of [`CLASSES`].
    pub class: Option<String>,
    /// A domain of the sender or a recipient (`example.org`).
    pub domain: Option<String>,
    /// An address (the sender or a recipient).
    pub user: Option<String>,
    pub days: u64,
}

pub(super) fn collect(config: &super::Config, errors: &mut Vec<ConfigError>) {
    for (i, r) in config.archive.retention.iter().enumerate() {
        let key = |k: &str| format!("archive.retention[{i}].{k}");
        if let Some(c) = &r.class {
            if !CLASSES.contains(&c.as_str()) {
                errors.push(ConfigError { key: key("class"), message: format!("`{c}` is not one of {}", CLASSES.join(", ")) });
            }
        }
        if let Some(d) = &r.domain {
            if !crate::address::is_domain(d) {
                errors.push(ConfigError { key: key("domain"), message: format!("`{d}` is not a domain name") });
            }
        }
        if let Some(u) = &r.user {
            if !u.contains('@') {
                errors.push(ConfigError { key: key("user"), message: format!("`{u}` is not an address") });
            }
        }
        if r.days > 365 * 100 {
            errors.push(ConfigError { key: key("days"), message: "must be at most 36500".into() });
        }
    }
}
