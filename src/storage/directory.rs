//! People from a directory source, cached as rows of `users` (so their addresses and aliases
//! feed everything local accounts feed: who sees which mail, replay targets, digests, sender
//! lists, known recipients) with where they came from and when the source last confirmed them.
//! A local account (`source = 'local'`) is never overwritten from a directory.

use anyhow::Result;
use sqlx::Row;

use super::{BeginWrite, Store, with_pool};
use crate::storage::Role;

/// A directory person as cached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryUser {
    /// The account name: the person's main address, lowercase.
    pub address: String,
    /// `ldap` or `imap`.
    pub source: String,
    /// The entry's DN (LDAP); empty for the mail server.
    pub dn: String,
    pub aliases: Vec<String>,
    pub groups: Vec<String>,
    /// User or admin; never interception.
    pub role: Role,
    /// When the source last confirmed the account (µs; 0: never).
    pub checked_us: i64,
    /// When the cached password hash was last confirmed by the source (µs; 0: none cached).
    pub password_us: i64,
}

impl Store {
    /// The cached directory person whose address or alias this is, with their password hash.
    pub async fn directory_user(&self, address: &str) -> Result<Option<(DirectoryUser, String)>> {
        with_pool!(self, pool => {
            let a = address.to_lowercase();
            let row = sqlx::query(
                "SELECT address, source, directory_dn, directory_groups, role, checked_us, password_us, password_hash FROM users
                 WHERE source <> 'local' AND (address = $1 OR address IN (SELECT address FROM user_aliases WHERE alias = $1))",
            )
            .bind(&a)
            .fetch_optional(pool)
            .await?;
            let Some(r) = row else { return Ok(None) };
            let address: String = r.try_get("address")?;
            let aliases: Vec<String> = sqlx::query_scalar("SELECT alias FROM user_aliases WHERE address = $1 ORDER BY alias").bind(&address).fetch_all(pool).await?;
            let groups: String = r.try_get("directory_groups")?;
            let role: String = r.try_get("role")?;
            let user = DirectoryUser {
                address,
                source: r.try_get("source")?,
                dn: r.try_get("directory_dn")?,
                aliases,
                groups: groups.lines().map(str::to_string).collect(),
                role: if role == "admin" { Role::Admin } else { Role::User },
                checked_us: r.try_get("checked_us")?,
                password_us: r.try_get("password_us")?,
            };
            Ok(Some((user, r.try_get("password_hash")?)))
        })
    }

    /// Is `address` a local account's?
    pub async fn is_local_account(&self, address: &str) -> Result<bool> {
        with_pool!(self, pool => {
            let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE address = $1 AND source = 'local'").bind(address.to_lowercase()).fetch_one(pool).await?;
            Ok(n > 0)
        })
    }

