//! The SMTP command parser (`smtp::command::parse`) on any line: it never panics, a refusal is a
//! 5xx reply whose lines hold no CR or LF (nothing a client sends can add a line to a reply), and
//! an address it accepts is sent on to the backend as `<{address}>` and reads back the same
//! (what sponts relays is what it checked).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sponts::smtp::address::{parse_path, Side};
use sponts::smtp::command::{parse, Command};

fuzz_target!(|line: &[u8]| {
    match parse(line) {
        Err(reply) => {
            assert!((500..600).contains(&reply.code), "{reply:?}");
            for l in &reply.lines {
                assert!(!l.contains(['\r', '\n']), "a reply line with a line break: {reply:?}");
            }
        }
        Ok(Command::Mail { from: Some(a), .. }) => {
            let wire = a.to_string();
            assert!(!wire.contains(['\r', '\n', '<', '>', ' ']), "{wire:?}");
            assert_eq!(parse_path(&wire, Side::Sender), Ok(Some(a.clone())));
            assert_eq!(parse(format!("MAIL FROM:<{wire}>").as_bytes()).ok(), Some(Command::Mail { from: Some(a), params: Default::default() }));
        }
        Ok(Command::Rcpt { to }) => {
            let wire = to.to_string();
            assert!(!wire.contains(['\r', '\n', '<', '>', ' ']), "{wire:?}");
            // `<Postmaster>` alone has no domain; the session gives it the first local one.
            if !to.domain.is_empty() {
                assert_eq!(parse_path(&wire, Side::Recipient), Ok(Some(to.clone())));
            }
            assert_eq!(parse(format!("RCPT TO:<{wire}>").as_bytes()).ok(), Some(Command::Rcpt { to }));
        }
        Ok(Command::Ehlo(name) | Command::Helo(name)) => {
            assert!(!name.contains(['\r', '\n']), "{name:?}");
        }
        Ok(_) => {}
    }
});
