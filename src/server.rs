//! The listener: accepts connections, enforces the connection limits (overall and per client
//! IP), and runs one [`Session`] per connection. Shutdown: stop accepting, tell idle sessions,
//! wait (bounded) for transactions in flight. Reload: new sessions get a new [`Gateway`] (config,
//! modules, backend); sessions in flight finish on the one they started with.

use anyhow::{Context, Result};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tracing::Instrument;

use crate::config::Config;
use crate::pipeline::{Pipeline, SessionInfo};
use crate::smtp::client::BackendTarget;
use crate::smtp::conn::Conn;
use crate::smtp::pool::BackendPool;
use crate::smtp::reply::{Reply, replies};
use crate::smtp::session::Session;
use crate::smtp::tls::CertSlot;
use crate::storage::Store;

/// What every session shares.
pub struct Gateway {
    pub config: Config,
    pub pipeline: Pipeline,
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    /// Connections to the backend, kept between sessions.
    pub backend: BackendPool,
    /// Becomes `true` when sponts is shutting down.
    pub shutdown: watch::Receiver<bool>,
    /// For queue mode: known recipients, and the queue itself.
    pub store: Store,
    /// Whether the backend answers (queue mode), shared with the queue runner and across reloads.
    pub health: Arc<crate::queue::health::BackendHealth>,
    /// This node's name in events.
    pub node: String,
    /// The `uce` module runs: tarpits apply and "user unknown" answers are made uniform.
    pub uce: bool,
    /// How long the backend takes to answer a RCPT (a moving average, microseconds): a module's
    /// refusal at RCPT waits as long, so it cannot be told from the backend's by its timing.
    rcpt_time_us: std::sync::atomic::AtomicU64,
    /// Copies of targets' transactions (lawful interception).
    pub intercept: Arc<crate::intercept::Interception>,
    /// Clients that lately waited for the whole greeting; kept across reloads.
    pub greet_passes: Arc<crate::smtp::greet_passes::GreetPasses>,
    /// Failed SMTP AUTH attempts per client address; kept across reloads.
    pub auth_throttle: Arc<crate::mailproxy::throttle::Throttle>,
}

impl Gateway {
    pub fn note_rcpt_time(&self, took: Duration) {
        use std::sync::atomic::Ordering::Relaxed;
        let sample = took.as_micros().min(10_000_000) as u64;
        let avg = self.rcpt_time_us.load(Relaxed);
        self.rcpt_time_us.store(
            if avg == 0 {
                sample
            } else {
                avg - avg / 8 + sample / 8
            },
            Relaxed,
        );
    }

    pub fn rcpt_time(&self) -> Duration {
        Duration::from_micros(self.rcpt_time_us.load(std::sync::atomic::Ordering::Relaxed))
    }
}

impl Gateway {
    /// The backend did not answer a session: queue mode (once per outage).
    pub async fn backend_failed(&self, why: &str) {
        self.health.failed(why).await;
    }

    /// The backend answered a session: the end of queue mode, if it was on.
    pub async fn backend_ok(&self) {
        self.health.ok().await;
    }
}

impl Gateway {
    pub fn new(
        config: Config,
        pipeline: Pipeline,
        store: Store,
        shutdown: watch::Receiver<bool>,
        certs: &Arc<CertSlot>,
        intercept: Arc<crate::intercept::Interception>,
        health: Arc<crate::queue::health::BackendHealth>,
    ) -> Result<Gateway> {
        let tls = crate::smtp::tls::server_config(certs)?;
        let backend = BackendPool::new(
            BackendTarget::from_config(&config),
            config.backend.pool_size,
        );
        let node = node_name(&config);
        let uce = pipeline.names().contains(&"uce");
        let auth_throttle = Arc::new(crate::mailproxy::throttle::Throttle::new(
            config.outbound.max_auth_failures,
            config.outbound.auth_failure_block.0,
        ));
        Ok(Gateway {
            config,
            pipeline,
            tls: Some(tokio_rustls::TlsAcceptor::from(tls)),
            backend,
            shutdown,
            store,
            health,
            greet_passes: Arc::default(),
            auth_throttle,
            node,
            uce,
            rcpt_time_us: Default::default(),
            intercept,
        })
    }
}

