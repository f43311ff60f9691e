//! DKIM signing of outgoing mail (RFC 6376; Ed25519 per RFC 8463). The keys live in the database,
//! shared by every node, and never leave it except to sign: no log line, page or listing shows
//! a private key.
//!
//! - [`keys`]: making keys (RSA-2048 via [`rsa`], Ed25519 via ring), their public half;
//! - [`record`]: the TXT record to publish, and reading one found in DNS;
//! - [`manage`]: `keygen` and `rotate` — a domain's first key signs at once, later ones wait;
//! - [`activation`]: the job that activates a key once its record is in DNS and retires the
//!   key it replaces after the overlap;
//! - [`signer`]: [`sign`] — the DKIM-Signature header(s) for a message, keys cached in memory.

pub mod activation;
pub mod keys;
pub mod manage;
pub mod record;
pub mod rsa;
pub mod signer;

pub use keys::Algorithm;
pub use signer::sign;
