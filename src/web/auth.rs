//! Who is asking: a session cookie (browser) or a bearer token (API), both backed by the
//! `web_sessions` table, or an admin-made API token (`api_tokens`); how far the session has come
//! (the second factor still to give or to enrol); CSRF tokens for cookie sessions; and login
//! throttling per client address and per account (password and second factor alike).

use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::header::{AUTHORIZATION, COOKIE};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::Web;
use crate::storage::{Role, User};

pub const COOKIE_NAME: &str = "sponts_session";

/// The signed-in user of a request.
#[derive(Debug, Clone)]
pub struct Viewer {
    pub user: User,
    /// The user's address and aliases, lowercase: the mail they may see.
    pub addresses: Vec<String>,
    /// Set for cookie sessions: state-changing requests must echo it.
    pub csrf: Option<String>,
    pub token_hash: String,
    /// This session gave a second factor (false for API tokens: they are no session).
    pub second_factor: bool,
}

/// How far a session has come. Only `Full` reaches the pages and the API; the others reach the
/// second factor's code page or the enrolment page (and sign-out).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Full,
    /// The password was right; the account's second factor is still to give.
    Code,
    /// The account's role needs a second factor and it has none yet.
    Enrol,
}

/// API tokens start with this, so a bearer is looked up in the right table.
pub const API_TOKEN_PREFIX: &str = "spt_";

impl Viewer {
    pub fn is_admin(&self) -> bool {
        self.user.role == Role::Admin
    }

    /// CSRF: a cookie session must present its token; a bearer token is not ambient, so it need not.
    pub fn check_csrf(&self, presented: Option<&str>) -> Result<(), StatusCode> {
        match &self.csrf {
            None => Ok(()),
            Some(expected)
                if presented
                    .is_some_and(|p| constant_time_eq(p.as_bytes(), expected.as_bytes())) =>
            {
                Ok(())
            }
            Some(_) => Err(StatusCode::FORBIDDEN),
        }
    }

    pub fn actor(&self) -> String {
        format!("web:{}", self.user.address)
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// 32 random bytes, hex.
pub fn random_token() -> String {
    let mut b = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b)
        .expect("system random");
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub fn token_hash(token: &str) -> String {
    crate::auth::sha256_hex(token.as_bytes())
}

fn cookie_token(parts: &Parts) -> Option<String> {
    parts
        .headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|kv| {
            let (k, v) = kv.trim().split_once('=')?;
            (k == COOKIE_NAME && !v.is_empty()).then(|| v.to_string())
        })
}

async fn viewer(parts: &Parts, web: &Web) -> Option<(Viewer, Stage)> {
    let bearer = parts
        .headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string);
    let (token, via_cookie) = match bearer {
        Some(t) => (t, false),
        None => (cookie_token(parts)?, true),
    };
    let hash = token_hash(token.trim());
    if !via_cookie && token.starts_with(API_TOKEN_PREFIX) {
        // An API token acts with its creator's role as it is now.
        let address = web.store.api_token_owner(&hash).await.ok()??;
        let user = web.store.user(&address).await.ok()??;
        return Some((signed_in(user, None, hash, false), Stage::Full));
    }
    let session = web.store.session(&hash).await.ok()??;
    let user = web.store.user(&session.address).await.ok()??;
    let stage = if session.second_factor {
        Stage::Full
    } else if crate::twofactor::enrolled(&web.store, &user.address)
        .await
        .ok()?
    {
        Stage::Code
    } else if crate::twofactor::required(&web.config, user.role) {
        Stage::Enrol
    } else {
        Stage::Full
    };
    Some((
        signed_in(
            user,
            via_cookie.then_some(session.csrf),
            hash,
            session.second_factor,
        ),
        stage,
    ))
}

fn signed_in(user: User, csrf: Option<String>, token_hash: String, second_factor: bool) -> Viewer {
    // An interception officer sees no mail at all, not even to their own address.
    let mut addresses = Vec::new();
    if user.role != Role::Interception {
        addresses.push(user.address.to_lowercase());
        addresses.extend(user.aliases.iter().map(|a| a.to_lowercase()));
    }
    Viewer {
        user,
        addresses,
        csrf,
        token_hash,
        second_factor,
    }
}

/// A signed-in user, for the JSON API: 401 otherwise.
pub struct ApiViewer(pub Viewer);

