//! `sponts replay --id ID [--to ADDR]` and `sponts replay --rcpt ADDR --since DUR` (bulk, with a
//! progress bar on the terminal).

use anyhow::{Result, bail};
use std::io::Write;

use crate::config::{Config, Duration};
use crate::replay::{Replayed, delivered_to, replay};
use crate::storage::Store;

/// Who is replaying: the account that ran the command (see [`super::invoker`]).
pub fn actor() -> String {
    super::invoker::actor()
}

fn print(r: &Replayed, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string(r)?);
    } else {
        let to: Vec<&str> = r.recipients.iter().map(|x| x.address.as_str()).collect();
        println!(
            "{} {} of {} to {}: {}",
            if r.delivered {
                "replayed"
            } else {
                "NOT replayed"
            },
            r.id,
            r.of,
            to.join(", "),
            r.reply
        );
    }
    Ok(())
}

/// Returns the number of messages that could not be replayed.
pub async fn one(
    config: &Config,
    store: &Store,
    id: &str,
    to: Option<&str>,
    json: bool,
) -> Result<usize> {
    let r = replay(config, store, id, to, &actor()).await?;
    print(&r, json)?;
    Ok(usize::from(!r.delivered))
}

pub async fn bulk(
    config: &Config,
    store: &Store,
    rcpt: &str,
    since: Duration,
    json: bool,
) -> Result<usize> {
    let rcpt = crate::auth::account_name(rcpt)?;
    let since_us = crate::clock::now_us() - since.0.as_micros() as i64;
    let todo = delivered_to(store, &rcpt, since_us).await?;
    if todo.is_empty() {
        bail!("no delivered mail for {rcpt} in that time");
    }
    let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let mut failed = 0;
    for (i, e) in todo.iter().enumerate() {
        match replay(config, store, &e.id, Some(&rcpt), &actor()).await {
            Ok(r) => {
                failed += usize::from(!r.delivered);
                if json || !r.delivered {
                    print(&r, json)?;
                }
            }
            Err(err) => {
                failed += 1;
                eprintln!("{}: {err}", e.id);
            }
        }
        progress(i + 1, todo.len(), tty);
    }
    if tty {
        eprintln!();
    }
    let messages = if todo.len() == 1 {
        "message"
    } else {
        "messages"
    };
    eprintln!(
        "replayed {} of {} {messages} to {rcpt}",
        todo.len() - failed,
        todo.len()
    );
    Ok(failed)
}

fn progress(done: usize, total: usize, tty: bool) {
    const WIDTH: usize = 30;
    let filled = done * WIDTH / total.max(1);
    let bar = format!(
        "[{}{}] {done}/{total}",
        "#".repeat(filled),
        ".".repeat(WIDTH - filled)
    );
    let mut err = std::io::stderr().lock();
    if tty {
        let _ = write!(err, "\r{bar}");
    } else if done == total || done % 100 == 0 {
        let _ = writeln!(err, "{bar}");
    }
    let _ = err.flush();
}
