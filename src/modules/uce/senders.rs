//! Allow and block lists of senders: what a pattern matches, which entry decides, and the checks
//! the web UI, the API and the CLI share. A pattern is a full address (`a@b.example`) or a
//! domain (`b.example`, which covers its subdomains too: `mail.b.example`). The null sender
//! (bounces) matches nothing. A person's own entries come before their domain's; within one
//! owner layer the most specific pattern decides (an address before a domain, a longer domain
//! before a shorter one), and block before allow on a tie.

use anyhow::{Result, bail};

use crate::address::{Side, is_domain, parse_path};
use crate::storage::{SenderEntry, SenderVerdict};

/// The pattern as stored (lowercase), or why it is none: `@b.example` is taken as `b.example`.
pub fn check_pattern(input: &str) -> Result<String> {
    let p = input.trim().to_ascii_lowercase();
    let p = p.strip_prefix('@').unwrap_or(&p);
    let ok = if p.contains('@') {
        matches!(parse_path(p, Side::Sender), Ok(Some(_)))
    } else {
        is_domain(p)
    };
    if !ok {
        bail!("`{input}` is neither a sender address (a@b.example) nor a domain (b.example)");
    }
    Ok(p.to_string())
}

/// An owner as stored: `user@domain` or `@domain`, the domain one of `local_domains`.
pub fn check_owner(input: &str, local_domains: &[String]) -> Result<String> {
    let o = input.trim().to_ascii_lowercase();
    let domain = match o.strip_prefix('@') {
        Some(d) => d,
        None => match parse_path(&o, Side::Recipient) {
            Ok(Some(a)) => return check_local(&o, &a.domain, local_domains),
            _ => {
                bail!("owner `{input}` is neither an address (user@domain) nor a domain (@domain)")
            }
        },
    };
    check_local(&o, domain, local_domains)
}

fn check_local(owner: &str, domain: &str, local_domains: &[String]) -> Result<String> {
    if !local_domains.iter().any(|l| l.eq_ignore_ascii_case(domain)) {
        bail!("owner `{owner}` is not at one of our domains (domains.local)");
    }
    Ok(owner.to_string())
}

/// Does the entry's `pattern` match the envelope sender `sender` (`local@domain`)?
pub fn matches(pattern: &str, sender: &str) -> bool {
    let sender = sender.to_ascii_lowercase();
    if pattern.contains('@') {
        return pattern == sender;
    }
    let domain = sender.rsplit_once('@').map_or("", |(_, d)| d);
    domain == pattern
        || domain
            .strip_suffix(pattern)
            .is_some_and(|rest| rest.ends_with('.'))
}

/// The entry that decides for mail from `sender` (`None`: the null sender), if one matches.
pub fn decide<'a>(entries: &'a [SenderEntry], sender: Option<&str>) -> Option<&'a SenderEntry> {
    let sender = sender?;
    entries
        .iter()
        .filter(|e| matches(&e.pattern, sender))
        .max_by_key(|e| {
            let personal = !e.owner.starts_with('@');
            let specific = if e.pattern.contains('@') {
                usize::MAX
            } else {
                e.pattern.len()
            };
            (personal, specific, e.verdict == SenderVerdict::Block)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(owner: &str, pattern: &str, verdict: SenderVerdict) -> SenderEntry {
        SenderEntry {
            owner: owner.into(),
            pattern: pattern.into(),
            verdict,
            created_us: 0,
            created_by: "test".into(),
        }
    }

    #[test]
    fn patterns_are_addresses_or_domains_with_their_subdomains() {
        assert!(matches("a@b.example", "A@B.example"));
        assert!(!matches("a@b.example", "x@b.example"));
        assert!(matches("b.example", "x@b.example"));
        assert!(matches("b.example", "x@mail.b.example"));
        assert!(!matches("b.example", "x@notb.example"));
        assert!(!matches("b.example", "x@b.example.org"));
        assert_eq!(check_pattern(" @B.Example ").unwrap(), "b.example");
        assert_eq!(check_pattern("A@b.example").unwrap(), "a@b.example");
        for bad in [
            "",
            "localhost",
            "a@",
            "@",
            "a b@c.example",
            "x@y@z",
            "b..example",
        ] {
            assert!(check_pattern(bad).is_err(), "{bad}");
        }
        let local = ["example.org".to_string()];
        assert_eq!(check_owner("@Example.org", &local).unwrap(), "@example.org");
        assert_eq!(
            check_owner("U@example.org", &local).unwrap(),
            "u@example.org"
        );
        assert!(check_owner("u@elsewhere.example", &local).is_err());
        assert!(check_owner("@elsewhere.example", &local).is_err());
        assert!(check_owner("example.org", &local).is_err());
    }

    #[test]
    fn the_person_before_the_domain_the_specific_before_the_broad() {
        use SenderVerdict::*;
        let list = [
            entry("@example.org", "partner.example", Block),
            entry("u@example.org", "partner.example", Allow),
            entry("u@example.org", "bad@partner.example", Block),
            entry("u@example.org", "x.partner.example", Allow),
        ];
        let verdict = |s: &str| decide(&list, Some(s)).map(|e| (e.owner.as_str(), e.verdict));
        assert_eq!(
            verdict("good@partner.example"),
            Some(("u@example.org", Allow))
        );
        assert_eq!(
            verdict("bad@partner.example"),
            Some(("u@example.org", Block))
        );
        assert_eq!(
            verdict("bad@x.partner.example"),
            Some(("u@example.org", Allow))
        );
        assert_eq!(verdict("a@other.example"), None);
        assert_eq!(decide(&list, None), None, "bounces match nothing");
        let domain_only = [entry("@example.org", "partner.example", Block)];
        assert_eq!(
            decide(&domain_only, Some("a@partner.example")).map(|e| e.verdict),
            Some(Block)
        );
        let tie = [
            entry("u@example.org", "p.example", Allow),
            entry("alias@example.org", "p.example", Block),
        ];
        assert_eq!(
            decide(&tie, Some("a@p.example")).map(|e| e.verdict),
            Some(Block)
        );
    }
}