impl FromRequestParts<Web> for ApiViewer {
    type Rejection = Response;
    async fn from_request_parts(parts: &mut Parts, web: &Web) -> Result<Self, Self::Rejection> {
        match viewer(parts, web).await {
            Some((v, Stage::Full)) => Ok(ApiViewer(v)),
            Some((_, Stage::Code)) => Err(super::api::error(
                StatusCode::UNAUTHORIZED,
                "the second factor is still to give: sign in again with `totp`",
            )),
            Some((_, Stage::Enrol)) => Err(super::api::error(
                StatusCode::UNAUTHORIZED,
                "this account must enrol a second factor first: sign in to the web UI",
            )),
            None => Err(super::api::error(
                StatusCode::UNAUTHORIZED,
                "sign in first: POST /api/v1/login",
            )),
        }
    }
}

/// A signed-in user, for HTML pages: a redirect to the login page otherwise.
pub struct PageViewer(pub Viewer);

impl FromRequestParts<Web> for PageViewer {
    type Rejection = Response;
    async fn from_request_parts(parts: &mut Parts, web: &Web) -> Result<Self, Self::Rejection> {
        match viewer(parts, web).await {
            Some((v, Stage::Full)) => Ok(PageViewer(v)),
            Some((_, Stage::Code)) => Err(Redirect::to("/login/code").into_response()),
            Some((_, Stage::Enrol)) => Err(Redirect::to("/account/2fa").into_response()),
            None => Err(Redirect::to("/login").into_response()),
        }
    }
}

/// A session at any stage, for the second factor's pages and sign-out: a redirect to the login
/// page without one.
pub struct SigningIn(pub Viewer, pub Stage);

impl FromRequestParts<Web> for SigningIn {
    type Rejection = Response;
    async fn from_request_parts(parts: &mut Parts, web: &Web) -> Result<Self, Self::Rejection> {
        match viewer(parts, web).await {
            Some((v, stage)) => Ok(SigningIn(v, stage)),
            None => Err(Redirect::to("/login").into_response()),
        }
    }
}

/// Failed logins per client address and per account: after `FREE` failures within `WINDOW`, each
/// further attempt must wait, doubling up to `MAX_WAIT`. A success clears the account's record.
#[derive(Default)]
pub struct Throttle {
    failures: Mutex<HashMap<String, (u32, Instant)>>,
}

const FREE: u32 = 5;
const WINDOW: Duration = Duration::from_secs(15 * 60);
const MAX_WAIT: Duration = Duration::from_secs(15 * 60);

impl Throttle {
    fn keys(ip: IpAddr, account: &str) -> [String; 2] {
        [
            format!("ip:{ip}"),
            format!("user:{}", account.to_lowercase()),
        ]
    }

    /// `Some(wait)` when this attempt must be refused without checking the password.
    pub fn blocked(&self, ip: IpAddr, account: &str) -> Option<Duration> {
        let map = self.failures.lock().expect("throttle lock");
        Self::keys(ip, account)
            .iter()
            .filter_map(|k| map.get(k))
            .filter(|(n, last)| *n >= FREE && last.elapsed() < WINDOW)
            .map(|(n, last)| {
                let wait = Duration::from_secs(1u64 << (n - FREE).min(10)).min(MAX_WAIT);
                wait.saturating_sub(last.elapsed())
            })
            .filter(|w| !w.is_zero())
            .max()
    }

