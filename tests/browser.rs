//! `examples/browser.html`, the WebSocket page, in headless Chromium
//! (Selenium, from `scripts/install-deps.sh`) against real `vigil serve`
//! processes: the page stays online on the server's pings and the browser's
//! own pongs, goes offline without them, stops for good when another
//! connection takes its id, and goes offline within the timeout when the
//! browser hangs or quits. Bounded waits throughout; timings are printed
//! (`cargo test --test browser -- --nocapture`).

mod util;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;
use util::{LogChild, Peer, Serve, PATIENCE};

const INTERVAL: &str = "300ms";
const TIMEOUT: Duration = Duration::from_secs(1);

/// Headless Chromium on the page, driven by `tests/browser_page.py`, one
/// command at a time (see that script for the commands).
struct Browser {
    proc: LogChild,
    asked: usize,
}

impl Browser {
    #[track_caller]
    fn start() -> Browser {
        let python = concat!(env!("CARGO_MANIFEST_DIR"), "/target/selenium/bin/python");
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser_page.py");
        let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/examples");
        assert!(
            Path::new(python).exists(),
            "{python} missing: run scripts/install-deps.sh"
        );
        let mut cmd = Command::new("timeout");
        cmd.args(["60", python, script, examples])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        let proc = LogChild::spawn("browser_page.py", &mut cmd).patience(Duration::from_secs(30));
        proc.wait_for("ready http://127.0.0.1:", proc.started());
        Browser { proc, asked: 0 }
    }

    /// Sends `command` and returns its answer; fails on a `fail` answer or
    /// none within `within`.
    #[track_caller]
    fn ask(&mut self, command: &str, within: Duration) -> Value {
        self.asked += 1;
        let tag = format!("reply {} ", self.asked);
        let since = Instant::now();
        let stdin = self.proc.child().stdin.as_mut().expect("stdin");
        writeln!(stdin, "{command}").expect("send a command");
        stdin.flush().expect("flush");
        let (_, line) = self.proc.wait_line(&[&tag], since, within);
        let rest = &line[line.find(&tag).unwrap() + tag.len()..];
        let (verdict, json) = rest.split_once(' ').expect("a verdict and JSON");
        let answer: Value = serde_json::from_str(json).expect("JSON");
        assert_eq!(verdict, "ok", "{command}: {answer:#}");
        answer
    }

    /// The page's state, log and whether it offers "reconnect".
    #[track_caller]
    fn page(&mut self) -> Value {
        self.ask("page", PATIENCE)
    }
}

