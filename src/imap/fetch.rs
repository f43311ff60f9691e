//! FETCH data items (RFC 3501 7.4.2) for one message: ENVELOPE and BODYSTRUCTURE from its
//! header and MIME structure, and body sections cut out of the stored bytes exactly.

use mail_parser::{Address, MessageParser};

use super::command::{FetchItem, Section, SectionText};
use super::mime::{self, Children, Part};
use super::response::{nstring, string};

/// What a message is, besides its bytes.
pub struct Meta {
    pub uid: u32,
    pub time_us: i64,
    pub size: i64,
    pub seen: bool,
}

/// Do these items need the message's bytes?
pub fn needs_body(items: &[FetchItem]) -> bool {
    items.iter().any(|i| {
        matches!(
            i,
            FetchItem::Envelope | FetchItem::Structure(_) | FetchItem::Section(_)
        )
    })
}

/// Does fetching these items read a message (and so set \Seen)?
pub fn reads(items: &[FetchItem]) -> bool {
    items
        .iter()
        .any(|i| matches!(i, FetchItem::Section(s) if !s.peek))
}

/// The items of one FETCH response, between its parentheses.
pub fn write_items(out: &mut Vec<u8>, items: &[FetchItem], meta: &Meta, body: Option<&[u8]>) {
    let parsed = body.map(|b| (b, mime::parse(b)));
    let mut first = true;
    for item in items {
        if !first {
            out.push(b' ');
        }
        first = false;
        match item {
            FetchItem::Flags => out.extend_from_slice(if meta.seen {
                b"FLAGS (\\Seen)"
            } else {
                b"FLAGS ()"
            }),
            FetchItem::Uid => out.extend_from_slice(format!("UID {}", meta.uid).as_bytes()),
            FetchItem::Size => out.extend_from_slice(
                format!(
                    "RFC822.SIZE {}",
                    body.map(|b| b.len() as i64).unwrap_or(meta.size)
                )
                .as_bytes(),
            ),
            FetchItem::InternalDate => out.extend_from_slice(
                format!(
                    "INTERNALDATE {}",
                    super::response::internal_date(meta.time_us)
                )
                .as_bytes(),
            ),
            FetchItem::Envelope => {
                out.extend_from_slice(b"ENVELOPE ");
                match &parsed {
                    Some((raw, root)) => envelope(out, &raw[root.header.clone()]),
                    None => envelope(out, b""),
                }
            }
            FetchItem::Structure(ext) => {
                out.extend_from_slice(if *ext { b"BODYSTRUCTURE " } else { b"BODY " });
                match &parsed {
                    Some((raw, root)) => structure(out, raw, root, *ext),
                    None => structure(out, b"", &mime::parse(b""), *ext),
                }
            }
            FetchItem::Section(s) => {
                out.extend_from_slice(section_name(s).as_bytes());
                out.push(b' ');
                let bytes = parsed
                    .as_ref()
                    .and_then(|(raw, root)| section(raw, root, s));
                match (bytes, s.partial) {
                    (None, _) => out.extend_from_slice(b"NIL"),
                    (Some(b), None) => super::response::literal(out, &b),
                    (Some(b), Some((start, len))) => {
                        let start = (start as usize).min(b.len());
                        let end = start.saturating_add(len as usize).min(b.len());
                        super::response::literal(out, &b[start..end]);
                    }
                }
            }
        }
    }
}

/// How the reply names a section: `BODY[1.HEADER.FIELDS (SUBJECT)]<0>`, or `RFC822.HEADER`.
fn section_name(s: &Section) -> String {
    if let Some(name) = s.legacy {
        return name.to_string();
    }
    let mut spec: Vec<String> = s.part.iter().map(u32::to_string).collect();
    match &s.text {
        SectionText::Full => {}
        SectionText::Header => spec.push("HEADER".into()),
        SectionText::Text => spec.push("TEXT".into()),
        SectionText::Mime => spec.push("MIME".into()),
        SectionText::Fields(inc, names) => spec.push(format!(
            "{} ({})",
            if *inc {
                "HEADER.FIELDS"
            } else {
                "HEADER.FIELDS.NOT"
            },
            names.join(" ")
        )),
    }
    let partial = s
        .partial
        .map(|(start, _)| format!("<{start}>"))
        .unwrap_or_default();
    format!("BODY[{}]{partial}", spec.join("."))
}

