//! Message bodies in SQL: one zstd-compressed copy per transaction, whatever its number of
//! recipients, keyed by the transaction id (the journal record tells its fate). Bodies live in
//! the database so that every node sharing PostgreSQL reaches every message (docs/storage.md).

use anyhow::Result;
use sqlx::Row;

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
    pub async fn insert_bodies(&self, bodies: &[StoredBody]) -> Result<()> {
        if let Store::Sqlite(pool) = self {
            let mut tx = pool.begin_write().await?;
            for b in bodies {
                if b.compressed.len() > STREAM_LIMIT {
                    insert_streamed(&mut tx, b).await?;
                    continue;
                }
                sqlx::query("INSERT INTO backup (id, time_us, size, stored_size, body, digest) VALUES ($1, $2, $3, $4, $5, $6)")
                    .bind(&b.id).bind(b.time_us).bind(b.size).bind(b.compressed.len() as i64).bind(&b.compressed).bind(&b.digest)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            return Ok(());
        }
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

/// Compressed bodies bigger than this are written into SQLite piece by piece.
const STREAM_LIMIT: usize = 1024 * 1024;
/// The piece written at a time.
const STREAM_PIECE: usize = 256 * 1024;

/// Stores one big body without the three more whole copies binding it would make (sqlx's owned
/// argument, SQLite's transient copy of the bound value and the record built from it): the row is
/// inserted with a zeroblob of the right length, then the body is written into it through
/// SQLite's incremental blob I/O, inside the caller's transaction (so it commits, or not, with
/// the rest of its batch).
async fn insert_streamed(
    tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
    b: &StoredBody,
) -> Result<()> {
    let len = b.compressed.len();
    // The digest goes to a table of its own: in `backup` it is the column after `body`, and
    // SQLite expands a zeroblob that is followed by data in the record (two more whole copies
    // of the body in memory); followed by an empty string, it stays a zeroblob.
    let row = sqlx::query("INSERT INTO backup (id, time_us, size, stored_size, body, digest) VALUES ($1, $2, $3, $4, zeroblob($5), '')")
        .bind(&b.id).bind(b.time_us).bind(b.size).bind(len as i64).bind(len as i64)
        .execute(&mut **tx)
        .await?
        .last_insert_rowid();
    sqlx::query("INSERT INTO backup_digest (id, digest) VALUES ($1, $2)")
        .bind(&b.id)
        .bind(&b.digest)
        .execute(&mut **tx)
        .await?;
    let mut handle = tx.lock_handle().await?;
    let db = handle.as_raw_handle().as_ptr();
    // SAFETY: the handle is locked away from sqlx's worker thread while `handle` lives, and every
    // pointer passed lives across the call; the blob is closed on every path.
    unsafe {
        use libsqlite3_sys as ffi;
        let mut blob: *mut ffi::sqlite3_blob = std::ptr::null_mut();
        let rc = ffi::sqlite3_blob_open(
            db,
            c"main".as_ptr(),
            c"backup".as_ptr(),
            c"body".as_ptr(),
            row,
            1,
            &mut blob,
        );
        if rc != ffi::SQLITE_OK {
            if !blob.is_null() {
                ffi::sqlite3_blob_close(blob);
            }
            anyhow::bail!(
                "cannot open the backup blob for writing: {}",
                sqlite_error(db)
            );
        }
        let mut at = 0;
        while at < len {
            let n = STREAM_PIECE.min(len - at);
            let rc = ffi::sqlite3_blob_write(
                blob,
                b.compressed[at..].as_ptr().cast(),
                n as i32,
                at as i32,
            );
            if rc != ffi::SQLITE_OK {
                let why = sqlite_error(db);
                ffi::sqlite3_blob_close(blob);
                anyhow::bail!("cannot write the backup blob: {why}");
            }
            at += n;
        }
        if ffi::sqlite3_blob_close(blob) != ffi::SQLITE_OK {
            anyhow::bail!("cannot close the backup blob: {}", sqlite_error(db));
        }
    }
    Ok(())
}

/// SQLite's last error message on this connection.
///
/// # Safety
/// `db` is a valid connection handle locked for this thread.
unsafe fn sqlite_error(db: *mut libsqlite3_sys::sqlite3) -> String {
    // SAFETY: sqlite3_errmsg returns a NUL-terminated string owned by the connection.
    unsafe {
        std::ffi::CStr::from_ptr(libsqlite3_sys::sqlite3_errmsg(db))
            .to_string_lossy()
            .into_owned()
    }
}
