//! Search filters (RFC 4515 text → RFC 4511 BER): and, or, not, equality, presence, substrings,
//! `>=`, `<=`, `~=`; and the escaping of a value put into one (an address typed at sign-in).

use super::ber::{SEQUENCE, octets, tlv};

/// Escapes `value` for use inside a filter: `*`, `(`, `)`, `\` and NUL become `\XX`.
pub fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '*' | '(' | ')' | '\\' | '\0' => out.push_str(&format!("\\{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// The filter's BER encoding, or what is wrong with its text.
pub fn encode(text: &str) -> Result<Vec<u8>, String> {
    let mut p = Parser {
        s: text.trim().as_bytes(),
        i: 0,
    };
    let out = p.filter(0)?;
    if p.i != p.s.len() {
        return Err(format!(
            "unexpected text after the filter at position {}",
            p.i
        ));
    }
    Ok(out)
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

const MAX_DEPTH: usize = 16;

impl Parser<'_> {
    fn eat(&mut self, c: u8) -> Result<(), String> {
        if self.s.get(self.i) == Some(&c) {
            self.i += 1;
            Ok(())
        } else {
            Err(format!("expected `{}` at position {}", c as char, self.i))
        }
    }

    fn filter(&mut self, depth: usize) -> Result<Vec<u8>, String> {
        if depth > MAX_DEPTH {
            return Err("filter nested too deeply".into());
        }
        self.eat(b'(')?;
        let out = match self.s.get(self.i) {
            Some(b'&') => self.list(0xa0, depth)?,
            Some(b'|') => self.list(0xa1, depth)?,
            Some(b'!') => {
                self.i += 1;
                tlv(0xa2, &self.filter(depth + 1)?)
            }
            _ => self.item()?,
        };
        self.eat(b')')?;
        Ok(out)
    }

    fn list(&mut self, tag: u8, depth: usize) -> Result<Vec<u8>, String> {
        self.i += 1;
        let mut body = Vec::new();
        while self.s.get(self.i) == Some(&b'(') {
            body.extend(self.filter(depth + 1)?);
        }
        if body.is_empty() {
            return Err(format!("empty `&` or `|` at position {}", self.i));
        }
        Ok(tlv(tag, &body))
    }

    fn item(&mut self) -> Result<Vec<u8>, String> {
        let start = self.i;
        while self
            .s
            .get(self.i)
            .is_some_and(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b';' | b':'))
        {
            self.i += 1;
        }
        let attr = &self.s[start..self.i];
        if attr.is_empty() {
            return Err(format!("an attribute name is needed at position {start}"));
        }
        let tag = match (self.s.get(self.i), self.s.get(self.i + 1)) {
            (Some(b'='), _) => 0xa3,
            (Some(b'>'), Some(b'=')) => 0xa5,
            (Some(b'<'), Some(b'=')) => 0xa6,
            (Some(b'~'), Some(b'=')) => 0xa8,
            _ => return Err(format!("expected `=` at position {}", self.i)),
        };
        self.i += if tag == 0xa3 { 1 } else { 2 };
        let raw_start = self.i;
        while self.s.get(self.i).is_some_and(|c| *c != b')' && *c != b'(') {
            self.i += 1;
        }
        let raw = &self.s[raw_start..self.i];
        if let Some(spec) = attr.strip_suffix(b":").filter(|_| tag == 0xa3) {
            return extensible(spec, raw);
        }
        if attr.contains(&b':') {
            return Err(format!("`:` in an attribute name at position {start}"));
        }
        if tag == 0xa3 && raw == b"*" {
            return Ok(tlv(0x87, attr));
        }
        if tag == 0xa3 && raw.contains(&b'*') {
            let parts: Vec<&[u8]> = raw.split(|c| *c == b'*').collect();
            let last = parts.len() - 1;
            let mut subs = Vec::new();
            for (n, part) in parts.iter().enumerate().filter(|(_, p)| !p.is_empty()) {
                let t = if n == 0 {
                    0x80
                } else if n == last {
                    0x82
                } else {
                    0x81
                };
                subs.extend(tlv(t, &unescape(part)?));
            }
            return Ok(tlv(0xa4, &[octets(attr), tlv(SEQUENCE, &subs)].concat()));
        }
        Ok(tlv(tag, &[octets(attr), octets(&unescape(raw)?)].concat()))
    }
}

/// `attr[:dn][:rule]:=value` (RFC 4515 extensible match), e.g. AD's bit test
/// `userAccountControl:1.2.840.113556.1.4.803:=2`.
fn extensible(spec: &[u8], raw: &[u8]) -> Result<Vec<u8>, String> {
    let mut parts = spec.split(|c| *c == b':');
    let attr = parts.next().unwrap_or_default();
    let mut body = Vec::new();
    let mut dn = false;
    for p in parts {
        match p {
            b"dn" => dn = true,
            b"" => return Err("an empty part in an extensible match".into()),
            rule => body.extend(tlv(0x81, rule)),
        }
    }
    if attr.is_empty() && body.is_empty() {
        return Err("an extensible match needs an attribute or a matching rule".into());
    }
    if !attr.is_empty() {
        body.extend(tlv(0x82, attr));
    }
    body.extend(tlv(0x83, &unescape(raw)?));
    if dn {
        body.extend(tlv(0x84, &[0xff]));
    }
    Ok(tlv(0xa9, &body))
}

fn unescape(raw: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'\\' {
            let hex = raw
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            out.push(hex.ok_or("a `\\` must be followed by two hex digits")?);
            i += 3;
        } else {
            out.push(raw[i]);
            i += 1;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_the_active_directory_filter() {
        let f = "(&(objectClass=user)(|(mail={addr})(proxyAddresses=smtp:{addr})))"
            .replace("{addr}", &escape("a*b(c)@x"));
        let b = encode(&f).unwrap();
        assert_eq!(b[0], 0xa0);
        // The escaped value arrives as its literal bytes, never as a substring pattern.
        let needle = octets(b"a*b(c)@x");
        assert!(b.windows(needle.len()).any(|w| w == needle), "{b:02x?}");
        assert!(!b.contains(&0xa4));
        assert_eq!(
            encode("(mail=*)").unwrap(),
            [0x87, 4, b'm', b'a', b'i', b'l']
        );
        assert_eq!(encode("(cn=ab*c)").unwrap()[0], 0xa4);
        let disabled = encode("(!(userAccountControl:1.2.840.113556.1.4.803:=2))").unwrap();
        assert_eq!(&disabled[..3], [0xa2, disabled.len() as u8 - 2, 0xa9]);
        assert!(encode("(a:b=c)").is_err());
    }

    #[test]
    fn bad_filters_are_named() {
        for bad in [
            "",
            "mail=x",
            "(mail=x",
            "(=x)",
            "(&)",
            "(mail=x))",
            "(mail=\\zz)",
            &"(!".repeat(40),
        ] {
            assert!(encode(bad).is_err(), "{bad}");
        }
    }
}
