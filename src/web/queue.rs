//! The admin's queue page: whether sponts is in queue mode, what waits for the backend (overdue
//! mail marked), and "retry now".

use axum::Router;
use axum::extract::{Form, State};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use super::Web;
use super::auth::PageViewer;
use super::html::{Notice, count, esc, page, when};

pub fn routes() -> Router<Web> {
    Router::new()
        .route("/admin/queue", get(show))
        .route("/admin/queue/retry", post(retry))
        .route("/admin/queue/deliver", post(deliver))
        .route("/admin/queue/release", post(release))
        .route("/admin/queue/lock", post(lock))
}

async fn show(
    State(web): State<Web>,
    PageViewer(v): PageViewer,
    axum::extract::Query(n): axum::extract::Query<Notice>,
) -> Response {
    if !v.is_admin() {
        return (
            axum::http::StatusCode::FORBIDDEN,
            Html(page(
                "Forbidden",
                Some(&v),
                r#"<div class="notice bad">This page is for administrators.</div>"#,
            )),
        )
            .into_response();
    }
    let queue = web.store.queue_list(None).await.unwrap_or_default();
    let events = web.store.events(10).await.unwrap_or_default();
    let max_age = web.config.queue.max_age.0.as_micros() as i64;
    let now = crate::clock::now_us();
    let latest = web.store.latest_queue_mode().await.ok().flatten();
    let mode = match latest.as_ref() {
        Some(e) if e.kind == "queue_mode_on" => format!(r#"<div class="notice bad" id="queue-mode">Queue mode since {}: the mail server is not answering ({}).</div>"#, when(e.time_us), esc(&e.detail)),
        _ => r#"<div class="notice ok" id="queue-mode">The mail server answers: mail goes straight through.</div>"#.to_string(),
    };
    let csrf = esc(v.csrf.as_deref().unwrap_or(""));
    let notice = n.html();
    let rows: String = queue
        .iter()
        .map(|q| {
            let overdue = if now - q.time_us > max_age { r#" <span class="badge refused">overdue</span>"# } else { "" };
            let overdue = if q.held.is_empty() {
                overdue.to_string()
            } else {
                format!(
                    r#"{overdue} <span class="badge refused" title="{reason}">held</span><form method="post" action="/admin/queue/release"><input type="hidden" name="csrf" value="{csrf}"><input type="hidden" name="id" value="{id}"><button class="secondary">Release</button></form><form method="post" action="/admin/queue/lock"><input type="hidden" name="csrf" value="{csrf}"><input type="hidden" name="id" value="{id}"><button class="secondary">Lock sender</button></form>"#,
                    reason = esc(&q.held),
                    id = esc(&q.id)
                )
            };
            format!(
                r#"<tr><td class="small">{id}{overdue}</td><td class="small">{at}</td><td>{from}</td><td>{to}</td><td>{tries}</td><td class="small">{next}</td><td class="small">{reply}</td><td><form method="post" action="/admin/queue/retry"><input type="hidden" name="csrf" value="{csrf}"><input type="hidden" name="id" value="{id}"><button class="secondary">Retry</button></form></td></tr>"#,
                id = esc(&q.id),
                at = when(q.time_us),
                from = esc(if q.sender.is_empty() { "<>" } else { &q.sender }),
                to = esc(&q.pending.join(", ")),
                tries = q.attempts,
                next = when(q.next_attempt_us),
                reply = esc(&q.last_reply),
            )
        })
        .collect();
    let table = if queue.is_empty() {
        r#"<div class="card muted" id="queue-empty">The queue is empty.</div>"#.to_string()
    } else {
        format!(
            r#"<table><thead><tr><th>Id</th><th>Queued</th><th>From</th><th>Waiting for</th><th>Tries</th><th>Next try</th><th>Last answer</th><th></th></tr></thead><tbody>{rows}</tbody></table>
<form class="row" method="post" action="/admin/queue/retry"><input type="hidden" name="csrf" value="{csrf}"><button type="submit">Retry all now</button></form>
<h2>Deliver to another host</h2><form class="card row" method="post" action="/admin/queue/deliver"><input type="hidden" name="csrf" value="{csrf}"><div><label for="qid">Message id</label><input id="qid" name="id" required></div><div><label for="host">Host (HOST:PORT), e.g. a standby mail server</label><input id="host" name="host" required></div><div><button type="submit" class="secondary">Deliver now</button></div></form>"#
        )
    };
    let outbound = outbound_by_destination(&web.store.mx_destinations().await.unwrap_or_default());
    let ev: String = events.iter().map(|e| format!("<tr><td class=\"small\">{}</td><td>{}</td><td>{}</td><td class=\"small\">{}</td></tr>", when(e.time_us), esc(&e.node), esc(&e.kind), esc(&e.detail))).collect();
    let held = queue.iter().filter(|q| !q.held.is_empty()).count();
    let held = if held > 0 {
        format!(
            r#"<div class="notice bad" id="outbound-held">{} held: outbound mail that looks like a compromised account's. Nothing of it is sent until released; "Lock sender" refuses that sender's outbound mail (5.7.1) until unlocked (<code>sponts outbound unlock</code>).</div>"#,
            count(held as i64, "message is", "messages are")
        )
    } else {
        String::new()
    };
    let body = format!(
        r#"<h1>Queue</h1>{notice}{held}{mode}<p class="muted" id="queue-count">{} for the mail server.</p>{table}{outbound}<h2>Events</h2><table><tbody>{ev}</tbody></table>"#,
        count(queue.len() as i64, "message waits", "messages wait")
    );
    Html(page("Queue", Some(&v), &body)).into_response()
}

#[derive(Deserialize)]
struct RetryForm {
    #[serde(default)]
    csrf: String,
    id: Option<String>,
}

async fn retry(
    State(web): State<Web>,
    PageViewer(v): PageViewer,
    Form(f): Form<RetryForm>,
) -> Response {
    if !v.is_admin() || v.check_csrf(Some(&f.csrf)).is_err() {
        return axum::http::StatusCode::FORBIDDEN.into_response();
    }
    let _ = web
        .store
        .retry_now(f.id.as_deref().filter(|s| !s.is_empty()))
        .await;
    let _ = web
        .store
        .mx_retry_now(f.id.as_deref().filter(|s| !s.is_empty()))
        .await;
    Redirect::to("/admin/queue").into_response()
}

#[derive(Deserialize)]
struct HeldForm {
    #[serde(default)]
    csrf: String,
    id: String,
}

/// Releases a held message: it is delivered like any other.
async fn release(
    State(web): State<Web>,
    PageViewer(v): PageViewer,
    Form(f): Form<HeldForm>,
) -> Response {
    if !v.is_admin() || v.check_csrf(Some(&f.csrf)).is_err() {
        return axum::http::StatusCode::FORBIDDEN.into_response();
    }
    let to = match web.store.queue_release(f.id.trim()).await {
        Ok(true) => format!(
            "msg={}",
            super::html::url(&format!("{} released", f.id.trim()))
        ),
        Ok(false) => format!(
            "error={}",
            super::html::url(&format!("{} is not held", f.id.trim()))
        ),
        Err(e) => format!("error={}", super::html::url(&e.to_string())),
    };
    Redirect::to(&format!("/admin/queue?{to}")).into_response()
}

/// Locks the sender of a held message out of outbound mail (the message stays held).
async fn lock(
    State(web): State<Web>,
    PageViewer(v): PageViewer,
    Form(f): Form<HeldForm>,
) -> Response {
    if !v.is_admin() || v.check_csrf(Some(&f.csrf)).is_err() {
        return axum::http::StatusCode::FORBIDDEN.into_response();
    }
    let q = web
        .store
        .queue_list(Some(f.id.trim()))
        .await
        .ok()
        .and_then(|mut l| l.pop());
    let to = match q {
        Some(q) if !q.sender.is_empty() => match web
            .store
            .lock_sender(
                &q.sender,
                &format!("locked from held message {}", q.id),
                &format!("web:{}", v.user.address),
            )
            .await
        {
            Ok(()) => format!(
                "msg={}",
                super::html::url(&format!("{} is locked for outbound mail", q.sender))
            ),
            Err(e) => format!("error={}", super::html::url(&e.to_string())),
        },
        _ => format!(
            "error={}",
            super::html::url(&format!("{} is not in the queue", f.id.trim()))
        ),
    };
    Redirect::to(&format!("/admin/queue?{to}")).into_response()
}

#[derive(Deserialize)]
struct DeliverForm {
    #[serde(default)]
    csrf: String,
    id: String,
    host: String,
}

async fn deliver(
    State(web): State<Web>,
    PageViewer(v): PageViewer,
    Form(f): Form<DeliverForm>,
) -> Response {
    if !v.is_admin() || v.check_csrf(Some(&f.csrf)).is_err() {
        return axum::http::StatusCode::FORBIDDEN.into_response();
    }
    let to =
        match crate::queue::deliver_to(&web.config, &web.store, f.id.trim(), f.host.trim()).await {
            Ok(reply) => format!(
                "msg={}",
                super::html::url(&format!("{}: {reply}", f.id.trim()))
            ),
            Err(e) => format!("error={}", super::html::url(&e.to_string())),
        };
    Redirect::to(&format!("/admin/queue?{to}")).into_response()
}

/// Outbound mail waiting for its destinations, each with its last error.
fn outbound_by_destination(destinations: &[crate::storage::MxDestination]) -> String {
    if destinations.is_empty() {
        return r#"<h2>Outbound</h2><div class="card muted" id="outbound-empty">No outbound mail waits.</div>"#.to_string();
    }
    let rows: String = destinations
        .iter()
        .map(|d| {
            format!(
                r#"<tr class="outbound-destination"><td>{domain}</td><td>{msgs}</td><td>{rcpts}</td><td>{tries}</td><td class="small">{oldest}</td><td class="small">{next}</td><td class="small">{reply}</td></tr>"#,
                domain = esc(&d.domain),
                msgs = d.messages,
                rcpts = d.recipients,
                tries = d.attempts,
                oldest = when(d.oldest_us),
                next = when(d.next_attempt_us),
                reply = esc(&d.last_reply),
            )
        })
        .collect();
    format!(
        r#"<h2>Outbound, by destination</h2><table id="outbound"><thead><tr><th>Destination</th><th>Messages</th><th>Recipients</th><th>Tries</th><th>Oldest</th><th>Next try</th><th>Last error</th></tr></thead><tbody>{rows}</tbody></table>"#
    )
}
