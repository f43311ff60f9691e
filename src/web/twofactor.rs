//! The second factor in the web UI and at sign-in: what happens after a right password
//! (`after_password`, for the API and the login page alike), the code page that completes a
//! browser's sign-in, and the enrolment page (secret as text and QR code, confirmed with a code,
//! recovery codes shown once). Wrong codes count as failed logins in the throttle.

use axum::Router;
use axum::extract::{ConnectInfo, Form, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use serde::Deserialize;

use super::Web;
use super::auth::{SigningIn, Stage, Viewer};
use super::html::{esc, page};
use crate::storage::User;

/// How long a browser has for the code page after the password (then it signs in again).
pub const CODE_PAGE_US: i64 = 10 * 60 * 1_000_000;

pub fn routes() -> Router<Web> {
    Router::new()
        .route("/login/code", get(code_page).post(code_post))
        .route("/account/2fa", get(enrol_page).post(enrol_post))
}

/// When sign-in takes the second factor.
#[derive(Debug, Clone, Copy)]
pub enum CodeAt<'a> {
    /// With the password (the API's `totp`); missing when the account has one: refused.
    Now(Option<&'a str>),
    /// On the code page after the password (the browser).
    NextPage,
}

/// What the session opened after a right password is.
pub struct AfterPassword {
    /// The second factor was given.
    pub given: bool,
    /// It is still to give on the code page.
    pub code_next: bool,
}

fn storage_error<E: std::fmt::Display>(e: E) -> (StatusCode, String) {
    tracing::error!("second factor: {e}");
    (StatusCode::INTERNAL_SERVER_ERROR, "storage error".into())
}

/// Called once the password was right (its attempt already counted as a failure in the
/// throttle): checks or defers the second factor and settles the throttle.
pub async fn after_password(
    web: &Web,
    ip: std::net::IpAddr,
    user: &User,
    code: CodeAt<'_>,
) -> Result<AfterPassword, (StatusCode, String)> {
    let address = &user.address;
    let enrolled = crate::twofactor::enrolled(&web.store, address)
        .await
        .map_err(storage_error)?;
    if !enrolled {
        if crate::twofactor::required(&web.config, user.role) && matches!(code, CodeAt::Now(_)) {
            // The API cannot enrol: that takes the web UI, where the person sees the QR code.
            web.throttle.forgive(ip, address);
            return Err((
                StatusCode::FORBIDDEN,
                "this account must enrol a second factor first: sign in to the web UI".into(),
            ));
        }
        web.throttle.succeeded(ip, address);
        return Ok(AfterPassword {
            given: false,
            code_next: false,
        });
    }
    match code {
        CodeAt::NextPage => {
            web.throttle.forgive(ip, address);
            Ok(AfterPassword {
                given: false,
                code_next: true,
            })
        }
        CodeAt::Now(None) => {
            web.throttle.forgive(ip, address);
            Err((
                StatusCode::UNAUTHORIZED,
                "this account has a second factor: send its current code as `totp`".into(),
            ))
        }
        CodeAt::Now(Some(c)) => {
            if crate::twofactor::check_code(&web.store, address, c)
                .await
                .map_err(storage_error)?
            {
                web.throttle.succeeded(ip, address);
                Ok(AfterPassword {
                    given: true,
                    code_next: false,
                })
            } else {
                tracing::info!(%ip, user = %address, "wrong second-factor code");
                Err((
                    StatusCode::UNAUTHORIZED,
                    "wrong or used second-factor code".into(),
                ))
            }
        }
    }
}

/// A throttled code check for a session's account (the code page, enrolment's confirmation).
/// `Err` is the page to show.
async fn throttled<F, Fut, T>(
    web: &Web,
    ip: std::net::IpAddr,
    v: &Viewer,
    check: F,
) -> Result<Option<T>, (StatusCode, String)>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Option<T>>>,
{
    let address = &v.user.address;
    if let Some(wait) = web.throttle.blocked(ip, address) {
        return Err((
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "too many failed attempts; try again in {} s",
                wait.as_secs().max(1)
            ),
        ));
    }
    let _attempt = web.throttle.failed(ip, address);
    match check().await.map_err(storage_error)? {
        Some(t) => {
            web.throttle.succeeded(ip, address);
            Ok(Some(t))
        }
        None => {
            tracing::info!(%ip, user = %address, "wrong second-factor code");
            Ok(None)
        }
    }
}

