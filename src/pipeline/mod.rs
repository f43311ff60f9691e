//! The module contract. A module hooks into the SMTP phases — connect, HELO, MAIL, RCPT, message
//! — and answers each with a [`Verdict`]; when a transaction ends, every module sees its
//! [`TransactionRecord`] (the journal stores it, later modules keep the message, count it ...).
//!
//! Call order: modules run in the configured order; within a phase the first decisive verdict
//! (accept, reject, tempfail, discard) ends the phase, and its module is recorded as the one that
//! decided. `Delay` requests add up and are slept once, centrally, before the reply (a tarpit costs
//! a timer, not a thread). Modules never touch the socket and never call each other; the session
//! is the only code that writes replies. What a module wants besides a verdict — tarpit this
//! client, add a header, note its scores for the journal — it leaves in the session's [`Marks`].

mod marks;
mod record;

pub use marks::{Marks, TxMarks};
pub use record::{Outcome, RcptRecord, TransactionRecord};

use async_trait::async_trait;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::smtp::address::Address;
use crate::smtp::reply::Reply;

/// What a module says about a phase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// No opinion: the next module decides.
    Continue,
    /// Accept this phase; later modules are not asked.
    Accept,
    /// Refuse permanently with this reply (5xx).
    Reject(Reply),
    /// Refuse for now with this reply (4xx).
    TempFail(Reply),
    /// Accept, but never deliver (message phase; elsewhere it is treated as accept).
    Discard,
    /// Slow the reply down by this much, then ask the next module.
    Delay(Duration),
    /// RCPT only: hand this address to the backend instead (a disposable address's owner), then
    /// ask the next module.
    Rewrite(Address),
}

/// What the connection looks like, for every hook.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    pub peer: SocketAddr,
    pub local: SocketAddr,
    /// The EHLO/HELO name, once given.
    pub helo: Option<String>,
    /// "TLSv1.3 TLS13_AES_256_GCM_SHA384" once STARTTLS is done.
    pub tls: Option<String>,
    /// Shared with the session: what modules ask of it beyond their verdicts.
    pub marks: Arc<Marks>,
    /// The client sent something before the greeting had ended: a bot (postscreen's test).
    pub talked_early: bool,
    /// One of the organisation's own clients (in `smtp.relay_networks`, or signed in with SMTP
    /// AUTH): its mail is the outbound flavour — no DNSBL, SPF or greylisting of our own server.
    pub own_client: bool,
    /// The account signed in with SMTP AUTH.
    pub user: Option<String>,
    /// Connected to an `outbound.listen` listener (submission).
    pub submission: bool,
}

impl SessionInfo {
    pub fn new(peer: SocketAddr, local: SocketAddr) -> SessionInfo {
        SessionInfo {
            peer,
            local,
            helo: None,
            tls: None,
            marks: Arc::default(),
            talked_early: false,
            own_client: false,
            user: None,
            submission: false,
        }
    }
}

/// The transaction in progress, for the MAIL, RCPT and message hooks.
#[derive(Debug, Clone)]
pub struct TxInfo {
    pub id: String,
    /// `None` is the null sender `<>`.
    pub sender: Option<Address>,
    /// Recipients accepted so far.
    pub recipients: Vec<Address>,
    /// Our own client's mail to another domain: queued for MX delivery (outbound).
    pub outbound: bool,
}

/// A module of the pipeline. Every hook has a neutral default, so a module implements only the
/// phases it cares about.
#[async_trait]
pub trait Module: Send + Sync {
    /// The name used in the config's `modules` list and in the journal.
    fn name(&self) -> &'static str;

    async fn connect(&self, _s: &SessionInfo) -> Verdict {
        Verdict::Continue
    }
    async fn helo(&self, _s: &SessionInfo) -> Verdict {
        Verdict::Continue
    }
    async fn mail(&self, _s: &SessionInfo, _tx: &TxInfo) -> Verdict {
        Verdict::Continue
    }
    async fn rcpt(&self, _s: &SessionInfo, _tx: &TxInfo, _rcpt: &Address) -> Verdict {
        Verdict::Continue
    }
    /// Keeps the message durably: called for every message that reached the end of DATA,
    /// whatever its fate, before any verdict on it and before delivery. An error turns into
    /// `451 4.3.0` for the client: sponts never accepts a message it could not keep.
    async fn store(
        &self,
        _s: &SessionInfo,
        _tx: &TxInfo,
        _message: &Arc<Vec<u8>>,
    ) -> anyhow::Result<()> {
        Ok(())
    }
    /// The whole message (dot-unstuffed, without sponts' Received: header), before delivery.
    async fn message(&self, _s: &SessionInfo, _tx: &TxInfo, _message: &[u8]) -> Verdict {
        Verdict::Continue
    }
    /// The transaction has ended (delivered, refused, discarded or abandoned). Runs before the
    /// final reply is sent; an error is logged, the reply is not changed (the backend already has
    /// the message).
    async fn finish(&self, _record: &TransactionRecord) -> anyhow::Result<()> {
        Ok(())
    }
}

