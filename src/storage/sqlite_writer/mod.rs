//! One writer per SQLite database: a thread of its own, with a connection of its own, takes the
//! writes that every message makes (its journal record and figures, its kept copy, its queue rows)
//! from every session and commits whatever has queued up in one transaction. A session hands in
//! its whole piece of work once and waits for the commit — one hand-off between threads per
//! piece instead of two per statement, and no two connections contending for SQLite's one write
//! lock. PostgreSQL keeps its pool (it has no such lock).

pub(super) mod connection;

use std::collections::HashMap;
use std::ffi::CStr;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};

use sqlx::SqlitePool;
use tokio::sync::oneshot;

use connection::Connection;
pub use connection::Value;

/// One step of a piece of work.
#[derive(Debug)]
pub enum Op {
    /// One statement, its parameters bound in order.
    Execute(String, Vec<Value>),
    /// Statements without parameters.
    Script(&'static str),
    /// Writes the data into `table.column` of the row inserted last (a zeroblob of its length).
    FillBlob(&'static CStr, &'static CStr, Vec<u8>),
}

impl Op {
    pub fn execute(sql: impl Into<String>, args: Vec<Value>) -> Op {
        Op::Execute(sql.into(), args)
    }
}

/// Pieces of work committed together, at most.
const MAX_PIECES: usize = 512;

struct Piece {
    ops: Vec<Op>,
    durable: bool,
    done: oneshot::Sender<Result<u64, String>>,
}

pub struct Writer {
    pieces: mpsc::Sender<Piece>,
}

impl Writer {
    fn start(path: PathBuf) -> Writer {
        let (pieces, rx) = mpsc::channel();
        let name = format!(
            "sqlite-writer-{}",
            path.file_name().unwrap_or_default().to_string_lossy()
        );
        let spawned = std::thread::Builder::new()
            .name(name.chars().take(15).collect())
            .spawn(move || serve(&path, rx));
        if let Err(e) = spawned {
            // Without its thread every piece is answered with an error (the channel is closed).
            tracing::error!("cannot start the SQLite writer: {e}");
        }
        Writer { pieces }
    }

