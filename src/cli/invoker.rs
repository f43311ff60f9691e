//! Who ran a command, for the journal and the audit log (`cli:NAME`). `$USER` is not asked:
//! anyone can set it, and `runuser` sets it to the service account. In order: the account the
//! session was logged in as (the kernel's login uid, kept across sudo, su and runuser), the
//! account that called sudo (`SUDO_USER`), and the real uid's name.

use std::ffi::CStr;

/// The login uid when the kernel has one (`/proc/self/loginuid`; unset is `u32::MAX`).
fn login_uid() -> Option<libc::uid_t> {
    let text = std::fs::read_to_string("/proc/self/loginuid").ok()?;
    text.trim()
        .parse::<libc::uid_t>()
        .ok()
        .filter(|u| *u != libc::uid_t::MAX)
}

/// A name from the password database, safe to put into a header (`by=` of a replay's trace).
fn user_name(uid: libc::uid_t) -> Option<String> {
    let mut buf = vec![0u8; 1024];
    loop {
        // SAFETY: `pwd` and `buf` outlive the call and `result`, which points into them.
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        let rc = unsafe {
            libc::getpwuid_r(
                uid,
                &mut pwd,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut result,
            )
        };
        if rc == libc::ERANGE && buf.len() < 1 << 20 {
            buf.resize(buf.len() * 2, 0);
            continue;
        }
        if rc != 0 || result.is_null() || pwd.pw_name.is_null() {
            return None;
        }
        // SAFETY: a successful getpwuid_r leaves a NUL-terminated name inside `buf`.
        let name = unsafe { CStr::from_ptr(pwd.pw_name) }
            .to_string_lossy()
            .into_owned();
        return plausible(&name).then_some(name);
    }
}

/// A user name as Unix tools make them: no spaces, no line breaks, not endless.
fn plausible(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-@$".contains(c))
}

/// The name of the account that ran this process (`uid N` when it has none).
pub fn account() -> String {
    if let Some(name) = login_uid().and_then(user_name) {
        return name;
    }
    if let Some(name) = std::env::var("SUDO_USER").ok().filter(|n| plausible(n)) {
        return name;
    }
    // SAFETY: getuid cannot fail.
    let uid = unsafe { libc::getuid() };
    user_name(uid).unwrap_or_else(|| format!("uid {uid}"))
}

/// `cli:NAME`, as the journal records who acted.
pub fn actor() -> String {
    format!("cli:{}", account())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_the_password_database() {
        assert_eq!(user_name(0).as_deref(), Some("root"));
        assert!(plausible("alice") && plausible("svc-sponts") && plausible("ad.min@corp"));
        assert!(!plausible("") && !plausible("a b") && !plausible("x\r\nX-Injected: 1"));
    }
}
