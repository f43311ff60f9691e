//! Tamper evidence: every kept message's SHA-256 (recorded when it is stored) is gathered per
//! period — one UTC day, or the part of it up to `sponts archive seal --now` — into a Merkle
//! tree; the root is signed with sponts' Ed25519 key together with the previous seal's root, so
//! the seals form a chain. `verify` recomputes everything from the stored bodies.

use anyhow::{Context, Result, bail};
use ring::rand::SystemRandom;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};

use crate::storage::{Seal, Store};

pub const DAY_US: i64 = 86_400_000_000;
/// A finished day is sealed this long after its end: mail stamped just before midnight is
/// committed by then.
pub const GRACE_US: i64 = 5 * 60 * 1_000_000;
pub const KEY_SECRET: &str = "archive_signing_key";

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
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

/// SHA-256 of a message as received, hex: what is recorded at insertion.
pub fn digest(message: &[u8]) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, message).as_ref())
}

/// `YYYY-MM-DD` of a timestamp (UTC).
pub fn day_of(us: i64) -> String {
    crate::clock::rfc3339(us)[..10].to_string()
}

/// The Merkle root over (id, digest) leaves sorted by id: leaf = H(0 ‖ id ‖ 0 ‖ digest),
/// node = H(1 ‖ left ‖ right), an odd node carried up as it is; the empty tree is H("").
pub fn merkle_root(leaves: &[(String, String)]) -> String {
    use ring::digest::{Context as Hasher, SHA256};
    let mut sorted: Vec<&(String, String)> = leaves.iter().collect();
    sorted.sort();
    let mut level: Vec<Vec<u8>> = sorted
        .iter()
        .map(|(id, d)| {
            let mut h = Hasher::new(&SHA256);
            for part in [&[0u8][..], id.as_bytes(), &[0u8], d.as_bytes()] {
                h.update(part);
            }
            h.finish().as_ref().to_vec()
        })
        .collect();
    if level.is_empty() {
        return hex(ring::digest::digest(&SHA256, b"").as_ref());
    }
    while level.len() > 1 {
        level = level
            .chunks(2)
            .map(|pair| match pair {
                [l, r] => {
                    let mut h = Hasher::new(&SHA256);
                    h.update(&[1]);
                    h.update(l);
                    h.update(r);
                    h.finish().as_ref().to_vec()
                }
                [one] => one.clone(),
                _ => unreachable!("chunks of two"),
            })
            .collect();
    }
    hex(&level[0])
}

/// The bytes a seal's signature covers.
pub fn seal_statement(s: &Seal) -> String {
    format!(
        "sponts-archive-seal v1\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n",
        s.seq, s.day, s.from_us, s.until_us, s.count, s.root, s.prev_root
    )
}

/// The bytes a purge record's signature covers.
pub fn purge_statement(pass_us: i64, day: &str, entries: &str) -> String {
    format!("sponts-archive-purge v1\n{pass_us}\n{day}\n{entries}")
}

/// sponts' signing key, made once and kept in the database's secrets (shared by every node).
pub struct Signer {
    key: Ed25519KeyPair,
}

impl Signer {
    pub async fn load(store: &Store) -> Result<Signer> {
        let fresh = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
            .map_err(|_| anyhow::anyhow!("cannot make a signing key"))?;
        let kept = store
            .secret(KEY_SECRET, &crate::base64::encode(fresh.as_ref()))
            .await?;
        let pkcs8 =
            crate::base64::decode(&kept).context("the archive signing key is not base64")?;
        let key = Ed25519KeyPair::from_pkcs8(&pkcs8)
            .map_err(|_| anyhow::anyhow!("the archive signing key is damaged"))?;
        Ok(Signer { key })
    }

    /// The public half of the key in the store, without making one.
    pub async fn existing_public_key(store: &Store) -> Result<Option<PublicKey>> {
        let Some(kept) = store.existing_secret(KEY_SECRET).await? else {
            return Ok(None);
        };
        let pkcs8 =
            crate::base64::decode(&kept).context("the archive signing key is not base64")?;
        let key = Ed25519KeyPair::from_pkcs8(&pkcs8)
            .map_err(|_| anyhow::anyhow!("the archive signing key is damaged"))?;
        Ok(Some(PublicKey(key.public_key().as_ref().to_vec())))
    }

    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.key.public_key().as_ref().to_vec())
    }

    pub fn sign(&self, statement: &str) -> String {
        hex(self.key.sign(statement.as_bytes()).as_ref())
    }
}

