//! The uce module over real SMTP: traps and the penalty box, the uniform "user unknown",
//! disposable addresses, per-domain policies, greylisting and the tarpit.

mod common;

use common::*;
use std::time::{Duration, Instant};

/// Fast tarpits for tests.
const UCE: &str = "[uce]\ntarpit_delay = \"300ms\"\ntarpit_max = \"10s\"\ntraps = [\"trap@example.org\", \"honey-*@example.org\"]\n";

const MSG: &[u8] = b"From: s@sender.example\r\nSubject: offer\r\n\r\nhello\r\n";

async fn newest(store: &sponts::storage::Store) -> sponts::storage::JournalEntry {
    store
        .query_journal(&sponts::storage::JournalFilter {
            limit: Some(1),
            ..Default::default()
        })
        .await
        .unwrap()
        .remove(0)
}

#[tokio::test]
async fn a_trap_is_answered_250_never_delivered_and_boxes_the_client() {
    let cap = Capture::start(CaptureOptions {
        unknown: ["gone@example.org".to_string()].into(),
        ..Default::default()
    })
    .await;
    let gw = gateway(cap.addr, UCE).await;
    let mut c = Client::connect(gw.addr).await;
    c.expect("EHLO spammer.test", 250).await;
    // A trap next to a real recipient: both get 250, neither gets the message.
    let reply = c
        .send_mail(
            "s@sender.example",
            &["u@example.org", "Honey-7@example.org"],
            MSG,
        )
        .await;
    assert!(reply.starts_with("250 "), "{reply}");
    let e = journal_entry(&gw.store, &reply_id(&reply)).await;
    assert_eq!(
        (e.outcome.as_str(), e.decided_by.as_str(), e.flag.as_deref()),
        ("discarded", "uce", Some("spam"))
    );
    assert!(
        e.notes
            .as_deref()
            .unwrap_or("")
            .contains("trap Honey-7@example.org hit"),
        "{:?}",
        e.notes
    );
    assert!(
        gw.store.body(&e.id).await.unwrap().is_some(),
        "kept in the backup"
    );
    assert_eq!(
        gw.store.learned_totals().await.unwrap(),
        (1, 0),
        "learned as spam"
    );
    assert_eq!(
        gw.store.penalty("127.0.0.1").await.unwrap().unwrap().reason,
        "trap Honey-7@example.org"
    );
    c.expect("QUIT", 221).await;

    // A bounce to a trap (anyone can cause one, in the trap's name) is kept, but boxes nobody.
    let mut b = Client::connect_from(gw.addr, "127.0.0.9").await;
    b.expect("EHLO bounces.provider.test", 250).await;
    b.expect("MAIL FROM:<>", 250).await;
    b.expect("RCPT TO:<trap@example.org>", 250).await;
    b.expect("DATA", 354).await;
    b.send(b"Subject: Undeliverable\r\n\r\nbounce\r\n.\r\n")
        .await;
    let reply = b.reply().await;
    assert!(reply.starts_with("250 "), "{reply}");
    assert_eq!(
        journal_entry(&gw.store, &reply_id(&reply)).await.outcome,
        "discarded"
    );
    assert!(gw.store.penalty("127.0.0.9").await.unwrap().is_none());
    assert_eq!(
        gw.store.learned_totals().await.unwrap(),
        (1, 0),
        "bounces are not learned"
    );

    // Back from the same IP: every address "does not exist" — in exactly the words of a real
    // unknown user — and every reply is slowed down.
    let mut c = Client::connect(gw.addr).await;
    let start = Instant::now();
    c.expect("EHLO spammer.test", 250).await;
    assert!(
        start.elapsed() >= Duration::from_millis(280),
        "tarpitted: {:?}",
        start.elapsed()
    );
    c.expect("MAIL FROM:<s@sender.example>", 250).await;
    let fake = c.expect("RCPT TO:<u@example.org>", 550).await;
    assert_eq!(
        fake,
        "550 5.1.1 <u@example.org>: Recipient address rejected: User unknown"
    );
    c.expect("QUIT", 221).await;
    assert!(cap.deliveries.lock().unwrap().is_empty());

    // Another client sees the real answers; the backend's unknown user reads the same.
    let mut c = Client::connect_from(gw.addr, "127.0.0.2").await;
    c.expect("EHLO friend.test", 250).await;
    c.expect("MAIL FROM:<f@friend.example>", 250).await;
    let real = c.expect("RCPT TO:<gone@example.org>", 550).await;
    assert_eq!(
        real,
        "550 5.1.1 <gone@example.org>: Recipient address rejected: User unknown"
    );
    c.expect("RCPT TO:<u@example.org>", 250).await;
    gw.stop().await;
}

