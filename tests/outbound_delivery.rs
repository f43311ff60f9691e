//! Delivery to the internet against a test internet on loopback: a real DNS (Knot serving zones
//! signed with ldns, behind a validating Unbound — `scripts/peers/dnssec_start.sh`), receiving MTAs
//! on port 25 of their own 127.0.0.x addresses (Debian's aiosmtpd, `scripts/peers/mx_smtp.py`),
//! and an MTA-STS policy over HTTPS (python3's http.server, `scripts/peers/https_static.py`).
//! Each test has its own block of addresses (127.0.N.x), so they run side by side.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use sponts::outbound::deliver::{Delivery, Fate, tls_report};
use sponts::storage::{NewQueued, Route};
use std::time::Duration;

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scripts/peers")
        .join(name)
}

/// Knot + validating Unbound for the given zones (`NAME.zone` signed, `NAME.insecure.zone` not).
struct TestDns {
    resolver: String,
    dir: tempfile::TempDir,
}

impl TestDns {
    fn start(zones: &[(&str, String)]) -> TestDns {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("zones")).unwrap();
        for (file, text) in zones {
            std::fs::write(dir.path().join("zones").join(file), text).unwrap();
        }
        let out = Command::new("bash")
            .arg(script("dnssec_start.sh"))
            .arg(dir.path())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "dnssec_start.sh: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let resolver = text
            .lines()
            .find_map(|l| l.strip_prefix("RESOLVER="))
            .unwrap()
            .to_string();
        TestDns { resolver, dir }
    }
}

impl Drop for TestDns {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(script("dnssec_stop.sh"))
            .arg(self.dir.path())
            .status();
    }
}

/// A zone file's text; `records` are lines after the SOA and NS.
fn zone(origin: &str, records: &str) -> String {
    format!(
        "$ORIGIN {origin}.\n$TTL 300\n@ SOA ns.{origin}. hostmaster.{origin}. 1 3600 600 86400 300\n@ NS ns.{origin}.\nns A 127.0.0.53\n{records}\n"
    )
}

/// A receiving MTA on ADDR:25.
struct Mx {
    dir: tempfile::TempDir,
    child: Child,
}

impl Mx {
    fn start(addr: &str, tls: Option<&Cert>, refuse: Option<&str>) -> Mx {
        Mx::start_with(addr, tls, refuse, 0.0)
    }

    /// With each RCPT answered after `rcpt_delay` seconds.
    fn start_with(addr: &str, tls: Option<&Cert>, refuse: Option<&str>, rcpt_delay: f64) -> Mx {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = Command::new("/usr/bin/python3");
        cmd.arg(script("mx_smtp.py"))
            .arg("--addr")
            .arg(addr)
            .arg("--dir")
            .arg(dir.path());
        if let Some(c) = tls {
            cmd.arg("--cert").arg(&c.cert).arg("--key").arg(&c.key);
        }
        if let Some(r) = refuse {
            cmd.arg("--refuse").arg(r);
        }
        cmd.arg("--rcpt-delay").arg(rcpt_delay.to_string());
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(
            line.starts_with("MX_READY="),
            "mx_smtp.py on {addr}: `{line}`"
        );
        Mx { dir, child }
    }

    /// (envelope JSON, message) of each mail received, in order.
    fn received(&self) -> Vec<(serde_json::Value, Vec<u8>)> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        names.sort();
        names
            .iter()
            .map(|j| {
                (
                    serde_json::from_slice(&std::fs::read(j).unwrap()).unwrap(),
                    std::fs::read(j.with_extension("eml")).unwrap(),
                )
            })
            .collect()
    }
}

impl Drop for Mx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A child process killed when the test ends, passed or not.
struct Peer(Child);

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A certificate and key as PEM files; `ca` set when a test CA signed it.
struct Cert {
    cert: PathBuf,
    key: PathBuf,
    /// The SHA-256 of its SubjectPublicKeyInfo (a `3 1 1` TLSA record's data).
    spki_sha256: String,
    _dir: tempfile::TempDir,
}

/// A test certificate authority.
struct Ca {
    issuer: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
    pem: PathBuf,
    _dir: tempfile::TempDir,
}

impl Ca {
    fn new() -> Ca {
        use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
        let dir = tempfile::tempdir().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        let pem = dir.path().join("ca.pem");
        std::fs::write(&pem, issuer.pem()).unwrap();
        Ca {
            issuer,
            pem,
            _dir: dir,
        }
    }
}

/// A certificate for `names`, signed by `ca` or self-signed.
fn cert(names: &[&str], ca: Option<&Ca>) -> Cert {
    use rcgen::{CertificateParams, KeyPair, PublicKeyData};
    let dir = tempfile::tempdir().unwrap();
    let key = KeyPair::generate().unwrap();
    let params =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    let c = match ca {
        Some(ca) => params.signed_by(&key, &ca.issuer).unwrap(),
        None => params.self_signed(&key).unwrap(),
    };
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, c.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    let spki_sha256 = ring::digest::digest(&ring::digest::SHA256, &key.subject_public_key_info())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Cert {
        cert: cert_path,
        key: key_path,
        spki_sha256,
        _dir: dir,
    }
}

