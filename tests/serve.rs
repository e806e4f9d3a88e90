//! End-to-end tests of `vigil serve`: a real server process, real sockets on
//! 127.0.0.1, ephemeral ports, bounded waits.

mod util;

use std::io::Write;
use std::thread;
use std::time::{Duration, Instant};

use util::{eventually, parse_events, Peer, Serve};

#[test]
fn ping_pong_with_and_without_token() {
    let server = Serve::start(&[]);
    let mut peer = server.connect();
    assert_eq!(peer.ask("PING\n"), "PONG");
    assert_eq!(peer.ask("PING 42\n"), "PONG 42");
    assert_eq!(
        peer.ask("PING a token with spaces\n"),
        "PONG a token with spaces"
    );
}

#[test]
fn crlf_lines_are_accepted() {
    let server = Serve::start(&[]);
    let mut peer = server.connect();
    assert_eq!(peer.ask("PING 7\r\n"), "PONG 7");
    assert_eq!(
        peer.ask("HELLO crlf\r\n"),
        "WELCOME crlf interval=30000 timeout=45000"
    );
}

#[test]
fn hello_gets_the_interval_and_timeout() {
    let server = Serve::start(&["--interval", "2s", "--timeout", "3s"]);
    let mut peer = server.connect();
    assert_eq!(
        peer.ask("HELLO dev-1\n"),
        "WELCOME dev-1 interval=2000 timeout=3000"
    );
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let server = Serve::start(&[]);
    let mut peer = server.connect();
    let mut burst = String::new();
    for i in 0..2000 {
        burst.push_str(&format!("PING {i}\n"));
    }
    peer.send(burst.as_bytes());
    for i in 0..2000 {
        assert_eq!(peer.line().unwrap(), format!("PONG {i}"));
    }
}

