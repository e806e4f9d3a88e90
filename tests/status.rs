//! The status page of the admin endpoint (`GET /`) and its event stream
//! (`GET /events/stream`): a real server process, real sockets, bounded
//! waits; and the page itself in headless Chromium (Selenium), when
//! `scripts/install-deps.sh` has installed them.

mod util;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use util::{Serve, PATIENCE};

/// A `vigil serve --admin 127.0.0.1:0 ARGS...`, and its admin address.
#[track_caller]
fn serve(args: &[&str]) -> (Serve, SocketAddr) {
    Serve::start_admin(args)
}

/// An open `GET /events/stream`, read as it comes.
struct Viewer {
    s: TcpStream,
    text: String,
}

impl Viewer {
    #[track_caller]
    fn open(admin: SocketAddr) -> Viewer {
        let mut s = TcpStream::connect_timeout(&admin, PATIENCE).expect("connect");
        s.write_all(b"GET /events/stream HTTP/1.1\r\nHost: t\r\n\r\n")
            .expect("send");
        Viewer {
            s,
            text: String::new(),
        }
    }

    /// Reads until `pred` holds of what was read, or panics after `within`.
    #[track_caller]
    fn until(&mut self, within: Duration, what: &str, pred: impl Fn(&str) -> bool) {
        let end = Instant::now() + within;
        let mut buf = [0u8; 8192];
        while !pred(&self.text) {
            let left = end.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "no {what} within {within:?}: {}",
                self.text
            );
            self.s.set_read_timeout(Some(left)).unwrap();
            match self.s.read(&mut buf) {
                Ok(0) => panic!("stream closed before {what}: {}", self.text),
                Ok(n) => self.text.push_str(&String::from_utf8_lossy(&buf[..n])),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) => panic!("read: {e}"),
            }
        }
    }

    /// The `data:` of every SSE event named `name` read so far.
    fn events(&self, name: &str) -> Vec<serde_json::Value> {
        let body = self.text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        body.split("\n\n")
            .filter_map(|e| {
                let mut lines = e.lines();
                (lines.next()? == format!("event: {name}")).then_some(())?;
                let data = lines.next()?.strip_prefix("data: ")?;
                serde_json::from_str(data).ok()
            })
            .collect()
    }
}

#[test]
fn the_page_is_served_and_bad_requests_are_refused() {
    let (server, admin) = serve(&[]);
    let get = |req: &str| {
        let mut s = TcpStream::connect_timeout(&admin, PATIENCE).expect("connect");
        s.set_read_timeout(Some(PATIENCE)).unwrap();
        s.write_all(req.as_bytes()).expect("send");
        let mut out = String::new();
        s.read_to_string(&mut out).expect("a response, then EOF");
        out
    };
    let page = get("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    assert!(
        page.starts_with("HTTP/1.1 200 OK\r\nContent-Type: text/html"),
        "{page}"
    );
    assert!(page.contains("<title>vigil status</title>"));
    for (req, status) in [
        ("POST / HTTP/1.1\r\n\r\n", "405"),
        ("HEAD /events/stream HTTP/1.1\r\n\r\n", "200"),
        ("HEAD / HTTP/1.1\r\n\r\n", "200"),
        ("PUT / HTTP/1.1\r\n\r\n", "405"),
        ("GET /status HTTP/1.1\r\n\r\n", "404"),
        ("GET /events HTTP/1.1\r\n\r\n", "404"),
    ] {
        let answer = get(req);
        assert_eq!(answer.get(9..12), Some(status), "{req:?}: {answer}");
    }
    server.stop();
}

