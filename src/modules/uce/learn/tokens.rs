//! The learning filter's view of a message: a set of tokens — words of the subject and the
//! text, the sender's domain, link domains, a few telling header values — each hashed to 64 bits
//! (FNV-1a, stable across versions and machines, so every node counts the same token alike).

use mail_parser::{MessageParser, MimeHeaders, PartType};
use std::collections::HashMap;

/// Tokens kept per message, at most (the first ones): bounds the cost of a huge message.
const MAX_TOKENS: usize = 1500;
/// Text looked at per message, at most.
const MAX_TEXT: usize = 200 * 1024;

/// The distinct token hashes of a message.
pub fn hashes(message: &[u8]) -> Vec<i64> {
    collect(message, Tokens::default())
        .hashes
        .into_keys()
        .collect()
}

/// The distinct token hashes of a message, each with its [`Family`].
pub fn with_families(message: &[u8]) -> Vec<(i64, Family)> {
    collect(message, Tokens::default())
        .hashes
        .into_iter()
        .collect()
}

/// Tokens of one family say one thing many times over — an HTML mail's tags, the words of one
/// header, the pieces of its links — and the filter counts a family once, by its most telling
/// token: combined as independent evidence, the twenty tags of any HTML newsletter made it
/// spam. [`Family::FREE`]: a token that counts on its own (the words of the text and subject).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Family(pub u32);

impl Family {
    pub const FREE: Family = Family(0);

    fn of(kind: &str) -> Family {
        let name = if kind.starts_with("h:") {
            // `h:from` and `h:from:long` alike.
            kind.match_indices(':')
                .nth(1)
                .map_or(kind, |(i, _)| &kind[..i])
        } else if matches!(kind, "tag" | "url:label" | "url:path") {
            kind
        } else {
            return Family::FREE;
        };
        match hash("family", name) as u32 {
            0 => Family(1),
            f => Family(f),
        }
    }
}

/// The tokens with their names (`kind:value`), for reading why a message scored as it did.
pub fn named(message: &[u8]) -> Vec<(i64, String)> {
    let set = collect(
        message,
        Tokens {
            names: Some(Default::default()),
            ..Default::default()
        },
    );
    set.names.unwrap_or_default().into_iter().collect()
}

