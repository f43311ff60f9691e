//! Signing an outgoing message: one DKIM-Signature per key that signs now (active, and retiring
//! during a rotation's overlap) for the From: header's domain, made by mail-auth's signer with
//! relaxed/relaxed canonicalization. The keys are read from the database at most every
//! [`CACHE_TTL`] and kept parsed in memory, so a message costs no database round trip.

use anyhow::{Result, anyhow};
use mail_auth::common::crypto::{Ed25519Key, RsaKey, Sha256, SigningKey};
use mail_auth::common::headers::{HeaderWriter, Writable};
use mail_auth::dkim::{Canonicalization, DkimSigner};
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::keys::Algorithm;
use crate::config::DkimConfig;
use crate::storage::{DkimKey, Store};

/// How long keys read from the database are used before they are read again: a key made or
/// rotated on another node signs here within this time.
pub const CACHE_TTL: Duration = Duration::from_secs(30);

/// Messages above this size are hashed off the async threads.
const INLINE_LIMIT: usize = 256 * 1024;

/// A parsed private key and where it signs.
pub struct LoadedKey {
    pub domain: String,
    pub selector: String,
    key: ParsedKey,
}

enum ParsedKey {
    Rsa(RsaKey<Sha256>),
    Ed25519(Ed25519Key),
}

/// mail-auth's signer takes its key by value; this lets every message share the parsed one.
struct Shared(Arc<LoadedKey>);

impl SigningKey for Shared {
    type Hasher = Sha256;

    fn sign(&self, input: impl Writable) -> mail_auth::Result<Vec<u8>> {
        match &self.0.key {
            ParsedKey::Rsa(k) => k.sign(input),
            ParsedKey::Ed25519(k) => k.sign(input),
        }
    }

    fn algorithm(&self) -> mail_auth::common::crypto::Algorithm {
        match &self.0.key {
            ParsedKey::Rsa(k) => k.algorithm(),
            ParsedKey::Ed25519(k) => k.algorithm(),
        }
    }
}

impl LoadedKey {
    pub fn load(key: &DkimKey) -> Result<LoadedKey> {
        let parsed = match Algorithm::parse(&key.info.algorithm)? {
            Algorithm::Rsa => ParsedKey::Rsa(
                RsaKey::<Sha256>::from_key_der(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
                    key.pkcs8.as_slice(),
                )))
                .map_err(|e| anyhow!("{e}"))?,
            ),
            Algorithm::Ed25519 => ParsedKey::Ed25519(
                Ed25519Key::from_pkcs8_der(&key.pkcs8).map_err(|e| anyhow!("{e}"))?,
            ),
        };
        Ok(LoadedKey {
            domain: key.info.domain.clone(),
            selector: key.info.selector.clone(),
            key: parsed,
        })
    }

    /// This key's DKIM-Signature header for `message`, CRLF-terminated.
    pub fn sign(self: &Arc<Self>, headers: &[String], message: &[u8]) -> Result<String> {
        let signature = DkimSigner::from_key(Shared(self.clone()))
            .domain(self.domain.clone())
            .selector(self.selector.clone())
            .headers(headers.iter().cloned())
            .header_canonicalization(Canonicalization::Relaxed)
            .body_canonicalization(Canonicalization::Relaxed)
            .sign(message)
            .map_err(|e| {
                anyhow!(
                    "DKIM signing for {} ({}) failed: {e}",
                    self.domain,
                    self.selector
                )
            })?;
        Ok(signature.to_header())
    }
}

/// The signing keys of one store, by domain.
struct Snapshot {
    read: Instant,
    by_domain: HashMap<String, Vec<Arc<LoadedKey>>>,
}

/// Per store (several gateways may run in one process, each with its own database).
static CACHE: Mutex<Vec<(String, Arc<Snapshot>)>> = Mutex::new(Vec::new());

