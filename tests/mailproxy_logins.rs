//! Logins through the POP3 and IMAP proxies, with a real Dovecot behind them and Python's poplib
//! and imaplib in front, each client from a loopback address of its own: Dovecot sees every
//! client's address (not sponts'), a client cannot name another address itself, sponts refuses
//! logins from an address with too many failures, every session leaves a log line, and before
//! TLS no way to log in is offered.

mod common;

use common::dovecot::Dovecot;
use common::*;
use std::sync::{Arc, Mutex};

fn python(script: &str) -> serde_json::Value {
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
    serde_json::from_str(text.trim()).unwrap()
}

/// What sponts logs while a test runs (its sessions run on the test's thread).
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    /// The session lines of `protocol` from `client` (an address without port).
    fn sessions(&self, protocol: &str, client: &str) -> Vec<String> {
        let from = format!("client={client}:");
        self.text()
            .lines()
            .filter(|l| l.contains(&format!("{protocol} proxy session")) && l.contains(&from))
            .map(str::to_string)
            .collect()
    }
}

const CLIENTS: &str = r#"
import imaplib, poplib, socket, ssl, sys, json
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
pop, imap = int(sys.argv[1]), int(sys.argv[2])
imaplib.Commands["ID"] = ("NONAUTH", "AUTH", "SELECTED")

def imap_from(source):
    class Imap(imaplib.IMAP4):
        def _create_socket(self, timeout):
            return socket.create_connection((self.host, self.port), timeout, source_address=(source, 0))
    m = Imap("127.0.0.1", imap, timeout=20)
    m.starttls(ctx)
    return m

def pop_from(source):
    class Pop(poplib.POP3):
        def _create_socket(self, timeout):
            return socket.create_connection((self.host, self.port), timeout, source_address=(source, 0))
    p = Pop("127.0.0.1", pop, timeout=20)
    return p

def error(f):
    try:
        f(); return "accepted"
    except (imaplib.IMAP4.error, poplib.error_proto) as e:
        return (e.args[0].decode() if isinstance(e.args[0], bytes) else str(e.args[0]))

out = {}
# 127.0.0.2 claims another address itself, then logs in.
m = imap_from("127.0.0.2")
out["imap_id"] = m._simple_command("ID", '("x-originating-ip" "10.9.8.7" "x-originating-port" "1")')[0]
m.login("target", "target-pass"); m.logout()
p = pop_from("127.0.0.2")
out["pop_xclient"] = error(lambda: p._shortcmd("XCLIENT ADDR=10.9.8.7 PORT=1"))
p.stls(ctx); p.user("target"); p.pass_("target-pass"); p.quit()

# 127.0.0.3 guesses: three wrong passwords, then even the right one is refused by sponts.
m = imap_from("127.0.0.3")
out["imap_guesses"] = [error(lambda: m.login("target", "wrong %d" % i)) for i in range(3)]
out["imap_throttled"] = error(lambda: m.login("target", "target-pass"))
m.logout()
p = pop_from("127.0.0.3"); p.stls(ctx)
out["pop_guesses"] = []
for i in range(3):
    p.user("target"); out["pop_guesses"].append(error(lambda: p.pass_("wrong %d" % i)))
p.user("target"); out["pop_throttled"] = error(lambda: p.pass_("target-pass"))
p.quit()
# A new session from there is refused too; another address is not.
m = imap_from("127.0.0.3")
out["imap_throttled_again"] = error(lambda: m.login("other", "other-pass"))
m.logout()
m = imap_from("127.0.0.4")
out["imap_other_address"] = error(lambda: m.login("other", "other-pass"))
m.logout()
p = pop_from("127.0.0.4"); p.stls(ctx); p.user("other")
out["pop_other_address"] = error(lambda: p.pass_("other-pass"))
p.quit()
print(json.dumps(out))
"#;