/// An Ed25519 public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey(pub Vec<u8>);

impl PublicKey {
    pub fn parse_hex(s: &str) -> Option<PublicKey> {
        unhex(s).filter(|k| k.len() == 32).map(PublicKey)
    }

    pub fn hex(&self) -> String {
        hex(&self.0)
    }

    /// The first 16 hex digits of the key's SHA-256: names the key in seals and records.
    pub fn id(&self) -> String {
        hex(&ring::digest::digest(&ring::digest::SHA256, &self.0).as_ref()[..8])
    }

    pub fn verifies(&self, statement: &str, signature_hex: &str) -> bool {
        unhex(signature_hex).is_some_and(|sig| {
            UnparsedPublicKey::new(&ED25519, &self.0)
                .verify(statement.as_bytes(), &sig)
                .is_ok()
        })
    }
}

/// Seals every period that has ended by `until_us` (whole UTC days; with `partial`, also the
/// current day up to `until_us`). Returns the seals added.
pub async fn seal_until(store: &Store, until_us: i64, partial: bool) -> Result<Vec<Seal>> {
    let signer = Signer::load(store).await?;
    let key = signer.public_key();
    let mut added = Vec::new();
    let mut last = store.last_seal().await?;
    let mut from = match &last {
        Some(s) => s.until_us,
        None => match store.oldest_kept_us().await? {
            Some(t) => t - t.rem_euclid(DAY_US),
            None if partial => until_us - until_us.rem_euclid(DAY_US),
            None => return Ok(added),
        },
    };
    loop {
        let day_end = from - from.rem_euclid(DAY_US) + DAY_US;
        let end = if day_end <= until_us {
            day_end
        } else if partial && from < until_us {
            until_us
        } else {
            break;
        };
        let mut leaves = store.kept_digests(from, end).await?;
        for (id, d) in leaves.iter_mut().filter(|(_, d)| d.is_empty()) {
            // Kept before digests were recorded: computed now, from the stored body.
            let body = store
                .body(id)
                .await?
                .with_context(|| format!("message {id} vanished while sealing"))?;
            *d = digest(&crate::modules::backup::decompress(&body)?);
            store.set_missing_digest(id, d).await?;
        }
        let mut seal = Seal {
            seq: last.as_ref().map_or(1, |s| s.seq + 1),
            day: day_of(from),
            from_us: from,
            until_us: end,
            count: leaves.len() as i64,
            root: merkle_root(&leaves),
            prev_root: last.as_ref().map_or_else(String::new, |s| s.root.clone()),
            signature: String::new(),
            key_id: key.id(),
            sealed_us: crate::clock::now_us(),
        };
        seal.signature = signer.sign(&seal_statement(&seal));
        if !store.insert_seal(&seal, &leaves).await? {
            bail!(
                "another node sealed {} first; sealing again later",
                seal.day
            );
        }
        tracing::info!(day = %seal.day, messages = seal.count, root = %seal.root, "archive sealed");
        from = end;
        added.push(seal.clone());
        last = Some(seal);
    }
    Ok(added)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_root_depends_on_every_leaf_and_not_on_their_order() {
        let a = ("a".to_string(), digest(b"one"));
        let b = ("b".to_string(), digest(b"two"));
        let c = ("c".to_string(), digest(b"three"));
        let abc = merkle_root(&[a.clone(), b.clone(), c.clone()]);
        assert_eq!(abc, merkle_root(&[c.clone(), a.clone(), b.clone()]));
        assert_ne!(abc, merkle_root(&[a.clone(), b.clone()]));
        assert_ne!(
            abc,
            merkle_root(&[a.clone(), b.clone(), ("c".into(), digest(b"thre3"))])
        );
        assert_ne!(merkle_root(&[]), merkle_root(&[a]));
    }

    #[test]
    fn hex_round_trip() {
        assert_eq!(unhex(&hex(&[0, 1, 254, 255])), Some(vec![0, 1, 254, 255]));
        assert_eq!(unhex("0g"), None);
    }
}
