//! WebSocket listeners end to end: a real `vigil serve` process with a
//! plain and a `ws://` listener, peers on real loopback sockets, and the
//! `websockets` library from PyPI (installed by scripts/install-deps.sh)
//! as a client nobody here wrote. Every wait is bounded.
//!
//! The browser itself (headless Chromium) is in tests/browser.rs.

mod util;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use util::{Peer, Serve, PATIENCE};
use vigil::protocol::ws::{self as wsp, Opcode};

/// A server with a line listener and a WebSocket one.
#[track_caller]
fn serve(extra: &[&str]) -> (Serve, SocketAddr) {
    let mut args = vec!["--listen", "127.0.0.1:0", "--listen", "ws://127.0.0.1:0"];
    args.extend_from_slice(extra);
    let server = Serve::start(&args);
    let ws = server.listener("ws");
    (server, ws)
}

/// Runs a scenario of tests/ws_peer.py; its stdout lines.
#[track_caller]
fn ws_peer(args: &[&str]) -> Vec<String> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/ws_peer.py");
    let mut child = Command::new(util::venv_python("websockets"))
        .arg(script)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run ws_peer.py");
    let start = Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if start.elapsed() > Duration::from_secs(40) {
            let _ = child.kill();
            panic!("ws_peer.py {args:?} still running after 40 s");
        }
        thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("output");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "ws_peer.py {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout.lines().map(str::to_owned).collect()
}

/// A WebSocket peer written here, to send what no library would.
struct WsPeer {
    s: TcpStream,
    buf: Vec<u8>,
}

const UPGRADE: &str = "GET / HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n";

impl WsPeer {
    #[track_caller]
    fn connect(addr: SocketAddr) -> WsPeer {
        let s = TcpStream::connect_timeout(&addr, PATIENCE).expect("connect");
        s.set_read_timeout(Some(PATIENCE)).unwrap();
        WsPeer { s, buf: Vec::new() }
    }

    /// Connects and completes the handshake (with `headers` added).
    #[track_caller]
    fn upgraded(addr: SocketAddr, headers: &str) -> WsPeer {
        let mut p = WsPeer::connect(addr);
        p.send(format!("{UPGRADE}{headers}\r\n").as_bytes());
        let head = p.http_head();
        assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
        assert!(head.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo="));
        p
    }

    #[track_caller]
    fn send(&mut self, bytes: &[u8]) {
        self.s.write_all(bytes).expect("send");
    }

    #[track_caller]
    fn send_frame(&mut self, fin: bool, opcode: Opcode, payload: &[u8]) {
        let mut out = Vec::new();
        wsp::encode_header(&mut out, fin, opcode, Some([3, 14, 15, 92]), payload.len());
        let start = out.len();
        out.extend_from_slice(payload);
        wsp::apply_mask(&mut out[start..], [3, 14, 15, 92], 0);
        self.send(&out);
    }

    #[track_caller]
    fn text(&mut self, line: &str) {
        self.send_frame(true, Opcode::Text, line.as_bytes());
    }

    /// Reads more; false at the end of the stream.
    #[track_caller]
    fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 4096];
        match self.s.read(&mut chunk) {
            Ok(0) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
            Err(e) if e.kind() == ErrorKind::ConnectionReset => false,
            Err(e) => panic!("read: {e}"),
        }
    }

    /// The HTTP head of the answer, and its body if it says how long.
    #[track_caller]
    fn http_head(&mut self) -> String {
        loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head: Vec<u8> = self.buf.drain(..i + 4).collect();
                return String::from_utf8_lossy(&head).into_owned();
            }
            assert!(self.fill(), "EOF before the HTTP answer");
        }
    }

    /// The next frame: its opcode and payload; `None` at EOF.
    #[track_caller]
    fn frame(&mut self) -> Option<(Opcode, Vec<u8>)> {
        loop {
            if let Some(h) = wsp::parse_header(&self.buf).expect("a valid server frame") {
                assert!(h.mask.is_none(), "a server frame is never masked");
                let end = h.frame_len().unwrap();
                if self.buf.len() >= end {
                    let frame: Vec<u8> = self.buf.drain(..end).collect();
                    return Some((h.opcode, frame[h.header_len..].to_vec()));
                }
            }
            if !self.fill() {
                return None;
            }
        }
    }

    /// The next text frame, skipping the server's pings.
    #[track_caller]
    fn line(&mut self) -> String {
        loop {
            match self.frame() {
                Some((Opcode::Text, p)) => return String::from_utf8(p).unwrap(),
                Some((Opcode::Ping, _)) => {}
                other => panic!("expected a text frame, got {other:?}"),
            }
        }
    }

    /// Expects `BYE <reason>`, the close frame with `code` and `reason`,
    /// then the end of the stream.
    #[track_caller]
    fn expect_close(&mut self, reason: &str, code: u16) {
        assert_eq!(self.line(), format!("BYE {reason}"));
        match self.frame() {
            Some((Opcode::Close, p)) => {
                assert_eq!(wsp::parse_close(&p), Ok(Some((code, reason))));
            }
            other => panic!("expected a close frame, got {other:?}"),
        }
        assert_eq!(self.frame(), None, "EOF after the close frame");
    }

    /// The whole HTTP answer of a refused handshake (head and body), then EOF.
    #[track_caller]
    fn refusal(&mut self) -> String {
        while self.fill() {}
        String::from_utf8_lossy(&std::mem::take(&mut self.buf)).into_owned()
    }
}

