//! Whether the backend answers: queue mode begins when an SMTP session or the queue runner finds
//! it unreachable, and ends when either reaches it again — a session's MAIL, the runner's
//! delivery, or the runner's probe while nothing is due. Each switch is one gateway event, so the
//! queue page, `/metrics` and the Report agree with the outage's real length. One state per
//! process, shared by every gateway a reload makes and by the runner.

use std::sync::Mutex;

use crate::smtp::client::{Backend, BackendTarget};
use crate::storage::Store;

pub struct BackendHealth {
    store: Store,
    node: String,
    /// When the backend was first found unreachable, while it is.
    down_since: Mutex<Option<i64>>,
}

impl BackendHealth {
    /// The state at start: still in queue mode if the last switch recorded is "on" (sponts was
    /// restarted during an outage), so the end of that outage is recorded with its full length.
    pub async fn load(store: Store, node: String) -> BackendHealth {
        let since = match store.latest_queue_mode().await {
            Ok(Some(e)) if e.kind == "queue_mode_on" => Some(e.time_us),
            _ => None,
        };
        BackendHealth {
            store,
            node,
            down_since: Mutex::new(since),
        }
    }

    pub fn is_down(&self) -> bool {
        self.down_since.lock().expect("health lock").is_some()
    }

    /// Records a switch into queue mode (once per outage) in the events every node sees.
    pub async fn failed(&self, why: &str) {
        let first = {
            let mut since = self.down_since.lock().expect("health lock");
            since
                .is_none()
                .then(|| *since = Some(crate::clock::now_us()))
                .is_some()
        };
        if first {
            tracing::warn!(node = %self.node, "backend unreachable: queue mode on ({why})");
            let _ = self.store.add_event(&self.node, "queue_mode_on", why).await;
        }
    }

    /// Records the end of queue mode when the backend answers again.
    pub async fn ok(&self) {
        let was = self.down_since.lock().expect("health lock").take();
        if let Some(since) = was {
            let secs = (crate::clock::now_us() - since) / 1_000_000;
            tracing::info!(node = %self.node, "backend answers again: queue mode off after {secs} s");
            let _ = self
                .store
                .add_event(&self.node, "queue_mode_off", &format!("after {secs} s"))
                .await;
        }
    }

    /// While in queue mode with nothing to deliver: a connection and EHLO (and STARTTLS when
    /// configured) as a delivery would make them; success ends queue mode.
    pub async fn probe(&self, target: &BackendTarget) {
        if !self.is_down() {
            return;
        }
        if let Ok(b) = Backend::connect(target).await {
            b.quit().await;
            self.ok().await;
        }
    }
}
