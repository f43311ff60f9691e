//! A whole sponts running in the fuzzing process, for the targets that fuzz a session rather than
//! a function: the emergency POP3 server and the IMAP proxy, over loopback TCP, with a SQLite
//! store in a temporary directory. It starts once per process; each input is one connection.
//!
//! What it holds: `alice@example.org` (password [`PASSWORD`], hashed with the cheapest argon2
//! parameters so a right password costs microseconds) with three messages queued for her while
//! the backend is down; an interception order for the IMAP login `target`, so the IMAP proxy reads
//! both directions of that session as it does for a real target; and a scripted IMAP backend that
//! logs anyone in and then says what the input tells it to.

use std::net::SocketAddr;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

pub const PASSWORD: &str = "fuzzing password";

pub struct Gateway {
    pub rt: tokio::runtime::Runtime,
    pub pop3: SocketAddr,
    pub imap: SocketAddr,
}

/// What the scripted IMAP backend sends after a login, for the session now being fuzzed.
static BACKEND_SCRIPT: Mutex<Vec<u8>> = Mutex::new(Vec::new());

pub fn gateway() -> &'static Gateway {
    static GW: OnceLock<Gateway> = OnceLock::new();
    GW.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
        let (pop3, imap) = rt.block_on(start());
        Gateway { rt, pop3, imap }
    })
}

async fn start() -> (SocketAddr, SocketAddr) {
    let dir = tempfile::tempdir().expect("temporary directory").keep();
    let backend = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let imap_backend = backend.local_addr().expect("address");
    tokio::spawn(scripted_imap_backend(backend));
    // Port 1 on loopback: nothing listens, so the SMTP backend is down and mail is queued.
    let text = format!(
        r#"
[smtp]
listen = ["127.0.0.1:0"]
hostname = "gw.fuzz.example"
[backend]
address = "127.0.0.1:1"
starttls = "off"
[domains]
local = ["example.org"]
[storage]
data_dir = "{dir}"
[web]
enabled = false
[digest]
enabled = false
[report]
mail = "off"
[uce]
greet_delay = "0s"
[queue]
probe = "30s"
[pop3]
listen = "127.0.0.1:0"
allow_plaintext_auth = true
[imap_proxy]
listen = ["127.0.0.1:0"]
backend = "{imap_backend}"
backend_tls = "off"
allow_plaintext_auth = true
max_failed_logins = 1000000
"#,
        dir = dir.display()
    );
    let config = sponts::config::Config::parse(&text).unwrap_or_else(|e| panic!("fuzz config: {e}"));
    let running = sponts::start(config).await.expect("sponts starts");
    let store = running.store.clone();
    store.add_user("alice@example.org", &cheap_hash(PASSWORD), sponts::storage::Role::User).await.expect("user");
    for body in [
        "Subject: one\r\nFrom: a@partner.example\r\n\r\nline one\r\n..dot line\r\n\r\nend\r\n",
        "Subject: =?utf-8?q?two?=\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n--b\r\nContent-Type: application/pdf; name=x.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0=\r\n--b--\r\n",
        "Subject: three\r\n\r\n",
    ] {
        send_mail(running.smtp.addrs[0], "alice@example.org", body).await;
    }
    let now = sponts::clock::now_us();
    let order = sponts::storage::intercept::Order {
        id: "FUZZ1".into(),
        reference: "fuzzing".into(),
        target: "target@example.org".into(),
        login: Some("target".into()),
        from_us: now - 1_000_000,
        until_us: now + 365 * 86_400_000_000,
        deliver: format!("dir:{}", dir.join("export").display()),
        deliver_to: None,
        notes: String::new(),
        created_by: "cli:fuzz".into(),
        created_us: now,
        ended_us: None,
    };
    std::fs::create_dir_all(dir.join("export")).expect("export directory");
    store.add_order(&order).await.expect("order");
    running.intercept.reload().await.expect("orders read");
    let pop3 = running.pop3.as_ref().expect("pop3 enabled").addr;
    let imap = running.proxies.imap[0];
    // Runs for the life of the process.
    std::mem::forget(running);
    (pop3, imap)
}

fn cheap_hash(password: &str) -> String {
    use argon2::password_hash::PasswordHasher;
    let params = argon2::Params::new(8, 1, 1, None).expect("argon2 parameters");
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    argon.hash_password(password.as_bytes()).expect("hash").to_string()
}

