//! Interception copies waiting for delivery to the agency: the durable local record each copy is
//! made from. A copy is written (with its audit entry, in one transaction) as the event happens,
//! and delivered later by `intercept::worker`, which
//! leases due copies so that several nodes never deliver one twice.

use anyhow::Result;
use serde::Serialize;
use sqlx::Row;

use super::intercept::append_audit;
use super::{Store, with_pool};

/// A copy as the event produced it.
#[derive(Debug, Clone)]
pub struct NewCopy {
    pub id: String,
    pub order_id: String,
    /// When the event happened (microseconds since the epoch).
    pub time_us: i64,
    /// `smtp`, `pop3` or `imap`.
    pub service: String,
    /// `transaction`, `login`, `retrieve` or `append`.
    pub event: String,
    /// The metadata record, JSON.
    pub meta: String,
    /// The message, zstd-compressed, when the event carried one.
    pub content: Option<Vec<u8>>,
    pub content_size: i64,
    /// One line for the audit log.
    pub summary: String,
}

/// A copy in the store.
#[derive(Debug, Clone, Serialize)]
pub struct StoredCopy {
    pub id: String,
    pub order_id: String,
    pub time_us: i64,
    pub service: String,
    pub event: String,
    pub meta: String,
    #[serde(skip)]
    pub content: Option<Vec<u8>>,
    pub content_size: i64,
    /// `pending` or `delivered`.
    pub state: String,
    pub attempts: i64,
    pub next_try_us: i64,
    pub last_error: String,
    pub delivered_us: Option<i64>,
}

const COLUMNS: &str = "id, order_id, time_us, service, event, meta, content, content_size, state, attempts, next_try_us, last_error, delivered_us";
const LISTED: &str = "id, order_id, time_us, service, event, meta, NULL AS content, content_size, state, attempts, next_try_us, last_error, delivered_us";

macro_rules! copy_from {
    ($r:expr) => {
        StoredCopy {
            id: $r.try_get("id")?,
            order_id: $r.try_get("order_id")?,
            time_us: $r.try_get("time_us")?,
            service: $r.try_get("service")?,
            event: $r.try_get("event")?,
            meta: $r.try_get("meta")?,
            content: $r.try_get("content")?,
            content_size: $r.try_get("content_size")?,
            state: $r.try_get("state")?,
            attempts: $r.try_get("attempts")?,
            next_try_us: $r.try_get("next_try_us")?,
            last_error: $r.try_get("last_error")?,
            delivered_us: $r.try_get("delivered_us")?,
        }
    };
}

/// The actor of the audit entries sponts writes itself.
pub const SYSTEM_ACTOR: &str = "sponts";

impl Store {
    /// Records copies, each with its audit entry, in one transaction. A copy whose order did not
    /// take effect at the event's time — ended a moment ago on another node — is dropped here.
    /// Returns how many were recorded. Committed like the journal and the backup (a crash of
    /// sponts loses nothing; see docs/storage.md for SQLite's `synchronous = NORMAL`).
    pub async fn record_copies(&self, copies: &[NewCopy]) -> Result<usize> {
        with_pool!(self, pool => {
            let mut tx = super::BeginWrite::begin_write(pool).await?;
            let mut recorded = 0;
            for c in copies {
                let order = sqlx::query("SELECT from_us, until_us, ended_us FROM intercept_orders WHERE id = $1").bind(&c.order_id).fetch_optional(&mut *tx).await?;
                let Some(order) = order else { continue };
                let (from_us, until_us, ended_us): (i64, i64, Option<i64>) = (order.try_get("from_us")?, order.try_get("until_us")?, order.try_get("ended_us")?);
                if !(from_us <= c.time_us && c.time_us < until_us && ended_us.is_none_or(|e| c.time_us < e)) {
                    continue;
                }
                // A copy another node recorded under the same id is there already.
                let inserted = sqlx::query(sqlx::AssertSqlSafe(format!("INSERT INTO intercept_copies ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'pending', 0, $9, '', NULL) ON CONFLICT (id) DO NOTHING")))
                    .bind(&c.id).bind(&c.order_id).bind(c.time_us).bind(&c.service).bind(&c.event).bind(&c.meta).bind(&c.content).bind(c.content_size).bind(c.time_us)
                    .execute(&mut *tx).await?;
                if inserted.rows_affected() == 0 {
                    continue;
                }
                append_audit!(self, tx, SYSTEM_ACTOR, "copy.record", &format!("copy {} for order {}: {}", c.id, c.order_id, c.summary));
                recorded += 1;
            }
            tx.commit().await?;
            Ok(recorded)
        })
    }

