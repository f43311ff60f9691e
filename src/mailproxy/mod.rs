//! sponts in front of the backend's POP3 and IMAP services (`[pop3_proxy]`, `[imap_proxy]`):
//! TLS (STLS/STARTTLS or implicit) ends at sponts with its certificate and is made again towards
//! the backend. Until a login succeeds, sponts reads the dialogue to learn who logs in; then a
//! session that is no interception target is relayed byte for byte, unread. A target's session
//! stays read: its logins, the messages it retrieves (POP3 RETR, IMAP FETCH of bodies) and
//! uploads (IMAP APPEND) are handed to [`crate::intercept`], after they were relayed.
//!
//! The backend learns each client's address (IMAP `ID` with `x-originating-ip`, POP3 `XCLIENT`,
//! as Dovecot takes them from its `login_trusted_networks`), so its per-address defences judge
//! the client, not sponts; a client's own attempt at either is never passed on. sponts also
//! refuses logins itself from an address with too many failures ([`throttle`]), and every
//! session leaves one log line: client, login, result, bytes each way.

mod compress;
mod imap;
mod meter;
mod pop3;
mod stream;
pub mod throttle;

use anyhow::{Context, Result};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};

use crate::config::{BackendTls, Config, MailProxyConfig};
use crate::intercept::Interception;
use stream::Stream;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Pop3,
    Imap,
}

impl Protocol {
    fn name(self) -> &'static str {
        match self {
            Protocol::Pop3 => "pop3",
            Protocol::Imap => "imap",
        }
    }
}

/// What every proxy session shares.
pub struct Shared {
    pub protocol: Protocol,
    pub config: MailProxyConfig,
    pub tls: tokio_rustls::TlsAcceptor,
    pub backend_tls: Arc<rustls::ClientConfig>,
    pub intercept: Arc<Interception>,
    pub limits: Arc<crate::server::Limits>,
    pub max_connections: usize,
    pub max_per_ip: usize,
    /// Failed logins per client address.
    pub throttle: throttle::Throttle,
}

/// The bound proxy listeners.
#[derive(Default)]
pub struct MailProxies {
    pub pop3: Vec<SocketAddr>,
    pub pop3_tls: Vec<SocketAddr>,
    pub imap: Vec<SocketAddr>,
    pub imap_tls: Vec<SocketAddr>,
    sessions: crate::server::Sessions,
}

impl MailProxies {
    /// Stops accepting, ends the sessions and waits until they have stopped.
    pub async fn stop(self) {
        self.sessions.end().await;
    }
}

/// Binds the configured proxy listeners (none when neither proxy is configured).
pub async fn start(
    config: &Config,
    certs: &Arc<crate::smtp::tls::CertSlot>,
    intercept: Arc<Interception>,
) -> Result<MailProxies> {
    let mut out = MailProxies::default();
    let limits = Arc::new(crate::server::Limits::default());
    for (protocol, section, cfg) in [
        (Protocol::Pop3, "pop3_proxy", &config.pop3_proxy),
        (Protocol::Imap, "imap_proxy", &config.imap_proxy),
    ] {
        if !cfg.enabled() {
            continue;
        }
        let shared = Arc::new(Shared {
            protocol,
            config: cfg.clone(),
            tls: tokio_rustls::TlsAcceptor::from(crate::smtp::tls::server_config(certs)?),
            backend_tls: crate::smtp::tls::backend_client_config(cfg.backend_ca.as_deref()),
            intercept: intercept.clone(),
            limits: limits.clone(),
            max_connections: config.smtp.max_connections,
            max_per_ip: config.smtp.max_connections_per_ip,
            throttle: throttle::Throttle::new(cfg.max_failed_logins, cfg.failed_login_block.0),
        });
        for (addrs, implicit, key) in [
            (&cfg.listen, false, "listen"),
            (&cfg.tls_listen, true, "tls_listen"),
        ] {
            for addr in addrs {
                let listener = TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("{section}.{key}: cannot listen on {addr}"))?;
                let bound = listener.local_addr()?;
                match (protocol, implicit) {
                    (Protocol::Pop3, false) => out.pop3.push(bound),
                    (Protocol::Pop3, true) => out.pop3_tls.push(bound),
                    (Protocol::Imap, false) => out.imap.push(bound),
                    (Protocol::Imap, true) => out.imap_tls.push(bound),
                }
                out.sessions.accept(accept(
                    listener,
                    shared.clone(),
                    implicit,
                    out.sessions.clone(),
                ));
            }
        }
        tracing::info!(backend = %cfg.backend, "{} proxy listening", protocol.name());
    }
    Ok(out)
}

