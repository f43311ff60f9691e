//! The `[dkim]` section: whether outgoing mail is signed, which headers the signature covers, and
//! how a key rotation proceeds (how often pending keys' DNS records are looked for, how long the
//! old key keeps signing beside the new one). The keys themselves live in the database.

use serde::Deserialize;

use super::{ConfigError, Duration};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DkimConfig {
    /// Sign outgoing mail for every domain that has an active key.
    pub enabled: bool,
    /// The header fields the signature covers (when present; `From` always, and signed once
    /// more so that a second From added on the way breaks the signature).
    pub headers: Vec<String>,
    /// How long a replaced key keeps signing beside its successor, so mail signed just before
    /// the switch still finds the old record, and caches see the new one.
    pub overlap: Duration,
    /// How often pending keys' DNS records are looked for (and overlaps ended).
    pub check_every: Duration,
}

/// RFC 6376 §5.4.1's recommendation: what a reader sees and what changes the meaning.
pub const DEFAULT_HEADERS: &[&str] = &[
    "From",
    "Reply-To",
    "Subject",
    "Date",
    "To",
    "Cc",
    "Message-ID",
    "In-Reply-To",
    "References",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
    "Content-Disposition",
    "List-Id",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
];

impl Default for DkimConfig {
    fn default() -> Self {
        DkimConfig {
            enabled: true,
            headers: DEFAULT_HEADERS.iter().map(|h| h.to_string()).collect(),
            overlap: Duration::secs(7 * 86_400),
            check_every: Duration::secs(300),
        }
    }
}

fn is_field_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| (33..=126).contains(&b) && b != b':')
}

pub(super) fn collect(config: &super::Config, errors: &mut Vec<ConfigError>) {
    let d = &config.dkim;
    let mut err = |key: &str, message: String| {
        errors.push(ConfigError {
            key: key.into(),
            message,
        })
    };
    for (i, h) in d.headers.iter().enumerate() {
        if !is_field_name(h) {
            err(
                &format!("dkim.headers[{i}]"),
                format!("`{h}` is not a header field name"),
            );
        }
    }
    if !d.headers.iter().any(|h| h.eq_ignore_ascii_case("from")) {
        err("dkim.headers", "must include From (RFC 6376 §5.4)".into());
    }
    if d.overlap.0 < std::time::Duration::from_secs(3600) {
        err(
            "dkim.overlap",
            "must be at least 1h (mail in flight and DNS caches need the old record)".into(),
        );
    }
    if d.check_every.0 < std::time::Duration::from_secs(1)
        || d.check_every.0 > std::time::Duration::from_secs(86_400)
    {
        err("dkim.check_every", "must be between 1s and 1d".into());
    }
}

#[cfg(test)]
mod tests {
    fn errors(text: &str) -> Vec<String> {
        super::super::Config::parse(text)
            .unwrap_err()
            .0
            .iter()
            .map(|e| e.to_string())
            .collect()
    }

    #[test]
    fn bad_dkim_keys_are_named() {
        let e = errors(
            "[dkim]\nheaders = [\"Subject\", \"Bad:Name\"]\noverlap = \"5m\"\ncheck_every = \"0s\"\n",
        );
        assert!(
            e.iter()
                .any(|m| m.starts_with("dkim.headers[1]: `Bad:Name` is not a header field name")),
            "{e:?}"
        );
        assert!(
            e.iter()
                .any(|m| m.starts_with("dkim.headers: must include From")),
            "{e:?}"
        );
        assert!(
            e.iter()
                .any(|m| m.starts_with("dkim.overlap: must be at least 1h")),
            "{e:?}"
        );
        assert!(
            e.iter()
                .any(|m| m.starts_with("dkim.check_every: must be between")),
            "{e:?}"
        );
        assert!(errors("[dkim]\nsign = true\n")[0].starts_with("dkim.sign"));
    }
}
