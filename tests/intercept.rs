//! Lawful interception, the groundwork: the interception role is separate from admins and users
//! (an officer sees no mail; admins cannot see or change officers), orders are made, listed and
//! ended from the CLI, and every action goes into an audit log whose hash chain `sponts audit
//! verify` checks — a changed or removed row is found, on SQLite and PostgreSQL.

mod common;

/// The officer signs in with a password only here: the second factor is tests/twofactor.rs's.
const NO_SECOND_FACTOR: &str = "[web]\nrequire_2fa_for = []\n";

use common::agency::{Agency, Pki};
use common::http::{login, request};
use common::*;
use mail_parser::MimeHeaders;
use std::io::Write;
use std::process::{Command, Stdio};

fn sponts(cfg: &std::path::Path, args: &[&str], stdin: Option<&str>) -> (bool, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sponts"))
        .args(args)
        .env("SPONTS_CONFIG", cfg)
        // The account behind sudo, as the audit log names it ($USER is never trusted).
        .env("SUDO_USER", "officer")
        .env("USER", "mallory")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(text) = stdin {
        writeln!(child.stdin.take().unwrap(), "{text}").unwrap();
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

async fn tamper(store: &sponts::storage::Store, sql: &str) {
    match store {
        sponts::storage::Store::Sqlite(p) => drop(
            sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
                .execute(p)
                .await
                .unwrap(),
        ),
        sponts::storage::Store::Postgres(p) => drop(
            sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
                .execute(p)
                .await
                .unwrap(),
        ),
    }
}

#[tokio::test]
async fn the_audit_chain_finds_a_changed_or_removed_row_on_sqlite_and_postgres() {
    let db = common::pg::TestDb::create().await;
    let dir = tempfile::tempdir().unwrap();
    for location in [
        sponts::config::DatabaseLocation::Sqlite(dir.path().join("s.db")),
        sponts::config::DatabaseLocation::Postgres(db.url.clone()),
    ] {
        let store = sponts::storage::Store::open(&location).await.unwrap();
        // Appends from several tasks at once still make one chain.
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..12 {
            let store = store.clone();
            tasks.spawn(async move {
                store
                    .audit(
                        "cli:test",
                        "order.add",
                        &format!("order {i}\nwith a line break"),
                    )
                    .await
                    .unwrap()
            });
        }
        while tasks.join_next().await.is_some() {}
        let log = store.audit_log().await.unwrap();
        assert_eq!(sponts::storage::intercept::verify(&log), Ok(12));
        tamper(
            &store,
            "UPDATE intercept_audit SET detail = 'order 99' WHERE seq = 5",
        )
        .await;
        assert_eq!(
            sponts::storage::intercept::verify(&store.audit_log().await.unwrap())
                .unwrap_err()
                .0,
            5
        );
        tamper(
            &store,
            &format!(
                "UPDATE intercept_audit SET detail = '{}' WHERE seq = 5",
                log[4].detail.replace('\'', "''")
            ),
        )
        .await;
        assert_eq!(
            sponts::storage::intercept::verify(&store.audit_log().await.unwrap()),
            Ok(12),
            "restored"
        );
        tamper(&store, "DELETE FROM intercept_audit WHERE seq = 9").await;
        assert_eq!(
            sponts::storage::intercept::verify(&store.audit_log().await.unwrap())
                .unwrap_err()
                .0,
            9
        );
        store.close().await;
    }
    db.drop_db().await;
}

#[tokio::test]
async fn orders_from_the_cli_and_the_audit_log() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("sponts.toml");
    std::fs::write(
        &cfg,
        format!(
            "[storage]\ndata_dir = \"{}\"\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let (ok, out) = tokio::task::spawn_blocking({
        let cfg = cfg.clone();
        move || {
            sponts(
                &cfg,
                &[
                    "user",
                    "add",
                    "officer@example.org",
                    "--interception",
                    "--password-stdin",
                ],
                Some("an officer's password"),
            )
        }
    })
    .await
    .unwrap();
    assert!(
        ok && out.contains("added interception officer@example.org"),
        "{out}"
    );
    let run = |args: Vec<&'static str>| {
        let cfg = cfg.clone();
        tokio::task::spawn_blocking(move || sponts(&cfg, &args, None))
    };
    let (ok, out) = run(vec![
        "intercept",
        "add",
        "--reference",
        "AG Musterstadt 12 Gs 345/26",
        "--target",
        "Target@Example.org",
        "--until",
        "2099-01-01",
        "--deliver",
        "smtp://li.agency.example:25",
        "--deliver-to",
        "li@agency.example",
    ])
    .await
    .unwrap();
    assert!(ok, "{out}");
    let id = out.split_whitespace().nth(1).unwrap().to_string();
    let (ok, out) = run(vec!["intercept", "list"]).await.unwrap();
    assert!(
        ok && out.contains(&id) && out.contains("active") && out.contains("target@example.org"),
        "{out}"
    );
    // Bad orders are refused with the option named.
    for (args, named) in [
        (
            vec![
                "intercept",
                "add",
                "--reference",
                "R",
                "--target",
                "t@example.org",
                "--until",
                "2020-01-01",
                "--deliver",
                "dir:/tmp/li",
            ],
            "--until",
        ),
        (
            vec![
                "intercept",
                "add",
                "--reference",
                "R",
                "--target",
                "nobody",
                "--until",
                "2099-01-01",
                "--deliver",
                "dir:/tmp/li",
            ],
            "--target",
        ),
        (
            vec![
                "intercept",
                "add",
                "--reference",
                "R",
                "--target",
                "t@example.org",
                "--until",
                "2099-01-01",
                "--deliver",
                "smtp://li.agency.example:25",
            ],
            "--deliver-to",
        ),
        (
            vec![
                "intercept",
                "add",
                "--reference",
                "R",
                "--target",
                "t@example.org",
                "--until",
                "soon",
                "--deliver",
                "dir:/tmp/li",
            ],
            "--until",
        ),
    ] {
        let (ok, out) = run(args).await.unwrap();
        assert!(!ok && out.contains(named), "{named}: {out}");
    }
    let id2: &'static str = Box::leak(id.clone().into_boxed_str());
    let (ok, out) = run(vec!["intercept", "until", id2, "2098-01-01"])
        .await
        .unwrap();
    assert!(ok && out.contains("now ends at 2098-01-01"), "{out}");
    let (ok, out) = run(vec!["intercept", "until", id2, "2020-01-01"])
        .await
        .unwrap();
    assert!(!ok && out.contains("--until"), "{out}");
    let (ok, out) = run(vec!["intercept", "copies", id2]).await.unwrap();
    assert!(ok && out.is_empty(), "no copies yet: {out}");
    let (ok, out) = run(vec!["intercept", "end", id2]).await.unwrap();
    assert!(ok && out.contains("ended"), "{out}");
    let (ok, _) = run(vec!["intercept", "end", id2]).await.unwrap();
    assert!(!ok, "an ended order cannot end again");
    let (ok, out) = run(vec!["audit", "verify"]).await.unwrap();
    assert!(ok && out.contains("intact"), "{out}");
    let (ok, log) = run(vec!["audit", "list", "--json"]).await.unwrap();
    assert!(ok);
    let actions: Vec<String> = log
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["action"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        actions,
        [
            "account.add",
            "order.add",
            "order.list",
            "order.until",
            "copies.list",
            "order.end",
            "audit.verify",
            "audit.list"
        ],
        "every action, reading included"
    );
    // The session's login account when the kernel knows one (sudo keeps it), else SUDO_USER.
    let login = std::fs::read_to_string("/proc/self/loginuid")
        .ok()
        .filter(|u| u.trim() != "4294967295");
    assert!(
        login.is_some() || log.contains("cli:officer"),
        "who did it: {log}"
    );
    assert!(
        !log.contains("cli:mallory"),
        "$USER is not who did it: {log}"
    );
    // A changed row is found and named.
    let store = sponts::storage::Store::open(&sponts::config::DatabaseLocation::Sqlite(
        dir.path().join("data/sponts.db"),
    ))
    .await
    .unwrap();
    tamper(
        &store,
        "UPDATE intercept_audit SET actor = 'cli:someone-else' WHERE seq = 2",
    )
    .await;
    store.close().await;
    let (ok, out) = run(vec!["audit", "verify"]).await.unwrap();
    assert!(!ok && out.contains("broken at entry 2"), "{out}");
}

