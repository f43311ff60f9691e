//! The purge: kept mail goes when its retention ends — `[archive]` rules per class, domain and
//! user, `backup.retention_days` otherwise — then the oldest while `backup.max_bytes` is
//! exceeded; never mail under a legal hold. Each removal is written with a signed record (id,
//! digest, reason) in the same transaction, so verification tells a lawful purge from a loss.

use anyhow::Result;
use std::collections::{BTreeMap, HashSet};

use super::seal::{DAY_US, Signer, day_of, purge_statement};
use crate::config::Config;
use crate::config::archive::{ArchiveConfig, RetentionRule};
use crate::storage::{PurgeCandidate, PurgeRecord, Purged, Store};

const PAGE: i64 = 500;

/// The retention class of a kept message: `virus`, `spam`, `sent`, `clean` or `other`.
pub fn class_of(
    direction: Option<&str>,
    outcome: Option<&str>,
    flag: Option<&str>,
) -> &'static str {
    match (direction, outcome, flag) {
        (_, _, Some("virus" | "blocked")) => "virus",
        (_, _, Some("spam")) => "spam",
        (Some("out"), _, _) => "sent",
        (_, Some("delivered" | "queued"), _) => "clean",
        _ => "other",
    }
}

fn domain(address: &str) -> &str {
    address.rsplit_once('@').map_or("", |(_, d)| d)
}

/// How specific a rule is for one person (None: it does not match).
fn specificity(rule: &RetentionRule, person: Option<&str>, class: &str) -> Option<u8> {
    let mut score = 0;
    if let Some(c) = &rule.class {
        if c != class {
            return None;
        }
        score += 1;
    }
    if let Some(d) = &rule.domain {
        if !person.is_some_and(|p| domain(p).eq_ignore_ascii_case(d)) {
            return None;
        }
        score += 2;
    }
    if let Some(u) = &rule.user {
        if !person.is_some_and(|p| p.eq_ignore_ascii_case(u)) {
            return None;
        }
        score += 4;
    }
    Some(score)
}

/// Days to keep a message of `class` concerning `parties` (the organisation's own people: the
/// addresses in local domains), and the rule that says so.
pub fn retention_days(
    config: &ArchiveConfig,
    default_days: u64,
    class: &str,
    parties: &[String],
) -> (u64, String) {
    let people: Vec<Option<&str>> = if parties.is_empty() {
        vec![None]
    } else {
        parties.iter().map(|p| Some(p.as_str())).collect()
    };
    let mut best: Option<(u64, String)> = None;
    for person in people {
        // Ties between equally specific rules: the longer one (keeping is the safe side).
        let rule = config
            .retention
            .iter()
            .enumerate()
            .filter_map(|(i, r)| specificity(r, person, class).map(|s| (s, r.days, i)))
            .max_by_key(|(s, days, _)| (*s, *days));
        let (days, why) = match rule {
            Some((_, days, i)) => (days, format!("archive.retention[{i}]")),
            None => (default_days, "backup.retention_days".to_string()),
        };
        if best.as_ref().is_none_or(|(d, _)| days > *d) {
            best = Some((days, why));
        }
    }
    best.expect("at least one person")
}

/// What the holds in force protect.
#[derive(Debug, Default)]
pub struct Held {
    addresses: HashSet<String>,
    searches: Vec<String>,
}

impl Held {
    pub async fn load(store: &Store) -> Result<Held> {
        let mut held = Held::default();
        for h in store.holds(false).await? {
            match h.kind.as_str() {
                "search" => held.searches.push(h.target.to_lowercase()),
                _ => {
                    held.addresses
                        .extend(h.addresses.split_whitespace().map(str::to_lowercase));
                    held.addresses.insert(h.target.to_lowercase());
                    if h.kind == "user" {
                        // Aliases added since the hold was set count too.
                        if let Some(u) = store.user(&h.target).await? {
                            held.addresses
                                .extend(u.aliases.iter().map(|a| a.to_lowercase()));
                        }
                    }
                }
            }
        }
        Ok(held)
    }

    pub fn covers(&self, c: &PurgeCandidate) -> bool {
        c.parties
            .iter()
            .any(|p| self.addresses.contains(&p.to_lowercase()))
            || c.search_text
                .as_deref()
                .is_some_and(|t| self.searches.iter().any(|s| t.contains(s.as_str())))
    }
}

