//! The durable queue: messages accepted while the backend was down, with their pending
//! recipients, attempt count, next attempt and last reply. Rows are leased for delivery (on
//! PostgreSQL with `FOR UPDATE SKIP LOCKED`), so several nodes sharing the database deliver each
//! message once, and a lease that runs out (a node died mid-delivery) makes the row due again.

use anyhow::Result;
use serde::Serialize;
use sqlx::Row;

use super::outbound::{NewQueued, Route, domain_of};
use super::sqlite_writer::{self, Op, Value};
use super::{BeginWrite, Store, with_pool};

/// A queued message as the queue runner and the CLI see it.
#[derive(Debug, Clone, Serialize)]
pub struct Queued {
    pub id: String,
    pub time_us: i64,
    pub sender: String,
    pub size: i64,
    pub attempts: i32,
    pub next_attempt_us: i64,
    pub last_reply: String,
    /// Recipients not yet delivered (or bounced).
    pub pending: Vec<String>,
    /// Those of them routed to their MX (outbound mail; MX delivery handles them, not the runner).
    pub pending_mx: Vec<String>,
    /// Sent by our own clients.
    pub outbound: bool,
    /// Why it is held (empty: not held).
    pub held: String,
}

impl Store {
    /// Queues a message in one transaction; returns once it is on disk (the 250 depends on it).
    /// On SQLite the messages of concurrent sessions are committed together (group commit): one
    /// writer takes whatever has queued up, writes it in one transaction and waits for that one
    /// fsync of the WAL; each caller returns only after the commit that holds its message.
    pub async fn enqueue(
        &self,
        id: &str,
        time_us: i64,
        sender: &str,
        size: i64,
        compressed: &[u8],
        rcpts: &[String],
    ) -> Result<()> {
        let rcpts: Vec<(String, Route)> =
            rcpts.iter().map(|r| (r.clone(), Route::Backend)).collect();
        self.enqueue_routed(&NewQueued {
            id,
            time_us,
            sender,
            size,
            compressed,
            rcpts: &rcpts,
            outbound: false,
            held: "",
        })
        .await
    }

    /// Queues a message with a route per recipient, like `enqueue` (the same group commit on
    /// SQLite): on disk (fsync) before it returns.
    pub async fn enqueue_routed(&self, m: &NewQueued<'_>) -> Result<()> {
        if let Store::Sqlite(pool) = self {
            return sqlite_writer::of(pool)
                .run(queued_ops(m), true)
                .await
                .map(drop);
        }
        with_pool!(self, pool => {
            let mut conn = pool.acquire().await?;
            let mut tx = sqlx::Connection::begin(&mut *conn).await?;
            insert_queued(&mut tx, m).await?;
            tx.commit().await?;
            Ok(())
        })
    }

    /// Leases up to `limit` due messages, oldest arrival first, for `lease_us`: those not held
    /// with a recipient for the backend (MX recipients are leased on their own, `lease_mx`), or
    /// with none pending at all (to be finished).
    pub async fn lease_due(
        &self,
        node: &str,
        now_us: i64,
        lease_us: i64,
        limit: i64,
    ) -> Result<Vec<String>> {
        let lock = if matches!(self, Store::Postgres(_)) {
            " FOR UPDATE SKIP LOCKED"
        } else {
            ""
        };
        // `(r.route || '')`: SQLite would otherwise look a message's recipients up by the
        // (route, done) index — every pending recipient of the queue for each message —
        // instead of by the message's id.
        let sql = format!(
            "UPDATE queue SET lease_until_us = $1, leased_by = $2 WHERE id IN \
             (SELECT id FROM queue WHERE next_attempt_us <= $3 AND lease_until_us < $3 AND time_us < $3 - 2000000 AND held = '' \
             AND (EXISTS (SELECT 1 FROM queue_rcpt r WHERE r.queue_id = queue.id AND r.done = $5 AND (r.route || '') = 'backend') \
                  OR NOT EXISTS (SELECT 1 FROM queue_rcpt r WHERE r.queue_id = queue.id AND r.done = $5)) ORDER BY time_us, id LIMIT $4{lock}) RETURNING id, time_us"
        );
        with_pool!(self, pool => {
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(now_us + lease_us).bind(node).bind(now_us).bind(limit).bind(false).fetch_all(pool).await?;
            let mut v: Vec<(i64, String)> = rows.iter().map(|r| Ok((r.try_get("time_us")?, r.try_get("id")?))).collect::<Result<_, sqlx::Error>>()?;
            v.sort();
            Ok(v.into_iter().map(|(_, id)| id).collect())
        })
    }

