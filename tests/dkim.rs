//! DKIM signing of outgoing mail, checked by a verifier sponts did not write: dkimpy, given the
//! TXT records exactly as `sponts dkim keygen|rotate` printed them. Keys are made and rotated
//! with the real CLI; a pending key is activated by the rotation job once a real DNS server
//! (scripts/peers/dns_server.py) serves its record.

mod common;

use common::dkimpy::{dkimpy, parse_line};
use common::peers::Dns;
use sponts::config::{DkimConfig, Duration};
use sponts::dkim::{activation, signer};
use sponts::storage::{DkimKeyState, Store};
use std::path::PathBuf;
use std::process::Command;

/// A data directory and a config file pointing at it, for the CLI and the library alike.
struct Setup {
    _dir: tempfile::TempDir,
    config: PathBuf,
}

impl Setup {
    fn new() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("sponts.toml");
        std::fs::write(
            &config,
            format!(
                "[storage]\ndata_dir = \"{}\"\n",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        Setup { _dir: dir, config }
    }

    /// `sponts dkim ARGS...`: (stdout, stderr); panics when it fails.
    fn cli(&self, args: &[&str]) -> (String, String) {
        let out = self.try_cli(args);
        assert!(out.status.success(), "sponts dkim {args:?}: {out:?}");
        (
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    }

    fn try_cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(env!("CARGO_BIN_EXE_sponts"))
            .arg("dkim")
            .args(args)
            .env("SPONTS_CONFIG", &self.config)
            .output()
            .unwrap()
    }

    async fn store(&self) -> Store {
        let config = sponts::config::Config::load(&self.config).unwrap();
        Store::open(&config.storage.database_location())
            .await
            .unwrap()
    }
}

/// The zone for dns_server.py, with the strings as printed.
fn zone(lines: &[&str]) -> String {
    let mut zone = serde_json::Map::new();
    for line in lines {
        let (name, _) = parse_line(line);
        let rest = line.split_once(" IN TXT ").unwrap().1;
        let strings: Vec<&str> = rest.split('"').skip(1).step_by(2).collect();
        zone.insert(name, serde_json::json!([{"type": "TXT", "value": strings}]));
    }
    serde_json::Value::Object(zone).to_string()
}

fn message(from: &str, body: &str) -> Vec<u8> {
    let body: String = body.lines().map(|l| format!("{l}\r\n")).collect();
    format!(
        "From: Alice <{from}>\r\nTo: bob@remote.example\r\nSubject: Quarterly figures\r\nDate: Fri, 04 Dec 2026 20:00:00 +0000\r\n\
         Message-ID: <m1@{}>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}",
        from.split('@').nth(1).unwrap()
    )
    .into_bytes()
}

async fn sign(store: &Store, config: &DkimConfig, message: &[u8]) -> Option<Vec<u8>> {
    signer::forget_cached_keys(); // the CLI changed the keys in another process
    let headers = sponts::dkim::sign(store, config, message).await.unwrap()?;
    assert!(
        headers.ends_with("\r\n") && headers.starts_with("DKIM-Signature: "),
        "{headers}"
    );
    Some([headers.as_bytes(), message].concat())
}

fn resolver(dns: &Dns) -> Option<std::net::SocketAddr> {
    Some(dns.address().parse().unwrap())
}

#[tokio::test]
async fn rsa_and_ed25519_signatures_verify_with_dkimpy_and_both_sign_once_both_are_active() {
    let s = Setup::new();
    let (rsa_line, note) = s.cli(&[
        "keygen",
        "example.org",
        "--selector",
        "r1",
        "--algorithm",
        "rsa",
    ]);
    assert!(note.contains("signs with r1 from now on"), "{note}");
    assert!(
        rsa_line.starts_with("r1._domainkey.example.org. IN TXT \"v=DKIM1; k=rsa; p="),
        "{rsa_line}"
    );
    assert!(
        parse_line(&rsa_line).1.len() > 255,
        "an RSA-2048 record needs two strings: {rsa_line}"
    );
    let store = s.store().await;
    let config = DkimConfig::default();

    // A domain's first key signs at once; dkimpy verifies with the record as printed.
    let m = message(
        "alice@example.org",
        &"The figures are attached.\n".repeat(200),
    );
    let signed = sign(&store, &config, &m).await.expect("signed");
    assert_eq!(
        dkimpy(&signed, &[&rsa_line]),
        vec![("example.org".into(), "r1".into(), true)]
    );
    // The same message altered in transit fails: the verdict is dkimpy's, not a formality.
    let tampered = String::from_utf8(signed.clone())
        .unwrap()
        .replace("Quarterly figures", "Quarterly figures!");
    assert_eq!(
        dkimpy(tampered.as_bytes(), &[&rsa_line]),
        vec![("example.org".into(), "r1".into(), false)]
    );
    // Relaxed canonicalization: whitespace changes on the way do not break it.
    let rewrapped = String::from_utf8(signed.clone()).unwrap().replace(
        "Subject: Quarterly figures",
        "Subject:  Quarterly   figures",
    );
    assert!(dkimpy(rewrapped.as_bytes(), &[&rsa_line])[0].2);

    // A second key (Ed25519) waits for its record before it signs.
    let (ed_line, note) = s.cli(&[
        "keygen",
        "example.org",
        "--selector",
        "e1",
        "--algorithm",
        "ed25519",
    ]);
    assert!(note.contains("pending"), "{note}");
    assert!(
        ed_line.starts_with("e1._domainkey.example.org. IN TXT \"v=DKIM1; k=ed25519; p="),
        "{ed_line}"
    );
    assert_eq!(
        dkimpy(&sign(&store, &config, &m).await.unwrap(), &[&rsa_line]).len(),
        1
    );
    let dns = Dns::start("{}");
    assert!(
        activation::check_once(&store, &config, resolver(&dns))
            .await
            .unwrap()
            .is_empty(),
        "no record yet, no change"
    );
    dns.set_zone(&zone(&[&ed_line]));
    let changes = activation::check_once(&store, &config, resolver(&dns))
        .await
        .unwrap();
    assert_eq!(
        changes,
        vec![(
            "example.org".to_string(),
            "e1".to_string(),
            DkimKeyState::Active
        )]
    );

    // Now both sign, and dkimpy verifies both signatures.
    let signed = sign(&store, &config, &m).await.unwrap();
    let mut verdicts = dkimpy(&signed, &[&rsa_line, &ed_line]);
    verdicts.sort();
    assert_eq!(
        verdicts,
        vec![
            ("example.org".into(), "e1".into(), true),
            ("example.org".into(), "r1".into(), true)
        ]
    );
}

#[tokio::test]
async fn a_rotation_signs_with_both_keys_during_the_overlap_and_with_the_new_one_after() {
    let s = Setup::new();
    let (old_line, _) = s.cli(&[
        "keygen",
        "example.net",
        "--selector",
        "2026a",
        "--algorithm",
        "ed25519",
    ]);
    let (new_line, note) = s.cli(&["rotate", "example.net", "--selector", "2026b"]);
    assert!(
        note.contains("pending") && note.contains("retires 2026a"),
        "{note}"
    );
    assert!(
        new_line.starts_with("2026b._domainkey.example.net. IN TXT \"v=DKIM1; k=ed25519; p="),
        "same algorithm: {new_line}"
    );
    // A second rotation of the same key while one is under way is refused, with the reason.
    let again = s.try_cli(&["rotate", "example.net"]);
    assert!(
        !again.status.success()
            && String::from_utf8_lossy(&again.stderr).contains("already under way"),
        "{again:?}"
    );

    let store = s.store().await;
    // A short overlap (the config's minimum is 1h; the job takes any).
    let config = DkimConfig {
        overlap: Duration::secs(2),
        ..DkimConfig::default()
    };
    let m = message("carol@example.net", "Hello\n");
    let dns = Dns::start("{}");
    // A record with another key (a typo, an old zone) does not activate it.
    dns.set_zone(&zone(&[
        &old_line.replace("2026a._domainkey", "2026b._domainkey")
    ]));
    assert!(
        activation::check_once(&store, &config, resolver(&dns))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        dkimpy(&sign(&store, &config, &m).await.unwrap(), &[&old_line]),
        vec![("example.net".into(), "2026a".into(), true)]
    );

    dns.set_zone(&zone(&[&old_line, &new_line]));
    let changes = activation::check_once(&store, &config, resolver(&dns))
        .await
        .unwrap();
    assert_eq!(
        changes,
        vec![
            (
                "example.net".to_string(),
                "2026b".to_string(),
                DkimKeyState::Active
            ),
            (
                "example.net".to_string(),
                "2026a".to_string(),
                DkimKeyState::Retiring
            )
        ]
    );
    let mut verdicts = dkimpy(
        &sign(&store, &config, &m).await.unwrap(),
        &[&old_line, &new_line],
    );
    verdicts.sort();
    assert_eq!(
        verdicts,
        vec![
            ("example.net".into(), "2026a".into(), true),
            ("example.net".into(), "2026b".into(), true)
        ],
        "both during the overlap"
    );

    // The overlap ends: the old key retires and signs no more.
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let changes = activation::check_once(&store, &config, resolver(&dns))
        .await
        .unwrap();
    assert_eq!(
        changes,
        vec![(
            "example.net".to_string(),
            "2026a".to_string(),
            DkimKeyState::Retired
        )]
    );
    assert_eq!(
        dkimpy(&sign(&store, &config, &m).await.unwrap(), &[&new_line]),
        vec![("example.net".into(), "2026b".into(), true)]
    );
    let (list, _) = s.cli(&["list", "example.net"]);
    assert!(
        list.lines()
            .any(|l| l.contains("2026a") && l.contains("retired")),
        "{list}"
    );
    assert!(
        list.lines()
            .any(|l| l.contains("2026b") && l.contains("active")),
        "{list}"
    );
}

#[tokio::test]
async fn a_domain_without_a_key_gets_no_signature_nor_does_anything_when_signing_is_off() {
    let s = Setup::new();
    s.cli(&["keygen", "example.org", "--algorithm", "ed25519"]);
    let store = s.store().await;
    let config = DkimConfig::default();
    assert!(
        sign(&store, &config, &message("eve@other.example", "hi\n"))
            .await
            .is_none()
    );
    // A subdomain signs with its parent's key (DMARC's relaxed alignment).
    assert!(
        sign(&store, &config, &message("news@lists.example.org", "hi\n"))
            .await
            .is_some()
    );
    assert!(
        sign(&store, &config, b"Subject: no From at all\r\n\r\nhi\r\n")
            .await
            .is_none()
    );
    assert!(
        sign(
            &store,
            &DkimConfig {
                enabled: false,
                ..config
            },
            &message("alice@example.org", "hi\n")
        )
        .await
        .is_none()
    );
    // Bad input is named.
    for (args, expect) in [
        (&["keygen", "not a domain"][..], "is not a domain name"),
        (
            &["keygen", "example.com", "--algorithm", "dsa"],
            "is not a DKIM algorithm",
        ),
        (
            &["keygen", "example.com", "--selector", "a_b"],
            "is not a selector",
        ),
        (&["rotate", "example.com"], "has no active DKIM key"),
    ] {
        let out = s.try_cli(args);
        assert!(
            !out.status.success() && String::from_utf8_lossy(&out.stderr).contains(expect),
            "{args:?}: {out:?}"
        );
    }
}

/// Every way a private key could be written down: its PKCS#8 in base64 and hex, and each
/// 24-byte stretch of it that is secret (not also part of the public key, which PKCS#8 carries
/// too) in hex and in base64 at every alignment.
fn secret_forms(pkcs8: &[u8], public_b64: &str) -> Vec<String> {
    let public = sponts::base64::decode(public_b64).unwrap();
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let mut forms = vec![sponts::base64::encode(pkcs8), hex(pkcs8)];
    for part in pkcs8.windows(24).step_by(8) {
        if public.windows(24).any(|w| w == part) {
            continue;
        }
        forms.push(hex(part));
        for skip in 0..3 {
            forms.push(sponts::base64::encode(&part[skip..])[4..20].to_string());
        }
    }
    // What an encoding of the public key also contains is no evidence.
    let public_forms = [
        sponts::base64::encode(&public),
        sponts::base64::encode(&public[1..]),
        sponts::base64::encode(&public[2..]),
        hex(&public),
    ];
    forms.retain(|f| !public_forms.iter().any(|p| p.contains(f.as_str())));
    assert!(forms.len() > 10, "secret stretches found");
    forms
}

#[tokio::test]
async fn private_keys_never_appear_in_listings_printed_records_or_logs() {
    // Everything sponts logs while keys are made, activated and used, at the most verbose level.
    let logs = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
    let sink = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || Writer(sink.clone()))
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let s = Setup::new();
    let store = s.store().await;
    let mut printed = String::new();
    for (domain, alg) in [("example.org", "rsa"), ("example.net", "ed25519")] {
        let (out, err) = s.cli(&["keygen", domain, "--algorithm", alg]);
        printed += &(out + &err);
    }
    let (out, err) = s.cli(&["rotate", "example.org"]);
    printed += &(out + &err);
    // The rotation job in this process (its DNS lookups fail: nothing serves the record).
    let dns = Dns::start("{}");
    activation::check_once(&store, &DkimConfig::default(), resolver(&dns))
        .await
        .unwrap();
    sign(
        &store,
        &DkimConfig::default(),
        &message("alice@example.org", "hi\n"),
    )
    .await
    .unwrap();
    sign(
        &store,
        &DkimConfig::default(),
        &message("alice@example.net", "hi\n"),
    )
    .await
    .unwrap();
    for args in [&["list"][..], &["list", "--json"], &["list", "example.org"]] {
        let (out, err) = s.cli(args);
        printed += &(out + &err);
    }
    assert!(
        printed.contains("k=rsa")
            && printed.contains("k=ed25519")
            && printed.contains("\"state\":\"pending\""),
        "{printed}"
    );

    let keys = store.dkim_signing_keys().await.unwrap();
    assert_eq!(keys.len(), 2);
    assert!(
        !format!("{keys:?}").contains(&sponts::base64::encode(&keys[0].pkcs8)),
        "Debug hides the key"
    );
    let logs = String::from_utf8(logs.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("DKIM"), "the log was captured: {logs}");
    for key in &keys {
        for form in secret_forms(&key.pkcs8, &key.info.public_key) {
            assert!(
                !printed.contains(&form),
                "a private key in the CLI's output"
            );
            assert!(!logs.contains(&form), "a private key in the log");
        }
    }
}

#[derive(Clone)]
struct Writer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Writer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
