//! Delivers recorded copies to the agency: leases due copies (so nodes sharing a database never
//! deliver one twice), delivers each, and marks it delivered (with an audit entry) or schedules
//! the next attempt, waiting `intercept.retry_after`, doubled per attempt up to an hour. A copy is
//! never given up: the interception pages show what waits and why.

use std::sync::{Arc, Weak};
use std::time::Duration;

use super::Interception;
use super::deliver::Delivery;
use crate::storage::Store;

pub struct Settings {
    delivery: Delivery,
    retry_after: Duration,
}

impl Settings {
    pub fn from_config(config: &crate::config::Config) -> anyhow::Result<Settings> {
        Ok(Settings {
            delivery: Delivery::from_config(config)?,
            retry_after: config.intercept.retry_after.0,
        })
    }
}

/// One copy per lease: a lease outlives any one delivery (each SMTP step times out after a
/// minute), so it never runs out while its node is still delivering.
const LEASE: Duration = Duration::from_secs(600);
const IDLE_POLL: Duration = Duration::from_secs(1);
const MAX_WAIT: Duration = Duration::from_secs(3600);

pub async fn run(
    owner: Weak<Interception>,
    store: Store,
    wake: Arc<tokio::sync::Notify>,
    settings: Settings,
) {
    loop {
        if owner.strong_count() == 0 {
            return;
        }
        match next(&store, &settings).await {
            Ok(true) => continue,
            Ok(false) => {}
            Err(e) => tracing::warn!("interception delivery failed: {e:#}"),
        }
        let _ = tokio::time::timeout(IDLE_POLL, wake.notified()).await;
    }
}

/// Leases and delivers the next due copy; false when none is due.
async fn next(store: &Store, settings: &Settings) -> anyhow::Result<bool> {
    let now = crate::clock::now_us();
    let Some(copy) = store
        .lease_copies(now, LEASE.as_micros() as i64, 1)
        .await?
        .pop()
    else {
        return Ok(false);
    };
    let lease = copy.next_try_us;
    let result = match store.order(&copy.order_id).await {
        Ok(Some(order)) => settings.delivery.deliver(&copy, &order).await,
        Ok(None) => Err(anyhow::anyhow!(
            "its order {} is not in the store",
            copy.order_id
        )),
        Err(e) => Err(e),
    };
    match result {
        Ok(detail) => {
            if store
                .copy_delivered(&copy.id, lease, crate::clock::now_us(), &detail)
                .await?
            {
                tracing::info!(copy = %copy.id, order = %copy.order_id, "interception copy delivered {detail}");
            }
        }
        Err(e) => {
            let wait = settings
                .retry_after
                .saturating_mul(1 << copy.attempts.clamp(0, 12))
                .min(MAX_WAIT);
            let error = format!("{e:#}");
            tracing::warn!(copy = %copy.id, order = %copy.order_id, attempts = copy.attempts + 1, "interception copy not delivered, retried in {} s: {error}", wait.as_secs());
            store
                .copy_failed(
                    &copy.id,
                    lease,
                    crate::clock::now_us() + wait.as_micros() as i64,
                    &error,
                )
                .await?;
        }
    }
    Ok(true)
}
