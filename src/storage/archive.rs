//! The archive's tables in SQL: seals (signed roots over the kept messages of a period, chained)
//! with the leaves they cover, signed purge records, legal holds and their audit trail. What the
//! rows mean and how they are checked is in `crate::archive`.

use anyhow::Result;
use sqlx::Row;

use super::{BeginWrite, Store, with_pool};

/// One link of the chain: the Merkle root over the (id, digest) of the messages kept in
/// `[from_us, until_us)`, signed together with the previous link's root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seal {
    pub seq: i64,
    /// `YYYY-MM-DD` (UTC) of `from_us`.
    pub day: String,
    pub from_us: i64,
    pub until_us: i64,
    pub count: i64,
    pub root: String,
    pub prev_root: String,
    pub signature: String,
    pub key_id: String,
    pub sealed_us: i64,
}

/// A message as the archive checks it.
#[derive(Debug, Clone)]
pub struct KeptRow {
    pub id: String,
    pub time_us: i64,
    pub size: i64,
    /// SHA-256 (hex) recorded at insertion; empty for messages kept before it was.
    pub digest: String,
    pub compressed: Vec<u8>,
}

/// A signed record of what one purge pass removed on one day: lines `id digest reason`.
#[derive(Debug, Clone)]
pub struct PurgeRecord {
    pub pass_us: i64,
    pub day: String,
    pub entries: String,
    pub signature: String,
    pub key_id: String,
}

/// What the purge needs to know of a kept message: its class and the people it concerns.
#[derive(Debug, Clone)]
pub struct PurgeCandidate {
    pub id: String,
    pub time_us: i64,
    pub stored_size: i64,
    pub digest: String,
    /// From the journal (None: no journal record).
    pub direction: Option<String>,
    pub outcome: Option<String>,
    pub flag: Option<String>,
    pub search_text: Option<String>,
    /// Sender and recipients, lowercase.
    pub parties: Vec<String>,
}

/// A legal hold.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Hold {
    pub id: i64,
    /// `user`, `address` or `search`.
    pub kind: String,
    pub target: String,
    /// For a user: the address and the aliases it had when the hold was set (space-separated).
    pub addresses: String,
    pub reason: String,
    pub set_by: String,
    pub set_us: i64,
    pub released_us: Option<i64>,
}

/// One line of the hold audit trail.
#[derive(Debug, Clone, serde::Serialize)]
pub struct HoldAudit {
    pub hold_id: i64,
    pub time_us: i64,
    /// `set` or `released`.
    pub action: String,
    pub actor: String,
    pub reason: String,
}

fn seal_of(r: &impl SealRow) -> Result<Seal> {
    r.seal()
}

trait SealRow {
    fn seal(&self) -> Result<Seal>;
}

macro_rules! seal_row {
    ($row:ty) => {
        impl SealRow for $row {
            fn seal(&self) -> Result<Seal> {
                Ok(Seal {
                    seq: self.try_get("seq")?,
                    day: self.try_get("day")?,
                    from_us: self.try_get("from_us")?,
                    until_us: self.try_get("until_us")?,
                    count: self.try_get("count")?,
                    root: self.try_get("root")?,
                    prev_root: self.try_get("prev_root")?,
                    signature: self.try_get("signature")?,
                    key_id: self.try_get("key_id")?,
                    sealed_us: self.try_get("sealed_us")?,
                })
            }
        }
    };
}
seal_row!(sqlx::sqlite::SqliteRow);
seal_row!(sqlx::postgres::PgRow);

const SEAL_COLUMNS: &str =
    "seq, day, from_us, until_us, count, root, prev_root, signature, key_id, sealed_us";

impl Store {
    /// Every seal in chain order, or those of `since_day` (YYYY-MM-DD) and later plus the one before.
    pub async fn seals(&self, since_day: Option<&str>) -> Result<Vec<Seal>> {
        with_pool!(self, pool => {
            let rows = match since_day {
                Some(d) => sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {SEAL_COLUMNS} FROM archive_seals WHERE seq >= COALESCE((SELECT MAX(seq) FROM archive_seals WHERE day < $1), 0) ORDER BY seq"))).bind(d).fetch_all(pool).await?,
                None => sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {SEAL_COLUMNS} FROM archive_seals ORDER BY seq"))).fetch_all(pool).await?,
            };
            rows.iter().map(seal_of).collect()
        })
    }

