//! Lawful interception: copies of a target's SMTP transactions and POP3/IMAP retrievals, made
//! while an order takes effect, for the agency named in the order.
//!
//! How a copy flows: the SMTP session (or a POP3/IMAP proxy session) hands its event to
//! [`Interception`], which checks it against the orders in effect (kept in memory, re-read every
//! second); for a target, the event and its message are written to the store as a copy, with an
//! audit entry, durably ([`Store::record_copies`]). The [`worker`] then delivers copies to the
//! agency ([`deliver`]: an export directory or SMTP over verified TLS), retrying until it can.
//! Nothing on the target's side waits for the agency; events of anyone else are not recorded.

pub mod deliver;
pub mod orders;
pub mod record;
mod recover;
mod worker;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use crate::config::Config;
use crate::pipeline::TransactionRecord;
use crate::storage::Store;
use crate::storage::intercept::Order;

pub use record::Event;

/// How often the orders in effect are read again (an order made on the CLI or another node
/// takes effect here within this).
const ORDERS_REFRESH: Duration = Duration::from_secs(1);
/// Tries to record a copy before it is given up (and logged as lost): about 6 seconds.
const RECORD_ATTEMPTS: u32 = 6;

pub struct Interception {
    store: Store,
    orders: RwLock<Arc<Vec<Order>>>,
    wake: Arc<tokio::sync::Notify>,
    /// Copies being recorded right now, so a shutdown can wait for them.
    in_flight: AtomicUsize,
    settled: tokio::sync::Notify,
}

/// Counts one recording in flight for as long as it lives (a panic included).
struct InFlight(Arc<Interception>);

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.settled.notify_waiters();
        }
    }
}

impl Interception {
    /// Reads the orders and starts the refresh and the delivery worker; both stop when the
    /// returned handle is dropped.
    pub async fn start(config: &Config, store: Store) -> anyhow::Result<Arc<Interception>> {
        let orders = store.live_orders(crate::clock::now_us()).await?;
        let me = Arc::new(Interception {
            store: store.clone(),
            orders: RwLock::new(Arc::new(orders)),
            wake: Arc::default(),
            in_flight: AtomicUsize::new(0),
            settled: tokio::sync::Notify::new(),
        });
        tokio::spawn(refresh(Arc::downgrade(&me)));
        let server = config
            .smtp
            .listen
            .first()
            .copied()
            .unwrap_or(SocketAddr::from(([0, 0, 0, 0], 25)));
        tokio::spawn(recover::run(Arc::downgrade(&me), server));
        tokio::spawn(worker::run(
            Arc::downgrade(&me),
            store,
            me.wake.clone(),
            worker::Settings::from_config(config)?,
        ));
        Ok(me)
    }

    /// Reads the orders again now, not at the next refresh.
    pub async fn reload(&self) -> anyhow::Result<()> {
        let orders = self.store.live_orders(crate::clock::now_us()).await?;
        *self.orders.write().expect("orders lock") = Arc::new(orders);
        Ok(())
    }

