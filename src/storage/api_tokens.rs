//! API tokens for scripts: named, made by a signed-in admin, acting with the creator's role until
//! revoked (or the creator's account is removed). Only a hash of the token is stored.

use anyhow::Result;
use serde::Serialize;
use sqlx::Row;

use super::{Store, with_pool};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiToken {
    /// Public handle for listing and revoking (not the secret).
    pub id: String,
    pub name: String,
    /// The account it acts as.
    pub address: String,
    pub created_us: i64,
}

impl Store {
    pub async fn create_api_token(
        &self,
        id: &str,
        token_hash: &str,
        address: &str,
        name: &str,
    ) -> Result<()> {
        with_pool!(self, pool => {
            sqlx::query("INSERT INTO api_tokens (id, token_hash, address, name, created_us) VALUES ($1, $2, $3, $4, $5)")
                .bind(id)
                .bind(token_hash)
                .bind(address.to_lowercase())
                .bind(name)
                .bind(crate::clock::now_us())
                .execute(pool)
                .await?;
            Ok(())
        })
    }

    /// The account a token acts as.
    pub async fn api_token_owner(&self, token_hash: &str) -> Result<Option<String>> {
        with_pool!(self, pool => {
            Ok(sqlx::query_scalar("SELECT address FROM api_tokens WHERE token_hash = $1").bind(token_hash).fetch_optional(pool).await?)
        })
    }

    /// Every token, newest first.
    pub async fn api_tokens(&self) -> Result<Vec<ApiToken>> {
        with_pool!(self, pool => {
            let rows = sqlx::query("SELECT id, name, address, created_us FROM api_tokens ORDER BY created_us DESC, id").fetch_all(pool).await?;
            rows.iter()
                .map(|r| Ok(ApiToken { id: r.try_get("id")?, name: r.try_get("name")?, address: r.try_get("address")?, created_us: r.try_get("created_us")? }))
                .collect()
        })
    }

    /// False when there is no such token.
    pub async fn revoke_api_token(&self, id: &str) -> Result<bool> {
        with_pool!(self, pool => {
            let r = sqlx::query("DELETE FROM api_tokens WHERE id = $1").bind(id).execute(pool).await?;
            Ok(r.rows_affected() == 1)
        })
    }
}
