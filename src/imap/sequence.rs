//! Sequence sets (`1:4,7,9:*`): message numbers or UIDs, with `*` the largest in use.

use super::command::{PResult, Parser};

/// One end of a range: a number, or `*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    Num(u32),
    Star,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SequenceSet(pub Vec<(Bound, Bound)>);

/// Ranges in one set: far more than any client sends.
const MAX_RANGES: usize = 10_000;

impl SequenceSet {
    pub(super) fn parse(p: &mut Parser) -> PResult<SequenceSet> {
        let mut ranges = Vec::new();
        loop {
            let a = bound(p)?;
            let b = if p.peek() == Some(b':') {
                p.pos += 1;
                bound(p)?
            } else {
                a
            };
            ranges.push((a, b));
            if ranges.len() > MAX_RANGES {
                return Err("too many ranges".into());
            }
            if p.peek() == Some(b',') {
                p.pos += 1;
            } else {
                return Ok(SequenceSet(ranges));
            }
        }
    }

    /// Does the set hold `n`, where `*` is `largest`?
    pub fn contains(&self, n: u32, largest: u32) -> bool {
        let value = |b: Bound| match b {
            Bound::Num(v) => v,
            Bound::Star => largest,
        };
        self.0.iter().any(|&(a, b)| {
            let (lo, hi) = (value(a).min(value(b)), value(a).max(value(b)));
            lo <= n && n <= hi
        })
    }
}

fn bound(p: &mut Parser) -> PResult<Bound> {
    if p.peek() == Some(b'*') {
        p.pos += 1;
        return Ok(Bound::Star);
    }
    let n = p.number()?;
    if n == 0 || n > u32::MAX as u64 {
        return Err("a sequence number must be 1 to 4294967295".into());
    }
    Ok(Bound::Num(n as u32))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(s: &str) -> SequenceSet {
        SequenceSet::parse(&mut Parser {
            buf: s.as_bytes(),
            pos: 0,
        })
        .unwrap()
    }

    #[test]
    fn ranges_and_star() {
        let s = set("1:3,7,9:*");
        assert!(s.contains(2, 20) && s.contains(7, 20) && s.contains(20, 20) && !s.contains(5, 20));
        // `*` is the largest in use, even below the other end.
        assert!(set("30:*").contains(20, 20));
        assert!(SequenceSet::parse(&mut Parser { buf: b"0", pos: 0 }).is_err());
    }
}
