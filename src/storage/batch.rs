//! Group commit: callers hand in one item each and wait; one task writes whatever has queued up
//! in a single database transaction and answers every caller with that transaction's result. Under
//! load, many records share one commit; when idle, a record is written at once.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use sqlx::SqlitePool;
use tokio::sync::{mpsc, oneshot};

type Job<T, R> = (T, oneshot::Sender<Result<R, String>>);

/// A writer of items `T`; each caller gets its item's answer `R` (often nothing).
pub struct BatchWriter<T, R = ()> {
    queue: mpsc::Sender<Job<T, R>>,
}

impl<T: Send + 'static> BatchWriter<T> {
    /// Starts the writer task (needs a Tokio runtime). `write` stores one batch.
    pub fn start<F, Fut>(max_batch: usize, write: F) -> BatchWriter<T>
    where
        F: Fn(Vec<T>) -> Fut + Send + 'static,
        Fut: Future<Output = anyhow::Result<()>> + Send,
    {
        Self::start_each(max_batch, move |items: Vec<T>| {
            let n = items.len();
            let done = write(items);
            async move {
                let result = done.await.map_err(|e| format!("{e:#}"));
                vec![result; n]
            }
        })
    }
}

impl<T: Send + 'static, R: Clone + Send + 'static> BatchWriter<T, R> {
    /// Like `start`, but `write` answers each item of the batch on its own (one result per item,
    /// in order), so one that failed need not fail the others.
    pub fn start_each<F, Fut>(max_batch: usize, write: F) -> BatchWriter<T, R>
    where
        F: Fn(Vec<T>) -> Fut + Send + 'static,
        Fut: Future<Output = Vec<Result<R, String>>> + Send,
    {
        let (queue, mut rx) = mpsc::channel::<Job<T, R>>(4096);
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(max_batch);
            while rx.recv_many(&mut batch, max_batch).await > 0 {
                let (items, acks): (Vec<T>, Vec<_>) = batch.drain(..).unzip();
                let results = write(items).await;
                for (i, ack) in acks.into_iter().enumerate() {
                    let result = results
                        .get(i)
                        .cloned()
                        .unwrap_or_else(|| Err("no result for this item".to_string()));
                    let _ = ack.send(result);
                }
            }
        });
        BatchWriter { queue }
    }

    /// Its task has ended (the runtime that ran it was shut down).
    pub fn is_stopped(&self) -> bool {
        self.queue.is_closed()
    }

    /// Queues one item without waiting for its commit (figures that are not a record of truth):
    /// it waits only while the queue is full.
    pub async fn queue(&self, item: T) -> anyhow::Result<()> {
        let (ack, _) = oneshot::channel();
        self.queue
            .send((item, ack))
            .await
            .map_err(|_| anyhow::anyhow!("the writer has stopped"))
    }

    /// Queues one item and waits until it is committed (or its batch failed).
    pub async fn write(&self, item: T) -> anyhow::Result<R> {
        let (ack, done) = oneshot::channel();
        self.queue
            .send((item, ack))
            .await
            .map_err(|_| anyhow::anyhow!("the writer has stopped"))?;
        done.await
            .map_err(|_| anyhow::anyhow!("the writer has stopped"))?
            .map_err(|e| anyhow::anyhow!(e))
    }
}

/// Writers kept one per SQLite database file in the process (see `per_database`).
pub type Registry<T, R = ()> =
    OnceLock<Mutex<HashMap<PathBuf, (SqlitePool, Arc<BatchWriter<T, R>>)>>>;

/// The writer of this pool's database in `registry`, started by `start` when there is none. A
/// new one is started when the pool it wrote through was closed or its task has ended (its
/// runtime was shut down: a server restarted in the same process, as the tests do).
pub fn per_database<T: Send + 'static, R: Clone + Send + 'static>(
    registry: &'static Registry<T, R>,
    pool: &SqlitePool,
    start: impl FnOnce(SqlitePool) -> BatchWriter<T, R>,
) -> Arc<BatchWriter<T, R>> {
    let file = pool.connect_options().get_filename().to_path_buf();
    let mut writers = registry
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    writers.retain(|_, (p, w)| !p.is_closed() && !w.is_stopped());
    let (_, writer) = writers
        .entry(file)
        .or_insert_with(|| (pool.clone(), Arc::new(start(pool.clone()))));
    writer.clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn items_are_grouped_and_errors_reach_every_caller() {
        let batches = Arc::new(Mutex::new(Vec::new()));
        let seen = batches.clone();
        let w = Arc::new(BatchWriter::start(8, move |items: Vec<u32>| {
            let seen = seen.clone();
            async move {
                seen.lock().unwrap().push(items.len());
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                if items.contains(&13) {
                    anyhow::bail!("unlucky")
                } else {
                    Ok(())
                }
            }
        }));
        let tasks: Vec<_> = (0..20u32)
            .map(|i| {
                let w = w.clone();
                tokio::spawn(async move { w.write(i).await.is_ok() })
            })
            .collect();
        let mut ok = 0;
        for t in tasks {
            ok += t.await.unwrap() as usize;
        }
        let batches = batches.lock().unwrap().clone();
        assert_eq!(batches.iter().sum::<usize>(), 20);
        assert!(
            batches.len() < 20,
            "some items shared a commit: {batches:?}"
        );
        assert!(batches.iter().all(|&n| n <= 8));
        assert!(
            (20 - 8..20).contains(&ok),
            "the batch with 13 failed as a whole: {ok}"
        );
    }
}
