//! The second factor: enrolment and sign-in in a real headless Chromium with codes computed by
//! Python's pyotp (Debian's python3-pyotp, not our code); replayed and expired codes refused;
//! wrong codes throttled like wrong passwords; recovery codes work once; `web.require_2fa_for`
//! keeps admins and (by default) officers out until they enrol; `sponts user 2fa reset` makes
//! them enrol again; the API login's `totp`; API tokens made, listed and revoked.

mod common;

use common::http::{Response, request};
use common::*;
use sponts::storage::Role;
use std::net::SocketAddr;

/// The code pyotp computes for `secret` at now + `offset` seconds.
async fn pyotp(secret: &str, offset: i64) -> String {
    let mut cmd = std::process::Command::new("/usr/bin/python3");
    cmd.arg("-c").arg("import sys, time, pyotp\nprint(pyotp.TOTP(sys.argv[1]).at(time.time() + int(sys.argv[2])))").arg(secret).arg(offset.to_string());
    let out = output(cmd).await;
    assert!(
        out.status.success(),
        "pyotp (python3-pyotp) is needed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let code = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert_eq!(code.len(), 6, "{code}");
    code
}

/// A six-digit code that is not `code` (nor, by any realistic chance, a neighbouring step's).
fn wrong(code: &str) -> String {
    format!(
        "{:06}",
        (code.parse::<u32>().unwrap() + 500_000) % 1_000_000
    )
}

/// Enrols `address` directly in the store with a known secret, as if confirmed long ago.
async fn enrol_known(store: &sponts::storage::Store, address: &str) -> String {
    let secret = sponts::twofactor::totp::new_secret();
    assert!(store.put_pending_totp(address, &secret).await.unwrap());
    assert!(store.activate_totp(address, 0, &[], None).await.unwrap());
    secret
}

async fn api_login(web: SocketAddr, user: &str, totp: Option<&str>) -> Response {
    let mut body = serde_json::json!({ "username": user, "password": PASSWORD });
    if let Some(t) = totp {
        body["totp"] = t.into();
    }
    request(
        web,
        "POST",
        "/api/v1/login",
        &[],
        Some(("application/json", body.to_string().as_bytes())),
    )
    .await
}

/// Signs in on the login form: (the session cookie, where it leads).
async fn form_login(web: SocketAddr, user: &str) -> (String, String) {
    let body = format!(
        "username={}&password={}",
        user.replace('@', "%40"),
        PASSWORD.replace(' ', "+")
    );
    let r = request(
        web,
        "POST",
        "/login",
        &[],
        Some(("application/x-www-form-urlencoded", body.as_bytes())),
    )
    .await;
    assert_eq!(r.status, 303, "{}", r.text());
    let cookie = r
        .header("set-cookie")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    (cookie, r.header("location").unwrap().to_string())
}

fn between<'a>(html: &'a str, start: &str, end: &str) -> &'a str {
    let from = html
        .find(start)
        .unwrap_or_else(|| panic!("no {start} in {html}"))
        + start.len();
    &html[from..from + html[from..].find(end).unwrap()]
}

fn csrf_of(html: &str) -> String {
    between(html, r#"name="csrf" value=""#, "\"").to_string()
}

async fn get(web: SocketAddr, path: &str, cookie: &str) -> Response {
    request(web, "GET", path, &[("cookie", cookie)], None).await
}

async fn post_form(web: SocketAddr, path: &str, cookie: &str, body: &str) -> Response {
    request(
        web,
        "POST",
        path,
        &[("cookie", cookie)],
        Some(("application/x-www-form-urlencoded", body.as_bytes())),
    )
    .await
}

fn cli(dir: &std::path::Path, args: &[&str]) -> std::process::Command {
    let cfg = dir.join("cli.toml");
    std::fs::write(
        &cfg,
        format!("[storage]\ndata_dir = \"{}\"\n", dir.display()),
    )
    .unwrap();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_sponts"));
    cmd.args(args)
        .env("SPONTS_CONFIG", &cfg)
        .env("SUDO_USER", "operator");
    cmd
}

/// Runs a long browser test on a thread with room for its (large) future.
fn on_big_stack<F: std::future::Future<Output = ()> + Send + 'static>(
    test: impl FnOnce() -> F + Send + 'static,
) {
    std::thread::Builder::new()
        .stack_size(64 << 20)
        .spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(test())
        })
        .unwrap()
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e));
}

