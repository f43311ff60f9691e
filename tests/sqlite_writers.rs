//! SQLite with several writers at once — the gateway's pool and a second process's pool (a CLI
//! command) on one file — never fails with "database is locked": every write transaction takes
//! the write lock at BEGIN, where the busy timeout waits, instead of reading first and failing
//! without waiting when another connection commits in between.

use sponts::config::DatabaseLocation;
use sponts::storage::{JournalEntry, RcptEntry, Store};

fn entry(id: String, time_us: i64) -> JournalEntry {
    JournalEntry {
        id,
        time_us,
        client_ip: "192.0.2.9".into(),
        client_port: 1,
        helo: "bot.example".into(),
        tls: None,
        sender: "s@spam.example".into(),
        recipients: vec![RcptEntry {
            address: "u@example.org".into(),
            accepted: true,
            reply: "250 ok".into(),
            delivered_to: None,
        }],
        subject: None,
        message_id: None,
        size: Some(100),
        attachments: vec![],
        outcome: "refused".into(),
        decided_by: "uce".into(),
        final_reply: "550".into(),
        replay_of: None,
        actor: None,
        flag: Some("spam".into()),
        notes: None,
        outbound: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_on_one_file_all_succeed() {
    let dir = tempfile::tempdir().unwrap();
    let location = DatabaseLocation::Sqlite(dir.path().join("sponts.db"));
    let gateway = Store::open(&location).await.unwrap();
    let cli = Store::open(&location).await.unwrap();
    let h = sponts::storage::stats::HOUR_US;
    let now = sponts::clock::now_us();
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..8 {
        let store = if w % 2 == 0 {
            gateway.clone()
        } else {
            cli.clone()
        };
        tasks.spawn(async move {
            for i in 0..25 {
                let t = now - (i % 3) * h;
                // Journal batches (with their figures), compaction (reads, then writes), live
                // figures and learning, interleaved.
                store
                    .insert_journal(&[entry(format!("W{w}-{i}"), t)])
                    .await
                    .map_err(|e| format!("journal: {e:#}"))?;
                store
                    .compact_top_lists(t - t.rem_euclid(h), t - t.rem_euclid(h) + h, 1)
                    .await
                    .map_err(|e| format!("compact: {e:#}"))?;
                let d = (
                    t - t.rem_euclid(h),
                    "connections".to_string(),
                    String::new(),
                    1,
                );
                store
                    .add_live_stats(std::slice::from_ref(&d), &[])
                    .await
                    .map_err(|e| format!("live: {e:#}"))?;
                store
                    .learn_tokens(&format!("m{w}-{i}"), i % 2 == 0, &[w, i, 7])
                    .await
                    .map_err(|e| format!("learn: {e:#}"))?;
            }
            Ok::<(), String>(())
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap().unwrap();
    }
    let f = sponts::report::figures::read(
        &gateway,
        sponts::report::figures::Range::new(now - 3 * h, now, None),
    )
    .await
    .unwrap();
    assert_eq!(
        f.classes["spam"], 200,
        "every batch's figures were written once"
    );
    assert_eq!(f.load["connections"], 200);
    assert_eq!(f.top["ip"][0].count, 200, "compaction kept the counts");
    gateway.close().await;
    cli.close().await;
}
