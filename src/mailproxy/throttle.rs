//! Failed logins per client address at the proxies (`max_failed_logins`, `failed_login_block`):
//! after that many failures an address's logins are answered by sponts itself until the block has
//! passed since its last failure. Only the address counts, never the account: no one can lock
//! someone else out by mistyping their name. A success does not clear the count (else an attacker
//! with an account of their own could reset it between guesses); the count fades with the block.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::net::client_key;

/// Addresses remembered at most; beyond that, those whose block has passed are forgotten first.
const MAX_ADDRESSES: usize = 100_000;

pub struct Throttle {
    max_failures: u32,
    block: Duration,
    failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

impl Throttle {
    pub fn new(max_failures: u32, block: Duration) -> Throttle {
        Throttle {
            max_failures,
            block,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// True when a login from `ip` must be refused without asking the backend.
    pub fn blocked(&self, ip: IpAddr) -> bool {
        if self.max_failures == 0 {
            return false;
        }
        let map = self.failures.lock().expect("throttle lock");
        map.get(&client_key(ip))
            .is_some_and(|(n, last)| *n >= self.max_failures && last.elapsed() < self.block)
    }

    /// A login from `ip` the backend refused.
    pub fn failed(&self, ip: IpAddr) {
        if self.max_failures == 0 {
            return;
        }
        let mut map = self.failures.lock().expect("throttle lock");
        if map.len() >= MAX_ADDRESSES {
            map.retain(|_, (_, last)| last.elapsed() < self.block);
        }
        let entry = map.entry(client_key(ip)).or_insert((0, Instant::now()));
        if entry.1.elapsed() >= self.block {
            entry.0 = 0;
        }
        entry.0 += 1;
        entry.1 = Instant::now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_blocked_after_its_failures_and_no_other() {
        let t = Throttle::new(3, Duration::from_secs(60));
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..3 {
            assert!(!t.blocked(ip));
            t.failed(ip);
        }
        assert!(t.blocked(ip));
        assert!(
            t.blocked("::ffff:192.0.2.1".parse().unwrap()),
            "the same address, IPv4-mapped"
        );
        assert!(!t.blocked("192.0.2.2".parse().unwrap()));
        let v6: IpAddr = "2001:db8:1:2::7".parse().unwrap();
        for _ in 0..3 {
            t.failed(v6);
        }
        assert!(
            t.blocked("2001:db8:1:2:ffff::1".parse().unwrap()),
            "the same /64"
        );
        assert!(!t.blocked("2001:db8:1:3::7".parse().unwrap()));
        let off = Throttle::new(0, Duration::from_secs(60));
        for _ in 0..100 {
            off.failed(ip);
        }
        assert!(!off.blocked(ip), "0: never");
    }

    #[test]
    fn the_block_passes() {
        let t = Throttle::new(1, Duration::from_millis(30));
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        t.failed(ip);
        assert!(t.blocked(ip));
        std::thread::sleep(Duration::from_millis(40));
        assert!(!t.blocked(ip));
        t.failed(ip);
        assert!(
            t.blocked(ip),
            "counted afresh after the block: one failure is enough again with max 1"
        );
    }
}
