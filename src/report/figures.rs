//! The Report's figures for a time range, read from the hourly buckets (never from the journal):
//! totals, a series per bucket (hour, day, week or month), scanner load with median and 95th
//! percentile, and the top spammers with their reason mix. The CLI, the dashboard, the JSON API
//! and the report mail all show this one structure.

use anyhow::Result;
use serde::Serialize;
use std::collections::BTreeMap;

use crate::scanners;
use crate::storage::Store;
use crate::storage::stats::{DAY_US, HOUR_US, OTHERS, TOP_METRICS};

/// Entries per top list.
pub const TOP: usize = 10;

/// Load figures that are maxima per hour (of any node), not sums.
const PEAKS: [&str; 2] = ["sessions_peak", "queue_length"];

/// The classes in the order charts stack them.
pub const CLASSES: [&str; 8] = [
    "clean",
    "tagged",
    "spam",
    "virus",
    "discarded",
    "refused",
    "tempfailed",
    "abandoned",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Bucket {
    Hour,
    Day,
    Week,
    Month,
}

impl Bucket {
    pub fn parse(s: &str) -> Option<Bucket> {
        match s {
            "hour" => Some(Bucket::Hour),
            "day" => Some(Bucket::Day),
            "week" => Some(Bucket::Week),
            "month" => Some(Bucket::Month),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Bucket::Hour => "hour",
            Bucket::Day => "day",
            Bucket::Week => "week",
            Bucket::Month => "month",
        }
    }

    /// A bucket that gives a readable chart for a range of this length.
    pub fn for_span(span_us: i64) -> Bucket {
        match span_us {
            s if s <= 2 * DAY_US => Bucket::Hour,
            s if s <= 62 * DAY_US => Bucket::Day,
            s if s <= 200 * DAY_US => Bucket::Week,
            _ => Bucket::Month,
        }
    }

    /// The start (UTC) of the bucket holding `us`. Weeks start on Monday.
    pub fn start(self, us: i64) -> i64 {
        let day = us - us.rem_euclid(DAY_US);
        match self {
            Bucket::Hour => us - us.rem_euclid(HOUR_US),
            Bucket::Day => day,
            // 1970-01-01 was a Thursday.
            Bucket::Week => day - ((day / DAY_US + 3).rem_euclid(7)) * DAY_US,
            Bucket::Month => {
                crate::clock::parse_date(&format!("{}-01", &crate::clock::rfc3339(us)[..7]))
                    .unwrap_or(day)
            }
        }
    }

    /// The start of the next bucket after the one starting at `start`.
    pub fn next(self, start: i64) -> i64 {
        match self {
            Bucket::Hour => start + HOUR_US,
            Bucket::Day => start + DAY_US,
            Bucket::Week => start + 7 * DAY_US,
            Bucket::Month => self.start(start + 32 * DAY_US),
        }
    }

    /// A short label for a bucket start.
    pub fn label(self, start: i64) -> String {
        let t = crate::clock::rfc3339(start);
        match self {
            Bucket::Hour => format!("{} {}", &t[5..10], &t[11..16]),
            Bucket::Day | Bucket::Week => t[..10].to_string(),
            Bucket::Month => t[..7].to_string(),
        }
    }
}

/// `[since, until)`, whole hours, shown in buckets.
#[derive(Debug, Clone, Copy)]
pub struct Range {
    pub since_us: i64,
    pub until_us: i64,
    pub bucket: Bucket,
}

impl Range {
    /// From whole hours: the hour holding `since` counts, and so does the current one.
    pub fn new(since_us: i64, until_us: i64, bucket: Option<Bucket>) -> Range {
        let since_us = since_us - since_us.rem_euclid(HOUR_US);
        let until_us = until_us - until_us.rem_euclid(HOUR_US)
            + if until_us.rem_euclid(HOUR_US) == 0 {
                0
            } else {
                HOUR_US
            };
        let until_us = until_us.max(since_us + HOUR_US);
        Range {
            since_us,
            until_us,
            bucket: bucket.unwrap_or(Bucket::for_span(until_us - since_us)),
        }
    }

    /// Where the top lists start: `since`, or for a range over two days the start of its first
    /// day (they are kept per day there).
    pub fn top_since(&self) -> i64 {
        if self.until_us - self.since_us > 2 * DAY_US {
            Bucket::Day.start(self.since_us)
        } else {
            self.since_us
        }
    }

    /// At most this many buckets in a chart or series.
    pub const MAX_BUCKETS: i64 = 2000;

    /// How many buckets the range has.
    pub fn buckets(&self) -> i64 {
        let mut n = 0;
        let mut start = self.bucket.start(self.since_us);
        while start < self.until_us && n <= Self::MAX_BUCKETS {
            n += 1;
            start = self.bucket.next(start);
        }
        n
    }

    /// A range whose chart would have too many bars is refused, naming what to change.
    pub fn checked(self) -> std::result::Result<Range, String> {
        if self.buckets() > Self::MAX_BUCKETS {
            return Err(format!(
                "bucket: more than {} {}s in this range; choose a larger bucket or a shorter range",
                Self::MAX_BUCKETS,
                self.bucket.name()
            ));
        }
        Ok(self)
    }

    /// The last `span_us` up to now, in whole hours: the current hour is the last of them.
    pub fn last(span_us: i64, bucket: Option<Bucket>) -> Range {
        let now = crate::clock::now_us();
        let end = now - now.rem_euclid(HOUR_US) + HOUR_US;
        Range::new(end - span_us.max(HOUR_US), end, bucket)
    }
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct Point {
    /// Bucket start, RFC 3339.
    pub start: String,
    pub label: String,
    #[serde(skip)]
    pub start_us: i64,
    pub classes: BTreeMap<String, i64>,
    pub load: BTreeMap<String, i64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ScannerFigures {
    pub scanner: String,
    pub calls: i64,
    pub clean: i64,
    pub found: i64,
    pub errors: i64,
    pub timeouts: i64,
    /// Seconds (the bucket bound that holds the median); `None`: no calls, or beyond 10 s.
    pub median_s: Option<f64>,
    pub p95_s: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TopEntry {
    pub key: String,
    pub count: i64,
    /// How the count splits by reason (`spam by uce`, `virus by virus` ...).
    pub reasons: BTreeMap<String, i64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Figures {
    pub since: String,
    pub until: String,
    pub bucket: Bucket,
    pub transactions: i64,
    pub classes: BTreeMap<String, i64>,
    pub load: BTreeMap<String, i64>,
    pub decided_by: BTreeMap<String, i64>,
    pub reasons: BTreeMap<String, i64>,
    pub scanners: Vec<ScannerFigures>,
    /// `ip`, `sender_domain`, `helo`: by refused (spam, virus, discarded) messages.
    pub top: BTreeMap<String, Vec<TopEntry>>,
    /// Where the top lists start (see [`Range::top_since`]).
    pub top_since: String,
    pub series: Vec<Point>,
}

impl Figures {
    /// A class's share of all transactions, in percent.
    pub fn percent(&self, class: &str) -> f64 {
        let n = self.classes.get(class).copied().unwrap_or(0);
        if self.transactions > 0 {
            n as f64 * 100.0 / self.transactions as f64
        } else {
            0.0
        }
    }
}

pub async fn read(store: &Store, range: Range) -> Result<Figures> {
    // Four independent reads, at once (each on its own connection).
    // Top lists of days before yesterday are kept per day: a longer range reads them from the
    // start of its first day.
    let top_since = range.top_since();
    let top = |metric| store.stats_top(metric, top_since, range.until_us);
    let (rows, ips, domains, helos) = tokio::try_join!(
        // Buckets of a day or more are made of days, summed by the database.
        store.stats_rows(range.since_us, range.until_us, range.bucket != Bucket::Hour),
        top(TOP_METRICS[0]),
        top(TOP_METRICS[1]),
        top(TOP_METRICS[2])
    )?;
    let mut series: Vec<Point> = Vec::new();
    let mut start = range.bucket.start(range.since_us);
    while start < range.until_us {
        series.push(Point {
            start: crate::clock::rfc3339(start),
            label: range.bucket.label(start),
            start_us: start,
            ..Point::default()
        });
        start = range.bucket.next(start);
    }
    let mut classes: BTreeMap<String, i64> = BTreeMap::new();
    let mut load: BTreeMap<String, i64> = BTreeMap::new();
    let mut decided_by: BTreeMap<String, i64> = BTreeMap::new();
    let mut reasons: BTreeMap<String, i64> = BTreeMap::new();
    let mut scanner_rows: BTreeMap<String, i64> = BTreeMap::new();
    for (hour, metric, key, sum, peak) in rows {
        let i = series
            .partition_point(|p| p.start_us <= hour)
            .saturating_sub(1);
        let point = &mut series[i];
        match metric.as_str() {
            "class" => {
                *classes.entry(key.clone()).or_default() += sum;
                *point.classes.entry(key).or_default() += sum;
            }
            "decided_by" => *decided_by.entry(key).or_default() += sum,
            "spam_reason" => *reasons.entry(key).or_default() += sum,
            "scanner_calls" | "scanner_le" => {
                *scanner_rows.entry(format!("{metric}/{key}")).or_default() += sum
            }
            m if PEAKS.contains(&m) => {
                let total = load.entry(metric.clone()).or_default();
                *total = (*total).max(peak);
                let at = point.load.entry(metric).or_default();
                *at = (*at).max(peak);
            }
            _ => {
                *load.entry(metric.clone()).or_default() += sum;
                *point.load.entry(metric).or_default() += sum;
            }
        }
    }
    let mut top = BTreeMap::new();
    for (metric, keys) in TOP_METRICS.iter().zip([ips, domains, helos]) {
        top.insert(
            metric.trim_start_matches("spam_").to_string(),
            top_list(keys),
        );
    }
    Ok(Figures {
        since: crate::clock::rfc3339(range.since_us),
        until: crate::clock::rfc3339(range.until_us),
        bucket: range.bucket,
        transactions: classes.values().sum(),
        classes,
        load,
        decided_by,
        reasons,
        scanners: scanner_figures(&scanner_rows),
        top,
        top_since: crate::clock::rfc3339(top_since),
        series,
    })
}

/// Entries by count, from `value\treason` keys.
fn top_list(keys: Vec<(String, i64)>) -> Vec<TopEntry> {
    let mut by_value: BTreeMap<String, TopEntry> = BTreeMap::new();
    for (key, count) in keys {
        let (value, reason) = key.split_once('\t').unwrap_or((key.as_str(), ""));
        if key == OTHERS {
            continue;
        }
        let e = by_value
            .entry(value.to_string())
            .or_insert_with(|| TopEntry {
                key: value.to_string(),
                count: 0,
                reasons: BTreeMap::new(),
            });
        e.count += count;
        if !reason.is_empty() {
            *e.reasons.entry(reason.to_string()).or_default() += count;
        }
    }
    let mut list: Vec<TopEntry> = by_value.into_values().collect();
    list.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.key.cmp(&b.key)));
    list.truncate(TOP);
    list
}

fn scanner_figures(rows: &BTreeMap<String, i64>) -> Vec<ScannerFigures> {
    let get = |k: String| rows.get(&k).copied().unwrap_or(0);
    scanners::SCANNERS
        .iter()
        .filter_map(|s| {
            let by = |r: &str| get(format!("scanner_calls/{s}/{r}"));
            let calls: i64 = scanners::RESULTS.iter().map(|r| by(r)).sum();
            if calls == 0 {
                return None;
            }
            let cumulative: Vec<u64> = scanners::BUCKETS
                .iter()
                .map(|le| get(format!("scanner_le/{s}/{le}")) as u64)
                .collect();
            Some(ScannerFigures {
                scanner: s.to_string(),
                calls,
                clean: by("clean"),
                found: by("found"),
                errors: by("error"),
                timeouts: by("timeout"),
                median_s: scanners::quantile(&cumulative, calls as u64, 0.5),
                p95_s: scanners::quantile(&cumulative, calls as u64, 0.95),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_starts() {
        let t = crate::clock::parse_date("2026-11-28").unwrap() + 13 * HOUR_US + 5; // a Saturday
        assert_eq!(
            crate::clock::rfc3339(Bucket::Hour.start(t)),
            "2026-11-28T13:00:00Z"
        );
        assert_eq!(
            crate::clock::rfc3339(Bucket::Day.start(t)),
            "2026-11-28T00:00:00Z"
        );
        assert_eq!(
            crate::clock::rfc3339(Bucket::Week.start(t)),
            "2026-11-23T00:00:00Z"
        );
        assert_eq!(
            crate::clock::rfc3339(Bucket::Month.start(t)),
            "2026-11-01T00:00:00Z"
        );
        assert_eq!(
            crate::clock::rfc3339(Bucket::Month.next(Bucket::Month.start(t))),
            "2026-12-01T00:00:00Z"
        );
        assert_eq!(
            crate::clock::rfc3339(
                Bucket::Month.next(crate::clock::parse_date("2026-12-01").unwrap())
            ),
            "2027-01-01T00:00:00Z"
        );
    }

    #[test]
    fn top_lists_merge_reasons_and_skip_the_rest() {
        let list = top_list(vec![
            ("192.0.2.1\tspam by uce".into(), 3),
            ("192.0.2.1\tvirus by virus".into(), 2),
            ("192.0.2.9\tspam by uce".into(), 4),
            (OTHERS.to_string(), 100),
            ("(others)\tspam by uce".into(), 2),
            ("198.51.100.1".into(), 1),
        ]);
        assert_eq!(
            list.iter()
                .map(|e| (e.key.as_str(), e.count))
                .collect::<Vec<_>>(),
            [
                ("192.0.2.1", 5),
                ("192.0.2.9", 4),
                ("(others)", 2),
                ("198.51.100.1", 1)
            ],
            "a HELO named (others) is a spammer like any other"
        );
        assert_eq!(list[0].reasons.get("virus by virus"), Some(&2));
    }

    #[test]
    fn ranges_are_whole_hours() {
        let r = Range::new(HOUR_US + 5, 3 * HOUR_US + 1, None);
        assert_eq!(
            (r.since_us, r.until_us, r.bucket),
            (HOUR_US, 4 * HOUR_US, Bucket::Hour)
        );
        assert_eq!(Range::new(0, 30 * DAY_US, None).bucket, Bucket::Day);
    }
}
