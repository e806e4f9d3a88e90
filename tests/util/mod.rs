//! Shared helpers for the end-to-end tests: a `vigil serve` child process on
//! 127.0.0.1 with an ephemeral port, and a line-oriented test peer.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// How long any single wait in a test may take before it fails.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// A `vigil serve` process, killed when dropped.
pub struct Serve {
    child: Child,
    pub addr: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
}

impl Serve {
    /// Starts `vigil serve --listen 127.0.0.1:0 ARGS...` and waits until it listens.
    #[track_caller]
    pub fn start(args: &[&str]) -> Serve {
        Serve::start_with(args, |_| {})
    }

    /// Like [`Serve::start`], with a chance to adjust the command first.
    #[track_caller]
    pub fn start_with(args: &[&str], adjust: impl FnOnce(&mut Command)) -> Serve {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_vigil"));
        cmd.arg("serve");
        if !args.contains(&"--listen") {
            cmd.args(["--listen", "127.0.0.1:0"]);
        }
        cmd.args(args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        adjust(&mut cmd);
        let mut child = cmd.spawn().expect("spawn vigil serve");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = Arc::clone(&log);
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("listening on ").nth(1) {
                    let addr = rest.split_whitespace().next().unwrap_or("").to_owned();
                    let _ = tx.send(addr);
                }
                sink.lock().unwrap().push(line);
            }
        });
        let addr = match rx.recv_timeout(PATIENCE) {
            Ok(addr) => addr.parse().expect("listen address"),
            Err(_) => {
                let _ = child.kill();
                panic!("vigil serve did not start; log: {:?}", log.lock().unwrap());
            }
        };
        Serve { child, addr, log }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Connects a test peer.
    #[track_caller]
    pub fn connect(&self) -> Peer {
        Peer::connect(self.addr)
    }

    /// The server's log so far.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// Waits until a log line contains `needle`, and returns it.
    #[track_caller]
    pub fn wait_log(&self, needle: &str) -> String {
        let start = Instant::now();
        while start.elapsed() < PATIENCE {
            if let Some(l) = self.log().into_iter().find(|l| l.contains(needle)) {
                return l;
            }
            thread::sleep(Duration::from_millis(20));
        }
        panic!("no log line with {needle:?} in {:#?}", self.log());
    }

    /// Sends a signal to the server.
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill has no memory preconditions; the pid is our child's.
        unsafe { libc::kill(self.pid(), sig) };
    }

    /// SIGTERM, then waits for the exit.
    #[track_caller]
    pub fn stop(mut self) -> (ExitStatus, Vec<String>) {
        self.signal(libc::SIGTERM);
        let status = self.wait_exit();
        // Let the log reader take the last lines.
        thread::sleep(Duration::from_millis(100));
        (status, self.log())
    }

    #[track_caller]
    pub fn wait_exit(&mut self) -> ExitStatus {
        let start = Instant::now();
        while start.elapsed() < PATIENCE {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            thread::sleep(Duration::from_millis(20));
        }
        panic!("vigil serve did not exit");
    }

    /// CPU time (user + system) the server has used so far.
    pub fn cpu_time(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap();
        // Fields after the command name, which is in parentheses.
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
        Duration::from_millis(ticks * 1000 / hz)
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A test peer speaking lines over a blocking socket with timeouts.
pub struct Peer {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl Peer {
    #[track_caller]
    pub fn connect(addr: SocketAddr) -> Peer {
        let stream = TcpStream::connect_timeout(&addr, PATIENCE).expect("connect");
        stream.set_read_timeout(Some(PATIENCE)).unwrap();
        stream.set_nodelay(true).unwrap();
        Peer {
            stream,
            buf: Vec::new(),
        }
    }

    #[track_caller]
    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send");
    }

    /// The next line from the server, without its ending; `None` at EOF.
    #[track_caller]
    pub fn line(&mut self) -> Option<String> {
        loop {
            if let Some(nl) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=nl).collect();
                return Some(String::from_utf8_lossy(&line[..nl]).into_owned());
            }
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == ErrorKind::ConnectionReset => return None,
                Err(e) => panic!("read: {e}"),
            }
        }
    }

    /// Sends `request` and returns the one-line answer.
    #[track_caller]
    pub fn ask(&mut self, request: &str) -> String {
        self.send(request.as_bytes());
        self.line().expect("an answer, not EOF")
    }

    /// Expects `BYE <reason>` and then the end of the stream.
    #[track_caller]
    pub fn expect_bye(&mut self, reason: &str) {
        assert_eq!(self.line().as_deref(), Some(&*format!("BYE {reason}")));
        assert_eq!(self.line(), None, "expected EOF after BYE");
    }
}

