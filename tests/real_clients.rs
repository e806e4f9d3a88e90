//! Real clients: redis-cli and redis-benchmark against `vigil serve
//! --protocol resp`, and select() C clients, compiled with gcc, against
//! `--protocol raw`: ours (`tests/data/select_client.c`) always, and the
//! seeds' own, taken from `../shared/seeds/` at test time, when the seeds are
//! beside the checkout. The test script installs the tools
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

/// A scratch directory for one test, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(what: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("vigil-{what}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Compiles one C file with gcc into `binary`; `flags` go before it.
#[track_caller]
fn compile_c(source: &Path, binary: &Path, flags: &[&str]) {
    let gcc = Command::new(tool("gcc"))
        .args(flags)
        .arg("-o")
        .arg(binary)
        .arg(source)
        .output()
        .unwrap();
    assert!(gcc.status.success(), "gcc {}: {gcc:?}", source.display());
}

/// A select() client that beats every 2 s of idle stdin and never reads its
/// socket, connected to a `vigil serve --protocol raw`: it stays online for
/// three of its heartbeat periods, and goes offline as `reset` once killed.
/// `client` starts it, given the server's port.
#[track_caller]
fn check_select_client(scratch: &Scratch, client: impl FnOnce(u16) -> Command) {
    let events = scratch.0.join("events.jsonl");
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
    // Its stdin stays open and quiet: every byte it sends is a heartbeat.
    let mut client = client(server.addr.port())
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
    assert!(
        client.try_wait().unwrap().is_none(),
        "the client exited on its own"
    );
    client.kill().unwrap();
    client.wait().unwrap();
    // The client never reads its socket (its select() watches stdin only),
    // so the server's acknowledgements sit unread in its receive queue, and
    // a kernel closing a socket with unread data sends RST, not FIN: the
    // server sees the connection reset, and says so.
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
}

#[test]
fn our_select_client_stays_online_over_raw_and_goes_offline_when_killed() {
    let scratch = Scratch::new("select-client");
    let binary = scratch.0.join("select_client");
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/select_client.c");
    compile_c(&source, &binary, &["-Wall", "-Wextra", "-Werror"]);
    check_select_client(&scratch, |port| {
        let mut cmd = Command::new(&binary);
        cmd.args(["127.0.0.1", &port.to_string()]);
        cmd
    });
}

/// The seeds, when they are beside the checkout (as in CI and on the
/// developers' machines).
fn seeds_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/seeds")
}

/// The C program in the seeds: the seed text that holds a select() client,
/// and in it the Markdown code block (lines indented by a tab) that starts
/// at its first `#include`, without that indent.
#[track_caller]
fn seed_c_client(seeds: &Path) -> String {
    let mut texts: Vec<(PathBuf, String)> = std::fs::read_dir(seeds)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter_map(|p| Some((p.clone(), std::fs::read_to_string(&p).ok()?)))
        .filter(|(_, t)| t.contains("#include <sys/socket.h>") && t.contains("select("))
        .collect();
    texts.sort();
    let (path, text) = texts.first().unwrap_or_else(|| {
        panic!(
            "{} is there but no seed in it holds the select() C client",
            seeds.display()
        )
    });
    let program: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("#include"))
        .take_while(|l| l.starts_with('\t') || l.trim().is_empty())
        .map(|l| l.strip_prefix('\t').unwrap_or(l))
        .collect();
    assert!(
        program.len() > 20 && program.iter().any(|l| l.contains("main(")),
        "no C program found in {}: {program:#?}",
        path.display()
    );
    program.join("\n") + "\n"
}

#[test]
fn the_seeds_own_select_client_behaves_the_same() {
    let seeds = seeds_dir();
    if !seeds.is_dir() {
        eprintln!(
            "SKIPPED the_seeds_own_select_client_behaves_the_same: {} is not there, so the seeds' \
             C client cannot be extracted; only our own select client was tested",
            seeds.display()
        );
        return;
    }
    let program = seed_c_client(&seeds);
    let scratch = Scratch::new("seed-client");
    let binary = scratch.0.join("seed_client");
    check_select_client(&scratch, |port| {
        // The seed's client knows only 127.0.0.1 port 80: give it ours.
        let fixed = "port = 80;";
        assert_eq!(
            program.matches(fixed).count(),
            1,
            "the seed's client no longer sets its port as `{fixed}`"
        );
        let source = scratch.0.join("seed_client.c");
        std::fs::write(&source, program.replace(fixed, &format!("port = {port};"))).unwrap();
        // It is someone else's code: its warnings are not ours to fix.
        compile_c(&source, &binary, &["-w"]);
        Command::new(&binary)
    });
}