/// A line client beating every 100 ms beside the test, counting how late
/// its PONGs come; stops and reports when dropped through `done`.
struct Bystander {
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<(u32, Duration)>>,
}

impl Bystander {
    fn start(addr: SocketAddr) -> Bystander {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = thread::spawn(move || {
            let mut p = Peer::connect(addr);
            assert!(p.ask("HELLO bystander\n").starts_with("WELCOME bystander"));
            let (mut n, mut worst) = (0, Duration::ZERO);
            while !flag.load(Ordering::Relaxed) {
                let sent = Instant::now();
                assert_eq!(p.ask(&format!("PING {n}\n")), format!("PONG {n}"));
                worst = worst.max(sent.elapsed());
                n += 1;
                thread::sleep(Duration::from_millis(100));
            }
            (n, worst)
        });
        Bystander {
            stop,
            thread: Some(thread),
        }
    }

    /// Its heartbeats, and the slowest answer.
    fn done(mut self) -> (u32, Duration) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .take()
            .map(|t| t.join().expect("the bystander was answered every time"))
            .unwrap_or_default()
    }
}

#[test]
fn the_websockets_library_stays_online_on_the_server_s_pings_alone() {
    let (server, ws) = serve(&["--interval", "300ms", "--timeout", "1s"]);
    let url = format!("ws://{ws}/");
    // Silent for 3 s, three times the timeout: only the server's pings,
    // which the library answers by itself, keep it online.
    let lines = ws_peer(&["alive", &url, "3"]);
    assert_eq!(
        lines,
        [
            "got WELCOME py-alive interval=300 timeout=1000",
            "got PONG after-silence",
            "closed 1000 closed",
        ]
    );
    let (status, log) = server.stop();
    assert!(status.success());
    let stats = log
        .iter()
        .rev()
        .find(|l| l.contains("stats:"))
        .expect("stats");
    assert!(stats.contains("closed=1"), "{stats}");
    assert!(!stats.contains("timeout="), "nobody timed out: {stats}");
}

#[test]
fn without_server_pings_the_same_silence_is_a_timeout() {
    let (server, ws) = serve(&["--interval", "300ms", "--timeout", "1s", "--no-ws-ping"]);
    let mut p = WsPeer::upgraded(ws, "");
    p.text("HELLO quiet");
    assert!(p.line().starts_with("WELCOME quiet"));
    let start = Instant::now();
    p.expect_close("timeout", 1000);
    assert_closed_within(start.elapsed(), 1000, 2500);
    drop(server);
}