    /// Leases one message whatever its next attempt (a hand delivery); false if another holds it.
    pub async fn lease_one(
        &self,
        id: &str,
        node: &str,
        now_us: i64,
        lease_us: i64,
    ) -> Result<bool> {
        with_pool!(self, pool => {
            let r = sqlx::query("UPDATE queue SET lease_until_us = $1, leased_by = $2 WHERE id = $3 AND lease_until_us < $4")
                .bind(now_us + lease_us).bind(node).bind(id).bind(now_us)
                .execute(pool).await?;
            Ok(r.rows_affected() == 1)
        })
    }

    /// The compressed body of a queued message.
    pub async fn queued_body(&self, id: &str) -> Result<Option<Vec<u8>>> {
        with_pool!(self, pool => {
            Ok(sqlx::query_scalar("SELECT body FROM queue WHERE id = $1").bind(id).fetch_optional(pool).await?)
        })
    }

    /// The stored copies of several queued messages in one query (those still queued), for a
    /// delivery round that would otherwise ask once per message. Keep the total small: each
    /// body is held in memory.
    pub async fn queued_bodies(
        &self,
        ids: &[String],
    ) -> Result<std::collections::HashMap<String, Vec<u8>>> {
        if ids.is_empty() {
            return Ok(Default::default());
        }
        let marks: Vec<String> = (1..=ids.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT id, body FROM queue WHERE id IN ({})",
            marks.join(", ")
        );
        with_pool!(self, pool => {
            // Only numbered placeholders are formatted in; the ids are bound.
            let mut q = sqlx::query_as::<_, (String, Vec<u8>)>(sqlx::AssertSqlSafe(sql.clone()));
            for id in ids {
                q = q.bind(id.as_str());
            }
            Ok(q.fetch_all(pool).await?.into_iter().collect())
        })
    }

    /// Records one recipient's final answer (delivered or bounced).
    pub async fn queue_rcpt_done(&self, id: &str, address: &str, reply: &str) -> Result<()> {
        with_pool!(self, pool => {
            sqlx::query("UPDATE queue_rcpt SET done = $1, last_reply = $2 WHERE queue_id = $3 AND address = $4").bind(true).bind(reply).bind(id).bind(address).execute(pool).await?;
            Ok(())
        })
    }