#[tokio::test]
async fn the_backend_sees_each_clients_address_and_sponts_throttles_failed_logins() {
    let logs = Logs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _logging = tracing::subscriber::set_default(subscriber);
    let dovecot = tokio::task::spawn_blocking(Dovecot::start).await.unwrap();
    let cap = Capture::start(CaptureOptions::default()).await;
    let extra = format!(
        "[pop3_proxy]\nlisten = [\"127.0.0.1:0\"]\nbackend = \"{}\"\nmax_failed_logins = 3\n\
         [imap_proxy]\nlisten = [\"127.0.0.1:0\"]\nbackend = \"{}\"\nmax_failed_logins = 3\n",
        dovecot.pop3, dovecot.imap
    );
    let gw = gateway(cap.addr, &extra).await;
    let proxies = &gw.running.as_ref().unwrap().proxies;
    let script = format!(
        "import sys; sys.argv[1:] = ['{}', '{}']\n{CLIENTS}",
        proxies.pop3[0].port(),
        proxies.imap[0].port()
    );
    let out = tokio::task::spawn_blocking(move || python(&script))
        .await
        .unwrap();

    // A client's own claim to another address is not passed on.
    assert_eq!(out["imap_id"], "OK", "{out}");
    assert!(
        out["pop_xclient"].as_str().unwrap().starts_with("-ERR"),
        "{out}"
    );
    // Dovecot's failures, then sponts' refusals: the right password does not help while blocked.
    for (protocol, failure) in [
        ("imap", "[AUTHENTICATIONFAILED] Authentication failed."),
        ("pop", "-ERR [AUTH] Authentication failed."),
    ] {
        assert_eq!(
            out[format!("{protocol}_guesses")],
            serde_json::json!([failure, failure, failure]),
            "{out}"
        );
    }
    assert_eq!(
        out["imap_throttled"],
        "[AUTHENTICATIONFAILED] Too many failed logins from your address, try again later",
        "{out}"
    );
    assert_eq!(out["imap_throttled_again"], out["imap_throttled"], "{out}");
    assert_eq!(
        out["pop_throttled"],
        "-ERR [AUTH] Too many failed logins from your address, try again later",
        "{out}"
    );
    assert_eq!(out["imap_other_address"], "accepted", "{out}");
    assert_eq!(out["pop_other_address"], "accepted", "{out}");

    // Dovecot judged each login by the client's address: never sponts' (127.0.0.1), never the
    // address a client claimed.
    let log = dovecot.log();
    // (Connections without a login attempt are dovecot_start.sh's own, looking for the ports.)
    let logins: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("-login: Info: ") && l.contains("user=<") && !l.contains("user=<>"))
        .collect();
    let rip = |l: &str| {
        l.split("rip=")
            .nth(1)
            .and_then(|r| r.split(',').next())
            .unwrap_or("")
            .to_string()
    };
    for (service, user, address) in [
        ("imap", "target", "127.0.0.2"),
        ("pop3", "target", "127.0.0.2"),
        ("imap", "other", "127.0.0.4"),
        ("pop3", "other", "127.0.0.4"),
    ] {
        let line = format!("{service}-login: Info: Login: user=<{user}>");
        assert!(
            logins
                .iter()
                .any(|l| l.contains(&line) && rip(l) == address),
            "{line} from {address}:\n{log}"
        );
    }
    assert!(
        logins
            .iter()
            .any(|l| l.contains("auth failed") && rip(l) == "127.0.0.3"),
        "{log}"
    );
    assert!(
        logins
            .iter()
            .all(|l| ["127.0.0.2", "127.0.0.3", "127.0.0.4"].contains(&rip(l).as_str())),
        "{log}"
    );
    assert!(!log.contains("10.9.8.7"), "{log}");

    // One line per session: who, as whom, how it ended, bytes each way; Dovecot's session id is
    // sponts' (x-session-ext-id / XCLIENT SESSION), so the two logs can be read side by side.
    let ok = logs.sessions("imap", "127.0.0.2");
    assert_eq!(ok.len(), 1, "{}", logs.text());
    assert!(
        ok[0].contains("login=\"target\"") && ok[0].contains("result=\"logged in\""),
        "{}",
        ok[0]
    );
    let count = |line: &str, key: &str| {
        line.split(&format!("{key}="))
            .nth(1)
            .and_then(|v| v.split(' ').next())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    assert!(
        count(&ok[0], "bytes_from_client") > 500 && count(&ok[0], "bytes_to_client") > 500,
        "TLS handshakes counted: {}",
        ok[0]
    );
    let session = ok[0]
        .split("session=")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap();
    assert!(
        logins
            .iter()
            .any(|l| l.contains(&format!("session=<{session}>"))),
        "{session} in\n{log}"
    );
    for protocol in ["imap", "pop3"] {
        let guessed = logs.sessions(protocol, "127.0.0.3");
        assert!(
            guessed[0].contains("result=\"throttled\"")
                && guessed[0].contains("failed_logins=3")
                && guessed[0].contains("login=\"target\""),
            "{guessed:?}"
        );
    }
    gw.stop().await;
}

