//! API tokens for scripts: an admin whose session gave the second factor makes one (named,
//! shown once), every admin sees the list and may revoke any. A token acts with its creator's
//! role as it is at each request (`auth`); it is no session, so it cannot make tokens itself.
//! Page `/admin/tokens`, API `/api/v1/tokens` (docs/openapi.yaml).

use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::Web;
use super::api::{csrf_header, error};
use super::auth::{API_TOKEN_PREFIX, ApiViewer, PageViewer, Viewer, random_token, token_hash};
use super::extract::{ApiJson, ApiPath};
use super::html::{Notice, esc, page, url, when};
use super::pages::{admin_only, csrf_ok};

pub fn routes() -> Router<Web> {
    Router::new()
        .route("/admin/tokens", get(tokens_page).post(create_post))
        .route("/admin/tokens/{id}/revoke", post(revoke_post))
        .route("/api/v1/tokens", get(list_api).post(create_api))
        .route("/api/v1/tokens/{id}", delete(revoke_api))
}

/// Who may make a token: an admin whose session gave the second factor.
fn may_create(v: &Viewer) -> Result<(), (StatusCode, &'static str)> {
    if !v.is_admin() {
        return Err((
            StatusCode::FORBIDDEN,
            "API tokens are made by administrators",
        ));
    }
    if !v.second_factor {
        return Err((
            StatusCode::FORBIDDEN,
            "making an API token needs a session that gave a second factor (turn it on under Second factor, then sign in again)",
        ));
    }
    Ok(())
}

/// Makes a token for the viewer: (id, the token itself, shown once).
async fn create(
    web: &Web,
    v: &Viewer,
    name: &str,
) -> Result<(String, String), (StatusCode, String)> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 80 || name.chars().any(char::is_control) {
        return Err((
            StatusCode::UNPROCESSABLE_ENTITY,
            "name: 1 to 80 characters, no control characters".into(),
        ));
    }
    let token = format!("{API_TOKEN_PREFIX}{}", random_token());
    let id = random_token()[..16].to_string();
    web.store
        .create_api_token(&id, &token_hash(&token), &v.user.address, name)
        .await
        .map_err(|e| {
            tracing::error!("api token: {e:#}");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "storage error".to_string(),
            )
        })?;
    tracing::info!(user = %v.user.address, %id, %name, "API token made");
    Ok((id, token))
}

async fn tokens_page(
    State(web): State<Web>,
    PageViewer(v): PageViewer,
    Query(n): Query<Notice>,
) -> Response {
    if let Err(r) = admin_only(&v) {
        return r;
    }
    tokens_view(&web, &v, &n.html(), "").await
}

async fn tokens_view(web: &Web, v: &Viewer, notice: &str, new_token: &str) -> Response {
    let csrf = esc(v.csrf.as_deref().unwrap_or(""));
    let rows: String = web
        .store
        .api_tokens()
        .await
        .unwrap_or_default()
        .iter()
        .map(|t| {
            format!(
                r#"<tr><td>{name}</td><td>{who}</td><td>{when}</td><td><form method="post" action="/admin/tokens/{id}/revoke"><input type="hidden" name="csrf" value="{csrf}"><button class="secondary">Revoke</button></form></td></tr>"#,
                name = esc(&t.name),
                who = esc(&t.address),
                when = when(t.created_us),
                id = esc(&t.id)
            )
        })
        .collect();
    let create = match may_create(v) {
        Ok(()) => format!(
            r#"<h2>Make a token</h2><form class="card row" method="post" action="/admin/tokens" id="new-token-form"><input type="hidden" name="csrf" value="{csrf}"><div><label for="name">Name (what the script is)</label><input id="name" name="name" required maxlength="80"></div><div><button type="submit">Make</button></div></form>"#
        ),
        Err((_, why)) => format!(r#"<p class="notice" id="no-create">{}</p>"#, esc(why)),
    };
    let body = format!(
        r#"<h1>API tokens</h1>{notice}{new_token}<p class="muted">A token signs a script in to the API (<code>Authorization: Bearer …</code>) with its maker's role.</p><table id="tokens"><thead><tr><th>Name</th><th>Acts as</th><th>Made</th><th></th></tr></thead><tbody>{rows}</tbody></table>{create}"#
    );
    Html(page("API tokens", Some(v), &body)).into_response()
}

#[derive(Deserialize)]
struct NameForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
}

