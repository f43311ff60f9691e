//! Pre-aggregated figures: one row per hour, metric and key (`class`/`spam`, `ip`/`192.0.2.7`,
//! `bytes_in`/``), added to in the same database transaction that writes the journal records
//! (one writer, one commit). Reports over any range read hours, not journal records, so a month
//! over ten million records is a few thousand rows.
//!
//! Besides the journal's figures, the report job adds this node's live figures each minute
//! (connections, peak concurrent sessions, queue length, scanner calls and latency buckets), and
//! compacts the top lists of finished hours and days to their leading keys.
//!
//! Classes: `clean`, `tagged`, `spam`, `virus` (also blocked attachments), `discarded` (traps,
//! quarantine), `tempfailed`, `refused` (other refusals), `abandoned`. For spam, viruses and
//! discarded mail the client IP, sender domain, HELO name and reason feed the top lists.

use anyhow::Result;
use sqlx::Row;
use std::collections::BTreeMap;

use super::journal::JournalEntry;
use super::sqlite_writer::{Op, Value};
use super::{BeginWrite, Store, with_pool};

/// One increment: hour (start, µs), metric, key, amount.
pub type StatDelta = (i64, String, String, i64);

const ROWS: usize = 200;
pub const HOUR_US: i64 = 3_600_000_000;
pub const DAY_US: i64 = 24 * HOUR_US;
/// The top-list metrics: keys are `value\treason`.
pub const TOP_METRICS: [&str; 3] = ["spam_ip", "spam_sender_domain", "spam_helo"];
/// Every metric but the top lists: what the Report's series and totals read.
pub const SERIES_METRICS: [&str; 14] = [
    "class",
    "decided_by",
    "spam_reason",
    "messages_in",
    "bytes_in",
    "messages_out",
    "bytes_out",
    "queued",
    "connections",
    "connections_refused",
    "sessions_peak",
    "queue_length",
    "scanner_calls",
    "scanner_le",
];
/// What the keys beyond a compacted top list are summed into.
/// (A control character first: no IP, domain or HELO name can be this key.)
pub const OTHERS: &str = "\u{1}(others)\t";

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
        let mut add = |metric: &str, key: &str, value: i64| {
            d.push((hour, metric.to_string(), key.to_string(), value))
        };
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
        if e.outcome == "queued" && !e.outbound {
            add("queued", "", 1);
        }
        // Outbound mail is load out once accepted into the queue (its delivery is not counted again).
        if let (true, "queued", Some(size)) = (e.outbound, e.outcome.as_str(), e.size) {
            add("messages_out", "", 1);
            add("bytes_out", "", size);
        }
        if matches!(class, "spam" | "virus" | "discarded") {
            // Each top-list key carries its reason (after a tab), for the reason mix per entry.
            let reason = format!("{class} by {}", e.decided_by);
            let domain = e
                .sender
                .rsplit_once('@')
                .map_or("<>", |(_, d)| d)
                .to_ascii_lowercase();
            let helo: String = e
                .helo
                .chars()
                .take(100)
                .filter(|c| *c != '\t')
                .collect::<String>()
                .to_ascii_lowercase();
            add("spam_ip", &format!("{}\t{reason}", e.client_ip), 1);
            add("spam_sender_domain", &format!("{domain}\t{reason}"), 1);
            add("spam_helo", &format!("{helo}\t{reason}"), 1);
            add("spam_reason", &reason, 1);
        }
    }
    d
}

/// This process's totals of the traffic figures it committed (classes, messages and bytes in
/// and out), for Prometheus counters; the hourly rows are the durable, all-node figures.
static COMMITTED: std::sync::Mutex<BTreeMap<(String, String), i64>> =
    std::sync::Mutex::new(BTreeMap::new());

/// The metrics counted in [`committed_totals`].
const COUNTED: [&str; 5] = [
    "class",
    "messages_in",
    "bytes_in",
    "messages_out",
    "bytes_out",
];

/// Adds increments that have just been committed to this process's totals.
pub(super) fn note_committed(deltas: &[StatDelta]) {
    let mut totals = COMMITTED.lock().expect("totals lock");
    for (_, metric, key, value) in deltas.iter().filter(|d| COUNTED.contains(&d.1.as_str())) {
        *totals.entry((metric.clone(), key.clone())).or_default() += value;
    }
}

/// This process's committed totals: (metric, key) → sum since start.
pub fn committed_totals() -> BTreeMap<(String, String), i64> {
    COMMITTED.lock().expect("totals lock").clone()
}

