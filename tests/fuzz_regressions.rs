//! What the fuzzers found (fuzz/crashes/, docs/fuzzing.md), kept as tests: each input goes through
//! the code that met it and through a running gateway, end to end.

mod common;

use common::*;

fn crash(name: &str) -> Vec<u8> {
    std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz/crashes")
            .join(name),
    )
    .unwrap()
}

/// A malformed multipart that trips a debug assertion inside mail-parser: summarised, kept,
/// delivered and shown like any other message.
#[tokio::test]
async fn malformed_multipart_from_the_fuzzer_is_summarised_and_delivered() {
    let raw = crash("mime_summary-mail-parser-invalid-part-id");
    let _ = sponts::modules::journal::mime::summarize(&raw);
    // On the wire: CRLF lines, no NUL or bare CR (those are refused before any parsing).
    let text: Vec<u8> = raw
        .iter()
        .copied()
        .filter(|&b| b != 0 && b != b'\r')
        .collect();
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
    let r = c
        .send_mail("a@partner.example", &["u@example.org"], &wire)
        .await;
    assert!(r.starts_with("250 "), "{r}");
    assert_eq!(cap.wait_for(1).await.len(), 1);
    let id = reply_id(&r);
    let admin = common::http::login(gw.web, "admin@example.org", PASSWORD)
        .await
        .unwrap();
    let page = common::http::request(
        gw.web,
        "GET",
        &format!("/messages/{id}"),
        &[("Cookie", &admin.cookie)],
        None,
    )
    .await;
    assert_eq!(page.status, 200, "{}", page.text());
    gw.stop().await;
}

/// `RCPT TO:<postmaster>` (RFC 5321's domainless postmaster) written back as it came.
#[test]
fn a_domainless_postmaster_reads_back_the_same() {
    let line = crash("smtp_command-postmaster-without-domain");
    let Ok(sponts::smtp::command::Command::Rcpt { to }) = sponts::smtp::command::parse(&line)
    else {
        panic!("not a RCPT")
    };
    assert_eq!(to.to_string(), "postmaster");
    let again = sponts::smtp::command::parse(format!("RCPT TO:<{to}>").as_bytes());
    assert_eq!(
        again.ok(),
        Some(sponts::smtp::command::Command::Rcpt { to })
    );
}