    /// The message is through: it leaves the queue (only by the node that holds its lease), its
    /// journal entry takes the outcome and, when delivered, the Report's load out counts it in
    /// this hour — in one transaction, so the three never disagree.
    pub async fn dequeue(
        &self,
        id: &str,
        node: &str,
        outcome: &str,
        final_reply: &str,
    ) -> Result<()> {
        with_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let row: Option<(i64, String)> = sqlx::query_as("DELETE FROM queue WHERE id = $1 AND leased_by = $2 RETURNING size, direction").bind(id).bind(node).fetch_optional(&mut *tx).await?;
            let mut out = Vec::new();
            if let Some((size, direction)) = row {
                let journaled = sqlx::query("UPDATE journal SET outcome = $1, final_reply = $2 WHERE id = $3").bind(outcome).bind(final_reply).bind(id).execute(&mut *tx).await?;
                // sponts' own bounces (DSNs) have no journal record and are not the clients' load.
                // Outbound mail counted as load out when it was accepted.
                if outcome == "delivered" && journaled.rows_affected() == 1 && direction != "out" {
                    let now = crate::clock::now_us();
                    let hour = now - now.rem_euclid(super::stats::HOUR_US);
                    out = vec![(hour, "messages_out".to_string(), String::new(), 1), (hour, "bytes_out".to_string(), String::new(), size)];
                    super::stats::add_in(&mut tx, &out).await?;
                }
            }
            tx.commit().await?;
            super::stats::note_committed(&out);
            Ok(())
        })
    }

    /// Renews this node's lease right before an attempt; false if the lease was lost (another
    /// node may have taken the message): then it must not be tried.
    pub async fn renew_lease(
        &self,
        id: &str,
        node: &str,
        now_us: i64,
        lease_us: i64,
    ) -> Result<bool> {
        with_pool!(self, pool => {
            let r = sqlx::query("UPDATE queue SET lease_until_us = $1 WHERE id = $2 AND leased_by = $3 AND lease_until_us >= $4")
                .bind(now_us + lease_us).bind(id).bind(node).bind(now_us).execute(pool).await?;
            Ok(r.rows_affected() == 1)
        })
    }

    /// Another attempt later; the lease is given back.
    pub async fn reschedule(
        &self,
        id: &str,
        node: &str,
        next_us: i64,
        reply: &str,
        count_attempt: bool,
    ) -> Result<()> {
        with_pool!(self, pool => {
            sqlx::query("UPDATE queue SET next_attempt_us = $1, last_reply = $2, attempts = attempts + $3, lease_until_us = 0, leased_by = '' WHERE id = $4 AND leased_by = $5")
                .bind(next_us).bind(reply).bind(i32::from(count_attempt)).bind(id).bind(node).execute(pool).await?;
            Ok(())
        })
    }

    /// Did any recipient of this queued message get a 2xx (in any attempt)?
    pub async fn queue_any_delivered(&self, id: &str) -> Result<bool> {
        const SQL: &str = "SELECT COUNT(*) FROM queue_rcpt WHERE queue_id = $1 AND done = $2 AND last_reply LIKE '2%'";
        if let Store::Sqlite(pool) = self {
            let n =
                super::sqlite_reader::query(pool, SQL, &[id.into(), true.into()], |c| c.int(0))?;
            return Ok(n.first().is_some_and(|&n| n > 0));
        }
        with_pool!(self, pool => {
            let n: i64 = sqlx::query_scalar(SQL).bind(id).bind(true).fetch_one(pool).await?;
            Ok(n > 0)
        })
    }

    /// (messages, overdue ones, oldest arrival) without reading the queue.
    pub async fn queue_stats(&self, overdue_before_us: i64) -> Result<(i64, i64, Option<i64>)> {
        with_pool!(self, pool => {
            let r = sqlx::query("SELECT COUNT(*) AS n, COUNT(CASE WHEN time_us < $1 THEN 1 END) AS overdue, MIN(time_us) AS oldest FROM queue").bind(overdue_before_us).fetch_one(pool).await?;
            Ok((r.try_get("n")?, r.try_get("overdue")?, r.try_get("oldest")?))
        })
    }

    /// The ids of messages queued before a time (overdue).
    pub async fn queue_older_than(&self, before_us: i64) -> Result<Vec<String>> {
        with_pool!(self, pool => {
            Ok(sqlx::query_scalar("SELECT id FROM queue WHERE time_us < $1 ORDER BY time_us LIMIT 1000").bind(before_us).fetch_all(pool).await?)
        })
    }

    /// Gives leases back untouched (the backend was unreachable): the messages stay due, first in
    /// line, so arrival order holds when it returns.
    pub async fn release_lease(&self, id: &str, node: &str, reply: &str) -> Result<()> {
        with_pool!(self, pool => {
            sqlx::query("UPDATE queue SET lease_until_us = 0, leased_by = '', last_reply = $1 WHERE id = $2 AND leased_by = $3").bind(reply).bind(id).bind(node).execute(pool).await?;
            Ok(())
        })
    }

    /// Makes every message (or one) due now.
    pub async fn retry_now(&self, id: Option<&str>) -> Result<u64> {
        let now = crate::clock::now_us();
        with_pool!(self, pool => {
            let r = match id {
                Some(id) => sqlx::query("UPDATE queue SET next_attempt_us = $1 WHERE id = $2").bind(now).bind(id).execute(pool).await?,
                None => sqlx::query("UPDATE queue SET next_attempt_us = $1").bind(now).execute(pool).await?,
            };
            Ok(r.rows_affected())
        })
    }

    /// The queue in arrival order (or one message).
    pub async fn queue_list(&self, id: Option<&str>) -> Result<Vec<Queued>> {
        if let (Store::Sqlite(pool), Some(id)) = (self, id) {
            // The runner asks for every message it delivers: on this thread, not through sqlx's.
            return queued_one(pool, id);
        }
        with_pool!(self, pool => {
            let rows = match id {
                Some(id) => sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {QUEUED_COLUMNS} FROM queue WHERE id = $1"))).bind(id).fetch_all(pool).await?,
                None => sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {QUEUED_COLUMNS} FROM queue ORDER BY time_us, id"))).fetch_all(pool).await?,
            };
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                let id: String = r.try_get("id")?;
                let routed: Vec<(String, String)> = sqlx::query_as(PENDING_RCPTS).bind(&id).bind(false).fetch_all(pool).await?;
                let (pending, pending_mx) = split_pending(routed);
                let direction: String = r.try_get("direction")?;
                out.push(Queued {
                    id,
                    time_us: r.try_get("time_us")?,
                    sender: r.try_get("sender")?,
                    size: r.try_get("size")?,
                    attempts: r.try_get("attempts")?,
                    next_attempt_us: r.try_get("next_attempt_us")?,
                    last_reply: r.try_get("last_reply")?,
                    pending,
                    pending_mx,
                    outbound: direction == "out",
                    held: r.try_get("held")?,
                });
            }
            Ok(out)
        })
    }

    /// Did the backend accept mail for this address since `since_us` (outside queue mode)?
    pub async fn backend_knew(&self, address: &str, since_us: i64) -> Result<bool> {
        with_pool!(self, pool => {
            let n: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM (SELECT 1 FROM journal_rcpt r JOIN journal j ON j.id = r.journal_id \
                 WHERE LOWER(r.address) = $1 AND r.accepted = $2 AND j.time_us >= $3 AND j.decided_by <> 'queue' LIMIT 1) AS k",
            )
            .bind(address.to_lowercase())
            .bind(true)
            .bind(since_us)
            .fetch_one(pool)
            .await?;
            Ok(n > 0)
        })
    }
}

