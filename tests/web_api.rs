//! The web API and pages: who sees what (every endpoint x anonymous, user A, user B, admin),
//! CSRF on state-changing requests, login throttling, and the security headers.

mod common;

use common::http::{Login, Response, login, request};
use common::*;

struct World {
    gw: Gateway,
    cap: Capture,
    for_alice: String,
    for_bob: String,
    alice: Login,
    bob: Login,
    admin: Login,
}

async fn world() -> World {
    let cap = Capture::start(CaptureOptions::default()).await;
    let gw = gateway(cap.addr, "").await;
    for (addr, role) in [
        ("alice@example.org", sponts::storage::Role::User),
        ("bob@example.org", sponts::storage::Role::User),
        ("admin@example.org", sponts::storage::Role::Admin),
    ] {
        gw.store
            .add_user(
                addr,
                &sponts::auth::hash_password("password for tests").unwrap(),
                role,
            )
            .await
            .unwrap();
    }
    let mut ids = Vec::new();
    for rcpt in ["alice@example.org", "bob@example.org"] {
        let mut c = Client::connect(gw.addr).await;
        c.expect("EHLO client.test", 250).await;
        let r = c
            .send_mail(
                "news@partner.example",
                &[rcpt],
                format!("Subject: for {rcpt}\r\n\r\nhello\r\n").as_bytes(),
            )
            .await;
        ids.push(reply_id(&r));
    }
    let alice = login(gw.web, "alice@example.org", "password for tests")
        .await
        .unwrap();
    let bob = login(gw.web, "Bob@Example.org", "password for tests")
        .await
        .unwrap();
    let admin = login(gw.web, "admin@example.org", "password for tests")
        .await
        .unwrap();
    World {
        gw,
        cap,
        for_alice: ids[0].clone(),
        for_bob: ids[1].clone(),
        alice,
        bob,
        admin,
    }
}

async fn get(w: &World, who: Option<&Login>, path: &str) -> Response {
    let auth = who.map(|l| format!("Bearer {}", l.token));
    let headers: Vec<(&str, &str)> = auth
        .as_deref()
        .map(|a| vec![("Authorization", a)])
        .unwrap_or_default();
    request(w.gw.web, "GET", path, &headers, None).await
}

async fn post_json(w: &World, who: Option<&Login>, path: &str, body: &str) -> Response {
    let auth = who.map(|l| format!("Bearer {}", l.token));
    let headers: Vec<(&str, &str)> = auth
        .as_deref()
        .map(|a| vec![("Authorization", a)])
        .unwrap_or_default();
    request(
        w.gw.web,
        "POST",
        path,
        &headers,
        Some(("application/json", body.as_bytes())),
    )
    .await
}

