//! Copies the live path could not make: a crash between a target's final reply and the
//! recording, or a transaction in the second before a new order was read by this node. Every
//! minute (the first time at start), each order's SMTP transactions in the journal — since the
//! order was made, a day back at most, and older than half a minute, so the live path has had
//! its turn — are matched against its copies by transaction id; one without a copy is copied
//! now from the journal and the backup, its metadata marked `"recovered": true`. The window is
//! checked again when recording, as for every copy.

use anyhow::Result;
use std::net::SocketAddr;
use std::sync::Weak;
use std::time::Duration;

use super::{Event, Interception};
use crate::storage::JournalFilter;

const EVERY: Duration = Duration::from_secs(60);
const LOOKBACK_US: i64 = 24 * 3_600_000_000;
/// The live path records within seconds of the reply (retries included).
pub const SETTLE: Duration = Duration::from_secs(30);
/// Transactions looked at per order and pass, at most.
const MAX_PER_PASS: i64 = 10_000;

pub(super) async fn run(me: Weak<Interception>, server: SocketAddr) {
    loop {
        let Some(interception) = me.upgrade() else {
            return;
        };
        if let Err(e) = interception.recover(server, SETTLE).await {
            tracing::warn!("interception copies not checked against the journal: {e:#}");
        }
        drop(interception);
        tokio::time::sleep(EVERY).await;
    }
}

impl Interception {
    /// One pass over the orders in effect; returns how many copies were made.
    pub async fn recover(&self, server: SocketAddr, settle: Duration) -> Result<usize> {
        let now = crate::clock::now_us();
        let orders = self.orders.read().expect("orders lock").clone();
        let mut recovered = 0;
        for order in orders.iter() {
            let since = order.from_us.max(order.created_us).max(now - LOOKBACK_US);
            let until = (now - settle.as_micros() as i64)
                .min(order.until_us)
                .min(order.ended_us.unwrap_or(i64::MAX));
            if since >= until {
                continue;
            }
            let filter = JournalFilter {
                visible_to: Some(vec![order.target.to_lowercase()]),
                since_us: Some(since),
                until_us: Some(until),
                limit: Some(MAX_PER_PASS),
                ..Default::default()
            };
            let entries = self.store.query_journal(&filter).await?;
            if entries.is_empty() {
                continue;
            }
            let copied = self.store.smtp_copy_sessions(&order.id, since).await?;
            for e in entries
                .iter()
                .filter(|e| e.replay_of.is_none() && !copied.contains(&e.id))
            {
                let message = match self.store.body(&e.id).await? {
                    Some(b) => Some(crate::modules::backup::decompress(&b)?),
                    None => None,
                };
                let event = Event::from_journal(e, server, message);
                // Named by order and transaction: nodes recovering the same copy at once make one.
                let (for_order, name) = (
                    order.clone(),
                    format!(
                        "R{}",
                        &crate::auth::sha256_hex(format!("{}\n{}", order.id, e.id).as_bytes())
                            [..23]
                    ),
                );
                let copies = tokio::task::spawn_blocking(move || {
                    event.copies_named(std::slice::from_ref(&for_order), |_| name.clone())
                })
                .await??;
                let n = self.store.record_copies(&copies).await?;
                if n > 0 {
                    tracing::warn!(order = %order.id, transaction = %e.id, "interception copy recovered from the journal");
                }
                recovered += n;
            }
        }
        if recovered > 0 {
            self.wake.notify_one();
        }
        Ok(recovered)
    }
}
