//! `sponts intercept add|list|end` and `sponts audit list|verify`: lawful interception orders
//! and their audit log, for the interception role on the machine. Every action, reading
//! included, is written to the hash-chained audit log first.

use anyhow::{bail, Context, Result};
use std::io::Write;

use crate::storage::intercept::{self, Order};
use crate::storage::Store;

pub struct NewOrder {
    pub reference: String,
    pub target: String,
    pub login: Option<String>,
    pub from: Option<String>,
    pub until: String,
    pub deliver: String,
    pub deliver_to: Option<String>,
    pub notes: String,
}

/// Who acts: the user on the machine (behind sudo, the one who ran it).
pub fn actor() -> String {
    let who = std::env::var("SUDO_USER").or_else(|_| std::env::var("USER")).unwrap_or_else(|_| "unknown".into());
    format!("cli:{who}")
}

/// `2026-12-01` (00:00 UTC) or `2026-12-01T12:30:00Z`.
pub fn parse_time(s: &str) -> Option<i64> {
    let s = s.trim();
    let (date, time) = match s.split_once('T') {
        Some((d, t)) => (d, Some(t.strip_suffix('Z')?)),
        None => (s, None),
    };
    let day = crate::clock::parse_date(date)?;
    let Some(time) = time else { return Some(day) };
    let mut parts = time.split(':');
    let (h, m, sec): (i64, i64, i64) = (parts.next()?.parse().ok()?, parts.next()?.parse().ok()?, parts.next().unwrap_or("0").parse().ok()?);
    if parts.next().is_some() || !(0..24).contains(&h) || !(0..60).contains(&m) || !(0..60).contains(&sec) {
        return None;
    }
    Some(day + ((h * 60 + m) * 60 + sec) * 1_000_000)
}

fn check_deliver(deliver: &str, deliver_to: Option<&str>) -> Result<()> {
    if let Some(hp) = deliver.strip_prefix("smtp://") {
        if crate::net::parse_host_port(hp).is_none() {
            bail!("--deliver: `{deliver}` is not smtp://HOST:PORT");
        }
        let Some(to) = deliver_to else { bail!("--deliver-to ADDR is needed with smtp://") };
        if !matches!(crate::smtp::address::parse_path(to, crate::smtp::address::Side::Recipient), Ok(Some(_))) {
            bail!("--deliver-to: `{to}` is not a mail address");
        }
        return Ok(());
    }
    match deliver.strip_prefix("dir:") {
        Some(path) if path.starts_with('/') => Ok(()),
        _ => bail!("--deliver: `{deliver}` is neither smtp://HOST:PORT nor dir:/ABSOLUTE/PATH"),
    }
}

pub async fn add(store: &Store, o: NewOrder, out: &mut dyn Write) -> Result<()> {
    let now = crate::clock::now_us();
    if !matches!(crate::smtp::address::parse_path(&o.target, crate::smtp::address::Side::Recipient), Ok(Some(_))) {
        bail!("--target: `{}` is not a mail address", o.target);
    }
    let from_us = match &o.from {
        Some(f) => parse_time(f).with_context(|| format!("--from: `{f}` is not a time (2026-12-01 or 2026-12-01T12:00:00Z)"))?,
        None => now,
    };
    let until_us = parse_time(&o.until).with_context(|| format!("--until: `{}` is not a time (2026-12-31 or 2026-12-31T23:59:59Z)", o.until))?;
    if until_us <= from_us || until_us <= now {
        bail!("--until: must be after --from and in the future");
    }
    check_deliver(&o.deliver, o.deliver_to.as_deref())?;
    let order = Order {
        id: crate::id::new_transaction_id(),
        reference: o.reference.trim().to_string(),
        target: o.target.to_lowercase(),
        login: o.login,
        from_us,
        until_us,
        deliver: o.deliver,
        deliver_to: o.deliver_to,
        notes: o.notes,
        created_by: actor(),
        created_us: now,
        ended_us: None,
    };
    if order.reference.is_empty() {
        bail!("--reference: the authority's reference is needed");
    }
    // The attempt is logged first; a failure after it is logged too.
    store.audit(&order.created_by, "order.add", &describe(&order)).await?;
    if let Err(e) = store.add_order(&order).await {
        store.audit(&order.created_by, "order.add.failed", &format!("id={} {e:#}", order.id)).await?;
        return Err(e);
    }
    writeln!(out, "order {} added: {}", order.id, describe(&order))?;
    Ok(())
}

