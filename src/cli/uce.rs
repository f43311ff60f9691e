//! The UCE subcommands (`learn` has a file of its own): `disposable` (list, lock, unlock, reset,
//! delete), `trap` (list, add, delete), `penalty`
//! (list, release) and `snippet` (HTML for web pages).

use anyhow::{Context, Result, bail};
use std::io::Write;

use crate::config::Config;
use crate::modules::uce::{disposable, snippet};
use crate::storage::Store;

/// `tag.N.user@domain` (or `tag.user@domain`) → (owner, tag).
fn disposable_key(config: &Config, address: &str) -> Result<(String, String)> {
    let (local, domain) = address
        .rsplit_once('@')
        .with_context(|| format!("`{address}` is not an address"))?;
    if let Some(d) = disposable::parse(&config.uce, local, domain) {
        return Ok((d.owner, d.tag));
    }
    bail!(
        "`{address}` is not a disposable address (tag{sep}N{sep}user@domain)",
        sep = config.uce.disposable_separator
    )
}

pub async fn disposable_list(
    store: &Store,
    owner: Option<&str>,
    json: bool,
    out: &mut dyn Write,
) -> Result<()> {
    let list = store
        .disposables(owner.map(str::to_lowercase).as_deref(), None)
        .await?;
    if json {
        for d in &list {
            writeln!(out, "{}", serde_json::to_string(d)?)?;
        }
        return Ok(());
    }
    writeln!(
        out,
        "{:<40} {:<30} {:>9} {:<7} LAST USED",
        "ADDRESS", "OWNER", "USED", "STATE"
    )?;
    for d in &list {
        let state = if d.locked { "locked" } else { "open" };
        writeln!(
            out,
            "{:<40} {:<30} {:>9} {:<7} {}",
            d.address,
            d.owner,
            format!("{}/{}", d.used, d.max_count),
            state,
            crate::clock::rfc3339(d.last_us)
        )?;
    }
    Ok(())
}

/// `lock`, `unlock`, `reset` or `delete` one disposable address.
pub async fn disposable_change(
    config: &Config,
    store: &Store,
    address: &str,
    action: &str,
) -> Result<()> {
    let (owner, tag) = disposable_key(config, address)?;
    let found = match action {
        "lock" => store.set_disposable(&owner, &tag, Some(true)).await?,
        "unlock" => store.set_disposable(&owner, &tag, Some(false)).await?,
        "reset" => store.set_disposable(&owner, &tag, None).await?,
        "delete" => store.delete_disposable(&owner, &tag).await?,
        other => bail!("unknown action {other}"),
    };
    if !found {
        bail!("{address}: no such disposable address has been used yet");
    }
    Ok(())
}

pub async fn traps(config: &Config, store: &Store, out: &mut dyn Write) -> Result<()> {
    for t in &config.uce.traps {
        writeln!(out, "{t}\t(config)")?;
    }
    for t in store.traps().await? {
        writeln!(out, "{t}")?;
    }
    Ok(())
}

pub fn check_trap(pattern: &str) -> Result<String> {
    let p = pattern.trim().to_lowercase();
    if p.rsplit_once('@')
        .is_none_or(|(l, d)| l.is_empty() || d.is_empty())
        || p.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        bail!("`{pattern}` is not an address or address pattern (user@domain, * for any run)");
    }
    Ok(p)
}

pub async fn penalties(store: &Store, out: &mut dyn Write) -> Result<()> {
    writeln!(out, "{:<40} {:<20} {:>5} REASON", "IP", "UNTIL", "HITS")?;
    for p in store.penalties().await? {
        writeln!(
            out,
            "{:<40} {:<20} {:>5} {}",
            p.ip,
            crate::clock::rfc3339(p.until_us),
            p.hits,
            p.reason
        )?;
    }
    Ok(())
}

pub fn snippet(address: &str, trap: Option<&str>, decoy: &str, out: &mut dyn Write) -> Result<()> {
    writeln!(out, "{}", snippet::obfuscated(address, decoy))?;
    if let Some(t) = trap {
        writeln!(out, "{}", snippet::hidden_trap(t))?;
    }
    Ok(())
}
