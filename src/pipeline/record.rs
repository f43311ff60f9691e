//! The record of one finished transaction: what the journal stores and what later modules
//! (statistics, backup, interception) build on. Its `id` is the transaction id shown to the client.

use std::net::SocketAddr;

/// How a transaction ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The backend accepted the message.
    Delivered,
    /// Refused permanently (by a module, by the backend, or for a protocol reason).
    Refused,
    /// Refused for now (4xx).
    TempFailed,
    /// Accepted but deliberately not delivered.
    Discarded,
    /// The client left or reset before sending a message.
    Abandoned,
    /// Kept in the queue while the backend was down (the queue runner records the final outcome).
    Queued,
}

impl Outcome {
    pub fn as_str(&self) -> &'static str {
        match self {
            Outcome::Delivered => "delivered",
            Outcome::Refused => "refused",
            Outcome::TempFailed => "tempfailed",
            Outcome::Discarded => "discarded",
            Outcome::Abandoned => "abandoned",
            Outcome::Queued => "queued",
        }
    }

    pub fn parse(s: &str) -> Option<Outcome> {
        [
            Outcome::Delivered,
            Outcome::Refused,
            Outcome::TempFailed,
            Outcome::Discarded,
            Outcome::Abandoned,
            Outcome::Queued,
        ]
        .into_iter()
        .find(|o| o.as_str() == s)
    }
}

/// One recipient as the client gave it, with the answer it got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RcptRecord {
    pub address: String,
    pub accepted: bool,
    /// The reply the client got for this RCPT, e.g. `550 5.1.1 User unknown`.
    pub reply: String,
    /// The address the backend was given instead (a disposable address's owner).
    pub delivered_to: Option<String>,
}

#[derive(Debug, Clone)]
pub struct TransactionRecord {
    pub id: String,
    /// Start of the transaction (MAIL), microseconds since the Unix epoch.
    pub time_us: i64,
    pub peer: SocketAddr,
    pub helo: String,
    pub tls: Option<String>,
    /// Empty for the null sender.
    pub sender: String,
    pub recipients: Vec<RcptRecord>,
    /// The message as received (unstuffed, without sponts' header), when DATA got that far.
    pub message: Option<std::sync::Arc<Vec<u8>>>,
    pub outcome: Outcome,
    /// The module (or `backend`, `smtp`) that decided the outcome.
    pub decided_by: String,
    /// The final reply sent to the client for the transaction.
    pub final_reply: String,
    /// What a module classified the message as (`spam`), delivered or not.
    pub flag: Option<String>,
    /// Scores and reasons the modules gave, for the journal (`uce: score 12.0 (trap hit)`).
    pub notes: Vec<String>,
    /// Outbound: our own client's mail to another domain.
    pub outbound: bool,
    /// The SMTP AUTH account the client signed in as (journaled as the transaction's actor).
    pub account: Option<String>,
}
