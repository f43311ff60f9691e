//! The directory's LDAP client parsing what a server sends (src/directory/ldap/): any bytes as one
//! whole message — a search entry or a result — and any text as a search filter. Never a panic,
//! never an allocation beyond the input's size.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let _ = sponts::directory::ldap::client::parse_any(input);
    if let Ok(text) = std::str::from_utf8(input) {
        let _ = sponts::directory::ldap::filter::encode(text);
        let escaped = sponts::directory::ldap::filter::escape(text);
        // An escaped value is always one equality item, whatever it held.
        let filter = format!("(mail={escaped})");
        if !text.is_empty() && !text.contains('\0') {
            assert!(sponts::directory::ldap::filter::encode(&filter).is_ok_and(|b| b[0] == 0xa3), "{filter}");
        }
    }
});
