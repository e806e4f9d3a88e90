//! End-to-end tests of `vigil serve --workers N`: a supervisor and its
//! worker processes on one port, real sockets on 127.0.0.1, bounded waits.

mod util;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use util::{eventually, parse_events, EventLine, Peer, Serve};
use vigil::server::workers::owner_of;

/// A fresh directory for one test's files.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vigil-workers-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The worker processes of supervisor `pid`, by their index (the
/// `--worker-of INDEX/...` on their command lines).
fn workers(pid: i32) -> HashMap<u32, i32> {
    let children =
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
    let mut out = HashMap::new();
    for child in children.split_whitespace() {
        let Ok(cmdline) = std::fs::read(format!("/proc/{child}/cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmdline
            .split(|&b| b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if let Some(i) = args.iter().position(|a| a == "--worker-of") {
            let index = args[i + 1].split('/').next().unwrap().parse().unwrap();
            out.insert(index, child.parse().unwrap());
        }
    }
    out
}

/// The worker that accepted connection `conn` (numbers start at
/// `(index + 1) × 10^12`).
fn accepted_by(conn: u64) -> u32 {
    (conn / 1_000_000_000_000 - 1) as u32
}

/// Every connection in `events` has exactly one online and one offline
/// event, the online first; returns the events by connection.
#[track_caller]
fn exactly_once(events: &[EventLine]) -> HashMap<u64, Vec<EventLine>> {
    let mut by_conn: HashMap<u64, Vec<EventLine>> = HashMap::new();
    for e in events {
        by_conn.entry(e.conn).or_default().push(e.clone());
    }
    for (conn, es) in &by_conn {
        let count = |kind: &str| es.iter().filter(|e| e.event == kind).count();
        assert_eq!(
            (count("online"), count("offline")),
            (1, 1),
            "conn {conn}: {es:#?}"
        );
    }
    by_conn
}

#[test]
fn workers_start_serve_on_one_port_and_stop_cleanly() {
    let server = Serve::start(&["--workers", "3"]);
    for i in 0..3 {
        server.wait_log(&format!("worker {i} ready"));
    }
    assert_eq!(workers(server.pid()).len(), 3);
    let mut peers: Vec<Peer> = (0..30).map(|_| server.connect()).collect();
    for (i, p) in peers.iter_mut().enumerate() {
        assert_eq!(p.ask(&format!("PING {i}\n")), format!("PONG {i}"));
    }
    let (status, log) = server.stop();
    assert!(status.success(), "{status:?}\n{}", log.join("\n"));
    for p in &mut peers {
        p.expect_bye("shutdown");
    }
    let total = log
        .iter()
        .find(|l| l.contains("connections (all workers)"))
        .unwrap_or_else(|| panic!("no merged count in\n{}", log.join("\n")));
    assert!(total.contains("stopped after 30 connections"), "{total}");
}

#[test]
fn a_hello_on_one_worker_takes_over_the_id_held_on_another() {
    let dir = scratch("takeover");
    let path = dir.join("events.jsonl");
    let server = Serve::start(&["--workers", "4", "--events", path.to_str().unwrap()]);
    for i in 0..4 {
        server.wait_log(&format!("worker {i} ready"));
    }
    let pairs = 40;
    let mut old = Vec::new();
    for i in 0..pairs {
        let mut a = server.connect();
        assert_eq!(
            a.ask(&format!("PING before\nHELLO dev-{i}\n")),
            "PONG before"
        );
        assert_eq!(
            a.line().unwrap(),
            format!("WELCOME dev-{i} interval=30000 timeout=45000")
        );
        // The handed-off connection keeps being served where its id lives.
        assert_eq!(a.ask("PING 1\n"), "PONG 1");
        old.push(a);
    }
    let mut new = Vec::new();
    for (i, a) in old.iter_mut().enumerate() {
        let mut b = server.connect();
        assert_eq!(
            b.ask(&format!("HELLO dev-{i}\n")),
            format!("WELCOME dev-{i} interval=30000 timeout=45000")
        );
        a.expect_bye("replaced");
        assert_eq!(b.ask("PING 2\n"), "PONG 2");
        new.push(b);
    }
    let (status, _) = server.stop();
    assert!(status.success());
    let events = parse_events(&std::fs::read_to_string(&path).unwrap());
    let by_conn = exactly_once(&events);
    assert_eq!(by_conn.len(), 2 * pairs);
    // Most connections were accepted by a worker that did not own their id.
    let mut crossed = 0;
    for es in by_conn.values() {
        let hello = es.iter().find(|e| e.event == "hello").expect("a hello");
        let client = hello.client.as_deref().unwrap();
        if accepted_by(hello.conn) != owner_of(client, 4) {
            crossed += 1;
        }
        let off = es.iter().find(|e| e.event == "offline").unwrap();
        assert!(
            matches!(off.reason.as_deref(), Some("replaced" | "shutdown")),
            "{es:#?}"
        );
    }
    assert!(
        crossed >= pairs / 2,
        "only {crossed} of {} crossed workers",
        2 * pairs
    );
    let replaced = events
        .iter()
        .filter(|e| e.reason.as_deref() == Some("replaced"))
        .count();
    assert_eq!(replaced, pairs);
}

#[test]
fn a_killed_workers_connections_go_offline_once_and_it_comes_back() {
    let dir = scratch("killed");
    let path = dir.join("events.jsonl");
    let server = Serve::start(&["--workers", "2", "--events", path.to_str().unwrap()]);
    for i in 0..2 {
        server.wait_log(&format!("worker {i} ready"));
    }
    let mut peers: Vec<(String, Peer)> = Vec::new();
    for i in 0..40 {
        let mut p = server.connect();
        let id = format!("k-{i}");
        assert_eq!(
            p.ask(&format!("HELLO {id}\n")),
            format!("WELCOME {id} interval=30000 timeout=45000")
        );
        peers.push((id, p));
    }
    // Anonymous ones stay where they were accepted.
    let mut anonymous: Vec<Peer> = (0..10).map(|_| server.connect()).collect();
    for p in &mut anonymous {
        assert_eq!(p.ask("PING\n"), "PONG");
    }
    // Events are written by each worker's writer thread, a moment after
    // the fact: wait until all 50 online events are in the file, so the
    // kill tests worker-lost, not the lines a SIGKILL catches still queued
    // (those are lost with the worker; see the README on workers).
    eventually("the 50 online events written", || {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        parse_events(&text)
            .iter()
            .filter(|e| e.event == "online")
            .count()
            >= 50
    });
    let before = workers(server.pid());
    let victim = before[&0];
    let killed_at = Instant::now();
    // SAFETY: kill has no memory preconditions; the pid is the worker's.
    unsafe { libc::kill(victim, libc::SIGKILL) };
    // Every id worker 0 owns loses its connection, without a BYE.
    for (id, p) in &mut peers {
        if owner_of(id, 2) == 0 {
            assert_eq!(p.line(), None, "{id}: expected the end of the stream");
        } else {
            assert_eq!(p.ask("PING\n"), "PONG", "{id} should be unaffected");
        }
    }
    server.wait_log("restarting worker 0");
    eventually("worker 0 to come back", || {
        workers(server.pid())
            .get(&0)
            .is_some_and(|&pid| pid != victim)
            && server
                .log()
                .iter()
                .filter(|l| l.contains("worker 0 ready"))
                .count()
                == 2
    });
    assert!(killed_at.elapsed() < Duration::from_secs(10));
    // New connections are served by both again.
    for i in 0..20 {
        let mut p = server.connect();
        let id = format!("again-{i}");
        assert_eq!(
            p.ask(&format!("HELLO {id}\n")),
            format!("WELCOME {id} interval=30000 timeout=45000")
        );
    }
    let (status, _) = server.stop();
    assert!(status.success());
    let events = parse_events(&std::fs::read_to_string(&path).unwrap());
    let by_conn = exactly_once(&events);
    let lost: Vec<&EventLine> = events
        .iter()
        .filter(|e| e.reason.as_deref() == Some("worker-lost"))
        .collect();
    let owned_by_victim = peers.iter().filter(|(id, _)| owner_of(id, 2) == 0).count();
    let anonymous_lost = by_conn
        .values()
        .filter(|es| es.iter().all(|e| e.client.is_none()))
        .filter(|es| {
            es.iter()
                .any(|e| e.reason.as_deref() == Some("worker-lost"))
        })
        .count();
    assert_eq!(lost.len(), owned_by_victim + anonymous_lost, "{lost:#?}");
    for e in &lost {
        if let Some(id) = &e.client {
            assert_eq!(owner_of(id, 2), 0, "{e:?}");
        }
    }
    assert!(
        owned_by_victim > 5,
        "only {owned_by_victim} ids on worker 0"
    );
}

#[test]
fn the_events_file_has_whole_lines_once_per_connection() {
    let dir = scratch("events");
    let path = dir.join("events.jsonl");
    let server = Serve::start(&["--workers", "3", "--events", path.to_str().unwrap()]);
    for i in 0..3 {
        server.wait_log(&format!("worker {i} ready"));
    }
    let mut kept = Vec::new();
    for i in 0..150 {
        let mut p = server.connect();
        match i % 3 {
            0 => assert_eq!(p.ask("PING\n"), "PONG"),
            1 => assert!(p
                .ask(&format!("HELLO e-{}\n", i % 20))
                .starts_with("WELCOME")),
            _ => {
                assert!(p.ask(&format!("HELLO e-{i}\n")).starts_with("WELCOME"));
                drop(p);
                continue;
            }
        }
        kept.push(p);
    }
    let (status, _) = server.stop();
    assert!(status.success());
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.ends_with('\n'));
    // Whole JSON lines: one start and one stop of the supervisor's run
    // around them, and every other line about a connection.
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line:?}")))
        .collect();
    assert_eq!(
        lines.first().map(|v| v["event"].clone()),
        Some("start".into())
    );
    assert_eq!(
        lines.last().map(|v| v["event"].clone()),
        Some("stop".into())
    );
    assert_eq!(lines.iter().filter(|v| v["event"] == "start").count(), 1);
    assert_eq!(lines.iter().filter(|v| v["event"] == "stop").count(), 1);
    for v in &lines[1..lines.len() - 1] {
        assert!(v["conn"].is_u64(), "{v}");
    }
    let by_conn = exactly_once(&parse_events(&text));
    assert_eq!(by_conn.len(), 150);
    // Ids are unique across workers: the connections came from several.
    let mut acceptors: Vec<u32> = by_conn.keys().map(|&c| accepted_by(c)).collect();
    acceptors.sort_unstable();
    acceptors.dedup();
    assert!(acceptors.len() >= 2, "{acceptors:?}");
}

#[test]
fn bad_worker_counts_and_a_port_in_use_are_refused() {
    for (bad, needle) in [
        ("0", "at least 1"),
        ("1025", "at most 1024"),
        ("many", "expected a number of workers or auto"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_vigil"))
            .args(["serve", "--listen", "127.0.0.1:0", "--workers", bad])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "--workers {bad}: {err}");
        assert!(err.contains(needle), "--workers {bad}: {err}");
    }
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["serve", "--listen", &addr, "--workers", "2"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("cannot listen on {addr}")), "{err}");
}

#[test]
fn a_burst_of_hellos_is_handed_over_without_loss() {
    // Far more hand-offs at once than a Unix datagram queue holds
    // (net.unix.max_dgram_qlen, 10 by default): they wait for room.
    let server = Serve::start(&["--workers", "2"]);
    for i in 0..2 {
        server.wait_log(&format!("worker {i} ready"));
    }
    let mut peers: Vec<Peer> = (0..600).map(|_| server.connect()).collect();
    for (i, p) in peers.iter_mut().enumerate() {
        p.send(format!("HELLO burst-{i}\nPING {i}\n").as_bytes());
    }
    for (i, p) in peers.iter_mut().enumerate() {
        assert_eq!(
            p.line().as_deref(),
            Some(&*format!("WELCOME burst-{i} interval=30000 timeout=45000"))
        );
        assert_eq!(p.line(), Some(format!("PONG {i}")));
    }
    let (status, log) = server.stop();
    assert!(status.success());
    assert!(
        !log.iter().any(|l| l.contains("cannot hand it")),
        "{}",
        log.join("\n")
    );
}
