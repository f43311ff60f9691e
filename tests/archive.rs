//! The archive against real gateway runs, on SQLite and PostgreSQL: mail flows, the days are
//! sealed (`sponts archive seal`, `--now` for today so far), `sponts archive verify` passes —
//! and names each kind of tampering done to the database behind sponts' back. Retention purges
//! leave signed records (verify still passes), legal holds keep a person's mail through purges
//! and `sponts user del`, and a backup restored on a fresh machine verifies.

mod common;

use common::*;
use sponts::storage::{Store, StoredBody};
use std::path::{Path, PathBuf};
use std::process::Command;

const DAY: i64 = 86_400_000_000;

/// Runs the sponts binary: (exit 0, stdout + stderr).
fn sponts(cfg: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sponts"))
        .args(args)
        .env("SPONTS_CONFIG", cfg)
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// The `[storage]` lines for SQLite in `data`, or a PostgreSQL database.
fn storage(data: &Path, pg: Option<&str>) -> String {
    match pg {
        Some(url) => format!(
            "[storage]\ndata_dir = \"{}\"\ndatabase = \"{url}\"\n",
            data.display()
        ),
        None => format!("[storage]\ndata_dir = \"{}\"\n", data.display()),
    }
}

/// A config file for the CLI on the same store as a test gateway.
fn cli_config(dir: &Path, storage: &str, backend: std::net::SocketAddr, extra: &str) -> PathBuf {
    let cfg = dir.join("sponts-cli.toml");
    std::fs::write(&cfg, format!("[backend]\naddress = \"{backend}\"\nstarttls = \"off\"\n[domains]\nlocal = [\"example.org\", \"example.net\"]\n{storage}{extra}")).unwrap();
    cfg
}

async fn exec(store: &Store, sql: &str) {
    match store {
        Store::Sqlite(p) => sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
            .execute(p)
            .await
            .map(|_| ()),
        Store::Postgres(p) => sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
            .execute(p)
            .await
            .map(|_| ()),
    }
    .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

async fn set_body(store: &Store, id: &str, compressed: &[u8]) {
    match store {
        Store::Sqlite(p) => sqlx::query("UPDATE backup SET body = $1 WHERE id = $2")
            .bind(compressed)
            .bind(id)
            .execute(p)
            .await
            .map(|_| ()),
        Store::Postgres(p) => sqlx::query("UPDATE backup SET body = $1 WHERE id = $2")
            .bind(compressed)
            .bind(id)
            .execute(p)
            .await
            .map(|_| ()),
    }
    .unwrap();
}

async fn scalar(store: &Store, sql: &str) -> String {
    match store {
        Store::Sqlite(p) => {
            sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(sql.to_string()))
                .fetch_one(p)
                .await
        }
        Store::Postgres(p) => {
            sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(sql.to_string()))
                .fetch_one(p)
                .await
        }
    }
    .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// A message kept on an earlier day, as the backup module keeps it.
fn kept_at(id: &str, time_us: i64, message: &[u8]) -> StoredBody {
    StoredBody {
        id: id.into(),
        time_us,
        size: message.len() as i64,
        compressed: sponts::modules::backup::compress(message, 3).unwrap(),
        digest: sponts::archive::seal::digest(message),
    }
}

fn send(
    addr: std::net::SocketAddr,
    from: &str,
    to: &str,
    subject: &str,
) -> impl std::future::Future<Output = String> {
    let (from, to, subject) = (from.to_string(), to.to_string(), subject.to_string());
    async move {
        let mut c = Client::connect(addr).await;
        c.expect("EHLO client.test", 250).await;
        let r = c
            .send_mail(
                &from,
                &[to.as_str()],
                format!("Subject: {subject}\r\nFrom: {from}\r\n\r\nbody of {subject}\r\n")
                    .as_bytes(),
            )
            .await;
        assert!(r.starts_with("250"), "{r}");
        reply_id(&r)
    }
}

fn lines_day(us: i64) -> String {
    sponts::archive::seal::day_of(us)
}

fn assert_broken(cfg: &Path, what: &str) -> String {
    let (ok, out) = sponts(cfg, &["archive", "verify"]);
    assert!(!ok, "verify must fail ({what}): {out}");
    assert!(out.contains(what), "expected `{what}`: {out}");
    out
}

fn assert_intact(cfg: &Path) -> String {
    let (ok, out) = sponts(cfg, &["archive", "verify"]);
    assert!(ok && out.contains("archive intact"), "{out}");
    out
}

#[tokio::test]
async fn tampering_is_found_and_named_sqlite() {
    tampering_is_found_and_named(None).await;
}

#[tokio::test]
async fn tampering_is_found_and_named_postgres() {
    let db = pg::TestDb::create().await;
    tampering_is_found_and_named(Some(&db.url)).await;
    db.drop_db().await;
}

async fn tampering_is_found_and_named(pg: Option<&str>) {
    let cap = Capture::start(CaptureOptions::default()).await;
    let data = tempfile::tempdir().unwrap();
    let storage = storage(data.path(), pg);
    let cfg = cli_config(data.path(), &storage, cap.addr, "");
    let location = match pg {
        Some(u) => sponts::config::DatabaseLocation::Postgres(u.to_string()),
        None => sponts::config::DatabaseLocation::Sqlite(data.path().join("sponts.db")),
    };
    // Two earlier days, as an earlier run kept them; the serve process seals the finished days
    // when it starts (and a grace after each day's end: none of it may be under way now).
    clear_of_boundary(DAY, sponts::archive::seal::GRACE_US + 30_000_000).await;
    let now = sponts::clock::now_us();
    let today = now - now.rem_euclid(DAY);
    let old_a = b"Subject: three days ago\r\n\r\nold\r\n".to_vec();
    let old_b = b"Subject: yesterday\r\n\r\nnewer\r\n".to_vec();
    let before = Store::open(&location).await.unwrap();
    before
        .insert_bodies(vec![
            kept_at("OLDA", today - 3 * DAY + 3600, &old_a),
            kept_at("OLDB", today - DAY + 7200, &old_b),
        ])
        .await
        .unwrap();
    before.close().await;
    let gw = gateway(cap.addr, &storage).await;
    let mut sealed = Vec::new();
    for _ in 0..300 {
        sealed = gw.store.seals(None).await.unwrap();
        if sealed.len() == 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        sealed
            .iter()
            .map(|s| (s.day.as_str(), s.count))
            .collect::<Vec<_>>(),
        [
            (lines_day(today - 3 * DAY).as_str(), 1),
            (lines_day(today - 2 * DAY).as_str(), 0),
            (lines_day(today - DAY).as_str(), 1)
        ],
        "the job sealed each finished day, the empty one too"
    );
    let mut ids = Vec::new();
    for (to, subject) in [
        ("alice@example.org", "one"),
        ("bob@example.org", "two"),
        ("carol@example.net", "three"),
    ] {
        ids.push(send(gw.addr, "x@partner.example", to, subject).await);
    }
    cap.wait_for(3).await;

    let (ok, out) = sponts(&cfg, &["archive", "seal"]);
    assert!(
        ok && out.contains("nothing to seal"),
        "today is not over: {out}"
    );
    let out = assert_intact(&cfg);
    assert!(
        out.contains("3 seals") && out.contains("3 not sealed yet"),
        "today's mail waits for the day's end: {out}"
    );
    let (ok, out) = sponts(&cfg, &["archive", "seal", "--now"]);
    assert!(ok && out.contains("3 messages"), "{out}");
    // Mail after the seal goes into the next link of today.
    ids.push(send(gw.addr, "x@partner.example", "alice@example.org", "four").await);
    let out = assert_intact(&cfg);
    assert!(
        out.contains("4 seals, 5 sealed messages") && out.contains("1 not sealed yet"),
        "{out}"
    );
    let (ok, _) = sponts(&cfg, &["archive", "seal", "--now"]);
    assert!(ok);
    assert_intact(&cfg);
    gw.stop().await;

    // The roots for an auditor: one JSON line per seal, chained, with the key.
    let (ok, roots) = sponts(&cfg, &["archive", "roots"]);
    assert!(ok, "{roots}");
    let lines = sponts::archive::roots::parse(&roots).unwrap();
    assert_eq!(lines.len(), 5, "{roots}");
    assert!(
        lines
            .windows(2)
            .all(|w| w[1].prev_root == w[0].root && w[1].seq == w[0].seq + 1)
    );
    assert_eq!(lines.iter().map(|l| l.count).sum::<i64>(), 6);
    assert!(
        lines
            .iter()
            .all(|l| l.public_key.len() == 64 && l.signature.len() == 128 && l.key_id.len() == 16)
    );
    let (ok, since) = sponts(&cfg, &["archive", "roots", "--since", &lines[3].day]);
    assert!(
        ok && sponts::archive::roots::parse(&since).unwrap().len() == 2,
        "{since}"
    );
    let store = Store::open(&location).await.unwrap();
    // --since checks from that day's seals on (linked to the one before), not the older days.
    let (ok, out) = sponts(&cfg, &["archive", "verify", "--since", &lines[3].day]);
    assert!(ok && out.contains("4 sealed messages"), "{out}");
    exec(&store, "DELETE FROM backup WHERE id = 'OLDA'").await;
    let (ok, out) = sponts(&cfg, &["archive", "verify", "--since", &lines[3].day]);
    assert!(ok, "{out}");
    assert_broken(&cfg, "missing message: OLDA");
    store
        .insert_bodies(vec![kept_at("OLDA", today - 3 * DAY + 3600, &old_a)])
        .await
        .unwrap();
    assert_intact(&cfg);

    // A changed byte in a stored message.
    let original = store.body(&ids[1]).await.unwrap().unwrap();
    let mut message = sponts::modules::backup::decompress(&original).unwrap();
    let at = message.len() - 3;
    message[at] ^= 1;
    set_body(
        &store,
        &ids[1],
        &sponts::modules::backup::compress(&message, 3).unwrap(),
    )
    .await;
    assert_broken(&cfg, &format!("changed body: message {}", ids[1]));
    // Even with the digest recorded at insertion made to match: the seal still knows.
    exec(
        &store,
        &format!(
            "UPDATE backup SET digest = '{}' WHERE id = '{}'",
            sponts::archive::seal::digest(&message),
            ids[1]
        ),
    )
    .await;
    assert_broken(&cfg, &format!("changed body: message {}", ids[1]));
    set_body(&store, &ids[1], &original.compressed).await;
    exec(
        &store,
        &format!(
            "UPDATE backup SET digest = '{}' WHERE id = '{}'",
            original.digest, ids[1]
        ),
    )
    .await;
    assert_intact(&cfg);

    // A deleted message.
    exec(&store, "DELETE FROM backup WHERE id = 'OLDB'").await;
    assert_broken(&cfg, "missing message: OLDB (day");
    store
        .insert_bodies(vec![kept_at("OLDB", today - DAY + 7200, &old_b)])
        .await
        .unwrap();
    assert_intact(&cfg);

    // A message slipped into a sealed day (with a correct digest: it is simply not in the seal).
    store
        .insert_bodies(vec![kept_at(
            "FORGED",
            today - 2 * DAY + 60,
            b"Subject: backdated\r\n\r\nx\r\n",
        )])
        .await
        .unwrap();
    assert_broken(&cfg, "inserted message: FORGED");
    exec(&store, "DELETE FROM backup WHERE id = 'FORGED'").await;
    assert_intact(&cfg);

    // An altered root, an altered signature, an altered sealed list, a removed seal.
    let root = scalar(&store, "SELECT root FROM archive_seals WHERE seq = 2").await;
    exec(
        &store,
        &format!(
            "UPDATE archive_seals SET root = '{}' WHERE seq = 2",
            "0".repeat(64)
        ),
    )
    .await;
    let day2 = &lines[1].day;
    assert_broken(&cfg, &format!("altered root: the root of day {day2} (#2)"));
    exec(
        &store,
        &format!("UPDATE archive_seals SET root = '{root}' WHERE seq = 2"),
    )
    .await;
    assert_intact(&cfg);
    let sig = scalar(&store, "SELECT signature FROM archive_seals WHERE seq = 4").await;
    let flipped = format!(
        "{}{}",
        if sig.starts_with('0') { "1" } else { "0" },
        &sig[1..]
    );
    exec(
        &store,
        &format!("UPDATE archive_seals SET signature = '{flipped}' WHERE seq = 4"),
    )
    .await;
    assert_broken(
        &cfg,
        &format!("bad signature: the seal of day {} (#4)", lines[3].day),
    );
    exec(
        &store,
        &format!("UPDATE archive_seals SET signature = '{sig}' WHERE seq = 4"),
    )
    .await;
    exec(
        &store,
        &format!(
            "UPDATE archive_leaves SET digest = '{}' WHERE id = '{}'",
            "1".repeat(64),
            ids[2]
        ),
    )
    .await;
    assert_broken(&cfg, "altered seal: the sealed list of day");
    exec(&store, &format!("UPDATE archive_leaves SET digest = (SELECT digest FROM backup WHERE id = '{0}') WHERE id = '{0}'", ids[2])).await;
    assert_intact(&cfg);
    exec(&store, "DELETE FROM archive_seals WHERE seq = 3").await;
    assert_broken(&cfg, "missing root");
    exec(&store, "DELETE FROM archive_seals WHERE seq = 5").await;
    exec(&store, "DELETE FROM archive_seals WHERE seq = 4").await;
    exec(&store, "DELETE FROM archive_seals WHERE seq = 3").await;

    // Someone with the database and the key can rewrite history and seal it again: sponts alone
    // cannot tell — the roots an auditor kept elsewhere can.
    let kept = data.path().join("kept-roots.jsonl");
    std::fs::write(&kept, &roots).unwrap();
    exec(&store, "DELETE FROM archive_leaves WHERE seq >= 3").await;
    set_body(
        &store,
        &ids[1],
        &sponts::modules::backup::compress(&message, 3).unwrap(),
    )
    .await;
    exec(
        &store,
        &format!(
            "UPDATE backup SET digest = '{}' WHERE id = '{}'",
            sponts::archive::seal::digest(&message),
            ids[1]
        ),
    )
    .await;
    let (ok, out) = sponts(&cfg, &["archive", "seal", "--now"]);
    assert!(ok, "{out}");
    assert_intact(&cfg);
    let (ok, out) = sponts(
        &cfg,
        &["archive", "verify", "--roots", kept.to_str().unwrap()],
    );
    assert!(
        !ok && out.contains("differs from the kept roots: the seal of day"),
        "{out}"
    );
    let first_two = roots.lines().take(2).collect::<Vec<_>>().join("\n");
    std::fs::write(&kept, first_two).unwrap();
    let (ok, out) = sponts(
        &cfg,
        &["archive", "verify", "--roots", kept.to_str().unwrap()],
    );
    assert!(
        ok,
        "the untouched days still match what the auditor kept: {out}"
    );
    store.close().await;
}

#[tokio::test]
async fn retention_purges_leave_records_and_holds_keep_mail_sqlite() {
    retention_and_holds(None).await;
}

#[tokio::test]
async fn retention_purges_leave_records_and_holds_keep_mail_postgres() {
    let db = pg::TestDb::create().await;
    retention_and_holds(Some(&db.url)).await;
    db.drop_db().await;
}

async fn retention_and_holds(pg: Option<&str>) {
    let cap = Capture::start(CaptureOptions::default()).await;
    let data = tempfile::tempdir().unwrap();
    let storage = storage(data.path(), pg);
    let gw = gateway(cap.addr, &storage).await;
    add_user(&gw.store, "alice@example.org", sponts::storage::Role::User).await;
    gw.store
        .add_alias("alice@example.org", "a.smith@example.org")
        .await
        .unwrap();
    add_user(&gw.store, "bob@example.org", sponts::storage::Role::User).await;
    // example.org keeps mail no time at all (so today's mail is due), example.net the default.
    let rules = "[archive]\nretention = [{ domain = \"example.org\", days = 0 }]\n";
    let cfg = cli_config(data.path(), &storage, cap.addr, rules);
    let to_alias = send(
        gw.addr,
        "x@partner.example",
        "a.smith@example.org",
        "for alice's alias",
    )
    .await;
    let to_bob = send(gw.addr, "x@partner.example", "bob@example.org", "for bob").await;
    let invoice = send(
        gw.addr,
        "x@partner.example",
        "bob@example.org",
        "Invoice 4711",
    )
    .await;
    let to_carol = send(
        gw.addr,
        "x@partner.example",
        "carol@example.net",
        "for carol",
    )
    .await;
    cap.wait_for(4).await;
    let (ok, out) = sponts(&cfg, &["archive", "seal", "--now"]);
    assert!(ok, "{out}");

    let (ok, out) = sponts(
        &cfg,
        &[
            "archive",
            "hold",
            "add",
            "--user",
            "alice@example.org",
            "--reason",
            "case 17/2026",
        ],
    );
    assert!(ok && out.contains("hold #1"), "{out}");
    let (ok, out) = sponts(
        &cfg,
        &[
            "archive",
            "hold",
            "add",
            "--search",
            "invoice 4711",
            "--reason",
            "tax audit",
        ],
    );
    assert!(ok && out.contains("hold #2"), "{out}");
    let (ok, out) = sponts(
        &cfg,
        &[
            "archive",
            "hold",
            "add",
            "--address",
            "nobody",
            "--reason",
            "x",
        ],
    );
    assert!(!ok && out.contains("not an address"), "{out}");
    let (ok, out) = sponts(
        &cfg,
        &[
            "archive",
            "hold",
            "add",
            "--user",
            "bob@example.org",
            "--reason",
            "",
        ],
    );
    assert!(!ok && out.contains("needs a reason"), "{out}");

    let (ok, out) = sponts(&cfg, &["archive", "purge"]);
    assert!(
        ok && out.contains("purged 1 message"),
        "only bob's plain mail is due and free: {out}"
    );
    assert!(gw.store.body(&to_bob).await.unwrap().is_none());
    for id in [&to_alias, &invoice, &to_carol] {
        assert!(gw.store.body(id).await.unwrap().is_some(), "{id} kept");
    }
    let out = assert_intact(&cfg);
    assert!(out.contains("1 removed by signed purges"), "{out}");

    // The held person leaves: the account goes, the hold stays and still protects.
    let (ok, out) = sponts(&cfg, &["user", "del", "alice@example.org"]);
    assert!(ok, "{out}");
    assert!(gw.store.user("alice@example.org").await.unwrap().is_none());
    let (ok, out) = sponts(&cfg, &["archive", "purge"]);
    assert!(ok && out.contains("purged 0 messages"), "{out}");
    assert!(
        gw.store.body(&to_alias).await.unwrap().is_some(),
        "mail to the deleted user's alias survives"
    );
    let (ok, out) = sponts(&cfg, &["archive", "hold", "list"]);
    assert!(
        ok && out.contains("#1  user alice@example.org")
            && out.contains("case 17/2026")
            && out.contains("by cli:"),
        "{out}"
    );

    // Capacity figures.
    let (ok, out) = sponts(&cfg, &["archive", "stats", "--json"]);
    assert!(ok, "{out}");
    let s: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(s["messages"], 3, "{out}");
    assert_eq!(s["per_class"]["clean"]["messages"], 3, "{out}");
    assert_eq!(s["per_day"].as_array().unwrap().len(), 30);
    assert!(
        s["stored_bytes"].as_i64().unwrap() > 0 && s["retention_days"] == 180,
        "{out}"
    );

    // Released only explicitly, with a reason; audited.
    let (ok, out) = sponts(
        &cfg,
        &["archive", "hold", "release", "1", "--reason", "case closed"],
    );
    assert!(ok, "{out}");
    let (ok, out) = sponts(
        &cfg,
        &["archive", "hold", "release", "1", "--reason", "again"],
    );
    assert!(!ok && out.contains("no hold #1 in force"), "{out}");
    let (ok, out) = sponts(&cfg, &["archive", "hold", "list", "--audit"]);
    assert!(
        ok && out.contains("#1  set")
            && out.contains("#2  set")
            && out.contains("#1  released")
            && out.contains("case closed"),
        "{out}"
    );
    let (ok, out) = sponts(&cfg, &["archive", "purge"]);
    assert!(ok && out.contains("purged 1 message"), "{out}");
    assert!(gw.store.body(&to_alias).await.unwrap().is_none());
    assert!(
        gw.store.body(&invoice).await.unwrap().is_some(),
        "the search hold still holds"
    );
    let out = assert_intact(&cfg);
    assert!(out.contains("2 removed by signed purges"), "{out}");

    // A purge record changed afterwards, and a removal without any record.
    let pass = scalar(
        &gw.store,
        "SELECT CAST(pass_us AS TEXT) FROM archive_purges ORDER BY pass_us LIMIT 1",
    )
    .await;
    let entries = scalar(
        &gw.store,
        &format!("SELECT entries FROM archive_purges WHERE pass_us = {pass}"),
    )
    .await;
    assert!(
        entries.starts_with(&format!("{to_bob} "))
            && entries.contains("retention:archive.retention[0]:clean:0d"),
        "{entries}"
    );
    exec(
        &gw.store,
        &format!(
            "UPDATE archive_purges SET entries = '{}' WHERE pass_us = {pass}",
            entries.replace("retention", "max_bytes")
        ),
    )
    .await;
    assert_broken(&cfg, "bad signature: the purge record of day");
    exec(
        &gw.store,
        &format!("UPDATE archive_purges SET entries = '{entries}' WHERE pass_us = {pass}"),
    )
    .await;
    assert_intact(&cfg);
    exec(
        &gw.store,
        &format!("DELETE FROM backup WHERE id = '{to_carol}'"),
    )
    .await;
    assert_broken(&cfg, &format!("missing message: {to_carol}"));
    gw.stop().await;
}

#[tokio::test]
async fn a_restored_backup_verifies() {
    let cap = Capture::start(CaptureOptions::default()).await;
    let old = tempfile::tempdir().unwrap();
    let storage_old = storage(old.path(), None);
    let gw = gateway(cap.addr, &storage_old).await;
    for subject in ["Contract", "Minutes"] {
        send(gw.addr, "x@partner.example", "alice@example.org", subject).await;
    }
    cap.wait_for(2).await;
    let work = tempfile::tempdir().unwrap();
    let cfg_old = cli_config(work.path(), &storage_old, cap.addr, "");
    let (ok, out) = sponts(&cfg_old, &["archive", "seal", "--now"]);
    assert!(ok, "{out}");
    let (_, roots) = sponts(&cfg_old, &["archive", "roots"]);
    let copy = work.path().join("copy");
    let (ok, out) = sponts(&cfg_old, &["backup", copy.to_str().unwrap()]);
    assert!(ok, "{out}");
    gw.stop().await;

    let new = tempfile::tempdir().unwrap();
    let data = new.path().join("data");
    let cfg_new = cli_config(new.path(), &storage(&data, None), cap.addr, "");
    let (ok, out) = sponts(&cfg_new, &["restore", copy.to_str().unwrap()]);
    assert!(ok, "{out}");
    let out = assert_intact(&cfg_new);
    assert!(out.contains("1 seals, 2 sealed messages"), "{out}");
    let kept = new.path().join("roots.jsonl");
    std::fs::write(&kept, &roots).unwrap();
    let (ok, out) = sponts(
        &cfg_new,
        &["archive", "verify", "--roots", kept.to_str().unwrap()],
    );
    assert!(ok, "the copy's chain is the one the auditor kept: {out}");
    let (_, copied_roots) = sponts(&cfg_new, &["archive", "roots"]);
    assert_eq!(copied_roots, roots);
}

/// A figure, not a check: `ARCHIVE_BENCH_N=100000 cargo nextest run --release --test archive
/// --run-ignored only -E 'test(verify_speed)' --no-capture` prints seal and verify times.
#[tokio::test]
#[ignore]
async fn verify_speed() {
    let n: usize = std::env::var("ARCHIVE_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&sponts::config::DatabaseLocation::Sqlite(
        dir.path().join("b.db"),
    ))
    .await
    .unwrap();
    let now = sponts::clock::now_us();
    let start = now - now.rem_euclid(DAY) - DAY;
    let filler = "Lorem ipsum dolor sit amet, consectetur adipiscing elit. ".repeat(60);
    for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
        let bodies: Vec<_> = chunk
            .iter()
            .map(|i| {
                kept_at(
                    &format!("M{i:08}"),
                    start + *i as i64 * (DAY / n as i64),
                    format!("Subject: {i}\r\n\r\n{filler}\r\n").as_bytes(),
                )
            })
            .collect();
        store.insert_bodies(bodies.clone()).await.unwrap();
    }
    let t = std::time::Instant::now();
    sponts::archive::seal::seal_until(&store, now, false)
        .await
        .unwrap();
    let sealed = t.elapsed();
    let t = std::time::Instant::now();
    let v = sponts::archive::verify::verify(&store, None, None)
        .await
        .unwrap();
    let verified = t.elapsed();
    assert!(v.broken.is_none() && v.messages == n as u64, "{v:?}");
    println!(
        "{n} messages of {} bytes: seal {sealed:?}, verify {verified:?} ({:.0} messages/s)",
        filler.len() + 20,
        n as f64 / verified.as_secs_f64()
    );
    store.close().await;
}

