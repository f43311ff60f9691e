//! Making keys: the two algorithms DKIM signs with today, RSA-2048 (`rsa-sha256`, every
//! verifier knows it) and Ed25519 (`ed25519-sha256`, RFC 8463: short keys, fast, not yet
//! everywhere — so domains often publish both). Private keys are PKCS#8 DER.

use anyhow::{Result, anyhow, bail};
use ring::signature::{Ed25519KeyPair, KeyPair, RsaKeyPair};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Rsa,
    Ed25519,
}

impl Algorithm {
    /// The record's `k=` tag, and the name the database and CLI use.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Rsa => "rsa",
            Algorithm::Ed25519 => "ed25519",
        }
    }

    pub fn parse(s: &str) -> Result<Algorithm> {
        match s.to_ascii_lowercase().as_str() {
            "rsa" | "rsa-sha256" => Ok(Algorithm::Rsa),
            "ed25519" | "ed25519-sha256" => Ok(Algorithm::Ed25519),
            _ => bail!("`{s}` is not a DKIM algorithm (rsa or ed25519)"),
        }
    }
}

/// A new key: (PKCS#8 DER private key, the record's `p=` value in base64).
pub fn generate(algorithm: Algorithm) -> Result<(Vec<u8>, String)> {
    let pkcs8 = match algorithm {
        Algorithm::Ed25519 => Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new())
            .map_err(|_| anyhow!("the system's random number generator failed"))?
            .as_ref()
            .to_vec(),
        Algorithm::Rsa => super::rsa::generate()?.0,
    };
    let public = public_key(algorithm, &pkcs8)?;
    Ok((pkcs8, public))
}

/// The `p=` value for a private key: the raw 32-byte key for Ed25519 (RFC 8463 §4), the
/// SubjectPublicKeyInfo for RSA (what `openssl rsa -pubout` gives and every verifier reads).
pub fn public_key(algorithm: Algorithm, pkcs8: &[u8]) -> Result<String> {
    let der = match algorithm {
        Algorithm::Ed25519 => Ed25519KeyPair::from_pkcs8(pkcs8)
            .map_err(|e| anyhow!("bad Ed25519 key: {e}"))?
            .public_key()
            .as_ref()
            .to_vec(),
        Algorithm::Rsa => super::rsa::spki(
            RsaKeyPair::from_pkcs8(pkcs8)
                .map_err(|e| anyhow!("bad RSA key: {e}"))?
                .public_key()
                .as_ref(),
        ),
    };
    Ok(crate::base64::encode(&der))
}
