//! Queue tests: a scripted writer in place of the file, real threads.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::*;

/// What the fake output does with its next `write()` calls.
#[derive(Debug, Clone, Copy)]
enum Step {
    /// Accept at most this many bytes.
    Take(usize),
    /// Fail with ENOSPC.
    Full,
}

#[derive(Default)]
struct Fake {
    written: Vec<u8>,
    script: VecDeque<Step>,
    /// While false, `write()` waits (a reader that stopped reading).
    open: bool,
}

/// A writer the test controls: it can block, fail, and write short.
#[derive(Clone, Default)]
struct FakeOut(Arc<(Mutex<Fake>, Condvar)>);

impl FakeOut {
    fn new(open: bool, script: &[Step]) -> FakeOut {
        let out = FakeOut::default();
        {
            let mut f = out.0 .0.lock().unwrap();
            f.open = open;
            f.script = script.iter().copied().collect();
        }
        out
    }

    fn set_open(&self, open: bool) {
        self.0 .0.lock().unwrap().open = open;
        self.0 .1.notify_all();
    }

    fn text(&self) -> String {
        String::from_utf8(self.0 .0.lock().unwrap().written.clone()).unwrap()
    }
}

impl Write for FakeOut {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let (lock, cv) = &*self.0;
        let mut f = lock.lock().unwrap();
        while !f.open {
            f = cv.wait(f).unwrap();
        }
        let n = match f.script.pop_front() {
            Some(Step::Full) => return Err(io::Error::from_raw_os_error(libc::ENOSPC)),
            Some(Step::Take(n)) => n.min(buf.len()),
            None => buf.len(),
        };
        f.written.extend_from_slice(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn gap() -> GapFn {
    Box::new(|n, buf| buf.extend_from_slice(format!("gap {n}\n").as_bytes()))
}

fn queue(out: &FakeOut, capacity: usize) -> Queue {
    Queue::spawn(
        "test",
        Output::Other(Box::new(out.clone())),
        capacity,
        gap(),
    )
    .unwrap()
}

#[track_caller]
fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "timed out: {what}"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn a_full_queue_drops_and_counts_and_the_next_line_follows_a_gap() {
    let out = FakeOut::new(false, &[]);
    let q = queue(&out, 10);
    // Five 2-byte lines fill the 10 bytes, whether or not the blocked
    // writer has taken some: its batch still counts against the bound.
    let accepted: Vec<bool> = (0..8)
        .map(|i| q.push(format!("{i}\n").as_bytes()))
        .collect();
    q.notify();
    assert_eq!(
        accepted,
        [true, true, true, true, true, false, false, false]
    );
    assert_eq!(q.counters().dropped(), 3);
    // Full while the batch is unwritten.
    assert!(!q.push(b"y\n"));
    out.set_open(true);
    wait_until("the first lines", || q.counters().written() == 5);
    assert!(q.push(b"x\n"));
    q.notify();
    wait_until("the gap and x", || q.counters().written() == 7);
    assert_eq!(out.text(), "0\n1\n2\n3\n4\ngap 4\nx\n");
    let c = q.counters();
    assert_eq!((c.queued(), c.dropped(), c.pending()), (7, 4, 0));
}

#[test]
fn a_write_error_mid_line_is_retried_from_where_it_stopped() {
    // 3 bytes go out, then the disk is full twice: the line is finished
    // when space comes back, never left half written or repeated.
    let out = FakeOut::new(true, &[Step::Take(3), Step::Full, Step::Full]);
    let q = queue(&out, 1 << 10);
    q.push(b"hello\n");
    q.push(b"world\n");
    q.notify();
    wait_until("both lines", || q.counters().written() == 2);
    assert_eq!(out.text(), "hello\nworld\n");
    assert_eq!(q.counters().write_errors(), 2);
    assert_eq!(q.counters().dropped(), 0);
}

#[test]
fn a_writer_that_always_fails_is_retried_with_backoff_not_in_a_spin() {
    struct Broken;
    impl Write for Broken {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::from(io::ErrorKind::BrokenPipe))
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let q = Queue::spawn("test", Output::Other(Box::new(Broken)), 1 << 10, gap()).unwrap();
    q.push(b"never\n");
    q.notify();
    std::thread::sleep(Duration::from_millis(400));
    // 10 + 20 + 40 + 80 + 160 ms: about 5 attempts in 400 ms, not thousands.
    let errors = q.counters().write_errors();
    assert!((2..=8).contains(&errors), "{errors} attempts in 400 ms");
    let report = q.close(Duration::from_millis(50));
    assert_eq!(report.unwritten, 1);
}

#[test]
fn close_waits_for_the_writer_to_finish() {
    let out = FakeOut::new(true, &[Step::Take(1), Step::Take(1)]);
    let q = queue(&out, 1 << 10);
    for i in 0..100 {
        q.push(format!("line {i}\n").as_bytes());
    }
    let report = q.close(Duration::from_secs(5));
    assert_eq!(
        report,
        CloseReport {
            written: 100,
            dropped: 0,
            unwritten: 0
        }
    );
    assert_eq!(out.text().lines().count(), 100);
}

#[test]
fn close_gives_up_after_the_grace_and_counts_what_is_left() {
    let out = FakeOut::new(false, &[]);
    let q = queue(&out, 1 << 10);
    for _ in 0..3 {
        q.push(b"stuck\n");
    }
    let start = Instant::now();
    let report = q.close(Duration::from_millis(100));
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(100), "{took:?}");
    assert!(took < Duration::from_secs(2), "{took:?}");
    assert_eq!(report.unwritten, 3);
    assert_eq!(report.written, 0);
    out.set_open(true);
}

/// A fresh directory under the system's temporary one.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vigil-queue-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn a_reopen_after_a_rename_writes_to_the_new_file() {
    let dir = temp_dir("reopen");
    let path = dir.join("events");
    let q = Queue::spawn("test", Output::open(path.clone()).unwrap(), 1 << 10, gap()).unwrap();
    q.push(b"a\n");
    q.notify();
    wait_until("a", || q.counters().written() == 1);
    std::fs::rename(&path, dir.join("events.1")).unwrap();
    q.push(b"b\n");
    q.reopen();
    q.notify();
    wait_until("b", || q.counters().written() == 2);
    q.push(b"c\n");
    q.close(Duration::from_secs(5));
    // `b` was queued before the reopen was asked for, but the writer
    // reopens before its next write: it lands in the new file.
    assert_eq!(
        std::fs::read_to_string(dir.join("events.1")).unwrap(),
        "a\n"
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "b\nc\n");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_reopen_abandons_a_half_written_line_and_says_so() {
    let dir = temp_dir("half");
    let path = dir.join("events");
    let out = Output::open(path.clone()).unwrap();
    let shared = Shared {
        state: Mutex::new(State {
            buf: Vec::new(),
            inflight: 0,
            capacity: 1 << 10,
            dropped_since_gap: 0,
            unannounced: false,
            reopen: false,
            closing: false,
            finished: false,
        }),
        wake: Condvar::new(),
        done: Condvar::new(),
        counters: Arc::new(QueueCounters::default()),
        gap: gap(),
        name: "test",
    };
    // The writer had written "hal" of "half\n" when the reopen came.
    let mut out = out;
    let mut batch = b"half\nnext\n".to_vec();
    let mut off = 3;
    reopen(&shared, &mut out, &mut batch, &mut off);
    assert_eq!((batch.as_slice(), off), (&b"gap 1\nnext\n"[..], 0));
    assert_eq!(shared.counters.dropped(), 1);
    // At a line boundary nothing is abandoned.
    let mut batch = b"half\nnext\n".to_vec();
    let mut off = 5;
    reopen(&shared, &mut out, &mut batch, &mut off);
    assert_eq!((batch.as_slice(), off), (&b"half\nnext\n"[..], 5));
    let _ = std::fs::remove_dir_all(&dir);
}
