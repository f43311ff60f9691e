//! Training that people do: "Not spam" on a held-back message (deliver it, learn it as ham,
//! offer to always allow its sender) and "Spam" on delivered mail (learn it as spam, offer to
//! block its sender) — from the web UI, the API and the digest's signed links alike. Each click
//! teaches the shared filter and, where the filter disagreed with the person, their own layer
//! (`modules::uce::learn::layer`). [`journal`]: `sponts learn --from-journal`.
//!
//! Who may click on what is the caller's to decide (`web::policy`); this module acts on a
//! journal record it is given, for the accounts it is given.

pub mod journal;

use serde::Serialize;
use thiserror::Error;

use crate::config::Config;
use crate::modules::uce::learn::{self, Source, layer};
use crate::replay::{ReplayError, Replayed};
use crate::storage::{JournalEntry, SenderVerdict, Store};

#[derive(Debug, Error)]
pub enum MarkError {
    #[error("the message was not kept (it never reached the end of DATA, or was purged)")]
    NotKept,
    #[error("a message with a virus is handled by an administrator only")]
    Malware,
    #[error(transparent)]
    Replay(#[from] ReplayError),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// What one click did.
#[derive(Debug, Clone, Serialize)]
pub struct Marked {
    pub id: String,
    /// `ham` or `spam`.
    pub learned_as: &'static str,
    /// The shared filter learned something new (false: it knew the message that way already).
    pub changed: bool,
    /// The accounts whose layer took the click (the filter had disagreed with them).
    pub personal: Vec<String>,
    /// "Not spam" on a held-back message: its delivery.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivered: Option<Replayed>,
    /// The sender to offer for the allow ("Not spam") or block ("Spam") list; absent for the
    /// null sender, or when the list says so already.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offer: Option<Offer>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Offer {
    pub verdict: &'static str,
    pub pattern: String,
}

/// Was this message held back as spam (refused or quarantined, not delivered)?
pub fn held_back(e: &JournalEntry) -> bool {
    e.replay_of.is_none()
        && matches!(e.outcome.as_str(), "refused" | "discarded")
        && e.flag.as_deref() == Some("spam")
}

/// Marks the kept message of `e` as spam or not. `owners`: the accounts whose layers the click
/// teaches; `deliver_to`: for "Not spam" on held-back mail, where it goes (None: the original
/// recipients); `actor` names who clicked.
pub async fn mark(
    config: &Config,
    store: &Store,
    e: &JournalEntry,
    spam: bool,
    owners: &[String],
    deliver_to: Option<&str>,
    actor: &str,
) -> Result<Marked, MarkError> {
    if e.is_malware() {
        return Err(MarkError::Malware);
    }
    let key = e.kept_as().to_string();
    let body = store.body(&key).await?.ok_or(MarkError::NotKept)?;
    let message = crate::modules::backup::decompress(&body)
        .map_err(|err| anyhow::anyhow!("stored message {key} is damaged: {err}"))?;
    // The layers first: their disagreement is with the filter as it was before this click.
    let mut layers = Vec::new();
    let shared = learn::shared_view(store, &message, config.uce.learning.min_messages).await?;
    for owner in owners {
        let tokens = match &shared {
            Some(view) => disagreement(config, store, owner, view.clone(), spam).await?,
            None => Vec::new(),
        };
        layers.push((owner, tokens));
    }
    let changed = learn::learn_from(store, &key, &message, spam, Source::Click).await?;
    let mut personal = Vec::new();
    let mut new_mark = layers.is_empty();
    for (owner, tokens) in &layers {
        let marked = store.mark_message(&key, owner, spam, actor, tokens).await?;
        new_mark |= marked;
        if marked && !tokens.is_empty() {
            personal.push(owner.to_string());
        }
    }
    tracing::info!(id = %e.id, actor, spam, changed, ?personal, "uce: marked by a person");
    // Delivered once: marking it "not spam" again is no second delivery (Replay is).
    let delivered = if !spam && new_mark && held_back(e) {
        Some(crate::replay::replay(config, store, &e.id, deliver_to, actor).await?)
    } else {
        None
    };
    let offer = offer(store, e, owners, spam).await?;
    Ok(Marked {
        id: e.id.clone(),
        learned_as: if spam { "spam" } else { "ham" },
        changed,
        personal,
        delivered,
        offer,
    })
}

/// The tokens the click puts into `owner`'s layer: none when the filter already judged the
/// message as the person does; else those that spoke for the other side.
async fn disagreement(
    config: &Config,
    store: &Store,
    owner: &str,
    shared: Vec<learn::Token>,
    spam: bool,
) -> anyhow::Result<Vec<i64>> {
    let (view, _) = learn::personal_view(store, owner, shared).await?;
    let Some(p) = learn::combine(&view) else {
        return Ok(layer::disagreeing(&view, spam));
    };
    // "Not spam": the filter gave the message spam points. "Spam": it gave too few to refuse it.
    let disagrees = if spam {
        p < config.uce.learning.spam_probability
    } else {
        p > 0.5
    };
    Ok(if disagrees {
        layer::disagreeing(&view, spam)
    } else {
        Vec::new()
    })
}

/// The sender, offered for the list the click suggests — unless the first owner's list says so
/// already.
async fn offer(
    store: &Store,
    e: &JournalEntry,
    owners: &[String],
    spam: bool,
) -> anyhow::Result<Option<Offer>> {
    if e.sender.is_empty() {
        return Ok(None);
    }
    let (verdict, wanted) = if spam {
        ("block", SenderVerdict::Block)
    } else {
        ("allow", SenderVerdict::Allow)
    };
    if let Some(owner) = owners.first() {
        let entries = store.sender_entries_for(owner).await?;
        if crate::modules::uce::senders::decide(&entries, Some(&e.sender))
            .is_some_and(|d| d.verdict == wanted)
        {
            return Ok(None);
        }
    }
    Ok(Some(Offer {
        verdict,
        pattern: e.sender.to_lowercase(),
    }))
}

/// The accounts of a message's accepted recipients (a disposable address as its owner, an alias
/// as its account): whose layers an administrator's click teaches.
pub async fn recipient_accounts(store: &Store, e: &JournalEntry) -> anyhow::Result<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for r in e.recipients.iter().filter(|r| r.accepted) {
        let account = store
            .account_of(r.delivered_to.as_deref().unwrap_or(&r.address))
            .await?;
        if !out.contains(&account) {
            out.push(account);
        }
    }
    Ok(out)
}