#[test]
fn an_id_moves_between_tcp_and_websocket_in_both_directions() {
    let (server, ws) = serve(&[]);
    let lines = ws_peer(&[
        "takeover",
        &format!("ws://{ws}/"),
        &server.addr.port().to_string(),
    ]);
    let welcome = "WELCOME pat interval=30000 timeout=45000";
    assert_eq!(
        lines,
        [
            format!("tcp {welcome}"),
            format!("ws {welcome}"),
            "tcp BYE replaced".to_owned(),
            format!("tcp2 {welcome}"),
            "ws BYE replaced".to_owned(),
            "ws closed 1008 replaced".to_owned(),
        ]
    );
}

#[test]
fn bad_websocket_input_closes_only_its_connection() {
    let (server, ws) = serve(&[
        "--interval",
        "2s",
        "--timeout",
        "6s",
        "--ws-handshake-timeout",
        "700ms",
        "--ws-origin",
        "http://good.example",
    ]);
    let bystander = Bystander::start(server.addr);
    let origin = "Origin: http://good.example\r\n";

    // Plain HTTP, a wrong version, a foreign origin: their status.
    let mut p = WsPeer::connect(ws);
    p.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    assert!(p.refusal().starts_with("HTTP/1.1 400 Bad Request\r\n"));
    let mut p = WsPeer::connect(ws);
    p.send(
        format!(
            "{}{origin}\r\n",
            UPGRADE.replace("Version: 13", "Version: 8")
        )
        .as_bytes(),
    );
    let answer = p.refusal();
    assert!(
        answer.starts_with("HTTP/1.1 426 Upgrade Required\r\n"),
        "{answer}"
    );
    assert!(answer.contains("Sec-WebSocket-Version: 13\r\n"), "{answer}");
    let mut p = WsPeer::connect(ws);
    p.send(format!("{UPGRADE}Origin: http://evil.example\r\n\r\n").as_bytes());
    assert!(p.refusal().starts_with("HTTP/1.1 403 Forbidden\r\n"));

    // Frames against the RFC: their close code.
    let mut p = WsPeer::upgraded(ws, origin);
    p.send(&[0x81, 0x04, b'P', b'I', b'N', b'G']);
    p.expect_close("bad-frame", 1002);
    let mut p = WsPeer::upgraded(ws, origin);
    p.send_frame(false, Opcode::Ping, b"x");
    p.expect_close("bad-frame", 1002);
    let mut p = WsPeer::upgraded(ws, origin);
    p.send_frame(true, Opcode::Binary, &vec![b'a'; 100_000]);
    p.expect_close("line-too-long", 1009);

    // A handshake that never ends: closed at its deadline, not before,
    // with nothing said.
    let mut p = WsPeer::connect(ws);
    p.send(b"GET / HTTP/1.1\r\nHost: t\r\n");
    let start = Instant::now();
    assert_eq!(p.refusal(), "");
    assert_closed_within(start.elapsed(), 690, 2500);

    // A good one still works after all that.
    let mut p = WsPeer::upgraded(ws, origin);
    p.text("HELLO fine");
    assert!(p.line().starts_with("WELCOME fine"));
    p.send_frame(true, Opcode::Ping, b"hi");
    assert_eq!(p.frame(), Some((Opcode::Pong, b"hi".to_vec())));

    let (beats, worst) = bystander.done();
    assert!(beats >= 5, "{beats} heartbeats");
    assert!(worst < Duration::from_millis(500), "a PONG took {worst:?}");
    let (status, log) = server.stop();
    assert!(status.success());
    for why in [
        "WebSocket handshake refused (400 Bad Request)",
        "WebSocket handshake refused (426 Upgrade Required)",
        "WebSocket handshake refused (403 Forbidden)",
        "WebSocket: an unmasked client frame; closing with bad-frame",
        "WebSocket: a control frame fragmented or over 125 bytes",
        "WebSocket: a message over the line limit; closing with line-too-long",
    ] {
        assert!(
            log.iter().any(|l| l.contains(why)),
            "no {why:?} in {log:#?}"
        );
    }
}

#[test]
fn fragments_and_a_ping_between_them_make_one_line() {
    let (server, ws) = serve(&[]);
    let mut p = WsPeer::upgraded(ws, "");
    p.send_frame(false, Opcode::Text, b"HEL");
    p.send_frame(true, Opcode::Ping, b"between");
    p.send_frame(false, Opcode::Continuation, b"LO ");
    p.send_frame(true, Opcode::Continuation, b"frag");
    assert_eq!(p.frame(), Some((Opcode::Pong, b"between".to_vec())));
    assert!(p.line().starts_with("WELCOME frag"));
    drop(server);
}

