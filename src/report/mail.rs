//! The report mailed to the admins: daily (the day before) or weekly (Monday, the week before),
//! at `report.mail_hour` UTC, as HTML with the dashboard's charts and a plain-text part, through
//! the backend like any mail. A period is claimed in SQL before sending, so several nodes send it
//! once; a failed delivery gives the claim back and the next sample tries again.

use anyhow::Result;

use super::figures::{self, Bucket, Range};
use super::tables;
use crate::config::{Config, MailEvery};
use crate::smtp::client::BackendTarget;
use crate::storage::stats::DAY_US;
use crate::storage::{Role, Store};

/// The period due at `now` (`[since, until)`) and its name, if a report is due at all.
pub fn due(config: &Config, now_us: i64) -> Option<(String, Range)> {
    let today = Bucket::Day.start(now_us);
    let (kind, until) = match config.report.mail {
        MailEvery::Off => return None,
        MailEvery::Daily => ("daily", today),
        MailEvery::Weekly => ("weekly", Bucket::Week.start(now_us)),
    };
    if now_us < until + i64::from(config.report.mail_hour) * 3_600_000_000 {
        return None;
    }
    let since = if kind == "daily" {
        until - DAY_US
    } else {
        until - 7 * DAY_US
    };
    let bucket = if kind == "daily" {
        Bucket::Hour
    } else {
        Bucket::Day
    };
    Some((
        format!("{kind} {}", &crate::clock::rfc3339(since)[..10]),
        Range::new(since, until, Some(bucket)),
    ))
}

/// Who gets the report: `report.mail_to`, or every admin.
pub async fn recipients(config: &Config, store: &Store) -> Result<Vec<String>> {
    if !config.report.mail_to.is_empty() {
        return Ok(config.report.mail_to.clone());
    }
    Ok(store
        .users(None)
        .await?
        .into_iter()
        .filter(|u| u.role == Role::Admin)
        .map(|u| u.address)
        .collect())
}

/// How long a node waits before trying a report again after a temporary failure.
const RETRY_US: i64 = 15 * 60 * 1_000_000;

/// Sends the due report once. The period is claimed before sending, so several nodes send it
/// once; it is claimed too when there is nothing to send (no traffic, no admin), so it is not
/// read again. A refusal by the backend (5xx) keeps the claim: sending again would be refused
/// again. A temporary failure gives the claim back, and this node tries again after 15 minutes
/// (`next_try_us`, kept by the job).
pub async fn send_if_due(
    config: &Config,
    store: &Store,
    now_us: i64,
    next_try_us: &mut i64,
) -> Result<()> {
    if now_us < *next_try_us {
        return Ok(());
    }
    let Some((name, range)) = due(config, now_us) else {
        return Ok(());
    };
    if store.report_mailed(&name).await? {
        return Ok(());
    }
    let f = figures::read(store, range).await?;
    let to = recipients(config, store).await?;
    if !store.claim_report_mail(&name, now_us).await? {
        return Ok(());
    }
    if f.transactions == 0 && f.load.get("connections").copied().unwrap_or(0) == 0 {
        tracing::info!(report = %name, "no traffic in the period: no report mailed");
        return Ok(());
    }
    if to.is_empty() {
        tracing::warn!(report = %name, "no admin and no report.mail_to: no report mailed");
        return Ok(());
    }
    match send(config, &to, &f, &name, now_us).await {
        Sent::Accepted(reply) => tracing::info!(report = %name, to = ?to, "report mailed: {reply}"),
        Sent::Refused(reply) => {
            tracing::error!(report = %name, to = ?to, "report refused by the backend, not sent again: {reply}")
        }
        Sent::Failed(reply) => {
            store.release_report_mail(&name).await?;
            *next_try_us = now_us + RETRY_US;
            anyhow::bail!("not delivered, tried again in 15 minutes: {reply}");
        }
    }
    Ok(())
}

/// What became of a report mail, with the backend's reply.
pub enum Sent {
    Accepted(String),
    /// Refused for good (5xx, or every recipient refused).
    Refused(String),
    /// Not delivered for now (connection, 4xx).
    Failed(String),
}

