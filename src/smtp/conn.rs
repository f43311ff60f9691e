//! A buffered SMTP connection: line reading with hard limits, reply writing, and the stream swap
//! that STARTTLS needs. Used by both sides — the session facing the client and the client facing
//! the backend — so both parse lines the same way.

use std::io;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::reply::Reply;

/// Any byte stream sponts speaks SMTP over: TCP, TLS over TCP, or an in-memory pipe in tests.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send + Sync {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + Sync> Io for T {}

/// Read buffer per connection, at most: ample for 512-octet commands and 1000-octet text lines.
const BUF_SIZE: usize = 16 * 1024;
/// The buffer starts this small and is allocated at the first read: thousands of idle or
/// tarpitted connections cost little. It grows when a line does not fit, or for DATA.
const INITIAL_BUF: usize = 1024;

/// The outcome of reading one line.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// The line without its terminator (CRLF, or a bare LF, which commands tolerate).
    Text(Vec<u8>),
    /// Longer than allowed; everything up to and including its LF was consumed.
    TooLong,
    Eof,
}

pub struct Conn {
    io: Option<Box<dyn Io>>,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    out: Vec<u8>,
    /// How long one read may wait (RFC 5321 4.5.3.2 timeouts); `None`: forever.
    read_timeout: Option<std::time::Duration>,
    /// How long one write may wait for a peer that does not read.
    write_timeout: std::time::Duration,
    /// No I/O past this instant (the session's total cap).
    deadline: Option<tokio::time::Instant>,
}

impl Conn {
    pub fn new(io: Box<dyn Io>) -> Conn {
        Conn {
            io: Some(io),
            buf: Vec::new(),
            start: 0,
            end: 0,
            out: Vec::with_capacity(1024),
            read_timeout: None,
            write_timeout: std::time::Duration::from_secs(300),
            deadline: None,
        }
    }

    pub fn set_read_timeout(&mut self, t: Option<std::time::Duration>) {
        self.read_timeout = t;
    }

    pub fn set_write_timeout(&mut self, t: std::time::Duration) {
        self.write_timeout = t;
    }

    /// A hard end for every read and write of this connection.
    pub fn set_deadline(&mut self, at: tokio::time::Instant) {
        self.deadline = Some(at);
    }

    /// When the current write must be done: the write timeout, capped by the deadline.
    fn write_by(&self) -> tokio::time::Instant {
        let by = tokio::time::Instant::now() + self.write_timeout;
        self.deadline.map_or(by, |d| d.min(by))
    }

