//! The journal's MIME summary (`modules::journal::mime::summarize`) on any message: it never
//! panics, never loops, and keeps at most its limit of attachments, whatever the nesting.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|raw: &[u8]| {
    let s = sponts::modules::journal::mime::summarize(raw);
    assert!(s.attachments.len() <= 1000, "{} attachments", s.attachments.len());
});