/// The result of running one phase through the pipeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub verdict: Verdict,
    /// The module whose verdict was decisive (none when every module continued).
    pub module: Option<&'static str>,
    /// Total delay requested by the modules.
    pub delay: Duration,
    /// The address a module asked the backend to be given instead (RCPT).
    pub rewrite: Option<Address>,
}

/// The configured modules, in order.
#[derive(Clone, Default)]
pub struct Pipeline {
    modules: Vec<Arc<dyn Module>>,
}

impl Pipeline {
    pub fn new(modules: Vec<Arc<dyn Module>>) -> Pipeline {
        Pipeline { modules }
    }

    pub fn names(&self) -> Vec<&'static str> {
        self.modules.iter().map(|m| m.name()).collect()
    }

    /// Runs one phase: `hook` calls the phase's method on a module.
    pub async fn run<'a, F, Fut>(&'a self, hook: F) -> Decision
    where
        F: Fn(&'a dyn Module) -> Fut,
        Fut: std::future::Future<Output = Verdict> + 'a,
    {
        let mut delay = Duration::ZERO;
        let mut rewrite = None;
        for m in &self.modules {
            match hook(m.as_ref()).await {
                Verdict::Continue => {}
                Verdict::Delay(d) => delay += d,
                Verdict::Rewrite(a) => rewrite = Some(a),
                decisive => {
                    return Decision {
                        verdict: decisive,
                        module: Some(m.name()),
                        delay,
                        rewrite,
                    };
                }
            }
        }
        Decision {
            verdict: Verdict::Continue,
            module: None,
            delay,
            rewrite,
        }
    }

    /// Lets every module keep the message; the first failure is returned with its module.
    pub async fn store(
        &self,
        s: &SessionInfo,
        tx: &TxInfo,
        message: &Arc<Vec<u8>>,
    ) -> Result<(), (&'static str, anyhow::Error)> {
        for m in &self.modules {
            m.store(s, tx, message).await.map_err(|e| (m.name(), e))?;
        }
        Ok(())
    }

    /// Hands the finished transaction to every module.
    pub async fn finish(&self, record: &TransactionRecord) {
        for m in &self.modules {
            if let Err(e) = m.finish(record).await {
                tracing::error!(module = m.name(), id = %record.id, "recording the transaction failed: {e:#}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(&'static str, Verdict);

    #[async_trait]
    impl Module for Fixed {
        fn name(&self) -> &'static str {
            self.0
        }
        async fn helo(&self, _s: &SessionInfo) -> Verdict {
            self.1.clone()
        }
    }

    fn info() -> SessionInfo {
        SessionInfo::new(
            "192.0.2.1:4000".parse().unwrap(),
            "192.0.2.2:25".parse().unwrap(),
        )
    }

    #[tokio::test]
    async fn first_decisive_verdict_wins_and_delays_add_up() {
        let p = Pipeline::new(vec![
            Arc::new(Fixed("slow", Verdict::Delay(Duration::from_secs(2)))),
            Arc::new(Fixed("none", Verdict::Continue)),
            Arc::new(Fixed("slow2", Verdict::Delay(Duration::from_secs(3)))),
            Arc::new(Fixed(
                "judge",
                Verdict::Reject(Reply::new(550, "5.7.1", "no")),
            )),
            Arc::new(Fixed("never", Verdict::Accept)),
        ]);
        let s = info();
        let d = p.run(|m| m.helo(&s)).await;
        assert_eq!(d.module, Some("judge"));
        assert_eq!(d.delay, Duration::from_secs(5));
        assert!(matches!(d.verdict, Verdict::Reject(r) if r.code == 550));
    }

    #[tokio::test]
    async fn all_continue_means_no_decider() {
        let p = Pipeline::new(vec![Arc::new(Fixed("a", Verdict::Continue))]);
        let s = info();
        let d = p.run(|m| m.helo(&s)).await;
        assert_eq!(
            d,
            Decision {
                verdict: Verdict::Continue,
                module: None,
                delay: Duration::ZERO,
                rewrite: None
            }
        );
    }
}
