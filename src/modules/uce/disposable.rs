//! Disposable addresses: `tag.N.user@domain` (or `user.tag.N@domain`) reaches `user@domain` N
//! times, then answers "user unknown" for good. The tag names where the address was given out;
//! N is fixed the first time the address is used, so `tag.99.user` does not reopen `tag.3.user`.

use crate::config::{DisposablePosition, UceConfig};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisposableAddress {
    pub tag: String,
    pub max: u32,
    /// `user@domain`, lowercase.
    pub owner: String,
}

/// Splits a recipient into its disposable parts, if it has that shape.
pub fn parse(config: &UceConfig, local: &str, domain: &str) -> Option<DisposableAddress> {
    let sep = config.disposable_separator.chars().next()?;
    let parts: Vec<&str> = local.splitn(3, sep).collect();
    let (tag, n, user) = match config.disposable_position {
        DisposablePosition::Prefix if parts.len() == 3 => (parts[0], parts[1], parts[2]),
        DisposablePosition::Suffix => {
            let parts: Vec<&str> = local.rsplitn(3, sep).collect();
            if parts.len() != 3 {
                return None;
            }
            (parts[1], parts[0], parts[2])
        }
        _ => return None,
    };
    let valid_tag = !tag.is_empty()
        && tag.len() <= 64
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !valid_tag
        || user.is_empty()
        || n.is_empty()
        || n.len() > 6
        || !n.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let max: u32 = n.parse().ok()?;
    if max == 0 || max > config.disposable_max {
        return None;
    }
    Some(DisposableAddress {
        tag: tag.to_ascii_lowercase(),
        max,
        owner: format!("{user}@{domain}").to_lowercase(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_and_suffix_shapes() {
        let mut c = UceConfig::default();
        let d = parse(&c, "shop.3.alice", "Example.org").unwrap();
        assert_eq!(
            d,
            DisposableAddress {
                tag: "shop".into(),
                max: 3,
                owner: "alice@example.org".into()
            }
        );
        // The user part may itself hold the separator.
        assert_eq!(
            parse(&c, "news.20.j.doe", "example.org").unwrap().owner,
            "j.doe@example.org"
        );
        for not in [
            "alice",
            "shop.alice",
            "shop.x.alice",
            "shop.0.alice",
            ".3.alice",
            "shop.3.",
            "sh op.3.alice",
            "shop.1001.alice",
        ] {
            assert_eq!(parse(&c, not, "example.org"), None, "{not}");
        }
        c.disposable_position = DisposablePosition::Suffix;
        c.disposable_separator = "+".into();
        let d = parse(&c, "alice+shop+5", "example.org").unwrap();
        assert_eq!(
            d,
            DisposableAddress {
                tag: "shop".into(),
                max: 5,
                owner: "alice@example.org".into()
            }
        );
        assert_eq!(parse(&c, "alice+5", "example.org"), None);
    }
}
