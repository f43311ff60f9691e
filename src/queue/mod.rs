//! The queue runner: while messages wait in the durable queue (accepted in queue mode), it leases
//! the due ones in arrival order, tries the backend, and records each recipient's answer. A 2xx
//! or 5xx ends a recipient; a 4xx or an unreachable backend means another try later — soon while
//! the backend is down (so the drain starts within `queue.probe` of its return), with a doubling
//! wait per message when the backend itself defers. The journal record of the original
//! transaction gets the final outcome.

pub mod dsn;
pub mod health;

use std::time::Duration;

use crate::config::Config;
use crate::smtp::client::{Backend, BackendTarget};
use crate::storage::Store;
use health::BackendHealth;

/// How long a node owns a leased message before another may take it (a node died mid-delivery).
const LEASE: Duration = Duration::from_secs(300);
/// Gateway events are kept this long.
const EVENTS_KEPT: Duration = Duration::from_secs(90 * 86_400);
/// Messages leased per round.
const BATCH: i64 = 50;

/// Runs forever: a round every `queue.probe`. Whether a round reached the backend is what
/// begins or ends queue mode; with nothing due, a probe does.
pub async fn runner(config: Config, store: Store, health: std::sync::Arc<BackendHealth>) {
    let node = crate::server::node_name(&config);
    let target = BackendTarget::from_config(&config);
    let mut tick = tokio::time::interval(config.queue.probe.0);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut alerted: std::collections::HashMap<String, std::time::Instant> = Default::default();
    let mut last_prune = std::time::Instant::now();
    loop {
        tick.tick().await;
        // A full batch means more is due: go on at once (the drain runs at full speed).
        loop {
            let round = run_once(&config, &store, &node).await;
            match &round {
                Ok(Round {
                    reached: Some(true),
                    ..
                }) => health.ok().await,
                Ok(Round {
                    reached: Some(false),
                    unreachable,
                    ..
                }) => {
                    health
                        .failed(unreachable.as_deref().unwrap_or("backend unavailable"))
                        .await
                }
                Ok(Round { reached: None, .. }) => health.probe(&target).await,
                Err(_) => {}
            }
            match round {
                Ok(r) if r.leased as i64 == BATCH && r.done > 0 => continue,
                Ok(_) => break,
                Err(e) => {
                    tracing::warn!("queue round failed: {e:#}");
                    break;
                }
            }
        }
        if let Err(e) = alert_overdue(&config, &store, &node, &mut alerted).await {
            tracing::warn!("queue age check failed: {e:#}");
        }
        if last_prune.elapsed() > Duration::from_secs(3600) {
            last_prune = std::time::Instant::now();
            let _ = store
                .prune_events(crate::clock::now_us() - EVENTS_KEPT.as_micros() as i64)
                .await;
        }
    }
}

/// Queued mail past `queue.max_age`: an alert (log and event) per message at most hourly.
/// Nothing is ever deleted for its age.
async fn alert_overdue(
    config: &Config,
    store: &Store,
    node: &str,
    alerted: &mut std::collections::HashMap<String, std::time::Instant>,
) -> anyhow::Result<()> {
    let oldest_allowed = crate::clock::now_us() - config.queue.max_age.0.as_micros() as i64;
    let overdue = store.queue_older_than(oldest_allowed).await?;
    alerted.retain(|id, _| overdue.contains(id));
    for id in overdue {
        if alerted
            .get(&id)
            .is_some_and(|at| at.elapsed() < Duration::from_secs(3600))
        {
            continue;
        }
        let Some(q) = store.queue_list(Some(&id)).await?.pop() else {
            continue;
        };
        let detail = format!(
            "{} queued since {} for {}: {}",
            q.id,
            crate::clock::rfc3339(q.time_us),
            q.pending.join(", "),
            q.last_reply
        );
        tracing::error!(id = %q.id, "queued mail is overdue (queue.max_age): {detail}");
        store.add_event(node, "queue_overdue", &detail).await?;
        alerted.insert(id, std::time::Instant::now());
    }
    Ok(())
}

/// The wait before attempt `n + 1` after the backend deferred: 30 s, doubling, capped.
fn backoff(attempts: i32, max: Duration) -> Duration {
    Duration::from_secs(30u64 << attempts.clamp(0, 16) as u32).min(max)
}

/// What one round did.
#[derive(Debug, Default, Clone)]
pub struct Round {
    pub leased: usize,
    /// Messages that left the queue.
    pub done: usize,
    /// Whether the backend answered (`None`: the round did not try it).
    pub reached: Option<bool>,
    /// Why it did not.
    pub unreachable: Option<String>,
}

