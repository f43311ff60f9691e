//! What the storage costs per relayed message, without the network: each message's kept copy
//! and then its journal record (with its figures) go through the `Store` API as the `backup`
//! and `journal` modules hand them in, from CONCURRENCY tasks at a time. Prints the process's
//! CPU time per message; the database is a fresh SQLite file in a temporary directory.
//!
//!   cargo run --release --example store_cost -- [MESSAGES=20000] [CONCURRENCY=20]

use std::sync::Arc;

use sponts::config::DatabaseLocation;
use sponts::storage::{JournalEntry, RcptEntry, Store, StoredBody};

fn cpu_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    // utime and stime: fields 14 and 15 of the whole line, 12 and 13 after the command.
    fields
        .get(11)
        .and_then(|u| u.parse::<u64>().ok())
        .unwrap_or(0)
        + fields
            .get(12)
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(0)
}

fn entry(i: u64) -> JournalEntry {
    JournalEntry {
        id: format!("C{i:012}"),
        time_us: sponts::clock::now_us(),
        client_ip: format!("192.0.2.{}", i % 250),
        client_port: 40000,
        helo: format!("mx{}.partner.example", i % 400),
        tls: None,
        sender: format!("user{}@partner{}.example", i % 5000, i % 400),
        recipients: vec![RcptEntry {
            address: format!("staff{}@example.org", i % 2000),
            accepted: true,
            reply: "250 2.0.0 Ok: queued".into(),
            delivered_to: None,
        }],
        subject: Some(format!("Report {i}")),
        message_id: Some(format!("{i}@partner.example")),
        size: Some(5120),
        attachments: vec![],
        outcome: "delivered".into(),
        decided_by: "backend".into(),
        final_reply: "250 2.0.0 Ok: queued".into(),
        replay_of: None,
        actor: None,
        flag: None,
        notes: None,
        outbound: false,
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let (messages, concurrency) = (
        args.first().copied().unwrap_or(20_000),
        args.get(1).copied().unwrap_or(20),
    );
    let dir = tempfile::tempdir()?;
    let store = Store::open(&DatabaseLocation::Sqlite(dir.path().join("cost.db"))).await?;
    let body = sponts::modules::backup::compress(&vec![b'x'; 5120], 3)?;
    let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let (t0, c0) = (std::time::Instant::now(), cpu_ticks());
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (store, next, body) = (store.clone(), next.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= messages {
                    return anyhow::Ok(());
                }
                let e = entry(i);
                store
                    .insert_bodies(vec![StoredBody {
                        id: e.id.clone(),
                        time_us: e.time_us,
                        size: 5120,
                        compressed: body.clone(),
                        digest: String::new(),
                    }])
                    .await?;
                store.insert_journal(&[e]).await?;
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    let (secs, ticks) = (t0.elapsed().as_secs_f64(), cpu_ticks() - c0);
    let tick_us = 1e6 / 100.0;
    println!(
        "{messages} messages, {concurrency} at a time: {:.0} msgs/s, {:.0} us CPU per message (storage alone)",
        messages as f64 / secs,
        ticks as f64 * tick_us / messages as f64
    );
    store.close().await;
    Ok(())
}
