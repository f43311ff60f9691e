//! The admin pages: users (add, remove, passwords, aliases) and bulk replay with its progress.

use axum::Router;
use axum::extract::{Form, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use super::Web;
use super::api::Search;
use super::auth::PageViewer;
use super::html::{count, esc, page, url};
use super::pages::{admin_only, csrf_ok, status_page};
use crate::storage::Role;

pub fn routes() -> Router<Web> {
    Router::new()
        .route("/admin/users", get(users).post(user_add))
        .route("/admin/users/delete", post(user_delete))
        .route("/admin/users/password", post(user_password))
        .route("/admin/users/alias", post(user_alias))
        .route("/admin/bulk", get(bulk_page).post(bulk_start))
        .route("/admin/bulk/{job}", get(bulk_progress))
}

#[derive(Deserialize, Default)]
struct UsersQuery {
    msg: Option<String>,
    error: Option<String>,
}

async fn users(
    State(web): State<Web>,
    PageViewer(v): PageViewer,
    Query(q): Query<UsersQuery>,
) -> Response {
    if let Err(r) = admin_only(&v) {
        return r;
    }
    let list: Vec<_> = web
        .store
        .users(None)
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|u| u.role != Role::Interception)
        .collect();
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

async fn user_add(
    State(web): State<Web>,
    PageViewer(v): PageViewer,
    Form(f): Form<UserForm>,
) -> Response {
    if let Err(r) = admin_only(&v).and_then(|_| csrf_ok(&v, &f.csrf)) {
        return r;
    }
    let result = async {
        let name = crate::auth::account_name(&f.address)?;
        if web.store.user(&name).await?.is_some() {
            anyhow::bail!("{name} exists already");
        }
        let pw = f.password.clone();
        let hash = tokio::task::spawn_blocking(move || crate::auth::hash_password(&pw)).await??;
        web.store
            .add_user(
                &name,
                &hash,
                if f.role == "admin" {
                    Role::Admin
                } else {
                    Role::User
                },
            )
            .await?;
        Ok::<_, anyhow::Error>(name)
    }
    .await;
    match result {
        Ok(name) => Redirect::to(&format!(
            "/admin/users?msg={}",
            url(&format!("added {name}"))
        ))
        .into_response(),
        Err(e) => {
            Redirect::to(&format!("/admin/users?error={}", url(&e.to_string()))).into_response()
        }
    }
}

/// Is this an account admins manage? Interception accounts are not theirs to see or change:
/// to an admin they do not exist.
async fn managed(web: &Web, address: &str) -> anyhow::Result<bool> {
    Ok(web
        .store
        .user(address)
        .await?
        .is_some_and(|u| u.role != Role::Interception))
}

async fn user_password(
    State(web): State<Web>,
    PageViewer(v): PageViewer,
    Form(f): Form<UserForm>,
) -> Response {
    if let Err(r) = admin_only(&v).and_then(|_| csrf_ok(&v, &f.csrf)) {
        return r;
    }
    let pw = f.password.clone();
    let result = async {
        if !managed(&web, &f.address).await? {
            anyhow::bail!("no user {}", f.address);
        }
        let hash = tokio::task::spawn_blocking(move || crate::auth::hash_password(&pw)).await??;
        if !web.store.set_password(&f.address, &hash).await? {
            anyhow::bail!("no user {}", f.address);
        }
        Ok::<_, anyhow::Error>(())
    }
    .await;
    match result {
        Ok(()) => Redirect::to(&format!(
            "/admin/users?msg={}",
            url(&format!("password of {} changed", f.address))
        ))
        .into_response(),
        Err(e) => {
            Redirect::to(&format!("/admin/users?error={}", url(&e.to_string()))).into_response()
        }
    }
}

/// The alias travels in the form's `role` field (one form struct serves all user forms).
async fn user_alias(
    State(web): State<Web>,
    PageViewer(v): PageViewer,
    Form(f): Form<UserForm>,
) -> Response {
    if let Err(r) = admin_only(&v).and_then(|_| csrf_ok(&v, &f.csrf)) {
        return r;
    }
    let result = async {
        let (name, alias) = (
            crate::auth::account_name(&f.address)?,
            crate::auth::account_name(&f.role)?,
        );
        if !managed(&web, &name).await? {
            anyhow::bail!("no user {name}");
        }
        web.store
            .add_alias(&name, &alias)
            .await
            .map_err(|_| anyhow::anyhow!("{alias} is an alias already"))?;
        Ok::<_, anyhow::Error>(format!("{name} now also sees mail of {alias}"))
    }
    .await;
    match result {
        Ok(m) => Redirect::to(&format!("/admin/users?msg={}", url(&m))).into_response(),
        Err(e) => {
            Redirect::to(&format!("/admin/users?error={}", url(&e.to_string()))).into_response()
        }
    }
}

async fn user_delete(
    State(web): State<Web>,
    PageViewer(v): PageViewer,
    Form(f): Form<UserForm>,
) -> Response {
    if let Err(r) = admin_only(&v).and_then(|_| csrf_ok(&v, &f.csrf)) {
        return r;
    }
    if !managed(&web, &f.address).await.unwrap_or(false) {
        return Redirect::to("/admin/users?error=no%20such%20user").into_response();
    }
    match web.store.delete_user(&f.address).await {
        Ok(true) => Redirect::to(&format!(
            "/admin/users?msg={}",
            url(&format!("removed {}", f.address))
        ))
        .into_response(),
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
    let jobs = if jobs.is_empty() {
        String::new()
    } else {
        format!(
            "<h2>Jobs</h2><table><thead><tr><th>Job</th><th>What</th><th>Done</th><th></th></tr></thead><tbody>{jobs}</tbody></table>"
        )
    };
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

async fn bulk_start(
    State(web): State<Web>,
    PageViewer(v): PageViewer,
    Form(f): Form<BulkForm>,
) -> Response {
    if let Err(r) = admin_only(&v).and_then(|_| csrf_ok(&v, &f.csrf)) {
        return r;
    }
    let s = f.search;
    let search = Search {
        q: s.q,
        sender: s.sender,
        rcpt: s.rcpt.clone(),
        subject: s.subject,
        ip: s.ip,
        verdict: s.verdict,
        from: s.from,
        until: s.until,
        attachments: s.attachments,
        limit: None,
        offset: None,
    };
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
    let rcpt_exact = s
        .rcpt
        .as_deref()
        .and_then(|r| crate::auth::account_name(r).ok());
    if let Some(r) = &rcpt_exact {
        list.retain(|e| e.recipients.iter().any(|x| x.accepted && x.is(r)));
    }
    let to = f.to.filter(|t| !t.trim().is_empty()).or(rcpt_exact);
    if list.is_empty() {
        return status_page(
            StatusCode::BAD_REQUEST,
            Some(&v),
            "Nothing matches: no message to replay.",
        );
    }
    let what = format!(
        "{}{}",
        count(list.len() as i64, "message", "messages"),
        to.as_deref()
            .map(|t| format!(" to {t}"))
            .unwrap_or_default()
    );
    let job = web.bulk.start(
        web.clone(),
        v.actor(),
        what,
        list.into_iter().map(|e| e.id).collect(),
        to,
    );
    Redirect::to(&format!("/admin/bulk/{job}")).into_response()
}

async fn bulk_progress(
    State(web): State<Web>,
    PageViewer(v): PageViewer,
    Path(job): Path<String>,
) -> Response {
    if let Err(r) = admin_only(&v) {
        return r;
    }
    let Some(p) = web.bulk.get(&job) else {
        return status_page(StatusCode::NOT_FOUND, Some(&v), "No such job.");
    };
    let pct = if p.total == 0 {
        100
    } else {
        p.done * 100 / p.total
    };
    let state = if p.finished {
        format!(
            "Finished: {} delivered, {} failed.",
            p.done - p.failed,
            p.failed
        )
    } else {
        "Running…".into()
    };
    let errors: String = p
        .errors
        .iter()
        .map(|e| format!("<li class=\"small\">{}</li>", esc(e)))
        .collect();
    let body = format!(
        r#"<h1>Bulk replay</h1><div class="card"><p>{what}, started by {actor}</p><progress max="{total}" value="{done}"></progress><p id="progress">{done} of {total} ({pct}%) — <span id="state">{state}</span></p><ul>{errors}</ul></div><p><a href="/admin/bulk">All jobs</a></p>"#,
        what = esc(&p.what),
        actor = esc(&p.actor),
        done = p.done,
        total = p.total,
    );
    let mut html = page("Bulk replay", Some(&v), &body);
    if !p.finished {
        html = html.replacen(
            "<title>",
            "<meta http-equiv=\"refresh\" content=\"1\"><title>",
            1,
        );
    }
    Html(html).into_response()
}
