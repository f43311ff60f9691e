//! The learning filter's view of a message: a set of tokens — words of the subject and the
//! text, the sender's domain, link domains, a few telling header values — each hashed to 64 bits
//! (FNV-1a, stable across versions and machines, so every node counts the same token alike).

use mail_parser::{MessageParser, MimeHeaders};
use std::collections::HashSet;

/// Tokens kept per message, at most (the first ones): bounds the cost of a huge message.
const MAX_TOKENS: usize = 1500;
/// Text looked at per message, at most.
const MAX_TEXT: usize = 200 * 1024;

/// The distinct token hashes of a message.
pub fn hashes(message: &[u8]) -> Vec<i64> {
    let mut set = Tokens::default();
    let list = set.headers(message);
    match MessageParser::default().parse(message) {
        Some(m) => {
            if let Some(s) = m.subject() {
                let s = if list {
                    without_list_tags(s)
                } else {
                    s.to_string()
                };
                set.words("s", &s);
                set.shape("s", &s);
            }
            if let Some(from) = m.from().and_then(|f| f.first()) {
                if let Some(a) = from.address() {
                    set.add("from", a.rsplit('@').next().unwrap_or(a));
                }
                if let Some(n) = from.name() {
                    set.words("fn", n);
                }
            }
            let mut text = String::new();
            for i in 0..m.text_body_count().min(4) {
                if let Some(t) = m.body_text(i) {
                    text.push_str(&t);
                    text.push('\n');
                }
            }
            for i in 0..m.html_body_count().min(4) {
                if let Some(h) = m.body_html(i) {
                    set.html_tags(&h);
                }
            }
            for a in m.attachments() {
                set.add("att", a.content_type().map(|c| c.ctype()).unwrap_or("none"));
            }
            set.body(without_list_footer(&text));
        }
        None => set.body(&String::from_utf8_lossy(
            &message[..message.len().min(MAX_TEXT)],
        )),
    }
    set.hashes.into_iter().collect()
}

#[derive(Default)]
struct Tokens {
    hashes: HashSet<i64>,
}

/// Headers whose words are telling (the subject comes decoded from the parser). Routing and
/// list headers (Received, To, List-Id, Sender ...) are left out on purpose: measured on the
/// SpamAssassin corpus they make spam sent through a mailing list look like the list's ham.
const WORDY_HEADERS: &[&str] = &[
    "from",
    "reply-to",
    "return-path",
    "message-id",
    "x-mailer",
    "user-agent",
    "content-type",
    "content-transfer-encoding",
    "mime-version",
    "x-priority",
    "x-msmail-priority",
];

/// Headers only a mailing list's copy has.
const LIST_HEADERS: &[&str] = &[
    "list-id",
    "list-unsubscribe",
    "list-post",
    "mailing-list",
    "x-mailman-version",
    "x-beenthere",
];

/// The text without the footer a mailing list (or a free mail service) appends after a line of
/// underscores: the list's words, not the sender's — spam sent through a list would otherwise
/// carry the list's ham.
fn without_list_footer(text: &str) -> &str {
    const FOOTER: usize = 1000;
    let tail_from = text.len().saturating_sub(FOOTER);
    let mut cut = text.len();
    let mut at = 0;
    for line in text.split_inclusive('\n') {
        if at >= tail_from
            && line.trim_end().len() >= 20
            && line.trim_end().bytes().all(|b| b == b'_')
        {
            cut = at;
            break;
        }
        at += line.len();
    }
    &text[..cut]
}

/// A list's subject without its tags (`[ILUG]`, `[scoop]`): the list's words, not the sender's.
fn without_list_tags(subject: &str) -> String {
    subject
        .split_whitespace()
        .filter(|w| !(w.starts_with('[') && w.ends_with(']') && w.len() <= 32))
        .collect::<Vec<_>>()
        .join(" ")
}

