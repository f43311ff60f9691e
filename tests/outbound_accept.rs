//! Outbound acceptance: sponts as the organisation's smarthost. A real Postfix (the mail server)
//! with `relayhost` at sponts; swaks signing in with SMTP AUTH. Mail of our own clients to other
//! domains is queued for MX delivery (route mx), journaled as outbound, counted as load out and
//! kept for the sender; to our own domains it still goes to the backend live; strangers still
//! cannot relay; AUTH only inside TLS; senders are checked.

mod common;

use common::*;
use sponts::storage::Role;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

/// Runs a program off the runtime's thread (the gateway under test shares it).
async fn run(mut cmd: Command) -> Output {
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}

/// A Postfix instance from `scripts/peers/postfix_relay_start.sh`, stopped on drop.
struct Postfix {
    listen: std::net::SocketAddr,
    dir: tempfile::TempDir,
}

impl Postfix {
    async fn start(relayhost: std::net::SocketAddr) -> Postfix {
        assert!(
            std::path::Path::new("/usr/sbin/postfix").exists(),
            "postfix is needed (scripts/test installs it)"
        );
        let dir = tempfile::tempdir().unwrap();
        let listen = dead_address();
        let script =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/peers/postfix_relay_start.sh");
        let mut cmd = Command::new("bash");
        cmd.arg(script)
            .arg(listen.to_string())
            .arg(relayhost.to_string())
            .arg(dir.path());
        let out = run(cmd).await;
        assert!(
            out.status.success(),
            "postfix: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Postfix { listen, dir }
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        let script =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/peers/postfix_relay_stop.sh");
        let _ = Command::new("bash")
            .arg(script)
            .arg(self.dir.path())
            .output();
    }
}

async fn swaks(args: &[&str]) -> (bool, String) {
    assert!(
        std::path::Path::new("/usr/bin/swaks").exists(),
        "swaks is needed (scripts/test installs it)"
    );
    let mut cmd = Command::new("/usr/bin/swaks");
    cmd.args(args);
    let out = run(cmd).await;
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// Waits (up to 30 s) until the queue holds a message for `rcpt`.
async fn queued_for(store: &sponts::storage::Store, rcpt: &str) -> sponts::storage::Queued {
    for _ in 0..300 {
        if let Some(q) = store
            .queue_list(None)
            .await
            .unwrap()
            .into_iter()
            .find(|q| q.pending.iter().any(|p| p == rcpt))
        {
            return q;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("nothing queued for {rcpt}");
}

/// Waits (up to 30 s) for the backend's delivery to `rcpt` (MX delivery's DSNs may come too).
async fn delivered_to(cap: &Capture, rcpt: &str) -> backend::Delivery {
    for _ in 0..300 {
        if let Some(d) = cap
            .deliveries()
            .into_iter()
            .find(|d| d.rcpts.iter().any(|r| r == rcpt))
        {
            return d;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("nothing reached the backend for {rcpt}");
}

#[tokio::test]
async fn postfix_with_sponts_as_relayhost_sends_out_through_the_queue() {
    clear_of_hour_boundary().await;
    let cap = Capture::start(CaptureOptions::default()).await;
    let gw = gateway(cap.addr, "[smtp]\nrelay_networks = [\"127.0.0.0/8\"]\n").await;
    add_user(&gw.store, "alice@example.org", Role::User).await;
    let postfix = Postfix::start(gw.addr).await;
    let at = postfix.listen.to_string();

    // To the internet: through Postfix, then sponts, into the queue for MX delivery.
    let (ok, log) = swaks(&[
        "--server",
        &at,
        "--from",
        "alice@example.org",
        "--to",
        "x@partner.example",
        "--header",
        "Subject: sent out",
        "--body",
        "to a partner",
    ])
    .await;
    assert!(ok, "{log}");
    let q = queued_for(&gw.store, "x@partner.example").await;
    assert!(q.outbound && q.held.is_empty(), "{q:?}");
    assert_eq!(q.pending_mx, vec!["x@partner.example"]);
    assert_eq!(q.sender, "alice@example.org");
    let e = journal_entry(&gw.store, &q.id).await;
    assert!(e.outbound, "journaled as outbound: {e:?}");
    assert_eq!(
        (e.outcome.as_str(), e.decided_by.as_str()),
        ("queued", "outbound")
    );
    assert!(e.client_ip.starts_with("127."), "{e:?}");
    // Kept for the sender, who finds it among their mail.
    let kept =
        sponts::modules::backup::decompress(&gw.store.body(&q.id).await.unwrap().unwrap()).unwrap();
    assert!(String::from_utf8_lossy(&kept).contains("Subject: sent out"));
    let hers = gw
        .store
        .query_journal(&sponts::storage::JournalFilter {
            visible_to: Some(vec!["alice@example.org".into()]),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(hers.iter().any(|h| h.id == q.id && h.outbound));
    let login = common::http::login(gw.web, "alice@example.org", PASSWORD)
        .await
        .unwrap();
    let page = common::http::request(gw.web, "GET", "/", &[("Cookie", &login.cookie)], None)
        .await
        .text();
    assert!(
        page.contains("sent out") && page.contains(&format!("/messages/{}", q.id)),
        "her Messages list shows it as sent: {page}"
    );
    // She replays her sent mail to herself (through the backend); to anyone else she may not.
    let replay = format!("/api/v1/messages/{}/replay", q.id);
    let auth = format!("Bearer {}", login.token);
    let denied = common::http::request(
        gw.web,
        "POST",
        &replay,
        &[("Authorization", &auth)],
        Some(("application/json", br#"{"to": "x@partner.example"}"#)),
    )
    .await;
    assert_eq!(denied.status, 403, "{}", denied.text());
    let done =
        common::http::request(gw.web, "POST", &replay, &[("Authorization", &auth)], None).await;
    assert_eq!(done.status, 200, "{}", done.text());
    assert_eq!(done.json()["delivered"], true, "{}", done.text());
    // (MX delivery's bounce for the unresolvable partner.example comes from <>, the replay from her.)
    let replayed = cap
        .deliveries()
        .into_iter()
        .find(|d| d.rcpts == ["alice@example.org"] && d.mail.contains("alice@example.org"))
        .expect("the replay reached the backend");
    assert!(String::from_utf8_lossy(&replayed.data).contains("Subject: sent out"));
    // The queued copy is the message with sponts' Received: header.
    let body = zstd::bulk::decompress(
        &gw.store.queued_body(&q.id).await.unwrap().unwrap(),
        q.size as usize,
    )
    .unwrap();
    assert!(
        body.starts_with(b"Received: from "),
        "{}",
        String::from_utf8_lossy(&body[..80])
    );
    assert!(
        cap.deliveries()
            .iter()
            .all(|d| !d.rcpts.contains(&"x@partner.example".to_string())),
        "nothing of it went to the backend"
    );

    // To our own domain: still to the backend, live.
    let (ok, log) = swaks(&[
        "--server",
        &at,
        "--from",
        "alice@example.org",
        "--to",
        "bob@example.org",
        "--header",
        "Subject: inside",
    ])
    .await;
    assert!(ok, "{log}");
    assert_eq!(
        delivered_to(&cap, "bob@example.org").await.rcpts,
        vec!["bob@example.org"]
    );

    // Load out: `sponts stats --json` counts the outbound message.
    let cfg = gw.dir.path().join("stats.toml");
    std::fs::write(&cfg, format!("[storage]\ndata_dir = \"{}\"\n[backend]\naddress = \"{}\"\nstarttls = \"off\"\n[domains]\nlocal = [\"example.org\"]\n", gw.dir.path().display(), cap.addr)).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sponts"));
    cmd.args(["stats", "--since", "1h", "--json"])
        .env("SPONTS_CONFIG", &cfg);
    let out = run(cmd).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let f: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        f["load"]["messages_out"], 2,
        "the outbound one and the one delivered to the backend: {f}"
    );
    assert!(
        f["load"]["bytes_out"].as_i64().unwrap() >= e.size.unwrap(),
        "{f}"
    );
    drop(postfix);
    gw.stop().await;
}

#[tokio::test]
async fn a_mixed_transaction_is_queued_whole_and_its_local_part_reaches_the_backend_from_the_queue()
{
    let cap = Capture::start(CaptureOptions::default()).await;
    let gw = gateway(
        cap.addr,
        "[smtp]\nrelay_networks = [\"127.0.0.0/8\"]\n[queue]\nprobe = 1\n",
    )
    .await;
    let mut c = Client::connect(gw.addr).await;
    c.expect("EHLO office.example.org", 250).await;
    let r = c
        .send_mail(
            "alice@example.org",
            &["bob@example.org", "x@partner.example"],
            b"Subject: both\r\n\r\nhi\r\n",
        )
        .await;
    assert!(r.starts_with("250 2.0.0 Ok: queued"), "{r}");
    let id = reply_id(&r);
    // One row, two routes (whether a runner has answered one yet depends on the machine's pace).
    let routes = gw.store.queue_routes(&id).await.unwrap();
    assert_eq!(
        routes
            .iter()
            .map(|(a, route, _, _)| (a.as_str(), route.as_str()))
            .collect::<Vec<_>>(),
        vec![("bob@example.org", "backend"), ("x@partner.example", "mx")]
    );
    // The queue runner hands bob's copy to the backend; x's is MX delivery's, never the backend's
    // (partner.example does not resolve here: MX delivery bounces it to alice, through the backend).
    assert_eq!(
        delivered_to(&cap, "bob@example.org").await.rcpts,
        vec!["bob@example.org"]
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        cap.deliveries()
            .iter()
            .all(|d| !d.rcpts.contains(&"x@partner.example".to_string())),
        "the runner never takes an MX recipient"
    );
    gw.stop().await;
}

#[tokio::test]
async fn strangers_cannot_relay_and_our_clients_only_as_our_domains() {
    let cap = Capture::start(CaptureOptions::default()).await;
    let gw = gateway(cap.addr, "[smtp]\nrelay_networks = [\"127.0.0.20/32\"]\n").await;
    // Outside the relay networks, no AUTH: never an open relay.
    let mut c = Client::connect_from(gw.addr, "127.0.0.21").await;
    c.expect("EHLO stranger.test", 250).await;
    c.expect("MAIL FROM:<alice@example.org>", 250).await;
    let r = c.expect("RCPT TO:<x@partner.example>", 554).await;
    assert!(r.contains("5.7.1"), "{r}");
    // A relay client with a sender domain that is not ours.
    let mut c = Client::connect_from(gw.addr, "127.0.0.20").await;
    c.expect("EHLO office.example.org", 250).await;
    c.expect("MAIL FROM:<ceo@elsewhere.example>", 250).await;
    // To us it is ordinary mail (the mail server may forward a stranger's); out, it is refused.
    c.expect("RCPT TO:<bob@example.org>", 250).await;
    let r = c.expect("RCPT TO:<x@partner.example>", 550).await;
    assert!(
        r.starts_with("550 5.7.1") && r.contains("not one of our sender domains"),
        "{r}"
    );
    c.expect("RSET", 250).await;
    c.expect("MAIL FROM:<>", 250).await;
    c.expect("RCPT TO:<x@partner.example>", 250).await;
    c.expect("QUIT", 221).await;
    assert!(gw.store.queue_list(None).await.unwrap().is_empty());
    gw.stop().await;
}

#[tokio::test]
async fn smtp_auth_only_inside_tls_and_users_send_only_as_themselves() {
    let cap = Capture::start(CaptureOptions::default()).await;
    let gw = gateway(cap.addr, "[outbound]\nmax_auth_failures = 3\n").await;
    add_user(&gw.store, "alice@example.org", Role::User).await;
    gw.store
        .add_alias("alice@example.org", "sales@example.org")
        .await
        .unwrap();

    // Before STARTTLS: not offered, and refused with 538.
    let mut c = Client::connect(gw.addr).await;
    let ehlo = c.expect("EHLO laptop.test", 250).await;
    assert!(!ehlo.contains("AUTH"), "{ehlo}");
    let r = c
        .expect(
            &format!(
                "AUTH PLAIN {}",
                sponts::base64::encode(format!("\0alice@example.org\0{PASSWORD}").as_bytes())
            ),
            538,
        )
        .await;
    assert!(r.starts_with("538 5.7.11"), "{r}");
    c.expect("STARTTLS", 220).await;
    c.starttls().await;
    let ehlo = c.expect("EHLO laptop.test", 250).await;
    assert!(ehlo.contains("AUTH PLAIN LOGIN"), "{ehlo}");
    c.expect("QUIT", 221).await;

    let at = gw.addr.to_string();
    let send = |user: &str, password: &str, from: &str, to: &str| {
        let args: Vec<String> = [
            "--server",
            &at,
            "--tls",
            "--auth",
            "LOGIN",
            "--auth-user",
            user,
            "--auth-password",
            password,
            "--from",
            from,
            "--to",
            to,
            "--header",
            "Subject: from the road",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        async move { swaks(&args.iter().map(String::as_str).collect::<Vec<_>>()).await }
    };
    let (ok, log) = send(
        "alice@example.org",
        "wrong password",
        "alice@example.org",
        "x@partner.example",
    )
    .await;
    assert!(!ok && log.contains("535 5.7.8"), "{log}");
    let (ok, log) = send(
        "alice@example.org",
        PASSWORD,
        "bob@example.org",
        "x@partner.example",
    )
    .await;
    assert!(
        !ok && log.contains("235 2.7.0") && log.contains("550 5.7.1"),
        "spoofed sender: {log}"
    );
    let (ok, log) = send(
        "alice@example.org",
        PASSWORD,
        "sales@example.org",
        "x@partner.example",
    )
    .await;
    assert!(ok, "her alias: {log}");
    let q = queued_for(&gw.store, "x@partner.example").await;
    assert!(q.outbound && q.sender == "sales@example.org", "{q:?}");
    // Journaled with the account that sent it: the outbound limits count per account too.
    let e = journal_entry(&gw.store, &q.id).await;
    assert_eq!(e.actor.as_deref(), Some("alice@example.org"), "{e:?}");

    // Failures are throttled per client address: after three, even the right password waits.
    for _ in 0..2 {
        let (ok, _) = send(
            "alice@example.org",
            "wrong again",
            "alice@example.org",
            "y@partner.example",
        )
        .await;
        assert!(!ok);
    }
    let (ok, log) = send(
        "alice@example.org",
        PASSWORD,
        "alice@example.org",
        "y@partner.example",
    )
    .await;
    assert!(!ok && log.contains("454 4.7.0"), "{log}");
    gw.stop().await;
}

#[tokio::test]
async fn the_submission_listener_takes_only_our_own_clients() {
    let cap = Capture::start(CaptureOptions::default()).await;
    let submission = dead_address();
    let gw = gateway(
        cap.addr,
        &format!("[outbound]\nlisten = [\"{submission}\"]\n"),
    )
    .await;
    let mut c = Client::connect(submission).await;
    c.expect("EHLO laptop.test", 250).await;
    let r = c.expect("MAIL FROM:<p@partner.example>", 530).await;
    assert!(r.starts_with("530 5.7.0"), "{r}");
    c.expect("QUIT", 221).await;
    gw.stop().await;
}

/// kill -9 right after the 250: the queued outbound message is there after a restart.
#[tokio::test]
async fn outbound_mail_survives_kill_9_after_the_250() {
    let cap = Capture::start(CaptureOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let addr = dead_address();
    let cfg = dir.path().join("sponts.toml");
    std::fs::write(
        &cfg,
        format!(
            "[smtp]\nlisten = [\"{addr}\"]\nhostname = \"gw.test.example\"\nrelay_networks = [\"127.0.0.0/8\"]\n[web]\nlisten = \"127.0.0.1:0\"\n[pop3]\nlisten = \"127.0.0.1:0\"\n[backend]\naddress = \"{}\"\nstarttls = \"off\"\n[domains]\nlocal = [\"example.org\"]\n[storage]\ndata_dir = \"{}\"\n[uce]\ngreet_delay = \"0s\"\n",
            cap.addr,
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_sponts"))
        .args(["serve", "--config"])
        .arg(&cfg)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let _kill = KillOnPanic(child.id());
    wait_listening(addr).await;
    let mut c = Client::connect(addr).await;
    c.expect("EHLO office.example.org", 250).await;
    let r = c
        .send_mail(
            "alice@example.org",
            &["x@partner.example"],
            b"Subject: durable\r\n\r\nkept\r\n",
        )
        .await;
    assert!(r.starts_with("250"), "{r}");
    let id = reply_id(&r);
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let store = sponts::storage::Store::open(&sponts::config::DatabaseLocation::Sqlite(
        dir.path().join("data/sponts.db"),
    ))
    .await
    .unwrap();
    let q = store
        .queue_list(Some(&id))
        .await
        .unwrap()
        .pop()
        .expect("the queued row survived kill -9");
    assert_eq!(q.pending_mx, vec!["x@partner.example"]);
    assert!(q.outbound);
    let body = zstd::bulk::decompress(
        &store.queued_body(&id).await.unwrap().unwrap(),
        q.size as usize,
    )
    .unwrap();
    assert!(String::from_utf8_lossy(&body).contains("Subject: durable"));
}

const GTUBE: &str = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X";

/// The outbound flavour of the spam checks: our own server is not looked up in DNS lists (a
/// stranger at the next address is, in the same config), but the content filter (spamd) still
/// judges — and outbound spam is held in the queue, not sent.
#[tokio::test]
async fn outbound_mail_gets_the_content_filter_but_not_the_dnsbl() {
    let spamd = peers::Engine::spamd();
    let dns = peers::Dns::start(
        r#"{"20.0.0.127.bl.test.": [{"type": "A", "value": "127.0.0.2"}], "21.0.0.127.bl.test.": [{"type": "A", "value": "127.0.0.2"}]}"#,
    );
    let cap = Capture::start(CaptureOptions::default()).await;
    let extra = format!(
        "[smtp]\nrelay_networks = [\"127.0.0.20/32\"]\n[uce]\ntarpit_delay = \"0s\"\nresolver = \"{}\"\ndns_timeout = \"10s\"\ndnsbl = [{{ zone = \"bl.test\", weight = 3 }}]\n[uce.spamd]\naddress = \"{}\"\ntag = 5.0\nreject = 15.0\ntimeout = \"10s\"\n",
        dns.address(),
        spamd.address()
    );
    let gw = gateway(cap.addr, &extra).await;
    let msg = |subject: &str, body: &str| {
        format!("From: alice@example.org\r\nSubject: {subject}\r\nMessage-ID: <{}@test>\r\n\r\n{body}\r\n", sponts::id::new_transaction_id()).into_bytes()
    };

    // A stranger listed in bl.test: the DNSBL counts for it.
    let mut c = Client::connect_from(gw.addr, "127.0.0.21").await;
    c.expect("EHLO stranger.test", 250).await;
    let r = c
        .send_mail(
            "s@stranger.example",
            &["u@example.org"],
            &msg("hi", "hello"),
        )
        .await;
    let e = journal_entry(&gw.store, &id_of(&gw.store, &r).await).await;
    assert!(
        e.notes.as_deref().unwrap_or("").contains("dnsbl bl.test"),
        "{:?}",
        e.notes
    );

    let mut c = Client::connect_from(gw.addr, "127.0.0.20").await;
    c.expect("EHLO office.example.org", 250).await;
    let r = c
        .send_mail(
            "alice@example.org",
            &["x@partner.example"],
            &msg("lunch", "see you at noon"),
        )
        .await;
    assert!(r.starts_with("250 2.0.0 Ok: queued"), "{r}");
    let e = journal_entry(&gw.store, &reply_id(&r)).await;
    let notes = e.notes.clone().unwrap_or_default();
    assert!(
        notes.contains("uce (outbound)") && notes.contains("spamd") && !notes.contains("dnsbl"),
        "{notes}"
    );
    assert!(gw.store.queue_held_reason(&e.id).await.unwrap().is_none());

    let r = c
        .send_mail(
            "alice@example.org",
            &["y@partner.example"],
            &msg("offer", GTUBE),
        )
        .await;
    assert!(r.starts_with("250 "), "accepted, then held: {r}");
    let e = journal_entry(&gw.store, &reply_id(&r)).await;
    assert_eq!(e.flag.as_deref(), Some("spam"), "{e:?}");
    let held = gw
        .store
        .queue_held_reason(&e.id)
        .await
        .unwrap()
        .expect("outbound spam is held");
    assert!(held.contains("outbound spam"), "{held}");
    assert!(
        gw.store
            .lease_mx(
                None,
                "test",
                sponts::clock::now_us() + 10_000_000,
                60_000_000,
                10
            )
            .await
            .unwrap()
            .iter()
            .all(|l| l.queue_id != e.id),
        "nothing of it leaves"
    );

    // Admins see it: a red banner on the queue page, and /metrics.
    add_user(&gw.store, "admin@example.org", Role::Admin).await;
    let admin = common::http::login(gw.web, "admin@example.org", PASSWORD)
        .await
        .unwrap();
    let metrics = common::http::request(
        gw.web,
        "GET",
        "/metrics",
        &[("Authorization", &format!("Bearer {}", admin.token))],
        None,
    )
    .await
    .text();
    assert!(
        metrics
            .lines()
            .any(|l| l == "sponts_outbound_held_messages 1"),
        "{metrics}"
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
    assert!(
        page.contains(r#"<div class="notice bad" id="outbound-held">1 message is held"#),
        "{page}"
    );

    // The CLI: lock the sender (refused 5.7.1), held list, unlock, release.
    let cfg = gw.dir.path().join("cli.toml");
    std::fs::write(
        &cfg,
        format!(
            "[storage]\ndata_dir = \"{}\"\n[domains]\nlocal = [\"example.org\"]\n",
            gw.dir.path().display()
        ),
    )
    .unwrap();
    let cli = |args: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sponts"));
        cmd.arg("outbound").args(args).env("SPONTS_CONFIG", &cfg);
        run(cmd)
    };
    let out = cli(&["lock", "Alice@example.org"]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    c.expect("MAIL FROM:<alice@example.org>", 250).await;
    let r = c.expect("RCPT TO:<z@partner.example>", 550).await;
    assert!(r.starts_with("550 5.7.1") && r.contains("locked"), "{r}");
    c.expect("RSET", 250).await;
    let out = cli(&["held", "--json"]).await;
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed["held"][0]["id"], e.id.as_str(), "{listed}");
    assert_eq!(
        listed["locked"][0]["sender"], "alice@example.org",
        "{listed}"
    );
    assert!(cli(&["unlock", "alice@example.org"]).await.status.success());
    assert!(
        !cli(&["unlock", "alice@example.org"]).await.status.success(),
        "not locked any more"
    );
    let r = c
        .send_mail(
            "alice@example.org",
            &["z@partner.example"],
            &msg("again", "hello"),
        )
        .await;
    assert!(r.starts_with("250 "), "{r}");
    assert!(cli(&["release", &e.id]).await.status.success());
    assert!(
        gw.store.queue_held_reason(&e.id).await.unwrap().is_none(),
        "released"
    );
    gw.stop().await;
}

/// A hijacked account's burst: past `outbound.max_messages_per_hour`, the sender's mail is held
/// (nothing of it is leased for delivery), and the admins get a mail through the backend.
#[tokio::test]
async fn a_burst_past_the_hourly_limit_is_held_and_the_admins_are_told() {
    let cap = Capture::start(CaptureOptions::default()).await;
    let gw = gateway(cap.addr, "[smtp]\nrelay_networks = [\"127.0.0.0/8\"]\n[queue]\nprobe = 1\n[outbound]\nmax_messages_per_hour = 2\nmax_domains_per_hour = 3\n").await;
    add_user(&gw.store, "admin@example.org", Role::Admin).await;
    let mut c = Client::connect(gw.addr).await;
    c.expect("EHLO office.example.org", 250).await;
    let mut ids = Vec::new();
    for i in 0..3 {
        let r = c
            .send_mail(
                "mallory@example.org",
                &[&format!("v{i}@victim{i}.example")],
                format!("Subject: offer {i}\r\n\r\nbuy\r\n").as_bytes(),
            )
            .await;
        assert!(r.starts_with("250 "), "{r}");
        ids.push(reply_id(&r));
    }
    assert!(gw.store.queue_held_reason(&ids[0]).await.unwrap().is_none());
    assert!(gw.store.queue_held_reason(&ids[1]).await.unwrap().is_none());
    let held = gw
        .store
        .queue_held_reason(&ids[2])
        .await
        .unwrap()
        .expect("the third is held");
    assert!(
        held.contains("burst from mallory@example.org") && held.contains("max_messages_per_hour"),
        "{held}"
    );
    // Another sender is not affected by mallory's count; four domains in one message are.
    let r = c
        .send_mail(
            "alice@example.org",
            &[
                "a@one.example",
                "b@two.example",
                "c@three.example",
                "d@four.example",
            ],
            b"Subject: many\r\n\r\nx\r\n",
        )
        .await;
    let held = gw
        .store
        .queue_held_reason(&reply_id(&r))
        .await
        .unwrap()
        .expect("four domains");
    assert!(held.contains("4 destination domains"), "{held}");
    let r = c
        .send_mail(
            "bob@example.org",
            &["x@partner.example"],
            b"Subject: normal\r\n\r\nx\r\n",
        )
        .await;
    assert!(
        gw.store
            .queue_held_reason(&reply_id(&r))
            .await
            .unwrap()
            .is_none()
    );
    // The admins' mail, through the queue to the backend.
    let alert = delivered_to(&cap, "admin@example.org").await;
    let text = String::from_utf8_lossy(&alert.data).to_string();
    assert!(
        text.contains("Subject: Outbound mail held: mallory@example.org") && text.contains(&ids[2]),
        "{text}"
    );
    assert!(
        gw.store
            .lease_mx(
                None,
                "test",
                sponts::clock::now_us() + 10_000_000,
                60_000_000,
                100
            )
            .await
            .unwrap()
            .iter()
            .all(|l| l.queue_id != ids[2])
    );
    gw.stop().await;
}

/// Lawful interception: a target's outbound mail (the target is the sender) is copied like
/// their inbound mail, with the message as sent.
#[tokio::test]
async fn a_targets_sent_mail_is_intercepted() {
    let export = tempfile::tempdir().unwrap();
    let cap = Capture::start(CaptureOptions::default()).await;
    let gw = gateway(cap.addr, "[smtp]\nrelay_networks = [\"127.0.0.0/8\"]\n").await;
    let now = sponts::clock::now_us();
    let order = sponts::storage::intercept::Order {
        id: "OUTLI".into(),
        reference: "AG Musterstadt OUTLI".into(),
        target: "alice@example.org".into(),
        login: None,
        from_us: now - 1_000_000,
        until_us: now + 3_600_000_000,
        deliver: format!("dir:{}", export.path().display()),
        deliver_to: None,
        notes: String::new(),
        created_by: "cli:officer".into(),
        created_us: now - 1_000_000,
        ended_us: None,
    };
    gw.store.add_order(&order).await.unwrap();
    gw.reload_orders().await;
    let mut c = Client::connect(gw.addr).await;
    c.expect("EHLO office.example.org", 250).await;
    let r = c
        .send_mail(
            "alice@example.org",
            &["x@partner.example"],
            b"Subject: secret plans\r\n\r\nout\r\n",
        )
        .await;
    assert!(r.starts_with("250 2.0.0 Ok: queued"), "{r}");
    let r2 = c
        .send_mail(
            "bob@example.org",
            &["y@partner.example"],
            b"Subject: not hers\r\n\r\nout\r\n",
        )
        .await;
    assert!(r2.starts_with("250 "), "{r2}");
    let mut copies = Vec::new();
    for _ in 0..100 {
        copies = gw.store.copies(Some("OUTLI"), 100).await.unwrap();
        if !copies.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let copies = if copies.is_empty() {
        copies
    } else {
        gw.store.copies(Some("OUTLI"), 100).await.unwrap()
    };
    assert_eq!(copies.len(), 1, "her sent message, not bob's: {copies:?}");
    assert!(
        copies[0].meta.contains(&reply_id(&r)) && copies[0].meta.contains("x@partner.example"),
        "{}",
        copies[0].meta
    );
    gw.stop().await;
}

/// The attachment policy applies to outbound mail as to inbound: refused, nothing queued.
#[tokio::test]
async fn the_attachment_policy_applies_outbound() {
    let cap = Capture::start(CaptureOptions::default()).await;
    let gw = gateway(
        cap.addr,
        "[smtp]\nrelay_networks = [\"127.0.0.0/8\"]\n[virus]\nblock_extensions = [\"exe\"]\n",
    )
    .await;
    let mut c = Client::connect(gw.addr).await;
    c.expect("EHLO office.example.org", 250).await;
    let msg = b"From: alice@example.org\r\nSubject: tool\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhere\r\n--b\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"setup.exe\"\r\nContent-Transfer-Encoding: base64\r\n\r\nTVqQAAMAAAAEAAAA\r\n--b--\r\n";
    let r = c
        .send_mail("alice@example.org", &["x@partner.example"], msg)
        .await;
    assert!(r.starts_with("554 5.7.1") && r.contains("setup.exe"), "{r}");
    let e = journal_entry(&gw.store, &reply_id(&r)).await;
    assert!(e.outbound && e.flag.as_deref() == Some("blocked"), "{e:?}");
    assert!(
        gw.store.queue_list(None).await.unwrap().is_empty(),
        "nothing queued"
    );
    gw.stop().await;
}
