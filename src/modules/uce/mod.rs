//! The `uce` module: spam protection that makes the organisation's addresses worthless to
//! spammers.
//!
//! - At connect: the penalty box and the DNS lists mark a client for the tarpit.
//! - At RCPT: a trap is accepted and the transaction kept but never delivered (and the client
//!   goes into the penalty box); a client in the penalty box or sure by DNS gets the policy's
//!   answer, "user unknown" by default; a disposable address goes to its owner or, used up,
//!   is unknown; greylisting asks strangers to come back. A sender on the recipient's (or its
//!   domain's) block list makes the recipient unknown; an allow list is remembered for DATA.
//! - At the end of DATA: points from the DNS lists, a forged EHLO name, URI lists,
//!   SPF/DKIM/DMARC, the learning filter and the engines (rspamd, spamd) give a level — clean,
//!   tag or spam — and the domain's policy decides — unless every recipient allows the sender,
//!   then nothing is scored (the `virus` module still scans). Every decision is noted in the
//!   journal with its scores.

pub mod auth;
pub mod callback;
pub mod disposable;
pub mod dns;
pub mod engines;
pub mod greylist;
pub mod helo;
pub mod learn;
pub mod score;
pub mod senders;
pub mod snippet;
pub mod traps;

use async_trait::async_trait;
use mail_auth::MessageAuthenticator;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::{Config, SpamPolicy, UceConfig};
use crate::pipeline::{Module, Outcome, SessionInfo, TransactionRecord, TxInfo, Verdict};
use crate::smtp::address::Address;
use crate::smtp::reply::{Reply, replies};
use crate::storage::{SenderVerdict, Store};
use disposable::DisposableAddress;
use score::{Level, Score};

/// How long what is known about a client IP (DNS lists, callback) is reused.
const IP_CACHE_TIME: Duration = Duration::from_secs(600);
const IP_CACHE_MAX: usize = 100_000;
/// How often the penalty box and the traps are re-read from SQL (other nodes add to them).
const REFRESH: Duration = Duration::from_secs(10);

pub struct Uce {
    /// The purge job runs while this lives.
    _jobs: Arc<()>,
    config: UceConfig,
    hostname: String,
    local_domains: Vec<String>,
    /// Our own clients (`smtp.relay_networks`): their outgoing mail is not judged.
    relay_networks: Vec<crate::net::Cidr>,
    store: Store,
    /// Present when DNS lists or SPF/DKIM/DMARC are configured.
    dns: Option<Arc<MessageAuthenticator>>,
    ips: Mutex<HashMap<IpAddr, (Instant, Arc<Score>)>>,
    shared: Mutex<Shared>,
    txs: Mutex<HashMap<String, TxState>>,
}

/// Messages the learning filter has learned (spam, ham), as last read: below
/// `learning.min_messages` a message is not even tokenized.
#[derive(Default)]
struct Learned {
    read: Option<Instant>,
    spam: i64,
    ham: i64,
}

/// What other nodes may change: re-read every [`REFRESH`].
#[derive(Default)]
struct Shared {
    read: Option<Instant>,
    penalties: HashMap<IpAddr, String>,
    traps: Vec<String>,
    learned: Learned,
}

/// One transaction's UCE state, from MAIL to its end.
#[derive(Default)]
struct TxState {
    trap: Option<String>,
    disposables: Vec<(DisposableAddress, String, i64)>,
    /// Accepted recipients (as delivered: a disposable address's owner) whose list allows the
    /// sender, with the owner of that list.
    allowed: HashMap<String, String>,
}

impl Uce {
    pub fn new(config: &Config, store: Store) -> anyhow::Result<Uce> {
        let uce = &config.uce;
        let needs_dns = !uce.dnsbl.is_empty()
            || !uce.dnswl.is_empty()
            || !uce.uribl.is_empty()
            || uce.auth.enabled;
        let dns = if needs_dns {
            Some(Arc::new(dns::authenticator(uce)?))
        } else {
            None
        };
        let jobs = Arc::new(());
        let (job_store, job_config) = (store.clone(), uce.clone());
        super::periodic(Duration::from_secs(3600), &jobs, move || {
            purge(job_store.clone(), job_config.clone())
        });
        Ok(Uce {
            _jobs: jobs,
            config: uce.clone(),
            hostname: config.smtp.hostname.clone(),
            local_domains: config.domains.local.clone(),
            relay_networks: config.smtp.relay_networks.clone(),
            store,
            dns,
            ips: Mutex::default(),
            shared: Mutex::default(),
            txs: Mutex::default(),
        })
    }