#[test]
fn wss_serves_websocket_inside_tls() {
    let dir = std::env::temp_dir().join(format!("vigil-wss-{}", std::process::id()));
    let status = Command::new("bash")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/scripts/gen-test-certs.sh"
        ))
        .arg(&dir)
        .status()
        .expect("run gen-test-certs.sh (needs openssl)");
    assert!(status.success());
    let file = |name: &str| dir.join(name).display().to_string();
    let server = Serve::start(&[
        "--listen",
        "127.0.0.1:0",
        "--listen",
        "wss://127.0.0.1:0",
        "--tls-cert",
        &file("cert.pem"),
        "--tls-key",
        &file("key.pem"),
    ]);
    let wss = server.listener("wss");
    let lines = ws_peer(&[
        "wss",
        &format!("wss://localhost:{}/", wss.port()),
        &file("ca.pem"),
    ]);
    assert_eq!(
        lines,
        [
            "got WELCOME py-tls interval=30000 timeout=45000",
            "got PONG 1"
        ]
    );
    // vigil's own client, over TLS and WebSocket.
    let client = util::LogChild::spawn(
        "vigil client wss",
        Command::new(env!("CARGO_BIN_EXE_vigil"))
            .args(["client", "--server", &wss.to_string(), "--id", "own-tls"])
            .args(["--protocol", "ws", "--tls", "--ca", &file("ca.pem")])
            .args(["--tls-name", "localhost"])
            .env("RUST_LOG", "info")
            .stdin(Stdio::null()),
    );
    client.wait_for("welcomed by", client.started());
    drop(client);
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn with_line_ping_vigil_client_stays_online_on_its_answers_alone() {
    let server = Serve::start(&["--interval", "300ms", "--timeout", "1s", "--line-ping"]);
    // The client beats every 5 s by itself, far slower than the timeout:
    // only its answers to the server's PINGs keep it online.
    let client = util::LogChild::spawn(
        "vigil client",
        Command::new(env!("CARGO_BIN_EXE_vigil"))
            .args([
                "client",
                "--server",
                &server.addr.to_string(),
                "--id",
                "slow",
            ])
            .args(["--interval", "5s"])
            .env("RUST_LOG", "info")
            .stdin(Stdio::null()),
    );
    client.wait_for("welcomed by", client.started());
    thread::sleep(Duration::from_secs(3));
    // A raw peer that never answers is closed for silence meanwhile.
    let mut mute = Peer::connect(server.addr);
    assert!(mute.ask("HELLO mute\n").starts_with("WELCOME mute"));
    assert_eq!(mute.line().as_deref(), Some("PING"));
    mute.expect_bye("timeout");
    drop(client);
    let (status, log) = server.stop();
    assert!(status.success());
    let stats = log
        .iter()
        .rev()
        .find(|l| l.contains("stats:"))
        .expect("stats");
    assert!(
        stats.contains("timeout=1"),
        "only the mute peer timed out: {stats}"
    );
}

#[test]
fn the_start_record_names_each_listener_s_scheme() {
    let dir = std::env::temp_dir().join(format!("vigil-ws-start-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let events = dir.join("events.jsonl");
    let (server, ws) = serve(&["--events", events.to_str().unwrap()]);
    let plain = server.addr;
    let (status, _) = server.stop();
    assert!(status.success());
    let text = std::fs::read_to_string(&events).unwrap();
    let start: serde_json::Value =
        serde_json::from_str(text.lines().next().expect("a start record")).unwrap();
    assert_eq!(
        start["listen"],
        serde_json::json!([plain.to_string(), format!("ws://{ws}")]),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A close `after` its cause: not before `early_ms`, and before `late_ms`.
#[track_caller]
fn assert_closed_within(after: Duration, early_ms: u64, late_ms: u64) {
    assert!(
        after >= Duration::from_millis(early_ms),
        "closed early: {after:?}"
    );
    assert!(
        after < Duration::from_millis(late_ms),
        "closed late: {after:?}"
    );
}