impl Tokens {
    /// The words of the telling headers, from the raw header block (unfolded; CRLF or LF).
    /// Whether the message is a mailing list's copy.
    fn headers(&mut self, message: &[u8]) -> bool {
        let end = memchr::memmem::find(message, b"\r\n\r\n")
            .or_else(|| memchr::memmem::find(message, b"\n\n"))
            .unwrap_or(message.len())
            .min(64 * 1024);
        let block = String::from_utf8_lossy(&message[..end]);
        let mut fields: Vec<String> = Vec::new();
        for line in block.lines() {
            match fields.last_mut() {
                Some(last) if line.starts_with([' ', '\t']) => {
                    last.push(' ');
                    last.push_str(line.trim());
                }
                _ => fields.push(line.to_string()),
            }
        }
        let named: Vec<(String, &str)> = fields
            .iter()
            .filter_map(|f| f.split_once(':'))
            .map(|(name, value)| (name.trim().to_ascii_lowercase(), value))
            .collect();
        // A list's mail carries the list's bounce address as its Return-Path: the list's word,
        // not the sender's (spam sent to a list would borrow the list's ham).
        let list = named
            .iter()
            .any(|(name, _)| LIST_HEADERS.contains(&name.as_str()));
        for (name, value) in &named {
            if WORDY_HEADERS.contains(&name.as_str()) && !(list && name == "return-path") {
                self.words(&format!("h:{name}"), value);
            }
        }
        list
    }

    fn add(&mut self, kind: &str, value: &str) {
        if self.hashes.len() < MAX_TOKENS {
            self.hashes.insert(hash(kind, &value.to_lowercase()));
        }
    }

    fn words(&mut self, kind: &str, text: &str) {
        for w in text.split(|c: char| !(c.is_alphanumeric() || "'$!-".contains(c))) {
            let w = w.trim_matches(|c: char| c == '\'' || c == '-');
            match w.chars().count() {
                0..=2 => {}
                3..=20 => self.add(kind, w),
                // Long runs (encoded blobs, glued words): their shape is the signal.
                n => self.add(
                    &format!("{kind}:long"),
                    &format!("{}{}", w.chars().next().unwrap_or('?'), n / 10),
                ),
            }
        }
    }

    /// Case and punctuation: `FREE`, `!!!`, `$$$` say more in a subject than the words do.
    fn shape(&mut self, kind: &str, text: &str) {
        for w in text.split_whitespace() {
            let letters: Vec<char> = w.chars().filter(|c| c.is_alphabetic()).collect();
            if letters.len() >= 3 && letters.iter().all(|c| c.is_uppercase()) {
                self.add(&format!("{kind}:caps"), w);
            }
            let punct: String = w.chars().filter(|c| "!$%?*".contains(*c)).collect();
            if !punct.is_empty() {
                self.add(&format!("{kind}:punct"), &punct[..punct.len().min(4)]);
            }
        }
    }

    fn body(&mut self, text: &str) {
        let text = &text[..floor_char_boundary(text, MAX_TEXT)];
        for url in text
            .split_whitespace()
            .filter_map(|w| w.find("http").map(|i| &w[i..]))
        {
            if let Some(host) = url_host(url) {
                self.url_parts(url, &host);
                self.add("url", &host);
            }
        }
        self.shape("b", text);
        self.words("b", text);
    }

    /// The pieces of a link: its host's labels and its path's words.
    fn url_parts(&mut self, url: &str, host: &str) {
        for label in host.split('.') {
            self.add("url:label", label);
        }
        let path = url.splitn(4, '/').nth(3).unwrap_or("");
        for piece in path
            .split(|c: char| !c.is_ascii_alphanumeric())
            .filter(|p| p.len() >= 2 && p.len() <= 20)
            .take(10)
        {
            self.add("url:path", piece);
        }
    }

    fn html_tags(&mut self, html: &str) {
        let html = &html[..floor_char_boundary(html, MAX_TEXT)];
        for tag in html
            .split('<')
            .skip(1)
            .filter_map(|t| t.split(|c: char| !c.is_ascii_alphanumeric()).next())
            .filter(|t| !t.is_empty())
            .take(400)
        {
            self.add("tag", tag);
        }
        for url in html
            .split(['"', '\'', ' ', '>'])
            .filter(|w| w.starts_with("http"))
        {
            if let Some(host) = url_host(url) {
                self.add("url", &host);
            }
        }
    }
}

/// The host of an http(s) URL, lowercase, without port and credentials.
pub fn url_host(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .or_else(|| {
            let lower = url.get(..8)?.to_ascii_lowercase();
            if lower.starts_with("http://") {
                url.get(7..)
            } else if lower.starts_with("https://") {
                url.get(8..)
            } else {
                None
            }
        })?;
    let host = rest
        .split(['/', '?', '#', '"', '\'', '<', '>', ')'])
        .next()?;
    let host = host
        .rsplit('@')
        .next()?
        .split(':')
        .next()?
        .trim_end_matches('.');
    let ok = !host.is_empty()
        && host.len() <= 253
        && host.contains('.')
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
    ok.then(|| host.to_ascii_lowercase())
}