/// A polite SMTP client: waits for each reply; the message must be taken (250).
async fn send_mail(addr: SocketAddr, rcpt: &str, body: &str) {
    let stream = TcpStream::connect(addr).await.expect("smtp connect");
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    async fn reply(r: &mut BufReader<tokio::net::tcp::OwnedReadHalf>) -> String {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            assert!(r.read_line(&mut line).await.expect("smtp read") > 0, "smtp closed: {all}");
            all.push_str(&line);
            if line.as_bytes().get(3) == Some(&b' ') {
                return all;
            }
        }
    }
    reply(&mut r).await;
    for (cmd, want) in [
        ("EHLO fuzz.example\r\n".to_string(), "250"),
        ("MAIL FROM:<a@partner.example>\r\n".to_string(), "250"),
        (format!("RCPT TO:<{rcpt}>\r\n"), "250"),
        ("DATA\r\n".to_string(), "354"),
        (format!("{body}.\r\n"), "250"),
        ("QUIT\r\n".to_string(), "221"),
    ] {
        w.write_all(cmd.as_bytes()).await.expect("smtp write");
        let got = reply(&mut r).await;
        assert!(got.starts_with(want), "{cmd:?}: {got}");
    }
}

/// Logs every `LOGIN` in; answers other tagged commands OK and synchronizing literals with "+";
/// after a login sends [`BACKEND_SCRIPT`] and closes its side.
async fn scripted_imap_backend(listener: TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let script = BACKEND_SCRIPT.lock().expect("script").clone();
        tokio::spawn(async move {
            let (r, mut w) = stream.into_split();
            let mut r = BufReader::new(r);
            let _ = w.write_all(b"* OK [CAPABILITY IMAP4rev1 LITERAL+ AUTH=PLAIN COMPRESS=DEFLATE] fake backend ready\r\n").await;
            let mut logged_in = false;
            loop {
                // One whole command: a line that ends in a literal `{n}` / `{n+}` goes on after
                // the literal's octets (with "+" first for a synchronizing one).
                let mut command = Vec::new();
                loop {
                    let mut line = Vec::new();
                    match r.read_until(b'\n', &mut line).await {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    }
                    command.extend_from_slice(&line);
                    if logged_in {
                        break; // read and dropped until the proxy closes
                    }
                    let text = String::from_utf8_lossy(&line).into_owned();
                    let Some(open) = text.trim_end().strip_suffix('}').and_then(|t| t.rfind('{').map(|i| &t[i + 1..])) else { break };
                    let (n, sync) = match open.strip_suffix('+') {
                        Some(n) => (n, false),
                        None => (open, true),
                    };
                    let Ok(n) = n.parse::<usize>() else { return };
                    if n > 1 << 20 {
                        return;
                    }
                    if sync && w.write_all(b"+ go ahead\r\n").await.is_err() {
                        return;
                    }
                    let mut literal = vec![0; n];
                    if r.read_exact(&mut literal).await.is_err() {
                        return;
                    }
                    command.extend_from_slice(&literal);
                }
                if logged_in {
                    continue;
                }
                let text = String::from_utf8_lossy(&command).into_owned();
                let tag = text.split(' ').next().unwrap_or("*").trim_end().to_string();
                if text.to_ascii_uppercase().contains(" LOGIN ") {
                    logged_in = true;
                    let _ = w.write_all(format!("{tag} OK [CAPABILITY IMAP4rev1 LITERAL+] logged in\r\n").as_bytes()).await;
                    let _ = w.write_all(&script).await;
                    let _ = w.shutdown().await;
                } else if w.write_all(format!("{tag} OK done\r\n").as_bytes()).await.is_err() {
                    return;
                }
            }
        });
    }
}

/// Sends `input` on a new connection to `addr` (from the loopback address `from`), reading what
/// comes back at the same time, until the server closes. Panics if that takes over 30 s: a
/// session that does not end on its own is a finding.
pub fn converse(addr: SocketAddr, from: std::net::Ipv4Addr, input: &[u8], backend_script: &[u8]) -> Vec<u8> {
    let gw = gateway();
    *BACKEND_SCRIPT.lock().expect("script") = backend_script.to_vec();
    gw.rt.block_on(async {
        let socket = TcpSocket::new_v4().expect("socket");
        socket.bind(SocketAddr::new(from.into(), 0)).expect("bind client address");
        let stream = socket.connect(addr).await.expect("connect");
        let (mut r, mut w) = stream.into_split();
        let input = input.to_vec();
        let writer = async move {
            let _ = w.write_all(&input).await;
            let _ = w.shutdown().await;
            w // kept open until the reading is done: the server closes first
        };
        let reader = async {
            let mut out = Vec::new();
            let _ = r.read_to_end(&mut out).await;
            out
        };
        let session = async { tokio::join!(writer, reader).1 };
        tokio::time::timeout(Duration::from_secs(30), session).await.expect("the session did not end within 30 s of the client's end")
    })
}

/// A loopback client address per input, so that the per-address sign-in throttle never blocks
/// the fuzzing: 127.1.0.1 and on.
pub fn next_client_address() -> std::net::Ipv4Addr {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 65_000 + 1;
    std::net::Ipv4Addr::new(127, 1, (n >> 8) as u8, n as u8)
}