/// The octets of a section; None: no such part.
fn section(raw: &[u8], root: &Part, s: &Section) -> Option<Vec<u8>> {
    let mut target = root;
    for &n in &s.part {
        target = target.child(n)?;
    }
    // HEADER and TEXT of a part number are those of the message attached there.
    let message = if s.part.is_empty() {
        Some(root)
    } else {
        match &target.children {
            Children::Message(m) => Some(&**m),
            _ => None,
        }
    };
    Some(match &s.text {
        SectionText::Full if s.part.is_empty() => raw.to_vec(),
        SectionText::Full => raw[target.body.clone()].to_vec(),
        SectionText::Mime => raw[target.header.clone()].to_vec(),
        SectionText::Header => raw[message?.header.clone()].to_vec(),
        SectionText::Text => raw[message?.body.clone()].to_vec(),
        SectionText::Fields(include, names) => {
            header_fields(&raw[message?.header.clone()], *include, names)
        }
    })
}

/// The header lines (with their continuation lines) whose names are (or are not) in `names`,
/// then the empty line.
fn header_fields(header: &[u8], include: bool, names: &[String]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut keep = false;
    for line in header.split_inclusive(|&b| b == b'\n') {
        if line == b"\r\n" || line == b"\n" {
            break;
        }
        if line[0] != b' ' && line[0] != b'\t' {
            let name = line.iter().position(|&b| b == b':').map(|c| {
                String::from_utf8_lossy(&line[..c])
                    .trim()
                    .to_ascii_uppercase()
            });
            keep = name.is_some_and(|n| names.contains(&n) == include);
        }
        if keep {
            out.extend_from_slice(line);
        }
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// ENVELOPE: date, subject, from, sender, reply-to, to, cc, bcc, in-reply-to, message-id.
fn envelope(out: &mut Vec<u8>, header: &[u8]) {
    let fields = mime::header_fields(header);
    let raw = |name: &str| {
        fields
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_string())
    };
    let parsed = MessageParser::new().parse_headers(header);
    let from = parsed.as_ref().and_then(|m| m.from());
    out.push(b'(');
    nstring(out, raw("date").as_deref().map(str::as_bytes));
    out.push(b' ');
    nstring(out, raw("subject").as_deref().map(str::as_bytes));
    for list in [
        from,
        parsed.as_ref().and_then(|m| m.sender()).or(from),
        parsed.as_ref().and_then(|m| m.reply_to()).or(from),
        parsed.as_ref().and_then(|m| m.to()),
        parsed.as_ref().and_then(|m| m.cc()),
        parsed.as_ref().and_then(|m| m.bcc()),
    ] {
        out.push(b' ');
        addresses(out, list);
    }
    out.push(b' ');
    nstring(out, raw("in-reply-to").as_deref().map(str::as_bytes));
    out.push(b' ');
    nstring(out, raw("message-id").as_deref().map(str::as_bytes));
    out.push(b')');
}

fn addresses(out: &mut Vec<u8>, list: Option<&Address>) {
    let one = |out: &mut Vec<u8>, name: Option<&str>, address: Option<&str>| {
        out.push(b'(');
        nstring(out, name.map(encoded_word).as_deref().map(str::as_bytes));
        out.extend_from_slice(b" NIL ");
        let address = address.unwrap_or("");
        let (local, host) = address.rsplit_once('@').unwrap_or((address, ""));
        string(out, local.as_bytes());
        out.push(b' ');
        string(out, host.as_bytes());
        out.push(b')');
    };
    match list {
        None => out.extend_from_slice(b"NIL"),
        Some(Address::List(l)) if l.is_empty() => out.extend_from_slice(b"NIL"),
        Some(Address::List(l)) => {
            out.push(b'(');
            for a in l.iter().take(1000) {
                one(out, a.name.as_deref(), a.address.as_deref());
            }
            out.push(b')');
        }
        Some(Address::Group(groups)) => {
            out.push(b'(');
            for g in groups.iter().take(100) {
                // A group: (NIL NIL name NIL), its members, then (NIL NIL NIL NIL).
                if let Some(name) = &g.name {
                    out.extend_from_slice(b"(NIL NIL ");
                    string(out, encoded_word(name).as_bytes());
                    out.extend_from_slice(b" NIL)");
                }
                for a in g.addresses.iter().take(1000) {
                    one(out, a.name.as_deref(), a.address.as_deref());
                }
                if g.name.is_some() {
                    out.extend_from_slice(b"(NIL NIL NIL NIL)");
                }
            }
            out.push(b')');
        }
    }
}

/// A display name as IMAP4rev1 may carry it: as is in ASCII, else an RFC 2047 encoded word.
fn encoded_word(name: &str) -> String {
    if name.is_ascii() {
        name.to_string()
    } else {
        format!("=?utf-8?b?{}?=", crate::base64::encode(name.as_bytes()))
    }
}

/// BODYSTRUCTURE (with extension data) or BODY.
fn structure(out: &mut Vec<u8>, raw: &[u8], p: &Part, ext: bool) {
    let fields = p.fields(raw);
    let field = |name: &str| {
        fields
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_string())
    };
    out.push(b'(');
    if let Children::Multipart(children) = &p.children {
        if children.is_empty() {
            out.extend_from_slice(b"(\"TEXT\" \"PLAIN\" NIL NIL NIL \"7BIT\" 0 0)");
        }
        for c in children {
            structure(out, raw, c, ext);
        }
        out.push(b' ');
        string(out, p.kind.1.to_ascii_uppercase().as_bytes());
        if ext {
            out.push(b' ');
            params(out, &p.params);
            out.push(b' ');
            disposition(out, field("content-disposition"));
            out.push(b' ');
            nstring(out, field("content-language").as_deref().map(str::as_bytes));
            out.push(b' ');
            nstring(out, field("content-location").as_deref().map(str::as_bytes));
        }
        out.push(b')');
        return;
    }
    string(out, p.kind.0.to_ascii_uppercase().as_bytes());
    out.push(b' ');
    string(out, p.kind.1.to_ascii_uppercase().as_bytes());
    out.push(b' ');
    params(out, &p.params);
    out.push(b' ');
    nstring(out, field("content-id").as_deref().map(str::as_bytes));
    out.push(b' ');
    nstring(
        out,
        field("content-description").as_deref().map(str::as_bytes),
    );
    out.push(b' ');
    let encoding = field("content-transfer-encoding")
        .map(|e| e.to_ascii_uppercase())
        .unwrap_or_else(|| "7BIT".into());
    string(out, encoding.as_bytes());
    let body = &raw[p.body.clone()];
    out.extend_from_slice(format!(" {}", body.len()).as_bytes());
    if let Children::Message(m) = &p.children {
        out.push(b' ');
        envelope(out, &raw[m.header.clone()]);
        out.push(b' ');
        structure(out, raw, m, ext);
        out.extend_from_slice(format!(" {}", lines(body)).as_bytes());
    } else if p.kind.0 == "text" {
        out.extend_from_slice(format!(" {}", lines(body)).as_bytes());
    }
    if ext {
        out.push(b' ');
        nstring(out, field("content-md5").as_deref().map(str::as_bytes));
        out.push(b' ');
        disposition(out, field("content-disposition"));
        out.push(b' ');
        nstring(out, field("content-language").as_deref().map(str::as_bytes));
        out.push(b' ');
        nstring(out, field("content-location").as_deref().map(str::as_bytes));
    }
    out.push(b')');
}

