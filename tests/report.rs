//! The Report's figures against known traffic: clean mail, a trap hit, a client in the penalty
//! box, an EICAR attachment (real clamd) and a backend tempfail — each counted once in its class,
//! the load in and out in bytes, connections and peak sessions, clamd's calls, and the spam's
//! client, sender domain and HELO on the top lists; read back through `sponts stats --json`, the
//! dashboard's chart series and CSV export, the JSON API, and the report mail. Then who may see
//! it, the dashboard in headless Chromium, `/metrics` on its own listener, and the buckets and
//! their compaction on SQLite and PostgreSQL.

mod common;

use common::peers::Engine;
use common::*;
use std::process::Command;

fn eicar() -> String {
    format!(
        "{}{}",
        r"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD", "-ANTIVIRUS-TEST-FILE!$H+H*"
    )
}

#[tokio::test]
async fn figures_match_a_known_mix_of_traffic() {
    common::clear_of_hour_boundary().await;
    let clamd = Engine::clamd();
    let cap = Capture::start(CaptureOptions {
        data_reply_if: Some(("PLEASE-TEMPFAIL".into(), "451 4.3.0 Try again later".into())),
        ..Default::default()
    })
    .await;
    let extra = format!(
        "[virus]\nclamd = \"{}\"\n[uce]\ntarpit_delay = \"0s\"\ntraps = [\"trap@example.org\"]\n[report]\nsample_every = \"100ms\"\nmail = \"off\"\n",
        clamd.address()
    );
    let gw = gateway(cap.addr, &extra).await;
    gw.store
        .penalize("127.0.0.4", sponts::clock::now_us() + 3_600_000_000, "test")
        .await
        .unwrap();
    let clean: &[u8] = b"Subject: clean\r\n\r\nhello\r\n";

    let mut c = Client::connect(gw.addr).await;
    c.expect("EHLO friend.test", 250).await;
    for _ in 0..2 {
        assert!(
            c.send_mail("f@friend.example", &["u@example.org"], clean)
                .await
                .starts_with("250")
        );
    }
    let virus = format!("Subject: virus\r\n\r\n{}\r\n", eicar());
    assert!(
        c.send_mail("v@infected.example", &["u@example.org"], virus.as_bytes())
            .await
            .starts_with("550")
    );
    assert!(
        c.send_mail(
            "f@friend.example",
            &["u@example.org"],
            b"Subject: t\r\n\r\nPLEASE-TEMPFAIL\r\n"
        )
        .await
        .starts_with("451")
    );
    let mut t = Client::connect_from(gw.addr, "127.0.0.6").await;
    t.expect("EHLO Trap.Bot", 250).await;
    assert!(
        t.send_mail(
            "s@spam.example",
            &["trap@example.org"],
            b"Subject: buy\r\n\r\nnow\r\n"
        )
        .await
        .starts_with("250")
    );
    let mut p = Client::connect_from(gw.addr, "127.0.0.4").await;
    p.expect("EHLO boxed.bot", 250).await;
    p.expect("MAIL FROM:<x@Spam.example>", 250).await;
    p.expect("RCPT TO:<u@example.org>", 550).await;
    // Three sessions are open at once here.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    p.expect("QUIT", 221).await;
    c.expect("QUIT", 221).await;
    t.expect("QUIT", 221).await;
    add_user(&gw.store, "admin@example.org", sponts::storage::Role::Admin).await;

    let cfg = gw.dir.path().join("sponts.toml");
    std::fs::write(&cfg, format!("[storage]\ndata_dir = \"{}\"\n[backend]\naddress = \"{}\"\nstarttls = \"off\"\n[domains]\nlocal = [\"example.org\"]\n", gw.dir.path().display(), cap.addr)).unwrap();
    // Figures are written after the replies: wait (bounded) until all six are in.
    let mut f = serde_json::Value::Null;
    for _ in 0..50 {
        let mut stats = Command::new(env!("CARGO_BIN_EXE_sponts"));
        stats
            .args(["stats", "--since", "1h", "--json"])
            .env("SPONTS_CONFIG", &cfg);
        let out = output(stats).await;
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        f = serde_json::from_slice(&out.stdout).unwrap();
        if f["transactions"] == 6 && f["load"]["connections"] == 3 {
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
    let sizes = 2 * clean.len()
        + virus.len()
        + b"Subject: t\r\n\r\nPLEASE-TEMPFAIL\r\n".len()
        + b"Subject: buy\r\n\r\nnow\r\n".len();
    assert_eq!(f["load"]["bytes_in"], sizes as i64, "{f}");
    assert_eq!(f["load"]["messages_in"], 5, "{f}");
    assert_eq!(
        (
            f["load"]["messages_out"].as_i64(),
            f["load"]["bytes_out"].as_i64()
        ),
        (Some(2), Some(2 * clean.len() as i64)),
        "{f}"
    );
    assert_eq!(f["load"]["connections"], 3, "{f}");
    assert_eq!(f["load"]["sessions_peak"], 3, "{f}");
    assert_eq!(f["decided_by"]["virus"], 1, "{f}");
    assert_eq!(f["decided_by"]["uce"], 2, "{f}");
    assert_eq!(f["reasons"]["spam by uce"], 1, "{f}");
    // Prometheus has the same rates and load, as counters of this process.
    let admin_token = common::http::login(gw.web, "admin@example.org", common::PASSWORD)
        .await
        .unwrap()
        .token;
    let m = common::http::request(
        gw.web,
        "GET",
        "/metrics",
        &[("Authorization", &format!("Bearer {admin_token}"))],
        None,
    )
    .await
    .text();
    for line in [
        "sponts_messages_total{class=\"clean\"} 2".to_string(),
        "sponts_messages_total{class=\"virus\"} 1".into(),
        "sponts_messages_total{class=\"tempfailed\"} 1".into(),
        "sponts_messages_total{class=\"discarded\"} 1".into(),
        "sponts_messages_total{class=\"spam\"} 1".into(),
        "sponts_received_messages_total 5".into(),
        format!("sponts_received_bytes_total {sizes}"),
        "sponts_delivered_messages_total 2".into(),
        format!("sponts_delivered_bytes_total {}", 2 * clean.len()),
    ] {
        assert!(m.lines().any(|l| l == line), "{line} in:\n{m}");
    }
    // clamd saw every message that reached DATA, and found one virus.
    let clamd_row = f["scanners"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["scanner"] == "clamd")
        .cloned()
        .unwrap_or_default();
    assert_eq!(clamd_row["found"], 1, "{f}");
    assert_eq!(
        clamd_row["errors"].as_i64().unwrap() + clamd_row["timeouts"].as_i64().unwrap(),
        0,
        "{f}"
    );
    assert!(clamd_row["calls"].as_i64().unwrap() >= 4, "{f}");
    assert!(
        clamd_row["median_s"].as_f64().is_some()
            && clamd_row["p95_s"].as_f64() >= clamd_row["median_s"].as_f64(),
        "{f}"
    );
    let top = &f["top"];
    let entry = |list: &str, key: &str| {
        top[list]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["key"] == key)
            .cloned()
    };
    let count = |list: &str, key: &str| entry(list, key).map(|e| e["count"].as_i64().unwrap());
    assert_eq!(
        (
            count("ip", "127.0.0.4"),
            count("ip", "127.0.0.6"),
            count("ip", "127.0.0.1")
        ),
        (Some(1), Some(1), Some(1)),
        "{top}"
    );
    assert_eq!(top["sender_domain"][0]["key"], "spam.example", "{top}");
    assert_eq!(top["sender_domain"][0]["count"], 2, "{top}");
    let mix = &top["sender_domain"][0]["reasons"];
    assert_eq!(
        (
            mix["discarded by uce"].as_i64(),
            mix["spam by uce"].as_i64()
        ),
        (Some(1), Some(1)),
        "the reason mix: {top}"
    );
    assert_eq!(
        entry("sender_domain", "infected.example").unwrap()["reasons"]["virus by virus"],
        1,
        "{top}"
    );
    assert_eq!(
        (count("helo", "trap.bot"), count("helo", "boxed.bot")),
        (Some(1), Some(1)),
        "{top}"
    );

    // The dashboard draws the same figures: one bar segment per class in this hour.
    let admin = common::http::login(gw.web, "admin@example.org", common::PASSWORD)
        .await
        .unwrap();
    let cookie = [("cookie", admin.cookie.as_str())];
    let page = common::http::request(gw.web, "GET", "/admin/report?range=24h", &cookie, None).await;
    assert_eq!(page.status, 200);
    let html = page.text();
    let hour = format!(
        "{}:00:00Z",
        &sponts::clock::rfc3339(sponts::clock::now_us())[..13]
    );
    for (class, n) in [
        ("clean", 2),
        ("virus", 1),
        ("tempfailed", 1),
        ("discarded", 1),
        ("spam", 1),
    ] {
        let bar = format!(r#"data-bucket="{hour}" data-class="{class}" data-count="{n}""#);
        assert!(html.contains(&bar), "no {bar} in the chart");
    }
    assert!(
        !html.contains(r#"data-class="refused""#),
        "no refused bar: none was refused otherwise"
    );
    assert!(
        html.contains(&format!(
            r#"data-bucket="{hour}" data-series="messages_in" data-value="5""#
        )),
        "load chart"
    );
    assert!(
        html.contains(&format!(
            r#"data-bucket="{hour}" data-series="sessions_peak" data-value="3""#
        )),
        "sessions chart"
    );
    assert!(html.contains(r#"<td>clamd</td>"#), "scanner table");
    // CSV of every table; the rates add up to the total.
    let csv = common::http::request(
        gw.web,
        "GET",
        "/admin/report.csv?table=classes&range=24h",
        &cookie,
        None,
    )
    .await;
    assert_eq!(csv.status, 200);
    assert!(csv.header("content-type").unwrap().starts_with("text/csv"));
    let body = csv.text();
    assert!(
        body.starts_with("class,messages,percent\r\n")
            && body.contains("\r\nclean,2,33.3\r\n")
            && body.contains("\r\ntotal,6,100.0\r\n"),
        "{body}"
    );
    for table in [
        "load",
        "scanners",
        "top_ip",
        "top_sender_domain",
        "top_helo",
        "decided_by",
        "series",
    ] {
        let r = common::http::request(
            gw.web,
            "GET",
            &format!("/admin/report.csv?table={table}&range=7d&bucket=day"),
            &cookie,
            None,
        )
        .await;
        assert_eq!(r.status, 200, "{table}");
        assert!(r.text().lines().count() >= 2, "{table}: {}", r.text());
    }
    let ips = common::http::request(
        gw.web,
        "GET",
        "/admin/report.csv?table=top_ip",
        &cookie,
        None,
    )
    .await
    .text();
    assert!(ips.contains("127.0.0.4,1,spam by uce: 1"), "{ips}");
    // The JSON API has the same figures.
    let bearer = format!("Bearer {}", admin.token);
    let api = common::http::request(
        gw.web,
        "GET",
        "/api/v1/stats?range=24h&bucket=hour",
        &[("authorization", bearer.as_str())],
        None,
    )
    .await;
    assert_eq!(api.status, 200);
    let j = api.json();
    assert_eq!(
        (j["classes"].clone(), j["transactions"].clone()),
        (f["classes"].clone(), f["transactions"].clone())
    );
    assert_eq!(
        j["series"].as_array().unwrap().len(),
        24,
        "24 hourly buckets"
    );
    for bad in [
        "/api/v1/stats?range=soon",
        "/api/v1/stats?from=2026-13-01",
        "/api/v1/stats?bucket=fortnight",
        "/api/v1/stats?range=3650d&bucket=hour",
    ] {
        assert_eq!(
            common::http::request(
                gw.web,
                "GET",
                bad,
                &[("authorization", bearer.as_str())],
                None
            )
            .await
            .status,
            400,
            "{bad}"
        );
    }
    assert_eq!(
        common::http::request(gw.web, "GET", "/admin/report.csv?table=nope", &cookie, None)
            .await
            .status,
        400
    );

    // The report mail, through the backend: text and HTML with the charts.
    let before = cap.deliveries().len();
    // Off the test's runtime thread: the capture backend runs on it.
    let cfg2 = cfg.clone();
    let mut mail = Command::new(env!("CARGO_BIN_EXE_sponts"));
    mail.args(["stats", "--since", "1h", "--mail"])
        .env("SPONTS_CONFIG", &cfg2);
    let out = output(mail).await;
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let mail = cap.wait_for(before + 1).await.pop().unwrap();
    assert_eq!(
        mail.rcpts,
        vec!["admin@example.org".to_string()],
        "the admins get it"
    );
    let parsed = mail_parser::MessageParser::default()
        .parse(&mail.data)
        .unwrap();
    assert!(
        parsed.subject().unwrap().contains("6 messages"),
        "{:?}",
        parsed.subject()
    );
    let text = parsed.body_text(0).unwrap();
    assert!(
        text.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["clean", "2", "33.3"]),
        "{text}"
    );
    let html = parsed.body_html(0).unwrap();
    assert!(
        html.contains("<svg") && html.contains(r#"data-class="virus" data-count="1""#),
        "{html}"
    );
    gw.stop().await;
}

/// Every stats page and endpoint is for admins: a user gets 403, a stranger no figures.
#[tokio::test]
async fn only_admins_see_the_report() {
    let cap = Capture::start(CaptureOptions::default()).await;
    let gw = gateway(cap.addr, "").await;
    add_user(&gw.store, "admin@example.org", sponts::storage::Role::Admin).await;
    add_user(&gw.store, "user@example.org", sponts::storage::Role::User).await;
    let user = common::http::login(gw.web, "user@example.org", common::PASSWORD)
        .await
        .unwrap();
    let admin = common::http::login(gw.web, "admin@example.org", common::PASSWORD)
        .await
        .unwrap();
    let paths = [
        "/admin/report",
        "/admin/report?range=30d",
        "/admin/report.csv?table=classes",
        "/api/v1/stats",
        "/metrics",
    ];
    for path in paths {
        for (who, login) in [("user", &user), ("admin", &admin)] {
            let by_cookie = common::http::request(
                gw.web,
                "GET",
                path,
                &[("cookie", login.cookie.as_str())],
                None,
            )
            .await;
            let bearer = format!("Bearer {}", login.token);
            let by_token = common::http::request(
                gw.web,
                "GET",
                path,
                &[("authorization", bearer.as_str())],
                None,
            )
            .await;
            let expected = if who == "admin" { 200 } else { 403 };
            assert_eq!(by_cookie.status, expected, "{who} {path} (cookie)");
            assert_eq!(by_token.status, expected, "{who} {path} (token)");
        }
        let anonymous = common::http::request(gw.web, "GET", path, &[], None).await;
        assert!(
            matches!(anonymous.status, 401 | 303),
            "{path}: {}",
            anonymous.status
        );
        assert!(!anonymous.text().contains("transactions"), "{path}");
    }
    let nav = common::http::request(
        gw.web,
        "GET",
        "/",
        &[("cookie", user.cookie.as_str())],
        None,
    )
    .await
    .text();
    assert!(!nav.contains("/admin/report"), "users get no Report link");
    gw.stop().await;
}

/// The dashboard in headless Chromium: the range picker, the charts, a screenshot.
#[tokio::test]
async fn the_dashboard_in_a_browser() {
    let cap = Capture::start(CaptureOptions::default()).await;
    let gw = gateway(
        cap.addr,
        "[report]\nsample_every = \"100ms\"\nmail = \"off\"\n",
    )
    .await;
    add_user(&gw.store, "admin@example.org", sponts::storage::Role::Admin).await;
    // A week of made-up figures, so the chart has bars to show.
    common::clear_of_hour_boundary().await;
    let now = sponts::clock::now_us();
    let h = 3_600_000_000i64;
    let mut d = Vec::new();
    for i in 0..(7 * 24) {
        let hour = now - now.rem_euclid(h) - i * h;
        for (class, n) in [
            ("clean", 40 + i % 13),
            ("spam", 25 + i % 7),
            ("virus", i % 3),
            ("discarded", i % 5),
            ("tempfailed", i % 2),
        ] {
            d.push((hour, "class".to_string(), class.to_string(), n));
        }
        d.push((hour, "messages_in".to_string(), String::new(), 70));
        d.push((hour, "connections".to_string(), String::new(), 90));
    }
    gw.store.add_stats(&d).await.unwrap();
    let base = format!("http://{}", gw.web);
    let b = common::browser::Browser::start().await;
    b.window(1280, 1500).await;
    b.goto(&format!("{base}/login")).await;
    b.type_into("#username", "admin@example.org").await;
    b.type_into("#password", common::PASSWORD).await;
    b.click("button[type=submit]").await;
    b.find("nav a[href='/admin/report']").await;
    b.click("nav a[href='/admin/report']").await;
    b.find("#chart-classes").await;
    let segments: i64 = (0..24)
        .map(|i: i64| 2 + i64::from(i % 3 != 0) + i64::from(i % 5 != 0) + i64::from(i % 2 != 0))
        .sum();
    assert_eq!(
        b.count("#chart-classes rect[data-class]").await as i64,
        segments,
        "bar segments of the last 24 hours"
    );
    b.find("#range").await;
    b.goto(&format!("{base}/admin/report?range=7d")).await;
    b.find("#chart-classes").await;
    assert!(
        b.text("#range-shown").await.contains("per day"),
        "{}",
        b.text("#range-shown").await
    );
    assert!(b.text("#table-classes").await.contains("spam"));
    let shot = b.screenshot("report-dashboard").await;
    assert!(
        std::fs::metadata(&shot).unwrap().len() > 10_000,
        "a real picture"
    );
    b.quit().await;
    gw.stop().await;
}

/// `metrics.listen`: /metrics without a login on its own address, with this node's
/// connection counters.
#[tokio::test]
async fn metrics_on_their_own_listener() {
    let cap = Capture::start(CaptureOptions::default()).await;
    let metrics_addr = dead_address();
    let gw = gateway(
        cap.addr,
        &format!("[metrics]\nlisten = \"{metrics_addr}\"\n"),
    )
    .await;
    let mut c = Client::connect(gw.addr).await;
    c.expect("EHLO a.test", 250).await;
    let r = common::http::request(metrics_addr, "GET", "/metrics", &[], None).await;
    assert_eq!(r.status, 200);
    let text = r.text();
    assert!(
        text.contains("sponts_connections_total{result=\"accepted\"} 1\n"),
        "{text}"
    );
    assert!(text.contains("sponts_sessions 1\n"), "{text}");
    assert!(
        text.contains("# TYPE sponts_scanner_duration_seconds histogram"),
        "{text}"
    );
    assert_eq!(
        common::http::request(metrics_addr, "GET", "/admin/report", &[], None)
            .await
            .status,
        404,
        "only /metrics there"
    );
    c.expect("QUIT", 221).await;
    gw.stop().await;
}

#[tokio::test]
async fn buckets_add_up_and_top_lists_compact_on_sqlite_and_postgres() {
    let db = common::pg::TestDb::create().await;
    let dir = tempfile::tempdir().unwrap();
    for location in [
        sponts::config::DatabaseLocation::Sqlite(dir.path().join("s.db")),
        sponts::config::DatabaseLocation::Postgres(db.url.clone()),
    ] {
        let store = sponts::storage::Store::open(&location).await.unwrap();
        let h = 3_600_000_000i64;
        let d = |hour: i64, m: &str, k: &str, v: i64| (hour * h, m.to_string(), k.to_string(), v);
        store
            .add_stats(&[
                d(10, "class", "spam", 1),
                d(10, "class", "spam", 2),
                d(11, "class", "spam", 4),
                d(11, "class", "clean", 5),
            ])
            .await
            .unwrap();
        store
            .add_stats(&[d(11, "class", "clean", 1), d(12, "class", "clean", 100)])
            .await
            .unwrap();
        // Peaks keep the maximum.
        store
            .add_live_stats(
                &[d(11, "connections", "", 3)],
                &[d(11, "sessions_peak", "", 7)],
            )
            .await
            .unwrap();
        store
            .add_live_stats(
                &[d(11, "connections", "", 2)],
                &[d(11, "sessions_peak", "", 4)],
            )
            .await
            .unwrap();
        let mut rows = store.stats_rows(10 * h, 12 * h, false).await.unwrap();
        rows.sort();
        let r =
            |hour: i64, m: &str, k: &str, v: i64| (hour * h, m.to_string(), k.to_string(), v, v);
        assert_eq!(
            rows,
            vec![
                r(10, "class", "spam", 3),
                r(11, "class", "clean", 6),
                r(11, "class", "spam", 4),
                r(11, "connections", "", 5),
                r(11, "sessions_peak", "", 7)
            ]
        );
        // By day: sums add up, peaks keep their maximum.
        store
            .add_live_stats(
                &[],
                &[d(13, "sessions_peak", "", 9), d(14, "sessions_peak", "", 2)],
            )
            .await
            .unwrap();
        let mut days = store.stats_rows(0, 24 * h, true).await.unwrap();
        days.sort();
        assert_eq!(
            days,
            vec![
                (0, "class".into(), "clean".into(), 106, 100),
                (0, "class".into(), "spam".into(), 7, 4),
                (0, "connections".into(), String::new(), 5, 5),
                (0, "sessions_peak".into(), String::new(), 18, 9)
            ]
        );
        // A top list over three hours, compacted to its two leading keys plus the rest.
        let ip =
            |hour: i64, key: &str, v: i64| d(hour, "spam_ip", &format!("{key}\tspam by uce"), v);
        store
            .add_stats(&[
                ip(20, "192.0.2.1", 5),
                ip(21, "192.0.2.1", 5),
                ip(20, "192.0.2.2", 7),
                ip(22, "192.0.2.3", 1),
                ip(22, "192.0.2.4", 1),
            ])
            .await
            .unwrap();
        store.compact_top_lists(20 * h, 23 * h, 2).await.unwrap();
        let mut top = store.stats_top("spam_ip", 20 * h, 23 * h).await.unwrap();
        top.sort();
        assert_eq!(
            top,
            vec![
                (sponts::storage::stats::OTHERS.to_string(), 2),
                ("192.0.2.1\tspam by uce".to_string(), 10),
                ("192.0.2.2\tspam by uce".to_string(), 7)
            ]
        );
        // Again, and with a late arrival: the same totals, the late one folded in.
        store.add_stats(&[ip(21, "192.0.2.2", 1)]).await.unwrap();
        store.compact_top_lists(20 * h, 23 * h, 2).await.unwrap();
        let mut top = store.stats_top("spam_ip", 20 * h, 23 * h).await.unwrap();
        top.sort();
        assert_eq!(
            top,
            vec![
                (sponts::storage::stats::OTHERS.to_string(), 2),
                ("192.0.2.1\tspam by uce".to_string(), 10),
                ("192.0.2.2\tspam by uce".to_string(), 8)
            ]
        );
        let f = sponts::report::figures::read(
            &store,
            sponts::report::figures::Range::new(20 * h, 23 * h, None),
        )
        .await
        .unwrap();
        assert_eq!(
            f.top["ip"]
                .iter()
                .map(|e| (e.key.as_str(), e.count))
                .collect::<Vec<_>>(),
            [("192.0.2.1", 10), ("192.0.2.2", 8)],
            "the rest is not an entry"
        );
        store.close().await;
    }
    db.drop_db().await;
}

/// The daily report mail goes out by itself once its hour has passed, once, although two nodes
/// share the database and both look every 100 ms.
#[tokio::test]
async fn two_nodes_mail_the_daily_report_once() {
    let cap = Capture::start(CaptureOptions::default()).await;
    let extra = "[report]\nsample_every = \"100ms\"\nmail = \"daily\"\nmail_hour = 0\n";
    let (config, dir) = common::config(cap.addr, extra);
    let store = sponts::storage::Store::open(&config.storage.database_location())
        .await
        .unwrap();
    add_user(&store, "admin@example.org", sponts::storage::Role::Admin).await;
    // Yesterday's traffic.
    let day = 86_400_000_000i64;
    let now = sponts::clock::now_us();
    let yesterday_noon = now - now.rem_euclid(day) - day / 2;
    store
        .add_stats(&[
            (yesterday_noon, "class".into(), "spam".into(), 3),
            (yesterday_noon, "class".into(), "clean".into(), 1),
        ])
        .await
        .unwrap();
    store.close().await;
    let (mut second, _second_dir) = common::config(cap.addr, extra);
    second.storage.data_dir = config.storage.data_dir.clone();
    let a = common::start_with(config, dir).await;
    let b = common::start_with(second, _second_dir).await;
    let got = cap.wait_for(1).await;
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    let got = if got.len() == 1 {
        cap.deliveries()
    } else {
        got
    };
    assert_eq!(got.len(), 1, "one report, not one per node");
    assert_eq!(got[0].rcpts, ["admin@example.org"]);
    let parsed = mail_parser::MessageParser::default()
        .parse(&got[0].data)
        .unwrap();
    let date = &sponts::clock::rfc3339(yesterday_noon)[..10];
    assert_eq!(
        parsed.subject().unwrap(),
        format!("sponts report daily {date}: 4 messages, 75.0 % spam")
    );
    a.stop().await;
    b.stop().await;
}
