//! Group commit: callers hand in one item each and wait; one task writes whatever has queued up
//! in a single database transaction and answers every caller with that transaction's result. Under
//! load, many records share one commit; when idle, a record is written at once.

use std::future::Future;
use tokio::sync::{mpsc, oneshot};

type Job<T> = (T, oneshot::Sender<Result<(), String>>);

pub struct BatchWriter<T> {
    queue: mpsc::Sender<Job<T>>,
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

    /// Like `start`, but `write` answers each item of the batch on its own (one result per item,
    /// in order), so one that failed need not fail the others.
    pub fn start_each<F, Fut>(max_batch: usize, write: F) -> BatchWriter<T>
    where
        F: Fn(Vec<T>) -> Fut + Send + 'static,
        Fut: Future<Output = Vec<Result<(), String>>> + Send,
    {
        let (queue, mut rx) = mpsc::channel::<Job<T>>(4096);
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
    pub async fn write(&self, item: T) -> anyhow::Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

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
