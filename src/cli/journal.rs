//! `sponts journal`: the transaction records, as a table for people or JSON lines for scripts.

use anyhow::Result;
use std::io::Write;

use crate::config::Duration;
use crate::storage::{JournalEntry, JournalFilter, Store};

pub struct Query {
    pub since: Option<Duration>,
    pub sender: Option<String>,
    pub rcpt: Option<String>,
    pub ip: Option<String>,
    pub subject: Option<String>,
    pub id: Option<String>,
    pub limit: i64,
    pub json: bool,
}

pub async fn run(store: &Store, q: Query, out: &mut dyn Write) -> Result<()> {
    let filter = JournalFilter {
        since_us: q.since.map(|d| crate::clock::now_us() - d.0.as_micros() as i64),
        sender: q.sender,
        rcpt: q.rcpt,
        ip: q.ip,
        subject: q.subject,
        id: q.id,
        limit: Some(q.limit),
        ..Default::default()
    };
    let mut entries = store.query_journal(&filter).await?;
    entries.reverse(); // oldest first, like a log
    if q.json {
        for e in &entries {
            let mut v = serde_json::to_value(e)?;
            v["time"] = serde_json::Value::String(crate::clock::rfc3339(e.time_us));
            writeln!(out, "{v}")?;
        }
    } else {
        write_table(&entries, out)?;
    }
    Ok(())
}

fn write_table(entries: &[JournalEntry], out: &mut dyn Write) -> Result<()> {
    writeln!(out, "{:<20} {:<16} {:<15} {:<11} {:<10} {:<28} {:<28} SUBJECT", "TIME", "ID", "CLIENT", "OUTCOME", "BY", "SENDER", "RECIPIENTS")?;
    for e in entries {
        let rcpts: Vec<String> = e.recipients.iter().map(|r| if r.accepted { r.address.clone() } else { format!("!{}", r.address) }).collect();
        let sender = if e.sender.is_empty() { "<>".to_string() } else { e.sender.clone() };
        writeln!(
            out,
            "{:<20} {:<16} {:<15} {:<11} {:<10} {:<28} {:<28} {}",
            crate::clock::rfc3339(e.time_us),
            e.id,
            e.client_ip,
            e.outcome,
            e.decided_by,
            cut(&sender, 28),
            cut(&rcpts.join(","), 28),
            e.subject.as_deref().unwrap_or("")
        )?;
    }
    writeln!(out, "({} records; `!` marks a refused recipient)", entries.len())?;
    Ok(())
}

fn cut(s: &str, n: usize) -> String {
    if s.chars().count() <= n { s.to_string() } else { s.chars().take(n - 1).chain(['…']).collect() }
}
