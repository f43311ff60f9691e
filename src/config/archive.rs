//! The `[archive]` section: retention rules per domain, per user and per class of mail
//! (`backup.retention_days` stays the default for mail no rule covers). Legal holds live in
//! the database (`sponts archive hold`), not here: they must not vanish with a config edit.
//! The read-only IMAP service on the archive (`imap_listen`, `imaps_listen`) is set here too.

use serde::Deserialize;
use std::net::SocketAddr;

use super::ConfigError;

/// The classes a rule can name (what `crate::archive::retention::class_of` gives).
pub const CLASSES: [&str; 5] = ["clean", "spam", "virus", "sent", "other"];

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ArchiveConfig {
    /// `[[archive.retention]]` rules; see [`RetentionRule`].
    pub retention: Vec<RetentionRule>,
    /// IMAP on the archive (read-only; STARTTLS, sign-in only after it). Empty: off.
    pub imap_listen: Vec<SocketAddr>,
    /// IMAP on the archive with implicit TLS (IMAPS). Empty: off.
    pub imaps_listen: Vec<SocketAddr>,
}

impl ArchiveConfig {
    /// Is the archive's IMAP service on?
    pub fn imap_enabled(&self) -> bool {
        !self.imap_listen.is_empty() || !self.imaps_listen.is_empty()
    }
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
    let a = &config.archive;
    for (i, addr) in a.imaps_listen.iter().enumerate() {
        // Port 0 (any free port) can repeat; a fixed one cannot be bound twice.
        if addr.port() != 0 && a.imap_listen.contains(addr) {
            errors.push(ConfigError {
                key: format!("archive.imaps_listen[{i}]"),
                message: format!(
                    "{addr} is in archive.imap_listen too; one address serves one of them"
                ),
            });
        }
    }
    for (key, list) in [
        ("imap_listen", &a.imap_listen),
        ("imaps_listen", &a.imaps_listen),
    ] {
        for (i, addr) in list.iter().enumerate() {
            if addr.port() != 0 && list[..i].contains(addr) {
                errors.push(ConfigError {
                    key: format!("archive.{key}[{i}]"),
                    message: format!("{addr} is listed twice"),
                });
            }
        }
    }
    for (i, r) in config.archive.retention.iter().enumerate() {
        let key = |k: &str| format!("archive.retention[{i}].{k}");
        if let Some(c) = &r.class {
            if !CLASSES.contains(&c.as_str()) {
                errors.push(ConfigError {
                    key: key("class"),
                    message: format!("`{c}` is not one of {}", CLASSES.join(", ")),
                });
            }
        }
        if let Some(d) = &r.domain {
            if !crate::address::is_domain(d) {
                errors.push(ConfigError {
                    key: key("domain"),
                    message: format!("`{d}` is not a domain name"),
                });
            }
        }
        if let Some(u) = &r.user {
            if !u.contains('@') {
                errors.push(ConfigError {
                    key: key("user"),
                    message: format!("`{u}` is not an address"),
                });
            }
        }
        if r.days > 365 * 100 {
            errors.push(ConfigError {
                key: key("days"),
                message: "must be at most 36500".into(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    fn errors(text: &str) -> Vec<String> {
        match crate::config::Config::parse(text) {
            Ok(_) => Vec::new(),
            Err(e) => e.0.iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn bad_rules_are_named() {
        assert!(errors("[archive]\nretention = [{ class = \"spam\", days = 30 }, { user = \"ceo@example.org\", days = 3650 }]\n").is_empty());
        let e = errors(
            "[archive]\nretention = [{ class = \"junk\", days = 1 }, { domain = \"a b\", days = 1 }, { user = \"nobody\", days = 1 }]\n",
        );
        for key in [
            "archive.retention[0].class: `junk`",
            "archive.retention[1].domain: ",
            "archive.retention[2].user: ",
        ] {
            assert!(e.iter().any(|m| m.starts_with(key)), "{key}: {e:?}");
        }
        assert!(
            errors(
                "[archive]\nimap_listen = [\"127.0.0.1:1143\"]\nimaps_listen = [\"[::1]:1993\"]\n"
            )
            .is_empty()
        );
        let e = errors("[archive]\nimap_listen = [\"127.0.0.1\"]\n");
        assert!(
            e.iter().any(|m| m.starts_with("archive.imap_listen")),
            "{e:?}"
        );
        let e = errors(
            "[archive]\nimap_listen = [\"127.0.0.1:1143\"]\nimaps_listen = [\"127.0.0.1:1143\"]\n",
        );
        assert!(
            e.iter().any(|m| m
                .starts_with("archive.imaps_listen[0]: 127.0.0.1:1143 is in archive.imap_listen")),
            "{e:?}"
        );
        let e = errors("[archive]\nretention = [{ klass = \"spam\", days = 1 }]\nlisten = 1\n");
        assert!(
            e.iter().any(|m| m.contains("klass")) && e.iter().any(|m| m.contains("archive.listen")),
            "{e:?}"
        );
    }
}
