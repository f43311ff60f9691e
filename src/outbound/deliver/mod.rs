//! Delivery to the internet: a message's recipients grouped by destination domain, each domain
//! reached through its MX hosts ([`route`]) in one session for all its recipients, with the
//! transport security [`security`] decides from DANE ([`dns`] keeps the AD bit), MTA-STS
//! ([`mta_sts`]) and the config's overrides. Sessions are bounded overall and per domain;
//! [`runner`] takes the work from the durable queue and records what became of it;
//! [`reuse`] keeps a session open for the next message to its domain; [`tls_report`] tells the
//! destinations that ask how TLS to them went (TLS-RPT).

pub mod dns;
pub mod mta_sts;
pub mod reuse;
pub mod route;
pub mod runner;
pub mod security;
pub mod tls_report;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::Semaphore;

use crate::config::Config;
use crate::smtp::client::{Backend, BackendError, BackendTarget, ClientTimeouts};
use crate::smtp::reply::Reply;
use crate::storage::Store;
use dns::{Dns, Lookup};
use route::Route;
use security::TlsPolicy;

/// MX hosts are always reached on the SMTP port (RFC 5321 §5.1).
const SMTP_PORT: u16 = 25;

/// What became of one recipient in one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    Delivered,
    /// Refused for good: the sender gets a DSN.
    Bounced,
    /// Try again later.
    Deferred,
}

#[derive(Debug, Clone)]
pub struct RcptResult {
    pub address: String,
    /// The remote host's reply, or sponts' own words for what went wrong (`451 4.4.1 ...`).
    pub reply: String,
    pub fate: Fate,
}

/// One domain's attempt: per-recipient results, and the host and TLS that carried it.
#[derive(Debug, Clone, Default)]
pub struct DomainOutcome {
    pub results: Vec<RcptResult>,
    /// `mx.example.net[192.0.2.1]` that answered, if any.
    pub mx: Option<String>,
    /// `TLSv1.3 ... (DANE)` when encrypted.
    pub tls: Option<String>,
}

/// Everything delivery needs, built once from the config.
pub struct Delivery {
    pub config: Arc<Config>,
    pub store: Store,
    pub dns: Dns,
    /// CAs for verified TLS (MTA-STS, `tls = "require"`): the system's and `outbound.mta_sts_ca`.
    pub roots: Arc<rustls::RootCertStore>,
    sessions: Arc<Semaphore>,
    per_domain: Mutex<HashMap<String, Arc<Semaphore>>>,
    /// Sessions waiting for the next message to their domain.
    waiting: reuse::Sessions,
    /// Domains none of whose MX hosts could be reached a moment ago, with that error: their
    /// other messages are deferred without a connection each (Postfix's "delivery temporarily
    /// suspended"), so an outage at a big destination does not cost a connect per message.
    unreachable: Mutex<HashMap<String, (std::time::Instant, String)>>,
    /// The newest admin's retry (`mx_retry` event) seen: a retry lifts every suspension, so the
    /// mail it made due is tried at once rather than deferred by a backoff.
    retry_seen_us: std::sync::atomic::AtomicI64,
}

/// How long a domain whose MX hosts could not be reached is not tried again.
const SUSPEND: std::time::Duration = std::time::Duration::from_secs(2);

impl Delivery {
    pub fn new(config: Arc<Config>, store: Store) -> anyhow::Result<Delivery> {
        let d = &config.outbound_delivery;
        let mut roots = rustls::RootCertStore::empty();
        if let Ok(pem) = std::fs::read("/etc/ssl/certs/ca-certificates.crt") {
            for cert in <rustls::pki_types::CertificateDer as rustls::pki_types::pem::PemObject>::pem_slice_iter(&pem).flatten() {
                let _ = roots.add(cert);
            }
        }
        if let Some(ca) = &d.mta_sts_ca {
            let extra = crate::smtp::tls::roots_from_file(ca)
                .map_err(|e| anyhow::anyhow!("outbound.mta_sts_ca: {e:#}"))?;
            roots.roots.extend(extra.roots);
        }
        Ok(Delivery {
            dns: Dns::new(d.resolver),
            roots: Arc::new(roots),
            sessions: Arc::new(Semaphore::new(d.max_sessions)),
            per_domain: Mutex::new(HashMap::new()),
            waiting: reuse::Sessions::default(),
            unreachable: Mutex::new(HashMap::new()),
            retry_seen_us: std::sync::atomic::AtomicI64::new(crate::clock::now_us()),
            store,
            config,
        })
    }

