//! The DNS side of a key: the TXT record an admin publishes (as one zone-file line, long values
//! split into quoted strings of at most 255 octets, RFC 1035 §3.3.14 / RFC 6376 §3.6.2.2), and
//! reading the `k=` and `p=` of a record found in DNS.

use super::keys::Algorithm;

/// The owner name of a selector's record, without the final dot.
pub fn name(selector: &str, domain: &str) -> String {
    format!("{selector}._domainkey.{domain}")
}

/// The record's text: `v=DKIM1; k=rsa; p=...`.
pub fn value(algorithm: Algorithm, public_key: &str) -> String {
    format!("v=DKIM1; k={}; p={public_key}", algorithm.as_str())
}

/// The zone-file line to publish, e.g.
/// `s1._domainkey.example.org. IN TXT "v=DKIM1; k=ed25519; p=..."`.
pub fn zone_line(selector: &str, domain: &str, algorithm: Algorithm, public_key: &str) -> String {
    let value = value(algorithm, public_key);
    // Base64 and the tags are ASCII, so splitting at any byte keeps whole characters.
    let strings: Vec<String> = value
        .as_bytes()
        .chunks(250)
        .map(|c| format!("\"{}\"", String::from_utf8_lossy(c)))
        .collect();
    format!("{}. IN TXT {}", name(selector, domain), strings.join(" "))
}

/// The `k=` (default rsa, RFC 6376 §3.6.1) and `p=` (whitespace removed) of a key record's
/// text (its strings joined); `None` when it is no DKIM key record.
pub fn parse(text: &str) -> Option<(String, String)> {
    let mut k = "rsa".to_string();
    let mut p = None;
    for (i, tag) in text.split(';').enumerate() {
        let Some((name, val)) = tag.split_once('=') else {
            continue;
        };
        let (name, val) = (name.trim(), val.trim());
        match name {
            "v" if i == 0 && val != "DKIM1" => return None,
            "k" => k = val.to_ascii_lowercase(),
            "p" => {
                p = Some(
                    val.chars()
                        .filter(|c| !c.is_whitespace())
                        .collect::<String>(),
                )
            }
            _ => {}
        }
    }
    p.map(|p| (k, p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_value_is_split_into_strings_on_one_line() {
        let p = "A".repeat(392);
        let line = zone_line("s1", "example.org", Algorithm::Rsa, &p);
        assert!(
            line.starts_with("s1._domainkey.example.org. IN TXT \"v=DKIM1; k=rsa; p=AAA"),
            "{line}"
        );
        assert!(!line.contains('\n'));
        let strings: Vec<&str> = line.split('"').skip(1).step_by(2).collect();
        assert_eq!(strings.len(), 2);
        assert!(strings.iter().all(|s| s.len() <= 255));
        assert_eq!(parse(&strings.concat()), Some(("rsa".into(), p)));
    }

    #[test]
    fn records_are_read_with_their_defaults() {
        assert_eq!(
            parse("v=DKIM1; k=ed25519; p=11qY AO=="),
            Some(("ed25519".into(), "11qYAO==".into()))
        );
        assert_eq!(parse("p=abc"), Some(("rsa".into(), "abc".into())));
        assert_eq!(parse("v=spf1 -all"), None);
        assert_eq!(parse("v=DKIM2; p=abc"), None);
    }
}