    /// Runs `ops` in the writer's next transaction and waits for its commit. `durable`: the
    /// commit waits for the fsync of the WAL (`synchronous = FULL` for that commit, which also
    /// makes every earlier commit durable); otherwise it survives a crash of sponts (NORMAL).
    /// If a step fails, this piece's steps are undone and the others' still commit. Returns the
    /// rows its last statement inserted, changed or deleted.
    pub async fn run(&self, ops: Vec<Op>, durable: bool) -> anyhow::Result<u64> {
        let (done, answer) = oneshot::channel();
        self.pieces
            .send(Piece { ops, durable, done })
            .map_err(|_| anyhow::anyhow!("the SQLite writer has stopped"))?;
        answer
            .await
            .map_err(|_| anyhow::anyhow!("the SQLite writer has stopped"))?
            .map_err(|e| anyhow::anyhow!(e))
    }
}

/// The writer of this pool's database file, started when there is none (or the pool it was
/// started for was closed: a server restarted in the same process, as the tests do).
pub fn of(pool: &SqlitePool) -> Arc<Writer> {
    type Writers = Mutex<HashMap<PathBuf, (SqlitePool, Arc<Writer>)>>;
    static WRITERS: OnceLock<Writers> = OnceLock::new();
    let file = pool.connect_options().get_filename().to_path_buf();
    let mut writers = WRITERS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    writers.retain(|_, (p, _)| !p.is_closed());
    let (_, writer) = writers
        .entry(file.clone())
        .or_insert_with(|| (pool.clone(), Arc::new(Writer::start(file))));
    writer.clone()
}

/// The writer's thread: until every `Writer` handle is gone, takes what has queued up and commits
/// it. A connection that cannot be opened is tried again at the next piece.
fn serve(path: &Path, pieces: mpsc::Receiver<Piece>) {
    let mut conn: Option<Connection> = None;
    let mut full = false;
    while let Ok(first) = pieces.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_PIECES {
            match pieces.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
        let results = match conn.as_mut() {
            Some(c) => commit(c, &batch, &mut full),
            None => match Connection::open(path) {
                Ok(c) => {
                    full = false;
                    commit(conn.insert(c), &batch, &mut full)
                }
                Err(e) => vec![Err(e); batch.len()],
            },
        };
        for (piece, result) in batch.into_iter().zip(results) {
            let _ = piece.done.send(result);
        }
    }
}

/// One transaction for the whole batch. Pieces rarely fail, so they first run one after the
/// other without savepoints (a savepoint copies every page it changes into a sub-journal: a fifth
/// of the writer's time); if one fails, that transaction is rolled back and the batch runs again
/// with each piece in a savepoint of its own, so the failed piece leaves nothing behind and the
/// others still commit.
fn commit(conn: &mut Connection, batch: &[Piece], full: &mut bool) -> Vec<Result<u64, String>> {
    let durable = batch.iter().any(|p| p.durable);
    if durable != *full {
        let set = if durable {
            "PRAGMA synchronous = FULL"
        } else {
            "PRAGMA synchronous = NORMAL"
        };
        if let Err(e) = conn.script(set) {
            return vec![Err(e); batch.len()];
        }
        *full = durable;
    }
    if let Some(results) = all_at_once(conn, batch) {
        return results;
    }
    if let Err(e) = conn.script("BEGIN IMMEDIATE") {
        return vec![Err(e); batch.len()];
    }
    let results: Vec<_> = batch
        .iter()
        .map(|piece| in_savepoint(conn, &piece.ops))
        .collect();
    finish(conn, results)
}

/// Every piece in one go; `None` when a piece failed (nothing of the batch is left then).
fn all_at_once(conn: &mut Connection, batch: &[Piece]) -> Option<Vec<Result<u64, String>>> {
    if let Err(e) = conn.script("BEGIN IMMEDIATE") {
        return Some(vec![Err(e); batch.len()]);
    }
    let mut results = Vec::with_capacity(batch.len());
    for piece in batch {
        match run_ops(conn, &piece.ops) {
            Ok(changed) => results.push(Ok(changed)),
            Err(_) => {
                let _ = conn.script("ROLLBACK");
                return None;
            }
        }
    }
    Some(finish(conn, results))
}

/// Commits; if that fails, every piece of the batch gets the error.
fn finish(conn: &mut Connection, results: Vec<Result<u64, String>>) -> Vec<Result<u64, String>> {
    match conn.script("COMMIT") {
        Ok(()) => results,
        Err(e) => {
            let _ = conn.script("ROLLBACK");
            vec![Err(format!("commit failed: {e}")); results.len()]
        }
    }
}

fn in_savepoint(conn: &mut Connection, ops: &[Op]) -> Result<u64, String> {
    conn.script("SAVEPOINT piece")?;
    let result = run_ops(conn, ops);
    if result.is_err() {
        conn.script("ROLLBACK TO piece")?;
    }
    conn.script("RELEASE piece")?;
    result
}

fn run_ops(conn: &mut Connection, ops: &[Op]) -> Result<u64, String> {
    let mut changed = 0;
    for op in ops {
        match op {
            Op::Execute(sql, args) => {
                conn.execute(sql, args)?;
                changed = conn.changes();
            }
            Op::Script(sql) => conn.script(sql)?,
            Op::FillBlob(table, column, data) => {
                let row = conn.last_rowid();
                conn.fill_blob(table, column, row, data)?
            }
        }
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn pool(dir: &Path) -> SqlitePool {
        let opts = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(dir.join("w.db"))
            .create_if_missing(true)
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal);
        let pool = SqlitePool::connect_with(opts).await.unwrap();
        sqlx::query("CREATE TABLE t (id TEXT PRIMARY KEY, n INTEGER, b BLOB)")
            .execute(&pool)
            .await
            .unwrap();
        pool
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn pieces_commit_together_and_a_failed_one_fails_alone() {
        let dir = tempfile::tempdir().unwrap();
        let pool = pool(dir.path()).await;
        let writer = of(&pool);
        let row = |i: i32| {
            Op::execute(
                "INSERT INTO t (id, n, b) VALUES ($1, $2, $3)",
                vec![
                    i.to_string().into(),
                    i64::from(i).into(),
                    Value::Blob(vec![i as u8; 3]),
                ],
            )
        };
        writer.run(vec![row(3)], false).await.unwrap();
        let tasks: Vec<_> = (0..50)
            .filter(|&i| i != 3)
            .map(|i| {
                let writer = writer.clone();
                // Piece 7 inserts a row of its own, then one that collides with piece 3's.
                let ops = if i == 7 {
                    vec![
                        Op::execute(
                            "INSERT INTO t (id, n) VALUES (?, ?)",
                            vec!["x7".into(), 7i64.into()],
                        ),
                        Op::execute(
                            "INSERT INTO t (id, n) VALUES (?, ?)",
                            vec!["3".into(), 7i64.into()],
                        ),
                    ]
                } else {
                    vec![row(i)]
                };
                tokio::spawn(async move { (i, writer.run(ops, i % 2 == 0).await) })
            })
            .collect();
        let mut failed = Vec::new();
        for t in tasks {
            if let (i, Err(e)) = t.await.unwrap() {
                failed.push((i, e.to_string()));
            }
        }
        assert_eq!(failed.len(), 1, "{failed:?}");
        assert_eq!(failed[0].0, 7);
        assert!(failed[0].1.contains("UNIQUE"), "{failed:?}");
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM t")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(n, 49);
        let x7: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM t WHERE id = 'x7'")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(x7, 0, "a failed piece leaves nothing");
        let b: Vec<u8> = sqlx::query_scalar("SELECT b FROM t WHERE id = '5'")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(b, vec![5u8; 3]);
    }

    #[tokio::test]
    async fn a_big_blob_is_written_into_its_row() {
        let dir = tempfile::tempdir().unwrap();
        let pool = pool(dir.path()).await;
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        of(&pool)
            .run(
                vec![
                    Op::execute(
                        "INSERT INTO t (id, n, b) VALUES (?, ?, zeroblob(?))",
                        vec!["big".into(), 1i64.into(), (data.len() as i64).into()],
                    ),
                    Op::FillBlob(c"t", c"b", data.clone()),
                ],
                true,
            )
            .await
            .unwrap();
        let b: Vec<u8> = sqlx::query_scalar("SELECT b FROM t WHERE id = 'big'")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert!(b == data);
    }
}
