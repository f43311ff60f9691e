//! sponts — a modular SMTP gateway in front of an organisation's mail server.
//!
//! Map of the crate, in the order a message meets it:
//! - [`server`]: listeners, connection limits, shutdown; one session per connection.
//! - [`smtp`]: the protocol — [`smtp::conn`] (buffered lines with limits), [`smtp::command`]
//!   (parser), [`smtp::address`] (strict envelope syntax), [`smtp::data`] (DATA and
//!   smuggling defence), [`smtp::session`] (the state machine, the only writer of replies),
//!   [`smtp::client`] (the backend side), [`smtp::tls`], [`smtp::received`], [`smtp::reply`],
//!   [`smtp::tarpit`] (slow replies for suspicious clients), [`smtp::strip`] (forged verdicts).
//! - [`pipeline`]: the module contract — hooks per SMTP phase returning verdicts, and the
//!   transaction record every module sees at the end.
//! - [`modules`]: the modules sponts ships (`access`, `virus`, `uce`, `backup`, `journal`);
//!   [`scanners`]: calls and latencies of the scanners they use (clamd, rspamd, spamd).
//! - [`storage`]: one store API over SQLite and PostgreSQL, with migrations.
//! - [`queue`]: the runner that drains mail queued while the backend was down (DSNs on refusal);
//!   [`pop3`]: emergency access to that mail over POP3.
//! - [`replay`]: a kept message delivered again; [`digest`]: the "held back for you" mail and its
//!   signed links; [`auth`]: passwords.
//! - [`report`]: the Report — figures per hour in SQL, the dashboard's charts and tables, the
//!   report mail; the journal writes its part, a job adds connections, sessions and scanners.
//! - [`web`]: the web UI and JSON API (sessions, CSRF, who may see what).
//! - [`config`]: the TOML config, validated at start with the key named in every error.
//! - [`cli`]: the subcommands other than `serve`.

pub mod auth;
pub mod base64;
pub mod cli;
pub mod clock;
pub mod config;
pub mod digest;
pub mod id;
pub mod logging;
pub mod modules;
pub mod net;
pub mod pipeline;
pub mod pop3;
pub mod queue;
pub mod replay;
pub mod report;
pub mod scanners;
pub mod server;
pub mod smtp;
pub mod storage;
pub mod web;

/// A running sponts: the SMTP listeners, the web UI and API, and the store they share.
pub struct Running {
    pub smtp: server::Server,
    pub web: Option<web::WebServer>,
    pub pop3: Option<pop3::Pop3Server>,
    pub metrics: Option<web::WebServer>,
    pub store: storage::Store,
    sampler: std::sync::Arc<report::live::Sampler>,
    config: config::Config,
}

impl Running {
    /// Stops accepting, lets transactions in flight finish (up to `grace`), closes the store.
    pub async fn stop(self, grace: std::time::Duration) {
        if let Some(w) = self.web {
            w.stop();
        }
        if let Some(p) = self.pop3 {
            p.stop();
        }
        if let Some(m) = self.metrics {
            m.stop();
        }
        self.smtp.shutdown(grace).await;
        // The last minute's live figures.
        if let Err(e) = report::sample(&self.config, &self.store, &self.sampler).await {
            tracing::warn!("report figures not written at shutdown: {e:#}");
        }
        self.store.close().await;
    }
}

/// Starts sponts on a config: opens storage, builds the pipeline, binds the listeners.
pub async fn start(config: config::Config) -> anyhow::Result<Running> {
    let store = storage::Store::open(&config.storage.database_location()).await?;
    let pipeline = modules::build(&config, &store)?;
    let web = if config.web.enabled { Some(web::start(config.clone(), store.clone()).await?) } else { None };
    if config.digest.enabled {
        tokio::spawn(digest::job(config.clone(), store.clone()));
    }
    if config.queue.enabled {
        tokio::spawn(queue::runner(config.clone(), store.clone()));
    }
    let pop3 = if config.pop3.enabled { Some(pop3::start(config.clone(), store.clone()).await?) } else { None };
    let metrics = match config.report.metrics_listen {
        Some(addr) => Some(web::metrics::serve(addr, config.clone(), store.clone()).await?),
        None => None,
    };
    let sampler = std::sync::Arc::new(report::live::Sampler::default());
    tokio::spawn(report::job(config.clone(), store.clone(), sampler.clone()));
    let report_config = config.clone();
    let smtp = server::Server::start(config, pipeline, store.clone()).await?;
    Ok(Running { smtp, web, pop3, metrics, store, sampler, config: report_config })
}
