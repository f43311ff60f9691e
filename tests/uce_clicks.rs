//! Training that people do, over SMTP through a running sponts: "Not spam" on a refused message
//! delivers it and changes the next verdict for that person only; "Spam" on delivered mail is
//! learned and offers to block the sender; `sponts learn --from-journal` learns trap hits, clicks
//! and replayed refusals. The shared filter is trained first (`sponts learn` on a generated
//! corpus of 60 spam and 60 ham) so that its verdicts are stable.

mod common;

use common::http::{Login, Response, login, request};
use common::*;
use std::process::Command;

const SPAM_WORDS: [&str; 30] = [
    "bitcoin",
    "casino",
    "jackpot",
    "pills",
    "pharmacy",
    "viagra",
    "discount",
    "winner",
    "lottery",
    "prize",
    "bonus",
    "crypto",
    "investment",
    "profit",
    "guaranteed",
    "offer",
    "cheap",
    "deal",
    "exclusive",
    "limited",
    "urgent",
    "claim",
    "reward",
    "free",
    "trading",
    "signals",
    "returns",
    "double",
    "wealth",
    "million",
];
const HAM_WORDS: [&str; 30] = [
    "meeting",
    "agenda",
    "project",
    "invoice",
    "minutes",
    "budget",
    "review",
    "schedule",
    "report",
    "team",
    "deadline",
    "draft",
    "proposal",
    "contract",
    "quarterly",
    "planning",
    "workshop",
    "colleagues",
    "feedback",
    "presentation",
    "office",
    "lunch",
    "holiday",
    "training",
    "document",
    "attached",
    "regards",
    "thanks",
    "tomorrow",
    "monday",
];

fn message(from: &str, subject: &str, body: &str) -> Vec<u8> {
    format!("From: {from}\r\nTo: someone@example.org\r\nSubject: {subject}\r\nMessage-ID: <{}@test>\r\n\r\n{body}\r\n", sponts::id::new_transaction_id()).into_bytes()
}

/// `n` messages of one kind as an mbox: each a different pick of the kind's words.
fn mbox(words: &[&str], n: usize, kind: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..n {
        let pick = |count: usize, step: usize| {
            (0..count)
                .map(|k| words[(i * 7 + k * step) % words.len()])
                .collect::<Vec<_>>()
                .join(" ")
        };
        out.extend_from_slice(
            format!("From x@{kind}{i}.example Mon Jan  1 00:00:00 2024\n").as_bytes(),
        );
        out.extend_from_slice(&message(
            &format!("x@{kind}{i}.example"),
            &pick(4, 5),
            &pick(12, 11),
        ));
        out.extend_from_slice(b"\n");
    }
    out
}

/// The CLI against the gateway's database.
async fn sponts(gw: &Gateway, args: &[&str]) -> String {
    let cfg = gw.dir.path().join("cli.toml");
    std::fs::write(
        &cfg,
        format!(
            "[storage]\ndata_dir = \"{}\"\n[domains]\nlocal = [\"example.org\", \"example.net\"]\n",
            gw.dir.path().display()
        ),
    )
    .unwrap();
    let mut c = Command::new(env!("CARGO_BIN_EXE_sponts"));
    c.args(args).env("SPONTS_CONFIG", &cfg);
    let out = output(c).await;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "sponts {args:?}: {text}");
    text
}

/// A gateway whose shared filter knows 60 spam and 60 ham messages, with alice, bob and an admin.
async fn trained(cap: &Capture, extra: &str) -> (Gateway, Login, Login, Login) {
    let gw = gateway(cap.addr, &format!("[uce]\ntarpit_delay = \"0s\"\n{extra}")).await;
    let (spam, ham) = (
        gw.dir.path().join("spam.mbox"),
        gw.dir.path().join("ham.mbox"),
    );
    std::fs::write(&spam, mbox(&SPAM_WORDS, 60, "spam")).unwrap();
    std::fs::write(&ham, mbox(&HAM_WORDS, 60, "ham")).unwrap();
    let out = sponts(
        &gw,
        &[
            "learn",
            "--spam",
            spam.to_str().unwrap(),
            "--ham",
            ham.to_str().unwrap(),
        ],
    )
    .await;
    assert!(
        out.contains("the filter knows 60 spam and 60 ham messages"),
        "{out}"
    );
    for (addr, role) in [
        ("alice@example.org", sponts::storage::Role::User),
        ("bob@example.org", sponts::storage::Role::User),
        ("admin@example.org", sponts::storage::Role::Admin),
    ] {
        add_user(&gw.store, addr, role).await;
    }
    let (alice, bob, admin) = (
        login(gw.web, "alice@example.org", PASSWORD).await.unwrap(),
        login(gw.web, "bob@example.org", PASSWORD).await.unwrap(),
        login(gw.web, "admin@example.org", PASSWORD).await.unwrap(),
    );
    (gw, alice, bob, admin)
}

