//! Fills a database with the Report's buckets for N synthetic transactions spread over D days,
//! through the write path's own code: each simulated hour's records go through
//! `storage::stats::deltas` and `Store::add_stats` (as the journal writes them), the live figures
//! through `Store::add_live_stats`, and `report::compact` runs as the report job would at the
//! start of the next hour. Used by `bench/report`.
//!
//!   cargo run --release --example report_fill -- DATABASE N DAYS
//! DATABASE: a SQLite file path or a postgres:// URL.

use sponts::storage::{JournalEntry, RcptEntry, Store};

/// A small deterministic generator (xorshift), so every run builds the same data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Skewed towards 0: a few heavy hitters and a long tail, as spam sources are.
    fn skewed(&mut self, n: u64) -> u64 {
        (self.unit().powi(3) * n as f64) as u64
    }
}

fn entry(rng: &mut Rng, i: u64, time_us: i64) -> JournalEntry {
    let roll = rng.next() % 100;
    let (outcome, flag, decided_by) = match roll {
        0..35 => ("delivered", None, "backend"),
        35..40 => ("delivered", Some("suspect"), "uce"),
        40..85 => ("refused", Some("spam"), "uce"),
        85..86 => ("refused", Some("virus"), "virus"),
        86..90 => ("discarded", None, "uce"),
        90..95 => ("tempfailed", None, "backend"),
        95..98 => ("refused", None, "access"),
        _ => ("abandoned", None, "client"),
    };
    let spam = roll >= 40 && roll < 90;
    let (ip, sender, helo) = if spam {
        let n = rng.skewed(200_000);
        (
            format!("198.18.{}.{}", n / 256 % 256, n % 256),
            format!("x{}@spam{}.example", rng.next() % 1000, rng.skewed(50_000)),
            format!("bot{}.example", rng.skewed(80_000)),
        )
    } else {
        let n = rng.next() % 5000;
        (
            format!("192.0.2.{}", n % 250),
            format!("user{}@partner{}.example", rng.next() % 5000, n % 400),
            format!("mx{}.partner.example", n % 400),
        )
    };
    JournalEntry {
        id: format!("R{i:012}"),
        time_us,
        client_ip: ip,
        client_port: 40000,
        helo,
        tls: None,
        sender,
        recipients: vec![RcptEntry {
            address: format!("staff{}@example.org", rng.next() % 2000),
            accepted: true,
            reply: "250 2.1.5 Ok".into(),
            delivered_to: None,
        }],
        subject: None,
        message_id: None,
        size: (outcome != "abandoned").then(|| 2000 + (rng.next() % 60_000) as i64),
        attachments: vec![],
        outcome: outcome.into(),
        decided_by: decided_by.into(),
        final_reply: String::new(),
        replay_of: None,
        actor: None,
        flag: flag.map(String::from),
        notes: None,
        outbound: false,
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, db, n, days] = args.as_slice() else {
        anyhow::bail!("usage: report_fill DATABASE N DAYS")
    };
    let (n, days): (u64, i64) = (n.parse()?, days.parse()?);
    let location = if db.starts_with("postgres") {
        sponts::config::DatabaseLocation::Postgres(db.clone())
    } else {
        sponts::config::DatabaseLocation::Sqlite(db.into())
    };
    let store = Store::open(&location).await?;
    let hour_us = sponts::storage::stats::HOUR_US;
    let now = sponts::clock::now_us();
    let first_hour = now - now.rem_euclid(hour_us) - days * 24 * hour_us;
    let hours = days * 24 + 1;
    let per_hour = n / hours as u64;
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let started = std::time::Instant::now();
    let mut done = 0u64;
    for h in 0..hours {
        let hour = first_hour + h * hour_us;
        let count = if h == hours - 1 { n - done } else { per_hour };
        let entries: Vec<JournalEntry> = (0..count)
            .map(|k| {
                entry(
                    &mut rng,
                    done + k,
                    hour + (k as i64 * hour_us / count.max(1) as i64),
                )
            })
            .collect();
        store
            .add_stats(&sponts::storage::stats::deltas(&entries))
            .await?;
        let d = |m: &str, k: &str, v: i64| (hour, m.to_string(), k.to_string(), v);
        let calls = count as i64 * 95 / 100;
        store
            .add_live_stats(
                &[
                    d("connections", "", count as i64 * 13 / 10),
                    d("scanner_calls", "clamd/clean", calls - 100),
                    d("scanner_calls", "clamd/found", 100),
                    d("scanner_le", "clamd/0.01", calls / 2),
                    d("scanner_le", "clamd/0.025", calls * 9 / 10),
                    d("scanner_le", "clamd/0.05", calls),
                ],
                &[
                    d("sessions_peak", "", 40 + (h % 24) * 3),
                    d("queue_length", "", 0),
                ],
            )
            .await?;
        sponts::report::compact(&store, hour + hour_us + 60_000_000).await?;
        done += count;
        if h % 24 == 23 {
            eprintln!(
                "day {} of {days}: {done} records, {:.0} s",
                h / 24 + 1,
                started.elapsed().as_secs_f64()
            );
        }
    }
    let rows: i64 = match &store {
        Store::Sqlite(p) => sqlx_count(p).await?,
        Store::Postgres(_) => -1,
    };
    println!(
        "filled: {done} records over {days} days in {:.0} s; stats rows: {rows}",
        started.elapsed().as_secs_f64()
    );
    store.close().await;
    Ok(())
}

async fn sqlx_count(pool: &sqlx::SqlitePool) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar("SELECT COUNT(*) FROM stats")
        .fetch_one(pool)
        .await?)
}
