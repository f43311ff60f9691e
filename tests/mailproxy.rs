//! The POP3 and IMAP proxies in front of a real Dovecot (loopback, a target and another user),
//! used by real clients — Python's poplib and imaplib over STARTTLS and implicit TLS, and
//! fetchmail. For the target, the export directory receives exactly its logins, retrieved messages
//! (byte for byte) and uploads; for the other user nothing; after the order's end nothing more.
//! Everyone's mail passes unchanged.

mod common;

use common::dovecot::Dovecot;
use common::*;
use std::path::Path;

fn python(script: &str) -> String {
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

/// The records in the export directory: (metadata, message).
fn exported(dir: &Path) -> Vec<(serde_json::Value, Option<Vec<u8>>)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<_> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            (
                serde_json::from_slice::<serde_json::Value>(&std::fs::read(&p).unwrap()).unwrap(),
                std::fs::read(p.with_extension("eml")).ok(),
            )
        })
        .collect();
    out.sort_by_key(|(m, _)| m["time_us"].as_i64());
    out
}

/// Waits until at least `n` copies of `order` are recorded, every one recorded is exported, and
/// that holds for two looks in a row, so a count taken afterwards does not still grow from copies
/// in flight; returns that count.
async fn settled(store: &sponts::storage::Store, order: &str, dir: &Path, n: usize) -> usize {
    let mut seen = (0, 0);
    let mut last = None;
    for _ in 0..100 {
        let copies = store.copies(Some(order), 1000).await.unwrap();
        let done = copies.iter().filter(|c| c.state == "delivered").count();
        seen = (copies.len(), exported(dir).len());
        let complete = copies.len() >= n && done == copies.len() && seen.1 == copies.len();
        if complete && last == Some(copies.len()) {
            return copies.len();
        }
        last = complete.then_some(copies.len());
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    panic!(
        "{} copies recorded, {} exported, {n} expected",
        seen.0, seen.1
    );
}

/// An order for the Dovecot user `target`, in effect for the next hour, exported to `dir`.
fn order_for_target(id: &str, dir: &Path) -> sponts::storage::intercept::Order {
    let now = sponts::clock::now_us();
    sponts::storage::intercept::Order {
        id: id.into(),
        reference: "AG Musterstadt 12 Gs 345/26".into(),
        target: "target@example.org".into(),
        login: Some("target".into()),
        from_us: now - 1_000_000,
        until_us: now + 3_600_000_000,
        deliver: format!("dir:{}", dir.display()),
        deliver_to: None,
        notes: String::new(),
        created_by: "cli:officer".into(),
        created_us: now,
        ended_us: None,
    }
}

const CLIENTS: &str = r#"
import imaplib, poplib, ssl, sys, json
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
pop, pops, imap, imaps = [int(x) for x in sys.argv[1:5]]
out = {}
# POP3, STLS: the target reads both messages.
p = poplib.POP3("127.0.0.1", pop, timeout=20)
try:
    p.user("target"); out["pop_plain_login"] = "accepted"
except poplib.error_proto as e:
    out["pop_plain_login"] = e.args[0].decode()
p.stls(ctx); p.user("target"); p.pass_("target-pass")
out["pop_target"] = [b"\r\n".join(p.retr(i)[1]).decode() for i in (1, 2)]
p.quit()
# POP3S: the other user.
p = poplib.POP3_SSL("127.0.0.1", pops, context=ctx, timeout=20)
p.user("other"); p.pass_("other-pass"); out["pop_other"] = b"\r\n".join(p.retr(1)[1]).decode(); p.quit()
# IMAP, STARTTLS: a wrong password, then the target fetches and appends.
m = imaplib.IMAP4("127.0.0.1", imap, timeout=20)
out["imap_caps_plain"] = sorted(m.capabilities)
m.starttls(ctx)
try:
    m.login("target", "wrong"); out["imap_wrong"] = "accepted"
except imaplib.IMAP4.error:
    out["imap_wrong"] = "refused"
m.login("target", "target-pass")
m.select("INBOX")
out["imap_target"] = [m.fetch("1", "(BODY.PEEK[])")[1][0][1].decode(), m.fetch("2", "(UID RFC822)")[1][0][1].decode()]
m.append("INBOX", None, None, b"Subject: appended by the target\r\n\r\nsaved draft\r\n")
m.logout()
# IMAPS: the other user fetches and appends.
m = imaplib.IMAP4_SSL("127.0.0.1", imaps, ssl_context=ctx, timeout=20)
m.login("other", "other-pass"); m.select("INBOX")
out["imap_other"] = m.fetch("1", "(BODY[])")[1][0][1].decode()
m.append("INBOX", None, None, b"Subject: appended by the other\r\n\r\nnot copied\r\n")
m.logout()
print(json.dumps(out))
"#;

#[tokio::test]
async fn a_targets_pop3_and_imap_sessions_are_copied_and_no_one_elses() {
    let dovecot = Dovecot::start();
    let first: &[u8] = b"From: a@partner.example\r\nSubject: first\r\n\r\nfor the target\r\n";
    let second: &[u8] =
        b"From: b@partner.example\r\nSubject: second\r\n\r\n.a line with a dot\r\nand more\r\n";
    let others: &[u8] = b"Subject: for the other\r\n\r\nnot for the agency\r\n";
    dovecot.deliver("target", first);
    dovecot.deliver("target", second);
    dovecot.deliver("other", others);
    let export = tempfile::tempdir().unwrap();
    let cap = Capture::start(CaptureOptions::default()).await;
    let extra = format!(
        "[pop3_proxy]\nlisten = [\"127.0.0.1:0\"]\ntls_listen = [\"127.0.0.1:0\"]\nbackend = \"{}\"\nbackend_tls = \"starttls\"\n\
         [imap_proxy]\nlisten = [\"127.0.0.1:0\"]\ntls_listen = [\"127.0.0.1:0\"]\nbackend = \"{}\"\nbackend_tls = \"tls\"\n[intercept]\nretry_after = \"1s\"\n",
        dovecot.pop3, dovecot.imaps
    );
    let gw = gateway(cap.addr, &extra).await;
    let order = order_for_target("LI7", export.path());
    gw.store.add_order(&order).await.unwrap();
    gw.reload_orders().await;
    let proxies = &gw.running.as_ref().unwrap().proxies;
    let ports = [
        proxies.pop3[0],
        proxies.pop3_tls[0],
        proxies.imap[0],
        proxies.imap_tls[0],
    ]
    .map(|a| a.port().to_string());
    let script = format!("import sys; sys.argv[1:] = {ports:?}\n{CLIENTS}");
    let out = tokio::task::spawn_blocking(move || python(&script))
        .await
        .unwrap();
    let out: serde_json::Value = serde_json::from_str(out.trim()).unwrap();

    // Everyone got their mail unchanged.
    let text = |b: &[u8]| String::from_utf8(b.to_vec()).unwrap();
    assert!(
        out["pop_plain_login"].as_str().unwrap().starts_with("-ERR"),
        "no password before TLS: {out}"
    );
    assert_eq!(
        out["pop_target"][0].as_str().unwrap().trim_end(),
        text(first).trim_end()
    );
    assert_eq!(
        out["pop_target"][1].as_str().unwrap().trim_end(),
        text(second).trim_end()
    );
    assert_eq!(
        out["pop_other"].as_str().unwrap().trim_end(),
        text(others).trim_end()
    );
    assert_eq!(out["imap_target"][0].as_str().unwrap(), text(first));
    assert_eq!(out["imap_target"][1].as_str().unwrap(), text(second));
    assert_eq!(out["imap_other"].as_str().unwrap(), text(others));
    assert_eq!(out["imap_wrong"], "refused");
    let caps: Vec<&str> = out["imap_caps_plain"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert!(
        caps.contains(&"STARTTLS")
            && caps.contains(&"LOGINDISABLED")
            && !caps.iter().any(|c| c.starts_with("COMPRESS")),
        "{caps:?}"
    );
    assert!(
        dovecot
            .messages("target")
            .iter()
            .any(|m| m == b"Subject: appended by the target\r\n\r\nsaved draft\r\n")
    );
    assert!(
        dovecot
            .messages("other")
            .iter()
            .any(|m| m.starts_with(b"Subject: appended by the other"))
    );

    // The agency's records: the target's only.
    let dir = export.path().join("LI7");
    let expected = 3 + 2 + 2 + 1; // logins (POP3, IMAP wrong, IMAP), POP3 RETR x2, IMAP FETCH x2, APPEND
    settled(&gw.store, "LI7", &dir, expected).await;
    let records = exported(&dir);
    let kinds: Vec<String> = records
        .iter()
        .map(|(m, _)| {
            format!(
                "{} {}",
                m["service"].as_str().unwrap(),
                m["event"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "pop3 login",
            "pop3 retrieve",
            "pop3 retrieve",
            "imap login",
            "imap login",
            "imap retrieve",
            "imap retrieve",
            "imap append"
        ],
        "{records:#?}"
    );
    let logins: Vec<(bool, String)> = records
        .iter()
        .filter(|(m, _)| m["event"] == "login")
        .map(|(m, _)| {
            (
                m["details"]["success"].as_bool().unwrap(),
                m["details"]["login"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        logins,
        [
            (true, "target".to_string()),
            (false, "target".into()),
            (true, "target".into())
        ]
    );
    let contents: Vec<Vec<u8>> = records.iter().filter_map(|(_, c)| c.clone()).collect();
    assert_eq!(
        contents,
        [
            first.to_vec(),
            second.to_vec(),
            first.to_vec(),
            second.to_vec(),
            b"Subject: appended by the target\r\n\r\nsaved draft\r\n".to_vec()
        ],
        "byte for byte"
    );
    for (m, _) in &records {
        assert_eq!(m["target"], "target@example.org");
        assert!(m["tls"].as_str().unwrap().starts_with("TLS"), "{m}");
        assert_eq!(m["client"]["address"], "127.0.0.1");
    }
    assert_eq!(records[5].1.as_deref(), Some(first));
    assert_eq!(records[5].0["details"]["item"], "BODY[]");
    assert_eq!(records[6].0["details"]["item"], "RFC822");

    // fetchmail through the POP3 proxy (STLS) as the target: copied too.
    let fm = tempfile::tempdir().unwrap();
    let (code, err) =
        common::fetchmail::fetch(proxies.pop3[0].port(), "target", "target-pass", fm.path()).await;
    assert_eq!(code, Some(0), "{err}");
    assert!(
        common::fetchmail::fetched(fm.path()).len() >= 2,
        "fetchmail got the target's mail"
    );
    let after_fetchmail = settled(&gw.store, "LI7", &dir, expected + 1 + 2).await;
    assert!(
        after_fetchmail >= expected + 1 + 2,
        "a login and the messages fetchmail retrieved"
    );

    // The order ends: the target's sessions pass unrecorded.
    gw.store
        .end_order_audited("LI7", sponts::clock::now_us(), "cli:officer")
        .await
        .unwrap();
    gw.wait_orders("target", 0).await;
    let again = format!("import sys; sys.argv[1:] = {ports:?}\n{CLIENTS}");
    tokio::task::spawn_blocking(move || python(&again))
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1000)).await;
    assert_eq!(
        exported(&dir).len(),
        after_fetchmail,
        "nothing after the order's end"
    );
    let log = gw.store.audit_log().await.unwrap();
    assert_eq!(
        log.iter().filter(|e| e.action == "copy.record").count(),
        after_fetchmail
    );
    gw.stop().await;
}

const ODD_CLIENTS: &str = r#"
import base64, poplib, socket, ssl, sys, json
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
pops, imaps = int(sys.argv[1]), int(sys.argv[2])
out = {}
def imap_session():
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", imaps), timeout=20))
    f = s.makefile("rb")
    f.readline()
    return s, f
def tagged(f, tag):
    while True:
        line = f.readline()
        if line.startswith(tag + b" ") or not line:
            return line.decode().strip()
s, f = imap_session()
s.sendall(b"a0 SELECT INBOX\r\n"); out["before_login"] = tagged(f, b"a0")
s.sendall(b"a1 AUTHENTICATE CRAM-MD5\r\n"); out["cram"] = tagged(f, b"a1")
# Runs of spaces: sponts reads the name all the same.
s.sendall(b"a2  LOGIN   target  target-pass\r\n"); out["login"] = tagged(f, b"a2")
# A literal the backend refuses (no such mailbox): the client never sends it ...
s.sendall(b"a3 APPEND NoSuchBox {10}\r\n"); out["refused_literal"] = tagged(f, b"a3")
# ... and the next APPEND is still read and copied.
msg = b"Subject: after a refused literal\r\n\r\ncopied all the same\r\n"
s.sendall(b"a4 APPEND INBOX {%d}\r\n" % len(msg)); out["go"] = f.readline().decode().strip()
s.sendall(msg + b"\r\n"); out["append"] = tagged(f, b"a4")
s.sendall(b"a5 LOGOUT\r\n"); tagged(f, b"a5"); s.close()
# SASL PLAIN with an initial response, over POP3S; CRAM-MD5 is refused by sponts.
p = poplib.POP3_SSL("127.0.0.1", pops, context=ctx, timeout=20)
try:
    p._shortcmd("AUTH CRAM-MD5"); out["pop_cram"] = "accepted"
except poplib.error_proto as e:
    out["pop_cram"] = e.args[0].decode()
out["pop_auth"] = p._shortcmd("AUTH PLAIN " + base64.b64encode(b"\0target\0target-pass").decode()).decode()
out["pop_retr"] = b"\r\n".join(p.retr(1)[1]).decode()
p.quit()
print(json.dumps(out))
"#;

#[tokio::test]
async fn odd_clients_do_not_slip_past_the_copies() {
    let dovecot = Dovecot::start();
    let first: &[u8] = b"Subject: first\r\n\r\nfor the target\r\n";
    dovecot.deliver("target", first);
    let export = tempfile::tempdir().unwrap();
    let cap = Capture::start(CaptureOptions::default()).await;
    let extra = format!(
        "[pop3_proxy]\ntls_listen = [\"127.0.0.1:0\"]\nbackend = \"{}\"\nbackend_tls = \"tls\"\n[imap_proxy]\ntls_listen = [\"127.0.0.1:0\"]\nbackend = \"{}\"\nbackend_tls = \"starttls\"\n",
        dovecot.pop3s, dovecot.imap
    );
    let gw = gateway(cap.addr, &extra).await;
    let order = order_for_target("LI8", export.path());
    gw.store.add_order(&order).await.unwrap();
    gw.reload_orders().await;
    let proxies = &gw.running.as_ref().unwrap().proxies;
    let script = format!(
        "import sys; sys.argv[1:] = ['{}', '{}']\n{ODD_CLIENTS}",
        proxies.pop3_tls[0].port(),
        proxies.imap_tls[0].port()
    );
    let out = tokio::task::spawn_blocking(move || python(&script))
        .await
        .unwrap();
    let out: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert!(
        out["before_login"].as_str().unwrap().starts_with("a0 BAD"),
        "{out}"
    );
    assert!(out["cram"].as_str().unwrap().starts_with("a1 NO"), "{out}");
    assert!(out["login"].as_str().unwrap().starts_with("a2 OK"), "{out}");
    assert!(
        out["refused_literal"]
            .as_str()
            .unwrap()
            .starts_with("a3 NO"),
        "{out}"
    );
    assert!(
        out["go"].as_str().unwrap().starts_with('+')
            && out["append"].as_str().unwrap().starts_with("a4 OK"),
        "{out}"
    );
    assert!(
        out["pop_cram"].as_str().unwrap().starts_with("-ERR"),
        "{out}"
    );
    assert!(
        out["pop_auth"].as_str().unwrap().starts_with("+OK"),
        "{out}"
    );
    let retrieved = format!("{}\r\n", out["pop_retr"].as_str().unwrap());
    assert!(
        dovecot
            .messages("target")
            .iter()
            .any(|m| m == retrieved.as_bytes()),
        "{retrieved}"
    );

    let dir = export.path().join("LI8");
    settled(&gw.store, "LI8", &dir, 4).await;
    let records = exported(&dir);
    let kinds: Vec<String> = records
        .iter()
        .map(|(m, _)| {
            format!(
                "{} {}",
                m["service"].as_str().unwrap(),
                m["event"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        kinds,
        ["imap login", "imap append", "pop3 login", "pop3 retrieve"],
        "{records:#?}"
    );
    assert_eq!(
        records[1].1.as_deref(),
        Some(&b"Subject: after a refused literal\r\n\r\ncopied all the same\r\n"[..])
    );
    assert_eq!(
        records[3].1.as_deref(),
        Some(retrieved.as_bytes()),
        "the copy is what the client got"
    );
    assert_eq!(records[2].0["details"]["login"], "target");
    gw.stop().await;
}

const IDLE_CLIENTS: &str = r#"
import imaplib, ssl, sys, time, json
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
port = int(sys.argv[1])
def session():
    m = imaplib.IMAP4_SSL("127.0.0.1", port, ssl_context=ctx, timeout=20)
    m.login("other", "other-pass")
    return m
active, quiet = session(), session()
out = {"active": []}
for _ in range(3):
    time.sleep(4)
    out["active"].append(active.noop()[0])
try:
    out["quiet"] = quiet.noop()[0]
except Exception as e:
    out["quiet"] = "closed: %r" % (e,)
active.logout()
print(json.dumps(out))
"#;

#[tokio::test]
async fn a_session_quiet_for_the_idle_timeout_is_closed() {
    let dovecot = tokio::task::spawn_blocking(Dovecot::start).await.unwrap();
    let cap = Capture::start(CaptureOptions::default()).await;
    let extra = format!(
        "[imap_proxy]\ntls_listen = [\"127.0.0.1:0\"]\nbackend = \"{}\"\nbackend_tls = \"tls\"\nidle_timeout = \"10s\"\n",
        dovecot.imaps
    );
    let gw = gateway(cap.addr, &extra).await;
    let port = gw.running.as_ref().unwrap().proxies.imap_tls[0].port();
    let script = format!("import sys; sys.argv[1:] = ['{port}']\n{IDLE_CLIENTS}");
    let out = tokio::task::spawn_blocking(move || python(&script))
        .await
        .unwrap();
    let out: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    // Relayed unread (no order), yet timed: a session in use stays, one left quiet for 12 s goes.
    assert_eq!(
        out["active"],
        serde_json::json!(["OK", "OK", "OK"]),
        "{out}"
    );
    assert!(
        out["quiet"].as_str().unwrap().starts_with("closed"),
        "{out}"
    );
    gw.stop().await;
}

const COMPRESSING_CLIENTS: &str = r#"
import imaplib, ssl, sys, json, zlib
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
port = int(sys.argv[1])
imaplib.Commands["COMPRESS"] = ("AUTH", "SELECTED")

class Deflating(imaplib.IMAP4_SSL):
    """imaplib with COMPRESS=DEFLATE (RFC 4978): raw DEFLATE both ways, sync-flushed."""
    zon = False
    def compress(self):
        typ, _ = self._simple_command("COMPRESS", "DEFLATE")
        if typ != "OK":
            raise RuntimeError("COMPRESS refused")
        self.zin, self.zout, self.zbuf, self.zon = zlib.decompressobj(-15), zlib.compressobj(6, zlib.DEFLATED, -15), b"", True
    def send(self, data):
        if self.zon:
            data = self.zout.compress(data) + self.zout.flush(zlib.Z_SYNC_FLUSH)
        self.sock.sendall(data)
    def fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError("closed")
        self.zbuf += self.zin.decompress(chunk)
    def read(self, size):
        if not self.zon:
            return super().read(size)
        while len(self.zbuf) < size:
            self.fill()
        out, self.zbuf = self.zbuf[:size], self.zbuf[size:]
        return out
    def readline(self):
        if not self.zon:
            return super().readline()
        while b"\n" not in self.zbuf:
            self.fill()
        i = self.zbuf.index(b"\n") + 1
        out, self.zbuf = self.zbuf[:i], self.zbuf[i:]
        return out

out = {}
for user in ("target", "other"):
    m = Deflating("127.0.0.1", port, ssl_context=ctx, timeout=20)
    m.login(user, user + "-pass")
    caps = m.capability()[1][0].decode().split()
    m.compress()
    m.select("INBOX")
    body = m.fetch("1", "(BODY.PEEK[])")[1][0][1].decode()
    m.append("INBOX", None, None, ("Subject: compressed upload by %s\r\n\r\n%s\r\n" % (user, "z" * 5000)).encode())
    after = m.capability()[1][0].decode().split()
    m.logout()
    out[user] = {"caps": caps, "body": body, "caps_after": after}
print(json.dumps(out))
"#;

#[tokio::test]
async fn a_target_may_compress_like_anyone_and_is_copied_all_the_same() {
    let dovecot = tokio::task::spawn_blocking(Dovecot::start).await.unwrap();
    let big = format!(
        "Subject: large\r\n\r\n{}\r\n",
        "compressible line of text\r\n".repeat(4000)
    );
    dovecot.deliver("target", big.as_bytes());
    dovecot.deliver("other", b"Subject: for the other\r\n\r\nhi\r\n");
    let export = tempfile::tempdir().unwrap();
    let cap = Capture::start(CaptureOptions::default()).await;
    let extra = format!(
        "[imap_proxy]\ntls_listen = [\"127.0.0.1:0\"]\nbackend = \"{}\"\nbackend_tls = \"tls\"\n",
        dovecot.imaps
    );
    let gw = gateway(cap.addr, &extra).await;
    gw.store
        .add_order(&order_for_target("LIZ", export.path()))
        .await
        .unwrap();
    gw.reload_orders().await;
    let port = gw.running.as_ref().unwrap().proxies.imap_tls[0].port();
    let script = format!("import sys; sys.argv[1:] = ['{port}']\n{COMPRESSING_CLIENTS}");
    let out = tokio::task::spawn_blocking(move || python(&script))
        .await
        .unwrap();
    let out: serde_json::Value = serde_json::from_str(out.trim()).unwrap();

    // The same capabilities for both, COMPRESS=DEFLATE among them; the mail as it is.
    assert_eq!(out["target"]["caps"], out["other"]["caps"], "{out}");
    assert!(
        out["target"]["caps"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c == "COMPRESS=DEFLATE"),
        "{out}"
    );
    assert!(
        out["target"]["caps_after"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c == "IMAP4rev1"),
        "commands go on after COMPRESS: {out}"
    );
    assert_eq!(out["target"]["body"].as_str().unwrap(), big);
    assert_eq!(
        out["other"]["body"].as_str().unwrap(),
        "Subject: for the other\r\n\r\nhi\r\n"
    );
    let upload = |u: &str| {
        format!(
            "Subject: compressed upload by {u}\r\n\r\n{}\r\n",
            "z".repeat(5000)
        )
        .into_bytes()
    };
    assert!(dovecot.messages("target").contains(&upload("target")));
    assert!(dovecot.messages("other").contains(&upload("other")));

    // The target's retrieval and upload, read through the compression, byte for byte.
    let dir = export.path().join("LIZ");
    settled(&gw.store, "LIZ", &dir, 3).await;
    let records = exported(&dir);
    let kinds: Vec<String> = records
        .iter()
        .map(|(m, _)| {
            format!(
                "{} {}",
                m["service"].as_str().unwrap(),
                m["event"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        kinds,
        ["imap login", "imap retrieve", "imap append"],
        "{records:#?}"
    );
    assert_eq!(records[1].1.as_deref(), Some(big.as_bytes()));
    assert_eq!(records[2].1.as_deref(), Some(&upload("target")[..]));
    gw.stop().await;
}
