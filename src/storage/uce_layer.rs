//! What people teach the learning filter: their "Spam" / "Not spam" clicks (one row per message
//! and person), the per-user layer those clicks feed (token counts per person), and where the
//! shared filter's messages came from — for the filter's admin page and `learn --from-journal`.

use anyhow::Result;
use serde::Serialize;
use sqlx::Row;

use super::{BeginWrite, Store, with_pool};

/// One person's click on one message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mark {
    /// The transaction whose kept message was marked.
    pub message: String,
    /// The account whose layer it is.
    pub owner: String,
    /// `spam` or `ham`.
    pub kind: String,
    /// Who clicked (`web:alice@...`, `link:alice@...`).
    pub actor: String,
    /// Did it go into the owner's layer (the filter disagreed with them)?
    pub personal: bool,
    pub time_us: i64,
}

/// How many messages one source taught the shared filter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LearnedFrom {
    /// `cli`, `click`, `trap`, `replay`, `journal`; empty: learned before sources were recorded.
    pub source: String,
    pub spam: i64,
    pub ham: i64,
    pub last_us: i64,
}

/// Rows per multi-row statement (at most 3 parameters each, plus 3).
const ROWS: usize = 300;
/// Hashes per lookup.
const LOOKUP: usize = 900;

impl Store {
    /// The owner's counts of the given token hashes (absent tokens left out): (hash, spam, ham).
    pub async fn user_token_counts(
        &self,
        owner: &str,
        hashes: &[i64],
    ) -> Result<Vec<(i64, i64, i64)>> {
        let mut out = Vec::new();
        with_pool!(self, pool => {
            // Most people have no layer: one indexed look settles it.
            let any: Option<i64> = sqlx::query_scalar("SELECT hash FROM uce_user_tokens WHERE owner = $1 LIMIT 1").bind(owner).fetch_optional(pool).await?;
            if any.is_none() {
                return Ok(out);
            }
            for chunk in hashes.chunks(LOOKUP) {
                let list = (2..chunk.len() + 2).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ");
                let sql = format!("SELECT hash, spam, ham FROM uce_user_tokens WHERE owner = $1 AND hash IN ({list})");
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(owner);
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

    /// Records a click of `owner` on `message` as `spam` or `ham`; `layer` are the tokens that go
    /// into the owner's layer (empty: the filter agreed, the layer is left alone). Clicking the
    /// same again changes nothing; clicking the other kind takes back what the first click put
    /// into the layer. False when nothing changed.
    pub async fn mark_message(
        &self,
        message: &str,
        owner: &str,
        spam: bool,
        actor: &str,
        layer: &[i64],
    ) -> Result<bool> {
        let kind = if spam { "spam" } else { "ham" };
        let tokens = layer
            .iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let now = crate::clock::now_us();
        with_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let before: Option<(String, String)> = sqlx::query_as("SELECT kind, tokens FROM uce_marks WHERE message = $1 AND owner = $2").bind(message).bind(owner).fetch_optional(&mut *tx).await?;
            if before.as_ref().is_some_and(|(k, _)| k == kind) {
                return Ok(false);
            }
            if let Some((old_kind, old_tokens)) = &before {
                let old: Vec<i64> = old_tokens.split(',').filter_map(|t| t.parse().ok()).collect();
                let (ds, dh) = if old_kind == "spam" { (1, 0) } else { (0, 1) };
                for chunk in old.chunks(ROWS) {
                    let list = (4..chunk.len() + 4).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ");
                    let sql = format!("UPDATE uce_user_tokens SET spam = spam - $2, ham = ham - $3 WHERE owner = $1 AND spam >= $2 AND ham >= $3 AND hash IN ({list})");
                    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(owner).bind(ds).bind(dh);
                    for h in chunk {
                        q = q.bind(*h);
                    }
                    q.execute(&mut *tx).await?;
                }
                sqlx::query("DELETE FROM uce_user_tokens WHERE owner = $1 AND spam = 0 AND ham = 0").bind(owner).execute(&mut *tx).await?;
            }
            let (ds, dh): (i64, i64) = if spam { (1, 0) } else { (0, 1) };
            for chunk in layer.chunks(ROWS) {
                let values = (0..chunk.len()).map(|i| format!("($1, ${}, $2, $3)", i + 4)).collect::<Vec<_>>().join(", ");
                let sql = format!("INSERT INTO uce_user_tokens (owner, hash, spam, ham) VALUES {values} ON CONFLICT (owner, hash) DO UPDATE SET spam = uce_user_tokens.spam + excluded.spam, ham = uce_user_tokens.ham + excluded.ham");
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(owner).bind(ds).bind(dh);
                for h in chunk {
                    q = q.bind(*h);
                }
                q.execute(&mut *tx).await?;
            }
            sqlx::query("INSERT INTO uce_marks (message, owner, kind, actor, personal, tokens, time_us) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (message, owner) DO UPDATE SET kind = excluded.kind, actor = excluded.actor, personal = excluded.personal, tokens = excluded.tokens, time_us = excluded.time_us")
                .bind(message).bind(owner).bind(kind).bind(actor).bind(!layer.is_empty()).bind(&tokens).bind(now).execute(&mut *tx).await?;
            tx.commit().await?;
            Ok(true)
        })
    }

    /// Clicks, newest first: of one owner, or everyone's.
    pub async fn marks(&self, owner: Option<&str>, limit: i64) -> Result<Vec<Mark>> {
        with_pool!(self, pool => {
            let rows = sqlx::query("SELECT message, owner, kind, actor, personal, time_us FROM uce_marks WHERE ($1 IS NULL OR owner = $1) ORDER BY time_us DESC LIMIT $2")
                .bind(owner).bind(limit).fetch_all(pool).await?;
            rows.iter().map(|r| Ok(Mark {
                message: r.try_get("message")?,
                owner: r.try_get("owner")?,
                kind: r.try_get("kind")?,
                actor: r.try_get("actor")?,
                personal: r.try_get("personal")?,
                time_us: r.try_get("time_us")?,
            })).collect()
        })
    }

    /// How many tokens the owner's layer holds.
    pub async fn user_layer_size(&self, owner: &str) -> Result<i64> {
        with_pool!(self, pool => {
            Ok(sqlx::query_scalar("SELECT COUNT(*) FROM uce_user_tokens WHERE owner = $1").bind(owner).fetch_one(pool).await?)
        })
    }

    /// How many people have a layer.
    pub async fn user_layers(&self) -> Result<i64> {
        with_pool!(self, pool => {
            Ok(sqlx::query_scalar("SELECT COUNT(DISTINCT owner) FROM uce_user_tokens").fetch_one(pool).await?)
        })
    }

    /// The shared filter's messages by where they came from.
    pub async fn learned_by_source(&self) -> Result<Vec<LearnedFrom>> {
        with_pool!(self, pool => {
            let rows = sqlx::query("SELECT source, kind, COUNT(*) AS n, MAX(time_us) AS last FROM uce_learned GROUP BY source, kind ORDER BY source")
                .fetch_all(pool).await?;
            let mut out: Vec<LearnedFrom> = Vec::new();
            for r in rows {
                let (source, kind, n, last): (String, String, i64, i64) = (r.try_get("source")?, r.try_get("kind")?, r.try_get("n")?, r.try_get("last")?);
                let i = match out.iter().position(|l| l.source == source) {
                    Some(i) => i,
                    None => {
                        out.push(LearnedFrom { source, spam: 0, ham: 0, last_us: 0 });
                        out.len() - 1
                    }
                };
                let l = &mut out[i];
                if kind == "spam" { l.spam += n } else { l.ham += n }
                l.last_us = l.last_us.max(last);
            }
            Ok(out)
        })
    }

    /// The account an address belongs to: itself, or the account it is an alias of.
    pub async fn account_of(&self, address: &str) -> Result<String> {
        let address = address.to_lowercase();
        const SQL: &str = "SELECT address FROM user_aliases WHERE alias = $1";
        if let Store::Sqlite(pool) = self {
            // Read for every message: on this thread, not through sqlx's.
            let owner =
                super::sqlite_reader::query(pool, SQL, &[address.as_str().into()], |c| c.text(0))?;
            return Ok(owner.into_iter().next().unwrap_or(address));
        }
        with_pool!(self, pool => {
            let owner: Option<String> = sqlx::query_scalar(SQL).bind(&address).fetch_optional(pool).await?;
            Ok(owner.unwrap_or(address))
        })
    }
}
