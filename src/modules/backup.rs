//! The `backup` module: every message that reaches the end of DATA is kept byte-exact —
//! delivered, refused or discarded alike, so a false positive can always be replayed — zstd-
//! compressed, once per transaction however many recipients it has, with the SHA-256 of the message
//! as received (the archive's seals gather those). It is committed before the message goes to the
//! backend; if it cannot be kept the client gets 451, never 250. Retention is the archive's job
//! (`crate::archive::retention`).

use async_trait::async_trait;
use std::sync::Arc;

use crate::config::BackupConfig;
use crate::pipeline::{Module, SessionInfo, TxInfo};
use crate::storage::batch::BatchWriter;
use crate::storage::{Store, StoredBody};

pub struct Backup {
    writer: BatchWriter<StoredBody>,
    level: i32,
}

const BATCH: usize = 64;
/// Messages bigger than this are compressed off the async threads.
const INLINE_COMPRESS_LIMIT: usize = 128 * 1024;

impl Backup {
    /// Starts the writer (needs a Tokio runtime).
    pub fn start(store: Store, config: &BackupConfig) -> Backup {
        let writer = BatchWriter::start(BATCH, move |bodies: Vec<StoredBody>| {
            let store = store.clone();
            async move { store.insert_bodies(bodies).await }
        });
        Backup {
            writer,
            level: config.compression_level,
        }
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
    unpack(&body.compressed, body.size)
}

/// A stored (zstd) copy back to the `size` bytes it was, with a decompression context kept per
/// thread (queue and MX delivery unpack every message they send).
pub fn unpack(compressed: &[u8], size: i64) -> std::io::Result<Vec<u8>> {
    thread_local! {
        static CONTEXT: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { std::cell::RefCell::new(None) };
    }
    CONTEXT.with(|context| {
        let mut context = context.borrow_mut();
        if context.is_none() {
            *context = Some(zstd::bulk::Decompressor::new()?);
        }
        context
            .as_mut()
            .expect("made above")
            .decompress(compressed, size.max(0) as usize)
    })
}

#[async_trait]
impl Module for Backup {
    fn name(&self) -> &'static str {
        "backup"
    }

    async fn store(
        &self,
        _s: &SessionInfo,
        tx: &TxInfo,
        message: &Arc<Vec<u8>>,
    ) -> anyhow::Result<()> {
        let level = self.level;
        let kept = |m: &[u8]| compress(m, level).map(|z| (z, crate::archive::seal::digest(m)));
        let (compressed, digest) = if message.len() > INLINE_COMPRESS_LIMIT {
            let m = message.clone();
            tokio::task::spawn_blocking(move || {
                compress(&m, level).map(|z| (z, crate::archive::seal::digest(&m)))
            })
            .await??
        } else {
            kept(message)?
        };
        let body = StoredBody {
            id: tx.id.clone(),
            time_us: crate::clock::now_us(),
            size: message.len() as i64,
            compressed,
            digest,
        };
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
            assert_eq!(
                zstd::bulk::decompress(&z, m.len()).unwrap(),
                *m,
                "level {level}"
            );
        }
    }
}