const CAPABILITIES: &str = r#"
import imaplib, poplib, socket, ssl, sys, json
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
pop, imap, imaps = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
out = {}
s = socket.create_connection(("127.0.0.1", imap), timeout=20)
f = s.makefile("rb")
out["imap_greeting"] = f.readline().decode().strip()
s.close()
m = imaplib.IMAP4("127.0.0.1", imap, timeout=20)
out["imap_before"] = m.capability()[1][0].decode().split()
m.starttls(ctx)
out["imap_after"] = m.capability()[1][0].decode().split()
m.login("other", "other-pass"); m.logout()
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", imaps), timeout=20))
out["imaps_greeting"] = s.makefile("rb").readline().decode().strip()
s.close()
p = poplib.POP3("127.0.0.1", pop, timeout=20)
out["pop_before"] = sorted(p.capa())
try:
    p._shortcmd("AUTH"); out["pop_auth_list"] = "accepted"
except poplib.error_proto as e:
    out["pop_auth_list"] = e.args[0].decode()
p.stls(ctx)
out["pop_after"] = sorted(p.capa())
p.user("other"); p.pass_("other-pass"); p.quit()
print(json.dumps(out))
"#;

#[tokio::test]
async fn before_tls_no_way_to_log_in_is_offered_and_after_it_all_are() {
    let dovecot = tokio::task::spawn_blocking(Dovecot::start).await.unwrap();
    let cap = Capture::start(CaptureOptions::default()).await;
    let extra = format!(
        "[pop3_proxy]\nlisten = [\"127.0.0.1:0\"]\nbackend = \"{}\"\n[imap_proxy]\nlisten = [\"127.0.0.1:0\"]\ntls_listen = [\"127.0.0.1:0\"]\nbackend = \"{}\"\n",
        dovecot.pop3, dovecot.imap
    );
    let gw = gateway(cap.addr, &extra).await;
    let proxies = &gw.running.as_ref().unwrap().proxies;
    let ports =
        [proxies.pop3[0], proxies.imap[0], proxies.imap_tls[0]].map(|a| a.port().to_string());
    let out = tokio::task::spawn_blocking(move || {
        python(&format!(
            "import sys; sys.argv[1:] = {ports:?}\n{CAPABILITIES}"
        ))
    })
    .await
    .unwrap();
    let words = |key: &str| -> Vec<String> {
        out[key]
            .as_array()
            .unwrap_or_else(|| panic!("{key}: {out}"))
            .iter()
            .map(|c| c.as_str().unwrap().to_string())
            .collect()
    };
    let logins = |caps: &[String]| {
        caps.iter()
            .filter(|c| {
                c.starts_with("AUTH=") || *c == "SASL-IR" || *c == "USER" || c.starts_with("SASL")
            })
            .cloned()
            .collect::<Vec<_>>()
    };

    // IMAP before STARTTLS, in the greeting's response code and in CAPABILITY alike.
    let greeting = out["imap_greeting"].as_str().unwrap();
    let in_greeting: Vec<String> = greeting
        .split("[CAPABILITY ")
        .nth(1)
        .unwrap()
        .split(']')
        .next()
        .unwrap()
        .split(' ')
        .map(str::to_string)
        .collect();
    for caps in [in_greeting, words("imap_before")] {
        assert!(
            caps.contains(&"STARTTLS".into()) && caps.contains(&"LOGINDISABLED".into()),
            "{caps:?}"
        );
        assert_eq!(logins(&caps), Vec::<String>::new(), "{greeting}");
    }
    // After it, the full set (the mechanisms sponts can read) and no LOGINDISABLED.
    let after = words("imap_after");
    assert_eq!(
        logins(&after),
        ["SASL-IR", "AUTH=PLAIN", "AUTH=LOGIN"],
        "{after:?}"
    );
    assert!(
        !after.contains(&"LOGINDISABLED".into()) && !after.contains(&"STARTTLS".into()),
        "{after:?}"
    );
    // Implicit TLS: the full set from the greeting on.
    let imaps = out["imaps_greeting"].as_str().unwrap();
    assert!(
        imaps.contains("AUTH=PLAIN")
            && imaps.contains("SASL-IR")
            && !imaps.contains("LOGINDISABLED")
            && !imaps.contains("STARTTLS"),
        "{imaps}"
    );

    // POP3 CAPA: STLS only, then USER and SASL.
    let before = words("pop_before");
    assert!(
        before.contains(&"STLS".into()) && logins(&before).is_empty(),
        "{before:?}"
    );
    assert!(
        out["pop_auth_list"]
            .as_str()
            .unwrap()
            .starts_with("-ERR [AUTH]"),
        "{out}"
    );
    let after = words("pop_after");
    assert!(
        after.contains(&"USER".into())
            && after.contains(&"SASL".into())
            && !after.contains(&"STLS".into()),
        "{after:?}"
    );
    gw.stop().await;
}

