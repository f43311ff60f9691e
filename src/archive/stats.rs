//! `sponts archive stats`: what the archive holds (messages, bytes, per class), its growth per
//! day over the last 30 days, and the disk it will take at the configured retention.

use anyhow::Result;
use serde::Serialize;
use std::collections::BTreeMap;

use super::retention::class_of;
use super::seal::{DAY_US, day_of};
use crate::config::Config;
use crate::storage::Store;

#[derive(Debug, Clone, Default, Serialize)]
pub struct ClassFigures {
    pub messages: i64,
    pub bytes: i64,
    pub stored_bytes: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct DayFigures {
    pub day: String,
    pub messages: i64,
    pub stored_bytes: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ArchiveStats {
    pub messages: i64,
    pub bytes: i64,
    pub stored_bytes: i64,
    pub per_class: BTreeMap<String, ClassFigures>,
    /// The last 30 days, oldest first (days without mail included).
    pub per_day: Vec<DayFigures>,
    /// Mean stored bytes per day over those 30 days.
    pub growth_per_day: i64,
    /// The longest retention configured (a rule or backup.retention_days).
    pub retention_days: u64,
    /// growth_per_day × retention_days, capped by backup.max_bytes.
    pub projected_bytes: i64,
}

pub async fn stats(store: &Store, config: &Config, now_us: i64) -> Result<ArchiveStats> {
    let mut per_class: BTreeMap<String, ClassFigures> = BTreeMap::new();
    for (direction, outcome, flag, n, raw, stored) in store.kept_by_journal_class().await? {
        let c = per_class
            .entry(class_of(direction.as_deref(), outcome.as_deref(), flag.as_deref()).to_string())
            .or_default();
        c.messages += n;
        c.bytes += raw;
        c.stored_bytes += stored;
    }
    let today = now_us - now_us.rem_euclid(DAY_US);
    let since = today - 29 * DAY_US;
    let kept: BTreeMap<i64, (i64, i64)> = store
        .kept_per_day(since)
        .await?
        .into_iter()
        .map(|(d, n, b)| (d, (n, b)))
        .collect();
    let per_day: Vec<DayFigures> = (0..30)
        .map(|i| {
            let d = since + i * DAY_US;
            let (messages, stored_bytes) = kept.get(&d).copied().unwrap_or((0, 0));
            DayFigures {
                day: day_of(d),
                messages,
                stored_bytes,
            }
        })
        .collect();
    let growth_per_day = per_day.iter().map(|d| d.stored_bytes).sum::<i64>() / 30;
    let retention_days = config
        .archive
        .retention
        .iter()
        .map(|r| r.days)
        .chain([config.backup.retention_days])
        .max()
        .unwrap_or(0);
    let mut projected_bytes = growth_per_day.saturating_mul(retention_days as i64);
    if let Some(max) = config.backup.max_bytes {
        projected_bytes = projected_bytes.min(max.0 as i64);
    }
    Ok(ArchiveStats {
        messages: per_class.values().map(|c| c.messages).sum(),
        bytes: per_class.values().map(|c| c.bytes).sum(),
        stored_bytes: per_class.values().map(|c| c.stored_bytes).sum(),
        per_class,
        per_day,
        growth_per_day,
        retention_days,
        projected_bytes,
    })
}
