//! `sponts intercept add|list|end` and `sponts audit list|verify`: lawful interception orders
//! and their audit log, for the interception role on the machine. Every action, reading
//! included, is written to the hash-chained audit log first.

use anyhow::Result;
use std::io::Write;

use crate::intercept::orders;
pub use crate::intercept::orders::NewOrder;
use crate::storage::Store;
use crate::storage::intercept;

/// Who acts: the account on the machine that ran this (behind sudo, the one who ran it).
pub fn actor() -> String {
    super::invoker::actor()
}

pub async fn add(store: &Store, o: NewOrder, out: &mut dyn Write) -> Result<()> {
    let order = orders::build(o, &actor(), crate::clock::now_us())?;
    orders::add(store, &order).await?;
    writeln!(
        out,
        "order {} added: {}",
        order.id,
        orders::describe(&order)
    )?;
    Ok(())
}

pub async fn list(store: &Store, json: bool, out: &mut dyn Write) -> Result<()> {
    store.audit(&actor(), "order.list", "").await?;
    let now = crate::clock::now_us();
    for o in store.orders().await? {
        if json {
            writeln!(out, "{}", serde_json::to_string(&o)?)?;
        } else {
            let state = orders::state(&o, now);
            writeln!(
                out,
                "{}  {state:<8} {}  {} .. {}  {}  ref {}",
                o.id,
                o.target,
                crate::clock::rfc3339(o.from_us),
                crate::clock::rfc3339(o.ended_us.unwrap_or(o.until_us).min(o.until_us)),
                o.deliver,
                o.reference
            )?;
        }
    }
    Ok(())
}

pub async fn end(store: &Store, id: &str, out: &mut dyn Write) -> Result<bool> {
    let now = crate::clock::now_us();
    if !orders::end(store, id, &actor(), now).await? {
        writeln!(out, "no running order {id}")?;
        return Ok(false);
    }
    writeln!(out, "order {id} ended at {}", crate::clock::rfc3339(now))?;
    Ok(true)
}

pub async fn until(store: &Store, id: &str, until: &str, out: &mut dyn Write) -> Result<bool> {
    if !orders::set_until(store, id, until, &actor(), crate::clock::now_us()).await? {
        writeln!(out, "no running order {id}")?;
        return Ok(false);
    }
    writeln!(out, "order {id} now ends at {until}")?;
    Ok(true)
}

pub async fn copies(
    store: &Store,
    id: Option<&str>,
    json: bool,
    out: &mut dyn Write,
) -> Result<()> {
    store
        .audit(
            &actor(),
            "copies.list",
            &id.map(|i| format!("id={i}")).unwrap_or_default(),
        )
        .await?;
    for c in store.copies(id, 10_000).await? {
        if json {
            writeln!(out, "{}", serde_json::to_string(&c)?)?;
        } else {
            let state = match c.delivered_us {
                Some(t) => format!("delivered {}", crate::clock::rfc3339(t)),
                None => format!(
                    "pending, {} tries, next {}: {}",
                    c.attempts,
                    crate::clock::rfc3339(c.next_try_us),
                    c.last_error
                ),
            };
            writeln!(
                out,
                "{}  order {}  {}  {} {}  {} bytes  {state}",
                c.id,
                c.order_id,
                crate::clock::rfc3339(c.time_us),
                c.service,
                c.event,
                c.content_size
            )?;
        }
    }
    Ok(())
}

pub async fn audit_list(store: &Store, json: bool, out: &mut dyn Write) -> Result<()> {
    store.audit(&actor(), "audit.list", "").await?;
    for e in store.audit_log().await? {
        if json {
            writeln!(out, "{}", serde_json::to_string(&e)?)?;
        } else {
            writeln!(
                out,
                "{:>6}  {}  {:<16} {:<14} {}",
                e.seq,
                crate::clock::rfc3339(e.time_us),
                e.actor,
                e.action,
                e.detail
            )?;
        }
    }
    Ok(())
}

/// Exit status: true when the chain is whole.
pub async fn audit_verify(store: &Store, out: &mut dyn Write) -> Result<bool> {
    let entries = store.audit_log().await?;
    match intercept::verify(&entries) {
        Ok(n) => {
            writeln!(
                out,
                "audit log intact: {n} entries, last hash {}",
                entries
                    .last()
                    .map_or(intercept::GENESIS, |e| e.hash.as_str())
            )?;
            store
                .audit(&actor(), "audit.verify", &format!("intact, {n} entries"))
                .await?;
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
        assert_eq!(orders::parse_time("2026-12-01"), Some(day));
        assert_eq!(
            orders::parse_time("2026-12-01T12:30:05Z"),
            Some(day + (12 * 3600 + 30 * 60 + 5) * 1_000_000)
        );
        assert_eq!(orders::parse_time("2026-12-01T25:00:00Z"), None);
        assert_eq!(
            orders::parse_time("2026-12-01T12:00:00+02:00"),
            None,
            "UTC only"
        );
        assert!(
            orders::check_deliver("smtp://agency.example:25", Some("li@agency.example")).is_ok()
        );
        assert!(orders::check_deliver("smtp://agency.example:25", None).is_err());
        assert!(orders::check_deliver("dir:relative", None).is_err());
        assert!(orders::check_deliver("dir:/var/lib/sponts-li", None).is_ok());
    }
}
