//! The `virus` module: every message is scanned by ClamAV's clamd (INSTREAM; clamd decodes the
//! MIME parts and archives itself) before delivery. Infected mail is refused — as "user unknown"
//! where the domain's UCE policy says so, else `554 5.7.1` with the signature's name — kept in
//! the backup flagged `virus` (admins only), and journaled with the signature. A scan that
//! cannot be made is never skipped silently: by `virus.on_error` the message is refused for now
//! (451) or delivered with a journal note. Before the scan, the attachment policy refuses file
//! types that no one should mail (`virus.block_extensions`, `virus.block_types`), also in zips.

pub mod attachments;
pub mod clamd;

use async_trait::async_trait;
use std::time::Instant;

use crate::config::{Config, OnScanError, SpamPolicy, UceConfig, VirusConfig};
use crate::pipeline::{Module, SessionInfo, TxInfo, Verdict};
use crate::smtp::reply::{Reply, replies};

pub struct Virus {
    config: VirusConfig,
    uce: UceConfig,
}

impl Virus {
    pub fn new(config: &Config) -> Virus {
        Virus {
            config: config.virus.clone(),
            uce: config.uce.clone(),
        }
    }

    /// The refusal for an infected message to `rcpt`.
    fn refusal(&self, rcpt: &crate::smtp::address::Address, name: &str) -> Reply {
        match self.uce.policy_for(&rcpt.domain) {
            SpamPolicy::RejectAsUnknown => replies::user_unknown(&rcpt.to_string()),
            _ => Reply::new(554, "5.7.1", format!("Message refused: virus {name} found")),
        }
    }
}

#[async_trait]
impl Module for Virus {
    fn name(&self) -> &'static str {
        "virus"
    }

    async fn message(&self, s: &SessionInfo, tx: &TxInfo, message: &[u8]) -> Verdict {
        if let Some(blocked) = attachments::check(
            message,
            &self.config.block_extensions,
            &self.config.block_types,
        ) {
            tracing::info!(id = %tx.id, "attachment refused: {}", blocked.0);
            s.marks.flag("blocked");
            s.marks
                .note(format!("virus: attachment {} refused by policy", blocked.0));
            return Verdict::Reject(Reply::new(
                554,
                "5.7.1",
                format!("Message refused: attachment {} is not accepted", blocked.0),
            ));
        }
        if !self.config.scans() {
            return Verdict::Continue;
        }
        let started = Instant::now();
        let result = tokio::time::timeout(
            self.config.timeout.0,
            clamd::scan(&self.config.clamd, message),
        )
        .await;
        let took = started.elapsed();
        let ms = took.as_millis();
        let outcome = match &result {
            Ok(Ok(clamd::Scan::Clean)) => "clean",
            Ok(Ok(clamd::Scan::Infected(_))) => "found",
            Ok(Err(_)) => "error",
            Err(_) => "timeout",
        };
        crate::scanners::record("clamd", outcome, took);
        let error = match result {
            Ok(Ok(clamd::Scan::Clean)) => return Verdict::Continue,
            Ok(Ok(clamd::Scan::Infected(name))) => {
                tracing::info!(id = %tx.id, virus = %name, "virus found");
                s.marks.flag("virus");
                s.marks.note(format!("virus: {name} ({ms} ms)"));
                let Some(rcpt) = tx.recipients.first() else {
                    return Verdict::Reject(Reply::new(
                        554,
                        "5.7.1",
                        "Message refused: virus found",
                    ));
                };
                return Verdict::Reject(self.refusal(rcpt, &name));
            }
            Ok(Err(e)) => format!("{e:#}"),
            Err(_) => format!("no answer within {} s", self.config.timeout.0.as_secs()),
        };
        tracing::warn!(id = %tx.id, "virus scan skipped: {error}");
        match self.config.on_error {
            OnScanError::Tempfail => {
                s.marks
                    .note(format!("virus: scan failed, refused for now: {error}"));
                Verdict::TempFail(Reply::new(
                    451,
                    "4.7.1",
                    "Virus scanner unavailable, try again later",
                ))
            }
            OnScanError::Accept => {
                s.marks
                    .note(format!("virus: scan skipped, delivered unscanned: {error}"));
                Verdict::Continue
            }
        }
    }
}
