//! IMAP access to the archive (RFC 3501 IMAP4rev1, read-only): every person sees their kept
//! mail as folders, `Archive/YEAR` (received) and `Sent/YEAR`, and in `INBOX` the mail queued for
//! them while the mail server is down — emergency access with the mail program they already
//! use. Listeners on `archive.imap_listen` (STARTTLS; sign-in only after it) and
//! `archive.imaps_listen` (implicit TLS), with the certificate of every other listener.
//!
//! Layering, one direction: bytes → [`command`] (parser; [`sequence`], [`search`] keys) →
//! [`session`] (state machine, the only writer of responses) → [`mailbox`] (the folders from
//! the store), [`fetch`] (data items over [`mime`] structure), [`find`] (text search through
//! the journal), [`response`] (how values are written).

mod command;
mod fetch;
mod find;
mod mailbox;
mod mime;
mod response;
mod search;
mod sequence;
mod session;

use anyhow::{Context, Result};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

use crate::config::Config;
use crate::storage::Store;

/// What every IMAP session shares.
pub struct Imap {
    pub config: Config,
    pub store: Store,
    pub tls: tokio_rustls::TlsAcceptor,
    pub throttle: crate::web::auth::Throttle,
    /// The SMTP limits on connections apply here too (overall, per client address).
    pub limits: Arc<crate::server::Limits>,
    /// A target's sign-ins and retrievals here are copied like those through the IMAP proxy.
    pub intercept: Arc<crate::intercept::Interception>,
    pub uidvalidity: u32,
}

pub struct ImapServer {
    /// The STARTTLS listeners' addresses, then those of implicit TLS.
    pub addrs: Vec<SocketAddr>,
    pub tls_addrs: Vec<SocketAddr>,
    sessions: crate::server::Sessions,
}

impl ImapServer {
    /// Stops accepting, ends the sessions and waits until they have stopped.
    pub async fn stop(self) {
        self.sessions.end().await;
    }
}

pub async fn start(
    config: Config,
    store: Store,
    certs: &Arc<crate::smtp::tls::CertSlot>,
    intercept: Arc<crate::intercept::Interception>,
) -> Result<ImapServer> {
    let tls = tokio_rustls::TlsAcceptor::from(crate::smtp::tls::server_config(certs)?);
    let mut listeners = Vec::new();
    for (key, list, implicit) in [
        ("archive.imap_listen", &config.archive.imap_listen, false),
        ("archive.imaps_listen", &config.archive.imaps_listen, true),
    ] {
        for a in list {
            let l = TcpListener::bind(a)
                .await
                .with_context(|| format!("{key}: cannot listen on {a}"))?;
            listeners.push((l, implicit));
        }
    }
    let uidvalidity = store.imap_uidvalidity().await?;
    let addrs = listeners
        .iter()
        .filter(|(_, i)| !i)
        .map(|(l, _)| l.local_addr())
        .collect::<std::io::Result<Vec<_>>>()?;
    let tls_addrs = listeners
        .iter()
        .filter(|(_, i)| *i)
        .map(|(l, _)| l.local_addr())
        .collect::<std::io::Result<Vec<_>>>()?;
    // The dummy hash an unknown name is checked against is made now (see pop3::start).
    tokio::task::spawn_blocking(|| crate::auth::verify_password("", None));
    let shared = Arc::new(Imap {
        config,
        store,
        tls,
        throttle: Default::default(),
        limits: Default::default(),
        intercept,
        uidvalidity,
    });
    let sessions = crate::server::Sessions::default();
    for (l, implicit) in listeners {
        sessions.accept(accept(l, shared.clone(), implicit, sessions.clone()));
    }
    tracing::info!(?addrs, ?tls_addrs, "IMAP archive access listening");
    Ok(ImapServer {
        addrs,
        tls_addrs,
        sessions,
    })
}

async fn accept(
    listener: TcpListener,
    shared: Arc<Imap>,
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
                    b"* BYE [UNAVAILABLE] too many connections\r\n",
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
