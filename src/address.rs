//! Envelope addresses (RFC 5321 4.1.2), parsed strictly so that nothing can sneak a relay through:
//! no source routes, no quoted local parts, no unqualified addresses, no trailing dots, and — in
//! recipients — no percent hack (`a%b@local`) or bang path (`b!a@local`).

use std::fmt;

/// `local@domain`, as the client wrote it (case kept; domains compare case-insensitively).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Address {
    pub local: String,
    pub domain: String,
}

impl Address {
    pub fn domain_is(&self, domain: &str) -> bool {
        self.domain.eq_ignore_ascii_case(domain)
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `<Postmaster>` without a domain (RFC 5321 4.5.1) is written back as it came: a trailing
        // `@` would be an address no parser takes (found by fuzzing).
        if self.domain.is_empty() {
            write!(f, "{}", self.local)
        } else {
            write!(f, "{}@{}", self.local, self.domain)
        }
    }
}

/// Which side of the envelope a path is on: recipients are parsed more strictly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Sender,
    Recipient,
}

/// RFC 5321 4.5.3.1.1 for recipients (our own addresses). Senders may be longer: list servers'
/// VERP bounce addresses often are, and real MTAs accept them (RFC 5321 asks not to limit).
const MAX_LOCAL: usize = 64;
const MAX_PATH: usize = 256;

/// Parses the inside of `<...>`. `Ok(None)` is the null path `<>` (senders only).
pub fn parse_path(inner: &str, side: Side) -> Result<Option<Address>, &'static str> {
    if inner.is_empty() {
        return if side == Side::Sender {
            Ok(None)
        } else {
            Err("empty recipient")
        };
    }
    if inner.len() > MAX_PATH {
        return Err("address too long");
    }
    if !inner.is_ascii() {
        return Err("non-ASCII address");
    }
    if inner.starts_with('@') {
        return Err("source routes are not accepted");
    }
    if inner.contains('"') || inner.contains('\\') {
        return Err("quoted local parts are not accepted");
    }
    let Some((local, domain)) = inner.rsplit_once('@') else {
        return Err("address must be fully qualified (user@domain)");
    };
    let max_local = if side == Side::Recipient {
        MAX_LOCAL
    } else {
        MAX_PATH
    };
    if local.is_empty() || local.len() > max_local || !is_dot_atom(local) {
        return Err("bad local part");
    }
    if side == Side::Recipient && (local.contains('%') || local.contains('!')) {
        return Err("% and ! are not accepted in recipients");
    }
    if !(is_hostname(domain) || is_address_literal(domain)) {
        return Err("bad domain");
    }
    Ok(Some(Address {
        local: local.to_string(),
        domain: domain.to_string(),
    }))
}

fn is_atext(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&b)
}

fn is_dot_atom(s: &str) -> bool {
    s.split('.')
        .all(|atom| !atom.is_empty() && atom.bytes().all(is_atext))
}

/// A host name of one or more labels (letters, digits, hyphens), no trailing dot.
pub fn is_hostname(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// A fully qualified domain name: a host name with at least two labels.
pub fn is_domain(s: &str) -> bool {
    is_hostname(s) && s.contains('.')
}

/// `[192.0.2.1]` or `[IPv6:2001:db8::1]`.
pub fn is_address_literal(s: &str) -> bool {
    literal_address(s).is_some()
}

/// The address an address literal (`[192.0.2.1]`, `[IPv6:2001:db8::1]`) names.
pub fn literal_address(s: &str) -> Option<std::net::IpAddr> {
    let inner = s.strip_prefix('[')?.strip_suffix(']')?;
    match inner.get(..5) {
        Some(tag) if tag.eq_ignore_ascii_case("IPv6:") => inner[5..]
            .parse::<std::net::Ipv6Addr>()
            .ok()
            .map(Into::into),
        _ => inner.parse::<std::net::Ipv4Addr>().ok().map(Into::into),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rcpt(s: &str) -> Result<Option<Address>, &'static str> {
        parse_path(s, Side::Recipient)
    }

    #[test]
    fn plain_addresses() {
        let a = rcpt("John.Doe+tag@Example.ORG").unwrap().unwrap();
        assert_eq!(a.local, "John.Doe+tag");
        assert!(a.domain_is("example.org"));
        assert_eq!(parse_path("", Side::Sender), Ok(None));
        assert!(
            parse_path("bounce@[192.0.2.1]", Side::Sender)
                .unwrap()
                .is_some()
        );
        assert!(
            parse_path("x@[IPv6:2001:db8::1]", Side::Sender)
                .unwrap()
                .is_some()
        );
    }

    #[test]
    fn relay_tricks_are_refused() {
        for evil in [
            "",
            "@relay.example:user@victim.example",
            "user%victim.example@local.example",
            "victim.example!user@local.example",
            "\"user@victim.example\"@local.example",
            "\"user\"@local.example",
            "user",
            "postmaster",
            "user@local.example.",
            "user@local..example",
            "user@-local.example",
            "user@local.example@victim.example",
            ".user@local.example",
            "us..er@local.example",
            "user@[300.1.1.1]",
            "üser@local.example",
            "user @local.example",
        ] {
            let r = rcpt(evil);
            // An address that parses must at least not end up at another domain than written.
            if let Ok(Some(a)) = &r {
                panic!("{evil:?} parsed as {a}");
            }
        }
    }

    #[test]
    fn senders_may_use_percent_but_not_routes() {
        assert!(
            parse_path("a%b@example.org", Side::Sender)
                .unwrap()
                .is_some()
        );
        assert!(parse_path("@a,@b:c@example.org", Side::Sender).is_err());
    }

    #[test]
    fn length_limits() {
        let long_local = format!("{}@example.org", "a".repeat(65));
        assert!(rcpt(&long_local).is_err());
        let ok_local = format!("{}@example.org", "a".repeat(64));
        assert!(rcpt(&ok_local).unwrap().is_some());
        // A list server's VERP bounce address as sender.
        let verp =
            "linux-secnews-return-67-legit-lists-secfocus=spamassassin.taint.org@securityfocus.com";
        assert!(parse_path(verp, Side::Sender).unwrap().is_some());
        assert!(
            parse_path(&format!("{}@example.org", "a".repeat(250)), Side::Sender).is_err(),
            "the whole path stays bounded"
        );
    }
}
