//! POP3 emergency access (RFC 1939, with CAPA RFC 2449, STLS RFC 2595, AUTH PLAIN RFC 5034):
//! while the mail server is down, users read their new mail with any mail program. Listeners on
//! `pop3.listen` (STLS) and optionally `pop3.tls_listen` (implicit TLS).

mod session;

use anyhow::{Context, Result};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

use crate::config::Config;
use crate::storage::{MailboxEntry, Store, User};

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

/// How a mail program's sign-in ended (POP3 here, IMAP on the archive).
pub enum SignIn {
    /// Too many failed sign-ins from this address or for this name: not even checked.
    Blocked,
    /// Wrong name or password, or an account without mail (an interception officer).
    Refused,
    Account(User),
}

/// The web UI's check (local accounts and the directory) for a mail program, with the login
/// throttle. Names that exist and names that do not are throttled alike (by address and by
/// name), answered alike, and take as long (an unknown name is checked against a dummy hash):
/// nothing here tells which accounts exist. A second factor is not asked (mail programs cannot
/// give one): docs/operations.md.
pub async fn sign_in(
    store: &Store,
    config: &Config,
    throttle: &crate::web::auth::Throttle,
    ip: std::net::IpAddr,
    user: &str,
    password: &str,
) -> SignIn {
    if throttle.blocked(ip, user).is_some() {
        return SignIn::Blocked;
    }
    let _attempt = throttle.failed(ip, user);
    let account = crate::directory::sign_in(store, config, user, password)
        .await
        .ok()
        .flatten();
    // Interception accounts have no mailbox: the same answer as a wrong password.
    match account.filter(|a| a.role != crate::storage::Role::Interception) {
        Some(a) => {
            throttle.succeeded(ip, user);
            SignIn::Account(a)
        }
        None => SignIn::Refused,
    }
}

/// The bytes of a message of a POP3 view: from the queue (with sponts' Received: header) or
/// the backup; a queued message delivered (and gone from the queue) since is read from the
/// backup. None: it cannot be read now.
pub async fn message_bytes(store: &Store, e: &MailboxEntry) -> Option<Vec<u8>> {
    let body = if e.queued {
        match store.queued_body(&e.uid).await {
            Ok(Some(z)) => crate::modules::backup::unpack(&z, e.size).ok(),
            _ => None,
        }
    } else {
        None
    };
    match body {
        Some(b) => Some(b),
        None => store
            .body(&e.uid)
            .await
            .ok()
            .flatten()
            .and_then(|b| crate::modules::backup::decompress(&b).ok()),
    }
}
