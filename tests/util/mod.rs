//! Shared helpers for the end-to-end tests: a child process whose log is
//! watched ([`LogChild`]), a `vigil serve` child process on 127.0.0.1 with an
//! ephemeral port, and a line-oriented test peer.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

/// How long any single wait in a test may take before it fails.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// An instant before every line any [`LogChild`] logs: "any line so far".
/// (`Instant::now() - an hour` would panic on a machine up for less.)
pub fn ever() -> Instant {
    static EVER: OnceLock<Instant> = OnceLock::new();
    *EVER.get_or_init(Instant::now)
}

/// A child process whose output lines are collected, as they arrive, by a
/// thread per stream (stderr always, stdout when the command pipes it),
/// each line stamped with the test's clock. Killed (SIGKILL, which also ends
/// a stopped process) and reaped when dropped.
///
/// Waits are bounded by the patience it was given ([`PATIENCE`] unless
/// [`LogChild::patience`] says otherwise), and fail at once when the process
/// has closed its output without logging what is waited for.
pub struct LogChild {
    child: Child,
    name: String,
    started: Instant,
    patience: Duration,
    log: Arc<Mutex<Vec<(Instant, String)>>>,
    readers: Vec<thread::JoinHandle<()>>,
}

impl LogChild {
    /// Spawns `cmd` with its stderr piped and collected (and its stdout too,
    /// if `cmd` pipes it); `name` names it in failure messages.
    #[track_caller]
    pub fn spawn(name: &str, cmd: &mut Command) -> LogChild {
        ever();
        let started = Instant::now();
        let mut child = cmd
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {name}: {e}"));
        let log = Arc::new(Mutex::new(Vec::new()));
        let collect = |stream: Box<dyn Read + Send>| {
            let sink = Arc::clone(&log);
            thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    sink.lock().unwrap().push((Instant::now(), line));
                }
            })
        };
        let mut readers = Vec::new();
        if let Some(out) = child.stdout.take() {
            readers.push(collect(Box::new(out)));
        }
        if let Some(err) = child.stderr.take() {
            readers.push(collect(Box::new(err)));
        }
        LogChild {
            child,
            name: name.to_owned(),
            started,
            patience: PATIENCE,
            log,
            readers,
        }
    }

    /// Bounds every later wait by `patience` instead of [`PATIENCE`].
    pub fn patience(mut self, patience: Duration) -> LogChild {
        self.patience = patience;
        self
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// When it was spawned: before any of its lines.
    pub fn started(&self) -> Instant {
        self.started
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// The process itself, for its stdin or its exit status.
    pub fn child(&mut self) -> &mut Child {
        &mut self.child
    }

    /// Sends a signal to the process.
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill has no memory preconditions; the pid is our child's,
        // not reaped before `self` is dropped or has seen it exit.
        unsafe { libc::kill(self.pid(), sig) };
    }

    /// Every line so far.
    pub fn lines(&self) -> Vec<String> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .map(|(_, l)| l.clone())
            .collect()
    }

    /// Lines (with their arrival time) containing `needle`.
    pub fn find(&self, needle: &str) -> Vec<(Instant, String)> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, l)| l.contains(needle))
            .cloned()
            .collect()
    }

    /// How many lines contain `needle`.
    pub fn count(&self, needle: &str) -> usize {
        self.find(needle).len()
    }

    /// When the first line containing `needle` at or after `since` arrived.
    #[track_caller]
    pub fn wait_for(&self, needle: &str, since: Instant) -> Instant {
        self.wait_for_any(&[needle], since, self.patience)
    }

    /// When the first line containing any of `needles` at or after `since`
    /// arrived; waits at most `patience`.
    #[track_caller]
    pub fn wait_for_any(&self, needles: &[&str], since: Instant, patience: Duration) -> Instant {
        self.wait_line(needles, since, patience).0
    }

    /// The first line containing any of `needles` at or after `since`, and
    /// when it arrived; waits at most `patience`.
    #[track_caller]
    pub fn wait_line(
        &self,
        needles: &[&str],
        since: Instant,
        patience: Duration,
    ) -> (Instant, String) {
        let start = Instant::now();
        loop {
            // Whether the output was closed is read before the log, so
            // that no line can slip in between the two.
            let closed = self.readers.iter().all(|r| r.is_finished());
            let found = self
                .log
                .lock()
                .unwrap()
                .iter()
                .find(|(t, l)| *t >= since && needles.iter().any(|n| l.contains(n)))
                .cloned();
            if let Some(found) = found {
                return found;
            }
            let why = if closed {
                "before it closed its output"
            } else if start.elapsed() > patience {
                "in time"
            } else {
                thread::sleep(Duration::from_millis(10));
                continue;
            };
            panic!(
                "{} never logged {needles:?} {why} (waited at most {patience:?}): {:#?}",
                self.name,
                self.lines()
            );
        }
    }

    /// Waits (bounded by the patience) for the process to exit, then for
    /// its last lines to be collected.
    #[track_caller]
    pub fn wait_exit(&mut self) -> ExitStatus {
        let start = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                break status;
            }
            assert!(
                start.elapsed() < self.patience,
                "{} did not exit within {:?}",
                self.name,
                self.patience
            );
            thread::sleep(Duration::from_millis(20));
        };
        // Its output ends with it, unless a child of its own still holds
        // the pipe: then what was collected so far is all there is.
        let start = Instant::now();
        while !self.readers.iter().all(|r| r.is_finished())
            && start.elapsed() < Duration::from_secs(1)
        {
            thread::sleep(Duration::from_millis(5));
        }
        status
    }

    /// SIGTERM, then [`LogChild::wait_exit`].
    #[track_caller]
    pub fn terminate(&mut self) -> ExitStatus {
        self.signal(libc::SIGTERM);
        self.wait_exit()
    }
}

