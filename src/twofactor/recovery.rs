//! Recovery codes: ten random codes shown once at enrolment, for the day the phone is gone.
//! Only their SHA-256 is stored (they are random, 80 bits each, so no slow hash is needed), and
//! each works once.

/// How many codes an enrolment gives.
pub const COUNT: usize = 10;

/// Fresh codes as shown to the person: `xxxx-xxxx-xxxx-xxxx` (base32, lowercase).
pub fn new_codes() -> Vec<String> {
    (0..COUNT)
        .map(|_| {
            let mut b = [0u8; 10];
            ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b)
                .expect("system random");
            let s = data_encoding::BASE32_NOPAD.encode(&b).to_ascii_lowercase();
            s.as_bytes()
                .chunks(4)
                .map(|c| std::str::from_utf8(c).unwrap_or_default())
                .collect::<Vec<_>>()
                .join("-")
        })
        .collect()
}

/// What is stored for a code as typed: dashes, spaces and case do not matter.
pub fn hash(code: &str) -> String {
    let clean: String = code
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    crate::auth::sha256_hex(clean.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_and_typing_is_forgiving() {
        let codes = new_codes();
        assert_eq!(codes.len(), COUNT);
        assert_eq!(codes[0].len(), 19);
        assert_ne!(codes[0], codes[1]);
        assert_eq!(
            hash(&codes[0]),
            hash(&codes[0].to_uppercase().replace('-', " "))
        );
    }
}