#[derive(Deserialize)]
struct CodeForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    code: String,
}

/// A sign-out button for the pages shown before sign-in is complete (they have no navigation).
fn sign_out(v: &Viewer) -> String {
    format!(
        r#"<form method="post" action="/logout"><input type="hidden" name="csrf" value="{}"><button class="secondary" id="sign-out">Sign out</button></form>"#,
        esc(v.csrf.as_deref().unwrap_or(""))
    )
}

fn code_form(v: &Viewer, error: Option<&str>) -> String {
    let notice = error
        .map(|e| format!(r#"<div class="notice bad" id="notice">{}</div>"#, esc(e)))
        .unwrap_or_default();
    page(
        "Second factor",
        None,
        &format!(
            r#"<div class="card login"><h1>Second factor</h1>{notice}<p class="muted">Signed in as {who}. Enter the 6-digit code your authenticator app shows now — or one of your recovery codes.</p><form method="post" action="/login/code" id="code-form"><input type="hidden" name="csrf" value="{csrf}"><p><label for="code">Code</label><input id="code" name="code" autocomplete="one-time-code" inputmode="text" required autofocus></p><p><button type="submit">Continue</button></p></form>{out}</div>"#,
            who = esc(&v.user.address),
            csrf = esc(v.csrf.as_deref().unwrap_or("")),
            out = sign_out(v)
        ),
    )
}

async fn code_page(SigningIn(v, stage): SigningIn) -> Response {
    match stage {
        Stage::Code => Html(code_form(&v, None)).into_response(),
        _ => Redirect::to("/").into_response(),
    }
}

async fn code_post(
    State(web): State<Web>,
    ConnectInfo(super::Peer(peer)): ConnectInfo<super::Peer>,
    SigningIn(v, stage): SigningIn,
    Form(f): Form<CodeForm>,
) -> Response {
    if stage != Stage::Code {
        return Redirect::to("/").into_response();
    }
    if let Err(r) = super::pages::csrf_ok(&v, &f.csrf) {
        return r;
    }
    let address = v.user.address.clone();
    let checked = throttled(&web, peer.ip(), &v, || async {
        Ok(crate::twofactor::check_code(&web.store, &address, &f.code)
            .await?
            .then_some(()))
    })
    .await;
    match checked {
        Ok(Some(())) => {
            let expires =
                crate::clock::now_us() + web.config.web.session_hours as i64 * 3_600_000_000;
            if let Err(e) = web.store.pass_second_factor(&v.token_hash, expires).await {
                let (s, t) = storage_error(e);
                return (s, Html(code_form(&v, Some(&t)))).into_response();
            }
            Redirect::to("/").into_response()
        }
        Ok(None) => (
            StatusCode::UNAUTHORIZED,
            Html(code_form(&v, Some("Wrong or used code."))),
        )
            .into_response(),
        Err((s, t)) => (s, Html(code_form(&v, Some(&t)))).into_response(),
    }
}

/// The enrolment page (or the state of an active second factor), with a notice.
async fn enrol_view(web: &Web, v: &Viewer, stage: Stage, error: Option<&str>) -> Response {
    let notice = error
        .map(|e| format!(r#"<div class="notice bad" id="notice">{}</div>"#, esc(e)))
        .unwrap_or_default();
    let address = &v.user.address;
    let secret = match crate::twofactor::pending_secret(&web.store, address).await {
        Ok(s) => s,
        Err(e) => return storage_error(e).into_response(),
    };
    let nav = if stage == Stage::Full { Some(v) } else { None };
    let Some(secret) = secret else {
        let left = web.store.recovery_codes_left(address).await.unwrap_or(0);
        let body = format!(
            r#"<div class="card"><h1>Second factor</h1>{notice}<p id="state">Your sign-in asks for a code from your authenticator app.</p><p class="muted">{left} unused recovery codes. Lost the phone? An administrator on the machine runs <code>sponts user 2fa reset {addr}</code>, and you enrol again.</p></div>"#,
            addr = esc(address)
        );
        return Html(page("Second factor", nav, &body)).into_response();
    };
    let uri = crate::twofactor::totp::provisioning_uri(address, &secret);
    let qr = crate::twofactor::qr::svg(&uri).unwrap_or_default();
    let must = if stage == Stage::Enrol {
        r#"<p class="notice" id="must">Your account needs a second factor before it can do anything else.</p>"#
    } else {
        ""
    };
    let spaced: String = secret
        .as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(" ");
    let body = format!(
        r#"<div class="card"><h1>Set up a second factor</h1>{notice}{must}<p>Scan this code with an authenticator app (any app for TOTP codes), or type the secret into it.</p>{qr}<p><label>Secret</label><code id="secret">{spaced}</code></p><p class="small muted">Link: <code id="otpauth">{uri}</code></p><form method="post" action="/account/2fa" id="enrol-form"><input type="hidden" name="csrf" value="{csrf}"><p><label for="code">The code the app shows now</label><input id="code" name="code" autocomplete="one-time-code" inputmode="numeric" required></p><p><button type="submit">Turn on</button></p></form>{out}</div>"#,
        uri = esc(&uri),
        csrf = esc(v.csrf.as_deref().unwrap_or("")),
        out = if stage == Stage::Full {
            String::new()
        } else {
            sign_out(v)
        }
    );
    Html(page("Second factor", nav, &body)).into_response()
}

async fn enrol_page(State(web): State<Web>, SigningIn(v, stage): SigningIn) -> Response {
    if stage == Stage::Code {
        return Redirect::to("/login/code").into_response();
    }
    if v.csrf.is_none() {
        return super::pages::status_page(
            StatusCode::FORBIDDEN,
            Some(&v),
            "Enrolment happens in a browser session.",
        );
    }
    enrol_view(&web, &v, stage, None).await
}

async fn enrol_post(
    State(web): State<Web>,
    ConnectInfo(super::Peer(peer)): ConnectInfo<super::Peer>,
    SigningIn(v, stage): SigningIn,
    Form(f): Form<CodeForm>,
) -> Response {
    if stage == Stage::Code {
        return Redirect::to("/login/code").into_response();
    }
    if v.csrf.is_none() {
        return super::pages::status_page(
            StatusCode::FORBIDDEN,
            Some(&v),
            "Enrolment happens in a browser session.",
        );
    }
    if let Err(r) = super::pages::csrf_ok(&v, &f.csrf) {
        return r;
    }
    let address = v.user.address.clone();
    let checked = throttled(&web, peer.ip(), &v, || {
        crate::twofactor::confirm(&web.store, &address, &f.code, Some(&v.token_hash))
    })
    .await;
    let codes = match checked {
        Ok(Some(codes)) => codes,
        Ok(None) => {
            return enrol_view(
                &web,
                &v,
                stage,
                Some("Wrong code: check the app's clock and try the code it shows now."),
            )
            .await;
        }
        Err((s, t)) => {
            let mut r = enrol_view(&web, &v, stage, Some(&t)).await;
            *r.status_mut() = s;
            return r;
        }
    };
    tracing::info!(user = %address, "second factor enrolled");
    let list: String = codes
        .iter()
        .map(|c| format!("<li><code>{}</code></li>", esc(c)))
        .collect();
    let body = format!(
        r#"<div class="card"><h1>Second factor on</h1><div class="notice ok" id="notice">From now on your sign-in asks for a code from the app.</div><p>Your recovery codes. Each signs you in once instead of a code, for the day the phone is gone. Keep them somewhere safe: they are shown only now.</p><ol id="recovery">{list}</ol><p><a class="button" href="/" id="continue">Continue</a></p></div>"#
    );
    // The session gave its second factor with that code: the full navigation from here on.
    Html(page("Second factor", Some(&v), &body)).into_response()
}