/// One round: lease what is due, deliver it over one backend connection.
pub async fn run_once(config: &Config, store: &Store, node: &str) -> anyhow::Result<Round> {
    let now = crate::clock::now_us();
    let ids = store
        .lease_due(node, now, LEASE.as_micros() as i64, BATCH)
        .await?;
    let mut round = Round {
        leased: ids.len(),
        ..Round::default()
    };
    if ids.is_empty() {
        return Ok(round);
    }
    let target = BackendTarget::from_config(config);
    let mut connection: Option<Backend> = None;
    for (n, id) in ids.iter().enumerate() {
        // The lease is renewed right before the attempt: a message whose lease ran out (a slow
        // round) may be another node's by now, and is not tried twice.
        if !store
            .renew_lease(id, node, crate::clock::now_us(), LEASE.as_micros() as i64)
            .await?
        {
            continue;
        }
        let step = deliver_leased(
            config,
            store,
            node,
            id,
            &target,
            &mut connection,
            &mut round,
        )
        .await;
        match step {
            Ok(Step::Done) => round.done += 1,
            Ok(Step::Later) => {}
            Ok(Step::BackendDown(why)) => {
                round.reached = Some(false);
                round.unreachable = Some(why.clone());
                // Still down: this and every later leased message stay due and first in line for
                // the next probe, no attempt counted.
                for rest in &ids[n..] {
                    store.release_lease(rest, node, &why).await?;
                }
                break;
            }
            Err(e) => {
                // A damaged row or a storage error holds up this message only.
                tracing::error!(%id, "queued message could not be handled: {e:#}");
                let next = crate::clock::now_us() + config.queue.max_retry.0.as_micros() as i64;
                let _ = store
                    .reschedule(id, node, next, &format!("local error: {e:#}"), true)
                    .await;
            }
        }
    }
    if let Some(b) = connection {
        b.quit().await;
    }
    Ok(round)
}

enum Step {
    Done,
    Later,
    BackendDown(String),
}

