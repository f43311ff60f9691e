//! The web UI in a real headless Chromium: sign in, search, open a message, replay it and see it
//! arrive at the backend; an admin's bulk replay with its progress page. Screenshots are kept in
//! target/screenshots/.

mod common;

use common::browser::Browser;
use common::*;

async fn deliver(gw: &Gateway, subject: &str, rcpt: &str, extra: &str) {
    let mut c = Client::connect(gw.addr).await;
    c.expect("EHLO client.test", 250).await;
    let msg = format!("From: Partner <news@partner.example>\r\nTo: {rcpt}\r\nSubject: {subject}\r\n{extra}\r\nHello,\r\nthis is {subject}.\r\n");
    let r = c.send_mail("news@partner.example", &[rcpt], msg.as_bytes()).await;
    assert!(r.starts_with("250"), "{r}");
}

#[tokio::test]
async fn sign_in_search_open_replay_and_bulk_replay_in_chromium() {
    let cap = Capture::start(CaptureOptions::default()).await;
    let gw = gateway(cap.addr, "").await;
    let pw = sponts::auth::hash_password("password for tests").unwrap();
    gw.store.add_user("alice@example.org", &pw, sponts::storage::Role::User).await.unwrap();
    gw.store.add_user("admin@example.org", &pw, sponts::storage::Role::Admin).await.unwrap();
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
    assert_eq!(b.count("table.messages tbody tr").await, 3, "alice sees her three messages");
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
    assert!(b.text("pre.body").await.contains("this is Quarterly invoice."));
    b.screenshot("ui-03-message").await;

    b.click("#replay").await;
    let result = b.text("#replay-result").await;
    assert!(result.contains("Replayed to alice@example.org") && result.contains("250"), "{result}");
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
    assert_eq!(b.count("table.messages tbody tr").await, 5, "the admin sees all, replay included");
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