impl Drop for Browser {
    /// The end of its stdin makes the script quit Chromium and exit; the
    /// kill (by `LogChild`) is for a script that does not.
    fn drop(&mut self) {
        drop(self.proc.child().stdin.take());
        let end = Instant::now() + Duration::from_secs(10);
        while Instant::now() < end && matches!(self.proc.child().try_wait(), Ok(None)) {
            thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The page's log lines, as strings.
fn log_of(page: &Value) -> Vec<&str> {
    page["log"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// Every connection record of an events file so far.
fn events(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e.get("conn").is_some())
        .collect()
}

/// Polls the events file until a record satisfies `pred`; returns when the
/// test saw it, and the record. Fails after `within`.
#[track_caller]
fn wait_event(
    path: &Path,
    within: Duration,
    what: &str,
    pred: impl Fn(&Value) -> bool,
) -> (Instant, Value) {
    let start = Instant::now();
    loop {
        if let Some(e) = events(path).into_iter().find(&pred) {
            return (Instant::now(), e);
        }
        assert!(
            start.elapsed() < within,
            "no {what} within {within:?}: {:#?}",
            events(path)
        );
        thread::sleep(Duration::from_millis(10));
    }
}

/// Whether record `e` is `event` of client `id`.
fn is(e: &Value, event: &str, id: &str) -> bool {
    e["event"] == event && e["client"] == id
}

/// The `time` of a record, in milliseconds since its day began (UTC).
fn ms_of_day(e: &Value) -> i64 {
    let t = e["time"].as_str().expect("a time");
    let clock = &t[t.find('T').expect("a T") + 1..t.len() - 1];
    let num = |r: std::ops::Range<usize>| clock[r].parse::<i64>().expect("a number");
    ((num(0..2) * 60 + num(3..5)) * 60 + num(6..8)) * 1000 + num(9..12)
}

/// Milliseconds from record `a` to record `b`, by the server's clock.
fn ms_between(a: &Value, b: &Value) -> i64 {
    (ms_of_day(b) - ms_of_day(a)).rem_euclid(86_400_000)
}

/// The counters named `names` (without `vigil_` and `_total`), read from
/// one `GET /metrics` of the admin endpoint.
#[track_caller]
fn counters<const N: usize>(admin: SocketAddr, names: [&str; N]) -> [u64; N] {
    let mut s = TcpStream::connect_timeout(&admin, PATIENCE).expect("connect");
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n")
        .expect("send");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("a response, then EOF");
    names.map(|name| {
        let name = format!("vigil_{name}_total ");
        text.lines()
            .find_map(|l| l.strip_prefix(&name)?.parse().ok())
            .unwrap_or_else(|| panic!("no {name}in\n{text}"))
    })
}

fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vigil-browser-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `vigil serve` with a line and a WebSocket listener (and the admin
/// endpoint), a 300 ms interval and a 1 s timeout, writing `events`.
#[track_caller]
fn serve(events: &Path, extra: &[&str]) -> (Serve, SocketAddr) {
    let mut args = vec![
        "--listen",
        "127.0.0.1:0",
        "--listen",
        "ws://127.0.0.1:0",
        "--interval",
        INTERVAL,
        "--timeout",
        "1s",
        "--events",
        events.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    Serve::start_admin(&args)
}

#[test]
fn the_page_lives_on_server_pings_stops_when_replaced_and_dies_with_the_browser() {
    let started = Instant::now();
    let dir = temp_dir();
    let events1 = dir.join("pinging.jsonl");
    let (server, admin) = serve(&events1, &[]);
    let ws = server.listener("ws");
    let mut browser = Browser::start();
    println!("chromium ready after {:?}", started.elapsed());

    // 1. Online on nothing but the server's pings and the browser's pongs.
    let opened = Instant::now();
    browser.ask(&format!("open url=ws://{ws}/&id=browser-1"), PATIENCE);
    let (_, hello) = wait_event(&events1, PATIENCE, "browser-1's hello", |e| {
        is(e, "hello", "browser-1")
    });
    let conn1 = hello["conn"].clone();
    println!(
        "browser-1: hello {:?} after the page load",
        opened.elapsed()
    );
    browser.ask("wait 5 online as browser-1", PATIENCE);
    // Whatever the page sends in: heartbeats and other lines (frames) are
    // its words; WebSocket control frames are counted only in bytes.
    let said = ["server_pings", "heartbeats", "frames", "received_bytes"];
    let before = counters(admin, said);
    let stay = Instant::now();
    while stay.elapsed() < Duration::from_millis(3300) {
        let gone = events(&events1)
            .into_iter()
            .find(|e| e["conn"] == conn1 && e["event"] == "offline");
        assert!(gone.is_none(), "browser-1 went offline: {gone:?}");
        thread::sleep(Duration::from_millis(50));
    }
    let after = counters(admin, said);
    let [pinged, beats, frames, bytes] = [0, 1, 2, 3].map(|i| after[i] - before[i]);
    println!(
        "browser-1: online for {:?} (11 intervals): {pinged} server pings; from the page \
         {beats} PINGs, {frames} frames, {bytes} bytes (its pongs)",
        stay.elapsed()
    );
    // One ping per interval of silence, one tick late at most: about 10.
    assert!(pinged >= 6, "only {pinged} server pings in 3.3 s");
    // What came in was no line at all, PING or other: only WebSocket
    // control frames (an empty pong is 6 bytes with its mask).
    assert_eq!((beats, frames), (0, 0), "the page said something");
    assert!(
        bytes >= 6 * (pinged - 1),
        "{bytes} bytes for {pinged} pings"
    );
    let page = browser.page();
    assert_eq!(page["state"], "online as browser-1", "{page:#}");
    assert_eq!(page["title"], "online as browser-1");
    let log = log_of(&page);
    assert!(log
        .iter()
        .any(|l| l.contains("< WELCOME browser-1 interval=300 timeout=1000")));
    assert!(!log.iter().any(|l| l.contains("> PING")), "{log:#?}");
    // The message box sends one line.
    let page = browser.ask("say hello from the page", PATIENCE);
    assert!(log_of(&page)
        .iter()
        .any(|l| l.ends_with("> hello from the page")));
    util::eventually("the message's frame", || {
        counters(admin, ["frames"])[0] > after[2]
    });

    // 2. Another connection takes the id: the page stops, and stays stopped.
    let mut thief = Peer::connect(server.addr);
    let taken = Instant::now();
    assert!(thief
        .ask("HELLO browser-1\n")
        .starts_with("WELCOME browser-1 "));
    let shown = browser.ask("wait 3 offline: replaced", PATIENCE);
    println!(
        "browser-1: replaced, shown by the page {:?} after the takeover",
        taken.elapsed()
    );
    let (_, off) = wait_event(&events1, PATIENCE, "browser-1's offline", |e| {
        e["conn"] == conn1 && e["event"] == "offline"
    });
    assert_eq!(off["reason"], "replaced", "{off}");
    let (_, stolen) = wait_event(&events1, PATIENCE, "the thief's hello", |e| {
        is(e, "hello", "browser-1") && e["conn"] != conn1
    });
    let thief_conn = stolen["conn"].clone();
    assert_eq!(shown["state"], "offline: replaced", "{shown:#}");
    assert_eq!(shown["reconnect"], true, "no reconnect button: {shown:#}");
    let log = log_of(&shown);
    assert!(
        log.iter().any(|l| l.ends_with("< BYE replaced")),
        "{log:#?}"
    );
    assert!(
        log.iter()
            .any(|l| l.contains("closed: code 1008 reason \"replaced\"")),
        "{log:#?}"
    );
    // The thief beats meanwhile, to be there for the button below.
    let waiting = Instant::now();
    for n in 0.. {
        assert_eq!(thief.ask(&format!("PING {n}\n")), format!("PONG {n}"));
        if waiting.elapsed() >= Duration::from_millis(1500) {
            break;
        }
        thread::sleep(Duration::from_millis(250));
    }
    let strangers: Vec<Value> = events(&events1)
        .into_iter()
        .filter(|e| e["conn"] != conn1 && e["conn"] != thief_conn)
        .collect();
    assert!(strangers.is_empty(), "the page came back: {strangers:#?}");
    let page = browser.page();
    assert_eq!(page["state"], "offline: replaced", "{page:#}");
    println!("browser-1: no reconnect in the 1.5 s after");
    // Its "reconnect" button takes the id back.
    browser.ask("click reconnect", PATIENCE);
    browser.ask("wait 5 online as browser-1", PATIENCE);
    thief.expect_bye("replaced");

    // 3. Without the server's pings the same page goes offline at the
    // timeout: the pings are what kept it online above.
    let events2 = dir.join("silent.jsonl");
    let (quiet, quiet_admin) = serve(&events2, &["--no-ws-ping"]);
    let quiet_ws = quiet.listener("ws");
    browser.ask(&format!("open url=ws://{quiet_ws}/&id=browser-3"), PATIENCE);
    let (_, hello3) = wait_event(&events2, PATIENCE, "browser-3's hello", |e| {
        is(e, "hello", "browser-3")
    });
    let (_, off3) = wait_event(&events2, PATIENCE, "browser-3's offline", |e| {
        e["conn"] == hello3["conn"] && e["event"] == "offline"
    });
    let lived = ms_between(&hello3, &off3);
    println!(
        "browser-3 (--no-ws-ping): offline ({}) {lived} ms after its hello",
        off3["reason"]
    );
    assert_eq!(off3["reason"], "timeout", "{off3}");
    assert!((900..=1700).contains(&lived), "offline after {lived} ms");
    assert_eq!(counters(quiet_admin, ["server_pings"]), [0]);
    // The page heard why, and (unlike after a takeover) comes back.
    let (_, again) = wait_event(&events2, PATIENCE, "browser-3 back", |e| {
        is(e, "hello", "browser-3") && e["conn"] != hello3["conn"]
    });
    println!(
        "browser-3: back {} ms after its offline",
        ms_between(&off3, &again)
    );
    let log = log_of(&browser.page()).join("\n");
    for said in [
        "< BYE timeout\n",
        "closed: code 1000 reason \"timeout\"\n",
        "reconnect attempt 0 in ",
    ] {
        assert!(log.contains(said), "no {said:?} in\n{log}");
    }

    // 4. A browser that hangs (every Chromium process stopped: no pong,
    // no close, the TCP connection up) goes offline at the timeout.
    browser.ask(&format!("open url=ws://{ws}/&id=browser-4"), PATIENCE);
    let (_, hello4) = wait_event(&events1, PATIENCE, "browser-4's hello", |e| {
        is(e, "hello", "browser-4")
    });
    browser.ask("wait 5 online as browser-4", PATIENCE);
    let frozen = Instant::now();
    let stopped = browser.ask("freeze", PATIENCE);
    let (seen, off4) = wait_event(&events1, TIMEOUT * 3, "browser-4's offline", |e| {
        e["conn"] == hello4["conn"] && e["event"] == "offline"
    });
    browser.ask("thaw", PATIENCE);
    println!(
        "browser-4: {} Chromium processes stopped; offline ({}) {:?} after",
        stopped["stopped"],
        off4["reason"],
        seen - frozen
    );
    assert_eq!(off4["reason"], "timeout", "{off4}");
    assert!(
        seen - frozen <= TIMEOUT + Duration::from_millis(500),
        "offline {:?} after the freeze",
        seen - frozen
    );

    // 5. A page that says HELLO, then the browser quits: offline within
    // the timeout.
    browser.ask(&format!("open url=ws://{ws}/&id=browser-2"), PATIENCE);
    let (_, hello2) = wait_event(&events1, PATIENCE, "browser-2's hello", |e| {
        is(e, "hello", "browser-2")
    });
    browser.ask("wait 5 online as browser-2", PATIENCE);
    let quit = Instant::now();
    let done = browser.ask("quit", Duration::from_secs(20));
    let slack = Duration::from_secs(1);
    let (seen, off2) = wait_event(
        &events1,
        (TIMEOUT + slack).saturating_sub(quit.elapsed()),
        "browser-2's offline within the timeout and 1 s",
        |e| e["conn"] == hello2["conn"] && e["event"] == "offline",
    );
    println!(
        "browser-2: offline ({}) {:?} after the quit began (driver.quit took {} s)",
        off2["reason"],
        seen - quit,
        done["took"]
    );

    let (status, log) = server.stop();
    assert!(status.success(), "{log:#?}");
    let (status, log) = quiet.stop();
    assert!(status.success(), "{log:#?}");
    let _ = std::fs::remove_dir_all(&dir);
    println!("whole test: {:?}", started.elapsed());
}
