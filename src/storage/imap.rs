//! The archive as IMAP sees it: a person's kept messages with the IMAP UID each was given, and
//! the UIDs themselves (handed out once per message, ascending, never reused). Who may see which
//! message follows the web UI's rule (`journal_party`: mail to or from one of their addresses).

use anyhow::Result;
use sqlx::Row;

use super::{BeginWrite, Store, with_pool};

/// One kept message of a person, as their IMAP folders need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchivedMessage {
    pub id: String,
    pub time_us: i64,
    pub size: i64,
    /// None: no UID handed out yet.
    pub uid: Option<i64>,
    /// Sent by them to the outside (an outbound message with their address as the sender).
    pub sent: bool,
    /// Accepted for one of their addresses (as written, or as delivered for a disposable address).
    pub received: bool,
}

/// UIDs handed out per statement.
const UID_CHUNK: usize = 500;

impl Store {
    /// The kept messages to or from these addresses (lowercase), oldest first: no replays (they
    /// have no copy of their own) and no mail refused for a virus (that content is the admins').
    pub async fn archived_messages(&self, addresses: &[String]) -> Result<Vec<ArchivedMessage>> {
        if addresses.is_empty() {
            return Ok(Vec::new());
        }
        let list = (2..2 + addresses.len())
            .map(|i| format!("${i}"))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT j.id, j.time_us, b.size, j.direction, LOWER(j.sender) AS sender, u.uid, \
             EXISTS (SELECT 1 FROM journal_rcpt r WHERE r.journal_id = j.id AND r.accepted = $1 AND (LOWER(r.address) IN ({list}) OR LOWER(r.delivered_to) IN ({list}))) AS received \
             FROM journal j JOIN backup b ON b.id = j.id LEFT JOIN imap_uid u ON u.message_id = j.id \
             WHERE j.id IN (SELECT journal_id FROM journal_party WHERE address IN ({list})) AND j.replay_of IS NULL \
             AND (j.flag IS NULL OR j.flag NOT IN ('virus', 'blocked')) ORDER BY j.time_us, j.id"
        );
        with_pool!(self, pool => {
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(true);
            for a in addresses {
                q = q.bind(a.clone());
            }
            let mut out = Vec::new();
            // Row by row: a person's whole archive is never held twice (rows and messages).
            let mut rows = q.fetch(pool);
            while let Some(r) = futures_util::TryStreamExt::try_next(&mut rows).await? {
                let sender: String = r.try_get("sender")?;
                let direction: String = r.try_get("direction")?;
                out.push(ArchivedMessage {
                    id: r.try_get("id")?,
                    time_us: r.try_get("time_us")?,
                    size: r.try_get("size")?,
                    uid: r.try_get("uid")?,
                    sent: direction == "out" && addresses.contains(&sender),
                    received: r.try_get("received")?,
                });
            }
            Ok(out)
        })
    }

    /// The UIDs of these messages, in the same order; those without one get the next ones, in
    /// the order given (so mail listed later never gets a lower UID than mail listed before).
    pub async fn imap_uids(&self, ids: &[String]) -> Result<Vec<i64>> {
        let mut out = Vec::with_capacity(ids.len());
        with_pool!(self, pool => {
            for chunk in ids.chunks(UID_CHUNK) {
                let mut tx = pool.begin_write().await?;
                for id in chunk {
                    sqlx::query("INSERT INTO imap_uid (message_id) VALUES ($1) ON CONFLICT (message_id) DO NOTHING").bind(id).execute(&mut *tx).await?;
                }
                tx.commit().await?;
                let list = (1..=chunk.len()).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ");
                let mut q = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT message_id, uid FROM imap_uid WHERE message_id IN ({list})")));
                for id in chunk {
                    q = q.bind(id.clone());
                }
                let found: std::collections::HashMap<String, i64> =
                    q.fetch_all(pool).await?.into_iter().map(|r| Ok((r.try_get("message_id")?, r.try_get("uid")?))).collect::<Result<_>>()?;
                for id in chunk {
                    out.push(*found.get(id).ok_or_else(|| anyhow::anyhow!("no IMAP UID for {id}"))?);
                }
            }
            Ok(out)
        })
    }

    /// UIDVALIDITY: made once (the seconds when first asked) and kept with the store, so it
    /// changes only with a new store — exactly when the UIDs start again.
    pub async fn imap_uidvalidity(&self) -> Result<u32> {
        let fresh = ((crate::clock::now_us() / 1_000_000) as u32)
            .max(1)
            .to_string();
        let v = self.secret("imap_uidvalidity", &fresh).await?;
        Ok(v.parse::<u32>().unwrap_or(1).max(1))
    }
}
