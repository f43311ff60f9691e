//! Backend connections kept open between client sessions. A connection whose transaction ended
//! cleanly goes back here and serves the next MAIL, so the backend is spared a connect, greeting,
//! EHLO (and STARTTLS) per message — the same idea as Postfix's connection cache. Idle
//! connections are closed after `IDLE_TIME`, well inside any backend's own idle timeout; a
//! connection that turns out dead on reuse is replaced by a fresh one.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::client::{Backend, BackendError, BackendTarget};

const IDLE_TIME: Duration = Duration::from_secs(20);

pub struct BackendPool {
    pub target: BackendTarget,
    idle: Mutex<Vec<(Backend, Instant)>>,
    max_idle: usize,
}

impl BackendPool {
    pub fn new(target: BackendTarget, max_idle: usize) -> BackendPool {
        BackendPool {
            target,
            idle: Mutex::new(Vec::new()),
            max_idle,
        }
    }

    /// An idle connection if one is fresh (`true`: reused), else a new one.
    pub async fn get(&self) -> Result<(Backend, bool), BackendError> {
        let mut stale = Vec::new();
        let reused = {
            let mut idle = self.idle.lock().expect("pool lock");
            let mut found = None;
            while let Some((b, since)) = idle.pop() {
                if since.elapsed() < IDLE_TIME {
                    found = Some(b);
                    break;
                }
                stale.push(b);
            }
            found
        };
        for b in stale {
            tokio::spawn(b.quit());
        }
        match reused {
            Some(b) => Ok((b, true)),
            None => Ok((Backend::connect(&self.target).await?, false)),
        }
    }

    /// A new connection, never a pooled one (after a pooled one failed).
    pub async fn fresh(&self) -> Result<Backend, BackendError> {
        Backend::connect(&self.target).await
    }

    /// Returns a connection with no open transaction.
    pub fn put(&self, b: Backend) {
        let mut idle = self.idle.lock().expect("pool lock");
        if idle.len() < self.max_idle {
            idle.push((b, Instant::now()));
        } else {
            drop(idle);
            tokio::spawn(b.quit());
        }
    }

    /// Closes every idle connection (at shutdown).
    pub async fn close(&self) {
        let all: Vec<_> = self.idle.lock().expect("pool lock").drain(..).collect();
        for (b, _) in all {
            b.quit().await;
        }
    }
}
