//! A bounded queue of whole lines, written by a thread of its own.
//!
//! # Why
//! The event loop must never wait on a pipe, a FIFO, a full disk or a
//! terminal: every client's heartbeat depends on it. So the loop only ever
//! appends a line to a buffer in memory (under a lock that nobody holds
//! across I/O), and a writer thread does the `write()` calls.
//!
//! # Rules
//! - **Bounded.** The queue holds at most `capacity` bytes (the lines
//!   waiting plus the part of the batch being written). A line that does not
//!   fit is dropped and counted; it never blocks the caller.
//! - **Gaps are told.** The first line accepted after drops is preceded by a
//!   gap line carrying the count (made by the queue's `gap` function), so the
//!   reader sees exactly where lines are missing and how many.
//! - **Whole lines.** A write error is retried with backoff (doubling from
//!   10 ms, capped at 1 s), never given up, from the byte where it stopped:
//!   a line half written when the disk filled is finished when space comes
//!   back. Only a reopen abandons the rest of a half-written line (the old
//!   file is not written again); that line counts as dropped and the new
//!   file starts with a gap line.
//! - **Reopen.** [`Queue::reopen`] (SIGHUP after log rotation) makes the
//!   writer open its path again (create, append) between two writes; a
//!   broken pipe (the FIFO's reader went away) reopens too.
//! - **Bounded exit.** [`Queue::close`] waits for the writer at most a
//!   grace period; what was not written by then is counted, and the thread
//!   is left behind (the process is exiting).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use crate::time::Clock;

/// The first pause after a write error; it doubles up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(10);
/// The longest pause between two attempts to write.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// Makes the gap line for a number of dropped lines (ending in `\n`).
pub(crate) type GapFn = Box<dyn Fn(u64, &mut Vec<u8>) + Send + Sync>;

/// Counters of a queue, readable from any thread.
#[derive(Debug, Default)]
pub struct QueueCounters {
    queued: AtomicU64,
    dropped: AtomicU64,
    written: AtomicU64,
    write_errors: AtomicU64,
}

impl QueueCounters {
    /// Lines accepted into the queue (gap lines included).
    pub fn queued(&self) -> u64 {
        self.queued.load(Ordering::Relaxed)
    }

    /// Lines dropped because the queue was full (or abandoned half written
    /// by a reopen).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Lines written whole.
    pub fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    /// Failed `write()` calls (each is retried).
    pub fn write_errors(&self) -> u64 {
        self.write_errors.load(Ordering::Relaxed)
    }

    /// Lines accepted and not written yet.
    pub fn pending(&self) -> u64 {
        self.queued().saturating_sub(self.written())
    }
}

/// Where the writer writes.
pub(crate) enum Output {
    /// A file named by a path, reopened on request.
    Path { path: PathBuf, file: File },
    /// Anything else (stdout, stderr, a caller's writer): never reopened.
    Other(Box<dyn Write + Send>),
}

impl Output {
    /// Opens `path` for appending (creating it).
    pub fn open(path: PathBuf) -> io::Result<Output> {
        let file = open_append(&path)?;
        Ok(Output::Path { path, file })
    }

    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        match self {
            Output::Path { file, .. } => file.write(bytes),
            Output::Other(w) => w.write(bytes),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Output::Path { file, .. } => file.flush(),
            Output::Other(w) => w.flush(),
        }
    }

    /// Opens the path again; false if this output has no path or the open
    /// failed (the old file is kept).
    fn reopen(&mut self) -> bool {
        let Output::Path { path, file } = self else {
            return false;
        };
        match open_append(path) {
            Ok(f) => {
                *file = f;
                true
            }
            Err(e) => {
                log::error!(
                    "cannot reopen {}: {e}; still writing the old file",
                    path.display()
                );
                false
            }
        }
    }
}

fn open_append(path: &PathBuf) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

