//! Spam traps: addresses no person uses, so whoever mails them is a spammer. A trap is an
//! address or a pattern where `*` stands for any run of characters; the config's list and the
//! one kept in SQL (web UI, CLI) both count.

/// Does `address` match the trap `pattern` (case-insensitive)?
pub fn matches(pattern: &str, address: &str) -> bool {
    glob(
        pattern.to_ascii_lowercase().as_bytes(),
        address.to_ascii_lowercase().as_bytes(),
    )
}

/// `*` matches any run of bytes; everything else matches itself. Iterative, with one
/// backtracking point, so a hostile pattern or address costs linear time per star.
fn glob(p: &[u8], s: &[u8]) -> bool {
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, si));
            pi += 1;
        } else if pi < p.len() && p[pi] == s[si] {
            pi += 1;
            si += 1;
        } else if let Some((sp, ss)) = star {
            pi = sp + 1;
            si = ss + 1;
            star = Some((sp, ss + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn addresses_and_patterns() {
        assert!(matches("trap@example.org", "Trap@Example.ORG"));
        assert!(!matches("trap@example.org", "trap2@example.org"));
        assert!(matches(
            "honeypot-*@example.org",
            "honeypot-2026@example.org"
        ));
        assert!(matches("*@spam.example.org", "anyone@spam.example.org"));
        assert!(!matches("*@spam.example.org", "anyone@example.org"));
        assert!(matches("a*b*c@x", "aXXbYYc@x"));
        assert!(!matches("a*b*c@x", "aXXbYY@x"));
    }
}
