//! The events file and the log under an operator's conditions: a consumer
//! that stops reading, a full disk, log rotation with SIGHUP, a crash and a
//! restart appending to the same file, a stderr nobody reads, and signals.
//! Real processes; every wait bounded.

mod util;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;
use util::{eventually, Peer, Serve, PATIENCE};

/// A fresh directory for one test.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vigil-events-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Every line of an events file as JSON; fails on a line that is not one
/// whole object (a half-written line).
#[track_caller]
fn records(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not a whole record: {l:?}: {e}"))
        })
        .collect()
}

fn kind(r: &Value) -> &str {
    r["event"].as_str().unwrap_or("")
}

/// The lines dropped, by the gap records.
fn dropped(rs: &[Value]) -> u64 {
    rs.iter()
        .filter(|r| kind(r) == "gap")
        .map(|r| r["dropped"].as_u64().unwrap())
        .sum()
}

/// Connects and closes `n` connections, waiting for each to be welcomed.
fn churn(server: &Serve, n: usize) {
    for i in 0..n {
        let mut p = server.connect();
        assert!(p.ask(&format!("HELLO churn-{i}\n")).starts_with("WELCOME"));
        p.send(b"QUIT\n");
    }
}

/// Connections named `late-<k>`, made one at a time until the last one's
/// offline is in `text()`: the writer's backlog is through (lines made
/// while it still was full are dropped, and counted). How many it made.
fn lates(server: &Serve, text: impl Fn() -> String) -> u64 {
    let start = Instant::now();
    for k in 0.. {
        let mut p = server.connect();
        assert!(p.ask(&format!("HELLO late-{k}\n")).starts_with("WELCOME"));
        drop(p);
        let offline = format!("\"client\":\"late-{k}\",\"event\":\"offline\"");
        let asked = Instant::now();
        while asked.elapsed() < Duration::from_millis(300) {
            if text().contains(&offline) {
                return k + 1;
            }
            thread::sleep(Duration::from_millis(10));
        }
        assert!(start.elapsed() < PATIENCE, "the backlog never drained");
    }
    unreachable!()
}

/// `peer` answers a PING within 100 ms.
#[track_caller]
fn answers_quickly(peer: &mut Peer, token: usize) {
    let start = Instant::now();
    assert_eq!(
        peer.ask(&format!("PING {token}\n")),
        format!("PONG {token}")
    );
    let took = start.elapsed();
    assert!(took < Duration::from_millis(100), "PONG after {took:?}");
}

/// Shrinks a pipe's buffer to one page, so a test fills it quickly.
fn small_pipe(fd: &impl AsRawFd) {
    // SAFETY: fcntl on a descriptor we own, no pointers.
    let r = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETPIPE_SZ, 4096) };
    assert!(
        r >= 4096,
        "F_SETPIPE_SZ: {}",
        std::io::Error::last_os_error()
    );
}

/// A FIFO, its reader opened (so the server's open for writing returns) and
/// held without reading.
fn fifo(dir: &Path) -> (PathBuf, thread::JoinHandle<std::fs::File>) {
    let path = dir.join("events.fifo");
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let p = path.clone();
    let reader = thread::spawn(move || {
        let f = std::fs::File::open(p).unwrap();
        small_pipe(&f);
        f
    });
    (path, reader)
}

/// The server's own count of connections accepted, from its stop record.
fn accepted(rs: &[Value]) -> u64 {
    rs.iter()
        .find(|r| kind(r) == "stop")
        .and_then(|r| r["accepted"].as_u64())
        .expect("a stop record")
}