/// Polls `cond` until it is true or the patience runs out.
#[track_caller]
pub fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < PATIENCE {
        if cond() {
            return;
        }
        thread::sleep(Duration::from_millis(20));
    }
    panic!("timed out waiting for {what}");
}

/// One parsed line of the events file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventLine {
    pub conn: u64,
    pub client: Option<String>,
    pub event: String,
    pub reason: Option<String>,
}

/// Parses the JSON lines vigil writes (flat objects, known keys).
pub fn parse_events(text: &str) -> Vec<EventLine> {
    fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
        let start = line.find(&format!("\"{key}\":"))? + key.len() + 3;
        let rest = &line[start..];
        if let Some(s) = rest.strip_prefix('"') {
            // vigil's ids never hold an escaped quote in these tests.
            return Some(&s[..s.find('"')?]);
        }
        let end = rest.find([',', '}'])?;
        match &rest[..end] {
            "null" => None,
            v => Some(v),
        }
    }
    text.lines()
        .map(|l| EventLine {
            conn: field(l, "conn").and_then(|c| c.parse().ok()).expect("conn"),
            client: field(l, "client").map(str::to_owned),
            event: field(l, "event").expect("event").to_owned(),
            reason: field(l, "reason").map(str::to_owned),
        })
        .collect()
}

/// What a finished `vigil load` run printed.
pub struct LoadRun {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl LoadRun {
    /// The `--json` report, parsed.
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        assert!(self.status.success(), "vigil load failed: {}", self.stderr);
        serde_json::from_str(self.stdout.trim()).unwrap_or_else(|e| {
            panic!(
                "not one JSON object ({e}): {}\nstderr: {}",
                self.stdout, self.stderr
            )
        })
    }
}

/// A running `vigil load`, with its output collected by threads.
pub struct Load {
    child: Child,
    out: Option<thread::JoinHandle<String>>,
    err: Option<thread::JoinHandle<String>>,
}

impl Load {
    /// Starts `vigil load ARGS...`.
    #[track_caller]
    pub fn start(args: &[&str]) -> Load {
        let mut child = Command::new(env!("CARGO_BIN_EXE_vigil"))
            .arg("load")
            .args(args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn vigil load");
        let mut stdout = child.stdout.take().expect("stdout");
        let mut stderr = child.stderr.take().expect("stderr");
        let out = thread::spawn(move || {
            let mut s = String::new();
            let _ = stdout.read_to_string(&mut s);
            s
        });
        let err = thread::spawn(move || {
            let mut s = String::new();
            let _ = stderr.read_to_string(&mut s);
            s
        });
        Load {
            child,
            out: Some(out),
            err: Some(err),
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Waits at most `within` for the run to end (killing it and failing
    /// after that), and returns what it printed.
    #[track_caller]
    pub fn finish(mut self, within: Duration) -> LoadRun {
        let start = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                break status;
            }
            if start.elapsed() > within {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("vigil load still running after {within:?}");
            }
            thread::sleep(Duration::from_millis(20));
        };
        let text = |h: Option<thread::JoinHandle<String>>| {
            h.map(|h| h.join().unwrap_or_default()).unwrap_or_default()
        };
        LoadRun {
            status,
            stdout: text(self.out.take()),
            stderr: text(self.err.take()),
        }
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `vigil load ARGS...` to its end, bounded by `within`.
#[track_caller]
pub fn load(args: &[&str], within: Duration) -> LoadRun {
    Load::start(args).finish(within)
}
