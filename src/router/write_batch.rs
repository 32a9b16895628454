//! The ext_proc connection's writes, batched: what h2 writes during one turn of the connection's
//! thread leaves in one `write`.
//!
//! h2 (0.4) flushes a connection at the end of each of its polls, and also in the middle: before
//! it queues a frame after a DATA frame of 1 KiB or more (256 B over a socket that reports
//! vectored writes). The router's body answer carries the rewritten body, so it is that large:
//! measured under load, every one of them left with its own `sendto` (1.3 per call against the
//! no-op processor's 0.4; BENCHMARKS.md, issue 15 session 7).
//!
//! [`BatchedWrites`] takes h2's bytes into a buffer and a flush as a request to write. The
//! connection's writer task does the writing: woken by the flush, it runs on the same thread after
//! the tasks already woken there (the streams answering the messages just read, which queue their
//! answers with h2 in turn), so the answers of every stream that was ready leave together. Nothing
//! waits for a timer: the writer runs in the same turn of the thread.
//!
//! At most [`CAPACITY`] bytes wait in the buffer and as much again is being written; h2 waits
//! (`Pending`) for room beyond that, so a slow reader costs a bounded amount of memory per
//! connection. A failed write fails every later write, flush and shutdown of the connection.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::Notify;

/// Most bytes kept for the writer before h2 must wait.
pub const CAPACITY: usize = 64 * 1024;

/// How long what is left is tried once the connection is gone.
const LAST_WRITE: std::time::Duration = std::time::Duration::from_secs(5);

/// A connection whose writes go out through its writer task (see the module docs).
#[derive(Debug)]
pub struct BatchedWrites<R, I = ()> {
    read: R,
    shared: Arc<Shared>,
    info: I,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    wake_writer: Notify,
}

#[derive(Debug, Default)]
struct State {
    /// Bytes for the writer, in order.
    buf: Vec<u8>,
    /// Why the connection cannot be written to any more.
    failed: Option<(io::ErrorKind, String)>,
    /// h2, waiting for room in `buf` or for the shutdown to finish.
    waiting: Option<Waker>,
    shutdown: Shutdown,
    /// The connection is gone: the writer writes what is left and ends.
    dropped: bool,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Shutdown {
    #[default]
    Open,
    Asked,
    Done,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock; a poisoned one still holds consistent bytes.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl State {
    fn error(&self) -> Option<io::Error> {
        self.failed
            .as_ref()
            .map(|(kind, message)| io::Error::new(*kind, message.clone()))
    }
}

impl<R, I> BatchedWrites<R, I> {
    /// `read` and `write` are the two halves of one connection; the writer task is spawned on
    /// the current runtime (the connection's own thread). `info` is what tonic asks of the
    /// connection.
    pub fn new<W>(read: R, write: W, info: I) -> BatchedWrites<R, I>
    where
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let shared = Arc::new(Shared::default());
        tokio::spawn(write_out(write, shared.clone()));
        BatchedWrites { read, shared, info }
    }
}

impl BatchedWrites<tokio::net::tcp::OwnedReadHalf, tonic::transport::server::TcpConnectInfo> {
    /// An accepted ext_proc connection, its writes batched. Call on the runtime that serves it.
    pub fn tcp(stream: tokio::net::TcpStream) -> Self {
        use tonic::transport::server::Connected;
        let info = stream.connect_info();
        let (read, write) = stream.into_split();
        BatchedWrites::new(read, write, info)
    }
}

impl<R, I> Drop for BatchedWrites<R, I> {
    fn drop(&mut self) {
        self.shared.lock().dropped = true;
        self.shared.wake_writer.notify_one();
    }
}

/// The writer task: on each request, writes everything kept so far in one `write` (more when the
/// socket takes less), until the connection is shut down, fails or is gone.
async fn write_out<W: AsyncWrite + Unpin>(mut out: W, shared: Arc<Shared>) {
    let mut bytes = Vec::new();
    loop {
        shared.wake_writer.notified().await;
        loop {
            let (shutdown, dropped) = {
                let mut s = shared.lock();
                std::mem::swap(&mut s.buf, &mut bytes);
                // Room again for h2 (or a shutdown to look at again).
                if let Some(w) = s.waiting.take() {
                    w.wake();
                }
                (s.shutdown, s.dropped)
            };
            if bytes.is_empty() {
                if shutdown == Shutdown::Asked {
                    let result = out.shutdown().await;
                    let mut s = shared.lock();
                    match result {
                        Ok(()) => s.shutdown = Shutdown::Done,
                        Err(e) => s.failed = Some((e.kind(), e.to_string())),
                    }
                    if let Some(w) = s.waiting.take() {
                        w.wake();
                    }
                    return;
                }
                if dropped {
                    return;
                }
                break;
            }
            // Once the connection is gone, a peer that no longer reads does not hold the socket.
            let written = if dropped {
                tokio::time::timeout(LAST_WRITE, out.write_all(&bytes))
                    .await
                    .unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into()))
            } else {
                out.write_all(&bytes).await
            };
            if let Err(e) = written {
                let mut s = shared.lock();
                s.failed = Some((e.kind(), e.to_string()));
                s.buf = Vec::new();
                if let Some(w) = s.waiting.take() {
                    w.wake();
                }
                return;
            }
            bytes.clear();
        }
    }
}

