//! `sponts demo` as a newcomer runs it: one command, no config. It prints the web address and two
//! accounts; the admin signs in with headless Chromium and finds delivered, refused (spam, a
//! blocked attachment), discarded (a trap) and queued-then-drained mail, a Report with figures and
//! the queue's events. Ctrl-C (SIGINT) ends it and leaves no data directory behind.

mod common;

use common::browser::Browser;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[tokio::test]
async fn the_demo_shows_the_product_and_cleans_up() {
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_sponts"))
        .arg("demo")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _guard = common::KillOnPanic(child.id());
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut web, mut admin, mut user, mut data) = (None, None, None, None);
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(rest) = line.strip_prefix("web ") {
            web = Some(rest.trim_end_matches('/').to_string());
        } else if let Some(rest) = line.strip_prefix("admin ") {
            admin = rest
                .split_once(' ')
                .map(|(a, p)| (a.to_string(), p.to_string()));
        } else if let Some(rest) = line.strip_prefix("user ") {
            user = rest
                .split_once(' ')
                .map(|(a, p)| (a.to_string(), p.to_string()));
            break;
        } else if let Some((_, dir)) = line.split_once(", data in ") {
            data = Some(std::path::PathBuf::from(dir));
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the demo takes too long"
        );
    }
    let (web, (admin, admin_password), (user, _), data) = (
        web.expect("web line"),
        admin.expect("admin line"),
        user.expect("user line"),
        data.expect("data dir"),
    );
    assert!(web.starts_with("http://127.0.0.1:"), "{web}");
    assert!(data.is_dir(), "{}", data.display());
    assert!(user.ends_with("@demo.example") && admin_password.len() >= 12);

    let b = Browser::start().await;
    b.goto(&format!("{web}/login")).await;
    b.type_into("#username", &admin).await;
    b.type_into("#password", &admin_password).await;
    b.click("button[type=submit]").await;
    b.find("table.messages").await;
    for verdict in ["delivered", "refused", "discarded"] {
        b.goto(&format!("{web}/?verdict={verdict}")).await;
        assert!(
            b.count("table.messages tbody tr").await > 0,
            "no {verdict} message"
        );
    }
    // The Report's figures, as its dashboard reads them (the session's cookie signs the API in).
    b.goto(&format!("{web}/api/v1/stats?since=1h")).await;
    let stats: serde_json::Value = serde_json::from_str(&b.text("body").await).unwrap();
    for class in [
        "clean",
        "tagged",
        "spam",
        "virus",
        "discarded",
        "refused",
        "tempfailed",
        "abandoned",
    ] {
        assert!(
            stats["classes"][class].as_i64().unwrap_or(0) > 0,
            "no {class} in the Report: {stats}"
        );
    }
    assert!(stats["load"]["queued"].as_i64().unwrap_or(0) > 0, "{stats}");
    b.goto(&format!("{web}/admin/report")).await;
    assert!(b.count("svg").await > 0, "the dashboard draws its charts");
    b.goto(&format!("{web}/admin/queue")).await;
    let queue = b.text("main").await;
    assert!(
        queue.contains("queue_mode_on") && queue.contains("queue_mode_off"),
        "{queue}"
    );
    b.quit().await;

    let ok = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert!(
        !data.exists(),
        "the data directory is removed: {}",
        data.display()
    );
}
