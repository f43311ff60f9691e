//! The one place that decides how a session to an MX host is secured and how its certificate
//! is checked. Precedence (RFC 8461 §2, RFC 7672): a destination override in the config, then
//! DANE (validated TLSA records), then an MTA-STS policy in `enforce` mode, then opportunistic
//! STARTTLS. Whenever TLS is required, a failed handshake ends that connection: the message is
//! never sent in clear after it.

use std::sync::Arc;

use mail_auth::hickory_resolver::proto::rr::rdata::TLSA;
use mail_auth::hickory_resolver::proto::rr::rdata::tlsa::{CertUsage, Matching, Selector};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

use crate::config::StartTls;
use crate::config::outbound_delivery::TlsOverride;

/// How one MX host is to be reached.
#[derive(Debug, Clone)]
pub enum TlsPolicy {
    /// Plain SMTP (the config says this destination's TLS is broken).
    Never,
    /// STARTTLS when offered, any certificate (encryption against passive listeners only).
    Opportunistic,
    /// STARTTLS, and a certificate that chains to a trusted root and names the MX host
    /// (MTA-STS enforce, or `tls = "require"`).
    Verified { why: &'static str },
    /// STARTTLS, and a certificate that matches one of these validated TLSA records; none usable
    /// (only PKIX usages) means encrypted without authentication, as RFC 7672 §3.1.3 asks.
    Dane(Vec<TLSA>),
}

impl TlsPolicy {
    /// The policy for one MX host from what was found about it.
    pub fn decide(
        over: Option<TlsOverride>,
        dane: Option<Vec<TLSA>>,
        sts_enforced: bool,
    ) -> TlsPolicy {
        match (over, dane) {
            (Some(TlsOverride::Never), _) => TlsPolicy::Never,
            (Some(TlsOverride::Require), _) => TlsPolicy::Verified {
                why: "tls = require",
            },
            (Some(TlsOverride::Opportunistic), _) => TlsPolicy::Opportunistic,
            (None, Some(records)) => TlsPolicy::Dane(records),
            (None, None) if sts_enforced => TlsPolicy::Verified { why: "MTA-STS" },
            (None, None) => TlsPolicy::Opportunistic,
        }
    }

    pub fn starttls(&self) -> StartTls {
        match self {
            TlsPolicy::Never => StartTls::Off,
            TlsPolicy::Opportunistic => StartTls::Opportunistic,
            TlsPolicy::Verified { .. } | TlsPolicy::Dane(_) => StartTls::Required,
        }
    }

    /// Short name for logs, the queue page and TLS reports.
    pub fn name(&self) -> &'static str {
        match self {
            TlsPolicy::Never => "never",
            TlsPolicy::Opportunistic => "opportunistic",
            TlsPolicy::Verified { why } => why,
            TlsPolicy::Dane(_) => "DANE",
        }
    }

    /// The rustls client configuration enforcing this policy; `roots` are the trusted CAs.
    pub fn client_config(&self, roots: &Arc<rustls::RootCertStore>) -> Arc<rustls::ClientConfig> {
        let provider = crate::smtp::tls::provider();
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("ring supports the default versions");
        match self {
            TlsPolicy::Verified { .. } => Arc::new(
                builder
                    .with_root_certificates(roots.clone())
                    .with_no_client_auth(),
            ),
            TlsPolicy::Dane(records) => Arc::new(
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(DaneVerifier {
                        records: records.clone(),
                        provider,
                    }))
                    .with_no_client_auth(),
            ),
            TlsPolicy::Never | TlsPolicy::Opportunistic => {
                crate::smtp::tls::backend_client_config(None)
            }
        }
    }
}

/// The TLSA records DANE can use for SMTP (RFC 7672 §3.1): DANE-TA(2) and DANE-EE(3).
pub fn usable(records: &[TLSA]) -> Vec<TLSA> {
    records
        .iter()
        .filter(|t| matches!(t.cert_usage, CertUsage::DaneTa | CertUsage::DaneEe))
        .filter(|t| matches!(t.selector, Selector::Full | Selector::Spki))
        .filter(|t| {
            matches!(
                t.matching,
                Matching::Raw | Matching::Sha256 | Matching::Sha512
            )
        })
        .cloned()
        .collect()
}

/// Does the certificate match the record (selector and matching type applied)?
pub fn tlsa_matches(record: &TLSA, cert: &[u8]) -> bool {
    let selected = match record.selector {
        Selector::Full => cert,
        Selector::Spki => match spki(cert) {
            Some(s) => s,
            None => return false,
        },
        _ => return false,
    };
    match record.matching {
        Matching::Raw => selected == record.cert_data.as_slice(),
        Matching::Sha256 => {
            ring::digest::digest(&ring::digest::SHA256, selected).as_ref()
                == record.cert_data.as_slice()
        }
        Matching::Sha512 => {
            ring::digest::digest(&ring::digest::SHA512, selected).as_ref()
                == record.cert_data.as_slice()
        }
        _ => false,
    }
}

