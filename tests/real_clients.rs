//! Clients nobody here wrote: redis-cli and redis-benchmark against
//! `vigil serve --protocol resp`, and the seed's select() C client, compiled
//! with gcc, against `--protocol raw`. The test script installs them
//! (scripts/install-deps.sh); a missing tool fails the test, it does not
//! skip it.

mod util;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use util::{parse_events, Serve};

#[track_caller]
fn tool(name: &str) -> PathBuf {
    let out = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .unwrap();
    let path = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(
        out.status.success() && !path.is_empty(),
        "{name} is not installed: run scripts/install-deps.sh (scripts/test.sh does)"
    );
    PathBuf::from(path)
}

fn redis_cli(port: u16, args: &[&str]) -> String {
    let out = Command::new(tool("redis-cli"))
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "redis-cli {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn redis_cli_pings_vigil() {
    let server = Serve::start(&["--protocol", "resp"]);
    let port = server.addr.port();
    assert_eq!(redis_cli(port, &["ping"]), "PONG");
    assert_eq!(redis_cli(port, &["ping", "hello there"]), "hello there");
    assert_eq!(redis_cli(port, &["client", "setname", "dev-1"]), "OK");
    assert_eq!(redis_cli(port, &["get", "x"]), "ERR unknown command 'get'");
}

#[test]
fn redis_benchmark_runs_against_vigil_with_zero_errors() {
    let server = Serve::start(&["--protocol", "resp"]);
    let out = Command::new(tool("redis-benchmark"))
        .args(["-h", "127.0.0.1", "-p", &server.addr.port().to_string()])
        .args([
            "-t",
            "ping_inline,ping_mbulk",
            "-n",
            "20000",
            "-c",
            "20",
            "-P",
            "4",
            "--csv",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    for test in ["PING_INLINE", "PING_MBULK"] {
        let row = stdout
            .lines()
            .find(|l| l.starts_with(&format!("\"{test}\"")))
            .unwrap_or_else(|| panic!("no {test} result in {stdout}"));
        let rps: f64 = row
            .split(',')
            .nth(1)
            .unwrap()
            .trim_matches('"')
            .parse()
            .unwrap();
        assert!(rps > 0.0, "{row}");
    }
    assert!(
        !stdout.contains("Error") && !stderr.contains("Error from server"),
        "{stdout}\n{stderr}"
    );
    // Every connection redis-benchmark made ended with its own close: no
    // protocol error, no overflow, no timeout.
    let (status, log) = server.stop();
    assert!(status.success());
    let stats = log.iter().rev().find(|l| l.contains("stats:")).unwrap();
    for bad in [
        "line-too-long",
        "bad-frame",
        "output-overflow",
        "timeout=",
        "reset=",
    ] {
        assert!(!stats.contains(bad), "{stats}");
    }
}

/// The committed copy of the seed's C client, checked against the seed
/// itself when the seeds are beside the checkout (as in CI).
fn seed_client_source() -> PathBuf {
    let copy = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/seed002_client.c");
    let seed =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/seeds/002_213ef884f9e357a4.txt");
    if let Ok(seed) = std::fs::read_to_string(&seed) {
        let lines: Vec<&str> = seed.lines().collect();
        let start = lines
            .iter()
            .position(|l| l.trim() == "#include <sys/types.h>")
            .unwrap();
        let end = lines.iter().rposition(|l| l.trim_end() == "\t}").unwrap();
        let extracted: Vec<&str> = lines[start..=end]
            .iter()
            .map(|l| l.strip_prefix('\t').unwrap_or(l))
            .collect();
        let extracted = extracted.join("\n").replace("port = 80;", "port = PORT;");
        let copy_text = std::fs::read_to_string(&copy).unwrap();
        assert!(
            copy_text.ends_with(&format!("{extracted}\n")),
            "tests/data/seed002_client.c no longer matches the seed"
        );
    }
    copy
}

#[test]
fn the_seeds_select_client_stays_online_over_raw_and_goes_offline_when_killed() {
    let dir = std::env::temp_dir().join(format!("vigil-seed-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let events = dir.join("events.jsonl");
    // The client beats after 2 s of idle stdin: a 3 s timeout means a
    // missed beat would show.
    let server = Serve::start(&[
        "--protocol",
        "raw",
        "--interval",
        "2s",
        "--timeout",
        "3s",
        "--events",
        events.to_str().unwrap(),
    ]);
    let binary = dir.join("seed-client");
    let gcc = Command::new(tool("gcc"))
        .arg(format!("-DPORT={}", server.addr.port()))
        .arg("-w")
        .arg("-o")
        .arg(&binary)
        .arg(seed_client_source())
        .output()
        .unwrap();
    assert!(gcc.status.success(), "{gcc:?}");
    // Its stdin must stay open and quiet: at end of input the seed client
    // sends a byte per loop forever.
    let mut client = Command::new(&binary)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    // Three of its heartbeat periods, and a little more.
    thread::sleep(Duration::from_millis(6_800));
    let text = std::fs::read_to_string(&events).unwrap_or_default();
    let seen = parse_events(&text);
    assert_eq!(seen.len(), 1, "only the online event so far: {seen:#?}");
    assert_eq!(seen[0].event, "online");
    client.kill().unwrap();
    client.wait().unwrap();
    // The seed client never reads its socket (its select() watches stdin
    // only), so the server's acknowledgements sit unread in its receive
    // queue, and a kernel closing a socket with unread data sends RST, not
    // FIN: the server sees the connection reset, and says so.
    server.wait_log("offline: reset");
    let seen = parse_events(&std::fs::read_to_string(&events).unwrap());
    assert_eq!(seen.len(), 2, "{seen:#?}");
    assert_eq!(
        (seen[1].event.as_str(), seen[1].reason.as_deref()),
        ("offline", Some("reset"))
    );
    assert!(start.elapsed() >= Duration::from_secs(6));
    let (_, log) = server.stop();
    let stats = log.iter().rev().find(|l| l.contains("stats:")).unwrap();
    assert!(!stats.contains("timeout="), "{stats}");
    std::fs::remove_dir_all(&dir).unwrap();
}