    /// Leases up to `limit` copies that are due, oldest first, for `lease_us`.
    pub async fn lease_copies(
        &self,
        now_us: i64,
        lease_us: i64,
        limit: i64,
    ) -> Result<Vec<StoredCopy>> {
        let lock = if matches!(self, Store::Postgres(_)) {
            " FOR UPDATE SKIP LOCKED"
        } else {
            ""
        };
        let sql = format!(
            "UPDATE intercept_copies SET next_try_us = $1 WHERE id IN \
             (SELECT id FROM intercept_copies WHERE state = 'pending' AND next_try_us <= $2 ORDER BY time_us, id LIMIT $3{lock}) RETURNING {COLUMNS}"
        );
        with_pool!(self, pool => {
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(now_us + lease_us).bind(now_us).bind(limit).fetch_all(pool).await?;
            let mut copies = rows.iter().map(|r| Ok(copy_from!(r))).collect::<Result<Vec<_>>>()?;
            copies.sort_by(|a, b| (a.time_us, &a.id).cmp(&(b.time_us, &b.id)));
            Ok(copies)
        })
    }

    /// The agency has the copy: its content is dropped, the metadata stays, the audit log says
    /// where it went. `lease` is the copy's `next_try_us` as leased: a node whose lease ran out
    /// (another node took the copy over) changes nothing. False then.
    pub async fn copy_delivered(
        &self,
        id: &str,
        lease: i64,
        now_us: i64,
        detail: &str,
    ) -> Result<bool> {
        with_pool!(self, pool => {
            let mut tx = super::BeginWrite::begin_write(pool).await?;
            let r = sqlx::query("UPDATE intercept_copies SET state = 'delivered', delivered_us = $1, content = NULL, attempts = attempts + 1, last_error = '' WHERE id = $2 AND state = 'pending' AND next_try_us = $3")
                .bind(now_us).bind(id).bind(lease).execute(&mut *tx).await?;
            if r.rows_affected() == 0 {
                return Ok(false);
            }
            append_audit!(self, tx, SYSTEM_ACTOR, "copy.deliver", &format!("copy {id} {detail}"));
            tx.commit().await?;
            Ok(true)
        })
    }

    /// A delivery attempt failed: the copy waits until `next_try_us` (unless the lease was lost).
    pub async fn copy_failed(
        &self,
        id: &str,
        lease: i64,
        next_try_us: i64,
        error: &str,
    ) -> Result<()> {
        with_pool!(self, pool => {
            sqlx::query("UPDATE intercept_copies SET attempts = attempts + 1, next_try_us = $1, last_error = $2 WHERE id = $3 AND state = 'pending' AND next_try_us = $4")
                .bind(next_try_us).bind(error).bind(id).bind(lease).execute(pool).await?;
            Ok(())
        })
    }

    /// Copies without their content, newest first; of one order, or of all.
    /// The transaction ids of an order's SMTP copies of events from `since_us` on.
    pub async fn smtp_copy_sessions(
        &self,
        order_id: &str,
        since_us: i64,
    ) -> Result<std::collections::HashSet<String>> {
        with_pool!(self, pool => {
            let metas: Vec<String> = sqlx::query_scalar("SELECT meta FROM intercept_copies WHERE order_id = $1 AND service = 'smtp' AND time_us >= $2")
                .bind(order_id).bind(since_us).fetch_all(pool).await?;
            Ok(metas
                .iter()
                .filter_map(|m| Some(serde_json::from_str::<serde_json::Value>(m).ok()?.get("session")?.as_str()?.to_string()))
                .collect())
        })
    }

    pub async fn copies(&self, order_id: Option<&str>, limit: i64) -> Result<Vec<StoredCopy>> {
        let filter = if order_id.is_some() {
            "WHERE order_id = $2"
        } else {
            "WHERE $2 = ''"
        };
        let sql = format!(
            "SELECT {LISTED} FROM intercept_copies {filter} ORDER BY time_us DESC, id DESC LIMIT $1"
        );
        with_pool!(self, pool => {
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(limit).bind(order_id.unwrap_or("")).fetch_all(pool).await?;
            rows.iter().map(|r| Ok(copy_from!(r))).collect()
        })
    }
}
