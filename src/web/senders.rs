//! Sender allow and block lists in the browser (`/senders`) and the API (`/api/v1/senders`):
//! a user keeps their own; an admin keeps anyone's and a whole domain's (`owner=@domain`).
//! [`super::policy::sender_list_owner`] decides whose list a request touches.

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
use super::extract::{ApiJson, ApiQuery};
use super::html::{Notice, esc, page, url, when};
use super::policy::sender_list_owner;
use crate::modules::uce::senders::check_pattern;
use crate::storage::{SenderEntry, SenderVerdict};

pub fn routes() -> Router<Web> {
    Router::new()
        .route(
            "/api/v1/senders",
            get(api_list).post(api_add).delete(api_delete),
        )
        .route("/senders", get(senders_page))
        .route("/senders/change", post(senders_form))
}

type Refusal = (StatusCode, String);

fn internal(e: anyhow::Error) -> Refusal {
    (StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
}

/// The entries the viewer asked for: one owner's, or (without `owner`) all of a user's
/// addresses — every entry for an admin.
async fn list(web: &Web, v: &Viewer, owner: Option<&str>) -> Result<Vec<SenderEntry>, Refusal> {
    let owner_named = owner.is_some_and(|o| !o.trim().is_empty());
    let owner = sender_list_owner(v, owner, &web.config.domains.local)?;
    let owners = match (v.is_admin(), owner_named) {
        (true, false) => None,
        (true, true) => Some(vec![owner]),
        (false, _) => Some(v.addresses.clone()),
    };
    web.store
        .sender_entries(owners.as_deref())
        .await
        .map_err(internal)
}

async fn add(
    web: &Web,
    v: &Viewer,
    owner: Option<&str>,
    pattern: &str,
    verdict: &str,
) -> Result<SenderEntry, Refusal> {
    let owner = sender_list_owner(v, owner, &web.config.domains.local)?;
    let pattern =
        check_pattern(pattern).map_err(|e| (StatusCode::UNPROCESSABLE_ENTITY, e.to_string()))?;
    let verdict = SenderVerdict::parse(verdict).ok_or((
        StatusCode::UNPROCESSABLE_ENTITY,
        format!("unknown verdict `{verdict}` (allow, block)"),
    ))?;
    web.store
        .set_sender_entry(&owner, &pattern, verdict, &v.actor())
        .await
        .map_err(internal)
}

async fn delete(
    web: &Web,
    v: &Viewer,
    owner: Option<&str>,
    pattern: &str,
) -> Result<String, Refusal> {
    let owner = sender_list_owner(v, owner, &web.config.domains.local)?;
    let pattern =
        check_pattern(pattern).map_err(|e| (StatusCode::UNPROCESSABLE_ENTITY, e.to_string()))?;
    match web
        .store
        .delete_sender_entry(&owner, &pattern)
        .await
        .map_err(internal)?
    {
        true => Ok(pattern),
        false => Err((
            StatusCode::NOT_FOUND,
            format!("{owner}'s list has no entry {pattern}"),
        )),
    }
}

#[derive(Deserialize)]
struct OwnerQuery {
    owner: Option<String>,
}

async fn api_list(
    State(web): State<Web>,
    ApiViewer(v): ApiViewer,
    ApiQuery(q): ApiQuery<OwnerQuery>,
) -> Response {
    match list(&web, &v, q.owner.as_deref()).await {
        Ok(entries) => Json(json!({ "senders": entries })).into_response(),
        Err((s, text)) => error(s, &text),
    }
}

#[derive(Deserialize)]
struct AddBody {
    pattern: String,
    verdict: String,
    owner: Option<String>,
}

async fn api_add(
    State(web): State<Web>,
    ApiViewer(v): ApiViewer,
    headers: HeaderMap,
    ApiJson(b): ApiJson<AddBody>,
) -> Response {
    if let Err(s) = v.check_csrf(csrf_header(&headers)) {
        return error(s, "missing or wrong X-CSRF-Token");
    }
    match add(&web, &v, b.owner.as_deref(), &b.pattern, &b.verdict).await {
        Ok(entry) => (StatusCode::CREATED, Json(json!(entry))).into_response(),
        Err((s, text)) => error(s, &text),
    }
}

#[derive(Deserialize)]
struct DeleteQuery {
    pattern: String,
    owner: Option<String>,
}

async fn api_delete(
    State(web): State<Web>,
    ApiViewer(v): ApiViewer,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<DeleteQuery>,
) -> Response {
    if let Err(s) = v.check_csrf(csrf_header(&headers)) {
        return error(s, "missing or wrong X-CSRF-Token");
    }
    match delete(&web, &v, q.owner.as_deref(), &q.pattern).await {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err((s, text)) => error(s, &text),
    }
}

async fn senders_page(
    State(web): State<Web>,
    PageViewer(v): PageViewer,
    Query(n): Query<Notice>,
) -> Response {
    let entries = match list(&web, &v, None).await {
        Ok(e) => e,
        Err((s, text)) => {
            return (
                s,
                Html(page(
                    "Senders",
                    Some(&v),
                    &format!(r#"<div class="notice bad">{}</div>"#, esc(&text)),
                )),
            )
                .into_response();
        }
    };
    let csrf = esc(v.csrf.as_deref().unwrap_or(""));
    let rows: String = entries
        .iter()
        .map(|e| {
            let badge = match e.verdict {
                SenderVerdict::Allow => r#"<span class="badge delivered">allow</span>"#,
                SenderVerdict::Block => r#"<span class="badge refused">block</span>"#,
            };
            format!(
                r#"<tr><td>{}</td><td>{badge}</td><td>{}</td><td class="small">{} by {}</td><td><form method="post" action="/senders/change"><input type="hidden" name="csrf" value="{csrf}"><input type="hidden" name="action" value="delete"><input type="hidden" name="owner" value="{owner}"><input type="hidden" name="pattern" value="{pattern}"><button class="secondary">Remove</button></form></td></tr>"#,
                esc(&e.pattern),
                esc(&e.owner),
                when(e.created_us),
                esc(&e.created_by),
                owner = esc(&e.owner),
                pattern = esc(&e.pattern),
            )
        })
        .collect();
    let owner_field = if v.is_admin() {
        r#"<div><label for="owner">For (address or @domain; empty: you)</label><input id="owner" name="owner" placeholder="@example.org"></div>"#
    } else {
        ""
    };
    let table = if entries.is_empty() {
        r#"<div class="card muted" id="senders-empty">No sender is on a list yet.</div>"#
            .to_string()
    } else {
        format!(
            r#"<table id="senders"><thead><tr><th>Sender</th><th>List</th><th>For</th><th>Added</th><th></th></tr></thead><tbody>{rows}</tbody></table>"#
        )
    };
    let body = format!(
        r#"<h1>Senders</h1>{}<p class="muted">Mail from an allowed sender skips the spam checks of its content (never the virus scan); a blocked sender is told you do not exist. A sender is an address (<code>news@shop.example</code>) or a domain (<code>shop.example</code>, its subdomains too). Your own list comes before your domain's.</p>{table}
<form class="card row" method="post" action="/senders/change"><input type="hidden" name="csrf" value="{csrf}"><input type="hidden" name="action" value="add"><div><label for="pattern">Sender</label><input id="pattern" name="pattern" placeholder="shop.example" required></div>{owner_field}<div><label for="verdict">List</label><select id="verdict" name="verdict"><option value="allow">allow</option><option value="block">block</option></select></div><div><button type="submit">Add</button></div></form>"#,
        n.html()
    );
    Html(page("Senders", Some(&v), &body)).into_response()
}

#[derive(Deserialize)]
struct SenderForm {
    #[serde(default)]
    csrf: String,
    action: String,
    pattern: String,
    verdict: Option<String>,
    owner: Option<String>,
}

async fn senders_form(
    State(web): State<Web>,
    PageViewer(v): PageViewer,
    Form(f): Form<SenderForm>,
) -> Response {
    if v.check_csrf(Some(&f.csrf)).is_err() {
        return StatusCode::FORBIDDEN.into_response();
    }
    let result = match f.action.as_str() {
        "add" => add(
            &web,
            &v,
            f.owner.as_deref(),
            &f.pattern,
            f.verdict.as_deref().unwrap_or(""),
        )
        .await
        .map(|e| format!("{} {}ed for {}", e.pattern, e.verdict.as_str(), e.owner)),
        "delete" => delete(&web, &v, f.owner.as_deref(), &f.pattern)
            .await
            .map(|p| format!("{p} removed")),
        other => Err((StatusCode::BAD_REQUEST, format!("unknown action `{other}`"))),
    };
    let to = match result {
        Ok(m) => format!("msg={}", url(&m)),
        Err((_, e)) => format!("error={}", url(&e)),
    };
    Redirect::to(&format!("/senders?{to}")).into_response()
}
