//! One side of a proxied connection: buffered lines and literals in, writes out, TLS started in
//! place, and the plain byte relay a session becomes once nothing in it needs reading.

use anyhow::{Context, Result};
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};
use tokio::io::{
    AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, ReadBuf,
    ReadHalf, WriteHalf,
};

use super::compress;
use crate::smtp::conn::Io;

/// The longest command or response line read (IMAP's sequence sets make long lines).
pub const MAX_LINE: usize = 64 * 1024;

/// Once the client has closed its side, how long the backend still has to answer what sponts
/// sent it before login; then the session ends.
const GRACE: Duration = Duration::from_secs(5);

/// Waits for the backend to answer (`answer`) while the client waits for sponts, as long as
/// something could still come of it: until `idle`, and once the client has closed its side (read
/// ahead, what it sent before is kept), for [`GRACE`] more. A backend that never answers — it
/// stalls, or waits for more from sponts — must not keep the session forever (IMAP and POP3 alike).
pub async fn backend_answer<T>(
    client: &mut Reader,
    idle: Duration,
    answer: impl std::future::Future<Output = Result<T>>,
) -> Result<T> {
    let gone = async {
        client.closed().await;
        tokio::time::sleep(GRACE).await;
    };
    tokio::select! {
        r = tokio::time::timeout(idle, answer) => r.context("no answer from the backend")?,
        () = gone => anyhow::bail!("the client closed the connection and the backend did not answer"),
    }
}

pub struct Stream {
    pub rd: Reader,
    pub wr: Writer,
    /// "TLSv1.3 TLS13_..." once encrypted.
    pub tls: Option<String>,
}

impl Stream {
    pub fn new(io: Box<dyn Io>, tls: Option<String>) -> Stream {
        let (r, w) = tokio::io::split(io);
        Stream {
            rd: Reader {
                r: BufReader::new(Source::Plain(Ahead::new(r))),
            },
            wr: Writer { w: Dest::Plain(w) },
            tls,
        }
    }

    /// One line with its line end; `None` at the end of the stream.
    pub async fn line(&mut self, max: usize) -> io::Result<Option<Vec<u8>>> {
        self.rd.line(max).await
    }

    pub async fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.wr.write(bytes).await
    }

    fn into_io(self) -> Result<Box<dyn Io>> {
        match (self.rd.r.into_inner(), self.wr.w) {
            (Source::Plain(r), Dest::Plain(w)) => Ok(r.r.unsplit(w)),
            _ => anyhow::bail!("TLS cannot start inside a compressed stream"),
        }
    }

    /// TLS as the server, with sponts' certificate. Input sent before the handshake is dropped.
    pub async fn accept_tls(self, acceptor: &tokio_rustls::TlsAcceptor) -> Result<Stream> {
        let io = self.into_io()?;
        let tls = tokio::time::timeout(std::time::Duration::from_secs(30), acceptor.accept(io))
            .await
            .context("TLS handshake timed out")??;
        let described = crate::smtp::tls::describe(tls.get_ref().1);
        Ok(Stream::new(Box::new(tls), Some(described)))
    }

    /// TLS as the client, towards the backend (not verified: the backend is on the LAN).
    pub async fn connect_tls(
        self,
        config: &std::sync::Arc<rustls::ClientConfig>,
        host: &str,
    ) -> Result<Stream> {
        let name = rustls::pki_types::ServerName::try_from(host.to_string()).unwrap_or_else(|_| {
            rustls::pki_types::ServerName::try_from("backend.invalid").expect("static name")
        });
        let io = self.into_io()?;
        let connector = tokio_rustls::TlsConnector::from(config.clone());
        let tls = tokio::time::timeout(
            std::time::Duration::from_secs(30),
            connector.connect(name, io),
        )
        .await
        .context("TLS handshake with the backend timed out")??;
        let described = crate::smtp::tls::describe(tls.get_ref().1);
        Ok(Stream::new(Box::new(tls), Some(described)))
    }

    /// Its reading and writing halves, for sessions read in both directions at once.
    pub fn split(self) -> (Reader, Writer) {
        (self.rd, self.wr)
    }

    /// Relays both directions byte for byte until both sides have closed, or until nothing has
    /// moved either way for `idle` (then both connections are dropped).
    pub async fn relay(self, other: Stream, idle: Duration) -> io::Result<()> {
        let start = Instant::now();
        // Milliseconds since `start` of the last bytes moved, in either direction.
        let last = AtomicU64::new(0);
        let a_to_b = pump(self.rd.r, other.wr.w, &last, start);
        let b_to_a = pump(other.rd.r, self.wr.w, &last, start);
        let watchdog = async {
            loop {
                let quiet = start
                    .elapsed()
                    .saturating_sub(Duration::from_millis(last.load(Ordering::Relaxed)));
                if quiet >= idle {
                    return;
                }
                tokio::time::sleep(idle - quiet).await;
            }
        };
        tokio::select! {
            (x, y) = async { tokio::join!(a_to_b, b_to_a) } => x.and(y),
            () = watchdog => Ok(()),
        }
    }
}

