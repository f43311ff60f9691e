//! The Report's figures against known traffic: clean mail, a trap hit, a client in the penalty
//! box, an EICAR attachment (real clamd) and a backend tempfail — each counted once in its class,
//! the load in and out in bytes, and the spam's client, sender domain and HELO on the top lists;
//! read back through `sponts stats --json`.

mod common;

use common::peers::Engine;
use common::*;
use std::process::Command;

fn eicar() -> String {
    format!("{}{}", r"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD", "-ANTIVIRUS-TEST-FILE!$H+H*")
}

#[tokio::test]
async fn figures_match_a_known_mix_of_traffic() {
    let clamd = Engine::clamd();
    let cap = Capture::start(CaptureOptions { data_reply_if: Some(("PLEASE-TEMPFAIL".into(), "451 4.3.0 Try again later".into())), ..Default::default() }).await;
    let extra = format!("[virus]\nclamd = \"{}\"\n[uce]\ntarpit_delay = \"0s\"\ntraps = [\"trap@example.org\"]\n", clamd.address());
    let gw = gateway(cap.addr, &extra).await;
    gw.store.penalize("127.0.0.4", sponts::clock::now_us() + 3_600_000_000, "test").await.unwrap();
    let clean: &[u8] = b"Subject: clean\r\n\r\nhello\r\n";

    let mut c = Client::connect(gw.addr).await;
    c.expect("EHLO friend.test", 250).await;
    for _ in 0..2 {
        assert!(c.send_mail("f@friend.example", &["u@example.org"], clean).await.starts_with("250"));
    }
    let virus = format!("Subject: virus\r\n\r\n{}\r\n", eicar());
    assert!(c.send_mail("v@infected.example", &["u@example.org"], virus.as_bytes()).await.starts_with("550"));
    assert!(c.send_mail("f@friend.example", &["u@example.org"], b"Subject: t\r\n\r\nPLEASE-TEMPFAIL\r\n").await.starts_with("451"));
    let mut t = Client::connect_from(gw.addr, "127.0.0.6").await;
    t.expect("EHLO Trap.Bot", 250).await;
    assert!(t.send_mail("s@spam.example", &["trap@example.org"], b"Subject: buy\r\n\r\nnow\r\n").await.starts_with("250"));
    let mut p = Client::connect_from(gw.addr, "127.0.0.4").await;
    p.expect("EHLO boxed.bot", 250).await;
    p.expect("MAIL FROM:<x@Spam.example>", 250).await;
    p.expect("RCPT TO:<u@example.org>", 550).await;
    p.expect("QUIT", 221).await;
    c.expect("QUIT", 221).await;
    t.expect("QUIT", 221).await;

    let cfg = gw.dir.path().join("sponts.toml");
    std::fs::write(&cfg, format!("[storage]\ndata_dir = \"{}\"\n", gw.dir.path().display())).unwrap();
    // Figures are written after the replies: wait (bounded) until all six are in.
    let mut f = serde_json::Value::Null;
    for _ in 0..50 {
        let out = Command::new(env!("CARGO_BIN_EXE_sponts")).args(["stats", "--since", "1h", "--json"]).env("SPONTS_CONFIG", &cfg).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        f = serde_json::from_slice(&out.stdout).unwrap();
        if f["transactions"] == 6 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let classes = &f["classes"];
    assert_eq!(classes["clean"], 2, "{f}");
    assert_eq!(classes["virus"], 1, "{f}");
    assert_eq!(classes["tempfailed"], 1, "{f}");
    assert_eq!(classes["discarded"], 1, "{f}");
    assert_eq!(classes["spam"], 1, "{f}");
    assert_eq!(f["transactions"], 6, "{f}");
    let sizes = 2 * clean.len() + virus.len() + b"Subject: t\r\n\r\nPLEASE-TEMPFAIL\r\n".len() + b"Subject: buy\r\n\r\nnow\r\n".len();
    assert_eq!(f["load"]["bytes_in"], sizes as i64, "{f}");
    assert_eq!(f["load"]["messages_in"], 5, "{f}");
    assert_eq!((f["load"]["messages_out"].as_i64(), f["load"]["bytes_out"].as_i64()), (Some(2), Some(2 * clean.len() as i64)), "{f}");
    assert_eq!(f["decided_by"]["virus"], 1, "{f}");
    assert_eq!(f["decided_by"]["uce"], 2, "{f}");
    let top = &f["top"];
    let has = |list: &str, key: &str| top[list].as_array().unwrap().iter().any(|e| e[0] == key && e[1] == 1);
    assert!(has("ip", "127.0.0.4") && has("ip", "127.0.0.6") && has("ip", "127.0.0.1"), "{top}");
    assert!(top["sender_domain"][0] == serde_json::json!(["spam.example", 2]) && has("sender_domain", "infected.example"), "{top}");
    assert!(has("helo", "trap.bot") && has("helo", "boxed.bot"), "{top}");
    assert!(has("reason", "discarded by uce") && has("reason", "virus by virus") && has("reason", "spam by uce"), "{top}");
    gw.stop().await;
}

#[tokio::test]
async fn hourly_buckets_add_up_on_sqlite_and_postgres() {
    let db = common::pg::TestDb::create().await;
    let dir = tempfile::tempdir().unwrap();
    for location in [sponts::config::DatabaseLocation::Sqlite(dir.path().join("s.db")), sponts::config::DatabaseLocation::Postgres(db.url.clone())] {
        let store = sponts::storage::Store::open(&location).await.unwrap();
        let h = 3_600_000_000i64;
        let d = |hour: i64, m: &str, k: &str, v: i64| (hour * h, m.to_string(), k.to_string(), v);
        store.add_stats(&[d(10, "class", "spam", 1), d(10, "class", "spam", 2), d(11, "class", "spam", 4), d(11, "class", "clean", 5)]).await.unwrap();
        store.add_stats(&[d(11, "class", "clean", 1), d(12, "class", "clean", 100)]).await.unwrap();
        let totals = store.stats_totals(10 * h, 12 * h).await.unwrap();
        // Biggest first within a metric: the top lists read straight off.
        assert_eq!(totals, vec![("class".to_string(), "spam".to_string(), 7), ("class".to_string(), "clean".to_string(), 6)]);
        let hours = store.stats_hours("class", 10 * h, 13 * h).await.unwrap();
        assert_eq!(hours.len(), 4);
        assert_eq!(hours[3], (12 * h, "clean".to_string(), 100));
        store.close().await;
    }
    db.drop_db().await;
}
