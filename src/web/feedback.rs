//! "Not spam" and "Spam" in the browser (buttons on the message page) and the API
//! (`POST /api/v1/messages/{id}/not-spam`, `.../spam`). A user clicks on mail addressed to them
//! and teaches their own layer; an admin clicks on anyone's and teaches the recipients' layers.
//! The work is `crate::feedback`'s; this file decides who may, and answers.

use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;

use super::Web;
use super::api::{csrf_header, error};
use super::auth::{ApiViewer, PageViewer, Viewer};
use super::extract::ApiPath;
use super::html::{esc, url};
use super::policy::find;
use crate::feedback::{self, MarkError};
use crate::storage::JournalEntry;

pub fn routes() -> Router<Web> {
    Router::new()
        .route("/api/v1/messages/{id}/not-spam", post(api_not_spam))
        .route("/api/v1/messages/{id}/spam", post(api_spam))
        .route("/messages/{id}/not-spam", post(form_not_spam))
        .route("/messages/{id}/spam", post(form_spam))
}

type Refusal = (StatusCode, String);

/// Whom a click on `e` teaches and where "Not spam" delivers: a user's own account and address
/// (only on mail addressed to them); an admin's click teaches the recipients' accounts and
/// delivers to the original recipients.
async fn target(
    web: &Web,
    v: &Viewer,
    id: &str,
) -> Result<(JournalEntry, Vec<String>, Option<String>), Refusal> {
    let e = find(web, v, id)
        .await
        .map_err(|s| (s, "no such message".to_string()))?;
    if !super::policy::may_have_content(v, &e) {
        return Err((
            StatusCode::FORBIDDEN,
            "a message with a virus is handled by an administrator only".into(),
        ));
    }
    if v.is_admin() {
        let owners = feedback::recipient_accounts(&web.store, &e)
            .await
            .map_err(|err| (StatusCode::INTERNAL_SERVER_ERROR, err.to_string()))?;
        return Ok((e, owners, None));
    }
    let mine = v
        .addresses
        .iter()
        .find(|a| e.recipients.iter().any(|r| r.accepted && r.is(a)))
        .cloned();
    match mine {
        Some(to) => Ok((e, vec![v.user.address.to_lowercase()], Some(to))),
        None => Err((
            StatusCode::FORBIDDEN,
            "this message was not addressed to you".into(),
        )),
    }
}