#[test]
fn the_stream_carries_history_samples_and_presence() {
    let (server, admin) = serve(&[]);
    let mut v = Viewer::open(admin);
    v.until(PATIENCE, "the head and history", |t| {
        t.contains("event: history\n")
    });
    assert!(v
        .text
        .starts_with("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"));
    assert!(!v.text.contains("Content-Length"));
    let mut peer = server.connect();
    let said = Instant::now();
    assert!(peer.ask("HELLO alice\n").starts_with("WELCOME "));
    v.until(Duration::from_secs(1), "alice's hello", |t| {
        t.contains("\"client\":\"alice\",\"event\":\"hello\"")
    });
    assert!(said.elapsed() < Duration::from_secs(1));
    // A sample a second that counts her connection.
    v.until(Duration::from_millis(2500), "a sample with her", |t| {
        t.contains("event: sample\ndata: {\"at\":") && t.contains("\"connections\":1,\"clients\":1")
    });
    let hello = v.events("presence");
    assert!(hello
        .iter()
        .any(|e| e["client"] == "alice" && e["event"] == "hello"));
    drop(peer);
    v.until(PATIENCE, "her offline", |t| {
        t.contains("\"client\":\"alice\",\"event\":\"offline\"")
    });
    // A second viewer gets the history the ring kept since start.
    let mut w = Viewer::open(admin);
    w.until(PATIENCE, "history", |t| {
        t.contains("event: history\ndata: [")
    });
    w.until(PATIENCE, "history's end", |t| t.contains("]\n\n"));
    let history = w.events("history");
    let samples = history[0].as_array().expect("an array");
    assert!(!samples.is_empty(), "{}", w.text);
    assert!(samples.iter().any(|s| s["connections"] == 1));
    server.stop();
}

#[test]
fn viewers_are_bounded_and_one_that_does_not_read_is_dropped() {
    let (server, admin) = serve(&[]);
    let mut viewers: Vec<Viewer> = (0..4).map(|_| Viewer::open(admin)).collect();
    for v in &mut viewers {
        v.until(PATIENCE, "history", |t| t.contains("event: history\n"));
    }
    let mut fifth = Viewer::open(admin);
    fifth.until(PATIENCE, "503", |t| t.contains("\r\n\r\n"));
    assert!(fifth.text.starts_with("HTTP/1.1 503 "), "{}", fifth.text);
    // One leaves: its slot is free again.
    viewers.pop();
    let mut again = Viewer::open(admin);
    again.until(PATIENCE, "history", |t| t.contains("event: history\n"));
    drop(again);
    drop(viewers);

    // A viewer that never reads, while clients come and go.
    let stuck = TcpStream::connect_timeout(&admin, PATIENCE).expect("connect");
    socket2::SockRef::from(&stuck)
        .set_recv_buffer_size(4096)
        .expect("SO_RCVBUF");
    (&stuck)
        .write_all(b"GET /events/stream HTTP/1.1\r\n\r\n")
        .expect("send");
    server.wait_log("watching the event stream");
    let end = Instant::now() + Duration::from_secs(60);
    let mut n = 0;
    while server
        .log()
        .iter()
        .all(|l| !l.contains("viewer does not read"))
    {
        assert!(Instant::now() < end, "never dropped after {n} clients");
        for _ in 0..50 {
            let mut p = server.connect();
            assert!(p
                .ask(&format!("HELLO client-with-a-long-name-{n}\n"))
                .starts_with("WELCOME "));
            n += 1;
        }
    }
    // The heartbeat side never noticed; a new viewer is served.
    let mut p = server.connect();
    assert_eq!(p.ask("PING 1\n"), "PONG 1");
    let mut fresh = Viewer::open(admin);
    fresh.until(PATIENCE, "history", |t| t.contains("event: history\n"));
    drop(stuck);
    server.stop();
}

/// The page in headless Chromium, driven by Selenium: it shows the
/// connections the test holds, a HELLO in the live events within a second,
/// the search finds the id; a screenshot at target/status-page.png.
#[test]
fn the_page_in_a_real_browser() {
    let python = concat!(env!("CARGO_MANIFEST_DIR"), "/target/selenium/bin/python");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/status_page.py");
    assert!(
        std::path::Path::new(python).exists(),
        "{python} missing: run scripts/install-deps.sh"
    );
    let (server, admin) = serve(&[]);
    let held: Vec<_> = (0..7).map(|_| server.connect()).collect();
    let screenshot = concat!(env!("CARGO_MANIFEST_DIR"), "/target/status-page.png");
    let _ = std::fs::remove_file(screenshot);
    let out = Command::new("timeout")
        .args([
            "120",
            python,
            script,
            &format!("http://{admin}/"),
            &server.addr.to_string(),
            "7",
            screenshot,
        ])
        .output()
        .expect("run python");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "browser test failed:\n{text}");
    assert!(text.contains("ok: connections 7"), "{text}");
    assert!(std::fs::metadata(screenshot).is_ok_and(|m| m.len() > 1000));
    drop(held);
    server.stop();
}