struct State {
    /// Whole lines waiting for the writer.
    buf: Vec<u8>,
    /// Bytes the writer has taken and not written yet.
    inflight: usize,
    capacity: usize,
    dropped_since_gap: u64,
    /// Lines accepted since the writer was last woken.
    unannounced: bool,
    reopen: bool,
    closing: bool,
    finished: bool,
}

struct Shared {
    state: Mutex<State>,
    /// Wakes the writer: lines, a reopen, closing.
    wake: Condvar,
    /// Tells `close` that the writer is done.
    done: Condvar,
    counters: Arc<QueueCounters>,
    gap: GapFn,
    /// What the writer's log lines call this queue ("events").
    name: &'static str,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A writer that panicked leaves the data intact: keep going.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The caller's end of a queue. See the module docs.
pub(crate) struct Queue {
    shared: Arc<Shared>,
}

/// What closing the queue left behind ([`EventSink::stop`](super::EventSink::stop)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CloseReport {
    /// Lines written whole, in all.
    pub written: u64,
    /// Lines dropped, in all.
    pub dropped: u64,
    /// Lines accepted but not written when the grace period ended.
    pub unwritten: u64,
}

impl Queue {
    /// A queue of at most `capacity` bytes written to `out` by a new thread
    /// named `vigil-<name>`.
    pub fn spawn(
        name: &'static str,
        out: Output,
        capacity: usize,
        gap: GapFn,
    ) -> io::Result<Queue> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                buf: Vec::new(),
                inflight: 0,
                capacity,
                dropped_since_gap: 0,
                unannounced: false,
                reopen: false,
                closing: false,
                finished: false,
            }),
            wake: Condvar::new(),
            done: Condvar::new(),
            counters: Arc::new(QueueCounters::default()),
            gap,
            name,
        });
        let writer = Arc::clone(&shared);
        std::thread::Builder::new()
            .name(format!("vigil-{name}"))
            .spawn(move || write_loop(&writer, out))?;
        Ok(Queue { shared })
    }

    /// The counters, shared with any thread.
    pub fn counters(&self) -> &Arc<QueueCounters> {
        &self.shared.counters
    }

    /// Appends one whole line (ending in `\n`), or drops and counts it if
    /// the queue is full. Never waits on I/O. The writer is woken by
    /// [`Queue::notify`], so a burst costs one wake-up.
    pub fn push(&self, line: &[u8]) -> bool {
        let counters = &self.shared.counters;
        let mut st = self.shared.lock();
        if st.buf.len() + st.inflight + line.len() > st.capacity {
            st.dropped_since_gap += 1;
            counters.dropped.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        if st.dropped_since_gap > 0 {
            let n = std::mem::take(&mut st.dropped_since_gap);
            (self.shared.gap)(n, &mut st.buf);
            counters.queued.fetch_add(1, Ordering::Relaxed);
        }
        st.buf.extend_from_slice(line);
        st.unannounced = true;
        counters.queued.fetch_add(1, Ordering::Relaxed);
        true
    }

    /// Wakes the writer if lines were pushed since the last call.
    pub fn notify(&self) {
        let mut st = self.shared.lock();
        if std::mem::take(&mut st.unannounced) {
            self.shared.wake.notify_one();
        }
    }

    /// Asks the writer to reopen its file before its next write.
    pub fn reopen(&self) {
        self.shared.lock().reopen = true;
        self.shared.wake.notify_one();
    }

    /// Lets the writer finish what is queued, waiting at most `grace`.
    pub fn close(&self, grace: Duration) -> CloseReport {
        let clock = Clock::new();
        let limit = crate::time::millis_ceil(grace);
        let mut st = self.shared.lock();
        st.closing = true;
        self.shared.wake.notify_one();
        while !st.finished {
            let left = limit.saturating_sub(clock.now());
            if left == 0 {
                break;
            }
            st = match self
                .shared
                .done
                .wait_timeout(st, Duration::from_millis(left))
            {
                Ok((st, _)) => st,
                Err(e) => e.into_inner().0,
            };
        }
        drop(st);
        let c = &self.shared.counters;
        CloseReport {
            written: c.written(),
            dropped: c.dropped(),
            unwritten: c.pending(),
        }
    }
}

