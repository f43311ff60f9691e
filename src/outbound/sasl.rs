//! SMTP AUTH (RFC 4954) mechanisms PLAIN (RFC 4616) and LOGIN: base64 in, credentials out.

/// What a client sends for PLAIN: `authzid NUL authcid NUL password`. An authzid other than the
/// authcid (acting for someone else) is not allowed: `None`, like any malformed response.
pub fn plain(response: &str) -> Option<(String, String)> {
    let raw = crate::base64::decode(response.trim())?;
    let mut parts = raw.split(|b| *b == 0);
    let (authz, user, pass) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let user = String::from_utf8(user.to_vec()).ok()?;
    let pass = String::from_utf8(pass.to_vec()).ok()?;
    if !authz.is_empty() && !String::from_utf8_lossy(authz).eq_ignore_ascii_case(&user) {
        return None;
    }
    Some((user, pass))
}

/// One LOGIN step (the user name, then the password), base64.
pub fn login_step(response: &str) -> Option<String> {
    String::from_utf8(crate::base64::decode(response.trim())?).ok()
}

/// `334` challenges of LOGIN: "Username:" and "Password:" in base64.
pub const LOGIN_USER: &str = "VXNlcm5hbWU6";
pub const LOGIN_PASSWORD: &str = "UGFzc3dvcmQ6";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_login_decode() {
        let b = |s: &[u8]| crate::base64::encode(s);
        assert_eq!(
            plain(&b(b"\0alice@example.org\0secret")),
            Some(("alice@example.org".into(), "secret".into()))
        );
        assert_eq!(
            plain(&b(b"alice@example.org\0alice@example.org\0secret")).map(|p| p.1),
            Some("secret".into())
        );
        assert_eq!(
            plain(&b(b"bob@example.org\0alice@example.org\0secret")),
            None,
            "acting for another"
        );
        assert_eq!(plain(&b(b"\0alice")), None);
        assert_eq!(plain("not base64!"), None);
        assert_eq!(
            login_step(&b(b"alice@example.org")).as_deref(),
            Some("alice@example.org")
        );
        assert_eq!(login_step(LOGIN_USER).as_deref(), Some("Username:"));
        assert_eq!(login_step(LOGIN_PASSWORD).as_deref(), Some("Password:"));
    }
}
