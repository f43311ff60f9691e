//! Removing header fields a client must not be able to set: headers that carry sponts' own
//! verdicts (`X-Spam-*`, `Authentication-Results` in sponts' name, RFC 8601 section 5). The
//! message is copied only when a field is actually removed.

use std::borrow::Cow;

/// A field to remove: its name (case-insensitive; a trailing `*` matches any rest), and
/// optionally the start of its value (the authserv-id of an `Authentication-Results`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Strip {
    pub name: String,
    pub value_starts: Option<String>,
}

impl Strip {
    fn matches(&self, name: &str, value: &str) -> bool {
        let name_ok = match self.name.strip_suffix('*') {
            Some(prefix) => {
                name.len() >= prefix.len() && name[..prefix.len()].eq_ignore_ascii_case(prefix)
            }
            None => name.eq_ignore_ascii_case(&self.name),
        };
        name_ok
            && self.value_starts.as_ref().is_none_or(|v| {
                let value = value.trim_start();
                value.len() >= v.len()
                    && value[..v.len()].eq_ignore_ascii_case(v)
                    && value[v.len()..].starts_with([';', ' ', '\t', '\r'])
            })
    }
}

/// The message without the header fields that match; the body is never touched.
pub fn strip<'a>(message: &'a [u8], rules: &[Strip]) -> Cow<'a, [u8]> {
    if rules.is_empty() {
        return Cow::Borrowed(message);
    }
    let mut fields: Vec<(usize, usize, bool)> = Vec::new();
    let mut pos = 0;
    while pos < message.len() {
        let end = memchr::memchr(b'\n', &message[pos..]).map_or(message.len(), |i| pos + i + 1);
        let line = &message[pos..end];
        if line == b"\r\n" || line == b"\n" {
            break;
        }
        match fields.last_mut() {
            Some(last) if line.starts_with(b" ") || line.starts_with(b"\t") => last.1 = end,
            _ => fields.push((pos, end, false)),
        }
        pos = end;
    }
    let mut any = false;
    for f in &mut fields {
        let text = String::from_utf8_lossy(&message[f.0..f.1]);
        if let Some((name, value)) = text.split_once(':') {
            f.2 = rules.iter().any(|r| r.matches(name.trim(), value));
            any |= f.2;
        }
    }
    if !any {
        return Cow::Borrowed(message);
    }
    let mut out = Vec::with_capacity(message.len());
    let mut copied = 0;
    for (start, end, drop) in fields {
        if drop {
            out.extend_from_slice(&message[copied..start]);
            copied = end;
        }
    }
    out.extend_from_slice(&message[copied..]);
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> Vec<Strip> {
        vec![
            Strip {
                name: "X-Spam-*".into(),
                value_starts: None,
            },
            Strip {
                name: "Authentication-Results".into(),
                value_starts: Some("mx.example.org".into()),
            },
        ]
    }

    #[test]
    fn forged_verdicts_go_the_rest_stays_byte_exact() {
        let m = b"X-Spam-Flag: NO\r\nSubject: hi\r\nAuthentication-Results: mx.example.org;\r\n\tspf=pass\r\nAuthentication-Results: other.example; dkim=pass\r\nx-spam-score:\r\n -5\r\n\r\nX-Spam-Flag: NO in the body stays\r\n";
        let out = strip(m, &rules());
        assert_eq!(&*out, &b"Subject: hi\r\nAuthentication-Results: other.example; dkim=pass\r\n\r\nX-Spam-Flag: NO in the body stays\r\n"[..]);
        let clean = b"Subject: hi\r\n\r\nbody\r\n";
        assert!(
            matches!(strip(clean, &rules()), Cow::Borrowed(_)),
            "no copy when nothing goes"
        );
        // A longer authserv-id that merely starts with ours is someone else's.
        let m = b"Authentication-Results: mx.example.org.evil; spf=pass\r\n\r\n";
        assert!(matches!(strip(m, &rules()), Cow::Borrowed(_)));
    }
}