#[test]
fn an_admin_enrols_and_signs_in_with_pyotp_codes_in_chromium() {
    on_big_stack(enrol_and_sign_in_in_chromium);
}

async fn enrol_and_sign_in_in_chromium() {
    let cap = Capture::start(CaptureOptions::default()).await;
    let gw = gateway(cap.addr, "[web]\nrequire_2fa_for = [\"admin\"]\n").await;
    add_user(&gw.store, "admin@example.org", Role::Admin).await;
    let base = format!("http://{}", gw.web);
    let b = common::browser::Browser::start().await;
    b.window(1280, 1400).await;

    // Right after the password: enrolment, and nothing else.
    b.goto(&format!("{base}/login")).await;
    b.type_into("#username", "admin@example.org").await;
    b.type_into("#password", PASSWORD).await;
    b.click("button[type=submit]").await;
    b.find("#enrol-form").await;
    assert!(b.url().await.ends_with("/account/2fa"), "{}", b.url().await);
    assert!(b.text("#must").await.contains("needs a second factor"));
    for path in ["/admin/users", "/", "/admin/tokens"] {
        b.goto(&format!("{base}{path}")).await;
        b.find("#enrol-form").await;
        assert!(
            b.url().await.ends_with("/account/2fa"),
            "{path} led to {}",
            b.url().await
        );
    }
    assert_eq!(
        b.count("svg#qr path").await,
        1,
        "the QR code is drawn inline"
    );
    let uri = b.text("#otpauth").await;
    assert!(
        uri.starts_with("otpauth://totp/sponts:admin@example.org?secret=")
            && uri.ends_with("&issuer=sponts"),
        "{uri}"
    );
    let secret: String = b.text("#secret").await.split_whitespace().collect();
    assert!(
        uri.contains(&format!("secret={secret}&")),
        "the text and the QR code carry one secret"
    );
    b.screenshot("2fa-01-enrol").await;

    // A wrong code does not turn it on; pyotp's code of now does.
    let now = pyotp(&secret, 0).await;
    b.type_into("#code", &wrong(&now)).await;
    b.click("#enrol-form button[type=submit]").await;
    assert!(b.text("#notice").await.contains("Wrong code"));
    b.type_into("#code", &now).await;
    b.click("#enrol-form button[type=submit]").await;
    b.find("#recovery").await;
    assert_eq!(
        b.count("#recovery li").await,
        10,
        "ten recovery codes, shown once"
    );
    let recovery = b.text("#recovery li:first-child code").await;
    b.screenshot("2fa-02-recovery-codes").await;
    b.goto(&format!("{base}/admin/users")).await;
    assert_eq!(
        b.text("main h1").await,
        "Users",
        "enrolled: the admin pages open"
    );

    // The next sign-in asks for a code; the one used at enrolment is refused (replay).
    b.delete_cookies().await;
    b.goto(&format!("{base}/login")).await;
    b.type_into("#username", "admin@example.org").await;
    b.type_into("#password", PASSWORD).await;
    b.click("button[type=submit]").await;
    b.find("#code-form").await;
    assert!(b.url().await.ends_with("/login/code"), "{}", b.url().await);
    b.goto(&format!("{base}/admin/users")).await;
    b.find("#code-form").await;
    assert!(
        b.url().await.ends_with("/login/code"),
        "no admin page before the code: {}",
        b.url().await
    );
    b.type_into("#code", &now).await;
    b.click("#code-form button[type=submit]").await;
    assert!(
        b.text("#notice").await.contains("Wrong or used code"),
        "a code works once"
    );
    b.screenshot("2fa-03-code-refused").await;

    // A recovery code signs in once.
    b.type_into("#code", &recovery).await;
    b.click("#code-form button[type=submit]").await;
    b.find("form.search").await;
    b.goto(&format!("{base}/account/2fa")).await;
    assert!(b.text("#state").await.contains("asks for a code"));
    assert!(b.text("main").await.contains("9 unused recovery codes"));
    b.delete_cookies().await;
    b.goto(&format!("{base}/login")).await;
    b.type_into("#username", "admin@example.org").await;
    b.type_into("#password", PASSWORD).await;
    b.click("button[type=submit]").await;
    b.type_into("#code", &recovery).await;
    b.click("#code-form button[type=submit]").await;
    assert!(
        b.text("#notice").await.contains("Wrong or used code"),
        "a recovery code works once"
    );

    // The next step's code (within the window, never used) signs in.
    let next = pyotp(&secret, 30).await;
    b.type_into("#code", &next).await;
    b.click("#code-form button[type=submit]").await;
    b.find("form.search").await;
    b.goto(&format!("{base}/admin/users")).await;
    assert_eq!(b.text("main h1").await, "Users");
    b.screenshot("2fa-04-signed-in").await;
    b.quit().await;
    gw.stop().await;
}