/// Delivery as sponts builds it, with `outbound.resolver` = the test DNS.
async fn delivery(dns: &TestDns, extra: &str) -> (Delivery, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[smtp]\nhostname = \"gw.sender.example\"\n[outbound]\nresolver = \"{}\"\n{extra}\n[storage]\ndata_dir = \"{}\"\n",
        dns.resolver,
        dir.path().display()
    );
    let config = sponts::config::Config::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let store = sponts::storage::Store::open(&config.storage.database_location())
        .await
        .unwrap();
    (Delivery::new(Arc::new(config), store).unwrap(), dir)
}

fn message(subject: &str) -> Vec<u8> {
    format!("From: a@sender.example\r\nTo: x@one.test\r\nSubject: {subject}\r\nMessage-ID: <{subject}@sender.example>\r\n\r\nHello.\r\n").into_bytes()
}

fn rcpts(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn delivers_by_mx_preference_several_recipients_in_one_session_starttls_when_offered_sessions_reused()
 {
    let mx_cert = cert(&["mx.one.test"], None);
    let dns = TestDns::start(&[
        (
            "one.test.zone",
            zone("one.test", "@ MX 10 mx\nmx A 127.0.1.1"),
        ),
        // The preferred MX of two.test is down; the second takes the mail, without STARTTLS.
        (
            "two.test.zone",
            zone(
                "two.test",
                "@ MX 10 mx1\n@ MX 20 mx2\nmx1 A 127.0.1.2\nmx2 A 127.0.1.3",
            ),
        ),
        // No MX at all: the domain's own address is the implicit MX.
        (
            "three.test.insecure.zone",
            zone("three.test", "@ A 127.0.1.4"),
        ),
        ("nomail.test.zone", zone("nomail.test", "@ MX 0 .")),
    ]);
    let one = Mx::start("127.0.1.1", Some(&mx_cert), None);
    let two = Mx::start("127.0.1.3", None, None);
    let three = Mx::start("127.0.1.4", None, Some("550 5.1.1 no such user"));
    let (d, _dir) = delivery(&dns, "").await;
    let by_domain = vec![
        ("one.test".to_string(), rcpts(&["a@one.test", "b@one.test"])),
        ("two.test".to_string(), rcpts(&["c@two.test"])),
        ("three.test".to_string(), rcpts(&["gone@three.test"])),
        ("nomail.test".to_string(), rcpts(&["d@nomail.test"])),
    ];
    let outcomes = d
        .deliver_message("a@sender.example", &by_domain, &message("two-domains"))
        .await;

    let got = one.received();
    assert_eq!(
        got.len(),
        1,
        "one session, one transaction for both recipients: {got:?}"
    );
    assert_eq!(
        got[0].0["rcpt_tos"],
        serde_json::json!(["a@one.test", "b@one.test"])
    );
    assert_eq!(
        got[0].0["tls"], true,
        "STARTTLS was offered, so it was used"
    );
    assert!(String::from_utf8_lossy(&got[0].1).contains("Subject: two-domains"));
    assert!(
        outcomes[0]
            .results
            .iter()
            .all(|r| r.fate == Fate::Delivered),
        "{:?}",
        outcomes[0]
    );
    assert!(
        outcomes[0]
            .tls
            .as_deref()
            .is_some_and(|t| t.contains("opportunistic")),
        "{:?}",
        outcomes[0].tls
    );

    let got = two.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0["tls"], false, "no STARTTLS offered: plain SMTP");
    assert_eq!(
        outcomes[1].mx.as_deref(),
        Some("mx2.two.test[127.0.1.3]"),
        "the next MX after the one that is down"
    );
    assert_eq!(outcomes[1].results[0].fate, Fate::Delivered);

    assert_eq!(outcomes[2].mx.as_deref(), Some("three.test[127.0.1.4]"));
    assert_eq!(outcomes[2].results[0].fate, Fate::Bounced);
    assert!(
        outcomes[2].results[0]
            .reply
            .starts_with("550 5.1.1 no such user"),
        "{:?}",
        outcomes[2]
    );
    assert!(three.received().is_empty());

    assert_eq!(
        outcomes[3].results[0].fate,
        Fate::Bounced,
        "null MX: bounced at once"
    );
    assert!(
        outcomes[3].results[0].reply.starts_with("556 5.1.10"),
        "{:?}",
        outcomes[3]
    );

    // The next message to one.test goes over the same session (RSET, then the transaction) ...
    let next = d
        .deliver_domain(
            "one.test",
            "a@sender.example",
            &rcpts(&["e@one.test"]),
            &message("next"),
        )
        .await;
    assert_eq!(next.results[0].fate, Fate::Delivered, "{next:?}");
    let got = one.received();
    assert_eq!(got.len(), 2);
    assert_eq!(
        got[1].0["port"], got[0].0["port"],
        "one connection for both messages: {got:?}"
    );
    assert_eq!(got[1].0["tls"], true);
    // ... but not once it has waited longer than the idle time: a new connection then.
    tokio::time::sleep(sponts::outbound::deliver::reuse::IDLE + Duration::from_millis(500)).await;
    let later = d
        .deliver_domain(
            "one.test",
            "a@sender.example",
            &rcpts(&["f@one.test"]),
            &message("later"),
        )
        .await;
    assert_eq!(later.results[0].fate, Fate::Delivered, "{later:?}");
    let got = one.received();
    assert_ne!(got[2].0["port"], got[1].0["port"], "{got:?}");
}

