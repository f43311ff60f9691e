//! Real third-party peers started for a test from the project's scripts: a DNS server with a
//! test zone, SpamAssassin's spamd, rspamd and ClamAV's clamd. Each is stopped when its handle is dropped.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("scripts/peers")
        .join(name)
}

/// `scripts/peers/dns_server.py` on a free loopback port, answering from a JSON zone file.
pub struct Dns {
    pub port: u16,
    zone: PathBuf,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Dns {
    /// `zone`: JSON as the script reads it, e.g. `{"1.0.0.127.bl.test.": [{"type": "A", "value": "127.0.0.2"}]}`.
    pub fn start(zone: &str) -> Dns {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("zone.json");
        std::fs::write(&path, zone).unwrap();
        let mut child = Command::new("python3")
            .arg(script("dns_server.py"))
            .arg("--zone")
            .arg(&path)
            .arg("--port")
            .arg("0")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 runs the DNS server");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("DNS_PORT=")
            .unwrap_or_else(|| panic!("DNS server said `{line}`"))
            .parse()
            .unwrap();
        Dns {
            port,
            zone: path,
            child,
            _dir: dir,
        }
    }

    /// Replaces the zone (atomically; the server re-reads it on the next query).
    pub fn set_zone(&self, zone: &str) {
        let tmp = self.zone.with_extension("tmp");
        std::fs::write(&tmp, zone).unwrap();
        std::fs::rename(&tmp, &self.zone).unwrap();
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Dns {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// spamd, rspamd or clamd from `scripts/peers/*_start.sh`.
pub struct Engine {
    pub port: u16,
    stop: PathBuf,
    dir: tempfile::TempDir,
}

impl Engine {
    pub fn spamd() -> Engine {
        Engine::start("spamd", &[("SPONTS_SPAMD_RULES", "minimal")])
    }

    pub fn rspamd() -> Engine {
        Engine::start("rspamd", &[])
    }

    /// ClamAV's clamd with the project's EICAR signatures; its unix socket is `socket()`.
    pub fn clamd() -> Engine {
        Engine::start("clamd", &[])
    }

    pub fn socket(&self) -> String {
        self.dir.path().join("clamd.sock").display().to_string()
    }

    fn start(name: &str, env: &[(&str, &str)]) -> Engine {
        assert!(
            Path::new(&format!("/usr/bin/{name}")).exists()
                || Path::new(&format!("/usr/sbin/{name}")).exists(),
            "{name} is needed (scripts/test installs it)"
        );
        let dir = tempfile::tempdir().unwrap();
        // The daemons run as their own users and must reach the state dir.
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        let out = Command::new("bash")
            .arg(script(&format!("{name}_start.sh")))
            .arg("0")
            .arg(dir.path())
            .envs(env.iter().copied())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{name} did not start:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let key = format!("{}_PORT=", name.to_uppercase());
        let port = stdout
            .lines()
            .find_map(|l| l.strip_prefix(key.as_str()))
            .unwrap_or_else(|| panic!("no {key} in {stdout}"))
            .trim()
            .parse()
            .unwrap();
        Engine {
            port,
            stop: script("stop.sh"),
            dir,
        }
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(&self.stop)
            .arg(self.dir.path())
            .output();
    }
}
