//! Log lines to stderr, written in batches by one thread that nobody has to wake.
//!
//! A logging thread appends its formatted line to one shared buffer under a short lock and goes
//! on; the writer thread wakes by itself every [`FLUSH_EVERY`] and writes out all that gathered
//! in one write. Measured with `make bench` on the audit line of every call: a queue whose
//! writer is woken for each line (tracing-appender) cost the router about 10% of its CPU in
//! wake-ups and the writer's spinning. Nothing is dropped: past [`WAKE_AT`] the writer is woken
//! at once, and past [`MAX_BUFFERED`] the logging thread writes the buffer out itself.

use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// How long a line may wait in the buffer.
const FLUSH_EVERY: Duration = Duration::from_millis(50);
/// Buffered bytes past which the writer is woken rather than left to its timer.
const WAKE_AT: usize = 256 * 1024;
/// Buffered bytes past which the logging thread writes them out itself.
const MAX_BUFFERED: usize = 4 * 1024 * 1024;

struct Shared<W> {
    state: Mutex<State>,
    wake: Condvar,
    /// The destination, written by one thread at a time. Whoever takes bytes out of `state`
    /// locks `out` before letting go of `state`, so that batches reach it in order.
    out: Mutex<W>,
}

#[derive(Default)]
struct State {
    buf: Vec<u8>,
    stop: bool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A thread that panicked while holding a lock here left whole lines behind: keep going.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Writes `bytes` to `out`, and flushes it.
fn write_out<W: Write>(out: &mut W, bytes: &[u8]) {
    if bytes.is_empty() {
        return;
    }
    // Nowhere to report a failed write of the log itself.
    let _ = out.write_all(bytes).and_then(|()| out.flush());
}

/// A [`tracing_subscriber::fmt::MakeWriter`]: each line is appended to the shared buffer.
pub struct BatchedWriter<W> {
    shared: Arc<Shared<W>>,
}

impl<W> Clone for BatchedWriter<W> {
    fn clone(&self) -> Self {
        BatchedWriter {
            shared: self.shared.clone(),
        }
    }
}

/// Keeps the writer thread; dropping it writes out what is still buffered and ends the thread.
pub struct WriterGuard<W: Write + Send + 'static> {
    shared: Arc<Shared<W>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// A writer to `out` and the guard of its thread (named `log-writer`). Should no thread start,
/// each line is written out at once.
pub fn batched<W: Write + Send + 'static>(out: W) -> (BatchedWriter<W>, WriterGuard<W>) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State::default()),
        wake: Condvar::new(),
        out: Mutex::new(out),
    });
    let worker = shared.clone();
    let thread = std::thread::Builder::new()
        .name("log-writer".into())
        .spawn(move || run(&worker))
        .map_err(|_| lock(&shared.state).stop = true)
        .ok();
    (
        BatchedWriter {
            shared: shared.clone(),
        },
        WriterGuard { shared, thread },
    )
}

fn run<W: Write>(shared: &Shared<W>) {
    // Two buffers change places, so that neither side allocates once both have grown.
    let mut spare = Vec::new();
    loop {
        let (stop, mut out) = {
            let state = lock(&shared.state);
            let (mut state, _) = shared
                .wake
                .wait_timeout_while(state, FLUSH_EVERY, |s| !s.stop && s.buf.len() < WAKE_AT)
                .unwrap_or_else(PoisonError::into_inner);
            std::mem::swap(&mut state.buf, &mut spare);
            (state.stop, lock(&shared.out))
        };
        write_out(&mut *out, &spare);
        drop(out);
        spare.clear();
        if stop {
            return;
        }
    }
}

impl<W: Write> BatchedWriter<W> {
    /// Appends whole lines to the buffer (what [`Write::write`] does, through a shared
    /// reference: the audit line's writer is a `static`).
    pub fn append(&self, line: &[u8]) {
        let mut state = lock(&self.shared.state);
        if state.stop {
            // The guard is gone: nobody will write the buffer out.
            let mut out = lock(&self.shared.out);
            drop(state);
            write_out(&mut *out, line);
            return;
        }
        state.buf.extend_from_slice(line);
        let len = state.buf.len();
        if len >= MAX_BUFFERED {
            let full = std::mem::take(&mut state.buf);
            let mut out = lock(&self.shared.out);
            drop(state);
            write_out(&mut *out, &full);
        } else if len >= WAKE_AT {
            drop(state);
            self.shared.wake.notify_one();
        }
    }
}

impl<W: Write> Write for BatchedWriter<W> {
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        self.append(line);
        Ok(line.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a, W: Write + Send + 'static> tracing_subscriber::fmt::MakeWriter<'a> for BatchedWriter<W> {
    type Writer = BatchedWriter<W>;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

impl<W: Write + Send + 'static> Drop for WriterGuard<W> {
    fn drop(&mut self) {
        lock(&self.shared.state).stop = true;
        self.shared.wake.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A destination the test can read, counting the writes it gets.
    #[derive(Clone, Default)]
    struct Sink {
        bytes: Arc<Mutex<Vec<u8>>>,
        writes: Arc<Mutex<usize>>,
    }

    impl Write for Sink {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            lock(&self.bytes).extend_from_slice(b);
            *lock(&self.writes) += 1;
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Lines from 4 threads, `lines` each of about `size` bytes: every one is written, each
    /// thread's in its order. Returns how many writes the sink got.
    fn lines_in_order(lines: usize, size: usize) -> usize {
        let sink = Sink::default();
        let (writer, guard) = batched(sink.clone());
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let mut w = writer.clone();
                std::thread::spawn(move || {
                    for i in 0..lines {
                        let line = format!("t{t} line {i} {}\n", "x".repeat(size));
                        w.write_all(line.as_bytes()).expect("write");
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("join");
        }
        drop(guard);
        let text = String::from_utf8(lock(&sink.bytes).clone()).expect("utf8");
        for t in 0..4 {
            let mine: Vec<usize> = text
                .lines()
                .filter_map(|l| l.strip_prefix(&format!("t{t} line ")))
                .map(|n| {
                    n.split(' ')
                        .next()
                        .and_then(|n| n.parse().ok())
                        .expect("number")
                })
                .collect();
            assert_eq!(mine, (0..lines).collect::<Vec<_>>(), "thread {t}");
        }
        let writes = *lock(&sink.writes);
        writes
    }

    #[test]
    fn every_line_is_written_in_order_by_the_time_the_guard_is_dropped() {
        // Batched: far fewer writes than lines.
        let writes = lines_in_order(5_000, 0);
        assert!(writes < 20_000 / 10, "{writes}");
    }

    #[test]
    fn lines_stay_in_order_when_logging_threads_write_a_full_buffer_themselves() {
        // 25 MiB in all: the buffer passes MAX_BUFFERED again and again.
        lines_in_order(100, 64 * 1024);
    }

    #[test]
    fn a_line_is_written_out_without_more_lines_or_a_flush() {
        let sink = Sink::default();
        let (mut writer, _guard) = batched(sink.clone());
        writer.write_all(b"one line\n").expect("write");
        let until = std::time::Instant::now() + Duration::from_secs(5);
        while lock(&sink.bytes).is_empty() && std::time::Instant::now() < until {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(&*lock(&sink.bytes), b"one line\n");
    }

    #[test]
    fn lines_logged_after_the_guard_is_gone_are_written_at_once() {
        let sink = Sink::default();
        let (mut writer, guard) = batched(sink.clone());
        drop(guard);
        writer.write_all(b"late\n").expect("write");
        assert_eq!(&*lock(&sink.bytes), b"late\n");
    }
}
