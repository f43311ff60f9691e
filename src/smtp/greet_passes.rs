//! Clients that lately waited for the whole greeting (see the session's greeting): they skip the
//! pause for `GREET_PASS`, as postscreen remembers a client that passed its tests. Kept in memory
//! only and bounded: a restart or a full table costs a passed client one more pause, nothing else.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a pass lasts.
pub const GREET_PASS: Duration = Duration::from_secs(24 * 3600);
/// Addresses remembered at most; when full, expired ones go, and if none has, all do.
const MAX_REMEMBERED: usize = 100_000;

#[derive(Default)]
pub struct GreetPasses {
    passed: Mutex<HashMap<IpAddr, Instant>>,
}

impl GreetPasses {
    pub fn passed(&self, ip: IpAddr) {
        let mut passed = self.passed.lock().expect("greet passes lock");
        if passed.len() >= MAX_REMEMBERED {
            passed.retain(|_, at| at.elapsed() < GREET_PASS);
            if passed.len() >= MAX_REMEMBERED {
                passed.clear();
            }
        }
        passed.insert(ip, Instant::now());
    }

    pub fn recently_passed(&self, ip: IpAddr) -> bool {
        self.passed
            .lock()
            .expect("greet passes lock")
            .get(&ip)
            .is_some_and(|at| at.elapsed() < GREET_PASS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pass_is_remembered_per_address_and_the_table_stays_bounded() {
        let p = GreetPasses::default();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        assert!(!p.recently_passed(a));
        p.passed(a);
        assert!(p.recently_passed(a) && !p.recently_passed("192.0.2.2".parse().unwrap()));
        for n in 0..(MAX_REMEMBERED as u32 + 10) {
            p.passed(IpAddr::from(n.to_be_bytes()));
        }
        assert!(p.passed.lock().unwrap().len() <= MAX_REMEMBERED);
    }
}
