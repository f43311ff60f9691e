//! What the fuzzers found (fuzz/crashes/, docs/fuzzing.md), kept as tests: each input goes through
//! the code that met it and through a running gateway, end to end.

mod common;

use common::*;

fn crash(name: &str) -> Vec<u8> {
    std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/crashes").join(name)).unwrap()
}

/// A malformed multipart that trips a debug assertion inside mail-parser: summarised, kept,
/// delivered and shown like any other message.
#[tokio::test]
async fn malformed_multipart_from_the_fuzzer_is_summarised_and_delivered() {
    let raw = crash("mime_summary-mail-parser-invalid-part-id");
    let _ = sponts::modules::journal::mime::summarize(&raw);
    // On the wire: CRLF lines, no NUL or bare CR (those are refused before any parsing).
    let text: Vec<u8> = raw.iter().copied().filter(|&b| b != 0 && b != b'\r').collect();
    let mut wire = Vec::with_capacity(text.len() * 2);
    for &b in &text {
        if b == b'\n' {
            wire.push(b'\r');
        }
        wire.push(b);
    }
    let cap = Capture::start(CaptureOptions::default()).await;
    let gw = gateway(cap.addr, "").await;
    add_user(&gw.store, "admin@example.org", sponts::storage::Role::Admin).await;
    let mut c = Client::connect(gw.addr).await;
    c.expect("EHLO fuzz.test", 250).await;
    let r = c.send_mail("a@partner.example", &["u@example.org"], &wire).await;
    assert!(r.starts_with("250 "), "{r}");
    assert_eq!(cap.wait_for(1).await.len(), 1);
    let id = reply_id(&r);
    let admin = common::http::login(gw.web, "admin@example.org", PASSWORD).await.unwrap();
    let page = common::http::request(gw.web, "GET", &format!("/messages/{id}"), &[("Cookie", &admin.cookie)], None).await;
    assert_eq!(page.status, 200, "{}", page.text());
    gw.stop().await;
}

/// `RCPT TO:<postmaster>` (RFC 5321's domainless postmaster) written back as it came.
#[test]
fn a_domainless_postmaster_reads_back_the_same() {
    let line = crash("smtp_command-postmaster-without-domain");
    let Ok(sponts::smtp::command::Command::Rcpt { to }) = sponts::smtp::command::parse(&line) else { panic!("not a RCPT") };
    assert_eq!(to.to_string(), "postmaster");
    let again = sponts::smtp::command::parse(format!("RCPT TO:<{to}>").as_bytes());
    assert_eq!(again.ok(), Some(sponts::smtp::command::Command::Rcpt { to }));
}
