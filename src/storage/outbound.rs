//! Outbound mail in the durable queue. A message sent by our own clients is queued whole: each
//! recipient has a route — `backend` (a local domain: the queue runner delivers it to our mail
//! server) or `mx` (elsewhere: MX delivery leases it, per recipient and destination domain).
//! A held message (compromised-account protection) is leased by nobody until released. The
//! message leaves the queue when its last recipient has its final answer, whoever gave it.

use anyhow::Result;
use serde::Serialize;
use sqlx::Row;

use super::sqlite_writer::{self, Op};
use super::{BeginWrite, Store, with_pool};

/// Where a queued recipient goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Route {
    /// Our own mail server (a local domain).
    Backend,
    /// The recipient domain's MX hosts.
    Mx,
}

impl Route {
    pub fn as_str(self) -> &'static str {
        match self {
            Route::Backend => "backend",
            Route::Mx => "mx",
        }
    }
}

/// A message to queue with its routes.
#[derive(Debug, Clone)]
pub struct NewQueued<'a> {
    pub id: &'a str,
    pub time_us: i64,
    pub sender: &'a str,
    /// Size of the uncompressed message.
    pub size: i64,
    pub compressed: &'a [u8],
    pub rcpts: &'a [(String, Route)],
    /// Sent by our own clients (counted as load out at acceptance, not again at delivery).
    pub outbound: bool,
    /// Held from the start for this reason (empty: not held).
    pub held: &'a str,
}

/// One leased MX recipient, with what its delivery needs (the body: `queued_body`).
#[derive(Debug, Clone, Serialize)]
pub struct MxLease {
    pub queue_id: String,
    pub address: String,
    /// Lowercase destination domain.
    pub domain: String,
    pub sender: String,
    /// Arrival of the message (for lifetimes and delay DSNs).
    pub time_us: i64,
    /// Uncompressed size (for `zstd::bulk::decompress`).
    pub size: i64,
    /// Attempts made for this recipient so far.
    pub attempts: i32,
    pub last_reply: String,
}

/// A sender's recent outbound mail, as compromised-account protection weighs it.
#[derive(Debug, Clone, Default)]
pub struct OutboundHour {
    pub messages: usize,
    pub recipients: Vec<String>,
    /// Recipients the far side refused for good (their journal reply is its 5xx).
    pub refused: usize,
}

/// Whose outbound mail is counted: one sender address, or everything an SMTP AUTH account sent
/// (whatever sender it used — a hijacked account may vary it).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum OutboundParty {
    Sender(String),
    Account(String),
}

impl OutboundParty {
    /// The condition on journal `j` for this party's mail, with the key as `$2` and the start of
    /// the window as `$1` — each on an index: a sender's mail through `journal_party`, an
    /// account's through `journal_actor`.
    fn condition(&self) -> &'static str {
        match self {
            OutboundParty::Sender(_) => {
                "j.id IN (SELECT journal_id FROM journal_party WHERE address = $2 AND time_us >= $1) AND LOWER(j.sender) = $2"
            }
            OutboundParty::Account(_) => "LOWER(j.actor) = $2",
        }
    }

    fn key(&self) -> String {
        match self {
            OutboundParty::Sender(a) | OutboundParty::Account(a) => a.to_lowercase(),
        }
    }
}

impl std::fmt::Display for OutboundParty {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OutboundParty::Sender(a) => write!(f, "{a}"),
            OutboundParty::Account(a) => write!(f, "account {a}"),
        }
    }
}

/// The destination domain of an address, lowercase.
pub fn domain_of(address: &str) -> String {
    address
        .rsplit_once('@')
        .map(|(_, d)| d.to_ascii_lowercase())
        .unwrap_or_default()
}

const MX_COLUMNS: &str =
    "r.queue_id, r.address, r.domain, q.sender, q.time_us, q.size, r.attempts, r.last_reply";