/// Sums increments per row: one upsert per (hour, metric, key).
fn summed(deltas: &[StatDelta]) -> Vec<((i64, &str, &str), i64)> {
    let mut sum: BTreeMap<(i64, &str, &str), i64> = BTreeMap::new();
    for (h, m, k, v) in deltas {
        *sum.entry((*h, m.as_str(), k.as_str())).or_default() += v;
    }
    sum.into_iter().collect()
}

/// On a row that exists: add (sums), or keep the larger (peaks).
const ADD: &str = "stats.value + excluded.value";
const KEEP_LARGER: &str =
    "CASE WHEN excluded.value > stats.value THEN excluded.value ELSE stats.value END";

/// Adds increments inside the caller's transaction (the journal's batch).
pub(super) async fn add_in<'c, DB: sqlx::Database>(
    tx: &mut sqlx::Transaction<'c, DB>,
    deltas: &[StatDelta],
) -> Result<()>
where
    for<'e> &'e mut DB::Connection: sqlx::Executor<'e, Database = DB>,
    for<'q> &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> <DB as sqlx::Database>::Arguments: sqlx::IntoArguments<DB>,
{
    upsert_in(tx, &summed(deltas), ADD).await
}

/// Adds increments as steps of a SQLite writer's piece (the journal's).
pub(super) fn add_ops(deltas: &[StatDelta]) -> Vec<Op> {
    summed(deltas)
        .chunks(ROWS)
        .map(|chunk| {
            let mut args = Vec::with_capacity(chunk.len() * 4);
            for ((h, m, k), v) in chunk {
                args.extend([Value::Int(*h), (*m).into(), (*k).into(), Value::Int(*v)]);
            }
            Op::execute(upsert_sql(chunk.len(), ADD), args)
        })
        .collect()
}

