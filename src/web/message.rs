//! A kept message taken apart for display: the main headers decoded, the text body, and the HTML
//! body (served only inside a sandboxed frame with a Content-Security-Policy that allows no
//! script and no remote content).

use mail_parser::{Address, MessageParser};
use serde::Serialize;

#[derive(Debug, Default, Clone, Serialize)]
pub struct MessageView {
    /// (name, decoded value) of From, To, Cc, Reply-To, Date, Subject, Message-ID, in that order.
    pub headers: Vec<(String, String)>,
    pub text: Option<String>,
    pub html: Option<String>,
}

/// Text shown at most, per body.
const MAX_BODY: usize = 512 * 1024;

pub fn view(raw: &[u8]) -> MessageView {
    let Some(m) = MessageParser::default().parse(raw) else {
        return MessageView::default();
    };
    let mut headers = Vec::new();
    for (name, value) in [
        ("From", m.from()),
        ("To", m.to()),
        ("Cc", m.cc()),
        ("Reply-To", m.reply_to()),
    ] {
        if let Some(a) = value {
            headers.push((name.to_string(), addresses(a)));
        }
    }
    if let Some(d) = m.date() {
        headers.push(("Date".into(), d.to_rfc822()));
    }
    if let Some(s) = m.subject() {
        headers.push(("Subject".into(), s.to_string()));
    }
    if let Some(id) = m.message_id() {
        headers.push(("Message-ID".into(), format!("<{id}>")));
    }
    let text = m.body_text(0).map(|t| cap(&t));
    // Only a real text/html part: mail-parser would otherwise turn the text into HTML.
    let html = m
        .html_bodies()
        .find(|p| p.is_text_html())
        .and_then(|p| p.text_contents())
        .map(cap);
    MessageView {
        headers,
        text,
        html,
    }
}

fn addresses(a: &Address<'_>) -> String {
    a.iter()
        .map(|x| match (x.name(), x.address()) {
            (Some(n), Some(ad)) => format!("{n} <{ad}>"),
            (None, Some(ad)) => ad.to_string(),
            (Some(n), None) => n.to_string(),
            (None, None) => String::new(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn cap(s: &str) -> String {
    if s.len() <= MAX_BODY {
        return s.to_string();
    }
    let mut end = MAX_BODY;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}\n[... cut: the message is longer]", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_text_and_html() {
        let raw = b"From: =?UTF-8?Q?J=C3=B6rg?= <j@example.org>\r\nTo: a@example.org, b@example.org\r\nSubject: Hi\r\nMIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=x\r\n\r\n--x\r\nContent-Type: text/plain\r\n\r\nplain\r\n--x\r\nContent-Type: text/html\r\n\r\n<p>rich</p>\r\n--x--\r\n";
        let v = view(raw);
        assert_eq!(
            v.headers[0],
            ("From".to_string(), "Jörg <j@example.org>".to_string())
        );
        assert_eq!(v.headers[1].1, "a@example.org, b@example.org");
        assert_eq!(v.text.as_deref().map(str::trim), Some("plain"));
        assert_eq!(v.html.as_deref().map(str::trim), Some("<p>rich</p>"));
        let plain = view(b"Subject: x\r\n\r\nonly text\r\n");
        assert!(plain.html.is_none());
    }
}