fn floor_char_boundary(s: &str, max: usize) -> usize {
    if s.len() <= max {
        return s.len();
    }
    (0..=max)
        .rev()
        .find(|&i| s.is_char_boundary(i))
        .unwrap_or(0)
}

/// FNV-1a over `kind:value`; never the reserved totals token 0.
fn hash(kind: &str, value: &str) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in kind
        .bytes()
        .chain(std::iter::once(b':'))
        .chain(value.bytes())
    {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    match h as i64 {
        0 => 1,
        v => v,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lists_footer_tags_and_bounce_address_are_not_the_senders_words() {
        let footer = "_______________________________________________\r\nILUG mailing list\r\nhttp://www.linux.ie/mailman/listinfo/ilug\r\n";
        let direct =
            "Return-Path: <spammer@cheap.example>\r\nSubject: Cheap pills\r\n\r\nBuy now\r\n";
        let listed = format!(
            "Return-Path: <ilug-admin@linux.ie>\r\nList-Id: <ilug.linux.ie>\r\nSubject: [ILUG] Cheap pills\r\n\r\nBuy now\r\n{footer}"
        );
        let plain = format!(
            "Return-Path: <ilug-admin@linux.ie>\r\nSubject: [ILUG] Cheap pills\r\n\r\nBuy now\r\n{footer}"
        );
        let (direct, listed, plain) = (
            hashes(direct.as_bytes()),
            hashes(listed.as_bytes()),
            hashes(plain.as_bytes()),
        );
        assert!(direct.contains(&hash("h:return-path", "spammer")));
        for t in [&listed, &plain] {
            assert!(t.contains(&hash("s", "cheap")) && t.contains(&hash("b", "buy")));
            // The footer after a line of underscores is left out, list or not.
            assert!(!t.contains(&hash("b", "ilug")) && !t.contains(&hash("b", "mailing")));
        }
        // A list's copy: neither its bounce address nor its subject tag.
        assert!(!listed.contains(&hash("h:return-path", "ilug-admin")));
        assert!(
            !listed.contains(&hash("s", "ilug")) && !listed.contains(&hash("s:caps", "[ilug]"))
        );
        assert!(
            plain.contains(&hash("h:return-path", "ilug-admin"))
                && plain.contains(&hash("s", "ilug"))
        );
        assert_eq!(
            without_list_footer("a\n____\nb\n"),
            "a\n____\nb\n",
            "a short line is text"
        );
    }

    #[test]
    fn tokens_are_stable_and_distinct() {
        let a = hashes(b"From: Shop <deals@shop.example>\r\nSubject: Cheap watches\r\n\r\nBuy now at http://cheap.example/x !\r\n");
        let b = hashes(b"From: Shop <deals@shop.example>\nSubject: cheap Watches\n\nbuy Now at http://cheap.example/x !\n");
        let (mut a2, mut b2) = (a.clone(), b.clone());
        a2.sort();
        b2.sort();
        assert_eq!(a2, b2, "word case and line endings do not matter");
        assert!(a.contains(&hash("url", "cheap.example")));
        assert!(a.contains(&hash("s", "cheap")));
        assert!(a.contains(&hash("from", "shop.example")));
        let shouting = hashes(b"Subject: FREE offer!!!\r\n\r\nsee http://x.example/win/prize\r\n");
        assert!(
            shouting.contains(&hash("s:caps", "free")),
            "all-caps words in the subject are a token of their own"
        );
        assert!(shouting.contains(&hash("s:punct", "!!!")));
        assert!(shouting.contains(&hash("url:path", "prize")));
        assert!(!a.contains(&0));
        // FNV-1a is fixed: a changed hash would silently invalidate every learned database.
        assert_eq!(hash("b", "viagra"), 5_367_078_838_454_903_945);
    }

    #[test]
    fn url_hosts() {
        assert_eq!(
            url_host("https://user@Example.COM:8080/path"),
            Some("example.com".into())
        );
        assert_eq!(url_host("http://x"), None);
        assert_eq!(url_host("HTTP://A.example/"), Some("a.example".into()));
        assert_eq!(url_host("ftp://a.example"), None);
    }
}
