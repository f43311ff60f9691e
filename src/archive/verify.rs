//! `sponts archive verify`: recomputes every kept message's digest from its stored body, every
//! seal's Merkle root from its leaves, checks the signatures and the chain, and accounts for
//! each sealed message that is gone by a signed purge record. The first broken link is named.

use anyhow::Result;
use std::collections::{HashMap, HashSet};
use std::fmt;

use super::roots::RootLine;
use super::seal::{self, PublicKey, Signer, day_of, merkle_root, purge_statement, seal_statement};
use crate::storage::{Seal, Store};

/// What is wrong, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Broken {
    ChangedBody {
        id: String,
        day: String,
    },
    MissingMessage {
        id: String,
        day: String,
    },
    InsertedMessage {
        id: String,
        day: String,
    },
    /// A seal's signature does not verify (the seal was altered, or signed by another key).
    BadSignature {
        seq: i64,
        day: String,
    },
    /// The seal's root is not the root of its leaves, and its signature fails: the root was altered.
    RootAltered {
        seq: i64,
        day: String,
    },
    /// The signed root is right but the stored leaves were altered.
    LeavesAltered {
        seq: i64,
        day: String,
    },
    /// A link of the chain is missing (a gap in the sequence or in time, or an unsealed finished day).
    MissingRoot {
        day: String,
        detail: String,
    },
    BadPurgeRecord {
        day: String,
        pass_us: i64,
    },
    /// The seal differs from the one an auditor kept (`--roots`).
    DiffersFromKeptRoot {
        seq: i64,
        day: String,
    },
    NoKey,
}

impl fmt::Display for Broken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Broken::ChangedBody { id, day } => write!(
                f,
                "changed body: message {id} (day {day}) is not what was kept"
            ),
            Broken::MissingMessage { id, day } => write!(
                f,
                "missing message: {id} (day {day}) was sealed and is gone without a purge record"
            ),
            Broken::InsertedMessage { id, day } => write!(
                f,
                "inserted message: {id} (day {day}) is in no seal of its day"
            ),
            Broken::BadSignature { seq, day } => write!(
                f,
                "bad signature: the seal of day {day} (#{seq}) does not verify"
            ),
            Broken::RootAltered { seq, day } => write!(
                f,
                "altered root: the root of day {day} (#{seq}) is not the one signed"
            ),
            Broken::LeavesAltered { seq, day } => write!(
                f,
                "altered seal: the sealed list of day {day} (#{seq}) does not give its signed root"
            ),
            Broken::MissingRoot { day, detail } => write!(f, "missing root: day {day}: {detail}"),
            Broken::BadPurgeRecord { day, pass_us } => write!(
                f,
                "bad signature: the purge record of day {day} made {} does not verify",
                crate::clock::rfc3339(*pass_us)
            ),
            Broken::DiffersFromKeptRoot { seq, day } => write!(
                f,
                "differs from the kept roots: the seal of day {day} (#{seq}) is not the one exported"
            ),
            Broken::NoKey => write!(f, "missing key: there are seals but no archive signing key"),
        }
    }
}

/// What a verification saw.
#[derive(Debug, Clone, Default)]
pub struct Verified {
    pub seals: u64,
    pub messages: u64,
    /// Sealed messages removed by a signed purge.
    pub purged: u64,
    /// Kept messages no seal covers yet (the current day).
    pub unsealed: u64,
    pub broken: Option<Broken>,
}

const PAGE: i64 = 256;
/// A finished day the seal job has not sealed this long after its end is a missing link.
const UNSEALED_TOLERANCE_US: i64 = 3_600_000_000;

/// Verifies the chain (from the seals of `since_day` on, or all), against the roots an auditor
/// kept when given.
pub async fn verify(
    store: &Store,
    since_day: Option<&str>,
    kept_roots: Option<&[RootLine]>,
) -> Result<Verified> {
    let mut v = Verified::default();
    v.broken = run(store, since_day, kept_roots, &mut v).await?;
    Ok(v)
}