/// One message over SMTP; the final reply and the transaction's id.
async fn send(gw: &Gateway, from: &str, rcpt: &str, data: &[u8]) -> (String, String) {
    let mut c = Client::connect(gw.addr).await;
    c.expect("EHLO client.test", 250).await;
    let reply = c.send_mail(from, &[rcpt], data).await;
    let id = id_of(&gw.store, &reply).await;
    (reply, id)
}

/// The newsletter alice wants and the filter takes for spam, this week's and next week's.
fn newsletter(week: &str) -> Vec<u8> {
    message(
        "signals@traders.example",
        &format!("your crypto trading signals, week {week}"),
        &format!(
            "week {week}: crypto trading signals, returns and profit on investment, exclusive bonus, wealth guaranteed"
        ),
    )
}

async fn form_post(gw: &Gateway, who: &Login, path: &str, form: &str) -> Response {
    request(
        gw.web,
        "POST",
        path,
        &[("Cookie", who.cookie.as_str())],
        Some(("application/x-www-form-urlencoded", form.as_bytes())),
    )
    .await
}

async fn api(
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

#[tokio::test]
async fn not_spam_delivers_and_changes_the_next_verdict_for_that_person_only() {
    let cap = Capture::start(CaptureOptions::default()).await;
    let (gw, alice, _bob, _admin) = trained(&cap, "").await;
    let unknown =
        |who: &str| format!("550 5.1.1 <{who}>: Recipient address rejected: User unknown");

    // The filter refuses the newsletter, for alice as for bob.
    let (reply, id) = send(
        &gw,
        "signals@traders.example",
        "alice@example.org",
        &newsletter("1"),
    )
    .await;
    assert_eq!(reply, unknown("alice@example.org"));
    let (reply, _) = send(
        &gw,
        "signals@traders.example",
        "bob@example.org",
        &newsletter("1"),
    )
    .await;
    assert_eq!(reply, unknown("bob@example.org"));

    // Alice's page offers "Not spam"; the form needs the session's CSRF token.
    let page = request(
        gw.web,
        "GET",
        &format!("/messages/{id}"),
        &[("Cookie", alice.cookie.as_str())],
        None,
    )
    .await;
    assert!(
        page.text().contains(r#"id="not-spam""#) && !page.text().contains(r#"id="spam""#),
        "{}",
        page.text()
    );
    assert_eq!(
        form_post(
            &gw,
            &alice,
            &format!("/messages/{id}/not-spam"),
            "csrf=wrong"
        )
        .await
        .status,
        403
    );
    let r = form_post(
        &gw,
        &alice,
        &format!("/messages/{id}/not-spam"),
        &format!("csrf={}", alice.csrf),
    )
    .await;
    assert_eq!(r.status, 303, "{}", r.text());
    let back = r.header("location").unwrap().to_string();
    assert!(
        back.starts_with(&format!("/messages/{id}?marked=ham&replayed="))
            && back.ends_with("&offer=signals@traders.example"),
        "{back}"
    );

    // Delivered to alice's mailbox, learned by the shared filter and by alice's layer.
    let d = cap.wait_for(1).await;
    assert_eq!(d[0].rcpts, vec!["alice@example.org"]);
    assert!(String::from_utf8_lossy(&d[0].data).contains("week 1: crypto trading signals"));
    assert_eq!(gw.store.learned_totals().await.unwrap(), (60, 61));
    let marks = gw.store.marks(Some("alice@example.org"), 10).await.unwrap();
    assert_eq!(
        (marks.len(), marks[0].kind.as_str(), marks[0].personal),
        (1, "ham", true),
        "{marks:?}"
    );
    let again = api(
        &gw,
        Some(&alice),
        "POST",
        &format!("/api/v1/messages/{id}/not-spam"),
        None,
    )
    .await
    .json();
    assert!(
        again["delivered"].is_null() && again["changed"] == false,
        "a second click delivers nothing: {again}"
    );
    let page = request(
        gw.web,
        "GET",
        &back,
        &[("Cookie", alice.cookie.as_str())],
        None,
    )
    .await
    .text();
    assert!(
        page.contains(r#"id="mark-result""#)
            && page.contains("Always allow this sender: signals@traders.example")
            && page.contains(r#"id="replay-result""#),
        "{page}"
    );

    // Next week's newsletter reaches alice — her layer says so — and is still refused for bob.
    let (reply, id2) = send(
        &gw,
        "signals@traders.example",
        "alice@example.org",
        &newsletter("2"),
    )
    .await;
    assert!(reply.starts_with("250 "), "{reply}");
    let notes = journal_entry(&gw.store, &id2)
        .await
        .notes
        .unwrap_or_default();
    assert!(notes.contains("with alice@example.org's layer"), "{notes}");
    assert_eq!(
        cap.wait_for(2).await.len(),
        2,
        "the first week's once (the second click delivered nothing), and this one"
    );
    let (reply, id3) = send(
        &gw,
        "signals@traders.example",
        "bob@example.org",
        &newsletter("2"),
    )
    .await;
    assert_eq!(
        reply,
        unknown("bob@example.org"),
        "alice's click changes nothing for bob"
    );
    assert!(
        !journal_entry(&gw.store, &id3)
            .await
            .notes
            .unwrap_or_default()
            .contains("layer")
    );
    // To both at once the shared filter decides: one person's layer never decides for another.
    let mut c = Client::connect(gw.addr).await;
    c.expect("EHLO client.test", 250).await;
    assert!(
        c.send_mail(
            "signals@traders.example",
            &["alice@example.org", "bob@example.org"],
            &newsletter("2")
        )
        .await
        .starts_with("550 ")
    );

    // The offer, taken: the sender goes on alice's allow list.
    let r = form_post(
        &gw,
        &alice,
        "/senders/change",
        &format!(
            "csrf={}&action=add&verdict=allow&pattern=signals%40traders.example&owner=",
            alice.csrf
        ),
    )
    .await;
    assert_eq!(r.status, 303);
    let entries = gw
        .store
        .sender_entries(Some(&["alice@example.org".to_string()]))
        .await
        .unwrap();
    assert_eq!(
        (
            entries.len(),
            entries[0].pattern.as_str(),
            entries[0].verdict
        ),
        (
            1,
            "signals@traders.example",
            sponts::storage::SenderVerdict::Allow
        )
    );
    gw.stop().await;
}

#[tokio::test]
async fn spam_on_delivered_mail_is_learned_and_offers_to_block_the_sender() {
    let cap = Capture::start(CaptureOptions::default()).await;
    let (gw, alice, bob, admin) = trained(&cap, "").await;
    let promo = || {
        message(
            "promo@shop.example",
            "project review meeting",
            "team agenda for the quarterly budget review, minutes attached, regards",
        )
    };
    let (reply, id) = send(&gw, "promo@shop.example", "alice@example.org", &promo()).await;
    assert!(reply.starts_with("250 "), "{reply}");
    let page = request(
        gw.web,
        "GET",
        &format!("/messages/{id}"),
        &[("Cookie", alice.cookie.as_str())],
        None,
    )
    .await
    .text();
    assert!(
        page.contains(r#"id="spam""#)
            && !page.contains(r#"id="not-spam""#)
            && !page.contains(r#"id="recheck""#),
        "{page}"
    );

    // Someone else's message does not exist for bob; alice's click is learned.
    let path = format!("/api/v1/messages/{id}/spam");
    let r = api(&gw, Some(&bob), "POST", &path, None).await;
    assert_eq!(r.status, 404);
    assert!(r.json()["error"].is_string());
    let r = api(&gw, Some(&alice), "POST", &path, None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let j = r.json();
    assert_eq!(
        (j["learned_as"].as_str(), j["changed"].as_bool()),
        (Some("spam"), Some(true))
    );
    assert_eq!(
        j["personal"],
        serde_json::json!(["alice@example.org"]),
        "the filter had let it through: alice's layer learns"
    );
    assert_eq!(
        (
            j["offer"]["verdict"].as_str(),
            j["offer"]["pattern"].as_str()
        ),
        (Some("block"), Some("promo@shop.example"))
    );
    assert!(j.get("delivered").is_none());
    assert_eq!(gw.store.learned_totals().await.unwrap(), (61, 60));
    assert_eq!(
        api(&gw, Some(&alice), "POST", &path, None).await.json()["changed"].as_bool(),
        Some(false),
        "twice is once"
    );

    // The offer, taken through the API: the sender is refused for alice from now on, not for bob.
    let r = api(
        &gw,
        Some(&alice),
        "POST",
        "/api/v1/senders",
        Some(r#"{"pattern": "promo@shop.example", "verdict": "block"}"#),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let mut c = Client::connect(gw.addr).await;
    c.expect("EHLO client.test", 250).await;
    c.expect("MAIL FROM:<promo@shop.example>", 250).await;
    c.expect("RCPT TO:<alice@example.org>", 550).await;
    c.expect("RCPT TO:<bob@example.org>", 250).await;
    c.expect("QUIT", 221).await;

    // The admin re-checks it with today's filter (alice's layer now counts it spam); nothing moves.
    let before = gw.store.learned_totals().await.unwrap();
    let r = request(
        gw.web,
        "GET",
        &format!("/messages/{id}/recheck"),
        &[("Cookie", admin.cookie.as_str())],
        None,
    )
    .await;
    assert_eq!(r.status, 200);
    let text = r.text();
    assert!(
        text.contains("everyone (shared filter)")
            && text.contains("alice@example.org (with their layer)"),
        "{text}"
    );
    assert_eq!(gw.store.learned_totals().await.unwrap(), before);
    assert_eq!(
        request(
            gw.web,
            "GET",
            &format!("/messages/{id}/recheck"),
            &[("Cookie", alice.cookie.as_str())],
            None
        )
        .await
        .status,
        403
    );
    let filter = request(
        gw.web,
        "GET",
        "/admin/filter",
        &[("Cookie", admin.cookie.as_str())],
        None,
    )
    .await
    .text();
    assert!(
        filter.contains("people&#39;s clicks")
            && filter.contains("sponts learn (mail folders)")
            && filter.contains(r#"id="verdicts""#),
        "{filter}"
    );
    gw.stop().await;
}

#[tokio::test]
async fn learn_from_journal_learns_trap_hits_clicks_and_replayed_refusals() {
    let cap = Capture::start(CaptureOptions::default()).await;
    // Without auto-learning: what the journal knows is learned only when the admin asks.
    let (gw, alice, _bob, admin) = trained(
        &cap,
        "traps = [\"bait@example.org\"]\n[uce.learning]\nauto_learn = false\n",
    )
    .await;
    // (From an address of its own: a trap hit puts the client into the penalty box.)
    let mut bot = Client::connect_from(gw.addr, "127.0.0.2").await;
    bot.expect("EHLO bot.test", 250).await;
    let reply = bot
        .send_mail(
            "bot@spam.example",
            &["bait@example.org"],
            &message("bot@spam.example", "cheap pills", "casino jackpot"),
        )
        .await;
    assert!(reply.starts_with("250 "), "a trap takes the mail: {reply}");
    let (_, refused) = send(
        &gw,
        "signals@traders.example",
        "bob@example.org",
        &newsletter("1"),
    )
    .await;
    let r = api(
        &gw,
        Some(&admin),
        "POST",
        &format!("/api/v1/messages/{refused}/replay"),
        None,
    )
    .await;
    assert_eq!(
        (r.status, r.json()["delivered"].as_bool()),
        (200, Some(true)),
        "{}",
        r.text()
    );
    let (_, delivered) = send(
        &gw,
        "promo@shop.example",
        "alice@example.org",
        &message(
            "promo@shop.example",
            "team lunch",
            "monday lunch with colleagues",
        ),
    )
    .await;
    assert_eq!(
        api(
            &gw,
            Some(&alice),
            "POST",
            &format!("/api/v1/messages/{delivered}/spam"),
            None
        )
        .await
        .status,
        200
    );
    assert_eq!(
        gw.store.learned_totals().await.unwrap(),
        (61, 60),
        "only the click was learned so far"
    );

    let out = sponts(&gw, &["learn", "--from-journal"]).await;
    for line in [
        "trap hits: 1 found, 1 learned as spam, 0 already known",
        "marked spam by people: 1 found, 0 learned as spam, 1 already known",
        "marked not spam by people: 0 found, 0 learned as ham, 0 already known",
        "replayed refusals: 1 found, 1 learned as ham, 0 already known",
        "the filter knows 62 spam and 61 ham messages",
    ] {
        assert!(out.contains(line), "{line}\n{out}");
    }
    let again = sponts(&gw, &["learn", "--from-journal"]).await;
    assert!(
        again.contains("trap hits: 1 found, 0 learned as spam, 1 already known")
            && again.contains("the filter knows 62 spam and 61 ham messages"),
        "{again}"
    );
    let sources = gw.store.learned_by_source().await.unwrap();
    let journal = sources.iter().find(|s| s.source == "journal").unwrap();
    assert_eq!((journal.spam, journal.ham), (1, 1));
    let filter = api(&gw, Some(&admin), "GET", "/api/v1/filter", None)
        .await
        .json();
    assert_eq!(
        (filter["spam"].as_i64(), filter["ham"].as_i64()),
        (Some(62), Some(61))
    );
    gw.stop().await;
}

#[tokio::test]
async fn the_digests_not_spam_link_delivers_and_teaches_the_persons_layer() {
    let cap = Capture::start(CaptureOptions::default()).await;
    let (gw, _alice, _bob, _admin) = trained(&cap, "").await;
    let (reply, id) = send(
        &gw,
        "signals@traders.example",
        "alice@example.org",
        &newsletter("1"),
    )
    .await;
    assert!(reply.starts_with("550 "), "{reply}");
    let (mut config, _dir) = config(cap.addr, "");
    config.digest.base_url = format!("http://{}", gw.web);
    assert_eq!(
        sponts::digest::run_once(&config, &gw.store).await.unwrap(),
        1
    );
    let digest = String::from_utf8(cap.wait_for(1).await[0].data.clone()).unwrap();
    let base = config.digest.base_url.clone();
    let link = |prefix: String| {
        digest
            .lines()
            .find_map(|l| l.trim().strip_prefix(&prefix).map(str::to_string))
            .unwrap_or_else(|| panic!("{prefix}: {digest}"))
    };
    let not_spam = link(format!(
        "Not spam (deliver it, and the filter learns): {base}"
    ));
    let replay = link(base.clone());
    assert!(
        not_spam.starts_with("/r/ns.")
            && replay.starts_with("/r/")
            && !replay.starts_with("/r/ns."),
        "{digest}"
    );

    // GET shows what it will do and changes nothing; POST delivers and teaches alice's layer.
    let r = request(gw.web, "GET", &not_spam, &[], None).await;
    assert!(
        r.status == 200 && r.text().contains("Not spam?"),
        "{}",
        r.text()
    );
    assert!(gw.store.marks(None, 10).await.unwrap().is_empty());
    let r = request(gw.web, "POST", &not_spam, &[], None).await;
    assert!(
        r.status == 200 && r.text().contains("The spam filter has learned"),
        "{}",
        r.text()
    );
    let d = cap.wait_for(2).await;
    assert_eq!(d[1].rcpts, vec!["alice@example.org"]);
    let marks = gw.store.marks(None, 10).await.unwrap();
    assert_eq!(
        (
            marks.len(),
            marks[0].message.as_str(),
            marks[0].owner.as_str(),
            marks[0].actor.as_str(),
            marks[0].personal
        ),
        (
            1,
            id.as_str(),
            "alice@example.org",
            "link:alice@example.org",
            true
        )
    );
    // Used up, with its sibling: the message is delivered once.
    assert_eq!(
        request(gw.web, "POST", &not_spam, &[], None).await.status,
        410
    );
    assert_eq!(
        request(gw.web, "POST", &replay, &[], None).await.status,
        410
    );
    let (reply, _) = send(
        &gw,
        "signals@traders.example",
        "alice@example.org",
        &newsletter("2"),
    )
    .await;
    assert!(reply.starts_with("250 "), "{reply}");
    gw.stop().await;
}

/// Two clicks in a real browser: "Not spam" on the refused message, then "Always allow this
/// sender".
#[tokio::test]
async fn two_clicks_in_chromium_fix_a_false_positive_and_allow_its_sender() {
    let cap = Capture::start(CaptureOptions::default()).await;
    let (gw, _alice, _bob, _admin) = trained(&cap, "").await;
    let (reply, id) = send(
        &gw,
        "signals@traders.example",
        "alice@example.org",
        &newsletter("1"),
    )
    .await;
    assert!(reply.starts_with("550 "), "{reply}");
    let base = format!("http://{}", gw.web);
    let b = common::browser::Browser::start().await;
    b.goto(&format!("{base}/login")).await;
    b.type_into("#username", "alice@example.org").await;
    b.type_into("#password", PASSWORD).await;
    b.click("button[type=submit]").await;
    b.find("table.messages").await;
    b.goto(&format!("{base}/messages/{id}")).await;
    b.click("#not-spam").await;
    b.find("#mark-result").await;
    assert!(
        b.text("#replay-result").await.contains("250"),
        "{}",
        b.text("#replay-result").await
    );
    assert_eq!(cap.wait_for(1).await[0].rcpts, vec!["alice@example.org"]);
    b.click("#offer").await;
    b.find("#senders").await;
    assert!(
        b.text("#senders").await.contains("signals@traders.example"),
        "{}",
        b.text("#senders").await
    );
    b.screenshot("uce-not-spam").await;
    b.quit().await;
    gw.stop().await;
}