async fn accept(
    listener: TcpListener,
    shared: Arc<Shared>,
    implicit_tls: bool,
    sessions: crate::server::Sessions,
) {
    loop {
        let Ok((tcp, peer)) = listener.accept().await else {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            continue;
        };
        let Some(slot) = shared
            .limits
            .take(peer.ip(), shared.max_connections, shared.max_per_ip)
        else {
            drop(tcp);
            continue;
        };
        let shared = shared.clone();
        sessions.spawn(async move {
            let _slot = slot;
            let local = tcp.local_addr().unwrap_or(peer);
            session(tcp, peer, local, &shared, implicit_tls).await;
        });
    }
}

/// What a protocol session knows of its connection, and what its log line will say.
pub struct Session {
    pub id: String,
    pub peer: SocketAddr,
    pub local: SocketAddr,
    outcome: std::sync::Mutex<Outcome>,
}

/// The logins a session tried, for its log line.
#[derive(Default)]
struct Outcome {
    /// The name of the last login tried.
    login: String,
    failed: u32,
    throttled: u32,
    logged_in: bool,
    backend_down: bool,
}

impl Outcome {
    fn result(&self) -> &'static str {
        match self {
            Outcome {
                backend_down: true, ..
            } => "backend unreachable",
            Outcome {
                logged_in: true, ..
            } => "logged in",
            Outcome { throttled: 1.., .. } => "throttled",
            Outcome { failed: 1.., .. } => "login failed",
            _ => "no login",
        }
    }
}

/// Runs one client's session and logs it: who, as whom, how it ended, bytes each way.
async fn session(
    tcp: TcpStream,
    peer: SocketAddr,
    local: SocketAddr,
    shared: &Shared,
    implicit_tls: bool,
) {
    let _ = tcp.set_nodelay(true);
    let counts = Arc::new(meter::Counts::default());
    let client = Stream::new(Box::new(meter::Metered::new(tcp, counts.clone())), None);
    let info = Session {
        id: crate::id::new_transaction_id(),
        peer,
        local,
        outcome: Default::default(),
    };
    let started = std::time::Instant::now();
    let end = match run(client, shared, &info, implicit_tls).await {
        Ok(()) => "closed".to_string(),
        Err(e) => format!("{e:#}"),
    };
    let o = info.outcome.lock().expect("outcome lock");
    tracing::info!(
        session = %info.id,
        client = %peer,
        login = ?o.login, // quoted: a name may hold anything, line ends included
        result = o.result(),
        failed_logins = o.failed,
        bytes_from_client = counts.bytes_in(),
        bytes_to_client = counts.bytes_out(),
        seconds = started.elapsed().as_secs(),
        end = %end,
        "{} proxy session",
        shared.protocol.name()
    );
}

