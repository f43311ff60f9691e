//! The HTML pages: sign-in, the message list with search, and a message with its replay form
//! (the admin pages are in `admin`). Every POST carries the session's CSRF token.

use axum::Router;
use axum::extract::{ConnectInfo, Form, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use super::Web;
use super::api::{Search, clear_cookie, raw_message, raw_response, sign_in};
use super::auth::{PageViewer, Viewer};
use super::html::{CLIP, STYLE, esc, page, url, when};
use super::policy::{find, replay_target, scope};
use crate::storage::JournalEntry;

pub fn routes() -> Router<Web> {
    Router::new()
        .route(
            "/static/style.css",
            get(|| async {
                (
                    [
                        (header::CONTENT_TYPE, "text/css; charset=utf-8"),
                        (header::CACHE_CONTROL, "max-age=3600"),
                    ],
                    STYLE,
                )
            }),
        )
        .route("/login", get(login_page).post(login_post))
        .route("/logout", post(logout))
        .route("/", get(list))
        .route("/messages/{id}", get(show))
        .route("/messages/{id}/raw", get(download))
        .route("/messages/{id}/html", get(html_part))
        .route("/messages/{id}/replay", post(replay))
}

pub(super) fn status_page(status: StatusCode, v: Option<&Viewer>, text: &str) -> Response {
    (
        status,
        Html(page(
            status.canonical_reason().unwrap_or("Error"),
            v,
            &format!(
                r#"<div class="notice bad">{}</div><p><a href="/">Back to the messages</a></p>"#,
                esc(text)
            ),
        )),
    )
        .into_response()
}

pub(super) fn csrf_ok(v: &Viewer, presented: &str) -> Result<(), Response> {
    v.check_csrf(Some(presented)).map_err(|s| {
        status_page(
            s,
            Some(v),
            "The form has expired or did not come from this site. Reload the page and try again.",
        )
    })
}

pub(super) fn admin_only(v: &Viewer) -> Result<(), Response> {
    if v.is_admin() {
        Ok(())
    } else {
        Err(status_page(
            StatusCode::FORBIDDEN,
            Some(v),
            "This page is for administrators.",
        ))
    }
}

// --- sign-in ------------------------------------------------------------------------------------

fn login_form(error: Option<&str>) -> String {
    let notice = error
        .map(|e| format!(r#"<div class="notice bad">{}</div>"#, esc(e)))
        .unwrap_or_default();
    page(
        "Sign in",
        None,
        &format!(
            r#"<div class="card login"><h1>Sign in</h1>{notice}<form method="post" action="/login"><p><label for="username">Mail address</label><input id="username" name="username" type="email" autocomplete="username" required autofocus></p><p><label for="password">Password</label><input id="password" name="password" type="password" autocomplete="current-password" required></p><p><button type="submit">Sign in</button></p></form></div>"#
        ),
    )
}

async fn login_page() -> Html<String> {
    Html(login_form(None))
}

#[derive(Deserialize)]
struct LoginForm {
    username: String,
    password: String,
}

async fn login_post(
    State(web): State<Web>,
    ConnectInfo(super::Peer(peer)): ConnectInfo<super::Peer>,
    Form(f): Form<LoginForm>,
) -> Response {
    match sign_in(
        &web,
        peer.ip(),
        &f.username,
        &f.password,
        super::twofactor::CodeAt::NextPage,
    )
    .await
    {
        Ok(l) => (
            [(header::SET_COOKIE, l.cookie)],
            Redirect::to(if l.code_next { "/login/code" } else { "/" }),
        )
            .into_response(),
        Err((status, text)) => (status, Html(login_form(Some(&text)))).into_response(),
    }
}

#[derive(Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// Sign-out works at every stage of sign-in (also while a code or enrolment is due).
async fn logout(
    State(web): State<Web>,
    super::auth::SigningIn(v, _): super::auth::SigningIn,
    Form(f): Form<CsrfForm>,
) -> Response {
    if let Err(r) = csrf_ok(&v, &f.csrf) {
        return r;
    }
    let _ = web.store.delete_session(&v.token_hash).await;
    (
        [(header::SET_COOKIE, clear_cookie(&web))],
        Redirect::to("/login"),
    )
        .into_response()
}

// --- messages -------------------------------------------------------------------------------------

fn badge(outcome: &str) -> String {
    format!(r#"<span class="badge {0}">{0}</span>"#, esc(outcome))
}

fn size(n: Option<i64>) -> String {
    match n {
        // A no-break space: `495 B` never wraps between number and unit.
        Some(n) if n >= 1 << 20 => format!("{:.1}\u{a0}MB", n as f64 / 1048576.0),
        Some(n) if n >= 1024 => format!("{:.0}\u{a0}KB", n as f64 / 1024.0),
        Some(n) => format!("{n}\u{a0}B"),
        None => "–".into(),
    }
}

fn opt(v: &Option<String>) -> String {
    esc(v.as_deref().unwrap_or(""))
}

fn search_form(s: &Search, admin: bool) -> String {
    let verdicts = [
        "",
        "delivered",
        "refused",
        "tempfailed",
        "discarded",
        "abandoned",
    ]
    .iter()
    .map(|o| {
        format!(
            r#"<option value="{o}"{}>{}</option>"#,
            if s.verdict.as_deref() == Some(*o) {
                " selected"
            } else {
                ""
            },
            if o.is_empty() { "any" } else { o }
        )
    })
    .collect::<String>();
    let att = s.attachments.as_deref().unwrap_or("");
    let ip = if admin {
        format!(
            r#"<div><label for="ip">Client IP</label><input id="ip" name="ip" value="{}"></div>"#,
            opt(&s.ip)
        )
    } else {
        String::new()
    };
    format!(
        r#"<form class="search card" method="get" action="/">
<div><label for="q">Search sender, recipient, subject</label><input id="q" name="q" value="{q}" placeholder="e.g. invoice or alice@"></div>
<div><label for="from">From</label><input id="from" name="from" type="date" value="{from}"></div>
<div><label for="until">Until</label><input id="until" name="until" type="date" value="{until}"></div>
<div><label for="verdict">Verdict</label><select id="verdict" name="verdict">{verdicts}</select></div>
<div><label for="attachments">Attachments</label><select id="attachments" name="attachments"><option value="">any</option><option value="yes"{ay}>with</option><option value="no"{an}>without</option></select></div>
{ip}<div><button type="submit">Search</button></div></form>"#,
        q = opt(&s.q),
        from = opt(&s.from),
        until = opt(&s.until),
        ay = if att == "yes" { " selected" } else { "" },
        an = if att == "no" { " selected" } else { "" },
    )
}

fn query_string(s: &Search, offset: i64) -> String {
    let mut parts = Vec::new();
    for (k, v) in [
        ("q", &s.q),
        ("from", &s.from),
        ("until", &s.until),
        ("verdict", &s.verdict),
        ("attachments", &s.attachments),
        ("ip", &s.ip),
        ("rcpt", &s.rcpt),
        ("sender", &s.sender),
        ("subject", &s.subject),
    ] {
        if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
            parts.push(format!("{k}={}", url(v)));
        }
    }
    parts.push(format!("offset={offset}"));
    parts.join("&")
}

async fn list(
    State(web): State<Web>,
    PageViewer(v): PageViewer,
    Query(s): Query<Search>,
) -> Response {
    if v.user.role == crate::storage::Role::Interception {
        // An officer has no mail to list: their start page is the orders.
        return axum::response::Redirect::to("/intercept").into_response();
    }
    let mut f = match s.filter() {
        Ok(f) => f,
        Err(e) => return status_page(StatusCode::BAD_REQUEST, Some(&v), &e),
    };
    scope(&v, &mut f);
    let limit = f.limit.unwrap_or(50);
    let offset = f.offset.unwrap_or(0);
    let list = match web.store.query_journal(&f).await {
        Ok(l) => l,
        Err(_) => {
            return status_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                Some(&v),
                "The search failed.",
            );
        }
    };
    let rows: String = list.iter().map(row).collect();
    let table = if list.is_empty() {
        r#"<div class="card muted">No messages match.</div>"#.to_string()
    } else {
        format!(
            r#"<table class="messages"><thead><tr><th>Received</th><th>From</th><th>To</th><th>Subject</th><th class="hide-narrow">Size</th><th>Verdict</th></tr></thead><tbody>{rows}</tbody></table>"#
        )
    };
    let mut pager = String::new();
    if offset > 0 {
        pager.push_str(&format!(
            r#"<a class="button secondary" href="/?{}">Newer</a>"#,
            query_string(&s, (offset - limit).max(0))
        ));
    }
    if list.len() as i64 == limit {
        pager.push_str(&format!(
            r#"<a class="button secondary" href="/?{}">Older</a>"#,
            query_string(&s, offset + limit)
        ));
    }
    let bulk = if v.is_admin() && !list.is_empty() {
        let hidden: String = [
            ("q", &s.q),
            ("from", &s.from),
            ("until", &s.until),
            ("verdict", &s.verdict),
            ("attachments", &s.attachments),
            ("ip", &s.ip),
            ("rcpt", &s.rcpt),
            ("sender", &s.sender),
            ("subject", &s.subject),
        ]
        .iter()
        .filter_map(|(k, v)| {
            v.as_deref()
                .filter(|v| !v.is_empty())
                .map(|v| format!(r#"<input type="hidden" name="{k}" value="{}">"#, esc(v)))
        })
        .collect();
        format!(
            r#"<form class="card row" method="post" action="/admin/bulk"><input type="hidden" name="csrf" value="{}">{hidden}<div><label for="bulk-to">Replay every result of this search to (empty: the original recipients)</label><input id="bulk-to" name="to" type="email" placeholder="user@{}"></div><div><button type="submit" class="secondary">Replay all results</button></div></form>"#,
            esc(v.csrf.as_deref().unwrap_or("")),
            esc(web
                .config
                .domains
                .local
                .first()
                .map(String::as_str)
                .unwrap_or("example.org"))
        )
    } else {
        String::new()
    };
    let body = format!(
        r#"<h1>Messages</h1>{}{table}<div class="pager">{pager}</div>{bulk}"#,
        search_form(&s, v.is_admin())
    );
    Html(page("Messages", Some(&v), &body)).into_response()
}

fn row(e: &JournalEntry) -> String {
    let to: Vec<String> = e
        .recipients
        .iter()
        .map(|r| {
            if r.accepted {
                esc(&r.address)
            } else {
                format!(r#"<s class="muted">{}</s>"#, esc(&r.address))
            }
        })
        .collect();
    let subject = e
        .subject
        .as_deref()
        .filter(|s| !s.is_empty())
        .unwrap_or("(no subject)");
    let replay = if e.replay_of.is_some() {
        r#" <span class="badge">replay</span>"#
    } else {
        ""
    };
    // The direction: mail our own clients sent out.
    let replay = if e.outbound {
        format!(
            r#"{replay} <span class="badge direction-out" title="sent out by our own client">sent</span>"#
        )
    } else {
        replay.to_string()
    };
    let clip = if e.attachments.is_empty() { "" } else { CLIP };
    format!(
        r#"<tr><td class="small">{}</td><td>{}</td><td>{}</td><td><a href="/messages/{}">{}</a>{clip}{replay}</td><td class="hide-narrow small nowrap">{}</td><td>{}</td></tr>"#,
        when(e.time_us),
        esc(if e.sender.is_empty() { "<>" } else { &e.sender }),
        to.join(", "),
        esc(&e.id),
        esc(subject),
        size(e.size),
        badge(&e.outcome)
    )
}

#[derive(Deserialize, Default)]
struct ShowQuery {
    replayed: Option<String>,
    error: Option<String>,
    /// After a "Spam" / "Not spam" click: what was learned, and the sender to offer.
    marked: Option<String>,
    offer: Option<String>,
}

async fn show(
    State(web): State<Web>,
    PageViewer(v): PageViewer,
    Path(id): Path<String>,
    Query(q): Query<ShowQuery>,
) -> Response {
    let e = match find(&web, &v, &id).await {
        Ok(e) => e,
        Err(s) => return status_page(s, Some(&v), "No such message."),
    };
    let source = e.kept_as().to_string();
    let raw = if super::policy::may_have_content(&v, &e) {
        raw_message(&web, &source).await.ok().flatten()
    } else {
        None
    };
    let view = raw.as_deref().map(super::message::view).unwrap_or_default();
    let mut notice = String::new();
    if let Some(new) = &q.replayed {
        let f = crate::storage::JournalFilter {
            id: Some(new.clone()),
            limit: Some(1),
            ..Default::default()
        };
        if let Some(r) = web
            .store
            .query_journal(&f)
            .await
            .ok()
            .and_then(|mut l| l.pop())
            .filter(|r| {
                r.replay_of.as_deref() == Some(source.as_str()) && super::policy::can_see(&v, r)
            })
        {
            let class = if r.outcome == "delivered" {
                "ok"
            } else {
                "bad"
            };
            let to: Vec<&str> = r.recipients.iter().map(|x| x.address.as_str()).collect();
            notice = format!(
                r#"<div class="notice {class}" id="replay-result">Replayed to {}: the mail server answered <code>{}</code> (<a href="/messages/{}">{}</a>)</div>"#,
                esc(&to.join(", ")),
                esc(&r.final_reply),
                esc(&r.id),
                esc(&r.id)
            );
        }
    }
    if let Some(marked) = &q.marked {
        notice.push_str(&super::feedback::notice(&v, &e, marked, q.offer.as_deref()));
    }
    if let Some(err) = &q.error {
        notice.push_str(&format!(
            r#"<div class="notice bad" id="replay-result">{}</div>"#,
            esc(err)
        ));
    }
    let headers: String = view
        .headers
        .iter()
        .map(|(k, val)| format!("<dt>{}</dt><dd>{}</dd>", esc(k), esc(val)))
        .collect();
    let rcpts: String = e
        .recipients
        .iter()
        .map(|r| {
            format!(
                "<tr><td>{}</td><td class=\"small\">{}</td></tr>",
                esc(&r.address),
                esc(&r.reply)
            )
        })
        .collect();
    let atts: String = e
        .attachments
        .iter()
        .map(|a| {
            format!(
                "<li>{} <span class=\"muted small\">{} · {}</span></li>",
                esc(if a.filename.is_empty() {
                    "(unnamed)"
                } else {
                    &a.filename
                }),
                esc(&a.mime_type),
                size(Some(a.size))
            )
        })
        .collect();
    let atts = if atts.is_empty() {
        String::new()
    } else {
        format!("<h2>Attachments</h2><ul>{atts}</ul>")
    };
    let body = match (&view.html, &view.text) {
        (Some(_), _) => format!(r#"<iframe class="html" sandbox="" src="/messages/{}/html" title="Message (HTML)"></iframe>"#, esc(&e.id)),
        (None, Some(t)) => format!(r#"<pre class="body">{}</pre>"#, esc(t)),
        (None, None) if raw.is_none() => r#"<p class="muted">The message itself was not kept (it never reached the end of DATA, or the backup was purged).</p>"#.into(),
        (None, None) => r#"<p class="muted">(empty body)</p>"#.into(),
    };
    let csrf = esc(v.csrf.as_deref().unwrap_or(""));
    let actions = if raw.is_some() {
        let target = if v.is_admin() {
            r#"<div><label for="to">Replay to (empty: the original recipients)</label><input id="to" name="to" type="email"></div>"#.to_string()
        } else {
            match replay_target(&v, &e, None) {
                Ok(Some(to)) => format!(
                    r#"<div class="muted small">Replay delivers it again to {}</div>"#,
                    esc(&to)
                ),
                _ => String::new(),
            }
        };
        let can_replay = v.is_admin() || replay_target(&v, &e, None).is_ok();
        let form = if can_replay {
            format!(
                r#"<form method="post" action="/messages/{id}/replay" class="row"><input type="hidden" name="csrf" value="{csrf}">{target}<div><button type="submit" id="replay">Replay</button></div></form>"#,
                id = esc(&e.id)
            )
        } else {
            String::new()
        };
        format!(
            r#"<div class="card row"><a class="button secondary" href="/messages/{}/raw">Download .eml</a>{form}{}</div>"#,
            esc(&e.id),
            super::feedback::buttons(&v, &e)
        )
    } else {
        String::new()
    };
    let replay_note = match &e.replay_of {
        Some(of) => format!(
            r#"<p class="muted">A replay of <a href="/messages/{0}">{0}</a> by {1}.</p>"#,
            esc(of),
            esc(e.actor.as_deref().unwrap_or("?"))
        ),
        None => match &e.actor {
            Some(account) if e.outbound => format!(
                r#"<p class="muted">Sent by the account {} (SMTP AUTH).</p>"#,
                esc(account)
            ),
            _ => String::new(),
        },
    };
    let subject = e
        .subject
        .as_deref()
        .filter(|s| !s.is_empty())
        .unwrap_or("(no subject)");
    let html = format!(
        r#"{notice}<h1>{subject}</h1>{replay_note}{actions}
<div class="card"><dl class="headers">{headers}<dt>Envelope from</dt><dd>{sender}</dd><dt>Received</dt><dd>{when} from {ip} ({helo}){tls}</dd><dt>Verdict</dt><dd>{badge}{flag} by {by} — <span class="small">{reply}</span></dd>{notes}<dt>Transaction</dt><dd>{id}</dd></dl></div>
<div class="card"><h2>Recipients</h2><table>{rcpts}</table>{atts}</div>
<div class="card"><h2>Message</h2>{body}</div>"#,
        subject = esc(subject),
        sender = esc(if e.sender.is_empty() { "<>" } else { &e.sender }),
        when = when(e.time_us),
        ip = esc(&e.client_ip),
        helo = esc(&e.helo),
        tls = e
            .tls
            .as_deref()
            .map(|t| format!(", {}", esc(t)))
            .unwrap_or_default(),
        badge = badge(&e.outcome),
        by = esc(&e.decided_by),
        reply = esc(&e.final_reply),
        flag = e
            .flag
            .as_deref()
            .map(|f| format!(
                r#" <span class="badge refused" id="flag">{}</span>"#,
                esc(f)
            ))
            .unwrap_or_default(),
        notes = e
            .notes
            .as_deref()
            .map(|n| format!(
                r#"<dt>Checks</dt><dd class="small" id="notes">{}</dd>"#,
                esc(n)
            ))
            .unwrap_or_default(),
        id = esc(&e.id),
    );
    Html(page(subject, Some(&v), &html)).into_response()
}

async fn download(
    State(web): State<Web>,
    PageViewer(v): PageViewer,
    Path(id): Path<String>,
) -> Response {
    raw_response(&web, &v, &id).await
}

/// The HTML part alone, for the sandboxed frame: no script, no remote content, no navigation.
async fn html_part(
    State(web): State<Web>,
    PageViewer(v): PageViewer,
    Path(id): Path<String>,
) -> Response {
    let Ok(e) = find(&web, &v, &id).await else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let source = e.kept_as().to_string();
    let content = if super::policy::may_have_content(&v, &e) {
        raw_message(&web, &source).await.ok().flatten()
    } else {
        None
    };
    let Some(html) = content.and_then(|r| super::message::view(&r).html) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, "default-src 'none'; img-src data:; style-src 'unsafe-inline'; font-src data:; form-action 'none'; frame-ancestors 'self'; base-uri 'none'; sandbox"),
            (header::X_FRAME_OPTIONS, "SAMEORIGIN"),
        ],
        html,
    )
        .into_response()
}

#[derive(Deserialize)]
struct ReplayForm {
    #[serde(default)]
    csrf: String,
    to: Option<String>,
}

async fn replay(
    State(web): State<Web>,
    PageViewer(v): PageViewer,
    Path(id): Path<String>,
    Form(f): Form<ReplayForm>,
) -> Response {
    if let Err(r) = csrf_ok(&v, &f.csrf) {
        return r;
    }
    let e = match find(&web, &v, &id).await {
        Ok(e) => e,
        Err(s) => return status_page(s, Some(&v), "No such message."),
    };
    let back = |q: String| Redirect::to(&format!("/messages/{}?{q}", url(&e.id))).into_response();
    let to = match replay_target(&v, &e, f.to.as_deref()) {
        Ok(t) => t,
        Err((_, text)) => return back(format!("error={}", url(text))),
    };
    match crate::replay::replay(&web.config, &web.store, &e.id, to.as_deref(), &v.actor()).await {
        Ok(r) => back(format!("replayed={}", url(&r.id))),
        Err(err) => back(format!("error={}", url(&err.to_string()))),
    }
}
