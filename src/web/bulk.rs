//! Admin bulk replay: a search result delivered again in the background, with progress that the
//! page polls (no script: the progress page refreshes itself while the job runs).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::Web;

#[derive(Debug, Clone, Default)]
pub struct Progress {
    pub id: String,
    pub actor: String,
    pub what: String,
    pub total: usize,
    pub done: usize,
    pub failed: usize,
    pub finished: bool,
    /// The last few failures, for the page.
    pub errors: Vec<String>,
}

#[derive(Default)]
pub struct Jobs {
    jobs: Mutex<HashMap<String, Arc<Mutex<Progress>>>>,
}

impl Jobs {
    /// Starts replaying `ids` (to `to`, or each to its original recipients); returns the job id.
    pub fn start(
        &self,
        web: Web,
        actor: String,
        what: String,
        ids: Vec<String>,
        to: Option<String>,
    ) -> String {
        let id = crate::id::new_transaction_id();
        let p = Arc::new(Mutex::new(Progress {
            id: id.clone(),
            actor: actor.clone(),
            what,
            total: ids.len(),
            ..Default::default()
        }));
        self.jobs
            .lock()
            .expect("jobs lock")
            .insert(id.clone(), p.clone());
        tokio::spawn(async move {
            for mid in ids {
                let r = crate::replay::replay(&web.config, &web.store, &mid, to.as_deref(), &actor)
                    .await;
                let mut g = p.lock().expect("progress lock");
                g.done += 1;
                let failure = match r {
                    Ok(r) if r.delivered => None,
                    Ok(r) => Some(format!("{mid}: {}", r.reply)),
                    Err(e) => Some(format!("{mid}: {e}")),
                };
                if let Some(f) = failure {
                    g.failed += 1;
                    if g.errors.len() < 20 {
                        g.errors.push(f);
                    }
                }
            }
            p.lock().expect("progress lock").finished = true;
        });
        id
    }

    pub fn get(&self, id: &str) -> Option<Progress> {
        self.jobs
            .lock()
            .expect("jobs lock")
            .get(id)
            .map(|p| p.lock().expect("progress lock").clone())
    }

    pub fn all(&self) -> Vec<Progress> {
        let mut v: Vec<Progress> = self
            .jobs
            .lock()
            .expect("jobs lock")
            .values()
            .map(|p| p.lock().expect("progress lock").clone())
            .collect();
        v.sort_by(|a, b| b.id.cmp(&a.id));
        v
    }
}