    /// Mail from our own clients (relay networks, SMTP AUTH, submission listeners), or to someone
    /// else's domain, is not for the inbound spam checks; outbound mail gets its own (`message`).
    fn judges(&self, s: &SessionInfo, domain: Option<&str>) -> bool {
        let ours = s.own_client
            || s.submission
            || self.relay_networks.iter().any(|n| n.contains(s.peer.ip()));
        !ours && domain.is_none_or(|d| self.local_domains.iter().any(|l| l.eq_ignore_ascii_case(d)))
    }

    /// Penalty box and traps as all nodes see them, re-read when stale.
    async fn refresh(&self) {
        let stale = self
            .shared
            .lock()
            .expect("uce lock")
            .read
            .is_none_or(|t| t.elapsed() >= REFRESH);
        if !stale {
            return;
        }
        let (penalties, traps, learned) = (
            self.store.penalties().await,
            self.store.traps().await,
            self.store.learned_totals().await,
        );
        let mut shared = self.shared.lock().expect("uce lock");
        shared.read = Some(Instant::now());
        if let Ok((spam, ham)) = learned {
            shared.learned = Learned {
                read: Some(Instant::now()),
                spam,
                ham,
            };
        }
        match penalties {
            Ok(p) => {
                shared.penalties = p
                    .into_iter()
                    .filter_map(|p| Some((p.ip.parse().ok()?, p.reason)))
                    .collect()
            }
            Err(e) => tracing::warn!("uce: cannot read the penalty box: {e:#}"),
        }
        match traps {
            Ok(t) => shared.traps = t,
            Err(e) => tracing::warn!("uce: cannot read the traps: {e:#}"),
        }
    }

    fn penalty(&self, ip: IpAddr) -> Option<String> {
        self.shared
            .lock()
            .expect("uce lock")
            .penalties
            .get(&ip.to_canonical())
            .cloned()
    }

    fn is_trap(&self, address: &str) -> bool {
        self.config.traps.iter().any(|t| traps::matches(t, address))
            || self
                .shared
                .lock()
                .expect("uce lock")
                .traps
                .iter()
                .any(|t| traps::matches(t, address))
    }

    async fn penalize(&self, ip: IpAddr, reason: &str) {
        let ip = ip.to_canonical();
        let until = crate::clock::now_us() + self.config.penalty_hours as i64 * 3_600_000_000;
        self.shared
            .lock()
            .expect("uce lock")
            .penalties
            .insert(ip, reason.to_string());
        if let Err(e) = self.store.penalize(&ip.to_string(), until, reason).await {
            tracing::warn!("uce: cannot record {ip} in the penalty box: {e:#}");
        }
        tracing::info!(%ip, reason, hours = self.config.penalty_hours, "uce: client put into the penalty box");
    }

    /// What the DNS lists and the callback say about a client, cached per IP.
    async fn ip_score(&self, s: &SessionInfo) -> Arc<Score> {
        let ip = s.peer.ip();
        if let Some((at, s)) = self.ips.lock().expect("uce lock").get(&ip) {
            if at.elapsed() < IP_CACHE_TIME {
                return s.clone();
            }
        }
        let mut score = Score::default();
        let timeout = self.config.dns_timeout.0;
        if let Some(dns) = &self.dns {
            let (black, white) = tokio::join!(
                dns::ip_hits(dns, ip, &self.config.dnsbl, timeout),
                dns::ip_hits(dns, ip, &self.config.dnswl, timeout)
            );
            for h in black {
                score.add(h.weight, format!("dnsbl {}", h.zone));
            }
            for h in white {
                score.add(-h.weight.abs(), format!("dnswl {}", h.zone));
            }
        }
        // Never ask ourselves: a client on our own address would be probed by a session of
        // ours, which probes again ...
        if self.config.callback.enabled && ip.to_canonical() != s.local.ip().to_canonical() {
            self.callback(ip, &mut score).await;
        }
        let score = Arc::new(score);
        let mut ips = self.ips.lock().expect("uce lock");
        if ips.len() >= IP_CACHE_MAX {
            ips.clear();
        }
        ips.insert(ip, (Instant::now(), score.clone()));
        score
    }