#[test]
fn a_stuck_events_reader_never_stops_the_loop_and_a_gap_counts_every_drop() {
    let dir = temp_dir("fifo");
    let (path, reader) = fifo(&dir);
    let server = Serve::start(&["--events", path.to_str().unwrap(), "--events-queue", "4096"]);
    let mut reader = reader.join().unwrap();
    let mut bystander = server.connect();
    // 150 connections make about 450 lines (online, hello, offline), far
    // more than a 4 KiB pipe and a 4 KiB queue hold.
    for round in 0..5 {
        churn(&server, 30);
        answers_quickly(&mut bystander, round);
    }
    // The reader comes back, and reads as lines come.
    let text = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let sink = std::sync::Arc::clone(&text);
    let drain = thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock()
                .unwrap()
                .push_str(std::str::from_utf8(&buf[..n]).unwrap());
        }
    });
    answers_quickly(&mut bystander, 99);
    let lates = lates(&server, || text.lock().unwrap().clone());
    drop(bystander);
    let (status, log) = server.stop();
    assert!(status.success(), "{log:#?}");
    drain.join().unwrap();
    let rs = records(&text.lock().unwrap());
    assert!(
        dropped(&rs) > 0,
        "nothing was dropped: the test proves nothing"
    );
    // Every line the server made is either in the file or counted in a
    // gap: a start, 3 per churned connection (and the late one), online
    // and offline for the bystander, a stop.
    let made = 1 + (150 + lates) * 3 + 2 + 1;
    let present = rs.iter().filter(|r| kind(r) != "gap").count() as u64;
    assert_eq!(present + dropped(&rs), made, "{rs:#?}");
    assert_eq!(accepted(&rs), 151 + lates);
    // The log said so when it began, and when it ended.
    assert!(
        log.iter().any(|l| l.contains("events queue full")),
        "{log:#?}"
    );
    assert!(log
        .iter()
        .any(|l| l.contains("events queue has room again")));
    // The final log line says the same.
    let last = log
        .iter()
        .rev()
        .find(|l| l.contains("events: "))
        .cloned()
        .unwrap_or_default();
    assert!(
        last.contains(&format!("{} dropped", dropped(&rs))),
        "{last}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sigterm_stops_the_server_in_time_when_the_events_reader_never_reads() {
    let dir = temp_dir("stuck");
    let (path, reader) = fifo(&dir);
    let server = Serve::start(&["--events", path.to_str().unwrap(), "--events-queue", "4096"]);
    let _reader = reader.join().unwrap();
    let mut bystander = server.connect();
    churn(&server, 60);
    answers_quickly(&mut bystander, 1);
    let start = Instant::now();
    let (status, log) = server.stop();
    let took = start.elapsed();
    assert!(status.success(), "{log:#?}");
    assert!(took < Duration::from_secs(5), "stopped after {took:?}");
    let last = log
        .iter()
        .rev()
        .find(|l| l.contains("not written at exit"))
        .unwrap_or_else(|| panic!("no final events line: {log:#?}"));
    let unwritten: u64 = last
        .split(" dropped, ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{last}"));
    assert!(unwritten > 0, "{last}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A tmpfs mounted for one test, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: mounting a tmpfs needs root");
            return None;
        }
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("skipped: cannot mount a tmpfs");
            return None;
        }
        Some(Tmpfs(dir.to_owned()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// Fills the file system of `path` with it; returns the bytes written.
fn fill(path: &Path) -> usize {
    use std::io::Write;
    let mut f = std::fs::File::create(path).unwrap();
    let block = [0u8; 1024];
    let mut n = 0;
    while let Ok(k) = f.write(&block) {
        if k == 0 {
            break;
        }
        n += k;
    }
    n
}

#[test]
fn a_full_disk_drops_and_counts_and_writing_resumes_when_space_is_freed() {
    let dir = temp_dir("tmpfs");
    let Some(_mount) = Tmpfs::mount(&dir, "64k") else {
        return;
    };
    let events = dir.join("events.jsonl");
    let filler = dir.join("filler");
    let server = Serve::start(&[
        "--events",
        events.to_str().unwrap(),
        "--events-queue",
        "4096",
    ]);
    // The start record goes in; then the disk is full.
    eventually("the start record", || {
        std::fs::read_to_string(&events).is_ok_and(|t| t.contains("\"start\""))
    });
    assert!(fill(&filler) > 0);
    let mut bystander = server.connect();
    churn(&server, 60);
    answers_quickly(&mut bystander, 1);
    server.wait_log("events: write failed");
    std::fs::remove_file(&filler).unwrap();
    server.wait_log("events: writing again");
    let lates = lates(&server, || {
        std::fs::read_to_string(&events).unwrap_or_default()
    });
    drop(bystander);
    let (status, log) = server.stop();
    assert!(status.success(), "{log:#?}");
    let rs = records(&std::fs::read_to_string(&events).unwrap());
    assert!(
        dropped(&rs) > 0,
        "nothing was dropped: the test proves nothing"
    );
    let made = 1 + (60 + lates) * 3 + 2 + 1;
    let present = rs.iter().filter(|r| kind(r) != "gap").count() as u64;
    assert_eq!(present + dropped(&rs), made, "{rs:#?}");
    // Writing resumed: the stop is there, and says the same count.
    let stop = rs.last().unwrap();
    assert_eq!(kind(stop), "stop");
    assert_eq!(stop["dropped"].as_u64(), Some(dropped(&rs)));
}

#[test]
fn sighup_after_a_rename_sends_new_events_to_the_new_file_and_drops_no_one() {
    let dir = temp_dir("rotate");
    let events = dir.join("events.jsonl");
    let rotated = dir.join("events.jsonl.1");
    let server = Serve::start(&["--events", events.to_str().unwrap()]);
    let mut a = server.connect();
    a.ask("HELLO a\n");
    eventually("a's hello", || {
        std::fs::read_to_string(&events).is_ok_and(|t| t.contains("\"client\":\"a\""))
    });
    std::fs::rename(&events, &rotated).unwrap();
    server.signal(libc::SIGHUP);
    server.wait_log("events: file reopened");
    let mut b = server.connect();
    b.ask("HELLO b\n");
    eventually("b's hello in the new file", || {
        std::fs::read_to_string(&events).is_ok_and(|t| t.contains("\"client\":\"b\""))
    });
    assert_eq!(a.ask("PING 1\n"), "PONG 1", "a was not dropped");
    let (status, log) = server.stop();
    assert!(status.success(), "{log:#?}");
    let old = records(&std::fs::read_to_string(&rotated).unwrap());
    let new = records(&std::fs::read_to_string(&events).unwrap());
    let kinds = |rs: &[Value]| -> Vec<String> {
        rs.iter()
            .map(|r| format!("{} {}", kind(r), r["client"].as_str().unwrap_or("-")))
            .collect()
    };
    assert_eq!(kinds(&old), ["start -", "online -", "hello a"]);
    assert_eq!(
        kinds(&new),
        ["online -", "hello b", "offline a", "offline b", "stop -"]
    );
    assert!(new
        .iter()
        .all(|r| r["reason"].is_null() || r["reason"] == "shutdown"));
    assert_eq!(dropped(&new), 0);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The README's reconciliation rule, applied to a whole events file: who is
/// online at the end. A connection is `(run, conn)`; a client id is online
/// from its `hello` to its connection's `offline` (any reason, `renamed`
/// included); a `start` of a run ends every connection of the runs before
/// it that had no `stop` (the server crashed: they are all offline); a
/// `stop` ends its run's connections (their offline events precede it).
/// Returns the ids online at the end, and the ids each crash took offline.
fn reconcile(rs: &[Value]) -> (BTreeSet<String>, Vec<BTreeSet<String>>) {
    let mut online: BTreeMap<(String, u64), String> = BTreeMap::new();
    let mut crashed = Vec::new();
    for r in rs {
        let run = r["run"].as_str().unwrap().to_owned();
        match kind(r) {
            "start" => {
                let gone: BTreeSet<String> = std::mem::take(&mut online).into_values().collect();
                crashed.push(gone);
            }
            "stop" => online.retain(|(r, _), _| *r != run),
            "hello" => {
                let conn = r["conn"].as_u64().unwrap();
                online.insert((run, conn), r["client"].as_str().unwrap().to_owned());
            }
            "offline" => {
                let conn = r["conn"].as_u64().unwrap();
                online.remove(&(run, conn));
            }
            _ => {}
        }
    }
    (online.into_values().collect(), crashed)
}

#[test]
fn two_runs_appended_to_one_file_reconcile_after_a_crash() {
    let dir = temp_dir("runs");
    let events = dir.join("events.jsonl");
    let path = events.to_str().unwrap();
    let first = Serve::start(&["--events", path]);
    let mut a = first.connect();
    a.ask("HELLO a\n");
    let mut b = first.connect();
    b.ask("HELLO b\n");
    eventually("b's hello", || {
        std::fs::read_to_string(&events).is_ok_and(|t| t.contains("\"client\":\"b\""))
    });
    // A crash: no offline, no stop.
    first.signal(libc::SIGKILL);
    drop(first);
    let second = Serve::start(&["--events", path]);
    let mut c = second.connect();
    c.ask("HELLO c\n");
    drop(c);
    let mut a2 = second.connect();
    a2.ask("HELLO a\n");
    eventually("a's second hello and c's offline", || {
        std::fs::read_to_string(&events).is_ok_and(|t| {
            t.matches("\"client\":\"a\"").count() >= 2
                && t.contains("\"client\":\"c\",\"event\":\"offline\"")
        })
    });
    let rs = records(&std::fs::read_to_string(&events).unwrap());
    let runs: BTreeSet<&str> = rs.iter().map(|r| r["run"].as_str().unwrap()).collect();
    assert_eq!(runs.len(), 2, "two run ids");
    // Both runs have a connection number 1: only (run, conn) tells them apart.
    let ones = rs
        .iter()
        .filter(|r| r["conn"] == 1 && kind(r) == "online")
        .count();
    assert_eq!(ones, 2);
    let (online, crashed) = reconcile(&rs);
    assert_eq!(crashed.len(), 2);
    assert_eq!(crashed[1], BTreeSet::from(["a".to_owned(), "b".to_owned()]));
    assert_eq!(
        online,
        BTreeSet::from(["a".to_owned()]),
        "while the second run serves a"
    );
    let (status, _) = second.stop();
    assert!(status.success());
    let rs = records(&std::fs::read_to_string(&events).unwrap());
    let (online, _) = reconcile(&rs);
    assert!(online.is_empty(), "after a clean stop: {online:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_second_hello_renames_and_a_takeover_ends_the_old_holder_first() {
    let dir = temp_dir("rename");
    let events = dir.join("events.jsonl");
    let server = Serve::start(&["--events", events.to_str().unwrap()]);
    let mut p = server.connect();
    p.ask("HELLO a\n");
    p.ask("HELLO b\n");
    let mut q = server.connect();
    q.ask("HELLO b\n");
    p.expect_bye("replaced");
    let (status, _) = server.stop();
    assert!(status.success());
    let rs = records(&std::fs::read_to_string(&events).unwrap());
    let trace: Vec<String> = rs
        .iter()
        .filter(|r| r.get("conn").is_some())
        .map(|r| {
            format!(
                "{} {} {} {}",
                r["conn"],
                kind(r),
                r["client"].as_str().unwrap_or("-"),
                r["reason"].as_str().unwrap_or("-")
            )
        })
        .collect();
    assert_eq!(
        trace,
        [
            "1 online - -",
            "1 hello a -",
            "1 offline a renamed",
            "1 hello b -",
            "2 online - -",
            "1 offline b replaced",
            "2 hello b -",
            "2 offline b shutdown",
        ]
    );
    let (online, _) = reconcile(&rs);
    assert!(online.is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_stderr_nobody_reads_does_not_freeze_the_loop() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let listen = format!("127.0.0.1:{port}");
    let mut child = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["serve", "--listen", &listen])
        // Three debug lines per connection, into a one-page pipe.
        .env("RUST_LOG", "debug")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    small_pipe(&stderr);
    let addr = listen.parse().unwrap();
    let start = Instant::now();
    let mut bystander = loop {
        if let Ok(s) = std::net::TcpStream::connect(addr) {
            drop(s);
            break Peer::connect(addr);
        }
        assert!(start.elapsed() < PATIENCE, "the server never listened");
        thread::sleep(Duration::from_millis(10));
    };
    for round in 0..4 {
        for i in 0..50 {
            let mut p = Peer::connect(addr);
            assert!(p.ask(&format!("HELLO s-{i}\n")).starts_with("WELCOME"));
        }
        answers_quickly(&mut bystander, round);
    }
    // SAFETY: kill on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "no exit after SIGTERM"
        );
        thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success());
    // The pipe holds only the first page of the log; the rest was dropped
    // and counted, never waited for.
    drop(stderr);
}

#[test]
fn sigusr1_logs_stats_sigusr2_is_ignored_and_json_logs_are_json() {
    let server = Serve::start(&["--log-format", "json", "--stats-interval", "0ms"]);
    let mut peer = server.connect();
    server.signal(libc::SIGUSR1);
    server.wait_log("stats: conns=1");
    server.signal(libc::SIGUSR2);
    server.wait_log("SIGUSR2: ignored");
    assert_eq!(peer.ask("PING 1\n"), "PONG 1");
    let (status, log) = server.stop();
    assert!(status.success(), "{log:#?}");
    for line in &log {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{line:?}: {e}"));
        assert!(v["level"].is_string() && v["msg"].is_string(), "{line}");
    }
}
