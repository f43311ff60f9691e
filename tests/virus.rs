//! The virus module against a real clamd (with the project's EICAR signatures): infected mail
//! is refused (even from a sender the recipient allows), kept, flagged and journaled with the
//! signature; a scanner that is down is never skipped silently; the kept virus is the admins'
//! alone.

mod common;

use common::http::{login, request};
use common::peers::Engine;
use common::*;

/// The EICAR test file, in two halves so that no scanner flags this source file.
fn eicar() -> String {
    format!(
        "{}{}",
        r"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD", "-ANTIVIRUS-TEST-FILE!$H+H*"
    )
}

fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &b)| acc | (b as u32) << (16 - 8 * i));
        for i in 0..4 {
            out.push(if i <= chunk.len() {
                ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char
            } else {
                '='
            });
        }
    }
    out
}

fn with_attachment(content: &str) -> Vec<u8> {
    with_file("invoice.com", content.as_bytes())
}

fn with_file(name: &str, content: &[u8]) -> Vec<u8> {
    let b64 = base64(content);
    format!(
        "From: a@sender.example\r\nSubject: invoice\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n--b\r\nContent-Type: application/octet-stream; name={name}\r\nContent-Transfer-Encoding: base64\r\n\r\n{b64}\r\n--b--\r\n"
    )
    .into_bytes()
}

#[tokio::test]
async fn an_infected_attachment_is_refused_kept_and_flagged() {
    let clamd = Engine::clamd();
    let cap = Capture::start(CaptureOptions::default()).await;
    // No `modules` list: a clamd in the config is enough to turn scanning on.
    for (clamd_at, extra) in [
        (clamd.address(), ""),
        (clamd.socket(), "[uce]\npolicy = \"reject\"\n"),
    ] {
        let gw = gateway(
            cap.addr,
            &format!("[virus]\nclamd = \"{clamd_at}\"\n{extra}"),
        )
        .await;
        let mut c = Client::connect(gw.addr).await;
        c.expect("EHLO client.test", 250).await;
        let reply = c
            .send_mail(
                "a@sender.example",
                &["u@example.org"],
                &with_attachment(&eicar()),
            )
            .await;
        if extra.is_empty() {
            // The domain's policy is "I don't exist".
            assert!(
                reply.starts_with(
                    "550 5.1.1 <u@example.org>: Recipient address rejected: User unknown"
                ),
                "{reply}"
            );
        } else {
            assert!(
                reply.starts_with("554 5.7.1 Message refused: virus Sponts.Test.EICAR"),
                "{reply}"
            );
        }
        let e = journal_entry(&gw.store, &id_of(&gw.store, &reply).await).await;
        assert_eq!(
            (e.outcome.as_str(), e.decided_by.as_str(), e.flag.as_deref()),
            ("refused", "virus", Some("virus"))
        );
        assert!(
            e.notes
                .as_deref()
                .unwrap()
                .starts_with("virus: Sponts.Test.EICAR"),
            "{:?}",
            e.notes
        );
        assert!(gw.store.body(&e.id).await.unwrap().is_some(), "kept");
        let reply = c
            .send_mail(
                "a@sender.example",
                &["u@example.org"],
                &with_attachment("just a plain file"),
            )
            .await;
        assert!(reply.starts_with("250 "), "{reply}");
        gw.stop().await;
    }
    assert_eq!(
        cap.deliveries.lock().unwrap().len(),
        2,
        "only the clean messages arrived"
    );
}

