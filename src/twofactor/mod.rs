//! The second factor after the password: TOTP codes from an authenticator app, with recovery
//! codes for a lost phone. Which roles must have one is `web.require_2fa_for`; anyone may turn
//! it on. The web layer asks here; the secrets live in `storage`.
//!
//! - [`totp`]: RFC 6238 codes (HMAC-SHA-1 from ring), the secret, the `otpauth://` link.
//! - [`qr`]: that link as an inline SVG QR code; [`recovery`]: one-time recovery codes.

pub mod qr;
pub mod recovery;
pub mod totp;

use anyhow::Result;

use crate::config::Config;
use crate::storage::{Role, Store};

/// Must accounts of this role sign in with a second factor?
pub fn required(config: &Config, role: Role) -> bool {
    config
        .web
        .require_2fa_for
        .iter()
        .any(|r| r == role.as_str())
}

/// Has the account a confirmed second factor?
pub async fn enrolled(store: &Store, address: &str) -> Result<bool> {
    Ok(store.totp(address).await?.is_some_and(|t| t.active))
}

fn unix_secs() -> u64 {
    (crate::clock::now_us().max(0) / 1_000_000) as u64
}

/// Checks a code given at sign-in: the current TOTP code (each step's code once) or an unused
/// recovery code (used up by this). False for anything else.
pub async fn check_code(store: &Store, address: &str, code: &str) -> Result<bool> {
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    let Some(t) = store.totp(address).await?.filter(|t| t.active) else {
        return Ok(false);
    };
    if code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()) {
        let Some(key) = totp::decode_secret(&t.secret) else {
            return Ok(false);
        };
        return match totp::matching_step(&key, &code, unix_secs()) {
            Some(step) => store.claim_totp_step(address, step as i64).await,
            None => Ok(false),
        };
    }
    if code.len() < 16 {
        return Ok(false);
    }
    let used = store
        .use_recovery_code(address, &recovery::hash(&code))
        .await?;
    if used {
        tracing::info!(user = %address, "recovery code used");
    }
    Ok(used)
}

/// The secret being enrolled: the pending one, or a new one. `None` when the account has an
/// active second factor already.
pub async fn pending_secret(store: &Store, address: &str) -> Result<Option<String>> {
    match store.totp(address).await? {
        Some(t) if t.active => Ok(None),
        Some(t) => Ok(Some(t.secret)),
        None => {
            let secret = totp::new_secret();
            Ok(store
                .put_pending_totp(address, &secret)
                .await?
                .then_some(secret))
        }
    }
}

/// Confirms the pending secret with its first code: returns the recovery codes to show once,
/// or `None` when the code is wrong (or nothing is pending). `session` (a token hash) counts as
/// past the second factor from now on.
pub async fn confirm(
    store: &Store,
    address: &str,
    code: &str,
    session: Option<&str>,
) -> Result<Option<Vec<String>>> {
    let Some(t) = store.totp(address).await?.filter(|t| !t.active) else {
        return Ok(None);
    };
    let Some(key) = totp::decode_secret(&t.secret) else {
        return Ok(None);
    };
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    let Some(step) = totp::matching_step(&key, &code, unix_secs()) else {
        return Ok(None);
    };
    let codes = recovery::new_codes();
    let hashes: Vec<String> = codes.iter().map(|c| recovery::hash(c)).collect();
    Ok(store
        .activate_totp(address, step as i64, &hashes, session)
        .await?
        .then_some(codes))
}