impl Drop for LogChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `vigil serve` process, killed when dropped.
pub struct Serve {
    proc: LogChild,
    pub addr: SocketAddr,
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
            .stdout(Stdio::null());
        adjust(&mut cmd);
        let proc = LogChild::spawn("vigil serve", &mut cmd);
        let (_, line) = proc.wait_line(&["listening on "], proc.started(), PATIENCE);
        let addr = line
            .split("listening on ")
            .nth(1)
            .and_then(|rest| rest.split([',', ' ']).next())
            .and_then(|addr| addr.split("://").last())
            .and_then(|addr| addr.parse().ok())
            .unwrap_or_else(|| panic!("no listen address in {line:?}"));
        Serve { proc, addr }
    }

    /// Starts `vigil serve --admin 127.0.0.1:0 ARGS...`; also returns the
    /// admin endpoint's address, read from the log.
    #[track_caller]
    pub fn start_admin(args: &[&str]) -> (Serve, SocketAddr) {
        let mut all = vec!["--admin", "127.0.0.1:0"];
        all.extend_from_slice(args);
        let server = Serve::start(&all);
        let line = server.wait_log("admin endpoint on http://");
        let addr = line
            .split("http://")
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("no admin address in {line:?}"));
        (server, addr)
    }

    pub fn pid(&self) -> i32 {
        self.proc.pid()
    }

    /// The address of the listener given as `scheme://...` (`ws`, `resp`,
    /// ...), read from the server's "listening on" log line.
    #[track_caller]
    pub fn listener(&self, scheme: &str) -> SocketAddr {
        let line = self.wait_log("listening on ");
        let prefix = format!("{scheme}://");
        line.split("listening on ")
            .nth(1)
            .into_iter()
            .flat_map(|rest| rest.split([',', ' ']))
            .find_map(|a| a.strip_prefix(prefix.as_str()))
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("no {prefix} listener in {line:?}"))
    }

    /// Connects a test peer.
    #[track_caller]
    pub fn connect(&self) -> Peer {
        Peer::connect(self.addr)
    }

    /// The server's log so far.
    pub fn log(&self) -> Vec<String> {
        self.proc.lines()
    }

    /// Waits until a log line contains `needle`, and returns it.
    #[track_caller]
    pub fn wait_log(&self, needle: &str) -> String {
        self.proc
            .wait_line(&[needle], self.proc.started(), PATIENCE)
            .1
    }

    /// Sends a signal to the server.
    pub fn signal(&self, sig: i32) {
        self.proc.signal(sig);
    }

    /// SIGTERM, then waits for the exit.
    #[track_caller]
    pub fn stop(mut self) -> (ExitStatus, Vec<String>) {
        let status = self.proc.terminate();
        (status, self.log())
    }

    #[track_caller]
    pub fn wait_exit(&mut self) -> ExitStatus {
        self.proc.wait_exit()
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

/// The Python of the venv `target/NAME` that scripts/install-deps.sh
/// makes (with redis-py, Selenium, websockets...); fails, saying so, when
/// it is missing.
#[track_caller]
#[allow(dead_code)]
pub fn venv_python(name: &str) -> std::path::PathBuf {
    let python = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join(name)
        .join("bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/install-deps.sh (scripts/test.sh does)",
        python.display()
    );
    python
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
    // Run records (start, stop, gap) name no connection.
    text.lines()
        .filter(|l| l.contains("\"conn\":"))
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
