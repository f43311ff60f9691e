//! Replay: a kept message delivered again to the backend — to its original recipients, or to one
//! local address — exactly as it was received, with one trace header on top, and without the
//! modules' checks (a person decided). Every replay is a journal record of its own, naming the
//! original transaction and who asked for it.
//!
//! The trace header: `X-Sponts-Replay: of=ORIGINAL_ID; id=NEW_ID; by=ACTOR; DATE`.

use thiserror::Error;

use crate::config::Config;
use crate::modules::backup::decompress;
use crate::smtp::address::{Side, parse_path};
use crate::smtp::client::{Backend, BackendTarget};
use crate::storage::{JournalEntry, JournalFilter, RcptEntry, Store};

#[derive(Debug, Error)]
pub enum ReplayError {
    #[error("no transaction {0}")]
    NotFound(String),
    #[error("the message of {0} was not kept (it never reached the end of DATA, or was purged)")]
    NotKept(String),
    #[error("`{0}` is not a local address (domains.local)")]
    NotLocal(String),
    #[error("the original transaction has no accepted recipient to deliver to")]
    NoRecipient,
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// What happened to one replay.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Replayed {
    /// The new transaction (its journal record).
    pub id: String,
    pub of: String,
    pub delivered: bool,
    pub recipients: Vec<RcptEntry>,
    /// The backend's final answer (or the reason there was none).
    pub reply: String,
}

/// Delivers the kept message of transaction `of` again. `to`: one local address instead of the
/// original accepted recipients. `actor` names who asked (`cli:root`, `web:alice@example.org`).
pub async fn replay(
    config: &Config,
    store: &Store,
    of: &str,
    to: Option<&str>,
    actor: &str,
) -> Result<Replayed, ReplayError> {
    let original = store
        .query_journal(&JournalFilter {
            id: Some(of.to_string()),
            limit: Some(1),
            ..Default::default()
        })
        .await?
        .pop()
        .ok_or_else(|| ReplayError::NotFound(of.to_string()))?;
    // A replay record has no copy of its own: its message is the original's.
    let of = original.kept_as().to_string();
    let of = of.as_str();
    let body = store
        .body(of)
        .await?
        .ok_or_else(|| ReplayError::NotKept(of.to_string()))?;
    let message =
        decompress(&body).map_err(|e| anyhow::anyhow!("stored message {of} is damaged: {e}"))?;
    let recipients: Vec<String> = match to {
        Some(addr) => {
            let a = parse_path(addr, Side::Recipient)
                .ok()
                .flatten()
                .ok_or_else(|| ReplayError::NotLocal(addr.to_string()))?;
            if !config.is_local_domain(&a.domain) {
                return Err(ReplayError::NotLocal(addr.to_string()));
            }
            vec![a.to_string()]
        }
        // A disposable address goes to its owner, as it did the first time.
        None => original
            .recipients
            .iter()
            .filter(|r| r.accepted)
            .map(|r| r.delivered_to.clone().unwrap_or_else(|| r.address.clone()))
            .collect(),
    };
    if recipients.is_empty() {
        return Err(ReplayError::NoRecipient);
    }
    let id = crate::id::new_transaction_id();
    let time_us = crate::clock::now_us();
    let actor: String = actor
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(200)
        .collect();
    let trace = format!(
        "X-Sponts-Replay: of={of}; id={id}; by={actor};\r\n\t{}\r\n",
        crate::clock::rfc5322(time_us)
    );
    let target = BackendTarget::from_config(config);
    let (rcpts, reply, delivered) = deliver(
        &target,
        &original.sender,
        &recipients,
        trace.as_bytes(),
        &message,
    )
    .await;
    let summary = crate::modules::journal::mime::summarize(&message);
    let outcome = if delivered {
        "delivered"
    } else if reply.starts_with('4') || reply.is_empty() {
        "tempfailed"
    } else {
        "refused"
    };
    let entry = JournalEntry {
        id: id.clone(),
        time_us,
        client_ip: String::new(),
        client_port: 0,
        helo: String::new(),
        tls: None,
        sender: original.sender.clone(),
        recipients: rcpts.clone(),
        subject: summary.subject,
        message_id: summary.message_id,
        size: Some(message.len() as i64),
        attachments: summary.attachments,
        outcome: outcome.to_string(),
        decided_by: "replay".into(),
        final_reply: reply.clone(),
        replay_of: Some(of.to_string()),
        actor: Some(actor),
        flag: None,
        notes: None,
        outbound: false,
    };
    store.insert_journal(&[entry]).await?;
    tracing::info!(id = %id, of, delivered, "replay: {reply}");
    if delivered && original.flag.as_deref() == Some("spam") {
        // A person wanted this "spam" delivered: the filter learns it as ham.
        crate::modules::uce::learn_replayed(config, store, of, &message).await;
    }
    Ok(Replayed {
        id,
        of: of.to_string(),
        delivered,
        recipients: rcpts,
        reply,
    })
}

/// One SMTP transaction with the backend; never fails, the replies tell what happened.
pub(crate) async fn deliver(
    target: &BackendTarget,
    sender: &str,
    recipients: &[String],
    trace: &[u8],
    message: &[u8],
) -> (Vec<RcptEntry>, String, bool) {
    let mut rcpts: Vec<RcptEntry> = recipients
        .iter()
        .map(|a| RcptEntry {
            address: a.clone(),
            accepted: false,
            reply: String::new(),
            delivered_to: None,
        })
        .collect();
    let mut backend = match Backend::connect(target).await {
        Ok(b) => b,
        Err(e) => return (rcpts, format!("backend unavailable: {e}"), false),
    };
    let result = async {
        let eight_bit = message.iter().any(|&b| b >= 0x80);
        let r = backend
            .mail(
                sender,
                Some((trace.len() + message.len()) as u64),
                eight_bit,
            )
            .await?;
        if !r.is_positive() {
            return Ok::<_, crate::smtp::client::BackendError>((r.summary(), false));
        }
        for rc in &mut rcpts {
            let r = backend.rcpt(&rc.address).await?;
            rc.accepted = r.is_positive();
            rc.reply = r.summary();
        }
        if !rcpts.iter().any(|r| r.accepted) {
            return Ok(("no recipient accepted".into(), false));
        }
        let r = backend.data(&[trace, message]).await?;
        Ok((r.summary(), r.is_positive()))
    }
    .await;
    backend.quit().await;
    match result {
        Ok((reply, ok)) => (rcpts, reply, ok),
        Err(e) => (rcpts, format!("backend failed: {e}"), false),
    }
}

/// The delivered transactions of one recipient since a time: what a bulk replay re-delivers.
pub async fn delivered_to(
    store: &Store,
    rcpt: &str,
    since_us: i64,
) -> anyhow::Result<Vec<JournalEntry>> {
    let filter = JournalFilter {
        rcpt: Some(rcpt.to_string()),
        since_us: Some(since_us),
        limit: Some(1_000_000),
        ..Default::default()
    };
    let mut all = store.query_journal(&filter).await?;
    all.retain(|e| {
        e.replay_of.is_none()
            && e.outcome == "delivered"
            && e.recipients.iter().any(|r| r.accepted && r.is(rcpt))
    });
    all.reverse(); // oldest first, as they arrived
    Ok(all)
}
