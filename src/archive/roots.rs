//! `sponts archive roots`: the seals as JSON lines, for an auditor to keep away from sponts
//! (`sponts archive verify --roots FILE` then checks the database against them).

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::seal::Signer;
use crate::storage::Store;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RootLine {
    pub seq: i64,
    pub day: String,
    pub from: String,
    pub until: String,
    pub count: i64,
    pub root: String,
    pub prev_root: String,
    pub signature: String,
    pub key_id: String,
    /// Ed25519, hex: the statement signed is in docs/operations.md ("Archive").
    pub public_key: String,
}

/// The seals of `since_day` and later (all without), oldest first.
pub async fn roots(store: &Store, since_day: Option<&str>) -> Result<Vec<RootLine>> {
    let key = Signer::existing_public_key(store)
        .await?
        .map(|k| k.hex())
        .unwrap_or_default();
    let seals = store.seals(since_day).await?;
    Ok(seals
        .into_iter()
        .filter(|s| since_day.is_none_or(|d| s.day.as_str() >= d))
        .map(|s| RootLine {
            seq: s.seq,
            day: s.day,
            from: crate::clock::rfc3339(s.from_us),
            until: crate::clock::rfc3339(s.until_us),
            count: s.count,
            root: s.root,
            prev_root: s.prev_root,
            signature: s.signature,
            key_id: s.key_id,
            public_key: key.clone(),
        })
        .collect())
}

/// Reads roots written by `sponts archive roots`.
pub fn parse(text: &str) -> Result<Vec<RootLine>> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).with_context(|| format!("line {}: not a root line", i + 1))
        })
        .collect()
}