const QUEUED_COLUMNS: &str =
    "id, time_us, sender, size, attempts, next_attempt_us, last_reply, direction, held";
const PENDING_RCPTS: &str =
    "SELECT address, route FROM queue_rcpt WHERE queue_id = $1 AND done = $2 ORDER BY address";

/// A message's pending recipients (address, route): all of them, and those routed to their MX.
fn split_pending(routed: Vec<(String, String)>) -> (Vec<String>, Vec<String>) {
    let mx = routed
        .iter()
        .filter(|(_, route)| route == "mx")
        .map(|(a, _)| a.clone())
        .collect();
    (routed.into_iter().map(|(a, _)| a).collect(), mx)
}

/// One queued message with its pending recipients, read on the asking thread (SQLite).
fn queued_one(pool: &sqlx::SqlitePool, id: &str) -> Result<Vec<Queued>> {
    use super::sqlite_reader::query;
    let mut rows = query(
        pool,
        &format!("SELECT {QUEUED_COLUMNS} FROM queue WHERE id = $1"),
        &[id.into()],
        |c| Queued {
            id: c.text(0),
            time_us: c.int(1),
            sender: c.text(2),
            size: c.int(3),
            attempts: c.int(4) as i32,
            next_attempt_us: c.int(5),
            last_reply: c.text(6),
            pending: Vec::new(),
            pending_mx: Vec::new(),
            outbound: c.text(7) == "out",
            held: c.text(8),
        },
    )?;
    for q in &mut rows {
        let routed = query(pool, PENDING_RCPTS, &[id.into(), false.into()], |c| {
            (c.text(0), c.text(1))
        })?;
        (q.pending, q.pending_mx) = split_pending(routed);
    }
    Ok(rows)
}

const INSERT_QUEUE: &str = "INSERT INTO queue (id, time_us, sender, size, body, attempts, next_attempt_us, last_reply, lease_until_us, leased_by, direction, held) VALUES ($1, $2, $3, $4, $5, 0, $6, '', 0, '', $7, $8)";
const INSERT_QUEUE_RCPT: &str = "INSERT INTO queue_rcpt (queue_id, address, done, last_reply, route, domain, next_attempt_us) VALUES ($1, $2, $3, '', $4, $5, $6)";

/// The recipients to deliver to: the same recipient twice in one transaction is one delivery.
fn distinct_rcpts<'a>(m: &'a NewQueued<'_>) -> Vec<&'a (String, Route)> {
    let mut out: Vec<&(String, Route)> = Vec::with_capacity(m.rcpts.len());
    for r in m.rcpts {
        if !out.iter().any(|(seen, _)| seen.eq_ignore_ascii_case(&r.0)) {
            out.push(r);
        }
    }
    out
}

/// The queue rows of one message for SQLite's writer, which commits many sessions' messages
/// with one fsync (group commit; docs/storage.md says what is durable at the 250).
fn queued_ops(m: &NewQueued<'_>) -> Vec<Op> {
    let direction = if m.outbound { "out" } else { "in" };
    let mut ops = vec![Op::execute(
        INSERT_QUEUE,
        vec![
            m.id.into(),
            m.time_us.into(),
            m.sender.into(),
            m.size.into(),
            Value::Blob(m.compressed.to_vec()),
            m.time_us.into(),
            direction.into(),
            m.held.into(),
        ],
    )];
    for (address, route) in distinct_rcpts(m) {
        ops.push(Op::execute(
            INSERT_QUEUE_RCPT,
            vec![
                m.id.into(),
                address.into(),
                false.into(),
                route.as_str().into(),
                domain_of(address).into(),
                m.time_us.into(),
            ],
        ));
    }
    ops
}

/// The queue rows of one message (a route per recipient), inside the given transaction.
async fn insert_queued<DB: sqlx::Database>(
    tx: &mut sqlx::Transaction<'_, DB>,
    m: &NewQueued<'_>,
) -> Result<()>
where
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> &'q [u8]: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> bool: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> <DB as sqlx::Database>::Arguments: sqlx::IntoArguments<DB>,
{
    sqlx::query(INSERT_QUEUE)
        .bind(m.id)
        .bind(m.time_us)
        .bind(m.sender)
        .bind(m.size)
        .bind(m.compressed)
        .bind(m.time_us)
        .bind(if m.outbound { "out" } else { "in" })
        .bind(m.held)
        .execute(&mut **tx)
        .await?;
    for (address, route) in distinct_rcpts(m) {
        sqlx::query(INSERT_QUEUE_RCPT)
            .bind(m.id)
            .bind(address.as_str())
            .bind(false)
            .bind(route.as_str())
            .bind(domain_of(address))
            .bind(m.time_us)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}