    /// Counts an attempt as failed before its (slow) check, so parallel attempts cannot slip
    /// past the throttle. The wait it may bring runs from when the check is over — when the
    /// returned attempt is dropped: a check that takes seconds (a directory's bind) does not
    /// use the wait up.
    #[must_use = "the wait runs from when the attempt is dropped"]
    pub fn failed(&self, ip: IpAddr, account: &str) -> Attempt<'_> {
        let keys = Self::keys(ip, account);
        let mut map = self.failures.lock().expect("throttle lock");
        if map.len() > 100_000 {
            map.retain(|_, (_, last)| last.elapsed() < WINDOW);
        }
        let now = Instant::now();
        let mut counted = [(0, now, None); 2];
        for (k, slot) in keys.iter().zip(&mut counted) {
            let e = map.entry(k.clone()).or_insert((0, now));
            let before = (e.0 > 0 && e.1.elapsed() < WINDOW).then_some(e.1);
            if before.is_none() {
                e.0 = 0;
            }
            e.0 += 1;
            e.1 = now;
            *slot = (e.0, now, before);
        }
        Attempt {
            throttle: self,
            keys,
            counted,
        }
    }

    /// The attempt counted by `failed` was no failure, though sign-in is not complete yet (the
    /// password was right, the second factor comes next): it is taken back, nothing is cleared.
    pub fn forgive(&self, ip: IpAddr, account: &str) {
        let mut map = self.failures.lock().expect("throttle lock");
        for k in Self::keys(ip, account) {
            if let Some(e) = map.get_mut(&k) {
                e.0 = e.0.saturating_sub(1);
            }
        }
    }

    /// The attempt counted by `failed` before the check turned out right: the account's record
    /// goes, the address gets its attempt back.
    pub fn succeeded(&self, ip: IpAddr, account: &str) {
        let mut map = self.failures.lock().expect("throttle lock");
        map.remove(&format!("user:{}", account.to_lowercase()));
        if let Some(e) = map.get_mut(&format!("ip:{ip}")) {
            e.0 = e.0.saturating_sub(1);
        }
    }
}

/// An attempt counted by [`Throttle::failed`] whose check is under way.
pub struct Attempt<'a> {
    throttle: &'a Throttle,
    keys: [String; 2],
    /// Per key: its count with this attempt in it, the time it was stamped with, and the stamp
    /// it had before.
    counted: [(u32, Instant, Option<Instant>); 2],
}

impl Drop for Attempt<'_> {
    /// A record the attempt still counts in waits from now; one it was taken back from (by
    /// `succeeded` or `forgive`) gets its earlier time back.
    fn drop(&mut self) {
        let Ok(mut map) = self.throttle.failures.lock() else {
            return;
        };
        for (k, (count, stamped, before)) in self.keys.iter().zip(self.counted) {
            let Some(e) = map.get_mut(k) else { continue };
            if e.0 >= count {
                e.1 = Instant::now();
            } else if let Some(before) = before.filter(|_| e.1 == stamped) {
                e.1 = before;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttle_blocks_after_free_attempts_per_ip_and_per_account() {
        let t = Throttle::default();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..FREE {
            assert!(t.blocked(ip, "a@example.org").is_none());
            let _ = t.failed(ip, "a@example.org");
        }
        assert!(t.blocked(ip, "a@example.org").is_some());
        assert!(t.blocked(ip, "other@example.org").is_some(), "same address");
        assert!(
            t.blocked("192.0.2.2".parse().unwrap(), "a@example.org")
                .is_some(),
            "same account"
        );
        assert!(
            t.blocked("192.0.2.2".parse().unwrap(), "b@example.org")
                .is_none()
        );
    }

    #[test]
    fn the_wait_runs_from_the_end_of_a_slow_check() {
        let t = Throttle::default();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 1..FREE {
            let _ = t.failed(ip, "a@example.org");
        }
        let fifth = t.failed(ip, "a@example.org");
        // The check outlasts the first wait (one second).
        std::thread::sleep(Duration::from_millis(1100));
        drop(fifth);
        let wait = t.blocked(ip, "a@example.org").expect("still blocked");
        assert!(wait > Duration::from_millis(800), "{wait:?}");
    }

    #[test]
    fn a_success_or_a_right_password_does_not_restart_the_wait() {
        let t = Throttle::default();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..FREE {
            let _ = t.failed(ip, "a@example.org");
        }
        std::thread::sleep(Duration::from_millis(1100));
        // The address's wait is over; someone at it signs in, someone else gets the code page.
        let attempt = t.failed(ip, "a@example.org");
        t.succeeded(ip, "a@example.org");
        drop(attempt);
        assert_eq!(t.blocked(ip, "a@example.org"), None);
        let attempt = t.failed(ip, "b@example.org");
        t.forgive(ip, "b@example.org");
        drop(attempt);
        assert_eq!(t.blocked(ip, "b@example.org"), None);
    }

    #[test]
    fn tokens() {
        let a = random_token();
        assert_eq!(a.len(), 64);
        assert_ne!(a, random_token());
        assert_eq!(
            token_hash("x"),
            "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881"
        );
    }
}