#[test]
fn a_frame_split_across_writes_is_one_frame() {
    let server = Serve::start(&[]);
    let mut peer = server.connect();
    for piece in ["PI", "NG 1", "23", "\r", "\n"] {
        peer.send(piece.as_bytes());
        thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(peer.line().unwrap(), "PONG 123");
}

/// Connects, optionally sends one line, and measures how long after the
/// last thing the server can have heard from us (the connect, or the line)
/// the server's `BYE timeout` and EOF arrive. The clock starts before we
/// send, so before the server can have read it: the measure can only be
/// longer than the server's own, never shorter.
fn time_until_timeout(server: &Serve, first: Option<&str>) -> Duration {
    let mut start = Instant::now();
    let mut peer = server.connect();
    if let Some(line) = first {
        start = Instant::now();
        peer.send(line.as_bytes());
        assert!(peer.line().is_some());
    }
    peer.expect_bye("timeout");
    start.elapsed()
}

#[test]
fn a_silent_client_is_closed_after_the_timeout_and_not_before() {
    let timeout = Duration::from_millis(1000);
    // With 100 ms ticks the server may round a deadline up by almost a
    // tick, which would hide a close that comes a little early; with 1 ms
    // ticks nothing can. The promise is the same for both.
    for (tick, tick_ms) in [
        (Duration::from_millis(100), "100ms"),
        (Duration::from_millis(1), "1ms"),
    ] {
        let server = Serve::start(&[
            "--timeout",
            "1000ms",
            "--tick",
            tick_ms,
            "--interval",
            "500ms",
        ]);
        for first in [None, Some("PING\n")] {
            let elapsed = time_until_timeout(&server, first);
            // Never early: the server must not close before a whole
            // timeout has passed since the last frame it read, and it read
            // it after our clock started. No slack below the timeout.
            assert!(
                elapsed >= timeout,
                "tick {tick_ms}, first {first:?}: closed early: {elapsed:?}"
            );
            // At most two ticks late, and never less than 200 ms of room
            // for a busy machine's scheduling.
            let late = 2 * tick.max(Duration::from_millis(100));
            assert!(
                elapsed <= timeout + late,
                "tick {tick_ms}, first {first:?}: closed late: {elapsed:?}"
            );
        }
        server.wait_log("offline: timeout");
    }
}

#[test]
fn a_client_beating_at_half_the_timeout_survives_ten_timeouts() {
    let server = Serve::start(&[
        "--timeout",
        "500ms",
        "--tick",
        "50ms",
        "--interval",
        "250ms",
    ]);
    let mut peer = server.connect();
    assert!(peer.ask("HELLO steady\n").starts_with("WELCOME steady"));
    let start = Instant::now();
    let mut seq = 0;
    while start.elapsed() < Duration::from_millis(5_000) {
        thread::sleep(Duration::from_millis(250));
        seq += 1;
        assert_eq!(peer.ask(&format!("PING {seq}\n")), format!("PONG {seq}"));
    }
    assert!(seq >= 18);
    assert!(
        !server.log().iter().any(|l| l.contains("offline")),
        "{:#?}",
        server.log()
    );
}

#[test]
fn any_complete_line_counts_as_life_but_a_partial_line_does_not() {
    let server = Serve::start(&[
        "--timeout",
        "600ms",
        "--tick",
        "50ms",
        "--interval",
        "300ms",
    ]);
    // Messages (lines that are not commands) keep a connection alive...
    let mut chatty = server.connect();
    for _ in 0..8 {
        chatty.send(b"just talking\n");
        thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(chatty.ask("PING\n"), "PONG");
    // ...a line that never ends does not, however many bytes it trickles.
    let mut trickle = server.connect();
    // The clock starts before the last frame is sent, so before the
    // server reads it: it cannot close sooner than the timeout after this.
    let start = Instant::now();
    trickle.send(b"PING\n");
    assert_eq!(trickle.line().unwrap(), "PONG");
    let closed_by = loop {
        match trickle.stream.write_all(b"x") {
            Ok(()) => {}
            Err(_) => break start.elapsed(),
        }
        let mut probe = [0u8; 64];
        trickle.stream.set_nonblocking(true).unwrap();
        let got = std::io::Read::read(&mut trickle.stream, &mut probe);
        trickle.stream.set_nonblocking(false).unwrap();
        if let Ok(n) = got {
            assert_eq!(&probe[..n], b"BYE timeout\n"[..n.min(12)].as_ref());
            break start.elapsed();
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "trickling kept it alive"
        );
        thread::sleep(Duration::from_millis(50));
    };
    assert!(closed_by >= Duration::from_millis(600), "{closed_by:?}");
    assert!(
        closed_by <= Duration::from_millis(600 + 2 * 50 + 60),
        "{closed_by:?}"
    );
}

#[test]
fn hello_with_a_taken_id_takes_it_over() {
    let server = Serve::start(&[]);
    let mut first = server.connect();
    let mut second = server.connect();
    assert!(first.ask("HELLO phone\n").starts_with("WELCOME phone"));
    assert!(second.ask("HELLO phone\n").starts_with("WELCOME phone"));
    first.expect_bye("replaced");
    // The newer connection is unaffected, and the id stays online when the
    // replaced one is gone.
    assert_eq!(second.ask("PING\n"), "PONG");
    server.wait_log("offline: replaced");
    let (status, log) = server.stop();
    assert!(status.success());
    assert!(
        log.iter().any(|l| l.contains("stats: conns=0 clients=0")),
        "{log:#?}"
    );
}

#[test]
fn an_over_long_line_is_refused_and_disturbs_nobody() {
    let server = Serve::start(&["--max-line", "16"]);
    let mut bystander = server.connect();
    let mut bad = server.connect();
    assert_eq!(bad.ask("PING 0123456789\n"), "PONG 0123456789");
    bad.send(b"PING 0123456789abc\n");
    bad.expect_bye("line-too-long");
    // Even without a newline, the limit applies as soon as it is exceeded.
    let mut endless = server.connect();
    endless.send(&[b'z'; 100]);
    endless.expect_bye("line-too-long");
    assert_eq!(bystander.ask("PING\n"), "PONG");
    let line = server.wait_log("frame longer than 16 bytes");
    assert!(
        line.contains("127.0.0.1:"),
        "the log names the peer: {line}"
    );
}

#[test]
fn a_bad_client_id_is_a_bad_frame() {
    let server = Serve::start(&[]);
    for hello in [
        "HELLO\n".to_owned(),
        // `HELLO <id> <token>`: the second word is a token; an empty id
        // (two spaces) is still a bad frame.
        "HELLO  two\n".to_owned(),
        format!("HELLO {}\n", "x".repeat(129)),
    ] {
        let mut peer = server.connect();
        peer.send(hello.as_bytes());
        peer.expect_bye("bad-frame");
    }
    let mut ok = server.connect();
    assert!(ok
        .ask(&format!("HELLO {}\n", "x".repeat(128)))
        .starts_with("WELCOME"));
    server.wait_log("bad frame: HELLO needs a client id");
}

#[test]
fn max_conns_refuses_extra_connections_with_overloaded() {
    let server = Serve::start(&["--max-conns", "2"]);
    let mut a = server.connect();
    let mut b = server.connect();
    assert_eq!(a.ask("PING\n"), "PONG");
    assert_eq!(b.ask("PING\n"), "PONG");
    let mut c = server.connect();
    c.expect_bye("overloaded");
    assert_eq!(a.ask("PING\n"), "PONG");
    drop(b);
    // A slot frees up once the server has seen the close.
    eventually("a free slot", || {
        let mut d = server.connect();
        d.send(b"PING\n");
        d.line().as_deref() == Some("PONG")
    });
}

#[test]
fn max_pings_closes_a_client_that_beats_too_often() {
    let server = Serve::start(&["--max-pings", "3", "--interval", "10s"]);
    let mut calm = server.connect();
    let mut eager = server.connect();
    for _ in 0..3 {
        assert_eq!(eager.ask("PING\n"), "PONG");
    }
    eager.send(b"PING\n");
    eager.expect_bye("too-many-pings");
    assert_eq!(calm.ask("PING\n"), "PONG");
    server.wait_log("more than 3 heartbeats per interval");
}

#[test]
fn a_peer_that_never_reads_is_cut_off_at_the_output_cap() {
    let server = Serve::start(&["--max-output", "65536"]);
    let mut bystander = server.connect();
    let mut hog = server.connect();
    hog.stream
        .set_write_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let ping = format!("PING {}\n", "t".repeat(1000));
    let start = Instant::now();
    // Write pings and never read the pongs: the kernel buffers fill, then
    // the server's per-connection output grows past the cap.
    while start.elapsed() < Duration::from_secs(20) {
        if hog.stream.write_all(ping.as_bytes()).is_err() {
            break;
        }
        if server
            .log()
            .iter()
            .any(|l| l.contains("offline: output-overflow"))
        {
            break;
        }
    }
    server.wait_log("offline: output-overflow");
    assert_eq!(bystander.ask("PING\n"), "PONG");
}

#[test]
fn shutdown_says_bye_to_everyone_and_exits_zero() {
    let server = Serve::start(&[]);
    let mut peers: Vec<Peer> = (0..20).map(|_| server.connect()).collect();
    for (i, p) in peers.iter_mut().enumerate() {
        assert!(p.ask(&format!("HELLO p{i}\n")).starts_with("WELCOME"));
    }
    let (status, log) = server.stop();
    assert!(status.success(), "{status:?}");
    for p in &mut peers {
        p.expect_bye("shutdown");
    }
    assert!(
        log.iter().any(|l| l.contains("received signal 15")),
        "{log:#?}"
    );
    let last_stats = log.iter().rev().find(|l| l.contains("stats:")).unwrap();
    assert!(last_stats.contains("shutdown=20"), "{last_stats}");
}

#[test]
fn sigint_also_shuts_down_gracefully() {
    let server = Serve::start(&[]);
    let mut peer = server.connect();
    assert_eq!(peer.ask("PING\n"), "PONG");
    server.signal(libc::SIGINT);
    peer.expect_bye("shutdown");
}

#[test]
fn the_events_file_has_one_online_and_one_offline_per_connection() {
    let dir = std::env::temp_dir().join(format!("vigil-events-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("events.jsonl");
    let _ = std::fs::remove_file(&path);
    let server = Serve::start(&[
        "--events",
        path.to_str().unwrap(),
        "--timeout",
        "1000ms",
        "--tick",
        "20ms",
        "--max-line",
        "32",
        "--max-conns",
        "6",
    ]);
    // One connection for each way of going offline.
    let mut timed_out = server.connect();
    timed_out.expect_bye("timeout");
    let mut replaced = server.connect();
    assert!(replaced.ask("HELLO twin\n").starts_with("WELCOME"));
    let mut taker = server.connect();
    assert!(taker.ask("HELLO twin\n").starts_with("WELCOME"));
    replaced.expect_bye("replaced");
    let mut too_long = server.connect();
    too_long.send(&[b'x'; 64]);
    too_long.expect_bye("line-too-long");
    let mut bad = server.connect();
    bad.send(b"HELLO\n");
    bad.expect_bye("bad-frame");
    assert_eq!(taker.ask("PING\n"), "PONG");
    let mut leaver = server.connect();
    assert_eq!(leaver.ask("PING\n"), "PONG");
    drop(leaver);
    server.wait_log("offline: closed");
    // Fill the server up: `taker` and five more is the most it takes.
    let fillers: Vec<Peer> = (0..5).map(|_| server.connect()).collect();
    let mut refused = server.connect();
    refused.expect_bye("overloaded");
    assert_eq!(taker.ask("PING\n"), "PONG");
    drop(fillers);
    let (status, _) = server.stop();
    assert!(status.success());
    taker.expect_bye("shutdown");

    let events = parse_events(&std::fs::read_to_string(&path).unwrap());
    let mut conns: Vec<u64> = events.iter().map(|e| e.conn).collect();
    conns.sort_unstable();
    conns.dedup();
    assert_eq!(conns.len(), 12, "{events:#?}");
    let mut reasons = Vec::new();
    for c in &conns {
        let of = |kind: &str| {
            events
                .iter()
                .filter(|e| e.conn == *c && e.event == kind)
                .count()
        };
        assert_eq!(
            (of("online"), of("offline")),
            (1, 1),
            "conn {c}: {events:#?}"
        );
        let online = events
            .iter()
            .position(|e| e.conn == *c && e.event == "online");
        let offline = events
            .iter()
            .position(|e| e.conn == *c && e.event == "offline");
        assert!(online < offline, "conn {c} went offline before online");
        let off = &events[offline.unwrap()];
        reasons.push(off.reason.clone().unwrap());
    }
    for expected in [
        "timeout",
        "replaced",
        "line-too-long",
        "bad-frame",
        "closed",
        "overloaded",
        "shutdown",
    ] {
        assert!(
            reasons.iter().any(|r| r == expected),
            "no {expected} in {reasons:?}"
        );
    }
    let twin: Vec<_> = events
        .iter()
        .filter(|e| e.client.as_deref() == Some("twin"))
        .collect();
    assert_eq!(twin.iter().filter(|e| e.event == "hello").count(), 2);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn out_of_file_descriptors_neither_spins_nor_stops_the_server() {
    // A hard limit of 48 descriptors; --max-conns above it, so accept()
    // itself runs into EMFILE.
    let server = Serve::start_with(&["--max-conns", "1000", "--stats-interval", "0ms"], |cmd| {
        use std::os::unix::process::CommandExt;
        // SAFETY: setrlimit is async-signal-safe; nothing else runs here.
        unsafe {
            cmd.pre_exec(|| {
                let lim = libc::rlimit {
                    rlim_cur: 48,
                    rlim_max: 48,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    });
    let mut peers = Vec::new();
    let mut refused = 0;
    for _ in 0..80 {
        let mut p = server.connect();
        p.send(b"PING\n");
        match p.line().as_deref() {
            Some("PONG") => peers.push(p),
            Some("BYE overloaded") | None => refused += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(
        refused > 0 && peers.len() > 20,
        "served {} refused {refused}",
        peers.len()
    );
    server.wait_log("Too many open files");
    // Idle with the backlog drained: no busy loop.
    let before = server.cpu_time();
    thread::sleep(Duration::from_millis(1000));
    let spent = server.cpu_time() - before;
    assert!(
        spent < Duration::from_millis(300),
        "the server spins: {spent:?} of CPU in 1 s"
    );
    // Existing clients are still served, and a freed descriptor is used again.
    for p in &mut peers {
        assert_eq!(p.ask("PING\n"), "PONG");
    }
    peers.truncate(peers.len() - 5);
    eventually("a freed descriptor to serve a new client", || {
        let mut p = server.connect();
        p.send(b"PING\n");
        p.line().as_deref() == Some("PONG")
    });
}

/// Set to skip the IPv6 test knowingly, on a machine without IPv6.
const SKIP_IPV6: &str = "VIGIL_TEST_SKIP_IPV6";

/// Makes sure this machine has an IPv6 loopback (as root, by turning it on
/// and giving `lo` the address `::1`), and fails saying how to skip when it
/// cannot: a test that skips itself quietly would pass without testing.
/// Returns false only when [`SKIP_IPV6`] is set.
fn ipv6_loopback() -> bool {
    let works = || std::net::TcpListener::bind("[::1]:0").is_ok();
    if works() {
        return true;
    }
    if std::env::var_os(SKIP_IPV6).is_some() {
        eprintln!("SKIPPED listens_on_ipv6: no IPv6 loopback here, and {SKIP_IPV6} is set");
        return false;
    }
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let mut tried = Vec::new();
    if root {
        for (program, args) in [
            ("sysctl", &["-qw", "net.ipv6.conf.lo.disable_ipv6=0"][..]),
            ("ip", &["-6", "addr", "add", "::1/128", "dev", "lo"][..]),
        ] {
            let out = std::process::Command::new(program).args(args).output();
            tried.push(format!("`{program} {}`: {out:?}", args.join(" ")));
        }
    }
    assert!(
        works(),
        "no IPv6 loopback (::1) on this machine{}. Turn it on (as root: \
         `sysctl -w net.ipv6.conf.lo.disable_ipv6=0; ip -6 addr add ::1/128 dev lo`), \
         or set {SKIP_IPV6}=1 to skip this test knowingly. Tried: {tried:#?}",
        if root {
            ", and setting it up failed"
        } else {
            " (not root, so not set up)"
        }
    );
    true
}

#[test]
fn listens_on_ipv6() {
    if !ipv6_loopback() {
        return;
    }
    let server = Serve::start(&["--listen", "[::1]:0"]);
    assert!(server.addr.is_ipv6());
    let mut peer = server.connect();
    assert_eq!(peer.ask("PING v6\n"), "PONG v6");
}

#[test]
fn bad_flags_are_refused_with_a_clear_message() {
    for (args, needle) in [
        (&["--timeout", "10"][..], "invalid duration"),
        (&["--tick", "0ms"][..], "tick"),
        (&["--listen", "nonsense"][..], "nonsense"),
        (&["--max-line", "0"][..], "--max-line"),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
            .arg("serve")
            .args(args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?} is a usage error: {err}"
        );
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}

#[test]
fn runtime_errors_exit_1_usage_errors_2_from_flags_or_the_environment() {
    let vigil = || {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_vigil"));
        cmd.stdin(std::process::Stdio::null());
        cmd
    };
    // An address already in use is not the user's typing: 1.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = vigil().args(["serve", "--listen", &addr]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(&addr), "{err}");
    // The same checks apply to values from the environment.
    for (var, value, needle) in [
        ("VIGIL_LISTEN", "nonsense", "nonsense"),
        ("VIGIL_TIMEOUT", "10", "invalid duration"),
        ("VIGIL_MAX_LINE", "0", "at least 1"),
        ("VIGIL_EVENTS_QUEUE", "10", "at least 1024"),
        ("VIGIL_LOG_FORMAT", "xml", "xml"),
    ] {
        let out = vigil().arg("serve").env(var, value).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{var}={value}: {err}");
        assert!(err.contains(needle), "{var}={value}: {err}");
    }
    for args in [&["client", "--id", "x"][..], &["load", "--conns", "1"][..]] {
        let out = vigil().args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
}

#[test]
fn flags_come_from_the_environment_and_durations_read_like_people_write_them() {
    let server = Serve::start_with(&[], |cmd| {
        cmd.env("VIGIL_TIMEOUT", "1h30m")
            .env("VIGIL_INTERVAL", "1.5s");
    });
    let mut peer = server.connect();
    assert_eq!(
        peer.ask("HELLO env\n"),
        "WELCOME env interval=1500 timeout=5400000"
    );
    // A flag given on the command line wins over the environment.
    let server = Serve::start_with(&["--timeout", "2s"], |cmd| {
        cmd.env("VIGIL_TIMEOUT", "1h30m");
    });
    let mut peer = server.connect();
    assert!(peer.ask("HELLO flag\n").ends_with("timeout=2000"));
}

#[test]
fn out_of_range_durations_are_usage_errors_not_panics() {
    // u64::MAX milliseconds once overflowed the deadline arithmetic (a panic
    // in a debug build, or a server that never stops logging stats); every
    // duration flag now stops at a year, and clap says which flag is wrong.
    for flag in [
        "--timeout",
        "--interval",
        "--tick",
        "--stats-interval",
        "--tcp-user-timeout",
    ] {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                flag,
                "18446744073709551615ms",
            ])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // A server that accepted the flag would run: stop it and fail.
        let started = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if started.elapsed() > util::PATIENCE {
                child.kill().unwrap();
                child.wait().unwrap();
                panic!("{flag} 18446744073709551615ms was accepted: the server ran");
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let mut err = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
        assert_eq!(status.code(), Some(2), "{flag}: {err}");
        assert!(!err.contains("panicked"), "{flag}: {err}");
        assert!(
            err.contains(&format!("for '{flag} <")),
            "{flag} is named: {err}"
        );
        assert!(err.contains("too long: at most 525600m"), "{flag}: {err}");
    }
}

/// The calendar year the test machine's wall clock says it is.
fn this_year() -> i32 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    1970 + (secs / 31_557_600) as i32
}

/// What a command prints on stdout; empty when it cannot run.
fn stdout_of(cmd: &mut std::process::Command) -> String {
    cmd.stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// The `LD_PRELOAD` value that loads libfaketime, which moves the wall
/// clock of the process it is loaded into. Where it lives depends on the
/// distribution and the architecture, so ask: dpkg (the `libfaketime`
/// package), the dynamic linker's cache, and the `faketime` wrapper (what it
/// preloads itself, which may hold ld.so's `$LIB`, and `../lib/faketime/`
/// beside it, where a source install puts it). The first that makes `date`
/// say it is five years from now is the one. None fails the test:
/// scripts/install-deps.sh installs it.
fn libfaketime() -> String {
    use std::process::Command;
    const LIB: &str = "/libfaketime.so.1";
    let mut candidates: Vec<String> = Vec::new();
    let dpkg = stdout_of(Command::new("dpkg").args(["-L", "libfaketime"]));
    candidates.extend(dpkg.lines().filter(|l| l.ends_with(LIB)).map(str::to_owned));
    let cache = stdout_of(Command::new("ldconfig").arg("-p"));
    candidates.extend(
        cache
            .lines()
            .filter(|l| l.trim_start().starts_with(&LIB[1..]))
            .filter_map(|l| l.split("=> ").nth(1))
            .map(|p| p.trim().to_owned()),
    );
    let preloaded = stdout_of(Command::new("faketime").args([
        "-f",
        "+0 x1",
        "sh",
        "-c",
        "printf %s \"$LD_PRELOAD\"",
    ]));
    candidates.extend(
        preloaded
            .split([':', ' '])
            .filter(|p| p.ends_with(LIB))
            .map(str::to_owned),
    );
    let wrapper = stdout_of(Command::new("sh").args(["-c", "command -v faketime"]));
    if let Some(prefix) = std::path::Path::new(wrapper.trim())
        .parent()
        .and_then(|bin| bin.parent())
    {
        candidates.push(format!("{}/lib/faketime{LIB}", prefix.display()));
    }
    let year = this_year();
    let works = |preload: &String| {
        let faked = stdout_of(
            Command::new("date")
                .arg("+%Y")
                .env("LD_PRELOAD", preload)
                .env("FAKETIME", "+5y"),
        );
        faked.trim().parse::<i32>().is_ok_and(|y| y >= year + 4)
    };
    candidates
        .iter()
        .find(|c| works(c))
        .cloned()
        .unwrap_or_else(|| {
            panic!(
                "libfaketime is not installed, or does not work: run scripts/install-deps.sh \
             (scripts/test.sh does). Tried (from dpkg -L libfaketime, ldconfig -p and the \
             faketime wrapper): {candidates:#?}"
            )
        })
}

#[test]
fn changing_the_system_date_moves_no_deadline() {
    // The server's wall clock starts five years ahead and runs a hundred
    // times too fast; its monotonic clock is left alone. Deadlines must
    // follow the monotonic clock only.
    let dir = std::env::temp_dir().join(format!("vigil-date-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let events = dir.join("events.jsonl");
    let args = [
        "--timeout",
        "1s",
        "--interval",
        "500ms",
        "--tick",
        "50ms",
        "--events",
        events.to_str().unwrap(),
    ];
    let server = Serve::start_with(&args, |cmd| {
        cmd.env("LD_PRELOAD", libfaketime())
            .env("FAKETIME", "+5y x100")
            .env("FAKETIME_DONT_FAKE_MONOTONIC", "1");
    });
    let mut beating = server.connect();
    assert!(beating.ask("HELLO steady\n").starts_with("WELCOME"));
    // The clock starts before the connection, so before the server can
    // have started its own.
    let silent_start = Instant::now();
    let mut silent = server.connect();
    let silent_closed = thread::spawn(move || {
        silent.expect_bye("timeout");
        silent_start.elapsed()
    });
    // 3 s of real time is 300 s of this server's wall clock.
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(3) {
        thread::sleep(Duration::from_millis(300));
        assert_eq!(beating.ask("PING\n"), "PONG");
    }
    // The silent one went at its real timeout, not 100 times sooner.
    let after = silent_closed.join().unwrap();
    assert!(after >= Duration::from_secs(1), "closed early: {after:?}");
    assert!(
        after <= Duration::from_millis(1000 + 2 * 50 + 100),
        "closed late: {after:?}"
    );
    let (status, _) = server.stop();
    assert!(status.success());
    let text = std::fs::read_to_string(&events).unwrap();
    let seen = parse_events(&text);
    let offline: Vec<_> = seen.iter().filter(|e| e.event == "offline").collect();
    assert_eq!(offline.len(), 2, "{seen:#?}");
    assert_eq!(offline[0].reason.as_deref(), Some("timeout"));
    assert_eq!(offline[1].reason.as_deref(), Some("shutdown"));
    // The fake date took effect: the events are stamped years ahead.
    let year: i32 = text[9..13].parse().unwrap();
    assert!(
        year >= this_year() + 4,
        "events not stamped by the fake clock: {text}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The φ detector on a real server: a client beating every 100 ms for 2 s
/// is never closed while it beats, and once silent is closed well before
/// the fixed timeout (here 3 s), but never sooner than its mean interval.
/// The same traffic against `--detector fixed` waits the whole timeout.
#[test]
fn the_phi_detector_gives_up_sooner_on_a_regular_client() {
    let mut waited = Vec::new();
    for detector in ["phi:8,min-std=20ms", "fixed"] {
        let server = Serve::start(&[
            "--timeout",
            "3s",
            "--interval",
            "100ms",
            "--tick",
            "10ms",
            "--detector",
            detector,
        ]);
        let mut peer = server.connect();
        assert!(peer.ask("HELLO regular\n").starts_with("WELCOME regular"));
        for seq in 1..=20 {
            thread::sleep(Duration::from_millis(100));
            assert_eq!(peer.ask(&format!("PING {seq}\n")), format!("PONG {seq}"));
        }
        let silent_since = Instant::now();
        peer.expect_bye("timeout");
        waited.push(silent_since.elapsed());
        server.wait_log("offline: timeout");
        assert_eq!(
            server
                .log()
                .iter()
                .filter(|l| l.contains("offline"))
                .count(),
            1
        );
    }
    let (phi, fixed) = (waited[0], waited[1]);
    println!("silent to BYE: phi {phi:?}, fixed {fixed:?}");
    // φ: the mean interval (~100 ms) plus 5.2 σ (σ ≥ 20 ms) plus a tick
    // and this machine's scheduling; fixed: the 3 s timeout.
    assert!(phi >= Duration::from_millis(100), "{phi:?}");
    assert!(phi < Duration::from_millis(1500), "{phi:?}");
    assert!(fixed >= Duration::from_secs(3), "{fixed:?}");
}