impl Store {
    /// Leases up to `limit` due MX recipients of messages that are not held (one domain's
    /// together, oldest message first), for `lease_us`. `domain`: only that destination.
    pub async fn lease_mx(
        &self,
        domain: Option<&str>,
        node: &str,
        now_us: i64,
        lease_us: i64,
        limit: i64,
    ) -> Result<Vec<MxLease>> {
        let lock = if matches!(self, Store::Postgres(_)) {
            " FOR UPDATE OF r SKIP LOCKED"
        } else {
            ""
        };
        let only = if domain.is_some() {
            " AND r.domain = $6"
        } else {
            ""
        };
        // Two seconds of grace, as for the backend runner: the journal record of the accepting
        // session is written right after the queue row.
        let sql = format!(
            "UPDATE queue_rcpt SET lease_until_us = $1, leased_by = $2 WHERE (queue_id, address) IN \
             (SELECT r.queue_id, r.address FROM queue_rcpt r JOIN queue q ON q.id = r.queue_id \
              WHERE r.route = 'mx' AND r.done = $3 AND r.next_attempt_us <= $4 AND r.lease_until_us < $4 \
              AND q.held = '' AND q.time_us < $4 - 2000000{only} ORDER BY r.domain, q.time_us, r.queue_id LIMIT $5{lock})"
        );
        let until = now_us + lease_us;
        if let Store::Sqlite(pool) = self {
            // Looked at four times a second: when nothing is due, a read on this thread answers
            // without taking SQLite's write lock from the writer thread.
            let due = super::sqlite_reader::query(
                pool,
                "SELECT 1 FROM queue_rcpt WHERE route = 'mx' AND done = 0 AND next_attempt_us <= $1 AND lease_until_us < $1 LIMIT 1",
                &[now_us.into()],
                |_| (),
            )?;
            if due.is_empty() {
                return Ok(Vec::new());
            }
        }
        with_pool!(self, pool => {
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(until).bind(node).bind(false).bind(now_us).bind(limit);
            if let Some(d) = domain {
                q = q.bind(d.to_ascii_lowercase());
            }
            q.execute(pool).await?;
            let sql = format!(
                "SELECT {MX_COLUMNS} FROM queue_rcpt r JOIN queue q ON q.id = r.queue_id \
                 WHERE r.leased_by = $1 AND r.lease_until_us = $2 AND r.done = $3 ORDER BY r.domain, q.time_us, r.queue_id, r.address"
            );
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(node).bind(until).bind(false).fetch_all(pool).await?;
            rows.iter().map(mx_lease).collect()
        })
    }

    /// Renews this node's lease of an MX recipient right before an attempt; false if it was lost.
    pub async fn renew_mx_lease(
        &self,
        queue_id: &str,
        address: &str,
        node: &str,
        now_us: i64,
        lease_us: i64,
    ) -> Result<bool> {
        with_pool!(self, pool => {
            let r = sqlx::query("UPDATE queue_rcpt SET lease_until_us = $1 WHERE queue_id = $2 AND address = $3 AND leased_by = $4 AND lease_until_us >= $5 AND done = $6")
                .bind(now_us + lease_us).bind(queue_id).bind(address).bind(node).bind(now_us).bind(false).execute(pool).await?;
            Ok(r.rows_affected() == 1)
        })
    }

