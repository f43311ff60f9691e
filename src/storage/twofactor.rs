//! The second factor in SQL: each account's TOTP secret (pending until the person confirms it
//! with a code), the last step used (a code works once), and hashed recovery codes.

use anyhow::Result;
use sqlx::Row;

use super::{BeginWrite, Store, with_pool};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Totp {
    /// Base32, as the app got it.
    pub secret: String,
    /// Confirmed with a code: sign-in asks for one.
    pub active: bool,
    /// The last step whose code was taken (0: none).
    pub last_step: i64,
}

impl Store {
    pub async fn totp(&self, address: &str) -> Result<Option<Totp>> {
        with_pool!(self, pool => {
            let row = sqlx::query("SELECT secret, active, last_step FROM user_totp WHERE address = $1").bind(address.to_lowercase()).fetch_optional(pool).await?;
            match row {
                Some(r) => Ok(Some(Totp { secret: r.try_get("secret")?, active: r.try_get("active")?, last_step: r.try_get("last_step")? })),
                None => Ok(None),
            }
        })
    }

    /// A new secret waiting for its first code; replaces an earlier pending one, never an
    /// active one (false then).
    pub async fn put_pending_totp(&self, address: &str, secret: &str) -> Result<bool> {
        with_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let a = address.to_lowercase();
            sqlx::query("DELETE FROM user_totp WHERE address = $1 AND NOT active").bind(&a).execute(&mut *tx).await?;
            let r = sqlx::query("INSERT INTO user_totp (address, secret, active, last_step, created_us) VALUES ($1, $2, FALSE, 0, $3) ON CONFLICT (address) DO NOTHING")
                .bind(&a)
                .bind(secret)
                .bind(crate::clock::now_us())
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(r.rows_affected() == 1)
        })
    }

    /// Turns the pending secret on (its code of `step` confirmed it), replaces the recovery
    /// codes, and marks the session that did it as past the second factor. False when there was
    /// no pending secret.
    pub async fn activate_totp(
        &self,
        address: &str,
        step: i64,
        recovery_hashes: &[String],
        session: Option<&str>,
    ) -> Result<bool> {
        with_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let a = address.to_lowercase();
            let r = sqlx::query("UPDATE user_totp SET active = TRUE, last_step = $2 WHERE address = $1 AND NOT active").bind(&a).bind(step).execute(&mut *tx).await?;
            if r.rows_affected() != 1 {
                return Ok(false);
            }
            sqlx::query("DELETE FROM user_recovery_codes WHERE address = $1").bind(&a).execute(&mut *tx).await?;
            for h in recovery_hashes {
                sqlx::query("INSERT INTO user_recovery_codes (address, code_hash) VALUES ($1, $2)").bind(&a).bind(h).execute(&mut *tx).await?;
            }
            if let Some(token_hash) = session {
                sqlx::query("UPDATE web_sessions SET second_factor = TRUE WHERE token_hash = $1").bind(token_hash).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(true)
        })
    }

    /// Takes `step` as used if it is later than the last one used: false for a replay (also
    /// when two requests race with the same code: one wins).
    pub async fn claim_totp_step(&self, address: &str, step: i64) -> Result<bool> {
        with_pool!(self, pool => {
            let r = sqlx::query("UPDATE user_totp SET last_step = $2 WHERE address = $1 AND active AND last_step < $2").bind(address.to_lowercase()).bind(step).execute(pool).await?;
            Ok(r.rows_affected() == 1)
        })
    }

    /// Uses up a recovery code: false if it is not one of the account's unused codes.
    pub async fn use_recovery_code(&self, address: &str, code_hash: &str) -> Result<bool> {
        with_pool!(self, pool => {
            let r = sqlx::query("UPDATE user_recovery_codes SET used_us = $3 WHERE address = $1 AND code_hash = $2 AND used_us IS NULL")
                .bind(address.to_lowercase())
                .bind(code_hash)
                .bind(crate::clock::now_us())
                .execute(pool)
                .await?;
            Ok(r.rows_affected() == 1)
        })
    }

    pub async fn recovery_codes_left(&self, address: &str) -> Result<i64> {
        with_pool!(self, pool => {
            Ok(sqlx::query_scalar("SELECT COUNT(*) FROM user_recovery_codes WHERE address = $1 AND used_us IS NULL").bind(address.to_lowercase()).fetch_one(pool).await?)
        })
    }

    /// Removes the account's second factor and recovery codes and ends its sessions, so the
    /// next sign-in enrols again. False when the account had no second factor.
    pub async fn reset_second_factor(&self, address: &str) -> Result<bool> {
        with_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let a = address.to_lowercase();
            let r = sqlx::query("DELETE FROM user_totp WHERE address = $1").bind(&a).execute(&mut *tx).await?;
            sqlx::query("DELETE FROM user_recovery_codes WHERE address = $1").bind(&a).execute(&mut *tx).await?;
            sqlx::query("DELETE FROM web_sessions WHERE address = $1").bind(&a).execute(&mut *tx).await?;
            tx.commit().await?;
            Ok(r.rows_affected() == 1)
        })
    }
}
