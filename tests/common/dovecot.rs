//! A real Dovecot started for a test from `scripts/peers/dovecot_start.sh`: IMAP (STARTTLS), POP3
//! (STLS), IMAPS and POP3S on loopback, a self-signed certificate for `localhost`, and the users
//! `target` / `target-pass` and `other` / `other-pass` with a Maildir each. Loopback is in its
//! `login_trusted_networks`, so it takes a proxy's word for the client's address. Stopped when
//! dropped.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("scripts/peers")
        .join(name)
}

pub struct Dovecot {
    pub imap: SocketAddr,
    pub pop3: SocketAddr,
    pub imaps: SocketAddr,
    pub pop3s: SocketAddr,
    dir: tempfile::TempDir,
}

impl Dovecot {
    pub fn start() -> Dovecot {
        Dovecot::start_with(None)
    }

    /// Dovecot showing the given certificate and key (PEM files) instead of a self-signed one.
    pub fn start_with(certificate: Option<(&std::path::Path, &std::path::Path)>) -> Dovecot {
        Dovecot::launch(certificate, false)
    }

    /// Dovecot with its usual per-IP penalty after failed logins (each one doubles the wait
    /// before the next login from that address is checked, from 2 s up to 15 s).
    pub fn start_with_penalty() -> Dovecot {
        Dovecot::launch(None, true)
    }

    fn launch(certificate: Option<(&std::path::Path, &std::path::Path)>, penalty: bool) -> Dovecot {
        assert!(
            std::path::Path::new("/usr/sbin/dovecot").exists(),
            "dovecot is needed (Debian packages dovecot-imapd, dovecot-pop3d)"
        );
        let dir = tempfile::tempdir().unwrap();
        if let Some((cert, key)) = certificate {
            // dovecot_start.sh keeps a certificate it finds in place.
            std::fs::copy(cert, dir.path().join("cert.pem")).unwrap();
            std::fs::copy(key, dir.path().join("key.pem")).unwrap();
        }
        let out = Command::new("bash")
            .arg(script("dovecot_start.sh"))
            .arg(dir.path())
            .env("SPONTS_DOVECOT_PENALTY", if penalty { "1" } else { "0" })
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "dovecot did not start:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = |key: &str| -> Option<SocketAddr> {
            let port = stdout
                .lines()
                .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))?;
            Some(SocketAddr::from((
                [127, 0, 0, 1],
                port.trim().parse().ok()?,
            )))
        };
        match (
            port("IMAP_PORT"),
            port("POP3_PORT"),
            port("IMAPS_PORT"),
            port("POP3S_PORT"),
        ) {
            (Some(imap), Some(pop3), Some(imaps), Some(pop3s)) => Dovecot {
                imap,
                pop3,
                imaps,
                pop3s,
                dir,
            },
            _ => {
                let _ = Command::new("bash")
                    .arg(script("dovecot_stop.sh"))
                    .arg(dir.path())
                    .output();
                panic!("dovecot_start.sh said:\n{stdout}");
            }
        }
    }

    /// Puts `message` into `user`'s INBOX as a delivery agent does: written under `tmp/` with a
    /// unique name, owned like the Maildir (Dovecot's mail processes never run as root), then
    /// renamed into `new/`.
    pub fn deliver(&self, user: &str, message: &[u8]) {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let maildir = self.maildir(user);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap();
        let name = format!(
            "{}.M{}P{}Q{}.sponts-test",
            now.as_secs(),
            now.subsec_micros(),
            std::process::id(),
            COUNT.fetch_add(1, Ordering::Relaxed)
        );
        let tmp = maildir.join("tmp").join(&name);
        std::fs::write(&tmp, message).unwrap();
        let owner = std::fs::metadata(maildir.join("new")).unwrap();
        std::os::unix::fs::chown(&tmp, Some(owner.uid()), Some(owner.gid())).unwrap();
        std::fs::rename(&tmp, maildir.join("new").join(name)).unwrap();
    }

    /// Every message in `user`'s INBOX (`new/` and `cur/`), in the order of their file names
    /// (arrival second first).
    pub fn messages(&self, user: &str) -> Vec<Vec<u8>> {
        let maildir = self.maildir(user);
        // Dovecot moves files from new/ to cur/ and renames them to change flags while we read:
        // keyed by the unique part of the name, and read again when a file went away.
        'again: for _ in 0..20 {
            let mut files = BTreeMap::new();
            for sub in ["new", "cur"] {
                for entry in std::fs::read_dir(maildir.join(sub)).unwrap() {
                    let path = entry.unwrap().path();
                    let name = path.file_name().unwrap().to_string_lossy();
                    files.insert(name.split(':').next().unwrap().to_string(), path);
                }
            }
            let mut messages = Vec::new();
            for path in files.values() {
                match std::fs::read(path) {
                    Ok(bytes) => messages.push(bytes),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue 'again,
                    Err(e) => panic!("{}: {e}", path.display()),
                }
            }
            return messages;
        }
        panic!("the Maildir of {user} kept changing");
    }

    /// Dovecot's log so far (logins name the client's address as `rip=`).
    /// Adds a login (Dovecot reads its users file again when it changes).
    #[allow(dead_code)]
    pub fn add_login(&self, name: &str, password: &str) {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(self.dir.path().join("users"))
            .unwrap();
        writeln!(f, "{name}:{{PLAIN}}{password}").unwrap();
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dovecot.log")).unwrap_or_default()
    }

    fn maildir(&self, user: &str) -> PathBuf {
        self.dir.path().join("mail").join(user).join("Maildir")
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(script("dovecot_stop.sh"))
            .arg(self.dir.path())
            .output();
    }
}
