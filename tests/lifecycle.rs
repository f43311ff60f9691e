//! The real binary's signals: SIGHUP applies a changed config and certificate to new sessions
//! while a session in flight finishes on the old ones (and a broken config changes nothing);
//! SIGTERM stops accepting but lets the transaction in flight end with its 250.

mod common;

use common::*;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{sig}"), &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{sig}");
}

struct Files {
    dir: tempfile::TempDir,
    cfg: std::path::PathBuf,
}

impl Files {
    fn new() -> Files {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("sponts.toml");
        Files { dir, cfg }
    }

    /// A certificate for `name`, written over the configured files; returns its DER.
    fn certificate(&self, name: &str) -> Vec<u8> {
        let made = rcgen::generate_simple_self_signed(vec![name.to_string()]).unwrap();
        std::fs::write(self.dir.path().join("cert.pem"), made.cert.pem()).unwrap();
        std::fs::write(
            self.dir.path().join("key.pem"),
            made.signing_key.serialize_pem(),
        )
        .unwrap();
        made.cert.der().to_vec()
    }

    fn write(
        &self,
        smtp: std::net::SocketAddr,
        backend: std::net::SocketAddr,
        hostname: &str,
        extra: &str,
    ) {
        let d = self.dir.path();
        std::fs::write(
            &self.cfg,
            format!(
                "[smtp]\nlisten = [\"{smtp}\"]\nhostname = \"{hostname}\"\n{extra}\n[smtp.tls]\ncert = \"{}\"\nkey = \"{}\"\n[web]\nenabled = false\n[pop3]\nenabled = false\n[backend]\naddress = \"{backend}\"\nstarttls = \"off\"\n[domains]\nlocal = [\"example.org\"]\n[storage]\ndata_dir = \"{}\"\n[report]\nmail = \"off\"\n[log]\nlevel = \"info\"\n",
                d.join("cert.pem").display(),
                d.join("key.pem").display(),
                d.join("data").display()
            ),
        )
        .unwrap();
    }

    fn serve(&self) -> Child {
        Command::new(env!("CARGO_BIN_EXE_sponts"))
            .args(["serve", "--config"])
            .arg(&self.cfg)
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    }
}

/// The certificate a STARTTLS handshake presents.
async fn presented_certificate(addr: std::net::SocketAddr) -> Vec<u8> {
    let mut c = Client::connect(addr).await;
    c.expect("EHLO client.test", 250).await;
    c.expect("STARTTLS", 220).await;
    c.starttls().await;
    c.peer_certificate().expect("a certificate")
}

