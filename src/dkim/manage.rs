//! Making a domain's keys (`sponts dkim keygen`) and starting a rotation (`sponts dkim rotate`).
//! A domain's first key signs at once (nothing else would); any later key waits, pending, until
//! [`super::activation`] sees its record in DNS, so no message is ever signed with a key whose
//! record a verifier cannot find.

use anyhow::{Result, bail};

use super::keys::{self, Algorithm};
use crate::storage::{DkimKey, DkimKeyInfo, DkimKeyState, Store};

/// A selector is a dot-separated sub-domain (RFC 6376 §3.1): letters, digits, hyphens.
pub fn check_selector(selector: &str) -> Result<()> {
    let ok = !selector.is_empty()
        && selector.len() <= 63
        && selector.split('.').all(|l| {
            !l.is_empty()
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if !ok {
        bail!("`{selector}` is not a selector (letters, digits and hyphens, dot-separated)");
    }
    Ok(())
}

fn check_domain(domain: &str) -> Result<String> {
    let domain = domain.trim().trim_end_matches('.').to_ascii_lowercase();
    if !crate::address::is_domain(&domain) {
        bail!("`{domain}` is not a domain name");
    }
    Ok(domain)
}

/// A selector not yet used by the domain: the algorithm and today's date, e.g. `ed20261204`.
fn fresh_selector(existing: &[DkimKeyInfo], algorithm: Algorithm) -> String {
    let (y, m, d) = crate::clock::date(crate::clock::now_us());
    let base = format!(
        "{}{y}{m:02}{d:02}",
        if algorithm == Algorithm::Rsa {
            "rsa"
        } else {
            "ed"
        }
    );
    let taken = |s: &str| existing.iter().any(|k| k.selector == s);
    if !taken(&base) {
        return base;
    }
    (2..)
        .map(|n| format!("{base}-{n}"))
        .find(|s| !taken(s))
        .expect("an unused selector")
}

async fn make(
    store: &Store,
    domain: &str,
    selector: Option<&str>,
    algorithm: Algorithm,
    replaces: Option<String>,
) -> Result<DkimKeyInfo> {
    let existing = store.dkim_keys(Some(domain)).await?;
    let selector = match selector {
        Some(s) => {
            check_selector(s)?;
            s.to_ascii_lowercase()
        }
        None => fresh_selector(&existing, algorithm),
    };
    let first = !existing.iter().any(|k| k.state != DkimKeyState::Retired);
    let (pkcs8, public_key) = keys::generate(algorithm)?;
    let now = crate::clock::now_us();
    let info = DkimKeyInfo {
        domain: domain.to_string(),
        selector,
        algorithm: algorithm.as_str().to_string(),
        state: if first && replaces.is_none() {
            DkimKeyState::Active
        } else {
            DkimKeyState::Pending
        },
        public_key,
        created_us: now,
        activated_us: (first && replaces.is_none()).then_some(now),
        retire_after_us: None,
        retired_us: None,
        replaces,
    };
    store
        .insert_dkim_key(&DkimKey {
            info: info.clone(),
            pkcs8,
        })
        .await?;
    super::signer::forget_cached_keys();
    tracing::info!(domain = %info.domain, selector = %info.selector, algorithm = %info.algorithm, state = info.state.as_str(), "DKIM key made");
    Ok(info)
}

/// A new key for `domain`: active at once when it is the domain's first, else pending until its
/// record is in DNS (then it signs beside the others).
pub async fn keygen(
    store: &Store,
    domain: &str,
    selector: Option<&str>,
    algorithm: Algorithm,
) -> Result<DkimKeyInfo> {
    make(store, &check_domain(domain)?, selector, algorithm, None).await
}

/// A successor for one of the domain's active keys (`from`; may be left out when there is only
/// one), with the same algorithm unless told. It is pending until its record is in DNS; then it
/// signs, and the old key signs beside it for `dkim.overlap` before it retires.
pub async fn rotate(
    store: &Store,
    domain: &str,
    from: Option<&str>,
    selector: Option<&str>,
    algorithm: Option<Algorithm>,
) -> Result<DkimKeyInfo> {
    let domain = check_domain(domain)?;
    let keys = store.dkim_keys(Some(&domain)).await?;
    let active: Vec<&DkimKeyInfo> = keys
        .iter()
        .filter(|k| k.state == DkimKeyState::Active)
        .collect();
    let old = match from {
        Some(sel) => match active.iter().find(|k| k.selector.eq_ignore_ascii_case(sel)) {
            Some(k) => *k,
            None => bail!("{domain} has no active key with selector {sel}"),
        },
        None => match active.as_slice() {
            [] => bail!(
                "{domain} has no active DKIM key to rotate (make one with `sponts dkim keygen {domain}`)"
            ),
            [one] => *one,
            many => bail!(
                "{domain} has {} active keys ({}): say which one with --from SELECTOR",
                many.len(),
                many.iter()
                    .map(|k| k.selector.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        },
    };
    if let Some(p) = keys
        .iter()
        .find(|k| k.state == DkimKeyState::Pending && k.replaces.as_deref() == Some(&old.selector))
    {
        bail!(
            "a rotation of {domain}'s key {} is already under way: new selector {} waits for its DNS record",
            old.selector,
            p.selector
        );
    }
    let algorithm = match algorithm {
        Some(a) => a,
        None => Algorithm::parse(&old.algorithm)?,
    };
    make(
        store,
        &domain,
        selector,
        algorithm,
        Some(old.selector.clone()),
    )
    .await
}
