//! The journal, field by field, for real-world-shaped MIME messages — on SQLite and on
//! PostgreSQL, with the same assertions.

mod common;

use common::*;
use sponts::storage::{AttachmentEntry, JournalEntry};

fn crlf(path: &str) -> Vec<u8> {
    let text = std::fs::read(fixture(path)).unwrap();
    let mut out = Vec::new();
    for line in text.split_inclusive(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        out.extend_from_slice(line);
        out.extend_from_slice(b"\r\n");
    }
    out
}

fn att(name: &str, mime: &str, size: i64) -> AttachmentEntry {
    AttachmentEntry {
        filename: name.into(),
        mime_type: mime.into(),
        size,
    }
}

async fn send(gw: &Gateway, file: &str, from: &str, rcpts: &[&str]) -> (JournalEntry, usize) {
    let msg = crlf(&format!("eml/{file}"));
    let mut c = Client::connect(gw.addr).await;
    c.expect("EHLO mua.partner.example", 250).await;
    let r = c.send_mail(from, rcpts, &msg).await;
    assert!(r.starts_with("250"), "{file}: {r}");
    c.expect("QUIT", 221).await;
    (journal_entry(&gw.store, &reply_id(&r)).await, msg.len())
}

async fn check_fixtures(gw: &Gateway) {
    let (e, size) = send(
        gw,
        "nested-multipart.eml",
        "newsletter@shop.example",
        &["customer@example.org"],
    )
    .await;
    assert_eq!(
        e.subject.as_deref(),
        Some("Your invoice and the forwarded note")
    );
    assert_eq!(e.message_id.as_deref(), Some("nested-1@shop.example"));
    assert_eq!(e.size, Some(size as i64));
    assert_eq!(e.sender, "newsletter@shop.example");
    assert_eq!(e.helo, "mua.partner.example");
    assert_eq!(e.client_ip, "127.0.0.1");
    assert!(e.client_port > 0);
    assert_eq!(e.tls, None);
    assert_eq!(
        (e.outcome.as_str(), e.decided_by.as_str()),
        ("delivered", "backend")
    );
    assert!(
        e.final_reply
            .starts_with("250 2.0.0 Ok: queued as CAPTURE id="),
        "{}",
        e.final_reply
    );
    assert_eq!(e.recipients.len(), 1);
    assert_eq!(
        (e.recipients[0].address.as_str(), e.recipients[0].accepted),
        ("customer@example.org", true)
    );
    assert_eq!(e.recipients[0].reply, "250 2.1.5 Ok");
    assert_eq!(e.attachments.len(), 3, "{:?}", e.attachments);
    assert_eq!(
        e.attachments[0],
        att("invoice-2026-11.pdf", "application/pdf", 1040)
    );
    assert_eq!(
        (
            e.attachments[1].filename.as_str(),
            e.attachments[1].mime_type.as_str()
        ),
        ("Forwarded note.eml", "message/rfc822")
    );
    assert!(e.attachments[1].size > 300);
    assert_eq!(e.attachments[2], att("notes.txt", "text/plain", 220));

    let (e, _) = send(
        gw,
        "rfc2231-names.eml",
        "sender@partner.example",
        &["team@example.org", "boss@example.net"],
    )
    .await;
    assert_eq!(e.subject.as_deref(), Some("Prüfbericht über die Lieferung"));
    assert_eq!(e.message_id.as_deref(), Some("2231@partner.example"));
    assert_eq!(
        e.attachments,
        vec![
            att("Prüfbericht Teil eins – Fotos.png", "image/png", 508),
            att("Unterlagen für März.zip", "application/zip", 2004)
        ]
    );
    assert_eq!(
        e.recipients
            .iter()
            .map(|r| r.address.as_str())
            .collect::<Vec<_>>(),
        vec!["team@example.org", "boss@example.net"]
    );

    let (e, _) = send(
        gw,
        "plain-folded.eml",
        "alice@partner.example",
        &["bob@example.org"],
    )
    .await;
    assert_eq!(
        e.subject.as_deref(),
        Some("A rather long subject line that was folded by the sending client onto two lines")
    );
    assert_eq!(e.message_id.as_deref(), Some("folded@partner.example"));
    assert!(e.attachments.is_empty());

    let (e, _) = send(
        gw,
        "malformed-boundary.eml",
        "spammer@bulk.example",
        &["someone@example.org"],
    )
    .await;
    assert_eq!(e.subject.as_deref(), Some("Cheap € deals"));
    assert_eq!(e.message_id, None);
    assert_eq!(
        e.attachments,
        vec![att("deal.exe", "application/octet-stream", 100)]
    );
}

