//! The backup: every message that reached the end of DATA is kept byte-exact, once per
//! transaction; one that cannot be kept gets 451 and never reaches the backend; the purge.

mod common;

use common::*;
use sponts::modules::backup::decompress;

const MSG: &[u8] = b"Subject: keep me\r\nFrom: a@sender.example\r\n\r\nline\r\n.dot line\r\n";

#[tokio::test]
async fn delivered_and_refused_messages_are_kept_byte_exact_once() {
    let cap = Capture::start(CaptureOptions::default()).await;
    let gw = gateway(cap.addr, "").await;
    let mut c = Client::connect(gw.addr).await;
    c.expect("EHLO client.test", 250).await;
    let r = c
        .send_mail(
            "a@sender.example",
            &["u@example.org", "v@example.org", "w@example.net"],
            MSG,
        )
        .await;
    assert!(r.starts_with("250"), "{r}");
    let id = reply_id(&r);
    let body = gw.store.body(&id).await.unwrap().expect("kept");
    assert_eq!(decompress(&body).unwrap(), MSG);
    assert_eq!(
        gw.store.backup_totals().await.unwrap().0,
        1,
        "three recipients, one copy"
    );
    gw.stop().await;

    let refusing = Capture::start(CaptureOptions {
        data_reply: Some("554 5.7.1 No thanks".into()),
        ..Default::default()
    })
    .await;
    let gw = gateway(refusing.addr, "").await;
    let mut c = Client::connect(gw.addr).await;
    c.expect("EHLO client.test", 250).await;
    let r = c
        .send_mail("a@sender.example", &["u@example.org"], MSG)
        .await;
    assert!(r.starts_with("554"), "{r}");
    let id = reply_id(&r);
    assert_eq!(
        decompress(
            &gw.store
                .body(&id)
                .await
                .unwrap()
                .expect("refused mail is kept too")
        )
        .unwrap(),
        MSG
    );
    assert_eq!(journal_entry(&gw.store, &id).await.outcome, "refused");
    gw.stop().await;
}

#[tokio::test]
async fn a_message_that_cannot_be_kept_gets_451_and_is_not_delivered() {
    let cap = Capture::start(CaptureOptions::default()).await;
    let gw = gateway(cap.addr, "").await;
    // The store fails as a full disk would: every insert into the backup aborts.
    let sponts::storage::Store::Sqlite(pool) = &gw.store else {
        panic!("sqlite expected")
    };
    sqlx::raw_sql("CREATE TRIGGER disk_full BEFORE INSERT ON backup BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END;")
        .execute(pool)
        .await
        .unwrap();
    let mut c = Client::connect(gw.addr).await;
    c.expect("EHLO client.test", 250).await;
    let r = c
        .send_mail("a@sender.example", &["u@example.org"], MSG)
        .await;
    assert!(r.starts_with("451 4.3.0"), "{r}");
    let e = journal_entry(&gw.store, &reply_id(&r)).await;
    assert_eq!(
        (e.outcome.as_str(), e.decided_by.as_str()),
        ("tempfailed", "backup")
    );
    // The session goes on, and the backend never saw the message.
    c.expect("NOOP", 250).await;
    sqlx::raw_sql("DROP TRIGGER disk_full")
        .execute(pool)
        .await
        .unwrap();
    let r = c
        .send_mail(
            "a@sender.example",
            &["u@example.org"],
            b"Subject: second\r\n\r\nx\r\n",
        )
        .await;
    assert!(r.starts_with("250"), "{r}");
    let d = cap.wait_for(1).await;
    assert_eq!(d.len(), 1);
    assert!(String::from_utf8_lossy(&d[0].data).contains("Subject: second"));
    gw.stop().await;
}

#[tokio::test]
async fn purge_removes_the_oldest_by_age_and_by_size() {
    let dir = tempfile::tempdir().unwrap();
    let db = pg::TestDb::create().await;
    for location in [
        sponts::config::DatabaseLocation::Sqlite(dir.path().join("b.db")),
        sponts::config::DatabaseLocation::Postgres(db.url.clone()),
    ] {
        purge_on(sponts::storage::Store::open(&location).await.unwrap()).await;
    }
    db.drop_db().await;
}

