//! UCE in the browser and the API: users manage their disposable addresses; admins manage traps
//! and the penalty box ("Spam" / "Not spam" clicks are `feedback`'s); anyone signed in can make a
//! web-page snippet of an address.

use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::Web;
use super::api::{csrf_header, error};
use super::auth::{ApiViewer, PageViewer, Viewer};
use super::extract::{ApiJson, ApiPath};
use super::html::{Notice, esc, page, url, when};
use crate::storage::Disposable;

pub fn routes() -> Router<Web> {
    Router::new()
        .route("/api/v1/disposable", get(api_disposables))
        .route(
            "/api/v1/disposable/{address}/{action}",
            post(api_change_disposable),
        )
        .route("/api/v1/traps", get(api_traps).post(api_add_trap))
        .route(
            "/api/v1/traps/{pattern}",
            axum::routing::delete(api_delete_trap),
        )
        .route("/disposable", get(disposable_page))
        .route("/disposable/change", post(disposable_form))
        .route("/admin/traps", get(traps_page))
        .route("/admin/traps/change", post(traps_form))
        .route("/snippet", get(snippet_page))
}

/// The disposable addresses the viewer may see: their own, or all for an admin.
async fn visible_disposables(web: &Web, v: &Viewer) -> anyhow::Result<Vec<Disposable>> {
    let all = web.store.disposables(None, None).await?;
    Ok(all
        .into_iter()
        .filter(|d| v.is_admin() || v.addresses.contains(&d.owner))
        .collect())
}

/// Has the address taken all the mail it may? (Then it is locked, unless a lock was lifted
/// without a reset, as before unlock reset the count.)
fn used_up(d: &Disposable) -> bool {
    d.used >= d.max_count
}

/// Applies `lock`, `unlock` (a used-up address starts counting again) or `reset` to a disposable address the viewer owns (admins: any).
async fn change_disposable(
    web: &Web,
    v: &Viewer,
    address: &str,
    action: &str,
) -> Result<Disposable, (StatusCode, String)> {
    let locked = match action {
        "lock" => Some(true),
        "unlock" => Some(false),
        "reset" => None,
        _ => {
            return Err((
                StatusCode::BAD_REQUEST,
                format!("unknown action `{action}` (lock, unlock, reset)"),
            ));
        }
    };
    let (local, domain) = address
        .rsplit_once('@')
        .filter(|_| !address.contains('\0'))
        .ok_or((
            StatusCode::BAD_REQUEST,
            format!("`{address}` is not an address"),
        ))?;
    let d = crate::modules::uce::disposable::parse(&web.config.uce, local, domain).ok_or((
        StatusCode::BAD_REQUEST,
        format!("`{address}` is not a disposable address"),
    ))?;
    // Someone else's address is as unknown as one never used.
    let not_found = (
        StatusCode::NOT_FOUND,
        format!("no disposable address {address} of yours has been used"),
    );
    if !v.is_admin() && !v.addresses.contains(&d.owner) {
        return Err(not_found);
    }
    let internal = |e: anyhow::Error| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
    let now = web
        .store
        .disposables(Some(&d.owner), Some(&d.tag))
        .await
        .map_err(internal)?
        .into_iter()
        .next()
        .ok_or(not_found.clone())?;
    // A used-up address unlocked at its limit would still be refused: its count starts again.
    let locked = if locked == Some(false) && used_up(&now) {
        None
    } else {
        locked
    };
    if !web
        .store
        .set_disposable(&d.owner, &d.tag, locked)
        .await
        .map_err(internal)?
    {
        return Err(not_found);
    }
    let rows = web
        .store
        .disposables(Some(&d.owner), Some(&d.tag))
        .await
        .map_err(internal)?;
    rows.into_iter().next().ok_or(not_found)
}