/// One leased message: an attempt over the round's connection, and its bookkeeping.
async fn deliver_leased(
    config: &Config,
    store: &Store,
    node: &str,
    id: &str,
    target: &BackendTarget,
    connection: &mut Option<Backend>,
    round: &mut Round,
) -> anyhow::Result<Step> {
    let Some(mut item) = store.queue_list(Some(id)).await?.pop() else {
        return Ok(Step::Later);
    };
    // Recipients routed to their MX are MX delivery's (outbound mail), never the backend's.
    let mx = std::mem::take(&mut item.pending_mx);
    item.pending.retain(|a| !mx.contains(a));
    if item.pending.is_empty() {
        // Every recipient has its answer already (a crash after the last one): just finish.
        finish(store, node, id, "all recipients answered").await?;
        return Ok(Step::Done);
    }
    let body = store
        .queued_body(id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no body"))?;
    let message = crate::modules::backup::unpack(&body, item.size)?;
    let mut backend = match connection.take() {
        Some(b) => b,
        None => match Backend::connect(target).await {
            Ok(b) => b,
            Err(e) => return Ok(Step::BackendDown(format!("backend unavailable: {e}"))),
        },
    };
    round.reached = Some(true);
    let mut failures = Vec::new();
    let outcome = attempt(&mut backend, store, &item, &message, &mut failures).await;
    // A connection that failed mid-attempt is not reused; a deferred transaction is reset.
    match &outcome {
        Ok(Attempt::Finished { .. }) => *connection = Some(backend),
        Ok(Attempt::Later(_)) => {
            if backend.rset().await.is_ok_and(|r| r.is_positive()) {
                *connection = Some(backend);
            }
        }
        Err(_) => {}
    }
    if !failures.is_empty() {
        dsn::queue(
            config,
            store,
            id,
            item.time_us,
            &item.sender,
            &failures,
            &message,
        )
        .await?;
    }
    match outcome {
        Ok(Attempt::Finished { reply, .. }) => {
            finish(store, node, id, &reply).await?;
            tracing::info!(%id, "queued message through: {reply}");
            Ok(Step::Done)
        }
        Ok(Attempt::Later(reply)) | Err(reply) => {
            let next = crate::clock::now_us()
                + backoff(item.attempts, config.queue.max_retry.0).as_micros() as i64;
            store.reschedule(id, node, next, &reply, true).await?;
            Ok(Step::Later)
        }
    }
}

/// The message leaves the queue; its journal record gets the outcome over all attempts
/// (delivered if any recipient got it). With MX recipients still pending (outbound mail), it
/// stays for MX delivery, which removes it after its last recipient.
async fn finish(store: &Store, node: &str, id: &str, reply: &str) -> anyhow::Result<()> {
    if store
        .queue_list(Some(id))
        .await?
        .pop()
        .is_some_and(|q| !q.pending.is_empty())
    {
        store.release_lease(id, node, reply).await?;
        // MX delivery may have answered its last recipient meanwhile.
        store.queue_complete(id).await?;
        return Ok(());
    }
    let delivered = store.queue_any_delivered(id).await?;
    store
        .dequeue(
            id,
            node,
            if delivered { "delivered" } else { "refused" },
            reply,
        )
        .await?;
    Ok(())
}

/// Delivers one queued message to another host (`HOST:PORT`), by an admin's hand. Its result is
/// recorded like the runner's; returns the host's answer.
pub async fn deliver_to(
    config: &Config,
    store: &Store,
    id: &str,
    host: &str,
) -> anyhow::Result<String> {
    if crate::net::parse_host_port(host).is_none() {
        anyhow::bail!("`{host}` is not HOST:PORT");
    }
    let node = format!("{}:hand", crate::server::node_name(config));
    if !store
        .lease_one(id, &node, crate::clock::now_us(), LEASE.as_micros() as i64)
        .await?
    {
        anyhow::bail!("{id} is not in the queue, or is being delivered right now");
    }
    let item = store
        .queue_list(Some(id))
        .await?
        .pop()
        .ok_or_else(|| anyhow::anyhow!("{id} is not in the queue"))?;
    let body = store
        .queued_body(id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("{id} has no body"))?;
    let message = crate::modules::backup::unpack(&body, item.size)?;
    let mut target = BackendTarget::from_config(config);
    target.address = host.to_string();
    let mut backend = match Backend::connect(&target).await {
        Ok(b) => b,
        Err(e) => {
            store
                .release_lease(id, &node, &format!("{host} unavailable: {e}"))
                .await?;
            anyhow::bail!("cannot reach {host}: {e}");
        }
    };
    let mut failures = Vec::new();
    let outcome = attempt(&mut backend, store, &item, &message, &mut failures).await;
    backend.quit().await;
    if !failures.is_empty() {
        dsn::queue(
            config,
            store,
            id,
            item.time_us,
            &item.sender,
            &failures,
            &message,
        )
        .await?;
    }
    match outcome {
        Ok(Attempt::Finished { reply, .. }) => {
            let reply = format!("{reply} (delivered by hand to {host})");
            finish(store, &node, id, &reply).await?;
            Ok(reply)
        }
        Ok(Attempt::Later(reply)) | Err(reply) => {
            store
                .release_lease(id, &node, &format!("{host}: {reply}"))
                .await?;
            anyhow::bail!("{host} deferred it: {reply}")
        }
    }
}

enum Attempt {
    /// Every recipient has its final answer.
    Finished { reply: String },
    /// Some recipient is deferred.
    Later(String),
}

/// One delivery attempt; recipients refused for good are added to `failures` (for the DSN).
async fn attempt(
    backend: &mut Backend,
    store: &Store,
    item: &crate::storage::Queued,
    message: &[u8],
    failures: &mut Vec<dsn::Failure>,
) -> Result<Attempt, String> {
    let err = |e: crate::smtp::client::BackendError| e.to_string();
    let eight_bit = message.iter().any(|&b| b >= 0x80);
    let r = backend
        .mail(&item.sender, Some(message.len() as u64), eight_bit)
        .await
        .map_err(err)?;
    if r.is_transient() {
        return Ok(Attempt::Later(r.summary()));
    }
    if !r.is_positive() {
        for a in &item.pending {
            store
                .queue_rcpt_done(&item.id, a, &r.summary())
                .await
                .map_err(|e| e.to_string())?;
            failures.push(dsn::Failure {
                address: a.clone(),
                reply: r.summary(),
            });
        }
        return Ok(Attempt::Finished { reply: r.summary() });
    }
    let mut accepted = Vec::new();
    let mut deferred = false;
    for a in &item.pending {
        let r = backend.rcpt(a).await.map_err(err)?;
        if r.is_positive() {
            accepted.push(a.clone());
        } else if r.is_permanent() {
            store
                .queue_rcpt_done(&item.id, a, &r.summary())
                .await
                .map_err(|e| e.to_string())?;
            failures.push(dsn::Failure {
                address: a.clone(),
                reply: r.summary(),
            });
        } else {
            deferred = true;
        }
    }
    if accepted.is_empty() {
        backend.rset().await.map_err(err)?;
        return Ok(if deferred {
            Attempt::Later("every recipient deferred".into())
        } else {
            Attempt::Finished {
                reply: "every recipient refused".into(),
            }
        });
    }
    let r = backend.data(&[message]).await.map_err(err)?;
    if r.is_transient() {
        return Ok(Attempt::Later(r.summary()));
    }
    for a in &accepted {
        store
            .queue_rcpt_done(&item.id, a, &r.summary())
            .await
            .map_err(|e| e.to_string())?;
        if r.is_permanent() {
            failures.push(dsn::Failure {
                address: a.clone(),
                reply: r.summary(),
            });
        }
    }
    if deferred {
        return Ok(Attempt::Later(format!("partly delivered: {}", r.summary())));
    }
    Ok(Attempt::Finished { reply: r.summary() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let max = Duration::from_secs(3600);
        assert_eq!(backoff(0, max), Duration::from_secs(30));
        assert_eq!(backoff(3, max), Duration::from_secs(240));
        assert_eq!(backoff(20, max), max);
    }
}
