//! The interception pages, for the interception role only (everyone else: 403): orders (make
//! one, move its end, end it early), each order's copies and their delivery state, and the audit
//! log with its verification and CSV export. Every page view and action is in the audit log.

use axum::Router;
use axum::extract::{Form, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use super::Web;
use super::auth::{PageViewer, Viewer};
use super::html::{Notice, esc, page, url, when};
use crate::intercept::orders;
use crate::storage::Role;
use crate::storage::intercept::{self, Order};

pub fn routes() -> Router<Web> {
    Router::new()
        .route("/intercept", get(list))
        .route("/intercept/orders", post(create))
        .route("/intercept/orders/{id}", get(show))
        .route("/intercept/orders/{id}/until", post(until))
        .route("/intercept/orders/{id}/end", post(end))
        .route("/intercept/audit", get(audit))
        .route("/intercept/audit.csv", get(audit_csv))
}

fn officer_only(v: &Viewer) -> Result<(), Response> {
    if v.user.role == Role::Interception {
        return Ok(());
    }
    Err((
        StatusCode::FORBIDDEN,
        Html(page(
            "Forbidden",
            Some(v),
            r#"<div class="notice bad">These pages are for the interception role.</div>"#,
        )),
    )
        .into_response())
}

fn failed(e: anyhow::Error) -> Response {
    tracing::error!("interception page failed: {e:#}");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        "the store failed; see the log",
    )
        .into_response()
}

fn window(o: &Order) -> String {
    let end = o.ended_us.map_or(o.until_us, |e| e.min(o.until_us));
    format!(
        "{} – {}",
        crate::clock::rfc3339(o.from_us),
        crate::clock::rfc3339(end)
    )
}

fn destination(o: &Order) -> String {
    match &o.deliver_to {
        Some(to) => format!("{} → {to}", o.deliver),
        None => o.deliver.clone(),
    }
}