    /// Delivers to every domain at once (bounded), one session per domain.
    pub async fn deliver_message(
        &self,
        sender: &str,
        by_domain: &[(String, Vec<String>)],
        message: &[u8],
    ) -> Vec<DomainOutcome> {
        let jobs = by_domain
            .iter()
            .map(|(domain, rcpts)| self.deliver_domain(domain, sender, rcpts, message));
        futures_util::future::join_all(jobs).await
    }

    /// All of one message's recipients at `domain`, in one transaction.
    pub async fn deliver_domain(
        &self,
        domain: &str,
        sender: &str,
        rcpts: &[String],
        message: &[u8],
    ) -> DomainOutcome {
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        let limit = self
            .per_domain
            .lock()
            .expect("domain limits")
            .entry(domain.clone())
            .or_insert_with(|| {
                Arc::new(Semaphore::new(
                    self.config.outbound_delivery.max_sessions_per_domain,
                ))
            })
            .clone();
        let _domain_slot = limit.acquire_owned().await.expect("never closed");
        let _slot = self
            .sessions
            .clone()
            .acquire_owned()
            .await
            .expect("never closed");
        // A session still open to this domain carries the message if it answers RSET.
        while let Some(mut session) = self.waiting.take(&domain) {
            match session
                .backend
                .next_transaction(sender, rcpts, message)
                .await
            {
                Ok(None) => {
                    tokio::spawn(session.backend.quit());
                }
                Ok(Some(answers)) => return self.answered(&domain, session, rcpts, Ok(answers)),
                Err(e) => return self.answered(&domain, session, rcpts, Err(e)),
            }
        }
        let all = |reply: &str, fate| DomainOutcome {
            results: rcpts
                .iter()
                .map(|a| RcptResult {
                    address: a.clone(),
                    reply: reply.to_string(),
                    fate,
                })
                .collect(),
            ..DomainOutcome::default()
        };
        if let Some(reply) = self.suspended(&domain) {
            return all(&reply, Fate::Deferred);
        }
        let route = match route::route(&self.dns, &domain).await {
            Ok(r) => r,
            Err(e) => return all(&format!("451 4.4.3 {e:#}"), Fate::Deferred),
        };
        let (hosts, mx_secure) = match route {
            Route::NullMx => {
                return all(
                    &format!("556 5.1.10 {domain} accepts no mail (null MX)"),
                    Fate::Bounced,
                );
            }
            Route::NoSuchDomain => {
                return all(&format!("550 5.1.2 {domain} does not exist"), Fate::Bounced);
            }
            Route::Hosts { hosts, secure } => (hosts, secure),
        };
        let over = self
            .config
            .outbound_delivery
            .destination(&domain)
            .and_then(|d| d.tls);
        let sts = if over.is_none() {
            mta_sts::policy(&self.store, &self.dns, &self.roots, &domain).await
        } else {
            None
        };
        let enforced = sts
            .as_ref()
            .is_some_and(|p| p.mode == mta_sts::Mode::Enforce);
        let mut last_error = format!("451 4.4.1 no MX host of {domain} could be reached");
        for host in &hosts {
            if enforced && !sts.as_ref().is_some_and(|p| p.allows(host)) {
                last_error =
                    format!("451 4.7.5 MX host {host} is not in {domain}'s MTA-STS policy");
                self.tls_result(&domain, "sts", host, "validation-failure")
                    .await;
                continue;
            }
            let addrs = match self.dns.addresses(host).await {
                Ok(a) if !a.records().is_empty() => a,
                Ok(_) => {
                    last_error = format!("451 4.4.4 MX host {host} has no address");
                    continue;
                }
                Err(e) => {
                    last_error = format!("451 4.4.3 {e:#}");
                    continue;
                }
            };
            // DANE only on a validated chain: MX and address answers both carry the AD bit.
            let dane = if over.is_none() && mx_secure && addrs.secure() {
                match self.dns.tlsa(&format!("_25._tcp.{host}")).await {
                    Ok(Lookup::Found {
                        records,
                        secure: true,
                    }) if !records.is_empty() => Some(security::usable(&records)),
                    Ok(_) => None,
                    Err(e) => {
                        // A signed host whose TLSA answer fails may be under attack: not in clear.
                        last_error = format!("451 4.7.5 TLSA lookup for {host} failed: {e:#}");
                        self.tls_result(&domain, "tlsa", host, "tlsa-invalid").await;
                        continue;
                    }
                }
            } else {
                None
            };
            let policy = TlsPolicy::decide(over, dane, enforced);
            for ip in addrs.records() {
                match self
                    .session(&domain, host, *ip, &policy, sender, rcpts, message)
                    .await
                {
                    Ok(outcome) => return outcome,
                    Err(e) => last_error = e,
                }
            }
        }
        self.suspend(&domain, &last_error);
        all(&last_error, Fate::Deferred)
    }