async fn run(
    mut client: Stream,
    shared: &Shared,
    info: &Session,
    implicit_tls: bool,
) -> Result<()> {
    if implicit_tls {
        client = client
            .accept_tls(&shared.tls)
            .await
            .context("TLS handshake with the client")?;
    }
    let (mut backend, greeting) = match connect_backend(shared).await {
        Ok(b) => b,
        Err(e) => {
            info.outcome.lock().expect("outcome lock").backend_down = true;
            tracing::warn!(peer = %info.peer, backend = %shared.config.backend, "{} proxy: backend not reachable: {e:#}", shared.protocol.name());
            let refusal: &[u8] = match shared.protocol {
                Protocol::Pop3 => b"-ERR [SYS/TEMP] service not available, try again later\r\n",
                Protocol::Imap => b"* BYE [UNAVAILABLE] service not available, try again later\r\n",
            };
            let _ = client.write(refusal).await;
            return Ok(());
        }
    };
    // The backend answers sponts' own commands here, before the client is heard: bounded like
    // its greeting.
    let wait = std::time::Duration::from_secs(30);
    let greeting = match shared.protocol {
        Protocol::Pop3 => {
            tokio::time::timeout(wait, pop3::forward_client(&mut backend, greeting, info))
                .await
                .context("the backend did not answer")??
        }
        Protocol::Imap => {
            tokio::time::timeout(wait, imap::forward_client(&mut backend, greeting, info))
                .await
                .context("the backend did not answer")??
        }
    };
    let logged_in = match shared.protocol {
        Protocol::Pop3 => pop3::until_login(client, backend, greeting, shared, info).await?,
        Protocol::Imap => imap::until_login(client, backend, greeting, shared, info).await?,
    };
    let Some(LoggedIn {
        client,
        backend,
        login,
    }) = logged_in
    else {
        return Ok(());
    };
    info.outcome.lock().expect("outcome lock").logged_in = true;
    if shared.intercept.orders_for_login(&login).is_empty() {
        // No target: from here on sponts does not read this session.
        client.relay(backend, shared.config.idle_timeout.0).await?;
        return Ok(());
    }
    // An order in effect now or later: the session is read, copies are made while one is in effect.
    match shared.protocol {
        Protocol::Pop3 => pop3::target_session(client, backend, shared, info, &login).await,
        Protocol::Imap => imap::target_session(client, backend, shared, info, &login).await,
    }
}

/// A session whose login succeeded, as whom.
pub struct LoggedIn {
    client: Stream,
    backend: Stream,
    login: String,
}

/// Connects to the backend's service as configured; returns it with its greeting line.
async fn connect_backend(shared: &Shared) -> Result<(Stream, Vec<u8>)> {
    let cfg = &shared.config;
    let wait = std::time::Duration::from_secs(30);
    let tcp = tokio::time::timeout(wait, TcpStream::connect(&cfg.backend))
        .await
        .context("connect timed out")??;
    let _ = tcp.set_nodelay(true);
    let host = crate::net::parse_host_port(&cfg.backend)
        .map(|(h, _)| h)
        .unwrap_or_default();
    let mut backend = Stream::new(Box::new(tcp), None);
    if cfg.backend_tls == BackendTls::Tls {
        backend = backend.connect_tls(&shared.backend_tls, &host).await?;
    }
    let greeting = tokio::time::timeout(wait, backend.line(stream::MAX_LINE))
        .await
        .context("no greeting")??
        .context("closed before the greeting")?;
    if cfg.backend_tls == BackendTls::Starttls {
        let ok = match shared.protocol {
            Protocol::Pop3 => {
                backend.write(b"STLS\r\n").await?;
                let r = backend
                    .line(stream::MAX_LINE)
                    .await?
                    .context("closed at STLS")?;
                r.starts_with(b"+OK")
            }
            Protocol::Imap => {
                backend.write(b"S0 STARTTLS\r\n").await?;
                loop {
                    let r = backend
                        .line(stream::MAX_LINE)
                        .await?
                        .context("closed at STARTTLS")?;
                    if r.starts_with(b"S0 ") {
                        break r.starts_with(b"S0 OK");
                    }
                }
            }
        };
        anyhow::ensure!(ok, "the backend refused STARTTLS");
        backend = backend.connect_tls(&shared.backend_tls, &host).await?;
    }
    Ok((backend, greeting))
}