    async fn callback(&self, ip: IpAddr, score: &mut Score) {
        let key = ip.to_canonical().to_string();
        let ok = match self.store.callback_cached(&key).await {
            Ok(Some(ok)) => ok,
            _ => {
                let c = &self.config.callback;
                let ok = callback::answers_smtp(ip, c.port, c.timeout.0).await;
                let until = crate::clock::now_us() + c.cache_hours as i64 * 3_600_000_000;
                if let Err(e) = self.store.cache_callback(&key, ok, until).await {
                    tracing::debug!("uce: callback cache: {e:#}");
                }
                ok
            }
        };
        if !ok {
            score.add(self.config.callback.weight, "callback none".into());
        }
    }

    /// The recipient's allow and block lists (read per recipient: one indexed query, and a change
    /// made in the web UI counts from the next message on every node). A block refuses the
    /// recipient as unknown; an allow is remembered for the end of DATA. If the lists cannot be
    /// read, they say nothing.
    async fn sender_lists(
        &self,
        s: &SessionInfo,
        tx: &TxInfo,
        address: &str,
        person: &str,
    ) -> Option<Verdict> {
        let sender = tx.sender.as_ref()?.to_string();
        let entries = match self.store.sender_entries_for(person).await {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!("uce: cannot read the sender lists of {person}: {e:#}");
                return None;
            }
        };
        let entry = senders::decide(&entries, Some(&sender))?;
        match entry.verdict {
            SenderVerdict::Block => {
                s.marks.note(format!(
                    "uce: sender blocked by {}'s list ({})",
                    entry.owner, entry.pattern
                ));
                Some(Verdict::Reject(replies::user_unknown(address)))
            }
            SenderVerdict::Allow => {
                let list = format!("{}'s list ({})", entry.owner, entry.pattern);
                self.tx_state(&tx.id, |t| t.allowed.insert(person.to_string(), list));
                None
            }
        }
    }

    /// The lists that allow the sender, when every accepted recipient's does.
    fn allowed_by_all(&self, tx: &TxInfo) -> Option<String> {
        let txs = self.txs.lock().expect("uce lock");
        let allowed = &txs.get(&tx.id)?.allowed;
        let mut lists: Vec<&str> = Vec::new();
        for r in &tx.recipients {
            let list = allowed.get(&r.to_string().to_lowercase())?;
            if !lists.contains(&list.as_str()) {
                lists.push(list);
            }
        }
        (!lists.is_empty()).then(|| lists.join(", "))
    }

    /// Whose layer of the learning filter counts for this message: the one account every
    /// recipient belongs to (an alias counts as its account). Mail to several people is judged
    /// by the shared filter alone — one verdict answers the whole transaction, and one person's
    /// clicks must not decide for another.
    async fn layer_owner(&self, tx: &TxInfo) -> Option<String> {
        let mut owner: Option<String> = None;
        for r in &tx.recipients {
            let account = match self.store.account_of(&r.to_string()).await {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!("uce: cannot resolve {r} to an account: {e:#}");
                    return None;
                }
            };
            match &owner {
                Some(o) if *o != account => return None,
                _ => owner = Some(account),
            }
        }
        owner
    }

    fn tx_state<T>(&self, id: &str, f: impl FnOnce(&mut TxState) -> T) -> T {
        f(self
            .txs
            .lock()
            .expect("uce lock")
            .entry(id.to_string())
            .or_default())
    }

    /// The recipient as the client wrote it: a disposable address is never given away as its
    /// owner's.
    fn client_address(&self, tx: &TxInfo) -> String {
        let first = tx
            .recipients
            .first()
            .map(|a| a.to_string())
            .unwrap_or_default();
        let txs = self.txs.lock().expect("uce lock");
        txs.get(&tx.id)
            .and_then(|t| {
                t.disposables
                    .iter()
                    .find(|(d, _, _)| d.owner == first.to_lowercase())
                    .map(|(_, given, _)| given.clone())
            })
            .unwrap_or(first)
    }

    /// Points for the message itself: URI lists, SPF/DKIM/DMARC, the learning filter, engines.
    /// Outbound mail (our own client's): only what judges content — the learning filter,
    /// rspamd, spamd — never DNS lists, SPF/DKIM/DMARC or the penalty box of our own server.
    async fn message_score(
        &self,
        s: &SessionInfo,
        tx: &TxInfo,
        message: &[u8],
    ) -> (Score, Option<String>) {
        let outbound = tx.outbound;
        let mut score = if outbound {
            Score::default()
        } else {
            (*self.ip_score(s).await).clone()
        };
        if let Some(reason) = self.penalty(s.peer.ip()).filter(|_| !outbound) {
            score.sure = Some(format!("penalty box: {reason}"));
        }
        let helo = s.helo.as_deref().filter(|_| !outbound);
        if let Some(why) = helo
            .filter(|_| self.config.helo_invalid != 0.0)
            .and_then(helo::invalid)
        {
            score.add(self.config.helo_invalid, format!("helo invalid ({why})"));
        }
        if let Some(forged) = helo
            .filter(|_| self.config.helo_forged != 0.0)
            .and_then(|h| helo::forged(h, s.peer.ip(), &self.hostname, &self.local_domains))
        {
            // A host of ours that greets as the domain it serves, from its own address.
            let vindicated = match (&forged.name, &self.dns) {
                (Some(name), Some(dns)) => helo::resolves_to(dns, name, s.peer.ip()).await,
                _ => false,
            };
            if !vindicated {
                let why = forged.reason;
                score.add(self.config.helo_forged, format!("helo forged ({why})"));
            }
        }
        let timeout = self.config.dns_timeout.0;
        let uri = async {
            match &self.dns {
                Some(dns) if !outbound => {
                    dns::uri_hits(dns, message, &self.config.uribl, timeout).await
                }
                _ => Vec::new(),
            }
        };
        let auth = async {
            let mut part = Score::default();
            let header = match (&self.dns, self.config.auth.enabled && !outbound) {
                (Some(dns), true) => {
                    auth::verify(
                        dns,
                        &self.config.auth,
                        &self.hostname,
                        s,
                        tx,
                        message,
                        &mut part,
                    )
                    .await
                }
                _ => None,
            };
            (part, header)
        };
        let trained = {
            let l = &self.shared.lock().expect("uce lock").learned;
            let min = self.config.learning.min_messages as i64;
            l.read.is_none() || (l.spam >= min && l.ham >= min)
        };
        let bayes = async {
            if !self.config.learning.enabled || !trained {
                return Ok((None, None));
            }
            let owner = if outbound {
                None
            } else {
                self.layer_owner(tx).await
            };
            learn::classify_for(
                &self.store,
                message,
                self.config.learning.min_messages,
                owner.as_deref(),
            )
            .await
            .map(|c| (c, owner))
        };
        let rspamd = async {
            match &self.config.rspamd {
                Some(c) => Some((
                    c,
                    timed("rspamd", c, engines::rspamd(c, s, tx, message)).await,
                )),
                None => None,
            }
        };
        let spamd = async {
            match &self.config.spamd {
                Some(c) => Some((c, timed("spamd", c, engines::spamd(c, message)).await)),
                None => None,
            }
        };
        let (uri, (auth_part, header), bayes, rspamd, spamd) =
            tokio::join!(uri, auth, bayes, rspamd, spamd);
        for h in uri {
            score.add(h.weight, format!("uribl {} {}", h.zone, h.name));
        }
        score.points += auth_part.points;
        score.reasons.extend(auth_part.reasons);
        match bayes {
            Ok((Some(c), owner)) => {
                let points = learn::points(&self.config.learning, c.probability);
                let layer = match owner {
                    Some(o) if c.personal => format!(" with {o}'s layer"),
                    _ => String::new(),
                };
                score.add(points, format!("bayes {:.3}{layer}", c.probability));
            }
            Ok((None, _)) => {}
            Err(e) => score.reasons.push(format!("bayes unavailable: {e:#}")),
        }
        for (name, result) in [("rspamd", rspamd), ("spamd", spamd)] {
            let Some((c, result)) = result else { continue };
            match result {
                Ok(r) => {
                    let rules = r
                        .symbols
                        .iter()
                        .take(12)
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(" ");
                    score
                        .reasons
                        .push(format!("{name} {:.1} ({rules})", r.score));
                    if r.score >= c.reject {
                        score.sure = Some(format!("{name} score {:.1}", r.score));
                    } else if r.score >= c.tag {
                        score.suspect = true;
                    }
                }
                Err(e) => {
                    // Fail-open: the message goes on, the journal says the engine was skipped.
                    tracing::warn!(id = %tx.id, "uce: {name} skipped: {e:#}");
                    score.reasons.push(format!("{name} skipped: {e:#}"));
                }
            }
        }
        (score, header)
    }
}

