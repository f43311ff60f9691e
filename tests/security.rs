//! Evil stays outside: relay attempts, SMTP smuggling, and STARTTLS command injection.

mod common;

use common::*;

#[tokio::test]
async fn relay_attempts_never_reach_the_backend() {
    let cap = Capture::start(CaptureOptions::default()).await;
    let gw = gateway(
        cap.addr,
        "[smtp]\nmax_errors = 100\n[uce]\ntarpit_delay = \"0s\"\n",
    )
    .await;
    let mut c = Client::connect(gw.addr).await;
    c.expect("EHLO client.test", 250).await;
    c.expect("MAIL FROM:<a@sender.example>", 250).await;
    for (rcpt, code) in [
        ("victim@elsewhere.example", 554),
        ("victim@example.org.elsewhere.example", 554),
        ("victim@sub.example.org", 554),
        ("victim%elsewhere.example@example.org", 553),
        ("elsewhere.example!victim@example.org", 553),
        ("@example.org:victim@elsewhere.example", 553),
        ("\"victim@elsewhere.example\"@example.org", 553),
        ("victim", 553),
        ("victim@example.org.", 553),
        ("victim@[127.0.0.1]", 554),
        ("victim@elsewhere.example@example.org", 553),
    ] {
        let r = c.cmd(&format!("RCPT TO:<{rcpt}>")).await;
        assert!(r.starts_with(&code.to_string()), "{rcpt} -> {r}");
        if code == 554 {
            assert!(
                r.contains("5.7.1") && r.contains("Relay access denied"),
                "{r}"
            );
        }
    }
    c.expect("DATA", 554).await;
    c.expect("RCPT TO:<ok@EXAMPLE.ORG>", 250).await;
    c.expect("QUIT", 221).await;
    assert!(cap.deliveries().is_empty());
    gw.stop().await;
}

#[tokio::test]
async fn loopback_is_not_trusted_but_relay_networks_are() {
    let cap = Capture::start(CaptureOptions::default()).await;
    let gw = gateway(cap.addr, "").await;
    let mut c = Client::connect(gw.addr).await;
    c.expect("EHLO client.test", 250).await;
    c.expect("MAIL FROM:<a@sender.example>", 250).await;
    c.expect("RCPT TO:<x@elsewhere.example>", 554).await;
    gw.stop().await;

    let gw = gateway(cap.addr, "[smtp]\nrelay_networks = [\"127.0.0.0/8\"]\n").await;
    let mut c = Client::connect(gw.addr).await;
    c.expect("EHLO client.test", 250).await;
    // Our own client, with one of our sender domains (outbound: queued for MX delivery).
    let r = c
        .send_mail(
            "a@example.org",
            &["x@elsewhere.example"],
            b"Subject: out\r\n\r\nx\r\n",
        )
        .await;
    assert!(r.starts_with("250"), "{r}");
    gw.stop().await;
}

#[tokio::test]
async fn smuggled_commands_are_refused_with_the_message() {
    let cap = Capture::start(CaptureOptions::default()).await;
    let gw = gateway(cap.addr, "").await;
    for ending in [
        &b"\n.\n"[..],
        b"\n.\r\n",
        b"\r\n.\n",
        b"\r.\r\n",
        b"\r\n.\r\r\n",
        b"\r\n\x00.\r\n",
    ] {
        let mut c = Client::connect(gw.addr).await;
        c.expect("EHLO client.test", 250).await;
        c.expect("MAIL FROM:<a@sender.example>", 250).await;
        c.expect("RCPT TO:<u@example.org>", 250).await;
        c.expect("DATA", 354).await;
        let mut wire = b"Subject: innocent\r\n\r\nhello".to_vec();
        wire.extend_from_slice(ending);
        wire.extend_from_slice(b"MAIL FROM:<admin@example.org>\r\nRCPT TO:<victim@example.org>\r\nDATA\r\nSubject: smuggled\r\n\r\nevil\r\n.\r\n");
        c.send(&wire).await;
        let r = c.reply().await;
        assert!(r.starts_with("554 5.6.0"), "{ending:?}: {r}");
        // What follows the real end is a new command, and the session is still in order.
        c.expect("NOOP", 250).await;
        c.expect("QUIT", 221).await;
    }
    assert!(cap.deliveries().is_empty(), "{:?}", cap.deliveries());
    gw.stop().await;
}

