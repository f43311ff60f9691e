//! The `journal` module: a record of every transaction — delivered, refused, discarded or
//! abandoned — with its client, envelope, per-recipient replies, content summary, verdict and the
//! module that decided. Records are written by one task in batches (group commit) and each
//! session waits for its record to be committed before its final reply.

pub mod mime;

use async_trait::async_trait;

use crate::pipeline::{Module, TransactionRecord};
use crate::storage::batch::BatchWriter;
use crate::storage::{JournalEntry, RcptEntry, Store};

pub struct Journal {
    writer: BatchWriter<JournalEntry>,
}

/// Records written in one database transaction, at most.
const BATCH: usize = 256;
/// Messages bigger than this are summarized off the async threads.
const INLINE_PARSE_LIMIT: usize = 256 * 1024;

impl Journal {
    /// Starts the writer task (needs a Tokio runtime).
    pub fn start(store: Store) -> Journal {
        let writer = BatchWriter::start(BATCH, move |entries: Vec<JournalEntry>| {
            let store = store.clone();
            async move { store.insert_journal(&entries).await }
        });
        Journal { writer }
    }
}
/// The journal's view of a finished transaction.
pub async fn entry(record: &TransactionRecord) -> JournalEntry {
    let summary = match &record.message {
        Some(m) if m.len() > INLINE_PARSE_LIMIT => {
            let m = m.clone();
            tokio::task::spawn_blocking(move || mime::summarize(&m))
                .await
                .unwrap_or_default()
        }
        Some(m) => mime::summarize(m),
        None => mime::Summary::default(),
    };
    JournalEntry {
        id: record.id.clone(),
        time_us: record.time_us,
        client_ip: record.peer.ip().to_canonical().to_string(),
        client_port: record.peer.port(),
        helo: record.helo.clone(),
        tls: record.tls.clone(),
        sender: record.sender.clone(),
        recipients: record
            .recipients
            .iter()
            .map(|r| RcptEntry {
                address: r.address.clone(),
                accepted: r.accepted,
                reply: r.reply.clone(),
                delivered_to: r.delivered_to.clone(),
            })
            .collect(),
        subject: summary.subject,
        message_id: summary.message_id,
        size: record.message.as_ref().map(|m| m.len() as i64),
        attachments: summary.attachments,
        outcome: record.outcome.as_str().to_string(),
        decided_by: record.decided_by.clone(),
        final_reply: record.final_reply.clone(),
        replay_of: None,
        actor: record.account.clone(),
        flag: record.flag.clone(),
        notes: (!record.notes.is_empty()).then(|| record.notes.join("; ")),
        outbound: record.outbound,
    }
}

#[async_trait]
impl Module for Journal {
    fn name(&self) -> &'static str {
        "journal"
    }

    async fn finish(&self, record: &TransactionRecord) -> anyhow::Result<()> {
        self.writer.write(entry(record).await).await
    }
}
