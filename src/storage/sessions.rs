//! Web and API sessions in SQL, so that they survive a restart and every node sharing the
//! database knows them. Only a hash of the token is stored: a copy of the database does not let
//! anyone in.

use anyhow::Result;
use sqlx::Row;

use super::{Store, with_pool};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebSession {
    pub address: String,
    pub csrf: String,
    pub expires_us: i64,
    /// The second factor was given in this session (or the account has none).
    pub second_factor: bool,
}

impl Store {
    pub async fn create_session(
        &self,
        token_hash: &str,
        address: &str,
        csrf: &str,
        expires_us: i64,
        second_factor: bool,
    ) -> Result<()> {
        with_pool!(self, pool => {
            sqlx::query("INSERT INTO web_sessions (token_hash, address, csrf, created_us, expires_us, second_factor) VALUES ($1, $2, $3, $4, $5, $6)")
                .bind(token_hash)
                .bind(address)
                .bind(csrf)
                .bind(crate::clock::now_us())
                .bind(expires_us)
                .bind(second_factor)
                .execute(pool)
                .await?;
            Ok(())
        })
    }

    /// The live session for a token hash (expired ones are not returned).
    pub async fn session(&self, token_hash: &str) -> Result<Option<WebSession>> {
        with_pool!(self, pool => {
            let row = sqlx::query("SELECT address, csrf, expires_us, second_factor FROM web_sessions WHERE token_hash = $1 AND expires_us > $2")
                .bind(token_hash)
                .bind(crate::clock::now_us())
                .fetch_optional(pool)
                .await?;
            match row {
                Some(r) => Ok(Some(WebSession { address: r.try_get("address")?, csrf: r.try_get("csrf")?, expires_us: r.try_get("expires_us")?, second_factor: r.try_get("second_factor")? })),
                None => Ok(None),
            }
        })
    }

    pub async fn delete_session(&self, token_hash: &str) -> Result<()> {
        with_pool!(self, pool => {
            sqlx::query("DELETE FROM web_sessions WHERE token_hash = $1").bind(token_hash).execute(pool).await?;
            Ok(())
        })
    }

    /// The session's second factor was given: it lasts until `expires_us` now.
    pub async fn pass_second_factor(&self, token_hash: &str, expires_us: i64) -> Result<()> {
        with_pool!(self, pool => {
            sqlx::query("UPDATE web_sessions SET second_factor = TRUE, expires_us = $2 WHERE token_hash = $1").bind(token_hash).bind(expires_us).execute(pool).await?;
            Ok(())
        })
    }

    pub async fn delete_expired_sessions(&self) -> Result<u64> {
        with_pool!(self, pool => {
            let r = sqlx::query("DELETE FROM web_sessions WHERE expires_us <= $1").bind(crate::clock::now_us()).execute(pool).await?;
            Ok(r.rows_affected())
        })
    }
}