#[tokio::test]
async fn officers_must_enrol_by_default_and_a_reset_on_the_machine_makes_them_enrol_again() {
    let cap = Capture::start(CaptureOptions::default()).await;
    let gw = gateway(cap.addr, "").await;
    add_user(&gw.store, "officer@example.org", Role::Interception).await;
    add_user(&gw.store, "admin@example.org", Role::Admin).await;

    // The default asks officers only: an admin goes straight in.
    let (_, to) = form_login(gw.web, "admin@example.org").await;
    assert_eq!(to, "/");
    assert_eq!(
        api_login(gw.web, "admin@example.org", None).await.status,
        200
    );

    // An officer without a second factor: the API refuses, the browser is led to enrolment.
    let r = api_login(gw.web, "officer@example.org", None).await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(
        r.json()["error"].as_str().unwrap().contains("enrol"),
        "{}",
        r.text()
    );
    let (cookie, to) = form_login(gw.web, "officer@example.org").await;
    assert_eq!(to, "/");
    for path in ["/intercept", "/intercept/audit", "/"] {
        let r = get(gw.web, path, &cookie).await;
        assert_eq!(
            (r.status, r.header("location")),
            (303, Some("/account/2fa")),
            "{path}"
        );
    }
    let api = request(gw.web, "GET", "/api/v1/me", &[("cookie", &cookie)], None).await;
    assert_eq!(api.status, 401, "{}", api.text());
    let page = get(gw.web, "/account/2fa", &cookie).await.text();
    let secret: String = between(&page, r#"<code id="secret">"#, "<")
        .split_whitespace()
        .collect();
    let r = post_form(
        gw.web,
        "/account/2fa",
        &cookie,
        &format!("csrf={}&code={}", csrf_of(&page), pyotp(&secret, 0).await),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.text().matches("<li><code>").count(), 10, "{}", r.text());
    assert_eq!(
        get(gw.web, "/intercept", &cookie).await.status,
        200,
        "enrolled: the officer's pages open"
    );

    // Phone lost: reset on the machine, written to the audit log; the session ends and the next
    // sign-in enrols again, with a new secret.
    let out = output(cli(
        gw.dir.path(),
        &["user", "2fa", "reset", "officer@example.org"],
    ))
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("removed"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let audit = gw.store.audit_log().await.unwrap();
    let last = audit.last().unwrap();
    assert_eq!(
        (
            last.actor.as_str(),
            last.action.as_str(),
            last.detail.as_str()
        ),
        ("cli:operator", "account.2fa-reset", "officer@example.org")
    );
    assert_eq!(
        get(gw.web, "/intercept", &cookie).await.header("location"),
        Some("/login"),
        "the old session is gone"
    );
    let (cookie, _) = form_login(gw.web, "officer@example.org").await;
    assert_eq!(
        get(gw.web, "/intercept", &cookie).await.header("location"),
        Some("/account/2fa"),
        "enrolment again"
    );
    let page = get(gw.web, "/account/2fa", &cookie).await.text();
    let again: String = between(&page, r#"<code id="secret">"#, "<")
        .split_whitespace()
        .collect();
    assert_ne!(again, secret, "a new secret");
    let out = output(cli(
        gw.dir.path(),
        &["user", "2fa", "reset", "nobody@example.org"],
    ))
    .await;
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("no user"));
    gw.stop().await;
}

#[tokio::test]
async fn the_api_login_takes_totp_refuses_replayed_and_expired_codes_and_throttles_wrong_ones() {
    let cap = Capture::start(CaptureOptions::default()).await;
    let gw = gateway(cap.addr, "").await;
    add_user(&gw.store, "alice@example.org", Role::User).await;
    add_user(&gw.store, "bob@example.org", Role::User).await;
    let secret = enrol_known(&gw.store, "alice@example.org").await;

    // Without a second factor nothing changes (bob); with one, the code is needed.
    assert_eq!(api_login(gw.web, "bob@example.org", None).await.status, 200);
    let r = api_login(gw.web, "alice@example.org", None).await;
    assert_eq!(r.status, 401);
    assert!(
        r.json()["error"].as_str().unwrap().contains("totp"),
        "{}",
        r.text()
    );
    let r = api_login(
        gw.web,
        "alice@example.org",
        Some(&pyotp(&secret, -90).await),
    )
    .await;
    assert_eq!(
        r.status,
        401,
        "a code from three steps ago has expired: {}",
        r.text()
    );
    let now = pyotp(&secret, 0).await;
    let r = api_login(gw.web, "alice@example.org", Some(&now)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let token = r.json()["token"].as_str().unwrap().to_string();
    let me = request(
        gw.web,
        "GET",
        "/api/v1/me",
        &[("authorization", &format!("Bearer {token}"))],
        None,
    )
    .await;
    assert_eq!(me.json()["address"], "alice@example.org");
    let r = api_login(gw.web, "alice@example.org", Some(&now)).await;
    assert_eq!(r.status, 401, "a code is taken once: {}", r.text());
    assert!(r.json()["error"].as_str().unwrap().contains("code"));

    // Wrong codes count like wrong passwords: from this client address the expired code, the
    // replay and three wrong ones make five, then even the right code waits.
    let next = pyotp(&secret, 30).await;
    for _ in 0..3 {
        assert_eq!(
            api_login(gw.web, "alice@example.org", Some(&wrong(&now)))
                .await
                .status,
            401
        );
    }
    let r = api_login(gw.web, "alice@example.org", Some(&next)).await;
    assert_eq!(r.status, 429, "{}", r.text());
    assert!(r.json()["error"].as_str().unwrap().contains("too many"));
    gw.stop().await;
}

#[tokio::test]
async fn api_tokens_are_made_after_a_second_factor_listed_and_revoked() {
    let cap = Capture::start(CaptureOptions::default()).await;
    let gw = gateway(cap.addr, "").await;
    add_user(&gw.store, "admin@example.org", Role::Admin).await;
    add_user(&gw.store, "plain-admin@example.org", Role::Admin).await;
    add_user(&gw.store, "alice@example.org", Role::User).await;
    let secret = enrol_known(&gw.store, "admin@example.org").await;
    let json = |b: &str| Some(("application/json", b.as_bytes().to_vec()));
    let post = |auth: String, body: Option<(&'static str, Vec<u8>)>| async move {
        request(
            gw.web,
            "POST",
            "/api/v1/tokens",
            &[("authorization", &auth)],
            body.as_ref().map(|(t, b)| (*t, b.as_slice())),
        )
        .await
    };

    // An admin without a second factor, and a user, make none.
    let plain = common::http::login(gw.web, "plain-admin@example.org", PASSWORD)
        .await
        .unwrap();
    let r = post(
        format!("Bearer {}", plain.token),
        json(r#"{"name":"nightly export"}"#),
    )
    .await;
    assert_eq!(r.status, 403);
    assert!(
        r.json()["error"]
            .as_str()
            .unwrap()
            .contains("second factor"),
        "{}",
        r.text()
    );
    let alice = common::http::login(gw.web, "alice@example.org", PASSWORD)
        .await
        .unwrap();
    assert_eq!(
        post(format!("Bearer {}", alice.token), json(r#"{"name":"x"}"#))
            .await
            .status,
        403
    );
    assert_eq!(
        request(
            gw.web,
            "GET",
            "/api/v1/tokens",
            &[("authorization", &format!("Bearer {}", alice.token))],
            None
        )
        .await
        .status,
        403
    );

    // The admin whose session gave the code makes one: shown once, listed without its secret.
    let r = api_login(gw.web, "admin@example.org", Some(&pyotp(&secret, 0).await)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let session = format!("Bearer {}", r.json()["token"].as_str().unwrap());
    assert_eq!(
        post(session.clone(), json(r#"{"name":"  "}"#)).await.status,
        422
    );
    let r = post(session.clone(), json(r#"{"name":"nightly export"}"#)).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let made = r.json();
    let token = made["token"].as_str().unwrap().to_string();
    let id = made["id"].as_str().unwrap().to_string();
    assert!(token.starts_with("spt_"));
    let list = request(
        gw.web,
        "GET",
        "/api/v1/tokens",
        &[("authorization", &session)],
        None,
    )
    .await;
    assert_eq!(list.status, 200);
    let tokens = list.json()["tokens"].as_array().unwrap().clone();
    assert_eq!(tokens.len(), 1);
    assert_eq!(
        (
            tokens[0]["id"].as_str(),
            tokens[0]["name"].as_str(),
            tokens[0]["address"].as_str()
        ),
        (
            Some(id.as_str()),
            Some("nightly export"),
            Some("admin@example.org")
        )
    );
    assert!(
        !list.text().contains(&token),
        "the list never shows a token"
    );

    // The token acts with its maker's role, but makes no tokens itself.
    let bearer = format!("Bearer {token}");
    let me = request(
        gw.web,
        "GET",
        "/api/v1/me",
        &[("authorization", &bearer)],
        None,
    )
    .await
    .json();
    assert_eq!(
        (me["address"].as_str(), me["role"].as_str()),
        (Some("admin@example.org"), Some("admin"))
    );
    assert_eq!(
        request(
            gw.web,
            "GET",
            "/admin/users",
            &[("authorization", &bearer)],
            None
        )
        .await
        .status,
        200
    );
    assert_eq!(
        post(bearer.clone(), json(r#"{"name":"another"}"#))
            .await
            .status,
        403
    );

    // The web page lists it too; revoked, the token gets a JSON 401.
    let page = request(
        gw.web,
        "GET",
        "/admin/tokens",
        &[("authorization", &session)],
        None,
    )
    .await
    .text();
    assert!(
        page.contains("nightly export") && page.contains("new-token-form"),
        "{page}"
    );
    let del = |auth: String, id: String| async move {
        request(
            gw.web,
            "DELETE",
            &format!("/api/v1/tokens/{id}"),
            &[("authorization", &auth)],
            None,
        )
        .await
    };
    assert_eq!(
        del(format!("Bearer {}", alice.token), id.clone())
            .await
            .status,
        403
    );
    assert_eq!(del(session.clone(), id.clone()).await.status, 200);
    assert_eq!(del(session.clone(), id.clone()).await.status, 404);
    let r = request(
        gw.web,
        "GET",
        "/api/v1/me",
        &[("authorization", &bearer)],
        None,
    )
    .await;
    assert_eq!(r.status, 401);
    assert!(r.json()["error"].is_string(), "{}", r.text());
    gw.stop().await;
}

#[tokio::test]
async fn wrong_codes_on_the_code_page_are_throttled_like_wrong_passwords() {
    let cap = Capture::start(CaptureOptions::default()).await;
    let gw = gateway(cap.addr, "").await;
    add_user(&gw.store, "carol@example.org", Role::User).await;
    let secret = enrol_known(&gw.store, "carol@example.org").await;
    let (cookie, to) = form_login(gw.web, "carol@example.org").await;
    assert_eq!(to, "/login/code");
    assert_eq!(
        get(gw.web, "/", &cookie).await.header("location"),
        Some("/login/code"),
        "nothing before the code"
    );
    let page = get(gw.web, "/login/code", &cookie).await.text();
    let csrf = csrf_of(&page);
    let now = pyotp(&secret, 0).await;
    for _ in 0..5 {
        let r = post_form(
            gw.web,
            "/login/code",
            &cookie,
            &format!("csrf={csrf}&code={}", wrong(&now)),
        )
        .await;
        assert_eq!(r.status, 401);
        assert!(r.text().contains("Wrong or used code"));
    }
    let r = post_form(
        gw.web,
        "/login/code",
        &cookie,
        &format!("csrf={csrf}&code={now}"),
    )
    .await;
    assert_eq!(r.status, 429, "even the right code waits: {}", r.text());
    assert!(r.text().contains("too many failed attempts"));
    assert_eq!(
        get(gw.web, "/", &cookie).await.header("location"),
        Some("/login/code")
    );
    // The password form waits too: the account's record counts both.
    let body = format!(
        "username=carol%40example.org&password={}",
        PASSWORD.replace(' ', "+")
    );
    let r = request(
        gw.web,
        "POST",
        "/login",
        &[],
        Some(("application/x-www-form-urlencoded", body.as_bytes())),
    )
    .await;
    assert_eq!(r.status, 429);
    gw.stop().await;
}
