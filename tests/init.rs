//! `sponts init`: from nothing to a running gateway — the config it writes passes check-config,
//! sponts serves on it, mail goes through, and the admin it made can sign in. It never
//! overwrites a config, and bad answers are refused before anything is written.

mod common;

use common::*;
use std::io::Write;
use std::process::{Command, Stdio};

fn init(dir: &std::path::Path, args: &[&str], password: &str) -> std::process::Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sponts"))
        .arg("init")
        .arg(dir)
        .args(args)
        .arg("--password-stdin")
        .env_remove("SPONTS_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
    child.wait_with_output().unwrap()
}

#[tokio::test]
async fn init_sets_up_a_gateway_that_runs() {
    let cap = Capture::start(CaptureOptions::default()).await;
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("etc");
    let smtp = dead_address();
    let backend = cap.addr.to_string();
    let listen = smtp.to_string();
    let out = tokio::task::spawn_blocking({
        let dir = dir.clone();
        move || {
            init(
                &dir,
                &[
                    "--admin",
                    "Admin@Example.org",
                    "--backend",
                    &backend,
                    "--listen",
                    &listen,
                    "--hostname",
                    "mx.example.org",
                ],
                "a good password",
            )
        }
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("admin      admin@example.org") && stdout.contains("Next:"),
        "{stdout}"
    );
    let cfg = dir.join("sponts.toml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    assert!(
        text.contains("local = [\"example.org\"]") && text.contains("# Largest message accepted"),
        "{text}"
    );
    assert!(dir.join("data/sponts.db").is_file(), "the database is made");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(dir.join("data"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o700
    );

    let check = Command::new(env!("CARGO_BIN_EXE_sponts"))
        .arg("check-config")
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );

    // Free ports for the web UI and POP3 (the defaults may be taken on a test machine).
    let web = dead_address();
    let text = text
        .replacen(
            "listen = \"127.0.0.1:8025\"",
            &format!("listen = \"{web}\""),
            1,
        )
        .replacen(
            "listen = \"127.0.0.1:1110\"",
            &format!("listen = \"{}\"", dead_address()),
            1,
        );
    std::fs::write(&cfg, text).unwrap();
    let mut server = Command::new(env!("CARGO_BIN_EXE_sponts"))
        .args(["serve", "--config"])
        .arg(&cfg)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _kill = KillOnPanic(server.id());
    wait_listening(smtp).await;
    let (mut c, greeting) = Client::connect_raw(smtp).await;
    // Two lines: `220-` at once, `220 ` after the pregreet pause (uce.greet_delay).
    assert!(
        common::client::is_greeting(&greeting)
            && greeting
                .lines()
                .last()
                .unwrap()
                .starts_with("220 mx.example.org"),
        "{greeting}"
    );
    c.expect("EHLO client.test", 250).await;
    assert!(
        c.send_mail(
            "a@partner.example",
            &["u@example.org"],
            b"Subject: hi\r\n\r\nhello\r\n"
        )
        .await
        .starts_with("250")
    );
    assert_eq!(cap.wait_for(1).await.len(), 1);
    wait_listening(web).await;
    let login = common::http::login(web, "admin@example.org", "a good password")
        .await
        .expect("the admin signs in");
    let me = common::http::request(
        web,
        "GET",
        "/api/v1/me",
        &[("authorization", &format!("Bearer {}", login.token))],
        None,
    )
    .await
    .json();
    assert_eq!(me["role"], "admin", "{me}");
    let _ = server.kill();
    let _ = server.wait();

    // Never over an existing config.
    let again = tokio::task::spawn_blocking({
        let dir = dir.clone();
        move || init(&dir, &["--admin", "other@example.org"], "another password")
    })
    .await
    .unwrap();
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("exists already"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
}

#[tokio::test]
async fn bad_answers_write_nothing() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("gw");
    let out = tokio::task::spawn_blocking({
        let dir = dir.clone();
        move || {
            init(
                &dir,
                &["--admin", "admin@example.org", "--backend", "nowhere"],
                "a good password",
            )
        }
    })
    .await
    .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("backend.address"), "the key is named: {err}");
    assert!(
        !dir.join("sponts.toml").exists() && !dir.join("data").exists(),
        "nothing written"
    );
    let short = tokio::task::spawn_blocking({
        let dir = dir.clone();
        move || init(&dir, &["--admin", "admin@example.org"], "short")
    })
    .await
    .unwrap();
    assert!(
        String::from_utf8_lossy(&short.stderr).contains("at least 8 characters"),
        "{}",
        String::from_utf8_lossy(&short.stderr)
    );
    assert!(!dir.join("sponts.toml").exists());
    // Existing data is never taken over.
    std::fs::create_dir_all(dir.join("data")).unwrap();
    std::fs::write(dir.join("data/keep.me"), b"x").unwrap();
    let taken = tokio::task::spawn_blocking({
        let dir = dir.clone();
        move || init(&dir, &["--admin", "admin@example.org"], "a good password")
    })
    .await
    .unwrap();
    assert!(
        String::from_utf8_lossy(&taken.stderr).contains("not an empty directory"),
        "{}",
        String::from_utf8_lossy(&taken.stderr)
    );
    assert!(!dir.join("sponts.toml").exists() && dir.join("data/keep.me").exists());
}