#[tokio::test]
async fn a_fake_unknown_takes_as_long_as_the_backends_real_one() {
    let delay = Duration::from_millis(150);
    let cap = Capture::start(CaptureOptions {
        unknown: ["gone@example.org".to_string()].into(),
        rcpt_delay: Some(delay),
        ..Default::default()
    })
    .await;
    let gw = gateway(cap.addr, "[uce]\ntarpit_delay = \"0s\"\n").await;
    gw.store
        .penalize("127.0.0.3", sponts::clock::now_us() + 3_600_000_000, "test")
        .await
        .unwrap();
    // The backend's own answers teach sponts how long a lookup takes.
    let mut c = Client::connect(gw.addr).await;
    c.expect("EHLO friend.test", 250).await;
    c.expect("MAIL FROM:<f@friend.example>", 250).await;
    for _ in 0..3 {
        c.expect("RCPT TO:<gone@example.org>", 550).await;
    }
    let mut c = Client::connect_from(gw.addr, "127.0.0.3").await;
    c.expect("EHLO spammer.test", 250).await;
    c.expect("MAIL FROM:<s@sender.example>", 250).await;
    let start = Instant::now();
    let r = c.expect("RCPT TO:<u@example.org>", 550).await;
    let took = start.elapsed();
    assert_eq!(
        r,
        "550 5.1.1 <u@example.org>: Recipient address rejected: User unknown"
    );
    assert!(
        took >= delay.mul_f32(0.8),
        "the refusal came too fast to pass for a lookup: {took:?}"
    );
    gw.stop().await;
}

#[tokio::test]
async fn policies_per_domain_reject_tag_and_quarantine() {
    let cap = Capture::start(CaptureOptions::default()).await;
    let extra = "[uce]\ntarpit_delay = \"0s\"\npolicy = \"reject\"\n[uce.domain_policy]\n\"example.net\" = \"tag\"\n";
    let gw = gateway(cap.addr, extra).await;
    gw.store
        .penalize("127.0.0.4", sponts::clock::now_us() + 3_600_000_000, "test")
        .await
        .unwrap();
    let mut c = Client::connect_from(gw.addr, "127.0.0.4").await;
    c.expect("EHLO spammer.test", 250).await;
    c.expect("MAIL FROM:<s@sender.example>", 250).await;
    let r = c.expect("RCPT TO:<u@example.org>", 554).await;
    assert_eq!(r, "554 5.7.1 Message refused as spam");
    c.expect("RSET", 250).await;

    // tag: delivered, with the verdict in headers.
    let reply = c
        .send_mail("s@sender.example", &["u@example.net"], MSG)
        .await;
    assert!(reply.starts_with("250 "), "{reply}");
    let d = cap.wait_for(1).await;
    let text = String::from_utf8_lossy(&d[0].data).to_string();
    assert!(text.contains("\r\nX-Spam-Flag: YES\r\n"), "{text}");
    assert!(text.contains("X-Spam-Status: Yes"), "{text}");
    assert_eq!(
        journal_entry(&gw.store, &reply_id(&reply))
            .await
            .flag
            .as_deref(),
        Some("spam")
    );

    gw.stop().await;

    // quarantine: 250, kept, not delivered.
    let gw = gateway(
        cap.addr,
        "[uce]\ntarpit_delay = \"0s\"\npolicy = \"quarantine\"\n",
    )
    .await;
    gw.store
        .penalize("127.0.0.4", sponts::clock::now_us() + 3_600_000_000, "test")
        .await
        .unwrap();
    let mut c = Client::connect_from(gw.addr, "127.0.0.4").await;
    c.expect("EHLO spammer.test", 250).await;
    let reply = c
        .send_mail("s@sender.example", &["u@example.org"], MSG)
        .await;
    assert!(reply.starts_with("250 "), "{reply}");
    let e = journal_entry(&gw.store, &reply_id(&reply)).await;
    assert_eq!(
        (e.outcome.as_str(), e.flag.as_deref()),
        ("discarded", Some("spam"))
    );
    assert!(gw.store.body(&e.id).await.unwrap().is_some());
    assert_eq!(cap.deliveries.lock().unwrap().len(), 1);
    gw.stop().await;
}

