//! One intercepted event and the metadata record that goes with its copy: when, between which
//! addresses, over which service and TLS, and what happened (the SMTP envelope, verdict and
//! replies; a POP3/IMAP login and its result; a retrieved or uploaded message).

use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::Arc;

use crate::pipeline::TransactionRecord;
use crate::storage::intercept::Order;
use crate::storage::intercept_copies::NewCopy;

#[derive(Debug, Clone)]
pub struct Event {
    pub time_us: i64,
    /// `smtp`, `pop3` or `imap`.
    pub service: &'static str,
    /// `transaction`, `login`, `retrieve` or `append`.
    pub kind: &'static str,
    pub client: SocketAddr,
    pub server: SocketAddr,
    /// Groups the events of one connection (the SMTP transaction id, the proxy session id).
    pub session: String,
    /// "TLSv1.3 TLS13_AES_256_GCM_SHA384" when the client's connection is encrypted.
    pub tls: Option<String>,
    /// The service's own fields.
    pub details: Value,
    /// The message the event carried.
    pub content: Option<Arc<Vec<u8>>>,
}

impl Event {
    pub fn smtp(r: &TransactionRecord, server: SocketAddr) -> Event {
        let recipients: Vec<Value> = r
            .recipients
            .iter()
            .map(|x| json!({ "address": x.address, "accepted": x.accepted, "reply": x.reply, "delivered_to": x.delivered_to }))
            .collect();
        Event {
            time_us: r.time_us,
            service: "smtp",
            kind: "transaction",
            client: r.peer,
            server,
            session: r.id.clone(),
            tls: r.tls.clone(),
            details: json!({
                "helo": r.helo,
                "mail_from": r.sender,
                "recipients": recipients,
                "outcome": r.outcome.as_str(),
                "decided_by": r.decided_by,
                "final_reply": r.final_reply,
                "classified_as": r.flag,
                "notes": r.notes,
            }),
            content: r.message.clone(),
        }
    }

    /// The metadata record of this event's copy for `order`.
    pub fn metadata(&self, copy_id: &str, order: &Order) -> Value {
        let content = self.content.as_ref().map(|m| json!({ "size": m.len(), "sha256": sha256_hex(m) }));
        let direction = match self.details.get("mail_from").and_then(Value::as_str) {
            Some(from) if from.eq_ignore_ascii_case(&order.target) => "from-target",
            Some(_) => "to-target",
            None => "target-session",
        };
        json!({
            "copy": copy_id,
            "order": order.id,
            "reference": order.reference,
            "target": order.target,
            "service": self.service,
            "event": self.kind,
            "direction": direction,
            "time": crate::clock::rfc3339(self.time_us),
            "time_us": self.time_us,
            "client": { "address": self.client.ip().to_string(), "port": self.client.port() },
            "server": { "address": self.server.ip().to_string(), "port": self.server.port() },
            "session": self.session,
            "tls": self.tls,
            "details": self.details,
            "content": content,
        })
    }

    pub fn copy_for(&self, order: &Order) -> anyhow::Result<NewCopy> {
        let id = crate::id::new_transaction_id();
        let meta = self.metadata(&id, order);
        let content = match &self.content {
            Some(m) => Some(crate::modules::backup::compress(m, 3)?),
            None => None,
        };
        let size = self.content.as_ref().map_or(0, |m| m.len() as i64);
        let summary = format!("{} {} at {}, client {}, {size} bytes{}", self.service, self.kind, crate::clock::rfc3339(self.time_us), self.client, self.content.as_ref().map(|m| format!(" sha256 {}", sha256_hex(m))).unwrap_or_default());
        Ok(NewCopy {
            id,
            order_id: order.id.clone(),
            time_us: self.time_us,
            service: self.service.into(),
            event: self.kind.into(),
            meta: meta.to_string(),
            content,
            content_size: size,
            summary,
        })
    }
}

pub fn sha256_hex(data: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, data).as_ref().iter().map(|b| format!("{b:02x}")).collect()
}