    fn io(&mut self) -> io::Result<&mut Box<dyn Io>> {
        self.io
            .as_mut()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotConnected, "stream taken"))
    }

    /// Bytes received but not yet consumed.
    pub fn buffered(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    pub fn has_buffered_input(&self) -> bool {
        self.start < self.end
    }

    pub fn consume(&mut self, n: usize) {
        self.start += n;
        debug_assert!(self.start <= self.end);
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Drops unread input: after STARTTLS, whatever came before the handshake must not count.
    pub fn discard_buffered(&mut self) -> usize {
        let n = self.end - self.start;
        self.start = 0;
        self.end = 0;
        n
    }

    /// Reads more bytes into the buffer; returns how many (0 at end of stream).
    pub async fn fill(&mut self) -> io::Result<usize> {
        if self.buf.is_empty() {
            self.buf = vec![0; INITIAL_BUF];
        }
        if self.start > 0 && (self.end == self.buf.len() || self.start > self.buf.len() / 2) {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            if self.buf.len() >= BUF_SIZE {
                return Err(io::Error::other("line buffer full"));
            }
            self.buf.resize((self.buf.len() * 4).min(BUF_SIZE), 0);
        }
        let end = self.end;
        let io = self
            .io
            .as_mut()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotConnected, "stream taken"))?;
        let by = match (self.read_timeout, self.deadline) {
            (Some(t), Some(d)) => Some(d.min(tokio::time::Instant::now() + t)),
            (Some(t), None) => Some(tokio::time::Instant::now() + t),
            (None, d) => d,
        };
        let n = match by {
            Some(by) => tokio::time::timeout_at(by, io.read(&mut self.buf[end..]))
                .await
                .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "read timed out"))??,
            None => io.read(&mut self.buf[end..]).await?,
        };
        self.end += n;
        Ok(n)
    }

    /// Takes in whatever the client has sent already, without waiting for more: the bytes are
    /// buffered, and whether any are is what a caller asks next.
    pub fn take_pending(&mut self) {
        // One poll of a read, not a zero timeout: Tokio's timer rounds a deadline up to its next
        // millisecond tick, so a zero timeout waited up to 1 ms at every DATA.
        let _ = futures_util::FutureExt::now_or_never(self.fill());
    }

    /// Full size at once, before reading a message: big reads, few system calls.
    pub fn grow(&mut self) {
        if self.buf.len() < BUF_SIZE {
            self.buf.resize(BUF_SIZE, 0);
        }
    }

    /// Reads one line of at most `max` octets including its CRLF.
    pub async fn read_line(&mut self, max: usize) -> io::Result<Line> {
        let mut too_long = false;
        loop {
            if let Some(pos) = self.buffered().iter().position(|&b| b == b'\n') {
                if too_long || pos + 1 > max {
                    self.consume(pos + 1);
                    return Ok(Line::TooLong);
                }
                let raw = &self.buf[self.start..self.start + pos];
                let line = raw.strip_suffix(b"\r").unwrap_or(raw).to_vec();
                self.consume(pos + 1);
                return Ok(Line::Text(line));
            }
            if self.end - self.start >= max {
                // Keep discarding until the end of this overlong line.
                too_long = true;
                self.start = 0;
                self.end = 0;
            }
            if self.fill().await? == 0 {
                return Ok(Line::Eof);
            }
        }
    }

    /// Queues a reply; it is sent at the next flush.
    pub fn queue_reply(&mut self, reply: &Reply) {
        reply.write_to(&mut self.out);
    }

    /// Queues raw bytes (commands towards the backend).
    pub fn queue_bytes(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
    }

    pub async fn flush(&mut self) -> io::Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        let out = std::mem::take(&mut self.out);
        let by = self.write_by();
        let io = self.io()?;
        let written = tokio::time::timeout_at(by, async {
            io.write_all(&out).await?;
            io.flush().await
        })
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "write timed out"))?;
        self.out = out;
        self.out.clear();
        written
    }

    /// Takes the queued output without sending it (the tarpit sends it slowly itself).
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }

    /// Writes bytes straight through (message bodies), after anything queued.
    pub async fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.flush().await?;
        let by = self.write_by();
        tokio::time::timeout_at(by, self.io()?.write_all(bytes))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "write timed out"))?
    }

    /// Takes the stream out for a TLS handshake; the caller puts the upgraded one back with `set_io`.
    pub fn take_io(&mut self) -> Option<Box<dyn Io>> {
        self.discard_buffered();
        self.io.take()
    }

    pub fn set_io(&mut self, io: Box<dyn Io>) {
        self.io = Some(io);
    }

    pub async fn shutdown(&mut self) {
        if let Ok(io) = self.io() {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), io.shutdown()).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn lines_and_limits() {
        let (client, server) = tokio::io::duplex(1024);
        let mut conn = Conn::new(Box::new(server));
        let mut client = client;
        let long = "X".repeat(600);
        client
            .write_all(format!("EHLO a\r\nNOOP\n{long}\r\nQUIT\r\n").as_bytes())
            .await
            .unwrap();
        drop(client);
        assert_eq!(
            conn.read_line(512).await.unwrap(),
            Line::Text(b"EHLO a".to_vec())
        );
        assert_eq!(
            conn.read_line(512).await.unwrap(),
            Line::Text(b"NOOP".to_vec())
        );
        assert_eq!(conn.read_line(512).await.unwrap(), Line::TooLong);
        assert_eq!(
            conn.read_line(512).await.unwrap(),
            Line::Text(b"QUIT".to_vec())
        );
        assert_eq!(conn.read_line(512).await.unwrap(), Line::Eof);
    }

    #[tokio::test]
    async fn very_long_lines_spanning_many_reads_are_discarded() {
        let (client, server) = tokio::io::duplex(4096);
        let mut conn = Conn::new(Box::new(server));
        tokio::spawn(async move {
            let mut client = client;
            let chunk = vec![b'A'; 4000];
            for _ in 0..100 {
                client.write_all(&chunk).await.unwrap();
            }
            client.write_all(b"\r\nNOOP\r\n").await.unwrap();
        });
        assert_eq!(conn.read_line(512).await.unwrap(), Line::TooLong);
        assert_eq!(
            conn.read_line(512).await.unwrap(),
            Line::Text(b"NOOP".to_vec())
        );
    }
}
