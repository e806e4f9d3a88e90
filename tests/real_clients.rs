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
    // The events file is written by the server's writer thread, a moment
    // after the log line.
    util::eventually("the offline event in the file", || {
        parse_events(&std::fs::read_to_string(&events).unwrap_or_default()).len() >= 2
    });
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

// ---- redis-py and redis-cli -3: the Redis handshake ------------------------

/// The Python of the redis-py venv that scripts/install-deps.sh makes.
#[track_caller]
fn redis_py() -> PathBuf {
    util::venv_python("redis-py")
}

/// Runs `script` with redis-py against port `port`; returns its stdout.
#[track_caller]
fn run_redis_py(port: u16, script: &str) -> String {
    let mut child = Command::new(redis_py())
        .args(["-c", script, &port.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("redis-py script still running after 60 s");
        }
        thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "redis-py failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Events of a finished server, from its `--events` file.
fn events_of(path: &Path) -> Vec<util::EventLine> {
    parse_events(&std::fs::read_to_string(path).unwrap())
}

#[test]
fn redis_py_connects_with_its_defaults_pings_pipelines_and_names_itself() {
    let scratch = Scratch::new("redis-py");
    let events = scratch.0.join("events.jsonl");
    let server = Serve::start(&["--protocol", "resp", "--events", events.to_str().unwrap()]);
    // Everything at redis-py's defaults (RESP3: it opens with HELLO 3),
    // except the pipeline's transaction, which needs MULTI/EXEC.
    let out = run_redis_py(
        server.addr.port(),
        r#"
import sys, redis
port = int(sys.argv[1])
r = redis.Redis(host="127.0.0.1", port=port)
print("version", redis.__version__.split(".")[0])
print("ping", r.ping())
conn = r.connection_pool.get_connection()
print("proto", conn.handshake_metadata[b"proto"], conn.handshake_metadata[b"server"])
r.connection_pool.release(conn)
pipe = r.pipeline(transaction=False)
for _ in range(1000):
    pipe.ping()
replies = pipe.execute()
print("pipeline", len(replies), all(x is True for x in replies))
print("getname", r.client_getname())
print("setname", r.client_setname("py-dev"))
print("getname", r.client_getname())
print("echo", r.echo("hi there"))
print("select", r.execute_command("SELECT", 0))
info = r.info()
print("info", "vigil_version" in info, info["redis_mode"])
try:
    r.get("k")
except redis.ResponseError as e:
    print("get", e)
two = redis.Redis(host="127.0.0.1", port=port, protocol=2, client_name="py-two")
print("resp2", two.ping(), two.client_getname())
authed = redis.Redis(host="127.0.0.1", port=port, password="tok", client_name="py-auth")
print("auth", authed.ping(), authed.client_getname())
"#,
    );
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        ["version 8", "version 9"].contains(&lines[0]),
        "redis-py {}",
        lines[0]
    );
    assert_eq!(
        lines[1..],
        [
            "ping True",
            "proto 3 b'vigil'",
            "pipeline 1000 True",
            "getname None",
            "setname True",
            "getname py-dev",
            "echo b'hi there'",
            "select True",
            "info True standalone",
            "get unknown command 'GET'",
            "resp2 True py-two",
            "auth True py-auth",
        ]
    );
    let (status, _) = server.stop();
    assert!(status.success());
    let hellos: Vec<String> = events_of(&events)
        .into_iter()
        .filter(|e| e.event == "hello")
        .filter_map(|e| e.client)
        .collect();
    assert_eq!(hellos, ["py-dev", "py-two", "py-auth"]);
}

/// `redis-cli -3` with `commands` on its standard input, one per line.
fn redis_cli_3(port: u16, commands: &str) -> String {
    let mut child = Command::new(tool("redis-cli"))
        .args(["-3", "-h", "127.0.0.1", "-p", &port.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(commands.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "redis-cli -3: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn redis_cli_3_negotiates_resp3_and_gets_resp3_replies() {
    let server = Serve::start(&["--protocol", "resp"]);
    let port = server.addr.port();
    // redis-cli -3 opens with HELLO 3 itself and fails to connect on an error.
    let out = redis_cli_3(
        port,
        "ping\nclient getname\nclient setname cli-3\nclient getname\nhello\nhello 2\necho hi\n",
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[..4], ["PONG", "", "OK", "cli-3"], "{out}");
    // A RESP3 map prints as "key value" lines; after HELLO 2 the same
    // answer is a RESP2 array, one element per line.
    let map = lines.iter().position(|l| *l == "server vigil").expect(&out);
    assert_eq!(lines[map + 2], "proto 3", "{out}");
    let array = lines.iter().position(|l| *l == "server").expect(&out);
    assert!(array > map, "{out}");
    assert_eq!(lines[array + 4..array + 6], ["proto", "2"], "{out}");
    assert_eq!(lines.last(), Some(&"hi"), "{out}");
    // The null of a RESP3 connection is `_`, RESP2's `$-1`, on the wire.
    let mut peer = server.connect();
    peer.send(b"HELLO 3\r\n");
    // The map ends with "modules", an empty array.
    let mut map = Vec::new();
    while map.last().map(String::as_str) != Some("*0\r") {
        map.push(peer.line().expect("the HELLO map"));
    }
    assert_eq!((map[0].as_str(), map.len()), ("%7\r", 26), "{map:?}");
    assert_eq!(peer.ask("CLIENT GETNAME\r\n"), "_\r");
    assert_eq!(peer.ask("RESET\r\n"), "+RESET\r");
    assert_eq!(peer.ask("CLIENT GETNAME\r\n"), "$-1\r");
}

#[test]
fn a_resp_multibulk_trickled_one_byte_per_write_costs_cpu_in_proportion_to_its_bytes() {
    use std::io::Write;
    let server = Serve::start(&["--protocol", "resp", "--timeout", "60s"]);
    // One 63 KB request of 9,000 small arguments, the costly shape to
    // re-walk (every header is read again), sent one byte per write; after
    // each byte a second connection's PING comes back, so the server (one
    // thread, events in order) has read that byte alone. Then the same
    // number of bytes as complete one-byte requests (empty lines), the
    // same way, for comparison.
    let mut request = b"*9000\r\n".to_vec();
    for _ in 0..9000 {
        request.extend_from_slice(b"$1\r\nx\r\n");
    }
    let baseline = vec![b'\n'; request.len()];
    let mut pacer = server.connect();
    let mut cpu = Vec::new();
    for (what, bytes) in [("baseline", &baseline), ("trickled", &request)] {
        let mut peer = server.connect();
        let before = server.cpu_time();
        let start = Instant::now();
        for b in bytes.iter() {
            peer.stream.write_all(std::slice::from_ref(b)).unwrap();
            assert_eq!(pacer.ask("PING\r\n"), "+PONG\r");
        }
        peer.send(b"PING\r\n");
        if what == "trickled" {
            let answer = peer.line().expect("the request's answer");
            assert_eq!(answer, "-ERR unknown command 'x'\r");
        }
        assert_eq!(peer.line().as_deref(), Some("+PONG\r"));
        let used = server.cpu_time() - before;
        eprintln!(
            "{what}: {} bytes in {:?}, server CPU {used:?}",
            bytes.len(),
            start.elapsed()
        );
        cpu.push(used);
    }
    // Proportional to bytes: no more than a few times what the same bytes
    // cost as complete requests. (Walking the request from its start on
    // every read, as before, took over 60 s here: the peer timed out.)
    assert!(
        cpu[1] <= cpu[0] * 3 + Duration::from_millis(300),
        "trickled {:?} vs baseline {:?}",
        cpu[1],
        cpu[0]
    );
}
