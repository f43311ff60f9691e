//! The MX delivery runner: leases due MX recipients from the durable queue, delivers each
//! message's recipients of one domain in one session, and records every recipient's answer: a
//! 2xx or 5xx ends it (a 5xx, or a message past `outbound.lifetime`, bounces to the sender with
//! a DSN), a 4xx schedules another try with a doubling wait; once past `delay_dsn_after` the
//! sender is told once per recipient. The last recipient's answer takes the message out of the
//! queue and gives its journal record the outcome (the store does both in one transaction).
//!
//! Leases are short and renewed while a session runs, so recipients a crashed node was
//! delivering are due again within [`LEASE`]; a recipient is recorded right after its reply, so
//! only one cut off between the remote 250 and that record is ever sent twice.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::{Delivery, Fate, RcptResult};
use crate::queue::dsn::{self, Failure, Notice};
use crate::storage::MxLease;

/// How long a lease lasts without renewal.
pub const LEASE: Duration = Duration::from_secs(30);
/// Recipients leased per round.
const BATCH: i64 = 200;
/// (message, domain) groups still in flight when the next recipients are leased.
const REFILL: usize = BATCH as usize / 2;
/// Messages up to this size (uncompressed) are read for a whole round in one query.
const SMALL: i64 = 256 * 1024;
/// The wait before looking again when nothing was due (a `queue retry` or new outbound mail is
/// taken up within it).
const IDLE: Duration = Duration::from_millis(250);

/// Runs forever.
pub async fn run(config: crate::config::Config, store: crate::storage::Store) {
    let node = format!("{}:mx", crate::server::node_name(&config));
    let delivery = match Delivery::new(Arc::new(config), store) {
        Ok(d) => Arc::new(d),
        Err(e) => {
            tracing::error!("MX delivery does not run: {e:#}");
            return;
        }
    };
    // Sessions never wait for a round to end: once the groups in flight are down to REFILL, more
    // is leased while the rest is still being delivered.
    let mut running = tokio::task::JoinSet::new();
    loop {
        let leased = lease_round(&delivery, &node, &mut running)
            .await
            .unwrap_or_else(|e| {
                tracing::warn!("MX delivery round failed: {e:#}");
                0
            });
        if leased > 0 {
            while running.len() > REFILL {
                running.join_next().await;
            }
            continue;
        }
        // Nothing due: look again after IDLE, collecting what finishes meanwhile.
        let idle = tokio::time::sleep(IDLE);
        tokio::pin!(idle);
        loop {
            tokio::select! {
                Some(_) = running.join_next() => {}
                _ = &mut idle => break,
            }
        }
    }
}

/// Leases what is due and starts delivering each (message, domain) group in `running` (bounded
/// by the session limits; each records its answers). Returns how many recipients were leased.
async fn lease_round(
    d: &Arc<Delivery>,
    node: &str,
    running: &mut tokio::task::JoinSet<()>,
) -> anyhow::Result<usize> {
    d.lift_suspensions_on_retry().await?;
    let leased = d
        .store
        .lease_mx(
            None,
            node,
            crate::clock::now_us(),
            LEASE.as_micros() as i64,
            BATCH,
        )
        .await?;
    let n = leased.len();
    let mut groups: BTreeMap<(String, String), Vec<MxLease>> = BTreeMap::new();
    for l in leased {
        groups
            .entry((l.queue_id.clone(), l.domain.clone()))
            .or_default()
            .push(l);
    }
    // The small messages' bodies in one query; big ones are read by their own group.
    let mut small: Vec<String> = groups
        .values()
        .filter(|g| g[0].size <= SMALL)
        .map(|g| g[0].queue_id.clone())
        .collect();
    small.dedup();
    let mut bodies = d.store.queued_bodies(&small).await?;
    for group in groups.into_values() {
        let d = d.clone();
        let node = node.to_string();
        // A message with recipients at several domains is read again for the others.
        let body = bodies.remove(&group[0].queue_id);
        running.spawn(async move {
            let id = group[0].queue_id.clone();
            if let Err(e) = deliver_group(&d, &node, group, body).await {
                tracing::error!(%id, "MX delivery could not record its attempt: {e:#}");
            }
        });
    }
    Ok(n)
}