/// Checks a presented chain against DANE TLSA records.
#[derive(Debug)]
struct DaneVerifier {
    records: Vec<TLSA>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for DaneVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if self.records.is_empty() {
            return Ok(ServerCertVerified::assertion());
        }
        // DANE-EE: the server's own certificate or key, no names or dates (RFC 7672 §3.1.1).
        if self
            .records
            .iter()
            .any(|r| r.cert_usage == CertUsage::DaneEe && tlsa_matches(r, end_entity))
        {
            return Ok(ServerCertVerified::assertion());
        }
        // DANE-TA: a certificate of the chain is the trust anchor; the chain must lead to it
        // and the end certificate must name the MX host (§3.1.2).
        for ca in intermediates {
            if !self
                .records
                .iter()
                .any(|r| r.cert_usage == CertUsage::DaneTa && tlsa_matches(r, ca))
            {
                continue;
            }
            let mut roots = rustls::RootCertStore::empty();
            if roots.add(ca.clone()).is_err() {
                continue;
            }
            let Ok(webpki) = rustls::client::WebPkiServerVerifier::builder_with_provider(
                Arc::new(roots),
                self.provider.clone(),
            )
            .build() else {
                continue;
            };
            if webpki
                .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
                .is_ok()
            {
                return Ok(ServerCertVerified::assertion());
            }
        }
        Err(rustls::Error::General(
            "the certificate matches no TLSA record (DANE)".into(),
        ))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The DER SubjectPublicKeyInfo (with its tag) of an X.509 certificate.
pub fn spki(cert: &[u8]) -> Option<&[u8]> {
    let (cert_body, _) = der_value(cert, 0x30)?;
    let (tbs, _) = der_value(cert_body, 0x30)?;
    let mut rest = tbs;
    // [0] version is optional; then serial, signature algorithm, issuer, validity, subject.
    if rest.first() == Some(&0xa0) {
        rest = der_skip(rest)?;
    }
    for _ in 0..5 {
        rest = der_skip(rest)?;
    }
    let whole = rest.len() - der_skip(rest)?.len();
    (rest.first() == Some(&0x30)).then(|| &rest[..whole])
}

/// The value of the DER element at the start of `data` if its tag is `tag`, and what follows.
fn der_value(data: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    if *data.first()? != tag {
        return None;
    }
    let (len, header) = der_length(&data[1..])?;
    let start = 1 + header;
    let end = start.checked_add(len)?;
    Some((data.get(start..end)?, data.get(end..)?))
}

fn der_skip(data: &[u8]) -> Option<&[u8]> {
    let (len, header) = der_length(data.get(1..)?)?;
    data.get((1 + header).checked_add(len)?..)
}

/// (length, bytes the length took).
fn der_length(data: &[u8]) -> Option<(usize, usize)> {
    let first = *data.first()?;
    if first < 0x80 {
        return Some((first as usize, 1));
    }
    let n = (first & 0x7f) as usize;
    if n == 0 || n > 4 {
        return None;
    }
    let mut len = 0usize;
    for b in data.get(1..1 + n)? {
        len = (len << 8) | *b as usize;
    }
    Some((len, 1 + n))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::PublicKeyData;

    fn record(usage: u8, selector: u8, matching: u8, data: Vec<u8>) -> TLSA {
        TLSA::new(
            CertUsage::from(usage),
            Selector::from(selector),
            Matching::from(matching),
            data,
        )
    }

    #[test]
    fn spki_is_the_key_rcgen_made() {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["mx.example".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        assert_eq!(
            spki(cert.der()).unwrap(),
            key.subject_public_key_info().as_slice()
        );
        let sha = ring::digest::digest(&ring::digest::SHA256, &key.subject_public_key_info())
            .as_ref()
            .to_vec();
        assert!(tlsa_matches(&record(3, 1, 1, sha.clone()), cert.der()));
        let full = ring::digest::digest(&ring::digest::SHA512, cert.der())
            .as_ref()
            .to_vec();
        assert!(tlsa_matches(&record(3, 0, 2, full), cert.der()));
        let mut wrong = sha;
        wrong[0] ^= 1;
        assert!(!tlsa_matches(&record(3, 1, 1, wrong), cert.der()));
        assert!(
            spki(b"\x30\x03\x02\x01").is_none(),
            "truncated DER is no key"
        );
    }

    #[test]
    fn overrides_win_then_dane_then_mta_sts() {
        assert!(matches!(
            TlsPolicy::decide(Some(TlsOverride::Never), Some(vec![]), true),
            TlsPolicy::Never
        ));
        assert!(matches!(
            TlsPolicy::decide(None, Some(vec![]), true),
            TlsPolicy::Dane(_)
        ));
        assert!(matches!(
            TlsPolicy::decide(None, None, true),
            TlsPolicy::Verified { .. }
        ));
        assert!(matches!(
            TlsPolicy::decide(None, None, false),
            TlsPolicy::Opportunistic
        ));
        assert_eq!(
            usable(&[record(1, 1, 1, vec![0; 32]), record(3, 1, 1, vec![0; 32])]).len(),
            1
        );
    }
}