    /// Records what the source said about a person (now), with the hash of the password it just
    /// accepted if any. Aliases another account holds stay that account's; another account's own
    /// address is never an alias. `false`: the address
    /// is a local account's, left alone.
    pub async fn save_directory_user(
        &self,
        p: &DirectoryUser,
        password_hash: Option<&str>,
    ) -> Result<bool> {
        let now = crate::clock::now_us();
        let role = if p.role == Role::Admin {
            "admin"
        } else {
            "user"
        };
        with_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let source: Option<String> = sqlx::query_scalar("SELECT source FROM users WHERE address = $1").bind(&p.address).fetch_optional(&mut *tx).await?;
            match source.as_deref() {
                Some("local") => return Ok(false),
                Some(_) => {
                    sqlx::query("UPDATE users SET source = $2, directory_dn = $3, directory_groups = $4, role = $5, checked_us = $6 WHERE address = $1")
                        .bind(&p.address).bind(&p.source).bind(&p.dn).bind(p.groups.join("\n")).bind(role).bind(now)
                        .execute(&mut *tx).await?;
                }
                None => {
                    sqlx::query("INSERT INTO users (address, password_hash, role, created_us, source, directory_dn, directory_groups, checked_us, password_us) VALUES ($1, '', $2, $3, $4, $5, $6, $3, 0)")
                        .bind(&p.address).bind(role).bind(now).bind(&p.source).bind(&p.dn).bind(p.groups.join("\n"))
                        .execute(&mut *tx).await?;
                }
            }
            if let Some(hash) = password_hash {
                sqlx::query("UPDATE users SET password_hash = $2, password_us = $3 WHERE address = $1").bind(&p.address).bind(hash).bind(now).execute(&mut *tx).await?;
            }
            sqlx::query("DELETE FROM user_aliases WHERE address = $1").bind(&p.address).execute(&mut *tx).await?;
            for alias in &p.aliases {
                // Never another account's own address: a directory entry cannot take a mailbox over.
                sqlx::query("INSERT INTO user_aliases (alias, address) SELECT $1, $2 WHERE NOT EXISTS (SELECT 1 FROM users WHERE address = $1) ON CONFLICT DO NOTHING")
                    .bind(alias.to_lowercase())
                    .bind(&p.address)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(true)
        })
    }

    /// Removes a directory person (gone from the source, or locked): their aliases and sessions too.
    pub async fn forget_directory_user(&self, address: &str) -> Result<bool> {
        with_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let a = address.to_lowercase();
            let n = sqlx::query("DELETE FROM users WHERE address = $1 AND source <> 'local'").bind(&a).execute(&mut *tx).await?.rows_affected();
            if n > 0 {
                sqlx::query("DELETE FROM user_aliases WHERE address = $1").bind(&a).execute(&mut *tx).await?;
                sqlx::query("DELETE FROM web_sessions WHERE address = $1").bind(&a).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(n > 0)
        })
    }

    /// Every cached directory person's address and source.
    pub async fn directory_users(&self) -> Result<Vec<(String, String, i64)>> {
        with_pool!(self, pool => {
            let rows: Vec<(String, String, i64)> = sqlx::query_as("SELECT address, source, password_us FROM users WHERE source <> 'local' ORDER BY address").fetch_all(pool).await?;
            Ok(rows)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person(address: &str, aliases: &[&str], role: Role) -> DirectoryUser {
        DirectoryUser {
            address: address.into(),
            source: "ldap".into(),
            dn: format!("uid={address}"),
            aliases: aliases.iter().map(|a| a.to_string()).collect(),
            groups: vec!["cn=g".into()],
            role,
            checked_us: 0,
            password_us: 0,
        }
    }

    #[tokio::test]
    async fn a_directory_entry_never_takes_over_a_local_account_or_its_aliases() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&crate::config::DatabaseLocation::Sqlite(
            dir.path().join("t.db"),
        ))
        .await
        .unwrap();
        store
            .add_user("ceo@example.org", "local-hash", Role::Admin)
            .await
            .unwrap();
        store
            .add_alias("ceo@example.org", "board@example.org")
            .await
            .unwrap();
        assert!(
            !store
                .save_directory_user(&person("ceo@example.org", &[], Role::User), Some("h"))
                .await
                .unwrap()
        );
        assert!(
            store
                .save_directory_user(
                    &person(
                        "mallory@example.org",
                        &["ceo@example.org", "board@example.org", "m@example.org"],
                        Role::User
                    ),
                    Some("h")
                )
                .await
                .unwrap()
        );
        let (m, hash) = store
            .directory_user("m@example.org")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (m.address.as_str(), m.aliases.clone(), hash.as_str()),
            (
                "mallory@example.org",
                vec!["m@example.org".to_string()],
                "h"
            )
        );
        let ceo = store.user("ceo@example.org").await.unwrap().unwrap();
        assert_eq!(
            (ceo.password_hash.as_str(), ceo.role, ceo.aliases.clone()),
            (
                "local-hash",
                Role::Admin,
                vec!["board@example.org".to_string()]
            )
        );
        assert!(
            store
                .directory_user("ceo@example.org")
                .await
                .unwrap()
                .is_none()
        );
        // A refresh without a password keeps the cached hash; forgetting removes only directory rows.
        assert!(
            store
                .save_directory_user(&person("mallory@example.org", &[], Role::Admin), None)
                .await
                .unwrap()
        );
        let (m, hash) = store
            .directory_user("mallory@example.org")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (m.role, m.aliases.len(), hash.as_str()),
            (Role::Admin, 0, "h")
        );
        assert!(
            !store
                .forget_directory_user("ceo@example.org")
                .await
                .unwrap()
        );
        assert!(
            store
                .forget_directory_user("mallory@example.org")
                .await
                .unwrap()
        );
        assert_eq!(store.users(None).await.unwrap().len(), 1);
    }
}