async fn run(
    store: &Store,
    since_day: Option<&str>,
    kept_roots: Option<&[RootLine]>,
    v: &mut Verified,
) -> Result<Option<Broken>> {
    let seals = store.seals(since_day).await?;
    let key = Signer::existing_public_key(store).await?;
    if !seals.is_empty() && key.is_none() {
        return Ok(Some(Broken::NoKey));
    }
    if let Some(lines) = kept_roots {
        if let (Some(k), Some(first)) = (&key, lines.first()) {
            if PublicKey::parse_hex(&first.public_key).as_ref() != Some(k) {
                return Ok(Some(Broken::DiffersFromKeptRoot {
                    seq: first.seq,
                    day: first.day.clone(),
                }));
            }
        }
    }
    // Lawful removals: (id, digest) of every validly signed purge record.
    let mut lawful: HashSet<(String, String)> = HashSet::new();
    for r in store.purge_records().await? {
        if !key.as_ref().is_some_and(|k| {
            k.id() == r.key_id
                && k.verifies(
                    &purge_statement(r.pass_us, &r.day, &r.entries),
                    &r.signature,
                )
        }) {
            return Ok(Some(Broken::BadPurgeRecord {
                day: r.day,
                pass_us: r.pass_us,
            }));
        }
        for line in r.entries.lines() {
            let mut f = line.split(' ');
            if let (Some(id), Some(d)) = (f.next(), f.next()) {
                lawful.insert((id.to_string(), d.to_string()));
            }
        }
    }
    let kept: HashMap<i64, &RootLine> = kept_roots
        .unwrap_or(&[])
        .iter()
        .map(|r| (r.seq, r))
        .collect();
    let mut prev: Option<&Seal> = None;
    for (i, s) in seals.iter().enumerate() {
        // With --since the first seal listed is the one before, only a link to check against.
        let only_link =
            since_day.is_some() && i == 0 && since_day.is_some_and(|d| s.day.as_str() < d);
        match prev {
            Some(p) if s.seq != p.seq + 1 => {
                return Ok(Some(Broken::MissingRoot {
                    day: day_of(p.until_us),
                    detail: format!("seal #{} is missing", p.seq + 1),
                }));
            }
            Some(p) if s.from_us != p.until_us => {
                return Ok(Some(Broken::MissingRoot {
                    day: day_of(p.until_us),
                    detail: "a period between two seals is sealed by none".into(),
                }));
            }
            Some(p) if s.prev_root != p.root => {
                return Ok(Some(Broken::BadSignature {
                    seq: s.seq,
                    day: s.day.clone(),
                }));
            }
            None if since_day.is_none() && s.seq != 1 => {
                return Ok(Some(Broken::MissingRoot {
                    day: s.day.clone(),
                    detail: format!("the seals before #{} are missing", s.seq),
                }));
            }
            _ => {}
        }
        prev = Some(s);
        let k = key.as_ref().expect("checked above");
        let leaves = store.seal_leaves(s.seq).await?;
        let signed = k.id() == s.key_id && k.verifies(&seal_statement(s), &s.signature);
        let leaves_root = merkle_root(&leaves);
        match (
            signed,
            leaves_root == s.root && leaves.len() as i64 == s.count,
        ) {
            (false, true) => {
                return Ok(Some(Broken::BadSignature {
                    seq: s.seq,
                    day: s.day.clone(),
                }));
            }
            (false, false) => {
                return Ok(Some(Broken::RootAltered {
                    seq: s.seq,
                    day: s.day.clone(),
                }));
            }
            (true, false) => {
                return Ok(Some(Broken::LeavesAltered {
                    seq: s.seq,
                    day: s.day.clone(),
                }));
            }
            (true, true) => {}
        }
        if let Some(r) = kept.get(&s.seq) {
            if r.root != s.root || r.signature != s.signature || r.day != s.day {
                return Ok(Some(Broken::DiffersFromKeptRoot {
                    seq: s.seq,
                    day: s.day.clone(),
                }));
            }
        }
        v.seals += 1;
        if only_link {
            continue;
        }
        let sealed: HashMap<&str, &str> = leaves
            .iter()
            .map(|(i, d)| (i.as_str(), d.as_str()))
            .collect();
        let mut seen: HashSet<String> = HashSet::new();
        if let Some(b) =
            check_messages(store, s.from_us, s.until_us, Some(&sealed), &mut seen, v).await?
        {
            return Ok(Some(b));
        }
        for (id, d) in &leaves {
            if seen.contains(id) {
                continue;
            }
            if lawful.contains(&(id.clone(), d.clone())) {
                v.purged += 1;
            } else {
                return Ok(Some(Broken::MissingMessage {
                    id: id.clone(),
                    day: s.day.clone(),
                }));
            }
        }
    }
    // Before the first seal (when the whole chain is checked) nothing may be kept.
    if since_day.is_none() {
        if let Some(first) = seals.first() {
            let mut seen = HashSet::new();
            if let Some(b) = check_messages(
                store,
                i64::MIN,
                first.from_us,
                Some(&HashMap::new()),
                &mut seen,
                v,
            )
            .await?
            {
                return Ok(Some(b));
            }
        }
    }
    // After the last: not sealed yet, but each body still matches the digest recorded when it was kept.
    let tail = seals.last().map_or(i64::MIN, |s| s.until_us);
    let before = v.messages;
    let mut seen = HashSet::new();
    if let Some(b) = check_messages(store, tail, i64::MAX, None, &mut seen, v).await? {
        return Ok(Some(b));
    }
    v.unsealed = v.messages - before;
    v.messages = before;
    if let Some(oldest) = store.kept_page(tail, i64::MAX, None, 1).await?.first() {
        let day_end = oldest.time_us - oldest.time_us.rem_euclid(seal::DAY_US) + seal::DAY_US;
        if day_end + UNSEALED_TOLERANCE_US < crate::clock::now_us() {
            return Ok(Some(Broken::MissingRoot { day: day_of(oldest.time_us), detail: "the day ended but is not sealed (is `sponts serve` running? `sponts archive seal` seals now)".into() }));
        }
    }
    Ok(None)
}

