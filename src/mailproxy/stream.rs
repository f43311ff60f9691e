//! One side of a proxied connection: buffered lines and literals in, writes out, TLS started in
//! place, and the plain byte relay a session becomes once nothing in it needs reading.

use anyhow::{Context, Result};
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, ReadHalf, WriteHalf};

use crate::smtp::conn::Io;

/// The longest command or response line read (IMAP's sequence sets make long lines).
pub const MAX_LINE: usize = 64 * 1024;

pub struct Stream {
    pub rd: Reader,
    pub wr: Writer,
    /// "TLSv1.3 TLS13_..." once encrypted.
    pub tls: Option<String>,
}

impl Stream {
    pub fn new(io: Box<dyn Io>, tls: Option<String>) -> Stream {
        let (r, w) = tokio::io::split(io);
        Stream { rd: Reader { r: BufReader::new(r) }, wr: Writer { w }, tls }
    }

    /// One line with its line end; `None` at the end of the stream.
    pub async fn line(&mut self, max: usize) -> io::Result<Option<Vec<u8>>> {
        self.rd.line(max).await
    }

    pub async fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.wr.write(bytes).await
    }

    fn into_io(self) -> Box<dyn Io> {
        self.rd.r.into_inner().unsplit(self.wr.w)
    }

    /// TLS as the server, with sponts' certificate. Input sent before the handshake is dropped.
    pub async fn accept_tls(self, acceptor: &tokio_rustls::TlsAcceptor) -> Result<Stream> {
        let io = self.into_io();
        let tls = tokio::time::timeout(std::time::Duration::from_secs(30), acceptor.accept(io)).await.context("TLS handshake timed out")??;
        let described = crate::smtp::tls::describe(tls.get_ref().1);
        Ok(Stream::new(Box::new(tls), Some(described)))
    }

    /// TLS as the client, towards the backend (not verified: the backend is on the LAN).
    pub async fn connect_tls(self, config: &std::sync::Arc<rustls::ClientConfig>, host: &str) -> Result<Stream> {
        let name = rustls::pki_types::ServerName::try_from(host.to_string()).unwrap_or_else(|_| rustls::pki_types::ServerName::try_from("backend.invalid").expect("static name"));
        let io = self.into_io();
        let connector = tokio_rustls::TlsConnector::from(config.clone());
        let tls = tokio::time::timeout(std::time::Duration::from_secs(30), connector.connect(name, io)).await.context("TLS handshake with the backend timed out")??;
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
                let quiet = start.elapsed().saturating_sub(Duration::from_millis(last.load(Ordering::Relaxed)));
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
async fn pump(mut from: BufReader<ReadHalf<Box<dyn Io>>>, mut to: WriteHalf<Box<dyn Io>>, last: &AtomicU64, start: Instant) -> io::Result<()> {
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
    r: BufReader<ReadHalf<Box<dyn Io>>>,
}

pub struct Writer {
    w: WriteHalf<Box<dyn Io>>,
}

impl Reader {
    /// One line with its line end; `None` at the end of the stream.
    pub async fn line(&mut self, max: usize) -> io::Result<Option<Vec<u8>>> {
        let line = self.line_part(max).await?;
        if line.as_ref().is_some_and(|l| !l.ends_with(b"\n") && l.len() >= max) {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "line too long"));
        }
        Ok(line)
    }

    /// Up to the next line end, or `max` bytes of a longer line; `None` at the end of the stream.
    pub async fn line_part(&mut self, max: usize) -> io::Result<Option<Vec<u8>>> {
        let mut buf = Vec::new();
        (&mut self.r).take(max as u64).read_until(b'\n', &mut buf).await?;
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
    pub async fn relay_exact(&mut self, to: &mut Writer, mut n: u64, keep: usize) -> io::Result<(Vec<u8>, bool)> {
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

impl Writer {
    pub async fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.w.write_all(bytes).await?;
        self.w.flush().await
    }

    pub async fn shutdown(&mut self) {
        let _ = self.w.shutdown().await;
    }
}