/// With PIPELINING (the test backend offers it, as Postfix does): a refused recipient among
/// accepted ones gets its own answer; a waiting session that the server closed meanwhile costs
/// the next message nothing — its pipelined RSET finds it dead, and a new session carries it.
/// A destination none of whose MX hosts answers is not connected to again for a moment: the
/// rest of its queue is deferred at once with the same error (an outage at a big destination
/// costs one connection, not one per message), and tried again after the pause.
#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_destination_is_suspended_for_a_moment() {
    let dns = TestDns::start(&[(
        "down.test.insecure.zone",
        zone("down.test", "@ MX 10 mx\nmx A 127.0.8.1"),
    )]);
    // An MX that takes the connection and closes it before its greeting, counting.
    let listener = tokio::net::TcpListener::bind("127.0.8.1:25").await.unwrap();
    let connects = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = connects.clone();
    tokio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            drop(conn);
        }
    });
    let (d, _dir) = delivery(&dns, "").await;
    let send = |subject: &'static str| {
        let d = &d;
        async move {
            d.deliver_domain(
                "down.test",
                "a@sender.example",
                &rcpts(&["a@down.test"]),
                &message(subject),
            )
            .await
        }
    };
    let first = send("first").await;
    assert_eq!(first.results[0].fate, Fate::Deferred, "{first:?}");
    let tried = connects.load(std::sync::atomic::Ordering::SeqCst);
    assert!(tried >= 1, "the MX was tried");
    let second = send("second").await;
    assert_eq!(second.results[0].fate, Fate::Deferred, "{second:?}");
    assert!(
        second.results[0]
            .reply
            .starts_with(first.results[0].reply.as_str())
            && second.results[0].reply.contains("suspended"),
        "{second:?}"
    );
    assert_eq!(
        connects.load(std::sync::atomic::Ordering::SeqCst),
        tried,
        "no new connection"
    );
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let third = send("third").await;
    assert_eq!(third.results[0].fate, Fate::Deferred, "{third:?}");
    assert!(!third.results[0].reply.contains("suspended"), "{third:?}");
    assert!(
        connects.load(std::sync::atomic::Ordering::SeqCst) > tried,
        "tried again after the pause"
    );
    // Suspended again; an admin's retry (the CLI's, the web UI's) lifts it at the next round.
    let tried = connects.load(std::sync::atomic::Ordering::SeqCst);
    assert!(send("fourth").await.results[0].reply.contains("suspended"));
    d.store.mx_retry_now(None).await.unwrap();
    d.lift_suspensions_on_retry().await.unwrap();
    let fifth = send("fifth").await;
    assert!(!fifth.results[0].reply.contains("suspended"), "{fifth:?}");
    assert!(
        connects.load(std::sync::atomic::Ordering::SeqCst) > tried,
        "tried at once after the retry"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn pipelined_transactions_and_a_waiting_session_the_server_closed() {
    let dns = TestDns::start(&[(
        "pipe.test.insecure.zone",
        zone("pipe.test", "@ MX 10 mx\nmx A 127.0.1.9"),
    )]);
    let opts = common::backend::CaptureOptions {
        unknown: ["nobody@pipe.test".to_string()].into(),
        hang_up_after_data: true,
        ..Default::default()
    };
    let mx = common::backend::Capture::start_on("127.0.1.9:25".parse().unwrap(), opts).await;
    let (d, _dir) = delivery(&dns, "").await;
    let first = d
        .deliver_domain(
            "pipe.test",
            "a@sender.example",
            &rcpts(&["a@pipe.test", "nobody@pipe.test"]),
            &message("first"),
        )
        .await;
    assert_eq!(first.results[0].fate, Fate::Delivered, "{first:?}");
    assert_eq!(first.results[1].fate, Fate::Bounced, "{first:?}");
    assert!(first.results[1].reply.starts_with("550 5.1.1"), "{first:?}");
    let next = d
        .deliver_domain(
            "pipe.test",
            "a@sender.example",
            &rcpts(&["b@pipe.test"]),
            &message("next"),
        )
        .await;
    assert_eq!(next.results[0].fate, Fate::Delivered, "{next:?}");
    let got = mx.wait_for(2).await;
    assert_eq!(
        got.iter().map(|g| g.rcpts.clone()).collect::<Vec<_>>(),
        vec![
            vec!["a@pipe.test".to_string()],
            vec!["b@pipe.test".to_string()]
        ]
    );
    assert_eq!(
        *mx.sessions.lock().unwrap(),
        2,
        "the closed session carried nothing"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn dane_in_a_signed_zone_is_enforced_and_ignored_in_an_unsigned_one() {
    let good = cert(&["mx.dane.test"], None);
    let bad = cert(&["mx.danebad.test"], None);
    let plain = cert(&["mx.plain.test"], None);
    let other = cert(&["elsewhere.test"], None);
    let dns = TestDns::start(&[
        (
            "dane.test.zone",
            zone(
                "dane.test",
                &format!(
                    "@ MX 10 mx\nmx A 127.0.2.1\n_25._tcp.mx TLSA 3 1 1 {}",
                    good.spki_sha256
                ),
            ),
        ),
        // The record names another key than the one the MX shows: an attacker's, as far as we know.
        (
            "danebad.test.zone",
            zone(
                "danebad.test",
                &format!(
                    "@ MX 10 mx\nmx A 127.0.2.2\n_25._tcp.mx TLSA 3 1 1 {}",
                    other.spki_sha256
                ),
            ),
        ),
        // The same mismatch in an unsigned zone: the TLSA record cannot be trusted, so it is ignored.
        (
            "plain.test.insecure.zone",
            zone(
                "plain.test",
                &format!(
                    "@ MX 10 mx\nmx A 127.0.2.3\n_25._tcp.mx TLSA 3 1 1 {}",
                    other.spki_sha256
                ),
            ),
        ),
    ]);
    let mx_good = Mx::start("127.0.2.1", Some(&good), None);
    let mx_bad = Mx::start("127.0.2.2", Some(&bad), None);
    let mx_plain = Mx::start("127.0.2.3", Some(&plain), None);
    let (d, _dir) = delivery(&dns, "").await;
    let msg = message("dane");

    let ok = d
        .deliver_domain(
            "dane.test",
            "a@sender.example",
            &rcpts(&["x@dane.test"]),
            &msg,
        )
        .await;
    assert_eq!(ok.results[0].fate, Fate::Delivered, "{ok:?}");
    assert!(
        ok.tls.as_deref().is_some_and(|t| t.ends_with("(DANE)")),
        "{:?}",
        ok.tls
    );
    assert_eq!(mx_good.received().len(), 1);

    let refused = d
        .deliver_domain(
            "danebad.test",
            "a@sender.example",
            &rcpts(&["x@danebad.test"]),
            &msg,
        )
        .await;
    assert_eq!(refused.results[0].fate, Fate::Deferred, "{refused:?}");
    assert!(
        refused.results[0].reply.starts_with("451 4.7.5"),
        "{refused:?}"
    );
    assert!(
        mx_bad.received().is_empty(),
        "nothing was sent, in clear or otherwise"
    );

    let insecure = d
        .deliver_domain(
            "plain.test",
            "a@sender.example",
            &rcpts(&["x@plain.test"]),
            &msg,
        )
        .await;
    assert_eq!(insecure.results[0].fate, Fate::Delivered, "{insecure:?}");
    assert!(
        insecure
            .tls
            .as_deref()
            .is_some_and(|t| t.ends_with("(opportunistic)")),
        "{:?}",
        insecure.tls
    );
    let got = mx_plain.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0["tls"], true);

    // The TLS-RPT tallies: a success with DANE, a failure with it.
    let (y, m, day) = sponts::clock::date(sponts::clock::now_us());
    let today = format!("{y:04}-{m:02}-{day:02}");
    let good_results = d.store.tls_results(&today, "dane.test").await.unwrap();
    assert_eq!(
        good_results,
        vec![(
            "tlsa".to_string(),
            "mx.dane.test".to_string(),
            "success".to_string(),
            1
        )]
    );
    let bad_results = d.store.tls_results(&today, "danebad.test").await.unwrap();
    assert_eq!(
        bad_results,
        vec![(
            "tlsa".to_string(),
            "mx.danebad.test".to_string(),
            "validation-failure".to_string(),
            1
        )]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn mta_sts_enforce_needs_a_valid_certificate_for_the_mx_name() {
    let ca = Ca::new();
    let web = cert(&["mta-sts.sts.test", "mta-sts.stsok.test"], Some(&ca));
    let self_signed = cert(&["mx.sts.test"], None);
    let valid = cert(&["mx.stsok.test"], Some(&ca));
    let policy_id = "v=STSv1; id=20261204;";
    let dns = TestDns::start(&[
        // Both ask for TLS reports: sts.test by HTTPS, stsok.test by mail.
        (
            "sts.test.insecure.zone",
            zone(
                "sts.test",
                &format!(
                    "@ MX 10 mx\nmx A 127.0.3.1\nmta-sts A 127.0.3.3\n_mta-sts TXT \"{policy_id}\"\n_smtp._tls TXT \"v=TLSRPTv1; rua=https://mta-sts.sts.test/tlsrpt\""
                ),
            ),
        ),
        (
            "stsok.test.insecure.zone",
            zone(
                "stsok.test",
                &format!(
                    "@ MX 10 mx\nmx A 127.0.3.2\nmta-sts A 127.0.3.3\n_mta-sts TXT \"{policy_id}\"\n_smtp._tls TXT \"v=TLSRPTv1; rua=mailto:tlsrpt@stsok.test\""
                ),
            ),
        ),
    ]);
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join(".well-known")).unwrap();
    std::fs::write(root.path().join(".well-known/mta-sts.txt"), "version: STSv1\r\nmode: enforce\r\nmx: mx.sts.test\r\nmx: *.stsok.test\r\nmax_age: 86400\r\n").unwrap();
    let https = https_server("127.0.3.3", root.path(), &web);
    let mx_bad = Mx::start("127.0.3.1", Some(&self_signed), None);
    let mx_ok = Mx::start("127.0.3.2", Some(&valid), None);
    let (d, _dir) = delivery(&dns, &format!("mta_sts_ca = \"{}\"", ca.pem.display())).await;
    let msg = message("sts");

    let deferred = d
        .deliver_domain(
            "sts.test",
            "a@sender.example",
            &rcpts(&["x@sts.test"]),
            &msg,
        )
        .await;
    assert_eq!(deferred.results[0].fate, Fate::Deferred, "{deferred:?}");
    assert!(
        deferred.results[0].reply.contains("TLS required (MTA-STS)"),
        "{deferred:?}"
    );
    assert!(
        mx_bad.received().is_empty(),
        "nothing sent to an MX whose certificate does not verify"
    );

    let ok = d
        .deliver_domain(
            "stsok.test",
            "a@sender.example",
            &rcpts(&["x@stsok.test"]),
            &msg,
        )
        .await;
    assert_eq!(ok.results[0].fate, Fate::Delivered, "{ok:?}");
    assert!(
        ok.tls.as_deref().is_some_and(|t| t.ends_with("(MTA-STS)")),
        "{:?}",
        ok.tls
    );
    assert_eq!(mx_ok.received().len(), 1);

    // The policy is cached with its id: a second delivery needs no HTTPS server.
    drop(https);
    let cached = d
        .store
        .mta_sts_get("stsok.test")
        .await
        .unwrap()
        .expect("cached");
    assert_eq!(cached.id, "20261204");
    // (A delivery of its own: the first one's session, still open, would carry it without a lookup.)
    let d2 = Delivery::new(d.config.clone(), d.store.clone()).unwrap();
    let again = d2
        .deliver_domain(
            "stsok.test",
            "a@sender.example",
            &rcpts(&["y@stsok.test"]),
            &msg,
        )
        .await;
    assert!(
        again
            .tls
            .as_deref()
            .is_some_and(|t| t.ends_with("(MTA-STS)")),
        "{again:?}"
    );

    // TLS-RPT: the day's report to each domain that asks, once.
    let _https = https_server("127.0.3.3", root.path(), &web);
    let today = sponts::clock::now_us().div_euclid(86_400_000_000);
    let sent = tls_report::send_day(&d, today).await.unwrap();
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert!(sent.iter().all(|s| s.result.is_ok()), "{sent:?}");
    assert!(
        tls_report::send_day(&d, today).await.unwrap().is_empty(),
        "each domain's report is sent once"
    );
    // sts.test's, POSTed: one session that failed validation at mx.sts.test, none that succeeded.
    assert_eq!(
        std::fs::read_to_string(root.path().join("posted/0.type")).unwrap(),
        "application/tlsrpt+gzip"
    );
    let report = tlsrpt(
        &std::fs::read(root.path().join("posted/0.bin")).unwrap(),
        false,
    );
    assert_eq!(
        report["policies"][0]["policy"]["policy-type"], "sts",
        "{report}"
    );
    assert_eq!(
        report["policies"][0]["policy"]["policy-domain"], "sts.test",
        "{report}"
    );
    assert_eq!(
        report["policies"][0]["summary"]["total-successful-session-count"], 0,
        "{report}"
    );
    assert_eq!(
        report["policies"][0]["summary"]["total-failure-session-count"], 1,
        "{report}"
    );
    assert_eq!(
        report["policies"][0]["failure-details"][0]["result-type"], "validation-failure",
        "{report}"
    );
    assert_eq!(
        report["policies"][0]["failure-details"][0]["receiving-mx-hostname"], "mx.sts.test",
        "{report}"
    );
    // stsok.test's, queued as a report mail to its address: two TLS sessions, both fine.
    let queued = d
        .store
        .queue_list(None)
        .await
        .unwrap()
        .into_iter()
        .find(|q| q.pending.iter().any(|p| p == "tlsrpt@stsok.test"))
        .expect("report mail queued");
    let body = d.store.queued_body(&queued.id).await.unwrap().unwrap();
    let mail = zstd::bulk::decompress(&body, queued.size as usize).unwrap();
    let report = tlsrpt(&mail, true);
    assert_eq!(
        report["policies"][0]["policy"]["policy-domain"], "stsok.test",
        "{report}"
    );
    assert_eq!(
        report["policies"][0]["summary"]["total-successful-session-count"], 2,
        "{report}"
    );
    assert!(
        report["policies"][0]["policy"]["mx-host"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h == "*.stsok.test"),
        "{report}"
    );
    assert_eq!(
        report["contact-info"], "postmaster@localhost",
        "the first of domains.local: {report}"
    );
}

/// The HTTPS server of scripts/peers/https_static.py on ADDR:443.
fn https_server(addr: &str, root: &Path, cert: &Cert) -> Peer {
    let mut https = Peer(
        Command::new("/usr/bin/python3")
            .arg(script("https_static.py"))
            .args(["--addr", addr, "--root"])
            .arg(root)
            .arg("--cert")
            .arg(&cert.cert)
            .arg("--key")
            .arg(&cert.key)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut line = String::new();
    BufReader::new(https.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.starts_with("HTTPS_READY"), "{line}");
    https
}

/// A TLS report's JSON as Python's gzip and json read it — from a report mail (Python's email
/// finds the application/tlsrpt+gzip part of the multipart/report) or a POSTed body.
fn tlsrpt(data: &[u8], mail: bool) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r");
    std::fs::write(&path, data).unwrap();
    let script = r#"
import email, email.policy, gzip, json, sys
data = open(sys.argv[1], 'rb').read()
if sys.argv[2] == 'mail':
    m = email.message_from_bytes(data, policy=email.policy.default)
    assert m.get_content_type() == 'multipart/report' and m.get_param('report-type') == 'tlsrpt', m['Content-Type']
    assert m['TLS-Report-Domain'] and m['TLS-Report-Submitter'] and m['Subject'].startswith('Report Domain: '), str(m)
    parts = [p for p in m.walk() if p.get_content_type() == 'application/tlsrpt+gzip']
    assert len(parts) == 1 and parts[0].get_filename().endswith('.json.gz'), str(m)
    data = parts[0].get_content()
print(json.dumps(json.loads(gzip.decompress(data))))
"#;
    let out = Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(script)
        .arg(&path)
        .arg(if mail { "mail" } else { "post" })
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn destination_overrides_require_or_refuse_tls() {
    let self_signed = cert(&["mx.partner.test"], None);
    let dns = TestDns::start(&[
        (
            "partner.test.insecure.zone",
            zone("partner.test", "@ MX 10 mx\nmx A 127.0.4.1"),
        ),
        (
            "broken.test.insecure.zone",
            zone("broken.test", "@ MX 10 mx\nmx A 127.0.4.1"),
        ),
    ]);
    let mx = Mx::start("127.0.4.1", Some(&self_signed), None);
    let (d, _dir) = delivery(&dns, "[outbound.destinations.\"partner.test\"]\ntls = \"require\"\n[outbound.destinations.\"broken.test\"]\ntls = \"never\"").await;
    let msg = message("override");
    let r = d
        .deliver_domain(
            "partner.test",
            "a@sender.example",
            &rcpts(&["x@partner.test"]),
            &msg,
        )
        .await;
    assert_eq!(
        r.results[0].fate,
        Fate::Deferred,
        "a self-signed certificate does not satisfy tls = require: {r:?}"
    );
    assert!(mx.received().is_empty());
    let r = d
        .deliver_domain(
            "broken.test",
            "a@sender.example",
            &rcpts(&["x@broken.test"]),
            &msg,
        )
        .await;
    assert_eq!(r.results[0].fate, Fate::Delivered, "{r:?}");
    assert_eq!(
        mx.received()[0].0["tls"],
        false,
        "tls = never: plain SMTP although STARTTLS is offered"
    );
}

/// Queues an outbound message the way acceptance does: every recipient routed to its MX, the
/// arrival a few seconds back (the runners wait 2 s for the accepting session's journal record).
async fn enqueue(store: &sponts::storage::Store, id: &str, sender: &str, to: &[&str], msg: &[u8]) {
    let z = sponts::modules::backup::compress(msg, 3).unwrap();
    let rcpts: Vec<(String, Route)> = to.iter().map(|a| (a.to_string(), Route::Mx)).collect();
    let m = NewQueued {
        id,
        time_us: sponts::clock::now_us() - 3_000_000,
        sender,
        size: msg.len() as i64,
        compressed: &z,
        rcpts: &rcpts,
        outbound: true,
        held: "",
    };
    store.enqueue_routed(&m).await.unwrap();
}

async fn wait_until<F: std::future::Future<Output = bool>>(
    what: &str,
    secs: u64,
    mut check: impl FnMut() -> F,
) {
    for _ in 0..secs * 10 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("not within {secs} s: {what}");
}

#[tokio::test(flavor = "multi_thread")]
async fn queued_mail_is_delivered_per_domain_retried_and_returned_with_delay_and_final_dsns() {
    let dns = TestDns::start(&[
        (
            "ok.test.zone",
            zone("ok.test", "@ MX 10 mx\nmx A 127.0.5.1"),
        ),
        (
            "down.test.zone",
            zone("down.test", "@ MX 10 mx\nmx A 127.0.5.2"),
        ),
    ]);
    let mx = Mx::start("127.0.5.1", None, None);
    // The organisation's mail server, which gets the DSNs for its sender.
    let backend = common::Capture::start(Default::default()).await;
    let extra = format!(
        "[queue]\nprobe = \"1s\"\n[outbound]\nresolver = \"{}\"\nretry = \"1s\"\nmax_retry = \"1s\"\ndelay_dsn_after = \"3s\"\nlifetime = \"15s\"\n",
        dns.resolver
    );
    let (config, dir) = common::config(backend.addr, &extra);
    let gw = common::start_with(config, dir).await;
    // The admin signs in first: the checks below must fit in the message's lifetime.
    let admin = common::signed_in_admin(&gw).await;
    let msg = message("queued");
    enqueue(
        &gw.store,
        "OUT1",
        "user@example.org",
        &["a@ok.test", "b@ok.test", "c@down.test"],
        &msg,
    )
    .await;

    wait_until("ok.test's MX has the message", 20, || async {
        !mx.received().is_empty()
    })
    .await;
    let got = mx.received();
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0].0["rcpt_tos"],
        serde_json::json!(["a@ok.test", "b@ok.test"]),
        "one session for the domain's two recipients"
    );
    assert_eq!(got[0].0["mail_from"], "user@example.org");
    // Each recipient's last reply is kept; the one whose MX is down waits for another try.
    let mut attempts = 0;
    wait_until("c@down.test was tried twice", 20, || {
        let store = gw.store.clone();
        async move {
            store
                .queue_list(Some("OUT1"))
                .await
                .unwrap()
                .pop()
                .is_some_and(|q| q.attempts >= 2)
        }
    })
    .await;
    let routes = gw.store.queue_routes("OUT1").await.unwrap();
    for (address, _, done, reply) in &routes {
        if address.ends_with("@ok.test") {
            assert!(*done && reply.starts_with("250 "), "{routes:?}");
        } else {
            assert!(
                !*done && reply.starts_with("451 4.4.1 mx.down.test[127.0.5.2]"),
                "{routes:?}"
            );
            attempts += 1;
        }
    }
    assert_eq!(attempts, 1);
    // The admin sees it by destination with its last error: `sponts queue list` and the queue page.
    let mut listing = Vec::new();
    sponts::cli::queue::list(&gw.store, false, &mut listing)
        .await
        .unwrap();
    let listing = String::from_utf8(listing).unwrap();
    let line = listing
        .lines()
        .find(|l| l.starts_with("down.test "))
        .unwrap_or_else(|| panic!("{listing}"));
    assert!(line.contains("451 4.4.1 mx.down.test[127.0.5.2]"), "{line}");
    assert!(
        !listing.lines().any(|l| l.starts_with("ok.test ")),
        "delivered mail no longer waits: {listing}"
    );
    let page = common::http::request(
        gw.web,
        "GET",
        "/admin/queue",
        &[("Cookie", &admin.cookie)],
        None,
    )
    .await
    .text();
    let row = page
        .split("<tr class=\"outbound-destination\">")
        .nth(1)
        .unwrap_or_else(|| panic!("{page}"));
    assert!(
        row.starts_with("<td>down.test</td><td>1</td><td>1</td>")
            && row.contains("451 4.4.1 mx.down.test[127.0.5.2]"),
        "{row}"
    );

    // Past delay_dsn_after: one delay notice; past the lifetime: the final DSN, and the message is out.
    wait_until("both DSNs reached the sender's mail server", 30, || async {
        backend.deliveries().len() >= 2
    })
    .await;
    wait_until("the message left the queue", 10, || {
        let store = gw.store.clone();
        async move { store.queue_list(Some("OUT1")).await.unwrap().is_empty() }
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let dsns = backend.deliveries();
    assert_eq!(dsns.len(), 2, "one delay notice, one final DSN: {dsns:?}");
    let delay = String::from_utf8_lossy(&dsns[0].data).to_string();
    let failed = String::from_utf8_lossy(&dsns[1].data).to_string();
    assert!(
        dsns[0].mail.starts_with("<>"),
        "DSNs come from the null sender: {}",
        dsns[0].mail
    );
    assert_eq!(dsns[0].rcpts, vec!["user@example.org".to_string()]);
    assert!(
        delay.contains("Subject: Delayed Mail")
            && delay.contains(
                "Final-Recipient: rfc822; c@down.test\r\nAction: delayed\r\nStatus: 4.4.1"
            ),
        "{delay}"
    );
    assert!(
        failed.contains("Action: failed")
            && failed.contains("c@down.test")
            && failed.contains("given up after 15s"),
        "{failed}"
    );
    assert!(
        !failed.contains("a@ok.test"),
        "delivered recipients are not in the DSN"
    );
    assert_eq!(mx.received().len(), 1, "nothing delivered twice");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_during_delivery_loses_nothing_and_sends_once() {
    let dns = TestDns::start(&[(
        "slow.test.zone",
        zone("slow.test", "@ MX 10 mx\nmx A 127.0.6.1"),
    )]);
    // An MX that thinks 3 s about each recipient: sponts is killed while it waits.
    let mx = Mx::start_with("127.0.6.1", None, None, 3.0);
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("sponts.toml");
    std::fs::write(
        &cfg,
        format!(
            "[smtp]\nlisten = [\"127.0.0.1:0\"]\nhostname = \"gw.test.example\"\n[web]\nenabled = false\n[pop3]\nenabled = false\n[backend]\naddress = \"127.0.0.1:9\"\n[report]\nmail = \"off\"\n[storage]\ndata_dir = \"{}\"\n[outbound]\nresolver = \"{}\"\nretry = \"1s\"\n",
            dir.path().display(),
            dns.resolver
        ),
    )
    .unwrap();
    let config = sponts::config::Config::load(&cfg).unwrap();
    let store = sponts::storage::Store::open(&config.storage.database_location())
        .await
        .unwrap();
    enqueue(
        &store,
        "KILL1",
        "user@example.org",
        &["x@slow.test"],
        &message("kill"),
    )
    .await;
    let serve = || {
        Peer(
            Command::new(env!("CARGO_BIN_EXE_sponts"))
                .args(["serve", "--config"])
                .arg(&cfg)
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        )
    };

    let mut first = serve();
    wait_until("sponts reached RCPT", 30, || async {
        mx.dir.path().join("rcpt-seen").exists()
    })
    .await;
    first.0.kill().unwrap(); // SIGKILL, mid-session
    first.0.wait().unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(
        mx.received().is_empty(),
        "the transaction was cut before DATA"
    );
    assert_eq!(
        store.queue_list(Some("KILL1")).await.unwrap().len(),
        1,
        "still queued"
    );

    // Started again: the dead process's lease runs out and the mail goes, once.
    let _second = serve();
    wait_until("delivered after the restart", 90, || async {
        !mx.received().is_empty()
    })
    .await;
    wait_until("the message left the queue", 10, || {
        let store = store.clone();
        async move { store.queue_list(Some("KILL1")).await.unwrap().is_empty() }
    })
    .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let got = mx.received();
    assert_eq!(got.len(), 1, "sent once: {got:?}");
    assert_eq!(got[0].0["rcpt_tos"], serde_json::json!(["x@slow.test"]));
}

/// A Postfix instance from `scripts/peers/postfix_relay_start.sh` (it relays everything it gets
/// to `relayhost`), stopped on drop.
struct Postfix {
    dir: tempfile::TempDir,
}

impl Postfix {
    fn start(listen: &str, relayhost: std::net::SocketAddr, tls: bool) -> Postfix {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("bash")
            .arg(script("postfix_relay_start.sh"))
            .arg(listen)
            .arg(relayhost.to_string())
            .arg(dir.path())
            .env("POSTFIX_TLS", if tls { "1" } else { "0" })
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "postfix: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Postfix { dir }
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(script("postfix_relay_stop.sh"))
            .arg(self.dir.path())
            .output();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn postfix_relayhost_to_sponts_to_the_mx_a_receiving_postfix_dkim_signed() {
    // An address of its own: a Postfix is a daemon, and one left behind by a killed run would
    // hold a fixed address's port 25.
    let mx_ip = common::dead_address().ip();
    let dns = TestDns::start(&[(
        "far.test.zone",
        zone("far.test", &format!("@ MX 10 mx\nmx A {mx_ip}")),
    )]);
    // The receiving side: a Postfix on far.test's MX (STARTTLS offered), handing on to a capture.
    let inbox = common::Capture::start(Default::default()).await;
    let _mx = Postfix::start(&format!("{mx_ip}:25"), inbox.addr, true);
    let backend = common::Capture::start(Default::default()).await;
    let (config, dir) = common::config(
        backend.addr,
        &format!(
            "[smtp]\nrelay_networks = [\"127.0.0.0/8\"]\n[outbound]\nresolver = \"{}\"\n",
            dns.resolver
        ),
    );
    let gw = common::start_with(config, dir).await;
    // example.org's first DKIM key signs at once; its record as `sponts dkim keygen` prints it.
    let key = sponts::dkim::manage::keygen(
        &gw.store,
        "example.org",
        Some("s2026"),
        sponts::dkim::Algorithm::Rsa,
    )
    .await
    .unwrap();
    let record = sponts::dkim::record::zone_line(
        &key.selector,
        &key.domain,
        sponts::dkim::Algorithm::Rsa,
        &key.public_key,
    );
    // The organisation's mail server, with sponts as its relayhost.
    let listen = common::dead_address().to_string();
    let _server = Postfix::start(&listen, gw.addr, false);
    let out = Command::new("/usr/bin/swaks")
        .args([
            "--server",
            &listen,
            "--from",
            "alice@example.org",
            "--to",
            "bob@far.test,carol@far.test",
            "--header",
            "Subject: to the internet",
            "--body",
            "across",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    wait_until("the far side's mail server has it", 60, || async {
        !inbox.deliveries().is_empty()
    })
    .await;
    let got = inbox.deliveries();
    assert_eq!(got.len(), 1, "both recipients in one delivery: {got:?}");
    let mut rcpts = got[0].rcpts.clone();
    rcpts.sort();
    assert_eq!(rcpts, vec!["bob@far.test", "carol@far.test"]);
    let text = String::from_utf8_lossy(&got[0].data).to_string();
    assert!(
        text.contains("Subject: to the internet") && text.contains("by gw.test.example"),
        "through sponts: {text}"
    );
    assert!(
        text.contains("ESMTPS"),
        "the receiving Postfix logged TLS on the hop from sponts: {text}"
    );
    // Signed by sponts, and the signature survives the way: dkimpy verifies what the far side got.
    assert_eq!(
        common::dkimpy::dkimpy(&got[0].data, &[&record]),
        vec![("example.org".to_string(), "s2026".to_string(), true)],
        "{text}"
    );
    assert!(
        backend
            .deliveries()
            .iter()
            .all(|d| d.rcpts.iter().all(|r| !r.ends_with("@far.test"))),
        "nothing to the backend"
    );
    // The journal record of the transaction takes the final outcome once the queue is through.
    wait_until("the journal says delivered", 20, || {
        let store = gw.store.clone();
        async move {
            store
                .query_journal(&Default::default())
                .await
                .unwrap()
                .iter()
                .any(|e| e.outbound && e.outcome == "delivered")
        }
    })
    .await;
    assert!(gw.store.queue_list(None).await.unwrap().is_empty());
    gw.stop().await;
}
