//! The Report: how much mail came and went and what became of it, from hourly buckets in SQL.
//!
//! - [`live`]: this process's connections, sessions and the [`live::Sampler`] that writes them
//!   (with queue length and scanner figures) every `report.sample_every`.
//! - [`figures`]: the figures of a time range, in hour/day/week/month buckets.
//! - [`chart`] and [`tables`]: the figures drawn (inline SVG) and tabulated (HTML, CSV, text).
//! - [`mail`]: the daily or weekly report mailed to the admins through the backend.
//!
//! The journal's figures are written with its records (storage/stats.rs); [`job`] adds the live
//! ones, keeps the top lists small, and sends the report mail when one is due.

pub mod chart;
pub mod figures;
pub mod live;
pub mod mail;
pub mod tables;

use std::sync::Arc;

use crate::config::Config;
use crate::storage::Store;
use crate::storage::stats::{DAY_US, HOUR_US};

/// Keys kept per top list in a finished hour, and in a finished day.
const KEEP_HOUR: usize = 100;
const KEEP_DAY: usize = 500;

/// The charts and tables of some figures: the dashboard's and the mail's content.
pub fn html(f: &figures::Figures) -> String {
    let mut out = String::new();
    out.push_str("<h2>Messages</h2>");
    out.push_str(&chart::classes(f));
    out.push_str("<h2>Load</h2>");
    out.push_str(&chart::lines(
        f,
        "chart-load",
        "Messages in and out",
        &[
            ("messages_in", "received", "#1c7ed6"),
            ("messages_out", "delivered", "#2f9e44"),
        ],
    ));
    out.push_str(&chart::lines(
        f,
        "chart-sessions",
        "Connections and sessions",
        &[
            ("connections", "connections", "#5f3dc4"),
            ("sessions_peak", "peak sessions", "#f08c00"),
            ("queue_length", "queue length", "#e03131"),
        ],
    ));
    let mut noted = false;
    for t in tables::all(f).iter().filter(|t| t.id != "series") {
        if t.id.starts_with("top_") && !noted && f.top_since != f.since {
            out.push_str(&format!(r#"<p class="muted small" id="top-since">The top lists count from {} (kept per day before yesterday).</p>"#, f.top_since));
            noted = true;
        }
        out.push_str(&format!("<h2>{}</h2>", t.title));
        out.push_str(&t.html());
    }
    out
}

/// Writes live figures every `report.sample_every` and on [`Sampler::sample`] at shutdown;
/// compacts finished hours and days; sends the report mail when due.
pub async fn job(config: Config, store: Store, sampler: Arc<live::Sampler>) {
    let mut tick = tokio::time::interval(config.report.sample_every.0);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut compacted_hour = 0;
    let mut next_mail_try = 0;
    loop {
        tick.tick().await;
        if let Err(e) = sample(&config, &store, &sampler).await {
            tracing::warn!("report figures not written (the next sample carries them): {e:#}");
        }
        let now = crate::clock::now_us();
        let hour = now - now.rem_euclid(HOUR_US);
        if hour != compacted_hour {
            match compact(&store, now).await {
                Ok(()) => compacted_hour = hour,
                Err(e) => tracing::warn!("report top lists not compacted: {e:#}"),
            }
        }
        if let Err(e) = mail::send_if_due(&config, &store, now, &mut next_mail_try).await {
            tracing::warn!("report mail: {e:#}");
        }
    }
}

/// One sample of this node's live figures.
pub async fn sample(config: &Config, store: &Store, sampler: &live::Sampler) -> anyhow::Result<()> {
    let queue_length = if config.queue.enabled {
        store.queue_stats(0).await?.0
    } else {
        0
    };
    sampler.sample(store, queue_length).await
}

/// Keeps the leading keys of the top lists of finished hours and days. Only rows no journal
/// batch writes to any more are folded (a transaction is journaled with its start time, at most
/// `smtp.session_timeout` earlier): hours from two hours back, days from two days back, so the
/// last 24 hours keep their hourly top lists. The dashboard then sums thousands of rows for a
/// month, not millions.
pub async fn compact(store: &Store, now_us: i64) -> anyhow::Result<()> {
    let hour = now_us - now_us.rem_euclid(HOUR_US);
    let day = now_us - now_us.rem_euclid(DAY_US);
    for h in [hour - 3 * HOUR_US, hour - 2 * HOUR_US] {
        store.compact_top_lists(h, h + HOUR_US, KEEP_HOUR).await?;
    }
    for d in [day - 3 * DAY_US, day - 2 * DAY_US] {
        store.compact_top_lists(d, d + DAY_US, KEEP_DAY).await?;
    }
    Ok(())
}
