//! Time-based one-time passwords (RFC 6238 over RFC 4226's HOTP): HMAC-SHA-1, 6 digits, a 30 s
//! step — what every authenticator app computes from the secret it scanned. A code is taken for
//! the step before, the current one and the one after (clocks drift); which step matched is
//! returned so the caller can refuse it a second time.

use ring::hmac;

/// Seconds per step (RFC 6238's default, the one apps assume).
pub const STEP_SECS: u64 = 30;
/// Steps either side of now still accepted.
pub const WINDOW: u64 = 1;
/// Random secret length in bytes (160 bits, RFC 4226's recommendation).
pub const SECRET_BYTES: usize = 20;

/// A new random secret, base32 (RFC 4648, no padding) as apps take it.
pub fn new_secret() -> String {
    let mut b = [0u8; SECRET_BYTES];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b)
        .expect("system random");
    data_encoding::BASE32_NOPAD.encode(&b)
}

/// The secret's bytes; spaces and lowercase (as people copy it) are accepted.
pub fn decode_secret(secret: &str) -> Option<Vec<u8>> {
    let clean: String = secret
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '=')
        .map(|c| c.to_ascii_uppercase())
        .collect();
    data_encoding::BASE32_NOPAD
        .decode(clean.as_bytes())
        .ok()
        .filter(|b| !b.is_empty())
}

/// The step a Unix time falls in.
pub fn step_of(unix_secs: u64) -> u64 {
    unix_secs / STEP_SECS
}

/// The 6-digit code of one step (RFC 4226 section 5.3, dynamic truncation).
pub fn code_at(key: &[u8], step: u64) -> String {
    let tag = hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, key),
        &step.to_be_bytes(),
    );
    let h = tag.as_ref();
    let off = (h[h.len() - 1] & 0x0f) as usize;
    let bin = u32::from_be_bytes([h[off] & 0x7f, h[off + 1], h[off + 2], h[off + 3]]);
    format!("{:06}", bin % 1_000_000)
}

/// The step `code` belongs to, within the window around `unix_secs`, or `None`. The caller
/// refuses a step that was used before (replay).
pub fn matching_step(key: &[u8], code: &str, unix_secs: u64) -> Option<u64> {
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let now = step_of(unix_secs);
    // Every candidate is computed and compared in full, so the time taken says nothing.
    let mut found = None;
    for step in now.saturating_sub(WINDOW)..=now + WINDOW {
        let expected = code_at(key, step);
        let same = expected
            .bytes()
            .zip(code.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
        if same && found.is_none() {
            found = Some(step);
        }
    }
    found
}

/// The `otpauth://` link an authenticator app scans (Key Uri Format): the account is the address.
pub fn provisioning_uri(address: &str, secret: &str) -> String {
    let label: String = address
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._@".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    format!("otpauth://totp/sponts:{label}?secret={secret}&issuer=sponts")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B (SHA-1 key), last six digits of the eight given there.
    #[test]
    fn rfc6238_vectors() {
        let key = b"12345678901234567890";
        for (t, code) in [
            (59u64, "287082"),
            (1111111109, "081804"),
            (1111111111, "050471"),
            (1234567890, "005924"),
            (2000000000, "279037"),
            (20000000000, "353130"),
        ] {
            assert_eq!(code_at(key, step_of(t)), code, "t={t}");
        }
    }

    #[test]
    fn window_and_format() {
        let key = b"12345678901234567890";
        let t = 1111111109;
        assert_eq!(matching_step(key, "081804", t), Some(step_of(t)));
        let before = code_at(key, step_of(t) - 1);
        assert_eq!(matching_step(key, &before, t), Some(step_of(t) - 1));
        let old = code_at(key, step_of(t) - 3);
        assert_eq!(
            matching_step(key, &old, t),
            None,
            "three steps ago is expired"
        );
        assert_eq!(matching_step(key, "81804", t), None);
        assert_eq!(matching_step(key, "08180a", t), None);
    }

    #[test]
    fn secrets() {
        let s = new_secret();
        assert_eq!(s.len(), 32);
        assert_eq!(decode_secret(&s).unwrap().len(), SECRET_BYTES);
        assert_eq!(
            decode_secret("gezd gnbv gy3t qojq"),
            Some(b"1234567890".to_vec())
        );
        assert!(decode_secret("not base32!").is_none());
        assert_eq!(
            provisioning_uri("a+b@example.org", "ABC"),
            "otpauth://totp/sponts:a%2Bb@example.org?secret=ABC&issuer=sponts"
        );
    }
}
