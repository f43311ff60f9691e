//! Journal records in SQL: one row per transaction, with its recipients and attachments in
//! child tables. Written in batches (one database transaction for many records), read by filter.

use anyhow::Result;
use serde::Serialize;
use sqlx::Row;
use std::sync::atomic::Ordering::Relaxed;

use super::sqlite_writer::{Op, Value};
use super::{BeginWrite, Store, with_pool};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JournalEntry {
    pub id: String,
    pub time_us: i64,
    pub client_ip: String,
    pub client_port: u16,
    pub helo: String,
    pub tls: Option<String>,
    pub sender: String,
    pub recipients: Vec<RcptEntry>,
    pub subject: Option<String>,
    pub message_id: Option<String>,
    pub size: Option<i64>,
    pub attachments: Vec<AttachmentEntry>,
    pub outcome: String,
    pub decided_by: String,
    pub final_reply: String,
    /// For a replay: the transaction whose message was delivered again.
    pub replay_of: Option<String>,
    /// Who caused the transaction when it was not an SMTP client (`cli:root`, `web:alice@...`).
    pub actor: Option<String>,
    /// What the message was classified as (`spam`), whatever happened to it.
    pub flag: Option<String>,
    /// The modules' scores and reasons.
    pub notes: Option<String>,
    /// Sent by our own clients to another domain (outbound); else received.
    pub outbound: bool,
}

impl JournalEntry {
    /// Refused for a virus or a blocked attachment: its content is for administrators only.
    pub fn is_malware(&self) -> bool {
        matches!(self.flag.as_deref(), Some("virus" | "blocked"))
    }

