//! `sponts outbound held|release ID|lock SENDER|unlock SENDER`: outbound mail held as a
//! compromised account's, and senders locked out of outbound mail (refused 5.7.1 until unlocked).

use anyhow::{Result, bail};
use std::io::Write;

use crate::storage::Store;

pub async fn held(store: &Store, json: bool, out: &mut dyn Write) -> Result<()> {
    let held = store.queue_held().await?;
    let locks = store.sender_locks().await?;
    if json {
        writeln!(
            out,
            "{}",
            serde_json::json!({ "held": held, "locked": locks })
        )?;
        return Ok(());
    }
    for q in &held {
        writeln!(
            out,
            "{:<16} {:<20} {} → {}  HELD: {}",
            q.id,
            crate::clock::rfc3339(q.time_us),
            if q.sender.is_empty() { "<>" } else { &q.sender },
            q.pending.join(","),
            q.held
        )?;
    }
    writeln!(out, "({} held)", held.len())?;
    for l in &locks {
        writeln!(
            out,
            "locked: {} since {} by {} ({})",
            l.sender,
            crate::clock::rfc3339(l.created_us),
            l.created_by,
            l.reason
        )?;
    }
    Ok(())
}

pub async fn release(store: &Store, id: &str, out: &mut dyn Write) -> Result<()> {
    if !store.queue_release(id).await? {
        bail!("{id} is not held (or not in the queue)");
    }
    writeln!(out, "{id} released: it is delivered now")?;
    Ok(())
}

pub async fn lock(store: &Store, sender: &str, reason: &str, out: &mut dyn Write) -> Result<()> {
    if !sender
        .rsplit_once('@')
        .is_some_and(|(l, d)| !l.is_empty() && crate::address::is_domain(d))
    {
        bail!("`{sender}` is not a mail address");
    }
    store
        .lock_sender(sender, reason, &crate::cli::invoker::actor())
        .await?;
    writeln!(
        out,
        "{sender} is locked: its outbound mail is refused (5.7.1) until `sponts outbound unlock {sender}`"
    )?;
    Ok(())
}

pub async fn unlock(store: &Store, sender: &str, out: &mut dyn Write) -> Result<()> {
    if !store.unlock_sender(sender).await? {
        bail!("{sender} is not locked");
    }
    writeln!(out, "{sender} is unlocked")?;
    Ok(())
}