async fn purge_on(store: sponts::storage::Store) {
    let day = 86_400_000_000i64;
    let now = sponts::clock::now_us();
    let bodies: Vec<_> = (0..10)
        .map(|i| sponts::storage::StoredBody {
            id: format!("M{i}"),
            time_us: now - (10 - i) * day,
            size: 100,
            compressed: vec![0u8; 1000],
            digest: String::new(),
        })
        .collect();
    store.insert_bodies(bodies.clone()).await.unwrap();
    let config = sponts::config::BackupConfig {
        retention_days: 5,
        max_bytes: None,
        compression_level: 3,
    };
    let p = sponts::archive::retention::purge(
        &store,
        &sponts::config::Config {
            backup: config,
            ..Default::default()
        },
        sponts::clock::now_us(),
    )
    .await
    .unwrap();
    assert_eq!(
        (p.messages, p.bytes),
        (6, 6000),
        "older than 5 days: M0..M5"
    );
    assert!(store.body("M5").await.unwrap().is_none());
    assert!(store.body("M6").await.unwrap().is_some());
    let config = sponts::config::BackupConfig {
        retention_days: 365,
        max_bytes: Some(sponts::config::ByteSize(2500)),
        compression_level: 3,
    };
    let p = sponts::archive::retention::purge(
        &store,
        &sponts::config::Config {
            backup: config,
            ..Default::default()
        },
        sponts::clock::now_us(),
    )
    .await
    .unwrap();
    assert_eq!(p.messages, 2, "4000 bytes down to 2000: the two oldest go");
    assert!(store.body("M7").await.unwrap().is_none());
    assert!(store.body("M8").await.unwrap().is_some());
    assert_eq!(
        store.backup_totals().await.unwrap(),
        (2, 200, 2000),
        "{}",
        store.kind()
    );
    assert_eq!(
        store.body("M9").await.unwrap().unwrap().compressed,
        vec![0u8; 1000]
    );
    store.close().await;
}

/// A big compressed body (over the 1 MiB at which SQLite is written piece by piece) comes back
/// byte-exact, beside small ones of the same batch; a batch that fails takes none of them.
#[tokio::test]
async fn a_big_body_is_kept_byte_exact_beside_small_ones() {
    let dir = tempfile::tempdir().unwrap();
    let db = pg::TestDb::create().await;
    for location in [
        sponts::config::DatabaseLocation::Sqlite(dir.path().join("big.db")),
        sponts::config::DatabaseLocation::Postgres(db.url.clone()),
    ] {
        let store = sponts::storage::Store::open(&location).await.unwrap();
        // Incompressible-looking bytes of a length that is not a multiple of the piece.
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let big: Vec<u8> = (0..3 * 1024 * 1024 + 12_345)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let now = sponts::clock::now_us();
        let body = |id: &str, compressed: Vec<u8>| sponts::storage::StoredBody {
            id: id.into(),
            time_us: now,
            size: compressed.len() as i64,
            compressed,
            digest: format!("d-{id}"),
        };
        store
            .insert_bodies(vec![
                body("S1", b"small".to_vec()),
                body("B1", big.clone()),
                body("S2", b"tiny".to_vec()),
            ])
            .await
            .unwrap();
        let got = store.body("B1").await.unwrap().expect("kept");
        assert!(
            got.compressed == big,
            "{}: the big body came back changed",
            store.kind()
        );
        assert_eq!(got.digest, "d-B1");
        // ... and the archive's seal and verification read the same digest.
        let digests = store.kept_digests(now, now + 1).await.unwrap();
        assert!(
            digests.contains(&("B1".to_string(), "d-B1".to_string()))
                && digests.contains(&("S1".to_string(), "d-S1".to_string())),
            "{digests:?}"
        );
        assert_eq!(
            store.body("S2").await.unwrap().expect("kept").compressed,
            b"tiny"
        );
        assert_eq!(store.backup_totals().await.unwrap().2, big.len() as i64 + 9);
        // The same ids again: the batch fails as a whole and the big body is not written twice.
        assert!(
            store
                .insert_bodies(vec![body("B2", big.clone()), body("S1", b"again".to_vec())])
                .await
                .is_err()
        );
        assert!(
            store.body("B2").await.unwrap().is_none(),
            "{}: a failed batch left its big body",
            store.kind()
        );
        store.close().await;
    }
    db.drop_db().await;
}
