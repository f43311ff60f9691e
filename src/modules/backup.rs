//! The `backup` module: every message that reaches the end of DATA is kept byte-exact —
//! delivered, refused or discarded alike, so a false positive can always be replayed — zstd-
//! compressed, once per transaction however many recipients it has. It is committed before the
//! message goes to the backend; if it cannot be kept the client gets 451, never 250. A purge job
//! applies `backup.retention_days` and `backup.max_bytes`, oldest first, and logs what it removed.

use async_trait::async_trait;
use std::sync::Arc;
use std::time::Duration;

use crate::config::BackupConfig;
use crate::pipeline::{Module, SessionInfo, TxInfo};
use crate::storage::batch::BatchWriter;
use crate::storage::{Store, StoredBody};

pub struct Backup {
    writer: BatchWriter<StoredBody>,
    level: i32,
    /// The purge job runs while this lives.
    _jobs: Arc<()>,
}

const BATCH: usize = 64;
/// Messages bigger than this are compressed off the async threads.
const INLINE_COMPRESS_LIMIT: usize = 128 * 1024;
const PURGE_EVERY: Duration = Duration::from_secs(3600);

impl Backup {
    /// Starts the writer and the purge job (needs a Tokio runtime).
    pub fn start(store: Store, config: &BackupConfig) -> Backup {
        let writer_store = store.clone();
        let writer = BatchWriter::start(BATCH, move |bodies: Vec<StoredBody>| {
            let store = writer_store.clone();
            async move { store.insert_bodies(&bodies).await }
        });
        let jobs = Arc::new(());
        let config_for_job = config.clone();
        super::periodic(PURGE_EVERY, &jobs, move || {
            let (store, config) = (store.clone(), config_for_job.clone());
            async move {
                if let Err(e) = purge(&store, &config).await {
                    tracing::warn!("backup purge failed: {e:#}");
                }
            }
        });
        Backup { writer, level: config.compression_level, _jobs: jobs }
    }
}

/// zstd at `level`, with a compression context kept per thread: making one per message was a
/// measurable part of each message's CPU (its tables are allocated and cleared every time).
pub fn compress(message: &[u8], level: i32) -> std::io::Result<Vec<u8>> {
    thread_local! {
        static CONTEXT: std::cell::RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> = const { std::cell::RefCell::new(None) };
    }
    CONTEXT.with(|context| {
        let mut context = context.borrow_mut();
        if context.as_ref().is_none_or(|(l, _)| *l != level) {
            *context = Some((level, zstd::bulk::Compressor::new(level)?));
        }
        let (_, compressor) = context.as_mut().expect("made above");
        compressor.compress(message)
    })
}

/// The message as it was received.
pub fn decompress(body: &StoredBody) -> std::io::Result<Vec<u8>> {
    zstd::bulk::decompress(&body.compressed, body.size.max(0) as usize)
}

/// One purge pass: age first, then size.
pub async fn purge(store: &Store, config: &BackupConfig) -> anyhow::Result<crate::storage::Purged> {
    let before = crate::clock::now_us() - (config.retention_days as i64) * 86_400_000_000;
    let purged = store.purge_backup(before, config.max_bytes.map(|b| b.0 as i64)).await?;
    if purged.messages > 0 {
        tracing::info!(messages = purged.messages, bytes = purged.bytes, "backup purge removed the oldest messages");
    }
    Ok(purged)
}


#[async_trait]
impl Module for Backup {
    fn name(&self) -> &'static str {
        "backup"
    }

    async fn store(&self, _s: &SessionInfo, tx: &TxInfo, message: &Arc<Vec<u8>>) -> anyhow::Result<()> {
        let level = self.level;
        let compressed = if message.len() > INLINE_COMPRESS_LIMIT {
            let m = message.clone();
            tokio::task::spawn_blocking(move || compress(&m, level)).await??
        } else {
            compress(message, level)?
        };
        let body = StoredBody { id: tx.id.clone(), time_us: crate::clock::now_us(), size: message.len() as i64, compressed };
        self.writer.write(body).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kept_context_compresses_each_message_on_its_own() {
        let a = b"Subject: one\r\n\r\nfirst message, first message, first message\r\n".repeat(20);
        let b = b"Subject: two\r\n\r\nsecond\r\n".to_vec();
        for (level, m) in [(3, &a), (3, &b), (9, &a), (3, &b)] {
            let z = compress(m, level).unwrap();
            assert_eq!(zstd::bulk::decompress(&z, m.len()).unwrap(), *m, "level {level}");
        }
    }
}