/// Delivers one report through the backend.
pub async fn send(
    config: &Config,
    to: &[String],
    f: &figures::Figures,
    title: &str,
    now_us: i64,
) -> Sent {
    let from = if config.report.mail_from.is_empty() {
        crate::digest::default_sender(config)
    } else {
        config.report.mail_from.clone()
    };
    let message = compose(config, &from, to, f, title, now_us);
    let (rcpts, reply, ok) = crate::replay::deliver(
        &BackendTarget::from_config(config),
        &from,
        to,
        b"",
        &message,
    )
    .await;
    if ok && rcpts.iter().any(|r| r.accepted) {
        Sent::Accepted(reply)
    } else if reply.starts_with('5')
        || (!rcpts.is_empty() && rcpts.iter().all(|r| r.reply.starts_with('5')))
    {
        Sent::Refused(reply)
    } else {
        Sent::Failed(reply)
    }
}

/// multipart/alternative: a text part and an HTML part with inline SVG charts.
pub fn compose(
    config: &Config,
    from: &str,
    to: &[String],
    f: &figures::Figures,
    title: &str,
    now_us: i64,
) -> Vec<u8> {
    let boundary = format!("=_sponts_report_{}", crate::id::new_transaction_id());
    let all = tables::all(f);
    let mut text = format!(
        "sponts report {title}: {} to {}\r\n{} transactions\r\n\r\n",
        f.since, f.until, f.transactions
    );
    for t in all.iter().filter(|t| t.id != "series") {
        text.push_str(&t.text());
        text.push_str("\r\n");
    }
    let html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>sponts report</title></head><body style=\"font-family:sans-serif;color:#1d2330;max-width:900px\"><h1 style=\"font-size:20px\">sponts report {}</h1><p>{} to {} · {} transactions</p>{}</body></html>",
        crate::web::html::esc(title),
        crate::web::html::esc(&f.since),
        crate::web::html::esc(&f.until),
        f.transactions,
        super::html(f)
    );
    let mut m = String::new();
    m.push_str(&format!(
        "From: sponts <{from}>\r\nTo: {}\r\n",
        to.iter()
            .map(|a| format!("<{a}>"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    m.push_str(&format!(
        "Subject: sponts report {title}: {} message{}, {:.1} % spam\r\n",
        f.transactions,
        if f.transactions == 1 { "" } else { "s" },
        f.percent("spam")
    ));
    m.push_str(&format!(
        "Date: {}\r\nMessage-ID: <report.{}@{}>\r\n",
        crate::clock::rfc5322(now_us),
        crate::id::new_transaction_id(),
        config.smtp.hostname
    ));
    m.push_str(&format!("Auto-Submitted: auto-generated\r\nMIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=\"{boundary}\"\r\n\r\n"));
    for (ctype, body) in [("text/plain", text), ("text/html", html)] {
        m.push_str(&format!("--{boundary}\r\nContent-Type: {ctype}; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"));
        m.push_str(&crate::base64::encode_lines(body.as_bytes()));
    }
    m.push_str(&format!("--{boundary}--\r\n"));
    m.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(mail: &str) -> Config {
        Config::parse(&format!("[report]\nmail = \"{mail}\"\nmail_hour = 6\n")).unwrap()
    }

    #[test]
    fn periods_fall_due_after_the_mail_hour() {
        let sat = crate::clock::parse_date("2026-11-28").unwrap();
        let h = 3_600_000_000;
        assert!(due(&config("daily"), sat + 5 * h).is_none(), "before 06:00");
        let (name, r) = due(&config("daily"), sat + 7 * h).unwrap();
        assert_eq!(name, "daily 2026-11-27");
        assert_eq!((r.since_us, r.until_us), (sat - DAY_US, sat));
        let (name, r) = due(&config("weekly"), sat + 7 * h).unwrap();
        assert_eq!(
            name, "weekly 2026-11-16",
            "the week before Monday 23 November"
        );
        assert_eq!(r.until_us - r.since_us, 7 * DAY_US);
        assert!(due(&config("off"), sat + 7 * h).is_none());
    }
}
