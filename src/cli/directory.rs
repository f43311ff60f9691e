//! `sponts user import FILE.csv` (local accounts in bulk) and `sponts directory test ADDRESS`
//! (what sponts sees of a person: where they come from, addresses, groups, role, cache state).

use anyhow::{Result, bail};
use std::io::Write;

use crate::config::Config;
use crate::directory::Outcome;
use crate::storage::{Role, Store};

/// Reads `address,role[,password]` lines (a header line `address,...` and `#` comments are
/// skipped; role `user` or `admin`). Every line is checked before any account is made; a missing
/// password is generated and printed. Returns how many accounts were made.
pub async fn import(store: &Store, text: &str, out: &mut impl Write) -> Result<usize> {
    let mut rows = Vec::new();
    let mut problems = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let line = line.trim();
        if line.is_empty()
            || line.starts_with('#')
            || (n == 1 && line.to_lowercase().starts_with("address"))
        {
            continue;
        }
        let fields: Vec<&str> = line.splitn(3, ',').map(str::trim).collect();
        let address = match crate::auth::account_name(fields[0]) {
            Ok(a) => a,
            Err(e) => {
                problems.push(format!("line {n}: {e}"));
                continue;
            }
        };
        let role = match fields.get(1).copied().unwrap_or("user") {
            "" | "user" => Role::User,
            "admin" => Role::Admin,
            other => {
                problems.push(format!("line {n}: role `{other}` is not user or admin (interception accounts are made one by one: sponts user add --interception)"));
                continue;
            }
        };
        let (password, generated) = match fields.get(2).filter(|p| !p.is_empty()) {
            Some(p) if p.chars().count() < crate::auth::MIN_PASSWORD => {
                problems.push(format!(
                    "line {n}: the password must have at least {} characters",
                    crate::auth::MIN_PASSWORD
                ));
                continue;
            }
            Some(p) => (p.to_string(), false),
            None => (generated_password(), true),
        };
        if rows
            .iter()
            .any(|(a, ..): &(String, Role, String, bool)| *a == address)
        {
            problems.push(format!("line {n}: {address} is listed twice"));
            continue;
        }
        if store.user(&address).await?.is_some() {
            problems.push(format!("line {n}: user {address} exists already"));
            continue;
        }
        rows.push((address, role, password, generated));
    }
    if !problems.is_empty() {
        bail!("nothing imported:\n{}", problems.join("\n"));
    }
    for (address, role, password, generated) in &rows {
        let hash = crate::auth::hash_password(password)?;
        store.add_user(address, &hash, *role).await?;
        if *generated {
            writeln!(out, "{address},{},{password}", role.as_str())?;
        }
    }
    writeln!(
        out,
        "{} account{} imported",
        rows.len(),
        if rows.len() == 1 { "" } else { "s" }
    )?;
    Ok(rows.len())
}

/// 16 random characters from an alphabet without look-alikes.
fn generated_password() -> String {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut b = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b)
        .expect("system random");
    b.iter()
        .map(|x| ALPHABET[*x as usize % ALPHABET.len()] as char)
        .collect()
}

/// Prints what sponts sees of `address`; `false` when nobody has it.
pub async fn test(
    config: &Config,
    store: &Store,
    address: &str,
    out: &mut impl Write,
) -> Result<bool> {
    let address = address.trim().to_lowercase();
    let mut found = false;
    if store.is_local_account(&address).await? {
        let u = store.user(&address).await?.expect("a local account");
        writeln!(
            out,
            "local account {}: role {}, aliases {}",
            u.address,
            u.role.as_str(),
            list(&u.aliases)
        )?;
        found = true;
    }
    match &config.directory.ldap {
        None => writeln!(out, "ldap: not configured")?,
        Some(l) => match crate::directory::lookup(config, l, &address).await {
            Ok(Outcome::Known(p)) => {
                found = true;
                writeln!(
                    out,
                    "ldap: {}\n  dn: {}\n  address: {}\n  aliases: {}\n  groups: {}\n  role: {}",
                    l.url,
                    p.dn,
                    p.address,
                    list(&p.aliases),
                    list(&p.groups),
                    p.role.as_str()
                )?;
            }
            Ok(_) => writeln!(out, "ldap: {} knows no {address}", l.url)?,
            Err(e) => writeln!(out, "ldap: {} cannot be asked: {e:#}", l.url)?,
        },
    }
    match &config.directory.imap {
        None => writeln!(out, "imap: not configured")?,
        Some(i) => writeln!(
            out,
            "imap: {i} (a person is known there only by signing in)"
        )?,
    }
    match store.directory_user(&address).await? {
        Some((p, _)) => {
            found = true;
            let lifetime = config.directory.cache_hours as i64 * 3_600_000_000;
            let age = |us: i64| {
                if us == 0 {
                    "never".to_string()
                } else {
                    format!("{} min ago", (crate::clock::now_us() - us) / 60_000_000)
                }
            };
            let valid = p.password_us > 0 && crate::clock::now_us() - p.password_us < lifetime;
            writeln!(
                out,
                "cached ({}): {} role {}, aliases {}, groups {}",
                p.source,
                p.address,
                p.role.as_str(),
                list(&p.aliases),
                list(&p.groups)
            )?;
            writeln!(
                out,
                "  confirmed {}; password confirmed {} ({} while the source is down)",
                age(p.checked_us),
                age(p.password_us),
                if valid {
                    "signs in"
                } else {
                    "does not sign in"
                }
            )?;
        }
        None => writeln!(out, "cached: nothing")?,
    }
    if !found {
        writeln!(out, "{address}: not found")?;
    }
    Ok(found)
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "-".into()
    } else {
        items.join(", ")
    }
}
