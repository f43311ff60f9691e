//! The archive in the admin API: legal holds (list, set, release — audited with the admin's
//! name) and the archive's figures. `/api/v1/archive/...` (docs/openapi.yaml); administrators only.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::Web;
use super::api::{csrf_header, error};
use super::auth::{ApiViewer, Viewer};
use super::extract::{ApiJson, ApiPath};

pub fn routes() -> Router<Web> {
    Router::new()
        .route("/api/v1/archive/holds", get(list).post(add))
        .route("/api/v1/archive/holds/{id}/release", post(release))
        .route("/api/v1/archive/stats", get(stats))
}

fn admin(v: &Viewer) -> Result<(), Response> {
    if v.is_admin() {
        Ok(())
    } else {
        Err(error(StatusCode::FORBIDDEN, "administrators only"))
    }
}

fn storage_error(e: anyhow::Error) -> Response {
    tracing::error!("archive api: {e:#}");
    error(StatusCode::INTERNAL_SERVER_ERROR, "storage error")
}

fn hold_json(h: &crate::storage::Hold) -> serde_json::Value {
    json!({
        "id": h.id, "kind": h.kind, "target": h.target, "reason": h.reason, "set_by": h.set_by,
        "set": crate::clock::rfc3339(h.set_us), "released": h.released_us.map(crate::clock::rfc3339),
    })
}

async fn list(State(web): State<Web>, ApiViewer(v): ApiViewer) -> Response {
    if let Err(r) = admin(&v) {
        return r;
    }
    match web.store.holds(true).await {
        Ok(holds) => Json(json!({ "holds": holds.iter().map(hold_json).collect::<Vec<_>>() }))
            .into_response(),
        Err(e) => storage_error(e),
    }
}

#[derive(Deserialize)]
struct NewHold {
    kind: String,
    target: String,
    reason: String,
}

async fn add(
    State(web): State<Web>,
    ApiViewer(v): ApiViewer,
    headers: HeaderMap,
    ApiJson(b): ApiJson<NewHold>,
) -> Response {
    if let Err(r) = admin(&v) {
        return r;
    }
    if let Err(s) = v.check_csrf(csrf_header(&headers)) {
        return error(s, "missing or wrong X-CSRF-Token");
    }
    if !["user", "address", "search"].contains(&b.kind.as_str())
        || b.target.trim().is_empty()
        || b.target.chars().any(char::is_control)
        || b.reason.chars().any(char::is_control)
    {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "kind: user, address or search; target: not empty, no control characters",
        );
    }
    match crate::archive::hold::add(&web.store, &b.kind, &b.target, &b.reason, &v.actor()).await {
        Ok(id) => match web.store.holds(true).await {
            Ok(holds) => match holds.iter().find(|h| h.id == id) {
                Some(h) => (StatusCode::CREATED, Json(hold_json(h))).into_response(),
                None => error(StatusCode::INTERNAL_SERVER_ERROR, "storage error"),
            },
            Err(e) => storage_error(e),
        },
        // No such user, not an address, no reason: the caller's to fix.
        Err(e) => error(StatusCode::UNPROCESSABLE_ENTITY, &e.to_string()),
    }
}

#[derive(Deserialize)]
struct Release {
    reason: String,
}

async fn release(
    State(web): State<Web>,
    ApiViewer(v): ApiViewer,
    ApiPath(id): ApiPath<i64>,
    headers: HeaderMap,
    ApiJson(b): ApiJson<Release>,
) -> Response {
    if let Err(r) = admin(&v) {
        return r;
    }
    if let Err(s) = v.check_csrf(csrf_header(&headers)) {
        return error(s, "missing or wrong X-CSRF-Token");
    }
    if b.reason.trim().is_empty() || b.reason.chars().any(char::is_control) {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "releasing a hold needs a reason",
        );
    }
    match web
        .store
        .release_hold(id, b.reason.trim(), &v.actor())
        .await
    {
        Ok(true) => Json(json!({ "id": id, "released": true })).into_response(),
        Ok(false) => error(StatusCode::NOT_FOUND, "no such hold in force"),
        Err(e) => storage_error(e),
    }
}

async fn stats(State(web): State<Web>, ApiViewer(v): ApiViewer) -> Response {
    if let Err(r) = admin(&v) {
        return r;
    }
    match crate::archive::stats::stats(&web.store, &web.config, crate::clock::now_us()).await {
        Ok(s) => Json(json!(s)).into_response(),
        Err(e) => storage_error(e),
    }
}
