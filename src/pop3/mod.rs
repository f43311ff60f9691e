//! POP3 emergency access (RFC 1939, with CAPA RFC 2449, STLS RFC 2595, AUTH PLAIN RFC 5034):
//! while the mail server is down, users read their new mail with any mail program. Listeners on
//! `pop3.listen` (STLS) and optionally `pop3.tls_listen` (implicit TLS).

mod session;

use anyhow::{Context, Result};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

use crate::config::Config;
use crate::storage::Store;

/// What every POP3 session shares.
pub struct Pop3 {
    pub config: Config,
    pub store: Store,
    pub tls: tokio_rustls::TlsAcceptor,
    pub throttle: crate::web::auth::Throttle,
    /// The SMTP limits on connections apply here too (overall, per client address).
    pub limits: Arc<crate::server::Limits>,
    /// A target's logins and retrievals here are copied like those through the POP3 proxy.
    pub intercept: Arc<crate::intercept::Interception>,
}

pub struct Pop3Server {
    pub addr: SocketAddr,
    pub tls_addr: Option<SocketAddr>,
    sessions: crate::server::Sessions,
}

impl Pop3Server {
    /// Stops accepting, ends the sessions and waits until they have stopped.
    pub async fn stop(self) {
        self.sessions.end().await;
    }
}

pub async fn start(
    config: Config,
    store: Store,
    certs: &std::sync::Arc<crate::smtp::tls::CertSlot>,
    intercept: Arc<crate::intercept::Interception>,
) -> Result<Pop3Server> {
    let tls = tokio_rustls::TlsAcceptor::from(crate::smtp::tls::server_config(certs)?);
    let plain = TcpListener::bind(config.pop3.listen)
        .await
        .with_context(|| format!("pop3.listen: cannot listen on {}", config.pop3.listen))?;
    let addr = plain.local_addr()?;
    let implicit = match config.pop3.tls_listen {
        Some(a) => Some(
            TcpListener::bind(a)
                .await
                .with_context(|| format!("pop3.tls_listen: cannot listen on {a}"))?,
        ),
        None => None,
    };
    let tls_addr = implicit.as_ref().map(|l| l.local_addr()).transpose()?;
    // The dummy hash an unknown name is checked against is made now: made at the first unknown
    // name, that sign-in would take twice as long as a known name's.
    tokio::task::spawn_blocking(|| crate::auth::verify_password("", None));
    let shared = Arc::new(Pop3 {
        config,
        store,
        tls,
        throttle: Default::default(),
        limits: Default::default(),
        intercept,
    });
    let sessions = crate::server::Sessions::default();
    sessions.accept(accept(plain, shared.clone(), false, sessions.clone()));
    if let Some(l) = implicit {
        sessions.accept(accept(l, shared.clone(), true, sessions.clone()));
    }
    tracing::info!(%addr, tls = ?tls_addr, "POP3 emergency access listening");
    Ok(Pop3Server {
        addr,
        tls_addr,
        sessions,
    })
}

async fn accept(
    listener: TcpListener,
    shared: Arc<Pop3>,
    implicit_tls: bool,
    sessions: crate::server::Sessions,
) {
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            continue;
        };
        let smtp = &shared.config.smtp;
        let Some(slot) =
            shared
                .limits
                .take(peer.ip(), smtp.max_connections, smtp.max_connections_per_ip)
        else {
            let mut stream = stream;
            let _ = tokio::time::timeout(
                std::time::Duration::from_secs(5),
                tokio::io::AsyncWriteExt::write_all(
                    &mut stream,
                    b"-ERR [SYS/TEMP] too many connections\r\n",
                ),
            )
            .await;
            continue;
        };
        let shared = shared.clone();
        sessions.spawn(async move {
            session::run(stream, peer, shared, implicit_tls).await;
            drop(slot);
        });
    }
}
