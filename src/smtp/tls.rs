//! TLS for both directions, with rustls: the server side offered by STARTTLS (a configured
//! certificate, or the self-signed one of [`super::self_signed`]), and the client side
//! used towards the backend (encrypts; verifies the backend's certificate when a CA is configured)
//! and towards an interception agency (always verified).

use anyhow::{Context, Result};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::server::ResolvesServerCert;
use rustls::sign::CertifiedKey;

use crate::config::Config;

/// The one crypto provider sponts uses everywhere.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The server certificate every TLS listener (SMTP, web, POP3) presents, replaced in place when
/// the configuration is reloaded or the self-signed one is made again: handshakes after that get
/// the new one, connections already up keep theirs.
#[derive(Debug)]
pub struct CertSlot {
    pair: std::sync::RwLock<Arc<CertifiedKey>>,
    /// The data dir and host name of the self-signed certificate, when that is the one shown.
    self_signed: std::sync::RwLock<Option<(PathBuf, String)>>,
}

impl CertSlot {
    /// Reads the configured certificate and key (or the kept self-signed pair).
    pub fn load(config: &Config) -> Result<Arc<CertSlot>> {
        let self_signed = match (&config.smtp.tls.cert, &config.smtp.tls.key) {
            (Some(_), Some(_)) => None,
            _ => Some((
                config.storage.data_dir.clone(),
                config.smtp.hostname.clone(),
            )),
        };
        Ok(Arc::new(CertSlot {
            pair: std::sync::RwLock::new(read_pair(config)?),
            self_signed: std::sync::RwLock::new(self_signed),
        }))
    }

    /// Presents `other`'s certificate from now on.
    pub fn replace_with(&self, other: &CertSlot) {
        let pair = other.pair.read().expect("certificate lock").clone();
        let self_signed = other.self_signed.read().expect("certificate lock").clone();
        *self.pair.write().expect("certificate lock") = pair;
        *self.self_signed.write().expect("certificate lock") = self_signed;
    }

    /// Makes the self-signed certificate again when it is due, and shows the new one; returns
    /// whether it did.
    pub fn renew_self_signed(&self) -> Result<bool> {
        let Some((dir, host)) = self.self_signed.read().expect("certificate lock").clone() else {
            return Ok(false);
        };
        if !super::self_signed::is_due(&dir, &host) {
            return Ok(false);
        }
        let (cert, key) = super::self_signed::ensure(&dir, &host)?;
        *self.pair.write().expect("certificate lock") = read_files(&cert, &key)?;
        Ok(true)
    }

    /// Runs forever: the self-signed certificate is looked at twice a day.
    pub async fn renewal_job(self: Arc<CertSlot>) {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(12 * 3600));
        loop {
            tick.tick().await;
            if let Err(e) = self.renew_self_signed() {
                tracing::error!("the self-signed certificate could not be made again: {e:#}");
            }
        }
    }
}

impl ResolvesServerCert for CertSlot {
    fn resolve(&self, _hello: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.pair.read().expect("certificate lock").clone())
    }
}

fn read_pair(config: &Config) -> Result<Arc<CertifiedKey>> {
    let (cert_path, key_path) = match (&config.smtp.tls.cert, &config.smtp.tls.key) {
        (Some(c), Some(k)) => (c.clone(), k.clone()),
        _ => super::self_signed::ensure(&config.storage.data_dir, &config.smtp.hostname)?,
    };
    read_files(&cert_path, &key_path)
}

fn read_files(cert_path: &Path, key_path: &Path) -> Result<Arc<CertifiedKey>> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_path)
        .with_context(|| format!("smtp.tls.cert: cannot read {}", cert_path.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("smtp.tls.cert: bad PEM in {}", cert_path.display()))?;
    if certs.is_empty() {
        anyhow::bail!("smtp.tls.cert: no certificate in {}", cert_path.display());
    }
    let key = PrivateKeyDer::from_pem_file(key_path)
        .with_context(|| format!("smtp.tls.key: no private key in {}", key_path.display()))?;
    let pair = CertifiedKey::from_der(certs, key, &provider())
        .context("smtp.tls: certificate and key do not match")?;
    Ok(Arc::new(pair))
}

