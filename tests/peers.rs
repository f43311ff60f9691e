//! Real peers on loopback: Postfix's smtp-sink as the backend, swaks and Python's smtplib as
//! clients, and the `sponts` binary itself (serve, journal, check-config).

mod common;

use common::*;
use std::process::{Command, Stdio};
use std::time::Duration;

const SMTP_SINK: &str = "/usr/sbin/smtp-sink";
const SWAKS: &str = "/usr/bin/swaks";

fn need(path: &str) {
    assert!(
        std::path::Path::new(path).exists(),
        "{path} is needed (scripts/test installs it: apt-get install postfix swaks)"
    );
}

/// smtp-sink dumping every transaction into `dir`; killed on drop.
struct Sink {
    child: std::process::Child,
    addr: std::net::SocketAddr,
    dir: tempfile::TempDir,
}

impl Sink {
    async fn start() -> Sink {
        need(SMTP_SINK);
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o777),
        )
        .unwrap();
        let addr = dead_address();
        let child = Command::new(SMTP_SINK)
            .args([
                "-u",
                "nobody",
                "-d",
                &format!("{}/%M.", dir.path().display()),
                &addr.to_string(),
                "100",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut up = false;
        for _ in 0..3000 {
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                up = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(up, "smtp-sink did not start listening on {addr}");
        Sink { child, addr, dir }
    }

    /// The dumped transactions (smtp-sink's X-* envelope lines, then the message).
    async fn dumps(&self, n: usize) -> Vec<String> {
        for _ in 0..300 {
            let files: Vec<_> = std::fs::read_dir(self.dir.path())
                .unwrap()
                .flatten()
                .collect();
            if files.len() >= n {
                tokio::time::sleep(Duration::from_millis(50)).await;
                return files
                    .iter()
                    .map(|f| {
                        String::from_utf8_lossy(&std::fs::read(f.path()).unwrap()).into_owned()
                    })
                    .collect();
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("smtp-sink did not get {n} messages");
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn swaks(args: &[&str]) -> (bool, String) {
    need(SWAKS);
    let out = Command::new(SWAKS).args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[tokio::test]
async fn swaks_through_sponts_to_smtp_sink_with_and_without_tls() {
    let sink = Sink::start().await;
    let gw = gateway(sink.addr, "").await;
    let server = gw.addr.to_string();
    let base = [
        "--server",
        &server,
        "--from",
        "sender@partner.example",
        "--to",
        "user@example.org",
        "--helo",
        "swaks.partner.example",
    ];
    let (ok, out) = tokio::task::spawn_blocking({
        let args: Vec<String> = base
            .iter()
            .map(|s| s.to_string())
            .chain(["--header".into(), "Subject: via swaks".into()])
            .collect();
        move || swaks(&args.iter().map(String::as_str).collect::<Vec<_>>())
    })
    .await
    .unwrap();
    assert!(ok, "{out}");
    assert!(out.contains("<-  250 2.0.0 Ok id="), "{out}");
    let (ok, out) = tokio::task::spawn_blocking({
        let args: Vec<String> = base
            .iter()
            .map(|s| s.to_string())
            .chain([
                "--tls".into(),
                "--header".into(),
                "Subject: via swaks tls".into(),
            ])
            .collect();
        move || swaks(&args.iter().map(String::as_str).collect::<Vec<_>>())
    })
    .await
    .unwrap();
    assert!(ok, "{out}");
    assert!(out.contains("TLS started"), "{out}");
    let dumps = sink.dumps(2).await;
    assert!(
        dumps
            .iter()
            .all(|d| d.contains("by gw.test.example (sponts) with ESMTP")),
        "{dumps:?}"
    );
    assert!(
        dumps
            .iter()
            .any(|d| d.contains("with ESMTPS") && d.contains("Subject: via swaks tls")),
        "{dumps:?}"
    );
    let all = gw.store.query_journal(&Default::default()).await.unwrap();
    assert_eq!(all.iter().filter(|e| e.outcome == "delivered").count(), 2);
    gw.stop().await;
}

#[tokio::test]
async fn swaks_relay_attempt_is_refused() {
    let sink = Sink::start().await;
    let gw = gateway(sink.addr, "").await;
    let server = gw.addr.to_string();
    let (ok, out) = tokio::task::spawn_blocking(move || {
        swaks(&[
            "--server",
            &server,
            "--from",
            "a@partner.example",
            "--to",
            "victim@elsewhere.example",
        ])
    })
    .await
    .unwrap();
    assert!(!ok, "{out}");
    assert!(
        out.contains("<** 554 5.7.1 <victim@elsewhere.example>: Relay access denied"),
        "{out}"
    );
    gw.stop().await;
}

#[tokio::test]
async fn python_smtplib_with_starttls_and_a_refused_recipient() {
    let cap = Capture::start(CaptureOptions {
        unknown: ["gone@example.org".to_string()].into(),
        ..Default::default()
    })
    .await;
    let gw = gateway(cap.addr, "").await;
    let script = format!(
        r#"
import smtplib, ssl
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
s = smtplib.SMTP("127.0.0.1", {port}, local_hostname="py.partner.example", timeout=20)
s.starttls(context=ctx)
refused = s.sendmail("py@partner.example", ["here@example.org", "gone@example.org"],
                     "Subject: from python\r\n\r\nhello\r\n.dot\r\n")
print("REFUSED", sorted(refused.items()))
s.quit()
"#,
        port = gw.addr.port()
    );
    let out = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .arg("-c")
            .arg(script)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("REFUSED [('gone@example.org', (550, b'5.1.1 <gone@example.org>: Recipient address rejected: User unknown'))]"), "{stdout}");
    let d = cap.wait_for(1).await;
    assert_eq!(d[0].rcpts, vec!["here@example.org"]);
    assert!(
        d[0].data
            .ends_with(b"Subject: from python\r\n\r\nhello\r\n.dot\r\n")
    );
    gw.stop().await;
}

/// The real binary: `sponts serve` on a config file, then `sponts journal` on the same config.
#[tokio::test]
async fn binary_serves_and_journal_prints_records() {
    let cap = Capture::start(CaptureOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let addr = dead_address();
    let cfg = dir.path().join("sponts.toml");
    std::fs::write(
        &cfg,
        format!(
            "[smtp]\nlisten = [\"{addr}\"]\nhostname = \"bin.test.example\"\n[web]\nlisten = \"127.0.0.1:0\"\n[pop3]\nlisten = \"127.0.0.1:0\"\n[backend]\naddress = \"{}\"\nstarttls = \"off\"\n[domains]\nlocal = [\"example.org\"]\n[storage]\ndata_dir = \"{}\"\n",
            cap.addr,
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let bin = env!("CARGO_BIN_EXE_sponts");
    let mut child = Command::new(bin)
        .args(["serve", "--config"])
        .arg(&cfg)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _kill = KillOnPanic(child.id());
    let mut up = false;
    for _ in 0..3000 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(up, "sponts serve did not start listening");
    let mut c = Client::connect(addr).await;
    c.expect("EHLO cli.test", 250).await;
    let r = c
        .send_mail(
            "cli@partner.example",
            &["u@example.org"],
            b"Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?=\r\n\r\nx\r\n",
        )
        .await;
    assert!(r.starts_with("250"), "{r}");
    c.expect("QUIT", 221).await;
    let id = reply_id(&r);

    let mut journal = Command::new(bin);
    journal
        .args(["journal", "--json", "--since", "1h", "--sender", "cli@"])
        .env("SPONTS_CONFIG", &cfg);
    let out = output(journal).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{text}");
    assert_eq!(lines[0]["id"], id.as_str());
    assert_eq!(lines[0]["subject"], "Grüße");
    assert_eq!(lines[0]["outcome"], "delivered");
    assert_eq!(lines[0]["recipients"][0]["address"], "u@example.org");

    let mut journal = Command::new(bin);
    journal
        .args(["journal", "--config"])
        .arg(&cfg)
        .args(["--rcpt", "u@example.org"]);
    let out = output(journal).await;
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(
        table.contains(&id) && table.contains("Grüße") && table.contains("(1 record;"),
        "{table}"
    );
    let mut journal = Command::new(bin);
    journal
        .args(["journal", "--config"])
        .arg(&cfg)
        .args(["--ip", "192.0.2.1"]);
    let out = output(journal).await;
    assert!(
        String::from_utf8(out.stdout)
            .unwrap()
            .contains("(0 records")
    );

    // SIGTERM: a clean stop.
    unsafe_kill(child.id(), 15);
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert!(status.success(), "{status:?}");
}

fn unsafe_kill(pid: u32, sig: i32) {
    Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
}

#[test]
fn check_config_names_every_bad_key() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("bad.toml");
    std::fs::write(&f, "modules = [\"journal\", \"antivirus\"]\n[smtp]\nmax_recipients = \"lots\"\nlisten = [\"nowhere\"]\n[backend]\naddress = \"mail\"\nstarttls = \"required\"\ntls_ca = \"/nonexistent/ca.pem\"\n[storage]\ndatabase = \"\"\n[smpt]\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sponts"))
        .arg("check-config")
        .arg(&f)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout).unwrap();
    // The config's own problems and those only the modules and TLS code know, at once.
    for key in [
        "smtp.max_recipients: ",
        "backend.address: ",
        "storage.database: ",
        "smpt: unknown key",
        "modules[1]: unknown module `antivirus`",
        "backend.tls_ca: cannot read /nonexistent/ca.pem",
    ] {
        assert!(text.contains(key), "{key} not in:\n{text}");
    }
    let good = dir.path().join("good.toml");
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/sponts.example.toml"),
        &good,
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sponts"))
        .args(["check-config", "--config"])
        .arg(&good)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn version_flag() {
    let out = Command::new(env!("CARGO_BIN_EXE_sponts"))
        .arg("--version")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8(out.stdout).unwrap().trim(),
        format!("sponts {}", env!("CARGO_PKG_VERSION"))
    );
}
