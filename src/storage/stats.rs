//! Pre-aggregated figures: one row per hour, metric and key (`class`/`spam`, `ip`/`192.0.2.7`,
//! `bytes_in`/``), added to in the same database transaction that writes the journal records
//! (one writer, one commit). Reports over any range read hours, not journal records, so a month
//! over ten million records is a few thousand rows.
//!
//! Classes: `clean`, `tagged`, `spam`, `virus` (also blocked attachments), `discarded` (traps,
//! quarantine), `tempfailed`, `refused` (other refusals), `abandoned`. For spam, viruses and
//! discarded mail the client IP, sender domain, HELO name and reason feed the top lists.

use anyhow::Result;
use sqlx::Row;
use std::collections::BTreeMap;

use super::journal::JournalEntry;
use super::{with_pool, Store};

/// One increment: hour (start, µs), metric, key, amount.
pub type StatDelta = (i64, String, String, i64);

const ROWS: usize = 200;
const HOUR_US: i64 = 3_600_000_000;

/// What became of a transaction, for the rates.
pub fn class(e: &JournalEntry) -> &'static str {
    match (e.outcome.as_str(), e.flag.as_deref()) {
        ("tempfailed", _) => "tempfailed",
        (_, Some("virus" | "blocked")) => "virus",
        ("discarded", _) => "discarded",
        (_, Some("spam")) => "spam",
        ("delivered" | "queued", Some("suspect")) => "tagged",
        ("delivered" | "queued", _) => "clean",
        ("refused", _) => "refused",
        _ => "abandoned",
    }
}

/// The increments of some journal records (replays are not traffic: left out).
pub fn deltas(entries: &[JournalEntry]) -> Vec<StatDelta> {
    let mut d: Vec<StatDelta> = Vec::new();
    for e in entries.iter().filter(|e| e.replay_of.is_none()) {
        let hour = e.time_us - e.time_us.rem_euclid(HOUR_US);
        let mut add = |metric: &str, key: &str, value: i64| d.push((hour, metric.to_string(), key.to_string(), value));
        let class = class(e);
        add("class", class, 1);
        add("decided_by", &e.decided_by, 1);
        if let Some(size) = e.size {
            add("messages_in", "", 1);
            add("bytes_in", "", size);
            if e.outcome == "delivered" {
                add("messages_out", "", 1);
                add("bytes_out", "", size);
            }
        }
        if e.outcome == "queued" {
            add("queued", "", 1);
        }
        if matches!(class, "spam" | "virus" | "discarded") {
            let domain = e.sender.rsplit_once('@').map_or("<>", |(_, d)| d).to_ascii_lowercase();
            add("spam_ip", &e.client_ip, 1);
            add("spam_sender_domain", &domain, 1);
            add("spam_helo", &e.helo.chars().take(100).collect::<String>().to_ascii_lowercase(), 1);
            add("spam_reason", &format!("{class} by {}", e.decided_by), 1);
        }
    }
    d
}

/// Sums increments per row: one upsert per (hour, metric, key).
fn summed(deltas: &[StatDelta]) -> Vec<((i64, &str, &str), i64)> {
    let mut sum: BTreeMap<(i64, &str, &str), i64> = BTreeMap::new();
    for (h, m, k, v) in deltas {
        *sum.entry((*h, m.as_str(), k.as_str())).or_default() += v;
    }
    sum.into_iter().collect()
}

/// Adds increments inside the caller's transaction (the journal's batch).
pub(super) async fn add_in<'c, DB: sqlx::Database>(tx: &mut sqlx::Transaction<'c, DB>, deltas: &[StatDelta]) -> Result<()>
where
    for<'e> &'e mut DB::Connection: sqlx::Executor<'e, Database = DB>,
    for<'q> &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> <DB as sqlx::Database>::Arguments: sqlx::IntoArguments<DB>,
{
    let rows = summed(deltas);
    for chunk in rows.chunks(ROWS) {
        let values = (0..chunk.len()).map(|i| format!("(${}, ${}, ${}, ${})", i * 4 + 1, i * 4 + 2, i * 4 + 3, i * 4 + 4)).collect::<Vec<_>>().join(", ");
        let sql = format!("INSERT INTO stats (hour_us, metric, key, value) VALUES {values} ON CONFLICT (hour_us, metric, key) DO UPDATE SET value = stats.value + excluded.value");
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for ((h, m, k), v) in chunk {
            q = q.bind(*h).bind(*m).bind(*k).bind(*v);
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

impl Store {
    /// Adds the increments in a transaction of their own.
    pub async fn add_stats(&self, deltas: &[StatDelta]) -> Result<()> {
        with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            add_in(&mut tx, deltas).await?;
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