    /// An MX recipient has its final answer (delivered: 2xx; bounced: 5xx or given up). Returns
    /// true when that was the message's last recipient: it left the queue, and its journal
    /// record took the outcome (delivered if any recipient got it).
    pub async fn mx_done(
        &self,
        queue_id: &str,
        address: &str,
        node: &str,
        reply: &str,
    ) -> Result<bool> {
        let done = Done {
            queue_id: queue_id.into(),
            address: address.into(),
            node: node.into(),
            reply: reply.into(),
            later: None,
        };
        if let Store::Sqlite(pool) = self {
            // Many sessions' answers in one transaction, with the journal's and the queue's.
            let removed = sqlite_writer::of(pool).run(answer_ops(done), false).await?;
            return Ok(removed == 1);
        }
        with_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let gone = record_answer(&mut tx, &done).await?;
            tx.commit().await?;
            Ok(gone)
        })
    }

    /// Another attempt for an MX recipient later (`count_attempt`: it was tried); the lease is
    /// given back.
    pub async fn mx_reschedule(
        &self,
        queue_id: &str,
        address: &str,
        node: &str,
        next_us: i64,
        reply: &str,
        count_attempt: bool,
    ) -> Result<()> {
        let later = Done {
            queue_id: queue_id.into(),
            address: address.into(),
            node: node.into(),
            reply: reply.into(),
            later: Some((next_us, count_attempt)),
        };
        if let Store::Sqlite(pool) = self {
            // With the final answers: a destination that is down defers many at once.
            return sqlite_writer::of(pool)
                .run(answer_ops(later), false)
                .await
                .map(drop);
        }
        with_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            record_answer(&mut tx, &later).await?;
            tx.commit().await?;
            Ok(())
        })
    }

    /// Removes a message whose every recipient has its final answer (a crash between the last
    /// answer and the removal); true if it was removed.
    pub async fn queue_complete(&self, queue_id: &str) -> Result<bool> {
        with_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            sqlx::query("UPDATE queue SET last_reply = last_reply WHERE id = $1").bind(queue_id).execute(&mut *tx).await?;
            let gone = complete_in(&mut tx, queue_id).await?;
            tx.commit().await?;
            Ok(gone)
        })
    }

    /// Holds a queued message (nothing of it is delivered) for a reason shown to admins.
    pub async fn queue_hold(&self, queue_id: &str, reason: &str) -> Result<bool> {
        let reason = if reason.is_empty() { "held" } else { reason };
        with_pool!(self, pool => {
            let r = sqlx::query("UPDATE queue SET held = $1 WHERE id = $2").bind(reason).bind(queue_id).execute(pool).await?;
            Ok(r.rows_affected() == 1)
        })
    }

    /// Releases a held message (due at once); false if it was not held.
    pub async fn queue_release(&self, queue_id: &str) -> Result<bool> {
        let now = crate::clock::now_us();
        with_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let r = sqlx::query("UPDATE queue SET held = '', next_attempt_us = $1 WHERE id = $2 AND held <> ''").bind(now).bind(queue_id).execute(&mut *tx).await?;
            sqlx::query("UPDATE queue_rcpt SET next_attempt_us = $1 WHERE queue_id = $2 AND done = $3").bind(now).bind(queue_id).bind(false).execute(&mut *tx).await?;
            tx.commit().await?;
            Ok(r.rows_affected() == 1)
        })
    }

    /// Why a queued message is held (`None`: not held, or not in the queue).
    pub async fn queue_held_reason(&self, queue_id: &str) -> Result<Option<String>> {
        with_pool!(self, pool => {
            let held: Option<String> = sqlx::query_scalar("SELECT held FROM queue WHERE id = $1").bind(queue_id).fetch_optional(pool).await?;
            Ok(held.filter(|h| !h.is_empty()))
        })
    }

    /// How many messages are held.
    pub async fn queue_held_count(&self) -> Result<i64> {
        with_pool!(self, pool => {
            Ok(sqlx::query_scalar("SELECT COUNT(*) FROM queue WHERE held <> ''").fetch_one(pool).await?)
        })
    }

    /// Every recipient of a queued message with its route and state: (address, route, done, last reply).
    pub async fn queue_routes(
        &self,
        queue_id: &str,
    ) -> Result<Vec<(String, String, bool, String)>> {
        with_pool!(self, pool => {
            let rows = sqlx::query("SELECT address, route, done, last_reply FROM queue_rcpt WHERE queue_id = $1 ORDER BY address").bind(queue_id).fetch_all(pool).await?;
            rows.iter().map(|r| Ok((r.try_get("address")?, r.try_get("route")?, r.try_get("done")?, r.try_get("last_reply")?))).collect()
        })
    }
}

/// A sender locked out of outbound mail.
#[derive(Debug, Clone, Serialize)]
pub struct OutboundLock {
    pub sender: String,
    pub reason: String,
    pub created_us: i64,
    pub created_by: String,
}

