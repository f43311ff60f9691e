//! How values are written in IMAP responses (RFC 3501 4): strings quoted when they can be, as
//! literals when they cannot (line ends, 8-bit, long), NIL for none; dates and lists.

/// Appends `s` as a quoted string or, when quoting cannot carry it, a literal.
pub fn string(out: &mut Vec<u8>, s: &[u8]) {
    // TEXT-CHAR: 7-bit, no NUL, CR or LF (RFC 3501 9).
    let quotable = s.len() <= 1000
        && s.iter()
            .all(|&b| (0x01..0x80).contains(&b) && b != b'\r' && b != b'\n');
    if quotable {
        out.push(b'"');
        for &b in s {
            if b == b'"' || b == b'\\' {
                out.push(b'\\');
            }
            out.push(b);
        }
        out.push(b'"');
    } else {
        literal(out, s);
    }
}

/// `{n}` CRLF and the octets.
pub fn literal(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(format!("{{{}}}\r\n", s.len()).as_bytes());
    out.extend_from_slice(s);
}

pub fn nstring(out: &mut Vec<u8>, s: Option<&[u8]>) {
    match s {
        Some(s) => string(out, s),
        None => out.extend_from_slice(b"NIL"),
    }
}

/// `dd-Mon-yyyy hh:mm:ss +0000` (INTERNALDATE; the day space-padded).
pub fn internal_date(us: i64) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (y, m, d) = crate::clock::date(us);
    let secs = us.div_euclid(1_000_000).rem_euclid(86_400);
    format!(
        "\"{d:>2}-{}-{y:04} {:02}:{:02}:{:02} +0000\"",
        MONTHS[(m - 1) as usize],
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// A mailbox name as an astring (always quoted: names hold `/`).
pub fn mailbox(name: &str) -> String {
    let mut out = Vec::new();
    string(&mut out, name.as_bytes());
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_and_dates() {
        let w = |s: &[u8]| {
            let mut o = Vec::new();
            string(&mut o, s);
            o
        };
        assert_eq!(w(b"a \"b\" \\c"), b"\"a \\\"b\\\" \\\\c\"");
        assert_eq!(w(b"x\r\ny"), b"{4}\r\nx\r\ny");
        assert_eq!(w("é".as_bytes()), b"{2}\r\n\xc3\xa9");
        assert_eq!(
            internal_date(crate::clock::parse_date("2026-01-02").unwrap() + 3_723_000_000),
            "\" 2-Jan-2026 01:02:03 +0000\""
        );
    }
}