#[tokio::test]
async fn sighup_applies_a_new_config_and_certificate_without_dropping_a_session() {
    let cap = Capture::start(CaptureOptions::default()).await;
    let files = Files::new();
    let smtp = dead_address();
    let first_cert = files.certificate("one.test.example");
    files.write(smtp, cap.addr, "one.test.example", "");
    let mut server = files.serve();
    wait_listening(smtp).await;
    assert_eq!(presented_certificate(smtp).await, first_cert);

    // A session in the middle of a transaction.
    let (mut old, greeting) = Client::connect_raw(smtp).await;
    assert!(greeting.contains("one.test.example"), "{greeting}");
    old.expect("EHLO client.test", 250).await;
    old.expect("MAIL FROM:<a@partner.example>", 250).await;
    old.expect("RCPT TO:<u@example.org>", 250).await;

    // New name, new certificate, fewer recipients per message; then SIGHUP.
    let second_cert = files.certificate("two.test.example");
    files.write(smtp, cap.addr, "two.test.example", "max_recipients = 1");
    signal(&server, "HUP");
    let mut greeting = String::new();
    for _ in 0..1000 {
        greeting = Client::connect_raw(smtp).await.1;
        if greeting.contains("two.test.example") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        greeting.contains("two.test.example"),
        "new sessions get the new config: {greeting}"
    );
    assert_eq!(
        presented_certificate(smtp).await,
        second_cert,
        "and the new certificate"
    );
    let mut new = Client::connect(smtp).await;
    new.expect("EHLO client.test", 250).await;
    new.expect("MAIL FROM:<a@partner.example>", 250).await;
    new.expect("RCPT TO:<u@example.org>", 250).await;
    assert!(
        new.cmd("RCPT TO:<v@example.org>").await.starts_with("452"),
        "max_recipients = 1 applies"
    );
    new.expect("QUIT", 221).await;

    // The session that began before finishes on the config it began with.
    old.expect("RCPT TO:<v@example.org>", 250).await;
    old.expect("DATA", 354).await;
    old.send(b"Subject: across a reload\r\n\r\nhello\r\n.\r\n")
        .await;
    assert!(old.reply().await.starts_with("250"));
    old.expect("QUIT", 221).await;
    assert_eq!(cap.wait_for(1).await.len(), 1);

    // A broken config: nothing changes, sponts keeps running.
    std::fs::write(&files.cfg, "[smtp]\nmax_recipients = \"many\"\n").unwrap();
    signal(&server, "HUP");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(server.try_wait().unwrap().is_none(), "still running");
    let (_, greeting) = Client::connect_raw(smtp).await;
    assert!(greeting.contains("two.test.example"), "{greeting}");

    signal(&server, "TERM");
    let status = tokio::task::spawn_blocking(move || server.wait().unwrap())
        .await
        .unwrap();
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn sigterm_lets_the_transaction_in_flight_finish() {
    let cap = Capture::start(CaptureOptions::default()).await;
    let files = Files::new();
    let smtp = dead_address();
    files.certificate("gw.test.example");
    files.write(smtp, cap.addr, "gw.test.example", "");
    let mut server = files.serve();
    wait_listening(smtp).await;
    let mut c = Client::connect(smtp).await;
    c.expect("EHLO client.test", 250).await;
    c.expect("MAIL FROM:<a@partner.example>", 250).await;
    c.expect("RCPT TO:<u@example.org>", 250).await;
    c.expect("DATA", 354).await;
    c.send(b"Subject: in flight\r\n\r\nfirst half\r\n").await;
    signal(&server, "TERM");
    // No new sessions once stopping.
    let mut refused = false;
    for _ in 0..500 {
        if tokio::net::TcpStream::connect(smtp).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(refused, "the listener closes at SIGTERM");
    c.send(b"second half\r\n.\r\n").await;
    assert!(
        c.reply().await.starts_with("250"),
        "the transaction in flight ends with its 250"
    );
    let got = cap.wait_for(1).await;
    assert!(String::from_utf8_lossy(&got[0].data).contains("second half"));
    let status = tokio::task::spawn_blocking(move || {
        for _ in 0..500 {
            if let Some(s) = server.try_wait().unwrap() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = server.kill();
        None
    })
    .await
    .unwrap();
    assert!(
        status.is_some_and(|s| s.success()),
        "exits 0 once the session is done: {status:?}"
    );
}

/// Logs go to stderr (journald takes them as they are): plain lines without colour codes by
/// default, one JSON object per line with `log.format = "json"`.
#[tokio::test]
async fn logs_are_text_or_json_lines() {
    for format in ["text", "json"] {
        let cap = Capture::start(CaptureOptions::default()).await;
        let files = Files::new();
        let smtp = dead_address();
        files.certificate("gw.test.example");
        files.write(smtp, cap.addr, "gw.test.example", "");
        let text = std::fs::read_to_string(&files.cfg).unwrap().replace(
            "[log]\nlevel = \"info\"\n",
            &format!("[log]\nlevel = \"info\"\nformat = \"{format}\"\n"),
        );
        std::fs::write(&files.cfg, text).unwrap();
        let server = Command::new(env!("CARGO_BIN_EXE_sponts"))
            .args(["serve", "--config"])
            .arg(&files.cfg)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        wait_listening(smtp).await;
        let mut c = Client::connect(smtp).await;
        c.expect("QUIT", 221).await;
        signal(&server, "TERM");
        let out = tokio::task::spawn_blocking(move || server.wait_with_output().unwrap())
            .await
            .unwrap();
        let log = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(log.contains("sponts is accepting mail"), "{format}: {log}");
        assert!(
            !log.contains('\u{1b}'),
            "{format}: no colour codes when stderr is not a terminal"
        );
        for line in log.lines() {
            let json = serde_json::from_str::<serde_json::Value>(line);
            if format == "json" {
                let v = json.unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
                assert!(v["level"].is_string() && v["fields"].is_object(), "{line}");
            } else {
                assert!(json.is_err(), "text lines: {line}");
            }
        }
    }
}

#[tokio::test]
async fn under_journald_each_line_carries_its_priority() {
    let cap = Capture::start(CaptureOptions::default()).await;
    let files = Files::new();
    let smtp = dead_address();
    files.certificate("journal.test.example");
    files.write(smtp, cap.addr, "journal.test.example", "");
    // As systemd does: stderr is a stream socket, and JOURNAL_STREAM names it (device:inode).
    let (ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
    let named = {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::File::from(std::os::fd::OwnedFd::from(theirs.try_clone().unwrap()))
            .metadata()
            .unwrap();
        format!("{}:{}", m.dev(), m.ino())
    };
    let mut server = Command::new(env!("CARGO_BIN_EXE_sponts"))
        .args(["serve", "--config"])
        .arg(&files.cfg)
        .env("JOURNAL_STREAM", named)
        .stderr(Stdio::from(std::os::fd::OwnedFd::from(theirs)))
        .spawn()
        .unwrap();
    wait_listening(smtp).await;
    // A [log] change takes effect at the next restart: SIGHUP says so with a warning.
    let text = std::fs::read_to_string(&files.cfg)
        .unwrap()
        .replace("level = \"info\"", "level = \"debug\"");
    std::fs::write(&files.cfg, text).unwrap();
    // TERM only once the warning is out: a reload still under way would not log it.
    let (seen, warned) = std::sync::mpsc::channel();
    let reader = tokio::task::spawn_blocking(move || {
        let mut text = String::new();
        for line in std::io::BufRead::lines(std::io::BufReader::new(ours)) {
            let line = line.unwrap();
            if line.contains("log: changed") {
                let _ = seen.send(());
            }
            text.push_str(&line);
            text.push('\n');
        }
        text
    });
    signal(&server, "HUP");
    let _ = tokio::task::spawn_blocking(move || warned.recv_timeout(Duration::from_secs(30))).await;
    signal(&server, "TERM");
    tokio::task::spawn_blocking(move || server.wait().unwrap())
        .await
        .unwrap();
    let logged = reader.await.unwrap();
    let stderr = logged.as_str();
    let lines: Vec<&str> = stderr.lines().collect();
    assert!(
        !lines.is_empty() && lines.iter().all(|l| l.starts_with('<')),
        "{stderr}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("<6>") && l.contains("sponts is accepting mail")),
        "info at 6: {stderr}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("<4>")
            && l.contains("log: changed; takes effect at the next restart")),
        "warning at 4: {stderr}"
    );
    let this_year = &sponts::clock::rfc3339(sponts::clock::now_us())[..5];
    assert!(
        !stderr.contains(this_year),
        "no time of our own (journald has it): {stderr}"
    );
}

#[tokio::test]
async fn a_journal_stream_that_is_not_stderr_changes_nothing() {
    let cap = Capture::start(CaptureOptions::default()).await;
    let files = Files::new();
    let smtp = dead_address();
    files.certificate("plain.test.example");
    files.write(smtp, cap.addr, "plain.test.example", "");
    // Inherited, or set for stdout only: stderr is a pipe here, not the stream named.
    let server = Command::new(env!("CARGO_BIN_EXE_sponts"))
        .args(["serve", "--config"])
        .arg(&files.cfg)
        .env("JOURNAL_STREAM", "8:4242")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_listening(smtp).await;
    signal(&server, "TERM");
    let out = tokio::task::spawn_blocking(move || server.wait_with_output().unwrap())
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr
            .lines()
            .any(|l| l.contains("sponts is accepting mail")),
        "{stderr}"
    );
    assert!(
        !stderr.lines().any(|l| l.starts_with('<')),
        "no priority prefixes: {stderr}"
    );
}