async fn api_disposables(State(web): State<Web>, ApiViewer(v): ApiViewer) -> Response {
    match visible_disposables(&web, &v).await {
        Ok(list) => Json(json!({ "disposable": list })).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

async fn api_change_disposable(
    State(web): State<Web>,
    ApiViewer(v): ApiViewer,
    ApiPath((address, action)): ApiPath<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Err(s) = v.check_csrf(csrf_header(&headers)) {
        return error(s, "missing or wrong X-CSRF-Token");
    }
    match change_disposable(&web, &v, &address, &action).await {
        Ok(d) => Json(json!(d)).into_response(),
        Err((s, text)) => error(s, &text),
    }
}

fn admin_only(v: &Viewer) -> Result<(), Response> {
    if v.is_admin() {
        Ok(())
    } else {
        Err(error(StatusCode::FORBIDDEN, "for administrators only"))
    }
}

async fn api_traps(State(web): State<Web>, ApiViewer(v): ApiViewer) -> Response {
    if let Err(r) = admin_only(&v) {
        return r;
    }
    match web.store.traps().await {
        Ok(managed) => {
            Json(json!({ "config": web.config.uce.traps, "managed": managed })).into_response()
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

#[derive(Deserialize)]
struct TrapBody {
    pattern: String,
}

async fn api_add_trap(
    State(web): State<Web>,
    ApiViewer(v): ApiViewer,
    headers: HeaderMap,
    ApiJson(b): ApiJson<TrapBody>,
) -> Response {
    if let Err(r) = admin_only(&v) {
        return r;
    }
    if let Err(s) = v.check_csrf(csrf_header(&headers)) {
        return error(s, "missing or wrong X-CSRF-Token");
    }
    let pattern = match crate::cli::uce::check_trap(&b.pattern) {
        Ok(p) => p,
        Err(e) => return error(StatusCode::UNPROCESSABLE_ENTITY, &e.to_string()),
    };
    match web.store.add_trap(&pattern, &v.actor()).await {
        Ok(()) => (StatusCode::CREATED, Json(json!({ "pattern": pattern }))).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

async fn api_delete_trap(
    State(web): State<Web>,
    ApiViewer(v): ApiViewer,
    ApiPath(pattern): ApiPath<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = admin_only(&v) {
        return r;
    }
    if let Err(s) = v.check_csrf(csrf_header(&headers)) {
        return error(s, "missing or wrong X-CSRF-Token");
    }
    // A NUL is in no trap (and PostgreSQL refuses one in a query).
    let found = if pattern.contains('\0') {
        Ok(false)
    } else {
        web.store.delete_trap(&pattern).await
    };
    match found {
        Ok(true) => StatusCode::NO_CONTENT.into_response(),
        Ok(false) => error(
            StatusCode::NOT_FOUND,
            "no such trap (traps of the config file are changed there)",
        ),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

async fn disposable_page(
    State(web): State<Web>,
    PageViewer(v): PageViewer,
    Query(n): Query<Notice>,
) -> Response {
    let list = visible_disposables(&web, &v).await.unwrap_or_default();
    let csrf = esc(v.csrf.as_deref().unwrap_or(""));
    let button = |address: &str, action: &str, label: &str| {
        format!(
            r#"<form method="post" action="/disposable/change"><input type="hidden" name="csrf" value="{csrf}"><input type="hidden" name="address" value="{}"><input type="hidden" name="action" value="{action}"><button class="secondary">{label}</button></form>"#,
            esc(address)
        )
    };
    let rows: String = list
        .iter()
        .map(|d| {
            let state = match (d.locked, used_up(d)) {
                (_, true) => r#"<span class="badge refused">used up</span>"#,
                (true, false) => r#"<span class="badge refused">locked</span>"#,
                (false, false) => r#"<span class="badge delivered">open</span>"#,
            };
            let toggle = match (d.locked || used_up(d), used_up(d)) {
                (true, true) => button(&d.address, "unlock", "Unlock (count starts again)"),
                (true, false) => button(&d.address, "unlock", "Unlock"),
                _ => button(&d.address, "lock", "Lock"),
            };
            format!(
                r#"<tr><td>{}</td><td>{}</td><td>{} of {}</td><td>{state}</td><td class="small">{}</td><td class="row">{toggle}{}</td></tr>"#,
                esc(&d.address),
                esc(&d.owner),
                d.used,
                d.max_count,
                when(d.last_us),
                button(&d.address, "reset", "Reset")
            )
        })
        .collect();
    let sep = esc(&web.config.uce.disposable_separator);
    let example = match web.config.uce.disposable_position {
        crate::config::DisposablePosition::Prefix => format!("shop{sep}20{sep}you@domain"),
        crate::config::DisposablePosition::Suffix => format!("you{sep}shop{sep}20@domain"),
    };
    let table = if list.is_empty() {
        r#"<div class="card muted" id="disposable-empty">No disposable address has been used yet.</div>"#.to_string()
    } else {
        format!(
            r#"<table id="disposable"><thead><tr><th>Address</th><th>Delivered to</th><th>Used</th><th>State</th><th>Last used</th><th></th></tr></thead><tbody>{rows}</tbody></table>"#
        )
    };
    let body = format!(
        r#"<h1>Disposable addresses</h1>{}<p class="muted">Give out <code>{example}</code>: it reaches you 20 times, then it answers "user unknown" for good. Nothing to set up — the first mail creates it. Unlock opens a locked address again; one that was used up starts counting again from 0.</p>{table}"#,
        n.html()
    );
    Html(page("Disposable addresses", Some(&v), &body)).into_response()
}

#[derive(Deserialize)]
struct DisposableForm {
    #[serde(default)]
    csrf: String,
    address: String,
    action: String,
}

async fn disposable_form(
    State(web): State<Web>,
    PageViewer(v): PageViewer,
    Form(f): Form<DisposableForm>,
) -> Response {
    if v.check_csrf(Some(&f.csrf)).is_err() {
        return StatusCode::FORBIDDEN.into_response();
    }
    let to = match change_disposable(&web, &v, &f.address, &f.action).await {
        Ok(d) => format!(
            "msg={}",
            url(&format!(
                "{}: {}, {} of {} used",
                d.address,
                if d.locked { "locked" } else { "open" },
                d.used,
                d.max_count
            ))
        ),
        Err((_, e)) => format!("error={}", url(&e)),
    };
    Redirect::to(&format!("/disposable?{to}")).into_response()
}

async fn traps_page(
    State(web): State<Web>,
    PageViewer(v): PageViewer,
    Query(n): Query<Notice>,
) -> Response {
    if !v.is_admin() {
        return (
            StatusCode::FORBIDDEN,
            Html(page(
                "Forbidden",
                Some(&v),
                r#"<div class="notice bad">This page is for administrators.</div>"#,
            )),
        )
            .into_response();
    }
    let csrf = esc(v.csrf.as_deref().unwrap_or(""));
    let managed = web.store.traps().await.unwrap_or_default();
    let penalties = web.store.penalties().await.unwrap_or_default();
    let form = |field: &str, value: &str, action: &str, label: &str| {
        format!(
            r#"<form method="post" action="/admin/traps/change"><input type="hidden" name="csrf" value="{csrf}"><input type="hidden" name="{field}" value="{}"><input type="hidden" name="action" value="{action}"><button class="secondary">{label}</button></form>"#,
            esc(value)
        )
    };
    let mut rows: String = web
        .config
        .uce
        .traps
        .iter()
        .map(|t| {
            format!(
                "<tr><td>{}</td><td class=\"muted\">config file</td><td></td></tr>",
                esc(t)
            )
        })
        .collect();
    rows.extend(managed.iter().map(|t| {
        format!(
            "<tr><td>{}</td><td>web / CLI</td><td>{}</td></tr>",
            esc(t),
            form("pattern", t, "delete", "Delete")
        )
    }));
    let boxed: String = penalties
        .iter()
        .map(|p| {
            format!(
                "<tr><td>{}</td><td class=\"small\">{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&p.ip),
                when(p.until_us),
                p.hits,
                esc(&p.reason),
                form("ip", &p.ip, "release", "Release")
            )
        })
        .collect();
    let body = format!(
        r#"<h1>Spam traps</h1>{}<p class="muted">Mail to a trap is answered 250, never delivered, kept as spam, and puts the client into the penalty box for {} hours. <code>*</code> stands for any run of characters.</p>
<table id="traps"><thead><tr><th>Trap</th><th>From</th><th></th></tr></thead><tbody>{rows}</tbody></table>
<form class="card row" method="post" action="/admin/traps/change"><input type="hidden" name="csrf" value="{csrf}"><input type="hidden" name="action" value="add"><div><label for="pattern">New trap</label><input id="pattern" name="pattern" placeholder="honeypot-*@example.org" required></div><div><button type="submit">Add</button></div></form>
<h2>Penalty box</h2><table id="penalties"><thead><tr><th>Client</th><th>Until</th><th>Hits</th><th>Why</th><th></th></tr></thead><tbody>{boxed}</tbody></table>"#,
        n.html(),
        web.config.uce.penalty_hours
    );
    Html(page("Spam traps", Some(&v), &body)).into_response()
}

#[derive(Deserialize)]
struct TrapForm {
    #[serde(default)]
    csrf: String,
    action: String,
    pattern: Option<String>,
    ip: Option<String>,
}

async fn traps_form(
    State(web): State<Web>,
    PageViewer(v): PageViewer,
    Form(f): Form<TrapForm>,
) -> Response {
    if !v.is_admin() || v.check_csrf(Some(&f.csrf)).is_err() {
        return StatusCode::FORBIDDEN.into_response();
    }
    let result = match (f.action.as_str(), f.pattern.as_deref(), f.ip.as_deref()) {
        ("add", Some(p), _) => match crate::cli::uce::check_trap(p) {
            Ok(p) => web
                .store
                .add_trap(&p, &v.actor())
                .await
                .map(|_| format!("trap {p} added"))
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        },
        ("delete", Some(p), _) => web
            .store
            .delete_trap(p)
            .await
            .map(|_| format!("trap {p} deleted"))
            .map_err(|e| e.to_string()),
        ("release", _, Some(ip)) => web
            .store
            .release_penalty(ip)
            .await
            .map(|_| format!("{ip} released from the penalty box"))
            .map_err(|e| e.to_string()),
        _ => Err("unknown action".into()),
    };
    let to = match result {
        Ok(m) => format!("msg={}", url(&m)),
        Err(e) => format!("error={}", url(&e)),
    };
    Redirect::to(&format!("/admin/traps?{to}")).into_response()
}

#[derive(Deserialize, Default)]
struct SnippetQuery {
    address: Option<String>,
    trap: Option<String>,
}

async fn snippet_page(PageViewer(v): PageViewer, Query(q): Query<SnippetQuery>) -> Response {
    let address = q
        .address
        .filter(|a| !a.trim().is_empty())
        .unwrap_or_else(|| v.user.address.clone());
    let trap = q.trap.filter(|t| !t.trim().is_empty());
    let mut code = crate::modules::uce::snippet::obfuscated(address.trim(), "-nospam");
    if let Some(t) = &trap {
        code.push('\n');
        code.push_str(&crate::modules::uce::snippet::hidden_trap(t.trim()));
    }
    let body = format!(
        r#"<h1>Address for a web page</h1><p class="muted">People see the address; harvesting spiders read a wrong one. A hidden trap address catches the spiders that collect addresses.</p>
<form class="card row" method="get" action="/snippet"><div><label for="address">Address</label><input id="address" name="address" value="{}"></div><div><label for="trap">Hidden trap (optional)</label><input id="trap" name="trap" value="{}"></div><div><button type="submit">Make snippet</button></div></form>
<h2>HTML to paste</h2><pre id="snippet">{}</pre><h2>What people see</h2><div class="card" id="preview">{code}</div>"#,
        esc(&address),
        esc(trap.as_deref().unwrap_or("")),
        esc(&code)
    );
    Html(page("Snippet", Some(&v), &body)).into_response()
}
