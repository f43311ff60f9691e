//! Message bodies in SQL: one zstd-compressed copy per transaction, whatever its number of
//! recipients, keyed by the transaction id (the journal record tells its fate). Bodies live in
//! the database so that every node sharing PostgreSQL reaches every message (docs/storage.md).

use anyhow::Result;
use sqlx::Row;

use super::sqlite_writer::{Op, Value};
use super::{BeginWrite, Store, with_pool};

/// A compressed message ready to be stored.
#[derive(Debug, Clone)]
pub struct StoredBody {
    pub id: String,
    pub time_us: i64,
    /// Size of the message as received.
    pub size: i64,
    /// zstd frame.
    pub compressed: Vec<u8>,
    /// SHA-256 (hex) of the message as received, for the archive's seals; empty: not known
    /// (the seal then computes it).
    pub digest: String,
}

/// What a purge removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Purged {
    pub messages: u64,
    pub bytes: i64,
}

impl Store {
    pub async fn insert_bodies(&self, bodies: Vec<StoredBody>) -> Result<()> {
        if let Store::Sqlite(pool) = self {
            let ops = bodies.into_iter().flat_map(body_ops).collect();
            return super::sqlite_writer::of(pool)
                .run(ops, false)
                .await
                .map(drop);
        }
        with_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            for b in bodies {
                sqlx::query(INSERT_BODY)
                    .bind(&b.id)
                    .bind(b.time_us)
                    .bind(b.size)
                    .bind(b.compressed.len() as i64)
                    .bind(&b.compressed)
                    .bind(&b.digest)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    /// The compressed body of a transaction, if kept.
    pub async fn body(&self, id: &str) -> Result<Option<StoredBody>> {
        with_pool!(self, pool => {
            let row = sqlx::query("SELECT b.id, b.time_us, b.size, b.body, COALESCE((SELECT d.digest FROM backup_digest d WHERE d.id = b.id), b.digest) AS digest FROM backup b WHERE b.id = $1").bind(id).fetch_optional(pool).await?;
            match row {
                Some(r) => Ok(Some(StoredBody { id: r.try_get("id")?, time_us: r.try_get("time_us")?, size: r.try_get("size")?, compressed: r.try_get("body")?, digest: r.try_get("digest")? })),
                None => Ok(None),
            }
        })
    }

    /// (messages, raw bytes, stored bytes) in the backup.
    pub async fn backup_totals(&self) -> Result<(i64, i64, i64)> {
        with_pool!(self, pool => {
            let r = sqlx::query("SELECT COUNT(*) AS n, CAST(COALESCE(SUM(size), 0) AS BIGINT) AS raw, CAST(COALESCE(SUM(stored_size), 0) AS BIGINT) AS stored FROM backup").fetch_one(pool).await?;
            Ok((r.try_get("n")?, r.try_get::<i64, _>("raw")?, r.try_get::<i64, _>("stored")?))
        })
    }
}

const INSERT_BODY: &str = "INSERT INTO backup (id, time_us, size, stored_size, body, digest) VALUES ($1, $2, $3, $4, $5, $6)";

/// Compressed bodies bigger than this are written into SQLite piece by piece.
const STREAM_LIMIT: usize = 1024 * 1024;

/// One kept body as steps for SQLite's writer. A big one is not bound whole (SQLite would build
/// its record from one more whole copy): its row is inserted with a zeroblob of the right length
/// and the body written into it through SQLite's incremental blob I/O, in the same transaction.
fn body_ops(b: StoredBody) -> Vec<Op> {
    let len = b.compressed.len() as i64;
    if b.compressed.len() <= STREAM_LIMIT {
        let args = vec![
            b.id.into(),
            b.time_us.into(),
            b.size.into(),
            len.into(),
            Value::Blob(b.compressed),
            b.digest.into(),
        ];
        return vec![Op::execute(INSERT_BODY, args)];
    }
    // The digest goes to a table of its own: in `backup` it is the column after `body`, and
    // SQLite expands a zeroblob that is followed by data in the record (two more whole copies of
    // the body in memory); followed by an empty string, it stays a zeroblob.
    vec![
        Op::execute(
            "INSERT INTO backup (id, time_us, size, stored_size, body, digest) VALUES ($1, $2, $3, $4, zeroblob($5), '')",
            vec![
                (&b.id).into(),
                b.time_us.into(),
                b.size.into(),
                len.into(),
                len.into(),
            ],
        ),
        Op::FillBlob(c"backup", c"body", b.compressed),
        Op::execute(
            "INSERT INTO backup_digest (id, digest) VALUES ($1, $2)",
            vec![b.id.into(), b.digest.into()],
        ),
    ]
}