/// This process's name in events and queue leases: host name and process id.
pub fn node_name(config: &Config) -> String {
    format!("{}:{}", config.smtp.hostname, std::process::id())
}

/// A listener's accept loops and the sessions they started, so a shutdown can stop accepting,
/// end the sessions and wait until they have (what they hand on, interception copies say, is
/// then all handed on).
#[derive(Default, Clone)]
pub struct Sessions {
    accepting: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    running: Arc<Mutex<tokio::task::JoinSet<()>>>,
}

impl Sessions {
    /// Runs an accept loop.
    pub fn accept<F: std::future::Future<Output = ()> + Send + 'static>(&self, accept_loop: F) {
        self.accepting
            .lock()
            .expect("sessions lock")
            .push(tokio::spawn(accept_loop));
    }

    /// Runs one session.
    pub fn spawn<F: std::future::Future<Output = ()> + Send + 'static>(&self, session: F) {
        let mut set = self.running.lock().expect("sessions lock");
        while set.try_join_next().is_some() {}
        set.spawn(session);
    }

    /// Stops accepting, ends every session and waits until each has stopped.
    pub async fn end(&self) {
        for t in std::mem::take(&mut *self.accepting.lock().expect("sessions lock")) {
            t.abort();
        }
        let mut set = std::mem::take(&mut *self.running.lock().expect("sessions lock"));
        set.abort_all();
        while set.join_next().await.is_some() {}
    }
}

/// Counts open connections, overall and per client address; a slot is freed when dropped.
#[derive(Default)]
pub struct Limits {
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    total: std::sync::atomic::AtomicUsize,
}

pub struct Slot {
    limits: Arc<Limits>,
    ip: IpAddr,
}