#[async_trait]
impl Module for Uce {
    fn name(&self) -> &'static str {
        "uce"
    }

    async fn connect(&self, s: &SessionInfo) -> Verdict {
        self.refresh().await;
        if !self.judges(s, None) {
            return Verdict::Continue;
        }
        let ip = s.peer.ip();
        if let Some(reason) = self.penalty(ip) {
            s.marks.tarpit();
            s.marks
                .note(format!("uce: client in the penalty box ({reason})"));
        } else if self.ip_score(s).await.points >= self.config.tag_score {
            s.marks.tarpit();
        }
        Verdict::Continue
    }

    async fn rcpt(&self, s: &SessionInfo, tx: &TxInfo, rcpt: &Address) -> Verdict {
        if !self.judges(s, Some(&rcpt.domain)) {
            return Verdict::Continue;
        }
        let address = rcpt.to_string();
        let ip = s.peer.ip();
        if self.is_trap(&address) {
            self.tx_state(&tx.id, |t| t.trap = Some(address.clone()));
            s.marks.flag("spam");
            s.marks.note(format!("uce: trap {address} hit"));
            // A bounce (null sender) to a trap comes from whoever an impostor wrote to in the
            // trap's name — a big provider's shared server, often: kept, but nobody is boxed.
            if tx.sender.is_some() {
                self.penalize(ip, &format!("trap {address}")).await;
                s.marks.tarpit();
            }
            return Verdict::Discard;
        }
        let policy = self.config.policy_for(&rcpt.domain);
        let sure = match self.penalty(ip) {
            Some(reason) => Some(format!("penalty box: {reason}")),
            None if s.talked_early => {
                // A bot (postscreen's pregreet test): boxed, so its next connection is known too.
                self.penalize(ip, "talked before the greeting").await;
                Some("talked before the greeting".to_string())
            }
            None => {
                let ip_score = self.ip_score(s).await;
                (ip_score.points >= self.config.reject_score)
                    .then(|| format!("client {}", ip_score.describe()))
            }
        };
        if let Some(why) = sure {
            if let Some(refusal) = score::refusal(policy, &address) {
                s.marks.flag("spam");
                s.marks.note(format!(
                    "uce: {address} refused ({why}, policy {})",
                    policy.as_str()
                ));
                return refusal;
            }
        }
        let person = match self
            .config
            .disposable
            .then(|| disposable::parse(&self.config, &rcpt.local, &rcpt.domain))
            .flatten()
        {
            Some(d) => d.owner,
            None => address.to_lowercase(),
        };
        if let Some(refusal) = self.sender_lists(s, tx, &address, &person).await {
            return refusal;
        }
        if self.config.disposable {
            if let Some(d) = disposable::parse(&self.config, &rcpt.local, &rcpt.domain) {
                let known = self.store.disposables(Some(&d.owner), Some(&d.tag)).await;
                let state = match known {
                    Ok(rows) => rows.into_iter().next(),
                    Err(e) => {
                        tracing::error!("uce: disposable address lookup failed: {e:#}");
                        return Verdict::TempFail(replies::local_error());
                    }
                };
                let (max, used, locked) = state
                    .as_ref()
                    .map(|r| (r.max_count, r.used, r.locked))
                    .unwrap_or((d.max as i64, 0, false));
                if locked || used >= max {
                    s.marks.note(format!(
                        "uce: disposable {address} used up ({used} of {max})"
                    ));
                    return Verdict::Reject(replies::user_unknown(&address));
                }
                let owner = crate::smtp::address::parse_path(
                    &d.owner,
                    crate::smtp::address::Side::Recipient,
                )
                .ok()
                .flatten();
                if let Some(owner) = owner {
                    self.tx_state(&tx.id, |t| {
                        // The same address twice in one transaction is one delivery.
                        if !t
                            .disposables
                            .iter()
                            .any(|(k, _, _)| k.owner == d.owner && k.tag == d.tag)
                        {
                            t.disposables.push((d, address.clone(), max));
                        }
                    });
                    return Verdict::Rewrite(owner);
                }
            }
        }
        if self.config.greylist.enabled {
            let g = &self.config.greylist;
            let net = greylist::network(g, ip);
            let sender = tx
                .sender
                .as_ref()
                .map(|a| a.to_string())
                .unwrap_or_default();
            let now = crate::clock::now_us();
            let pass = self
                .store
                .greylist(
                    &greylist::triplet(&net, &sender, &address),
                    &net,
                    g.delay.0.as_micros() as i64,
                    g.retry_window.0.as_micros() as i64,
                    now + g.allow_days as i64 * 86_400_000_000,
                )
                .await;
            match pass {
                Ok(true) => {}
                Ok(false) => {
                    s.marks.note(format!("uce: greylisted {net} {address}"));
                    return Verdict::TempFail(Reply::new(
                        450,
                        "4.7.1",
                        format!(
                            "<{address}>: Recipient address rejected: Greylisted, please try again later"
                        ),
                    ));
                }
                Err(e) => tracing::warn!("uce: greylisting unavailable, letting through: {e:#}"),
            }
        }
        Verdict::Continue
    }

    async fn message(&self, s: &SessionInfo, tx: &TxInfo, message: &[u8]) -> Verdict {
        if tx.outbound {
            return self.judge_outbound(s, tx, message).await;
        }
        if !self.judges(s, None) {
            return Verdict::Continue;
        }
        // Verdicts on this message are sponts' to give: the client's own are removed.
        for name in ["X-Spam-*", "X-Sponts-Disposable"] {
            s.marks.strip(name, None);
        }
        s.marks
            .strip("Authentication-Results", Some(&self.hostname));
        let disposables = self
            .txs
            .lock()
            .expect("uce lock")
            .get(&tx.id)
            .map(|t| t.disposables.clone())
            .unwrap_or_default();
        for (d, given, max) in &disposables {
            // Only on a message for the owner alone: co-recipients do not learn of the address.
            if tx.recipients.len() == 1
                && tx.recipients[0].to_string().eq_ignore_ascii_case(&d.owner)
            {
                let used = self
                    .store
                    .disposables(Some(&d.owner), Some(&d.tag))
                    .await
                    .ok()
                    .and_then(|r| r.first().map(|r| r.used))
                    .unwrap_or(0);
                s.marks.header(format!(
                    "X-Sponts-Disposable: {given} ({} of {max})",
                    used + 1
                ));
            }
        }
        if let Some(owners) = self.allowed_by_all(tx) {
            s.marks.note(format!("uce: allowed by {owners} -> deliver"));
            return Verdict::Continue;
        }
        let (score, auth_header) = self.message_score(s, tx, message).await;
        if let Some(h) = auth_header {
            s.marks.header(h);
        }
        let level = score.level(&self.config);
        let first_domain = tx
            .recipients
            .first()
            .map(|a| a.domain.clone())
            .unwrap_or_default();
        let policy = self.config.policy_for(&first_domain);
        let action = match (level, policy) {
            (Level::Clean, _) => "deliver",
            (Level::Tag, _) | (Level::Spam, SpamPolicy::Tag) => "tag",
            (Level::Spam, SpamPolicy::Quarantine) => "quarantine",
            (Level::Spam, _) => policy.as_str(),
        };
        s.marks
            .note(format!("uce: {} -> {action}", score.describe()));
        match level {
            Level::Clean => return Verdict::Continue,
            Level::Tag => s.marks.flag("suspect"),
            Level::Spam => s.marks.flag("spam"),
        }
        if level == Level::Spam && score.points >= 2.0 * self.config.reject_score {
            self.penalize(s.peer.ip(), &format!("message score {:.1}", score.points))
                .await;
        }
        if level == Level::Spam {
            if policy == SpamPolicy::Quarantine {
                return Verdict::Discard;
            }
            if let Some(refusal) = score::refusal(policy, &self.client_address(tx)) {
                return refusal;
            }
        }
        for h in score.headers(level) {
            s.marks.header(h);
        }
        Verdict::Continue
    }

    async fn finish(&self, record: &TransactionRecord) -> anyhow::Result<()> {
        let state = self
            .txs
            .lock()
            .expect("uce lock")
            .remove(&record.id)
            .unwrap_or_default();
        if matches!(record.outcome, Outcome::Delivered | Outcome::Queued) {
            for (d, given, max) in &state.disposables {
                if record.recipients.iter().any(|r| {
                    r.accepted
                        && r.delivered_to
                            .as_deref()
                            .is_some_and(|t| t.eq_ignore_ascii_case(&d.owner))
                }) {
                    self.store.disposable(&d.owner, &d.tag, given, *max).await?;
                    self.store.disposable_used(&d.owner, &d.tag).await?;
                }
            }
        }
        if let (Some(_), Some(message)) = (&state.trap, &record.message) {
            // Not from bounces: anyone could make a trap receive one (see `rcpt`).
            if self.config.learning.enabled
                && self.config.learning.auto_learn
                && !record.sender.is_empty()
            {
                learn::learn_from(&self.store, &record.id, message, true, learn::Source::Trap)
                    .await?;
            }
        }
        Ok(())
    }
}