#[tokio::test]
async fn journal_fields_on_sqlite() {
    let cap = Capture::start(CaptureOptions::default()).await;
    let gw = gateway(cap.addr, "").await;
    check_fixtures(&gw).await;
    assert_eq!(cap.wait_for(4).await.len(), 4);
    gw.stop().await;
}

#[tokio::test]
async fn journal_fields_on_postgres() {
    let db = pg::TestDb::create().await;
    let cap = Capture::start(CaptureOptions::default()).await;
    let gw = gateway(cap.addr, &format!("[storage]\ndatabase = \"{}\"\n", db.url)).await;
    assert_eq!(gw.store.kind(), "postgres");
    check_fixtures(&gw).await;
    gw.stop().await;
    db.drop_db().await;
}

#[tokio::test]
async fn filters_work_the_same_on_both_stores() {
    let db = pg::TestDb::create().await;
    let cap = Capture::start(CaptureOptions {
        unknown: ["gone@example.org".to_string()].into(),
        ..Default::default()
    })
    .await;
    for extra in [
        String::new(),
        format!("[storage]\ndatabase = \"{}\"\n", db.url),
    ] {
        let gw = gateway(cap.addr, &extra).await;
        let mut c = Client::connect(gw.addr).await;
        c.expect("EHLO filter.test", 250).await;
        c.send_mail(
            "Alice@Partner.example",
            &["x@example.org"],
            b"Subject: Quarterly 100%_report\r\n\r\n.\r\n",
        )
        .await;
        c.send_mail(
            "bob@other.example",
            &["y@example.net"],
            b"Subject: lunch\r\n\r\nx\r\n",
        )
        .await;
        c.expect("MAIL FROM:<carol@other.example>", 250).await;
        c.expect("RCPT TO:<gone@example.org>", 550).await;
        c.expect("QUIT", 221).await;
        let q = |f: sponts::storage::JournalFilter| {
            let store = gw.store.clone();
            async move {
                store
                    .query_journal(&f)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|e| e.sender)
                    .collect::<Vec<_>>()
            }
        };
        use sponts::storage::JournalFilter as F;
        assert_eq!(q(F::default()).await.len(), 3, "{}", gw.store.kind());
        assert_eq!(
            q(F {
                sender: Some("alice@partner".into()),
                ..F::default()
            })
            .await,
            vec!["Alice@Partner.example"]
        );
        assert_eq!(
            q(F {
                rcpt: Some("Y@EXAMPLE".into()),
                ..F::default()
            })
            .await,
            vec!["bob@other.example"]
        );
        assert_eq!(
            q(F {
                subject: Some("100%_".into()),
                ..F::default()
            })
            .await,
            vec!["Alice@Partner.example"]
        );
        assert_eq!(
            q(F {
                subject: Some("0%x".into()),
                ..F::default()
            })
            .await,
            Vec::<String>::new()
        );
        assert_eq!(
            q(F {
                ip: Some("127.0.0.1".into()),
                ..F::default()
            })
            .await
            .len(),
            3
        );
        assert_eq!(
            q(F {
                ip: Some("192.0.2.1".into()),
                ..F::default()
            })
            .await
            .len(),
            0
        );
        assert_eq!(
            q(F {
                since_us: Some(sponts::clock::now_us() + 1_000_000),
                ..F::default()
            })
            .await
            .len(),
            0
        );
        assert_eq!(
            q(F {
                limit: Some(1),
                ..F::default()
            })
            .await,
            vec!["carol@other.example"],
            "newest first"
        );
        assert_eq!(
            q(F {
                text: Some("QUARTERLY".into()),
                ..F::default()
            })
            .await,
            vec!["Alice@Partner.example"],
            "subject, any case"
        );
        assert_eq!(
            q(F {
                text: Some("y@example.n".into()),
                ..F::default()
            })
            .await,
            vec!["bob@other.example"],
            "a recipient"
        );
        assert_eq!(
            q(F {
                text: Some("other.example".into()),
                ..F::default()
            })
            .await
            .len(),
            2,
            "senders"
        );
        assert_eq!(
            q(F {
                text: Some("lu".into()),
                ..F::default()
            })
            .await,
            vec!["bob@other.example"],
            "short terms too"
        );
        assert_eq!(
            q(F {
                text: Some("nothing like it".into()),
                ..F::default()
            })
            .await
            .len(),
            0
        );
        assert_eq!(
            q(F {
                visible_to: Some(vec!["x@example.org".into()]),
                ..F::default()
            })
            .await,
            vec!["Alice@Partner.example"]
        );
        assert_eq!(
            q(F {
                visible_to: Some(vec![
                    "alice@partner.example".into(),
                    "gone@example.org".into()
                ]),
                ..F::default()
            })
            .await
            .len(),
            2
        );
        assert_eq!(
            q(F {
                visible_to: Some(vec![]),
                ..F::default()
            })
            .await
            .len(),
            0
        );
        let refused = gw
            .store
            .query_journal(&F {
                sender: Some("carol".into()),
                ..F::default()
            })
            .await
            .unwrap();
        // Every recipient refused by the backend, then QUIT: refused, not abandoned.
        assert_eq!(
            (refused[0].outcome.as_str(), refused[0].decided_by.as_str()),
            ("refused", "backend")
        );
        assert!(
            refused[0].final_reply.starts_with("550"),
            "{}",
            refused[0].final_reply
        );
        assert_eq!(
            sponts::storage::stats::class(&refused[0]),
            "refused",
            "the Report counts it as refused"
        );
        assert!(!refused[0].recipients[0].accepted);
        gw.stop().await;
    }
    db.drop_db().await;
}