impl Limits {
    pub fn take(self: &Arc<Self>, ip: IpAddr, max_total: usize, max_per_ip: usize) -> Option<Slot> {
        use std::sync::atomic::Ordering;
        let mut map = self.per_ip.lock().expect("limits lock");
        if self.total.load(Ordering::Relaxed) >= max_total {
            return None;
        }
        let n = map.entry(ip).or_insert(0);
        if *n >= max_per_ip {
            return None;
        }
        *n += 1;
        self.total.fetch_add(1, Ordering::Relaxed);
        Some(Slot {
            limits: self.clone(),
            ip,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut map = self.limits.per_ip.lock().expect("limits lock");
        if let Some(n) = map.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
        self.limits
            .total
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// A bound, running SMTP service.
pub struct Server {
    pub addrs: Vec<SocketAddr>,
    /// The gateway new sessions get.
    current: watch::Sender<Arc<Gateway>>,
    stop: watch::Sender<bool>,
    tasks: tokio::task::JoinSet<()>,
    limits: Arc<Limits>,
}

impl Server {
    /// Binds every `smtp.listen` address and starts accepting.
    pub async fn start(
        config: Config,
        pipeline: Pipeline,
        store: Store,
        certs: &Arc<CertSlot>,
        intercept: Arc<crate::intercept::Interception>,
        health: Arc<crate::queue::health::BackendHealth>,
    ) -> Result<Server> {
        let (stop, stopped) = watch::channel(false);
        let gw = Arc::new(Gateway::new(
            config, pipeline, store, stopped, certs, intercept, health,
        )?);
        let (current, _) = watch::channel(gw.clone());
        let limits = Arc::new(Limits::default());
        let mut tasks = tokio::task::JoinSet::new();
        let mut addrs = Vec::new();
        for addr in &gw.config.smtp.listen {
            let listener = TcpListener::bind(addr)
                .await
                .with_context(|| format!("smtp.listen: cannot listen on {addr}"))?;
            addrs.push(listener.local_addr()?);
            tasks.spawn(accept_loop(
                listener,
                current.subscribe(),
                limits.clone(),
                false,
            ));
        }
        // Submission listeners (`outbound.listen`): the same service for our own clients only.
        for addr in &gw.config.outbound.listen {
            let listener = TcpListener::bind(addr)
                .await
                .with_context(|| format!("outbound.listen: cannot listen on {addr}"))?;
            addrs.push(listener.local_addr()?);
            tasks.spawn(accept_loop(
                listener,
                current.subscribe(),
                limits.clone(),
                true,
            ));
        }
        tracing::info!(listen = ?addrs, backend = %gw.config.backend.address, modules = ?gw.pipeline.names(), "sponts is accepting mail");
        Ok(Server {
            addrs,
            current,
            stop,
            tasks,
            limits,
        })
    }

    /// New sessions get a gateway on `config` and `pipeline`; the listeners stay. What the
    /// running gateway knows of the backend's health and answer times carries over.
    pub fn reload(&self, config: Config, pipeline: Pipeline, certs: &Arc<CertSlot>) -> Result<()> {
        let old = self.current.borrow().clone();
        let mut gw = Gateway::new(
            config,
            pipeline,
            old.store.clone(),
            old.shutdown.clone(),
            certs,
            old.intercept.clone(),
            old.health.clone(),
        )?;
        gw.greet_passes = old.greet_passes.clone();
        gw.auth_throttle = old.auth_throttle.clone();
        gw.rcpt_time_us.store(
            old.rcpt_time_us.load(std::sync::atomic::Ordering::Relaxed),
            std::sync::atomic::Ordering::Relaxed,
        );
        tracing::info!(backend = %gw.config.backend.address, modules = ?gw.pipeline.names(), "configuration reloaded: new sessions use it");
        self.current.send_replace(Arc::new(gw));
        Ok(())
    }

    /// Stops accepting, closes idle sessions, and waits up to `grace` for the others.
    pub async fn shutdown(mut self, grace: Duration) {
        let _ = self.stop.send(true);
        let deadline = tokio::time::Instant::now() + grace;
        while self.limits.total.load(std::sync::atomic::Ordering::Relaxed) > 0
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.tasks.abort_all();
        let gw = self.current.borrow().clone();
        gw.backend.close().await;
    }
}

async fn accept_loop(
    listener: TcpListener,
    current: watch::Receiver<Arc<Gateway>>,
    limits: Arc<Limits>,
    submission: bool,
) {
    let mut stop = current.borrow().shutdown.clone();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.wait_for(|s| *s) => return,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let gw = current.borrow().clone();
        let smtp = &gw.config.smtp;
        match limits.take(peer.ip(), smtp.max_connections, smtp.max_connections_per_ip) {
            Some(slot) => {
                let gw = gw.clone();
                crate::report::live::session_opened();
                tokio::spawn(async move {
                    serve(stream, peer, gw, submission).await;
                    crate::report::live::session_closed();
                    drop(slot);
                });
            }
            None => {
                crate::report::live::connection_refused();
                tracing::info!(%peer, "connection refused: too many connections");
                tokio::spawn(refuse(stream, replies::too_many_connections()));
            }
        }
    }
}

async fn serve(stream: TcpStream, peer: SocketAddr, gw: Arc<Gateway>, submission: bool) {
    let _ = stream.set_nodelay(true);
    let local = stream.local_addr().unwrap_or(peer);
    let mut info = SessionInfo::new(peer, local);
    info.submission = submission;
    let span = tracing::info_span!("smtp", %peer);
    Session::new(Conn::new(Box::new(stream)), gw, info)
        .run()
        .instrument(span)
        .await;
}

async fn refuse(mut stream: TcpStream, reply: Reply) {
    let mut out = Vec::new();
    reply.write_to(&mut out);
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.write_all(&out)).await;
    let _ = stream.shutdown().await;
}
