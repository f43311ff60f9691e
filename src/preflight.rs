//! The checks of a config that only the parts above it can make: which module names exist
//! ([`crate::modules`]) and whether a CA file holds certificates ([`crate::smtp::tls`]). The config
//! describes; who builds a thing validates what only it understands, so `config` imports nothing
//! above it. `check-config`, `serve`, a reload and [`crate::start`] all load through here.

use std::path::Path;

use crate::config::{Config, ConfigError, ConfigErrors};

/// Reads a config file and checks it whole; every problem names its key, all at once.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let (config, mut errors) = Config::parse_with_problems(&Config::read(path)?)?;
    if let Err(more) = check(&config) {
        errors.extend(more.0);
    }
    if errors.is_empty() {
        Ok(config)
    } else {
        Err(ConfigErrors(errors))
    }
}

/// The checks beyond the config's own, on a config that parsed.
pub fn check(config: &Config) -> Result<(), ConfigErrors> {
    let mut errors = crate::modules::check_names(config);
    errors.extend(crate::smtp::tls::check_ca_files(config));
    errors.extend(crate::directory::check(config));
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ConfigErrors(errors))
    }
}

/// A problem with a key, for the checks above.
pub fn problem(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError {
        key: key.into(),
        message: message.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(text: &str) -> Vec<String> {
        let config = Config::parse(text).unwrap_or_else(|e| panic!("{e}"));
        check(&config)
            .err()
            .map(|e| e.0.iter().map(|e| e.to_string()).collect())
            .unwrap_or_default()
    }

    #[test]
    fn unknown_modules_and_unreadable_ca_files_are_named_by_key() {
        let e = problems(
            "modules = [\"journal\", \"antivirus\"]\n[backend]\nstarttls = \"required\"\ntls_ca = \"/nonexistent/ca.pem\"\n[intercept]\nagency_ca = \"/nonexistent/ca.pem\"\n[pop3_proxy]\nlisten = [\"127.0.0.1:1110\"]\nbackend = \"127.0.0.1:110\"\nbackend_ca = \"/nonexistent/ca.pem\"\n",
        );
        for key in [
            "modules[1]: unknown module `antivirus`",
            "backend.tls_ca: cannot read /nonexistent/ca.pem",
            "intercept.agency_ca: cannot read",
            "pop3_proxy.backend_ca: cannot read",
        ] {
            assert!(e.iter().any(|m| m.starts_with(key)), "{key}: {e:?}");
        }
        let not_pem = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(not_pem.path(), "not a certificate").unwrap();
        let e = problems(&format!(
            "[backend]\nstarttls = \"required\"\ntls_ca = \"{}\"\n",
            not_pem.path().display()
        ));
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].starts_with("backend.tls_ca: ") && e[0].contains("no usable PEM certificate"),
            "{e:?}"
        );
        assert!(problems("modules = [\"access\", \"journal\"]\n").is_empty());
    }

    #[test]
    fn the_directorys_ca_and_filter_are_checked() {
        let e = problems(
            "[directory.ldap]\nurl = \"ldaps://dc1.example.org:636\"\nca = \"/nonexistent/ca.pem\"\nbind_dn = \"cn=s\"\nbind_password = \"p\"\nbase = \"dc=x\"\nfilter = \"(&(mail={addr})\"\n",
        );
        assert!(
            e.iter()
                .any(|m| m.starts_with("directory.ldap.ca: cannot read /nonexistent/ca.pem")),
            "{e:?}"
        );
        assert!(
            e.iter()
                .any(|m| m.starts_with("directory.ldap.filter: expected `)`")),
            "{e:?}"
        );
    }
}