#[tokio::test]
async fn officers_see_no_mail_and_admins_do_not_see_officers() {
    let cap = Capture::start(CaptureOptions::default()).await;
    let gw = gateway(cap.addr, NO_SECOND_FACTOR).await;
    add_user(&gw.store, "admin@example.org", sponts::storage::Role::Admin).await;
    add_user(
        &gw.store,
        "officer@example.org",
        sponts::storage::Role::Interception,
    )
    .await;
    let mut c = Client::connect(gw.addr).await;
    c.expect("EHLO client.test", 250).await;
    assert!(
        c.send_mail(
            "a@partner.example",
            &["officer@example.org"],
            b"Subject: to the officer\r\n\r\nhi\r\n"
        )
        .await
        .starts_with("250")
    );
    c.expect("QUIT", 221).await;
    let officer = login(gw.web, "officer@example.org", PASSWORD)
        .await
        .unwrap();
    let bearer = format!("Bearer {}", officer.token);
    let auth = [("authorization", bearer.as_str())];
    let mut seen = serde_json::Value::Null;
    for _ in 0..50 {
        seen = request(gw.web, "GET", "/api/v1/messages", &auth, None)
            .await
            .json();
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        seen["messages"].as_array().map(Vec::len),
        Some(0),
        "not even mail to their own address: {seen}"
    );
    for path in [
        "/admin/users",
        "/admin/report",
        "/admin/queue",
        "/api/v1/stats",
        "/metrics",
    ] {
        assert_eq!(
            request(gw.web, "GET", path, &auth, None).await.status,
            403,
            "{path}"
        );
    }
    let admin = login(gw.web, "admin@example.org", PASSWORD).await.unwrap();
    let cookie = [("cookie", admin.cookie.as_str())];
    let users = request(gw.web, "GET", "/admin/users", &cookie, None)
        .await
        .text();
    assert!(
        !users.contains("officer@example.org"),
        "admins do not see officers"
    );
    let admin_mail = request(
        gw.web,
        "GET",
        "/api/v1/messages",
        &[("authorization", &format!("Bearer {}", admin.token))],
        None,
    )
    .await
    .json();
    assert!(
        admin_mail["messages"].as_array().unwrap().len() == 1,
        "the mail itself is an admin's to see: {admin_mail}"
    );
    for (path, body) in [
        (
            "/admin/users/password",
            format!(
                "csrf={}&address=officer%40example.org&password=taken+over+now",
                admin.csrf
            ),
        ),
        (
            "/admin/users/delete",
            format!("csrf={}&address=officer%40example.org", admin.csrf),
        ),
        (
            "/admin/users/alias",
            format!(
                "csrf={}&address=officer%40example.org&role=ceo%40example.org",
                admin.csrf
            ),
        ),
    ] {
        let r = request(
            gw.web,
            "POST",
            path,
            &cookie,
            Some(("application/x-www-form-urlencoded", body.as_bytes())),
        )
        .await;
        assert!(
            r.header("location").unwrap().contains("error="),
            "{path}: {:?}",
            r.header("location")
        );
    }
    assert!(
        login(gw.web, "officer@example.org", PASSWORD).await.is_ok(),
        "the officer's password is unchanged"
    );
    assert!(
        login(gw.web, "officer@example.org", "taken over now")
            .await
            .is_err()
    );
    gw.stop().await;
}

