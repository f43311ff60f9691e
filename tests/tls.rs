//! TLS as a scanner sees it: the server picks the cipher suite by its own order on SMTP, POP3 and
//! HTTPS; HTTPS answers carry Strict-Transport-Security; the self-signed certificate made when
//! none is configured names `smtp.hostname`, is valid for a year, and is made again when due.

mod common;

use common::*;
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

/// A client that prefers ChaCha20 over AES-256-GCM and trusts only the gateway's certificate,
/// under `gw.test.example`.
fn chacha_first_client(gw: &Gateway) -> tokio_rustls::TlsConnector {
    use rustls::crypto::ring::cipher_suite::{
        TLS13_AES_256_GCM_SHA384, TLS13_CHACHA20_POLY1305_SHA256,
    };
    let mut provider = rustls::crypto::ring::default_provider();
    provider.cipher_suites = vec![TLS13_CHACHA20_POLY1305_SHA256, TLS13_AES_256_GCM_SHA384];
    let roots = sponts::smtp::tls::roots_from_file(&gw.dir.path().join("tls/cert.pem")).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

fn name() -> rustls::pki_types::ServerName<'static> {
    rustls::pki_types::ServerName::try_from("gw.test.example").unwrap()
}

/// Reads lines until one that starts with `last` (a final reply line).
async fn read_until(r: &mut BufReader<tokio::net::TcpStream>, last: &str) {
    let mut line = String::new();
    loop {
        line.clear();
        assert!(
            r.read_line(&mut line).await.unwrap() > 0,
            "closed before {last:?}"
        );
        if line.starts_with(last) {
            return;
        }
    }
}

