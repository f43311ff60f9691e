//! `sponts dkim keygen|rotate|list`: a domain's DKIM keys — make one and print the TXT record to
//! publish, start a rotation, show selectors, algorithms, states and records. Private keys are
//! never printed.

use anyhow::Result;
use std::io::Write;

use crate::dkim::{Algorithm, manage, record};
use crate::storage::{DkimKeyInfo, DkimKeyState, Store};

fn zone_line(key: &DkimKeyInfo) -> Result<String> {
    Ok(record::zone_line(
        &key.selector,
        &key.domain,
        Algorithm::parse(&key.algorithm)?,
        &key.public_key,
    ))
}

/// Prints the record on one line (to stdout, for scripts), and what happens next (to stderr).
fn announce(key: &DkimKeyInfo, out: &mut dyn Write, err: &mut dyn Write) -> Result<()> {
    writeln!(out, "{}", zone_line(key)?)?;
    match key.state {
        DkimKeyState::Active => writeln!(
            err,
            "{} signs with {} from now on: publish the record above.",
            key.domain, key.selector
        )?,
        _ => writeln!(
            err,
            "{} is pending: publish the record above; sponts signs with it once it sees the record in DNS{}.",
            key.selector,
            key.replaces
                .as_ref()
                .map(|o| format!(", and retires {o} after dkim.overlap"))
                .unwrap_or_default()
        )?,
    }
    Ok(())
}

pub async fn keygen(
    store: &Store,
    domain: &str,
    selector: Option<&str>,
    algorithm: &str,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<()> {
    let key = manage::keygen(store, domain, selector, Algorithm::parse(algorithm)?).await?;
    announce(&key, out, err)
}

pub async fn rotate(
    store: &Store,
    domain: &str,
    from: Option<&str>,
    selector: Option<&str>,
    algorithm: Option<&str>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<()> {
    let algorithm = algorithm.map(Algorithm::parse).transpose()?;
    let key = manage::rotate(store, domain, from, selector, algorithm).await?;
    announce(&key, out, err)
}

pub async fn list(
    store: &Store,
    domain: Option<&str>,
    json: bool,
    out: &mut dyn Write,
) -> Result<()> {
    let keys = store
        .dkim_keys(
            domain
                .map(|d| d.trim_end_matches('.').to_ascii_lowercase())
                .as_deref(),
        )
        .await?;
    if json {
        for k in &keys {
            let mut v = serde_json::to_value(k)?;
            v["record"] = zone_line(k)?.into();
            writeln!(out, "{v}")?;
        }
        return Ok(());
    }
    let time = |t: Option<i64>| t.map(crate::clock::rfc3339).unwrap_or_else(|| "-".into());
    writeln!(
        out,
        "{:<30} {:<20} {:<8} {:<9} {:<20} {:<20} RETIRES",
        "DOMAIN", "SELECTOR", "ALG", "STATE", "CREATED", "ACTIVE SINCE"
    )?;
    for k in &keys {
        let retires = match (k.state, k.retire_after_us, k.retired_us) {
            (DkimKeyState::Retired, _, at) => time(at),
            (_, until, _) => time(until),
        };
        writeln!(
            out,
            "{:<30} {:<20} {:<8} {:<9} {:<20} {:<20} {}",
            k.domain,
            k.selector,
            k.algorithm,
            k.state.as_str(),
            time(Some(k.created_us)),
            time(k.activated_us),
            retires
        )?;
        writeln!(out, "  {}", zone_line(k)?)?;
    }
    Ok(())
}
