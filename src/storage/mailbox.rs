//! A user's POP3 view: messages queued for their addresses, plus (optionally) what was delivered
//! to them lately from the backup, minus what they deleted over POP3 (hidden for them only).

use anyhow::Result;
use sqlx::Row;

use super::{BeginWrite, Store, with_pool};

/// One message of a POP3 view. `uid` is the transaction id: stable across sessions and across
/// the move from queue to delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailboxEntry {
    pub uid: String,
    pub time_us: i64,
    pub size: i64,
    /// Where the body is: the queue (with sponts' Received: header) or the backup.
    pub queued: bool,
}

impl Store {
    /// The view for these addresses (lowercase), oldest first.
    pub async fn mailbox(
        &self,
        addresses: &[String],
        delivered_since_us: Option<i64>,
    ) -> Result<Vec<MailboxEntry>> {
        if addresses.is_empty() {
            return Ok(Vec::new());
        }
        let list = (2..2 + addresses.len())
            .map(|i| format!("${i}"))
            .collect::<Vec<_>>()
            .join(", ");
        let queued_sql = format!(
            "SELECT DISTINCT q.id, q.time_us, q.size FROM queue q JOIN queue_rcpt r ON r.queue_id = q.id \
             WHERE r.done = $1 AND LOWER(r.address) IN ({list})"
        );
        let delivered_sql = format!(
            "SELECT DISTINCT j.id, j.time_us, b.size FROM journal j JOIN journal_rcpt r ON r.journal_id = j.id JOIN backup b ON b.id = j.id \
             WHERE r.accepted = $1 AND LOWER(r.address) IN ({list}) AND j.outcome = 'delivered' AND j.replay_of IS NULL AND j.time_us >= ${}",
            2 + addresses.len()
        );
        let hidden_sql = format!(
            "SELECT message_id FROM pop3_hidden WHERE address IN ({})",
            (1..=addresses.len())
                .map(|i| format!("${i}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        with_pool!(self, pool => {
            let mut out: Vec<MailboxEntry> = Vec::new();
            let mut q = sqlx::query(sqlx::AssertSqlSafe(queued_sql)).bind(false);
            for a in addresses {
                q = q.bind(a.clone());
            }
            for r in q.fetch_all(pool).await? {
                out.push(MailboxEntry { uid: r.try_get("id")?, time_us: r.try_get("time_us")?, size: r.try_get("size")?, queued: true });
            }
            if let Some(since) = delivered_since_us {
                let mut q = sqlx::query(sqlx::AssertSqlSafe(delivered_sql)).bind(true);
                for a in addresses {
                    q = q.bind(a.clone());
                }
                for r in q.bind(since).fetch_all(pool).await? {
                    let uid: String = r.try_get("id")?;
                    if !out.iter().any(|e| e.uid == uid) {
                        out.push(MailboxEntry { uid, time_us: r.try_get("time_us")?, size: r.try_get("size")?, queued: false });
                    }
                }
            }
            let mut q = sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(hidden_sql));
            for a in addresses {
                q = q.bind(a.clone());
            }
            let hidden: std::collections::HashSet<String> = q.fetch_all(pool).await?.into_iter().collect();
            out.retain(|e| !hidden.contains(&e.uid));
            out.sort_by(|a, b| (a.time_us, &a.uid).cmp(&(b.time_us, &b.uid)));
            Ok(out)
        })
    }

    /// DELE, committed at QUIT: the message leaves this user's POP3 view, nothing else.
    pub async fn pop3_hide(&self, address: &str, uids: &[String]) -> Result<()> {
        with_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            for uid in uids {
                sqlx::query("INSERT INTO pop3_hidden (address, message_id) VALUES ($1, $2) ON CONFLICT (address, message_id) DO NOTHING")
                    .bind(address.to_lowercase())
                    .bind(uid)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }
}