const GUESS_THEN_LOG_IN: &str = r#"
import imaplib, socket, ssl, sys, time, json
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
imap = int(sys.argv[1])
def imap_from(source):
    class Imap(imaplib.IMAP4):
        def _create_socket(self, timeout):
            return socket.create_connection((self.host, self.port), timeout, source_address=(source, 0))
    m = Imap("127.0.0.1", imap, timeout=40)
    m.starttls(ctx)
    return m
out = {"guesses": []}
m = imap_from("127.0.0.2")
for i in range(2):
    t = time.monotonic()
    try:
        m.login("target", "wrong %d" % i)
    except imaplib.IMAP4.error:
        pass
    out["guesses"].append(time.monotonic() - t)
m.logout()
m = imap_from("127.0.0.3")
t = time.monotonic()
m.login("other", "other-pass")
out["someone_else"] = time.monotonic() - t
m.logout()
print(json.dumps(out))
"#;

/// Dovecot slows down logins from an address after failures there. Through sponts, that is the
/// guessing client's address: someone else logging in meanwhile is not slowed down (when Dovecot
/// saw every login come from sponts, they waited up to 15 s).
#[tokio::test]
async fn one_clients_failed_logins_do_not_slow_down_anyone_elses() {
    let dovecot = tokio::task::spawn_blocking(Dovecot::start_with_penalty)
        .await
        .unwrap();
    let cap = Capture::start(CaptureOptions::default()).await;
    // sponts' own throttle off: Dovecot's penalty is what is looked at here.
    let extra = format!(
        "[imap_proxy]\nlisten = [\"127.0.0.1:0\"]\nbackend = \"{}\"\nmax_failed_logins = 0\n",
        dovecot.imap
    );
    let gw = gateway(cap.addr, &extra).await;
    let port = gw.running.as_ref().unwrap().proxies.imap[0].port();
    let out = tokio::task::spawn_blocking(move || {
        python(&format!(
            "import sys; sys.argv[1:] = ['{port}']\n{GUESS_THEN_LOG_IN}"
        ))
    })
    .await
    .unwrap();
    let second_guess = out["guesses"][1].as_f64().unwrap();
    assert!(
        second_guess >= 2.0,
        "Dovecot's penalty slowed the guesser down: {out}"
    );
    let someone_else = out["someone_else"].as_f64().unwrap();
    assert!(
        someone_else < 1.5,
        "another client's login took {someone_else:.1} s: {out}"
    );
    gw.stop().await;
}