    /// Orders in effect at `time_us` whose target is one of `addresses` (any case).
    pub fn orders_for_addresses<'a>(
        &self,
        addresses: impl IntoIterator<Item = &'a str> + Clone,
        time_us: i64,
    ) -> Vec<Order> {
        let orders = self.orders.read().expect("orders lock").clone();
        orders
            .iter()
            .filter(|o| {
                o.active_at(time_us)
                    && addresses
                        .clone()
                        .into_iter()
                        .any(|a| a.eq_ignore_ascii_case(&o.target))
            })
            .cloned()
            .collect()
    }

    /// Orders not yet over (in effect now or later) for a backend login name: the order's
    /// login, or its target address when the backend takes addresses as logins.
    pub fn orders_for_login(&self, login: &str) -> Vec<Order> {
        let login = login.trim();
        let orders = self.orders.read().expect("orders lock").clone();
        orders
            .iter()
            .filter(|o| {
                o.login
                    .as_deref()
                    .is_some_and(|l| l.eq_ignore_ascii_case(login))
                    || o.target.eq_ignore_ascii_case(login)
            })
            .cloned()
            .collect()
    }

    /// Records a copy of `event` for each order, durably, and wakes the worker. An error is
    /// logged, never shown to the target's client.
    pub async fn record(&self, orders: Vec<Order>, event: Event) {
        if orders.is_empty() {
            return;
        }
        let (service, kind) = (event.service, event.kind);
        // Compressing a large message is CPU work: off the async threads.
        let copies = match tokio::task::spawn_blocking(move || event.copies(&orders)).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                return tracing::error!(
                    service,
                    event = kind,
                    "interception copy could not be made: {e:#}"
                );
            }
            Err(e) => {
                return tracing::error!(
                    service,
                    event = kind,
                    "interception copy could not be made: {e}"
                );
            }
        };
        // A busy or briefly unreachable database: tried again before giving up.
        let mut wait = std::time::Duration::from_millis(100);
        for attempt in 1..=RECORD_ATTEMPTS {
            match self.store.record_copies(&copies).await {
                Ok(n) => {
                    if n > 0 {
                        self.wake.notify_one();
                    }
                    return;
                }
                Err(e) if attempt == RECORD_ATTEMPTS => {
                    let ids: Vec<&str> = copies.iter().map(|c| c.id.as_str()).collect();
                    tracing::error!(service, event = kind, copies = ?ids, "interception copy LOST, it could not be recorded: {e:#}");
                }
                Err(e) => {
                    tracing::warn!(
                        attempt,
                        "interception copy not recorded yet, trying again: {e:#}"
                    );
                    tokio::time::sleep(wait).await;
                    wait *= 2;
                }
            }
        }
    }

    /// Orders in effect now for any of these login names (each order once): a POP3 or IMAP
    /// session's, where a login may name the account by its address or an alias.
    pub fn orders_now(&self, logins: &[&str]) -> Vec<Order> {
        let now = crate::clock::now_us();
        let mut out: Vec<Order> = Vec::new();
        for o in logins.iter().flat_map(|l| self.orders_for_login(l)) {
            if o.active_at(now) && !out.iter().any(|x| x.id == o.id) {
                out.push(o);
            }
        }
        out
    }

    /// Records `event` for `orders` in a task of its own, counted until it is done.
    pub fn spawn_record(self: &Arc<Self>, orders: Vec<Order>, event: Event) {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        let guard = InFlight(self.clone());
        tokio::spawn(async move {
            guard.0.record(orders, event).await;
            drop(guard);
        });
    }

    /// Waits (up to `grace`) until no copy is being recorded: at shutdown, after the sessions
    /// have ended and before the store closes. False if some were still going.
    pub async fn settle(&self, grace: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + grace;
        loop {
            // Made before the count is read, so a last decrement in between still wakes it.
            let settled = self.settled.notified();
            if self.in_flight.load(Ordering::Acquire) == 0 {
                return true;
            }
            if tokio::time::timeout_at(deadline, settled).await.is_err() {
                return false;
            }
        }
    }

    /// The SMTP side: a transaction from or to a target, whatever its outcome. The copy is
    /// recorded in a task of its own, so the final reply is not held back by it (the message
    /// itself is already kept by the backup module, for everyone alike).
    pub fn smtp(self: &Arc<Self>, record: &TransactionRecord, server: SocketAddr) {
        let addresses = std::iter::once(record.sender.as_str())
            .chain(record.recipients.iter().map(|r| r.address.as_str()))
            .chain(
                record
                    .recipients
                    .iter()
                    .filter_map(|r| r.delivered_to.as_deref()),
            );
        let orders = self.orders_for_addresses(addresses, record.time_us);
        if !orders.is_empty() {
            self.spawn_record(orders, Event::smtp(record, server));
        }
    }
}

async fn refresh(me: Weak<Interception>) {
    let mut tick = tokio::time::interval(ORDERS_REFRESH);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(me) = me.upgrade() else { return };
        if let Err(e) = me.reload().await {
            tracing::warn!("interception orders not re-read (the last ones stay in effect): {e:#}");
        }
    }
}
