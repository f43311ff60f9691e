//! Shared test fixtures: a sponts gateway started in-process on loopback, a capture backend that
//! records what it receives byte for byte (parsed independently of sponts' own code), and a
//! transcript client that reads like an RFC session.
#![allow(dead_code)]

pub mod agency;
pub mod backend;
pub mod browser;
pub mod client;
pub mod dkimpy;
pub mod dovecot;
pub mod fetchmail;
pub mod http;
pub mod peers;
pub mod pg;

use std::net::SocketAddr;
use std::path::PathBuf;

#[allow(unused_imports)]
pub use backend::{Capture, CaptureOptions};
#[allow(unused_imports)]
pub use client::Client;

/// A running gateway with its own data directory.
pub struct Gateway {
    pub addr: SocketAddr,
    /// The web UI and API.
    pub web: SocketAddr,
    /// POP3 (STLS).
    pub pop3: SocketAddr,
    pub running: Option<sponts::Running>,
    pub store: sponts::storage::Store,
    pub dir: tempfile::TempDir,
}

impl Gateway {
    pub async fn stop(mut self) {
        if let Some(r) = self.running.take() {
            r.stop(std::time::Duration::from_secs(2)).await;
        }
    }

    /// Reads the interception orders again now (they are otherwise re-read every second), so a
    /// test's next event meets the orders it has just written.
    #[allow(dead_code)]
    pub async fn reload_orders(&self) {
        self.running
            .as_ref()
            .unwrap()
            .intercept
            .reload()
            .await
            .unwrap();
    }