/// The writer thread: takes the whole buffer, writes it to the end,
/// retrying errors with backoff, and reopens when asked.
fn write_loop(shared: &Shared, mut out: Output) {
    let counters = &shared.counters;
    let mut batch: Vec<u8> = Vec::new();
    let mut off = 0;
    let mut backoff = MIN_BACKOFF;
    let mut failing = false;
    loop {
        let mut st = shared.lock();
        if std::mem::take(&mut st.reopen) {
            drop(st);
            reopen(shared, &mut out, &mut batch, &mut off);
            continue;
        }
        if off == batch.len() {
            batch.clear();
            off = 0;
            st.inflight = 0;
            if st.buf.is_empty() {
                if st.closing {
                    st.finished = true;
                    shared.done.notify_all();
                    return;
                }
                drop(shared.wake.wait(st).unwrap_or_else(|e| e.into_inner()));
                continue;
            }
            std::mem::swap(&mut st.buf, &mut batch);
            st.inflight = batch.len();
        }
        drop(st);
        match out.write(&batch[off..]) {
            Ok(0) => {
                let e = io::Error::new(io::ErrorKind::WriteZero, "wrote nothing");
                pause_after(shared, &e, &mut backoff, &mut failing);
            }
            Ok(n) => {
                let lines = batch[off..off + n].iter().filter(|&&b| b == b'\n').count();
                counters.written.fetch_add(lines as u64, Ordering::Relaxed);
                off += n;
                shared.lock().inflight = batch.len() - off;
                if failing {
                    failing = false;
                    log::warn!("{}: writing again", shared.name);
                }
                backoff = MIN_BACKOFF;
                if off == batch.len() {
                    let _ = out.flush();
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                pause_after(shared, &e, &mut backoff, &mut failing);
                if e.kind() == io::ErrorKind::BrokenPipe && matches!(out, Output::Path { .. }) {
                    // The reader went away: a FIFO gets a new one by
                    // opening it again (which waits here, not in the loop).
                    shared.lock().reopen = true;
                }
            }
        }
    }
}

/// Counts a failed write, logs the first of a series, and sleeps the
/// backoff (woken early by a reopen or a close; never skipped, so an output
/// that fails at once, such as a stderr whose reader is gone, costs at most
/// one attempt per backoff, not a spinning thread).
fn pause_after(shared: &Shared, e: &io::Error, backoff: &mut Duration, failing: &mut bool) {
    shared.counters.write_errors.fetch_add(1, Ordering::Relaxed);
    if !*failing {
        *failing = true;
        log::error!(
            "{}: write failed: {e}; retrying (lines are queued, then dropped and counted)",
            shared.name
        );
    }
    let st = shared.lock();
    let _ = shared.wake.wait_timeout(st, *backoff);
    *backoff = (*backoff * 2).min(MAX_BACKOFF);
}

/// Reopens the output. A line half written to the old file is abandoned
/// (counted as dropped); the new file gets a gap line first.
fn reopen(shared: &Shared, out: &mut Output, batch: &mut Vec<u8>, off: &mut usize) {
    if !out.reopen() {
        return;
    }
    log::info!("{}: file reopened", shared.name);
    if *off == 0 || batch[*off - 1] == b'\n' {
        return;
    }
    let rest = match batch[*off..].iter().position(|&b| b == b'\n') {
        Some(i) => *off + i + 1,
        None => batch.len(),
    };
    // The abandoned line moves from queued to dropped; its gap line takes
    // its place in `queued`, so `pending` stays right.
    shared.counters.dropped.fetch_add(1, Ordering::Relaxed);
    let mut fresh = Vec::with_capacity(batch.len() - rest + 128);
    (shared.gap)(1, &mut fresh);
    fresh.extend_from_slice(&batch[rest..]);
    *batch = fresh;
    *off = 0;
    shared.lock().inflight = batch.len();
}

#[cfg(test)]
mod tests;
