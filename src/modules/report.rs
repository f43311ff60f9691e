//! The `report` module's recording side: every finished transaction adds to hourly figures in
//! SQL (`storage::stats`) — its class (clean, spam, virus, discarded, tempfailed ...), the load in
//! and out, who decided, and, for spam and viruses, the client IP, sender domain and HELO name
//! (the top spammers). Written in batches after the reply, off the mail's path: figures are not a
//! record of truth (the journal is), and a crash may lose the last batch of counts.

use async_trait::async_trait;

use crate::pipeline::{Module, Outcome, TransactionRecord};
use crate::storage::batch::BatchWriter;
use crate::storage::{StatDelta, Store};

pub struct Report {
    writer: BatchWriter<Vec<StatDelta>>,
}

const BATCH: usize = 256;
const HOUR_US: i64 = 3_600_000_000;

impl Report {
    pub fn start(store: Store) -> Report {
        let writer = BatchWriter::start(BATCH, move |batch: Vec<Vec<StatDelta>>| {
            let store = store.clone();
            async move {
                let result = store.add_stats(&batch.concat()).await;
                if let Err(e) = &result {
                    tracing::warn!("report: figures not recorded: {e:#}");
                }
                result
            }
        });
        Report { writer }
    }
}

/// What became of a transaction, for the rates.
pub fn class(r: &TransactionRecord) -> &'static str {
    match (r.outcome, r.flag.as_deref()) {
        (Outcome::TempFailed, _) => "tempfailed",
        (_, Some("virus" | "blocked")) => "virus",
        (Outcome::Discarded, _) => "discarded",
        (_, Some("spam")) => "spam",
        (Outcome::Delivered | Outcome::Queued, Some("suspect")) => "tagged",
        (Outcome::Delivered | Outcome::Queued, _) => "clean",
        (Outcome::Refused, _) => "refused",
        (Outcome::Abandoned, _) => "abandoned",
    }
}

/// The increments one transaction makes.
pub fn deltas(r: &TransactionRecord) -> Vec<StatDelta> {
    let hour = r.time_us - r.time_us.rem_euclid(HOUR_US);
    let mut d: Vec<StatDelta> = Vec::with_capacity(12);
    let mut add = |metric: &str, key: &str, value: i64| d.push((hour, metric.to_string(), key.to_string(), value));
    let class = class(r);
    add("class", class, 1);
    add("decided_by", &r.decided_by, 1);
    if let Some(m) = &r.message {
        add("messages_in", "", 1);
        add("bytes_in", "", m.len() as i64);
        if r.outcome == Outcome::Delivered {
            add("messages_out", "", 1);
            add("bytes_out", "", m.len() as i64);
        }
    }
    if r.outcome == Outcome::Queued {
        add("queued", "", 1);
    }
    if matches!(class, "spam" | "virus" | "discarded") {
        let domain = r.sender.rsplit_once('@').map_or("<>", |(_, d)| d).to_ascii_lowercase();
        add("spam_ip", &r.peer.ip().to_canonical().to_string(), 1);
        add("spam_sender_domain", &domain, 1);
        add("spam_helo", &r.helo.chars().take(100).collect::<String>().to_ascii_lowercase(), 1);
        add("spam_reason", &format!("{class} by {}", r.decided_by), 1);
    }
    d
}

#[async_trait]
impl Module for Report {
    fn name(&self) -> &'static str {
        "report"
    }

    async fn finish(&self, record: &TransactionRecord) -> anyhow::Result<()> {
        self.writer.queue(deltas(record)).await
    }
}
