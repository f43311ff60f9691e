//! The digest's one-click replay links. GET only shows what the link will do (mail scanners
//! fetch links; a GET must change nothing); the button POSTs, and the link is then used up.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;

use super::Web;
use super::html::{esc, page};
use crate::digest::link::{self, LinkError};

pub fn routes() -> Router<Web> {
    Router::new().route("/r/{token}", get(confirm).post(use_link))
}

fn answer(status: StatusCode, title: &str, text: &str) -> Response {
    (
        status,
        Html(page(
            title,
            None,
            &format!(
                r#"<div class="card login"><h1>{}</h1><p id="link-result">{}</p></div>"#,
                esc(title),
                esc(text)
            ),
        )),
    )
        .into_response()
}

async fn check(web: &Web, token: &str) -> Result<link::Link, Response> {
    let key = link::key(&web.store).await.map_err(|_| {
        answer(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Error",
            "Try again later.",
        )
    })?;
    let l = match link::verify(&key, token, crate::clock::now_us()) {
        Ok(l) => l,
        Err(LinkError::Invalid) => {
            return Err(answer(
                StatusCode::NOT_FOUND,
                "Unknown link",
                "This link is not valid.",
            ));
        }
        Err(LinkError::Expired) => {
            return Err(answer(
                StatusCode::GONE,
                "Link expired",
                "This link has expired. Sign in to find the message.",
            ));
        }
    };
    if web
        .store
        .link_used(&super::auth::token_hash(token))
        .await
        .unwrap_or(false)
    {
        return Err(answer(
            StatusCode::GONE,
            "Link used",
            "This link was used already: the message has been delivered.",
        ));
    }
    // A link made before the message was known as malware (or by an older digest) gives no way
    // around the administrator.
    let f = crate::storage::JournalFilter {
        id: Some(l.id.clone()),
        limit: Some(1),
        ..Default::default()
    };
    match web.store.query_journal(&f).await {
        Ok(v) if v.first().is_some_and(|e| e.is_malware()) => {
            return Err(answer(
                StatusCode::FORBIDDEN,
                "Not delivered",
                "This message carries a virus or a blocked attachment: only an administrator can deliver it.",
            ));
        }
        Ok(_) => {}
        Err(_) => {
            return Err(answer(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Error",
                "Try again later.",
            ));
        }
    }
    Ok(l)
}

async fn confirm(State(web): State<Web>, Path(token): Path<String>) -> Response {
    let l = match check(&web, &token).await {
        Ok(l) => l,
        Err(r) => return r,
    };
    let f = crate::storage::JournalFilter {
        id: Some(l.id.clone()),
        limit: Some(1),
        ..Default::default()
    };
    let subject = web
        .store
        .query_journal(&f)
        .await
        .ok()
        .and_then(|mut v| v.pop())
        .and_then(|e| e.subject)
        .unwrap_or_else(|| "(no subject)".into());
    let body = format!(
        r#"<div class="card login"><h1>Deliver this message?</h1><p><strong>{}</strong></p><p class="muted">It was held back as spam. Delivering it puts it into the mailbox of {}.</p><form method="post" action="/r/{}"><button type="submit" id="deliver">Deliver it</button></form></div>"#,
        esc(&subject),
        esc(&l.rcpt),
        esc(&token)
    );
    Html(page("Deliver this message?", None, &body)).into_response()
}

async fn use_link(State(web): State<Web>, Path(token): Path<String>) -> Response {
    let l = match check(&web, &token).await {
        Ok(l) => l,
        Err(r) => return r,
    };
    let hash = super::auth::token_hash(&token);
    match web.store.use_link(&hash).await {
        Ok(true) => {}
        Ok(false) => {
            return answer(
                StatusCode::GONE,
                "Link used",
                "This link was used already: the message has been delivered.",
            );
        }
        Err(_) => {
            return answer(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Error",
                "Try again later.",
            );
        }
    }
    match crate::replay::replay(
        &web.config,
        &web.store,
        &l.id,
        Some(&l.rcpt),
        &format!("link:{}", l.rcpt),
    )
    .await
    {
        Ok(r) if r.delivered => answer(
            StatusCode::OK,
            "Delivered",
            &format!("The message is on its way to {}.", l.rcpt),
        ),
        Ok(r) => {
            // Nothing was delivered: the link stays good for another try.
            let _ = web.store.release_link(&hash).await;
            answer(
                StatusCode::BAD_GATEWAY,
                "Not delivered",
                &format!(
                    "The mail server answered: {} Try the link again later.",
                    r.reply
                ),
            )
        }
        Err(e) => answer(StatusCode::NOT_FOUND, "Not delivered", &e.to_string()),
    }
}