/// A POP3 backend on loopback that greets with `greeting`, answers CAPA (and XCLIENT), and then
/// never answers anything else: it stalls mid-dialogue, the connection still open.
async fn stalling_pop3_backend(greeting: &'static str) -> std::net::SocketAddr {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
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
                let _ = w.write_all(greeting.as_bytes()).await;
                loop {
                    let mut line = String::new();
                    match r.read_line(&mut line).await {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    }
                    let verb = line
                        .split_whitespace()
                        .next()
                        .unwrap_or("")
                        .to_ascii_uppercase();
                    let answer = match verb.as_str() {
                        "CAPA" => "+OK\r\nUSER\r\nSASL PLAIN\r\n.\r\n",
                        "XCLIENT" => "+OK Updated\r\n",
                        _ => continue, // USER, PASS, AUTH: never answered
                    };
                    if w.write_all(answer.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// A backend that stops answering before login (after CAPA: USER, PASS or AUTH go unanswered)
/// does not keep a POP3 session forever: once the client has sent its login and closed its
/// side, sponts ends the session soon after (the client's read reaches its end).
#[tokio::test]
async fn a_pop3_backend_silent_before_login_does_not_keep_the_session_once_the_client_has_gone() {
    let cases: [(&str, &[u8]); 3] = [
        (
            "+OK [XCLIENT] fake backend ready\r\n",
            b"CAPA\r\nUSER x\r\nPASS y\r\n",
        ),
        ("+OK fake backend ready\r\n", b"USER x\r\nPASS y\r\n"),
        (
            "+OK fake backend ready\r\n",
            b"CAPA\r\nAUTH PLAIN AHgAeQ==\r\n",
        ),
    ];
    let one = |greeting: &'static str, wire: &'static [u8]| async move {
        let backend = stalling_pop3_backend(greeting).await;
        let cap = Capture::start(CaptureOptions::default()).await;
        let extra = format!(
            "[pop3_proxy]\nlisten = [\"127.0.0.1:0\"]\nbackend = \"{backend}\"\nbackend_tls = \"off\"\nallow_plaintext_auth = true\n"
        );
        let gw = gateway(cap.addr, &extra).await;
        let pop3 = gw.running.as_ref().unwrap().proxies.pop3[0];
        let out = half_closed_exchange(pop3, wire, std::time::Duration::from_secs(10)).await;
        gw.stop().await;
        let out = out.unwrap_or_else(|| panic!("{greeting:?} then {:?}: the POP3 proxy session did not end within 10 s of the client's end", String::from_utf8_lossy(wire)));
        let out = String::from_utf8_lossy(&out).into_owned();
        assert!(out.starts_with("+OK fake backend ready\r\n"), "{out}");
        if wire.starts_with(b"CAPA") {
            assert!(
                out.contains("\r\nUSER\r\n") && out.contains("\r\n.\r\n"),
                "CAPA answered: {out}"
            );
        }
    };
    let [a, b, c] = cases;
    tokio::join!(one(a.0, a.1), one(b.0, b.1), one(c.0, c.1));
}
