//! UCE state in SQL behaves the same on SQLite and PostgreSQL (nodes share it through
//! PostgreSQL): disposable counting and locking, the penalty box, run-time traps, greylisting,
//! the learning filter's counts, including a message learned again as the other class, the
//! sender allow and block lists, and people's clicks with their per-user layers.

mod common;

use common::pg;
use sponts::config::DatabaseLocation;
use sponts::storage::Store;

async fn exercise(store: &Store) {
    // Disposable: created at first delivery, locks itself at its count, resets.
    let d = store
        .disposable("u@example.org", "shop", "shop.2.u@example.org", 2)
        .await
        .unwrap();
    assert_eq!((d.used, d.locked, d.max_count), (0, false, 2));
    store
        .disposable_used("u@example.org", "shop")
        .await
        .unwrap();
    store
        .disposable_used("u@example.org", "shop")
        .await
        .unwrap();
    let d = &store
        .disposables(Some("u@example.org"), Some("shop"))
        .await
        .unwrap()[0];
    assert_eq!((d.used, d.locked), (2, true));
    // A second first-use does not reset it.
    assert_eq!(
        store
            .disposable("u@example.org", "shop", "shop.9.u@example.org", 9)
            .await
            .unwrap()
            .max_count,
        2
    );
    assert!(
        store
            .set_disposable("u@example.org", "shop", None)
            .await
            .unwrap()
    );
    let d = &store.disposables(None, None).await.unwrap()[0];
    assert_eq!((d.used, d.locked), (0, false));
    assert!(
        !store
            .set_disposable("u@example.org", "nothing", Some(true))
            .await
            .unwrap()
    );

    // Penalty box: hits add up; expired entries do not count.
    let now = sponts::clock::now_us();
    store
        .penalize("192.0.2.1", now + 3_600_000_000, "trap a@example.org")
        .await
        .unwrap();
    store
        .penalize("192.0.2.1", now + 7_200_000_000, "trap b@example.org")
        .await
        .unwrap();
    store.penalize("192.0.2.2", now - 1, "old").await.unwrap();
    let p = store.penalties().await.unwrap();
    assert_eq!(p.len(), 1);
    assert_eq!((p[0].hits, p[0].reason.as_str()), (2, "trap b@example.org"));
    assert!(store.release_penalty("192.0.2.1").await.unwrap());
    assert!(store.penalty("192.0.2.1").await.unwrap().is_none());

    // Traps managed at run time, stored lowercase.
    store.add_trap("Honey-*@Example.org", "test").await.unwrap();
    store.add_trap("honey-*@example.org", "test").await.unwrap();
    assert_eq!(store.traps().await.unwrap(), vec!["honey-*@example.org"]);
    assert!(store.delete_trap("honey-*@example.org").await.unwrap());

    // Greylisting: wait, then pass, then the network passes at once.
    let (delay, window, allow) = (0, 60_000_000, now + 86_400_000_000);
    assert!(
        !store
            .greylist("n1 a b", "n1", delay, window, allow)
            .await
            .unwrap()
    );
    assert!(
        store
            .greylist("n1 a b", "n1", delay, window, allow)
            .await
            .unwrap()
    );
    assert!(
        store
            .greylist("n1 other sender", "n1", 3_600_000_000, window, allow)
            .await
            .unwrap(),
        "allowed network"
    );
    assert!(
        !store
            .greylist("n2 a b", "n2", 3_600_000_000, window, allow)
            .await
            .unwrap(),
        "too early"
    );

    // Learning: counts per class, once per message, moved over when learned the other way.
    assert!(store.learn_tokens("m1", true, &[11, 12]).await.unwrap());
    assert!(
        !store.learn_tokens("m1", true, &[11, 12]).await.unwrap(),
        "the same message twice counts once"
    );
    assert!(store.learn_tokens("m2", false, &[12, 13]).await.unwrap());
    assert_eq!(store.learned_totals().await.unwrap(), (1, 1));
    let mut counts = store.token_counts(&[11, 12, 13, 14]).await.unwrap();
    counts.sort();
    assert_eq!(counts, vec![(11, 1, 0), (12, 1, 1), (13, 0, 1)]);
    assert!(
        store.learn_tokens("m1", false, &[11, 12]).await.unwrap(),
        "a replayed spam becomes ham"
    );
    assert_eq!(store.learned_totals().await.unwrap(), (0, 2));
    let mut counts = store.token_counts(&[11, 12, 13]).await.unwrap();
    counts.sort();
    assert_eq!(counts, vec![(11, 0, 1), (12, 0, 2), (13, 0, 1)]);
    // Hashes use all 64 bits.
    assert!(
        store
            .learn_tokens("m3", true, &[i64::MIN + 1, i64::MAX])
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .token_counts(&[i64::MIN + 1, i64::MAX])
            .await
            .unwrap()
            .len(),
        2
    );

    // SMTP callback cache.
    store
        .cache_callback("192.0.2.9", false, now + 3_600_000_000)
        .await
        .unwrap();
    assert_eq!(
        store.callback_cached("192.0.2.9").await.unwrap(),
        Some(false)
    );
    store
        .cache_callback("192.0.2.9", true, now - 1)
        .await
        .unwrap();
    assert_eq!(
        store.callback_cached("192.0.2.9").await.unwrap(),
        None,
        "expired"
    );

    // Sender lists: one entry per owner and pattern (a second add changes the verdict); mail
    // for an alias gets its account's entries and the domain's, never another user's.
    use sponts::storage::SenderVerdict::{Allow, Block};
    store
        .add_user("alice@example.org", "x", sponts::storage::Role::User)
        .await
        .unwrap();
    store
        .add_alias("alice@example.org", "ally@example.org")
        .await
        .unwrap();
    store
        .set_sender_entry("Alice@Example.org", "Pest.example", Allow, "test")
        .await
        .unwrap();
    store
        .set_sender_entry(
            "alice@example.org",
            "pest.example",
            Block,
            "web:alice@example.org",
        )
        .await
        .unwrap();
    store
        .set_sender_entry("@example.org", "junk.example", Block, "cli")
        .await
        .unwrap();
    store
        .set_sender_entry("bob@example.org", "friend.example", Allow, "cli")
        .await
        .unwrap();
    let mine = store
        .sender_entries(Some(&["alice@example.org".to_string()]))
        .await
        .unwrap();
    assert_eq!(
        mine.iter()
            .map(|e| (e.pattern.as_str(), e.verdict, e.created_by.as_str()))
            .collect::<Vec<_>>(),
        vec![("pest.example", Block, "web:alice@example.org")]
    );
    let mut applying: Vec<_> = store
        .sender_entries_for("Ally@example.org")
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.owner, e.pattern))
        .collect();
    applying.sort();
    assert_eq!(
        applying,
        vec![
            ("@example.org".to_string(), "junk.example".to_string()),
            ("alice@example.org".to_string(), "pest.example".to_string())
        ]
    );
    assert_eq!(store.sender_entries(None).await.unwrap().len(), 3);
    assert!(
        store
            .delete_sender_entry("alice@example.org", "PEST.example")
            .await
            .unwrap()
    );
    assert!(
        !store
            .delete_sender_entry("alice@example.org", "pest.example")
            .await
            .unwrap()
    );

    // Clicks and per-user layers: once per message and person; the other kind takes back what
    // the first click put into the layer; one person's layer is nobody else's.
    assert_eq!(
        store.account_of("Ally@example.org").await.unwrap(),
        "alice@example.org"
    );
    assert_eq!(
        store.account_of("carol@example.org").await.unwrap(),
        "carol@example.org"
    );
    assert!(
        store
            .mark_message(
                "m9",
                "alice@example.org",
                false,
                "web:alice@example.org",
                &[21, 22, i64::MIN + 1]
            )
            .await
            .unwrap()
    );
    assert!(
        !store
            .mark_message(
                "m9",
                "alice@example.org",
                false,
                "web:alice@example.org",
                &[21, 22]
            )
            .await
            .unwrap(),
        "twice is once"
    );
    assert!(
        store
            .mark_message("m9", "bob@example.org", true, "web:admin@example.org", &[])
            .await
            .unwrap()
    );
    let mut mine = store
        .user_token_counts("alice@example.org", &[21, 22, 23, i64::MIN + 1])
        .await
        .unwrap();
    mine.sort();
    assert_eq!(mine, vec![(i64::MIN + 1, 0, 1), (21, 0, 1), (22, 0, 1)]);
    assert!(
        store
            .user_token_counts("bob@example.org", &[21, 22])
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .mark_message(
                "m9",
                "alice@example.org",
                true,
                "web:alice@example.org",
                &[22]
            )
            .await
            .unwrap(),
        "changed her mind"
    );
    assert_eq!(
        store
            .user_token_counts("alice@example.org", &[21, 22, i64::MIN + 1])
            .await
            .unwrap(),
        vec![(22, 1, 0)]
    );
    assert_eq!(
        (
            store.user_layer_size("alice@example.org").await.unwrap(),
            store.user_layers().await.unwrap()
        ),
        (1, 1)
    );
    let marks = store.marks(None, 10).await.unwrap();
    assert_eq!(
        marks
            .iter()
            .map(|m| (m.owner.as_str(), m.kind.as_str(), m.personal))
            .collect::<Vec<_>>(),
        vec![
            ("alice@example.org", "spam", true),
            ("bob@example.org", "spam", false)
        ]
    );
    assert_eq!(
        store
            .marks(Some("bob@example.org"), 10)
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(
        store
            .learn_tokens_from("m10", true, &[31], "click")
            .await
            .unwrap()
    );
    let sources = store.learned_by_source().await.unwrap();
    let click = sources.iter().find(|s| s.source == "click").unwrap();
    assert_eq!((click.spam, click.ham), (1, 0));
    assert_eq!(
        sources
            .iter()
            .find(|s| s.source.is_empty())
            .map(|s| (s.spam, s.ham)),
        Some((1, 2)),
        "what was learned without a source"
    );
}

#[tokio::test]
async fn uce_state_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&DatabaseLocation::Sqlite(dir.path().join("t.db")))
        .await
        .unwrap();
    exercise(&store).await;
}

#[tokio::test]
async fn uce_state_on_postgres() {
    let db = pg::TestDb::create().await;
    let store = Store::open(&DatabaseLocation::Postgres(db.url.clone()))
        .await
        .unwrap();
    exercise(&store).await;
    store.close().await;
    db.drop_db().await;
}