/// One upsert of `rows` rows, merging into existing ones with `merge`.
fn upsert_sql(rows: usize, merge: &str) -> String {
    let values = (0..rows)
        .map(|i| {
            format!(
                "(${}, ${}, ${}, ${})",
                i * 4 + 1,
                i * 4 + 2,
                i * 4 + 3,
                i * 4 + 4
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "INSERT INTO stats (hour_us, metric, key, value) VALUES {values} ON CONFLICT (hour_us, metric, key) DO UPDATE SET value = {merge}"
    )
}

/// Writes rows, many per statement, merging into existing ones with `merge`.
async fn upsert_in<'c, DB: sqlx::Database>(
    tx: &mut sqlx::Transaction<'c, DB>,
    rows: &[((i64, &str, &str), i64)],
    merge: &str,
) -> Result<()>
where
    for<'e> &'e mut DB::Connection: sqlx::Executor<'e, Database = DB>,
    for<'q> &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> <DB as sqlx::Database>::Arguments: sqlx::IntoArguments<DB>,
{
    for chunk in rows.chunks(ROWS) {
        let sql = upsert_sql(chunk.len(), merge);
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for ((h, m, k), v) in chunk {
            q = q.bind(*h).bind(*m).bind(*k).bind(*v);
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

impl Store {
    /// A node's live figures: `sums` are added, `peaks` kept as the hour's maximum.
    pub async fn add_live_stats(&self, sums: &[StatDelta], peaks: &[StatDelta]) -> Result<()> {
        with_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            add_in(&mut tx, sums).await?;
            let peaks: Vec<((i64, &str, &str), i64)> = peaks.iter().map(|(h, m, k, v)| ((*h, m.as_str(), k.as_str()), *v)).collect();
            upsert_in(&mut tx, &peaks, KEEP_LARGER).await?;
            tx.commit().await?;
            Ok(())
        })
    }

    /// The series metrics of `[since_us, until_us)`, per hour, or per day with `by_day`:
    /// (hour or day, metric, key, sum, maximum). The maximum is for the peaks.
    pub async fn stats_rows(
        &self,
        since_us: i64,
        until_us: i64,
        by_day: bool,
    ) -> Result<Vec<(i64, String, String, i64, i64)>> {
        let metrics = SERIES_METRICS
            .iter()
            .map(|m| format!("'{m}'"))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = if by_day {
            format!(
                "SELECT hour_us - hour_us % {DAY_US} AS t, metric, key, CAST(SUM(value) AS BIGINT) AS total, MAX(value) AS peak FROM stats WHERE metric IN ({metrics}) AND hour_us >= $1 AND hour_us < $2 GROUP BY t, metric, key"
            )
        } else {
            format!(
                "SELECT hour_us AS t, metric, key, value AS total, value AS peak FROM stats WHERE metric IN ({metrics}) AND hour_us >= $1 AND hour_us < $2"
            )
        };
        with_pool!(self, pool => {
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(since_us).bind(until_us).fetch_all(pool).await?;
            rows.iter().map(|r| Ok((r.try_get("t")?, r.try_get("metric")?, r.try_get("key")?, r.try_get("total")?, r.try_get("peak")?))).collect()
        })
    }

    /// One top list's keys (`value\treason`) summed over `[since_us, until_us)`.
    pub async fn stats_top(
        &self,
        metric: &str,
        since_us: i64,
        until_us: i64,
    ) -> Result<Vec<(String, i64)>> {
        with_pool!(self, pool => {
            let rows = sqlx::query("SELECT key, CAST(SUM(value) AS BIGINT) AS total FROM stats WHERE metric = $1 AND hour_us >= $2 AND hour_us < $3 GROUP BY key")
                .bind(metric).bind(since_us).bind(until_us).fetch_all(pool).await?;
            rows.iter().map(|r| Ok((r.try_get("key")?, r.try_get("total")?))).collect()
        })
    }

    /// Folds the top-list rows of `[from_us, to_us)` into rows at `from_us`, keeping the `keep`
    /// leading keys of each list and summing the rest into [`OTHERS`]. Idempotent; several nodes
    /// may run it (serialized by the write lock on SQLite, an advisory lock on PostgreSQL).
    pub async fn compact_top_lists(&self, from_us: i64, to_us: i64, keep: usize) -> Result<()> {
        with_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            if let Store::Postgres(_) = self {
                sqlx::query("SELECT pg_advisory_xact_lock(7418523)").execute(&mut *tx).await?;
            }
            // In the key order the journal's upserts take their locks.
            let mut metrics = TOP_METRICS;
            metrics.sort_unstable();
            for metric in metrics {
                // What is deleted is exactly what is summed (no increment slips in between).
                let rows = sqlx::query("DELETE FROM stats WHERE metric = $1 AND hour_us >= $2 AND hour_us < $3 RETURNING key, value")
                    .bind(metric).bind(from_us).bind(to_us).fetch_all(&mut *tx).await?;
                if rows.is_empty() {
                    continue;
                }
                let mut sums: BTreeMap<String, i64> = BTreeMap::new();
                for r in &rows {
                    *sums.entry(r.try_get("key")?).or_default() += r.try_get::<i64, _>("value")?;
                }
                let mut totals: Vec<(String, i64)> = sums.into_iter().collect();
                totals.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
                let mut others: i64 = 0;
                let mut kept: Vec<StatDelta> = Vec::new();
                for (key, total) in totals {
                    if kept.len() < keep && key != OTHERS {
                        kept.push((from_us, metric.to_string(), key, total));
                    } else {
                        others += total;
                    }
                }
                if others > 0 {
                    kept.push((from_us, metric.to_string(), OTHERS.to_string(), others));
                }
                add_in(&mut tx, &kept).await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    /// Was the report of this period mailed (or is it being mailed)?
    pub async fn report_mailed(&self, period: &str) -> Result<bool> {
        with_pool!(self, pool => {
            Ok(sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM report_mail WHERE period = $1").bind(period).fetch_one(pool).await? > 0)
        })
    }

    /// Claims a period's report mail; false when another node (or an earlier run) has it.
    pub async fn claim_report_mail(&self, period: &str, now_us: i64) -> Result<bool> {
        with_pool!(self, pool => {
            let r = sqlx::query("INSERT INTO report_mail (period, sent_us) VALUES ($1, $2) ON CONFLICT (period) DO NOTHING").bind(period).bind(now_us).execute(pool).await?;
            Ok(r.rows_affected() == 1)
        })
    }

    /// Gives a claim back after a failed delivery.
    pub async fn release_report_mail(&self, period: &str) -> Result<()> {
        with_pool!(self, pool => {
            sqlx::query("DELETE FROM report_mail WHERE period = $1").bind(period).execute(pool).await?;
            Ok(())
        })
    }

    /// Adds the increments in a transaction of their own.
    pub async fn add_stats(&self, deltas: &[StatDelta]) -> Result<()> {
        with_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            add_in(&mut tx, deltas).await?;
            tx.commit().await?;
            Ok(())
        })
    }
}