#[tokio::test]
async fn admins_manage_holds_over_the_api() {
    use common::http::{login, request};
    let cap = Capture::start(CaptureOptions::default()).await;
    let gw = gateway(cap.addr, "").await;
    add_user(&gw.store, "admin@example.org", sponts::storage::Role::Admin).await;
    add_user(&gw.store, "alice@example.org", sponts::storage::Role::User).await;
    let admin = login(gw.web, "admin@example.org", PASSWORD).await.unwrap();
    let user = login(gw.web, "alice@example.org", PASSWORD).await.unwrap();
    let bearer = |l: &common::http::Login| format!("Bearer {}", l.token);
    let json = "application/json";
    let body = br#"{"kind":"user","target":"alice@example.org","reason":"case 9"}"#;
    let r = request(
        gw.web,
        "POST",
        "/api/v1/archive/holds",
        &[("Authorization", &bearer(&user))],
        Some((json, body)),
    )
    .await;
    assert_eq!(r.status, 403, "users may not: {}", r.text());
    let r = request(
        gw.web,
        "POST",
        "/api/v1/archive/holds",
        &[("Authorization", &bearer(&admin))],
        Some((json, body)),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let h = r.json();
    assert_eq!(
        (
            h["kind"].as_str(),
            h["target"].as_str(),
            h["set_by"].as_str()
        ),
        (
            Some("user"),
            Some("alice@example.org"),
            Some("web:admin@example.org")
        )
    );
    let r = request(
        gw.web,
        "POST",
        "/api/v1/archive/holds",
        &[("Authorization", &bearer(&admin))],
        Some((
            json,
            br#"{"kind":"user","target":"nobody@example.org","reason":"x"}"#,
        )),
    )
    .await;
    assert!(
        r.status == 422 && r.json()["error"].as_str().unwrap().contains("no user"),
        "{}",
        r.text()
    );
    let r = request(
        gw.web,
        "GET",
        "/api/v1/archive/holds",
        &[("Authorization", &bearer(&admin))],
        None,
    )
    .await;
    assert!(
        r.status == 200
            && r.json()["holds"][0]["reason"] == "case 9"
            && r.json()["holds"][0]["released"].is_null(),
        "{}",
        r.text()
    );
    let path = format!("/api/v1/archive/holds/{}/release", h["id"]);
    let r = request(
        gw.web,
        "POST",
        &path,
        &[("Authorization", &bearer(&admin))],
        Some((json, br#"{"reason":""}"#)),
    )
    .await;
    assert_eq!(r.status, 422, "{}", r.text());
    let r = request(
        gw.web,
        "POST",
        &path,
        &[("Authorization", &bearer(&admin))],
        Some((json, br#"{"reason":"closed"}"#)),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = request(
        gw.web,
        "POST",
        &path,
        &[("Authorization", &bearer(&admin))],
        Some((json, br#"{"reason":"closed"}"#)),
    )
    .await;
    assert_eq!(r.status, 404, "{}", r.text());
    let audit = gw.store.hold_audit().await.unwrap();
    assert_eq!(
        audit
            .iter()
            .map(|a| (a.action.as_str(), a.actor.as_str(), a.reason.as_str()))
            .collect::<Vec<_>>(),
        [
            ("set", "web:admin@example.org", "case 9"),
            ("released", "web:admin@example.org", "closed")
        ]
    );
    let r = request(
        gw.web,
        "GET",
        "/api/v1/archive/stats",
        &[("Authorization", &bearer(&admin))],
        None,
    )
    .await;
    assert!(
        r.status == 200 && r.json()["per_day"].as_array().unwrap().len() == 30,
        "{}",
        r.text()
    );
    gw.stop().await;
}

#[tokio::test]
async fn the_report_shows_the_archive() {
    use common::http::{login, request};
    let cap = Capture::start(CaptureOptions::default()).await;
    let gw = gateway(cap.addr, "").await;
    add_user(&gw.store, "admin@example.org", sponts::storage::Role::Admin).await;
    for subject in ["a", "b"] {
        send(gw.addr, "x@partner.example", "alice@example.org", subject).await;
    }
    cap.wait_for(2).await;
    let admin = login(gw.web, "admin@example.org", PASSWORD).await.unwrap();
    let r = request(
        gw.web,
        "GET",
        "/admin/report",
        &[("Cookie", &admin.cookie)],
        None,
    )
    .await;
    let page = r.text();
    assert!(
        r.status == 200
            && page.contains(r#"id="archive""#)
            && page.contains("2 messages kept")
            && page.contains("<td>clean</td><td>2</td>"),
        "{page}"
    );
    gw.stop().await;
}
