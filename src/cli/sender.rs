//! `sponts sender`: the sender allow and block lists — list them, put a sender on a list
//! (`allow`, `block`) for an address or a whole domain (`--owner @domain`), or take it off.

use anyhow::{Result, bail};
use std::io::Write;

use crate::config::Config;
use crate::modules::uce::senders::{check_owner, check_pattern};
use crate::storage::{SenderVerdict, Store};

/// Every entry, or one owner's (`user@domain` or `@domain`).
pub async fn list(
    config: &Config,
    store: &Store,
    owner: Option<&str>,
    json: bool,
    out: &mut dyn Write,
) -> Result<()> {
    let owners = owner
        .map(|o| check_owner(o, &config.domains.local))
        .transpose()?
        .map(|o| vec![o]);
    let entries = store.sender_entries(owners.as_deref()).await?;
    if json {
        for e in &entries {
            writeln!(out, "{}", serde_json::to_string(e)?)?;
        }
        return Ok(());
    }
    writeln!(
        out,
        "{:<30} {:<40} {:<6} {:<20} BY",
        "OWNER", "SENDER", "LIST", "ADDED"
    )?;
    for e in &entries {
        writeln!(
            out,
            "{:<30} {:<40} {:<6} {:<20} {}",
            e.owner,
            e.pattern,
            e.verdict.as_str(),
            crate::clock::rfc3339(e.created_us),
            e.created_by
        )?;
    }
    Ok(())
}

pub async fn set(
    config: &Config,
    store: &Store,
    owner: &str,
    pattern: &str,
    verdict: SenderVerdict,
) -> Result<()> {
    store
        .set_sender_entry(
            &check_owner(owner, &config.domains.local)?,
            &check_pattern(pattern)?,
            verdict,
            "cli",
        )
        .await?;
    Ok(())
}

pub async fn delete(config: &Config, store: &Store, owner: &str, pattern: &str) -> Result<()> {
    let (owner, pattern) = (
        check_owner(owner, &config.domains.local)?,
        check_pattern(pattern)?,
    );
    if !store.delete_sender_entry(&owner, &pattern).await? {
        bail!("{owner}'s list has no entry {pattern}");
    }
    Ok(())
}
