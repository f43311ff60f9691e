//! Lawful interception, the groundwork: the interception role is separate from admins and users
//! (an officer sees no mail; admins cannot see or change officers), orders are made, listed and
//! ended from the CLI, and every action goes into an audit log whose hash chain `sponts audit
//! verify` checks — a changed or removed row is found, on SQLite and PostgreSQL.

mod common;

use common::http::{login, request};
use common::*;
use std::io::Write;
use std::process::{Command, Stdio};

fn sponts(cfg: &std::path::Path, args: &[&str], stdin: Option<&str>) -> (bool, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sponts"))
        .args(args)
        .env("SPONTS_CONFIG", cfg)
        .env("USER", "officer")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(text) = stdin {
        writeln!(child.stdin.take().unwrap(), "{text}").unwrap();
    }
    let out = child.wait_with_output().unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

async fn tamper(store: &sponts::storage::Store, sql: &str) {
    match store {
        sponts::storage::Store::Sqlite(p) => drop(sqlx::query(sqlx::AssertSqlSafe(sql.to_string())).execute(p).await.unwrap()),
        sponts::storage::Store::Postgres(p) => drop(sqlx::query(sqlx::AssertSqlSafe(sql.to_string())).execute(p).await.unwrap()),
    }
}

#[tokio::test]
async fn the_audit_chain_finds_a_changed_or_removed_row_on_sqlite_and_postgres() {
    let db = common::pg::TestDb::create().await;
    let dir = tempfile::tempdir().unwrap();
    for location in [sponts::config::DatabaseLocation::Sqlite(dir.path().join("s.db")), sponts::config::DatabaseLocation::Postgres(db.url.clone())] {
        let store = sponts::storage::Store::open(&location).await.unwrap();
        // Appends from several tasks at once still make one chain.
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..12 {
            let store = store.clone();
            tasks.spawn(async move { store.audit("cli:test", "order.add", &format!("order {i}\nwith a line break")).await.unwrap() });
        }
        while tasks.join_next().await.is_some() {}
        let log = store.audit_log().await.unwrap();
        assert_eq!(sponts::storage::intercept::verify(&log), Ok(12));
        tamper(&store, "UPDATE intercept_audit SET detail = 'order 99' WHERE seq = 5").await;
        assert_eq!(sponts::storage::intercept::verify(&store.audit_log().await.unwrap()).unwrap_err().0, 5);
        tamper(&store, &format!("UPDATE intercept_audit SET detail = '{}' WHERE seq = 5", log[4].detail.replace('\'', "''"))).await;
        assert_eq!(sponts::storage::intercept::verify(&store.audit_log().await.unwrap()), Ok(12), "restored");
        tamper(&store, "DELETE FROM intercept_audit WHERE seq = 9").await;
        assert_eq!(sponts::storage::intercept::verify(&store.audit_log().await.unwrap()).unwrap_err().0, 9);
        store.close().await;
    }
    db.drop_db().await;
}

#[tokio::test]
async fn orders_from_the_cli_and_the_audit_log() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("sponts.toml");
    std::fs::write(&cfg, format!("[storage]\ndata_dir = \"{}\"\n", dir.path().join("data").display())).unwrap();
    let (ok, out) = tokio::task::spawn_blocking({
        let cfg = cfg.clone();
        move || sponts(&cfg, &["user", "add", "officer@example.org", "--interception", "--password-stdin"], Some("an officer's password"))
    })
    .await
    .unwrap();
    assert!(ok && out.contains("added interception officer@example.org"), "{out}");
    let run = |args: Vec<&'static str>| {
        let cfg = cfg.clone();
        tokio::task::spawn_blocking(move || sponts(&cfg, &args, None))
    };
    let (ok, out) = run(vec!["intercept", "add", "--reference", "AG Musterstadt 12 Gs 345/26", "--target", "Target@Example.org", "--until", "2099-01-01", "--deliver", "smtp://li.agency.example:25", "--deliver-to", "li@agency.example"]).await.unwrap();
    assert!(ok, "{out}");
    let id = out.split_whitespace().nth(1).unwrap().to_string();
    let (ok, out) = run(vec!["intercept", "list"]).await.unwrap();
    assert!(ok && out.contains(&id) && out.contains("active") && out.contains("target@example.org"), "{out}");
    // Bad orders are refused with the option named.
    for (args, named) in [
        (vec!["intercept", "add", "--reference", "R", "--target", "t@example.org", "--until", "2020-01-01", "--deliver", "dir:/tmp/li"], "--until"),
        (vec!["intercept", "add", "--reference", "R", "--target", "nobody", "--until", "2099-01-01", "--deliver", "dir:/tmp/li"], "--target"),
        (vec!["intercept", "add", "--reference", "R", "--target", "t@example.org", "--until", "2099-01-01", "--deliver", "smtp://li.agency.example:25"], "--deliver-to"),
        (vec!["intercept", "add", "--reference", "R", "--target", "t@example.org", "--until", "soon", "--deliver", "dir:/tmp/li"], "--until"),
    ] {
        let (ok, out) = run(args).await.unwrap();
        assert!(!ok && out.contains(named), "{named}: {out}");
    }
    let id2: &'static str = Box::leak(id.clone().into_boxed_str());
    let (ok, out) = run(vec!["intercept", "end", id2]).await.unwrap();
    assert!(ok && out.contains("ended"), "{out}");
    let (ok, _) = run(vec!["intercept", "end", id2]).await.unwrap();
    assert!(!ok, "an ended order cannot end again");
    let (ok, out) = run(vec!["audit", "verify"]).await.unwrap();
    assert!(ok && out.contains("intact"), "{out}");
    let (ok, log) = run(vec!["audit", "list", "--json"]).await.unwrap();
    assert!(ok);
    let actions: Vec<String> = log.lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["action"].as_str().unwrap().to_string()).collect();
    assert_eq!(actions, ["account.add", "order.add", "order.list", "order.end", "audit.verify", "audit.list"], "every action, reading included");
    assert!(log.contains("cli:officer"), "who did it: {log}");
    // A changed row is found and named.
    let store = sponts::storage::Store::open(&sponts::config::DatabaseLocation::Sqlite(dir.path().join("data/sponts.db"))).await.unwrap();
    tamper(&store, "UPDATE intercept_audit SET actor = 'cli:someone-else' WHERE seq = 2").await;
    store.close().await;
    let (ok, out) = run(vec!["audit", "verify"]).await.unwrap();
    assert!(!ok && out.contains("broken at entry 2"), "{out}");
}

