//! A transcript client: `send`, `expect`, `starttls`, over plain TCP or TLS.

use std::net::SocketAddr;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

pub trait Io: AsyncRead + AsyncWrite + Unpin + Send + Sync {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + Sync> Io for T {}

pub struct Client {
    io: Option<Box<dyn Io>>,
    buf: Vec<u8>,
    peer_cert: Option<Vec<u8>>,
}

/// A 220 greeting, one line or several (`220-` ... `220 `).
pub fn is_greeting(reply: &str) -> bool {
    reply.lines().all(|l| l.starts_with("220"))
        && reply.lines().last().is_some_and(|l| l.starts_with("220 "))
}

impl Client {
    /// Connects and reads the greeting.
    pub async fn connect(addr: SocketAddr) -> Client {
        let (c, greeting) = Client::connect_raw(addr).await;
        assert!(is_greeting(&greeting), "greeting: {greeting}");
        c
    }

    /// Connects from another loopback address (another client, as far as sponts can tell).
    pub async fn connect_from(addr: SocketAddr, source: &str) -> Client {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
        let (c, greeting) = Client::from_stream(socket.connect(addr).await.unwrap()).await;
        assert!(is_greeting(&greeting), "greeting: {greeting}");
        c
    }

    pub async fn connect_raw(addr: SocketAddr) -> (Client, String) {
        Client::from_stream(TcpStream::connect(addr).await.unwrap()).await
    }

    /// Sends `early` before the greeting arrives, then reads the greeting.
    pub async fn from_stream_after(mut s: TcpStream, early: &[u8]) -> Client {
        s.write_all(early).await.unwrap();
        let (c, greeting) = Client::from_stream(s).await;
        assert!(is_greeting(&greeting), "greeting: {greeting}");
        c
    }

    /// Wraps a connected stream and reads the greeting.
    pub async fn from_stream(s: TcpStream) -> (Client, String) {
        let mut c = Client {
            io: Some(Box::new(s)),
            buf: Vec::new(),
            peer_cert: None,
        };
        let g = c.reply().await;
        (c, g)
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.io.as_mut().unwrap().write_all(bytes).await.unwrap();
    }

    /// Sends one command line (CRLF added) and returns the whole reply.
    pub async fn cmd(&mut self, line: &str) -> String {
        self.send(format!("{line}\r\n").as_bytes()).await;
        self.reply().await
    }

    /// Sends a command and asserts the reply code; returns the reply.
    pub async fn expect(&mut self, line: &str, code: u16) -> String {
        let r = self.cmd(line).await;
        assert!(
            r.starts_with(&code.to_string()),
            "{line:?} -> {r:?}, expected {code}"
        );
        r
    }

    /// Reads one (possibly multi-line) reply; lines joined by '\n'. Empty at EOF.
    pub async fn reply(&mut self) -> String {
        let mut lines = Vec::new();
        loop {
            let Some(line) = self.line().await else {
                return lines.join("\n");
            };
            let last = line.as_bytes().get(3) != Some(&b'-');
            lines.push(line);
            if last {
                return lines.join("\n");
            }
        }
    }

    async fn line(&mut self) -> Option<String> {
        loop {
            if let Some(p) = self.buf.iter().position(|&b| b == b'\n') {
                let l: Vec<u8> = self.buf.drain(..=p).collect();
                return Some(String::from_utf8_lossy(&l).trim_end().to_string());
            }
            let mut tmp = [0u8; 4096];
            let n = tokio::time::timeout(
                std::time::Duration::from_secs(20),
                self.io.as_mut().unwrap().read(&mut tmp),
            )
            .await
            .expect("reply within 20 s")
            .unwrap_or(0);
            if n == 0 {
                return None;
            }
            self.buf.extend_from_slice(&tmp[..n]);
        }
    }

    /// True when the server has closed the connection.
    pub async fn closed(&mut self) -> bool {
        self.line().await.is_none()
    }

    /// Upgrades to TLS (after a 220 to STARTTLS); returns "TLSv1.x".
    pub async fn starttls(&mut self) -> String {
        let io = self.io.take().unwrap();
        let connector =
            tokio_rustls::TlsConnector::from(sponts::smtp::tls::backend_client_config(None));
        let name = rustls::pki_types::ServerName::try_from("gw.test.example").unwrap();
        let tls = connector.connect(name, io).await.expect("TLS handshake");
        let version = format!("{:?}", tls.get_ref().1.protocol_version().unwrap());
        self.peer_cert = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|c| c.to_vec());
        self.io = Some(Box::new(tls));
        self.buf.clear();
        version
    }

    /// The certificate the server presented (after [`Client::starttls`]).
    pub fn peer_certificate(&self) -> Option<Vec<u8>> {
        self.peer_cert.clone()
    }

    /// A full transaction with the given message; returns the final reply.
    pub async fn send_mail(&mut self, from: &str, rcpts: &[&str], message: &[u8]) -> String {
        self.expect(&format!("MAIL FROM:<{from}>"), 250).await;
        for r in rcpts {
            self.expect(&format!("RCPT TO:<{r}>"), 250).await;
        }
        self.expect("DATA", 354).await;
        self.send(&stuff(message)).await;
        self.send(b".\r\n").await;
        self.reply().await
    }
}

/// Dot-stuffs a CRLF message for the wire (RFC 5321 4.5.2).
pub fn stuff(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 16);
    for line in message.split_inclusive(|&b| b == b'\n') {
        if line.starts_with(b".") {
            out.push(b'.');
        }
        out.extend_from_slice(line);
    }
    out
}
