//! The SMTP client towards the backend mail server. One `Backend` is opened per client session
//! at its first MAIL and mirrors the client's transaction command by command, so the backend's
//! own answers can be handed back to the client during the dialogue.

use std::io;
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;
use tokio::net::TcpStream;
use tokio::time::timeout;

use super::conn::{Conn, Line};
use super::data::write_stuffed;
use super::reply::Reply;
use crate::config::StartTls;

#[derive(Debug, Error)]
pub enum BackendError {
    #[error("cannot connect to {addr}: {source}")]
    Connect { addr: String, source: io::Error },
    #[error("backend I/O: {0}")]
    Io(#[from] io::Error),
    #[error("backend timed out ({0})")]
    Timeout(&'static str),
    #[error("backend protocol error: {0}")]
    Protocol(String),
    #[error("backend refused the session: {0}")]
    Refused(Reply),
    #[error("backend does not offer STARTTLS, and backend.starttls = \"required\"")]
    TlsRequired,
    #[error("TLS handshake with the backend failed: {0}")]
    Tls(io::Error),
}

/// Timeouts of RFC 5321 4.5.3.2, as a client.
#[derive(Debug, Clone, Copy)]
pub struct ClientTimeouts {
    pub connect: Duration,
    pub greeting: Duration,
    pub command: Duration,
    pub data_init: Duration,
    pub data_block: Duration,
    pub data_end: Duration,
}

impl ClientTimeouts {
    pub fn rfc5321(connect: Duration) -> Self {
        ClientTimeouts {
            connect,
            greeting: Duration::from_secs(300),
            command: Duration::from_secs(300),
            data_init: Duration::from_secs(120),
            data_block: Duration::from_secs(180),
            data_end: Duration::from_secs(600),
        }
    }
}

/// What the backend said it supports in its EHLO reply.
#[derive(Debug, Clone, Default)]
pub struct Capabilities {
    pub pipelining: bool,
    pub size: bool,
    pub eight_bit_mime: bool,
    pub starttls: bool,
}

/// Everything needed to open a backend session.
#[derive(Clone)]
pub struct BackendTarget {
    pub address: String,
    pub helo: String,
    pub starttls: StartTls,
    pub timeouts: ClientTimeouts,
    pub tls: Arc<rustls::ClientConfig>,
    /// The name the certificate is checked against (and sent as SNI) when it is not the host of
    /// `address` (an MX host reached by its IP address).
    pub tls_name: Option<String>,
}

impl BackendTarget {
    pub fn from_config(config: &crate::config::Config) -> BackendTarget {
        BackendTarget {
            address: config.backend.address.clone(),
            helo: config.smtp.hostname.clone(),
            starttls: config.backend.starttls,
            timeouts: ClientTimeouts::rfc5321(config.backend.connect_timeout.0),
            tls: super::tls::backend_client_config(config.backend.tls_ca.as_deref()),
            tls_name: None,
        }
    }
}

pub struct Backend {
    conn: Conn,
    pub caps: Capabilities,
    /// "TLSv1.3 TLS13_..." when the link to the backend is encrypted.
    pub tls: Option<String>,
    timeouts: ClientTimeouts,
}

const MAX_REPLY_LINES: usize = 100;

impl Backend {
    pub async fn connect(target: &BackendTarget) -> Result<Backend, BackendError> {
        let t = target.timeouts;
        let tcp = timeout(t.connect, TcpStream::connect(&target.address))
            .await
            .map_err(|_| BackendError::Timeout("connect"))?
            .map_err(|source| BackendError::Connect {
                addr: target.address.clone(),
                source,
            })?;
        let _ = tcp.set_nodelay(true);
        let mut b = Backend {
            conn: Conn::new(Box::new(tcp)),
            caps: Capabilities::default(),
            tls: None,
            timeouts: t,
        };
        let greeting = b.read_reply(t.greeting, "greeting").await?;
        if greeting.code != 220 {
            return Err(BackendError::Refused(greeting));
        }
        b.ehlo(&target.helo).await?;
        if target.starttls != StartTls::Off {
            if b.caps.starttls {
                b.starttls(target).await?;
                b.ehlo(&target.helo).await?;
            } else if target.starttls == StartTls::Required {
                return Err(BackendError::TlsRequired);
            }
        }
        Ok(b)
    }

    async fn ehlo(&mut self, helo: &str) -> Result<(), BackendError> {
        let reply = self
            .command(&format!("EHLO {helo}"), self.timeouts.command, "EHLO")
            .await?;
        if reply.code != 250 {
            return Err(BackendError::Refused(reply));
        }
        let mut caps = Capabilities::default();
        for line in reply.lines.iter().skip(1) {
            let kw = line.split(' ').next().unwrap_or("").to_ascii_uppercase();
            match kw.as_str() {
                "PIPELINING" => caps.pipelining = true,
                "SIZE" => caps.size = true,
                "8BITMIME" => caps.eight_bit_mime = true,
                "STARTTLS" => caps.starttls = true,
                _ => {}
            }
        }
        self.caps = caps;
        Ok(())
    }

    async fn starttls(&mut self, target: &BackendTarget) -> Result<(), BackendError> {
        let reply = self
            .command("STARTTLS", self.timeouts.command, "STARTTLS")
            .await?;
        if reply.code != 220 {
            return Err(BackendError::Refused(reply));
        }
        let io = self
            .conn
            .take_io()
            .ok_or_else(|| BackendError::Protocol("stream gone".into()))?;
        let host = match &target.tls_name {
            Some(name) => name.clone(),
            None => crate::net::parse_host_port(&target.address)
                .map(|(h, _)| h)
                .unwrap_or_default(),
        };
        let name = rustls::pki_types::ServerName::try_from(host)
            .unwrap_or_else(|_| {
                rustls::pki_types::ServerName::try_from("backend.invalid").expect("static name")
            })
            .to_owned();
        let connector = tokio_rustls::TlsConnector::from(target.tls.clone());
        let stream = timeout(self.timeouts.command, connector.connect(name, io))
            .await
            .map_err(|_| BackendError::Timeout("TLS handshake"))?
            .map_err(BackendError::Tls)?;
        self.tls = Some(super::tls::describe(stream.get_ref().1));
        self.conn.set_io(Box::new(stream));
        Ok(())
    }

    /// Sends one command line and reads its reply.
    pub async fn command(
        &mut self,
        line: &str,
        wait: Duration,
        what: &'static str,
    ) -> Result<Reply, BackendError> {
        self.conn.queue_bytes(line.as_bytes());
        self.conn.queue_bytes(b"\r\n");
        self.conn.flush().await?;
        self.read_reply(wait, what).await
    }

    pub async fn mail(
        &mut self,
        from: &str,
        size: Option<u64>,
        eight_bit: bool,
    ) -> Result<Reply, BackendError> {
        let line = self.mail_line(from, size, eight_bit);
        self.command(&line, self.timeouts.command, "MAIL").await
    }

    /// MAIL FROM with the parameters the server takes.
    fn mail_line(&self, from: &str, size: Option<u64>, eight_bit: bool) -> String {
        let mut line = format!("MAIL FROM:<{from}>");
        if let (Some(n), true) = (size, self.caps.size) {
            line.push_str(&format!(" SIZE={n}"));
        }
        if eight_bit && self.caps.eight_bit_mime {
            line.push_str(" BODY=8BITMIME");
        }
        line
    }

    pub async fn rcpt(&mut self, to: &str) -> Result<Reply, BackendError> {
        self.command(&format!("RCPT TO:<{to}>"), self.timeouts.command, "RCPT")
            .await
    }

    pub async fn rset(&mut self) -> Result<Reply, BackendError> {
        self.command("RSET", self.timeouts.command, "RSET").await
    }

    /// DATA, the message (already CRLF-clean), and the final reply. A non-354 answer to DATA
    /// is returned as the final reply.
    pub async fn data(&mut self, parts: &[&[u8]]) -> Result<Reply, BackendError> {
        let go = self
            .command("DATA", self.timeouts.data_init, "DATA")
            .await?;
        if go.code != 354 {
            // The transaction is still open at the backend: close it, so this connection can
            // serve the next one.
            self.rset().await?;
            return Ok(go);
        }
        self.send_data(parts).await
    }

    /// The message after a 354 (dot-stuffed, with its end), and the final reply.
    async fn send_data(&mut self, parts: &[&[u8]]) -> Result<Reply, BackendError> {
        let size: usize = parts.iter().map(|p| p.len()).sum();
        // Generous: a data block timeout per MiB, never less than one block timeout.
        let budget = self.timeouts.data_block * (1 + (size / (1 << 20)) as u32);
        timeout(budget, write_stuffed(&mut self.conn, parts))
            .await
            .map_err(|_| BackendError::Timeout("sending data"))??;
        self.read_reply(self.timeouts.data_end, "end of data").await
    }

    /// One whole transaction (MAIL, every RCPT, DATA) for a message already CRLF-clean: each
    /// recipient's answer — its RCPT refusal, or the final reply to DATA; a refused MAIL or DATA
    /// answers for every recipient it covers. The connection is ready for the next transaction
    /// afterwards (refused ones are reset).
    pub async fn transaction(
        &mut self,
        from: &str,
        rcpts: &[String],
        message: &[u8],
    ) -> Result<Vec<Reply>, BackendError> {
        let eight_bit = message.iter().any(|&b| b >= 0x80);
        if self.caps.pipelining {
            return self
                .transaction_pipelined(false, from, rcpts, message, eight_bit)
                .await
                .map(|a| a.expect("no RSET asked"));
        }
        let r = self
            .mail(from, Some(message.len() as u64), eight_bit)
            .await?;
        if !r.is_positive() {
            self.rset().await?;
            return Ok(vec![r; rcpts.len()]);
        }
        let mut answers = Vec::with_capacity(rcpts.len());
        for a in rcpts {
            answers.push(self.rcpt(a).await?);
        }
        if !answers.iter().any(Reply::is_positive) {
            self.rset().await?;
            return Ok(answers);
        }
        let end = self.data(&[message]).await?;
        for a in answers.iter_mut().filter(|a| a.is_positive()) {
            *a = end.clone();
        }
        Ok(answers)
    }

    /// `transaction` on a session that served an earlier one and waited: RSET first (in the same
    /// write as the rest when pipelining), proving the session still works. `None`: it did not
    /// answer RSET as ready — nothing of this message was sent (its data never went out), so the
    /// caller opens a new session.
    pub async fn next_transaction(
        &mut self,
        from: &str,
        rcpts: &[String],
        message: &[u8],
    ) -> Result<Option<Vec<Reply>>, BackendError> {
        if self.caps.pipelining {
            let eight_bit = message.iter().any(|&b| b >= 0x80);
            return self
                .transaction_pipelined(true, from, rcpts, message, eight_bit)
                .await;
        }
        match self.rset().await {
            Ok(r) if r.is_positive() => self.transaction(from, rcpts, message).await.map(Some),
            _ => Ok(None),
        }
    }

    /// `transaction` with PIPELINING (RFC 2920): MAIL, every RCPT and DATA go out in one write
    /// and their replies are read in order — one round trip where there were 2 + recipients.
    /// `reset`: RSET leads the group (`None` when it was not answered as ready).
    async fn transaction_pipelined(
        &mut self,
        reset: bool,
        from: &str,
        rcpts: &[String],
        message: &[u8],
        eight_bit: bool,
    ) -> Result<Option<Vec<Reply>>, BackendError> {
        if reset {
            self.conn.queue_bytes(b"RSET\r\n");
        }
        let mail_line = self.mail_line(from, Some(message.len() as u64), eight_bit);
        self.conn.queue_bytes(mail_line.as_bytes());
        self.conn.queue_bytes(b"\r\n");
        for a in rcpts {
            self.conn
                .queue_bytes(format!("RCPT TO:<{a}>\r\n").as_bytes());
        }
        self.conn.queue_bytes(b"DATA\r\n");
        if reset {
            // A session the server has closed meanwhile fails here, before any of it counted.
            let ready = match self.conn.flush().await {
                Ok(()) => self.read_reply(self.timeouts.command, "RSET").await,
                Err(e) => Err(e.into()),
            };
            if !ready.is_ok_and(|r| r.is_positive()) {
                return Ok(None);
            }
        } else {
            self.conn.flush().await?;
        }
        let mail = self.read_reply(self.timeouts.command, "MAIL").await?;
        let mut answers = Vec::with_capacity(rcpts.len());
        for _ in rcpts {
            answers.push(self.read_reply(self.timeouts.command, "RCPT").await?);
        }
        let go = self.read_reply(self.timeouts.data_init, "DATA").await?;
        if !mail.is_positive() {
            answers = vec![mail; rcpts.len()];
        }
        let any = answers.iter().any(Reply::is_positive);
        if go.code == 354 && !any {
            // A server that opens DATA with nobody to deliver to gets an empty message's end,
            // which it must refuse (RFC 2920 3.1); nothing is sent.
            self.conn.queue_bytes(b".\r\n");
            self.conn.flush().await?;
            self.read_reply(self.timeouts.data_end, "end of data")
                .await?;
        }
        if go.code != 354 || !any {
            self.rset().await?;
            for a in answers.iter_mut().filter(|a| a.is_positive()) {
                *a = go.clone();
            }
            return Ok(Some(answers));
        }
        let end = self.send_data(&[message]).await?;
        for a in answers.iter_mut().filter(|a| a.is_positive()) {
            *a = end.clone();
        }
        Ok(Some(answers))
    }

    /// QUIT without waiting long for the answer: the session is over either way.
    pub async fn quit(mut self) {
        let _ = self.command("QUIT", Duration::from_secs(5), "QUIT").await;
        self.conn.shutdown().await;
    }

    async fn read_reply(
        &mut self,
        wait: Duration,
        what: &'static str,
    ) -> Result<Reply, BackendError> {
        timeout(wait, self.read_reply_inner())
            .await
            .map_err(|_| BackendError::Timeout(what))?
    }

    async fn read_reply_inner(&mut self) -> Result<Reply, BackendError> {
        let mut lines = Vec::new();
        loop {
            let line = match self.conn.read_line(2048).await? {
                Line::Text(t) => t,
                Line::TooLong => return Err(BackendError::Protocol("reply line too long".into())),
                Line::Eof => return Err(BackendError::Io(io::ErrorKind::UnexpectedEof.into())),
            };
            let text = String::from_utf8_lossy(&line);
            let code: u16 = text
                .get(..3)
                .filter(|c| c.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|c| c.parse().ok())
                .filter(|c| (200..600).contains(c))
                .ok_or_else(|| BackendError::Protocol(format!("bad reply line {text:?}")))?;
            let sep = text.as_bytes().get(3).copied();
            lines.push(text.get(4..).unwrap_or("").to_string());
            if lines.len() > MAX_REPLY_LINES {
                return Err(BackendError::Protocol("reply too long".into()));
            }
            match sep {
                Some(b'-') => continue,
                Some(b' ') | None => return Ok(Reply::from_backend(code, lines)),
                Some(_) => return Err(BackendError::Protocol(format!("bad reply line {text:?}"))),
            }
        }
    }
}
