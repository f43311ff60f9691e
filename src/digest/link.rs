//! Signed one-click replay links: `ID.RCPT_HEX.EXPIRES.SIG`, where SIG is an HMAC-SHA256 (keyed
//! by a secret kept in the database, the same on every node) over the other three. A "Not spam"
//! link (deliver and teach the filter) is `ns.ID.RCPT_HEX.EXPIRES.SIG`, signed with the `ns.`
//! in front, so neither kind can be made into the other. A link is single-use: its hash is
//! recorded when it is used (with its sibling's: one message is delivered once).

use ring::hmac;

use crate::storage::Store;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub id: String,
    pub rcpt: String,
    pub expires_us: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkError {
    Invalid,
    Expired,
}

pub async fn key(store: &Store) -> anyhow::Result<hmac::Key> {
    let secret = store
        .secret("replay_link_key", &crate::web::auth::random_token())
        .await?;
    Ok(hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes()))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// What a link does when used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Deliver the message (replay).
    Deliver,
    /// Deliver it and teach the filter it is not spam.
    NotSpam,
}

impl Action {
    fn prefix(self) -> &'static str {
        match self {
            Action::Deliver => "",
            Action::NotSpam => "ns.",
        }
    }
}

fn signature(key: &hmac::Key, prefix: &str, id: &str, rcpt_hex: &str, expires: i64) -> String {
    hex(&hmac::sign(key, format!("{prefix}{id}.{rcpt_hex}.{expires}").as_bytes()).as_ref()[..20])
}

pub fn sign(key: &hmac::Key, link: &Link) -> String {
    sign_for(key, link, Action::Deliver)
}

pub fn sign_for(key: &hmac::Key, link: &Link, action: Action) -> String {
    let rcpt_hex = hex(link.rcpt.as_bytes());
    let prefix = action.prefix();
    format!(
        "{prefix}{}.{rcpt_hex}.{}.{}",
        link.id,
        link.expires_us,
        signature(key, prefix, &link.id, &rcpt_hex, link.expires_us)
    )
}

/// A replay link's link (Not spam links are refused: see [`verify_action`]).
pub fn verify(key: &hmac::Key, token: &str, now_us: i64) -> Result<Link, LinkError> {
    match verify_action(key, token, now_us)? {
        (link, Action::Deliver) => Ok(link),
        _ => Err(LinkError::Invalid),
    }
}

/// A link of either kind, with what it does.
pub fn verify_action(
    key: &hmac::Key,
    token: &str,
    now_us: i64,
) -> Result<(Link, Action), LinkError> {
    let (action, rest) = match token.strip_prefix(Action::NotSpam.prefix()) {
        Some(rest) => (Action::NotSpam, rest),
        None => (Action::Deliver, token),
    };
    verify_parts(key, action, rest, now_us).map(|l| (l, action))
}

fn verify_parts(
    key: &hmac::Key,
    action: Action,
    token: &str,
    now_us: i64,
) -> Result<Link, LinkError> {
    let parts: Vec<&str> = token.split('.').collect();
    let [id, rcpt_hex, expires_text, sig] = parts[..] else {
        return Err(LinkError::Invalid);
    };
    let expires: i64 = expires_text.parse().map_err(|_| LinkError::Invalid)?;
    // One spelling per link: `+1000` or `01000` must not make a second "unused" token.
    if expires.to_string() != expires_text {
        return Err(LinkError::Invalid);
    }
    let want = signature(key, action.prefix(), id, rcpt_hex, expires);
    let ok = want.len() == sig.len()
        && want
            .bytes()
            .zip(sig.bytes())
            .fold(0u8, |a, (x, y)| a | (x ^ y))
            == 0;
    if !ok {
        return Err(LinkError::Invalid);
    }
    if now_us > expires {
        return Err(LinkError::Expired);
    }
    let rcpt = String::from_utf8(unhex(rcpt_hex).ok_or(LinkError::Invalid)?)
        .map_err(|_| LinkError::Invalid)?;
    Ok(Link {
        id: id.to_string(),
        rcpt,
        expires_us: expires,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_verify_tamper_expire() {
        let key = hmac::Key::new(hmac::HMAC_SHA256, b"test key");
        let link = Link {
            id: "01ABC".into(),
            rcpt: "alice@example.org".into(),
            expires_us: 1_000,
        };
        let t = sign(&key, &link);
        assert_eq!(verify(&key, &t, 999), Ok(link.clone()));
        assert_eq!(verify(&key, &t, 1_001), Err(LinkError::Expired));
        let other = sign(
            &key,
            &Link {
                rcpt: "mallory@example.org".into(),
                ..link.clone()
            },
        );
        let forged = format!(
            "{}.{}",
            t.rsplitn(2, '.')
                .nth(1)
                .unwrap()
                .replace(&hex(b"alice@example.org"), &hex(b"mallory@example.org")),
            t.rsplit('.').next().unwrap()
        );
        assert_ne!(forged, other);
        assert_eq!(verify(&key, &forged, 0), Err(LinkError::Invalid));
        assert_eq!(
            verify(&hmac::Key::new(hmac::HMAC_SHA256, b"other key"), &t, 0),
            Err(LinkError::Invalid)
        );
        assert_eq!(verify(&key, "garbage", 0), Err(LinkError::Invalid));
        let respelled = t.replace(".1000.", ".01000.");
        assert_eq!(
            verify(&key, &respelled, 0),
            Err(LinkError::Invalid),
            "no second spelling of the same link"
        );
    }

    #[test]
    fn a_not_spam_link_is_its_own_kind() {
        let key = hmac::Key::new(hmac::HMAC_SHA256, b"test key");
        let link = Link {
            id: "01ABC".into(),
            rcpt: "alice@example.org".into(),
            expires_us: 1_000,
        };
        let ns = sign_for(&key, &link, Action::NotSpam);
        assert!(ns.starts_with("ns."));
        assert_eq!(
            verify_action(&key, &ns, 0),
            Ok((link.clone(), Action::NotSpam))
        );
        assert_eq!(
            verify_action(&key, &sign(&key, &link), 0),
            Ok((link.clone(), Action::Deliver))
        );
        assert_eq!(
            verify(&key, &ns, 0),
            Err(LinkError::Invalid),
            "not a replay link"
        );
        assert_eq!(
            verify_action(&key, &format!("ns.{}", sign(&key, &link)), 0),
            Err(LinkError::Invalid),
            "a replay link cannot be made one"
        );
        assert_eq!(
            verify_action(&key, ns.trim_start_matches("ns."), 0),
            Err(LinkError::Invalid),
            "nor the other way round"
        );
    }
}
