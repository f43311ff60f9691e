//! `sponts queue list|show ID|retry [ID]|deliver ID HOST:PORT`: what waits for the backend, a
//! nudge to try now, and a hand delivery to another host.

use anyhow::{Result, bail};
use std::io::Write;

use crate::storage::Store;

pub async fn list(store: &Store, json: bool, out: &mut dyn Write) -> Result<()> {
    let items = store.queue_list(None).await?;
    if json {
        for q in &items {
            writeln!(out, "{}", serde_json::to_string(q)?)?;
        }
        return Ok(());
    }
    writeln!(
        out,
        "{:<16} {:<20} {:>8} {:>4} {:<20} {:<28} LAST REPLY",
        "ID", "QUEUED", "SIZE", "TRY", "NEXT", "SENDER → PENDING"
    )?;
    for q in &items {
        let who = format!(
            "{} → {}",
            if q.sender.is_empty() { "<>" } else { &q.sender },
            q.pending.join(",")
        );
        writeln!(
            out,
            "{:<16} {:<20} {:>8} {:>4} {:<20} {:<28} {}",
            q.id,
            crate::clock::rfc3339(q.time_us),
            q.size,
            q.attempts,
            crate::clock::rfc3339(q.next_attempt_us),
            who,
            q.last_reply
        )?;
    }
    writeln!(out, "({} queued)", items.len())?;
    let destinations = store.mx_destinations().await?;
    if !destinations.is_empty() {
        writeln!(
            out,
            "\nOutbound, by destination:\n{:<28} {:>5} {:>5} {:>4} {:<20} {:<20} LAST ERROR",
            "DESTINATION", "MSGS", "RCPTS", "TRY", "OLDEST", "NEXT"
        )?;
        for d in &destinations {
            writeln!(
                out,
                "{:<28} {:>5} {:>5} {:>4} {:<20} {:<20} {}",
                d.domain,
                d.messages,
                d.recipients,
                d.attempts,
                crate::clock::rfc3339(d.oldest_us),
                crate::clock::rfc3339(d.next_attempt_us),
                d.last_reply
            )?;
        }
    }
    Ok(())
}

pub async fn show(store: &Store, id: &str, out: &mut dyn Write) -> Result<()> {
    let Some(q) = store.queue_list(Some(id)).await?.pop() else {
        bail!("{id} is not in the queue")
    };
    writeln!(out, "{}", serde_json::to_string_pretty(&q)?)?;
    Ok(())
}

pub async fn retry(store: &Store, id: Option<&str>) -> Result<()> {
    let n = store.retry_now(id).await?;
    store.mx_retry_now(id).await?;
    if n == 0 && id.is_some() {
        bail!("{} is not in the queue", id.unwrap_or_default());
    }
    println!("{n} message{} due now", if n == 1 { "" } else { "s" });
    Ok(())
}

pub async fn deliver(
    config: &crate::config::Config,
    store: &Store,
    id: &str,
    host: &str,
) -> Result<()> {
    let reply = crate::queue::deliver_to(config, store, id, host).await?;
    println!("{id}: {reply}");
    Ok(())
}
