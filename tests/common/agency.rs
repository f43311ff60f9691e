//! An agency for interception tests: a certificate authority made with rcgen, and the agency's
//! capture server (`scripts/peers/agency_smtp.py`, Debian's aiosmtpd) with a certificate from it,
//! STARTTLS required. What it receives is read back as files.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// A CA and one server certificate for 127.0.0.1 signed by it, as PEM files.
pub struct Pki {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    _dir: tempfile::TempDir,
}

impl Pki {
    pub fn new() -> Pki {
        use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
        let dir = tempfile::tempdir().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["127.0.0.1".to_string()])
            .unwrap()
            .signed_by(&key, &ca)
            .unwrap();
        let (ca_path, cert_path, key_path) = (
            dir.path().join("ca.pem"),
            dir.path().join("cert.pem"),
            dir.path().join("key.pem"),
        );
        std::fs::write(&ca_path, ca.pem()).unwrap();
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        Pki {
            ca: ca_path,
            cert: cert_path,
            key: key_path,
            _dir: dir,
        }
    }
}

pub struct Agency {
    pub port: u16,
    pub dir: tempfile::TempDir,
    child: Child,
}

impl Agency {
    /// On `port` (0: a free one), presenting `pki`'s server certificate.
    pub fn start(pki: &Pki, port: u16) -> Agency {
        let dir = tempfile::tempdir().unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/peers/agency_smtp.py");
        // Debian's python3, where python3-aiosmtpd is installed.
        let mut child = Command::new("/usr/bin/python3")
            .arg(script)
            .arg("--cert")
            .arg(&pki.cert)
            .arg("--key")
            .arg(&pki.key)
            .arg("--dir")
            .arg(dir.path())
            .arg("--port")
            .arg(port.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("/usr/bin/python3 runs the agency's server");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("AGENCY_PORT=")
            .unwrap_or_else(|| panic!("agency said `{line}`"))
            .parse()
            .unwrap();
        Agency { port, dir, child }
    }

    /// The mails received so far: (envelope as JSON, message bytes), in order.
    pub fn received(&self) -> Vec<(serde_json::Value, Vec<u8>)> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        names.sort();
        names
            .iter()
            .map(|j| {
                (
                    serde_json::from_slice(&std::fs::read(j).unwrap()).unwrap(),
                    std::fs::read(j.with_extension("eml")).unwrap(),
                )
            })
            .collect()
    }
}

impl Drop for Agency {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
