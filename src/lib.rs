//! sponts — a modular SMTP gateway in front of an organisation's mail server.
//!
//! Map of the crate, in the order a message meets it:
//! - [`server`]: listeners, connection limits, shutdown; one session per connection.
//! - [`smtp`]: the protocol — [`smtp::conn`] (buffered lines with limits), [`smtp::command`]
//!   (parser), [`address`] (strict envelope syntax; a leaf the config uses too), [`smtp::data`]
//!   (DATA and smuggling defence), [`smtp::session`] (the state machine, the only writer of replies),
//!   [`smtp::client`] (the backend side), [`smtp::tls`], [`smtp::received`], [`smtp::reply`],
//!   [`smtp::tarpit`] (slow replies for suspicious clients), [`smtp::strip`] (forged verdicts).
//! - [`pipeline`]: the module contract — hooks per SMTP phase returning verdicts, and the
//!   transaction record every module sees at the end.
//! - [`modules`]: the modules sponts ships (`access`, `virus`, `uce`, `backup`, `journal`);
//!   [`scanners`]: calls and latencies of the scanners they use (clamd, rspamd, spamd).
//! - [`storage`]: one store API over SQLite and PostgreSQL, with migrations.
//! - [`queue`]: the runner that drains mail queued while the backend was down (DSNs on refusal);
//!   [`pop3`]: emergency access to that mail over POP3; [`imap`]: the archive (and that mail)
//!   read-only in any IMAP client.
//! - [`archive`]: the kept mail sealed (signed daily Merkle roots, verification), purged by
//!   retention rules except under legal hold, and taken out (export as mbox or a zip of `.eml`);
//!   [`replay`]: a kept message delivered again; [`digest`]: the "held back for you" mail and its
//!   signed links; [`feedback`]: people's "Spam" / "Not spam" clicks and `learn --from-journal`;
//!   [`auth`]: passwords; [`twofactor`]: the second factor (TOTP, recovery codes);
//!   [`directory`]: who may sign in (local accounts, LDAP /
//!   Active Directory, the mail server), the one check behind every login.
//! - [`outbound`]: the organisation's mail to the internet — [`outbound::deliver`] (MX delivery,
//!   STARTTLS, DANE and MTA-STS decided in one place).
//! - [`dkim`]: DKIM signatures on outgoing mail — keys in the database, their rotation.
//! - [`intercept`]: lawful interception — orders, copies of a target's events recorded durably
//!   and delivered to the agency; [`mailproxy`]: the POP3 and IMAP proxies that see those events.
//! - [`report`]: the Report — figures per hour in SQL, the dashboard's charts and tables, the
//!   report mail; the journal writes its part, a job adds connections, sessions and scanners.
//! - [`web`]: the web UI and JSON API (sessions, CSRF, who may see what).
//! - [`config`]: the TOML config, validated at start with the key named in every error;
//!   [`preflight`]: what only the parts that build things can check of it (module names, CA files).
//! - [`cli`]: the subcommands other than `serve`; [`demo`]: `sponts demo`, the product on sample
//!   mail in front of a stand-in mail server.

pub mod address;
pub mod archive;
pub mod auth;
pub mod base64;
pub mod cli;
pub mod clock;
pub mod config;
pub mod demo;
pub mod digest;
pub mod directory;
pub mod dkim;
pub mod feedback;
pub mod id;
pub mod imap;
pub mod intercept;
pub mod logging;
pub mod mailproxy;
pub mod modules;
pub mod net;
pub mod outbound;
pub mod pipeline;
pub mod pop3;
pub mod preflight;
pub mod queue;
pub mod replay;
pub mod report;
pub mod scanners;
pub mod server;
pub mod smtp;
pub mod storage;
pub mod twofactor;
pub mod web;

/// A running sponts: the SMTP listeners, the web UI and API, and the store they share.
pub struct Running {
    pub smtp: server::Server,
    pub web: Option<web::WebServer>,
    pub pop3: Option<pop3::Pop3Server>,
    /// IMAP on the archive (`archive.imap_listen`, `archive.imaps_listen`).
    pub imap: Option<imap::ImapServer>,
    pub metrics: Option<web::WebServer>,
    /// The POP3 and IMAP proxies in front of the backend's services.
    pub proxies: mailproxy::MailProxies,
    /// The interception orders in effect here.
    pub intercept: std::sync::Arc<intercept::Interception>,
    pub store: storage::Store,
    sampler: std::sync::Arc<report::live::Sampler>,
    certs: std::sync::Arc<smtp::tls::CertSlot>,
    config: config::Config,
}

