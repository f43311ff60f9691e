//! IMAP COMPRESS=DEFLATE (RFC 4978) on a proxied stream: raw DEFLATE both ways, every flush a
//! sync flush so each command and response reaches the peer whole. sponts ends the compression
//! on each side and reads the plain bytes in between, so a target may use COMPRESS like anyone.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use tokio::io::{AsyncBufRead, AsyncRead, AsyncWrite, ReadBuf};

/// Inflates what `inner` yields (its bytes read ahead included).
pub struct Inflate<R> {
    inner: R,
    state: Decompress,
}

impl<R> Inflate<R> {
    pub fn new(inner: R) -> Self {
        Inflate {
            inner,
            state: Decompress::new(false),
        }
    }
}

impl<R: AsyncBufRead + Unpin> AsyncRead for Inflate<R> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        loop {
            // What the inflater still holds from earlier input comes first: a full output buffer
            // leaves some behind, and no more input may come before the peer hears an answer.
            let before_out = me.state.total_out();
            me.state
                .decompress(&[], buf.initialize_unfilled(), FlushDecompress::Sync)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            let held = (me.state.total_out() - before_out) as usize;
            if held > 0 {
                buf.advance(held);
                return Poll::Ready(Ok(()));
            }
            let input = ready!(Pin::new(&mut me.inner).poll_fill_buf(cx))?;
            if input.is_empty() {
                return Poll::Ready(Ok(())); // the peer closed
            }
            let (before_in, before_out) = (me.state.total_in(), me.state.total_out());
            let status = me
                .state
                .decompress(input, buf.initialize_unfilled(), FlushDecompress::Sync)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            let consumed = (me.state.total_in() - before_in) as usize;
            let produced = (me.state.total_out() - before_out) as usize;
            Pin::new(&mut me.inner).consume(consumed);
            buf.advance(produced);
            if produced > 0 || status == Status::StreamEnd {
                return Poll::Ready(Ok(()));
            }
            if consumed == 0 {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "compressed stream does not progress",
                )));
            }
        }
    }
}

/// Deflates what is written to it into `inner`.
pub struct Deflate<W> {
    inner: W,
    state: Compress,
    /// Compressed bytes not yet written to `inner`, from `sent` on.
    pending: Vec<u8>,
    sent: usize,
    /// Input since the last sync flush.
    dirty: bool,
}

impl<W: AsyncWrite + Unpin> Deflate<W> {
    pub fn new(inner: W) -> Self {
        Deflate {
            inner,
            state: Compress::new(Compression::default(), false),
            pending: Vec::new(),
            sent: 0,
            dirty: false,
        }
    }

    /// Compresses `input` (all of it) onto `pending`.
    fn compress(&mut self, mut input: &[u8], flush: FlushCompress) -> io::Result<()> {
        loop {
            self.pending.reserve(input.len() / 2 + 1024);
            let before = self.state.total_in();
            self.state
                .compress_vec(input, &mut self.pending, flush)
                .map_err(io::Error::other)?;
            input = &input[(self.state.total_in() - before) as usize..];
            // Done when all input is taken and the compressor did not run out of room.
            if input.is_empty() && self.pending.len() < self.pending.capacity() {
                return Ok(());
            }
        }
    }

    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.sent < self.pending.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.pending[self.sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.sent += n;
        }
        self.pending.clear();
        self.sent = 0;
        Poll::Ready(Ok(()))
    }
}

impl<W: AsyncWrite + Unpin> AsyncWrite for Deflate<W> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let me = self.get_mut();
        ready!(me.poll_drain(cx))?;
        me.compress(buf, FlushCompress::None)?;
        me.dirty |= !buf.is_empty();
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        if me.dirty {
            me.compress(&[], FlushCompress::Sync)?;
            me.dirty = false;
        }
        ready!(me.poll_drain(cx))?;
        Pin::new(&mut me.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.as_mut().poll_flush(cx))?;
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};

    #[tokio::test]
    async fn what_is_deflated_and_flushed_inflates_the_same() {
        let (a, b) = tokio::io::duplex(1024);
        let mut w = Deflate::new(a);
        let mut r = Inflate::new(BufReader::new(b));
        let lines: Vec<Vec<u8>> = (0..50)
            .map(|i| {
                format!("* {i} FETCH (BODY[] {{{}}})\r\n", i * 37)
                    .repeat(i % 7 + 1)
                    .into_bytes()
            })
            .collect();
        let writer = async {
            for l in &lines {
                w.write_all(l).await.unwrap();
                // Each flush makes what was written readable at once.
                w.flush().await.unwrap();
            }
            w.shutdown().await.unwrap();
        };
        let reader = async {
            let mut got = Vec::new();
            r.read_to_end(&mut got).await.unwrap();
            got
        };
        let ((), got) = tokio::join!(writer, reader);
        assert_eq!(got, lines.concat());
    }
}
