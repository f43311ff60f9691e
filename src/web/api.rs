//! The JSON API under `/api/v1/` (described in docs/openapi.yaml). Same rules as the pages:
//! a bearer token or the session cookie (with `X-CSRF-Token` on POST), users see their own mail.

use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::Web;
use super::auth::{ApiViewer, COOKIE_NAME, random_token, token_hash};
use super::extract::{ApiJson, ApiPath, ApiQuery};
use super::policy::{find, replay_target, scope};
use crate::storage::{JournalEntry, JournalFilter};

pub fn routes() -> Router<Web> {
    Router::new()
        .route("/api/v1/login", post(login))
        .route("/api/v1/logout", post(logout))
        .route("/api/v1/me", get(me))
        .route("/api/v1/messages", get(messages))
        .route("/api/v1/messages/{id}", get(message))
        .route("/api/v1/messages/{id}/raw", get(raw))
        .route("/api/v1/messages/{id}/replay", post(replay))
}

pub fn error(status: StatusCode, text: &str) -> Response {
    (status, Json(json!({ "error": text }))).into_response()
}

#[derive(Deserialize)]
pub struct LoginBody {
    pub username: String,
    pub password: String,
    /// The second factor's code (TOTP or a recovery code), for accounts that have one.
    #[serde(default)]
    pub totp: Option<String>,
}

/// What a successful login gives: the token and its CSRF partner.
pub struct Login {
    pub token: String,
    pub csrf: String,
    pub cookie: String,
    /// The second factor is still to give (on the code page): the session reaches nothing else.
    pub code_next: bool,
}

/// Checks a password and then the second factor (both throttled) and opens a session. Shared
/// by the API (`code` is `Now`) and the login page (`NextPage`: a session that waits for it).
pub async fn sign_in(
    web: &Web,
    ip: std::net::IpAddr,
    username: &str,
    password: &str,
    code: super::twofactor::CodeAt<'_>,
) -> Result<Login, (StatusCode, String)> {
    let username = username.trim().to_lowercase();
    if let Some(wait) = web.throttle.blocked(ip, &username) {
        return Err((
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "too many failed logins; try again in {} s",
                wait.as_secs().max(1)
            ),
        ));
    }
    // Counted before the (slow) check, so parallel attempts cannot slip past the throttle; a
    // wait it brings runs from the end of the sign-in.
    let _attempt = web.throttle.failed(ip, &username);
    let user = crate::directory::sign_in(&web.store, &web.config, &username, password)
        .await
        .map_err(|_| {
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "storage error".to_string(),
            )
        })?;
    let Some(user) = user else {
        tracing::info!(%ip, user = %username, "failed login");
        return Err((
            StatusCode::UNAUTHORIZED,
            "wrong user name or password".into(),
        ));
    };
    // The second factor settles the throttle (a right password alone may not clear it).
    let step = super::twofactor::after_password(web, ip, &user, code).await?;
    let username = user.address;
    let (token, csrf) = (random_token(), random_token());
    let hours = web.config.web.session_hours as i64;
    let expires = crate::clock::now_us()
        + if step.code_next {
            super::twofactor::CODE_PAGE_US
        } else {
            hours * 3_600_000_000
        };
    web.store
        .create_session(&token_hash(&token), &username, &csrf, expires, step.given)
        .await
        .map_err(|_| {
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "storage error".to_string(),
            )
        })?;
    let secure = if web.https { "; Secure" } else { "" };
    let cookie = format!(
        "{COOKIE_NAME}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
        hours * 3600
    );
    Ok(Login {
        token,
        csrf,
        cookie,
        code_next: step.code_next,
    })
}

pub fn clear_cookie(web: &Web) -> String {
    let secure = if web.https { "; Secure" } else { "" };
    format!("{COOKIE_NAME}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}")
}

async fn login(
    State(web): State<Web>,
    ConnectInfo(super::Peer(peer)): ConnectInfo<super::Peer>,
    ApiJson(body): ApiJson<LoginBody>,
) -> Response {
    match sign_in(
        &web,
        peer.ip(),
        &body.username,
        &body.password,
        super::twofactor::CodeAt::Now(body.totp.as_deref()),
    )
    .await
    {
        Ok(l) => (
            [(header::SET_COOKIE, l.cookie)],
            Json(json!({ "token": l.token, "csrf": l.csrf })),
        )
            .into_response(),
        Err((status, text)) => error(status, &text),
    }
}

pub(super) fn csrf_header(h: &HeaderMap) -> Option<&str> {
    h.get("x-csrf-token").and_then(|v| v.to_str().ok())
}