async fn click(web: &Web, v: &Viewer, id: &str, spam: bool) -> Result<feedback::Marked, Refusal> {
    let (e, owners, deliver_to) = target(web, v, id).await?;
    feedback::mark(
        &web.config,
        &web.store,
        &e,
        spam,
        &owners,
        deliver_to.as_deref(),
        &v.actor(),
    )
    .await
    .map_err(|err| {
        let status = match &err {
            MarkError::NotKept => StatusCode::NOT_FOUND,
            MarkError::Malware => StatusCode::FORBIDDEN,
            MarkError::Replay(
                crate::replay::ReplayError::NotFound(_) | crate::replay::ReplayError::NotKept(_),
            ) => StatusCode::NOT_FOUND,
            MarkError::Replay(
                crate::replay::ReplayError::NotLocal(_) | crate::replay::ReplayError::NoRecipient,
            ) => StatusCode::UNPROCESSABLE_ENTITY,
            MarkError::Replay(_) | MarkError::Other(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status.is_server_error() {
            tracing::error!(id, "marking a message failed: {err:#}");
        }
        (status, err.to_string())
    })
}

async fn api_click(web: Web, v: Viewer, id: String, headers: HeaderMap, spam: bool) -> Response {
    if let Err(s) = v.check_csrf(csrf_header(&headers)) {
        return error(s, "missing or wrong X-CSRF-Token");
    }
    match click(&web, &v, &id, spam).await {
        Ok(m) => Json(m).into_response(),
        Err((s, text)) => error(s, &text),
    }
}

async fn api_not_spam(
    State(web): State<Web>,
    ApiViewer(v): ApiViewer,
    ApiPath(id): ApiPath<String>,
    headers: HeaderMap,
) -> Response {
    api_click(web, v, id, headers, false).await
}

async fn api_spam(
    State(web): State<Web>,
    ApiViewer(v): ApiViewer,
    ApiPath(id): ApiPath<String>,
    headers: HeaderMap,
) -> Response {
    api_click(web, v, id, headers, true).await
}

#[derive(Deserialize)]
struct ClickForm {
    #[serde(default)]
    csrf: String,
}

async fn form_click(web: Web, v: Viewer, id: String, f: ClickForm, spam: bool) -> Response {
    if let Err(r) = super::pages::csrf_ok(&v, &f.csrf) {
        return r;
    }
    let back = |q: String| Redirect::to(&format!("/messages/{}?{q}", url(&id))).into_response();
    match click(&web, &v, &id, spam).await {
        Ok(m) => {
            let mut q = format!("marked={}", m.learned_as);
            if let Some(r) = &m.delivered {
                q.push_str(&format!("&replayed={}", url(&r.id)));
            }
            if let Some(o) = &m.offer {
                q.push_str(&format!("&offer={}", url(&o.pattern)));
            }
            back(q)
        }
        Err((StatusCode::NOT_FOUND, _)) => {
            super::pages::status_page(StatusCode::NOT_FOUND, Some(&v), "No such message.")
        }
        Err((_, text)) => back(format!("error={}", url(&text))),
    }
}

async fn form_not_spam(
    State(web): State<Web>,
    PageViewer(v): PageViewer,
    Path(id): Path<String>,
    Form(f): Form<ClickForm>,
) -> Response {
    form_click(web, v, id, f, false).await
}

async fn form_spam(
    State(web): State<Web>,
    PageViewer(v): PageViewer,
    Path(id): Path<String>,
    Form(f): Form<ClickForm>,
) -> Response {
    form_click(web, v, id, f, true).await
}

/// The message page's buttons: "Not spam" on what the filter held back, "Spam" on delivered
/// mail; for mail addressed to the viewer (anyone's, for an admin). A re-check for admins.
pub fn buttons(v: &Viewer, e: &JournalEntry) -> String {
    let addressed = v.is_admin()
        || v.addresses
            .iter()
            .any(|a| e.recipients.iter().any(|r| r.accepted && r.is(a)));
    if !addressed || e.outbound || e.is_malware() {
        return String::new();
    }
    let csrf = esc(v.csrf.as_deref().unwrap_or(""));
    let id = esc(&e.id);
    let form = |action: &str, button: &str, label: &str| {
        format!(
            r#"<form method="post" action="/messages/{id}/{action}"><input type="hidden" name="csrf" value="{csrf}"><button type="submit" class="secondary" id="{button}">{label}</button></form>"#
        )
    };
    let mut out = String::new();
    if feedback::held_back(e) {
        out.push_str(&form("not-spam", "not-spam", "Not spam"));
    } else if matches!(e.outcome.as_str(), "delivered" | "queued") {
        out.push_str(&form("spam", "spam", "Spam"));
    }
    if v.is_admin() {
        out.push_str(&format!(r#"<a class="button secondary" id="recheck" href="/messages/{id}/recheck">Re-check with today's filter</a>"#));
    }
    out
}

/// What a click did, with the offer to put the sender on a list (one more click).
pub fn notice(v: &Viewer, e: &JournalEntry, marked: &str, offer: Option<&str>) -> String {
    let (text, verdict, label) = match marked {
        "spam" => (
            "Learned as spam: mail like this counts as spam for you from now on.",
            "block",
            "Block this sender",
        ),
        _ => (
            "Learned as not spam: mail like this is no longer held back for you.",
            "allow",
            "Always allow this sender",
        ),
    };
    let offer = offer.map(|pattern| {
        // An admin's offer is for the recipient's list; a user's for their own.
        let owner = if v.is_admin() { e.recipients.iter().find(|r| r.accepted).map(|r| r.delivered_to.clone().unwrap_or(r.address.clone())).unwrap_or_default() } else { String::new() };
        format!(
            r#" <form method="post" action="/senders/change" class="inline"><input type="hidden" name="csrf" value="{}"><input type="hidden" name="action" value="add"><input type="hidden" name="verdict" value="{verdict}"><input type="hidden" name="pattern" value="{p}"><input type="hidden" name="owner" value="{}"><button type="submit" id="offer">{label}: {p}</button></form>"#,
            esc(v.csrf.as_deref().unwrap_or("")),
            esc(&owner),
            p = esc(pattern)
        )
    });
    format!(
        r#"<div class="notice ok" id="mark-result">{text}{}</div>"#,
        offer.unwrap_or_default()
    )
}