/// One message's recipients at one domain (`body`: its stored copy, when already read).
async fn deliver_group(
    d: &Delivery,
    node: &str,
    group: Vec<MxLease>,
    body: Option<Vec<u8>>,
) -> anyhow::Result<()> {
    let first = &group[0];
    let (id, domain, sender, arrival) = (
        first.queue_id.clone(),
        first.domain.clone(),
        first.sender.clone(),
        first.time_us,
    );
    let body = match body {
        Some(b) => b,
        None => d
            .store
            .queued_body(&id)
            .await?
            .ok_or_else(|| anyhow::anyhow!("{id} has no body"))?,
    };
    let message = crate::modules::backup::unpack(&body, first.size)?;
    let rcpts: Vec<String> = group.iter().map(|l| l.address.clone()).collect();
    // The session runs while the leases are renewed beside it.
    let attempt = d.deliver_domain(&domain, &sender, &rcpts, &message);
    tokio::pin!(attempt);
    let mut renew = tokio::time::interval(LEASE / 3);
    renew.tick().await;
    let outcome = loop {
        tokio::select! {
            outcome = &mut attempt => break outcome,
            _ = renew.tick() => {
                for a in &rcpts {
                    if !d.store.renew_mx_lease(&id, a, node, crate::clock::now_us(), LEASE.as_micros() as i64).await.unwrap_or(false) {
                        tracing::warn!(%id, rcpt = %a, "MX lease lost during delivery");
                    }
                }
            }
        }
    };
    let now = crate::clock::now_us();
    let cfg = &d.config.outbound_delivery;
    let expired = now - arrival >= cfg.lifetime.0.as_micros() as i64;
    let late = now - arrival >= cfg.delay_dsn_after.0.as_micros() as i64;
    let (mut failed, mut delayed) = (Vec::new(), Vec::new());
    for (lease, r) in group.iter().zip(&outcome.results) {
        let RcptResult {
            address,
            reply,
            fate,
        } = r;
        match fate {
            Fate::Delivered => {
                tracing::info!(%id, rcpt = %address, mx = ?outcome.mx, tls = ?outcome.tls, "delivered: {reply}");
                d.store.mx_done(&id, address, node, reply).await?;
            }
            Fate::Bounced => {
                tracing::info!(%id, rcpt = %address, "bounced: {reply}");
                d.store.mx_done(&id, address, node, reply).await?;
                failed.push(Failure {
                    address: address.clone(),
                    reply: reply.clone(),
                });
            }
            Fate::Deferred if expired => {
                let reply = format!(
                    "{} (given up after {} in the queue)",
                    reply.replacen("451 4.", "550 5.", 1),
                    human(cfg.lifetime.0)
                );
                tracing::info!(%id, rcpt = %address, "expired: {reply}");
                d.store.mx_done(&id, address, node, &reply).await?;
                failed.push(Failure {
                    address: address.clone(),
                    reply,
                });
            }
            Fate::Deferred => {
                let next =
                    now + backoff(lease.attempts, cfg.retry.0, cfg.max_retry.0).as_micros() as i64;
                tracing::info!(%id, rcpt = %address, "deferred: {reply}");
                d.store
                    .mx_reschedule(&id, address, node, next, reply, true)
                    .await?;
                if late && d.store.mx_delay_noticed(&id, address).await? {
                    delayed.push(Failure {
                        address: address.clone(),
                        reply: reply.clone(),
                    });
                }
            }
        }
    }
    dsn::queue_notice(
        &d.config,
        &d.store,
        Notice::Undeliverable,
        &id,
        arrival,
        &sender,
        &failed,
        &message,
    )
    .await?;
    dsn::queue_notice(
        &d.config,
        &d.store,
        Notice::Delayed,
        &id,
        arrival,
        &sender,
        &delayed,
        &message,
    )
    .await?;
    Ok(())
}

/// The wait after attempt `attempts + 1` failed: `retry`, doubling, capped at `max`.
fn backoff(attempts: i32, retry: Duration, max: Duration) -> Duration {
    retry
        .saturating_mul(1u32 << attempts.clamp(0, 20) as u32)
        .min(max)
}

fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let (r, m) = (Duration::from_secs(300), Duration::from_secs(4 * 3600));
        assert_eq!(backoff(0, r, m), r);
        assert_eq!(backoff(2, r, m), Duration::from_secs(1200));
        assert_eq!(backoff(30, r, m), m);
        assert_eq!(human(Duration::from_secs(5 * 86_400)), "5d");
    }
}