async fn logout(State(web): State<Web>, ApiViewer(v): ApiViewer, headers: HeaderMap) -> Response {
    if let Err(s) = v.check_csrf(csrf_header(&headers)) {
        return error(s, "missing or wrong X-CSRF-Token");
    }
    let _ = web.store.delete_session(&v.token_hash).await;
    (
        [(header::SET_COOKIE, clear_cookie(&web))],
        Json(json!({ "ok": true })),
    )
        .into_response()
}

async fn me(ApiViewer(v): ApiViewer) -> Response {
    Json(json!({ "address": v.user.address, "role": v.user.role, "addresses": v.addresses, "csrf": v.csrf })).into_response()
}

/// Search parameters shared by the API and the message list page.
#[derive(Debug, Default, Deserialize)]
pub struct Search {
    pub q: Option<String>,
    pub sender: Option<String>,
    pub rcpt: Option<String>,
    pub subject: Option<String>,
    pub ip: Option<String>,
    /// `delivered`, `refused`, `tempfailed`, `discarded`, `abandoned`, `queued`.
    pub verdict: Option<String>,
    /// `YYYY-MM-DD`, inclusive.
    pub from: Option<String>,
    pub until: Option<String>,
    pub attachments: Option<String>,
    pub limit: Option<i64>,
    pub offset: Option<i64>,
}

/// The most records one search answers (`limit`).
pub const MAX_LIMIT: i64 = 500;

/// An empty parameter is an unset one (an HTML form sends every field).
fn nonempty(s: &Option<String>) -> Option<String> {
    s.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

impl Search {
    pub fn filter(&self) -> Result<JournalFilter, String> {
        let day = |name: &str, s: &Option<String>, end: bool| -> Result<Option<i64>, String> {
            match nonempty(s) {
                None => Ok(None),
                Some(d) => crate::clock::parse_date(&d)
                    .map(|us| Some(if end { us + 86_400_000_000 } else { us }))
                    .ok_or(format!("{name}: `{d}` is not a date (YYYY-MM-DD)")),
            }
        };
        let verdict = nonempty(&self.verdict);
        if let Some(v) = &verdict {
            if crate::pipeline::Outcome::parse(v).is_none() {
                return Err(format!("verdict: `{v}` is not a verdict"));
            }
        }
        let has_attachment = match nonempty(&self.attachments).as_deref() {
            None => None,
            Some("yes" | "true" | "1") => Some(true),
            Some("no" | "false" | "0") => Some(false),
            Some(a) => return Err(format!("attachments: `{a}` is not yes or no")),
        };
        let limit = self.limit.unwrap_or(50);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(format!("limit: {limit} is not between 1 and {MAX_LIMIT}"));
        }
        let offset = self.offset.unwrap_or(0);
        if offset < 0 {
            return Err(format!("offset: {offset} is negative"));
        }
        Ok(JournalFilter {
            text: nonempty(&self.q),
            sender: nonempty(&self.sender),
            rcpt: nonempty(&self.rcpt),
            subject: nonempty(&self.subject),
            ip: nonempty(&self.ip),
            outcome: verdict,
            since_us: day("from", &self.from, false)?,
            until_us: day("until", &self.until, true)?,
            has_attachment,
            limit: Some(limit),
            offset: Some(offset),
            ..Default::default()
        })
    }
}

#[derive(Serialize)]
struct Summary<'a> {
    id: &'a str,
    time: String,
    sender: &'a str,
    recipients: Vec<&'a str>,
    subject: Option<&'a str>,
    size: Option<i64>,
    verdict: &'a str,
    decided_by: &'a str,
    client_ip: &'a str,
    attachments: usize,
    replay_of: Option<&'a str>,
    flag: Option<&'a str>,
}

fn summary(e: &JournalEntry) -> Summary<'_> {
    Summary {
        id: &e.id,
        time: crate::clock::rfc3339(e.time_us),
        sender: &e.sender,
        recipients: e.recipients.iter().map(|r| r.address.as_str()).collect(),
        subject: e.subject.as_deref(),
        size: e.size,
        verdict: &e.outcome,
        decided_by: &e.decided_by,
        client_ip: &e.client_ip,
        attachments: e.attachments.len(),
        replay_of: e.replay_of.as_deref(),
        flag: e.flag.as_deref(),
    }
}

