//! `sponts journal`: the transaction records, as a table for people or JSON lines for scripts;
//! `--id` shows one record in full.

use anyhow::Result;
use std::io::Write;

use crate::config::Duration;
use crate::storage::{AttachmentEntry, JournalEntry, JournalFilter, Store};

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
    let one = q.id.is_some();
    let filter = JournalFilter {
        since_us: q
            .since
            .map(|d| crate::clock::now_us() - d.0.as_micros() as i64),
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
    } else if one && !entries.is_empty() {
        for e in &entries {
            write_record(e, out)?;
        }
    } else {
        write_table(&entries, out)?;
    }
    Ok(())
}

fn write_table(entries: &[JournalEntry], out: &mut dyn Write) -> Result<()> {
    writeln!(
        out,
        "{:<20} {:<16} {:<15} {:<11} {:<10} {:<28} {:<28} SUBJECT",
        "TIME", "ID", "CLIENT", "OUTCOME", "BY", "SENDER", "RECIPIENTS"
    )?;
    for e in entries {
        let rcpts: Vec<String> = e
            .recipients
            .iter()
            .map(|r| {
                if r.accepted {
                    r.address.clone()
                } else {
                    format!("!{}", r.address)
                }
            })
            .collect();
        let sender = if e.sender.is_empty() {
            "<>".to_string()
        } else {
            e.sender.clone()
        };
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
        if !e.attachments.is_empty() {
            let list: Vec<String> = e.attachments.iter().map(attachment).collect();
            writeln!(out, "{:<20} attachments: {}", "", list.join(", "))?;
        }
    }
    let records = if entries.len() == 1 {
        "record"
    } else {
        "records"
    };
    writeln!(
        out,
        "({} {records}; `!` marks a refused recipient)",
        entries.len()
    )?;
    Ok(())
}

/// One record, every field on a line of its own.
fn write_record(e: &JournalEntry, out: &mut dyn Write) -> Result<()> {
    let field = |out: &mut dyn Write, name: &str, value: &str| writeln!(out, "{name:<13}{value}");
    field(out, "id", &e.id)?;
    field(out, "time", &crate::clock::rfc3339(e.time_us))?;
    field(
        out,
        "client",
        &format!(
            "{} port {} (HELO {}){}",
            e.client_ip,
            e.client_port,
            e.helo,
            e.tls
                .as_deref()
                .map(|t| format!(", {t}"))
                .unwrap_or_default()
        ),
    )?;
    field(
        out,
        "sender",
        if e.sender.is_empty() { "<>" } else { &e.sender },
    )?;
    for r in &e.recipients {
        let to = r
            .delivered_to
            .as_deref()
            .map(|d| format!(" (delivered to {d})"))
            .unwrap_or_default();
        field(
            out,
            "recipient",
            &format!(
                "{}{}{to}: {}",
                if r.accepted { "" } else { "!" },
                r.address,
                r.reply
            ),
        )?;
    }
    field(out, "subject", e.subject.as_deref().unwrap_or(""))?;
    if let Some(m) = &e.message_id {
        field(out, "message-id", m)?;
    }
    if let Some(size) = e.size {
        field(out, "size", &format!("{size} bytes"))?;
    }
    for a in &e.attachments {
        field(out, "attachment", &attachment(a))?;
    }
    field(
        out,
        "outcome",
        &format!("{} by {}", e.outcome, e.decided_by),
    )?;
    field(out, "final reply", &e.final_reply)?;
    for (name, value) in [
        ("flag", &e.flag),
        ("checks", &e.notes),
        ("replay of", &e.replay_of),
        ("replayed by", &e.actor),
    ] {
        if let Some(v) = value {
            field(out, name, v)?;
        }
    }
    writeln!(out)?;
    Ok(())
}

fn attachment(a: &AttachmentEntry) -> String {
    let name = if a.filename.is_empty() {
        "(unnamed)"
    } else {
        &a.filename
    };
    format!("{name} ({}, {} bytes)", a.mime_type, a.size)
}

fn cut(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        s.chars().take(n - 1).chain(['…']).collect()
    }
}