/// A synthetic record: every field set, some of them only for some `i`.
fn record(i: i64) -> JournalEntry {
    JournalEntry {
        id: format!("BATCH{i:04}"),
        time_us: 1_000_000 + i,
        client_ip: "192.0.2.1".into(),
        client_port: 1000,
        helo: "h".into(),
        tls: None,
        sender: format!("s{i}@x.example"),
        recipients: (0..(i % 3) as usize)
            .map(|r| sponts::storage::RcptEntry {
                address: format!("r{r}@example.org"),
                accepted: r == 0,
                reply: "250 ok".into(),
                delivered_to: (r == 1).then(|| "owner@example.org".to_string()),
            })
            .collect(),
        subject: Some(format!("subject {i}")),
        message_id: None,
        size: Some(i),
        attachments: (0..(i % 2) as usize)
            .map(|_| att("a.pdf", "application/pdf", i))
            .collect(),
        outcome: "delivered".into(),
        decided_by: "backend".into(),
        final_reply: "250 ok".into(),
        replay_of: (i % 5 == 0).then(|| "ORIGINAL".to_string()),
        actor: (i % 5 == 0).then(|| "cli:root".to_string()),
        flag: (i % 7 == 0).then(|| "spam".to_string()),
        notes: (i % 7 == 0).then(|| format!("uce: score {i}")),
        outbound: false,
    }
}

/// A batch larger than one INSERT statement holds, written and read back on both stores.
#[tokio::test]
async fn large_batches_round_trip() {
    let db = pg::TestDb::create().await;
    let dir = tempfile::tempdir().unwrap();
    for location in [
        sponts::config::DatabaseLocation::Sqlite(dir.path().join("j.db")),
        sponts::config::DatabaseLocation::Postgres(db.url.clone()),
    ] {
        let store = sponts::storage::Store::open(&location).await.unwrap();
        let entries: Vec<JournalEntry> = (0..150).map(record).collect();
        store.insert_journal(&entries).await.unwrap();
        let mut back = store
            .query_journal(&sponts::storage::JournalFilter {
                limit: Some(1000),
                ..Default::default()
            })
            .await
            .unwrap();
        back.reverse();
        assert_eq!(back, entries, "{}", store.kind());
        store.close().await;
    }
    db.drop_db().await;
}

