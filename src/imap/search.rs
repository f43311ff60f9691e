//! SEARCH keys (RFC 3501 6.4.4): parsed into a tree, then evaluated per message. Text keys are
//! answered by [`super::find`] beforehand (from the journal's index where it holds the field);
//! the rest (numbers, UIDs, dates, sizes, this session's flags) here, from the folder in memory.

use super::command::{PResult, Parser};
use super::sequence::SequenceSet;

/// Nesting deeper than this is refused (no client needs it; it bounds the recursion).
const MAX_DEPTH: usize = 32;
/// Keys in one parenthesised list or one SEARCH.
const MAX_KEYS: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TextField {
    From,
    To,
    Cc,
    Bcc,
    Subject,
    Body,
    Text,
    Header(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateOp {
    Since,
    Before,
    On,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SearchKey {
    All,
    Seq(SequenceSet),
    Uid(SequenceSet),
    Not(Box<SearchKey>),
    Or(Box<SearchKey>, Box<SearchKey>),
    And(Vec<SearchKey>),
    /// \Seen in this session (true: SEEN, false: UNSEEN).
    Seen(bool),
    /// A flag this read-only archive never has (ANSWERED, DELETED, RECENT, KEYWORD x ...):
    /// the key matches no message, its negation (UNANSWERED ...) every message.
    Never(bool),
    Text(TextField, String),
    /// The internal date (the day the message arrived, UTC); SENT* is mapped onto it too.
    Date(DateOp, i64),
    /// LARGER (true) or SMALLER (false) than this many octets.
    Size(bool, u64),
}

/// What a key is tested against.
pub struct Candidate<'a> {
    pub seq: u32,
    pub uid: u32,
    pub time_us: i64,
    pub size: i64,
    pub seen: bool,
    pub id: &'a str,
}

impl SearchKey {
    /// Every text key in the tree (to be answered beforehand).
    pub fn texts<'a>(&'a self, out: &mut Vec<(&'a TextField, &'a str)>) {
        match self {
            SearchKey::Text(f, v) => out.push((f, v)),
            SearchKey::Not(k) => k.texts(out),
            SearchKey::Or(a, b) => {
                a.texts(out);
                b.texts(out);
            }
            SearchKey::And(ks) => ks.iter().for_each(|k| k.texts(out)),
            _ => {}
        }
    }

    /// Does `m` match? `largest` is the highest sequence number and UID (for `*`); `text`
    /// answers a text key.
    pub fn matches(
        &self,
        m: &Candidate,
        largest: (u32, u32),
        text: &dyn Fn(&TextField, &str, &str) -> bool,
    ) -> bool {
        match self {
            SearchKey::All => true,
            SearchKey::Seq(s) => s.contains(m.seq, largest.0),
            SearchKey::Uid(s) => s.contains(m.uid, largest.1),
            SearchKey::Not(k) => !k.matches(m, largest, text),
            SearchKey::Or(a, b) => a.matches(m, largest, text) || b.matches(m, largest, text),
            SearchKey::And(ks) => ks.iter().all(|k| k.matches(m, largest, text)),
            SearchKey::Seen(want) => m.seen == *want,
            SearchKey::Never(negated) => *negated,
            SearchKey::Text(f, v) => text(f, v, m.id),
            SearchKey::Date(op, day_us) => {
                let day = m.time_us.div_euclid(DAY_US) * DAY_US;
                match op {
                    DateOp::Since => day >= *day_us,
                    DateOp::Before => day < *day_us,
                    DateOp::On => day == *day_us,
                }
            }
            SearchKey::Size(larger, n) => {
                let size = m.size.max(0) as u64;
                if *larger { size > *n } else { size < *n }
            }
        }
    }
}

const DAY_US: i64 = 86_400_000_000;

/// One search key, with `depth` parentheses or NOT/OR around it.
pub(super) fn parse_key(p: &mut Parser, depth: usize) -> PResult<SearchKey> {
    if depth > MAX_DEPTH {
        return Err("search keys nested too deep".into());
    }
    if p.peek() == Some(b'(') {
        p.pos += 1;
        let mut keys = Vec::new();
        loop {
            keys.push(parse_key(p, depth + 1)?);
            if keys.len() > MAX_KEYS {
                return Err("too many search keys".into());
            }
            match p.peek() {
                Some(b' ') => p.pos += 1,
                Some(b')') => {
                    p.pos += 1;
                    return Ok(SearchKey::And(keys));
                }
                _ => return Err("`)` expected".into()),
            }
        }
    }
    if p.peek().is_some_and(|b| b.is_ascii_digit() || b == b'*') {
        return Ok(SearchKey::Seq(SequenceSet::parse(p)?));
    }
    let word = p.atom()?.to_ascii_uppercase();
    let text = |p: &mut Parser, f: TextField| -> PResult<SearchKey> {
        p.sp()?;
        Ok(SearchKey::Text(f, p.astring()?))
    };
    let date = |p: &mut Parser, op: DateOp| -> PResult<SearchKey> {
        p.sp()?;
        let s = p.astring()?;
        Ok(SearchKey::Date(
            op,
            parse_date(&s).ok_or_else(|| format!("`{s}` is not a date (1-Jan-2026)"))?,
        ))
    };
    Ok(match word.as_str() {
        "ALL" => SearchKey::All,
        "UID" => {
            p.sp()?;
            SearchKey::Uid(SequenceSet::parse(p)?)
        }
        "NOT" => {
            p.sp()?;
            SearchKey::Not(Box::new(parse_key(p, depth + 1)?))
        }
        "OR" => {
            p.sp()?;
            let a = parse_key(p, depth + 1)?;
            p.sp()?;
            let b = parse_key(p, depth + 1)?;
            SearchKey::Or(Box::new(a), Box::new(b))
        }
        "SEEN" => SearchKey::Seen(true),
        "UNSEEN" => SearchKey::Seen(false),
        "ANSWERED" | "DELETED" | "DRAFT" | "FLAGGED" | "RECENT" | "NEW" => SearchKey::Never(false),
        "UNANSWERED" | "UNDELETED" | "UNDRAFT" | "UNFLAGGED" | "OLD" => SearchKey::Never(true),
        "KEYWORD" | "UNKEYWORD" => {
            p.sp()?;
            p.atom()?;
            SearchKey::Never(word == "UNKEYWORD")
        }
        "FROM" => text(p, TextField::From)?,
        "TO" => text(p, TextField::To)?,
        "CC" => text(p, TextField::Cc)?,
        "BCC" => text(p, TextField::Bcc)?,
        "SUBJECT" => text(p, TextField::Subject)?,
        "BODY" => text(p, TextField::Body)?,
        "TEXT" => text(p, TextField::Text)?,
        "HEADER" => {
            p.sp()?;
            let name = p.astring()?;
            text(p, TextField::Header(name.to_ascii_lowercase()))?
        }
        "SINCE" | "SENTSINCE" => date(p, DateOp::Since)?,
        "BEFORE" | "SENTBEFORE" => date(p, DateOp::Before)?,
        "ON" | "SENTON" => date(p, DateOp::On)?,
        "LARGER" | "SMALLER" => {
            p.sp()?;
            SearchKey::Size(word == "LARGER", p.number()?)
        }
        _ => return Err(format!("{word} is not a search key this server knows")),
    })
}

/// `1-Jan-2026` (or `01-Jan-2026`): microseconds at 00:00 UTC that day.
pub fn parse_date(s: &str) -> Option<i64> {
    const MONTHS: [&str; 12] = [
        "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
    ];
    let mut parts = s.split('-');
    let (day, month, year) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || day.is_empty() || day.len() > 2 || year.len() != 4 {
        return None;
    }
    // The month's text is read into a value first: the lookup below borrows nothing of `parts`.
    let month = month.to_ascii_uppercase();
    let m = MONTHS.iter().position(|&name| name == month)? + 1;
    let d: u32 = day.parse().ok()?;
    let y: i64 = year.parse().ok()?;
    crate::clock::parse_date(&format!("{y:04}-{m:02}-{d:02}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> PResult<SearchKey> {
        parse_key(
            &mut Parser {
                buf: s.as_bytes(),
                pos: 0,
            },
            0,
        )
    }

    #[test]
    fn dates() {
        assert_eq!(
            parse_date("1-Jan-2026"),
            crate::clock::parse_date("2026-01-01")
        );
        assert_eq!(
            parse_date("28-nov-2026"),
            crate::clock::parse_date("2026-11-28")
        );
        assert_eq!(parse_date("1-Foo-2026"), None);
        assert_eq!(parse_date("1-Jan-26"), None);
        assert_eq!(parse_date("1-Jan-2026-1"), None);
    }

    #[test]
    fn keys_evaluate() {
        let jan = parse_date("1-Jan-2026").unwrap();
        let m = Candidate {
            seq: 3,
            uid: 40,
            time_us: jan + 3_600_000_000,
            size: 1000,
            seen: false,
            id: "x",
        };
        let no_text = |_: &TextField, _: &str, _: &str| false;
        let yes = |s: &str| key(s).unwrap().matches(&m, (5, 50), &no_text);
        assert!(yes("ON 1-Jan-2026") && yes("SINCE 1-Jan-2026") && !yes("BEFORE 1-Jan-2026"));
        assert!(yes("(LARGER 999 SMALLER 1001)") && !yes("LARGER 1000"));
        assert!(
            yes("OR UID 1:10 UID 40") && yes("NOT UID 41:*") && yes("3") && yes("UNSEEN UNDELETED")
        );
        assert!(!yes("FROM x") && yes("NOT SUBJECT \"a b\""));
        assert!(key("SINCE 1-Foo-2026").is_err() && key("OR ALL").is_err());
        let deep = "NOT ".repeat(100) + "ALL";
        assert!(key(&deep).is_err());
    }
}