/// Hands an event to interception, in a task of its own: the session goes on at once, so a
/// target's client waits for neither the compression nor the commit (only ever called for
/// targets, after the data was relayed).
fn intercept(
    shared: &Shared,
    info: &Session,
    tls: Option<String>,
    orders: Vec<crate::storage::intercept::Order>,
    kind: &'static str,
    details: serde_json::Value,
    content: Option<Vec<u8>>,
) {
    let event = crate::intercept::Event {
        time_us: crate::clock::now_us(),
        service: shared.protocol.name(),
        kind,
        client: info.peer,
        server: info.local,
        session: info.id.clone(),
        tls,
        details,
        content: content.map(Arc::new),
    };
    shared.intercept.spawn_record(orders, event);
}

/// What a session does after a login attempt was answered.
enum AfterLogin {
    /// Not logged in: the dialogue goes on.
    Continue,
    /// Logged in, as a user sponts could name.
    LoggedIn,
    /// Logged in, but sponts could not tell as whom: the session is closed.
    Close,
}

/// True when a login from this client must be refused by sponts (too many failures from its
/// address); counted for the session's log line.
fn throttled(shared: &Shared, info: &Session) -> bool {
    let blocked = shared.throttle.blocked(info.peer.ip());
    if blocked {
        info.outcome.lock().expect("outcome lock").throttled += 1;
    }
    blocked
}

/// Records the login (for the log line, the throttle, and a target's copies) and says how the
/// session goes on.
fn after_login(
    shared: &Shared,
    info: &Session,
    tls: Option<String>,
    login: &str,
    success: bool,
    details: serde_json::Value,
) -> AfterLogin {
    {
        let mut o = info.outcome.lock().expect("outcome lock");
        o.login = login.to_string();
        if !success {
            o.failed += 1;
            shared.throttle.failed(info.peer.ip());
        }
    }
    let active = shared.intercept.orders_now(&[login]);
    if !active.is_empty() {
        intercept(shared, info, tls, active, "login", details, None);
    }
    match (success, login.is_empty()) {
        (false, _) => AfterLogin::Continue,
        (true, true) => AfterLogin::Close,
        (true, false) => AfterLogin::LoggedIn,
    }
}

/// SASL mechanisms whose exchange names the user in the clear (sponts must learn who logs in);
/// the others are neither offered nor let through.
fn readable_mechanism(m: &str) -> bool {
    m.eq_ignore_ascii_case("PLAIN") || m.eq_ignore_ascii_case("LOGIN")
}

/// The user a SASL exchange authenticates as: PLAIN's authorization identity, or its
/// authentication identity when that is empty; LOGIN's first answer. `data` are the client's
/// base64 messages in order (the initial response first; `=` and empty ones carry nothing).
fn sasl_user(mechanism: &str, data: &[String]) -> Option<String> {
    let first = data
        .iter()
        .map(|d| d.trim())
        .find(|d| !d.is_empty() && *d != "=")?;
    let text = String::from_utf8_lossy(&crate::base64::decode(first)?).into_owned();
    match mechanism.to_ascii_uppercase().as_str() {
        "PLAIN" => {
            let mut parts = text.split('\0');
            let (authz, authc) = (parts.next()?, parts.next()?);
            Some(if authz.is_empty() { authc } else { authz }.to_string())
        }
        "LOGIN" => Some(text),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sasl_names_the_user_who_gets_the_mailbox() {
        let b64 = |s: &str| crate::base64::encode(s.as_bytes());
        assert_eq!(
            sasl_user("PLAIN", &[b64("\0target\0pw")]).as_deref(),
            Some("target")
        );
        assert_eq!(
            sasl_user("plain", &[b64("target\0master\0pw")]).as_deref(),
            Some("target"),
            "a master user logging in as the target"
        );
        assert_eq!(
            sasl_user("LOGIN", &["=".into(), b64("target"), b64("pw")]).as_deref(),
            Some("target"),
            "an empty initial response"
        );
        assert_eq!(sasl_user("CRAM-MD5", &[b64("target 0123")]), None);
    }
}
