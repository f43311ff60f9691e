//! `sponts learn --from-journal`: the shared filter learns what sponts already knows — trap hits
//! as spam, people's clicks as they clicked, and refusals a person replayed as ham. Each message
//! is learned under its transaction id, so what was learned before (by auto-learning, a click or
//! an earlier run) counts as known, never twice.

use anyhow::Result;
use std::io::Write;

use crate::modules::backup::decompress;
use crate::modules::uce::learn::{self, Source};
use crate::storage::{JournalEntry, JournalFilter, Store};

/// Journal records read per query.
const PAGE: i64 = 2000;

/// What one source gave.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Found {
    pub found: usize,
    pub learned: usize,
    /// Its message is no longer kept.
    pub gone: usize,
}

/// Learns from the journal and prints what each source gave, then the filter's totals.
pub async fn run(store: &Store, out: &mut dyn Write) -> Result<()> {
    let traps = learn_all(store, trap_hits(store).await?, true).await?;
    let mut marked = (Found::default(), Found::default());
    for m in store.marks(None, i64::MAX).await? {
        let (t, spam) = if m.kind == "spam" {
            (&mut marked.0, true)
        } else {
            (&mut marked.1, false)
        };
        learn_one(store, &m.message, spam, t).await?;
    }
    let replayed = learn_all(store, replayed_refusals(store).await?, false).await?;
    for (what, kind, f) in [
        ("trap hits", "spam", traps),
        ("marked spam by people", "spam", marked.0),
        ("marked not spam by people", "ham", marked.1),
        ("replayed refusals", "ham", replayed),
    ] {
        let gone = if f.gone > 0 {
            format!(", {} no longer kept", f.gone)
        } else {
            String::new()
        };
        writeln!(
            out,
            "{what}: {} found, {} learned as {kind}, {} already known{gone}",
            f.found,
            f.learned,
            f.found - f.learned - f.gone
        )?;
    }
    let (s, h) = store.learned_totals().await?;
    writeln!(out, "the filter knows {s} spam and {h} ham messages")?;
    Ok(())
}

async fn learn_all(store: &Store, ids: Vec<String>, spam: bool) -> Result<Found> {
    let mut f = Found::default();
    for id in ids {
        learn_one(store, &id, spam, &mut f).await?;
    }
    Ok(f)
}

async fn learn_one(store: &Store, id: &str, spam: bool, f: &mut Found) -> Result<()> {
    f.found += 1;
    let Some(body) = store.body(id).await? else {
        f.gone += 1;
        return Ok(());
    };
    let message =
        decompress(&body).map_err(|e| anyhow::anyhow!("stored message {id} is damaged: {e}"))?;
    if learn::learn_from(store, id, &message, spam, Source::Journal).await? {
        f.learned += 1;
    }
    Ok(())
}

/// Every record with `outcome`, page by page (oldest pages last; the order does not matter).
async fn each(
    store: &Store,
    outcome: &str,
    mut keep: impl FnMut(&JournalEntry) -> Option<String>,
) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut offset = 0;
    loop {
        let f = JournalFilter {
            outcome: Some(outcome.into()),
            limit: Some(PAGE),
            offset: Some(offset),
            ..Default::default()
        };
        let page = store.query_journal(&f).await?;
        out.extend(page.iter().filter_map(&mut keep));
        if (page.len() as i64) < PAGE {
            return Ok(out);
        }
        offset += PAGE;
    }
}

/// Kept trap hits, not from the null sender (anyone can make a trap receive a bounce).
async fn trap_hits(store: &Store) -> Result<Vec<String>> {
    each(store, "discarded", |e| {
        let trap = e
            .notes
            .as_deref()
            .is_some_and(|n| n.contains("uce: trap ") && n.contains(" hit"));
        (trap && !e.sender.is_empty() && e.flag.as_deref() == Some("spam")).then(|| e.id.clone())
    })
    .await
}

/// Originals of delivered replays that had been held back as spam.
async fn replayed_refusals(store: &Store) -> Result<Vec<String>> {
    let originals = each(store, "delivered", |e| e.replay_of.clone()).await?;
    let mut out: Vec<String> = Vec::new();
    for of in originals {
        if out.contains(&of) {
            continue;
        }
        let f = JournalFilter {
            id: Some(of.clone()),
            limit: Some(1),
            ..Default::default()
        };
        if store
            .query_journal(&f)
            .await?
            .first()
            .is_some_and(|o| o.flag.as_deref() == Some("spam") && !o.is_malware())
        {
            out.push(of);
        }
    }
    Ok(out)
}
