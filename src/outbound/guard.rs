//! Compromised-account protection: a sender — or an SMTP AUTH account, over every sender it used
//! — whose outbound mail of the last hour passes the limits (`outbound.max_messages_per_hour`,
//! `max_recipients_per_hour`, `max_domains_per_hour`, `max_refused_share`) or spikes far past its
//! own habit (`baseline_factor` times its busiest hour of the last `baseline_days`) has its further
//! mail held in the queue, not sent, and the admins are mailed (once an hour per sender). The
//! counts come from the journal (every node's), so no counter can drift.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::config::outbound::REFUSED_SHARE_SAMPLE;
use crate::storage::{OutboundParty, Role, Store};

const HOUR_US: i64 = 3_600_000_000;

/// Why this message (to `rcpts`) from `sender`, sent by the client signed in as `account` (if
/// any), must be held, if it must: the sender's or the account's outbound mail of the last hour
/// with this message passes a limit or its baseline.
pub async fn burst(
    config: &Config,
    store: &Store,
    sender: &str,
    account: Option<&str>,
    rcpts: &[String],
) -> anyhow::Result<Option<String>> {
    let mut parties = Vec::new();
    if !sender.is_empty() {
        parties.push(OutboundParty::Sender(sender.to_string()));
    }
    if let Some(a) = account.filter(|a| !a.is_empty()) {
        parties.push(OutboundParty::Account(a.to_string()));
    }
    for who in &parties {
        if let Some(reason) = party_burst(config, store, who, rcpts).await? {
            return Ok(Some(format!("burst from {who}: {reason}")));
        }
    }
    Ok(None)
}

async fn party_burst(
    config: &Config,
    store: &Store,
    who: &OutboundParty,
    rcpts: &[String],
) -> anyhow::Result<Option<String>> {
    let o = &config.outbound;
    if o.max_messages_per_hour == 0
        && o.max_recipients_per_hour == 0
        && o.max_domains_per_hour == 0
        && o.max_refused_share == 0.0
        && o.baseline_factor == 0.0
    {
        return Ok(None);
    }
    let now = crate::clock::now_us();
    let hour = store.outbound_last_hour(who, now - HOUR_US).await?;
    // Judged on what the far side has answered so far, before this message's recipients.
    let refused_share = (hour.recipients.len() >= REFUSED_SHARE_SAMPLE)
        .then(|| hour.refused as f64 / hour.recipients.len() as f64);
    let (messages, mut recipients) = (hour.messages + 1, hour.recipients);
    recipients.extend(rcpts.iter().map(|r| r.to_lowercase()));
    let mut domains: Vec<String> = recipients
        .iter()
        .map(|r| crate::storage::outbound::domain_of(r))
        .collect();
    domains.sort();
    domains.dedup();
    let over = |n: usize, max: u32| max > 0 && n > max as usize;
    let reason = if over(messages, o.max_messages_per_hour) {
        format!(
            "{messages} messages in an hour (outbound.max_messages_per_hour = {})",
            o.max_messages_per_hour
        )
    } else if over(recipients.len(), o.max_recipients_per_hour) {
        format!(
            "{} recipients in an hour (outbound.max_recipients_per_hour = {})",
            recipients.len(),
            o.max_recipients_per_hour
        )
    } else if over(domains.len(), o.max_domains_per_hour) {
        format!(
            "{} destination domains in an hour (outbound.max_domains_per_hour = {})",
            domains.len(),
            o.max_domains_per_hour
        )
    } else if let Some(share) =
        refused_share.filter(|s| o.max_refused_share > 0.0 && *s > o.max_refused_share)
    {
        format!(
            "{:.0}% of its last hour's recipients refused by their servers (outbound.max_refused_share = {})",
            share * 100.0,
            o.max_refused_share
        )
    } else if let Some(reason) = past_baseline(config, store, who, recipients.len(), now).await? {
        reason
    } else {
        return Ok(None);
    };
    Ok(Some(reason))
}

