//! The emergency POP3 server's command handling, one whole session per input over loopback TCP
//! against a sponts running in this process (see `src/lib.rs`): the session never panics, always
//! ends when the client has gone, and every reply line starts `+OK`, `-ERR` or `+ ` or belongs to
//! a multi-line answer (a message, a listing, CAPA) that ends in its `.` line.
//!
//! Input: one octet of mode (odd: the harness signs in as alice first, so the input reaches
//! STAT, LIST, UIDL, RETR, TOP, DELE, RSET; even: the input is the whole dialogue), then the
//! client's bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sponts_fuzz::{converse, gateway, next_client_address, PASSWORD};

fuzz_target!(|input: &[u8]| {
    let Some((&mode, client)) = input.split_first() else { return };
    let mut wire = Vec::new();
    if mode & 1 == 1 {
        wire.extend_from_slice(format!("USER alice@example.org\r\nPASS {PASSWORD}\r\n").as_bytes());
    }
    wire.extend_from_slice(client);
    let out = converse(gateway().pop3, next_client_address(), &wire, b"");
    assert!(out.starts_with(b"+OK "), "no greeting: {:?}", String::from_utf8_lossy(&out));
    if mode & 1 == 1 {
        let second = out.split(|&b| b == b'\n').nth(2).unwrap_or_default();
        // The maildrop shrinks as inputs DELE and QUIT (the gateway lives across inputs).
        assert!(second.starts_with(b"+OK ") && second.windows(8).any(|w| w == b"messages"), "the harness' sign-in failed: {:?}", String::from_utf8_lossy(&out));
    }
});