#[tokio::test]
async fn officers_see_no_mail_and_admins_do_not_see_officers() {
    let cap = Capture::start(CaptureOptions::default()).await;
    let gw = gateway(cap.addr, "").await;
    add_user(&gw.store, "admin@example.org", sponts::storage::Role::Admin).await;
    add_user(&gw.store, "officer@example.org", sponts::storage::Role::Interception).await;
    let mut c = Client::connect(gw.addr).await;
    c.expect("EHLO client.test", 250).await;
    assert!(c.send_mail("a@partner.example", &["officer@example.org"], b"Subject: to the officer\r\n\r\nhi\r\n").await.starts_with("250"));
    c.expect("QUIT", 221).await;
    let officer = login(gw.web, "officer@example.org", PASSWORD).await.unwrap();
    let bearer = format!("Bearer {}", officer.token);
    let auth = [("authorization", bearer.as_str())];
    let mut seen = serde_json::Value::Null;
    for _ in 0..50 {
        seen = request(gw.web, "GET", "/api/v1/messages", &auth, None).await.json();
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(seen["messages"].as_array().map(Vec::len), Some(0), "not even mail to their own address: {seen}");
    for path in ["/admin/users", "/admin/report", "/admin/queue", "/api/v1/stats", "/metrics"] {
        assert_eq!(request(gw.web, "GET", path, &auth, None).await.status, 403, "{path}");
    }
    let admin = login(gw.web, "admin@example.org", PASSWORD).await.unwrap();
    let cookie = [("cookie", admin.cookie.as_str())];
    let users = request(gw.web, "GET", "/admin/users", &cookie, None).await.text();
    assert!(!users.contains("officer@example.org"), "admins do not see officers");
    let admin_mail = request(gw.web, "GET", "/api/v1/messages", &[("authorization", &format!("Bearer {}", admin.token))], None).await.json();
    assert!(admin_mail["messages"].as_array().unwrap().len() == 1, "the mail itself is an admin's to see: {admin_mail}");
    for (path, body) in [
        ("/admin/users/password", format!("csrf={}&address=officer%40example.org&password=taken+over+now", admin.csrf)),
        ("/admin/users/delete", format!("csrf={}&address=officer%40example.org", admin.csrf)),
        ("/admin/users/alias", format!("csrf={}&address=officer%40example.org&role=ceo%40example.org", admin.csrf)),
    ] {
        let r = request(gw.web, "POST", path, &cookie, Some(("application/x-www-form-urlencoded", body.as_bytes()))).await;
        assert!(r.header("location").unwrap().contains("error="), "{path}: {:?}", r.header("location"));
    }
    assert!(login(gw.web, "officer@example.org", PASSWORD).await.is_ok(), "the officer's password is unchanged");
    assert!(login(gw.web, "officer@example.org", "taken over now").await.is_err());
    gw.stop().await;
}
