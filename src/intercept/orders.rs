//! Orders: made from what an officer entered (CLI or web, with the same checks and the same
//! error texts), changed and ended — each action written to the audit log before it takes effect.

use anyhow::{Context, Result, bail};

use crate::storage::Store;
use crate::storage::intercept::Order;

/// An order as entered.
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
    let (h, m, sec): (i64, i64, i64) = (
        parts.next()?.parse().ok()?,
        parts.next()?.parse().ok()?,
        parts.next().unwrap_or("0").parse().ok()?,
    );
    if parts.next().is_some()
        || !(0..24).contains(&h)
        || !(0..60).contains(&m)
        || !(0..60).contains(&sec)
    {
        return None;
    }
    Some(day + ((h * 60 + m) * 60 + sec) * 1_000_000)
}

pub fn check_deliver(deliver: &str, deliver_to: Option<&str>) -> Result<()> {
    if let Some(hp) = deliver.strip_prefix("smtp://") {
        if crate::net::parse_host_port(hp).is_none() {
            bail!("--deliver: `{deliver}` is not smtp://HOST:PORT");
        }
        let Some(to) = deliver_to else {
            bail!("--deliver-to ADDR is needed with smtp://")
        };
        if !matches!(
            crate::smtp::address::parse_path(to, crate::smtp::address::Side::Recipient),
            Ok(Some(_))
        ) {
            bail!("--deliver-to: `{to}` is not a mail address");
        }
        return Ok(());
    }
    match deliver.strip_prefix("dir:") {
        Some(path) if path.starts_with('/') => Ok(()),
        _ => bail!("--deliver: `{deliver}` is neither smtp://HOST:PORT nor dir:/ABSOLUTE/PATH"),
    }
}

/// Checks an order as entered and makes it, by `actor`, at `now`.
pub fn build(o: NewOrder, actor: &str, now: i64) -> Result<Order> {
    if !matches!(
        crate::smtp::address::parse_path(o.target.trim(), crate::smtp::address::Side::Recipient),
        Ok(Some(_))
    ) {
        bail!("--target: `{}` is not a mail address", o.target);
    }
    let from_us = match o.from.as_deref().map(str::trim).filter(|f| !f.is_empty()) {
        Some(f) => parse_time(f).with_context(|| {
            format!("--from: `{f}` is not a time (2026-12-01 or 2026-12-01T12:00:00Z)")
        })?,
        None => now,
    };
    let until_us = parse_time(&o.until).with_context(|| {
        format!(
            "--until: `{}` is not a time (2026-12-31 or 2026-12-31T23:59:59Z)",
            o.until
        )
    })?;
    if until_us <= from_us || until_us <= now {
        bail!("--until: must be after --from and in the future");
    }
    let deliver_to = o
        .deliver_to
        .map(|d| d.trim().to_string())
        .filter(|d| !d.is_empty());
    check_deliver(o.deliver.trim(), deliver_to.as_deref())?;
    let order = Order {
        id: crate::id::new_transaction_id(),
        reference: o.reference.trim().to_string(),
        target: o.target.trim().to_lowercase(),
        login: o
            .login
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty()),
        from_us,
        until_us,
        deliver: o.deliver.trim().to_string(),
        deliver_to,
        notes: o.notes,
        created_by: actor.to_string(),
        created_us: now,
        ended_us: None,
    };
    if order.reference.is_empty() {
        bail!("--reference: the authority's reference is needed");
    }
    Ok(order)
}

/// Stores a new order with its audit entry (one transaction: both or neither).
pub async fn add(store: &Store, order: &Order) -> Result<()> {
    store
        .add_order_audited(order, &order.created_by, &describe(order))
        .await
}

/// Ends an order now; false when there is no running order `id`.
pub async fn end(store: &Store, id: &str, actor: &str, now: i64) -> Result<bool> {
    store.end_order_audited(id, now, actor).await
}

/// Moves a running order's end (to a time still to come); false when there is no running order `id`.
pub async fn set_until(
    store: &Store,
    id: &str,
    until: &str,
    actor: &str,
    now: i64,
) -> Result<bool> {
    let until_us = parse_time(until).with_context(|| {
        format!("--until: `{until}` is not a time (2026-12-31 or 2026-12-31T23:59:59Z)")
    })?;
    let Some(order) = store.order(id).await? else {
        return Ok(false);
    };
    if until_us <= now || until_us <= order.from_us {
        bail!("--until: must be after the order's start and in the future");
    }
    let detail = format!(
        "id={id} until={} (was {})",
        crate::clock::rfc3339(until_us),
        crate::clock::rfc3339(order.until_us)
    );
    store
        .set_order_until_audited(id, until_us, actor, &detail)
        .await
}

/// `active`, `pending` (starts later), `ended` (early) or `expired`.
pub fn state(o: &Order, now: i64) -> &'static str {
    if o.active_at(now) {
        "active"
    } else if o.ended_us.is_some() {
        "ended"
    } else if now < o.from_us {
        "pending"
    } else {
        "expired"
    }
}

pub fn describe(o: &Order) -> String {
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