/// Whether `recipients` in the last hour are past `who`'s habit: `baseline_factor` times the
/// recipients of its busiest hour in the `baseline_days` before the previous clock hour (at least
/// `baseline_floor`, so a new sender's first hours are judged against the floor).
async fn past_baseline(
    config: &Config,
    store: &Store,
    who: &OutboundParty,
    recipients: usize,
    now: i64,
) -> anyhow::Result<Option<String>> {
    let o = &config.outbound;
    if o.baseline_factor == 0.0 {
        return Ok(None);
    }
    // Cheap first: nothing can be past the baseline below the floor's.
    let floor = o.baseline_floor as f64 * o.baseline_factor;
    if (recipients as f64) <= floor {
        return Ok(None);
    }
    let busiest = busiest_hour(store, who, o.baseline_days, now).await?;
    let limit = busiest.max(o.baseline_floor as u64) as f64 * o.baseline_factor;
    Ok(((recipients as f64) > limit).then(|| {
        format!(
            "{recipients} recipients in an hour, {}x its busiest hour of the last {} days ({busiest}; outbound.baseline_factor = {})",
            (recipients as f64 / busiest.max(1) as f64).round(),
            o.baseline_days,
            o.baseline_factor
        )
    }))
}

/// Busiest hours found this clock hour, per party: the habit changes by the hour at most.
static BUSIEST: Mutex<Option<(i64, HashMap<OutboundParty, u64>)>> = Mutex::new(None);

async fn busiest_hour(
    store: &Store,
    who: &OutboundParty,
    days: u32,
    now: i64,
) -> anyhow::Result<u64> {
    let this_hour = now - now.rem_euclid(HOUR_US);
    {
        let cache = BUSIEST.lock().expect("baseline lock");
        if let Some((hour, map)) = cache.as_ref() {
            if *hour == this_hour {
                if let Some(n) = map.get(who) {
                    return Ok(*n);
                }
            }
        }
    }
    // History ends an hour before this clock hour: the hour being judged (the last 60 minutes)
    // is never part of it, or a burst across the top of the hour would become its own habit.
    let until = this_hour - HOUR_US;
    let n = store
        .outbound_busiest_hour(who, until - days as i64 * 24 * HOUR_US, until)
        .await?;
    let mut cache = BUSIEST.lock().expect("baseline lock");
    let (hour, map) = cache.get_or_insert_with(|| (this_hour, HashMap::new()));
    if *hour != this_hour {
        *hour = this_hour;
        map.clear();
    }
    map.insert(who.clone(), n);
    Ok(n)
}

/// Senders the admins were mailed about lately (this node).
static ALERTED: Mutex<Option<HashMap<String, Instant>>> = Mutex::new(None);

/// Tells the admins (a mail to each, through the queue to the backend) that `sender`'s outbound
/// mail is held — at most once an hour per sender on this node.
pub async fn alert_admins(
    config: &Config,
    store: &Store,
    sender: &str,
    queue_id: &str,
    reason: &str,
) -> anyhow::Result<()> {
    {
        let mut alerted = ALERTED.lock().expect("alert lock");
        let map = alerted.get_or_insert_with(HashMap::new);
        map.retain(|_, at| at.elapsed() < Duration::from_secs(3600));
        if map.contains_key(&sender.to_lowercase()) {
            return Ok(());
        }
        map.insert(sender.to_lowercase(), Instant::now());
    }
    let admins: Vec<String> = store
        .users(None)
        .await?
        .into_iter()
        .filter(|u| u.role == Role::Admin)
        .map(|u| u.address)
        .collect();
    if admins.is_empty() {
        return Ok(());
    }
    let from = format!(
        "postmaster@{}",
        config
            .domains
            .local
            .first()
            .map(String::as_str)
            .unwrap_or(&config.smtp.hostname)
    );
    let id = crate::id::new_transaction_id();
    let message = format!(
        "From: sponts <{from}>\r\nTo: {}\r\nSubject: Outbound mail held: {sender}\r\nDate: {}\r\nMessage-ID: <{id}@{}>\r\nAuto-Submitted: auto-generated\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\
         sponts is holding outbound mail from {sender}: {reason}.\r\n\r\n\
         Nothing of it is sent until an administrator releases it. This may be a compromised account.\r\n\
         First held message: {queue_id}\r\n\r\n\
         Queue page: release a message or lock the sender.\r\n\
         Command line: sponts outbound held | release ID | lock {sender} | unlock {sender}\r\n",
        admins.join(", "),
        crate::clock::rfc5322(crate::clock::now_us()),
        config.smtp.hostname
    );
    let z = crate::modules::backup::compress(message.as_bytes(), config.backup.compression_level)?;
    // Like a DSN: from <>, and due at once (past the runner's grace for journaled mail).
    store
        .enqueue(
            &id,
            crate::clock::now_us() - 10_000_000,
            "",
            message.len() as i64,
            &z,
            &admins,
        )
        .await
}