impl Store {
    /// Locks a sender (an address, lowercase) out of outbound mail; replaces an earlier lock.
    pub async fn lock_sender(&self, sender: &str, reason: &str, by: &str) -> Result<()> {
        let sender = sender.trim().to_lowercase();
        with_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            sqlx::query("DELETE FROM outbound_locks WHERE sender = $1").bind(&sender).execute(&mut *tx).await?;
            sqlx::query("INSERT INTO outbound_locks (sender, reason, created_us, created_by) VALUES ($1, $2, $3, $4)")
                .bind(&sender).bind(reason).bind(crate::clock::now_us()).bind(by).execute(&mut *tx).await?;
            tx.commit().await?;
            Ok(())
        })
    }

    /// Unlocks a sender; false if it was not locked.
    pub async fn unlock_sender(&self, sender: &str) -> Result<bool> {
        with_pool!(self, pool => {
            let r = sqlx::query("DELETE FROM outbound_locks WHERE sender = $1").bind(sender.trim().to_lowercase()).execute(pool).await?;
            Ok(r.rows_affected() == 1)
        })
    }

    /// Why a sender is locked (`None`: it is not).
    pub async fn sender_lock(&self, sender: &str) -> Result<Option<String>> {
        with_pool!(self, pool => {
            Ok(sqlx::query_scalar("SELECT reason FROM outbound_locks WHERE sender = $1").bind(sender.trim().to_lowercase()).fetch_optional(pool).await?)
        })
    }

    pub async fn sender_locks(&self) -> Result<Vec<OutboundLock>> {
        with_pool!(self, pool => {
            let rows = sqlx::query("SELECT sender, reason, created_us, created_by FROM outbound_locks ORDER BY sender").fetch_all(pool).await?;
            rows.iter().map(|r| Ok(OutboundLock { sender: r.try_get("sender")?, reason: r.try_get("reason")?, created_us: r.try_get("created_us")?, created_by: r.try_get("created_by")? })).collect()
        })
    }

    /// A sender's (or an account's) outbound mail since `since_us` (every node's journal): its
    /// messages, their recipients (lowercase, once per message) and how many of those the far
    /// side refused.
    pub async fn outbound_last_hour(
        &self,
        who: &OutboundParty,
        since_us: i64,
    ) -> Result<OutboundHour> {
        let sql = format!(
            "SELECT j.id, LOWER(r.address), r.reply FROM journal j JOIN journal_rcpt r ON r.journal_id = j.id \
             WHERE j.time_us >= $1 AND j.direction = 'out' AND {} AND r.accepted = $3 \
             AND j.outcome IN ('queued', 'delivered', 'refused') LIMIT 100000",
            who.condition()
        );
        with_pool!(self, pool => {
            let rows: Vec<(String, String, String)> = sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(since_us).bind(who.key()).bind(true).fetch_all(pool).await?;
            let mut ids: Vec<&str> = rows.iter().map(|(id, _, _)| id.as_str()).collect();
            ids.sort();
            ids.dedup();
            Ok(OutboundHour {
                messages: ids.len(),
                refused: rows.iter().filter(|(_, _, reply)| reply.starts_with('5')).count(),
                recipients: rows.into_iter().map(|(_, a, _)| a).collect(),
            })
        })
    }

    /// The most recipients a sender (or an account) had accepted for outbound mail in one clock
    /// hour between `since_us` and `until_us`: the habit its current hour is measured against.
    /// Only mail that has left the queue counts — a held burst must not become the habit that
    /// lets the next one through (released mail counts once it is delivered).
    pub async fn outbound_busiest_hour(
        &self,
        who: &OutboundParty,
        since_us: i64,
        until_us: i64,
    ) -> Result<u64> {
        let sql = format!(
            "SELECT COALESCE(MAX(n), 0) FROM (SELECT j.time_us / 3600000000 AS hour, COUNT(*) AS n \
             FROM journal j JOIN journal_rcpt r ON r.journal_id = j.id \
             WHERE j.time_us >= $1 AND j.time_us < $3 AND j.direction = 'out' AND {} AND r.accepted = $4 \
             AND j.outcome IN ('delivered', 'refused') GROUP BY j.time_us / 3600000000) hours",
            who.condition()
        );
        with_pool!(self, pool => {
            let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(since_us).bind(who.key()).bind(until_us).bind(true).fetch_one(pool).await?;
            Ok(n.max(0) as u64)
        })
    }

    /// The held messages, oldest first.
    pub async fn queue_held(&self) -> Result<Vec<super::Queued>> {
        Ok(self
            .queue_list(None)
            .await?
            .into_iter()
            .filter(|q| !q.held.is_empty())
            .collect())
    }
}

fn mx_lease<R: Row>(r: &R) -> Result<MxLease>
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    String: for<'a> sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    i64: for<'a> sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    i32: for<'a> sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    Ok(MxLease {
        queue_id: r.try_get("queue_id")?,
        address: r.try_get("address")?,
        domain: r.try_get("domain")?,
        sender: r.try_get("sender")?,
        time_us: r.try_get("time_us")?,
        size: r.try_get("size")?,
        attempts: r.try_get("attempts")?,
        last_reply: r.try_get("last_reply")?,
    })
}

