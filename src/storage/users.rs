//! Users of the web UI, API, POP3 and CLI: a mail address, an argon2 password hash and a role,
//! plus alias addresses whose mail the user may also see.

use anyhow::Result;
use serde::Serialize;
use sqlx::Row;

use super::{BeginWrite, Store, with_pool};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Sees mail to and from their own addresses.
    User,
    /// Sees all mail, manages users.
    Admin,
    /// Operates lawful interception orders and their audit log; sees no mail and no settings.
    /// Made on the machine only (`sponts user add --interception`); admins cannot see or change
    /// these accounts.
    Interception,
}

impl Role {
    pub fn as_str(&self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Admin => "admin",
            Role::Interception => "interception",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "user" => Some(Role::User),
            "admin" => Some(Role::Admin),
            "interception" => Some(Role::Interception),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    pub address: String,
    #[serde(skip)]
    pub password_hash: String,
    pub role: Role,
    pub aliases: Vec<String>,
}

impl Store {
    /// Adds a user; the address is stored lowercase. Fails if it exists.
    pub async fn add_user(&self, address: &str, password_hash: &str, role: Role) -> Result<()> {
        with_pool!(self, pool => {
            sqlx::query("INSERT INTO users (address, password_hash, role, created_us) VALUES ($1, $2, $3, $4)")
                .bind(address.to_lowercase())
                .bind(password_hash)
                .bind(role.as_str())
                .bind(crate::clock::now_us())
                .execute(pool)
                .await?;
            Ok(())
        })
    }

    /// Returns false when there is no such user. Ends the user's sessions.
    pub async fn set_password(&self, address: &str, password_hash: &str) -> Result<bool> {
        with_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let r = sqlx::query("UPDATE users SET password_hash = $1 WHERE address = $2").bind(password_hash).bind(address.to_lowercase()).execute(&mut *tx).await?;
            // A new password ends every session of the old one.
            sqlx::query("DELETE FROM web_sessions WHERE address = $1").bind(address.to_lowercase()).execute(&mut *tx).await?;
            tx.commit().await?;
            Ok(r.rows_affected() == 1)
        })
    }

    pub async fn delete_user(&self, address: &str) -> Result<bool> {
        with_pool!(self, pool => {
            let r = sqlx::query("DELETE FROM users WHERE address = $1").bind(address.to_lowercase()).execute(pool).await?;
            Ok(r.rows_affected() == 1)
        })
    }

    pub async fn add_alias(&self, address: &str, alias: &str) -> Result<()> {
        with_pool!(self, pool => {
            sqlx::query("INSERT INTO user_aliases (alias, address) VALUES ($1, $2)").bind(alias.to_lowercase()).bind(address.to_lowercase()).execute(pool).await?;
            Ok(())
        })
    }

    /// Is this an account's address or one of its aliases?
    pub async fn is_user_address(&self, address: &str) -> Result<bool> {
        with_pool!(self, pool => {
            let a = address.to_lowercase();
            let n: i64 = sqlx::query_scalar("SELECT (SELECT COUNT(*) FROM users WHERE address = $1) + (SELECT COUNT(*) FROM user_aliases WHERE alias = $1)")
                .bind(&a)
                .fetch_one(pool)
                .await?;
            Ok(n > 0)
        })
    }

    pub async fn user(&self, address: &str) -> Result<Option<User>> {
        Ok(self.users(Some(address)).await?.into_iter().next())
    }

    /// Every user (or the one named), with their aliases, by address.
    pub async fn users(&self, only: Option<&str>) -> Result<Vec<User>> {
        with_pool!(self, pool => {
            let rows = match only {
                Some(a) => sqlx::query("SELECT address, password_hash, role FROM users WHERE address = $1").bind(a.to_lowercase()).fetch_all(pool).await?,
                None => sqlx::query("SELECT address, password_hash, role FROM users ORDER BY address").fetch_all(pool).await?,
            };
            let mut users = Vec::with_capacity(rows.len());
            for r in rows {
                let role: String = r.try_get("role")?;
                users.push(User {
                    address: r.try_get("address")?,
                    password_hash: r.try_get("password_hash")?,
                    role: Role::parse(&role).unwrap_or(Role::User),
                    aliases: Vec::new(),
                });
            }
            for u in &mut users {
                u.aliases = sqlx::query_scalar("SELECT alias FROM user_aliases WHERE address = $1 ORDER BY alias").bind(&u.address).fetch_all(pool).await?;
            }
            Ok(users)
        })
    }
}
