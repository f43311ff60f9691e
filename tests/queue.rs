//! Queue mode: while the backend is down, mail for known recipients is committed to the durable
//! queue before the 250, unknown recipients wait with 450, and the queue drains in arrival order,
//! exactly once, when the backend returns.

mod common;

use common::*;
use std::time::Duration;

#[tokio::test]
async fn mail_is_queued_while_the_backend_is_down_and_drained_in_order_when_it_returns() {
    queue_and_drain("").await;
}

#[tokio::test]
async fn the_same_on_postgres() {
    let db = pg::TestDb::create().await;
    queue_and_drain(&format!("[storage]\ndatabase = \"{}\"\n", db.url)).await;
    db.drop_db().await;
}

async fn queue_and_drain(extra: &str) {
    let backend_addr = dead_address();
    let gw = gateway(backend_addr, &format!("[queue]\nprobe = 1\n{extra}")).await;
    add_user(&gw.store, "alice@example.org", sponts::storage::Role::User).await;
    // bob is no user, but the backend accepted mail for him last week.
    gw.store
        .insert_journal(&[sponts::storage::JournalEntry {
            id: "EARLIER".into(),
            time_us: sponts::clock::now_us() - 7 * 86_400_000_000,
            client_ip: "192.0.2.1".into(),
            client_port: 1,
            helo: "h".into(),
            tls: None,
            sender: "x@partner.example".into(),
            recipients: vec![sponts::storage::RcptEntry {
                address: "Bob@example.org".into(),
                accepted: true,
                reply: "250 2.1.5 Ok".into(),
                delivered_to: None,
            }],
            subject: None,
            message_id: None,
            size: None,
            attachments: vec![],
            outcome: "delivered".into(),
            decided_by: "backend".into(),
            final_reply: "250 ok".into(),
            replay_of: None,
            actor: None,
            flag: None,
            notes: None,
            outbound: false,
        }])
        .await
        .unwrap();

    let mut c = Client::connect(gw.addr).await;
    c.expect("EHLO client.test", 250).await;
    c.expect("MAIL FROM:<a@partner.example>", 250).await;
    let r = c.expect("RCPT TO:<stranger@example.org>", 450).await;
    assert!(
        r.starts_with("450 4.2.1"),
        "never 550 while the backend cannot confirm: {r}"
    );
    c.expect("RCPT TO:<bob@example.org>", 250).await;
    c.expect("RSET", 250).await;
    let mut ids = Vec::new();
    for i in 0..20 {
        let r = c
            .send_mail(
                "a@partner.example",
                &["alice@example.org"],
                format!("Subject: queued {i:02}\r\n\r\nx\r\n").as_bytes(),
            )
            .await;
        assert!(
            r.starts_with("250 2.0.0 Ok: queued, delivery deferred id="),
            "{r}"
        );
        ids.push(reply_id(&r));
    }
    c.expect("QUIT", 221).await;
    assert_eq!(gw.store.queue_list(None).await.unwrap().len(), 20);
    assert_eq!(journal_entry(&gw.store, &ids[0]).await.outcome, "queued");

    // The backend returns where it was.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let cap = Capture::start_on(backend_addr, CaptureOptions::default()).await;
    let mut drained = false;
    for _ in 0..100 {
        if gw.store.queue_list(None).await.unwrap().is_empty() {
            drained = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        drained,
        "the queue drains within seconds of the backend's return"
    );
    let d = cap.wait_for(20).await;
    assert_eq!(d.len(), 20, "each exactly once");
    for (i, m) in d.iter().enumerate() {
        let text = String::from_utf8_lossy(&m.data);
        assert!(
            text.contains(&format!("Subject: queued {i:02}")),
            "arrival order: #{i} is {text}"
        );
        assert!(text.starts_with("Received: from client.test"), "{text}");
        assert_eq!(m.rcpts, vec!["alice@example.org"]);
    }
    let e = journal_entry(&gw.store, &ids[19]).await;
    assert_eq!(e.outcome, "delivered");
    assert!(
        e.final_reply.contains("queued as CAPTURE"),
        "{}",
        e.final_reply
    );
    // The Report's load out counts them when they went out, their bytes as delivered.
    let rows = gw.store.stats_rows(0, i64::MAX, false).await.unwrap();
    let sum = |metric: &str| {
        rows.iter()
            .filter(|r| r.1 == metric)
            .map(|r| r.3)
            .sum::<i64>()
    };
    assert_eq!(
        (sum("messages_in"), sum("queued"), sum("messages_out")),
        (20, 20, 20)
    );
    assert_eq!(
        sum("bytes_out"),
        d.iter().map(|m| m.data.len() as i64).sum::<i64>()
    );
    gw.stop().await;
}

#[tokio::test]
async fn a_backend_refusal_ends_a_queued_message_and_deferrals_wait() {
    let backend_addr = dead_address();
    let gw = gateway(backend_addr, "[queue]\nprobe = 1\n").await;
    for a in ["alice@example.org", "carol@example.org"] {
        gw.store
            .add_user(
                a,
                &sponts::auth::hash_password("password for tests").unwrap(),
                sponts::storage::Role::User,
            )
            .await
            .unwrap();
    }
    let mut c = Client::connect(gw.addr).await;
    c.expect("EHLO client.test", 250).await;
    let r = c
        .send_mail(
            "a@partner.example",
            &["alice@example.org", "carol@example.org"],
            b"Subject: two\r\n\r\nx\r\n",
        )
        .await;
    let id = reply_id(&r);
    c.expect("QUIT", 221).await;

    // The CLI sees it.
    let cfg = gw.dir.path().join("cli.toml");
    std::fs::write(
        &cfg,
        format!("[storage]\ndata_dir = \"{}\"\n", gw.dir.path().display()),
    )
    .unwrap();
    let cli = async |args: &[&str]| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_sponts"));
        command.args(args).env("SPONTS_CONFIG", &cfg);
        let out = output(command).await;
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let (ok, out) = cli(&["queue", "list", "--json"]).await;
    assert!(ok, "{out}");
    let item: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert_eq!(item["id"], id.as_str());
    assert_eq!(
        item["pending"],
        serde_json::json!(["alice@example.org", "carol@example.org"])
    );
    let (ok, out) = cli(&["queue", "list"]).await;
    assert!(ok && out.contains("(1 queued)"), "{out}");
    let (ok, out) = cli(&["queue", "show", &id]).await;
    assert!(
        ok && out.contains("\"sender\": \"a@partner.example\""),
        "{out}"
    );
    let (ok, out) = cli(&["queue", "retry"]).await;
    assert!(ok && out.contains("1 message due now"), "{out}");
    let (ok, out) = cli(&["queue", "show", "NOSUCH"]).await;
    assert!(!ok && out.contains("not in the queue"), "{out}");
    let (ok, out) = cli(&["queue", "deliver", &id, &dead_address().to_string()]).await;
    assert!(!ok && out.contains("cannot reach"), "{out}");

    // carol is unknown to the backend after all.
    let cap = Capture::start_on(
        backend_addr,
        CaptureOptions {
            unknown: ["carol@example.org".to_string()].into(),
            ..Default::default()
        },
    )
    .await;
    for _ in 0..100 {
        if gw.store.queue_list(None).await.unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(gw.store.queue_list(None).await.unwrap().is_empty());
    let d = cap.wait_for(2).await;
    assert_eq!(d.len(), 2, "the message to alice, and a DSN about carol");
    assert_eq!(d[0].rcpts, vec!["alice@example.org"]);
    assert_eq!(
        d[1].mail,
        format!("<> SIZE={}", d[1].data.len()),
        "DSNs come from the null sender"
    );
    assert_eq!(d[1].rcpts, vec!["a@partner.example"]);
    let dsn = String::from_utf8_lossy(&d[1].data);
    assert!(
        dsn.contains(
            "Final-Recipient: rfc822; carol@example.org\r\nAction: failed\r\nStatus: 5.1.1"
        ),
        "{dsn}"
    );
    assert!(
        dsn.contains("Subject: two"),
        "the original headers come back: {dsn}"
    );
    assert_eq!(journal_entry(&gw.store, &id).await.outcome, "delivered");
    gw.stop().await;
}

/// Two nodes share one PostgreSQL and both drain the same queue: every message arrives once.
#[tokio::test]
async fn two_nodes_deliver_each_queued_message_once() {
    let db = pg::TestDb::create().await;
    let backend_addr = dead_address();
    let extra = format!("[queue]\nprobe = 1\n[storage]\ndatabase = \"{}\"\n", db.url);
    let a = gateway(backend_addr, &extra).await;
    let b = gateway(backend_addr, &extra).await;
    add_user(&a.store, "alice@example.org", sponts::storage::Role::User).await;
    for (i, node) in [&a, &b].iter().cycle().take(60).enumerate() {
        let mut c = Client::connect(node.addr).await;
        c.expect("EHLO client.test", 250).await;
        let r = c
            .send_mail(
                "a@partner.example",
                &["alice@example.org"],
                format!("Subject: n{i:02}\r\n\r\nx\r\n").as_bytes(),
            )
            .await;
        assert!(r.contains("queued"), "{r}");
        c.expect("QUIT", 221).await;
    }
    assert_eq!(a.store.queue_list(None).await.unwrap().len(), 60);
    let cap = Capture::start_on(backend_addr, CaptureOptions::default()).await;
    for _ in 0..150 {
        if a.store.queue_list(None).await.unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(a.store.queue_list(None).await.unwrap().is_empty());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let d = cap.deliveries();
    let mut subjects: Vec<String> = d
        .iter()
        .map(|m| {
            String::from_utf8_lossy(&m.data)
                .lines()
                .find(|l| l.starts_with("Subject:"))
                .unwrap()
                .to_string()
        })
        .collect();
    subjects.sort();
    let before = subjects.len();
    subjects.dedup();
    assert_eq!(before, subjects.len(), "a message was delivered twice");
    assert_eq!(subjects.len(), 60);
    a.stop().await;
    b.stop().await;
    db.drop_db().await;
}

/// The switch to queue mode and back is recorded; overdue mail raises an alert, never a
/// deletion; the admin's queue page shows it all and retries on request.
#[tokio::test]
async fn queue_mode_is_visible_and_overdue_mail_alerts() {
    let backend_addr = dead_address();
    let gw = gateway(backend_addr, "[queue]\nprobe = 1\nmax_age = 1\n").await;
    let pw = sponts::auth::hash_password("password for tests").unwrap();
    gw.store
        .add_user("alice@example.org", &pw, sponts::storage::Role::User)
        .await
        .unwrap();
    gw.store
        .add_user("admin@example.org", &pw, sponts::storage::Role::Admin)
        .await
        .unwrap();
    let mut c = Client::connect(gw.addr).await;
    c.expect("EHLO client.test", 250).await;
    let id = reply_id(
        &c.send_mail(
            "a@partner.example",
            &["alice@example.org"],
            b"Subject: waits\r\n\r\nx\r\n",
        )
        .await,
    );
    c.expect("QUIT", 221).await;
    let mut kinds = Vec::new();
    for _ in 0..300 {
        kinds = gw
            .store
            .events(10)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.kind)
            .collect::<Vec<_>>();
        if kinds.contains(&"queue_overdue".to_string()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        kinds.contains(&"queue_mode_on".to_string())
            && kinds.contains(&"queue_overdue".to_string()),
        "{kinds:?}"
    );
    assert_eq!(
        gw.store.queue_list(None).await.unwrap().len(),
        1,
        "overdue mail is never deleted"
    );

    let admin = common::http::login(gw.web, "admin@example.org", "password for tests")
        .await
        .unwrap();
    let m = common::http::request(
        gw.web,
        "GET",
        "/metrics",
        &[("Authorization", &format!("Bearer {}", admin.token))],
        None,
    )
    .await;
    let metrics = m.text();
    for line in [
        "sponts_queue_messages 1",
        "sponts_queue_overdue_messages 1",
        "sponts_queue_mode 1",
        "sponts_gateway_events_total{kind=\"queue_mode_on\"} 1",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "{line} missing in\n{metrics}"
        );
    }
    assert!(metrics.contains("# TYPE sponts_queue_messages gauge"));
    assert_eq!(
        common::http::request(gw.web, "GET", "/metrics", &[], None)
            .await
            .status,
        401
    );
    let page = common::http::request(
        gw.web,
        "GET",
        "/admin/queue",
        &[("Cookie", &admin.cookie)],
        None,
    )
    .await;
    let text = page.text();
    assert!(
        text.contains("Queue mode since") && text.contains(&id) && text.contains("overdue"),
        "{text}"
    );
    let alice = common::http::login(gw.web, "alice@example.org", "password for tests")
        .await
        .unwrap();
    assert_eq!(
        common::http::request(
            gw.web,
            "GET",
            "/admin/queue",
            &[("Cookie", &alice.cookie)],
            None
        )
        .await
        .status,
        403
    );
    assert_eq!(
        common::http::request(
            gw.web,
            "GET",
            "/metrics",
            &[("Authorization", &format!("Bearer {}", alice.token))],
            None
        )
        .await
        .status,
        403
    );

    // The backend returns; the next message goes straight through and ends queue mode.
    let cap = Capture::start_on(backend_addr, CaptureOptions::default()).await;
    let body = format!("csrf={}", admin.csrf);
    let r = common::http::request(
        gw.web,
        "POST",
        "/admin/queue/retry",
        &[("Cookie", &admin.cookie)],
        Some(("application/x-www-form-urlencoded", body.as_bytes())),
    )
    .await;
    assert_eq!(r.status, 303);
    cap.wait_for(1).await;
    // Delivered, then dequeued: wait for the second before reading the figures.
    for _ in 0..300 {
        if gw.store.queue_list(None).await.unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut c = Client::connect(gw.addr).await;
    c.expect("EHLO client.test", 250).await;
    let r = c
        .send_mail(
            "a@partner.example",
            &["alice@example.org"],
            b"Subject: direct\r\n\r\nx\r\n",
        )
        .await;
    assert!(r.contains("queued as CAPTURE"), "{r}");
    let kinds: Vec<String> = gw
        .store
        .events(10)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(kinds[0], "queue_mode_off", "{kinds:?}");
    let page = common::http::request(
        gw.web,
        "GET",
        "/admin/queue",
        &[("Cookie", &admin.cookie)],
        None,
    )
    .await;
    assert!(
        page.text().contains("mail goes straight through") && page.text().contains("queue-empty")
    );
    let m = common::http::request(
        gw.web,
        "GET",
        "/metrics",
        &[("Authorization", &format!("Bearer {}", admin.token))],
        None,
    )
    .await
    .text();
    assert!(
        m.lines().any(|l| l == "sponts_queue_mode 0")
            && m.lines().any(|l| l == "sponts_queue_messages 0"),
        "{m}"
    );
    gw.stop().await;
}

/// The outage drill of the UMS issue: 1,000 mails while the backend is down, read over POP3
/// (poplib, STLS), then the backend returns and every one arrives exactly once, in order.
#[tokio::test]
async fn a_thousand_mails_through_an_outage() {
    let backend_addr = dead_address();
    let gw = gateway(backend_addr, "[queue]\nprobe = 1\n").await;
    add_user(&gw.store, "alice@example.org", sponts::storage::Role::User).await;
    let (smtp, pop) = (gw.addr.port(), gw.pop3.port());
    let script = format!(
        r#"
import smtplib, poplib, ssl
s = smtplib.SMTP("127.0.0.1", {smtp}, timeout=30)
ok = 0
for i in range(1000):
    s.sendmail("a@partner.example", ["alice@example.org"], f"Subject: outage {{i:04d}}\r\n\r\nbody {{i}}\r\n")
    ok += 1
s.quit()
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
p = poplib.POP3("127.0.0.1", {pop}, timeout=30); p.stls(context=ctx)
p.user("alice@example.org"); p.pass_("password for tests")
n, size = p.stat()
uids = p.uidl()[1]
last = p.retr(n)[1]
p.quit()
print("SENT", ok, "STAT", n, "UIDS", len(set(uids)), "LAST", [x.decode() for x in last if x.startswith(b"Subject")][0])
"#
    );
    let out = tokio::task::spawn_blocking(move || {
        let o = std::process::Command::new("python3")
            .arg("-c")
            .arg(script)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    })
    .await
    .unwrap();
    assert_eq!(
        out.trim(),
        "SENT 1000 STAT 1000 UIDS 1000 LAST Subject: outage 0999"
    );

    // fetchmail fetches the same 1,000 (keeping them on the server).
    let dir = tempfile::tempdir().unwrap();
    let (code, log) = fetchmail::fetch(pop, "alice@example.org", PASSWORD, dir.path()).await;
    assert_eq!(code, Some(0), "{log}");
    assert_eq!(
        fetchmail::fetched(dir.path()).len(),
        1000,
        "fetchmail got all 1,000"
    );

    let cap = Capture::start_on(backend_addr, CaptureOptions::default()).await;
    let started = std::time::Instant::now();
    for _ in 0..600 {
        if gw.store.queue_list(None).await.unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let drain = started.elapsed();
    let d = cap.wait_for(1000).await;
    assert_eq!(d.len(), 1000, "each exactly once");
    for (i, m) in d.iter().enumerate() {
        assert!(
            String::from_utf8_lossy(&m.data).contains(&format!("Subject: outage {i:04}")),
            "order broken at {i}"
        );
    }
    eprintln!(
        "drained 1000 messages in {:.1} s after the backend returned",
        drain.as_secs_f64()
    );
    gw.stop().await;
}

/// An admin hands one queued message to another host (a standby server) while the backend is down.
#[tokio::test]
async fn deliver_by_hand_to_another_host() {
    let gw = gateway(dead_address(), "[queue]\nprobe = 30\n").await;
    add_user(&gw.store, "alice@example.org", sponts::storage::Role::User).await;
    let mut c = Client::connect(gw.addr).await;
    c.expect("EHLO client.test", 250).await;
    let id = reply_id(
        &c.send_mail(
            "a@partner.example",
            &["alice@example.org"],
            b"Subject: urgent\r\n\r\nx\r\n",
        )
        .await,
    );
    c.expect("QUIT", 221).await;
    let standby = Capture::start(CaptureOptions::default()).await;
    let (config, _dir) = config(dead_address(), "");
    let admin = common::signed_in_admin(&gw).await;
    let body = format!("csrf={}&id={id}&host={}", admin.csrf, standby.addr);
    let r = common::http::request(
        gw.web,
        "POST",
        "/admin/queue/deliver",
        &[("Cookie", &admin.cookie)],
        Some(("application/x-www-form-urlencoded", body.as_bytes())),
    )
    .await;
    let location = r.header("location").unwrap().to_string();
    assert!(
        location.contains("msg=") && location.contains("delivered%20by%20hand%20to"),
        "{location}"
    );
    assert!(
        String::from_utf8_lossy(&standby.wait_for(1).await[0].data).contains("Subject: urgent")
    );
    assert!(gw.store.queue_list(None).await.unwrap().is_empty());
    assert_eq!(journal_entry(&gw.store, &id).await.outcome, "delivered");
    assert!(
        sponts::queue::deliver_to(&config, &gw.store, &id, &standby.addr.to_string())
            .await
            .is_err(),
        "gone from the queue"
    );
    gw.stop().await;
}

/// The same recipient twice in one queued transaction is one delivery, not an error.
#[tokio::test]
async fn a_repeated_recipient_is_queued_once() {
    let backend_addr = dead_address();
    let gw = gateway(backend_addr, "[queue]\nprobe = 1\n").await;
    add_user(&gw.store, "alice@example.org", sponts::storage::Role::User).await;
    let mut c = Client::connect(gw.addr).await;
    c.expect("EHLO client.test", 250).await;
    let r = c
        .send_mail(
            "a@partner.example",
            &["alice@example.org", "Alice@Example.org"],
            b"Subject: twice\r\n\r\nx\r\n",
        )
        .await;
    assert!(r.contains("queued"), "{r}");
    c.expect("QUIT", 221).await;
    let cap = Capture::start_on(backend_addr, CaptureOptions::default()).await;
    for _ in 0..100 {
        if gw.store.queue_list(None).await.unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let d = cap.deliveries();
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].rcpts, vec!["alice@example.org"]);
    gw.stop().await;
}

/// The latest queue-mode switch recorded, waited for until it is `kind` (bounded).
async fn wait_queue_mode(
    store: &sponts::storage::Store,
    kind: &str,
) -> sponts::storage::GatewayEvent {
    for _ in 0..200 {
        if let Some(e) = store
            .latest_queue_mode()
            .await
            .unwrap()
            .filter(|e| e.kind == kind)
        {
            return e;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "queue mode never became {kind}: {:?}",
        store.events(10).await.unwrap()
    );
}

/// Queue mode ends when the queue runner delivers, not when the next SMTP session happens to
/// come: the metric falls to 0 and the recorded outage is as long as the real one.
#[tokio::test]
async fn queue_mode_ends_when_the_queue_drains() {
    let backend_addr = dead_address();
    let gw = gateway(backend_addr, "[queue]\nprobe = 1\n").await;
    add_user(&gw.store, "alice@example.org", sponts::storage::Role::User).await;
    add_user(&gw.store, "admin@example.org", sponts::storage::Role::Admin).await;
    let mut c = Client::connect(gw.addr).await;
    c.expect("EHLO client.test", 250).await;
    c.send_mail(
        "a@partner.example",
        &["alice@example.org"],
        b"Subject: waits\r\n\r\nx\r\n",
    )
    .await;
    c.expect("QUIT", 221).await;
    wait_queue_mode(&gw.store, "queue_mode_on").await;
    let outage = std::time::Instant::now();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let cap = Capture::start_on(backend_addr, CaptureOptions::default()).await;
    cap.wait_for(1).await;
    let off = wait_queue_mode(&gw.store, "queue_mode_off").await;
    let secs: u64 = off
        .detail
        .trim_start_matches("after ")
        .trim_end_matches(" s")
        .parse()
        .unwrap();
    assert!(
        secs >= 2 && secs <= outage.elapsed().as_secs() + 2,
        "the outage lasted about {} s: {}",
        outage.elapsed().as_secs(),
        off.detail
    );
    let admin = common::http::login(gw.web, "admin@example.org", "password for tests")
        .await
        .unwrap();
    let m = common::http::request(
        gw.web,
        "GET",
        "/metrics",
        &[("Authorization", &format!("Bearer {}", admin.token))],
        None,
    )
    .await
    .text();
    assert!(m.lines().any(|l| l == "sponts_queue_mode 0"), "{m}");
    gw.stop().await;
}

/// With nothing queued (the outage met only unknown recipients), the runner's probe ends queue
/// mode once the backend answers.
#[tokio::test]
async fn queue_mode_ends_by_a_probe_while_idle() {
    let backend_addr = dead_address();
    let gw = gateway(backend_addr, "[queue]\nprobe = 1\n").await;
    let mut c = Client::connect(gw.addr).await;
    c.expect("EHLO client.test", 250).await;
    c.expect("MAIL FROM:<a@partner.example>", 250).await;
    c.expect("RCPT TO:<stranger@example.org>", 450).await;
    c.expect("QUIT", 221).await;
    wait_queue_mode(&gw.store, "queue_mode_on").await;
    assert!(gw.store.queue_list(None).await.unwrap().is_empty());
    let _cap = Capture::start_on(backend_addr, CaptureOptions::default()).await;
    wait_queue_mode(&gw.store, "queue_mode_off").await;
    gw.stop().await;
}