/// Checks the kept messages of `[from, until)`: each body against its recorded digest and,
/// for a sealed period, against its leaf.
async fn check_messages(
    store: &Store,
    from: i64,
    until: i64,
    sealed: Option<&HashMap<&str, &str>>,
    seen: &mut HashSet<String>,
    v: &mut Verified,
) -> Result<Option<Broken>> {
    let mut after: Option<(i64, String)> = None;
    loop {
        let page = store.kept_page(from, until, after.as_ref(), PAGE).await?;
        let Some(last) = page.last() else {
            return Ok(None);
        };
        after = Some((last.time_us, last.id.clone()));
        for row in &page {
            let day = day_of(row.time_us);
            let body = crate::storage::StoredBody {
                id: row.id.clone(),
                time_us: row.time_us,
                size: row.size,
                compressed: row.compressed.clone(),
                digest: String::new(),
            };
            let actual = crate::modules::backup::decompress(&body)
                .map(|m| seal::digest(&m))
                .unwrap_or_default();
            if let Some(sealed) = sealed {
                match sealed.get(row.id.as_str()) {
                    None => {
                        return Ok(Some(Broken::InsertedMessage {
                            id: row.id.clone(),
                            day,
                        }));
                    }
                    Some(d) if *d != actual => {
                        return Ok(Some(Broken::ChangedBody {
                            id: row.id.clone(),
                            day,
                        }));
                    }
                    Some(_) => {}
                }
            }
            if !row.digest.is_empty() && row.digest != actual {
                return Ok(Some(Broken::ChangedBody {
                    id: row.id.clone(),
                    day,
                }));
            }
            seen.insert(row.id.clone());
            v.messages += 1;
        }
    }
}