async fn messages(
    State(web): State<Web>,
    ApiViewer(v): ApiViewer,
    ApiQuery(s): ApiQuery<Search>,
) -> Response {
    let mut f = match s.filter() {
        Ok(f) => f,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e),
    };
    scope(&v, &mut f);
    match web.store.query_journal(&f).await {
        Ok(list) => Json(json!({ "messages": list.iter().map(summary).collect::<Vec<_>>() }))
            .into_response(),
        Err(e) => {
            tracing::error!("message search failed: {e:#}");
            error(StatusCode::INTERNAL_SERVER_ERROR, "search failed")
        }
    }
}

/// The kept message of a record, decompressed.
pub async fn raw_message(web: &Web, id: &str) -> Result<Option<Vec<u8>>, StatusCode> {
    match web.store.body(id).await {
        Ok(Some(b)) => crate::modules::backup::decompress(&b)
            .map(Some)
            .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR),
        Ok(None) => Ok(None),
        Err(_) => Err(StatusCode::INTERNAL_SERVER_ERROR),
    }
}

async fn message(
    State(web): State<Web>,
    ApiViewer(v): ApiViewer,
    ApiPath(id): ApiPath<String>,
) -> Response {
    let e = match find(&web, &v, &id).await {
        Ok(e) => e,
        Err(s) => return error(s, "no such message"),
    };
    let raw = if super::policy::may_have_content(&v, &e) {
        raw_message(&web, e.kept_as()).await.ok().flatten()
    } else {
        None
    };
    let view = raw.as_deref().map(super::message::view);
    Json(json!({
        "message": summary(&e),
        "recipients": e.recipients,
        "attachments": e.attachments,
        "message_id": e.message_id,
        "helo": e.helo,
        "tls": e.tls,
        "final_reply": e.final_reply,
        "actor": e.actor,
        "notes": e.notes,
        "kept": raw.is_some(),
        "headers": view.as_ref().map(|v| &v.headers),
        "text": view.as_ref().and_then(|v| v.text.as_ref()),
        "has_html": view.as_ref().is_some_and(|v| v.html.is_some()),
    }))
    .into_response()
}

/// `message/rfc822` download, shared with the pages.
pub async fn raw_response(web: &Web, v: &super::auth::Viewer, id: &str) -> Response {
    let e = match find(web, v, id).await {
        Ok(e) => e,
        Err(s) => return error(s, "no such message"),
    };
    if !super::policy::may_have_content(v, &e) {
        return error(
            StatusCode::FORBIDDEN,
            "a message with a virus is downloaded by an administrator only",
        );
    }
    match raw_message(web, e.kept_as()).await {
        Ok(Some(bytes)) => (
            [
                (header::CONTENT_TYPE, "message/rfc822".to_string()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"{}.eml\"", e.id),
                ),
            ],
            bytes,
        )
            .into_response(),
        Ok(None) => error(StatusCode::NOT_FOUND, "the message was not kept"),
        Err(s) => error(s, "cannot read the message"),
    }
}

async fn raw(
    State(web): State<Web>,
    ApiViewer(v): ApiViewer,
    ApiPath(id): ApiPath<String>,
) -> Response {
    raw_response(&web, &v, &id).await
}

#[derive(Deserialize, Default)]
struct ReplayBody {
    to: Option<String>,
}

async fn replay(
    State(web): State<Web>,
    ApiViewer(v): ApiViewer,
    ApiPath(id): ApiPath<String>,
    headers: HeaderMap,
    body: Option<ApiJson<ReplayBody>>,
) -> Response {
    if let Err(s) = v.check_csrf(csrf_header(&headers)) {
        return error(s, "missing or wrong X-CSRF-Token");
    }
    let e = match find(&web, &v, &id).await {
        Ok(e) => e,
        Err(s) => return error(s, "no such message"),
    };
    let requested = body.and_then(|ApiJson(b)| b.to);
    let to = match replay_target(&v, &e, requested.as_deref()) {
        Ok(t) => t,
        Err((s, text)) => return error(s, text),
    };
    match crate::replay::replay(&web.config, &web.store, &e.id, to.as_deref(), &v.actor()).await {
        Ok(r) => Json(json!(r)).into_response(),
        Err(err) => replay_error(err),
    }
}

pub fn replay_error(err: crate::replay::ReplayError) -> Response {
    use crate::replay::ReplayError::*;
    let status = match &err {
        NotFound(_) | NotKept(_) => StatusCode::NOT_FOUND,
        NotLocal(_) | NoRecipient => StatusCode::UNPROCESSABLE_ENTITY,
        Other(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    error(status, &err.to_string())
}