#[tokio::test]
async fn an_allowed_sender_is_still_scanned_for_viruses() {
    let clamd = Engine::clamd();
    let cap = Capture::start(CaptureOptions::default()).await;
    // uce before virus: the allow list does not end the phase for the modules after it.
    let gw = gateway(cap.addr, &format!("modules = [\"access\", \"uce\", \"virus\", \"backup\", \"journal\"]\n[virus]\nclamd = \"{}\"\n", clamd.address())).await;
    gw.store
        .set_sender_entry(
            "u@example.org",
            "sender.example",
            sponts::storage::SenderVerdict::Allow,
            "test",
        )
        .await
        .unwrap();
    let mut c = Client::connect(gw.addr).await;
    c.expect("EHLO client.test", 250).await;
    let reply = c
        .send_mail(
            "a@sender.example",
            &["u@example.org"],
            &with_attachment(&eicar()),
        )
        .await;
    assert!(reply.starts_with("550 5.1.1 "), "{reply}");
    let e = journal_entry(&gw.store, &id_of(&gw.store, &reply).await).await;
    assert_eq!(
        (e.decided_by.as_str(), e.flag.as_deref()),
        ("virus", Some("virus"))
    );
    let reply = c
        .send_mail(
            "a@sender.example",
            &["u@example.org"],
            &with_attachment("just a plain file"),
        )
        .await;
    let e = journal_entry(&gw.store, &reply_id(&reply)).await;
    assert!(
        e.notes
            .as_deref()
            .unwrap()
            .contains("uce: allowed by u@example.org's list (sender.example)"),
        "{:?}",
        e.notes
    );
    gw.stop().await;
    assert_eq!(cap.deliveries.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_scanner_that_is_down_is_never_skipped_silently() {
    let cap = Capture::start(CaptureOptions::default()).await;
    let dead = dead_address();
    let gw = gateway(cap.addr, &format!("[virus]\nclamd = \"{dead}\"\n")).await;
    let mut c = Client::connect(gw.addr).await;
    c.expect("EHLO client.test", 250).await;
    let reply = c
        .send_mail(
            "a@sender.example",
            &["u@example.org"],
            b"Subject: hi\r\n\r\nhello\r\n",
        )
        .await;
    assert!(
        reply.starts_with("451 4.7.1 Virus scanner unavailable"),
        "{reply}"
    );
    let e = journal_entry(&gw.store, &id_of(&gw.store, &reply).await).await;
    assert_eq!(e.outcome, "tempfailed");
    assert!(
        e.notes.as_deref().unwrap().contains("virus: scan failed"),
        "{:?}",
        e.notes
    );
    gw.stop().await;

    let gw = gateway(
        cap.addr,
        &format!("[virus]\nclamd = \"{dead}\"\non_error = \"accept\"\n"),
    )
    .await;
    let mut c = Client::connect(gw.addr).await;
    c.expect("EHLO client.test", 250).await;
    let reply = c
        .send_mail(
            "a@sender.example",
            &["u@example.org"],
            b"Subject: hi\r\n\r\nhello\r\n",
        )
        .await;
    assert!(reply.starts_with("250 "), "{reply}");
    let e = journal_entry(&gw.store, &id_of(&gw.store, &reply).await).await;
    assert!(
        e.notes
            .as_deref()
            .unwrap()
            .contains("virus: scan skipped, delivered unscanned"),
        "{:?}",
        e.notes
    );
    assert_eq!(
        sponts::scanners::calls("clamd", "error"),
        2,
        "both skipped scans are counted"
    );
    gw.stop().await;
}

#[tokio::test]
async fn a_kept_virus_is_for_admins_only() {
    let clamd = Engine::clamd();
    let cap = Capture::start(CaptureOptions::default()).await;
    let gw = gateway(
        cap.addr,
        &format!("[virus]\nclamd = \"{}\"\n", clamd.address()),
    )
    .await;
    add_user(&gw.store, "u@example.org", sponts::storage::Role::User).await;
    add_user(&gw.store, "admin@example.org", sponts::storage::Role::Admin).await;
    let mut c = Client::connect(gw.addr).await;
    c.expect("EHLO client.test", 250).await;
    let reply = c
        .send_mail(
            "a@sender.example",
            &["u@example.org"],
            &with_attachment(&eicar()),
        )
        .await;
    let id = id_of(&gw.store, &reply).await;
    let user = login(gw.web, "u@example.org", PASSWORD).await.unwrap();
    let admin = login(gw.web, "admin@example.org", PASSWORD).await.unwrap();
    let get = |token: String, path: String| {
        let web = gw.web;
        async move {
            request(
                web,
                "GET",
                &path,
                &[("Authorization", &format!("Bearer {token}"))],
                None,
            )
            .await
        }
    };
    // The user sees the record (what was refused for them), not the content.
    let view = get(user.token.clone(), format!("/api/v1/messages/{id}")).await;
    assert_eq!(view.status, 200);
    assert_eq!(
        (
            view.json()["kept"].as_bool(),
            view.json()["message"]["flag"].as_str()
        ),
        (Some(false), Some("virus"))
    );
    assert_eq!(
        get(user.token.clone(), format!("/api/v1/messages/{id}/raw"))
            .await
            .status,
        403
    );
    let replay = request(
        gw.web,
        "POST",
        &format!("/api/v1/messages/{id}/replay"),
        &[("Authorization", &format!("Bearer {}", user.token))],
        None,
    )
    .await;
    assert_eq!(replay.status, 403);
    let raw = get(admin.token.clone(), format!("/api/v1/messages/{id}/raw")).await;
    assert_eq!(raw.status, 200);
    assert!(String::from_utf8_lossy(&raw.body).contains("invoice.com"));
    // No digest offers it for delivery, and a one-click link for it (an older digest's) is refused.
    let (config, _dir) = config(cap.addr, "");
    assert_eq!(
        sponts::digest::run_once(&config, &gw.store).await.unwrap(),
        0,
        "a virus is not held back for the user to take"
    );
    let key = sponts::digest::link::key(&gw.store).await.unwrap();
    let link = sponts::digest::link::Link {
        id: id.clone(),
        rcpt: "u@example.org".into(),
        expires_us: sponts::clock::now_us() + 3_600_000_000,
    };
    let path = format!("/r/{}", sponts::digest::link::sign(&key, &link));
    assert_eq!(request(gw.web, "GET", &path, &[], None).await.status, 403);
    assert_eq!(request(gw.web, "POST", &path, &[], None).await.status, 403);
    assert!(cap.deliveries().is_empty(), "nothing reached the mailbox");
    // Every scan is counted, by result and latency, on /metrics.
    let metrics = get(admin.token.clone(), "/metrics".into()).await.text();
    assert!(
        metrics.contains("sponts_scanner_calls_total{scanner=\"clamd\",result=\"found\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("sponts_scanner_duration_seconds_count{scanner=\"clamd\"} 1"),
        "{metrics}"
    );
    assert_eq!(get(user.token.clone(), "/metrics".into()).await.status, 403);
    gw.stop().await;
}

#[test]
fn virus_without_clamd_is_a_config_error() {
    let e = sponts::config::Config::parse("modules = [\"virus\"]\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("modules: `virus` needs virus.clamd"), "{e}");
    let e = sponts::config::Config::parse("[virus]\nclamd = \"nonsense\"\n")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("virus.clamd: `nonsense` is neither HOST:PORT nor a socket path"),
        "{e}"
    );
}

/// A zip archive with these (empty) files, made by Python's zipfile.
fn zip(names: &[&str]) -> Vec<u8> {
    let script = "import io, sys, zipfile\nb = io.BytesIO()\nwith zipfile.ZipFile(b, 'w', zipfile.ZIP_DEFLATED) as z:\n    [z.writestr(n, 'content of ' + n) for n in sys.argv[1:]]\nsys.stdout.buffer.write(b.getvalue())\n";
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(names)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[tokio::test]
async fn the_attachment_policy_refuses_executables_also_in_zips() {
    let cap = Capture::start(CaptureOptions::default()).await;
    // A block list alone turns the module on, without a scanner.
    let gw = gateway(cap.addr, "[virus]\nblock_extensions = [\"exe\", \"scr\"]\n").await;
    let mut c = Client::connect(gw.addr).await;
    c.expect("EHLO client.test", 250).await;
    let reply = c
        .send_mail(
            "a@sender.example",
            &["u@example.org"],
            &with_file("Invoice.PDF.exe", b"MZ..."),
        )
        .await;
    assert!(
        reply.starts_with(
            "554 5.7.1 Message refused: attachment Invoice.PDF.exe (extension exe) is not accepted"
        ),
        "{reply}"
    );
    let e = journal_entry(&gw.store, &id_of(&gw.store, &reply).await).await;
    assert_eq!(
        (e.decided_by.as_str(), e.flag.as_deref()),
        ("virus", Some("blocked"))
    );
    let reply = c
        .send_mail(
            "a@sender.example",
            &["u@example.org"],
            &with_file("photos.zip", &zip(&["a.jpg", "screen.scr"])),
        )
        .await;
    assert!(
        reply.starts_with(
            "554 5.7.1 Message refused: attachment screen.scr in photos.zip (extension scr)"
        ),
        "{reply}"
    );
    let reply = c
        .send_mail(
            "a@sender.example",
            &["u@example.org"],
            &with_file("photos.zip", &zip(&["a.jpg", "b.png"])),
        )
        .await;
    assert!(reply.starts_with("250 "), "{reply}");
    let reply = c
        .send_mail(
            "a@sender.example",
            &["u@example.org"],
            &with_file("report.pdf", b"%PDF-1.4"),
        )
        .await;
    assert!(reply.starts_with("250 "), "{reply}");
    assert_eq!(cap.deliveries.lock().unwrap().len(), 2);
    gw.stop().await;
}

#[tokio::test]
async fn blocked_mime_types_are_refused_whatever_the_name() {
    let cap = Capture::start(CaptureOptions::default()).await;
    let gw = gateway(
        cap.addr,
        "[virus]\nblock_types = [\"application/x-msdownload\", \"audio/*\"]\n",
    )
    .await;
    let mut c = Client::connect(gw.addr).await;
    c.expect("EHLO client.test", 250).await;
    let part = |ctype: &str, name: &str| {
        format!(
            "From: a@sender.example\r\nSubject: files\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n--b\r\nContent-Type: {ctype}; name={name}\r\nContent-Transfer-Encoding: base64\r\n\r\nTVouLi4=\r\n--b--\r\n"
        )
        .into_bytes()
    };
    let reply = c
        .send_mail(
            "a@sender.example",
            &["u@example.org"],
            &part("application/x-msdownload", "harmless.txt"),
        )
        .await;
    assert!(
        reply.starts_with(
            "554 5.7.1 Message refused: attachment harmless.txt (type application/x-msdownload)"
        ),
        "{reply}"
    );
    let e = journal_entry(&gw.store, &id_of(&gw.store, &reply).await).await;
    assert_eq!(
        (e.decided_by.as_str(), e.flag.as_deref()),
        ("virus", Some("blocked"))
    );
    let reply = c
        .send_mail(
            "a@sender.example",
            &["u@example.org"],
            &part("Audio/MPEG", "song.dat"),
        )
        .await;
    assert!(
        reply.starts_with("554 5.7.1 Message refused: attachment song.dat (type audio/*)"),
        "{reply}"
    );
    let reply = c
        .send_mail(
            "a@sender.example",
            &["u@example.org"],
            &part("application/pdf", "report.pdf"),
        )
        .await;
    assert!(reply.starts_with("250 "), "{reply}");
    assert_eq!(cap.deliveries().len(), 1, "only the PDF");
    gw.stop().await;
}