async fn create_post(
    State(web): State<Web>,
    PageViewer(v): PageViewer,
    Form(f): Form<NameForm>,
) -> Response {
    if let Err(r) = admin_only(&v).and_then(|_| csrf_ok(&v, &f.csrf)) {
        return r;
    }
    if let Err((s, why)) = may_create(&v) {
        return super::pages::status_page(s, Some(&v), why);
    }
    match create(&web, &v, &f.name).await {
        // Shown on this answer only: nothing stores it.
        Ok((_, token)) => {
            tokens_view(
                &web,
                &v,
                r#"<div class="notice ok">Token made. Copy it now: it is not shown again.</div>"#,
                &format!(r#"<p><code id="new-token">{}</code></p>"#, esc(&token)),
            )
            .await
        }
        Err((_, e)) => Redirect::to(&format!("/admin/tokens?error={}", url(&e))).into_response(),
    }
}

#[derive(Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

async fn revoke_post(
    State(web): State<Web>,
    PageViewer(v): PageViewer,
    Path(id): Path<String>,
    Form(f): Form<CsrfForm>,
) -> Response {
    if let Err(r) = admin_only(&v).and_then(|_| csrf_ok(&v, &f.csrf)) {
        return r;
    }
    match web.store.revoke_api_token(&id).await {
        Ok(true) => {
            tracing::info!(user = %v.user.address, %id, "API token revoked");
            Redirect::to("/admin/tokens?msg=revoked").into_response()
        }
        Ok(false) => Redirect::to("/admin/tokens?error=no+such+token").into_response(),
        Err(_) => Redirect::to("/admin/tokens?error=storage+error").into_response(),
    }
}

async fn list_api(State(web): State<Web>, ApiViewer(v): ApiViewer) -> Response {
    if !v.is_admin() {
        return error(StatusCode::FORBIDDEN, "for administrators");
    }
    match web.store.api_tokens().await {
        Ok(list) => Json(json!({ "tokens": list.iter().map(|t| json!({ "id": t.id, "name": t.name, "address": t.address, "created": crate::clock::rfc3339(t.created_us) })).collect::<Vec<_>>() })).into_response(),
        Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR, "storage error"),
    }
}

#[derive(Deserialize)]
struct NameBody {
    name: String,
}

async fn create_api(
    State(web): State<Web>,
    ApiViewer(v): ApiViewer,
    headers: HeaderMap,
    ApiJson(body): ApiJson<NameBody>,
) -> Response {
    if let Err(s) = v.check_csrf(csrf_header(&headers)) {
        return error(s, "missing or wrong X-CSRF-Token");
    }
    if let Err((s, why)) = may_create(&v) {
        return error(s, why);
    }
    match create(&web, &v, &body.name).await {
        Ok((id, token)) => (
            StatusCode::CREATED,
            Json(json!({ "id": id, "name": body.name.trim(), "token": token })),
        )
            .into_response(),
        Err((s, e)) => error(s, &e),
    }
}

async fn revoke_api(
    State(web): State<Web>,
    ApiViewer(v): ApiViewer,
    headers: HeaderMap,
    ApiPath(id): ApiPath<String>,
) -> Response {
    if let Err(s) = v.check_csrf(csrf_header(&headers)) {
        return error(s, "missing or wrong X-CSRF-Token");
    }
    if !v.is_admin() {
        return error(StatusCode::FORBIDDEN, "for administrators");
    }
    match web.store.revoke_api_token(&id).await {
        Ok(true) => {
            tracing::info!(user = %v.user.address, %id, "API token revoked");
            Json(json!({ "ok": true })).into_response()
        }
        Ok(false) => error(StatusCode::NOT_FOUND, "no such token"),
        Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR, "storage error"),
    }
}