async fn list(
    State(web): State<Web>,
    PageViewer(v): PageViewer,
    Query(n): Query<Notice>,
) -> Response {
    if let Err(r) = officer_only(&v) {
        return r;
    }
    if let Err(e) = web.store.audit(&v.actor(), "order.list", "").await {
        return failed(e);
    }
    let all = match web.store.orders().await {
        Ok(o) => o,
        Err(e) => return failed(e),
    };
    let now = crate::clock::now_us();
    let rows: String = all
        .iter()
        .map(|o| {
            format!(
                r#"<tr data-order="{id}"><td><a href="/intercept/orders/{id}">{id}</a></td><td>{reference}</td><td>{target}{login}</td><td class="small">{window}</td><td><span class="badge state-{state}">{state}</span></td><td class="small">{dest}</td></tr>"#,
                id = esc(&o.id),
                reference = esc(&o.reference),
                target = esc(&o.target),
                login = o.login.as_deref().map(|l| format!(r#"<div class="small muted">login {}</div>"#, esc(l))).unwrap_or_default(),
                window = esc(&window(o)),
                state = orders::state(o, now),
                dest = esc(&destination(o)),
            )
        })
        .collect();
    let table = if all.is_empty() {
        r#"<div class="card muted">No orders.</div>"#.to_string()
    } else {
        format!(
            r#"<table id="orders"><thead><tr><th>Order</th><th>Reference</th><th>Target</th><th>In effect (UTC)</th><th>State</th><th>Delivered to</th></tr></thead><tbody>{rows}</tbody></table>"#
        )
    };
    let csrf = esc(v.csrf.as_deref().unwrap_or(""));
    let body = format!(
        r#"<h1>Interception orders</h1>{notice}{table}
<h2>New order</h2>
<form class="card" id="new-order" method="post" action="/intercept/orders"><input type="hidden" name="csrf" value="{csrf}">
<div class="row"><div><label for="reference">Authority's reference</label><input id="reference" name="reference" required></div>
<div><label for="target">Target (mail address)</label><input id="target" name="target" type="email" required></div>
<div><label for="login">Login at the mail server (optional)</label><input id="login" name="login"></div></div>
<div class="row"><div><label for="from">From (UTC, empty: now)</label><input id="from" name="from" placeholder="2026-12-01T00:00:00Z"></div>
<div><label for="until">Until (UTC)</label><input id="until" name="until" required placeholder="2027-03-01"></div></div>
<div class="row"><div><label for="deliver">Deliver to (smtp://HOST:PORT or dir:/PATH)</label><input id="deliver" name="deliver" required></div>
<div><label for="deliver_to">Agency's address (for smtp://)</label><input id="deliver_to" name="deliver_to"></div></div>
<div><label for="notes">Notes</label><input id="notes" name="notes"></div>
<p><button type="submit">Make the order</button></p></form>
<p><a href="/intercept/audit">Audit log</a></p>"#,
        notice = n.html(),
    );
    Html(page("Interception", Some(&v), &body)).into_response()
}

#[derive(Deserialize)]
struct OrderForm {
    #[serde(default)]
    csrf: String,
    reference: String,
    target: String,
    #[serde(default)]
    login: String,
    #[serde(default)]
    from: String,
    until: String,
    deliver: String,
    #[serde(default)]
    deliver_to: String,
    #[serde(default)]
    notes: String,
}

async fn create(
    State(web): State<Web>,
    PageViewer(v): PageViewer,
    Form(f): Form<OrderForm>,
) -> Response {
    if let Err(r) = officer_only(&v) {
        return r;
    }
    if v.check_csrf(Some(&f.csrf)).is_err() {
        return StatusCode::FORBIDDEN.into_response();
    }
    let entered = orders::NewOrder {
        reference: f.reference,
        target: f.target,
        login: Some(f.login),
        from: Some(f.from),
        until: f.until,
        deliver: f.deliver,
        deliver_to: Some(f.deliver_to),
        notes: f.notes,
    };
    let order = match orders::build(entered, &v.actor(), crate::clock::now_us()) {
        Ok(o) => o,
        Err(e) => {
            return Redirect::to(&format!("/intercept?error={}", url(&format!("{e:#}"))))
                .into_response();
        }
    };
    match orders::add(&web.store, &order).await {
        Ok(()) => Redirect::to(&format!(
            "/intercept/orders/{}?msg={}",
            order.id,
            url("Order made.")
        ))
        .into_response(),
        Err(e) => failed(e),
    }
}

async fn show(
    State(web): State<Web>,
    PageViewer(v): PageViewer,
    Path(id): Path<String>,
    Query(n): Query<Notice>,
) -> Response {
    if let Err(r) = officer_only(&v) {
        return r;
    }
    if let Err(e) = web
        .store
        .audit(&v.actor(), "order.read", &format!("id={id}"))
        .await
    {
        return failed(e);
    }
    let (order, copies) = match (
        web.store.order(&id).await,
        web.store.copies(Some(&id), 500).await,
    ) {
        (Ok(Some(o)), Ok(c)) => (o, c),
        (Ok(None), _) => {
            return (
                StatusCode::NOT_FOUND,
                Html(page(
                    "No such order",
                    Some(&v),
                    r#"<div class="notice bad">No such order.</div>"#,
                )),
            )
                .into_response();
        }
        (Err(e), _) | (_, Err(e)) => return failed(e),
    };
    let now = crate::clock::now_us();
    let state = orders::state(&order, now);
    let csrf = esc(v.csrf.as_deref().unwrap_or(""));
    let id_e = esc(&order.id);
    let actions = if order.ended_us.is_none() && order.until_us > now {
        format!(
            r#"<div class="row"><form class="row" id="move-end" method="post" action="/intercept/orders/{id_e}/until"><input type="hidden" name="csrf" value="{csrf}"><div><label for="until">New end (UTC)</label><input id="until" name="until" value="{until}"></div><div><button type="submit" class="secondary">Change the end</button></div></form>
<form id="end-now" method="post" action="/intercept/orders/{id_e}/end"><input type="hidden" name="csrf" value="{csrf}"><button type="submit">End now</button></form></div>"#,
            until = esc(&crate::clock::rfc3339(order.until_us)),
        )
    } else {
        String::new()
    };
    let pending = copies.iter().filter(|c| c.state == "pending").count();
    let rows: String = copies
        .iter()
        .map(|c| {
            format!(
                r#"<tr data-copy="{id}" data-state="{state}"><td class="small">{id}</td><td class="small">{time}</td><td>{service} {event}</td><td>{size}</td><td><span class="badge {badge}">{state}</span></td><td>{attempts}</td><td class="small">{when}</td><td class="small">{error}</td></tr>"#,
                id = esc(&c.id),
                time = when(c.time_us),
                service = esc(&c.service),
                event = esc(&c.event),
                size = c.content_size,
                state = esc(&c.state),
                badge = if c.state == "delivered" { "delivered" } else { "tempfailed" },
                attempts = c.attempts,
                when = esc(&c.delivered_us.map(crate::clock::rfc3339).unwrap_or_else(|| format!("next try {}", crate::clock::rfc3339(c.next_try_us)))),
                error = esc(&c.last_error),
            )
        })
        .collect();
    let body = format!(
        r#"<h1>Order {id_e}</h1>{notice}
<div class="card"><dl class="headers"><dt>Reference</dt><dd>{reference}</dd><dt>Target</dt><dd>{target}</dd><dt>Login</dt><dd>{login}</dd><dt>In effect (UTC)</dt><dd>{window}</dd><dt>State</dt><dd><span class="badge state-{state}" id="state">{state}</span></dd><dt>Delivered to</dt><dd>{dest}</dd><dt>Notes</dt><dd>{notes}</dd><dt>Made by</dt><dd>{by} at {at}</dd></dl></div>
{actions}
<h2>Copies</h2><p class="muted" id="copies-summary">{total} copies, {pending} waiting for delivery.</p>
<table id="copies"><thead><tr><th>Copy</th><th>Event time</th><th>Event</th><th>Bytes</th><th>State</th><th>Tries</th><th>Delivered / next</th><th>Last error</th></tr></thead><tbody>{rows}</tbody></table>
<p><a href="/intercept">All orders</a> · <a href="/intercept/audit">Audit log</a></p>"#,
        notice = n.html(),
        reference = esc(&order.reference),
        target = esc(&order.target),
        login = esc(order.login.as_deref().unwrap_or("–")),
        window = esc(&window(&order)),
        dest = esc(&destination(&order)),
        notes = esc(&order.notes),
        by = esc(&order.created_by),
        at = esc(&crate::clock::rfc3339(order.created_us)),
        total = copies.len(),
    );
    Html(page(&format!("Order {}", order.id), Some(&v), &body)).into_response()
}

#[derive(Deserialize)]
struct UntilForm {
    #[serde(default)]
    csrf: String,
    until: String,
}

async fn until(
    State(web): State<Web>,
    PageViewer(v): PageViewer,
    Path(id): Path<String>,
    Form(f): Form<UntilForm>,
) -> Response {
    if let Err(r) = officer_only(&v) {
        return r;
    }
    if v.check_csrf(Some(&f.csrf)).is_err() {
        return StatusCode::FORBIDDEN.into_response();
    }
    let to = match orders::set_until(
        &web.store,
        &id,
        f.until.trim(),
        &v.actor(),
        crate::clock::now_us(),
    )
    .await
    {
        Ok(true) => format!("msg={}", url("The end was moved.")),
        Ok(false) => format!("error={}", url("The order is not running.")),
        Err(e) => format!("error={}", url(&format!("{e:#}"))),
    };
    Redirect::to(&format!("/intercept/orders/{}?{to}", url(&id))).into_response()
}

#[derive(Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

async fn end(
    State(web): State<Web>,
    PageViewer(v): PageViewer,
    Path(id): Path<String>,
    Form(f): Form<CsrfForm>,
) -> Response {
    if let Err(r) = officer_only(&v) {
        return r;
    }
    if v.check_csrf(Some(&f.csrf)).is_err() {
        return StatusCode::FORBIDDEN.into_response();
    }
    let to = match orders::end(&web.store, &id, &v.actor(), crate::clock::now_us()).await {
        Ok(true) => format!("msg={}", url("The order was ended.")),
        Ok(false) => format!("error={}", url("The order is not running.")),
        Err(e) => return failed(e),
    };
    Redirect::to(&format!("/intercept/orders/{}?{to}", url(&id))).into_response()
}

/// The audit log for an officer, the reading itself logged first.
async fn read_audit_log(
    web: &Web,
    v: &Viewer,
    action: &str,
) -> Result<Vec<intercept::AuditEntry>, Response> {
    officer_only(v)?;
    web.store
        .audit(&v.actor(), action, "")
        .await
        .map_err(failed)?;
    web.store.audit_log().await.map_err(failed)
}

async fn audit(State(web): State<Web>, PageViewer(v): PageViewer) -> Response {
    let entries = match read_audit_log(&web, &v, "audit.list").await {
        Ok(e) => e,
        Err(r) => return r,
    };
    let verdict = match intercept::verify(&entries) {
        Ok(n) => format!(
            r#"<div class="notice ok" id="verification" data-intact="true">The chain is intact: {n} entries, last hash <code>{}</code>.</div>"#,
            esc(entries
                .last()
                .map_or(intercept::GENESIS, |e| e.hash.as_str()))
        ),
        Err((seq, why)) => format!(
            r#"<div class="notice bad" id="verification" data-intact="false">The chain is broken at entry {seq}: {}</div>"#,
            esc(&why)
        ),
    };
    let rows: String = entries
        .iter()
        .rev()
        .map(|e| {
            format!(
                r#"<tr><td>{}</td><td class="small">{}</td><td>{}</td><td>{}</td><td class="small">{}</td><td class="small"><code>{}</code></td></tr>"#,
                e.seq,
                when(e.time_us),
                esc(&e.actor),
                esc(&e.action),
                esc(&e.detail),
                esc(&e.hash[..16.min(e.hash.len())]),
            )
        })
        .collect();
    let body = format!(
        r#"<h1>Audit log</h1>{verdict}<p><a class="button secondary" href="/intercept/audit.csv">Export (CSV)</a> <a href="/intercept">Orders</a></p>
<table id="audit"><thead><tr><th>#</th><th>Time (UTC)</th><th>Who</th><th>Action</th><th>Detail</th><th>Hash</th></tr></thead><tbody>{rows}</tbody></table>"#
    );
    Html(page("Audit log", Some(&v), &body)).into_response()
}

async fn audit_csv(State(web): State<Web>, PageViewer(v): PageViewer) -> Response {
    let entries = match read_audit_log(&web, &v, "audit.export").await {
        Ok(e) => e,
        Err(r) => return r,
    };
    let table = crate::report::tables::Table {
        id: "audit",
        title: "Audit log",
        header: [
            "seq",
            "time",
            "actor",
            "action",
            "detail",
            "prev_hash",
            "hash",
        ]
        .map(String::from)
        .to_vec(),
        rows: entries
            .iter()
            .map(|e| {
                vec![
                    e.seq.to_string(),
                    crate::clock::rfc3339(e.time_us),
                    e.actor.clone(),
                    e.action.clone(),
                    e.detail.clone(),
                    e.prev_hash.clone(),
                    e.hash.clone(),
                ]
            })
            .collect(),
    };
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"sponts-audit.csv\"",
            ),
        ],
        table.csv(),
    )
        .into_response()
}
