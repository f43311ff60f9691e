//! Transaction ids: short, unique across nodes sharing one database, and sortable by time, so
//! that one id finds a mail in the replies, the logs, the journal and every later module.

use std::sync::atomic::{AtomicU64, Ordering};

const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// 9 characters of milliseconds, then 7 of node-random bits mixed with a counter.
pub fn new_transaction_id() -> String {
    let ms = (crate::clock::now_us() / 1000) as u64;
    let seq = COUNTER.fetch_add(1, Ordering::Relaxed);
    let tail = (node_salt() ^ seq.wrapping_mul(0x9E37_79B9_7F4A_7C15)) & ((1 << 35) - 1);
    let mut out = String::with_capacity(16);
    push_base32(&mut out, ms, 9);
    push_base32(&mut out, tail, 7);
    out
}

fn push_base32(out: &mut String, value: u64, digits: u32) {
    for i in (0..digits).rev() {
        out.push(ALPHABET[((value >> (5 * i)) & 31) as usize] as char);
    }
}

/// Random bits drawn once per process.
fn node_salt() -> u64 {
    static SALT: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *SALT.get_or_init(|| {
        let mut b = [0u8; 8];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b)
            .expect("system random");
        u64::from_le_bytes(b)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_time_ordered() {
        let ids: Vec<String> = (0..10_000).map(|_| new_transaction_id()).collect();
        let set: std::collections::HashSet<_> = ids.iter().collect();
        assert_eq!(set.len(), ids.len());
        assert!(
            ids.iter()
                .all(|i| i.len() == 16 && i.bytes().all(|b| ALPHABET.contains(&b)))
        );
        assert!(ids.first().unwrap()[..9] <= ids.last().unwrap()[..9]);
    }
}
