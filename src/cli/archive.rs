//! `sponts archive seal|verify|roots|purge|hold|stats`: the archive's tamper evidence,
//! retention and legal holds from the command line (docs/operations.md, "Archive").

use anyhow::{Context, Result};
use std::io::Write;

use crate::archive::{hold, retention, roots, seal, stats, verify};
use crate::config::Config;
use crate::storage::Store;

fn day(d: Option<&str>) -> Result<Option<String>> {
    d.map(|d| {
        crate::clock::parse_date(d)
            .map(|_| d.trim().to_string())
            .with_context(|| format!("--since {d}: a day as YYYY-MM-DD"))
    })
    .transpose()
}

/// Seals the finished days (and with `now`, today so far).
pub async fn seal(store: &Store, now: bool, out: &mut dyn Write) -> Result<()> {
    let until = if now {
        crate::clock::now_us()
    } else {
        crate::clock::now_us() - seal::GRACE_US
    };
    let added = seal::seal_until(store, until, now).await?;
    for s in &added {
        writeln!(
            out,
            "sealed {} #{}: {} message{}, root {}",
            s.day,
            s.seq,
            s.count,
            if s.count == 1 { "" } else { "s" },
            s.root
        )?;
    }
    if added.is_empty() {
        writeln!(out, "nothing to seal")?;
    }
    Ok(())
}

/// Verifies; true when intact.
pub async fn verify(
    store: &Store,
    since: Option<&str>,
    roots_file: Option<&std::path::Path>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<bool> {
    let since = day(since)?;
    let kept = match roots_file {
        Some(p) => Some(roots::parse(
            &std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?,
        )?),
        None => None,
    };
    let v = verify::verify(store, since.as_deref(), kept.as_deref()).await?;
    match &v.broken {
        None => {
            writeln!(
                out,
                "archive intact: {} seals, {} sealed messages checked, {} removed by signed purges, {} not sealed yet",
                v.seals, v.messages, v.purged, v.unsealed
            )?;
            Ok(true)
        }
        Some(b) => {
            writeln!(err, "archive BROKEN: {b}")?;
            Ok(false)
        }
    }
}

pub async fn roots(store: &Store, since: Option<&str>, out: &mut dyn Write) -> Result<()> {
    let since = day(since)?;
    for line in roots::roots(store, since.as_deref()).await? {
        writeln!(out, "{}", serde_json::to_string(&line)?)?;
    }
    Ok(())
}

/// One purge pass now.
pub async fn purge(config: &Config, store: &Store, out: &mut dyn Write) -> Result<()> {
    let p = retention::purge(store, config, crate::clock::now_us()).await?;
    writeln!(
        out,
        "purged {} message{} ({} bytes stored)",
        p.messages,
        if p.messages == 1 { "" } else { "s" },
        p.bytes
    )?;
    Ok(())
}

/// `kind` is `user`, `address` or `search`.
pub async fn hold_add(
    store: &Store,
    kind: &str,
    target: &str,
    reason: &str,
    out: &mut dyn Write,
) -> Result<()> {
    let id = hold::add(store, kind, target, reason, &super::invoker::actor()).await?;
    writeln!(out, "hold #{id} set on {kind} {target}")?;
    Ok(())
}

pub async fn hold_release(store: &Store, id: i64, reason: &str, out: &mut dyn Write) -> Result<()> {
    hold::release(store, id, reason, &super::invoker::actor()).await?;
    writeln!(out, "hold #{id} released")?;
    Ok(())
}

pub async fn hold_list(
    store: &Store,
    all: bool,
    audit: bool,
    json: bool,
    out: &mut dyn Write,
) -> Result<()> {
    if audit {
        for a in store.hold_audit().await? {
            if json {
                writeln!(out, "{}", serde_json::to_string(&a)?)?;
            } else {
                writeln!(
                    out,
                    "{}  #{}  {:<8}  by {}  {}",
                    crate::clock::rfc3339(a.time_us),
                    a.hold_id,
                    a.action,
                    a.actor,
                    a.reason
                )?;
            }
        }
        return Ok(());
    }
    for h in store.holds(all).await? {
        if json {
            writeln!(out, "{}", serde_json::to_string(&h)?)?;
        } else {
            let state = h.released_us.map_or_else(
                || "in force".to_string(),
                |t| format!("released {}", crate::clock::rfc3339(t)),
            );
            writeln!(
                out,
                "#{}  {} {}  set {} by {}  {}  reason: {}",
                h.id,
                h.kind,
                h.target,
                crate::clock::rfc3339(h.set_us),
                h.set_by,
                state,
                h.reason
            )?;
        }
    }
    Ok(())
}

pub async fn stats(config: &Config, store: &Store, json: bool, out: &mut dyn Write) -> Result<()> {
    let s = stats::stats(store, config, crate::clock::now_us()).await?;
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(&s)?)?;
        return Ok(());
    }
    let mib = |b: i64| b as f64 / 1_048_576.0;
    writeln!(out, "messages kept   {}", s.messages)?;
    writeln!(out, "bytes received  {} ({:.1} MiB)", s.bytes, mib(s.bytes))?;
    writeln!(
        out,
        "bytes stored    {} ({:.1} MiB)",
        s.stored_bytes,
        mib(s.stored_bytes)
    )?;
    for (class, c) in &s.per_class {
        writeln!(
            out,
            "  {class:<6} {:>9} messages {:>12} bytes stored",
            c.messages, c.stored_bytes
        )?;
    }
    writeln!(
        out,
        "growth per day  {} bytes stored (mean of the last 30 days)",
        s.growth_per_day
    )?;
    writeln!(
        out,
        "projected       {} bytes ({:.1} MiB) at {} days of retention",
        s.projected_bytes,
        mib(s.projected_bytes),
        s.retention_days
    )?;
    for d in s.per_day.iter().filter(|d| d.messages > 0) {
        writeln!(
            out,
            "  {}  {:>7} messages {:>12} bytes stored",
            d.day, d.messages, d.stored_bytes
        )?;
    }
    Ok(())
}
