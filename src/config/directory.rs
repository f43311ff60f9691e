//! The `[directory]` section: where people who sign in come from besides local accounts — an
//! LDAP / Active Directory server (`[directory.ldap]`) and/or the mail server's IMAP login
//! (`directory.imap`) — and how long what they said is trusted while they cannot be reached.

use serde::Deserialize;

use super::{ConfigError, Duration};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DirectoryConfig {
    /// How long a directory user's last good password (a salted argon2 hash) still signs them in
    /// while the directory or mail server cannot be reached, counted from that sign-in.
    pub cache_hours: u64,
    /// How often every cached directory account is looked up again (leavers lose access, group
    /// changes change the role).
    pub refresh: Duration,
    /// The longest one exchange with a directory source may take.
    pub timeout: Duration,
    /// The mail server's IMAP with implicit TLS, `HOST:PORT`: sign-in is a login there.
    pub imap: Option<String>,
    /// The CA (a PEM file's path, or the PEM text) the IMAP server's certificate must chain to; it
    /// must also name HOST.
    pub imap_ca: Option<String>,
    /// The login name sent to the IMAP server: the whole `address` or its `local` part.
    pub imap_login: ImapLogin,
    pub ldap: Option<LdapConfig>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImapLogin {
    #[default]
    Address,
    Local,
}

/// `[directory.ldap]`: RFC 4511 over LDAPS (`ldaps://`) or StartTLS (`ldap://`, always upgraded).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LdapConfig {
    /// `ldaps://HOST:PORT` (implicit TLS, 636) or `ldap://HOST:PORT` (StartTLS before anything else, 389).
    pub url: String,
    /// The CA (a PEM file's path, or the PEM text) the server's certificate must chain to.
    pub ca: String,
    /// The service account that looks people up (read-only is enough).
    pub bind_dn: String,
    pub bind_password: String,
    /// Or the service account's password from this file (first line), kept out of the config.
    pub bind_password_file: Option<std::path::PathBuf>,
    /// Where people are searched (whole subtree).
    pub base: String,
    /// The search; `{addr}` is the address typed at sign-in, escaped per RFC 4515.
    pub filter: String,
    /// The attribute holding a person's main address.
    pub mail_attribute: String,
    /// Attributes holding further addresses (`proxyAddresses`: only `smtp:` values count).
    /// Only addresses in `domains.local` become aliases.
    pub alias_attributes: Vec<String>,
    /// The attribute listing a person's groups (DNs).
    pub group_attribute: String,
    /// Members of this group (DN, compared case-insensitively) are admins. Nobody becomes an
    /// interception officer from the directory.
    pub admin_group: Option<String>,
}

impl Default for DirectoryConfig {
    fn default() -> Self {
        DirectoryConfig {
            cache_hours: 168,
            refresh: Duration::secs(900),
            timeout: Duration::secs(10),
            imap: None,
            imap_ca: None,
            imap_login: ImapLogin::Address,
            ldap: None,
        }
    }
}

impl Default for LdapConfig {
    fn default() -> Self {
        LdapConfig {
            url: String::new(),
            ca: String::new(),
            bind_dn: String::new(),
            bind_password: String::new(),
            bind_password_file: None,
            base: String::new(),
            filter: "(&(objectClass=user)(|(mail={addr})(proxyAddresses=smtp:{addr})(userPrincipalName={addr})))".into(),
            mail_attribute: "mail".into(),
            alias_attributes: vec!["proxyAddresses".into(), "userPrincipalName".into()],
            group_attribute: "memberOf".into(),
            admin_group: None,
        }
    }
}

impl DirectoryConfig {
    /// Is any directory source configured?
    pub fn any(&self) -> bool {
        self.imap.is_some() || self.ldap.is_some()
    }
}