impl Running {
    /// Applies a new config (SIGHUP): the TLS certificate of every listener, and for new SMTP
    /// sessions everything of the gateway (modules, limits, backend, domains). Sessions in flight
    /// finish as they began. Listener addresses, storage, logging and the web, POP3, queue,
    /// digest, report, metrics, interception and proxy settings take effect at the next restart:
    /// those that changed are returned (and logged). On an error
    /// nothing changes.
    pub async fn reload(&mut self, new: config::Config) -> anyhow::Result<Vec<&'static str>> {
        let old = &self.config;
        let pending: Vec<&'static str> = [
            (
                "smtp.listen",
                format!("{:?}", old.smtp.listen) != format!("{:?}", new.smtp.listen),
            ),
            (
                "storage",
                format!("{:?}", old.storage) != format!("{:?}", new.storage),
            ),
            ("web", format!("{:?}", old.web) != format!("{:?}", new.web)),
            (
                "pop3",
                format!("{:?}", old.pop3) != format!("{:?}", new.pop3),
            ),
            (
                "archive.imap_listen",
                format!(
                    "{:?}{:?}",
                    old.archive.imap_listen, old.archive.imaps_listen
                ) != format!(
                    "{:?}{:?}",
                    new.archive.imap_listen, new.archive.imaps_listen
                ),
            ),
            (
                "queue",
                format!("{:?}", old.queue) != format!("{:?}", new.queue),
            ),
            (
                "digest",
                format!("{:?}", old.digest) != format!("{:?}", new.digest),
            ),
            (
                "report",
                format!("{:?}", old.report) != format!("{:?}", new.report),
            ),
            (
                "metrics",
                format!("{:?}", old.metrics) != format!("{:?}", new.metrics),
            ),
            (
                "intercept",
                format!("{:?}", old.intercept) != format!("{:?}", new.intercept),
            ),
            (
                "pop3_proxy",
                format!("{:?}", old.pop3_proxy) != format!("{:?}", new.pop3_proxy),
            ),
            (
                "imap_proxy",
                format!("{:?}", old.imap_proxy) != format!("{:?}", new.imap_proxy),
            ),
            (
                "directory",
                format!("{:?}", old.directory) != format!("{:?}", new.directory),
            ),
            ("log", format!("{:?}", old.log) != format!("{:?}", new.log)),
        ]
        .into_iter()
        .filter_map(|(key, changed)| changed.then_some(key))
        .collect();
        // Everything that can fail, before anything changes.
        preflight::check(&new).map_err(|e| anyhow::anyhow!("{e}"))?;
        let pipeline = modules::build(&new, &self.store)?;
        let certs = smtp::tls::CertSlot::load(&new)?;
        self.smtp.reload(new.clone(), pipeline, &certs)?;
        self.certs.replace_with(&certs);
        for key in &pending {
            tracing::warn!("{key}: changed; takes effect at the next restart");
        }
        self.config = new;
        Ok(pending)
    }

    /// Stops accepting, lets transactions in flight finish (up to `grace`), closes the store.
    pub async fn stop(self, grace: std::time::Duration) {
        if let Some(w) = self.web {
            w.stop();
        }
        if let Some(p) = self.pop3 {
            p.stop().await;
        }
        if let Some(i) = self.imap {
            i.stop().await;
        }
        if let Some(m) = self.metrics {
            m.stop();
        }
        self.proxies.stop().await;
        self.smtp.shutdown(grace).await;
        // Copies of the last transactions and retrievals are recorded before the store closes
        // (a recording retries for about 6 s at most).
        if !self
            .intercept
            .settle(std::time::Duration::from_secs(10))
            .await
        {
            tracing::error!("interception copies were still being recorded at shutdown");
        }
        // The last minute's live figures.
        if let Err(e) = report::sample(&self.config, &self.store, &self.sampler).await {
            tracing::warn!("report figures not written at shutdown: {e:#}");
        }
        self.store.close().await;
    }
}

/// Starts sponts on a config: opens storage, builds the pipeline, binds the listeners.
pub async fn start(config: config::Config) -> anyhow::Result<Running> {
    preflight::check(&config).map_err(|e| anyhow::anyhow!("{e}"))?;
    let store = storage::Store::open(&config.storage.database_location()).await?;
    let pipeline = modules::build(&config, &store)?;
    let certs = smtp::tls::CertSlot::load(&config)?;
    tokio::spawn(certs.clone().renewal_job());
    let web = if config.web.enabled {
        Some(web::start(config.clone(), store.clone(), &certs).await?)
    } else {
        None
    };
    if config.digest.enabled {
        tokio::spawn(digest::job(config.clone(), store.clone()));
    }
    if config.directory.any() {
        tokio::spawn(directory::job(config.clone(), store.clone()));
    }
    tokio::spawn(archive::job(config.clone(), store.clone()));
    let health = std::sync::Arc::new(
        queue::health::BackendHealth::load(store.clone(), server::node_name(&config)).await,
    );
    if config.queue.enabled {
        tokio::spawn(queue::runner(config.clone(), store.clone(), health.clone()));
    }
    tokio::spawn(outbound::deliver::runner::run(
        config.clone(),
        store.clone(),
    ));
    if config.outbound_delivery.tls_reports {
        tokio::spawn(outbound::deliver::tls_report::job(
            config.clone(),
            store.clone(),
        ));
    }
    let intercept = intercept::Interception::start(&config, store.clone()).await?;
    if config.dkim.enabled {
        tokio::spawn(dkim::activation::job(
            store.clone(),
            config.dkim.clone(),
            config.outbound_delivery.resolver,
        ));
    }
    let pop3 = if config.pop3.enabled {
        Some(pop3::start(config.clone(), store.clone(), &certs, intercept.clone()).await?)
    } else {
        None
    };
    let imap = if config.archive.imap_enabled() {
        Some(imap::start(config.clone(), store.clone(), &certs, intercept.clone()).await?)
    } else {
        None
    };
    let metrics = match config.metrics.listen {
        Some(addr) => Some(web::metrics::serve(addr, config.clone(), store.clone()).await?),
        None => None,
    };
    let sampler = std::sync::Arc::new(report::live::Sampler::default());
    tokio::spawn(report::job(config.clone(), store.clone(), sampler.clone()));
    let report_config = config.clone();
    let proxies = mailproxy::start(&config, &certs, intercept.clone()).await?;
    let smtp = server::Server::start(
        config,
        pipeline,
        store.clone(),
        &certs,
        intercept.clone(),
        health,
    )
    .await?;
    Ok(Running {
        smtp,
        web,
        pop3,
        imap,
        metrics,
        proxies,
        intercept,
        store,
        sampler,
        certs,
        config: report_config,
    })
}