    /// The transaction whose kept copy holds this record's message: a replay has none of its own.
    pub fn kept_as(&self) -> &str {
        self.replay_of.as_deref().unwrap_or(&self.id)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RcptEntry {
    pub address: String,
    pub accepted: bool,
    pub reply: String,
    /// The address the backend got instead (a disposable address's owner).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivered_to: Option<String>,
}

impl RcptEntry {
    /// Is this recipient `address` — as given, or as delivered (a disposable address's owner)?
    pub fn is(&self, address: &str) -> bool {
        self.address.eq_ignore_ascii_case(address)
            || self
                .delivered_to
                .as_deref()
                .is_some_and(|d| d.eq_ignore_ascii_case(address))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AttachmentEntry {
    pub filename: String,
    pub mime_type: String,
    pub size: i64,
}

/// Which records to read; every set field must match. Text fields match case-insensitively as
/// substrings; the IP matches exactly.
#[derive(Debug, Clone, Default)]
pub struct JournalFilter {
    pub since_us: Option<i64>,
    pub sender: Option<String>,
    pub rcpt: Option<String>,
    pub ip: Option<String>,
    pub subject: Option<String>,
    pub id: Option<String>,
    /// Free text: sender, a recipient or the subject contains it.
    pub text: Option<String>,
    /// Only records older than this.
    pub until_us: Option<i64>,
    /// `delivered`, `refused`, ...
    pub outcome: Option<String>,
    /// Only records with (true) or without (false) attachments.
    pub has_attachment: Option<bool>,
    /// Only records whose sender or a recipient is one of these addresses (lowercase): what a
    /// user may see.
    pub visible_to: Option<Vec<String>>,
    /// Newest first, at most this many (default 100), after skipping `offset`.
    pub limit: Option<i64>,
    pub offset: Option<i64>,
}

/// What free-text search looks in: sender, recipients and subject, lowercase.
fn search_text(e: &JournalEntry) -> String {
    let mut t = e.sender.to_lowercase();
    for r in &e.recipients {
        t.push(' ');
        t.push_str(&r.address.to_lowercase());
    }
    t.push(' ');
    t.push_str(&e.subject.as_deref().unwrap_or("").to_lowercase());
    t
}

/// (address, record, time) for the sender and every recipient: the index behind "my mail".
fn parties(entries: &[JournalEntry]) -> Vec<(String, &str, i64)> {
    let mut out = Vec::new();
    for e in entries {
        let mut seen: Vec<String> = Vec::new();
        let all = std::iter::once(e.sender.as_str())
            .chain(e.recipients.iter().map(|r| r.address.as_str()))
            .chain(
                e.recipients
                    .iter()
                    .filter_map(|r| r.delivered_to.as_deref()),
            );
        for a in all.filter(|a| !a.is_empty()).map(str::to_lowercase) {
            if !seen.contains(&a) {
                seen.push(a.clone());
                out.push((a, e.id.as_str(), e.time_us));
            }
        }
    }
    out
}

/// A search term in at least this many records is searched newest-first instead of by index.
const COMMON_TERM: i64 = 2000;

/// Journal records this process wrote since SQLite's search index last took them in.
static UNINDEXED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// How many new records wait for the search index (SQLite), taken in by one statement: an FTS5
/// trigram insert costs 200+ µs per row one commit at a time, under 30 µs in bulk. Searches read
/// the records not indexed yet directly, so they never miss one.
const INDEX_BATCH: usize = 500;

/// Brings SQLite's search index up to the newest journal record (migration 42).
const INDEX_CATCH_UP: &str = "INSERT INTO journal_fts (rowid, search_text) SELECT rowid, search_text FROM journal WHERE rowid > (SELECT upto FROM journal_fts_state) ORDER BY rowid; \
    UPDATE journal_fts_state SET upto = MAX(upto, (SELECT COALESCE(MAX(rowid), 0) FROM journal));";

/// Rows per INSERT: 60 x 16 parameters stays far below both databases' limits.
const ROWS_PER_STATEMENT: usize = 60;

const INSERT_JOURNAL: &str = "INSERT INTO journal (id, time_us, client_ip, client_port, helo, tls, sender, subject, message_id, size, outcome, decided_by, final_reply, replay_of, actor, search_text, flag, notes, direction) VALUES ";
const INSERT_RCPT: &str = "INSERT INTO journal_rcpt (journal_id, position, address, accepted, reply, delivered_to) VALUES ";
const INSERT_PARTY: &str = "INSERT INTO journal_party (address, journal_id, time_us) VALUES ";
const INSERT_ATTACHMENT: &str =
    "INSERT INTO journal_attachment (journal_id, position, filename, mime_type, size) VALUES ";

/// A batch of records as steps for SQLite's writer: the same rows as PostgreSQL's statements.
fn journal_ops(entries: &[JournalEntry]) -> Vec<Op> {
    let mut ops = Vec::new();
    let mut rows = |head: &str, cols: usize, rows: Vec<Vec<Value>>| {
        let mut rows = rows.into_iter().peekable();
        while rows.peek().is_some() {
            let chunk: Vec<Vec<Value>> = rows.by_ref().take(ROWS_PER_STATEMENT).collect();
            let sql = format!("{head}{}", values(chunk.len(), cols));
            ops.push(Op::execute(sql, chunk.into_iter().flatten().collect()));
        }
    };
    let direction = |e: &JournalEntry| if e.outbound { "out" } else { "in" };
    rows(
        INSERT_JOURNAL,
        19,
        entries
            .iter()
            .map(|e| {
                vec![
                    (&e.id).into(),
                    e.time_us.into(),
                    (&e.client_ip).into(),
                    i32::from(e.client_port).into(),
                    (&e.helo).into(),
                    e.tls.clone().into(),
                    (&e.sender).into(),
                    e.subject.clone().into(),
                    e.message_id.clone().into(),
                    e.size.into(),
                    (&e.outcome).into(),
                    (&e.decided_by).into(),
                    (&e.final_reply).into(),
                    e.replay_of.clone().into(),
                    e.actor.clone().into(),
                    search_text(e).into(),
                    e.flag.clone().into(),
                    e.notes.clone().into(),
                    direction(e).into(),
                ]
            })
            .collect(),
    );
    let each_rcpt = entries
        .iter()
        .flat_map(|e| e.recipients.iter().enumerate().map(move |(i, r)| (e, i, r)));
    rows(
        INSERT_RCPT,
        6,
        each_rcpt
            .map(|(e, i, r)| {
                vec![
                    (&e.id).into(),
                    (i as i64).into(),
                    (&r.address).into(),
                    r.accepted.into(),
                    (&r.reply).into(),
                    r.delivered_to.clone().into(),
                ]
            })
            .collect(),
    );
    rows(
        INSERT_PARTY,
        3,
        parties(entries)
            .into_iter()
            .map(|(a, id, t)| vec![a.into(), id.into(), t.into()])
            .collect(),
    );
    let each_attachment = entries.iter().flat_map(|e| {
        e.attachments
            .iter()
            .enumerate()
            .map(move |(i, a)| (e, i, a))
    });
    rows(
        INSERT_ATTACHMENT,
        5,
        each_attachment
            .map(|(e, i, a)| {
                vec![
                    (&e.id).into(),
                    (i as i64).into(),
                    (&a.filename).into(),
                    (&a.mime_type).into(),
                    a.size.into(),
                ]
            })
            .collect(),
    );
    ops
}

/// `($1, $2), ($3, $4)` for `rows` rows of `cols` parameters.
fn values(rows: usize, cols: usize) -> String {
    let mut out = String::with_capacity(rows * cols * 5);
    for r in 0..rows {
        out.push_str(if r == 0 { "(" } else { ", (" });
        for c in 0..cols {
            if c > 0 {
                out.push_str(", ");
            }
            out.push_str(&format!("${}", r * cols + c + 1));
        }
        out.push(')');
    }
    out
}

enum Param {
    Text(String),
    Int(i64),
}

fn like(text: &str) -> String {
    let escaped = text
        .to_lowercase()
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{escaped}%")
}

/// Records whose recipients and attachments are fetched by one query.
const CHILD_FETCH: usize = 1000;

/// Binds ids to a query's `$1..$n`.
fn bind_ids<'q, DB: sqlx::Database>(
    mut q: sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments>,
    ids: &[String],
) -> sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments>
where
    String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    for id in ids {
        q = q.bind(id.clone());
    }
    q
}

impl Store {
    /// Stores records in one database transaction, many rows per statement (a batch costs a
    /// handful of statements, not three per record).
    pub async fn insert_journal(&self, entries: &[JournalEntry]) -> Result<()> {
        if let Store::Sqlite(pool) = self {
            let deltas = super::stats::deltas(entries);
            let mut ops = journal_ops(entries);
            ops.extend(super::stats::add_ops(&deltas));
            if UNINDEXED.fetch_add(entries.len(), Relaxed) + entries.len() >= INDEX_BATCH {
                UNINDEXED.store(0, Relaxed);
                ops.push(Op::Script(INDEX_CATCH_UP));
            }
            super::sqlite_writer::of(pool).run(ops, false).await?;
            super::stats::note_committed(&deltas);
            return Ok(());
        }
        let rcpts: Vec<(&str, i32, &RcptEntry)> = entries
            .iter()
            .flat_map(|e| {
                e.recipients
                    .iter()
                    .enumerate()
                    .map(move |(i, r)| (e.id.as_str(), i as i32, r))
            })
            .collect();
        let atts: Vec<(&str, i32, &AttachmentEntry)> = entries
            .iter()
            .flat_map(|e| {
                e.attachments
                    .iter()
                    .enumerate()
                    .map(move |(i, a)| (e.id.as_str(), i as i32, a))
            })
            .collect();
        let parties = parties(entries);
        with_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            for chunk in entries.chunks(ROWS_PER_STATEMENT) {
                let sql = format!("{INSERT_JOURNAL}{}", values(chunk.len(), 19));
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
                for e in chunk {
                    q = q.bind(&e.id).bind(e.time_us).bind(&e.client_ip).bind(i32::from(e.client_port)).bind(&e.helo).bind(&e.tls)
                        .bind(&e.sender).bind(&e.subject).bind(&e.message_id).bind(e.size).bind(&e.outcome).bind(&e.decided_by).bind(&e.final_reply)
                        .bind(&e.replay_of).bind(&e.actor).bind(search_text(e)).bind(&e.flag).bind(&e.notes).bind(if e.outbound { "out" } else { "in" });
                }
                q.execute(&mut *tx).await?;
            }
            for chunk in rcpts.chunks(ROWS_PER_STATEMENT) {
                let sql = format!("{INSERT_RCPT}{}", values(chunk.len(), 6));
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
                for (id, i, r) in chunk {
                    q = q.bind(*id).bind(*i).bind(&r.address).bind(r.accepted).bind(&r.reply).bind(&r.delivered_to);
                }
                q.execute(&mut *tx).await?;
            }
            for chunk in parties.chunks(ROWS_PER_STATEMENT) {
                let sql = format!("{INSERT_PARTY}{}", values(chunk.len(), 3));
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
                for (address, id, t) in chunk {
                    q = q.bind(address.clone()).bind(*id).bind(*t);
                }
                q.execute(&mut *tx).await?;
            }
            // The hourly figures, in the same transaction: one writer, one commit.
            let deltas = super::stats::deltas(entries);
            super::stats::add_in(&mut tx, &deltas).await?;
            for chunk in atts.chunks(ROWS_PER_STATEMENT) {
                let sql = format!("{INSERT_ATTACHMENT}{}", values(chunk.len(), 5));
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
                for (id, i, a) in chunk {
                    q = q.bind(*id).bind(*i).bind(&a.filename).bind(&a.mime_type).bind(a.size);
                }
                q.execute(&mut *tx).await?;
            }
            if matches!(self, Store::Sqlite(_)) && UNINDEXED.fetch_add(entries.len(), Relaxed) + entries.len() >= INDEX_BATCH {
                UNINDEXED.store(0, Relaxed);
                sqlx::raw_sql(INDEX_CATCH_UP).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            super::stats::note_committed(&deltas);
            Ok(())
        })
    }

    /// How many records contain an FTS phrase, counting no further than `cap` (SQLite only).
    async fn fts_hits(&self, phrase: &str, cap: i64) -> Result<i64> {
        let Store::Sqlite(pool) = self else {
            return Ok(0);
        };
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM (SELECT rowid FROM journal_fts WHERE journal_fts MATCH $1 LIMIT $2)").bind(phrase).bind(cap).fetch_one(pool).await?)
    }

    /// The statement that reads the records `f` matches, newest first: `columns` of `journal`,
    /// and its parameters. None: nothing can match.
    async fn journal_select(
        &self,
        f: &JournalFilter,
        columns: &str,
    ) -> Result<Option<(String, Vec<Param>)>> {
        // A NUL cannot be searched for: PostgreSQL refuses it in text, an FTS5 phrase and
        // SQLite's LIKE end at it. It matches nothing instead of failing the query.
        let texts = [&f.text, &f.sender, &f.rcpt, &f.subject, &f.ip, &f.id];
        if texts
            .iter()
            .any(|t| t.as_deref().is_some_and(|t| t.contains('\0')))
        {
            return Ok(None);
        }
        let mut sql = format!("SELECT {columns} FROM journal WHERE 1=1");
        let mut params: Vec<Param> = Vec::new();
        let cond = |sql: &mut String, params: &mut Vec<Param>, clause: &str, p: Param| {
            params.push(p);
            sql.push_str(&clause.replace("$?", &format!("${}", params.len())));
        };
        if let Some(t) = f.since_us {
            cond(&mut sql, &mut params, " AND time_us >= $?", Param::Int(t));
        }
        if let Some(s) = &f.sender {
            cond(
                &mut sql,
                &mut params,
                " AND LOWER(sender) LIKE $? ESCAPE '\\'",
                Param::Text(like(s)),
            );
        }
        if let Some(r) = &f.rcpt {
            // As written, or as delivered (a disposable address's owner).
            cond(
                &mut sql,
                &mut params,
                " AND EXISTS (SELECT 1 FROM journal_rcpt r WHERE r.journal_id = journal.id AND (LOWER(r.address) LIKE $? ESCAPE '\\' OR LOWER(r.delivered_to) LIKE $? ESCAPE '\\'))",
                Param::Text(like(r)),
            );
        }
        if let Some(ip) = &f.ip {
            cond(
                &mut sql,
                &mut params,
                " AND client_ip = $?",
                Param::Text(ip.clone()),
            );
        }
        if let Some(s) = &f.subject {
            cond(
                &mut sql,
                &mut params,
                " AND LOWER(subject) LIKE $? ESCAPE '\\'",
                Param::Text(like(s)),
            );
        }
        if let Some(id) = &f.id {
            cond(
                &mut sql,
                &mut params,
                " AND id = $?",
                Param::Text(id.clone()),
            );
        }
        if let Some(t) = f.text.as_deref().map(str::to_lowercase) {
            // Indexed substring search: SQLite's FTS5 trigram table, PostgreSQL's pg_trgm index.
            // On SQLite a term found in many records is faster the other way round (newest first,
            // testing each until the page is full), so the index is asked first how common it is.
            let phrase = format!("\"{}\"", t.replace('"', "\"\""));
            let use_fts = matches!(self, Store::Sqlite(_))
                && t.chars().count() >= 3
                && self.fts_hits(&phrase, COMMON_TERM).await? < COMMON_TERM;
            if use_fts {
                // The index, and the newest records it has not taken in yet.
                params.push(Param::Text(phrase));
                params.push(Param::Text(like(&t)));
                sql.push_str(&format!(
                    " AND journal.rowid IN (SELECT rowid FROM journal_fts WHERE journal_fts MATCH ${} \
                     UNION ALL SELECT rowid FROM journal WHERE rowid > (SELECT upto FROM journal_fts_state) AND search_text LIKE ${} ESCAPE '\\')",
                    params.len() - 1,
                    params.len()
                ));
            } else {
                cond(
                    &mut sql,
                    &mut params,
                    " AND search_text LIKE $? ESCAPE '\\'",
                    Param::Text(like(&t)),
                );
            }
        }
        if let Some(t) = f.until_us {
            cond(&mut sql, &mut params, " AND time_us < $?", Param::Int(t));
        }
        if let Some(o) = &f.outcome {
            cond(
                &mut sql,
                &mut params,
                " AND outcome = $?",
                Param::Text(o.clone()),
            );
        }
        if let Some(has) = f.has_attachment {
            sql.push_str(if has { " AND" } else { " AND NOT" });
            sql.push_str(
                " EXISTS (SELECT 1 FROM journal_attachment a WHERE a.journal_id = journal.id)",
            );
        }
        if let Some(addrs) = &f.visible_to {
            if addrs.is_empty() {
                sql.push_str(" AND 1=0");
            } else {
                let start = params.len() + 1;
                params.extend(addrs.iter().map(|a| Param::Text(a.to_lowercase())));
                let list: Vec<String> = (start..start + addrs.len())
                    .map(|i| format!("${i}"))
                    .collect();
                sql.push_str(&format!(
                    " AND id IN (SELECT journal_id FROM journal_party WHERE address IN ({}))",
                    list.join(", ")
                ));
            }
        }
        cond(
            &mut sql,
            &mut params,
            " ORDER BY time_us DESC, id DESC LIMIT $?",
            Param::Int(f.limit.unwrap_or(100)),
        );
        cond(
            &mut sql,
            &mut params,
            " OFFSET $?",
            Param::Int(f.offset.unwrap_or(0)),
        );
        Ok(Some((sql, params)))
    }

    /// The ids of the records `f` matches, newest first: the journal's search without reading
    /// the records (IMAP SEARCH over a whole archive).
    pub async fn journal_ids(&self, f: &JournalFilter) -> Result<Vec<String>> {
        let Some((sql, params)) = self.journal_select(f, "id").await? else {
            return Ok(Vec::new());
        };
        with_pool!(self, pool => {
            let mut q = sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(sql.clone()));
            for p in params {
                q = match p {
                    Param::Text(s) => q.bind(s),
                    Param::Int(i) => q.bind(i),
                };
            }
            Ok(q.fetch_all(pool).await?)
        })
    }