pub(super) fn collect(config: &super::Config, errors: &mut Vec<ConfigError>) {
    let d = &config.directory;
    let mut err = |key: &str, message: String| {
        errors.push(ConfigError {
            key: format!("directory.{key}"),
            message,
        })
    };
    if d.cache_hours > 24 * 365 {
        err("cache_hours", "must be at most 8760 (a year)".into());
    }
    if d.refresh.0 < std::time::Duration::from_secs(1) {
        err("refresh", "must be at least 1s".into());
    }
    if d.timeout.0 < std::time::Duration::from_millis(100)
        || d.timeout.0 > std::time::Duration::from_secs(120)
    {
        err("timeout", "must be between 100ms and 2m".into());
    }
    if let Some(imap) = &d.imap {
        if crate::net::parse_host_port(imap).is_none() {
            err("imap", format!("`{imap}` is not HOST:PORT"));
        }
        if d.imap_ca.is_none() {
            err(
                "imap_ca",
                "is needed with directory.imap: the mail server's certificate must be verified"
                    .into(),
            );
        }
        if config.domains.local.is_empty() {
            err(
                "imap",
                "needs domains.local: only addresses of local domains sign in at the mail server"
                    .into(),
            );
        }
    } else if d.imap_ca.is_some() {
        err("imap_ca", "has no use without directory.imap".into());
    }
    if let Some(l) = &d.ldap {
        let rest = l
            .url
            .strip_prefix("ldaps://")
            .or_else(|| l.url.strip_prefix("ldap://"));
        match rest.map(|r| r.trim_end_matches('/')) {
            Some(hp) if crate::net::parse_host_port(hp).is_some() => {}
            _ => err(
                "ldap.url",
                format!("`{}` is not ldaps://HOST:PORT or ldap://HOST:PORT", l.url),
            ),
        }
        for (key, value) in [
            ("ldap.ca", &l.ca),
            ("ldap.bind_dn", &l.bind_dn),
            ("ldap.base", &l.base),
            ("ldap.mail_attribute", &l.mail_attribute),
        ] {
            if value.trim().is_empty() {
                err(key, "must be set".into());
            }
        }
        if l.bind_password.is_empty() == l.bind_password_file.is_none() {
            err(
                "ldap.bind_password",
                "give either bind_password or bind_password_file".into(),
            );
        }
        // Its syntax is checked by the directory that builds it (preflight).
        if !l.filter.contains("{addr}") {
            err(
                "ldap.filter",
                "must contain {addr} (the address typed at sign-in)".into(),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    fn errors(text: &str) -> Vec<String> {
        match Config::parse(text) {
            Ok(_) => vec![],
            Err(e) => e.0.iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn mistakes_name_their_key() {
        let e = errors("[directory]\nimap = \"mail.example.org\"\nimap_login = \"uid\"\n");
        assert!(
            e.iter().any(|m| m.starts_with("directory.imap_login")),
            "{e:?}"
        );
        let e = errors(
            "[domains]\nlocal = [\"example.org\"]\n[directory]\nimap = \"mail.example.org\"\n",
        );
        assert!(
            e.iter()
                .any(|m| m.starts_with("directory.imap: `mail.example.org` is not HOST:PORT")),
            "{e:?}"
        );
        assert!(
            e.iter()
                .any(|m| m.starts_with("directory.imap_ca: is needed")),
            "{e:?}"
        );
        let e = errors(
            "[directory.ldap]\nurl = \"http://dc1:389\"\nfilter = \"(mail=x)\"\nbind_pasword = \"x\"\n",
        );
        assert!(
            e.iter()
                .any(|m| m.starts_with("directory.ldap.bind_pasword: unknown")),
            "{e:?}"
        );
        let e = errors("[directory.ldap]\nurl = \"http://dc1:389\"\nfilter = \"(mail=x)\"\n");
        for key in [
            "directory.ldap.url: ",
            "directory.ldap.ca: must be set",
            "directory.ldap.bind_dn: must be set",
            "directory.ldap.base: must be set",
            "directory.ldap.bind_password: give either",
            "directory.ldap.filter: must contain {addr}",
        ] {
            assert!(e.iter().any(|m| m.starts_with(key)), "{key}: {e:?}");
        }
        let good = "[directory.ldap]\nurl = \"ldaps://dc1.example.org:636\"\nca = \"/etc/ca.pem\"\nbind_dn = \"cn=s\"\nbind_password = \"p\"\nbase = \"dc=example\"\n";
        assert!(errors(good).is_empty(), "{:?}", errors(good));
    }
}
