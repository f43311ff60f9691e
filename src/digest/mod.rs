//! The digest: a mail to each user, only when something was refused (or discarded) for them since
//! their last one, listing each message with a signed link that replays it without logging in.
//! Sent through the backend like any mail; the job runs every `digest.every`.

pub mod link;

use anyhow::Result;

use crate::config::Config;
use crate::smtp::client::BackendTarget;
use crate::storage::{JournalEntry, JournalFilter, Store};

/// Messages listed in one digest, at most.
const MAX_LISTED: i64 = 200;

/// What was held back for `addresses` since `since_us`: refused or discarded originals still kept.
/// Malware is not listed: its links would deliver it without an administrator.
async fn held_back(
    store: &Store,
    addresses: &[String],
    since_us: i64,
) -> Result<Vec<JournalEntry>> {
    let mut out = Vec::new();
    for outcome in ["refused", "discarded"] {
        let f = JournalFilter {
            visible_to: Some(addresses.to_vec()),
            since_us: Some(since_us),
            outcome: Some(outcome.into()),
            limit: Some(MAX_LISTED),
            ..Default::default()
        };
        for e in store.query_journal(&f).await? {
            let for_them = e.recipients.iter().any(|r| {
                r.accepted && addresses.iter().any(|a| a.eq_ignore_ascii_case(&r.address))
            });
            if e.replay_of.is_none()
                && !e.is_malware()
                && for_them
                && store.body(&e.id).await?.is_some()
            {
                out.push(e);
            }
        }
    }
    out.sort_by_key(|e| e.time_us);
    Ok(out)
}

fn base_url(config: &Config) -> String {
    if !config.digest.base_url.is_empty() {
        return config.digest.base_url.trim_end_matches('/').to_string();
    }
    let scheme = if config.web.tls { "https" } else { "http" };
    format!("{scheme}://{}", config.web.listen)
}

fn sender(config: &Config) -> String {
    if !config.digest.from.is_empty() {
        return config.digest.from.clone();
    }
    default_sender(config)
}

/// The sender of sponts' own mail when none is configured: postmaster@ the first local domain.
pub fn default_sender(config: &Config) -> String {
    format!(
        "postmaster@{}",
        config
            .domains
            .local
            .first()
            .map(String::as_str)
            .unwrap_or("localhost")
    )
}

/// The digest mail for one user (CRLF text, 8-bit UTF-8). `links`: per message its replay link,
/// and for what the filter held back its "Not spam" link.
pub fn compose(
    config: &Config,
    to: &str,
    entries: &[JournalEntry],
    links: &[(String, Option<String>)],
    now_us: i64,
) -> Vec<u8> {
    let base = base_url(config);
    let n = entries.len();
    let mut m = String::new();
    m.push_str(&format!(
        "From: sponts <{}>\r\nTo: <{to}>\r\n",
        sender(config)
    ));
    m.push_str(&format!(
        "Subject: {n} message{} held back for you\r\n",
        if n == 1 { "" } else { "s" }
    ));
    m.push_str(&format!(
        "Date: {}\r\nMessage-ID: <digest.{}@{}>\r\n",
        crate::clock::rfc5322(now_us),
        crate::id::new_transaction_id(),
        config.smtp.hostname
    ));
    m.push_str("Auto-Submitted: auto-generated\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n");
    m.push_str(&format!("These messages addressed to you were refused as spam (or held back) by the mail gateway.\r\nIf one of them is mail you want, open its link: it is delivered to your mailbox at once.\r\nEach link works once, for {} days.\r\n\r\n", config.digest.link_days));
    for (e, (token, not_spam)) in entries.iter().zip(links) {
        let subject: String = e
            .subject
            .as_deref()
            .unwrap_or("(no subject)")
            .chars()
            .filter(|c| !c.is_control())
            .take(120)
            .collect();
        let from = if e.sender.is_empty() {
            "<>"
        } else {
            e.sender.as_str()
        };
        m.push_str(&format!(
            "{}  from {from}\r\n  {subject}\r\n  {base}/r/{token}\r\n",
            crate::clock::rfc3339(e.time_us)
        ));
        if let Some(ns) = not_spam {
            m.push_str(&format!(
                "  Not spam (deliver it, and the filter learns): {base}/r/{ns}\r\n"
            ));
        }
        m.push_str("\r\n");
    }
    m.push_str(&format!("All your mail: {base}/\r\n"));
    m.into_bytes()
}

/// One round: every user with something new gets a digest. Returns how many were sent.
pub async fn run_once(config: &Config, store: &Store) -> Result<usize> {
    let key = link::key(store).await?;
    let target = BackendTarget::from_config(config);
    let now = crate::clock::now_us();
    let period = config.digest.every.0.as_micros() as i64;
    let mut sent = 0;
    for user in store
        .users(None)
        .await?
        .into_iter()
        .filter(|u| u.role != crate::storage::Role::Interception)
    {
        let mut addresses = vec![user.address.clone()];
        addresses.extend(user.aliases.iter().cloned());
        let since = store
            .last_digest(&user.address)
            .await?
            .unwrap_or(now - period);
        let entries = held_back(store, &addresses, since).await?;
        if entries.is_empty() {
            store.set_last_digest(&user.address, now).await?;
            continue;
        }
        let expires = now + config.digest.link_days as i64 * 86_400_000_000;
        let links: Vec<(String, Option<String>)> = entries
            .iter()
            .map(|e| {
                let rcpt = e
                    .recipients
                    .iter()
                    .find(|r| {
                        r.accepted && addresses.iter().any(|a| a.eq_ignore_ascii_case(&r.address))
                    })
                    .map(|r| r.address.to_lowercase())
                    .unwrap_or(user.address.clone());
                let l = link::Link {
                    id: e.id.clone(),
                    rcpt,
                    expires_us: expires,
                };
                let not_spam = crate::feedback::held_back(e)
                    .then(|| link::sign_for(&key, &l, link::Action::NotSpam));
                (link::sign(&key, &l), not_spam)
            })
            .collect();
        let mail = compose(config, &user.address, &entries, &links, now);
        let (_, reply, ok) = crate::replay::deliver(
            &target,
            &sender(config),
            std::slice::from_ref(&user.address),
            b"",
            &mail,
        )
        .await;
        if ok {
            store.set_last_digest(&user.address, now).await?;
            sent += 1;
            tracing::info!(user = %user.address, messages = entries.len(), "digest sent: {reply}");
        } else {
            tracing::warn!(user = %user.address, "digest not delivered (next round tries again): {reply}");
        }
    }
    Ok(sent)
}

/// Runs a digest round every `digest.every`.
pub async fn job(config: Config, store: Store) {
    let mut tick = tokio::time::interval(config.digest.every.0);
    tick.tick().await; // the first round one period after start
    loop {
        tick.tick().await;
        if let Err(e) = run_once(&config, &store).await {
            tracing::warn!("digest round failed: {e:#}");
        }
    }
}