impl<R: AsyncRead + Unpin, I: Unpin> AsyncRead for BatchedWrites<R, I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.read).poll_read(cx, buf)
    }
}

impl<R, I: Unpin> AsyncWrite for BatchedWrites<R, I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut s = self.shared.lock();
        if let Some(e) = s.error() {
            return Poll::Ready(Err(e));
        }
        if s.shutdown != Shutdown::Open {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        let room = CAPACITY.saturating_sub(s.buf.len());
        if room == 0 {
            // Full: the writer takes the buffer and wakes h2 when it does.
            s.waiting = Some(cx.waker().clone());
            drop(s);
            self.shared.wake_writer.notify_one();
            return Poll::Pending;
        }
        let n = room.min(data.len());
        s.buf.extend_from_slice(&data[..n]);
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let s = self.shared.lock();
        if let Some(e) = s.error() {
            return Poll::Ready(Err(e));
        }
        let pending = !s.buf.is_empty();
        drop(s);
        if pending {
            self.shared.wake_writer.notify_one();
        }
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut s = self.shared.lock();
        if let Some(e) = s.error() {
            return Poll::Ready(Err(e));
        }
        if s.shutdown == Shutdown::Done {
            return Poll::Ready(Ok(()));
        }
        // The writer writes what is kept, then shuts the connection down and wakes h2.
        s.shutdown = Shutdown::Asked;
        s.waiting = Some(cx.waker().clone());
        drop(s);
        self.shared.wake_writer.notify_one();
        Poll::Pending
    }

    fn is_write_vectored(&self) -> bool {
        // h2 then copies frames below 1 KiB into its own buffer rather than handing each over.
        false
    }
}

impl tonic::transport::server::Connected
    for BatchedWrites<tokio::net::tcp::OwnedReadHalf, tonic::transport::server::TcpConnectInfo>
{
    type ConnectInfo = tonic::transport::server::TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.info.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::poll_fn;
    use tokio::io::AsyncReadExt;

    fn pipe(
        size: usize,
    ) -> (
        BatchedWrites<tokio::io::ReadHalf<tokio::io::DuplexStream>>,
        tokio::io::DuplexStream,
    ) {
        let (a, b) = tokio::io::duplex(size);
        let (read, write) = tokio::io::split(a);
        (BatchedWrites::new(read, write, ()), b)
    }

    #[tokio::test]
    async fn writes_wait_for_the_flush_and_all_arrive_in_order() {
        let (mut w, mut b) = pipe(1024);
        w.write_all(b"head").await.expect("write");
        w.write_all(&[7u8; 300]).await.expect("write");
        // Nothing reached the peer before the flush.
        tokio::task::yield_now().await;
        let mut probe = [0u8; 1];
        let early = tokio::time::timeout(std::time::Duration::ZERO, b.read(&mut probe)).await;
        assert!(early.is_err(), "bytes left before the flush");
        // More than the buffer and the pipe hold: h2's side waits for the reader, which gets
        // every byte.
        let big: Vec<u8> = (0..3 * CAPACITY + 10).map(|i| (i % 251) as u8).collect();
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

    /// Records the size of every write it is given.
    struct Recorder(Arc<Mutex<Vec<usize>>>);

    impl AsyncWrite for Recorder {
        fn poll_write(
            self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            data: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.0.lock().expect("lock").push(data.len());
            Poll::Ready(Ok(data.len()))
        }
        fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn flushes_within_one_turn_leave_in_one_write() {
        let writes = Arc::new(Mutex::new(Vec::new()));
        let mut w = BatchedWrites::new(tokio::io::empty(), Recorder(writes.clone()), ());
        // What h2 does in one poll with three large answers: write and flush each.
        poll_fn(|cx| {
            for size in [1300, 1300, 40] {
                let data = vec![1u8; size];
                assert!(matches!(Pin::new(&mut w).poll_write(cx, &data), Poll::Ready(Ok(n)) if n == size));
                assert!(matches!(Pin::new(&mut w).poll_flush(cx), Poll::Ready(Ok(()))));
            }
            Poll::Ready(())
        })
        .await;
        // The writer runs once this task lets the thread go.
        tokio::task::yield_now().await;
        assert_eq!(*writes.lock().expect("lock"), vec![2640]);
        // The next turn's flush is a write of its own.
        w.write_all(b"next").await.expect("write");
        w.flush().await.expect("flush");
        tokio::task::yield_now().await;
        assert_eq!(*writes.lock().expect("lock"), vec![2640, 4]);
    }

    #[tokio::test]
    async fn what_is_kept_when_the_connection_is_dropped_still_leaves() {
        let (mut w, mut b) = pipe(1024);
        w.write_all(b"goaway").await.expect("write");
        drop(w);
        let mut got = Vec::new();
        b.read_to_end(&mut got).await.expect("read");
        assert_eq!(got, b"goaway");
    }

    #[tokio::test]
    async fn a_failed_write_fails_what_follows() {
        let (mut w, b) = pipe(64);
        drop(b);
        w.write_all(b"lost").await.expect("kept");
        w.flush().await.expect("asked");
        // The writer meets the closed pipe; h2's next write, flush and shutdown are told.
        let err = loop {
            tokio::task::yield_now().await;
            if let Err(e) = w.write_all(b"more").await {
                break e;
            }
            w.flush().await.ok();
        };
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
        assert!(w.flush().await.is_err());
        assert!(w.shutdown().await.is_err());
    }
}