/// The text view shows what `--json` shows of attachments: under each row of the table, and in
/// full with `--id` (one record, every field) — "what happened to Alice's mail" includes them.
#[tokio::test]
async fn the_text_view_and_id_show_attachments() {
    let cap = Capture::start(CaptureOptions::default()).await;
    let (config, dir) = config(cap.addr, "");
    let cfg = dir.path().join("sponts.toml");
    std::fs::write(&cfg, format!("[backend]\naddress = \"{}\"\nstarttls = \"off\"\n[domains]\nlocal = [\"example.org\"]\n[storage]\ndata_dir = \"{}\"\n", cap.addr, dir.path().display())).unwrap();
    let gw = start_with(config, dir).await;
    let (e, size) = send(
        &gw,
        "nested-multipart.eml",
        "newsletter@shop.example",
        &["customer@example.org"],
    )
    .await;
    let journal = |args: &[&str]| {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_sponts"));
        c.arg("journal").args(args).env("SPONTS_CONFIG", &cfg);
        output(c)
    };
    let out = journal(&["--rcpt", "customer@example.org"]).await;
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(table.contains("attachments: invoice-2026-11.pdf (application/pdf, 1040 bytes), Forwarded note.eml (message/rfc822, "), "{table}");
    assert!(
        table.contains("notes.txt (text/plain, 220 bytes)")
            && table.ends_with("(1 record; `!` marks a refused recipient)\n"),
        "{table}"
    );

    let out = journal(&["--id", &e.id]).await;
    let record = String::from_utf8(out.stdout).unwrap();
    for line in [
        format!("id           {}", e.id),
        "sender       newsletter@shop.example".to_string(),
        "recipient    customer@example.org: 250 2.1.5 Ok".to_string(),
        "subject      Your invoice and the forwarded note".to_string(),
        format!("size         {size} bytes"),
        "attachment   invoice-2026-11.pdf (application/pdf, 1040 bytes)".to_string(),
        "attachment   notes.txt (text/plain, 220 bytes)".to_string(),
        "outcome      delivered by backend".to_string(),
    ] {
        assert!(
            record.lines().any(|l| l == line),
            "`{line}` missing in\n{record}"
        );
    }
    gw.stop().await;
}

/// SQLite's search index takes new records in bulk: a search finds a record before the index
/// has taken it in, after, and when its rowid was used before (the newest record was deleted).
#[tokio::test]
async fn search_finds_records_indexed_or_not_yet() {
    let dir = tempfile::tempdir().unwrap();
    let location = sponts::config::DatabaseLocation::Sqlite(dir.path().join("j.db"));
    let store = sponts::storage::Store::open(&location).await.unwrap();
    for batch in 0..12 {
        let entries: Vec<JournalEntry> = (batch * 50..batch * 50 + 50).map(record).collect();
        store.insert_journal(&entries).await.unwrap();
    }
    let sponts::storage::Store::Sqlite(pool) = &store else {
        unreachable!()
    };
    let upto: i64 = sqlx::query_scalar("SELECT upto FROM journal_fts_state")
        .fetch_one(pool)
        .await
        .unwrap();
    assert!(
        (500..600).contains(&upto),
        "the index took in a batch: {upto}"
    );
    // Indexed, and not yet indexed: each found once.
    assert_eq!(ids(&store, "s17@x.example").await, ["BATCH0017"]);
    assert_eq!(ids(&store, "s577@x.example").await, ["BATCH0577"]);
    assert_eq!(ids(&store, "s599@x.example").await, ["BATCH0599"]);
    // The newest indexed record goes; its rowid comes back for a new record, which the
    // index takes in at once (its rows above stay as they were).
    sqlx::query("DELETE FROM journal WHERE rowid >= $1")
        .bind(upto)
        .execute(pool)
        .await
        .unwrap();
    assert!(ids(&store, "s577@x.example").await.is_empty());
    let mut again = record(9000);
    again.subject = Some("reused rowid".into());
    store.insert_journal(&[again]).await.unwrap();
    assert_eq!(ids(&store, "reused rowid").await, ["BATCH9000"]);
    let indexed: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM journal_fts WHERE journal_fts MATCH '\"reused rowid\"'",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(indexed, 1);
    store.close().await;
}

async fn ids(store: &sponts::storage::Store, text: &str) -> Vec<String> {
    let f = sponts::storage::JournalFilter {
        text: Some(text.to_string()),
        limit: Some(10),
        ..Default::default()
    };
    store.journal_ids(&f).await.unwrap()
}