fn order(
    id: &str,
    target: &str,
    deliver: String,
    deliver_to: Option<&str>,
    from_us: i64,
    until_us: i64,
) -> sponts::storage::intercept::Order {
    sponts::storage::intercept::Order {
        id: id.into(),
        reference: format!("AG Musterstadt {id}"),
        target: target.into(),
        login: None,
        from_us,
        until_us,
        deliver,
        deliver_to: deliver_to.map(str::to_string),
        notes: String::new(),
        created_by: "cli:officer".into(),
        created_us: from_us,
        ended_us: None,
    }
}

/// The attachments of an agency mail by file name.
fn attachments(mail: &[u8]) -> std::collections::HashMap<String, Vec<u8>> {
    let m = mail_parser::MessageParser::default().parse(mail).unwrap();
    m.attachments()
        .filter_map(|a| Some((a.attachment_name()?.to_string(), a.contents().to_vec())))
        .collect()
}

async fn wait_until<F: Fn() -> bool>(what: &str, done: F) {
    for _ in 0..150 {
        if done() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

/// Waits until `n` copies of `order` (or of all orders) are marked delivered: an agency has the
/// mail a moment before sponts has read its reply and written that down.
async fn wait_delivered(store: &sponts::storage::Store, order: Option<&str>, n: usize) {
    let mut delivered = 0;
    for _ in 0..150 {
        delivered = store
            .copies(order, 100)
            .await
            .unwrap()
            .iter()
            .filter(|c| c.state == "delivered")
            .count();
        if delivered >= n {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("{delivered} of {n} copies of {order:?} delivered");
}

#[tokio::test]
async fn a_targets_smtp_transactions_reach_the_agency_and_no_one_elses() {
    let pki = Pki::new();
    let agency = Agency::start(&pki, 0);
    let export = tempfile::tempdir().unwrap();
    let cap = Capture::start(CaptureOptions {
        unknown: ["nobody@example.org".to_string()].into(),
        ..Default::default()
    })
    .await;
    let extra = format!(
        "[intercept]\nagency_ca = \"{}\"\nretry_after = \"1s\"\n[uce]\ntarpit_delay = \"0s\"\ntraps = [\"trap@example.org\"]\n",
        pki.ca.display()
    );
    let gw = gateway(cap.addr, &extra).await;
    let now = sponts::clock::now_us();
    let hour = 3_600_000_000;
    gw.store
        .add_order(&order(
            "LI1",
            "target@example.org",
            format!("smtp://127.0.0.1:{}", agency.port),
            Some("li@agency.example"),
            now - hour,
            now + hour,
        ))
        .await
        .unwrap();
    gw.store
        .add_order(&order(
            "LI2",
            "target@example.org",
            format!("dir:{}", export.path().display()),
            None,
            now - hour,
            now + hour,
        ))
        .await
        .unwrap();
    // Orders outside their window: expired, and not yet begun.
    gw.store
        .add_order(&order(
            "OLD",
            "old@example.org",
            format!("dir:{}", export.path().display()),
            None,
            now - 2 * hour,
            now - hour,
        ))
        .await
        .unwrap();
    gw.store
        .add_order(&order(
            "LATER",
            "later@example.org",
            format!("dir:{}", export.path().display()),
            None,
            now + hour,
            now + 2 * hour,
        ))
        .await
        .unwrap();
    gw.reload_orders().await;

    let from_target: &[u8] = b"From: target@example.org\r\nSubject: out\r\n\r\nfrom the target\r\n";
    let to_target: &[u8] = b"Subject: in\r\n\r\nto the target, and to bob\r\n";
    let spam: &[u8] = b"Subject: trap\r\n\r\nto a trap and the target\r\n";
    let mut c = Client::connect(gw.addr).await;
    c.expect("EHLO client.test", 250).await;
    assert!(
        c.send_mail("Target@Example.org", &["bob@example.org"], from_target)
            .await
            .starts_with("250")
    );
    assert!(
        c.send_mail(
            "a@partner.example",
            &["bob@example.org", "target@example.org"],
            to_target
        )
        .await
        .starts_with("250")
    );
    // Refused at RCPT by the backend: a copy without a message.
    c.expect("MAIL FROM:<target@example.org>", 250).await;
    c.expect("RCPT TO:<nobody@example.org>", 550).await;
    c.expect("RSET", 250).await;
    // Nobody's target, and targets outside their orders' windows.
    for rcpt in ["bob@example.org", "old@example.org", "later@example.org"] {
        assert!(
            c.send_mail(
                "a@partner.example",
                &[rcpt],
                b"Subject: other\r\n\r\nnot intercepted\r\n"
            )
            .await
            .starts_with("250")
        );
    }
    // Discarded (a trap among the recipients; the client is penalized from here on).
    assert!(
        c.send_mail(
            "x@partner.example",
            &["target@example.org", "trap@example.org"],
            spam
        )
        .await
        .starts_with("250")
    );
    c.expect("QUIT", 221).await;

    // Four transactions with the target, each copied for both orders.
    wait_until("the agency's four mails", || agency.received().len() >= 4).await;
    let exported = export.path().join("LI2");
    wait_until("four exported records", || {
        std::fs::read_dir(&exported)
            .map(|d| {
                d.filter(|e| {
                    e.as_ref()
                        .unwrap()
                        .path()
                        .extension()
                        .is_some_and(|x| x == "json")
                })
                .count()
            })
            .unwrap_or(0)
            >= 4
    })
    .await;
    wait_delivered(&gw.store, None, 8).await;
    let received = agency.received();
    assert_eq!(received.len(), 4, "exactly the target's transactions");
    let mut seen = Vec::new();
    for (envelope, mail) in &received {
        assert_eq!(envelope["tls"], true, "over TLS");
        assert_eq!(
            envelope["rcpt_tos"],
            serde_json::json!(["li@agency.example"])
        );
        let parts = attachments(mail);
        let meta: serde_json::Value = serde_json::from_slice(&parts["metadata.json"]).unwrap();
        assert_eq!(meta["order"], "LI1");
        assert_eq!(meta["target"], "target@example.org");
        assert_eq!(meta["service"], "smtp");
        assert_eq!(meta["client"]["address"], "127.0.0.1");
        assert_eq!(meta["server"]["port"], gw.addr.port());
        assert_eq!(meta["details"]["helo"], "client.test");
        if let Some(original) = parts.get("original.eml") {
            assert_eq!(meta["content"]["size"], original.len());
            assert_eq!(
                meta["content"]["sha256"],
                sponts::auth::sha256_hex(original)
            );
        }
        if meta["details"]["outcome"] == "refused" {
            assert_eq!(
                meta["details"]["recipients"][0]["reply"]
                    .as_str()
                    .unwrap()
                    .get(..9),
                Some("550 5.1.1"),
                "{meta}"
            );
        }
        seen.push((
            meta["details"]["outcome"].as_str().unwrap().to_string(),
            meta["direction"].as_str().unwrap().to_string(),
            parts.get("original.eml").cloned(),
        ));
    }
    seen.sort();
    assert_eq!(
        seen,
        vec![
            (
                "delivered".into(),
                "from-target".into(),
                Some(from_target.to_vec())
            ),
            (
                "delivered".into(),
                "to-target".into(),
                Some(to_target.to_vec())
            ),
            ("discarded".into(), "to-target".into(), Some(spam.to_vec())),
            // Its recipient refused, the client reset: no message, the refusal in the record.
            ("refused".into(), "from-target".into(), None),
        ],
        "delivered, discarded and refused alike, the message byte for byte"
    );
    // The export directory: the same four, each .json with its .eml where there was a message.
    let mut emls = 0;
    for e in std::fs::read_dir(&exported).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "json") {
            let meta: serde_json::Value =
                serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
            assert_eq!(meta["order"], "LI2");
            if meta["content"].is_object() {
                let eml = std::fs::read(p.with_extension("eml")).unwrap();
                assert_eq!(meta["content"]["sha256"], sponts::auth::sha256_hex(&eml));
                emls += 1;
            }
        }
    }
    assert_eq!(emls, 3);
    assert!(
        !export.path().join("OLD").exists() && !export.path().join("LATER").exists(),
        "nothing outside an order's window"
    );
    // The copies are in the audit log, the chain intact; the delivered ones keep no message.
    let log = gw.store.audit_log().await.unwrap();
    assert_eq!(log.iter().filter(|e| e.action == "copy.record").count(), 8);
    assert_eq!(log.iter().filter(|e| e.action == "copy.deliver").count(), 8);
    assert!(sponts::storage::intercept::verify(&log).is_ok());
    let copies = gw.store.copies(None, 100).await.unwrap();
    assert!(copies.iter().all(|c| c.state == "delivered"), "{copies:?}");
    // The backend got its mail as always.
    assert_eq!(cap.deliveries().len(), 5);
    gw.stop().await;
}

#[tokio::test]
async fn copies_wait_for_an_agency_that_is_down_or_not_trusted() {
    let pki = Pki::new();
    let stranger = Pki::new();
    let untrusted = Agency::start(&stranger, 0);
    // The agency's script listens on 127.0.0.1 only.
    let port = free_port();
    let cap = Capture::start(CaptureOptions::default()).await;
    let gw = gateway(
        cap.addr,
        &format!(
            "[intercept]\nagency_ca = \"{}\"\nretry_after = \"1s\"\n",
            pki.ca.display()
        ),
    )
    .await;
    let now = sponts::clock::now_us();
    let hour = 3_600_000_000;
    gw.store
        .add_order(&order(
            "DOWN",
            "target@example.org",
            format!("smtp://127.0.0.1:{port}"),
            Some("li@agency.example"),
            now - hour,
            now + hour,
        ))
        .await
        .unwrap();
    gw.store
        .add_order(&order(
            "UNTRUSTED",
            "target@example.org",
            format!("smtp://127.0.0.1:{}", untrusted.port),
            Some("li@agency.example"),
            now - hour,
            now + hour,
        ))
        .await
        .unwrap();
    gw.reload_orders().await;
    let mut c = Client::connect(gw.addr).await;
    c.expect("EHLO client.test", 250).await;
    let message: &[u8] = b"Subject: kept\r\n\r\nfor the target\r\n";
    assert!(
        c.send_mail("a@partner.example", &["target@example.org"], message)
            .await
            .starts_with("250")
    );
    c.expect("QUIT", 221).await;

    let store = gw.store.clone();
    let failed = |order: &'static str| {
        let store = store.clone();
        async move {
            store
                .copies(Some(order), 10)
                .await
                .unwrap()
                .into_iter()
                .find(|c| c.attempts >= 2)
        }
    };
    let mut tries = 0;
    let (down, bad) = loop {
        if let (Some(a), Some(b)) = (failed("DOWN").await, failed("UNTRUSTED").await) {
            break (a, b);
        }
        tries += 1;
        assert!(tries < 100, "both copies are tried twice");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(down.state, "pending");
    assert!(down.last_error.contains("connect"), "{}", down.last_error);
    assert_eq!(bad.state, "pending");
    assert!(
        bad.last_error.to_lowercase().contains("certificate"),
        "an agency whose certificate does not verify gets nothing: {}",
        bad.last_error
    );
    assert!(untrusted.received().is_empty());
    // The agency comes up where the order says: the copy arrives, once.
    let agency = Agency::start(&pki, port);
    wait_delivered(&gw.store, Some("DOWN"), 1).await;
    assert_eq!(agency.received().len(), 1, "once");
    let parts = attachments(&agency.received()[0].1);
    assert_eq!(parts["original.eml"], message);
    gw.stop().await;
}

fn form(pairs: &[(&str, &str)]) -> Vec<u8> {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", url(v)))
        .collect::<Vec<_>>()
        .join("&")
        .into_bytes()
}

fn url(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[tokio::test]
async fn the_interception_pages_are_the_officers_alone() {
    let cap = Capture::start(CaptureOptions::default()).await;
    let gw = gateway(cap.addr, NO_SECOND_FACTOR).await;
    add_user(&gw.store, "admin@example.org", sponts::storage::Role::Admin).await;
    add_user(&gw.store, "user@example.org", sponts::storage::Role::User).await;
    add_user(
        &gw.store,
        "officer@example.org",
        sponts::storage::Role::Interception,
    )
    .await;
    let now = sponts::clock::now_us();
    gw.store
        .add_order(&order(
            "LI9",
            "target@example.org",
            "dir:/tmp/li".into(),
            None,
            now - 1_000_000,
            now + 3_600_000_000,
        ))
        .await
        .unwrap();
    let officer = login(gw.web, "officer@example.org", PASSWORD)
        .await
        .unwrap();
    let admin = login(gw.web, "admin@example.org", PASSWORD).await.unwrap();
    let user = login(gw.web, "user@example.org", PASSWORD).await.unwrap();
    let pages = [
        "/intercept",
        "/intercept/orders/LI9",
        "/intercept/audit",
        "/intercept/audit.csv",
    ];
    // The authorization matrix: only the officer's session opens them.
    for (who, l) in [("admin", &admin), ("user", &user)] {
        for p in pages {
            let r = request(gw.web, "GET", p, &[("cookie", l.cookie.as_str())], None).await;
            assert_eq!(r.status, 403, "{who} {p}");
            assert!(!r.text().contains("target@example.org"), "{who} {p}");
        }
        let r = request(
            gw.web,
            "POST",
            "/intercept/orders/LI9/end",
            &[("cookie", l.cookie.as_str())],
            Some((
                "application/x-www-form-urlencoded",
                &form(&[("csrf", &l.csrf)]),
            )),
        )
        .await;
        assert_eq!(r.status, 403, "{who} cannot end an order");
    }
    for p in pages {
        let r = request(gw.web, "GET", p, &[], None).await;
        assert!(
            r.status == 303 || r.status == 401,
            "anonymous {p}: {}",
            r.status
        );
        let r = request(
            gw.web,
            "GET",
            p,
            &[("cookie", officer.cookie.as_str())],
            None,
        )
        .await;
        assert_eq!(r.status, 200, "officer {p}");
    }
    assert_eq!(gw.store.order("LI9").await.unwrap().unwrap().ended_us, None);
    // An officer's start page is the orders; the mail pages show nothing.
    let r = request(
        gw.web,
        "GET",
        "/",
        &[("cookie", officer.cookie.as_str())],
        None,
    )
    .await;
    assert_eq!(r.header("location"), Some("/intercept"));
    let cookie = [("cookie", officer.cookie.as_str())];
    let post = |path: &'static str, body: Vec<u8>| {
        let cookie = officer.cookie.clone();
        let web = gw.web;
        async move {
            request(
                web,
                "POST",
                path,
                &[("cookie", cookie.as_str())],
                Some(("application/x-www-form-urlencoded", &body)),
            )
            .await
        }
    };
    // Without the CSRF token nothing happens.
    let r = post(
        "/intercept/orders",
        form(&[
            ("reference", "R"),
            ("target", "t@example.org"),
            ("until", "2099-01-01"),
            ("deliver", "dir:/tmp/li"),
        ]),
    )
    .await;
    assert_eq!(r.status, 403);
    // Bad input: the field is named.
    let r = post(
        "/intercept/orders",
        form(&[
            ("csrf", &officer.csrf),
            ("reference", "R"),
            ("target", "t@example.org"),
            ("until", "2020-01-01"),
            ("deliver", "dir:/tmp/li"),
        ]),
    )
    .await;
    assert!(
        r.header("location")
            .unwrap()
            .starts_with("/intercept?error=--until"),
        "{:?}",
        r.header("location")
    );
    let r = post(
        "/intercept/orders",
        form(&[
            ("csrf", &officer.csrf),
            ("reference", "AG X 1/26"),
            ("target", "Web@Example.org"),
            ("until", "2099-01-01"),
            ("deliver", "dir:/tmp/li"),
            ("notes", "<b>by the web</b>"),
        ]),
    )
    .await;
    let location = r.header("location").unwrap().to_string();
    assert!(location.starts_with("/intercept/orders/"), "{location}");
    let id = location
        .trim_start_matches("/intercept/orders/")
        .split('?')
        .next()
        .unwrap()
        .to_string();
    let made = gw.store.order(&id).await.unwrap().unwrap();
    assert_eq!(
        (made.target.as_str(), made.created_by.as_str()),
        ("web@example.org", "web:officer@example.org")
    );
    let page = request(
        gw.web,
        "GET",
        &format!("/intercept/orders/{id}"),
        &cookie,
        None,
    )
    .await
    .text();
    assert!(
        page.contains("&lt;b&gt;by the web&lt;/b&gt;") && page.contains(r#"id="state">active"#),
        "escaped, active"
    );
    let r = post(
        Box::leak(format!("/intercept/orders/{id}/until").into_boxed_str()),
        form(&[("csrf", &officer.csrf), ("until", "2098-06-01")]),
    )
    .await;
    assert!(
        r.header("location").unwrap().contains("msg="),
        "{:?}",
        r.header("location")
    );
    assert_eq!(
        gw.store.order(&id).await.unwrap().unwrap().until_us,
        sponts::clock::parse_date("2098-06-01").unwrap()
    );
    let r = post(
        Box::leak(format!("/intercept/orders/{id}/end").into_boxed_str()),
        form(&[("csrf", &officer.csrf)]),
    )
    .await;
    assert!(r.header("location").unwrap().contains("msg="));
    assert!(
        gw.store
            .order(&id)
            .await
            .unwrap()
            .unwrap()
            .ended_us
            .is_some()
    );
    // The audit log: every view and action, by the web officer; the CSV has them all.
    let audit = request(gw.web, "GET", "/intercept/audit", &cookie, None)
        .await
        .text();
    assert!(audit.contains(r#"data-intact="true""#), "{audit}");
    let csv = request(gw.web, "GET", "/intercept/audit.csv", &cookie, None)
        .await
        .text();
    for action in [
        "order.list",
        "order.read",
        "order.add",
        "order.until",
        "order.end",
        "audit.list",
        "audit.export",
    ] {
        assert!(
            csv.lines()
                .any(|l| l.contains(",web:officer@example.org,")
                    && l.contains(&format!(",{action},"))),
            "{action} in\n{csv}"
        );
    }
    // A changed row shows on the page.
    tamper(
        &gw.store,
        "UPDATE intercept_audit SET detail = 'nothing to see' WHERE action = 'order.end'",
    )
    .await;
    let audit = request(gw.web, "GET", "/intercept/audit", &cookie, None)
        .await
        .text();
    assert!(audit.contains(r#"data-intact="false""#), "{audit}");
    gw.stop().await;
}

#[tokio::test]
async fn an_officer_makes_and_ends_an_order_in_chromium() {
    let cap = Capture::start(CaptureOptions::default()).await;
    let gw = gateway(cap.addr, NO_SECOND_FACTOR).await;
    add_user(
        &gw.store,
        "officer@example.org",
        sponts::storage::Role::Interception,
    )
    .await;
    let export = tempfile::tempdir().unwrap();
    let b = common::browser::Browser::start().await;
    b.window(1280, 1200).await;
    let base = format!("http://{}", gw.web);
    b.goto(&format!("{base}/login")).await;
    b.type_into("#username", "officer@example.org").await;
    b.type_into("#password", PASSWORD).await;
    b.click("button[type=submit]").await;
    b.find("#new-order").await;
    assert_eq!(
        b.count("nav a[href='/admin/users']").await + b.count("nav a[href='/']").await,
        0,
        "no mail or admin links"
    );
    b.type_into("#reference", "AG Musterstadt 3 Gs 7/26").await;
    b.type_into("#target", "target@example.org").await;
    b.type_into("#until", "2099-01-01").await;
    b.type_into("#deliver", &format!("dir:{}", export.path().display()))
        .await;
    b.click("#new-order button[type=submit]").await;
    b.find("#copies").await;
    assert_eq!(b.text("#state").await, "active");
    // A mail to the target while the order runs (once the refresh has read it): its copy shows
    // as delivered.
    gw.wait_orders("target@example.org", 1).await;
    let mut c = Client::connect(gw.addr).await;
    c.expect("EHLO client.test", 250).await;
    assert!(
        c.send_mail(
            "a@partner.example",
            &["target@example.org"],
            b"Subject: hi\r\n\r\nx\r\n"
        )
        .await
        .starts_with("250")
    );
    c.expect("QUIT", 221).await;
    let page = b.url().await;
    let mut delivered = 0;
    for _ in 0..150 {
        b.goto(&page).await;
        delivered = b.count("#copies tr[data-state=delivered]").await;
        if delivered == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(delivered, 1);
    b.screenshot("intercept-order").await;
    b.click("#end-now button").await;
    // The page already shows a notice (from making the order): wait for the new one.
    for _ in 0..100 {
        if b.count("#notice").await == 1 && b.text("#notice").await == "The order was ended." {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(b.text("#notice").await, "The order was ended.");
    assert_eq!(b.text("#state").await, "ended");
    b.click("nav a[href='/intercept/audit']").await;
    b.find("#verification").await;
    assert!(
        b.text("#verification")
            .await
            .starts_with("The chain is intact")
    );
    assert!(b.count("#audit tbody tr").await >= 6);
    b.screenshot("intercept-audit").await;
    b.quit().await;
    gw.stop().await;
}

#[tokio::test]
async fn two_nodes_on_postgres_record_and_deliver_each_copy_once() {
    let db = common::pg::TestDb::create().await;
    let export = tempfile::tempdir().unwrap();
    let cap = Capture::start(CaptureOptions::default()).await;
    let extra = format!(
        "[storage]\ndatabase = \"{}\"\n[intercept]\nretry_after = \"1s\"\n",
        db.url
    );
    let a = gateway(cap.addr, &extra).await;
    let b = gateway(cap.addr, &extra).await;
    let now = sponts::clock::now_us();
    a.store
        .add_order(&order(
            "PG1",
            "target@example.org",
            format!("dir:{}", export.path().display()),
            None,
            now - 1_000_000,
            now + 3_600_000_000,
        ))
        .await
        .unwrap();
    // Node a reads it now; node b through its refresh from the shared database.
    a.reload_orders().await;
    b.wait_orders("target@example.org", 1).await;
    let mut sent = Vec::new();
    for (i, node) in [&a, &b, &a, &b, &a, &b].iter().enumerate() {
        let mut c = Client::connect(node.addr).await;
        c.expect("EHLO client.test", 250).await;
        let r = c
            .send_mail(
                "a@partner.example",
                &["target@example.org"],
                format!("Subject: {i}\r\n\r\nmessage {i}\r\n").as_bytes(),
            )
            .await;
        assert!(r.starts_with("250"), "{r}");
        sent.push(reply_id(&r));
        c.expect("QUIT", 221).await;
    }
    let dir = export.path().join("PG1");
    wait_until("six exported copies", || {
        std::fs::read_dir(&dir)
            .map(|d| {
                d.flatten()
                    .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
                    .count()
            })
            .unwrap_or(0)
            == 6
    })
    .await;
    let mut sessions: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .map(|e| {
            serde_json::from_slice::<serde_json::Value>(&std::fs::read(e.path()).unwrap()).unwrap()
                ["session"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    sessions.sort();
    sent.sort();
    assert_eq!(sessions, sent, "each transaction once, from either node");
    wait_delivered(&a.store, Some("PG1"), 6).await;
    let log = a.store.audit_log().await.unwrap();
    assert_eq!(
        sponts::storage::intercept::verify(&log),
        Ok(12),
        "one chain: six records, six deliveries"
    );
    a.stop().await;
    b.stop().await;
    db.drop_db().await;
}

#[tokio::test]
async fn copies_of_the_last_transactions_are_recorded_before_shutdown() {
    let export = tempfile::tempdir().unwrap();
    let cap = Capture::start(CaptureOptions::default()).await;
    let (config, dir) = config(cap.addr, "");
    let gw = start_with(config.clone(), dir).await;
    let now = sponts::clock::now_us();
    gw.store
        .add_order(&order(
            "LAST",
            "target@example.org",
            format!("dir:{}", export.path().display()),
            None,
            now - 1_000_000,
            now + 3_600_000_000,
        ))
        .await
        .unwrap();
    gw.reload_orders().await;
    let mut c = Client::connect(gw.addr).await;
    c.expect("EHLO client.test", 250).await;
    // Large enough that compressing the copies is still going on when the stop comes.
    let body =
        "0123456789abcdef 0123456789abcdef 0123456789abcdef 0123456789abcdef\r\n".repeat(15_000);
    for i in 0..10 {
        let r = c
            .send_mail(
                "a@partner.example",
                &["target@example.org"],
                format!("Subject: {i}\r\n\r\n{body}").as_bytes(),
            )
            .await;
        assert!(r.starts_with("250"), "{r}");
    }
    drop(c);
    // Stopped right after the last reply: the recordings still running are waited for.
    let Gateway { running, dir, .. } = gw;
    running
        .unwrap()
        .stop(std::time::Duration::from_millis(200))
        .await;
    let store = sponts::storage::Store::open(&config.storage.database_location())
        .await
        .unwrap();
    assert_eq!(
        store.copies(Some("LAST"), 100).await.unwrap().len(),
        10,
        "every transaction's copy"
    );
    let log = store.audit_log().await.unwrap();
    assert_eq!(log.iter().filter(|e| e.action == "copy.record").count(), 10);
    store.close().await;
    drop(dir);
}

#[tokio::test]
async fn settling_waits_for_every_recording_in_flight() {
    let cap = Capture::start(CaptureOptions::default()).await;
    let gw = gateway(cap.addr, "").await;
    let export = tempfile::tempdir().unwrap();
    let now = sponts::clock::now_us();
    gw.store
        .add_order(&order(
            "SETTLE",
            "target@example.org",
            format!("dir:{}", export.path().display()),
            None,
            now - 1_000_000,
            now + 3_600_000_000,
        ))
        .await
        .unwrap();
    gw.reload_orders().await;
    let intercept = gw.running.as_ref().unwrap().intercept.clone();
    let orders = intercept.orders_for_addresses(["target@example.org"], now);
    assert_eq!(orders.len(), 1);
    let message = std::sync::Arc::new(
        "a line of a large message to compress\r\n"
            .repeat(50_000)
            .into_bytes(),
    );
    for i in 0..5 {
        let event = sponts::intercept::Event {
            time_us: now,
            service: "pop3",
            kind: "retrieve",
            client: "127.0.0.1:40000".parse().unwrap(),
            server: "127.0.0.1:110".parse().unwrap(),
            session: format!("S{i}"),
            tls: None,
            details: serde_json::json!({}),
            content: Some(message.clone()),
        };
        intercept.spawn_record(orders.clone(), event);
    }
    // Settled means recorded: all five are in the store the moment it returns.
    assert!(intercept.settle(std::time::Duration::from_secs(30)).await);
    assert_eq!(gw.store.copies(Some("SETTLE"), 100).await.unwrap().len(), 5);
    gw.stop().await;
}

const EMERGENCY_POP3: &str = r#"
import poplib, ssl, sys, json
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
port, password = int(sys.argv[1]), sys.argv[2]
out = {}
def session():
    p = poplib.POP3("127.0.0.1", port, timeout=20); p.stls(ctx); return p
p = session()
try:
    p.user("target@example.org"); p.pass_("wrong"); out["wrong"] = "accepted"
except poplib.error_proto as e:
    out["wrong"] = e.args[0].decode()
p = session(); p.user("target@example.org"); p.pass_(password)
out["retr"] = b"\r\n".join(p.retr(1)[1]).decode(); out["top"] = b"\r\n".join(p.top(1, 0)[1]).decode(); p.quit()
p = session(); p.user("other@example.org"); p.pass_(password); out["other"] = b"\r\n".join(p.retr(1)[1]).decode(); p.quit()
print(json.dumps(out))
"#;

#[tokio::test]
async fn a_targets_logins_and_retrievals_at_the_emergency_pop3_are_copied() {
    let export = tempfile::tempdir().unwrap();
    let cap = Capture::start(CaptureOptions::default()).await;
    let gw = gateway(cap.addr, "").await;
    add_user(&gw.store, "target@example.org", sponts::storage::Role::User).await;
    add_user(&gw.store, "other@example.org", sponts::storage::Role::User).await;
    for rcpt in ["target@example.org", "other@example.org"] {
        let mut c = Client::connect(gw.addr).await;
        c.expect("EHLO client.test", 250).await;
        assert!(
            c.send_mail(
                "a@partner.example",
                &[rcpt],
                format!("Subject: for {rcpt}\r\n\r\nhello\r\n").as_bytes()
            )
            .await
            .starts_with("250")
        );
        c.expect("QUIT", 221).await;
    }
    let now = sponts::clock::now_us();
    gw.store
        .add_order(&order(
            "POP",
            "target@example.org",
            format!("dir:{}", export.path().display()),
            None,
            now,
            now + 3_600_000_000,
        ))
        .await
        .unwrap();
    gw.reload_orders().await;
    let mut cmd = Command::new("python3");
    cmd.arg("-c")
        .arg(EMERGENCY_POP3)
        .arg(gw.pop3.port().to_string())
        .arg(PASSWORD);
    let out = output(cmd).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(out["wrong"].as_str().unwrap().starts_with("-ERR"), "{out}");
    assert!(
        out["other"]
            .as_str()
            .unwrap()
            .contains("Subject: for other@example.org"),
        "{out}"
    );

    // Exactly the target's three events, the retrievals with what the client got.
    let dir = export.path().join("POP");
    wait_delivered(&gw.store, Some("POP"), 4).await;
    let mut records: Vec<(serde_json::Value, Option<Vec<u8>>)> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            (
                serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap(),
                std::fs::read(p.with_extension("eml")).ok(),
            )
        })
        .collect();
    records.sort_by_key(|(m, _)| m["time_us"].as_i64());
    let kinds: Vec<String> = records
        .iter()
        .map(|(m, _)| {
            format!(
                "{} {} {}",
                m["service"].as_str().unwrap(),
                m["event"].as_str().unwrap(),
                m["details"]["command"].as_str().unwrap_or("")
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "pop3 login ",
            "pop3 login ",
            "pop3 retrieve RETR 1",
            "pop3 retrieve TOP 1 0"
        ],
        "{records:#?}"
    );
    assert_eq!(records[0].0["details"]["success"], false);
    assert_eq!(records[1].0["details"]["success"], true);
    assert_eq!(records[1].0["details"]["access"], "sponts emergency POP3");
    assert!(records[1].0["tls"].as_str().unwrap().starts_with("TLS"));
    let retrieved = records[2].1.as_deref().unwrap();
    assert_eq!(
        String::from_utf8_lossy(retrieved).trim_end(),
        out["retr"].as_str().unwrap().trim_end(),
        "the copy is what the client got"
    );
    assert!(String::from_utf8_lossy(retrieved).contains("Subject: for target@example.org"));
    assert_eq!(
        gw.store.copies(Some("POP"), 100).await.unwrap().len(),
        4,
        "nothing for the other user, nor the SMTP transaction before the order"
    );
    gw.stop().await;
}

#[tokio::test]
async fn a_copy_the_live_path_missed_is_recovered_from_the_journal() {
    let export = tempfile::tempdir().unwrap();
    let cap = Capture::start(CaptureOptions::default()).await;
    let gw = gateway(cap.addr, "").await;
    let now = sponts::clock::now_us();
    gw.store
        .add_order(&order(
            "REC",
            "target@example.org",
            format!("dir:{}", export.path().display()),
            None,
            now - 1_000_000,
            now + 3_600_000_000,
        ))
        .await
        .unwrap();
    gw.reload_orders().await;
    let message: &[u8] = b"From: x@partner.example\r\nSubject: missed\r\n\r\nfor the target\r\n";
    let mut ids = Vec::new();
    for rcpt in [
        "target@example.org",
        "target@example.org",
        "other@example.org",
    ] {
        let mut c = Client::connect(gw.addr).await;
        c.expect("EHLO client.test", 250).await;
        let r = c.send_mail("x@partner.example", &[rcpt], message).await;
        assert!(r.starts_with("250"), "{r}");
        ids.push(reply_id(&r));
        c.expect("QUIT", 221).await;
    }
    wait_delivered(&gw.store, Some("REC"), 2).await;
    let intercept = gw.running.as_ref().unwrap().intercept.clone();
    assert_eq!(
        intercept
            .recover(gw.addr, std::time::Duration::ZERO)
            .await
            .unwrap(),
        0,
        "nothing missing: nothing made"
    );

    // As if sponts had died between the second reply and its recording: that copy is gone.
    let sponts::storage::Store::Sqlite(pool) = &gw.store else {
        unreachable!()
    };
    let gone = sqlx::query("DELETE FROM intercept_copies WHERE order_id = 'REC' AND meta LIKE $1")
        .bind(format!("%\"session\":\"{}\"%", ids[1]))
        .execute(pool)
        .await
        .unwrap();
    assert_eq!(gone.rows_affected(), 1);
    // Two passes at once (two nodes, say) make it once: the recovered copy's id is fixed.
    let (a, b) = tokio::join!(
        intercept.recover(gw.addr, std::time::Duration::ZERO),
        intercept.recover(gw.addr, std::time::Duration::ZERO)
    );
    assert_eq!(a.unwrap() + b.unwrap(), 1);
    assert_eq!(
        intercept
            .recover(gw.addr, std::time::Duration::ZERO)
            .await
            .unwrap(),
        0,
        "once"
    );
    wait_delivered(&gw.store, Some("REC"), 2).await;
    let json = std::fs::read_dir(export.path().join("REC"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            (
                serde_json::from_slice::<serde_json::Value>(&std::fs::read(&p).unwrap()).unwrap(),
                p,
            )
        })
        .find(|(m, _)| m["details"]["recovered"] == true)
        .expect("the recovered copy exported");
    assert_eq!(json.0["session"], ids[1].as_str());
    assert_eq!(
        json.0["details"]["recipients"][0]["address"],
        "target@example.org"
    );
    assert_eq!(
        std::fs::read(json.1.with_extension("eml")).unwrap(),
        message,
        "the message from the backup, byte for byte"
    );
    // A copy is never made for mail before the order was made, nor for anyone else.
    assert_eq!(gw.store.copies(Some("REC"), 100).await.unwrap().len(), 2);
    gw.stop().await;
}
