//! The outbound queue's store API (what MX delivery builds on), on SQLite and PostgreSQL:
//! recipients are queued with their route; MX recipients are leased per destination domain and
//! answered one by one; a held message is leased by nobody until released; the backend runner
//! never takes an MX recipient; the message leaves the queue after its last answer.

mod common;

use sponts::storage::{NewQueued, Route, Store};

async fn routes_leases_and_holds(store: &Store) {
    let now = sponts::clock::now_us();
    let body = zstd::bulk::compress(b"Subject: out\r\n\r\nhello\r\n", 3).unwrap();
    let rcpts = vec![
        ("bob@example.org".to_string(), Route::Backend),
        ("x@Partner.example".to_string(), Route::Mx),
        ("y@partner.example".to_string(), Route::Mx),
        ("z@other.example".to_string(), Route::Mx),
    ];
    let m = NewQueued {
        id: "OUT1",
        time_us: now - 5_000_000,
        sender: "alice@example.org",
        size: 24,
        compressed: &body,
        rcpts: &rcpts,
        outbound: true,
        held: "",
    };
    store.enqueue_routed(&m).await.unwrap();
    let q = store.queue_list(Some("OUT1")).await.unwrap().pop().unwrap();
    assert!(q.outbound);
    assert_eq!(
        q.pending_mx,
        vec!["x@Partner.example", "y@partner.example", "z@other.example"]
    );
    assert_eq!(q.pending.len(), 4);

    // One destination at a time: only partner.example's two, domain lowercase.
    let leased = store
        .lease_mx(Some("PARTNER.example"), "n1", now, 60_000_000, 10)
        .await
        .unwrap();
    assert_eq!(
        leased
            .iter()
            .map(|l| l.address.as_str())
            .collect::<Vec<_>>(),
        vec!["x@Partner.example", "y@partner.example"]
    );
    assert!(
        leased.iter().all(|l| l.domain == "partner.example"
            && l.sender == "alice@example.org"
            && l.size == 24)
    );
    // Leased ones are nobody else's.
    let rest = store
        .lease_mx(None, "n2", now, 60_000_000, 10)
        .await
        .unwrap();
    assert_eq!(
        rest.iter().map(|l| l.address.as_str()).collect::<Vec<_>>(),
        vec!["z@other.example"]
    );
    assert!(
        store
            .renew_mx_lease("OUT1", "x@Partner.example", "n1", now, 60_000_000)
            .await
            .unwrap()
    );
    assert!(
        !store
            .renew_mx_lease("OUT1", "x@Partner.example", "n2", now, 60_000_000)
            .await
            .unwrap()
    );

    // The backend runner leases the message for its backend recipient only.
    let ids = store
        .lease_due("runner", now, 60_000_000, 10)
        .await
        .unwrap();
    assert_eq!(ids, vec!["OUT1"]);
    store
        .queue_rcpt_done("OUT1", "bob@example.org", "250 ok")
        .await
        .unwrap();
    store
        .release_lease("OUT1", "runner", "250 ok")
        .await
        .unwrap();
    assert!(
        store
            .lease_due("runner", now, 60_000_000, 10)
            .await
            .unwrap()
            .is_empty(),
        "no backend recipient left"
    );

    assert!(
        !store
            .mx_done("OUT1", "x@Partner.example", "n1", "250 2.0.0 sent")
            .await
            .unwrap()
    );
    store
        .mx_reschedule(
            "OUT1",
            "y@partner.example",
            "n1",
            now + 600_000_000,
            "451 try later",
            true,
        )
        .await
        .unwrap();
    assert!(
        !store
            .mx_done("OUT1", "z@other.example", "n1", "250 not my lease")
            .await
            .unwrap(),
        "n2 holds z"
    );
    assert!(
        !store
            .mx_done("OUT1", "z@other.example", "n2", "550 5.1.1 no such user")
            .await
            .unwrap()
    );
    let q = store.queue_list(Some("OUT1")).await.unwrap().pop().unwrap();
    assert_eq!(q.pending_mx, vec!["y@partner.example"]);
    assert_eq!(q.last_reply, "550 5.1.1 no such user");
    // y is not due before its next attempt.
    assert!(
        store
            .lease_mx(None, "n1", now, 60_000_000, 10)
            .await
            .unwrap()
            .is_empty()
    );

    // Held: nobody leases it, even when due; released: due at once.
    assert!(
        store
            .queue_hold("OUT1", "burst: 500 recipients in an hour")
            .await
            .unwrap()
    );
    assert_eq!(
        store.queue_held_reason("OUT1").await.unwrap().as_deref(),
        Some("burst: 500 recipients in an hour")
    );
    assert_eq!(store.queue_held_count().await.unwrap(), 1);
    let later = now + 700_000_000;
    assert!(
        store
            .lease_mx(None, "n1", later, 60_000_000, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store.queue_release("OUT1").await.unwrap());
    assert!(
        !store.queue_release("OUT1").await.unwrap(),
        "not held any more"
    );
    let leased = store
        .lease_mx(None, "n1", sponts::clock::now_us(), 60_000_000, 10)
        .await
        .unwrap();
    assert_eq!(leased.len(), 1);
    assert_eq!(leased[0].attempts, 1);
    assert!(
        store
            .mx_done("OUT1", "y@partner.example", "n1", "250 ok")
            .await
            .unwrap(),
        "the last answer removes the message"
    );
    assert!(store.queue_list(Some("OUT1")).await.unwrap().is_empty());
}

/// A hijacked account mails guessed addresses: once more than `outbound.max_refused_share` of
/// its hour's recipients (20 or more) were refused by their servers, its next message is held.
async fn refused_recipients_count_against_the_sender(store: &Store) {
    let now = sponts::clock::now_us();
    let sender = "mallory@example.org";
    let rcpts: Vec<(String, Route)> = (0..20)
        .map(|i| (format!("guess{i}@far.example"), Route::Mx))
        .collect();
    let body = zstd::bulk::compress(b"Subject: hi\r\n\r\nhi\r\n", 3).unwrap();
    let m = NewQueued {
        id: "GUESS",
        time_us: now - 5_000_000,
        sender,
        size: 20,
        compressed: &body,
        rcpts: &rcpts,
        outbound: true,
        held: "",
    };
    store.enqueue_routed(&m).await.unwrap();
    let recipients = rcpts
        .iter()
        .map(|(a, _)| sponts::storage::RcptEntry {
            address: a.clone(),
            accepted: true,
            reply: "250 2.1.5 Ok".into(),
            delivered_to: None,
        })
        .collect();
    let entry = sponts::storage::JournalEntry {
        id: "GUESS".into(),
        time_us: now - 5_000_000,
        client_ip: "127.0.0.1".into(),
        client_port: 1,
        helo: "mail.example.org".into(),
        tls: None,
        sender: sender.into(),
        recipients,
        subject: Some("hi".into()),
        message_id: None,
        size: Some(20),
        attachments: vec![],
        outcome: "queued".into(),
        decided_by: "outbound".into(),
        final_reply: "250 2.0.0 Ok: queued".into(),
        replay_of: None,
        actor: None,
        flag: None,
        notes: None,
        outbound: true,
    };
    store.insert_journal(&[entry]).await.unwrap();
    let config = sponts::config::Config::parse("[domains]\nlocal = [\"example.org\"]\n").unwrap();
    let next = vec!["someone@far.example".to_string()];
    assert_eq!(
        sponts::outbound::guard::burst(&config, store, sender, None, &next)
            .await
            .unwrap(),
        None,
        "nothing answered yet"
    );

    let leased = store
        .lease_mx(None, "n1", now, 60_000_000, 50)
        .await
        .unwrap();
    assert_eq!(leased.len(), 20);
    for (i, l) in leased.iter().enumerate() {
        let reply = if i < 11 {
            format!(
                "550 5.1.1 <{}>: no such user (from mx.far.example)",
                l.address
            )
        } else {
            "250 2.0.0 ok (from mx.far.example)".to_string()
        };
        store
            .mx_done("GUESS", &l.address, "n1", &reply)
            .await
            .unwrap();
    }
    // The journal shows each refusal; the message is done.
    let e = store
        .query_journal(&sponts::storage::JournalFilter {
            id: Some("GUESS".into()),
            ..Default::default()
        })
        .await
        .unwrap()
        .pop()
        .unwrap();
    assert_eq!(
        e.recipients
            .iter()
            .filter(|r| r.reply.starts_with("550 5.1.1"))
            .count(),
        11
    );
    assert_eq!(e.outcome, "delivered");

    let held = sponts::outbound::guard::burst(&config, store, sender, None, &next)
        .await
        .unwrap();
    assert!(
        held.as_deref()
            .is_some_and(|r| r.contains("55%") && r.contains("outbound.max_refused_share = 0.5")),
        "{held:?}"
    );
    // Only past the share: at 0.6 the same hour passes; others' hours are their own.
    let lenient = sponts::config::Config::parse(
        "[domains]\nlocal = [\"example.org\"]\n[outbound]\nmax_refused_share = 0.6\n",
    )
    .unwrap();
    assert_eq!(
        sponts::outbound::guard::burst(&lenient, store, sender, None, &next)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        sponts::outbound::guard::burst(&config, store, "alice@example.org", None, &next)
            .await
            .unwrap(),
        None
    );
    let bad = sponts::config::Config::parse(
        "[domains]\nlocal = [\"example.org\"]\n[outbound]\nmax_refused_share = 2\n",
    )
    .unwrap_err();
    assert!(
        bad.0
            .iter()
            .any(|e| e.to_string().contains("outbound.max_refused_share")),
        "{bad:?}"
    );
}

/// One journaled outbound message from `sender` (sent by `account`, if any) to `n` recipients.
async fn journal_out(
    store: &Store,
    id: &str,
    time_us: i64,
    sender: &str,
    account: Option<&str>,
    n: usize,
) {
    journal_out_as(store, id, time_us, sender, account, n, "delivered").await
}

async fn journal_out_as(
    store: &Store,
    id: &str,
    time_us: i64,
    sender: &str,
    account: Option<&str>,
    n: usize,
    outcome: &str,
) {
    let recipients = (0..n)
        .map(|i| sponts::storage::RcptEntry {
            address: format!("r{i}@d{}.example", i % 3),
            accepted: true,
            reply: "250 2.1.5 Ok".into(),
            delivered_to: None,
        })
        .collect();
    let entry = sponts::storage::JournalEntry {
        id: id.into(),
        time_us,
        client_ip: "127.0.0.1".into(),
        client_port: 1,
        helo: "mail.example.org".into(),
        tls: None,
        sender: sender.into(),
        recipients,
        subject: Some("hi".into()),
        message_id: None,
        size: Some(20),
        attachments: vec![],
        outcome: outcome.into(),
        decided_by: "outbound".into(),
        final_reply: "250 2.0.0 Ok: queued".into(),
        replay_of: None,
        actor: account.map(str::to_string),
        flag: None,
        notes: None,
        outbound: true,
    };
    store.insert_journal(&[entry]).await.unwrap();
}

/// A hijacked account varies its sender address and stays under the per-sender limits: its
/// mail is counted per SMTP AUTH account too. And every sender and account is measured against
/// its own habit: past `baseline_factor` times its busiest hour of the last days, mail is held
/// long before the limits made for everyone.
async fn accounts_and_baselines(store: &Store) {
    const HOUR: i64 = 3_600_000_000;
    let now = sponts::clock::now_us();
    let tag = now % 1_000_000_007;
    let account = format!("carol{tag}@example.org");
    let quiet = format!("quiet{tag}@example.org");
    let busy = format!("busy{tag}@example.org");
    // Habits: the account sent 3 recipients in its busiest hour two days ago; `busy` once had 80.
    journal_out(
        store,
        &format!("H1{tag}"),
        now - 48 * HOUR,
        &quiet,
        Some(&account),
        3,
    )
    .await;
    journal_out(store, &format!("H2{tag}"), now - 72 * HOUR, &busy, None, 80).await;
    // A burst of the account's that is still held (queued) is no habit.
    journal_out_as(
        store,
        &format!("H3{tag}"),
        now - 24 * HOUR,
        &quiet,
        Some(&account),
        900,
        "queued",
    )
    .await;
    // This hour: 3 forged senders, 40 recipients each, all by the account.
    for i in 0..3 {
        journal_out(
            store,
            &format!("N{i}{tag}"),
            now - 60_000_000,
            &format!("forged{i}{tag}@example.org"),
            Some(&account),
            40,
        )
        .await;
    }
    let next = vec!["x@far.example".to_string()];
    let config = sponts::config::Config::parse(
        "[domains]\nlocal = [\"example.org\"]\n[outbound]\nbaseline_factor = 5\nbaseline_floor = 10\n",
    )
    .unwrap();
    let forged = format!("forged0{tag}@example.org");
    // Per sender: 41 recipients, under the floor's 50 (and under every limit).
    assert_eq!(
        sponts::outbound::guard::burst(&config, store, &forged, None, &next)
            .await
            .unwrap(),
        None
    );
    // Per account: 121 recipients against 5 x max(3, 10) = 50.
    let held = sponts::outbound::guard::burst(&config, store, &forged, Some(&account), &next)
        .await
        .unwrap();
    assert!(
        held.as_deref()
            .is_some_and(|r| r.contains(&format!("account {account}"))
                && r.contains("121 recipients")
                && r.contains("outbound.baseline_factor = 5")),
        "{held:?}"
    );
    // The same hour is no burst for a sender whose habit is larger (5 x 80 = 400) ...
    for i in 0..3 {
        journal_out(
            store,
            &format!("B{i}{tag}"),
            now - 60_000_000,
            &busy,
            None,
            40,
        )
        .await;
    }
    assert_eq!(
        sponts::outbound::guard::burst(&config, store, &busy, None, &next)
            .await
            .unwrap(),
        None
    );
    // A burst in the last 60 minutes but before the top of this hour is not its own habit.
    let edge = format!("edge{tag}@example.org");
    let this_hour = now - now.rem_euclid(HOUR);
    let before_the_hour = (this_hour + now - HOUR) / 2;
    journal_out(store, &format!("E{tag}"), before_the_hour, &edge, None, 100).await;
    let held = sponts::outbound::guard::burst(&config, store, &edge, None, &next)
        .await
        .unwrap();
    assert!(
        held.as_deref()
            .is_some_and(|r| r.contains("101 recipients")),
        "{held:?}"
    );
    // ... nor with baselines off (the fixed limits alone: 1000 recipients an hour).
    let off = sponts::config::Config::parse(
        "[domains]\nlocal = [\"example.org\"]\n[outbound]\nbaseline_factor = 0\n",
    )
    .unwrap();
    assert_eq!(
        sponts::outbound::guard::burst(&off, store, &forged, Some(&account), &next)
            .await
            .unwrap(),
        None
    );
    // ... while the fixed limits count the account over all its senders too.
    let strict = sponts::config::Config::parse(
        "[domains]\nlocal = [\"example.org\"]\n[outbound]\nbaseline_factor = 0\nmax_messages_per_hour = 3\n",
    )
    .unwrap();
    let held = sponts::outbound::guard::burst(&strict, store, &forged, Some(&account), &next)
        .await
        .unwrap();
    assert!(
        held.as_deref()
            .is_some_and(|r| r.contains("4 messages in an hour")),
        "{held:?}"
    );
    let bad = sponts::config::Config::parse("[outbound]\nbaseline_factor = 0.5\n").unwrap_err();
    assert!(
        bad.0
            .iter()
            .any(|e| e.to_string().contains("outbound.baseline_factor")),
        "{bad:?}"
    );
}

#[tokio::test]
async fn outbound_queue_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&sponts::config::DatabaseLocation::Sqlite(
        dir.path().join("sponts.db"),
    ))
    .await
    .unwrap();
    routes_leases_and_holds(&store).await;
    refused_recipients_count_against_the_sender(&store).await;
    accounts_and_baselines(&store).await;
}

#[tokio::test]
async fn outbound_queue_on_postgres() {
    let db = common::pg::TestDb::create().await;
    let store = Store::open(&sponts::config::DatabaseLocation::Postgres(db.url.clone()))
        .await
        .unwrap();
    routes_leases_and_holds(&store).await;
    refused_recipients_count_against_the_sender(&store).await;
    accounts_and_baselines(&store).await;
    store.close().await;
    db.drop_db().await;
}
