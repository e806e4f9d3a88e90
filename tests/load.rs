//! `vigil load` against real `vigil serve` processes on 127.0.0.1: clean
//! runs, several processes, servers that stop or die mid-run, source
//! addresses, and flags it must refuse. Every run is bounded in time.

mod util;

use std::collections::BTreeMap;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;
use util::{load, parse_events, Load, Serve};

/// Generous bound for a run of a few seconds on a busy CI machine.
const WITHIN: Duration = Duration::from_secs(40);

fn n(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

/// Percentiles are present, ordered, and the latency from the scheduled
/// send is never below the round trip (it includes it, ping by ping).
#[track_caller]
fn check_latency(j: &Value, count: u64) {
    let (s, r) = (&j["latency_us"]["scheduled"], &j["latency_us"]["rtt"]);
    for l in [s, r] {
        assert_eq!(n(&l["count"]), count, "{j}");
        let q: Vec<u64> = ["p50", "p99", "p99_9", "max"]
            .iter()
            .map(|k| n(&l[k]))
            .collect();
        assert!(q.windows(2).all(|w| w[0] <= w[1]), "{q:?}");
        assert!(q[0] > 0, "{q:?}");
    }
    for k in ["p50", "p99", "p99_9", "max"] {
        assert!(n(&s[k]) >= n(&r[k]), "{k}: {j}");
    }
}

/// The `--json` report of a run that had errors: it exits with status 3
/// (more errors than `--max-errors`, 0 by default), the report printed all
/// the same, and stderr says how many.
#[track_caller]
fn json_with_errors(run: &util::LoadRun) -> Value {
    assert_eq!(run.status.code(), Some(3), "{}", run.stderr);
    assert!(
        run.stderr.contains("more than --max-errors 0"),
        "{}",
        run.stderr
    );
    serde_json::from_str(run.stdout.trim()).unwrap_or_else(|e| panic!("{e}: {}", run.stdout))
}

/// The plain progress lines of a run's stderr (it is a pipe here).
fn progress_lines(stderr: &str) -> Vec<&str> {
    stderr.lines().filter(|l| l.contains(" hb/s ")).collect()
}

fn reasons(j: &Value, which: &str) -> BTreeMap<String, u64> {
    j[which]["by_reason"]
        .as_object()
        .unwrap_or_else(|| panic!("{which}: {j}"))
        .iter()
        .map(|(k, v)| (k.clone(), n(v)))
        .collect()
}

#[test]
fn two_hundred_sessions_for_three_seconds_have_no_errors() {
    let server = Serve::start(&["--interval", "1s", "--timeout", "3s"]);
    let addr = server.addr.to_string();
    let start = Instant::now();
    let run = load(
        &[
            "--server",
            &addr,
            "--conns",
            "200",
            "--connect-rate",
            "1000",
            "--interval",
            "500ms",
            "--duration",
            "3s",
            "--json",
        ],
        WITHIN,
    );
    let j = run.json();
    // Ramp (0.2 s + up to one interval of phase) + 3 s + the last replies.
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(n(&j["errors"]), 0, "{j}");
    assert_eq!(n(&j["connect_errors"]["total"]), 0, "{j}");
    assert_eq!(n(&j["closes"]["total"]), 0, "{j}");
    assert_eq!(n(&j["connections"]["connected"]), 200);
    assert_eq!(n(&j["connections"]["welcomed"]), 200);
    assert_eq!(n(&j["connections"]["online_at_end"]), 200);
    let hb = &j["heartbeats"];
    let (sent, received) = (n(&hb["sent"]), n(&hb["received"]));
    assert_eq!(n(&hb["missing"]), 0);
    assert_eq!(sent, received, "{j}");
    // Two beats a second for 3 s of hold and part of the ramp.
    assert!((1_100..=1_700).contains(&sent), "{sent}");
    let rate = hb["replies_per_s"].as_f64().unwrap();
    assert!((350.0..=450.0).contains(&rate), "{rate}");
    // The loop notices the end of the hold at its next wake-up.
    assert!((3000..3100).contains(&n(&j["hold_ms"])), "{j}");
    check_latency(&j, received);
    // On a pipe, progress comes as plain lines, about one a second, with
    // the errors and reconnects; no terminal control codes.
    let lines = progress_lines(&run.stderr);
    assert!((3..=8).contains(&lines.len()), "{}", run.stderr);
    assert!(
        lines
            .iter()
            .any(|l| l.contains(" hold ") && l.contains("online 200/200")),
        "{}",
        run.stderr
    );
    for l in &lines {
        assert!(l.ends_with("errors 0  reconnects 0"), "{l}");
        assert!(l.contains("p99 rtt "), "{l}");
    }
    assert!(!run.stderr.contains('\r') && !run.stderr.contains('\x1b'));
    assert!(run.stderr.contains("holding: "), "{}", run.stderr);
}

#[test]
fn the_table_is_the_default_output() {
    let server = Serve::start(&["--interval", "1s", "--timeout", "3s"]);
    let addr = server.addr.to_string();
    let run = load(
        &[
            "--server",
            &addr,
            "--conns",
            "20",
            "--connect-rate",
            "1000",
            "--interval",
            "200ms",
            "--duration",
            "1s",
        ],
        WITHIN,
    );
    assert!(run.status.success(), "{}", run.stderr);
    for needle in [
        "20 connections to 127.0.0.1:",
        "connect errors  0",
        "closes          0",
        "missing 0",
        "from scheduled send",
        "round trip",
    ] {
        assert!(run.stdout.contains(needle), "{needle:?} in\n{}", run.stdout);
    }
}

/// The flags come back in the JSON as given: a fractional connect rate is
/// not rounded (it printed as `0.2` with one decimal).
#[test]
fn the_json_repeats_the_flags_exactly() {
    let server = Serve::start(&["--interval", "1s", "--timeout", "3s"]);
    let addr = server.addr.to_string();
    let run = load(
        &[
            "--server",
            &addr,
            "--conns",
            "1",
            "--connect-rate",
            "0.25",
            "--interval",
            "100ms",
            "--duration",
            "300ms",
            "--timeout",
            "2s",
            "--json",
        ],
        WITHIN,
    );
    let j = run.json();
    assert_eq!(j["connect_rate"].as_f64(), Some(0.25), "{j}");
    assert_eq!(
        (
            n(&j["interval_ms"]),
            n(&j["duration_ms"]),
            n(&j["reply_timeout_ms"])
        ),
        (100, 300, 2000),
        "{j}"
    );
    assert_eq!(j["heartbeats"]["offered_per_s"].as_f64(), Some(10.0), "{j}");
    assert_eq!(n(&j["errors"]), 0, "{j}");
}

#[test]
fn two_processes_merge_exactly_and_use_distinct_ids() {
    let server = Serve::start(&[
        "--interval",
        "1s",
        "--timeout",
        "3s",
        "--stats-interval",
        "200ms",
    ]);
    let addr = server.addr.to_string();
    let run = Load::start(&[
        "--server",
        &addr,
        "--conns",
        "301",
        "--connect-rate",
        "2000",
        "--interval",
        "500ms",
        "--duration",
        "3s",
        "--procs",
        "2",
        "--json",
    ]);
    // Every id is distinct: the server sees 301 clients, none replaced.
    server.wait_log("clients=301");
    let j = run.finish(WITHIN).json();
    assert_eq!(n(&j["procs"]), 2);
    assert_eq!(n(&j["errors"]), 0, "{j}");
    assert_eq!(n(&j["connections"]["connected"]), 301);
    assert_eq!(n(&j["connections"]["welcomed"]), 301);
    assert_eq!(n(&j["connections"]["online_at_end"]), 301);
    let hb = &j["heartbeats"];
    let (sent, received) = (n(&hb["sent"]), n(&hb["received"]));
    assert_eq!(sent, received, "{j}");
    assert!(sent >= 301 * 5, "{sent}");
    assert!(n(&hb["hold_received"]) <= received);
    check_latency(&j, received);
    assert!(!server.log().iter().any(|l| l.contains("replaced")));
}

#[test]
fn a_server_stopping_mid_run_counts_its_bye() {
    let server = Serve::start(&["--interval", "1s", "--timeout", "3s"]);
    let addr = server.addr.to_string();
    let run = Load::start(&[
        "--server",
        &addr,
        "--conns",
        "50",
        "--connect-rate",
        "1000",
        "--interval",
        "200ms",
        "--duration",
        "3s",
        "--timeout",
        "1s",
        "--json",
    ]);
    thread::sleep(Duration::from_millis(1800));
    let (status, _) = server.stop();
    assert!(status.success());
    let run = run.finish(WITHIN);
    let j = json_with_errors(&run);
    let closes = reasons(&j, "closes");
    assert_eq!(closes.get("BYE shutdown"), Some(&50), "{j}");
    // The progress lines count the errors and reconnects as they happen.
    let last = progress_lines(&run.stderr)
        .pop()
        .unwrap_or_default()
        .to_owned();
    let field = |name: &str| -> u64 {
        let after = last.split(&format!("{name} ")).nth(1).unwrap_or_default();
        after
            .split(' ')
            .next()
            .unwrap_or_default()
            .parse()
            .unwrap_or(0)
    };
    assert!(field("errors") >= 50 && field("reconnects") >= 50, "{last}");
    assert_eq!(n(&j["closes"]["total"]), 50, "{j}");
    // The sessions try again, and find nobody.
    assert!(n(&j["connect_errors"]["total"]) > 0, "{j}");
    assert!(
        reasons(&j, "connect_errors").contains_key("connection-refused"),
        "{j}"
    );
    assert!(n(&j["connections"]["reconnects"]) >= 50);
    assert_eq!(n(&j["connections"]["online_at_end"]), 0);
    let hb = &j["heartbeats"];
    assert_eq!(
        n(&hb["sent"]),
        n(&hb["received"]) + n(&hb["missing"]),
        "{j}"
    );
}

#[test]
fn a_server_killed_mid_run_counts_its_closes() {
    let mut server = Serve::start(&["--interval", "1s", "--timeout", "3s"]);
    let addr = server.addr.to_string();
    let run = Load::start(&[
        "--server",
        &addr,
        "--conns",
        "40",
        "--connect-rate",
        "1000",
        "--interval",
        "100ms",
        "--duration",
        "3s",
        "--timeout",
        "1s",
        "--json",
    ]);
    thread::sleep(Duration::from_millis(1800));
    server.signal(libc::SIGKILL);
    server.wait_exit();
    let j = json_with_errors(&run.finish(WITHIN));
    let closes = reasons(&j, "closes");
    assert_eq!(n(&j["closes"]["total"]), 40, "{j}");
    assert!(
        closes.keys().all(|k| k == "eof" || k == "connection-reset"),
        "{j}"
    );
    assert!(n(&j["connect_errors"]["total"]) > 0, "{j}");
    let hb = &j["heartbeats"];
    assert_eq!(
        n(&hb["sent"]),
        n(&hb["received"]) + n(&hb["missing"]),
        "{j}"
    );
    assert!(n(&hb["received"]) > 0);
}

#[test]
fn a_hung_server_is_declared_dead_and_its_pings_are_missing() {
    let server = Serve::start(&["--interval", "1s", "--timeout", "30s"]);
    let addr = server.addr.to_string();
    let run = Load::start(&[
        "--server",
        &addr,
        "--conns",
        "30",
        "--connect-rate",
        "1000",
        "--interval",
        "200ms",
        "--duration",
        "4s",
        "--timeout",
        "1s",
        "--json",
    ]);
    thread::sleep(Duration::from_millis(1500));
    // Its kernel still acknowledges our bytes; it answers nothing.
    server.signal(libc::SIGSTOP);
    let j = json_with_errors(&run.finish(WITHIN));
    server.signal(libc::SIGCONT);
    // Declared dead by the unanswered ping, or (when the loop sent the ping
    // a little late) by the silence backstop, whichever came first.
    let closes = reasons(&j, "closes");
    let dead = closes.get("ping-timeout").unwrap_or(&0) + closes.get("silent").unwrap_or(&0);
    assert_eq!(dead, 30, "{j}");
    let hb = &j["heartbeats"];
    assert!(n(&hb["missing"]) >= 30, "{j}");
    assert_eq!(
        n(&hb["sent"]),
        n(&hb["received"]) + n(&hb["missing"]),
        "{j}"
    );
    assert_eq!(n(&j["connections"]["online_at_end"]), 0, "{j}");
}

#[test]
fn sigterm_ends_the_run_early_with_a_report() {
    let server = Serve::start(&["--interval", "1s", "--timeout", "3s"]);
    let addr = server.addr.to_string();
    let run = Load::start(&[
        "--server",
        &addr,
        "--conns",
        "20",
        "--interval",
        "100ms",
        "--duration",
        "60s",
        "--json",
    ]);
    thread::sleep(Duration::from_millis(1500));
    let start = Instant::now();
    // SAFETY: kill has no memory preconditions; the pid is our child's.
    unsafe { libc::kill(run.pid(), libc::SIGTERM) };
    let j = run.finish(WITHIN).json();
    assert!(start.elapsed() < Duration::from_secs(5));
    assert!(n(&j["hold_ms"]) < 60_000, "{j}");
    assert_eq!(n(&j["errors"]), 0, "{j}");
    assert!(n(&j["heartbeats"]["received"]) > 0);
}

#[test]
fn source_addresses_are_spread_evenly() {
    let dir = std::env::temp_dir().join(format!("vigil-load-src-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let events = dir.join("events.jsonl");
    let server = Serve::start(&[
        "--interval",
        "1s",
        "--timeout",
        "3s",
        "--events",
        events.to_str().unwrap(),
    ]);
    let addr = server.addr.to_string();
    let j = load(
        &[
            "--server",
            &addr,
            "--conns",
            "30",
            "--connect-rate",
            "1000",
            "--interval",
            "500ms",
            "--duration",
            "1s",
            "--source-ips",
            "127.0.0.2-127.0.0.4",
            "--procs",
            "2",
            "--json",
        ],
        WITHIN,
    )
    .json();
    assert_eq!(n(&j["errors"]), 0, "{j}");
    let (status, _) = server.stop();
    assert!(status.success());
    let text = std::fs::read_to_string(&events).unwrap();
    let mut by_ip: BTreeMap<String, u64> = BTreeMap::new();
    for line in text.lines().filter(|l| l.contains("\"event\":\"online\"")) {
        let peer = line.split("\"peer\":\"").nth(1).unwrap();
        let ip = peer.split(':').next().unwrap().to_owned();
        *by_ip.entry(ip).or_default() += 1;
    }
    let want: BTreeMap<String, u64> = [("127.0.0.2", 10), ("127.0.0.3", 10), ("127.0.0.4", 10)]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    assert_eq!(by_ip, want);
    assert_eq!(parse_events(&text).len(), 30 * 3); // online, hello, offline
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_flags_are_refused_before_anything_runs() {
    // Nothing listens on port 1; none of these gets as far as connecting.
    let base = ["--server", "127.0.0.1:1", "--duration", "1s"];
    let hard = vigil::nofile_limit().unwrap().1;
    let too_many = (hard - vigil::load::config::FD_RESERVE + 1).to_string();
    let mut cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--conns", "0"], "--conns must be at least 1"),
        (
            vec!["--conns", "5", "--connect-rate", "0"],
            "--connect-rate",
        ),
        (vec!["--conns", "5", "--interval", "0ms"], "--interval"),
        (vec!["--conns", "5", "--interval", "1"], "invalid duration"),
        (vec!["--conns", "5", "--procs", "0"], "--procs"),
        (
            vec!["--conns", "2", "--procs", "3"],
            "--procs 3 is more than --conns 2",
        ),
        (
            vec!["--conns", "5", "--source-ips", "127.0.0.9-127.0.0.2"],
            "above the last",
        ),
        (
            vec!["--conns", "5", "--source-ips", "nonsense"],
            "--source-ips",
        ),
        (
            vec!["--conns", "5", "--source-ips", "192.0.2.1-192.0.2.2"],
            "cannot bind to 192.0.2.1",
        ),
        (
            vec!["--conns", "5", "--id-prefix", "has space"],
            "--id-prefix",
        ),
        (vec!["--conns", "5", "--bogus"], "--bogus"),
        (vec!["--conns", "5", "--server", "nowhere"], "HOST:PORT"),
    ];
    if hard < 1_000_000 {
        cases.push((vec!["--conns", &too_many], "use --procs 2"));
    }
    for (args, needle) in cases {
        let mut argv: Vec<&str> = base.to_vec();
        if args.contains(&"--server") {
            argv.drain(..2);
        }
        argv.extend(&args);
        let start = Instant::now();
        let run = load(&argv, Duration::from_secs(10));
        assert_eq!(run.status.code(), Some(2), "{argv:?}: {}", run.stderr);
        assert!(run.stderr.contains(needle), "{argv:?}: {}", run.stderr);
        assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
        assert!(run.stdout.is_empty(), "{}", run.stdout);
        assert!(start.elapsed() < Duration::from_secs(3), "{argv:?}");
    }
}

#[test]
fn a_worker_refuses_a_bad_share() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["load", "--worker"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"conns 5\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad worker config"), "{err}");
}

#[test]
fn an_unreachable_server_fails_the_run_unless_errors_are_allowed() {
    // Port 1 on 127.0.0.1: nothing listens, every connect is refused.
    let args = [
        "--server",
        "127.0.0.1:1",
        "--conns",
        "3",
        "--connect-rate",
        "1000",
        "--interval",
        "100ms",
        "--duration",
        "1s",
        "--timeout",
        "500ms",
        "--json",
    ];
    let run = load(&args, WITHIN);
    let j = json_with_errors(&run);
    let refused = n(&j["connect_errors"]["total"]);
    assert!(refused >= 3, "{j}");
    assert_eq!(n(&j["connections"]["connected"]), 0, "{j}");
    assert!(run
        .stderr
        .contains(&format!("{refused} errors ({refused} connect errors")));
    // Allowed as many errors as it had (or more): it passes.
    let allow = (refused + 1_000).to_string();
    let mut lenient = args.to_vec();
    lenient.extend(["--max-errors", &allow]);
    let run = load(&lenient, WITHIN);
    assert!(run.status.success(), "{}", run.stderr);
    // The table output fails the same way, after printing the table.
    let run = load(&args[..args.len() - 1], WITHIN);
    assert_eq!(run.status.code(), Some(3), "{}", run.stderr);
    assert!(run.stdout.contains("connect errors"), "{}", run.stdout);
}

#[test]
fn a_server_that_closes_every_connection_fails_the_run() {
    // A listener that accepts and closes at once: every session connects,
    // then sees the end of the stream before its WELCOME.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    listener.set_nonblocking(true).unwrap();
    let closer = thread::spawn(move || {
        while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
            match listener.accept() {
                Ok((s, _)) => drop(s),
                Err(_) => thread::sleep(Duration::from_millis(5)),
            }
        }
    });
    let run = load(
        &[
            "--server",
            &addr,
            "--conns",
            "5",
            "--connect-rate",
            "1000",
            "--interval",
            "100ms",
            "--duration",
            "1s",
            "--timeout",
            "500ms",
            "--json",
        ],
        WITHIN,
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    closer.join().unwrap();
    let j = json_with_errors(&run);
    assert!(n(&j["closes"]["total"]) >= 5, "{j}");
    // Closed before reading our HELLO: an end of stream, or a reset.
    let closes = reasons(&j, "closes");
    assert!(
        closes.keys().all(|k| k == "eof" || k == "connection-reset"),
        "{j}"
    );
    assert_eq!(n(&j["connections"]["welcomed"]), 0, "{j}");
}

#[test]
fn hgrm_writes_the_full_distribution() {
    let server = Serve::start(&["--interval", "1s", "--timeout", "3s"]);
    let addr = server.addr.to_string();
    let dir = std::env::temp_dir().join(format!("vigil-load-hgrm-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("latency.hgrm");
    let run = load(
        &[
            "--server",
            &addr,
            "--conns",
            "50",
            "--connect-rate",
            "1000",
            "--interval",
            "100ms",
            "--duration",
            "2s",
            "--json",
            "--hgrm",
            file.to_str().unwrap(),
        ],
        WITHIN,
    );
    let j = run.json();
    let text = std::fs::read_to_string(&file).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["Value", "Percentile", "TotalCount", "1/(1-Percentile)"]
    );
    assert_eq!(lines.next(), Some(""));
    let mut rows = Vec::new();
    for line in lines.by_ref() {
        if line.starts_with("#[") {
            break;
        }
        let f: Vec<f64> = line
            .split_whitespace()
            .map(|v| v.parse().unwrap())
            .collect();
        assert!(f.len() == 4 || (f.len() == 3 && f[1] == 1.0), "{line}");
        rows.push(f);
    }
    assert!(rows.len() > 20, "{text}");
    for w in rows.windows(2) {
        assert!(
            w[0][0] <= w[1][0] && w[0][1] <= w[1][1] && w[0][2] <= w[1][2],
            "{w:?}"
        );
    }
    let last = rows.last().unwrap();
    let sched = &j["latency_us"]["scheduled"];
    // The distribution of the scheduled latencies, in ms: all of them, up
    // to the max the JSON reports (same histogram, three decimals).
    assert_eq!(last[2] as u64, n(&sched["count"]), "{text}");
    assert!(
        (last[0] - n(&sched["max"]) as f64 / 1000.0).abs() < 0.002,
        "{text}"
    );
    let p50 = rows.iter().find(|r| r[1] >= 0.5).unwrap()[0];
    assert!(
        (p50 - n(&sched["p50"]) as f64 / 1000.0).abs() < 0.002,
        "{p50} {j}"
    );
    assert!(text.contains(&format!("Total count    = {:>12}]", n(&sched["count"]))));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn plot_draws_the_run_into_one_svg() {
    let server = Serve::start(&["--interval", "1s", "--timeout", "3s"]);
    let addr = server.addr.to_string();
    let dir = std::env::temp_dir().join(format!("vigil-load-plot-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("run.svg");
    let args = |plot: &str| {
        [
            "--server",
            &addr,
            "--conns",
            "40",
            "--connect-rate",
            "1000",
            "--interval",
            "100ms",
            "--duration",
            "3s",
            "--json",
            "--plot",
            plot,
        ]
        .map(str::to_owned)
    };
    let a = args(file.to_str().unwrap());
    let run = load(&a.iter().map(String::as_str).collect::<Vec<_>>(), WITHIN);
    run.json();
    let svg = std::fs::read_to_string(&file).unwrap();
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    for text in [
        "vigil load: 40 connections to",
        "latency by percentile",
        "from the scheduled send",
        "round trip",
        "sessions online",
        "heartbeats sent per second",
        "90%",
        "99.999%",
    ] {
        assert!(svg.contains(text), "no {text:?} in the plot");
    }
    // Two latency curves and two timelines, each of several points.
    let lines: Vec<&str> = svg
        .split("<polyline")
        .skip(1)
        .filter_map(|p| p.split("points=\"").nth(1)?.split('"').next())
        .filter(|pts| pts.split_whitespace().count() >= 3)
        .collect();
    assert!(lines.len() >= 4, "{} polylines with points", lines.len());
    // Well-formed XML, as another parser sees it.
    let check = std::process::Command::new("python3")
        .args([
            "-c",
            "import sys, xml.etree.ElementTree as E; E.parse(sys.argv[1])",
            file.to_str().unwrap(),
        ])
        .status()
        .expect("python3");
    assert!(check.success(), "not well-formed XML");

    // A file that cannot be written: the report is printed, exit 1.
    let bad = dir.join("no-such-dir").join("x.svg");
    let b = args(bad.to_str().unwrap());
    let run = load(&b.iter().map(String::as_str).collect::<Vec<_>>(), WITHIN);
    assert_eq!(run.status.code(), Some(1), "{}", run.stderr);
    assert!(run.stderr.contains("cannot write"), "{}", run.stderr);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn two_processes_show_one_merged_progress_line_a_second() {
    let server = Serve::start(&["--interval", "1s", "--timeout", "3s"]);
    let addr = server.addr.to_string();
    let run = load(
        &[
            "--server",
            &addr,
            "--conns",
            "40",
            "--connect-rate",
            "1000",
            "--interval",
            "100ms",
            "--duration",
            "3s",
            "--procs",
            "2",
            "--json",
        ],
        WITHIN,
    );
    let j = run.json();
    assert_eq!(n(&j["errors"]), 0, "{j}");
    let lines = progress_lines(&run.stderr);
    assert!((2..=8).contains(&lines.len()), "{}", run.stderr);
    // Merged: both workers' sessions on one line, a p99 of both workers'
    // replies (the merge itself is checked exactly in the unit tests).
    // (The line at the start of the hold may come before the last
    // WELCOMEs; the ones a second later have every session.)
    let hold: Vec<&&str> = lines.iter().filter(|l| l.contains(" hold ")).collect();
    assert!(hold.len() >= 2, "{}", run.stderr);
    for l in &hold[1..] {
        assert!(l.contains("online 40/40"), "{l}");
        assert!(!l.contains("p99 rtt -"), "{l}");
    }
}