fn store_identity(store: &Store) -> String {
    match store {
        Store::Sqlite(pool) => {
            format!("sqlite:{}", pool.connect_options().get_filename().display())
        }
        Store::Postgres(pool) => {
            let o = pool.connect_options();
            format!(
                "postgres:{}:{}/{}",
                o.get_host(),
                o.get_port(),
                o.get_database().unwrap_or("")
            )
        }
    }
}

/// Makes the next message read the keys again (after a key was made or changed state here).
pub fn forget_cached_keys() {
    CACHE.lock().unwrap_or_else(|e| e.into_inner()).clear();
}

async fn signing_keys(store: &Store) -> Result<Arc<Snapshot>> {
    let id = store_identity(store);
    let cached = CACHE
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .find(|(i, _)| *i == id)
        .map(|(_, s)| s.clone());
    if let Some(s) = cached.filter(|s| s.read.elapsed() < CACHE_TTL) {
        return Ok(s);
    }
    let mut by_domain: HashMap<String, Vec<Arc<LoadedKey>>> = HashMap::new();
    for key in store.dkim_signing_keys().await? {
        match LoadedKey::load(&key) {
            Ok(k) => by_domain
                .entry(k.domain.clone())
                .or_default()
                .push(Arc::new(k)),
            // One unreadable key must not stop the domain's other keys (or other domains).
            Err(e) => {
                tracing::error!(domain = %key.info.domain, selector = %key.info.selector, "DKIM key unusable: {e:#}")
            }
        }
    }
    let snapshot = Arc::new(Snapshot {
        read: Instant::now(),
        by_domain,
    });
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    cache.retain(|(i, _)| *i != id);
    cache.push((id, snapshot.clone()));
    Ok(snapshot)
}

/// The domain of the message's (first) From: address, lower case.
pub fn from_domain(message: &[u8]) -> Option<String> {
    let parsed = mail_parser::MessageParser::new().parse_headers(message)?;
    let address = parsed.from()?.first()?.address()?;
    let (_, domain) = address.rsplit_once('@')?;
    let domain = domain.trim().trim_end_matches('.').to_ascii_lowercase();
    (!domain.is_empty()).then_some(domain)
}

/// The header list given to the signer: the configured fields, From first, and From once more
/// at the end — an instance the message does not have, so a From added later breaks the
/// signature (RFC 6376 §8.15).
pub fn signed_headers(config: &DkimConfig) -> Vec<String> {
    let mut headers = vec!["From".to_string()];
    headers.extend(
        config
            .headers
            .iter()
            .filter(|h| !h.eq_ignore_ascii_case("from"))
            .cloned(),
    );
    headers.push("From".to_string());
    headers
}

/// The DKIM-Signature header(s) to put in front of `message`, each ending in CRLF, one per key
/// that signs now for the From: domain (or, failing that, its nearest parent domain with keys:
/// DMARC's relaxed alignment accepts it). `None` when signing is off or no key applies.
pub async fn sign(store: &Store, config: &DkimConfig, message: &[u8]) -> Result<Option<String>> {
    if !config.enabled {
        return Ok(None);
    }
    let Some(domain) = from_domain(message) else {
        return Ok(None);
    };
    let snapshot = signing_keys(store).await?;
    let mut name = domain.as_str();
    let keys = loop {
        if let Some(keys) = snapshot.by_domain.get(name) {
            break keys.clone();
        }
        match name.split_once('.') {
            Some((_, parent)) if parent.contains('.') => name = parent,
            _ => return Ok(None),
        }
    };
    let headers = signed_headers(config);
    let sign_all = move |message: &[u8]| -> Result<String> {
        keys.iter().map(|k| k.sign(&headers, message)).collect()
    };
    let out = if message.len() <= INLINE_LIMIT {
        sign_all(message)?
    } else {
        let owned = message.to_vec();
        tokio::task::spawn_blocking(move || sign_all(&owned)).await??
    };
    Ok(Some(out))
}
