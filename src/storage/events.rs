//! Gateway events worth an administrator's eye, kept in SQL so every node's are seen together:
//! switches into and out of queue mode, overdue queued mail.

use anyhow::Result;
use serde::Serialize;
use sqlx::Row;

use super::{Store, with_pool};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GatewayEvent {
    pub time_us: i64,
    pub node: String,
    /// `queue_mode_on`, `queue_mode_off`, `queue_overdue`, `outbound_held`, `mx_retry` (an
    /// admin's retry of outbound mail, which lifts the MX delivery's suspensions on every node).
    pub kind: String,
    pub detail: String,
}

impl Store {
    pub async fn add_event(&self, node: &str, kind: &str, detail: &str) -> Result<()> {
        with_pool!(self, pool => {
            sqlx::query("INSERT INTO gateway_events (time_us, node, kind, detail) VALUES ($1, $2, $3, $4)")
                .bind(crate::clock::now_us())
                .bind(node)
                .bind(kind)
                .bind(detail)
                .execute(pool)
                .await?;
            Ok(())
        })
    }

    /// The time of the newest event of `kind` after `since_us`, if any.
    pub async fn last_event_after(&self, kind: &str, since_us: i64) -> Result<Option<i64>> {
        with_pool!(self, pool => {
            Ok(sqlx::query_scalar("SELECT MAX(time_us) FROM gateway_events WHERE time_us > $1 AND kind = $2")
                .bind(since_us)
                .bind(kind)
                .fetch_one(pool)
                .await?)
        })
    }

    /// How many events of each kind there are.
    pub async fn event_counts(&self) -> Result<Vec<(String, i64)>> {
        with_pool!(self, pool => {
            let rows = sqlx::query("SELECT kind, COUNT(*) AS n FROM gateway_events GROUP BY kind ORDER BY kind").fetch_all(pool).await?;
            rows.iter().map(|r| Ok((r.try_get("kind")?, r.try_get("n")?))).collect()
        })
    }

    /// The newest switch into or out of queue mode, of any node.
    pub async fn latest_queue_mode(&self) -> Result<Option<GatewayEvent>> {
        with_pool!(self, pool => {
            let r = sqlx::query("SELECT time_us, node, kind, detail FROM gateway_events WHERE kind IN ('queue_mode_on', 'queue_mode_off') ORDER BY time_us DESC LIMIT 1").fetch_optional(pool).await?;
            match r {
                Some(r) => Ok(Some(GatewayEvent { time_us: r.try_get("time_us")?, node: r.try_get("node")?, kind: r.try_get("kind")?, detail: r.try_get("detail")? })),
                None => Ok(None),
            }
        })
    }

    /// Drops events older than `before_us`.
    pub async fn prune_events(&self, before_us: i64) -> Result<u64> {
        with_pool!(self, pool => {
            Ok(sqlx::query("DELETE FROM gateway_events WHERE time_us < $1").bind(before_us).execute(pool).await?.rows_affected())
        })
    }

    /// The newest events first.
    pub async fn events(&self, limit: i64) -> Result<Vec<GatewayEvent>> {
        with_pool!(self, pool => {
            let rows = sqlx::query("SELECT time_us, node, kind, detail FROM gateway_events ORDER BY time_us DESC LIMIT $1").bind(limit).fetch_all(pool).await?;
            rows.iter()
                .map(|r| Ok(GatewayEvent { time_us: r.try_get("time_us")?, node: r.try_get("node")?, kind: r.try_get("kind")?, detail: r.try_get("detail")? }))
                .collect()
        })
    }
}