/// Copies one direction, noting when bytes moved; shuts the writing side at the end.
async fn pump(
    mut from: BufReader<Source>,
    mut to: Dest,
    last: &AtomicU64,
    start: Instant,
) -> io::Result<()> {
    let mut buf = vec![0u8; 16 * 1024];
    let r = async {
        loop {
            // Bytes already buffered while the login was read come first.
            let n = from.read(&mut buf).await?;
            if n == 0 {
                return Ok(());
            }
            last.store(start.elapsed().as_millis() as u64, Ordering::Relaxed);
            to.write_all(&buf[..n]).await?;
            to.flush().await?;
        }
    }
    .await;
    let _ = to.shutdown().await;
    r
}

pub struct Reader {
    r: BufReader<Source>,
}

pub struct Writer {
    w: Dest,
}

impl Reader {
    /// One line with its line end; `None` at the end of the stream.
    pub async fn line(&mut self, max: usize) -> io::Result<Option<Vec<u8>>> {
        let line = self.line_part(max).await?;
        if line
            .as_ref()
            .is_some_and(|l| !l.ends_with(b"\n") && l.len() >= max)
        {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "line too long"));
        }
        Ok(line)
    }

    /// Up to the next line end, or `max` bytes of a longer line; `None` at the end of the stream.
    pub async fn line_part(&mut self, max: usize) -> io::Result<Option<Vec<u8>>> {
        let mut buf = Vec::new();
        (&mut self.r)
            .take(max as u64)
            .read_until(b'\n', &mut buf)
            .await?;
        Ok((!buf.is_empty()).then_some(buf))
    }

    /// Exactly `n` bytes.
    pub async fn exact(&mut self, n: usize) -> io::Result<Vec<u8>> {
        let mut buf = vec![0; n];
        self.r.read_exact(&mut buf).await?;
        Ok(buf)
    }

    /// Reads and drops `n` bytes.
    pub async fn skip(&mut self, n: u64) -> io::Result<()> {
        let copied = tokio::io::copy(&mut (&mut self.r).take(n), &mut tokio::io::sink()).await?;
        if copied < n {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        Ok(())
    }

    /// Reads `n` bytes, writing them to `to` as they come; keeps up to `keep` of them.
    pub async fn relay_exact(
        &mut self,
        to: &mut Writer,
        mut n: u64,
        keep: usize,
    ) -> io::Result<(Vec<u8>, bool)> {
        let (mut kept, mut whole) = (Vec::new(), true);
        let mut chunk = vec![0; 64 * 1024];
        while n > 0 {
            let want = chunk.len().min(n as usize);
            let got = self.r.read(&mut chunk[..want]).await?;
            if got == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            to.w.write_all(&chunk[..got]).await?;
            if whole && kept.len() + got <= keep {
                kept.extend_from_slice(&chunk[..got]);
            } else {
                // The copy is the literal's start, without holes.
                whole = false;
            }
            n -= got as u64;
        }
        to.w.flush().await?;
        Ok((kept, whole))
    }
}

impl Reader {
    /// Completes once the peer has closed its side: reads ahead what it sends until then, kept
    /// for the reads that follow (up to [`MAX_AHEAD`]; beyond that, and in a compressed stream,
    /// it never completes). Cancel safe: what was read stays read ahead.
    pub async fn closed(&mut self) {
        match self.r.get_mut() {
            Source::Plain(ahead) => ahead.until_closed().await,
            _ => std::future::pending().await,
        }
    }

    /// From here on the peer's bytes are raw DEFLATE (IMAP COMPRESS, RFC 4978); what was read
    /// ahead already is inflated first.
    pub fn inflate(&mut self) {
        if matches!(self.r.get_ref(), Source::Inflated(_)) {
            return; // COMPRESS happens once
        }
        let inner = std::mem::replace(&mut self.r, BufReader::new(Source::Gone));
        self.r = BufReader::new(Source::Inflated(Box::new(compress::Inflate::new(inner))));
    }
}

impl Writer {
    /// From here on what is written goes out as raw DEFLATE, each flush a sync flush.
    pub fn deflate(&mut self) {
        if !matches!(self.w, Dest::Plain(_)) {
            return; // COMPRESS happens once
        }
        if let Dest::Plain(w) = std::mem::replace(&mut self.w, Dest::Gone) {
            self.w = Dest::Deflated(Box::new(compress::Deflate::new(w)));
        }
    }

    pub async fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.w.write_all(bytes).await?;
        self.w.flush().await
    }

    pub async fn shutdown(&mut self) {
        let _ = self.w.shutdown().await;
    }
}

/// The most a peer's bytes are read ahead while [`Reader::closed`] waits for its end.
pub const MAX_AHEAD: usize = 4 * MAX_LINE;

