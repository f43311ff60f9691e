//! TLS for both directions, with rustls: the server side offered by STARTTLS (a configured
//! certificate, or a self-signed one made once and kept in the data dir), and the client side
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
/// the configuration is reloaded: handshakes after a reload get the new one, connections
/// already up keep theirs.
#[derive(Debug)]
pub struct CertSlot(std::sync::RwLock<Arc<CertifiedKey>>);

impl CertSlot {
    /// Reads the configured certificate and key (or the kept self-signed pair).
    pub fn load(config: &Config) -> Result<Arc<CertSlot>> {
        Ok(Arc::new(CertSlot(std::sync::RwLock::new(read_pair(config)?))))
    }

    /// Presents `other`'s certificate from now on.
    pub fn replace_with(&self, other: &CertSlot) {
        let pair = other.0.read().expect("certificate lock").clone();
        *self.0.write().expect("certificate lock") = pair;
    }
}

impl ResolvesServerCert for CertSlot {
    fn resolve(&self, _hello: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.read().expect("certificate lock").clone())
    }
}

fn read_pair(config: &Config) -> Result<Arc<CertifiedKey>> {
    let (cert_path, key_path) = match (&config.smtp.tls.cert, &config.smtp.tls.key) {
        (Some(c), Some(k)) => (c.clone(), k.clone()),
        _ => self_signed(&config.storage.data_dir, &config.smtp.hostname)?,
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert_path)
        .with_context(|| format!("smtp.tls.cert: cannot read {}", cert_path.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("smtp.tls.cert: bad PEM in {}", cert_path.display()))?;
    if certs.is_empty() {
        anyhow::bail!("smtp.tls.cert: no certificate in {}", cert_path.display());
    }
    let key = PrivateKeyDer::from_pem_file(&key_path).with_context(|| format!("smtp.tls.key: no private key in {}", key_path.display()))?;
    let pair = CertifiedKey::from_der(certs, key, &provider()).context("smtp.tls: certificate and key do not match")?;
    Ok(Arc::new(pair))
}

/// The server-side TLS configuration: the certificate comes from `certs`.
pub fn server_config(certs: &Arc<CertSlot>) -> Result<Arc<rustls::ServerConfig>> {
    let tls = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(certs.clone());
    Ok(Arc::new(tls))
}

/// The self-signed certificate in `DATA_DIR/tls/`, made on first use.
fn self_signed(data_dir: &Path, hostname: &str) -> Result<(PathBuf, PathBuf)> {
    let dir = data_dir.join("tls");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    if cert.is_file() && key.is_file() {
        return Ok((cert, key));
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let made = rcgen::generate_simple_self_signed(vec![hostname.to_string()]).context("cannot make a self-signed certificate")?;
    write_private(&key, made.signing_key.serialize_pem().as_bytes())?;
    std::fs::write(&cert, made.cert.pem()).with_context(|| format!("cannot write {}", cert.display()))?;
    tracing::info!(cert = %cert.display(), "made a self-signed certificate for {hostname}");
    Ok((cert, key))
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    Ok(())
}

/// The trust anchors in a PEM file's contents.
pub fn roots_from_pem(pem: &[u8]) -> Result<rustls::RootCertStore> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem) {
        roots.add(cert.context("bad PEM certificate")?).context("not a usable certificate")?;
    }
    if roots.is_empty() {
        anyhow::bail!("no certificate");
    }
    Ok(roots)
}

/// The trust anchors in the PEM file at `path`, for the config check and the clients alike.
pub fn roots_from_file(path: &Path) -> Result<rustls::RootCertStore> {
    let pem = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    roots_from_pem(&pem).with_context(|| format!("{} holds no usable PEM certificate", path.display()))
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
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
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
