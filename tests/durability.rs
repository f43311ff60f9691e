//! No data loss: kill -9 the real binary while it queues mail for a dead backend, start it again,
//! bring the backend back: every message that got a 250 is delivered, none twice.

mod common;

use common::*;
use std::collections::HashSet;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn serve(cfg: &std::path::Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_sponts"))
        .args(["serve", "--config"])
        .arg(cfg)
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

#[tokio::test]
async fn kill_9_while_queueing_loses_nothing_that_was_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let backend = dead_address();
    let smtp = dead_address();
    let cfg = dir.path().join("sponts.toml");
    std::fs::write(
        &cfg,
        format!(
            "[smtp]\nlisten = [\"{smtp}\"]\nhostname = \"gw.test.example\"\n[web]\nenabled = false\n[pop3]\nenabled = false\n[backend]\naddress = \"{backend}\"\nstarttls = \"off\"\n[domains]\nlocal = [\"example.org\"]\n[storage]\ndata_dir = \"{}\"\n[queue]\nprobe = 1\n[log]\nlevel = \"warn\"\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let add = Command::new(env!("CARGO_BIN_EXE_sponts"))
        .args([
            "user",
            "add",
            "alice@example.org",
            "--password-stdin",
            "--config",
        ])
        .arg(&cfg)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    use std::io::Write;
    add.stdin
        .as_ref()
        .unwrap()
        .write_all(b"password for tests\n")
        .unwrap();
    assert!(add.wait_with_output().unwrap().status.success());

    let mut server = serve(&cfg);
    wait_listening(smtp).await;
    let acked: Arc<Mutex<HashSet<String>>> = Arc::default();
    let mut senders = Vec::new();
    for t in 0..4 {
        let acked = acked.clone();
        senders.push(tokio::spawn(async move {
            let mut c = Client::connect(smtp).await;
            c.expect("EHLO client.test", 250).await;
            for i in 0..500 {
                let subject = format!("t{t}-m{i:03}");
                if !c
                    .cmd("MAIL FROM:<a@partner.example>")
                    .await
                    .starts_with("250")
                {
                    return;
                }
                if !c
                    .cmd("RCPT TO:<alice@example.org>")
                    .await
                    .starts_with("250")
                    || !c.cmd("DATA").await.starts_with("354")
                {
                    return;
                }
                c.send(format!("Subject: {subject}\r\n\r\nx\r\n.\r\n").as_bytes())
                    .await;
                if c.reply().await.starts_with("250") {
                    acked.lock().unwrap().insert(subject);
                } else {
                    return;
                }
            }
        }));
    }
    // Let the load run until 150 are acknowledged (bounded at 60 s), then pull the plug.
    for _ in 0..6000 {
        if acked.lock().unwrap().len() >= 150 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server.kill().unwrap(); // SIGKILL
    server.wait().unwrap();
    for s in senders {
        let _ = s.await; // a sender cut off mid-write ends with a panic in its task: expected
    }
    let acked: HashSet<String> = acked.lock().unwrap().clone();
    assert!(
        acked.len() >= 100,
        "the load ran before the kill: {}",
        acked.len()
    );

    let mut server = serve(&cfg);
    wait_listening(smtp).await;
    let cap = Capture::start_on(backend, CaptureOptions::default()).await;
    let mut delivered: Vec<String> = Vec::new();
    for _ in 0..300 {
        delivered = cap
            .deliveries()
            .iter()
            .map(|m| {
                String::from_utf8_lossy(&m.data)
                    .lines()
                    .find_map(|l| l.strip_prefix("Subject: ").map(str::to_string))
                    .unwrap_or_default()
            })
            .collect();
        let got: HashSet<&String> = delivered.iter().collect();
        if acked.iter().all(|s| got.contains(s)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let got: HashSet<&String> = delivered.iter().collect();
    let lost: Vec<&String> = acked.iter().filter(|s| !got.contains(s)).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged messages lost: {lost:?}",
        lost.len()
    );
    assert_eq!(got.len(), delivered.len(), "duplicates delivered");
    server.kill().unwrap();
    server.wait().unwrap();
}