fn lines(body: &[u8]) -> usize {
    let n = memchr::memchr_iter(b'\n', body).count();
    if body.is_empty() || body.ends_with(b"\n") {
        n
    } else {
        n + 1
    }
}

fn params(out: &mut Vec<u8>, ps: &[(String, String)]) {
    if ps.is_empty() {
        out.extend_from_slice(b"NIL");
        return;
    }
    out.push(b'(');
    for (i, (k, v)) in ps.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        string(out, k.to_ascii_uppercase().as_bytes());
        out.push(b' ');
        string(out, v.as_bytes());
    }
    out.push(b')');
}

fn disposition(out: &mut Vec<u8>, value: Option<String>) {
    match value.as_deref().and_then(mime::parse_disposition) {
        Some((kind, ps)) => {
            out.push(b'(');
            string(out, kind.to_ascii_uppercase().as_bytes());
            out.push(b' ');
            params(out, &ps);
            out.push(b')');
        }
        None => out.extend_from_slice(b"NIL"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imap::command::{Command, parse};

    fn fetch(items: &str, message: &[u8]) -> String {
        let Ok(Command::Fetch { items, .. }) = parse(format!("a FETCH 1 ({items})").as_bytes())
            .unwrap()
            .command
        else {
            panic!("{items}")
        };
        let mut out = Vec::new();
        write_items(
            &mut out,
            &items,
            &Meta {
                uid: 7,
                time_us: 0,
                size: message.len() as i64,
                seen: false,
            },
            Some(message),
        );
        String::from_utf8_lossy(&out).into_owned()
    }

    const MSG: &[u8] = b"From: \"Ann Example\" <ann@example.net>\r\nTo: bob@example.org, Carl <carl@example.org>\r\nSubject: Hello there\r\n\tfolded\r\nMessage-ID: <1@example.net>\r\nContent-Type: multipart/alternative; boundary=\"zz\"\r\n\r\n--zz\r\nContent-Type: text/plain\r\n\r\nplain\r\ntext\r\n--zz\r\nContent-Type: text/html; charset=utf-8\r\nContent-Disposition: inline\r\n\r\n<p>html</p>\r\n--zz--\r\n";

    #[test]
    fn envelope_and_structure() {
        let e = fetch("ENVELOPE", MSG);
        assert!(e.starts_with("ENVELOPE (NIL \"Hello there\tfolded\" ((\"Ann Example\" NIL \"ann\" \"example.net\"))"), "{e}");
        assert!(
            e.contains(
                "((NIL NIL \"bob\" \"example.org\")(\"Carl\" NIL \"carl\" \"example.org\"))"
            ),
            "{e}"
        );
        assert!(e.ends_with(" NIL \"<1@example.net>\")"), "{e}");
        let s = fetch("BODYSTRUCTURE", MSG);
        assert_eq!(
            s,
            "BODYSTRUCTURE ((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL NIL \"7BIT\" 11 2 NIL NIL NIL NIL)(\"TEXT\" \"HTML\" (\"CHARSET\" \"utf-8\") NIL NIL \"7BIT\" 11 1 NIL (\"INLINE\" NIL) NIL NIL) \"ALTERNATIVE\" (\"BOUNDARY\" \"zz\") NIL NIL NIL)"
        );
    }

    #[test]
    fn sections() {
        assert_eq!(
            fetch("BODY.PEEK[HEADER.FIELDS (SUBJECT)]", MSG),
            "BODY[HEADER.FIELDS (SUBJECT)] {33}\r\nSubject: Hello there\r\n\tfolded\r\n\r\n"
        );
        assert_eq!(fetch("BODY[1]", MSG), "BODY[1] {11}\r\nplain\r\ntext");
        assert_eq!(
            fetch("BODY[2.MIME]", MSG),
            "BODY[2.MIME] {71}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Disposition: inline\r\n\r\n"
        );
        assert_eq!(fetch("BODY[]<6.4>", MSG), "BODY[]<6> {4}\r\n\"Ann");
        assert_eq!(fetch("BODY[9]", MSG), "BODY[9] NIL");
        assert_eq!(
            fetch("RFC822.SIZE UID", MSG),
            format!("RFC822.SIZE {} UID 7", MSG.len())
        );
        let single = b"Subject: s\r\n\r\nbody\r\n";
        assert_eq!(
            fetch("BODY[1] BODY[TEXT]", single),
            "BODY[1] {6}\r\nbody\r\n BODY[TEXT] {6}\r\nbody\r\n"
        );
    }
}