/// The fuzzer's scripted IMAP backend (`fuzz/src/lib.rs`), as it was when it found these: logs
/// every `LOGIN` in, answers other tagged commands OK and synchronizing literals with "+"; after a
/// login it sends `script` and closes its side. A command line that ends in a literal is taken
/// for the literal alone, so a LOGIN with its password in a literal is never answered: a backend
/// that stays silent while it waits for its client (sponts).
async fn scripted_imap_backend(script: &'static [u8]) -> std::net::SocketAddr {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let (r, mut w) = stream.into_split();
                let mut r = BufReader::new(r);
                let _ = w.write_all(b"* OK [CAPABILITY IMAP4rev1 LITERAL+ AUTH=PLAIN COMPRESS=DEFLATE] fake backend ready\r\n").await;
                let mut logged_in = false;
                loop {
                    let mut line = Vec::new();
                    match r.read_until(b'\n', &mut line).await {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    }
                    if logged_in {
                        continue;
                    }
                    let text = String::from_utf8_lossy(&line).into_owned();
                    let tag = text.split(' ').next().unwrap_or("*").trim_end().to_string();
                    if let Some(open) = text
                        .trim_end()
                        .strip_suffix('}')
                        .and_then(|t| t.rfind('{').map(|i| &t[i + 1..]))
                    {
                        let (n, sync) = match open.strip_suffix('+') {
                            Some(n) => (n, false),
                            None => (open, true),
                        };
                        let Ok(n) = n.parse::<usize>() else { return };
                        if sync && w.write_all(b"+ go ahead\r\n").await.is_err() {
                            return;
                        }
                        let mut literal = vec![0; n];
                        if r.read_exact(&mut literal).await.is_err() {
                            return;
                        }
                        continue;
                    }
                    if text.to_ascii_uppercase().contains(" LOGIN ") {
                        logged_in = true;
                        let _ = w
                            .write_all(
                                format!("{tag} OK [CAPABILITY IMAP4rev1 LITERAL+] logged in\r\n")
                                    .as_bytes(),
                            )
                            .await;
                        let _ = w.write_all(script).await;
                        let _ = w.shutdown().await;
                    } else if w
                        .write_all(format!("{tag} OK done\r\n").as_bytes())
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// Replays an `imap_proxy` fuzzer input (mode octet, client length, client bytes, backend
/// script) through a gateway's IMAP proxy over loopback, as the fuzzer does: the client sends
/// everything, shuts its side and reads until sponts closes — which must happen within 10 s.
async fn replay_imap_proxy(name: &str) -> Vec<u8> {
    let input: &'static [u8] = crash(name).leak();
    let [mode, a, b, rest @ ..] = input else {
        panic!("short input")
    };
    let split = (u16::from_le_bytes([*a, *b]) as usize).min(rest.len());
    let (client, script) = rest.split_at(split);
    let mut wire = Vec::new();
    if mode & 1 == 1 {
        wire.extend_from_slice(b"L1 LOGIN target secret\r\n");
    }
    wire.extend_from_slice(client);
    let backend = scripted_imap_backend(script).await;
    let cap = Capture::start(CaptureOptions::default()).await;
    let extra = format!(
        "[imap_proxy]\nlisten = [\"127.0.0.1:0\"]\nbackend = \"{backend}\"\nbackend_tls = \"off\"\nallow_plaintext_auth = true\n"
    );
    let gw = gateway(cap.addr, &extra).await;
    // The login `target` is an interception target, as in the fuzzer: sponts reads its session.
    let now = sponts::clock::now_us();
    let export = gw.dir.path().join("export");
    std::fs::create_dir_all(&export).unwrap();
    let order = sponts::storage::intercept::Order {
        id: "FUZZ1".into(),
        reference: "fuzzing".into(),
        target: "target@example.org".into(),
        login: Some("target".into()),
        from_us: now - 1_000_000,
        until_us: now + 365 * 86_400_000_000,
        deliver: format!("dir:{}", export.display()),
        deliver_to: None,
        notes: String::new(),
        created_by: "cli:fuzz".into(),
        created_us: now,
        ended_us: None,
    };
    gw.store.add_order(&order).await.unwrap();
    gw.reload_orders().await;
    let imap = gw.running.as_ref().unwrap().proxies.imap[0];
    let out = half_closed_exchange(imap, &wire, std::time::Duration::from_secs(10))
        .await
        .unwrap_or_else(|| {
            panic!("{name}: the IMAP proxy session did not end within 10 s of the client's end")
        });
    gw.stop().await;
    out
}

/// `c LOGIN {5}` / `alice {6+}` / an 8-bit password, then LOGOUT, and the client's end: sponts
/// sends the LOGIN on (the password as a literal) and the backend never answers it. The session
/// ends soon after the client has gone, not never.
#[tokio::test]
async fn imap_login_unanswered_by_the_backend_ends_once_the_client_has_gone() {
    let out = replay_imap_proxy("imap_proxy-login-literals-backend-silent").await;
    let out = String::from_utf8_lossy(&out);
    assert!(out.starts_with("* OK"), "{out}");
    assert!(
        out.contains("a OK done\r\n")
            && out.contains("b BAD Log in first\r\n")
            && out.contains("+ Ready for literal data\r\n"),
        "{out}"
    );
}

/// A target logged in, `COMPRESS DEFLATE`, the backend's OK and its end, the client's end.
#[tokio::test]
async fn imap_compress_of_a_target_then_both_ends() {
    let out = replay_imap_proxy("imap_proxy-compress-after-login").await;
    let out = String::from_utf8_lossy(&out);
    assert!(out.starts_with("* OK") && out.contains("L1 OK"), "{out}");
}