    /// Lifts the suspensions when an admin asked for a retry since the last look (on any node).
    pub async fn lift_suspensions_on_retry(&self) -> anyhow::Result<()> {
        use std::sync::atomic::Ordering::Relaxed;
        let seen = self.retry_seen_us.load(Relaxed);
        if let Some(t) = self.store.last_event_after("mx_retry", seen).await? {
            self.retry_seen_us.fetch_max(t, Relaxed);
            self.unreachable
                .lock()
                .expect("unreachable domains")
                .clear();
        }
        Ok(())
    }

    /// The deferral for a domain that could not be reached a moment ago, if it is suspended.
    fn suspended(&self, domain: &str) -> Option<String> {
        let mut unreachable = self.unreachable.lock().expect("unreachable domains");
        let now = std::time::Instant::now();
        unreachable.retain(|_, (until, _)| *until > now);
        unreachable.get(domain).map(|(_, error)| {
            format!("{error} (delivery to {domain} suspended for a moment after that)")
        })
    }

    fn suspend(&self, domain: &str, error: &str) {
        self.unreachable
            .lock()
            .expect("unreachable domains")
            .insert(
                domain.to_string(),
                (std::time::Instant::now() + SUSPEND, error.to_string()),
            );
    }

    /// One connection to one address of an MX host; Err: the host could not take the message
    /// (the next one is tried), with the reply to record if it is the last.
    #[allow(clippy::too_many_arguments)]
    async fn session(
        &self,
        domain: &str,
        host: &str,
        ip: std::net::IpAddr,
        policy: &TlsPolicy,
        sender: &str,
        rcpts: &[String],
        message: &[u8],
    ) -> Result<DomainOutcome, String> {
        let timeouts = ClientTimeouts::rfc5321(std::time::Duration::from_secs(30));
        let address = std::net::SocketAddr::new(ip, SMTP_PORT).to_string();
        let target = |starttls| BackendTarget {
            address: address.clone(),
            helo: self.config.smtp.hostname.clone(),
            starttls,
            timeouts,
            tls: policy.client_config(&self.roots),
            tls_name: Some(host.to_string()),
        };
        let report_policy = match policy {
            TlsPolicy::Dane(_) => "tlsa",
            TlsPolicy::Verified { why: "MTA-STS" } => "sts",
            _ => "no-policy-found",
        };
        let backend = match Backend::connect(&target(policy.starttls())).await {
            Ok(b) => b,
            Err(e @ (BackendError::Tls(_) | BackendError::TlsRequired))
                if policy.starttls() == crate::config::StartTls::Required =>
            {
                let kind = if matches!(e, BackendError::TlsRequired) {
                    "starttls-not-supported"
                } else {
                    "validation-failure"
                };
                self.tls_result(domain, report_policy, host, kind).await;
                tracing::warn!(%domain, %host, %ip, policy = policy.name(), "TLS required, not established: {e}");
                return Err(format!(
                    "451 4.7.5 {host}[{ip}]: TLS required ({}), not established: {e}",
                    policy.name()
                ));
            }
            // Opportunistic TLS that fails its handshake: a new connection in clear (RFC 7435).
            Err(BackendError::Tls(e)) => {
                tracing::info!(%domain, %host, %ip, "STARTTLS failed ({e}), trying again without TLS");
                Backend::connect(&target(crate::config::StartTls::Off))
                    .await
                    .map_err(|e| format!("451 4.4.1 {host}[{ip}]: {e}"))?
            }
            Err(BackendError::Refused(r)) => {
                return Err(format!(
                    "451 4.4.1 {host}[{ip}] refused the session: {}",
                    r.summary()
                ));
            }
            Err(e) => return Err(format!("451 4.4.1 {host}[{ip}]: {e}")),
        };
        if backend.tls.is_some() {
            self.tls_result(domain, report_policy, host, "success")
                .await;
        }
        let tls = backend
            .tls
            .clone()
            .map(|t| format!("{t} ({})", policy.name()));
        let session = reuse::Session {
            backend,
            host: host.to_string(),
            ip,
            tls,
            opened: std::time::Instant::now(),
        };
        Ok(self
            .transaction(domain, session, sender, rcpts, message)
            .await)
    }

