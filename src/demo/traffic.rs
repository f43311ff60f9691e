//! The demo's senders: SMTP clients that talk to sponts' own listener from different loopback
//! addresses (127.0.0.x), as the internet would — partners, a spammer, a bot that talks before
//! the greeting, one that writes to a trap — each in one session of several messages.

use std::net::{IpAddr, SocketAddr};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpSocket;

/// One SMTP session from a given source address.
pub struct Sender {
    stream: BufReader<tokio::net::TcpStream>,
}

/// A message to send: envelope and content.
pub struct Outgoing {
    pub from: String,
    pub to: Vec<String>,
    pub message: Vec<u8>,
}

impl Sender {
    /// Connects from `source` and reads the greeting; with `early`, says EHLO before it has
    /// ended, as a bot does.
    pub async fn connect(to: SocketAddr, source: IpAddr, early: bool) -> std::io::Result<Sender> {
        let socket = TcpSocket::new_v4()?;
        socket.bind(SocketAddr::new(source, 0))?;
        let mut s = Sender {
            stream: BufReader::new(socket.connect(to).await?),
        };
        if early {
            s.stream
                .get_mut()
                .write_all(b"EHLO bot.spam.example\r\n")
                .await?;
            s.reply().await?;
        } else {
            s.reply().await?;
            s.command("EHLO mail.partner.example").await?;
        }
        Ok(s)
    }

    /// Reads one reply (all its lines); returns the last line.
    async fn reply(&mut self) -> std::io::Result<String> {
        let mut line = String::new();
        loop {
            line.clear();
            if self.stream.read_line(&mut line).await? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            if line.as_bytes().get(3) != Some(&b'-') {
                return Ok(line.trim_end().to_string());
            }
        }
    }

    async fn command(&mut self, line: &str) -> std::io::Result<String> {
        self.stream
            .get_mut()
            .write_all(format!("{line}\r\n").as_bytes())
            .await?;
        self.reply().await
    }

    /// One transaction; returns the final reply (or the refusal that ended it).
    pub async fn send(&mut self, m: &Outgoing) -> std::io::Result<String> {
        let r = self.command(&format!("MAIL FROM:<{}>", m.from)).await?;
        if !r.starts_with('2') {
            return Ok(r);
        }
        let mut last_refusal = None;
        let mut accepted = 0;
        for to in &m.to {
            let r = self.command(&format!("RCPT TO:<{to}>")).await?;
            if r.starts_with('2') {
                accepted += 1;
            } else {
                last_refusal = Some(r);
            }
        }
        if accepted == 0 {
            self.command("RSET").await?;
            return Ok(last_refusal.unwrap_or_default());
        }
        let r = self.command("DATA").await?;
        if !r.starts_with("354") {
            return Ok(r);
        }
        let mut wire = Vec::with_capacity(m.message.len() + 64);
        for line in m.message.split_inclusive(|&b| b == b'\n') {
            if line.starts_with(b".") {
                wire.push(b'.');
            }
            wire.extend_from_slice(line);
        }
        if !wire.ends_with(b"\r\n") {
            wire.extend_from_slice(b"\r\n");
        }
        wire.extend_from_slice(b".\r\n");
        self.stream.get_mut().write_all(&wire).await?;
        self.reply().await
    }

    /// MAIL and RCPT, then RSET: a transaction the client gives up before DATA.
    pub async fn abandon(&mut self, from: &str, to: &str) -> std::io::Result<()> {
        self.command(&format!("MAIL FROM:<{from}>")).await?;
        self.command(&format!("RCPT TO:<{to}>")).await?;
        self.command("RSET").await?;
        Ok(())
    }

    pub async fn quit(mut self) {
        let _ = self.command("QUIT").await;
    }
}