/// Within a transaction that locked the message row: if no recipient is pending, the message
/// leaves the queue and its journal record gets the outcome. Inbound mail delivered from the
/// queue counts as load out here; outbound mail was counted at acceptance.
pub(super) async fn complete_in<'c, DB: sqlx::Database>(
    tx: &mut sqlx::Transaction<'c, DB>,
    queue_id: &str,
) -> Result<bool>
where
    for<'e> &'e mut <DB as sqlx::Database>::Connection: sqlx::Executor<'e, Database = DB>,
    for<'q> &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> bool: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> String: sqlx::Encode<'q, DB> + sqlx::Type<DB> + sqlx::Decode<'q, DB>,
    for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Type<DB> + sqlx::Decode<'q, DB>,
    for<'q> <DB as sqlx::Database>::Arguments: sqlx::IntoArguments<DB>,
    (i64,): for<'r> sqlx::FromRow<'r, DB::Row>,
    (String,): for<'r> sqlx::FromRow<'r, DB::Row>,
{
    let (pending,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM queue_rcpt WHERE queue_id = $1 AND done = $2")
            .bind(queue_id)
            .bind(false)
            .fetch_one(&mut **tx)
            .await?;
    if pending > 0 {
        return Ok(false);
    }
    let (delivered,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM queue_rcpt WHERE queue_id = $1 AND done = $2 AND last_reply LIKE '2%'").bind(queue_id).bind(true).fetch_one(&mut **tx).await?;
    let row: Option<(String,)> = sqlx::query_as("SELECT last_reply FROM queue WHERE id = $1")
        .bind(queue_id)
        .fetch_optional(&mut **tx)
        .await?;
    let Some((reply,)) = row else {
        return Ok(false);
    };
    sqlx::query("DELETE FROM queue WHERE id = $1")
        .bind(queue_id)
        .execute(&mut **tx)
        .await?;
    let outcome = if delivered > 0 {
        "delivered"
    } else {
        "refused"
    };
    sqlx::query("UPDATE journal SET outcome = $1, final_reply = $2 WHERE id = $3")
        .bind(outcome)
        .bind(reply)
        .bind(queue_id)
        .execute(&mut **tx)
        .await?;
    Ok(true)
}

/// A recipient's final answer, as `mx_done` records it.
/// One MX recipient's answer: final, or (`later`: when, and whether it counts as an attempt)
/// another try then.
struct Done {
    queue_id: String,
    address: String,
    node: String,
    reply: String,
    later: Option<(i64, bool)>,
}

/// One recipient's answer as the SQLite writer's statements: the same steps as
/// [`record_answer`], with the reads folded into the statements. For a final answer the last
/// statement removes the message when it was its last recipient (one row changed).
fn answer_ops(d: Done) -> Vec<Op> {
    let Done {
        queue_id,
        address,
        node,
        reply,
        later,
    } = d;
    if let Some((next_us, count_attempt)) = later {
        let attempt = i64::from(count_attempt);
        return vec![
            Op::execute(
                "UPDATE queue_rcpt SET next_attempt_us = ?, last_reply = ?, attempts = attempts + ?, lease_until_us = 0, leased_by = '' WHERE queue_id = ? AND address = ? AND leased_by = ?",
                vec![
                    next_us.into(),
                    reply.as_str().into(),
                    attempt.into(),
                    queue_id.as_str().into(),
                    address.into(),
                    node.into(),
                ],
            ),
            Op::execute(
                "UPDATE queue SET last_reply = ?, attempts = attempts + ? WHERE id = ?",
                vec![reply.into(), attempt.into(), queue_id.into()],
            ),
        ];
    }
    let mut ops = vec![
        Op::execute(
            "UPDATE queue SET last_reply = ? WHERE id = ?",
            vec![reply.as_str().into(), queue_id.as_str().into()],
        ),
        Op::execute(
            "UPDATE queue_rcpt SET done = 1, last_reply = ?, lease_until_us = 0, leased_by = '' WHERE queue_id = ? AND address = ? AND leased_by = ?",
            vec![
                reply.as_str().into(),
                queue_id.as_str().into(),
                address.as_str().into(),
                node.into(),
            ],
        ),
    ];
    if reply.starts_with('5') {
        ops.push(Op::execute(
            "UPDATE journal_rcpt SET reply = ? WHERE journal_id = ? AND LOWER(address) = LOWER(?)",
            vec![reply.into(), queue_id.as_str().into(), address.into()],
        ));
    }
    // The journal takes the outcome before the message (and its recipients) leave the queue.
    ops.push(Op::execute(
        "UPDATE journal SET outcome = CASE WHEN EXISTS (SELECT 1 FROM queue_rcpt WHERE queue_id = ?1 AND done = 1 AND last_reply LIKE '2%') THEN 'delivered' ELSE 'refused' END, \
         final_reply = (SELECT last_reply FROM queue WHERE id = ?1) \
         WHERE id = ?1 AND EXISTS (SELECT 1 FROM queue WHERE id = ?1) AND NOT EXISTS (SELECT 1 FROM queue_rcpt WHERE queue_id = ?1 AND done = 0)",
        vec![queue_id.as_str().into()],
    ));
    ops.push(Op::execute(
        "DELETE FROM queue WHERE id = ?1 AND NOT EXISTS (SELECT 1 FROM queue_rcpt WHERE queue_id = ?1 AND done = 0)",
        vec![queue_id.into()],
    ));
    ops
}

/// One recipient's answer inside a transaction; true when the message left the queue.
async fn record_answer<'c, DB: sqlx::Database>(
    tx: &mut sqlx::Transaction<'c, DB>,
    d: &Done,
) -> Result<bool>
where
    for<'e> &'e mut <DB as sqlx::Database>::Connection: sqlx::Executor<'e, Database = DB>,
    for<'q> &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> bool: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> String: sqlx::Encode<'q, DB> + sqlx::Type<DB> + sqlx::Decode<'q, DB>,
    for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Type<DB> + sqlx::Decode<'q, DB>,
    for<'q> <DB as sqlx::Database>::Arguments: sqlx::IntoArguments<DB>,
    (i64,): for<'r> sqlx::FromRow<'r, DB::Row>,
    (String,): for<'r> sqlx::FromRow<'r, DB::Row>,
{
    if let Some((next_us, count_attempt)) = d.later {
        sqlx::query("UPDATE queue_rcpt SET next_attempt_us = $1, last_reply = $2, attempts = attempts + $3, lease_until_us = 0, leased_by = '' WHERE queue_id = $4 AND address = $5 AND leased_by = $6")
            .bind(next_us).bind(d.reply.as_str()).bind(i64::from(count_attempt)).bind(d.queue_id.as_str()).bind(d.address.as_str()).bind(d.node.as_str())
            .execute(&mut **tx).await?;
        // The queue page shows the message's last error.
        sqlx::query("UPDATE queue SET last_reply = $1, attempts = attempts + $2 WHERE id = $3")
            .bind(d.reply.as_str())
            .bind(i64::from(count_attempt))
            .bind(d.queue_id.as_str())
            .execute(&mut **tx)
            .await?;
        return Ok(false);
    }
    // Locks the message row first: whoever answers the last recipient removes it.
    sqlx::query("UPDATE queue SET last_reply = $1 WHERE id = $2")
        .bind(d.reply.as_str())
        .bind(d.queue_id.as_str())
        .execute(&mut **tx)
        .await?;
    sqlx::query("UPDATE queue_rcpt SET done = $1, last_reply = $2, lease_until_us = 0, leased_by = '' WHERE queue_id = $3 AND address = $4 AND leased_by = $5")
        .bind(true).bind(d.reply.as_str()).bind(d.queue_id.as_str()).bind(d.address.as_str()).bind(d.node.as_str())
        .execute(&mut **tx).await?;
    if d.reply.starts_with('5') {
        // The journal shows the far side's refusal per recipient (and the burst guard counts it).
        sqlx::query("UPDATE journal_rcpt SET reply = $1 WHERE journal_id = $2 AND LOWER(address) = LOWER($3)")
            .bind(d.reply.as_str()).bind(d.queue_id.as_str()).bind(d.address.as_str())
            .execute(&mut **tx).await?;
    }
    complete_in(tx, &d.queue_id).await
}
