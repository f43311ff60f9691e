//! One intercepted event and the metadata record that goes with its copy: when, between which
//! addresses, over which service and TLS, and what happened (the SMTP envelope, verdict and
//! replies; a POP3/IMAP login and its result; a retrieved or uploaded message).

use serde_json::{Value, json};
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

    /// An SMTP transaction rebuilt from its journal record and kept message, for a copy the live
    /// path did not make ([`super::recover`]); `server` is sponts' SMTP address.
    pub fn from_journal(
        e: &crate::storage::JournalEntry,
        server: SocketAddr,
        message: Option<Vec<u8>>,
    ) -> Event {
        let recipients: Vec<Value> = e
            .recipients
            .iter()
            .map(|x| json!({ "address": x.address, "accepted": x.accepted, "reply": x.reply, "delivered_to": x.delivered_to }))
            .collect();
        let client = format!("{}:{}", e.client_ip, e.client_port)
            .parse()
            .or_else(|_| format!("[{}]:{}", e.client_ip, e.client_port).parse())
            .unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0)));
        Event {
            time_us: e.time_us,
            service: "smtp",
            kind: "transaction",
            client,
            server,
            session: e.id.clone(),
            tls: e.tls.clone(),
            details: json!({
                "helo": e.helo,
                "mail_from": e.sender,
                "recipients": recipients,
                "outcome": e.outcome,
                "decided_by": e.decided_by,
                "final_reply": e.final_reply,
                "classified_as": e.flag,
                "notes": e.notes.iter().collect::<Vec<_>>(),
                "recovered": true,
            }),
            content: message.map(Arc::new),
        }
    }

    /// The metadata record of this event's copy for `order`; `content` is the message's size
    /// and digest.
    fn metadata(&self, copy_id: &str, order: &Order, content: &Option<Value>) -> Value {
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

    /// A copy for each order; the message is compressed and digested once for all of them.
    pub fn copies(&self, orders: &[Order]) -> anyhow::Result<Vec<NewCopy>> {
        self.copies_named(orders, |_| crate::id::new_transaction_id())
    }

    /// As [`Event::copies`], each copy's id given by `name` (the same event and order always
    /// give the same id when several nodes may record it).
    pub fn copies_named(
        &self,
        orders: &[Order],
        name: impl Fn(&Order) -> String,
    ) -> anyhow::Result<Vec<NewCopy>> {
        let digest = self.content.as_ref().map(|m| crate::auth::sha256_hex(m));
        let compressed = self
            .content
            .as_ref()
            .map(|m| crate::modules::backup::compress(m, 3))
            .transpose()?;
        let size = self.content.as_ref().map_or(0, |m| m.len() as i64);
        let content = digest
            .as_ref()
            .map(|d| json!({ "size": size, "sha256": d }));
        let summary = format!(
            "{} {} at {}, client {}, {size} bytes{}",
            self.service,
            self.kind,
            crate::clock::rfc3339(self.time_us),
            self.client,
            digest
                .as_ref()
                .map(|d| format!(" sha256 {d}"))
                .unwrap_or_default()
        );
        Ok(orders
            .iter()
            .map(|order| {
                let id = name(order);
                NewCopy {
                    meta: self.metadata(&id, order, &content).to_string(),
                    id,
                    order_id: order.id.clone(),
                    time_us: self.time_us,
                    service: self.service.into(),
                    event: self.kind.into(),
                    content: compressed.clone(),
                    content_size: size,
                    summary: summary.clone(),
                }
            })
            .collect())
    }
}
