//! The archive: what the backup keeps, made something an auditor accepts and people can take
//! out. [`seal`]: each message's digest gathered per day into a signed Merkle root, the roots
//! chained; [`verify`] recomputes it all; [`roots`] exports the roots for safekeeping;
//! [`retention`]: the purge by rules, never touching mail under a [`hold`]; [`stats`]: what
//! it holds and will need; [`export`]: a person's kept mail as mbox or a zip of `.eml` files.

pub mod export;
pub mod hold;
pub mod retention;
pub mod roots;
pub mod seal;
pub mod stats;
pub mod verify;

use std::time::Duration;

use crate::config::Config;
use crate::storage::Store;

const SEAL_EVERY: Duration = Duration::from_secs(600);
const PURGE_EVERY: Duration = Duration::from_secs(3600);

/// The serve process' archive job: seals each finished day, purges by retention.
pub async fn job(config: Config, store: Store) {
    let mut since_purge: Option<std::time::Instant> = None;
    loop {
        if let Err(e) =
            seal::seal_until(&store, crate::clock::now_us() - seal::GRACE_US, false).await
        {
            tracing::warn!("archive seal failed: {e:#}");
        }
        if since_purge.is_none_or(|t| t.elapsed() >= PURGE_EVERY) {
            since_purge = Some(std::time::Instant::now());
            if let Err(e) = retention::purge(&store, &config, crate::clock::now_us()).await {
                tracing::warn!("archive purge failed: {e:#}");
            }
        }
        tokio::time::sleep(SEAL_EVERY).await;
    }
}
