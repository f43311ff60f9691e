//! The LDAP / Active Directory source: the service account finds the person by the configured
//! filter, then a bind as that person's DN checks the password. Addresses come from the mail and
//! alias attributes (only `smtp:` values of proxyAddresses-style lists), groups from `memberOf`;
//! `admin_group` makes an admin. Nothing here ever grants the interception role.

pub mod ber;
pub mod client;
pub mod filter;

use anyhow::{Context, Result, bail};

use super::{Outcome, Person};
use crate::config::{Config, LdapConfig};
use crate::storage::Role;
use client::{Conn, Found};

/// Looks `address` up and, with a password, binds as the person found.
pub async fn check(
    config: &Config,
    ldap: &LdapConfig,
    address: &str,
    password: Option<&str>,
) -> Result<Outcome> {
    let (host, port, implicit) = endpoint(&ldap.url)?;
    let tls = crate::smtp::tls::verifying_client_config(super::roots(&ldap.ca)?);
    let mut conn = Conn::connect(&host, port, implicit, tls).await?;
    if !conn.bind(&ldap.bind_dn, &service_password(ldap)?).await? {
        bail!(
            "the LDAP server refused the service account {}",
            ldap.bind_dn
        );
    }
    let filter = filter::encode(&ldap.filter.replace("{addr}", &filter::escape(address)))
        .map_err(|e| anyhow::anyhow!("directory.ldap.filter: {e}"))?;
    let mut attrs = vec![ldap.mail_attribute.as_str(), ldap.group_attribute.as_str()];
    attrs.extend(ldap.alias_attributes.iter().map(String::as_str));
    let entry = match conn.search_one(&ldap.base, &filter, &attrs).await? {
        Found::One(e) => e,
        Found::None => {
            conn.unbind().await;
            return Ok(Outcome::Unknown);
        }
        Found::Several => {
            tracing::warn!(%address, "directory.ldap: several entries match; nobody signs in with this address");
            conn.unbind().await;
            return Ok(Outcome::Unknown);
        }
    };
    let person = person(config, ldap, &entry, address);
    let outcome = match password {
        None => Outcome::Known(person),
        Some(pw) if conn.bind(&entry.dn, pw).await? => Outcome::Accepted(person),
        Some(_) => Outcome::Refused,
    };
    conn.unbind().await;
    Ok(outcome)
}

/// `ldaps://host:port` → (host, port, implicit TLS); `ldap://` → StartTLS.
pub fn endpoint(url: &str) -> Result<(String, u16, bool)> {
    let (rest, implicit) = match (url.strip_prefix("ldaps://"), url.strip_prefix("ldap://")) {
        (Some(r), _) => (r, true),
        (None, Some(r)) => (r, false),
        _ => bail!("directory.ldap.url: `{url}` is not ldaps:// or ldap://"),
    };
    let (host, port) = crate::net::parse_host_port(rest.trim_end_matches('/'))
        .with_context(|| format!("directory.ldap.url: `{url}` has no HOST:PORT"))?;
    Ok((host, port, implicit))
}

fn service_password(ldap: &LdapConfig) -> Result<String> {
    match &ldap.bind_password_file {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| {
                format!(
                    "directory.ldap.bind_password_file: cannot read {}",
                    path.display()
                )
            })?;
            Ok(text.lines().next().unwrap_or_default().to_string())
        }
        None => Ok(ldap.bind_password.clone()),
    }
}

/// What sponts takes from an entry.
fn person(config: &Config, ldap: &LdapConfig, entry: &client::Entry, typed: &str) -> Person {
    let local = |a: &str| -> Option<String> {
        let a = crate::auth::account_name(a.trim()).ok()?;
        let domain = a.rsplit_once('@')?.1;
        (config.domains.local.is_empty() || config.is_local_domain(domain)).then_some(a)
    };
    let mut addresses: Vec<String> = entry
        .values(&ldap.mail_attribute)
        .filter_map(local)
        .collect();
    let mut primary_proxy = None;
    for attr in &ldap.alias_attributes {
        for v in entry.values(attr) {
            // `SMTP:` marks the primary address in proxyAddresses, `smtp:` the others; X500:, SIP:… are no mail.
            let value = match v.split_once(':') {
                Some((scheme, rest)) if scheme.eq_ignore_ascii_case("smtp") => {
                    if scheme == "SMTP" {
                        primary_proxy = local(rest);
                    }
                    rest
                }
                Some((scheme, _)) if !scheme.contains('@') => continue,
                _ => v,
            };
            addresses.extend(local(value));
        }
    }
    let address = addresses
        .first()
        .cloned()
        .or(primary_proxy)
        .or_else(|| local(typed))
        .unwrap_or_else(|| typed.to_lowercase());
    let mut aliases: Vec<String> = Vec::new();
    for a in addresses {
        if a != address && !aliases.contains(&a) {
            aliases.push(a);
        }
    }
    let groups: Vec<String> = entry
        .values(&ldap.group_attribute)
        .map(str::to_string)
        .collect();
    let admin = ldap
        .admin_group
        .as_deref()
        .is_some_and(|g| groups.iter().any(|m| same_dn(m, g)));
    Person {
        source: "ldap".into(),
        dn: entry.dn.clone(),
        address,
        aliases,
        groups,
        role: if admin { Role::Admin } else { Role::User },
        checked_us: 0,
        password_us: 0,
    }
}

/// DNs compared case-insensitively and without the spaces after commas people write.
fn same_dn(a: &str, b: &str) -> bool {
    let norm = |s: &str| {
        s.split(',')
            .map(|p| p.trim().to_lowercase())
            .collect::<Vec<_>>()
    };
    norm(a) == norm(b)
}
