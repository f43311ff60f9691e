//! Small shared state for signed links and digests: server secrets (made once, shared by every
//! node through the database), single-use link tokens, and when each user last got a digest.

use anyhow::Result;

use super::{Store, with_pool};

impl Store {
    /// The secret called `name`, made from `fresh` the first time (the first node to ask wins).
    pub async fn secret(&self, name: &str, fresh: &str) -> Result<String> {
        with_pool!(self, pool => {
            sqlx::query("INSERT INTO secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING").bind(name).bind(fresh).execute(pool).await?;
            Ok(sqlx::query_scalar("SELECT value FROM secrets WHERE name = $1").bind(name).fetch_one(pool).await?)
        })
    }

    /// Marks a link used; false if it was used before (exactly one caller wins).
    pub async fn use_link(&self, token_hash: &str) -> Result<bool> {
        with_pool!(self, pool => {
            let r = sqlx::query("INSERT INTO used_links (token_hash, used_us) VALUES ($1, $2) ON CONFLICT (token_hash) DO NOTHING")
                .bind(token_hash)
                .bind(crate::clock::now_us())
                .execute(pool)
                .await?;
            Ok(r.rows_affected() == 1)
        })
    }

    /// Gives a link back (its use did not deliver anything).
    pub async fn release_link(&self, token_hash: &str) -> Result<()> {
        with_pool!(self, pool => {
            sqlx::query("DELETE FROM used_links WHERE token_hash = $1").bind(token_hash).execute(pool).await?;
            Ok(())
        })
    }

    pub async fn link_used(&self, token_hash: &str) -> Result<bool> {
        with_pool!(self, pool => {
            let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM used_links WHERE token_hash = $1").bind(token_hash).fetch_one(pool).await?;
            Ok(n > 0)
        })
    }

    pub async fn last_digest(&self, address: &str) -> Result<Option<i64>> {
        with_pool!(self, pool => {
            Ok(sqlx::query_scalar("SELECT last_us FROM digest_state WHERE address = $1").bind(address).fetch_optional(pool).await?)
        })
    }

    pub async fn set_last_digest(&self, address: &str, us: i64) -> Result<()> {
        with_pool!(self, pool => {
            sqlx::query("INSERT INTO digest_state (address, last_us) VALUES ($1, $2) ON CONFLICT (address) DO UPDATE SET last_us = $2")
                .bind(address)
                .bind(us)
                .execute(pool)
                .await?;
            Ok(())
        })
    }
}
