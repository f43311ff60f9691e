//! The IMAP proxy's reading of both sides, one whole session per input over loopback TCP against
//! a sponts running in this process (see `src/lib.rs`): before login sponts reads every client
//! command (tags, literals, LOGIN and AUTHENTICATE arguments, STARTTLS, ID); after the login of an
//! interception target it reads both directions (APPEND literals up, FETCH body literals down,
//! COMPRESS). The session never panics and always ends once client and backend have gone.
//!
//! Input: one octet of mode (odd: the harness logs in as the target first; even: the input is the
//! whole client dialogue), two octets giving how much of the rest is the client's, then the
//! client's bytes, then what the backend says after the login.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sponts_fuzz::{converse, gateway, next_client_address};

fuzz_target!(|input: &[u8]| {
    let [mode, a, b, rest @ ..] = input else { return };
    let split = (u16::from_le_bytes([*a, *b]) as usize).min(rest.len());
    let (client, backend) = rest.split_at(split);
    let mut wire = Vec::new();
    if mode & 1 == 1 {
        wire.extend_from_slice(b"L1 LOGIN target secret\r\n");
    }
    wire.extend_from_slice(client);
    let out = converse(gateway().imap, next_client_address(), &wire, backend);
    assert!(out.starts_with(b"* OK"), "no greeting: {:?}", String::from_utf8_lossy(&out));
});
