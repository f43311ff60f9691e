//! This process's live figures — connections accepted and refused, open sessions and their
//! peak — counted as they happen, and written to the hourly buckets by [`Sampler`] with the
//! queue length and the scanners' calls and latency buckets. Figures of several nodes add up
//! (peaks and queue length: the hour's maximum of any node).

use anyhow::Result;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

use crate::scanners;
use crate::storage::Store;
use crate::storage::stats::{HOUR_US, StatDelta};

static ACCEPTED: AtomicU64 = AtomicU64::new(0);
static REFUSED: AtomicU64 = AtomicU64::new(0);
static OPEN: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

/// A connection was accepted (a session starts).
pub fn session_opened() {
    ACCEPTED.fetch_add(1, Relaxed);
    let open = OPEN.fetch_add(1, Relaxed) + 1;
    PEAK.fetch_max(open, Relaxed);
}

/// A session ended.
pub fn session_closed() {
    OPEN.fetch_sub(1, Relaxed);
}

/// A connection was turned away at the connection limits.
pub fn connection_refused() {
    REFUSED.fetch_add(1, Relaxed);
}

/// Connections accepted and refused so far, and sessions open now.
pub fn connections() -> (u64, u64, usize) {
    (
        ACCEPTED.load(Relaxed),
        REFUSED.load(Relaxed),
        OPEN.load(Relaxed),
    )
}

/// The counters as last written, so each sample writes the difference.
#[derive(Default)]
struct Written {
    accepted: u64,
    refused: u64,
    scanner_calls: Vec<u64>,
    scanner_buckets: Vec<u64>,
}

/// Writes the live figures; one per process.
#[derive(Default)]
pub struct Sampler {
    written: Mutex<Written>,
}

impl Sampler {
    /// Writes what happened since the last sample into the current hour.
    pub async fn sample(&self, store: &Store, queue_length: i64) -> Result<()> {
        let now = crate::clock::now_us();
        let hour = now - now.rem_euclid(HOUR_US);
        let (accepted, refused, open) = connections();
        // The peak since the last sample, and from now on counted from the sessions open now.
        let peak = PEAK.swap(open, Relaxed).max(open);
        let calls = scanners::all_calls();
        let buckets = scanners::all_buckets();
        let (sums, previous) = {
            let mut w = self.written.lock().expect("sampler lock");
            let mut sums: Vec<StatDelta> = Vec::new();
            let mut add = |metric: &str, key: String, value: u64| {
                if value > 0 {
                    sums.push((hour, metric.to_string(), key, value as i64));
                }
            };
            add("connections", String::new(), accepted - w.accepted);
            add("connections_refused", String::new(), refused - w.refused);
            for (i, (scanner, result)) in scanners::SCANNERS
                .iter()
                .flat_map(|s| scanners::RESULTS.iter().map(move |r| (s, r)))
                .enumerate()
            {
                add(
                    "scanner_calls",
                    format!("{scanner}/{result}"),
                    calls[i] - w.scanner_calls.get(i).copied().unwrap_or(0),
                );
            }
            for (i, (scanner, le)) in scanners::SCANNERS
                .iter()
                .flat_map(|s| scanners::BUCKETS.iter().map(move |le| (s, le)))
                .enumerate()
            {
                add(
                    "scanner_le",
                    format!("{scanner}/{le}"),
                    buckets[i] - w.scanner_buckets.get(i).copied().unwrap_or(0),
                );
            }
            let previous = std::mem::replace(
                &mut *w,
                Written {
                    accepted,
                    refused,
                    scanner_calls: calls,
                    scanner_buckets: buckets,
                },
            );
            (sums, previous)
        };
        let peaks: Vec<StatDelta> = [
            ("sessions_peak", peak as i64),
            ("queue_length", queue_length),
        ]
        .into_iter()
        .filter(|(_, v)| *v > 0)
        .map(|(m, v)| (hour, m.to_string(), String::new(), v))
        .collect();
        if sums.is_empty() && peaks.is_empty() {
            return Ok(());
        }
        if let Err(e) = store.add_live_stats(&sums, &peaks).await {
            // Not written: the next sample carries these figures again.
            *self.written.lock().expect("sampler lock") = previous;
            return Err(e);
        }
        Ok(())
    }
}
