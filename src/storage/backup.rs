//! Message bodies in SQL: one zstd-compressed copy per transaction, whatever its number of
//! recipients, keyed by the transaction id (the journal record tells its fate). Bodies live in
//! the database so that every node sharing PostgreSQL reaches every message (docs/storage.md).

use anyhow::Result;
use sqlx::Row;

use super::{with_pool, BeginWrite, Store};

/// A compressed message ready to be stored.
#[derive(Debug, Clone)]
pub struct StoredBody {
    pub id: String,
    pub time_us: i64,
    /// Size of the message as received.
    pub size: i64,
    /// zstd frame.
    pub compressed: Vec<u8>,
}

/// What the purge removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Purged {
    pub messages: u64,
    pub bytes: i64,
}

impl Store {
    pub async fn insert_bodies(&self, bodies: &[StoredBody]) -> Result<()> {
        with_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            for b in bodies {
                sqlx::query("INSERT INTO backup (id, time_us, size, stored_size, body) VALUES ($1, $2, $3, $4, $5)")
                    .bind(&b.id)
                    .bind(b.time_us)
                    .bind(b.size)
                    .bind(b.compressed.len() as i64)
                    .bind(&b.compressed)
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
            let row = sqlx::query("SELECT id, time_us, size, body FROM backup WHERE id = $1").bind(id).fetch_optional(pool).await?;
            match row {
                Some(r) => Ok(Some(StoredBody { id: r.try_get("id")?, time_us: r.try_get("time_us")?, size: r.try_get("size")?, compressed: r.try_get("body")? })),
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

    /// Removes bodies older than `before_us`, then the oldest until at most `max_bytes` are stored.
    pub async fn purge_backup(&self, before_us: i64, max_bytes: Option<i64>) -> Result<Purged> {
        let mut purged = Purged::default();
        with_pool!(self, pool => {
            let r = sqlx::query("SELECT COUNT(*) AS n, CAST(COALESCE(SUM(stored_size), 0) AS BIGINT) AS b FROM backup WHERE time_us < $1").bind(before_us).fetch_one(pool).await?;
            let (n, b): (i64, i64) = (r.try_get("n")?, r.try_get("b")?);
            if n > 0 {
                sqlx::query("DELETE FROM backup WHERE time_us < $1").bind(before_us).execute(pool).await?;
                purged.messages += n as u64;
                purged.bytes += b;
            }
            if let Some(max) = max_bytes {
                loop {
                    let total: i64 = sqlx::query_scalar("SELECT CAST(COALESCE(SUM(stored_size), 0) AS BIGINT) FROM backup").fetch_one(pool).await?;
                    if total <= max {
                        break;
                    }
                    // Oldest first, a slice at a time.
                    let rows = sqlx::query("SELECT id, stored_size FROM backup ORDER BY time_us, id LIMIT 500").fetch_all(pool).await?;
                    if rows.is_empty() {
                        break;
                    }
                    let mut excess = total - max;
                    for row in rows {
                        if excess <= 0 {
                            break;
                        }
                        let id: String = row.try_get("id")?;
                        let size: i64 = row.try_get("stored_size")?;
                        sqlx::query("DELETE FROM backup WHERE id = $1").bind(&id).execute(pool).await?;
                        excess -= size;
                        purged.messages += 1;
                        purged.bytes += size;
                    }
                }
            }
            Ok(purged)
        })
    }
}
