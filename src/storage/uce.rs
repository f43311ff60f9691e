//! UCE state shared by every node: disposable addresses, the penalty box, traps managed in the
//! web UI, greylisting, the learning filter's token counts and the SMTP callback cache.

use anyhow::Result;
use serde::Serialize;
use sqlx::Row;

use super::{BeginWrite, Store, with_pool};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Disposable {
    /// The address the mail goes to, `user@domain`.
    pub owner: String,
    pub tag: String,
    /// The disposable address as first used, `tag.N.user@domain`.
    pub address: String,
    pub max_count: i64,
    pub used: i64,
    pub locked: bool,
    pub created_us: i64,
    pub last_us: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Penalty {
    pub ip: String,
    pub until_us: i64,
    pub reason: String,
    pub hits: i64,
}

/// The token row that holds how many messages were learned (spam, ham).
pub const TOTALS_TOKEN: i64 = 0;

/// Rows per multi-row statement (3 parameters each).
const TOKEN_ROWS: usize = 300;

impl Store {
    /// The disposable address of `owner` with `tag`, created (unused, with `max_count`) on first sight.
    pub async fn disposable(
        &self,
        owner: &str,
        tag: &str,
        address: &str,
        max_count: i64,
    ) -> Result<Disposable> {
        let now = crate::clock::now_us();
        with_pool!(self, pool => {
            sqlx::query("INSERT INTO uce_disposable (owner, tag, address, max_count, used, locked, created_us, last_us) VALUES ($1, $2, $3, $4, 0, FALSE, $5, $5) ON CONFLICT (owner, tag) DO NOTHING")
                .bind(owner).bind(tag).bind(address).bind(max_count).bind(now).execute(pool).await?;
        });
        // Deleted in the meantime (web UI, CLI): then there is nothing to count.
        self.disposables(Some(owner), Some(tag))
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| {
                anyhow::anyhow!("disposable address {tag} of {owner} was deleted meanwhile")
            })
    }

    /// Counts one delivered message; the address locks itself when it has had its share.
    pub async fn disposable_used(&self, owner: &str, tag: &str) -> Result<()> {
        with_pool!(self, pool => {
            sqlx::query("UPDATE uce_disposable SET used = used + 1, last_us = $3, locked = (locked OR used + 1 >= max_count) WHERE owner = $1 AND tag = $2")
                .bind(owner).bind(tag).bind(crate::clock::now_us()).execute(pool).await?;
            Ok(())
        })
    }

    /// Disposable addresses, of one owner and/or one tag.
    pub async fn disposables(
        &self,
        owner: Option<&str>,
        tag: Option<&str>,
    ) -> Result<Vec<Disposable>> {
        with_pool!(self, pool => {
            let rows = sqlx::query("SELECT owner, tag, address, max_count, used, locked, created_us, last_us FROM uce_disposable WHERE ($1 IS NULL OR owner = $1) AND ($2 IS NULL OR tag = $2) ORDER BY owner, tag")
                .bind(owner).bind(tag).fetch_all(pool).await?;
            rows.iter().map(|r| Ok(Disposable {
                owner: r.try_get("owner")?,
                tag: r.try_get("tag")?,
                address: r.try_get("address")?,
                max_count: r.try_get::<i32, _>("max_count")? as i64,
                used: r.try_get::<i32, _>("used")? as i64,
                locked: r.try_get("locked")?,
                created_us: r.try_get("created_us")?,
                last_us: r.try_get("last_us")?,
            })).collect()
        })
    }

    /// Locks, unlocks (`Some(bool)`) or resets (`None`: unused and unlocked) one disposable
    /// address; false when there is none.
    pub async fn set_disposable(
        &self,
        owner: &str,
        tag: &str,
        locked: Option<bool>,
    ) -> Result<bool> {
        let sql = match locked {
            Some(_) => "UPDATE uce_disposable SET locked = $3 WHERE owner = $1 AND tag = $2",
            None => "UPDATE uce_disposable SET used = 0, locked = $3 WHERE owner = $1 AND tag = $2",
        };
        with_pool!(self, pool => {
            let n = sqlx::query(sql).bind(owner).bind(tag).bind(locked.unwrap_or(false)).execute(pool).await?.rows_affected();
            Ok(n > 0)
        })
    }

    pub async fn delete_disposable(&self, owner: &str, tag: &str) -> Result<bool> {
        with_pool!(self, pool => {
            Ok(sqlx::query("DELETE FROM uce_disposable WHERE owner = $1 AND tag = $2").bind(owner).bind(tag).execute(pool).await?.rows_affected() > 0)
        })
    }

    /// Puts an IP into the penalty box (or keeps it there longer).
    pub async fn penalize(&self, ip: &str, until_us: i64, reason: &str) -> Result<()> {
        with_pool!(self, pool => {
            sqlx::query("INSERT INTO uce_penalty (ip, until_us, reason, hits) VALUES ($1, $2, $3, 1) ON CONFLICT (ip) DO UPDATE SET until_us = excluded.until_us, reason = excluded.reason, hits = uce_penalty.hits + 1")
                .bind(ip).bind(until_us).bind(reason).execute(pool).await?;
            Ok(())
        })
    }

    /// The penalty of an IP, if it is in the box now.
    pub async fn penalty(&self, ip: &str) -> Result<Option<Penalty>> {
        Ok(self.penalties().await?.into_iter().find(|p| p.ip == ip))
    }

    /// Everyone in the penalty box now.
    pub async fn penalties(&self) -> Result<Vec<Penalty>> {
        with_pool!(self, pool => {
            let rows = sqlx::query("SELECT ip, until_us, reason, hits FROM uce_penalty WHERE until_us > $1 ORDER BY until_us DESC")
                .bind(crate::clock::now_us()).fetch_all(pool).await?;
            rows.iter().map(|r| Ok(Penalty { ip: r.try_get("ip")?, until_us: r.try_get("until_us")?, reason: r.try_get("reason")?, hits: r.try_get::<i32, _>("hits")? as i64 })).collect()
        })
    }

    pub async fn release_penalty(&self, ip: &str) -> Result<bool> {
        with_pool!(self, pool => {
            Ok(sqlx::query("DELETE FROM uce_penalty WHERE ip = $1").bind(ip).execute(pool).await?.rows_affected() > 0)
        })
    }

    /// Trap addresses and patterns added in the web UI or CLI (the config's come on top).
    pub async fn traps(&self) -> Result<Vec<String>> {
        with_pool!(self, pool => {
            Ok(sqlx::query_scalar("SELECT pattern FROM uce_traps ORDER BY pattern").fetch_all(pool).await?)
        })
    }

    pub async fn add_trap(&self, pattern: &str, added_by: &str) -> Result<()> {
        with_pool!(self, pool => {
            sqlx::query("INSERT INTO uce_traps (pattern, added_by, created_us) VALUES ($1, $2, $3) ON CONFLICT (pattern) DO NOTHING")
                .bind(pattern.to_lowercase()).bind(added_by).bind(crate::clock::now_us()).execute(pool).await?;
            Ok(())
        })
    }

    pub async fn delete_trap(&self, pattern: &str) -> Result<bool> {
        with_pool!(self, pool => {
            Ok(sqlx::query("DELETE FROM uce_traps WHERE pattern = $1").bind(pattern.to_lowercase()).execute(pool).await?.rows_affected() > 0)
        })
    }

    /// Greylisting: records an attempt and says whether it may pass. A network allowed lately
    /// passes at once; a triplet passes once it was first seen `delay_us` ago (but not longer
    /// than `window_us`), which also allows its network until `allow_until_us`.
    pub async fn greylist(
        &self,
        triplet: &str,
        network: &str,
        delay_us: i64,
        window_us: i64,
        allow_until_us: i64,
    ) -> Result<bool> {
        let now = crate::clock::now_us();
        with_pool!(self, pool => {
            let allowed: Option<i64> = sqlx::query_scalar("SELECT until_us FROM uce_greylist_allow WHERE network = $1").bind(network).fetch_optional(pool).await?;
            if allowed.is_some_and(|u| u > now) {
                return Ok(true);
            }
            let first: Option<i64> = sqlx::query_scalar("SELECT first_us FROM uce_greylist WHERE triplet = $1").bind(triplet).fetch_optional(pool).await?;
            match first {
                Some(f) if now - f >= delay_us && now - f <= window_us => {
                    sqlx::query("INSERT INTO uce_greylist_allow (network, until_us) VALUES ($1, $2) ON CONFLICT (network) DO UPDATE SET until_us = excluded.until_us")
                        .bind(network).bind(allow_until_us).execute(pool).await?;
                    sqlx::query("DELETE FROM uce_greylist WHERE triplet = $1").bind(triplet).execute(pool).await?;
                    Ok(true)
                }
                Some(f) if now - f <= window_us => {
                    sqlx::query("UPDATE uce_greylist SET last_us = $2 WHERE triplet = $1").bind(triplet).bind(now).execute(pool).await?;
                    Ok(false)
                }
                _ => {
                    sqlx::query("INSERT INTO uce_greylist (triplet, first_us, last_us) VALUES ($1, $2, $2) ON CONFLICT (triplet) DO UPDATE SET first_us = excluded.first_us, last_us = excluded.last_us")
                        .bind(triplet).bind(now).execute(pool).await?;
                    Ok(false)
                }
            }
        })
    }

    /// Spam and ham counts of the given token hashes (absent tokens are left out).
    pub async fn token_counts(&self, hashes: &[i64]) -> Result<Vec<(i64, i64, i64)>> {
        let mut out = Vec::with_capacity(hashes.len());
        with_pool!(self, pool => {
            for chunk in hashes.chunks(TOKEN_ROWS * 3) {
                let list = (1..=chunk.len()).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ");
                let sql = format!("SELECT hash, spam, ham FROM uce_tokens WHERE hash IN ({list})");
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
                for h in chunk {
                    q = q.bind(*h);
                }
                for r in q.fetch_all(pool).await? {
                    out.push((r.try_get("hash")?, r.try_get("spam")?, r.try_get("ham")?));
                }
            }
            Ok(out)
        })
    }

    /// Learns one message's tokens as spam or ham, once per message key: learning the same
    /// message again as the other kind moves its counts over. False when nothing changed.
    pub async fn learn_tokens(&self, message: &str, spam: bool, hashes: &[i64]) -> Result<bool> {
        self.learn_tokens_from(message, spam, hashes, "").await
    }

    /// [`Store::learn_tokens`], noting where the message came from (`cli`, `click`, `trap`,
    /// `replay`, `journal`) for the filter's page.
    pub async fn learn_tokens_from(
        &self,
        message: &str,
        spam: bool,
        hashes: &[i64],
        source: &str,
    ) -> Result<bool> {
        let kind = if spam { "spam" } else { "ham" };
        let now = crate::clock::now_us();
        with_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            // Claim the message first, so two nodes learning it at once count it once.
            let claimed = sqlx::query("INSERT INTO uce_learned (message, kind, time_us, source) VALUES ($1, $2, $3, $4) ON CONFLICT (message) DO NOTHING")
                .bind(message).bind(kind).bind(now).bind(source).execute(&mut *tx).await?.rows_affected() == 1;
            let before: Option<String> = if claimed {
                None
            } else {
                let lock = if matches!(self, Store::Postgres(_)) { " FOR UPDATE" } else { "" };
                sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT kind FROM uce_learned WHERE message = $1{lock}"))).bind(message).fetch_optional(&mut *tx).await?
            };
            if !claimed && before.as_deref() == Some(kind) {
                return Ok(false);
            }
            // (+1 for the new kind, -1 for the old one when the message changes sides.)
            let (ds, dh): (i64, i64) = match (spam, before.is_some()) {
                (true, false) => (1, 0),
                (false, false) => (0, 1),
                (true, true) => (1, -1),
                (false, true) => (-1, 1),
            };
            let mut all = Vec::with_capacity(hashes.len() + 1);
            all.push(TOTALS_TOKEN);
            all.extend_from_slice(hashes);
            for chunk in all.chunks(TOKEN_ROWS) {
                let values = (0..chunk.len()).map(|i| format!("(${}, ${}, ${})", i * 3 + 1, i * 3 + 2, i * 3 + 3)).collect::<Vec<_>>().join(", ");
                let sql = format!("INSERT INTO uce_tokens (hash, spam, ham) VALUES {values} ON CONFLICT (hash) DO UPDATE SET spam = uce_tokens.spam + excluded.spam, ham = uce_tokens.ham + excluded.ham");
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
                for h in chunk {
                    q = q.bind(*h).bind(ds.max(0)).bind(dh.max(0));
                }
                // Negative deltas cannot go through VALUES (a new row must not start below 0),
                // so a change of sides subtracts in a second statement.
                q.execute(&mut *tx).await?;
                if ds < 0 || dh < 0 {
                    let list = (1..=chunk.len()).map(|i| format!("${}", i + 2)).collect::<Vec<_>>().join(", ");
                    let sql = format!("UPDATE uce_tokens SET spam = spam - $1, ham = ham - $2 WHERE hash IN ({list}) AND spam >= $1 AND ham >= $2");
                    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(-ds.min(0)).bind(-dh.min(0));
                    for h in chunk {
                        q = q.bind(*h);
                    }
                    q.execute(&mut *tx).await?;
                }
            }
            sqlx::query("UPDATE uce_learned SET kind = $2, time_us = $3, source = $4 WHERE message = $1").bind(message).bind(kind).bind(now).bind(source).execute(&mut *tx).await?;
            tx.commit().await?;
            Ok(true)
        })
    }

    /// How many spam and ham messages the filter has learned.
    pub async fn learned_totals(&self) -> Result<(i64, i64)> {
        Ok(self
            .token_counts(&[TOTALS_TOKEN])
            .await?
            .first()
            .map(|(_, s, h)| (*s, *h))
            .unwrap_or((0, 0)))
    }

    /// Deletes expired penalty, callback and greylisting state; greylisting attempts first seen
    /// before `stale_greylist_us` were never retried in time.
    pub async fn purge_uce(&self, stale_greylist_us: i64) -> Result<()> {
        let now = crate::clock::now_us();
        with_pool!(self, pool => {
            sqlx::query("DELETE FROM uce_penalty WHERE until_us <= $1").bind(now).execute(pool).await?;
            sqlx::query("DELETE FROM uce_callback WHERE until_us <= $1").bind(now).execute(pool).await?;
            sqlx::query("DELETE FROM uce_greylist_allow WHERE until_us <= $1").bind(now).execute(pool).await?;
            sqlx::query("DELETE FROM uce_greylist WHERE first_us < $1").bind(stale_greylist_us).execute(pool).await?;
            Ok(())
        })
    }

    /// The cached result of an SMTP callback to `ip`, if still fresh.
    pub async fn callback_cached(&self, ip: &str) -> Result<Option<bool>> {
        with_pool!(self, pool => {
            Ok(sqlx::query_scalar("SELECT ok FROM uce_callback WHERE ip = $1 AND until_us > $2").bind(ip).bind(crate::clock::now_us()).fetch_optional(pool).await?)
        })
    }

    pub async fn cache_callback(&self, ip: &str, ok: bool, until_us: i64) -> Result<()> {
        with_pool!(self, pool => {
            sqlx::query("INSERT INTO uce_callback (ip, ok, until_us) VALUES ($1, $2, $3) ON CONFLICT (ip) DO UPDATE SET ok = excluded.ok, until_us = excluded.until_us")
                .bind(ip).bind(ok).bind(until_us).execute(pool).await?;
            Ok(())
        })
    }
}
