//! How the scanners do, counted in this process: calls by result and a latency histogram per
//! scanner (clamd, rspamd, spamd), for `/metrics` and the Report. A skipped scan (error,
//! timeout) is counted like any other: none is ever silent.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

pub const SCANNERS: [&str; 3] = ["clamd", "rspamd", "spamd"];
pub const RESULTS: [&str; 4] = ["clean", "found", "error", "timeout"];
/// Histogram bucket bounds, seconds.
pub const BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

struct Scanner {
    results: [AtomicU64; RESULTS.len()],
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_us: AtomicU64,
}

const ZERO: AtomicU64 = AtomicU64::new(0);
const SCANNER: Scanner = Scanner {
    results: [ZERO; RESULTS.len()],
    buckets: [ZERO; BUCKETS.len()],
    count: ZERO,
    sum_us: ZERO,
};
static STATS: [Scanner; SCANNERS.len()] = [SCANNER; SCANNERS.len()];

/// Records one call of `scanner` (one of [`SCANNERS`]) with its `result` (one of [`RESULTS`]).
pub fn record(scanner: &str, result: &str, took: Duration) {
    let (Some(s), Some(r)) = (
        SCANNERS.iter().position(|n| *n == scanner),
        RESULTS.iter().position(|n| *n == result),
    ) else {
        return;
    };
    let s = &STATS[s];
    s.results[r].fetch_add(1, Relaxed);
    let secs = took.as_secs_f64();
    for (i, le) in BUCKETS.iter().enumerate() {
        if secs <= *le {
            s.buckets[i].fetch_add(1, Relaxed);
        }
    }
    s.count.fetch_add(1, Relaxed);
    s.sum_us.fetch_add(took.as_micros() as u64, Relaxed);
}

/// Calls of `scanner` with `result` so far.
pub fn calls(scanner: &str, result: &str) -> u64 {
    match (
        SCANNERS.iter().position(|n| *n == scanner),
        RESULTS.iter().position(|n| *n == result),
    ) {
        (Some(s), Some(r)) => STATS[s].results[r].load(Relaxed),
        _ => 0,
    }
}

/// Calls of every scanner by result, in [`SCANNERS`] × [`RESULTS`] order.
pub fn all_calls() -> Vec<u64> {
    STATS
        .iter()
        .flat_map(|s| s.results.iter().map(|n| n.load(Relaxed)))
        .collect()
}

/// Every scanner's cumulative latency buckets, in [`SCANNERS`] × [`BUCKETS`] order.
pub fn all_buckets() -> Vec<u64> {
    STATS
        .iter()
        .flat_map(|s| s.buckets.iter().map(|n| n.load(Relaxed)))
        .collect()
}

/// The smallest bucket bound that holds `q` (0..1) of `count` calls, from cumulative bucket
/// counts in [`BUCKETS`] order; `None`: beyond the last bound (or no calls).
pub fn quantile(cumulative: &[u64], count: u64, q: f64) -> Option<f64> {
    if count == 0 {
        return None;
    }
    let wanted = (count as f64 * q).ceil().max(1.0) as u64;
    BUCKETS
        .iter()
        .zip(cumulative)
        .find(|(_, n)| **n >= wanted)
        .map(|(le, _)| *le)
}

/// The Prometheus text for every scanner: `sponts_scanner_calls_total` and the
/// `sponts_scanner_duration_seconds` histogram (cumulative buckets).
pub fn prometheus() -> String {
    use std::fmt::Write;
    let mut out = String::from(
        "# HELP sponts_scanner_calls_total Scanner calls by result (error and timeout: the scan was skipped).\n# TYPE sponts_scanner_calls_total counter\n",
    );
    for (name, s) in SCANNERS.iter().zip(&STATS) {
        for (result, n) in RESULTS.iter().zip(&s.results) {
            let _ = writeln!(
                out,
                "sponts_scanner_calls_total{{scanner=\"{name}\",result=\"{result}\"}} {}",
                n.load(Relaxed)
            );
        }
    }
    out.push_str("# HELP sponts_scanner_duration_seconds How long scanner calls took.\n# TYPE sponts_scanner_duration_seconds histogram\n");
    for (name, s) in SCANNERS.iter().zip(&STATS) {
        for (le, n) in BUCKETS.iter().zip(&s.buckets) {
            let _ = writeln!(
                out,
                "sponts_scanner_duration_seconds_bucket{{scanner=\"{name}\",le=\"{le}\"}} {}",
                n.load(Relaxed)
            );
        }
        let count = s.count.load(Relaxed);
        let _ = writeln!(
            out,
            "sponts_scanner_duration_seconds_bucket{{scanner=\"{name}\",le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            out,
            "sponts_scanner_duration_seconds_sum{{scanner=\"{name}\"}} {:.6}",
            s.sum_us.load(Relaxed) as f64 / 1e6
        );
        let _ = writeln!(
            out,
            "sponts_scanner_duration_seconds_count{{scanner=\"{name}\"}} {count}"
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_cumulative_buckets() {
        let before = calls("spamd", "found");
        record("spamd", "found", Duration::from_millis(30));
        record("spamd", "bogus", Duration::from_millis(30));
        assert_eq!(calls("spamd", "found"), before + 1);
        let text = prometheus();
        assert!(text.contains("sponts_scanner_calls_total{scanner=\"spamd\",result=\"found\"}"));
        let bucket = |le: &str| -> u64 {
            let key =
                format!("sponts_scanner_duration_seconds_bucket{{scanner=\"spamd\",le=\"{le}\"}} ");
            text.lines()
                .find_map(|l| l.strip_prefix(key.as_str()))
                .unwrap()
                .parse()
                .unwrap()
        };
        assert!(
            bucket("0.025") < bucket("0.05"),
            "30 ms is above 25 ms and within 50 ms"
        );
        assert!(bucket("0.05") <= bucket("+Inf"));
    }

    #[test]
    fn quantiles_from_cumulative_buckets() {
        // 10 calls: 6 within 10 ms, 9 within 100 ms, one beyond 10 s.
        let cum = [0, 6, 6, 6, 9, 9, 9, 9, 9, 9];
        assert_eq!(quantile(&cum, 10, 0.5), Some(0.01));
        assert_eq!(quantile(&cum, 10, 0.9), Some(0.1));
        assert_eq!(
            quantile(&cum, 10, 0.95),
            None,
            "the slowest call is beyond the last bound"
        );
        assert_eq!(quantile(&cum, 0, 0.5), None);
    }
}
