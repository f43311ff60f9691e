//! Allow and block lists of senders, one per owner: a user's address (or alias), or `@domain`
//! for the entries an admin sets for a whole domain. One entry per owner and pattern; adding
//! the pattern again changes its verdict.

use anyhow::Result;
use serde::{Deserialize, Serialize};

use super::{Store, with_pool};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SenderVerdict {
    /// The message skips content scoring.
    Allow,
    /// The recipient is refused as unknown.
    Block,
}

impl SenderVerdict {
    pub fn as_str(&self) -> &'static str {
        match self {
            SenderVerdict::Allow => "allow",
            SenderVerdict::Block => "block",
        }
    }

    pub fn parse(s: &str) -> Option<SenderVerdict> {
        match s {
            "allow" => Some(SenderVerdict::Allow),
            "block" => Some(SenderVerdict::Block),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SenderEntry {
    /// `user@domain`, or `@domain` for the whole domain.
    pub owner: String,
    /// A full address, or a domain (which covers its subdomains).
    pub pattern: String,
    pub verdict: SenderVerdict,
    pub created_us: i64,
    pub created_by: String,
}

impl Store {
    /// Adds (or changes the verdict of) an entry. Owner and pattern are stored lowercase.
    pub async fn set_sender_entry(
        &self,
        owner: &str,
        pattern: &str,
        verdict: SenderVerdict,
        by: &str,
    ) -> Result<SenderEntry> {
        let (owner, pattern, now) = (
            owner.to_lowercase(),
            pattern.to_lowercase(),
            crate::clock::now_us(),
        );
        with_pool!(self, pool => {
            sqlx::query("INSERT INTO sender_lists (owner, pattern, verdict, created_us, created_by) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (owner, pattern) DO UPDATE SET verdict = excluded.verdict, created_us = excluded.created_us, created_by = excluded.created_by")
                .bind(&owner).bind(&pattern).bind(verdict.as_str()).bind(now).bind(by).execute(pool).await?;
        });
        Ok(SenderEntry {
            owner,
            pattern,
            verdict,
            created_us: now,
            created_by: by.to_string(),
        })
    }

    /// False when the owner had no such entry.
    pub async fn delete_sender_entry(&self, owner: &str, pattern: &str) -> Result<bool> {
        with_pool!(self, pool => {
            let r = sqlx::query("DELETE FROM sender_lists WHERE owner = $1 AND pattern = $2").bind(owner.to_lowercase()).bind(pattern.to_lowercase()).execute(pool).await?;
            Ok(r.rows_affected() > 0)
        })
    }

    /// The entries of these owners (all entries for `None`), by owner and pattern.
    pub async fn sender_entries(&self, owners: Option<&[String]>) -> Result<Vec<SenderEntry>> {
        const COLUMNS: &str =
            "SELECT owner, pattern, verdict, created_us, created_by FROM sender_lists";
        let mut rows: Vec<Row> = Vec::new();
        with_pool!(self, pool => match owners {
            None => rows = sqlx::query_as(sqlx::AssertSqlSafe(format!("{COLUMNS} ORDER BY owner, pattern"))).fetch_all(pool).await?,
            Some(owners) => {
                for owner in owners {
                    rows.extend(sqlx::query_as::<_, Row>(sqlx::AssertSqlSafe(format!("{COLUMNS} WHERE owner = $1 ORDER BY pattern"))).bind(owner.to_lowercase()).fetch_all(pool).await?);
                }
            }
        });
        rows.into_iter().map(entry).collect()
    }

    /// The entries that apply to mail for `rcpt`: its own, those of the account it is an alias
    /// of, and its domain's (`@domain`).
    pub async fn sender_entries_for(&self, rcpt: &str) -> Result<Vec<SenderEntry>> {
        let rcpt = rcpt.to_lowercase();
        let domain = format!("@{}", rcpt.rsplit_once('@').map_or("", |(_, d)| d));
        const SQL: &str = "SELECT owner, pattern, verdict, created_us, created_by FROM sender_lists WHERE owner = $1 OR owner = $2 OR owner IN (SELECT address FROM user_aliases WHERE alias = $1)";
        let rows: Vec<Row> = if let Store::Sqlite(pool) = self {
            // Read for every recipient: on this thread, not through sqlx's.
            super::sqlite_reader::query(pool, SQL, &[rcpt.into(), domain.into()], |c| {
                (c.text(0), c.text(1), c.text(2), c.int(3), c.text(4))
            })?
        } else {
            with_pool!(self, pool => {
                sqlx::query_as(SQL).bind(&rcpt).bind(&domain).fetch_all(pool).await?
            })
        };
        rows.into_iter().map(entry).collect()
    }
}

type Row = (String, String, String, i64, String);

fn entry((owner, pattern, verdict, created_us, created_by): Row) -> Result<SenderEntry> {
    let verdict = SenderVerdict::parse(&verdict)
        .ok_or_else(|| anyhow::anyhow!("sender_lists: unknown verdict {verdict}"))?;
    Ok(SenderEntry {
        owner,
        pattern,
        verdict,
        created_us,
        created_by,
    })
}
