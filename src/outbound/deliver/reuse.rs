//! Connection reuse: after a transaction, a session to a destination's MX host waits up to
//! [`IDLE`] for the next message to the same domain (as Postfix's connection cache does), so a
//! burst to one domain costs one connection, TLS handshake and set of DNS lookups per session,
//! not per message. A waiting session is checked with RSET before it carries the next message;
//! the transport security it was opened with (DANE, MTA-STS, override) holds for its life,
//! which ends after [`MAX_LIFE`].

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::smtp::client::Backend;

/// How long a session waits for the next message.
pub const IDLE: Duration = Duration::from_secs(3);
/// No session is reused after this long, so policy changes take effect.
pub const MAX_LIFE: Duration = Duration::from_secs(300);

/// An open session between two messages.
pub struct Session {
    pub backend: Backend,
    pub host: String,
    pub ip: IpAddr,
    /// `TLSv1.3 ... (DANE)` when encrypted.
    pub tls: Option<String>,
    pub opened: Instant,
}

type Waiting = Arc<Mutex<HashMap<String, Vec<(u64, Session)>>>>;

/// The sessions waiting per destination domain.
#[derive(Default)]
pub struct Sessions {
    waiting: Waiting,
    next: AtomicU64,
}

impl Sessions {
    /// A waiting session to `domain`, the most recent first.
    pub fn take(&self, domain: &str) -> Option<Session> {
        let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        let list = waiting.get_mut(domain)?;
        let session = list.pop().map(|(_, s)| s);
        if list.is_empty() {
            waiting.remove(domain);
        }
        session
    }

    /// Keeps `session` for the next message to `domain` (at most `limit` wait per domain), and
    /// ends it with QUIT after [`IDLE`] unless it was taken.
    pub fn put(&self, domain: &str, session: Session, limit: usize) {
        if session.opened.elapsed() >= MAX_LIFE {
            tokio::spawn(session.backend.quit());
            return;
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        {
            let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
            let list = waiting.entry(domain.to_string()).or_default();
            if list.len() >= limit {
                drop(waiting);
                tokio::spawn(session.backend.quit());
                return;
            }
            list.push((id, session));
        }
        let waiting = self.waiting.clone();
        let domain = domain.to_string();
        tokio::spawn(async move {
            tokio::time::sleep(IDLE).await;
            let expired = {
                let mut waiting = waiting.lock().unwrap_or_else(|e| e.into_inner());
                let list = waiting.get_mut(&domain);
                let expired = list
                    .as_ref()
                    .and_then(|l| l.iter().position(|(i, _)| *i == id))
                    .and_then(|p| list.map(|l| l.remove(p).1));
                if waiting.get(&domain).is_some_and(|l| l.is_empty()) {
                    waiting.remove(&domain);
                }
                expired
            };
            if let Some(s) = expired {
                s.backend.quit().await;
            }
        });
    }
}