    /// Waits (up to 30 s) until the orders this gateway acts on for `login` are `n`: for orders
    /// made or ended elsewhere (the web UI, another node), which the refresh picks up.
    #[allow(dead_code)]
    pub async fn wait_orders(&self, login: &str, n: usize) {
        let intercept = &self.running.as_ref().unwrap().intercept;
        for _ in 0..300 {
            if intercept.orders_for_login(login).len() == n {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!(
            "the orders for {login} are not {n}: {}",
            intercept.orders_for_login(login).len()
        );
    }
}

/// A config for tests: listen on an ephemeral loopback port, relay `example.org` to `backend`.
pub fn config(backend: SocketAddr, extra: &str) -> (sponts::config::Config, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    // The pregreet pause (`uce.greet_delay`) only where a test asks for it: it is tested on its own.
    let text = format!(
        "[smtp]\nlisten = [\"127.0.0.1:0\"]\nhostname = \"gw.test.example\"\n[web]\nlisten = \"127.0.0.1:0\"\n[pop3]\nlisten = \"127.0.0.1:0\"\n[backend]\naddress = \"{backend}\"\nstarttls = \"off\"\n[domains]\nlocal = [\"example.org\", \"example.net\"]\n[storage]\ndata_dir = \"{}\"\n[uce]\ngreet_delay = \"0s\"\n{}",
        dir.path().display(),
        extra
    );
    // No report mail into a test's backend unless the test asks for one.
    let text = if extra.contains("[report]") {
        text
    } else {
        format!("{text}\n[report]\nmail = \"off\"\n")
    };
    let config = sponts::config::Config::parse(&merge(&text))
        .unwrap_or_else(|e| panic!("test config: {e}\n{text}"));
    (config, dir)
}

/// TOML allows a table once; tests add keys to [smtp] by writing `[smtp]` again, which we fold.
/// A key written again replaces the earlier one (a test's own `starttls` over the default).
/// A `modules = [...]` line goes to the top, wherever it was written.
fn merge(text: &str) -> String {
    let mut sections: Vec<(String, Vec<String>)> = vec![(String::new(), vec![])];
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('[') && !t.starts_with("[[") {
            if let Some(pos) = sections.iter().position(|(h, _)| h == t) {
                let s = sections.remove(pos);
                sections.push(s);
            } else {
                sections.push((t.to_string(), vec![]));
            }
        } else if t.starts_with("modules") {
            // The one top-level key: it belongs before every table.
            sections[0].1.push(line.to_string());
        } else {
            let lines = &mut sections.last_mut().unwrap().1;
            if let Some(key) = bare_key(t) {
                lines.retain(|l| bare_key(l.trim()) != Some(key));
            }
            lines.push(line.to_string());
        }
    }
    let mut out = String::new();
    for (h, lines) in sections {
        if !h.is_empty() {
            out.push_str(&h);
            out.push('\n');
        }
        for l in lines {
            out.push_str(&l);
            out.push('\n');
        }
    }
    out
}

/// The key of a `key = value` line (a bare key only; not a line inside a multi-line value).
fn bare_key(line: &str) -> Option<&str> {
    let key = line.split_once('=')?.0.trim();
    (!key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'))
    .then_some(key)
}

pub async fn start_with(config: sponts::config::Config, dir: tempfile::TempDir) -> Gateway {
    let running = sponts::start(config).await.expect("gateway starts");
    let addr = running.smtp.addrs[0];
    let web = running
        .web
        .as_ref()
        .map(|w| w.addr)
        .unwrap_or_else(dead_address);
    let pop3 = running
        .pop3
        .as_ref()
        .map(|p| p.addr)
        .unwrap_or_else(dead_address);
    let store = running.store.clone();
    Gateway {
        addr,
        web,
        pop3,
        running: Some(running),
        store,
        dir,
    }
}

/// A gateway in front of `backend`, with extra TOML appended to the test config.
pub async fn gateway(backend: SocketAddr, extra: &str) -> Gateway {
    let (config, dir) = config(backend, extra);
    start_with(config, dir).await
}

/// An address on loopback where nothing listens.
/// Waits (bounded) until something accepts connections on `addr`: a sponts process started.
pub async fn wait_listening(addr: SocketAddr) {
    // Up to 30 s: a fresh process on a loaded machine; it returns as soon as sponts listens.
    for _ in 0..3000 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("sponts did not start listening on {addr}");
}

/// An address nobody listens on: a backend that is down, or a listener a test starts later.
/// Each is on a loopback address of its own (127.64.0.1 to 127.253.255.254): a port merely
/// found free on 127.0.0.1 can be taken by another test's listener before it is used, and a
/// "dead" backend then answers; no other test binds these addresses.
pub fn dead_address() -> SocketAddr {
    let r = random_u64().to_le_bytes();
    let ip = std::net::Ipv4Addr::new(127, 64 + r[0] % 190, r[1], 1 + r[2] % 254);
    let l = std::net::TcpListener::bind((ip, 0)).unwrap();
    l.local_addr().unwrap()
}

/// A port free on 127.0.0.1 for a program that only takes a port and binds it a moment later.
/// Drawn below the kernel's ephemeral range, like scripts/peers/free_port.py: the kernel never
/// hands such a port to another test's listener meanwhile.
pub fn free_port() -> u16 {
    let ephemeral: u16 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse().ok())
        .unwrap_or(32768);
    if ephemeral > 11_000 {
        for _ in 0..1000 {
            let port = 10_000 + (random_u64() % u64::from(ephemeral - 10_000)) as u16;
            if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
                return port;
            }
        }
    }
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// A number different in each process and call.
fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.write_u64(NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    h.finish()
}

pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// The journal records matching `id`, waiting briefly (records are committed before the reply,
/// so normally at once).
pub async fn journal_entry(
    store: &sponts::storage::Store,
    id: &str,
) -> sponts::storage::JournalEntry {
    let f = sponts::storage::JournalFilter {
        id: Some(id.to_string()),
        ..Default::default()
    };
    let mut v = store.query_journal(&f).await.unwrap();
    assert_eq!(v.len(), 1, "journal entry {id}");
    v.remove(0)
}

/// For tests that count per-hour buckets: when less than 90 s of the hour are left, waits for
/// the next hour, so the test's traffic and its checks fall in the same bucket.
#[allow(dead_code)]
pub async fn clear_of_hour_boundary() {
    clear_of_boundary(3_600_000_000, 0).await;
}

/// Waits while a UTC `period` (in µs) ends in less than 90 s or began less than `settle` µs
/// ago: a test that counts on which days are over (the archive seals a day some minutes after
/// its end) must not straddle a midnight.
#[allow(dead_code)]
pub async fn clear_of_boundary(period: i64, settle: i64) {
    let into = sponts::clock::now_us().rem_euclid(period);
    let wait = if into < settle {
        settle - into
    } else if period - into < 90_000_000 {
        period - into + settle
    } else {
        return;
    };
    tokio::time::sleep(std::time::Duration::from_micros(wait as u64 + 100_000)).await;
}

/// `id=XXXX` from a final reply.
pub fn reply_id(text: &str) -> String {
    text.rsplit("id=").next().unwrap().trim().to_string()
}

/// The transaction id of a final reply: in its `id=` tail, or — for a refusal as "user unknown",
/// which carries none (it must read like the backend's) — the newest journal record's.
pub async fn id_of(store: &sponts::storage::Store, reply: &str) -> String {
    if reply.contains(" id=") {
        return reply_id(reply);
    }
    let newest = store
        .query_journal(&sponts::storage::JournalFilter {
            limit: Some(1),
            ..Default::default()
        })
        .await
        .unwrap();
    newest
        .first()
        .map(|e| e.id.clone())
        .unwrap_or_else(|| panic!("no journal record for {reply}"))
}

/// An account with the tests' password.
pub async fn add_user(store: &sponts::storage::Store, address: &str, role: sponts::storage::Role) {
    store
        .add_user(
            address,
            &sponts::auth::hash_password(PASSWORD).unwrap(),
            role,
        )
        .await
        .unwrap();
}

pub const PASSWORD: &str = "password for tests";

/// A new admin account (admin@example.org), signed in over the web.
#[allow(dead_code)]
pub async fn signed_in_admin(gw: &Gateway) -> http::Login {
    add_user(&gw.store, "admin@example.org", sponts::storage::Role::Admin).await;
    http::login(gw.web, "admin@example.org", PASSWORD)
        .await
        .unwrap()
}

/// Runs a command off the test's runtime thread. An in-process gateway shares that thread, and a
/// database transaction it holds open would never finish while the thread waits for the command.
pub async fn output(mut command: std::process::Command) -> std::process::Output {
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

/// Kills a process this test started (`sponts serve`, `sponts demo`) if the test fails before it
/// stops it: a leaked server would hold ports and files for the rest of the run.
pub struct KillOnPanic(pub u32);

impl Drop for KillOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &self.0.to_string()])
                .status();
        }
    }
}

/// Sends `bytes` to `addr`, closes the sending side, and reads until the server closes; `None` if
/// that takes longer than `limit` (a session that does not end once its client has gone).
pub async fn half_closed_exchange(
    addr: SocketAddr,
    bytes: &[u8],
    limit: std::time::Duration,
) -> Option<Vec<u8>> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut r, mut w) = stream.into_split();
    let writer = async move {
        let _ = w.write_all(bytes).await;
        let _ = w.shutdown().await;
        w // open until the reading is done: the server closes first
    };
    let reader = async {
        let mut out = Vec::new();
        let _ = r.read_to_end(&mut out).await;
        out
    };
    tokio::time::timeout(limit, async { tokio::join!(writer, reader).1 })
        .await
        .ok()
}
