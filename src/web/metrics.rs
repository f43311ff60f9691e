//! `/metrics` in the Prometheus text format: on the web listener for admins (a bearer token of an
//! admin account in the scrape config), and without a login on `metrics.listen` (an
//! address only the monitoring network reaches). The queue and queue mode, this node's
//! connections and sessions, and the scanners' calls and latencies.

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::fmt::Write;

use super::auth::ApiViewer;
use super::{Web, WebServer};

pub fn routes() -> Router<Web> {
    Router::new().route("/metrics", get(metrics))
}

/// `/metrics` alone, without a login, on its own address.
pub async fn serve(
    addr: std::net::SocketAddr,
    config: crate::config::Config,
    store: crate::storage::Store,
) -> anyhow::Result<WebServer> {
    use anyhow::Context;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("metrics.listen: cannot listen on {addr}"))?;
    let addr = listener.local_addr()?;
    let app = Router::new()
        .route("/metrics", get(open_metrics))
        .with_state(Web::new(config, store));
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    tracing::info!(%addr, "metrics listening");
    Ok(WebServer { addr, task })
}

async fn open_metrics(State(web): State<Web>) -> Response {
    respond(&web).await
}

async fn metrics(State(web): State<Web>, ApiViewer(v): ApiViewer) -> Response {
    if !v.is_admin() {
        return super::api::error(StatusCode::FORBIDDEN, "metrics are for administrators");
    }
    respond(&web).await
}

async fn respond(web: &Web) -> Response {
    match render(web).await {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(e) => {
            tracing::error!("metrics failed: {e:#}");
            super::api::error(StatusCode::INTERNAL_SERVER_ERROR, "metrics unavailable")
        }
    }
}

async fn render(web: &Web) -> anyhow::Result<String> {
    let now = crate::clock::now_us();
    let (queued, overdue, oldest) = web
        .store
        .queue_stats(now - web.config.queue.max_age.0.as_micros() as i64)
        .await?;
    let oldest = oldest.map_or(0.0, |t| (now - t) as f64 / 1e6);
    let queue_mode = web
        .store
        .latest_queue_mode()
        .await?
        .is_some_and(|e| e.kind == "queue_mode_on");
    let mut out = String::new();
    let mut gauge = |name: &str, help: &str, value: String| {
        let _ = write!(
            out,
            "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}\n"
        );
    };
    gauge(
        "sponts_queue_messages",
        "Messages waiting in the queue for the backend.",
        queued.to_string(),
    );
    gauge(
        "sponts_queue_overdue_messages",
        "Queued messages older than queue.max_age (an alert, never deleted).",
        overdue.to_string(),
    );
    gauge(
        "sponts_queue_oldest_age_seconds",
        "Age of the oldest queued message.",
        format!("{oldest:.0}"),
    );
    gauge(
        "sponts_outbound_held_messages",
        "Outbound messages held (a compromised account?) until an admin releases them.",
        web.store.queue_held_count().await?.to_string(),
    );
    gauge(
        "sponts_queue_mode",
        "1 while the backend is unreachable and mail is queued.",
        u8::from(queue_mode).to_string(),
    );
    let _ = write!(
        out,
        "# HELP sponts_gateway_events_total Gateway events by kind (queue_mode_on, queue_mode_off, queue_overdue, outbound_held, mx_retry).\n# TYPE sponts_gateway_events_total counter\n"
    );
    for (kind, n) in web.store.event_counts().await? {
        let _ = writeln!(out, "sponts_gateway_events_total{{kind=\"{kind}\"}} {n}");
    }
    let (accepted, refused, open) = crate::report::live::connections();
    let _ = write!(
        out,
        "# HELP sponts_sessions SMTP sessions open now.\n# TYPE sponts_sessions gauge\nsponts_sessions {open}\n"
    );
    let _ = write!(
        out,
        "# HELP sponts_connections_total SMTP connections by result (refused: over the connection limits).\n# TYPE sponts_connections_total counter\nsponts_connections_total{{result=\"accepted\"}} {accepted}\nsponts_connections_total{{result=\"refused\"}} {refused}\n"
    );
    out.push_str(&traffic());
    out.push_str(&crate::scanners::prometheus());
    Ok(out)
}

/// The traffic this process has journaled: messages by class, messages and bytes in and out.
fn traffic() -> String {
    let totals = crate::storage::stats::committed_totals();
    let get = |metric: &str, key: &str| {
        totals
            .get(&(metric.to_string(), key.to_string()))
            .copied()
            .unwrap_or(0)
    };
    let mut out = String::from(
        "# HELP sponts_messages_total Transactions by class (the Report's rates), journaled by this process.\n# TYPE sponts_messages_total counter\n",
    );
    for class in [
        "clean",
        "tagged",
        "spam",
        "virus",
        "discarded",
        "tempfailed",
        "refused",
        "abandoned",
    ] {
        let _ = writeln!(
            out,
            "sponts_messages_total{{class=\"{class}\"}} {}",
            get("class", class)
        );
    }
    for (name, help, metric) in [
        (
            "sponts_received_messages_total",
            "Messages received from clients (DATA complete).",
            "messages_in",
        ),
        (
            "sponts_received_bytes_total",
            "Bytes of the messages received from clients.",
            "bytes_in",
        ),
        (
            "sponts_delivered_messages_total",
            "Messages delivered to the backend (from the queue too), and outbound messages accepted for MX delivery.",
            "messages_out",
        ),
        (
            "sponts_delivered_bytes_total",
            "Bytes of those messages.",
            "bytes_out",
        ),
    ] {
        let _ = write!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}\n",
            get(metric, "")
        );
    }
    out
}