#[tokio::test]
async fn starttls_upgrades_resets_and_is_recorded() {
    let cap = Capture::start(CaptureOptions::default()).await;
    let gw = gateway(cap.addr, "").await;
    let mut c = Client::connect(gw.addr).await;
    c.expect("EHLO client.test", 250).await;
    c.expect("STARTTLS", 220).await;
    let version = c.starttls().await;
    assert_eq!(version, "TLSv1_3");
    // State was reset: MAIL needs a new EHLO.
    c.expect("MAIL FROM:<a@sender.example>", 503).await;
    let ehlo = c.expect("EHLO client.test", 250).await;
    assert!(!ehlo.contains("STARTTLS"), "{ehlo}");
    c.expect("STARTTLS", 503).await;
    let r = c
        .send_mail(
            "a@sender.example",
            &["u@example.org"],
            b"Subject: secret\r\n\r\nx\r\n",
        )
        .await;
    assert!(r.starts_with("250"), "{r}");
    let d = cap.wait_for(1).await;
    let text = String::from_utf8_lossy(&d[0].data);
    assert!(
        text.contains("with ESMTPS id") && text.contains("(version=TLSv1.3 cipher=TLS13_"),
        "{text}"
    );
    let e = journal_entry(&gw.store, &reply_id(&r)).await;
    assert!(
        e.tls.as_deref().unwrap_or("").starts_with("TLSv1.3 TLS13_"),
        "{:?}",
        e.tls
    );
    gw.stop().await;
}

#[tokio::test]
async fn plaintext_pipelined_after_starttls_is_discarded() {
    let cap = Capture::start(CaptureOptions::default()).await;
    let gw = gateway(cap.addr, "").await;
    let mut c = Client::connect(gw.addr).await;
    c.expect("EHLO client.test", 250).await;
    // CVE-2011-0411: commands injected in the same packet as STARTTLS.
    c.send(b"STARTTLS\r\nEHLO evil.test\r\nMAIL FROM:<evil@evil.test>\r\n")
        .await;
    assert!(c.reply().await.starts_with("220"));
    c.starttls().await;
    // The first reply under TLS answers our command, not the injected ones.
    assert_eq!(c.cmd("NOOP").await, "250 2.0.0 Ok");
    c.expect("MAIL FROM:<a@sender.example>", 503).await;
    gw.stop().await;
}

/// RFC 2920: DATA ends a pipelined group and the message follows the 354. A client that sends
/// the message (or more commands) right after DATA, without waiting, is refused with 554 5.5.0 and
/// cut off; not one byte it sent early is delivered. Pipelining as the RFC allows it still works.
#[tokio::test]
async fn data_sent_before_the_354_is_refused_and_never_delivered() {
    let cap = Capture::start(CaptureOptions::default()).await;
    let gw = gateway(cap.addr, "").await;
    for early in [&b"Subject: early\r\n\r\nbody\r\n.\r\n"[..], b"QUIT\r\n"] {
        let mut c = Client::connect(gw.addr).await;
        c.expect("EHLO client.test", 250).await;
        let mut wire =
            b"MAIL FROM:<a@sender.example>\r\nRCPT TO:<u@example.org>\r\nDATA\r\n".to_vec();
        wire.extend_from_slice(early);
        c.send(&wire).await;
        assert!(c.reply().await.starts_with("250"));
        assert!(c.reply().await.starts_with("250"));
        let r = c.reply().await;
        assert!(r.starts_with("554 5.5.0"), "{early:?}: {r}");
        assert_eq!(c.reply().await, "", "the connection is closed");
    }
    let refused = gw.store.query_journal(&Default::default()).await.unwrap();
    assert_eq!(refused.len(), 2);
    assert!(
        refused.iter().all(|e| e.outcome == "refused"
            && e.decided_by == "smtp"
            && e.final_reply.starts_with("554 5.5.0")),
        "{refused:?}"
    );

    // Allowed pipelining: MAIL, RCPT and DATA in one go, the message after the 354.
    let mut c = Client::connect(gw.addr).await;
    c.expect("EHLO client.test", 250).await;
    c.send(b"MAIL FROM:<a@sender.example>\r\nRCPT TO:<u@example.org>\r\nDATA\r\n")
        .await;
    assert!(c.reply().await.starts_with("250"));
    assert!(c.reply().await.starts_with("250"));
    assert!(c.reply().await.starts_with("354"));
    c.send(b"Subject: in order\r\n\r\nbody\r\n.\r\n").await;
    assert!(c.reply().await.starts_with("250 "));
    let d = cap.wait_for(1).await;
    assert_eq!(d.len(), 1);
    assert!(String::from_utf8_lossy(&d[0].data).contains("Subject: in order"));
    gw.stop().await;
}
