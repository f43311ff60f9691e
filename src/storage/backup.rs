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
    pub async fn insert_bodies(&self, bodies: &[StoredBody]) -> Result<()> {
        with_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            for b in bodies {
                sqlx::query("INSERT INTO backup (id, time_us, size, stored_size, body, digest) VALUES ($1, $2, $3, $4, $5, $6)")
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
            let row = sqlx::query("SELECT id, time_us, size, body, digest FROM backup WHERE id = $1").bind(id).fetch_optional(pool).await?;
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
