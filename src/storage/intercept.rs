//! Lawful interception's records: the orders, and the audit log of every action on them, each
//! entry carrying the hash of the one before (a chain: a changed, removed or inserted entry
//! breaks it, and `sponts audit verify` finds where).

use anyhow::Result;
use serde::Serialize;
use sqlx::Row;

use super::{BeginWrite, Store, with_pool};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Order {
    pub id: String,
    /// The authority's reference.
    pub reference: String,
    /// The target's mail address (lowercase).
    pub target: String,
    /// Optionally, the target's login name at the backend (POP3/IMAP).
    pub login: Option<String>,
    pub from_us: i64,
    pub until_us: i64,
    /// `smtp://HOST:PORT` or `dir:PATH`.
    pub deliver: String,
    /// The agency's address for `smtp://` delivery.
    pub deliver_to: Option<String>,
    pub notes: String,
    pub created_by: String,
    pub created_us: i64,
    /// Set when the order was ended before its time.
    pub ended_us: Option<i64>,
}

impl Order {
    /// Does the order take effect at `t`?
    pub fn active_at(&self, t: i64) -> bool {
        self.from_us <= t && t < self.until_us && self.ended_us.is_none_or(|e| t < e)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    pub seq: i64,
    pub time_us: i64,
    pub actor: String,
    pub action: String,
    pub detail: String,
    pub prev_hash: String,
    pub hash: String,
}

/// The hash of the chain's start, before the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// An entry's hash: SHA-256 over the previous hash and the entry's fields, each on its own line
/// (fields with a line break are written escaped, so no two entries hash the same input).
pub fn entry_hash(
    prev_hash: &str,
    seq: i64,
    time_us: i64,
    actor: &str,
    action: &str,
    detail: &str,
) -> String {
    let esc = |s: &str| s.replace('\\', "\\\\").replace('\n', "\\n");
    let input = format!(
        "{prev_hash}\n{seq}\n{time_us}\n{}\n{}\n{}",
        esc(actor),
        esc(action),
        esc(detail)
    );
    crate::auth::sha256_hex(input.as_bytes())
}

fn order_from(r: &impl OrderRow) -> Result<Order> {
    r.order()
}

trait OrderRow {
    fn order(&self) -> Result<Order>;
}

macro_rules! impl_order_row {
    ($row:ty) => {
        impl OrderRow for $row {
            fn order(&self) -> Result<Order> {
                Ok(Order {
                    id: self.try_get("id")?,
                    reference: self.try_get("reference")?,
                    target: self.try_get("target")?,
                    login: self.try_get("login")?,
                    from_us: self.try_get("from_us")?,
                    until_us: self.try_get("until_us")?,
                    deliver: self.try_get("deliver")?,
                    deliver_to: self.try_get("deliver_to")?,
                    notes: self.try_get("notes")?,
                    created_by: self.try_get("created_by")?,
                    created_us: self.try_get("created_us")?,
                    ended_us: self.try_get("ended_us")?,
                })
            }
        }
    };
}
impl_order_row!(sqlx::sqlite::SqliteRow);
impl_order_row!(sqlx::postgres::PgRow);

const ORDER_COLUMNS: &str = "id, reference, target, login, from_us, until_us, deliver, deliver_to, notes, created_by, created_us, ended_us";

/// Appends to the audit log inside the write transaction `$tx`, chained to the last entry.
/// Serialized: the write lock on SQLite, an advisory lock on PostgreSQL.
macro_rules! append_audit {
    ($store:expr, $tx:ident, $actor:expr, $action:expr, $detail:expr) => {{
        let (actor, action, detail): (&str, &str, &str) = ($actor, $action, $detail);
        let time_us = crate::clock::now_us();
        if let Store::Postgres(_) = $store {
            sqlx::query("SELECT pg_advisory_xact_lock(7418524)").execute(&mut *$tx).await?;
        }
        let last = sqlx::query("SELECT seq, hash FROM intercept_audit ORDER BY seq DESC LIMIT 1").fetch_optional(&mut *$tx).await?;
        let (seq, prev_hash) = match last {
            Some(r) => (r.try_get::<i64, _>("seq")? + 1, r.try_get::<String, _>("hash")?),
            None => (1, $crate::storage::intercept::GENESIS.to_string()),
        };
        let hash = $crate::storage::intercept::entry_hash(&prev_hash, seq, time_us, actor, action, detail);
        sqlx::query("INSERT INTO intercept_audit (seq, time_us, actor, action, detail, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7)")
            .bind(seq).bind(time_us).bind(actor).bind(action).bind(detail).bind(&prev_hash).bind(&hash)
            .execute(&mut *$tx).await?;
        $crate::storage::intercept::AuditEntry { seq, time_us, actor: actor.into(), action: action.into(), detail: detail.into(), prev_hash, hash }
    }};
}
pub(crate) use append_audit;

impl Store {
    /// Appends to the audit log, chained to the last entry. Serialized: the write lock on
    /// SQLite, an advisory lock on PostgreSQL.
    pub async fn audit(&self, actor: &str, action: &str, detail: &str) -> Result<AuditEntry> {
        with_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let entry = append_audit!(self, tx, actor, action, detail);
            tx.commit().await?;
            Ok(entry)
        })
    }

    /// The audit log in order.
    pub async fn audit_log(&self) -> Result<Vec<AuditEntry>> {
        with_pool!(self, pool => {
            let rows = sqlx::query("SELECT seq, time_us, actor, action, detail, prev_hash, hash FROM intercept_audit ORDER BY seq").fetch_all(pool).await?;
            rows.iter()
                .map(|r| Ok(AuditEntry { seq: r.try_get("seq")?, time_us: r.try_get("time_us")?, actor: r.try_get("actor")?, action: r.try_get("action")?, detail: r.try_get("detail")?, prev_hash: r.try_get("prev_hash")?, hash: r.try_get("hash")? }))
                .collect()
        })
    }

    pub async fn add_order(&self, o: &Order) -> Result<()> {
        with_pool!(self, pool => {
            sqlx::query(sqlx::AssertSqlSafe(format!("INSERT INTO intercept_orders ({ORDER_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)")))
                .bind(&o.id).bind(&o.reference).bind(o.target.to_lowercase()).bind(&o.login).bind(o.from_us).bind(o.until_us)
                .bind(&o.deliver).bind(&o.deliver_to).bind(&o.notes).bind(&o.created_by).bind(o.created_us).bind(o.ended_us)
                .execute(pool).await?;
            Ok(())
        })
    }

    /// Every order, newest first.
    pub async fn orders(&self) -> Result<Vec<Order>> {
        with_pool!(self, pool => {
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {ORDER_COLUMNS} FROM intercept_orders ORDER BY created_us DESC, id DESC"))).fetch_all(pool).await?;
            rows.iter().map(order_from).collect()
        })
    }

    pub async fn order(&self, id: &str) -> Result<Option<Order>> {
        with_pool!(self, pool => {
            let row = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {ORDER_COLUMNS} FROM intercept_orders WHERE id = $1"))).bind(id).fetch_optional(pool).await?;
            row.as_ref().map(order_from).transpose()
        })
    }

    /// Orders that take effect now or later (not ended, not expired).
    pub async fn live_orders(&self, now_us: i64) -> Result<Vec<Order>> {
        with_pool!(self, pool => {
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {ORDER_COLUMNS} FROM intercept_orders WHERE ended_us IS NULL AND until_us > $1"))).bind(now_us).fetch_all(pool).await?;
            rows.iter().map(order_from).collect()
        })
    }

    /// Adds an order and its audit entry in one transaction.
    pub async fn add_order_audited(&self, o: &Order, actor: &str, detail: &str) -> Result<()> {
        with_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            append_audit!(self, tx, actor, "order.add", detail);
            sqlx::query(sqlx::AssertSqlSafe(format!("INSERT INTO intercept_orders ({ORDER_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)")))
                .bind(&o.id).bind(&o.reference).bind(o.target.to_lowercase()).bind(&o.login).bind(o.from_us).bind(o.until_us)
                .bind(&o.deliver).bind(&o.deliver_to).bind(&o.notes).bind(&o.created_by).bind(o.created_us).bind(o.ended_us)
                .execute(&mut *tx).await?;
            tx.commit().await?;
            Ok(())
        })
    }

    /// Changes a running order (`SET` clause on `$1`) and writes its audit entry, in one
    /// transaction; false (nothing written) when there is no running order `id`.
    async fn change_order(
        &self,
        id: &str,
        set: &'static str,
        value: i64,
        actor: &str,
        action: &str,
        detail: &str,
    ) -> Result<bool> {
        with_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let r = sqlx::query(sqlx::AssertSqlSafe(format!("UPDATE intercept_orders SET {set} WHERE id = $2 AND ended_us IS NULL"))).bind(value).bind(id).execute(&mut *tx).await?;
            if r.rows_affected() != 1 {
                return Ok(false);
            }
            append_audit!(self, tx, actor, action, detail);
            tx.commit().await?;
            Ok(true)
        })
    }

    /// Ends a running order at `now_us`, audited.
    pub async fn end_order_audited(&self, id: &str, now_us: i64, actor: &str) -> Result<bool> {
        self.change_order(
            id,
            "ended_us = $1",
            now_us,
            actor,
            "order.end",
            &format!("id={id} at={}", crate::clock::rfc3339(now_us)),
        )
        .await
    }

    /// Moves a running order's end, audited.
    pub async fn set_order_until_audited(
        &self,
        id: &str,
        until_us: i64,
        actor: &str,
        detail: &str,
    ) -> Result<bool> {
        self.change_order(id, "until_us = $1", until_us, actor, "order.until", detail)
            .await
    }
}

