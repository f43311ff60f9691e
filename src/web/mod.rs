//! The web UI and the JSON API, served by sponts itself on `web.listen` (HTTP, or HTTPS with the
//! SMTP certificate). Pages are plain HTML rendered on the server with an embedded stylesheet: no
//! script runs anywhere, a strict Content-Security-Policy says so, and nothing comes from a CDN.
//!
//! - [`auth`]: sessions (cookie or bearer token), CSRF, login throttling.
//! - [`policy`]: who may see and replay which message — the one place that decides it.
//! - [`api`]: `/api/v1/...` (docs/openapi.yaml); [`extract`]: its body, query and path
//!   extractors, whose refusals are JSON like every other API error.
//! - [`pages`]: the HTML pages, [`admin`] the admin ones, [`queue`] the queue page, [`report`] the Report's dashboard; [`html`]: layout and escaping; [`message`]: a stored message
//!   taken apart for display; [`senders`]: sender allow and block lists; [`feedback`]: the
//!   "Spam" / "Not spam" clicks; [`filter`]: the learning filter's page, re-checks, layers.
//! - [`twofactor`]: the second factor at sign-in and its enrolment page; [`tokens`]: API tokens.

pub mod admin;
pub mod api;
pub mod archive;
pub mod auth;
pub mod bulk;
pub mod extract;
pub mod feedback;
pub mod filter;
pub mod html;
pub mod intercept;
pub mod links;
pub mod message;
pub mod metrics;
pub mod pages;
pub mod policy;
pub mod queue;
pub mod report;
pub mod senders;
pub mod tokens;
pub mod twofactor;
pub mod uce;

use anyhow::{Context, Result};
use axum::Router;
use axum::http::{HeaderValue, Request, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use std::net::SocketAddr;
use std::sync::Arc;

use crate::config::Config;
use crate::storage::Store;

/// What every handler shares.
#[derive(Clone)]
pub struct Web(Arc<WebInner>);

pub struct WebInner {
    pub config: Config,
    pub store: Store,
    pub throttle: auth::Throttle,
    pub bulk: bulk::Jobs,
    /// Cookies get `Secure` under HTTPS.
    pub https: bool,
}

impl std::ops::Deref for Web {
    type Target = WebInner;
    fn deref(&self) -> &WebInner {
        &self.0
    }
}

impl Web {
    pub fn new(config: Config, store: Store) -> Web {
        let https = config.web.tls;
        Web(Arc::new(WebInner {
            config,
            store,
            throttle: auth::Throttle::default(),
            bulk: bulk::Jobs::default(),
            https,
        }))
    }
}

pub fn router(web: Web) -> Router {
    Router::new()
        .merge(api::routes())
        .merge(pages::routes())
        .merge(admin::routes())
        .merge(links::routes())
        .merge(queue::routes())
        .merge(metrics::routes())
        .merge(uce::routes())
        .merge(senders::routes())
        .merge(feedback::routes())
        .merge(filter::routes())
        .merge(report::routes())
        .merge(intercept::routes())
        .merge(twofactor::routes())
        .merge(tokens::routes())
        .merge(archive::routes())
        .layer(middleware::from_fn(json_api_errors))
        .layer(middleware::from_fn(security_headers))
        .with_state(web)
}

/// An API error without a body of its own — no such path (404), a method the path does not
/// take (405) — is answered as JSON too, like every other API error.
async fn json_api_errors(req: Request<axum::body::Body>, next: Next) -> Response {
    let api = req.uri().path().starts_with("/api/");
    let res = next.run(req).await;
    let status = res.status();
    if !api
        || !(status.is_client_error() || status.is_server_error())
        || res.headers().contains_key(header::CONTENT_TYPE)
    {
        return res;
    }
    let text = match status.as_u16() {
        404 => "no such API path (docs/openapi.yaml lists them)",
        405 => "this path does not take that method (see the Allow header)",
        _ => status.canonical_reason().unwrap_or("error"),
    };
    let allow = res.headers().get(header::ALLOW).cloned();
    let mut json = api::error(status, text);
    if let Some(allow) = allow {
        json.headers_mut().insert(header::ALLOW, allow);
    }
    json
}

/// Headers every response carries; a handler's own Content-Security-Policy (the mail HTML
/// frame) is kept.
async fn security_headers(req: Request<axum::body::Body>, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.entry(header::CONTENT_SECURITY_POLICY).or_insert(HeaderValue::from_static(
        "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-src 'self'; frame-ancestors 'none'; base-uri 'none'",
    ));
    h.entry(header::X_FRAME_OPTIONS)
        .or_insert(HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    res
}

/// Over HTTPS: browsers come back over HTTPS only, for a year (RFC 6797; a browser ignores it
/// while the certificate is not trusted, so a self-signed start stays reachable).
async fn strict_transport_security(req: Request<axum::body::Body>, next: Next) -> Response {
    let mut res = next.run(req).await;
    res.headers_mut().insert(
        header::STRICT_TRANSPORT_SECURITY,
        HeaderValue::from_static("max-age=31536000"),
    );
    res
}

/// A running web server.
pub struct WebServer {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl WebServer {
    pub fn stop(self) {
        self.task.abort();
    }
}

/// Binds `web.listen` and serves until stopped.
pub async fn start(
    config: Config,
    store: Store,
    certs: &Arc<crate::smtp::tls::CertSlot>,
) -> Result<WebServer> {
    let listener = tokio::net::TcpListener::bind(config.web.listen)
        .await
        .with_context(|| format!("web.listen: cannot listen on {}", config.web.listen))?;
    let addr = listener.local_addr()?;
    let tls = if config.web.tls {
        Some(tokio_rustls::TlsAcceptor::from(
            crate::smtp::tls::server_config(certs)?,
        ))
    } else {
        None
    };
    let web = Web::new(config, store.clone());
    let mut app = router(web);
    if tls.is_some() {
        app = app.layer(middleware::from_fn(strict_transport_security));
    }
    let app = app.into_make_service_with_connect_info::<Peer>();
    tokio::spawn(expire_sessions(store));
    let task = match tls {
        None => tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        }),
        Some(acceptor) => {
            let tls = TlsListener::new(listener, acceptor)?;
            tokio::spawn(async move {
                let _ = axum::serve(tls, app).await;
            })
        }
    };
    tracing::info!(%addr, "web UI and API listening");
    Ok(WebServer { addr, task })
}

async fn expire_sessions(store: Store) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(600));
    loop {
        tick.tick().await;
        let _ = store.delete_expired_sessions().await;
    }
}

