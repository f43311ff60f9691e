//! The web UI in a real headless Chromium: sign in, search, open a message, replay it and see it
//! arrive at the backend; an admin's bulk replay with its progress page. Screenshots are kept in
//! target/screenshots/.

mod common;

use common::browser::Browser;
use common::*;

async fn deliver(gw: &Gateway, subject: &str, rcpt: &str, extra: &str) {
    let mut c = Client::connect(gw.addr).await;
    c.expect("EHLO client.test", 250).await;
    let msg = format!(
        "From: Partner <news@partner.example>\r\nTo: {rcpt}\r\nSubject: {subject}\r\n{extra}\r\nHello,\r\nthis is {subject}.\r\n"
    );
    let r = c
        .send_mail("news@partner.example", &[rcpt], msg.as_bytes())
        .await;
    assert!(r.starts_with("250"), "{r}");
}

#[tokio::test]
async fn sign_in_search_open_replay_and_bulk_replay_in_chromium() {
    let cap = Capture::start(CaptureOptions::default()).await;
    let gw = gateway(cap.addr, "").await;
    let pw = sponts::auth::hash_password("password for tests").unwrap();
    gw.store
        .add_user("alice@example.org", &pw, sponts::storage::Role::User)
        .await
        .unwrap();
    gw.store
        .add_user("admin@example.org", &pw, sponts::storage::Role::Admin)
        .await
        .unwrap();
    deliver(&gw, "Quarterly invoice", "alice@example.org", "").await;
    deliver(&gw, "Team lunch on Friday", "alice@example.org", "").await;
    deliver(&gw, "Build report", "alice@example.org", "").await;
    deliver(&gw, "Not for alice", "bob@example.org", "").await;
    assert_eq!(cap.wait_for(4).await.len(), 4);
    let base = format!("http://{}", gw.web);

    let b = Browser::start().await;
    b.goto(&format!("{base}/")).await;
    assert!(b.url().await.ends_with("/login"), "{}", b.url().await);
    b.screenshot("ui-01-login").await;
    b.type_into("#username", "alice@example.org").await;
    b.type_into("#password", "password for tests").await;
    b.click("button[type=submit]").await;
    b.find("table.messages").await;
    assert_eq!(
        b.count("table.messages tbody tr").await,
        3,
        "alice sees her three messages"
    );
    b.screenshot("ui-02-messages").await;

    b.type_into("#q", "invoice").await;
    b.click("form.search button[type=submit]").await;
    for _ in 0..50 {
        if b.url().await.contains("q=invoice") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(b.count("table.messages tbody tr").await, 1);
    b.click("table.messages tbody tr td a").await;
    let h1 = b.text("main h1").await;
    assert_eq!(h1, "Quarterly invoice");
    assert!(
        b.text("pre.body")
            .await
            .contains("this is Quarterly invoice.")
    );
    b.screenshot("ui-03-message").await;

    b.click("#replay").await;
    let result = b.text("#replay-result").await;
    assert!(
        result.contains("Replayed to alice@example.org") && result.contains("250"),
        "{result}"
    );
    b.screenshot("ui-04-replayed").await;
    let d = cap.wait_for(5).await;
    assert_eq!(d[4].rcpts, vec!["alice@example.org"]);
    assert!(String::from_utf8_lossy(&d[4].data).starts_with("X-Sponts-Replay: of="));

    // Phone width: the list still reads.
    b.goto(&format!("{base}/")).await;
    b.window(390, 844).await;
    b.find("table.messages").await;
    b.screenshot("ui-05-phone").await;
    b.window(1280, 900).await;

    // The admin replays everything alice received today, and watches it finish.
    b.delete_cookies().await;
    b.goto(&format!("{base}/login")).await;
    b.type_into("#username", "admin@example.org").await;
    b.type_into("#password", "password for tests").await;
    b.click("button[type=submit]").await;
    b.find("table.messages").await;
    assert_eq!(
        b.count("table.messages tbody tr").await,
        5,
        "the admin sees all, replay included"
    );
    b.goto(&format!("{base}/admin/bulk")).await;
    let today = sponts::clock::rfc3339(sponts::clock::now_us())[..10].to_string();
    b.type_into("#rcpt", "alice@example.org").await;
    // A date field takes the digits in the browser locale's order (en-US here).
    b.type_into("#from", &us_date(&today)).await;
    b.screenshot("ui-06-bulk-form").await;
    b.click("form button[type=submit]").await;
    let mut state = String::new();
    for _ in 0..100 {
        state = b.text("#state").await;
        if state.starts_with("Finished") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(state, "Finished: 3 delivered, 0 failed.");
    assert!(b.text("#progress").await.starts_with("3 of 3"));
    b.screenshot("ui-07-bulk-done").await;
    let d = cap.wait_for(8).await;
    assert_eq!(d.len(), 8, "three more deliveries");
    assert!(d[5..].iter().all(|m| m.rcpts == vec!["alice@example.org"]));
    b.quit().await;
    gw.stop().await;
}

/// `2026-11-28` as typed into a date field of an en-US browser: 11282026.
fn us_date(iso: &str) -> String {
    format!("{}{}{}", &iso[5..7], &iso[8..10], &iso[..4])
}

/// The small things of the pages, read from their HTML: times on one line with their zone, sizes
/// that do not wrap, a paper clip that needs no emoji font, `1 message` in the singular, and a
/// name over every column of the Report's top lists.
#[tokio::test]
async fn times_sizes_counts_and_the_paper_clip_read_well() {
    use common::http::{login, request};
    // The mail server is down: the one message waits in the queue.
    let gw = gateway(dead_address(), "[queue]\nprobe = 1\n").await;
    add_user(&gw.store, "admin@example.org", sponts::storage::Role::Admin).await;
    // A user: the queue takes mail for addresses it knows.
    add_user(&gw.store, "alice@example.org", sponts::storage::Role::User).await;
    let with_file = "Content-Type: multipart/mixed; boundary=b\r\nMIME-Version: 1.0\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n--b\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=a.pdf\r\n\r\nx\r\n--b--";
    deliver(&gw, "With a file", "alice@example.org", with_file).await;
    let admin = login(gw.web, "admin@example.org", PASSWORD).await.unwrap();
    let cookie = [("Cookie", admin.cookie.as_str())];
    let page = |path: &'static str| request(gw.web, "GET", path, &cookie, None);

    let list = page("/").await.text();
    let row = list.split("<tbody>").nth(1).unwrap();
    assert!(
        row.contains(r#"<time class="when" datetime=""#) && row.contains(" UTC</time>"),
        "a time with its zone: {row}"
    );
    assert!(
        row.contains(r#"<svg class="clip""#) && !row.contains('📎'),
        "a drawn clip: {row}"
    );
    assert!(
        row.contains(r#"class="hide-narrow small nowrap">"#) && row.contains("\u{a0}B</td>"),
        "the size on one line: {row}"
    );
    let css = page("/static/style.css").await.text();
    assert!(
        css.contains(".when, .nowrap { white-space:nowrap; }"),
        "{css}"
    );

    let queue = page("/admin/queue").await.text();
    assert!(
        queue.contains(
            r#"<p class="muted" id="queue-count">1 message waits for the mail server.</p>"#
        ),
        "{queue}"
    );
    assert!(queue.contains("Queue mode since <time"), "{queue}");

    let report = page("/admin/report").await.text();
    for (id, first) in [
        ("top_ip", "client IP"),
        ("top_sender_domain", "sender domain"),
        ("top_helo", "HELO name"),
    ] {
        assert!(
            report.contains(&format!(
                r#"<table class="report" id="table-{id}"><thead><tr><th>{first}</th>"#
            )),
            "{id}"
        );
    }
    assert!(!report.contains("<th></th>"), "no column without a name");
    gw.stop().await;
}
