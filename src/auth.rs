//! Passwords: argon2id hashes in PHC string form; verification that costs the same whether or not
//! the user exists, so a login attempt does not reveal which addresses have accounts.

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};

/// SHA-256 as 64 lowercase hex digits (session tokens, the audit chain, interception copies).
pub fn sha256_hex(data: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, data)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A mail address as an account name: `user@domain`, stored lowercase.
pub fn account_name(address: &str) -> anyhow::Result<String> {
    use crate::smtp::address::{Side, parse_path};
    match parse_path(address, Side::Recipient) {
        Ok(Some(a)) => Ok(a.to_string().to_lowercase()),
        _ => anyhow::bail!("`{address}` is not a mail address (user@domain)"),
    }
}

/// Minimum length of a new password.
pub const MIN_PASSWORD: usize = 8;

pub fn hash_password(password: &str) -> anyhow::Result<String> {
    if password.chars().count() < MIN_PASSWORD {
        anyhow::bail!("the password must have at least {MIN_PASSWORD} characters");
    }
    let hash: PasswordHash = Argon2::default()
        .hash_password(password.as_bytes())
        .map_err(|e| anyhow::anyhow!("hashing failed: {e}"))?;
    Ok(hash.to_string())
}

/// A hash of any non-empty password (a directory's, whose rules are the directory's), for the
/// sign-in cache.
pub fn hash_any_password(password: &str) -> anyhow::Result<String> {
    if password.is_empty() {
        anyhow::bail!("empty password");
    }
    let hash: PasswordHash = Argon2::default()
        .hash_password(password.as_bytes())
        .map_err(|e| anyhow::anyhow!("hashing failed: {e}"))?;
    Ok(hash.to_string())
}

/// Checks `password` against a stored hash; with `None` (no such user) a dummy hash is checked
/// so that the time taken is the same.
pub fn verify_password(password: &str, stored: Option<&str>) -> bool {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let dummy =
        DUMMY.get_or_init(|| hash_password("dummy password for timing").unwrap_or_default());
    let (hash, real) = match stored {
        Some(h) => (h, true),
        None => (dummy.as_str(), false),
    };
    let ok = PasswordHash::new(hash)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false);
    ok && real
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_and_verify() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", Some(&h)));
        assert!(!verify_password("wrong horse", Some(&h)));
        assert!(!verify_password("correct horse", None));
        assert!(!verify_password("x", Some("not a hash")));
        assert!(hash_password("short").is_err());
    }
}