/// Checks the chain: every entry's hash over its fields and the previous hash, numbers without
/// gaps. `Err((seq, why))` names the first broken entry.
pub fn verify(entries: &[AuditEntry]) -> std::result::Result<usize, (i64, String)> {
    let mut prev = GENESIS.to_string();
    for (i, e) in entries.iter().enumerate() {
        let expected_seq = i as i64 + 1;
        if e.seq != expected_seq {
            return Err((
                expected_seq,
                format!("entry {expected_seq} is missing (found {} next)", e.seq),
            ));
        }
        if e.prev_hash != prev {
            return Err((e.seq, "its link to the entry before does not match (an entry before it was changed or removed)".into()));
        }
        if entry_hash(
            &e.prev_hash,
            e.seq,
            e.time_us,
            &e.actor,
            &e.action,
            &e.detail,
        ) != e.hash
        {
            return Err((
                e.seq,
                "its content does not match its hash (it was changed)".into(),
            ));
        }
        prev = e.hash.clone();
    }
    Ok(entries.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: i64) -> Vec<AuditEntry> {
        let mut prev = GENESIS.to_string();
        (1..=n)
            .map(|seq| {
                let hash = entry_hash(
                    &prev,
                    seq,
                    seq * 10,
                    "cli:root",
                    "order.add",
                    &format!("order {seq}"),
                );
                let e = AuditEntry {
                    seq,
                    time_us: seq * 10,
                    actor: "cli:root".into(),
                    action: "order.add".into(),
                    detail: format!("order {seq}"),
                    prev_hash: prev.clone(),
                    hash: hash.clone(),
                };
                prev = hash;
                e
            })
            .collect()
    }

    #[test]
    fn a_chain_verifies_and_any_change_breaks_it() {
        assert_eq!(verify(&chain(5)), Ok(5));
        let mut changed = chain(5);
        changed[2].detail = "order 3, edited".into();
        assert_eq!(verify(&changed).unwrap_err().0, 3);
        let mut removed = chain(5);
        removed.remove(1);
        assert_eq!(verify(&removed).unwrap_err().0, 2);
        let mut rehashed = chain(5);
        rehashed[1].detail = "forged".into();
        rehashed[1].hash = entry_hash(
            &rehashed[1].prev_hash,
            2,
            20,
            "cli:root",
            "order.add",
            "forged",
        );
        assert_eq!(
            verify(&rehashed).unwrap_err().0,
            3,
            "re-hashing one entry breaks the next link"
        );
        assert_ne!(
            entry_hash(GENESIS, 1, 1, "a\nb", "c", "d"),
            entry_hash(GENESIS, 1, 1, "a", "b\nc", "d"),
            "fields cannot shift"
        );
    }
}