    /// One message's transaction on an open session; the session then waits for the next
    /// message to the domain, or ends when it failed.
    async fn transaction(
        &self,
        domain: &str,
        mut session: reuse::Session,
        sender: &str,
        rcpts: &[String],
        message: &[u8],
    ) -> DomainOutcome {
        let answers = session.backend.transaction(sender, rcpts, message).await;
        self.answered(domain, session, rcpts, answers)
    }

    /// Each recipient's result from a transaction's answers; a session that served it waits
    /// for the next message to the domain, one that failed ends.
    fn answered(
        &self,
        domain: &str,
        session: reuse::Session,
        rcpts: &[String],
        answers: Result<Vec<Reply>, BackendError>,
    ) -> DomainOutcome {
        let (host, ip) = (session.host.clone(), session.ip);
        let mx = Some(format!("{host}[{ip}]"));
        match answers {
            Ok(answers) => {
                let results = rcpts
                    .iter()
                    .zip(answers)
                    .map(|(a, r)| RcptResult {
                        address: a.clone(),
                        reply: remote_reply(&host, &r),
                        fate: fate(&r),
                    })
                    .collect();
                let tls = session.tls.clone();
                self.waiting.put(
                    domain,
                    session,
                    self.config.outbound_delivery.max_sessions_per_domain,
                );
                DomainOutcome { results, mx, tls }
            }
            Err(e) => {
                let tls = session.tls.clone();
                tokio::spawn(session.backend.quit());
                let reply = format!("451 4.4.2 {host}[{ip}]: {e}");
                DomainOutcome {
                    results: rcpts
                        .iter()
                        .map(|a| RcptResult {
                            address: a.clone(),
                            reply: reply.clone(),
                            fate: Fate::Deferred,
                        })
                        .collect(),
                    mx,
                    tls,
                }
            }
        }
    }

    /// Counts a session's TLS result for TLS-RPT; a storage error only costs the count.
    async fn tls_result(&self, domain: &str, policy: &str, mx: &str, result: &str) {
        let (y, m, d) = crate::clock::date(crate::clock::now_us());
        let _ = self
            .store
            .tls_result_add(&format!("{y:04}-{m:02}-{d:02}"), domain, policy, mx, result)
            .await;
    }
}

fn fate(r: &Reply) -> Fate {
    if r.is_positive() {
        Fate::Delivered
    } else if r.is_permanent() {
        Fate::Bounced
    } else {
        Fate::Deferred
    }
}

/// The remote reply as recorded: who said it, then what it said.
fn remote_reply(host: &str, r: &Reply) -> String {
    format!("{} (from {host})", r.summary())
}