    /// The newest seal.
    pub async fn last_seal(&self) -> Result<Option<Seal>> {
        with_pool!(self, pool => {
            let row = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {SEAL_COLUMNS} FROM archive_seals ORDER BY seq DESC LIMIT 1"))).fetch_optional(pool).await?;
            row.as_ref().map(seal_of).transpose()
        })
    }

    /// The time of the oldest kept message.
    pub async fn oldest_kept_us(&self) -> Result<Option<i64>> {
        with_pool!(self, pool => Ok(sqlx::query_scalar("SELECT MIN(time_us) FROM backup").fetch_one(pool).await?))
    }

    /// (id, recorded digest) of the messages kept in `[from_us, until_us)`.
    pub async fn kept_digests(&self, from_us: i64, until_us: i64) -> Result<Vec<(String, String)>> {
        with_pool!(self, pool => {
            Ok(sqlx::query_as("SELECT b.id, COALESCE((SELECT d.digest FROM backup_digest d WHERE d.id = b.id), b.digest) AS digest FROM backup b WHERE b.time_us >= $1 AND b.time_us < $2").bind(from_us).bind(until_us).fetch_all(pool).await?)
        })
    }

    /// Records a digest where none was recorded at insertion (messages kept before it was).
    pub async fn set_missing_digest(&self, id: &str, digest: &str) -> Result<()> {
        with_pool!(self, pool => {
            sqlx::query("UPDATE backup SET digest = $1 WHERE id = $2 AND digest = '' AND NOT EXISTS (SELECT 1 FROM backup_digest WHERE id = $2)").bind(digest).bind(id).execute(pool).await?;
            Ok(())
        })
    }

