//! The rotation job of `sponts serve`: a pending key starts signing once its TXT record is seen
//! in DNS with the same public key (through `outbound.resolver` when set, else the system's);
//! the key it replaces then signs beside it for `dkim.overlap` and retires. Every node runs the
//! job; state changes are conditional on the old state, so two nodes make each change once.

use anyhow::{Result, anyhow};
use mail_auth::MessageAuthenticator;
use mail_auth::hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use std::net::SocketAddr;

use super::record;
use crate::config::DkimConfig;
use crate::storage::{DkimKeyState, Store};

/// A resolver without a cache of its own, made per round: a record published a minute ago must
/// not be hidden by a negative answer remembered from before.
fn resolver(address: Option<SocketAddr>) -> Result<MessageAuthenticator> {
    let Some(address) = address else {
        return MessageAuthenticator::new_system_conf()
            .map_err(|e| anyhow!("cannot read the system's resolver configuration: {e}"));
    };
    let mut server = NameServerConfig::udp_and_tcp(address.ip());
    for c in &mut server.connections {
        c.port = address.port();
    }
    let mut opts = ResolverOpts::default();
    opts.timeout = std::time::Duration::from_secs(5);
    opts.attempts = 2;
    opts.cache_size = 0;
    MessageAuthenticator::new(ResolverConfig::from_name_servers(vec![server]), opts)
        .map_err(|e| anyhow!("DNS resolver {address}: {e}"))
}

/// What one round changed, for the log and the tests: `(domain, selector, new state)`.
pub type Changes = Vec<(String, String, DkimKeyState)>;

/// One round: activates pending keys whose record is published, retires keys whose overlap is over.
pub async fn check_once(
    store: &Store,
    config: &DkimConfig,
    resolver_address: Option<SocketAddr>,
) -> Result<Changes> {
    let keys = store.dkim_keys(None).await?;
    let now = crate::clock::now_us();
    let mut changes = Changes::new();
    let pending: Vec<_> = keys
        .iter()
        .filter(|k| k.state == DkimKeyState::Pending)
        .collect();
    let dns = if pending.is_empty() {
        None
    } else {
        Some(resolver(resolver_address)?)
    };
    for key in pending {
        let name = format!("{}.", record::name(&key.selector, &key.domain));
        let found = match dns
            .as_ref()
            .expect("made when keys are pending")
            .txt_raw_lookup(name.as_str())
            .await
        {
            Ok(text) => record::parse(&String::from_utf8_lossy(&text)),
            Err(e) => {
                tracing::debug!(domain = %key.domain, selector = %key.selector, "DKIM record not seen yet: {e}");
                None
            }
        };
        match found {
            Some((k, p)) if k == key.algorithm && p == key.public_key => {}
            Some(_) => {
                tracing::warn!(domain = %key.domain, selector = %key.selector, "the DKIM record in DNS ({name}) does not carry this key's public key; the key stays pending");
                continue;
            }
            None => continue,
        }
        if !store
            .set_dkim_key_state(
                &key.domain,
                &key.selector,
                DkimKeyState::Pending,
                DkimKeyState::Active,
                None,
            )
            .await?
        {
            continue;
        }
        tracing::info!(domain = %key.domain, selector = %key.selector, "DKIM key active: its record is in DNS");
        changes.push((
            key.domain.clone(),
            key.selector.clone(),
            DkimKeyState::Active,
        ));
        if let Some(old) = &key.replaces {
            let until = now + config.overlap.0.as_micros() as i64;
            if store
                .set_dkim_key_state(
                    &key.domain,
                    old,
                    DkimKeyState::Active,
                    DkimKeyState::Retiring,
                    Some(until),
                )
                .await?
            {
                tracing::info!(domain = %key.domain, selector = %old, "DKIM key retiring: signs beside {} until {}", key.selector, crate::clock::rfc3339(until));
                changes.push((key.domain.clone(), old.clone(), DkimKeyState::Retiring));
            }
        }
    }
    for key in keys.iter().filter(|k| {
        k.state == DkimKeyState::Retiring && k.retire_after_us.is_some_and(|t| t <= now)
    }) {
        if store
            .set_dkim_key_state(
                &key.domain,
                &key.selector,
                DkimKeyState::Retiring,
                DkimKeyState::Retired,
                None,
            )
            .await?
        {
            tracing::info!(domain = %key.domain, selector = %key.selector, "DKIM key retired (its record may be removed from DNS)");
            changes.push((
                key.domain.clone(),
                key.selector.clone(),
                DkimKeyState::Retired,
            ));
        }
    }
    if !changes.is_empty() {
        super::signer::forget_cached_keys();
    }
    Ok(changes)
}

/// Runs [`check_once`] every `dkim.check_every` for as long as sponts serves.
pub async fn job(store: Store, config: DkimConfig, resolver_address: Option<SocketAddr>) {
    loop {
        if let Err(e) = check_once(&store, &config, resolver_address).await {
            tracing::warn!("DKIM rotation check failed: {e:#}");
        }
        tokio::time::sleep(config.check_every.0).await;
    }
}
