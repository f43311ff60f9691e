//! POP3 emergency access with real clients: Python's poplib over STLS reads the mail queued
//! while the backend is down; DELE hides a message for that user only; sign-in needs TLS.

mod common;

use common::*;

async fn queue_for_alice(gw: &Gateway) -> Vec<String> {
    add_user(&gw.store, "alice@example.org", sponts::storage::Role::User).await;
    add_user(&gw.store, "bob@example.org", sponts::storage::Role::User).await;
    let mut ids = Vec::new();
    for (i, rcpt) in [
        "alice@example.org",
        "alice@example.org",
        "bob@example.org",
        "alice@example.org",
    ]
    .iter()
    .enumerate()
    {
        let mut c = Client::connect(gw.addr).await;
        c.expect("EHLO client.test", 250).await;
        let r = c.send_mail("news@partner.example", &[rcpt], format!("Subject: msg {i}\r\nFrom: news@partner.example\r\n\r\nline one\r\n.dot line\r\nline three\r\n").as_bytes()).await;
        assert!(r.contains("queued"), "{r}");
        ids.push(reply_id(&r));
    }
    ids
}

fn python(script: String) -> String {
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

#[tokio::test]
async fn poplib_reads_queued_mail_over_stls_and_dele_hides_it_for_that_user_only() {
    let gw = gateway(dead_address(), "[queue]\nprobe = 30\n").await;
    let ids = queue_for_alice(&gw).await;
    let port = gw.pop3.port();
    let script = format!(
        r#"
import poplib, ssl
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
p = poplib.POP3("127.0.0.1", {port}, timeout=20)
caps = p.capa()
print("CAPA", sorted(caps))
try:
    p.user("alice@example.org"); print("PLAIN-USER accepted")
except poplib.error_proto as e:
    print("PLAIN-USER refused", e)
p.stls(context=ctx)
caps = p.capa()
print("CAPA-TLS", "STLS" in caps, "USER", "USER" in caps)
p.user("alice@example.org"); p.pass_("password for tests")
print("STAT", p.stat())
print("UIDL", [x.decode() for x in p.uidl()[1]])
print("LIST", [x.decode() for x in p.list()[1]])
top = p.top(1, 0)[1]
print("TOP", [x.decode() for x in top if x.startswith(b"Subject")])
msg = p.retr(2)[1]
print("RETR", [x.decode() for x in msg][-3:])
print("DELE", p.dele(1).decode())
p.quit()
p = poplib.POP3("127.0.0.1", {port}, timeout=20); p.stls(context=ctx)
p.user("alice@example.org"); p.pass_("password for tests")
print("STAT2", p.stat())
print("UIDL2", [x.decode() for x in p.uidl()[1]])
try:
    p.retr(9); print("RETR9 ok")
except poplib.error_proto as e:
    print("RETR9", e)
p.quit()
"#
    );
    let out = tokio::task::spawn_blocking(move || python(script))
        .await
        .unwrap();
    let line = |k: &str| {
        out.lines()
            .find(|l| l.starts_with(&format!("{k} ")))
            .unwrap_or_else(|| panic!("{k} missing in {out}"))
            .to_string()
    };
    assert!(
        line("CAPA").contains("'STLS'")
            && line("CAPA").contains("'UIDL'")
            && !line("CAPA").contains("'USER'"),
        "no sign-in offered before TLS: {out}"
    );
    assert!(
        line("PLAIN-USER").contains("refused") && line("PLAIN-USER").contains("STLS"),
        "{out}"
    );
    assert_eq!(line("CAPA-TLS"), "CAPA-TLS False USER True");
    assert!(line("STAT").starts_with("STAT (3, "), "{out}");
    let alice: Vec<&String> = [&ids[0], &ids[1], &ids[3]].into_iter().collect();
    assert_eq!(
        line("UIDL"),
        format!(
            "UIDL ['1 {}', '2 {}', '3 {}']",
            alice[0], alice[1], alice[2]
        )
    );
    assert_eq!(line("TOP"), "TOP ['Subject: msg 0']");
    assert_eq!(
        line("RETR"),
        "RETR ['line one', '.dot line', 'line three']",
        "dot-stuffing undone by the client"
    );
    assert!(line("DELE").contains("+OK"));
    assert!(line("STAT2").starts_with("STAT2 (2, "), "{out}");
    assert_eq!(
        line("UIDL2"),
        format!("UIDL2 ['1 {}', '2 {}']", alice[1], alice[2]),
        "stable UIDs"
    );
    assert!(line("RETR9").contains("-ERR"), "{out}");
    // DELE touched nothing but alice's view.
    assert_eq!(gw.store.queue_list(None).await.unwrap().len(), 4);
    gw.stop().await;
}

async fn pop(addr: std::net::SocketAddr) -> Client {
    let (c, greeting) = Client::connect_raw(addr).await;
    assert!(greeting.starts_with("+OK "), "{greeting}");
    c
}

#[tokio::test]
async fn auth_plain_and_throttling() {
    let gw = gateway(
        dead_address(),
        "[queue]\nprobe = 30\n[pop3]\nallow_plaintext_auth = true\n",
    )
    .await;
    queue_for_alice(&gw).await;
    let mut c = pop(gw.pop3).await;
    // base64("\0alice@example.org\0password for tests")
    let token = "AGFsaWNlQGV4YW1wbGUub3JnAHBhc3N3b3JkIGZvciB0ZXN0cw==";
    assert!(
        c.cmd(&format!("AUTH PLAIN {token}"))
            .await
            .starts_with("+OK 3 messages")
    );
    assert!(c.cmd("STAT").await.starts_with("+OK 3 "));
    assert!(c.cmd("XYZZY").await.starts_with("-ERR"));
    assert!(c.cmd("QUIT").await.starts_with("+OK"));

    for _ in 0..5 {
        let mut c = pop(gw.pop3).await;
        c.cmd("USER bob@example.org").await;
        assert!(c.cmd("PASS wrong").await.starts_with("-ERR [AUTH]"));
    }
    let mut c = pop(gw.pop3).await;
    c.cmd("USER bob@example.org").await;
    let r = c.cmd("PASS password for tests").await;
    assert!(r.starts_with("-ERR [AUTH] too many failed sign-ins"), "{r}");
    gw.stop().await;
}

/// fetchmail, as a user would run it during an outage: STLS, every new message into an MDA, and
/// on the next run (UIDL remembered) nothing twice.
#[tokio::test]
async fn fetchmail_downloads_everything_once() {
    let gw = gateway(dead_address(), "[queue]\nprobe = 30\n").await;
    queue_for_alice(&gw).await;
    let dir = tempfile::tempdir().unwrap();
    let (code, log) =
        fetchmail::fetch(gw.pop3.port(), "alice@example.org", PASSWORD, dir.path()).await;
    assert_eq!(code, Some(0), "{log}");
    let files = fetchmail::fetched(dir.path());
    assert_eq!(files.len(), 3, "{log}");
    let mut subjects: Vec<String> = files
        .iter()
        .map(|f| {
            std::fs::read_to_string(f)
                .unwrap()
                .lines()
                .find(|l| l.starts_with("Subject:"))
                .unwrap()
                .to_string()
        })
        .collect();
    subjects.sort();
    assert_eq!(
        subjects,
        vec!["Subject: msg 0", "Subject: msg 1", "Subject: msg 3"]
    );
    // fetchmail exits 1 for "no new mail".
    let (code, log) =
        fetchmail::fetch(gw.pop3.port(), "alice@example.org", PASSWORD, dir.path()).await;
    assert_eq!(code, Some(1), "{log}");
    assert_eq!(fetchmail::fetched(dir.path()).len(), 3, "nothing twice");
    gw.stop().await;
}

#[tokio::test]
async fn implicit_tls_listener() {
    let gw = gateway(
        dead_address(),
        "[queue]\nprobe = 30\n[pop3]\ntls_listen = \"127.0.0.1:0\"\n",
    )
    .await;
    queue_for_alice(&gw).await;
    let port = gw
        .running
        .as_ref()
        .unwrap()
        .pop3
        .as_ref()
        .unwrap()
        .tls_addr
        .unwrap()
        .port();
    let script = format!(
        r#"
import poplib, ssl
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
p = poplib.POP3_SSL("127.0.0.1", {port}, context=ctx, timeout=20)
p.user("alice@example.org"); p.pass_("password for tests")
print("STAT", p.stat()[0], "STLS" in p.capa())
p.quit()
"#
    );
    let out = tokio::task::spawn_blocking(move || python(script))
        .await
        .unwrap();
    assert_eq!(out.trim(), "STAT 3 False");
    gw.stop().await;
}

/// Besides queued mail, POP3 shows what was delivered lately (from the backup), unless turned off.
#[tokio::test]
async fn recently_delivered_mail_is_in_the_view() {
    let cap = Capture::start(CaptureOptions::default()).await;
    for (days, want) in [(7, "+OK 1 "), (0, "+OK 0 ")] {
        let gw = gateway(
            cap.addr,
            &format!("[pop3]\nallow_plaintext_auth = true\nrecent_days = {days}\n"),
        )
        .await;
        add_user(&gw.store, "alice@example.org", sponts::storage::Role::User).await;
        let mut c = Client::connect(gw.addr).await;
        c.expect("EHLO client.test", 250).await;
        let r = c
            .send_mail(
                "a@partner.example",
                &["alice@example.org"],
                b"Subject: delivered\r\n\r\nx\r\n",
            )
            .await;
        assert!(r.contains("queued as CAPTURE"), "{r}");
        let mut p = pop(gw.pop3).await;
        p.cmd("USER alice@example.org").await;
        assert!(p.cmd("PASS password for tests").await.starts_with("+OK"));
        let stat = p.cmd("STAT").await;
        assert!(stat.starts_with(want), "recent_days = {days}: {stat}");
        gw.stop().await;
    }
}

#[tokio::test]
async fn stopping_ends_the_sessions_it_was_serving() {
    let cap = Capture::start(CaptureOptions::default()).await;
    let gw = gateway(cap.addr, "").await;
    let mut c = pop(gw.pop3).await;
    assert!(
        c.cmd("NOOP").await.starts_with("-ERR"),
        "a live session (NOOP before sign-in is refused)"
    );
    // The stop returns only once this session has ended: the client sees its connection closed.
    gw.stop().await;
    let closed = tokio::time::timeout(std::time::Duration::from_millis(500), c.closed()).await;
    assert_eq!(closed.ok(), Some(true), "the session outlived the stop");
}

/// A POP3 session from another loopback address (another client, as far as sponts can tell).
async fn pop_from(addr: std::net::SocketAddr, source: &str) -> Client {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
    let (c, greeting) = Client::from_stream(socket.connect(addr).await.unwrap()).await;
    assert!(greeting.starts_with("+OK "), "{greeting}");
    c
}

/// One failed sign-in from `source`: the answer, how long it took, and whether the session is
/// still open afterwards.
async fn failed_sign_in(
    addr: std::net::SocketAddr,
    source: &str,
    user: &str,
) -> (String, std::time::Duration, bool) {
    let mut c = pop_from(addr, source).await;
    assert!(c.cmd(&format!("USER {user}")).await.starts_with("+OK"));
    let t = std::time::Instant::now();
    let answer = c.cmd("PASS not the password").await;
    let took = t.elapsed();
    let open = c.cmd("NOOP").await.starts_with("-ERR");
    (answer, took, open)
}

/// Nothing tells an account that exists from one that does not: the same answers while signing
/// in fails, the same answer once the name is throttled, and about the same time for each
/// (an unknown name is checked against a dummy hash, as long as a real one).
#[tokio::test]
async fn throttling_and_timing_do_not_tell_which_accounts_exist() {
    let gw = gateway(
        dead_address(),
        "[queue]\nprobe = 30\n[pop3]\nallow_plaintext_auth = true\n",
    )
    .await;
    add_user(&gw.store, "alice@example.org", sponts::storage::Role::User).await;
    let names = [(1, "alice@example.org"), (2, "nobody@example.org")];
    // (answers, the fastest failure) per name. The two names take turns, so a busy moment of
    // the machine falls on both; each attempt comes from an address of its own: only the
    // name's count grows.
    let mut seen: Vec<(Vec<(String, bool)>, std::time::Duration)> =
        vec![(Vec::new(), std::time::Duration::MAX); 2];
    for i in 1..=5 {
        for (k, (n, name)) in names.iter().enumerate() {
            let (answer, took, open) =
                failed_sign_in(gw.pop3, &format!("127.0.{n}.{i}"), name).await;
            seen[k].0.push((answer, open));
            seen[k].1 = seen[k].1.min(took);
        }
    }
    // The sixth comes at once: the name is throttled now.
    for (k, (n, name)) in names.iter().enumerate() {
        let (answer, _, open) = failed_sign_in(gw.pop3, &format!("127.0.{n}.9"), name).await;
        seen[k].0.push((answer, open));
    }
    let (known, unknown) = (&seen[0], &seen[1]);
    assert!(
        known.0[0]
            .0
            .starts_with("-ERR [AUTH] wrong user name or password"),
        "{known:?}"
    );
    assert!(
        known.0[5]
            .0
            .starts_with("-ERR [AUTH] too many failed sign-ins"),
        "{known:?}"
    );
    assert_eq!(
        known.0, unknown.0,
        "the same answers for an account that exists and one that does not"
    );
    let ratio = known.1.as_secs_f64() / unknown.1.as_secs_f64();
    assert!(
        (0.5..2.0).contains(&ratio),
        "the fastest of five failures took {:?} for a known name, {:?} for an unknown one",
        known.1,
        unknown.1
    );
    gw.stop().await;
}

/// A wrong message number is an ordinary mistake: it is refused, and the session goes on however
/// often it happens. Unknown commands still end a session after a while.
#[tokio::test]
async fn wrong_message_numbers_do_not_end_the_session() {
    let gw = gateway(
        dead_address(),
        "[queue]\nprobe = 30\n[pop3]\nallow_plaintext_auth = true\n",
    )
    .await;
    queue_for_alice(&gw).await;
    let mut c = pop(gw.pop3).await;
    c.cmd("USER alice@example.org").await;
    assert!(
        c.cmd("PASS password for tests")
            .await
            .starts_with("+OK 3 messages")
    );
    assert!(c.cmd("DELE 3").await.starts_with("+OK"));
    for round in 0..5 {
        for wrong in [
            "RETR 0", "RETR abc", "DELE 99", "LIST 4", "UIDL -1", "TOP 1", "TOP x 2", "RETR 3",
            "DELE 3", "RETR",
        ] {
            let r = c.cmd(wrong).await;
            assert!(r.starts_with("-ERR "), "round {round}, {wrong}: {r}");
        }
    }
    assert!(
        c.cmd("STAT").await.starts_with("+OK 2 "),
        "still usable after 50 wrong numbers"
    );
    assert!(c.cmd("LIST 1").await.starts_with("+OK 1 "));
    // Unknown commands are another matter.
    for _ in 0..10 {
        assert!(c.cmd("XYZZY").await.starts_with("-ERR unknown command"));
    }
    let last = c.reply().await;
    assert!(last.contains("too many errors"), "{last}");
    assert!(c.closed().await);
    gw.stop().await;
}