/// One purge pass at `now_us`: retention first, then size.
pub async fn purge(store: &Store, config: &Config, now_us: i64) -> Result<Purged> {
    let (backup, archive) = (&config.backup, &config.archive);
    let held = Held::load(store).await?;
    let signer = Signer::load(store).await?;
    let mut purged = Purged::default();
    let shortest = archive
        .retention
        .iter()
        .map(|r| r.days)
        .chain([backup.retention_days])
        .min()
        .unwrap_or(backup.retention_days);
    let before = now_us - shortest as i64 * DAY_US;
    let mut after = None;
    loop {
        let page = store.purge_candidates(before, after.as_ref(), PAGE).await?;
        let Some(last) = page.last() else { break };
        after = Some((last.time_us, last.id.clone()));
        let mut remove = Vec::new();
        for c in &page {
            let class = class_of(
                c.direction.as_deref(),
                c.outcome.as_deref(),
                c.flag.as_deref(),
            );
            // The organisation's people decide, not a stranger's address on the message.
            let own: Vec<String> = c
                .parties
                .iter()
                .filter(|p| config.is_local_domain(domain(p)))
                .cloned()
                .collect();
            let (days, rule) = retention_days(archive, backup.retention_days, class, &own);
            if c.time_us < now_us - days as i64 * DAY_US && !held.covers(c) {
                remove.push((c, format!("retention:{rule}:{class}:{days}d")));
            }
        }
        remove_with_records(store, &signer, &remove, &mut purged).await?;
    }
    if let Some(max) = backup.max_bytes.map(|b| b.0 as i64) {
        let mut total = store.kept_stored_bytes().await?;
        let mut after = None;
        while total > max {
            let page = store
                .purge_candidates(i64::MAX, after.as_ref(), PAGE)
                .await?;
            let Some(last) = page.last() else { break };
            after = Some((last.time_us, last.id.clone()));
            let mut remove = Vec::new();
            for c in page.iter().filter(|c| !held.covers(c)) {
                if total <= max {
                    break;
                }
                total -= c.stored_size;
                remove.push((c, "max_bytes".to_string()));
            }
            remove_with_records(store, &signer, &remove, &mut purged).await?;
        }
    }
    if purged.messages > 0 {
        tracing::info!(
            messages = purged.messages,
            bytes = purged.bytes,
            "archive purge removed what retention and size allow"
        );
    }
    Ok(purged)
}

async fn remove_with_records(
    store: &Store,
    signer: &Signer,
    remove: &[(&PurgeCandidate, String)],
    purged: &mut Purged,
) -> Result<()> {
    if remove.is_empty() {
        return Ok(());
    }
    let pass_us = crate::clock::now_us();
    let key_id = signer.public_key().id();
    let mut per_day: BTreeMap<String, String> = BTreeMap::new();
    for (c, why) in remove {
        let entries = per_day.entry(day_of(c.time_us)).or_default();
        entries.push_str(&format!("{} {} {why}\n", c.id, c.digest));
    }
    let records: Vec<PurgeRecord> = per_day
        .into_iter()
        .map(|(day, entries)| PurgeRecord {
            pass_us,
            signature: signer.sign(&purge_statement(pass_us, &day, &entries)),
            day,
            entries,
            key_id: key_id.clone(),
        })
        .collect();
    let ids: Vec<String> = remove.iter().map(|(c, _)| c.id.clone()).collect();
    store.purge_with_records(&ids, &records).await?;
    purged.messages += remove.len() as u64;
    purged.bytes += remove.iter().map(|(c, _)| c.stored_size).sum::<i64>();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(
        class: Option<&str>,
        domain: Option<&str>,
        user: Option<&str>,
        days: u64,
    ) -> RetentionRule {
        RetentionRule {
            class: class.map(Into::into),
            domain: domain.map(Into::into),
            user: user.map(Into::into),
            days,
        }
    }

    #[test]
    fn the_most_specific_rule_per_person_and_the_longest_per_message() {
        let config = ArchiveConfig {
            retention: vec![
                rule(Some("spam"), None, None, 30),
                rule(Some("clean"), None, None, 3650),
                rule(None, Some("law.example"), None, 4000),
                rule(None, None, Some("ceo@corp.example"), 5000),
            ],
            ..Default::default()
        };
        let p = |a: &str| vec![a.to_string()];
        assert_eq!(
            retention_days(&config, 180, "spam", &p("bob@corp.example")).0,
            30
        );
        assert_eq!(
            retention_days(&config, 180, "clean", &p("bob@corp.example")).0,
            3650
        );
        assert_eq!(
            retention_days(&config, 180, "other", &p("bob@corp.example")),
            (180, "backup.retention_days".into())
        );
        assert_eq!(
            retention_days(&config, 180, "spam", &p("x@law.example")).0,
            4000,
            "a domain rule beats a class rule"
        );
        assert_eq!(
            retention_days(&config, 180, "spam", &p("ceo@corp.example")).0,
            5000
        );
        assert_eq!(
            retention_days(
                &config,
                180,
                "spam",
                &["bob@corp.example".into(), "CEO@corp.example".into()]
            )
            .0,
            5000,
            "the longest of its people"
        );
        assert_eq!(retention_days(&config, 180, "spam", &[]).0, 30);
    }

    #[test]
    fn classes() {
        assert_eq!(class_of(Some("in"), Some("delivered"), None), "clean");
        assert_eq!(class_of(Some("in"), Some("refused"), Some("spam")), "spam");
        assert_eq!(class_of(Some("out"), Some("queued"), None), "sent");
        assert_eq!(
            class_of(Some("out"), Some("refused"), Some("virus")),
            "virus"
        );
        assert_eq!(class_of(None, None, None), "other");
    }
}