impl Uce {
    /// Outbound mail: the content checks only. Spam is flagged, not refused: the session holds
    /// it in the queue (a compromised account), where an admin releases or drops it.
    async fn judge_outbound(&self, s: &SessionInfo, tx: &TxInfo, message: &[u8]) -> Verdict {
        let (score, _) = self.message_score(s, tx, message).await;
        let level = score.level(&self.config);
        s.marks
            .note(format!("uce (outbound): {}", score.describe()));
        match level {
            Level::Clean => {}
            Level::Tag => s.marks.flag("suspect"),
            Level::Spam => s.marks.flag("spam"),
        }
        Verdict::Continue
    }
}

/// Runs an engine call and counts it in [`crate::scanners`]: found (its reject threshold), clean,
/// error or timeout.
async fn timed(
    name: &str,
    c: &crate::config::EngineConfig,
    call: impl std::future::Future<Output = anyhow::Result<engines::EngineScore>>,
) -> anyhow::Result<engines::EngineScore> {
    let started = Instant::now();
    let result = call.await;
    let outcome = match &result {
        Ok(r) if r.score >= c.reject => "found",
        Ok(_) => "clean",
        Err(e) if e.to_string().contains("timed out") => "timeout",
        Err(_) => "error",
    };
    crate::scanners::record(name, outcome, started.elapsed());
    result
}

/// Expired penalty, callback and greylisting state is deleted hourly (each node; deleting twice
/// is harmless).
/// Expired penalties, greylist entries and callback answers go.
async fn purge(store: Store, config: UceConfig) {
    let stale_greylist = crate::clock::now_us() - config.greylist.retry_window.0.as_micros() as i64;
    if let Err(e) = store.purge_uce(stale_greylist).await {
        tracing::warn!("uce: purging expired state failed: {e:#}");
    }
}

/// A replayed message that had been classified as spam is learned as ham: a person wanted it.
pub async fn learn_replayed(config: &Config, store: &Store, id: &str, message: &[u8]) {
    let runs = config
        .modules
        .as_ref()
        .map_or(super::DEFAULT.contains(&"uce"), |m| {
            m.iter().any(|n| n == "uce")
        });
    if !runs || !config.uce.learning.enabled || !config.uce.learning.auto_learn {
        return;
    }
    match learn::learn_from(store, id, message, false, learn::Source::Replay).await {
        Ok(_) => tracing::info!(id, "uce: replayed spam learned as ham"),
        Err(e) => tracing::warn!(id, "uce: learning the replayed message failed: {e:#}"),
    }
}
