//! Every protocol end to end: `vigil client --protocol X` and
//! `vigil load --protocol X` against `vigil serve --protocol X`, real
//! processes on 127.0.0.1, bounded in time.

mod util;

use std::process::{Command, Stdio};
use std::thread;
use std::time::Duration;

use util::{load, parse_events, LogChild, Serve};

/// Generous bound for a run of a few seconds on a busy CI machine.
const WITHIN: Duration = Duration::from_secs(40);

/// The server's interval; clients of protocols whose server does not say
/// it beat a little slower (the raw server acknowledges once per interval).
const SERVER_INTERVAL: &str = "300ms";
const CLIENT_INTERVAL: &str = "350ms";

/// `--interval` for a client of `protocol`: none where the server's
/// WELCOME says it.
fn interval_flags(protocol: &str) -> Vec<&'static str> {
    match protocol {
        "resp" | "raw" => vec!["--interval", CLIENT_INTERVAL],
        _ => vec![],
    }
}

fn serve(protocol: &str, events: &std::path::Path) -> Serve {
    // WebSocket is a listener's scheme, not a --protocol.
    let ws = protocol == "ws";
    let (flag, value) = if ws {
        ("--listen", "ws://127.0.0.1:0")
    } else {
        ("--protocol", protocol)
    };
    Serve::start(&[
        flag,
        value,
        "--interval",
        SERVER_INTERVAL,
        "--timeout",
        "1s",
        "--events",
        events.to_str().unwrap(),
    ])
}

fn client(protocol: &str, addr: &str, id: &str) -> LogChild {
    LogChild::spawn(
        &format!("vigil client {protocol}"),
        Command::new(env!("CARGO_BIN_EXE_vigil"))
            .args(["client", "--server", addr, "--id", id, "--quiet"])
            .args(["--protocol", protocol])
            .args(interval_flags(protocol))
            .env("RUST_LOG", "debug")
            .stdin(Stdio::piped())
            .stdout(Stdio::null()),
    )
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("vigil-proto-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// One client, then a small load, against a server of `protocol`.
fn client_and_load(protocol: &str) {
    let dir = temp_dir(protocol);
    let events = dir.join("events.jsonl");
    let server = serve(protocol, &events);
    let addr = server.addr.to_string();

    let c = client(protocol, &addr, &format!("{protocol}-1"));
    let t0 = util::ever();
    c.wait_for("welcomed by", t0);
    c.wait_for("pong 4:", t0);
    assert_eq!(c.count("WARN"), 0, "{:#?}", c.lines());
    assert_eq!(c.count("ERROR"), 0, "{:#?}", c.lines());
    drop(c);

    let mut args = vec![
        "--server",
        &addr,
        "--protocol",
        protocol,
        "--conns",
        "30",
        "--connect-rate",
        "1000",
        "--interval",
        CLIENT_INTERVAL,
        "--duration",
        "2s",
        "--json",
    ];
    args.extend(["--id-prefix", "load-"]);
    let run = load(&args, WITHIN);
    let j = run.json();
    assert_eq!(j["errors"], 0, "{j}");
    assert_eq!(j["connections"]["welcomed"], 30, "{j}");
    let hb = &j["heartbeats"];
    let received = hb["received"].as_u64().unwrap();
    assert_eq!(hb["sent"].as_u64(), Some(received), "{j}");
    // 30 sessions, about 3 beats a second each, for 2 s and the ramp.
    assert!(received >= 30 * 4, "{j}");
    assert_eq!(
        j["latency_us"]["rtt"]["count"].as_u64(),
        Some(received),
        "{j}"
    );

    let (status, _) = server.stop();
    assert!(status.success());
    let text = std::fs::read_to_string(&events).unwrap();
    let events = parse_events(&text);
    let hellos = events.iter().filter(|e| e.event == "hello").count();
    match protocol {
        // No login: the server never learns a name.
        "raw" => assert_eq!(hellos, 0, "{text}"),
        // The client, then every load session, logged in by name.
        _ => assert_eq!(hellos, 31, "{text}"),
    }
    // Nobody was dropped for silence: every session beat in time.
    assert!(!text.contains("\"timeout\""), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn line() {
    client_and_load("line");
}

#[test]
fn resp() {
    client_and_load("resp");
}

#[test]
fn binary() {
    client_and_load("binary");
}

#[test]
fn raw() {
    client_and_load("raw");
}

#[test]
fn ws() {
    client_and_load("ws");
}

#[test]
fn a_protocol_without_an_interval_needs_one() {
    for protocol in ["resp", "raw"] {
        let out = Command::new(env!("CARGO_BIN_EXE_vigil"))
            .args(["client", "--server", "127.0.0.1:1", "--id", "x"])
            .args(["--protocol", protocol])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        // A usage error: exit 2, as for every subcommand.
        assert_eq!(out.status.code(), Some(2), "{protocol}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("give --interval"), "{protocol}: {err}");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args([
            "load",
            "--server",
            "127.0.0.1:1",
            "--conns",
            "1",
            "--protocol",
            "smtp",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("line, resp, binary, raw or ws"));
}

/// A client of the wrong protocol does not get far: a line client talking
/// to a binary server reads garbage and reconnects, it never hangs.
#[test]
fn the_wrong_protocol_fails_fast() {
    let dir = temp_dir("wrong");
    let server = serve("binary", &dir.join("events.jsonl"));
    let c = client("resp", &server.addr.to_string(), "wrong");
    // The binary server reads RESP as a frame with a huge length: it
    // closes the connection; the client reconnects and tries again.
    c.wait_for_any(
        &["server closed", "connection failed", "bad", "no-welcome"],
        util::ever(),
        util::PATIENCE,
    );
    thread::sleep(Duration::from_millis(200));
    assert_eq!(c.count("welcomed by"), 0, "{:#?}", c.lines());
    let _ = std::fs::remove_dir_all(&dir);
}
