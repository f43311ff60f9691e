//! UCE in the API and the browser: who may see and change disposable addresses and traps, the
//! "not spam" mark, and the disposable page in a real headless Chromium.

mod common;

use common::browser::Browser;
use common::http::{Login, Response, login, request};
use common::*;

async fn send(gw: &Gateway, rcpt: &str) -> String {
    let mut c = Client::connect(gw.addr).await;
    c.expect("EHLO shop.test", 250).await;
    c.expect("MAIL FROM:<news@shop.example>", 250).await;
    let r = c.cmd(&format!("RCPT TO:<{rcpt}>")).await;
    if !r.starts_with("250") {
        return r;
    }
    c.expect("DATA", 354).await;
    c.send(format!("Subject: for {rcpt}\r\n\r\nhello\r\n.\r\n").as_bytes())
        .await;
    c.reply().await
}

async fn call(
    gw: &Gateway,
    who: Option<&Login>,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> Response {
    let auth = who.map(|l| format!("Bearer {}", l.token));
    let headers: Vec<(&str, &str)> = auth
        .as_deref()
        .map(|a| vec![("Authorization", a)])
        .unwrap_or_default();
    request(
        gw.web,
        method,
        path,
        &headers,
        body.map(|b| ("application/json", b.as_bytes())),
    )
    .await
}

async fn users(gw: &Gateway) -> (Login, Login, Login) {
    for (addr, role) in [
        ("alice@example.org", sponts::storage::Role::User),
        ("bob@example.org", sponts::storage::Role::User),
        ("admin@example.org", sponts::storage::Role::Admin),
    ] {
        add_user(&gw.store, addr, role).await;
    }
    (
        login(gw.web, "alice@example.org", PASSWORD).await.unwrap(),
        login(gw.web, "bob@example.org", PASSWORD).await.unwrap(),
        login(gw.web, "admin@example.org", PASSWORD).await.unwrap(),
    )
}

#[tokio::test]
async fn disposable_addresses_traps_and_not_spam_through_the_api() {
    let cap = Capture::start(CaptureOptions {
        mailboxes: Some(
            ["alice@example.org", "bob@example.org"]
                .map(String::from)
                .into(),
        ),
        ..Default::default()
    })
    .await;
    let gw = gateway(cap.addr, "[uce]\ntarpit_delay = \"0s\"\n").await;
    let (alice, bob, admin) = users(&gw).await;
    assert!(
        send(&gw, "shop.5.alice@example.org")
            .await
            .starts_with("250")
    );
    let bobs = send(&gw, "news.5.bob@example.org").await;
    assert!(bobs.starts_with("250"));

    // Each user sees their own; the admin all; nobody signed out anything.
    assert_eq!(
        call(&gw, None, "GET", "/api/v1/disposable", None)
            .await
            .status,
        401
    );
    let mine = call(&gw, Some(&alice), "GET", "/api/v1/disposable", None)
        .await
        .json();
    let list = mine["disposable"].as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(
        (
            list[0]["address"].as_str(),
            list[0]["used"].as_i64(),
            list[0]["max_count"].as_i64()
        ),
        (Some("shop.5.alice@example.org"), Some(1), Some(5))
    );
    assert_eq!(
        call(&gw, Some(&admin), "GET", "/api/v1/disposable", None)
            .await
            .json()["disposable"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // Changing: own only (someone else's is "not found"), known actions only, CSRF for cookies.
    assert_eq!(
        call(
            &gw,
            Some(&alice),
            "POST",
            "/api/v1/disposable/news.5.bob@example.org/lock",
            None
        )
        .await
        .status,
        404
    );
    assert_eq!(
        call(
            &gw,
            Some(&alice),
            "POST",
            "/api/v1/disposable/shop.5.alice@example.org/burn",
            None
        )
        .await
        .status,
        400
    );
    assert_eq!(
        call(
            &gw,
            Some(&alice),
            "POST",
            "/api/v1/disposable/alice@example.org/lock",
            None
        )
        .await
        .status,
        400
    );
    let cookie_only = request(
        gw.web,
        "POST",
        "/api/v1/disposable/shop.5.alice@example.org/lock",
        &[("Cookie", alice.cookie.as_str())],
        None,
    )
    .await;
    assert_eq!(cookie_only.status, 403);
    let r = call(
        &gw,
        Some(&alice),
        "POST",
        "/api/v1/disposable/shop.1.alice@example.org/lock",
        None,
    )
    .await;
    assert_eq!(
        (r.status, r.json()["locked"].as_bool()),
        (200, Some(true)),
        "any N names the same address"
    );
    let refused = send(&gw, "shop.5.alice@example.org").await;
    assert_eq!(
        refused,
        "550 5.1.1 <shop.5.alice@example.org>: Recipient address rejected: User unknown"
    );
    assert_eq!(
        call(
            &gw,
            Some(&alice),
            "POST",
            "/api/v1/disposable/shop.5.alice@example.org/unlock",
            None
        )
        .await
        .status,
        200
    );
    assert!(
        send(&gw, "shop.5.alice@example.org")
            .await
            .starts_with("250")
    );
    assert_eq!(
        call(
            &gw,
            Some(&admin),
            "POST",
            "/api/v1/disposable/news.5.bob@example.org/reset",
            None
        )
        .await
        .json()["used"]
            .as_i64(),
        Some(0)
    );

    // Traps: admins only.
    for who in [None, Some(&alice)] {
        let expect = if who.is_none() { 401 } else { 403 };
        assert_eq!(
            call(&gw, who, "GET", "/api/v1/traps", None).await.status,
            expect
        );
        assert_eq!(
            call(
                &gw,
                who,
                "POST",
                "/api/v1/traps",
                Some(r#"{"pattern": "x@example.org"}"#)
            )
            .await
            .status,
            expect
        );
        assert_eq!(
            call(&gw, who, "DELETE", "/api/v1/traps/x@example.org", None)
                .await
                .status,
            expect
        );
    }
    assert_eq!(
        call(
            &gw,
            Some(&admin),
            "POST",
            "/api/v1/traps",
            Some(r#"{"pattern": "no pattern"}"#)
        )
        .await
        .status,
        422
    );
    assert_eq!(
        call(
            &gw,
            Some(&admin),
            "POST",
            "/api/v1/traps",
            Some(r#"{"pattern": "Bait-*@example.org"}"#)
        )
        .await
        .status,
        201
    );
    assert_eq!(
        call(&gw, Some(&admin), "GET", "/api/v1/traps", None)
            .await
            .json()["managed"][0],
        "bait-*@example.org"
    );
    // Nodes re-read the traps every 10 s; this one has them now only after a fresh start, so the
    // store is checked instead of waiting.
    assert_eq!(gw.store.traps().await.unwrap(), vec!["bait-*@example.org"]);
    assert_eq!(
        call(
            &gw,
            Some(&admin),
            "DELETE",
            "/api/v1/traps/bait-*@example.org",
            None
        )
        .await
        .status,
        204
    );
    assert_eq!(
        call(
            &gw,
            Some(&admin),
            "DELETE",
            "/api/v1/traps/bait-*@example.org",
            None
        )
        .await
        .status,
        404
    );

    // "Not spam": learned as ham, once; someone else's message is not found.
    let id = reply_id(&bobs);
    assert_eq!(
        call(
            &gw,
            Some(&alice),
            "POST",
            &format!("/api/v1/messages/{id}/not-spam"),
            None
        )
        .await
        .status,
        404
    );
    let r = call(
        &gw,
        Some(&bob),
        "POST",
        &format!("/api/v1/messages/{id}/not-spam"),
        None,
    )
    .await;
    assert_eq!(
        (r.status, r.json()["changed"].as_bool()),
        (200, Some(true)),
        "{}",
        r.text()
    );
    assert_eq!(
        call(
            &gw,
            Some(&bob),
            "POST",
            &format!("/api/v1/messages/{id}/not-spam"),
            None
        )
        .await
        .json()["changed"]
            .as_bool(),
        Some(false)
    );
    assert_eq!(gw.store.learned_totals().await.unwrap(), (0, 1));

    // Pages: the traps page is the admin's.
    let page = |who: &Login, path: &str| {
        let cookie = who.cookie.clone();
        let (web, path) = (gw.web, path.to_string());
        async move { request(web, "GET", &path, &[("Cookie", cookie.as_str())], None).await }
    };
    assert_eq!(page(&alice, "/admin/traps").await.status, 403);
    assert_eq!(page(&admin, "/admin/traps").await.status, 200);
    let d = page(&alice, "/disposable").await;
    assert!(
        d.text().contains("shop.5.alice@example.org") && !d.text().contains("news.5.bob"),
        "{}",
        d.text()
    );
    let s = page(
        &alice,
        "/snippet?address=alice%40example.org&trap=bait%40example.org",
    )
    .await;
    assert!(
        s.text().contains("&amp;#97;&amp;#108;") && s.text().contains("mailto:bait@example.org"),
        "{}",
        s.text()
    );
    gw.stop().await;
}

#[tokio::test]
async fn the_disposable_page_in_chromium() {
    let cap = Capture::start(CaptureOptions {
        mailboxes: Some(["alice@example.org".to_string()].into()),
        ..Default::default()
    })
    .await;
    let gw = gateway(cap.addr, "[uce]\ntarpit_delay = \"0s\"\n").await;
    add_user(&gw.store, "alice@example.org", sponts::storage::Role::User).await;
    assert!(
        send(&gw, "shop.3.alice@example.org")
            .await
            .starts_with("250")
    );
    let base = format!("http://{}", gw.web);
    let b = Browser::start().await;
    b.goto(&format!("{base}/login")).await;
    b.type_into("#username", "alice@example.org").await;
    b.type_into("#password", PASSWORD).await;
    b.click("button[type=submit]").await;
    b.find("table.messages").await;
    b.goto(&format!("{base}/disposable")).await;
    assert!(
        b.text("#disposable")
            .await
            .contains("shop.3.alice@example.org")
    );
    assert!(b.text("#disposable").await.contains("1 of 3"));
    b.click("#disposable button").await;
    b.find(".notice.ok").await;
    assert!(
        b.text(".notice.ok").await.contains("locked"),
        "{}",
        b.text(".notice.ok").await
    );
    assert!(b.text("#disposable").await.contains("locked"));
    b.screenshot("uce-disposable").await;
    assert!(
        send(&gw, "shop.3.alice@example.org")
            .await
            .starts_with("550 5.1.1")
    );
    b.quit().await;
    gw.stop().await;
}

/// A used-up address is shown as such, and Unlock really opens it: its count starts again
/// (before, it showed `open` with a Lock button while mail was still refused).
#[tokio::test]
async fn unlocking_a_used_up_address_opens_it_again() {
    let cap = Capture::start(CaptureOptions {
        mailboxes: Some(["alice@example.org".to_string()].into()),
        ..Default::default()
    })
    .await;
    let gw = gateway(cap.addr, "[uce]\ntarpit_delay = \"0s\"\n").await;
    let (alice, _, _) = users(&gw).await;
    for _ in 0..2 {
        assert!(
            send(&gw, "shop.2.alice@example.org")
                .await
                .starts_with("250")
        );
    }
    assert!(
        send(&gw, "shop.2.alice@example.org")
            .await
            .starts_with("550 5.1.1"),
        "used up"
    );
    let list = request(
        gw.web,
        "GET",
        "/disposable",
        &[("Cookie", alice.cookie.as_str())],
        None,
    )
    .await
    .text();
    assert!(
        list.contains("2 of 2")
            && list.contains(">used up</span>")
            && list.contains("Unlock (count starts again)"),
        "{list}"
    );

    let r = call(
        &gw,
        Some(&alice),
        "POST",
        "/api/v1/disposable/shop.2.alice@example.org/unlock",
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        (r.json()["locked"].as_bool(), r.json()["used"].as_i64()),
        (Some(false), Some(0)),
        "{}",
        r.text()
    );
    assert!(
        send(&gw, "shop.2.alice@example.org")
            .await
            .starts_with("250"),
        "open again"
    );
    let list = request(
        gw.web,
        "GET",
        "/disposable",
        &[("Cookie", alice.cookie.as_str())],
        None,
    )
    .await
    .text();
    assert!(
        list.contains("1 of 2") && list.contains(">open</span>"),
        "{list}"
    );

    // A lock by hand is lifted without touching the count.
    call(
        &gw,
        Some(&alice),
        "POST",
        "/api/v1/disposable/shop.2.alice@example.org/lock",
        None,
    )
    .await;
    let r = call(
        &gw,
        Some(&alice),
        "POST",
        "/api/v1/disposable/shop.2.alice@example.org/unlock",
        None,
    )
    .await;
    assert_eq!(
        (r.json()["locked"].as_bool(), r.json()["used"].as_i64()),
        (Some(false), Some(1))
    );
    gw.stop().await;
}