    /// Adds a seal and its leaves; false when another node added this link first.
    pub async fn insert_seal(&self, seal: &Seal, leaves: &[(String, String)]) -> Result<bool> {
        with_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let r = sqlx::query(sqlx::AssertSqlSafe(format!("INSERT INTO archive_seals ({SEAL_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (seq) DO NOTHING")))
                .bind(seal.seq).bind(&seal.day).bind(seal.from_us).bind(seal.until_us).bind(seal.count).bind(&seal.root)
                .bind(&seal.prev_root).bind(&seal.signature).bind(&seal.key_id).bind(seal.sealed_us)
                .execute(&mut *tx)
                .await?;
            if r.rows_affected() == 0 {
                return Ok(false);
            }
            for (id, digest) in leaves {
                sqlx::query("INSERT INTO archive_leaves (seq, id, digest) VALUES ($1, $2, $3)").bind(seal.seq).bind(id).bind(digest).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(true)
        })
    }

    /// The (id, digest) leaves a seal covers, by id.
    pub async fn seal_leaves(&self, seq: i64) -> Result<Vec<(String, String)>> {
        with_pool!(self, pool => {
            Ok(sqlx::query_as("SELECT id, digest FROM archive_leaves WHERE seq = $1 ORDER BY id").bind(seq).fetch_all(pool).await?)
        })
    }

    /// Kept messages with `time_us` in `[from_us, until_us)`, after `after` (time, id) in that order.
    pub async fn kept_page(
        &self,
        from_us: i64,
        until_us: i64,
        after: Option<&(i64, String)>,
        limit: i64,
    ) -> Result<Vec<KeptRow>> {
        let (t, id) = after.cloned().unwrap_or((i64::MIN, String::new()));
        with_pool!(self, pool => {
            let rows = sqlx::query("SELECT b.id, b.time_us, b.size, COALESCE((SELECT d.digest FROM backup_digest d WHERE d.id = b.id), b.digest) AS digest, b.body FROM backup b WHERE b.time_us >= $1 AND b.time_us < $2 AND (b.time_us > $3 OR (b.time_us = $3 AND b.id > $4)) ORDER BY b.time_us, b.id LIMIT $5")
                .bind(from_us).bind(until_us).bind(t).bind(id).bind(limit)
                .fetch_all(pool)
                .await?;
            rows.iter()
                .map(|r| Ok(KeptRow { id: r.try_get("id")?, time_us: r.try_get("time_us")?, size: r.try_get("size")?, digest: r.try_get("digest")?, compressed: r.try_get("body")? }))
                .collect()
        })
    }

    /// Every purge record, oldest first.
    pub async fn purge_records(&self) -> Result<Vec<PurgeRecord>> {
        with_pool!(self, pool => {
            let rows = sqlx::query("SELECT pass_us, day, entries, signature, key_id FROM archive_purges ORDER BY pass_us, day").fetch_all(pool).await?;
            rows.iter()
                .map(|r| Ok(PurgeRecord { pass_us: r.try_get("pass_us")?, day: r.try_get("day")?, entries: r.try_get("entries")?, signature: r.try_get("signature")?, key_id: r.try_get("key_id")? }))
                .collect()
        })
    }

    /// Kept messages older than `before_us`, after `after` (time, id), oldest first, with what
    /// the journal says of them.
    pub async fn purge_candidates(
        &self,
        before_us: i64,
        after: Option<&(i64, String)>,
        limit: i64,
    ) -> Result<Vec<PurgeCandidate>> {
        let (t, id) = after.cloned().unwrap_or((i64::MIN, String::new()));
        with_pool!(self, pool => {
            let rows = sqlx::query(
                "SELECT b.id, b.time_us, b.stored_size, COALESCE((SELECT d.digest FROM backup_digest d WHERE d.id = b.id), b.digest) AS digest, j.direction, j.outcome, j.flag, j.search_text FROM backup b LEFT JOIN journal j ON j.id = b.id \
                 WHERE b.time_us < $1 AND (b.time_us > $2 OR (b.time_us = $2 AND b.id > $3)) ORDER BY b.time_us, b.id LIMIT $4",
            )
            .bind(before_us).bind(t).bind(id).bind(limit)
            .fetch_all(pool)
            .await?;
            // Their people in one query per page, not one per message.
            let ids: Vec<String> = rows.iter().map(|r| r.try_get("id")).collect::<Result<_, _>>()?;
            let mut people: std::collections::HashMap<String, Vec<String>> = std::collections::HashMap::new();
            if !ids.is_empty() {
                let marks: Vec<String> = (1..=ids.len()).map(|i| format!("${i}")).collect();
                let sql = format!("SELECT journal_id, address FROM journal_party WHERE journal_id IN ({})", marks.join(", "));
                let mut q = sqlx::query_as::<_, (String, String)>(sqlx::AssertSqlSafe(sql));
                for id in &ids {
                    q = q.bind(id);
                }
                for (id, address) in q.fetch_all(pool).await? {
                    people.entry(id).or_default().push(address);
                }
            }
            let mut out = Vec::with_capacity(rows.len());
            for r in &rows {
                let id: String = r.try_get("id")?;
                let parties = people.remove(&id).unwrap_or_default();
                out.push(PurgeCandidate {
                    id,
                    time_us: r.try_get("time_us")?,
                    stored_size: r.try_get("stored_size")?,
                    digest: r.try_get("digest")?,
                    direction: r.try_get("direction")?,
                    outcome: r.try_get("outcome")?,
                    flag: r.try_get("flag")?,
                    search_text: r.try_get("search_text")?,
                    parties,
                });
            }
            Ok(out)
        })
    }

    /// Removes kept messages and writes the signed records of their removal, in one transaction.
    pub async fn purge_with_records(&self, ids: &[String], records: &[PurgeRecord]) -> Result<()> {
        with_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            for r in records {
                sqlx::query("INSERT INTO archive_purges (pass_us, day, entries, signature, key_id) VALUES ($1, $2, $3, $4, $5)")
                    .bind(r.pass_us).bind(&r.day).bind(&r.entries).bind(&r.signature).bind(&r.key_id)
                    .execute(&mut *tx)
                    .await?;
            }
            for id in ids {
                sqlx::query("DELETE FROM backup WHERE id = $1").bind(id).execute(&mut *tx).await?;
                sqlx::query("DELETE FROM backup_digest WHERE id = $1").bind(id).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    /// Stored bytes of the kept messages.
    pub async fn kept_stored_bytes(&self) -> Result<i64> {
        with_pool!(self, pool => Ok(sqlx::query_scalar("SELECT CAST(COALESCE(SUM(stored_size), 0) AS BIGINT) FROM backup").fetch_one(pool).await?))
    }

    /// Sets a hold and audits it; its id.
    pub async fn add_hold(
        &self,
        kind: &str,
        target: &str,
        addresses: &str,
        reason: &str,
        actor: &str,
    ) -> Result<i64> {
        let now = crate::clock::now_us();
        with_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let id: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) + 1 FROM archive_holds").fetch_one(&mut *tx).await?;
            sqlx::query("INSERT INTO archive_holds (id, kind, target, addresses, reason, set_by, set_us) VALUES ($1, $2, $3, $4, $5, $6, $7)")
                .bind(id).bind(kind).bind(target).bind(addresses).bind(reason).bind(actor).bind(now)
                .execute(&mut *tx)
                .await?;
            sqlx::query("INSERT INTO archive_hold_audit (hold_id, time_us, action, actor, reason) VALUES ($1, $2, 'set', $3, $4)")
                .bind(id).bind(now).bind(actor).bind(reason)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(id)
        })
    }

    /// Releases a hold (audited); false if there is no such hold in force.
    pub async fn release_hold(&self, id: i64, reason: &str, actor: &str) -> Result<bool> {
        let now = crate::clock::now_us();
        with_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let r = sqlx::query("UPDATE archive_holds SET released_us = $1 WHERE id = $2 AND released_us IS NULL").bind(now).bind(id).execute(&mut *tx).await?;
            if r.rows_affected() == 0 {
                return Ok(false);
            }
            sqlx::query("INSERT INTO archive_hold_audit (hold_id, time_us, action, actor, reason) VALUES ($1, $2, 'released', $3, $4)")
                .bind(id).bind(now).bind(actor).bind(reason)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(true)
        })
    }

    /// Holds in force (or all, released ones too), by id.
    pub async fn holds(&self, with_released: bool) -> Result<Vec<Hold>> {
        with_pool!(self, pool => {
            let sql = if with_released { "SELECT * FROM archive_holds ORDER BY id" } else { "SELECT * FROM archive_holds WHERE released_us IS NULL ORDER BY id" };
            let rows = sqlx::query(sql).fetch_all(pool).await?;
            rows.iter()
                .map(|r| {
                    Ok(Hold {
                        id: r.try_get("id")?,
                        kind: r.try_get("kind")?,
                        target: r.try_get("target")?,
                        addresses: r.try_get("addresses")?,
                        reason: r.try_get("reason")?,
                        set_by: r.try_get("set_by")?,
                        set_us: r.try_get("set_us")?,
                        released_us: r.try_get("released_us")?,
                    })
                })
                .collect()
        })
    }

    /// The hold audit trail, oldest first.
    pub async fn hold_audit(&self) -> Result<Vec<HoldAudit>> {
        with_pool!(self, pool => {
            let rows = sqlx::query("SELECT hold_id, time_us, action, actor, reason FROM archive_hold_audit ORDER BY time_us, hold_id").fetch_all(pool).await?;
            rows.iter()
                .map(|r| Ok(HoldAudit { hold_id: r.try_get("hold_id")?, time_us: r.try_get("time_us")?, action: r.try_get("action")?, actor: r.try_get("actor")?, reason: r.try_get("reason")? }))
                .collect()
        })
    }

    /// Per UTC day since `since_us`: (day start, messages, stored bytes) of what is kept now.
    pub async fn kept_per_day(&self, since_us: i64) -> Result<Vec<(i64, i64, i64)>> {
        with_pool!(self, pool => {
            Ok(sqlx::query_as("SELECT CAST(time_us / 86400000000 AS BIGINT) * 86400000000 AS d, COUNT(*), CAST(SUM(stored_size) AS BIGINT) FROM backup WHERE time_us >= $1 GROUP BY d ORDER BY d")
                .bind(since_us)
                .fetch_all(pool)
                .await?)
        })
    }
}

impl Store {
    /// A secret if it exists (reading never makes one).
    pub async fn existing_secret(&self, name: &str) -> Result<Option<String>> {
        with_pool!(self, pool => Ok(sqlx::query_scalar("SELECT value FROM secrets WHERE name = $1").bind(name).fetch_optional(pool).await?))
    }

    /// (direction, outcome, flag, messages, raw bytes, stored bytes) of the kept mail.
    pub async fn kept_by_journal_class(
        &self,
    ) -> Result<
        Vec<(
            Option<String>,
            Option<String>,
            Option<String>,
            i64,
            i64,
            i64,
        )>,
    > {
        with_pool!(self, pool => {
            Ok(sqlx::query_as(
                "SELECT j.direction, j.outcome, j.flag, COUNT(*), CAST(SUM(b.size) AS BIGINT), CAST(SUM(b.stored_size) AS BIGINT) \
                 FROM backup b LEFT JOIN journal j ON j.id = b.id GROUP BY j.direction, j.outcome, j.flag",
            )
            .fetch_all(pool)
            .await?)
        })
    }
}
