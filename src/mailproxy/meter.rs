//! Bytes each way on a client's connection, counted on the wire (TLS included), for the line
//! each proxy session leaves in the log.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The counts, shared with the connection that keeps them up to date.
#[derive(Default)]
pub struct Counts {
    from_client: AtomicU64,
    to_client: AtomicU64,
}

impl Counts {
    /// Bytes the client sent.
    pub fn bytes_in(&self) -> u64 {
        self.from_client.load(Ordering::Relaxed)
    }

    /// Bytes the client was sent.
    pub fn bytes_out(&self) -> u64 {
        self.to_client.load(Ordering::Relaxed)
    }
}

/// A connection that counts what passes through it.
pub struct Metered<T> {
    inner: T,
    counts: Arc<Counts>,
}

impl<T> Metered<T> {
    pub fn new(inner: T, counts: Arc<Counts>) -> Self {
        Metered { inner, counts }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Metered<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut me.inner).poll_read(cx, buf);
        me.counts
            .from_client
            .fetch_add((buf.filled().len() - before) as u64, Ordering::Relaxed);
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Metered<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bytes: &[u8],
    ) -> Poll<io::Result<usize>> {
        let me = self.get_mut();
        let r = Pin::new(&mut me.inner).poll_write(cx, bytes);
        if let Poll::Ready(Ok(n)) = r {
            me.counts.to_client.fetch_add(n as u64, Ordering::Relaxed);
        }
        r
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