/// A connection's reading half, with what was read ahead of the reader (by [`Reader::closed`])
/// given out first, and the end of the stream remembered once seen.
pub(super) struct Ahead {
    r: ReadHalf<Box<dyn Io>>,
    held: Vec<u8>,
    /// How much of `held` was given out.
    given: usize,
    /// The peer closed (or the connection failed) after `held`.
    ended: bool,
}

impl Ahead {
    fn new(r: ReadHalf<Box<dyn Io>>) -> Ahead {
        Ahead {
            r,
            held: Vec::new(),
            given: 0,
            ended: false,
        }
    }

    async fn until_closed(&mut self) {
        let mut chunk = [0u8; 4096];
        while !self.ended {
            if self.held.len() - self.given >= MAX_AHEAD {
                return std::future::pending().await;
            }
            // Cancel safe: a read either happened (and its bytes are held) or did not.
            match self.r.read(&mut chunk).await {
                Ok(0) | Err(_) => self.ended = true,
                Ok(n) => self.held.extend_from_slice(&chunk[..n]),
            }
        }
    }
}

impl AsyncRead for Ahead {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        if me.given < me.held.len() {
            let n = buf.remaining().min(me.held.len() - me.given);
            buf.put_slice(&me.held[me.given..me.given + n]);
            me.given += n;
            if me.given == me.held.len() {
                me.held.clear();
                me.given = 0;
            }
            return Poll::Ready(Ok(()));
        }
        if me.ended {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut me.r).poll_read(cx, buf)
    }
}

/// Where a reader's bytes come from: the connection, or the connection inflated.
pub(super) enum Source {
    Plain(Ahead),
    Inflated(Box<compress::Inflate<BufReader<Source>>>),
    /// Only while being replaced.
    Gone,
}

impl AsyncRead for Source {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Source::Plain(r) => Pin::new(r).poll_read(cx, buf),
            Source::Inflated(r) => Pin::new(r.as_mut()).poll_read(cx, buf),
            Source::Gone => Poll::Ready(Err(io::ErrorKind::NotConnected.into())),
        }
    }
}

/// Where a writer's bytes go: the connection, or the connection deflated.
pub(super) enum Dest {
    Plain(WriteHalf<Box<dyn Io>>),
    Deflated(Box<compress::Deflate<WriteHalf<Box<dyn Io>>>>),
    /// Only while being replaced.
    Gone,
}

impl AsyncWrite for Dest {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Dest::Plain(w) => Pin::new(w).poll_write(cx, buf),
            Dest::Deflated(w) => Pin::new(w.as_mut()).poll_write(cx, buf),
            Dest::Gone => Poll::Ready(Err(io::ErrorKind::NotConnected.into())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Dest::Plain(w) => Pin::new(w).poll_flush(cx),
            Dest::Deflated(w) => Pin::new(w.as_mut()).poll_flush(cx),
            Dest::Gone => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Dest::Plain(w) => Pin::new(w).poll_shutdown(cx),
            Dest::Deflated(w) => Pin::new(w.as_mut()).poll_shutdown(cx),
            Dest::Gone => Poll::Ready(Ok(())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn what_is_read_ahead_for_the_end_is_read_after_in_order() {
        let (ours, mut theirs) = tokio::io::duplex(1024);
        let mut s = Stream::new(Box::new(ours), None);
        theirs.write_all(b"a1 NOOP\r\n").await.unwrap();
        assert_eq!(
            s.line(MAX_LINE).await.unwrap().as_deref(),
            Some(&b"a1 NOOP\r\n"[..])
        );
        theirs
            .write_all(b"b2 LOGIN {5}\r\nalice x\r\n")
            .await
            .unwrap();
        theirs.shutdown().await.unwrap();
        tokio::time::timeout(Duration::from_secs(5), s.rd.closed())
            .await
            .expect("the end is seen");
        assert_eq!(
            s.line(MAX_LINE).await.unwrap().as_deref(),
            Some(&b"b2 LOGIN {5}\r\n"[..])
        );
        assert_eq!(s.rd.exact(5).await.unwrap(), b"alice");
        assert_eq!(
            s.line(MAX_LINE).await.unwrap().as_deref(),
            Some(&b" x\r\n"[..])
        );
        assert_eq!(s.line(MAX_LINE).await.unwrap(), None);
        // Once seen, the end stays: waiting for it again returns at once.
        tokio::time::timeout(Duration::from_secs(5), s.rd.closed())
            .await
            .expect("the end is remembered");
    }

    #[tokio::test]
    async fn a_peer_that_is_still_there_is_not_closed() {
        let (ours, mut theirs) = tokio::io::duplex(1024);
        let mut s = Stream::new(Box::new(ours), None);
        theirs.write_all(b"a1 NOOP\r\n").await.unwrap();
        assert!(
            tokio::time::timeout(Duration::from_millis(200), s.rd.closed())
                .await
                .is_err()
        );
        assert_eq!(
            s.line(MAX_LINE).await.unwrap().as_deref(),
            Some(&b"a1 NOOP\r\n"[..]),
            "read ahead, then read"
        );
    }
}