fn describe(o: &Order) -> String {
    format!(
        "id={} reference={:?} target={} login={} from={} until={} deliver={} deliver_to={} notes={:?}",
        o.id,
        o.reference,
        o.target,
        o.login.as_deref().unwrap_or("-"),
        crate::clock::rfc3339(o.from_us),
        crate::clock::rfc3339(o.until_us),
        o.deliver,
        o.deliver_to.as_deref().unwrap_or("-"),
        o.notes
    )
}

pub async fn list(store: &Store, json: bool, out: &mut dyn Write) -> Result<()> {
    store.audit(&actor(), "order.list", "").await?;
    let now = crate::clock::now_us();
    for o in store.orders().await? {
        if json {
            writeln!(out, "{}", serde_json::to_string(&o)?)?;
        } else {
            let state = if o.active_at(now) { "active" } else if o.ended_us.is_some() { "ended" } else if now < o.from_us { "pending" } else { "expired" };
            writeln!(out, "{}  {state:<8} {}  {} .. {}  {}  ref {}", o.id, o.target, crate::clock::rfc3339(o.from_us), crate::clock::rfc3339(o.ended_us.unwrap_or(o.until_us).min(o.until_us)), o.deliver, o.reference)?;
        }
    }
    Ok(())
}

pub async fn end(store: &Store, id: &str, out: &mut dyn Write) -> Result<bool> {
    let now = crate::clock::now_us();
    if !store.end_order(id, now).await? {
        writeln!(out, "no running order {id}")?;
        return Ok(false);
    }
    store.audit(&actor(), "order.end", &format!("id={id}")).await?;
    writeln!(out, "order {id} ended at {}", crate::clock::rfc3339(now))?;
    Ok(true)
}

pub async fn audit_list(store: &Store, json: bool, out: &mut dyn Write) -> Result<()> {
    store.audit(&actor(), "audit.list", "").await?;
    for e in store.audit_log().await? {
        if json {
            writeln!(out, "{}", serde_json::to_string(&e)?)?;
        } else {
            writeln!(out, "{:>6}  {}  {:<16} {:<14} {}", e.seq, crate::clock::rfc3339(e.time_us), e.actor, e.action, e.detail)?;
        }
    }
    Ok(())
}

/// Exit status: true when the chain is whole.
pub async fn audit_verify(store: &Store, out: &mut dyn Write) -> Result<bool> {
    let entries = store.audit_log().await?;
    match intercept::verify(&entries) {
        Ok(n) => {
            writeln!(out, "audit log intact: {n} entries, last hash {}", entries.last().map_or(intercept::GENESIS, |e| e.hash.as_str()))?;
            store.audit(&actor(), "audit.verify", &format!("intact, {n} entries")).await?;
            Ok(true)
        }
        Err((seq, why)) => {
            writeln!(out, "audit log broken at entry {seq}: {why}")?;
            Ok(false)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        let day = crate::clock::parse_date("2026-12-01").unwrap();
        assert_eq!(parse_time("2026-12-01"), Some(day));
        assert_eq!(parse_time("2026-12-01T12:30:05Z"), Some(day + (12 * 3600 + 30 * 60 + 5) * 1_000_000));
        assert_eq!(parse_time("2026-12-01T25:00:00Z"), None);
        assert_eq!(parse_time("2026-12-01T12:00:00+02:00"), None, "UTC only");
        assert!(check_deliver("smtp://agency.example:25", Some("li@agency.example")).is_ok());
        assert!(check_deliver("smtp://agency.example:25", None).is_err());
        assert!(check_deliver("dir:relative", None).is_err());
        assert!(check_deliver("dir:/var/lib/sponts-li", None).is_ok());
    }
}
