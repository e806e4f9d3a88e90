//! `vigil client` against `vigil serve`: real processes, real sockets.

mod util;

use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use util::{eventually, parse_events, LogChild, Serve};

/// Starts `vigil client --server SERVERS --id ID --quiet EXTRA...`, its log
/// watched; killed when dropped.
fn start_client(servers: &str, id: &str, extra: &[&str]) -> LogChild {
    LogChild::spawn(
        &format!("vigil client {id}"),
        Command::new(env!("CARGO_BIN_EXE_vigil"))
            .args(["client", "--server", servers, "--id", id, "--quiet"])
            .args(extra)
            .env("RUST_LOG", "debug")
            // stdin stays open (and silent) for the client's whole life.
            .stdin(Stdio::piped())
            .stdout(Stdio::null()),
    )
}

#[test]
fn the_client_keeps_its_session_alive_for_ten_intervals() {
    let server = Serve::start(&[
        "--interval",
        "300ms",
        "--timeout",
        "450ms",
        "--tick",
        "20ms",
    ]);
    let client = start_client(&server.addr.to_string(), "steady", &[]);
    client.wait_for("welcomed by", util::ever());
    thread::sleep(Duration::from_millis(3_300));
    assert!(client.count("pong ") >= 10, "{:#?}", client.lines());
    assert_eq!(client.count("WARN"), 0, "{:#?}", client.lines());
    assert!(
        !server.log().iter().any(|l| l.contains("offline")),
        "{:#?}",
        server.log()
    );
}

#[test]
fn a_frozen_server_is_declared_dead_and_the_client_fails_over() {
    let (interval, reply_timeout) = (Duration::from_millis(500), Duration::from_millis(500));
    let a = Serve::start(&["--interval", "500ms", "--timeout", "2s"]);
    let b = Serve::start(&["--interval", "500ms", "--timeout", "2s"]);
    let servers = format!("{},{}", a.addr, b.addr);
    let client = start_client(&servers, "roamer", &["--timeout", "500ms"]);
    let t0 = util::ever();
    client.wait_for(&format!("welcomed by {}", a.addr), t0);
    client.wait_for("pong 1:", t0);
    // Freeze A: its kernel still accepts and acknowledges, its loop is gone.
    a.signal(libc::SIGSTOP);
    let frozen = Instant::now();
    // Whichever check fires first: the unanswered PING, or the silence
    // backstop (nothing received for interval + timeout).
    let declared = client.wait_for_any(&["ping-timeout:", "silent:"], frozen, util::PATIENCE);
    let took = declared - frozen;
    assert!(
        took <= interval + reply_timeout + Duration::from_millis(150),
        "declared dead after {took:?}"
    );
    client.wait_for(&format!("welcomed by {}", b.addr), frozen);
    a.signal(libc::SIGCONT);
}

#[test]
fn killed_servers_clients_come_back_with_spread_out_reconnects() {
    const CLIENTS: usize = 20;
    let first = Serve::start(&["--interval", "1s", "--timeout", "3s"]);
    let addr = first.addr;
    let clients: Vec<LogChild> = (0..CLIENTS)
        .map(|i| start_client(&addr.to_string(), &format!("c{i}"), &[]))
        .collect();
    for c in &clients {
        c.wait_for("welcomed by", util::ever());
    }
    // Kill the server outright, leave it dead for a while, bring it back on
    // the same port, and record when each client comes back.
    first.signal(libc::SIGKILL);
    drop(first);
    thread::sleep(Duration::from_millis(1_500));
    let dir = std::env::temp_dir().join(format!("vigil-reconnect-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let events = dir.join("events.jsonl");
    let _ = std::fs::remove_file(&events);
    let port = addr.port().to_string();
    let listen = format!("127.0.0.1:{port}");
    // Stamp first: a client may be welcomed before this thread sees the
    // new server's "listening" line.
    let back = Instant::now();
    let second = Serve::start(&["--listen", &listen, "--events", events.to_str().unwrap()]);
    for c in &clients {
        c.wait_for("welcomed by", back);
    }
    let (status, _) = second.stop();
    assert!(status.success());
    let hellos: Vec<String> = std::fs::read_to_string(&events)
        .unwrap()
        .lines()
        .filter(|l| l.contains("\"event\":\"hello\""))
        .map(str::to_owned)
        .collect();
    assert_eq!(parse_events(&hellos.join("\n")).len(), CLIENTS);
    // The spread of the reconnects, from the clients' own log stamps.
    let mut times: Vec<Duration> = clients
        .iter()
        .map(|c| c.wait_for("welcomed by", back) - back)
        .collect();
    times.sort();
    let spread = times[CLIENTS - 1] - times[0];
    eprintln!(
        "reconnects after the restart: first {:?}, last {:?}, spread {spread:?}",
        times[0],
        times[CLIENTS - 1]
    );
    // Full jitter over a ceiling that has grown to hundreds of ms: the
    // clients must not arrive in one burst.
    assert!(
        spread >= Duration::from_millis(100),
        "reconnects bunched: {times:?}"
    );
    let within_10ms = times
        .windows(5)
        .filter(|w| w[4] - w[0] <= Duration::from_millis(10))
        .count();
    assert!(within_10ms < CLIENTS / 2, "reconnects bunched: {times:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_client_exits_cleanly_on_sigint_and_on_end_of_input() {
    let server = Serve::start(&[]);
    let mut client = start_client(&server.addr.to_string(), "polite", &[]);
    client.wait_for("welcomed by", util::ever());
    client.signal(libc::SIGINT);
    eventually("the client to exit", || {
        client.child().try_wait().unwrap().is_some()
    });
    assert!(client.child().wait().unwrap().success());
    server.wait_log("offline: closed (peer");

    let mut client = start_client(&server.addr.to_string(), "eof", &[]);
    client.wait_for("welcomed by", util::ever());
    drop(client.child().stdin.take());
    eventually("the client to exit", || {
        client.child().try_wait().unwrap().is_some()
    });
    assert!(client.child().wait().unwrap().success());
}

#[test]
fn a_bad_client_id_is_refused_at_start() {
    let out = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["client", "--server", "127.0.0.1:1", "--id", "has space"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("client id"),
        "{out:?}"
    );
}