fn collect(message: &[u8], mut set: Tokens) -> Tokens {
    let list = set.headers(message);
    let is_list = list.is_some();
    let list = list.unwrap_or_default();
    match MessageParser::default().parse(message) {
        Some(m) => {
            if let Some(s) = m.subject() {
                let s = if is_list {
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
            // Only real HTML: the parser offers a plain text body as HTML too (with the
            // footer cut off the text above still in it).
            for part in m.html_bodies().take(4) {
                if let PartType::Html(h) = &part.body {
                    set.html_tags(h);
                }
            }
            for a in m.attachments() {
                set.add("att", a.content_type().map(|c| c.ctype()).unwrap_or("none"));
            }
            set.body(without_list_footer(&text, &list));
        }
        None => set.body(&String::from_utf8_lossy(
            &message[..message.len().min(MAX_TEXT)],
        )),
    }
    set
}

#[derive(Default)]
struct Tokens {
    /// Each token's hash and family.
    hashes: HashMap<i64, Family>,
    /// Each token's name, when asked for ([`named`]).
    names: Option<HashMap<i64, String>>,
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

/// The text without the footer a mailing list (or a free mail service) appends: the list's
/// words, not the sender's — spam sent through a list would otherwise carry the list's ham. A
/// footer is what follows a line of underscores near the end (with the sponsor's block a list
/// puts above it after a line of dashes), or, on a list's copy, what follows the last
/// separator (`-- `, a rule of dashes) that names the list's domain (`list_domains`).
fn without_list_footer<'a>(text: &'a str, list_domains: &[String]) -> &'a str {
    const FOOTER: usize = 1000;
    let tail_from = text.len().saturating_sub(FOOTER);
    let rule = |line: &str, c: u8| {
        let line = line.trim_end();
        line.len() >= 20 && line.bytes().all(|b| b == c)
    };
    let mut dashes = None;
    let mut separators = Vec::new();
    let mut at = 0;
    for line in text.split_inclusive('\n') {
        if at >= tail_from {
            if rule(line, b'_') {
                return &text[..dashes.unwrap_or(at)];
            }
            if rule(line, b'-') && dashes.is_none() {
                dashes = Some(at);
            }
            if line.trim_end() == "--" || rule(line, b'-') {
                separators.push(at);
            }
        }
        at += line.len();
    }
    for &cut in separators.iter().rev() {
        let footer = text[cut..].to_ascii_lowercase();
        if list_domains.iter().any(|d| footer.contains(d.as_str())) {
            return &text[..cut];
        }
    }
    text
}

/// The domains a list's headers name (`List-Id: <ilug.linux.ie>` -> `linux.ie`): its footer
/// names them too.
fn list_domains(value: &str) -> impl Iterator<Item = String> + '_ {
    value
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == '-'))
        .filter(|w| w.contains('.'))
        .filter_map(|w| {
            let labels: Vec<&str> = w.trim_matches('.').rsplit('.').take(2).collect();
            (labels.len() == 2
                && labels
                    .iter()
                    .all(|l| l.bytes().any(|b| b.is_ascii_alphabetic())))
            .then(|| format!("{}.{}", labels[1], labels[0]).to_ascii_lowercase())
        })
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
    /// The domains a mailing list's headers name; None unless the message is a list's copy.
    fn headers(&mut self, message: &[u8]) -> Option<Vec<String>> {
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
        // The bottom Received header: where the message entered the mail system. A list's
        // copy keeps its sender's first hop (the list's own hops are added above it).
        if let Some((_, first)) = named.iter().rev().find(|(name, _)| name == "received") {
            for (kind, value) in first_hop(first) {
                self.add(kind, &value);
            }
        }
        for (name, value) in &named {
            match name.as_str() {
                // The sender's software and locale show in how it writes the time zone.
                "date" => self.add("h:date:zone", date_zone(value)),
                // No visible recipient, one, or a crowd.
                "to" | "cc" => self.add(
                    "h:rcpts",
                    &format!("{name}{}", value.matches('@').count().min(5)),
                ),
                _ => {}
            }
            if WORDY_HEADERS.contains(&name.as_str()) && !(list && name == "return-path") {
                self.words(&format!("h:{name}"), value);
            }
        }
        list.then(|| {
            named
                .iter()
                .filter(|(name, _)| LIST_HEADERS.contains(&name.as_str()))
                .flat_map(|(_, value)| list_domains(value))
                .collect()
        })
    }

    fn add(&mut self, kind: &str, value: &str) {
        if self.hashes.len() < MAX_TOKENS {
            let value = value.to_lowercase();
            let h = hash(kind, &value);
            self.hashes.insert(h, Family::of(kind));
            if let Some(names) = &mut self.names {
                names.insert(h, format!("{kind}:{value}"));
            }
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

/// The time zone of a Date header as written (`-0500`, `GMT`, `(CDT)` after a numeric one is
/// left out): the word after the time of day, or `none`.
fn date_zone(value: &str) -> &str {
    let mut words = value.split_whitespace();
    words.find(|w| w.contains(':') && w.starts_with(|c: char| c.is_ascii_digit()));
    words.next().unwrap_or("none")
}

/// The first hop of a message, from its bottom Received header `from HELO (NAME [ADDRESS])`: the
/// sending host's domain (its name's last two labels) and its address's networks (an IPv4 /16
/// and /24, an IPv6 /32 and /48) — where mail comes from says as much as its words.
fn first_hop(received: &str) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    let Some(rest) = received.trim_start().strip_prefix("from ") else {
        return out;
    };
    let Some(inner) = rest
        .split_once('(')
        .and_then(|(_, r)| r.split_once(')'))
        .map(|(inner, _)| inner.to_ascii_lowercase())
    else {
        return out;
    };
    let address = inner
        .split_once('[')
        .and_then(|(_, r)| r.split_once(']'))
        .map(|(a, _)| a.trim_start_matches("ipv6:"));
    match address.and_then(|a| a.parse::<std::net::IpAddr>().ok()) {
        Some(std::net::IpAddr::V4(ip)) => {
            let [a, b, c, _] = ip.octets();
            out.push(("rcv:net", format!("{a}.{b}")));
            out.push(("rcv:net", format!("{a}.{b}.{c}")));
        }
        Some(std::net::IpAddr::V6(ip)) => {
            let s = ip.segments();
            out.push(("rcv:net", format!("{:x}:{:x}", s[0], s[1])));
            out.push(("rcv:net", format!("{:x}:{:x}:{:x}", s[0], s[1], s[2])));
        }
        None => {}
    }
    if let Some(name) = inner.split_whitespace().find(|w| !w.starts_with('[')) {
        let host = name
            .rsplit('@')
            .next()
            .unwrap_or(name)
            .trim_end_matches('.');
        let mut labels = host.rsplit('.');
        if let (Some(top), Some(second)) = (labels.next(), labels.next()) {
            if !top.is_empty() && !second.is_empty() && top.chars().any(|c| c.is_ascii_alphabetic())
            {
                out.push(("rcv:domain", format!("{second}.{top}")));
            }
        }
    }
    out
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
            without_list_footer("a\n____\nb\n", &[]),
            "a\n____\nb\n",
            "a short line is text"
        );
    }

    #[test]
    fn a_lists_signature_footer_and_sponsor_block_are_left_out() {
        let ilug = "List-Id: Irish Linux Users' Group social events <social.linux.ie>\r\nSubject: Cheap pills\r\n\r\nBuy now\r\n-- \r\nIrish Linux Users' Group Social Events: social@linux.ie\r\nList maintainer: listmaster@linux.ie\r\n";
        let t = hashes(ilug.as_bytes());
        assert!(t.contains(&hash("b", "buy")));
        assert!(!t.contains(&hash("b", "maintainer")) && !t.contains(&hash("b", "irish")));
        // A person's signature that does not name the list stays theirs.
        let signed = ilug.replace("-- \r\nIrish", "-- \r\nJohn Smith, Acme\r\n-- \r\nIrish");
        let t = hashes(signed.as_bytes());
        assert!(t.contains(&hash("b", "acme")) && !t.contains(&hash("b", "irish")));
        let sponsored = "Subject: Cheap pills\r\n\r\nBuy now\r\n\r\n-------------------------------------------------------\r\nThis sf.net email is sponsored by: Jabber\r\nhttp://www.jabber.com/osdn/xim\r\n_______________________________________________\r\nSightings mailing list\r\n";
        let t = hashes(sponsored.as_bytes());
        assert!(t.contains(&hash("b", "buy")));
        assert!(!t.contains(&hash("b", "jabber")) && !t.contains(&hash("url", "www.jabber.com")));
        assert_eq!(
            list_domains("<mailto:ilug@linux.ie>, 2.0.11").collect::<Vec<_>>(),
            vec!["linux.ie"]
        );
    }

    #[test]
    fn families() {
        let html = b"Subject: Hi\r\nContent-Type: text/html\r\n\r\n<html><body><p>Hello there</p></body></html>\r\n";
        let t = with_families(html);
        let of = |name: &str, value: &str| t.iter().find(|x| x.0 == hash(name, value)).unwrap().1;
        assert_eq!(
            of("tag", "html"),
            of("tag", "body"),
            "every tag: one family"
        );
        assert_ne!(of("tag", "html"), Family::FREE);
        assert_eq!(
            of("b", "hello"),
            Family::FREE,
            "the words count on their own"
        );
        assert_eq!(Family::of("h:from"), Family::of("h:from:long"));
        assert_ne!(Family::of("h:from"), Family::of("h:x-mailer"));
        // A plain text body is not HTML, whatever the parser offers.
        let plain = hashes(b"Subject: Hi\r\n\r\nHello there\r\n");
        assert!(!plain.contains(&hash("tag", "html")));
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

    #[test]
    fn date_zone_and_visible_recipients() {
        assert_eq!(date_zone("Mon, 22 Jul 2002 10:00:00 -0500 (CDT)"), "-0500");
        assert_eq!(date_zone("22 Jul 2002 10:00 GMT"), "GMT");
        assert_eq!(date_zone("Mon, 22 Jul 2002"), "none");
        let t = hashes(b"To: undisclosed-recipients:;\r\nDate: Tue, 23 Jul 2002 01:02:03 +0900\r\nSubject: hi\r\n\r\nhello there\r\n");
        assert!(t.contains(&hash("h:rcpts", "to0")));
        assert!(t.contains(&hash("h:date:zone", "+0900")));
        let crowd = hashes(b"To: a@x.example, b@x.example, c@x.example, d@x.example, e@x.example, f@x.example\r\n\r\nhello\r\n");
        assert!(
            crowd.contains(&hash("h:rcpts", "to5")),
            "five or more are a crowd"
        );
    }

    #[test]
    fn the_first_hop_is_where_the_message_entered() {
        let hop = |r: &str| -> Vec<String> {
            first_hop(r)
                .into_iter()
                .map(|(k, v)| format!("{k}:{v}"))
                .collect()
        };
        assert_eq!(
            hop("from mx.shop.example (mail70.Bulk.Example.NET [198.64.154.99]) by a.example"),
            [
                "rcv:net:198.64",
                "rcv:net:198.64.154",
                "rcv:domain:example.net"
            ]
        );
        assert_eq!(
            hop("from juno.com ([211.185.172.65]) by einstein.example with SMTP"),
            ["rcv:net:211.185", "rcv:net:211.185.172"],
            "no name: the address alone"
        );
        assert_eq!(
            hop("from x (cpunks@[IPv6:2001:db8:7:1::5]) by y"),
            ["rcv:net:2001:db8", "rcv:net:2001:db8:7"]
        );
        assert!(hop("by mx.example with LMTP").is_empty());
        // A list's copy: its hops come on top; the bottom one is the sender's.
        let listed = b"Received: from list.example (list.example [192.0.2.1]) by mx\r\nReceived: from pc (dsl-9.isp.example [203.0.113.9]) by smtp.isp.example\r\nSubject: hi\r\n\r\nhello there\r\n";
        let t = hashes(listed);
        assert!(t.contains(&hash("rcv:net", "203.0.113")));
        assert!(t.contains(&hash("rcv:domain", "isp.example")));
        assert!(!t.contains(&hash("rcv:net", "192.0.2")));
    }
}
