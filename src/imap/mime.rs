//! A message's MIME structure as byte ranges over the stored message: what BODYSTRUCTURE
//! describes and what `BODY[1.2.TEXT]` cuts out. Tolerant (malformed mail still gets a
//! structure: at worst one text part) and bounded (nesting and part counts are capped).

use std::ops::Range;

/// Multiparts and attached messages nested deeper than this are taken as opaque parts.
const MAX_DEPTH: usize = 16;
/// Parts per message, all levels together.
const MAX_PARTS: usize = 1000;

/// (type, subtype), lower case.
pub type MediaType = (String, String);
/// Parameters: (name in lower case, value).
pub type Params = Vec<(String, String)>;

#[derive(Debug, Clone)]
pub struct Part {
    /// The header with the blank line that ends it (empty for a part without one).
    pub header: Range<usize>,
    pub body: Range<usize>,
    /// Lower case (`text`, `plain`).
    pub kind: (String, String),
    pub params: Vec<(String, String)>,
    pub children: Children,
}

#[derive(Debug, Clone)]
pub enum Children {
    None,
    Multipart(Vec<Part>),
    /// message/rfc822: the attached message, itself a part.
    Message(Box<Part>),
}

impl Part {
    /// The header fields of this part, unfolded: (name, value without the leading space).
    pub fn fields<'a>(&self, raw: &'a [u8]) -> Vec<(&'a str, String)> {
        header_fields(&raw[self.header.clone()])
    }

    /// Part `n` (1-based) of this part, as section numbers count: a multipart's children, an
    /// attached message's parts, and for any other part, part 1 is itself.
    pub fn child(&self, n: u32) -> Option<&Part> {
        match &self.children {
            Children::Multipart(ps) => ps.get(n as usize - 1),
            Children::Message(m) => m.child(n),
            Children::None => (n == 1).then_some(self),
        }
    }
}

/// Parses `raw` (a whole message).
pub fn parse(raw: &[u8]) -> Part {
    let mut budget = MAX_PARTS;
    part(raw, 0..raw.len(), false, 0, &mut budget)
}

fn part(raw: &[u8], range: Range<usize>, digest: bool, depth: usize, budget: &mut usize) -> Part {
    *budget = budget.saturating_sub(1);
    let bytes = &raw[range.clone()];
    let split = header_end(bytes);
    let header = range.start..range.start + split;
    let body = range.start + split..range.end;
    let fields = header_fields(&raw[header.clone()]);
    let content_type = fields
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-type"))
        .map(|(_, v)| v.as_str());
    let (mut kind, mut params) = match content_type.and_then(parse_content_type) {
        Some(ct) => ct,
        None if digest => (("message".into(), "rfc822".into()), Vec::new()),
        None => (
            ("text".into(), "plain".into()),
            vec![("charset".into(), "us-ascii".into())],
        ),
    };
    if kind.0 == "text" && !params.iter().any(|(k, _)| k == "charset") {
        params.insert(0, ("charset".into(), "us-ascii".into()));
    }
    let nested = depth < MAX_DEPTH && *budget > 0;
    let children = if kind.0 == "multipart" && nested {
        match params
            .iter()
            .find(|(k, _)| k == "boundary")
            .map(|(_, v)| v.clone())
        {
            Some(b) if !b.is_empty() => {
                let digest = kind.1 == "digest";
                let ranges = split_multipart(raw, body.clone(), b.as_bytes());
                Children::Multipart(
                    ranges
                        .into_iter()
                        .map(|r| part(raw, r, digest, depth + 1, budget))
                        .collect(),
                )
            }
            _ => {
                // A multipart without a boundary cannot be split: an opaque text part.
                kind = ("text".into(), "plain".into());
                params = vec![("charset".into(), "us-ascii".into())];
                Children::None
            }
        }
    } else if kind == ("message".to_string(), "rfc822".to_string()) && nested {
        Children::Message(Box::new(part(raw, body.clone(), false, depth + 1, budget)))
    } else {
        Children::None
    };
    Part {
        header,
        body,
        kind,
        params,
        children,
    }
}

/// Where the header ends: after the first empty line (CRLF CRLF or LF LF); the whole part when
/// there is none.
fn header_end(b: &[u8]) -> usize {
    if b.starts_with(b"\r\n") {
        return 2;
    }
    if b.starts_with(b"\n") {
        return 1;
    }
    let mut i = 0;
    while let Some(p) = memchr::memchr(b'\n', &b[i..]) {
        let next = i + p + 1;
        if b[next..].starts_with(b"\r\n") {
            return next + 2;
        }
        if b[next..].starts_with(b"\n") {
            return next + 1;
        }
        i = next;
    }
    b.len()
}

/// The header's fields, continuation lines joined.
pub fn header_fields(h: &[u8]) -> Vec<(&str, String)> {
    let mut out: Vec<(&str, String)> = Vec::new();
    for line in h.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        if line[0] == b' ' || line[0] == b'\t' {
            if let Some(last) = out.last_mut() {
                last.1.push_str(&String::from_utf8_lossy(line));
            }
            continue;
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let Ok(name) = std::str::from_utf8(&line[..colon]) else {
            continue;
        };
        let value = String::from_utf8_lossy(&line[colon + 1..]);
        out.push((name.trim_end(), value.trim_start().to_string()));
    }
    out
}