    /// Reads matching records, newest first.
    pub async fn query_journal(&self, f: &JournalFilter) -> Result<Vec<JournalEntry>> {
        let Some((sql, params)) = self.journal_select(f, "id, time_us, client_ip, client_port, helo, tls, sender, subject, message_id, size, outcome, decided_by, final_reply, replay_of, actor, flag, notes, direction").await? else {
            return Ok(Vec::new());
        };
        with_pool!(self, pool => {
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.clone()));
            for p in params {
                q = match p {
                    Param::Text(s) => q.bind(s),
                    Param::Int(i) => q.bind(i),
                };
            }
            let rows = q.fetch_all(pool).await?;
            let mut entries = Vec::with_capacity(rows.len());
            for row in rows {
                entries.push(JournalEntry {
                    id: row.try_get("id")?,
                    time_us: row.try_get("time_us")?,
                    client_ip: row.try_get("client_ip")?,
                    client_port: row.try_get::<i32, _>("client_port")? as u16,
                    helo: row.try_get("helo")?,
                    tls: row.try_get("tls")?,
                    sender: row.try_get("sender")?,
                    recipients: Vec::new(),
                    subject: row.try_get("subject")?,
                    message_id: row.try_get("message_id")?,
                    size: row.try_get("size")?,
                    attachments: Vec::new(),
                    outcome: row.try_get("outcome")?,
                    decided_by: row.try_get("decided_by")?,
                    final_reply: row.try_get("final_reply")?,
                    replay_of: row.try_get("replay_of")?,
                    actor: row.try_get("actor")?,
                    flag: row.try_get("flag")?,
                    notes: row.try_get("notes")?,
                    outbound: row.try_get::<String, _>("direction")? == "out",
                });
            }
            if entries.is_empty() {
                return Ok(entries);
            }
            let index: std::collections::HashMap<String, usize> = entries.iter().enumerate().map(|(i, e)| (e.id.clone(), i)).collect();
            // Children are fetched for a slice of records at a time: one parameter per id, far
            // below either database's limit.
            let ids: Vec<String> = entries.iter().map(|e| e.id.clone()).collect();
            for chunk in ids.chunks(CHILD_FETCH) {
                let list = (1..=chunk.len()).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ");
                let sql = format!("SELECT journal_id, address, accepted, reply, delivered_to FROM journal_rcpt WHERE journal_id IN ({list}) ORDER BY journal_id, position");
                for row in bind_ids(sqlx::query(sqlx::AssertSqlSafe(sql)), chunk).fetch_all(pool).await? {
                    let i = index[&row.try_get::<String, _>("journal_id")?];
                    entries[i].recipients.push(RcptEntry {
                        address: row.try_get("address")?,
                        accepted: row.try_get("accepted")?,
                        reply: row.try_get("reply")?,
                        delivered_to: row.try_get("delivered_to")?,
                    });
                }
                let sql = format!("SELECT journal_id, filename, mime_type, size FROM journal_attachment WHERE journal_id IN ({list}) ORDER BY journal_id, position");
                for row in bind_ids(sqlx::query(sqlx::AssertSqlSafe(sql)), chunk).fetch_all(pool).await? {
                    let i = index[&row.try_get::<String, _>("journal_id")?];
                    entries[i].attachments.push(AttachmentEntry { filename: row.try_get("filename")?, mime_type: row.try_get("mime_type")?, size: row.try_get("size")? });
                }
            }
            Ok(entries)
        })
    }
}
