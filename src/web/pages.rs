//! The HTML pages: sign-in, the message list with search, a message with its replay form, and the
//! admin pages (users, bulk replay). Every POST carries the session's CSRF token.

use axum::extract::{ConnectInfo, Form, Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;

use super::api::{clear_cookie, raw_message, raw_response, sign_in, Search};
use super::auth::{PageViewer, Viewer};
use super::html::{esc, page, url, STYLE};
use super::policy::{find, replay_target, scope};
use super::Web;
use crate::storage::{JournalEntry, Role};

pub fn routes() -> Router<Web> {
    Router::new()
        .route("/static/style.css", get(|| async { ([(header::CONTENT_TYPE, "text/css; charset=utf-8"), (header::CACHE_CONTROL, "max-age=3600")], STYLE) }))
        .route("/login", get(login_page).post(login_post))
        .route("/logout", post(logout))
        .route("/", get(list))
        .route("/messages/{id}", get(show))
        .route("/messages/{id}/raw", get(download))
        .route("/messages/{id}/html", get(html_part))
        .route("/messages/{id}/replay", post(replay))
        .route("/admin/users", get(users).post(user_add))
        .route("/admin/users/delete", post(user_delete))
        .route("/admin/users/password", post(user_password))
        .route("/admin/users/alias", post(user_alias))
        .route("/admin/bulk", get(bulk_page).post(bulk_start))
        .route("/admin/bulk/{job}", get(bulk_progress))
}

fn status_page(status: StatusCode, v: Option<&Viewer>, text: &str) -> Response {
    (status, Html(page(status.canonical_reason().unwrap_or("Error"), v, &format!(r#"<div class="notice bad">{}</div><p><a href="/">Back to the messages</a></p>"#, esc(text))))).into_response()
}

fn csrf_ok(v: &Viewer, presented: &str) -> Result<(), Response> {
    v.check_csrf(Some(presented)).map_err(|s| status_page(s, Some(v), "The form has expired or did not come from this site. Reload the page and try again."))
}

fn admin_only(v: &Viewer) -> Result<(), Response> {
    if v.is_admin() { Ok(()) } else { Err(status_page(StatusCode::FORBIDDEN, Some(v), "This page is for administrators.")) }
}

// --- sign-in ------------------------------------------------------------------------------------

fn login_form(error: Option<&str>) -> String {
    let notice = error.map(|e| format!(r#"<div class="notice bad">{}</div>"#, esc(e))).unwrap_or_default();
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

async fn login_post(State(web): State<Web>, ConnectInfo(super::Peer(peer)): ConnectInfo<super::Peer>, Form(f): Form<LoginForm>) -> Response {
    match sign_in(&web, peer.ip(), &f.username, &f.password).await {
        Ok(l) => ([(header::SET_COOKIE, l.cookie)], Redirect::to("/")).into_response(),
        Err((status, text)) => (status, Html(login_form(Some(&text)))).into_response(),
    }
}

#[derive(Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

async fn logout(State(web): State<Web>, PageViewer(v): PageViewer, Form(f): Form<CsrfForm>) -> Response {
    if let Err(r) = csrf_ok(&v, &f.csrf) {
        return r;
    }
    let _ = web.store.delete_session(&v.token_hash).await;
    ([(header::SET_COOKIE, clear_cookie(&web))], Redirect::to("/login")).into_response()
}

// --- messages -------------------------------------------------------------------------------------

fn badge(outcome: &str) -> String {
    format!(r#"<span class="badge {0}">{0}</span>"#, esc(outcome))
}

fn size(n: Option<i64>) -> String {
    match n {
        Some(n) if n >= 1 << 20 => format!("{:.1} MB", n as f64 / 1048576.0),
        Some(n) if n >= 1024 => format!("{:.0} KB", n as f64 / 1024.0),
        Some(n) => format!("{n} B"),
        None => "–".into(),
    }
}

fn when(us: i64) -> String {
    crate::clock::rfc3339(us).replace('T', " ").trim_end_matches('Z').to_string()
}

fn opt(v: &Option<String>) -> String {
    esc(v.as_deref().unwrap_or(""))
}

fn search_form(s: &Search, admin: bool) -> String {
    let verdicts = ["", "delivered", "refused", "tempfailed", "discarded", "abandoned"]
        .iter()
        .map(|o| format!(r#"<option value="{o}"{}>{}</option>"#, if s.verdict.as_deref() == Some(*o) { " selected" } else { "" }, if o.is_empty() { "any" } else { o }))
        .collect::<String>();
    let att = s.attachments.as_deref().unwrap_or("");
    let ip = if admin { format!(r#"<div><label for="ip">Client IP</label><input id="ip" name="ip" value="{}"></div>"#, opt(&s.ip)) } else { String::new() };
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
    for (k, v) in [("q", &s.q), ("from", &s.from), ("until", &s.until), ("verdict", &s.verdict), ("attachments", &s.attachments), ("ip", &s.ip), ("rcpt", &s.rcpt), ("sender", &s.sender), ("subject", &s.subject)] {
        if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
            parts.push(format!("{k}={}", url(v)));
        }
    }
    parts.push(format!("offset={offset}"));
    parts.join("&")
}

async fn list(State(web): State<Web>, PageViewer(v): PageViewer, Query(s): Query<Search>) -> Response {
    let mut f = match s.filter() {
        Ok(f) => f,
        Err(e) => return status_page(StatusCode::BAD_REQUEST, Some(&v), &e),
    };
    scope(&v, &mut f);
    let limit = f.limit.unwrap_or(50);
    let offset = f.offset.unwrap_or(0);
    let list = match web.store.query_journal(&f).await {
        Ok(l) => l,
        Err(_) => return status_page(StatusCode::INTERNAL_SERVER_ERROR, Some(&v), "The search failed."),
    };
    let rows: String = list.iter().map(row).collect();
    let table = if list.is_empty() {
        r#"<div class="card muted">No messages match.</div>"#.to_string()
    } else {
        format!(r#"<table class="messages"><thead><tr><th>Received</th><th>From</th><th>To</th><th>Subject</th><th class="hide-narrow">Size</th><th>Verdict</th></tr></thead><tbody>{rows}</tbody></table>"#)
    };
    let mut pager = String::new();
    if offset > 0 {
        pager.push_str(&format!(r#"<a class="button secondary" href="/?{}">Newer</a>"#, query_string(&s, (offset - limit).max(0))));
    }
    if list.len() as i64 == limit {
        pager.push_str(&format!(r#"<a class="button secondary" href="/?{}">Older</a>"#, query_string(&s, offset + limit)));
    }
    let bulk = if v.is_admin() && !list.is_empty() {
        let hidden: String = [("q", &s.q), ("from", &s.from), ("until", &s.until), ("verdict", &s.verdict), ("attachments", &s.attachments), ("ip", &s.ip), ("rcpt", &s.rcpt), ("sender", &s.sender), ("subject", &s.subject)]
            .iter()
            .filter_map(|(k, v)| v.as_deref().filter(|v| !v.is_empty()).map(|v| format!(r#"<input type="hidden" name="{k}" value="{}">"#, esc(v))))
            .collect();
        format!(
            r#"<form class="card row" method="post" action="/admin/bulk"><input type="hidden" name="csrf" value="{}">{hidden}<div><label for="bulk-to">Replay every result of this search to (empty: the original recipients)</label><input id="bulk-to" name="to" type="email" placeholder="user@{}"></div><div><button type="submit" class="secondary">Replay all results</button></div></form>"#,
            esc(v.csrf.as_deref().unwrap_or("")),
            esc(web.config.domains.local.first().map(String::as_str).unwrap_or("example.org"))
        )
    } else {
        String::new()
    };
    let body = format!(r#"<h1>Messages</h1>{}{table}<div class="pager">{pager}</div>{bulk}"#, search_form(&s, v.is_admin()));
    Html(page("Messages", Some(&v), &body)).into_response()
}

fn row(e: &JournalEntry) -> String {
    let to: Vec<String> = e.recipients.iter().map(|r| if r.accepted { esc(&r.address) } else { format!(r#"<s class="muted">{}</s>"#, esc(&r.address)) }).collect();
    let subject = e.subject.as_deref().filter(|s| !s.is_empty()).unwrap_or("(no subject)");
    let replay = if e.replay_of.is_some() { r#" <span class="badge">replay</span>"# } else { "" };
    let clip = if e.attachments.is_empty() { "" } else { " 📎" };
    format!(
        r#"<tr><td class="small">{}</td><td>{}</td><td>{}</td><td><a href="/messages/{}">{}</a>{clip}{replay}</td><td class="hide-narrow small">{}</td><td>{}</td></tr>"#,
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
}

async fn show(State(web): State<Web>, PageViewer(v): PageViewer, Path(id): Path<String>, Query(q): Query<ShowQuery>) -> Response {
    let e = match find(&web, &v, &id).await {
        Ok(e) => e,
        Err(s) => return status_page(s, Some(&v), "No such message."),
    };
    let source = e.replay_of.clone().unwrap_or(e.id.clone());
    let raw = raw_message(&web, &source).await.ok().flatten();
    let view = raw.as_deref().map(super::message::view).unwrap_or_default();
    let mut notice = String::new();
    if let Some(new) = &q.replayed {
        let f = crate::storage::JournalFilter { id: Some(new.clone()), limit: Some(1), ..Default::default() };
        if let Some(r) = web.store.query_journal(&f).await.ok().and_then(|mut l| l.pop()).filter(|r| r.replay_of.as_deref() == Some(source.as_str()) && super::policy::can_see(&v, r)) {
            let class = if r.outcome == "delivered" { "ok" } else { "bad" };
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
    if let Some(err) = &q.error {
        notice.push_str(&format!(r#"<div class="notice bad" id="replay-result">{}</div>"#, esc(err)));
    }
    let headers: String = view.headers.iter().map(|(k, val)| format!("<dt>{}</dt><dd>{}</dd>", esc(k), esc(val))).collect();
    let rcpts: String = e
        .recipients
        .iter()
        .map(|r| format!("<tr><td>{}</td><td class=\"small\">{}</td></tr>", esc(&r.address), esc(&r.reply)))
        .collect();
    let atts: String = e.attachments.iter().map(|a| format!("<li>{} <span class=\"muted small\">{} · {}</span></li>", esc(if a.filename.is_empty() { "(unnamed)" } else { &a.filename }), esc(&a.mime_type), size(Some(a.size)))).collect();
    let atts = if atts.is_empty() { String::new() } else { format!("<h2>Attachments</h2><ul>{atts}</ul>") };
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
                Ok(Some(to)) => format!(r#"<div class="muted small">Replay delivers it again to {}</div>"#, esc(&to)),
                _ => String::new(),
            }
        };
        let can_replay = v.is_admin() || replay_target(&v, &e, None).is_ok();
        let form = if can_replay {
            format!(r#"<form method="post" action="/messages/{id}/replay" class="row"><input type="hidden" name="csrf" value="{csrf}">{target}<div><button type="submit" id="replay">Replay</button></div></form>"#, id = esc(&e.id))
        } else {
            String::new()
        };
        format!(r#"<div class="card row"><a class="button secondary" href="/messages/{}/raw">Download .eml</a>{form}</div>"#, esc(&e.id))
    } else {
        String::new()
    };
    let replay_note = match &e.replay_of {
        Some(of) => format!(r#"<p class="muted">A replay of <a href="/messages/{0}">{0}</a> by {1}.</p>"#, esc(of), esc(e.actor.as_deref().unwrap_or("?"))),
        None => String::new(),
    };
    let subject = e.subject.as_deref().filter(|s| !s.is_empty()).unwrap_or("(no subject)");
    let html = format!(
        r#"{notice}<h1>{subject}</h1>{replay_note}{actions}
<div class="card"><dl class="headers">{headers}<dt>Envelope from</dt><dd>{sender}</dd><dt>Received</dt><dd>{when} from {ip} ({helo}){tls}</dd><dt>Verdict</dt><dd>{badge} by {by} — <span class="small">{reply}</span></dd><dt>Transaction</dt><dd>{id}</dd></dl></div>
<div class="card"><h2>Recipients</h2><table>{rcpts}</table>{atts}</div>
<div class="card"><h2>Message</h2>{body}</div>"#,
        subject = esc(subject),
        sender = esc(if e.sender.is_empty() { "<>" } else { &e.sender }),
        when = when(e.time_us),
        ip = esc(&e.client_ip),
        helo = esc(&e.helo),
        tls = e.tls.as_deref().map(|t| format!(", {}", esc(t))).unwrap_or_default(),
        badge = badge(&e.outcome),
        by = esc(&e.decided_by),
        reply = esc(&e.final_reply),
        id = esc(&e.id),
    );
    Html(page(subject, Some(&v), &html)).into_response()
}

async fn download(State(web): State<Web>, PageViewer(v): PageViewer, Path(id): Path<String>) -> Response {
    raw_response(&web, &v, &id).await
}

/// The HTML part alone, for the sandboxed frame: no script, no remote content, no navigation.
async fn html_part(State(web): State<Web>, PageViewer(v): PageViewer, Path(id): Path<String>) -> Response {
    let Ok(e) = find(&web, &v, &id).await else { return StatusCode::NOT_FOUND.into_response() };
    let source = e.replay_of.clone().unwrap_or(e.id.clone());
    let Some(html) = raw_message(&web, &source).await.ok().flatten().and_then(|r| super::message::view(&r).html) else {
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

async fn replay(State(web): State<Web>, PageViewer(v): PageViewer, Path(id): Path<String>, Form(f): Form<ReplayForm>) -> Response {
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

// --- admin ----------------------------------------------------------------------------------------

#[derive(Deserialize, Default)]
struct UsersQuery {
    msg: Option<String>,
    error: Option<String>,
}

async fn users(State(web): State<Web>, PageViewer(v): PageViewer, Query(q): Query<UsersQuery>) -> Response {
    if let Err(r) = admin_only(&v) {
        return r;
    }
    let list = web.store.users(None).await.unwrap_or_default();
    let csrf = esc(v.csrf.as_deref().unwrap_or(""));
    let rows: String = list
        .iter()
        .map(|u| {
            let del = if u.address == v.user.address {
                String::new()
            } else {
                format!(r#"<form method="post" action="/admin/users/delete"><input type="hidden" name="csrf" value="{csrf}"><input type="hidden" name="address" value="{}"><button class="secondary">Remove</button></form>"#, esc(&u.address))
            };
            format!("<tr><td>{}</td><td>{}</td><td class=\"small\">{}</td><td>{del}</td></tr>", esc(&u.address), u.role.as_str(), esc(&u.aliases.join(", ")))
        })
        .collect();
    let notice = match (&q.msg, &q.error) {
        (Some(m), _) => format!(r#"<div class="notice ok">{}</div>"#, esc(m)),
        (_, Some(e)) => format!(r#"<div class="notice bad">{}</div>"#, esc(e)),
        _ => String::new(),
    };
    let body = format!(
        r#"<h1>Users</h1>{notice}<table><thead><tr><th>Address</th><th>Role</th><th>Aliases</th><th></th></tr></thead><tbody>{rows}</tbody></table>
<h2>Change a password</h2><form class="card row" method="post" action="/admin/users/password"><input type="hidden" name="csrf" value="{csrf}"><div><label for="pw-address">Mail address</label><input id="pw-address" name="address" type="email" required></div><div><label for="pw-password">New password</label><input id="pw-password" name="password" type="password" minlength="8" required></div><div><button type="submit" class="secondary">Change</button></div></form>
<h2>Attach an alias</h2><form class="card row" method="post" action="/admin/users/alias"><input type="hidden" name="csrf" value="{csrf}"><div><label for="al-address">User</label><input id="al-address" name="address" type="email" required></div><div><label for="al-alias">Also sees mail of</label><input id="al-alias" name="role" type="email" required></div><div><button type="submit" class="secondary">Attach</button></div></form>
<h2>Add a user</h2><form class="card row" method="post" action="/admin/users"><input type="hidden" name="csrf" value="{csrf}"><div><label for="address">Mail address</label><input id="address" name="address" type="email" required></div><div><label for="password">Password (8 characters or more)</label><input id="password" name="password" type="password" minlength="8" required></div><div><label for="role">Role</label><select id="role" name="role"><option value="user">user</option><option value="admin">admin</option></select></div><div><button type="submit">Add</button></div></form>"#
    );
    Html(page("Users", Some(&v), &body)).into_response()
}

#[derive(Deserialize)]
struct UserForm {
    #[serde(default)]
    csrf: String,
    address: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    role: String,
}

async fn user_add(State(web): State<Web>, PageViewer(v): PageViewer, Form(f): Form<UserForm>) -> Response {
    if let Err(r) = admin_only(&v).and_then(|_| csrf_ok(&v, &f.csrf)) {
        return r;
    }
    let result = async {
        let name = crate::cli::user::account_name(&f.address)?;
        if web.store.user(&name).await?.is_some() {
            anyhow::bail!("{name} exists already");
        }
        let pw = f.password.clone();
        let hash = tokio::task::spawn_blocking(move || crate::auth::hash_password(&pw)).await??;
        web.store.add_user(&name, &hash, if f.role == "admin" { Role::Admin } else { Role::User }).await?;
        Ok::<_, anyhow::Error>(name)
    }
    .await;
    match result {
        Ok(name) => Redirect::to(&format!("/admin/users?msg={}", url(&format!("added {name}")))).into_response(),
        Err(e) => Redirect::to(&format!("/admin/users?error={}", url(&e.to_string()))).into_response(),
    }
}

async fn user_password(State(web): State<Web>, PageViewer(v): PageViewer, Form(f): Form<UserForm>) -> Response {
    if let Err(r) = admin_only(&v).and_then(|_| csrf_ok(&v, &f.csrf)) {
        return r;
    }
    let pw = f.password.clone();
    let result = async {
        let hash = tokio::task::spawn_blocking(move || crate::auth::hash_password(&pw)).await??;
        if !web.store.set_password(&f.address, &hash).await? {
            anyhow::bail!("no user {}", f.address);
        }
        Ok::<_, anyhow::Error>(())
    }
    .await;
    match result {
        Ok(()) => Redirect::to(&format!("/admin/users?msg={}", url(&format!("password of {} changed", f.address)))).into_response(),
        Err(e) => Redirect::to(&format!("/admin/users?error={}", url(&e.to_string()))).into_response(),
    }
}

/// The alias travels in the form's `role` field (one form struct serves all user forms).
async fn user_alias(State(web): State<Web>, PageViewer(v): PageViewer, Form(f): Form<UserForm>) -> Response {
    if let Err(r) = admin_only(&v).and_then(|_| csrf_ok(&v, &f.csrf)) {
        return r;
    }
    let result = async {
        let (name, alias) = (crate::cli::user::account_name(&f.address)?, crate::cli::user::account_name(&f.role)?);
        if web.store.user(&name).await?.is_none() {
            anyhow::bail!("no user {name}");
        }
        web.store.add_alias(&name, &alias).await.map_err(|_| anyhow::anyhow!("{alias} is an alias already"))?;
        Ok::<_, anyhow::Error>(format!("{name} now also sees mail of {alias}"))
    }
    .await;
    match result {
        Ok(m) => Redirect::to(&format!("/admin/users?msg={}", url(&m))).into_response(),
        Err(e) => Redirect::to(&format!("/admin/users?error={}", url(&e.to_string()))).into_response(),
    }
}

async fn user_delete(State(web): State<Web>, PageViewer(v): PageViewer, Form(f): Form<UserForm>) -> Response {
    if let Err(r) = admin_only(&v).and_then(|_| csrf_ok(&v, &f.csrf)) {
        return r;
    }
    match web.store.delete_user(&f.address).await {
        Ok(true) => Redirect::to(&format!("/admin/users?msg={}", url(&format!("removed {}", f.address)))).into_response(),
        _ => Redirect::to("/admin/users?error=no%20such%20user").into_response(),
    }
}

async fn bulk_page(State(web): State<Web>, PageViewer(v): PageViewer) -> Response {
    if let Err(r) = admin_only(&v) {
        return r;
    }
    let csrf = esc(v.csrf.as_deref().unwrap_or(""));
    let jobs: String = web
        .bulk
        .all()
        .iter()
        .map(|p| format!(r#"<tr><td><a href="/admin/bulk/{0}">{0}</a></td><td>{1}</td><td>{2}/{3}</td><td>{4}</td></tr>"#, esc(&p.id), esc(&p.what), p.done, p.total, if p.finished { "finished" } else { "running" }))
        .collect();
    let jobs = if jobs.is_empty() { String::new() } else { format!("<h2>Jobs</h2><table><thead><tr><th>Job</th><th>What</th><th>Done</th><th></th></tr></thead><tbody>{jobs}</tbody></table>") };
    let body = format!(
        r#"<h1>Bulk replay</h1><p class="muted">After a mail server outage: deliver again everything one address received in a period. (Any search result can also be replayed from the message list.)</p>
<form class="card row" method="post" action="/admin/bulk"><input type="hidden" name="csrf" value="{csrf}"><input type="hidden" name="verdict" value="delivered"><div><label for="rcpt">Recipient</label><input id="rcpt" name="rcpt" type="email" required></div><div><label for="from">From</label><input id="from" name="from" type="date" required></div><div><label for="until">Until</label><input id="until" name="until" type="date"></div><div><button type="submit">Replay</button></div></form>{jobs}"#
    );
    Html(page("Bulk replay", Some(&v), &body)).into_response()
}

#[derive(Deserialize)]
struct BulkForm {
    #[serde(default)]
    csrf: String,
    to: Option<String>,
    #[serde(flatten)]
    search: SearchFields,
}

/// The search fields as they come in a form (flattened serde needs owned strings only).
#[derive(Deserialize, Default)]
struct SearchFields {
    q: Option<String>,
    subject: Option<String>,
    sender: Option<String>,
    rcpt: Option<String>,
    ip: Option<String>,
    verdict: Option<String>,
    from: Option<String>,
    until: Option<String>,
    attachments: Option<String>,
}

async fn bulk_start(State(web): State<Web>, PageViewer(v): PageViewer, Form(f): Form<BulkForm>) -> Response {
    if let Err(r) = admin_only(&v).and_then(|_| csrf_ok(&v, &f.csrf)) {
        return r;
    }
    let s = f.search;
    let search = Search { q: s.q, sender: s.sender, rcpt: s.rcpt.clone(), subject: s.subject, ip: s.ip, verdict: s.verdict, from: s.from, until: s.until, attachments: s.attachments, limit: None, offset: None };
    let mut filter = match search.filter() {
        Ok(f) => f,
        Err(e) => return status_page(StatusCode::BAD_REQUEST, Some(&v), &e),
    };
    filter.limit = Some(10_000);
    filter.offset = None;
    let mut list = web.store.query_journal(&filter).await.unwrap_or_default();
    list.retain(|e| e.replay_of.is_none());
    list.reverse();
    // A full address as recipient: its own accepted mail only (the search matches substrings,
    // ann@ must not collect joann@'s mail), delivered to that address alone (the outage case).
    let rcpt_exact = s.rcpt.as_deref().and_then(|r| crate::cli::user::account_name(r).ok());
    if let Some(r) = &rcpt_exact {
        list.retain(|e| e.recipients.iter().any(|x| x.accepted && x.address.eq_ignore_ascii_case(r)));
    }
    let to = f.to.filter(|t| !t.trim().is_empty()).or(rcpt_exact);
    if list.is_empty() {
        return status_page(StatusCode::BAD_REQUEST, Some(&v), "Nothing matches: no message to replay.");
    }
    let what = format!("{} messages{}", list.len(), to.as_deref().map(|t| format!(" to {t}")).unwrap_or_default());
    let job = web.bulk.start(web.clone(), v.actor(), what, list.into_iter().map(|e| e.id).collect(), to);
    Redirect::to(&format!("/admin/bulk/{job}")).into_response()
}

async fn bulk_progress(State(web): State<Web>, PageViewer(v): PageViewer, Path(job): Path<String>) -> Response {
    if let Err(r) = admin_only(&v) {
        return r;
    }
    let Some(p) = web.bulk.get(&job) else { return status_page(StatusCode::NOT_FOUND, Some(&v), "No such job.") };
    let pct = if p.total == 0 { 100 } else { p.done * 100 / p.total };
    let state = if p.finished { format!("Finished: {} delivered, {} failed.", p.done - p.failed, p.failed) } else { "Running…".into() };
    let errors: String = p.errors.iter().map(|e| format!("<li class=\"small\">{}</li>", esc(e))).collect();
    let body = format!(
        r#"<h1>Bulk replay</h1><div class="card"><p>{what}, started by {actor}</p><progress max="{total}" value="{done}"></progress><p id="progress">{done} of {total} ({pct}%) — <span id="state">{state}</span></p><ul>{errors}</ul></div><p><a href="/admin/bulk">All jobs</a></p>"#,
        what = esc(&p.what),
        actor = esc(&p.actor),
        done = p.done,
        total = p.total,
    );
    let mut html = page("Bulk replay", Some(&v), &body);
    if !p.finished {
        html = html.replacen("<title>", "<meta http-equiv=\"refresh\" content=\"1\"><title>", 1);
    }
    Html(html).into_response()
}