/// The server-side TLS configuration: the certificate comes from `certs`.
pub fn server_config(certs: &Arc<CertSlot>) -> Result<Arc<rustls::ServerConfig>> {
    let mut tls = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(certs.clone());
    // Our order of cipher suites (the provider's: AES-256-GCM first), not the client's: a client
    // that lists a weaker suite first does not get it while a stronger one is common.
    tls.ignore_client_order = true;
    Ok(Arc::new(tls))
}

/// Every CA file the config names is readable and holds a certificate: the backend's
/// (`backend.tls_ca`), the agency's (`intercept.agency_ca`) and the proxies' (`*.backend_ca`).
pub fn check_ca_files(config: &Config) -> Vec<crate::config::ConfigError> {
    let files = [
        ("backend.tls_ca", &config.backend.tls_ca),
        ("intercept.agency_ca", &config.intercept.agency_ca),
        ("pop3_proxy.backend_ca", &config.pop3_proxy.backend_ca),
        ("imap_proxy.backend_ca", &config.imap_proxy.backend_ca),
        ("outbound.mta_sts_ca", &config.outbound_delivery.mta_sts_ca),
    ];
    files
        .into_iter()
        .filter_map(|(key, path)| Some((key, path.as_deref()?)))
        .filter_map(|(key, path)| {
            roots_from_file(path)
                .err()
                .map(|e| crate::preflight::problem(key, format!("{e:#}")))
        })
        .collect()
}

/// The trust anchors in a PEM file's contents.
pub fn roots_from_pem(pem: &[u8]) -> Result<rustls::RootCertStore> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem) {
        roots
            .add(cert.context("bad PEM certificate")?)
            .context("not a usable certificate")?;
    }
    if roots.is_empty() {
        anyhow::bail!("no certificate");
    }
    Ok(roots)
}

/// The trust anchors in the PEM file at `path`, for the config check and the clients alike.
pub fn roots_from_file(path: &Path) -> Result<rustls::RootCertStore> {
    let pem = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    roots_from_pem(&pem)
        .with_context(|| format!("{} holds no usable PEM certificate", path.display()))
}

/// Client-side TLS whose peer's certificate must chain to `roots` and match its name.
pub fn verifying_client_config(roots: rustls::RootCertStore) -> Arc<rustls::ClientConfig> {
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

/// Client-side TLS towards the backend. With `ca` (`backend.tls_ca`, `*_proxy.backend_ca`) the
/// backend's certificate must chain to it and match the backend's host name; a CA file that can
/// no longer be read then trusts nothing (the config check has named it at start). Without, the
/// link is encrypted but any certificate is taken (a backend on the LAN, self-signed).
pub fn backend_client_config(ca: Option<&Path>) -> Arc<rustls::ClientConfig> {
    if let Some(path) = ca {
        let roots = roots_from_file(path).unwrap_or_else(|e| {
            tracing::error!("backend TLS trusts no certificate: {e:#}");
            rustls::RootCertStore::empty()
        });
        return verifying_client_config(roots);
    }
    let provider = provider();
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        .with_no_client_auth();
    Arc::new(config)
}

/// Accepts whatever certificate the backend shows; signatures are still checked so the
/// handshake is real.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Protocol version and cipher suite of an established connection, for the journal and Received:.
pub fn describe(conn: &rustls::CommonState) -> String {
    let version = match conn.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3".to_string(),
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2".to_string(),
        Some(v) => format!("{v:?}"),
        None => "TLS".to_string(),
    };
    match conn.negotiated_cipher_suite() {
        Some(s) => format!("{version} {:?}", s.suite()),
        None => version,
    }
}
