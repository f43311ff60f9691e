//! DKIM keys in SQL, so every node sharing the database signs with the same keys. The private key
//! leaves this file only inside a [`DkimKey`], whose `Debug` does not show it; listings read the
//! public part alone ([`DkimKeyInfo`]).

use anyhow::{Result, bail};
use serde::Serialize;
use sqlx::Row;

use super::{Store, with_pool};

/// Where a key is in its life. Active and retiring keys sign.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DkimKeyState {
    /// Made; waits for its DNS record before it signs.
    Pending,
    Active,
    /// Replaced by a newer key; still signs until `retire_after_us` (the overlap).
    Retiring,
    Retired,
}

impl DkimKeyState {
    pub fn as_str(self) -> &'static str {
        match self {
            DkimKeyState::Pending => "pending",
            DkimKeyState::Active => "active",
            DkimKeyState::Retiring => "retiring",
            DkimKeyState::Retired => "retired",
        }
    }

    pub fn parse(s: &str) -> Result<DkimKeyState> {
        Ok(match s {
            "pending" => DkimKeyState::Pending,
            "active" => DkimKeyState::Active,
            "retiring" => DkimKeyState::Retiring,
            "retired" => DkimKeyState::Retired,
            other => bail!("unknown DKIM key state `{other}`"),
        })
    }
}

/// A key as listings show it: everything but the private key.
#[derive(Debug, Clone, Serialize)]
pub struct DkimKeyInfo {
    pub domain: String,
    pub selector: String,
    /// `rsa` or `ed25519` (the record's `k=`).
    pub algorithm: String,
    pub state: DkimKeyState,
    /// The record's `p=` value (base64).
    pub public_key: String,
    pub created_us: i64,
    pub activated_us: Option<i64>,
    pub retire_after_us: Option<i64>,
    pub retired_us: Option<i64>,
    /// For a key made by a rotation: the selector it takes over from once it is active.
    pub replaces: Option<String>,
}

/// A key that signs: its description and the PKCS#8 DER private key.
#[derive(Clone)]
pub struct DkimKey {
    pub info: DkimKeyInfo,
    pub pkcs8: Vec<u8>,
}

impl std::fmt::Debug for DkimKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DkimKey")
            .field("info", &self.info)
            .field("pkcs8", &"(hidden)")
            .finish()
    }
}

const INFO_COLUMNS: &str = "domain, selector, algorithm, state, public_key, created_us, activated_us, retire_after_us, retired_us, replaces";

/// A row of either database into a [`DkimKeyInfo`] (a macro: the two row types share no trait
/// that `try_get` could be named through simply).
macro_rules! info_of {
    ($r:expr) => {
        DkimKeyInfo {
            domain: $r.try_get("domain")?,
            selector: $r.try_get("selector")?,
            algorithm: $r.try_get("algorithm")?,
            state: DkimKeyState::parse(&$r.try_get::<String, _>("state")?)?,
            public_key: $r.try_get("public_key")?,
            created_us: $r.try_get("created_us")?,
            activated_us: $r.try_get("activated_us")?,
            retire_after_us: $r.try_get("retire_after_us")?,
            retired_us: $r.try_get("retired_us")?,
            replaces: $r.try_get("replaces")?,
        }
    };
}

impl Store {
    /// Adds a key; fails when the domain already has that selector.
    pub async fn insert_dkim_key(&self, key: &DkimKey) -> Result<()> {
        let i = &key.info;
        with_pool!(self, pool => {
            let exists: Option<String> = sqlx::query_scalar("SELECT state FROM dkim_keys WHERE domain = $1 AND selector = $2")
                .bind(&i.domain)
                .bind(&i.selector)
                .fetch_optional(pool)
                .await?;
            if exists.is_some() {
                bail!("{} already has a DKIM key with selector {}", i.domain, i.selector);
            }
            sqlx::query(
                "INSERT INTO dkim_keys (domain, selector, algorithm, state, private_key, public_key, created_us, activated_us, retire_after_us, retired_us, replaces) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            )
            .bind(&i.domain)
            .bind(&i.selector)
            .bind(&i.algorithm)
            .bind(i.state.as_str())
            .bind(&key.pkcs8)
            .bind(&i.public_key)
            .bind(i.created_us)
            .bind(i.activated_us)
            .bind(i.retire_after_us)
            .bind(i.retired_us)
            .bind(&i.replaces)
            .execute(pool)
            .await?;
            Ok(())
        })
    }

    /// Every key (or one domain's), without private keys, by domain then age.
    pub async fn dkim_keys(&self, domain: Option<&str>) -> Result<Vec<DkimKeyInfo>> {
        with_pool!(self, pool => {
            let sql = format!("SELECT {INFO_COLUMNS} FROM dkim_keys WHERE (CAST($1 AS TEXT) IS NULL OR domain = $1) ORDER BY domain, created_us, selector");
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(domain).fetch_all(pool).await?;
            rows.iter().map(|r| Ok(info_of!(r))).collect()
        })
    }

    /// The keys that sign now (active and retiring), with their private keys.
    pub async fn dkim_signing_keys(&self) -> Result<Vec<DkimKey>> {
        with_pool!(self, pool => {
            let sql = format!("SELECT {INFO_COLUMNS}, private_key FROM dkim_keys WHERE state IN ('active', 'retiring') ORDER BY domain, created_us, selector");
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(pool).await?;
            rows.iter().map(|r| Ok(DkimKey { info: info_of!(r), pkcs8: r.try_get("private_key")? })).collect()
        })
    }

    /// Moves a key to `state`, setting the times that go with it. True when the key was in
    /// `from` (a state change two nodes race for happens once).
    pub async fn set_dkim_key_state(
        &self,
        domain: &str,
        selector: &str,
        from: DkimKeyState,
        to: DkimKeyState,
        retire_after_us: Option<i64>,
    ) -> Result<bool> {
        let now = crate::clock::now_us();
        let (activated, retired) = match to {
            DkimKeyState::Active => (Some(now), None),
            DkimKeyState::Retired => (None, Some(now)),
            _ => (None, None),
        };
        with_pool!(self, pool => {
            let r = sqlx::query(
                "UPDATE dkim_keys SET state = $1, activated_us = COALESCE($2, activated_us), retire_after_us = COALESCE($3, retire_after_us), \
                 retired_us = COALESCE($4, retired_us) WHERE domain = $5 AND selector = $6 AND state = $7",
            )
            .bind(to.as_str())
            .bind(activated)
            .bind(retire_after_us)
            .bind(retired)
            .bind(domain)
            .bind(selector)
            .bind(from.as_str())
            .execute(pool)
            .await?;
            Ok(r.rows_affected() == 1)
        })
    }
}