fn ids(r: &Response) -> Vec<String> {
    r.json()["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn authorization_matrix() {
    let w = world().await;
    let (a, b) = (w.for_alice.clone(), w.for_bob.clone());

    // The list: each sees their own, the admin sees both, nobody else anything.
    assert_eq!(get(&w, None, "/api/v1/messages").await.status, 401);
    assert_eq!(
        ids(&get(&w, Some(&w.alice), "/api/v1/messages").await),
        vec![a.clone()]
    );
    assert_eq!(
        ids(&get(&w, Some(&w.bob), "/api/v1/messages").await),
        vec![b.clone()]
    );
    let all = ids(&get(&w, Some(&w.admin), "/api/v1/messages").await);
    assert!(all.contains(&a) && all.contains(&b));
    assert_eq!(
        ids(&get(&w, Some(&w.alice), "/api/v1/messages?q=bob").await),
        Vec::<String>::new(),
        "search cannot widen the view"
    );

    // One message, its raw form, its replay: 404 for whoever may not see it (no hint it exists).
    for (path, what) in [
        (format!("/api/v1/messages/{a}"), "view"),
        (format!("/api/v1/messages/{a}/raw"), "raw"),
    ] {
        assert_eq!(get(&w, None, &path).await.status, 401, "{what}");
        assert_eq!(get(&w, Some(&w.alice), &path).await.status, 200, "{what}");
        assert_eq!(get(&w, Some(&w.bob), &path).await.status, 404, "{what}");
        assert_eq!(get(&w, Some(&w.admin), &path).await.status, 200, "{what}");
    }
    assert_eq!(
        get(&w, Some(&w.alice), "/api/v1/messages/NOSUCHID")
            .await
            .status,
        404
    );
    let raw = get(&w, Some(&w.alice), &format!("/api/v1/messages/{a}/raw")).await;
    assert_eq!(raw.header("content-type"), Some("message/rfc822"));
    assert_eq!(raw.body, b"Subject: for alice@example.org\r\n\r\nhello\r\n");
    let view = get(&w, Some(&w.alice), &format!("/api/v1/messages/{a}"))
        .await
        .json();
    assert_eq!(view["message"]["subject"], "for alice@example.org");
    assert_eq!(view["text"].as_str().map(str::trim), Some("hello"));

    let replay = format!("/api/v1/messages/{a}/replay");
    assert_eq!(post_json(&w, None, &replay, "{}").await.status, 401);
    assert_eq!(post_json(&w, Some(&w.bob), &replay, "{}").await.status, 404);
    assert_eq!(
        post_json(&w, Some(&w.alice), &replay, r#"{"to": "bob@example.org"}"#)
            .await
            .status,
        403,
        "a user replays only to herself"
    );
    let r = post_json(&w, Some(&w.alice), &replay, "{}").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["delivered"], true);
    let r = post_json(&w, Some(&w.admin), &replay, r#"{"to": "bob@example.org"}"#).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = post_json(
        &w,
        Some(&w.admin),
        &replay,
        r#"{"to": "someone@elsewhere.example"}"#,
    )
    .await;
    assert_eq!(
        r.status,
        422,
        "never a relay, not even for admins: {}",
        r.text()
    );
    let d = w.cap.wait_for(4).await;
    assert_eq!(d[2].rcpts, vec!["alice@example.org"]);
    assert_eq!(d[3].rcpts, vec!["bob@example.org"]);
    let journal =
        w.gw.store
            .query_journal(&sponts::storage::JournalFilter {
                limit: Some(10),
                ..Default::default()
            })
            .await
            .unwrap();
    let actors: Vec<_> = journal.iter().filter_map(|e| e.actor.clone()).collect();
    assert!(
        actors.contains(&"web:alice@example.org".to_string())
            && actors.contains(&"web:admin@example.org".to_string()),
        "{actors:?}"
    );

    // The replay record of alice's mail is alice's too; bob's replay copy (sent to bob) is bob's.
    assert_eq!(
        ids(&get(&w, Some(&w.alice), "/api/v1/messages").await).len(),
        2
    );

    // Pages.
    let page = |who: Option<&Login>, path: String| {
        let cookie = who.map(|l| l.cookie.clone());
        let web = w.gw.web;
        async move {
            let headers: Vec<(&str, &str)> = cookie
                .as_deref()
                .map(|c| vec![("Cookie", c)])
                .unwrap_or_default();
            request(web, "GET", &path, &headers, None).await
        }
    };
    let r = page(None, "/".into()).await;
    assert_eq!((r.status, r.header("location")), (303, Some("/login")));
    assert_eq!(page(None, format!("/messages/{a}")).await.status, 303);
    let r = page(Some(&w.alice), "/".into()).await;
    assert_eq!(r.status, 200);
    assert!(
        r.text().contains("for alice@example.org") && !r.text().contains("for bob@example.org")
    );
    assert_eq!(
        page(Some(&w.alice), format!("/messages/{a}")).await.status,
        200
    );
    assert_eq!(
        page(Some(&w.bob), format!("/messages/{a}")).await.status,
        404
    );
    assert_eq!(
        page(Some(&w.bob), format!("/messages/{a}/raw"))
            .await
            .status,
        404
    );
    assert_eq!(
        page(Some(&w.bob), format!("/messages/{a}/html"))
            .await
            .status,
        404
    );
    assert_eq!(
        page(Some(&w.alice), "/admin/users".into()).await.status,
        403
    );
    assert_eq!(page(Some(&w.alice), "/admin/bulk".into()).await.status, 403);
    assert_eq!(
        page(Some(&w.admin), "/admin/users".into()).await.status,
        200
    );
    assert_eq!(page(None, "/admin/users".into()).await.status, 303);

    senders_are_each_users_own(&w).await;
    clicks_and_filter_layers_are_each_users_own(&w).await;

    // Logout ends the session for the token too.
    let out = request(
        w.gw.web,
        "POST",
        "/api/v1/logout",
        &[("Authorization", &format!("Bearer {}", w.bob.token))],
        None,
    )
    .await;
    assert_eq!(out.status, 200);
    assert_eq!(get(&w, Some(&w.bob), "/api/v1/messages").await.status, 401);
    w.gw.stop().await;
}

/// Sender allow and block lists: each user reads and changes their own; only an admin names
/// another owner (a user or `@domain`).
async fn senders_are_each_users_own(w: &World) {
    // Every request boxed: this runs inside the long matrix test, whose future already fills
    // much of a debug build's thread stack.
    let call = |method: &'static str,
                who: Option<&Login>,
                path: &str,
                body: Option<&str>|
     -> std::pin::Pin<Box<dyn std::future::Future<Output = Response>>> {
        let (web, path, body) = (w.gw.web, path.to_string(), body.map(str::to_string));
        let auth = who.map(|l| format!("Bearer {}", l.token));
        Box::pin(async move {
            let headers: Vec<(&str, &str)> = auth
                .as_deref()
                .map(|a| vec![("Authorization", a)])
                .unwrap_or_default();
            request(
                web,
                method,
                &path,
                &headers,
                body.as_deref().map(|b| ("application/json", b.as_bytes())),
            )
            .await
        })
    };
    let get = |who: Option<&Login>, path: &str| call("GET", who, path, None);
    let post = |who: Option<&Login>, body: &str| call("POST", who, "/api/v1/senders", Some(body));
    let delete = |who: &Login, path: &str| call("DELETE", Some(who), path, None);
    let page = |who: Option<&Login>| {
        let (web, cookie) = (w.gw.web, who.map(|l| l.cookie.clone()));
        Box::pin(async move {
            let headers: Vec<(&str, &str)> = cookie
                .as_deref()
                .map(|c| vec![("Cookie", c)])
                .unwrap_or_default();
            request(web, "GET", "/senders", &headers, None).await
        }) as std::pin::Pin<Box<dyn std::future::Future<Output = Response>>>
    };
    let patterns = |r: &Response| {
        r.json()["senders"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                format!(
                    "{} {} {}",
                    e["owner"].as_str().unwrap(),
                    e["pattern"].as_str().unwrap(),
                    e["verdict"].as_str().unwrap()
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(get(None, "/api/v1/senders").await.status, 401);
    assert_eq!(
        post(None, r#"{"pattern": "pest.example", "verdict": "block"}"#)
            .await
            .status,
        401
    );
    let r = post(
        Some(&w.alice),
        r#"{"pattern": "Pest.example", "verdict": "block"}"#,
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(
        (r.json()["owner"].as_str(), r.json()["created_by"].as_str()),
        (Some("alice@example.org"), Some("web:alice@example.org"))
    );
    assert_eq!(
        post(
            Some(&w.bob),
            r#"{"pattern": "friend@partner.example", "verdict": "allow"}"#
        )
        .await
        .status,
        201
    );
    assert_eq!(
        patterns(&get(Some(&w.alice), "/api/v1/senders").await),
        vec!["alice@example.org pest.example block"]
    );
    assert_eq!(
        patterns(&get(Some(&w.bob), "/api/v1/senders").await),
        vec!["bob@example.org friend@partner.example allow"]
    );
    // Naming another owner: refused, whether to read, add or delete; nothing changes.
    for path in [
        "/api/v1/senders?owner=bob@example.org",
        "/api/v1/senders?owner=@example.org",
    ] {
        let r = get(Some(&w.alice), path).await;
        assert_eq!(r.status, 403, "{path}: {}", r.text());
        assert!(r.json()["error"].is_string());
    }
    for owner in ["bob@example.org", "@example.org"] {
        let body =
            format!(r#"{{"pattern": "evil.example", "verdict": "allow", "owner": "{owner}"}}"#);
        assert_eq!(post(Some(&w.alice), &body).await.status, 403, "{owner}");
    }
    assert_eq!(
        delete(
            &w.alice,
            "/api/v1/senders?pattern=friend@partner.example&owner=bob@example.org"
        )
        .await
        .status,
        403
    );
    assert_eq!(
        delete(&w.alice, "/api/v1/senders?pattern=friend@partner.example")
            .await
            .status,
        404,
        "alice's own list has no such entry"
    );
    assert_eq!(
        patterns(&get(Some(&w.bob), "/api/v1/senders").await),
        vec!["bob@example.org friend@partner.example allow"]
    );
    // Bad input is a 4xx with a reason.
    for body in [
        r#"{"pattern": "not a sender", "verdict": "block"}"#,
        r#"{"pattern": "x.example", "verdict": "maybe"}"#,
        r#"{"pattern": "x.example"}"#,
    ] {
        let r = post(Some(&w.alice), body).await;
        assert_eq!(r.status, 422, "{body}: {}", r.text());
        assert!(r.json()["error"].is_string(), "{body}");
    }
    // The admin sees and changes anyone's, and a domain's (of ours only).
    let r = post(
        Some(&w.admin),
        r#"{"pattern": "junk.example", "verdict": "block", "owner": "@Example.org"}"#,
    )
    .await;
    assert_eq!(
        (r.status, r.json()["owner"].as_str()),
        (201, Some("@example.org"))
    );
    assert_eq!(
        post(
            Some(&w.admin),
            r#"{"pattern": "junk.example", "verdict": "block", "owner": "@elsewhere.example"}"#
        )
        .await
        .status,
        422
    );
    assert_eq!(
        patterns(&get(Some(&w.admin), "/api/v1/senders").await).len(),
        3
    );
    assert_eq!(
        patterns(&get(Some(&w.admin), "/api/v1/senders?owner=bob@example.org").await),
        vec!["bob@example.org friend@partner.example allow"]
    );
    assert_eq!(
        patterns(&get(Some(&w.alice), "/api/v1/senders").await),
        vec!["alice@example.org pest.example block"],
        "the domain's list is the admin's to show"
    );
    assert_eq!(
        delete(
            &w.admin,
            "/api/v1/senders?pattern=friend@partner.example&owner=bob@example.org"
        )
        .await
        .status,
        204
    );
    assert_eq!(
        delete(&w.alice, "/api/v1/senders?pattern=pest.example")
            .await
            .status,
        204
    );
    assert!(patterns(&get(Some(&w.bob), "/api/v1/senders").await).is_empty());
    // The page: the user's own entries only.
    assert_eq!(
        post(
            Some(&w.bob),
            r#"{"pattern": "bobs-friend.example", "verdict": "allow"}"#
        )
        .await
        .status,
        201
    );
    let r = page(Some(&w.alice)).await;
    assert_eq!(r.status, 200);
    assert!(
        r.text().contains("senders-empty") && !r.text().contains("bobs-friend.example"),
        "{}",
        r.text()
    );
    assert!(
        page(Some(&w.bob))
            .await
            .text()
            .contains("bobs-friend.example")
    );
    assert_eq!(page(None).await.status, 303);
}

#[tokio::test]
async fn sender_lists_page_forms_need_csrf() {
    let w = world().await;
    let cookie = w.alice.cookie.as_str();
    let form = |csrf: &str| format!("csrf={csrf}&action=add&pattern=shop.example&verdict=block");
    let r = request(
        w.gw.web,
        "POST",
        "/senders/change",
        &[("Cookie", cookie)],
        Some((
            "application/x-www-form-urlencoded",
            form("wrong").as_bytes(),
        )),
    )
    .await;
    assert_eq!(r.status, 403);
    let r = request(
        w.gw.web,
        "POST",
        "/api/v1/senders",
        &[("Cookie", cookie)],
        Some((
            "application/json",
            br#"{"pattern": "shop.example", "verdict": "block"}"#,
        )),
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(w.gw.store.sender_entries(None).await.unwrap().is_empty());
    let r = request(
        w.gw.web,
        "POST",
        "/senders/change",
        &[("Cookie", cookie)],
        Some((
            "application/x-www-form-urlencoded",
            form(&w.alice.csrf).as_bytes(),
        )),
    )
    .await;
    assert_eq!(r.status, 303);
    assert!(
        r.header("location").unwrap().starts_with("/senders?msg="),
        "{:?}",
        r.header("location")
    );
    let page = request(w.gw.web, "GET", "/senders", &[("Cookie", cookie)], None)
        .await
        .text();
    assert!(
        page.contains(r#"<td>shop.example</td>"#) && page.contains(r#"href="/senders""#),
        "{page}"
    );
    // A user's form cannot reach another owner's list.
    let body = format!(
        "csrf={}&action=add&pattern=shop.example&verdict=allow&owner=bob@example.org",
        w.alice.csrf
    );
    let r = request(
        w.gw.web,
        "POST",
        "/senders/change",
        &[("Cookie", cookie)],
        Some(("application/x-www-form-urlencoded", body.as_bytes())),
    )
    .await;
    assert!(
        r.header("location").unwrap().starts_with("/senders?error="),
        "{:?}",
        r.header("location")
    );
    let body = format!("csrf={}&action=delete&pattern=shop.example", w.alice.csrf);
    request(
        w.gw.web,
        "POST",
        "/senders/change",
        &[("Cookie", cookie)],
        Some(("application/x-www-form-urlencoded", body.as_bytes())),
    )
    .await;
    assert!(w.gw.store.sender_entries(None).await.unwrap().is_empty());
    w.gw.stop().await;
}

#[tokio::test]
async fn csrf_is_required_for_cookie_sessions() {
    let w = world().await;
    let path = format!("/api/v1/messages/{}/replay", w.for_alice);
    let cookie = w.alice.cookie.as_str();
    let r = request(
        w.gw.web,
        "POST",
        &path,
        &[("Cookie", cookie)],
        Some(("application/json", b"{}")),
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.text());
    let r = request(
        w.gw.web,
        "POST",
        &path,
        &[("Cookie", cookie), ("X-CSRF-Token", "0000")],
        Some(("application/json", b"{}")),
    )
    .await;
    assert_eq!(r.status, 403);
    let r = request(
        w.gw.web,
        "POST",
        &path,
        &[("Cookie", cookie), ("X-CSRF-Token", &w.alice.csrf)],
        Some(("application/json", b"{}")),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    // HTML forms: the hidden field.
    let form_path = format!("/messages/{}/replay", w.for_alice);
    let r = request(
        w.gw.web,
        "POST",
        &form_path,
        &[("Cookie", cookie)],
        Some(("application/x-www-form-urlencoded", b"csrf=wrong")),
    )
    .await;
    assert_eq!(r.status, 403);
    let body = format!("csrf={}", w.alice.csrf);
    let r = request(
        w.gw.web,
        "POST",
        &form_path,
        &[("Cookie", cookie)],
        Some(("application/x-www-form-urlencoded", body.as_bytes())),
    )
    .await;
    assert_eq!(r.status, 303);
    assert!(
        r.header("location").unwrap().contains("replayed="),
        "{:?}",
        r.header("location")
    );
    // Another user's CSRF token does not fit alice's session.
    let r = request(
        w.gw.web,
        "POST",
        &path,
        &[("Cookie", cookie), ("X-CSRF-Token", &w.bob.csrf)],
        Some(("application/json", b"{}")),
    )
    .await;
    assert_eq!(r.status, 403);
    w.gw.stop().await;
}

#[tokio::test]
async fn logins_are_throttled_and_cookies_are_strict() {
    let w = world().await;
    for _ in 0..5 {
        let r = login(w.gw.web, "alice@example.org", "wrong password")
            .await
            .unwrap_err();
        assert_eq!(r.status, 401);
    }
    let r = login(w.gw.web, "alice@example.org", "password for tests")
        .await
        .unwrap_err();
    assert_eq!(r.status, 429, "even the right password waits");
    let r = login(w.gw.web, "nobody@example.org", "whatever it is")
        .await
        .unwrap_err();
    assert_eq!(r.status, 429, "the same client address waits too");
    let ok = request(
        w.gw.web,
        "POST",
        "/api/v1/login",
        &[],
        Some((
            "application/json",
            br#"{"username":"x@example.org","password":"y"}"#,
        )),
    )
    .await;
    assert_eq!(ok.status, 429);

    let fresh = gateway(w.cap.addr, "").await;
    fresh
        .store
        .add_user(
            "carol@example.org",
            &sponts::auth::hash_password("password for tests").unwrap(),
            sponts::storage::Role::User,
        )
        .await
        .unwrap();
    let r = request(
        fresh.web,
        "POST",
        "/api/v1/login",
        &[],
        Some((
            "application/json",
            br#"{"username":"carol@example.org","password":"password for tests"}"#,
        )),
    )
    .await;
    let cookie = r.header("set-cookie").unwrap();
    for part in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(part), "{cookie}");
    }
    let page = request(fresh.web, "GET", "/login", &[], None).await;
    let csp = page.header("content-security-policy").unwrap();
    assert!(
        csp.contains("default-src 'none'") && !csp.contains("script-src"),
        "{csp}"
    );
    assert_eq!(page.header("x-frame-options"), Some("DENY"));
    assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
    fresh.stop().await;
    w.gw.stop().await;
}

#[tokio::test]
async fn html_mail_is_framed_without_script_or_remote_content() {
    let cap = Capture::start(CaptureOptions::default()).await;
    let gw = gateway(cap.addr, "").await;
    gw.store
        .add_user(
            "alice@example.org",
            &sponts::auth::hash_password("password for tests").unwrap(),
            sponts::storage::Role::User,
        )
        .await
        .unwrap();
    let mut c = Client::connect(gw.addr).await;
    c.expect("EHLO client.test", 250).await;
    let html = b"Subject: rich\r\nMIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>Hi</p><script>alert(1)</script><img src=\"https://tracker.example/p.gif\">\r\n";
    let id = reply_id(
        &c.send_mail("n@partner.example", &["alice@example.org"], html)
            .await,
    );
    let l = login(gw.web, "alice@example.org", "password for tests")
        .await
        .unwrap();
    let page = request(
        gw.web,
        "GET",
        &format!("/messages/{id}"),
        &[("Cookie", &l.cookie)],
        None,
    )
    .await;
    assert!(
        page.text().contains(&format!(
            r#"<iframe class="html" sandbox="" src="/messages/{id}/html""#
        )),
        "{}",
        page.text()
    );
    assert!(!page.text().contains("<script>"));
    let frame = request(
        gw.web,
        "GET",
        &format!("/messages/{id}/html"),
        &[("Cookie", &l.cookie)],
        None,
    )
    .await;
    let csp = frame.header("content-security-policy").unwrap();
    assert!(
        csp.contains("default-src 'none'")
            && csp.contains("sandbox")
            && csp.contains("img-src data:"),
        "{csp}"
    );
    assert_eq!(frame.header("x-frame-options"), Some("SAMEORIGIN"));
    gw.stop().await;
}

#[tokio::test]
async fn admin_pages_manage_users() {
    let w = world().await;
    let cookie = w.admin.cookie.as_str();
    let form = |body: String| body;
    let post = |path: &'static str, body: String| {
        let web = w.gw.web;
        let cookie = cookie.to_string();
        async move {
            request(
                web,
                "POST",
                path,
                &[("Cookie", &cookie)],
                Some(("application/x-www-form-urlencoded", body.as_bytes())),
            )
            .await
        }
    };
    let csrf = &w.admin.csrf;
    let r = post(
        "/admin/users",
        form(format!(
            "csrf={csrf}&address=carol%40example.org&password=carols+password&role=user"
        )),
    )
    .await;
    assert_eq!(
        (
            r.status,
            r.header("location").map(|l| l.contains("msg=added"))
        ),
        (303, Some(true))
    );
    assert!(
        login(w.gw.web, "carol@example.org", "carols password")
            .await
            .is_ok()
    );
    let r = post(
        "/admin/users/password",
        form(format!(
            "csrf={csrf}&address=carol%40example.org&password=a+new+one+for+carol"
        )),
    )
    .await;
    assert_eq!(r.status, 303);
    assert!(
        login(w.gw.web, "carol@example.org", "a new one for carol")
            .await
            .is_ok()
    );
    let old_session = login(w.gw.web, "carol@example.org", "a new one for carol")
        .await
        .unwrap();
    let r = post(
        "/admin/users/password",
        form(format!(
            "csrf={csrf}&address=carol%40example.org&password=and+another+one"
        )),
    )
    .await;
    assert_eq!(r.status, 303);
    let r = request(
        w.gw.web,
        "GET",
        "/api/v1/me",
        &[("Authorization", &format!("Bearer {}", old_session.token))],
        None,
    )
    .await;
    assert_eq!(
        r.status, 401,
        "a new password ends the sessions of the old one"
    );
    let r = post(
        "/admin/users/password",
        form(format!(
            "csrf={csrf}&address=carol%40example.org&password=a+new+one+for+carol"
        )),
    )
    .await;
    assert_eq!(r.status, 303);
    let r = post(
        "/admin/users/alias",
        form(format!(
            "csrf={csrf}&address=carol%40example.org&role=alice%40example.org"
        )),
    )
    .await;
    assert!(
        r.header("location").unwrap().contains("msg="),
        "{:?}",
        r.header("location")
    );
    let carol = login(w.gw.web, "carol@example.org", "a new one for carol")
        .await
        .unwrap();
    let r = request(
        w.gw.web,
        "GET",
        "/api/v1/messages",
        &[("Authorization", &format!("Bearer {}", carol.token))],
        None,
    )
    .await;
    assert_eq!(
        ids(&r),
        vec![w.for_alice.clone()],
        "the alias shows alice's mail to carol"
    );
    let r = post(
        "/admin/users/delete",
        form(format!("csrf={csrf}&address=carol%40example.org")),
    )
    .await;
    assert_eq!(r.status, 303);
    let r = request(
        w.gw.web,
        "GET",
        "/api/v1/messages",
        &[("Authorization", &format!("Bearer {}", carol.token))],
        None,
    )
    .await;
    assert_eq!(
        r.status, 401,
        "a removed user's sessions end with the account"
    );
    // Users cannot use the admin forms.
    let r = request(
        w.gw.web,
        "POST",
        "/admin/users",
        &[("Cookie", &w.alice.cookie)],
        Some((
            "application/x-www-form-urlencoded",
            format!(
                "csrf={}&address=x%40example.org&password=12345678&role=admin",
                w.alice.csrf
            )
            .as_bytes(),
        )),
    )
    .await;
    assert_eq!(r.status, 403);
    assert!(w.gw.store.user("x@example.org").await.unwrap().is_none());
    w.gw.stop().await;
}

#[tokio::test]
async fn bulk_replay_for_an_address_takes_only_its_own_mail() {
    let w = world().await;
    for rcpt in ["ann@example.org", "joann@example.org"] {
        let mut c = Client::connect(w.gw.addr).await;
        c.expect("EHLO client.test", 250).await;
        c.send_mail(
            "news@partner.example",
            &[rcpt],
            format!("Subject: for {rcpt}\r\n\r\nx\r\n").as_bytes(),
        )
        .await;
    }
    let before = w.cap.wait_for(4).await.len();
    let body = format!("csrf={}&rcpt=ann%40example.org", w.admin.csrf);
    let r = request(
        w.gw.web,
        "POST",
        "/admin/bulk",
        &[("Cookie", &w.admin.cookie)],
        Some(("application/x-www-form-urlencoded", body.as_bytes())),
    )
    .await;
    assert_eq!(r.status, 303, "{}", r.text());
    let d = w.cap.wait_for(before + 1).await;
    // The replay is journaled after its delivery: wait for that record, then count.
    let newest = || async {
        w.gw.store
            .query_journal(&sponts::storage::JournalFilter {
                limit: Some(1),
                ..Default::default()
            })
            .await
            .unwrap()
            .remove(0)
    };
    for _ in 0..300 {
        if newest().await.replay_of.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let d2 = w.cap.deliveries();
    assert_eq!(
        d2.len(),
        before + 1,
        "joann's mail must not go to ann: {:?}",
        d2.iter().map(|m| &m.rcpts).collect::<Vec<_>>()
    );
    assert_eq!(d[before].rcpts, vec!["ann@example.org"]);
    assert!(String::from_utf8_lossy(&d[before].data).contains("Subject: for ann@example.org"));

    // The replay record's own download gives the original message.
    let replay = newest().await;
    assert!(replay.replay_of.is_some());
    let raw = get(
        &w,
        Some(&w.admin),
        &format!("/api/v1/messages/{}/raw", replay.id),
    )
    .await;
    assert_eq!(raw.status, 200);
    assert!(raw.text().contains("Subject: for ann@example.org"));
    w.gw.stop().await;
}

/// Any search gives 200 or a 4xx, on both stores: a NUL (which neither an FTS5 phrase nor
/// PostgreSQL text can hold) matches nothing instead of failing the query.
#[tokio::test]
async fn a_nul_in_a_search_matches_nothing_on_both_stores() {
    let db = common::pg::TestDb::create().await;
    for extra in [
        String::new(),
        format!("[storage]\ndatabase = \"{}\"\n", db.url),
    ] {
        let cap = Capture::start(CaptureOptions::default()).await;
        let gw = gateway(cap.addr, &extra).await;
        add_user(&gw.store, "admin@example.org", sponts::storage::Role::Admin).await;
        let mut c = Client::connect(gw.addr).await;
        c.expect("EHLO client.test", 250).await;
        let r = c
            .send_mail(
                "news@partner.example",
                &["alice@example.org"],
                b"Subject: abc\r\n\r\nhello\r\n",
            )
            .await;
        assert!(r.starts_with("250"), "{r}");
        let admin = login(gw.web, "admin@example.org", PASSWORD).await.unwrap();
        let auth = format!("Bearer {}", admin.token);
        for q in [
            "q=a%00b",
            "q=abc%00",
            "sender=news%00",
            "rcpt=%00",
            "subject=a%00bc",
            "ip=127.0.0.1%00",
        ] {
            let r = request(
                gw.web,
                "GET",
                &format!("/api/v1/messages?{q}"),
                &[("Authorization", &auth)],
                None,
            )
            .await;
            assert_eq!(r.status, 200, "{} {q}: {}", gw.store.kind(), r.text());
            assert_eq!(r.json()["messages"], serde_json::json!([]), "{q}");
        }
        let r = request(
            gw.web,
            "GET",
            "/?q=a%00b",
            &[("Cookie", &admin.cookie)],
            None,
        )
        .await;
        assert_eq!(r.status, 200, "{}: the page too", gw.store.kind());
        let r = request(
            gw.web,
            "GET",
            "/api/v1/messages/AB%00CD",
            &[("Authorization", &auth)],
            None,
        )
        .await;
        assert_eq!(r.status, 404, "{}", gw.store.kind());
        // Nor anywhere else a NUL can come in: a user name, a trap, a disposable address.
        let r = request(
            gw.web,
            "POST",
            "/api/v1/login",
            &[],
            Some((
                "application/json",
                br#"{"username": "adm\u0000in@example.org", "password": "x"}"#,
            )),
        )
        .await;
        assert_eq!(r.status, 401, "{}: {}", gw.store.kind(), r.text());
        let r = request(
            gw.web,
            "DELETE",
            "/api/v1/traps/a%00b",
            &[("Authorization", &auth)],
            None,
        )
        .await;
        assert_eq!(r.status, 404, "{}: {}", gw.store.kind(), r.text());
        let r = request(
            gw.web,
            "POST",
            "/api/v1/disposable/shop.2.a%00dmin@example.org/lock",
            &[("Authorization", &auth)],
            None,
        )
        .await;
        assert_eq!(r.status, 400, "{}: {}", gw.store.kind(), r.text());
        // The same search without the NUL still finds the mail.
        let r = request(
            gw.web,
            "GET",
            "/api/v1/messages?q=abc",
            &[("Authorization", &auth)],
            None,
        )
        .await;
        assert_eq!(r.json()["messages"].as_array().unwrap().len(), 1);
        gw.stop().await;
    }
    db.drop_db().await;
}

/// Every refusal is JSON `{"error": ...}` with the status docs/openapi.yaml gives: bodies and
/// query strings that do not parse, and parameters out of range, which are refused, not bent.
#[tokio::test]
async fn bad_input_is_refused_with_a_json_error() {
    let w = world().await;
    let json_error = |r: &Response, status: u16, what: &str| {
        assert_eq!(r.status, status, "{what}: {}", r.text());
        assert_eq!(r.header("content-type"), Some("application/json"), "{what}");
        assert!(
            r.json()["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{what}: {}",
            r.text()
        );
    };
    for (q, what) in [
        ("limit=AAA", "a limit that is no number"),
        ("limit=0", "limit below 1"),
        ("limit=501", "limit above the maximum"),
        ("offset=-1", "a negative offset"),
        ("attachments=maybe", "an unknown attachments value"),
        ("verdict=lost", "an unknown verdict"),
        ("from=yesterday", "a bad date"),
    ] {
        json_error(
            &get(&w, Some(&w.admin), &format!("/api/v1/messages?{q}")).await,
            400,
            what,
        );
    }
    assert!(
        get(&w, Some(&w.admin), "/api/v1/messages?limit=501")
            .await
            .json()["error"]
            .as_str()
            .unwrap()
            .contains("limit")
    );
    for q in [
        "from=&until=&verdict=&attachments=",
        "verdict=queued",
        "attachments=no",
        "limit=500&offset=0",
    ] {
        assert_eq!(
            get(&w, Some(&w.admin), &format!("/api/v1/messages?{q}"))
                .await
                .status,
            200,
            "{q}"
        );
    }
    json_error(
        &get(&w, Some(&w.admin), "/api/v1/stats?bucket=AAA").await,
        400,
        "a bad bucket",
    );
    json_error(
        &get(&w, Some(&w.admin), "/api/v1/stats?to=AAA").await,
        400,
        "`to` without `from` is not ignored",
    );

    let login = |ct: &'static str, body: &'static str| {
        request(
            w.gw.web,
            "POST",
            "/api/v1/login",
            &[],
            Some((ct, body.as_bytes())),
        )
    };
    json_error(
        &login("text/plain", "username=a").await,
        415,
        "login body that is not JSON",
    );
    json_error(
        &login("application/json", "{").await,
        400,
        "login body that does not parse",
    );
    json_error(
        &login("application/json", "{}").await,
        422,
        "login body without fields",
    );
    let replay = format!("/api/v1/messages/{}/replay", w.for_alice);
    json_error(
        &post_json(&w, Some(&w.admin), &replay, r#"{"to": 5}"#).await,
        422,
        "replay `to` of the wrong type",
    );
    json_error(
        &post_json(&w, Some(&w.admin), &replay, "[null]").await,
        422,
        "a replay body that is not an object",
    );
    let auth = format!("Bearer {}", w.admin.token);
    let r = request(
        w.gw.web,
        "POST",
        &replay,
        &[("Authorization", &auth)],
        Some(("text/plain", b"to=x")),
    )
    .await;
    json_error(&r, 415, "replay body that is not JSON");
    json_error(
        &post_json(&w, Some(&w.admin), "/api/v1/traps", "[]").await,
        422,
        "trap body of the wrong shape",
    );
    let r = request(
        w.gw.web,
        "POST",
        "/api/v1/traps",
        &[("Authorization", &auth)],
        None,
    )
    .await;
    json_error(&r, 415, "trap without a body");
    json_error(
        &get(&w, Some(&w.admin), "/api/v1/nothing-here").await,
        404,
        "a path the API does not have",
    );
    let r = request(
        w.gw.web,
        "PUT",
        "/api/v1/messages",
        &[("Authorization", &auth)],
        None,
    )
    .await;
    json_error(&r, 405, "a method the path does not take");
    assert_eq!(r.header("allow"), Some("GET,HEAD"));
    w.gw.stop().await;
}

/// "Spam" / "Not spam" clicks: on one's own mail only (someone else's does not exist, as for a
/// view); a person's layer of the filter is theirs to see, the filter's figures the admins'.
async fn clicks_and_filter_layers_are_each_users_own(w: &World) {
    let call = |method: &'static str,
                who: Option<&Login>,
                path: String|
     -> std::pin::Pin<Box<dyn std::future::Future<Output = Response>>> {
        let web = w.gw.web;
        let auth = who.map(|l| format!("Bearer {}", l.token));
        Box::pin(async move {
            let headers: Vec<(&str, &str)> = auth
                .as_deref()
                .map(|a| vec![("Authorization", a)])
                .unwrap_or_default();
            request(web, method, &path, &headers, None).await
        })
    };
    let (a, b) = (&w.for_alice, &w.for_bob);
    for kind in ["spam", "not-spam"] {
        assert_eq!(
            call("POST", None, format!("/api/v1/messages/{a}/{kind}"))
                .await
                .status,
            401,
            "{kind}"
        );
        let r = call("POST", Some(&w.bob), format!("/api/v1/messages/{a}/{kind}")).await;
        assert_eq!(r.status, 404, "{kind}: bob cannot click on alice's mail");
        assert!(r.json()["error"].is_string());
        assert_eq!(
            call(
                "POST",
                Some(&w.alice),
                format!("/api/v1/messages/NOSUCHID/{kind}")
            )
            .await
            .status,
            404
        );
        let cookie_only = request(
            w.gw.web,
            "POST",
            &format!("/api/v1/messages/{a}/{kind}"),
            &[("Cookie", w.alice.cookie.as_str())],
            None,
        )
        .await;
        assert_eq!(
            cookie_only.status, 403,
            "{kind}: a cookie session needs X-CSRF-Token"
        );
    }
    let form = request(
        w.gw.web,
        "POST",
        &format!("/messages/{a}/spam"),
        &[("Cookie", w.bob.cookie.as_str())],
        Some((
            "application/x-www-form-urlencoded",
            format!("csrf={}", w.bob.csrf).as_bytes(),
        )),
    )
    .await;
    assert_eq!(form.status, 404, "nor through the page's form");
    let r = call("POST", Some(&w.alice), format!("/api/v1/messages/{a}/spam")).await;
    assert_eq!(
        (r.status, r.json()["learned_as"].as_str()),
        (200, Some("spam")),
        "{}",
        r.text()
    );
    let r = call("POST", Some(&w.admin), format!("/api/v1/messages/{b}/spam")).await;
    assert_eq!(r.status, 200, "an admin clicks on anyone's: {}", r.text());

    // Layers: one's own; the admin's anyone's. The filter's figures: admins only.
    assert_eq!(
        call("GET", None, "/api/v1/filter/layer".into())
            .await
            .status,
        401
    );
    let own = call("GET", Some(&w.alice), "/api/v1/filter/layer".into())
        .await
        .json();
    assert_eq!(
        (own["owner"].as_str(), own["marks"].as_array().map(Vec::len)),
        (Some("alice@example.org"), Some(1))
    );
    let r = call(
        "GET",
        Some(&w.alice),
        "/api/v1/filter/layer?owner=bob@example.org".into(),
    )
    .await;
    assert_eq!(r.status, 403);
    assert!(r.json()["error"].is_string() && !r.text().contains(b.as_str()));
    let bobs = call(
        "GET",
        Some(&w.admin),
        "/api/v1/filter/layer?owner=bob@example.org".into(),
    )
    .await
    .json();
    assert_eq!(
        bobs["marks"][0]["message"].as_str(),
        Some(b.as_str()),
        "the admin's click went to bob's layer"
    );
    assert_eq!(
        call("GET", Some(&w.alice), "/api/v1/filter".into())
            .await
            .status,
        403
    );
    assert_eq!(
        call("GET", Some(&w.admin), "/api/v1/filter".into())
            .await
            .status,
        200
    );
    for path in [
        "/admin/filter".to_string(),
        format!("/messages/{a}/recheck"),
    ] {
        let page = |who: &Login| -> std::pin::Pin<Box<dyn std::future::Future<Output = Response>>> {
            let (web, path, cookie) = (w.gw.web, path.clone(), who.cookie.clone());
            Box::pin(async move {
                request(web, "GET", &path, &[("Cookie", cookie.as_str())], None).await
            })
        };
        assert_eq!(page(&w.alice).await.status, 403, "{path}");
        assert_eq!(page(&w.admin).await.status, 200, "{path}");
    }
}