/// The client's address, as handlers see it (over plain TCP or TLS).
#[derive(Clone, Copy, Debug)]
pub struct Peer(pub SocketAddr);

impl
    axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, tokio::net::TcpListener>>
    for Peer
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, tokio::net::TcpListener>) -> Peer {
        Peer(*stream.remote_addr())
    }
}

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, TlsListener>> for Peer {
    fn connect_info(stream: axum::serve::IncomingStream<'_, TlsListener>) -> Peer {
        Peer(*stream.remote_addr())
    }
}

/// TLS in front of axum. A background task accepts TCP connections and runs each handshake in a
/// task of its own (bounded in time), so a client that connects and says nothing holds up no one.
pub struct TlsListener {
    ready: tokio::sync::mpsc::Receiver<(
        tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
        SocketAddr,
    )>,
    addr: SocketAddr,
}

impl TlsListener {
    fn new(
        tcp: tokio::net::TcpListener,
        acceptor: tokio_rustls::TlsAcceptor,
    ) -> std::io::Result<TlsListener> {
        let addr = tcp.local_addr()?;
        let (tx, ready) = tokio::sync::mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                let (stream, peer) = match tcp.accept().await {
                    Ok(a) => a,
                    Err(_) => {
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    if let Ok(Ok(tls)) = tokio::time::timeout(
                        std::time::Duration::from_secs(10),
                        acceptor.accept(stream),
                    )
                    .await
                    {
                        let _ = tx.send((tls, peer)).await;
                    }
                });
            }
        });
        Ok(TlsListener { ready, addr })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(conn) => conn,
            // The accepting task is gone (it never ends on its own): wait for the server to stop.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.addr)
    }
}
