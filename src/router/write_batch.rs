//! The ext_proc connection's writes, batched: what h2 writes between two flushes goes to the
//! socket in one `write`.
//!
//! Over a socket that reports vectored writes, h2 (0.4) sends every frame of 256 bytes or more
//! with its own `writev` as soon as it is queued. Two of the router's answers per routed call are
//! that large (the body answer, the response-headers answer with the gateway session token):
//! measured, that made about 2.2 `writev` per call (REFERENCE.md). [`BatchedWrites`] reports no
//! vectored writes, so h2 copies frames below 1 KiB into its own buffer and batches them, and it
//! keeps what h2 writes until h2 flushes: a larger frame's head and payload, which h2 writes
//! separately without vectored writes, still leave in one `write`.
//!
//! Nothing is held back past a flush, and a full socket pushes back on h2 (`Pending`) once
//! [`CAPACITY`] bytes wait here, so a slow reader costs at most that much memory per connection.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Most bytes kept before they must reach the socket; a write this large goes straight through.
pub const CAPACITY: usize = 64 * 1024;

/// An IO whose writes are kept until the next flush (see the module docs).
#[derive(Debug)]
pub struct BatchedWrites<T> {
    inner: T,
    buf: Vec<u8>,
    /// How much of `buf` already reached `inner`.
    sent: usize,
}

impl<T> BatchedWrites<T> {
    pub fn new(inner: T) -> BatchedWrites<T> {
        BatchedWrites {
            inner,
            buf: Vec::new(),
            sent: 0,
        }
    }

    pub fn get_ref(&self) -> &T {
        &self.inner
    }
}

impl<T: AsyncWrite + Unpin> BatchedWrites<T> {
    /// Writes out what is kept, as far as the socket takes it.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.sent < self.buf.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.buf[self.sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.sent += n;
        }
        self.buf.clear();
        self.sent = 0;
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for BatchedWrites<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for BatchedWrites<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.buf.len() + data.len() > CAPACITY {
            ready!(this.poll_drain(cx))?;
        }
        if data.len() >= CAPACITY {
            // Nothing is kept now (drained above): no copy for a write this large.
            return Pin::new(&mut this.inner).poll_write(cx, data);
        }
        this.buf.extend_from_slice(data);
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_drain(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_drain(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        // What makes h2 batch frames below 1 KiB instead of sending each with its own writev.
        false
    }
}

impl tonic::transport::server::Connected for BatchedWrites<tokio::net::TcpStream> {
    type ConnectInfo = tonic::transport::server::TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn writes_wait_for_the_flush_and_all_arrive_in_order() {
        let (a, mut b) = tokio::io::duplex(1024);
        let mut w = BatchedWrites::new(a);
        w.write_all(b"head").await.expect("write");
        w.write_all(&[7u8; 300]).await.expect("write");
        // Nothing reached the peer before the flush.
        let mut probe = [0u8; 1];
        let early = tokio::time::timeout(std::time::Duration::ZERO, b.read(&mut probe)).await;
        assert!(early.is_err(), "bytes left before the flush");
        // More than the pipe holds: the flush waits for the reader, which gets every byte.
        let big: Vec<u8> = (0..CAPACITY + 10).map(|i| (i % 251) as u8).collect();
        let writer = async {
            w.write_all(&big).await.expect("write");
            w.flush().await.expect("flush");
            w.shutdown().await.expect("shutdown");
        };
        let reader = async {
            let mut got = Vec::new();
            b.read_to_end(&mut got).await.expect("read");
            got
        };
        let ((), got) = tokio::join!(writer, reader);
        let mut want = b"head".to_vec();
        want.extend([7u8; 300]);
        want.extend(&big);
        assert_eq!(got.len(), want.len());
        assert!(got == want, "bytes changed or reordered");
    }
}