#[tokio::test]
async fn a_disposable_address_delivers_n_times_then_does_not_exist() {
    let mailboxes = ["u@example.org", "maria.2.garcia@example.org"]
        .map(String::from)
        .into();
    let cap = Capture::start(CaptureOptions {
        mailboxes: Some(mailboxes),
        ..Default::default()
    })
    .await;
    let gw = gateway(cap.addr, "[uce]\ntarpit_delay = \"0s\"\n").await;
    let mut c = Client::connect(gw.addr).await;
    c.expect("EHLO shop.test", 250).await;
    let mut ids = Vec::new();
    for _ in 0..2 {
        let reply = c
            .send_mail("news@shop.example", &["shop.2.u@example.org"], MSG)
            .await;
        assert!(reply.starts_with("250 "), "{reply}");
        ids.push(reply_id(&reply));
    }
    let d = cap.wait_for(2).await;
    for (i, delivery) in d.iter().enumerate() {
        assert_eq!(delivery.rcpts, vec!["u@example.org"], "the owner gets it");
        let text = String::from_utf8_lossy(&delivery.data).to_string();
        assert!(
            text.contains(&format!(
                "X-Sponts-Disposable: shop.2.u@example.org ({} of 2)\r\n",
                i + 1
            )),
            "{text}"
        );
    }
    c.expect("MAIL FROM:<news@shop.example>", 250).await;
    let r = c.expect("RCPT TO:<shop.2.u@example.org>", 550).await;
    assert_eq!(
        r,
        "550 5.1.1 <shop.2.u@example.org>: Recipient address rejected: User unknown"
    );
    // A bigger N does not reopen the tag.
    let r = c.expect("RCPT TO:<shop.50.u@example.org>", 550).await;
    assert!(r.starts_with("550 5.1.1 <shop.50.u@example.org>"), "{r}");
    c.expect("RSET", 250).await;
    // Journaled as refused by uce, as the Report and docs/report.md count it — not "abandoned".
    let used_up = gw
        .store
        .query_journal(&sponts::storage::JournalFilter {
            rcpt: Some("shop.50.u@".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        (
            used_up.len(),
            used_up[0].outcome.as_str(),
            used_up[0].decided_by.as_str()
        ),
        (1, "refused", "uce")
    );
    assert_eq!(sponts::storage::stats::class(&used_up[0]), "refused");
    let list = gw
        .store
        .disposables(Some("u@example.org"), None)
        .await
        .unwrap();
    assert_eq!((list.len(), list[0].used, list[0].locked), (1, 2, true));
    // The owner finds the mail as theirs.
    let mine = sponts::storage::JournalFilter {
        visible_to: Some(vec!["u@example.org".into()]),
        ..Default::default()
    };
    assert_eq!(gw.store.query_journal(&mine).await.unwrap().len(), 2);
    let e = journal_entry(&gw.store, &ids[0]).await;
    assert_eq!(
        e.recipients[0].delivered_to.as_deref(),
        Some("u@example.org")
    );

    // Reset: open again.
    assert!(
        gw.store
            .set_disposable("u@example.org", "shop", None)
            .await
            .unwrap()
    );
    let reply = c
        .send_mail("news@shop.example", &["shop.2.u@example.org"], MSG)
        .await;
    assert!(reply.starts_with("250 "), "{reply}");

    // A real mailbox of that shape stays itself.
    let reply = c
        .send_mail("f@friend.example", &["maria.2.garcia@example.org"], MSG)
        .await;
    assert!(reply.starts_with("250 "), "{reply}");
    assert_eq!(
        cap.wait_for(4).await[3].rcpts,
        vec!["maria.2.garcia@example.org"]
    );
    assert!(
        gw.store
            .disposables(Some("garcia@example.org"), None)
            .await
            .unwrap()
            .is_empty()
    );
    // An unknown owner: the answer names the address as written, never the owner.
    c.expect("MAIL FROM:<news@shop.example>", 250).await;
    let r = c.expect("RCPT TO:<shop.2.nobody@example.org>", 550).await;
    assert_eq!(
        r,
        "550 5.1.1 <shop.2.nobody@example.org>: Recipient address rejected: User unknown"
    );
    gw.stop().await;
}

#[tokio::test]
async fn greylisting_asks_strangers_to_come_back_then_remembers_them() {
    let cap = Capture::start(CaptureOptions::default()).await;
    let gw = gateway(
        cap.addr,
        "[uce]\ntarpit_delay = \"0s\"\n[uce.greylist]\nenabled = true\ndelay = \"1s\"\n",
    )
    .await;
    let mut c = Client::connect(gw.addr).await;
    c.expect("EHLO mx.partner.test", 250).await;
    c.expect("MAIL FROM:<a@partner.example>", 250).await;
    let r = c.expect("RCPT TO:<u@example.org>", 450).await;
    assert!(
        r.starts_with("450 4.7.1 <u@example.org>: Recipient address rejected: Greylisted"),
        "{r}"
    );
    // Too early: still waiting.
    c.expect("RCPT TO:<u@example.org>", 450).await;
    c.expect("RSET", 250).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let reply = c
        .send_mail("a@partner.example", &["u@example.org"], MSG)
        .await;
    assert!(reply.starts_with("250 "), "{reply}");
    // The network is now known: another sender from it passes at once.
    let reply = c
        .send_mail("b@partner.example", &["v@example.org"], MSG)
        .await;
    assert!(reply.starts_with("250 "), "{reply}");
    gw.stop().await;
}

#[tokio::test]
async fn early_talkers_and_dictionary_attacks_are_tarpitted() {
    let cap = Capture::start(CaptureOptions {
        unknown: [
            "a@example.org".into(),
            "b@example.org".into(),
            "c@example.org".into(),
        ]
        .into(),
        ..Default::default()
    })
    .await;
    let gw = gateway(
        cap.addr,
        "[uce]\ntarpit_delay = \"1s\"\ntarpit_stutter = true\ngreet_delay = \"1s\"\n",
    )
    .await;
    // Talks before the greeting.
    let stream = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let mut c = Client::from_stream_after(stream, b"EHLO bot.test\r\n").await;
    let start = Instant::now();
    let r = c.reply().await;
    assert!(r.starts_with("250"), "{r}");
    assert!(
        start.elapsed() >= Duration::from_millis(900),
        "stuttered over the delay: {:?}",
        start.elapsed()
    );
    c.expect("QUIT", 221).await;

    // Waits for the greeting, then guesses addresses.
    let mut c = Client::connect(gw.addr).await;
    let start = Instant::now();
    c.expect("EHLO guesser.test", 250).await;
    // Well under the 1 s delay, with room for a loaded machine.
    assert!(
        start.elapsed() < Duration::from_millis(700),
        "a polite client is not slowed: {:?}",
        start.elapsed()
    );
    c.expect("MAIL FROM:<g@guess.example>", 250).await;
    for a in ["a", "b", "c"] {
        c.expect(&format!("RCPT TO:<{a}@example.org>"), 550).await;
    }
    let start = Instant::now();
    c.expect("NOOP", 250).await;
    assert!(
        start.elapsed() >= Duration::from_millis(900),
        "tarpitted after 3 unknown recipients: {:?}",
        start.elapsed()
    );
    gw.stop().await;
}

#[tokio::test]
async fn the_journal_notes_every_decision_with_its_score() {
    let cap = Capture::start(CaptureOptions::default()).await;
    let gw = gateway(cap.addr, UCE).await;
    let mut c = Client::connect(gw.addr).await;
    c.expect("EHLO friend.test", 250).await;
    let reply = c
        .send_mail("f@friend.example", &["u@example.org"], MSG)
        .await;
    let e = journal_entry(&gw.store, &reply_id(&reply)).await;
    assert_eq!(e.flag, None);
    assert_eq!(e.notes.as_deref(), Some("uce: score 0.0 -> deliver"));
    assert_eq!(newest(&gw.store).await.id, e.id);

    // Verdicts are sponts' to give: a client's own X-Spam-* and Authentication-Results in
    // sponts' name are removed from the delivered message (the kept copy stays as received).
    let forged = b"X-Spam-Flag: NO\r\nAuthentication-Results: gw.test.example; spf=pass\r\nAuthentication-Results: elsewhere.example; spf=fail\r\nSubject: hi\r\n\r\nX-Spam-Flag: NO\r\n";
    let reply = c
        .send_mail("f@friend.example", &["u@example.org"], forged)
        .await;
    let d = cap.wait_for(2).await;
    let text = String::from_utf8_lossy(&d[1].data).to_string();
    let (_, rest) = text.split_at(text.find("Authentication-Results: elsewhere").unwrap());
    assert_eq!(
        rest,
        "Authentication-Results: elsewhere.example; spf=fail\r\nSubject: hi\r\n\r\nX-Spam-Flag: NO\r\n"
    );
    let kept = sponts::modules::backup::decompress(
        &gw.store.body(&reply_id(&reply)).await.unwrap().unwrap(),
    )
    .unwrap();
    assert_eq!(kept, forged);
    gw.stop().await;
}

#[tokio::test]
async fn our_own_clients_outgoing_mail_is_not_judged() {
    let cap = Capture::start(CaptureOptions::default()).await;
    let gw = gateway(cap.addr, "[smtp]\nrelay_networks = [\"127.0.0.20/32\"]\n[uce]\ntarpit_delay = \"0s\"\n[uce.greylist]\nenabled = true\n").await;
    gw.store
        .penalize(
            "127.0.0.20",
            sponts::clock::now_us() + 3_600_000_000,
            "test",
        )
        .await
        .unwrap();
    let mut c = Client::connect_from(gw.addr, "127.0.0.20").await;
    c.expect("EHLO office.example.org", 250).await;
    // Outgoing (a relay client to another domain): no greylisting, no disposable rewriting, not
    // even the penalty box of our own server; queued for MX delivery as it was given.
    let reply = c
        .send_mail("u@example.org", &["info.2.sales@partner.example"], MSG)
        .await;
    assert!(reply.starts_with("250 2.0.0 Ok: queued"), "{reply}");
    let q = gw
        .store
        .queue_list(Some(&reply_id(&reply)))
        .await
        .unwrap()
        .pop()
        .unwrap();
    assert_eq!(q.pending_mx, vec!["info.2.sales@partner.example"]);
    assert!(q.held.is_empty());
    assert!(gw.store.disposables(None, None).await.unwrap().is_empty());
    // A stranger is greylisted for the same mail to us.
    let mut c = Client::connect_from(gw.addr, "127.0.0.21").await;
    c.expect("EHLO stranger.test", 250).await;
    c.expect("MAIL FROM:<s@stranger.example>", 250).await;
    c.expect("RCPT TO:<u@example.org>", 450).await;
    gw.stop().await;
}

/// postscreen's pregreet test: the greeting's first line comes at once and its last after
/// `greet_delay`. A client that talks in between is a bot: its mail is refused (per the domain's
/// policy, "user unknown" by default) and its address goes into the penalty box. A real client
/// (swaks, and the transcript client) waits, loses only the pause, and only once.
#[tokio::test]
async fn clients_that_talk_before_the_greeting_ends_cannot_send_mail() {
    let cap = Capture::start(CaptureOptions::default()).await;
    let gw = gateway(
        cap.addr,
        "[uce]\ngreet_delay = \"1500ms\"\ntarpit_delay = \"50ms\"\n",
    )
    .await;

    // The bot waits for "220" and talks: it reads the first line only.
    let stream = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let (mut bot, first) = {
        let mut s = stream;
        let mut got = Vec::new();
        while !got.ends_with(b"\r\n") {
            let mut b = [0u8; 1];
            tokio::io::AsyncReadExt::read_exact(&mut s, &mut b)
                .await
                .unwrap();
            got.push(b[0]);
        }
        tokio::io::AsyncWriteExt::write_all(&mut s, b"EHLO bot.test\r\n")
            .await
            .unwrap();
        let (c, rest) = Client::from_stream(s).await;
        (c, format!("{}{rest}", String::from_utf8_lossy(&got)))
    };
    assert!(
        first.starts_with("220-gw.test.example ESMTP")
            && first.contains("\n220 gw.test.example ESMTP"),
        "{first}"
    );
    bot.reply().await; // the EHLO it sent early
    bot.expect("MAIL FROM:<bulk@bot.example>", 250).await;
    let r = bot.expect("RCPT TO:<u@example.org>", 550).await;
    assert!(
        r.starts_with("550 5.1.1 <u@example.org>"),
        "refused as an unknown user: {r}"
    );
    bot.expect("QUIT", 221).await;
    let boxed = gw.store.penalties().await.unwrap();
    assert!(
        format!("{boxed:?}").contains("talked before the greeting"),
        "{boxed:?}"
    );

    // A polite client from another address: the pause once, then not again.
    let start = Instant::now();
    let mut c = Client::connect_from(gw.addr, "127.0.0.2").await;
    let first_cost = start.elapsed();
    assert!(
        first_cost >= Duration::from_millis(1400) && first_cost < Duration::from_millis(3000),
        "the honest cost is the pause: {first_cost:?}"
    );
    c.expect("EHLO polite.test", 250).await;
    let reply = c
        .send_mail("a@partner.example", &["u@example.org"], MSG)
        .await;
    assert!(reply.starts_with("250 "), "{reply}");
    c.expect("QUIT", 221).await;
    let start = Instant::now();
    let mut c = Client::connect_from(gw.addr, "127.0.0.2").await;
    assert!(
        start.elapsed() < Duration::from_millis(1000),
        "a client that passed is not paused again: {:?}",
        start.elapsed()
    );
    c.expect("QUIT", 221).await;

    // A real client copes with the two-line greeting.
    let server = gw.addr.to_string();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("swaks")
            .args([
                "--server",
                &server,
                "--from",
                "s@partner.example",
                "--to",
                "v@example.org",
                "--helo",
                "swaks.partner.example",
                "--local-interface",
                "127.0.0.3",
            ])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("<-  250 2.0.0"),
        "{text}"
    );
    assert_eq!(cap.wait_for(2).await.len(), 2);
    gw.stop().await;
}

/// A message of words the learning filter has been taught are spam (by `teach_spam`).
fn spammy(from: &str) -> Vec<u8> {
    format!("From: {from}\r\nSubject: casino winner prize\r\nMessage-ID: <{}@test>\r\n\r\ncheap pills lottery bitcoin discount\r\n", sponts::id::new_transaction_id()).into_bytes()
}

async fn teach_spam(store: &sponts::storage::Store) {
    let (spam, ham) = (
        [
            "cheap", "pills", "casino", "winner", "bitcoin", "discount", "lottery", "prize",
        ],
        [
            "meeting", "agenda", "project", "invoice", "minutes", "budget", "review", "schedule",
        ],
    );
    for i in 0..8 {
        let pick = |w: &[&str]| {
            (0..5)
                .map(|k| w[(i + k * 3) % w.len()])
                .collect::<Vec<_>>()
                .join(" ")
        };
        for (words, is_spam) in [(spam, true), (ham, false)] {
            let m = format!("Subject: {}\r\n\r\n{}\r\n", pick(&words), pick(&words));
            sponts::modules::uce::learn::learn(
                store,
                &format!("{is_spam}-{i}"),
                m.as_bytes(),
                is_spam,
            )
            .await
            .unwrap();
        }
    }
}

#[tokio::test]
async fn sender_lists_block_and_allow_per_recipient_and_per_domain() {
    use sponts::storage::SenderVerdict::{Allow, Block};
    let cap = Capture::start(CaptureOptions::default()).await;
    let gw = gateway(
        cap.addr,
        "[uce]\ntarpit_delay = \"0s\"\n[uce.learning]\nmin_messages = 5\n",
    )
    .await;
    teach_spam(&gw.store).await;
    add_user(&gw.store, "alice@example.org", sponts::storage::Role::User).await;
    gw.store
        .add_alias("alice@example.org", "ally@example.org")
        .await
        .unwrap();
    add_user(&gw.store, "bob@example.org", sponts::storage::Role::User).await;
    for (owner, pattern, verdict) in [
        ("alice@example.org", "pest.example", Block),
        ("alice@example.org", "friend@promo.example", Allow),
        ("@example.org", "junk.example", Block),
        ("bob@example.org", "junk.example", Allow),
    ] {
        gw.store
            .set_sender_entry(owner, pattern, verdict, "test")
            .await
            .unwrap();
    }
    let mut c = Client::connect(gw.addr).await;
    c.expect("EHLO client.test", 250).await;

    // Blocked by alice (and her alias, which is hers), and from a subdomain too: alice does
    // not exist, word for word; bob, whose list says nothing, gets the mail.
    c.expect("MAIL FROM:<x@mail.pest.example>", 250).await;
    let r = c.expect("RCPT TO:<alice@example.org>", 550).await;
    assert_eq!(
        r,
        "550 5.1.1 <alice@example.org>: Recipient address rejected: User unknown"
    );
    c.expect("RCPT TO:<ally@example.org>", 550).await;
    c.expect("RCPT TO:<bob@example.org>", 250).await;
    c.expect("DATA", 354).await;
    c.send(b"Subject: hello\r\n\r\nhi\r\n.\r\n").await;
    let reply = c.reply().await;
    assert!(reply.starts_with("250 "), "{reply}");
    assert_eq!(cap.wait_for(1).await[0].rcpts, vec!["bob@example.org"]);
    let e = journal_entry(&gw.store, &reply_id(&reply)).await;
    assert!(
        e.notes
            .as_deref()
            .unwrap_or("")
            .contains("uce: sender blocked by alice@example.org's list (pest.example)"),
        "{:?}",
        e.notes
    );

    // The domain's block counts for everyone there who has not allowed the sender.
    c.expect("MAIL FROM:<x@junk.example>", 250).await;
    c.expect("RCPT TO:<carol@example.org>", 550).await;
    c.expect("RCPT TO:<bob@example.org>", 250).await;
    c.expect("RSET", 250).await;

    // A message the filter refuses ...
    let refused = c
        .send_mail(
            "friend@promo.example",
            &["bob@example.org"],
            &spammy("friend@promo.example"),
        )
        .await;
    assert_eq!(
        refused,
        "550 5.1.1 <bob@example.org>: Recipient address rejected: User unknown"
    );
    // ... passes to alice, who allows its sender, and to her alias; not when bob is a co-recipient.
    let passed = c
        .send_mail(
            "friend@promo.example",
            &["alice@example.org", "ally@example.org"],
            &spammy("friend@promo.example"),
        )
        .await;
    assert!(passed.starts_with("250 "), "{passed}");
    let e = journal_entry(&gw.store, &reply_id(&passed)).await;
    assert_eq!(
        e.notes.as_deref(),
        Some("uce: allowed by alice@example.org's list (friend@promo.example) -> deliver")
    );
    assert_eq!(e.flag, None);
    let mixed = c
        .send_mail(
            "friend@promo.example",
            &["alice@example.org", "bob@example.org"],
            &spammy("friend@promo.example"),
        )
        .await;
    assert!(mixed.starts_with("550 "), "{mixed}");
    assert_eq!(cap.deliveries.lock().unwrap().len(), 2);

    // The message page says which list decided.
    let alice = common::http::login(gw.web, "alice@example.org", PASSWORD)
        .await
        .unwrap();
    let page = common::http::request(
        gw.web,
        "GET",
        &format!("/messages/{}", e.id),
        &[("Cookie", &alice.cookie)],
        None,
    )
    .await;
    assert!(
        page.text()
            .contains("allowed by alice@example.org&#39;s list (friend@promo.example)"),
        "{}",
        page.text()
    );
    gw.stop().await;
}