/// `type/subtype; name=value; name="quoted value"`: lower-case type and names.
pub fn parse_content_type(v: &str) -> Option<(MediaType, Params)> {
    let mut pieces = split_params(v).into_iter();
    let first = pieces.next()?;
    let (t, s) = first.split_once('/')?;
    let (t, s) = (t.trim().to_ascii_lowercase(), s.trim().to_ascii_lowercase());
    let token = |x: &str| {
        !x.is_empty()
            && x.bytes()
                .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?=".contains(&b))
    };
    if !token(&t) || !token(&s) {
        return None;
    }
    Some(((t, s), params_of(pieces)))
}

/// `attachment; filename="x"` and the like.
pub fn parse_disposition(v: &str) -> Option<(String, Vec<(String, String)>)> {
    let mut pieces = split_params(v).into_iter();
    let first = pieces.next()?.trim().to_ascii_lowercase();
    (!first.is_empty()).then(|| (first, params_of(pieces)))
}

fn params_of(pieces: impl Iterator<Item = String>) -> Vec<(String, String)> {
    pieces
        .filter_map(|p| {
            let (k, v) = p.split_once('=')?;
            let v = v.trim();
            let v = if v.len() >= 2 && v.starts_with('"') && v.ends_with('"') {
                unquote(&v[1..v.len() - 1])
            } else {
                v.to_string()
            };
            Some((k.trim().to_ascii_lowercase(), v))
        })
        .take(32)
        .collect()
}

fn unquote(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Splits at `;` outside quotes, dropping (comments).
fn split_params(v: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let (mut quoted, mut comment, mut escaped) = (false, 0usize, false);
    for c in v.chars() {
        let cur = out.last_mut().expect("one piece");
        if escaped {
            cur.push(c);
            escaped = false;
            continue;
        }
        match c {
            '\\' if quoted => {
                cur.push(c);
                escaped = true;
            }
            '"' if comment == 0 => {
                quoted = !quoted;
                cur.push(c);
            }
            '(' if !quoted => comment += 1,
            ')' if !quoted && comment > 0 => comment -= 1,
            _ if comment > 0 => {}
            ';' if !quoted => out.push(String::new()),
            '\r' | '\n' => {}
            _ => cur.push(c),
        }
    }
    out.into_iter()
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect()
}

/// The ranges of a multipart's body parts: between `--boundary` lines, each without the line
/// end that belongs to the next delimiter; up to `--boundary--` or the end.
fn split_multipart(raw: &[u8], body: Range<usize>, boundary: &[u8]) -> Vec<Range<usize>> {
    let mut parts = Vec::new();
    let mut open: Option<usize> = None;
    let mut at = body.start;
    while at < body.end {
        let line_end = memchr::memchr(b'\n', &raw[at..body.end])
            .map(|p| at + p + 1)
            .unwrap_or(body.end);
        let line = &raw[at..line_end];
        if line.starts_with(b"--") && line[2..].starts_with(boundary) {
            let rest = &line[2 + boundary.len()..];
            let closing = rest.starts_with(b"--");
            let rest = if closing { &rest[2..] } else { rest };
            if rest.iter().all(|b| b.is_ascii_whitespace()) {
                // The line end before the delimiter is part of the delimiter.
                let mut end = at;
                if end > body.start && raw[end - 1] == b'\n' {
                    end -= 1;
                    if end > body.start && raw[end - 1] == b'\r' {
                        end -= 1;
                    }
                }
                if let Some(start) = open.take() {
                    parts.push(start..end.max(start));
                }
                if closing || parts.len() >= MAX_PARTS {
                    return parts;
                }
                open = Some(line_end);
            }
        }
        at = line_end;
    }
    if let Some(start) = open {
        parts.push(start..body.end);
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipart_with_an_attached_message() {
        let m = b"Subject: x\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\npreamble\r\n--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nhello\r\n--b1\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\ninner body\r\n--b1--\r\n";
        let p = parse(m);
        let Children::Multipart(ps) = &p.children else {
            panic!("{p:?}")
        };
        assert_eq!(ps.len(), 2);
        assert_eq!(&m[ps[0].body.clone()], b"hello");
        assert_eq!(
            ps[0].params,
            vec![("charset".to_string(), "utf-8".to_string())]
        );
        let Children::Message(inner) = &ps[1].children else {
            panic!()
        };
        assert_eq!(&m[inner.body.clone()], b"inner body");
        assert_eq!(p.child(2).unwrap().child(1).unwrap().kind.0, "text");
        assert_eq!(p.fields(m)[0], ("Subject", "x".to_string()));
    }

    #[test]
    fn garbage_gets_a_structure() {
        for m in [
            &b""[..],
            b"no header at all",
            b"Content-Type: multipart/mixed\r\n\r\nx",
            b"Content-Type: multipart/mixed; boundary=a\r\n\r\n--a\r\n--a\r\n",
        ] {
            let _ = parse(m);
        }
        let nested = "Content-Type: message/rfc822\r\n\r\n".repeat(100);
        let _ = parse(nested.as_bytes());
    }
}
