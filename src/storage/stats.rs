//! Pre-aggregated figures: one row per hour, metric and key (`class`/`spam`, `ip`/`192.0.2.7`,
//! `bytes_in`/``), added to as transactions finish. Reports over any range read hours, not
//! journal records, so a month over ten million records is a few thousand rows.

use anyhow::Result;
use sqlx::Row;
use std::collections::BTreeMap;

use super::{with_pool, Store};

/// One increment: hour (start, µs), metric, key, amount.
pub type StatDelta = (i64, String, String, i64);

const ROWS: usize = 200;

impl Store {
    /// Adds the increments, summed per row first (one statement per 200 rows).
    pub async fn add_stats(&self, deltas: &[StatDelta]) -> Result<()> {
        let mut sum: BTreeMap<(i64, &str, &str), i64> = BTreeMap::new();
        for (h, m, k, v) in deltas {
            *sum.entry((*h, m.as_str(), k.as_str())).or_default() += v;
        }
        let rows: Vec<_> = sum.into_iter().collect();
        with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            for chunk in rows.chunks(ROWS) {
                let values = (0..chunk.len()).map(|i| format!("(${}, ${}, ${}, ${})", i * 4 + 1, i * 4 + 2, i * 4 + 3, i * 4 + 4)).collect::<Vec<_>>().join(", ");
                let sql = format!("INSERT INTO stats (hour_us, metric, key, value) VALUES {values} ON CONFLICT (hour_us, metric, key) DO UPDATE SET value = stats.value + excluded.value");
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
                for ((h, m, k), v) in chunk {
                    q = q.bind(*h).bind(*m).bind(*k).bind(*v);
                }
                q.execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    /// Totals per (metric, key) over hours in `[since_us, until_us)`.
    pub async fn stats_totals(&self, since_us: i64, until_us: i64) -> Result<Vec<(String, String, i64)>> {
        with_pool!(self, pool => {
            let rows = sqlx::query("SELECT metric, key, CAST(SUM(value) AS BIGINT) AS total FROM stats WHERE hour_us >= $1 AND hour_us < $2 GROUP BY metric, key ORDER BY metric, total DESC, key")
                .bind(since_us).bind(until_us).fetch_all(pool).await?;
            rows.iter().map(|r| Ok((r.try_get("metric")?, r.try_get("key")?, r.try_get("total")?))).collect()
        })
    }

    /// One metric per hour in `[since_us, until_us)`: (hour, key, value).
    pub async fn stats_hours(&self, metric: &str, since_us: i64, until_us: i64) -> Result<Vec<(i64, String, i64)>> {
        with_pool!(self, pool => {
            let rows = sqlx::query("SELECT hour_us, key, value FROM stats WHERE metric = $1 AND hour_us >= $2 AND hour_us < $3 ORDER BY hour_us, key")
                .bind(metric).bind(since_us).bind(until_us).fetch_all(pool).await?;
            rows.iter().map(|r| Ok((r.try_get("hour_us")?, r.try_get("key")?, r.try_get("value")?))).collect()
        })
    }
}