#[tokio::test]
async fn the_server_picks_the_cipher_suite_and_https_asks_for_https_only() {
    let cap = Capture::start(CaptureOptions::default()).await;
    let gw = gateway(cap.addr, "[web]\ntls = true\n").await;
    let connector = chacha_first_client(&gw);
    let suite = |c: &rustls::ClientConnection| {
        format!("{:?}", c.negotiated_cipher_suite().unwrap().suite())
    };

    // SMTP, STARTTLS.
    let mut r = BufReader::new(tokio::net::TcpStream::connect(gw.addr).await.unwrap());
    read_until(&mut r, "220 ").await;
    r.get_mut()
        .write_all(b"EHLO scanner.test\r\n")
        .await
        .unwrap();
    read_until(&mut r, "250 ").await;
    r.get_mut().write_all(b"STARTTLS\r\n").await.unwrap();
    read_until(&mut r, "220 ").await;
    let tls = connector.connect(name(), r.into_inner()).await.unwrap();
    assert_eq!(
        suite(tls.get_ref().1),
        "TLS13_AES_256_GCM_SHA384",
        "SMTP: the server's order, not the client's"
    );

    // POP3, STLS.
    let mut r = BufReader::new(tokio::net::TcpStream::connect(gw.pop3).await.unwrap());
    read_until(&mut r, "+OK").await;
    r.get_mut().write_all(b"STLS\r\n").await.unwrap();
    read_until(&mut r, "+OK").await;
    let tls = connector.connect(name(), r.into_inner()).await.unwrap();
    assert_eq!(suite(tls.get_ref().1), "TLS13_AES_256_GCM_SHA384", "POP3");

    // HTTPS, and its Strict-Transport-Security.
    let mut tls = connector
        .connect(
            name(),
            tokio::net::TcpStream::connect(gw.web).await.unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(suite(tls.get_ref().1), "TLS13_AES_256_GCM_SHA384", "HTTPS");
    tls.write_all(b"GET /login HTTP/1.1\r\nHost: gw.test.example\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = Vec::new();
    let _ = tls.read_to_end(&mut response).await;
    let head = String::from_utf8_lossy(&response).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(
        head.contains("\r\nstrict-transport-security: max-age=31536000\r\n"),
        "{head}"
    );
    gw.stop().await;

    // Plain HTTP does not claim it.
    let gw = gateway(cap.addr, "").await;
    let r = common::http::request(gw.web, "GET", "/login", &[], None).await;
    assert_eq!(
        (r.status, r.header("strict-transport-security")),
        (200, None)
    );
    gw.stop().await;
}

/// Subject, DNS names and validity of a PEM certificate, as Python's ssl module decodes it.
fn decode(pem: &std::path::Path) -> serde_json::Value {
    let script = "import ssl, sys, json\nc = ssl._ssl._test_decode_cert(sys.argv[1])\nprint(json.dumps({'subject': c['subject'], 'san': c.get('subjectAltName'), 'from': ssl.cert_time_to_seconds(c['notBefore']), 'until': ssl.cert_time_to_seconds(c['notAfter'])}))";
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(pem)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The note beside the self-signed certificate, rewritten to say it ends in `days`.
fn ends_in(data_dir: &std::path::Path, days: i64) {
    let note = data_dir.join("tls/self-signed.txt");
    let text = std::fs::read_to_string(&note).unwrap();
    let end = sponts::clock::now_us() + days * 86_400_000_000;
    let text: Vec<String> = text
        .lines()
        .map(|l| {
            if l.starts_with("not_after_us") {
                format!("not_after_us = {end}")
            } else {
                l.to_string()
            }
        })
        .collect();
    std::fs::write(&note, text.join("\n")).unwrap();
}

#[tokio::test]
async fn the_self_signed_certificate_names_the_host_lasts_a_year_and_is_made_again_when_due() {
    let cap = Capture::start(CaptureOptions::default()).await;
    let data = tempfile::tempdir().unwrap();
    let (config, dir) = common::config(
        cap.addr,
        &format!("[storage]\ndata_dir = \"{}\"\n", data.path().display()),
    );
    let gw = start_with(config.clone(), dir).await;
    let cert = data.path().join("tls/cert.pem");
    let c = decode(&cert);
    assert_eq!(
        c["subject"],
        serde_json::json!([[["commonName", "gw.test.example"]]]),
        "{c}"
    );
    assert_eq!(
        c["san"],
        serde_json::json!([["DNS", "gw.test.example"]]),
        "{c}"
    );
    let now = sponts::clock::now_us() / 1_000_000;
    let (from, until) = (c["from"].as_i64().unwrap(), c["until"].as_i64().unwrap());
    assert!(
        from <= now && now - from < 3 * 86_400,
        "valid from about now: {c}"
    );
    assert!(
        (until - now - 365 * 86_400).abs() < 2 * 86_400,
        "valid for a year: {c}"
    );
    let first = std::fs::read(&cert).unwrap();
    gw.stop().await;

    // Kept across a restart while it is not due.
    let gw = start_with(config.clone(), tempfile::tempdir().unwrap()).await;
    assert_eq!(std::fs::read(&cert).unwrap(), first);
    gw.stop().await;

    // Ten days before its end, it is made again at start.
    ends_in(data.path(), 10);
    let gw = start_with(config.clone(), tempfile::tempdir().unwrap()).await;
    let second = std::fs::read(&cert).unwrap();
    assert_ne!(second, first, "made again at start");
    gw.stop().await;

    // And while running (the renewal job's step): the slot shows the new one.
    let slot = sponts::smtp::tls::CertSlot::load(&config).unwrap();
    assert!(!slot.renew_self_signed().unwrap(), "not due");
    ends_in(data.path(), 1);
    assert!(slot.renew_self_signed().unwrap(), "due");
    assert_ne!(std::fs::read(&cert).unwrap(), second);
    let c = decode(&cert);
    assert!(
        (c["until"].as_i64().unwrap() - now - 365 * 86_400).abs() < 2 * 86_400,
        "{c}"
    );

    // Another host name: made again for it.
    let mut renamed = config.clone();
    renamed.smtp.hostname = "mx2.test.example".into();
    sponts::smtp::tls::CertSlot::load(&renamed).unwrap();
    assert_eq!(
        decode(&cert)["san"],
        serde_json::json!([["DNS", "mx2.test.example"]])
    );
}
