//! The digest's one-click links: replay, or "Not spam" (deliver, and the filter learns it as ham
//! for the shared filter and the person's layer). GET only shows what the link will do (mail
//! scanners fetch links; a GET must change nothing); the button POSTs, and the link — with its
//! sibling for the same message — is then used up.

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

async fn check(
    web: &Web,
    token: &str,
) -> Result<(link::Link, link::Action, ring::hmac::Key), Response> {
    let key = link::key(&web.store).await.map_err(|_| {
        answer(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Error",
            "Try again later.",
        )
    })?;
    let (l, action) = match link::verify_action(&key, token, crate::clock::now_us()) {
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
    Ok((l, action, key))
}

async fn confirm(State(web): State<Web>, Path(token): Path<String>) -> Response {
    let (l, action) = match check(&web, &token).await {
        Ok((l, action, _)) => (l, action),
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
    let (title, also, button) = match action {
        link::Action::Deliver => ("Deliver this message?", "", "Deliver it"),
        link::Action::NotSpam => (
            "Not spam?",
            " The spam filter learns that mail like this is not spam for you.",
            "Not spam: deliver it",
        ),
    };
    let body = format!(
        r#"<div class="card login"><h1>{title}</h1><p><strong>{}</strong></p><p class="muted">It was held back as spam. Delivering it puts it into the mailbox of {}.{also}</p><form method="post" action="/r/{}"><button type="submit" id="deliver">{button}</button></form></div>"#,
        esc(&subject),
        esc(&l.rcpt),
        esc(&token)
    );
    Html(page(title, None, &body)).into_response()
}

async fn use_link(State(web): State<Web>, Path(token): Path<String>) -> Response {
    let (l, action, key) = match check(&web, &token).await {
        Ok(c) => c,
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
    // The other link for the same message is used up with this one: delivered once.
    let other = match action {
        link::Action::Deliver => link::Action::NotSpam,
        link::Action::NotSpam => link::Action::Deliver,
    };
    let sibling = super::auth::token_hash(&link::sign_for(&key, &l, other));
    let _ = web.store.use_link(&sibling).await;
    let release = || async {
        let _ = web.store.release_link(&hash).await;
        let _ = web.store.release_link(&sibling).await;
    };
    let actor = format!("link:{}", l.rcpt);
    let delivered = match action {
        link::Action::Deliver => {
            crate::replay::replay(&web.config, &web.store, &l.id, Some(&l.rcpt), &actor)
                .await
                .map_err(|e| e.to_string())
        }
        link::Action::NotSpam => not_spam(&web, &l, &actor).await,
    };
    match delivered {
        Ok(r) if r.delivered => {
            let learned = if action == link::Action::NotSpam {
                " The spam filter has learned that mail like this is not spam for you."
            } else {
                ""
            };
            answer(
                StatusCode::OK,
                "Delivered",
                &format!("The message is on its way to {}.{learned}", l.rcpt),
            )
        }
        Ok(r) => {
            // Nothing was delivered: the link stays good for another try.
            release().await;
            answer(
                StatusCode::BAD_GATEWAY,
                "Not delivered",
                &format!(
                    "The mail server answered: {} Try the link again later.",
                    r.reply
                ),
            )
        }
        Err(e) => answer(StatusCode::NOT_FOUND, "Not delivered", &e),
    }
}

/// A "Not spam" link: the click of the person it was made for, on their own copy.
async fn not_spam(
    web: &Web,
    l: &link::Link,
    actor: &str,
) -> Result<crate::replay::Replayed, String> {
    let f = crate::storage::JournalFilter {
        id: Some(l.id.clone()),
        limit: Some(1),
        ..Default::default()
    };
    let e = web
        .store
        .query_journal(&f)
        .await
        .map_err(|e| e.to_string())?
        .pop()
        .ok_or_else(|| format!("no transaction {}", l.id))?;
    let owner = web
        .store
        .account_of(&l.rcpt)
        .await
        .map_err(|e| e.to_string())?;
    let marked = crate::feedback::mark(
        &web.config,
        &web.store,
        &e,
        false,
        &[owner],
        Some(&l.rcpt),
        actor,
    )
    .await
    .map_err(|e| e.to_string())?;
    marked
        .delivered
        .ok_or_else(|| "this message was not held back as spam".to_string())
}
