//! `vigil serve --workers N`: the supervisor. It reserves the port, starts
//! N copies of `vigil serve` as workers on it (`SO_REUSEPORT`, a hidden
//! `--worker-of`), restarts a worker that dies (with backoff), forwards
//! SIGINT and SIGTERM, and with `--events` writes every worker's events to
//! the one file, emitting `worker-lost` offline events for the connections
//! of a worker that died. See `vigil::server::workers` for the workers'
//! side.

mod tracker;

use std::ffi::OsString;
use std::fs::OpenOptions;
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::{SocketAddr as UnixAddr, UnixDatagram};
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, ChildStdout, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime};

use socket2::{Domain, Protocol, Socket, Type};
use vigil::server::workers::WorkerSlot;

use tracker::Tracker;

/// The most workers `--workers` accepts.
pub const MAX_WORKERS: u32 = 1024;
/// Descriptors a worker keeps for itself beyond its connections.
const FD_RESERVE: u64 = 64;
/// How long the workers have to say they are ready at start.
const START_PATIENCE: Duration = Duration::from_secs(10);
/// How long the workers have to shut down gracefully before they are killed.
const STOP_PATIENCE: Duration = Duration::from_secs(30);
/// The first restart waits this long, doubling up to [`MAX_BACKOFF`] for a
/// worker that keeps dying within [`STABLE_AFTER`] of its start.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
const STABLE_AFTER: Duration = Duration::from_secs(10);

/// `--workers`: a count, or `auto`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workers {
    /// Exactly this many.
    Count(u32),
    /// One per core, or more when `--max-conns` needs more open files than
    /// one process may have.
    Auto,
}

impl Workers {
    /// The clap value parser.
    pub fn parse(s: &str) -> Result<Workers, String> {
        if s == "auto" {
            return Ok(Workers::Auto);
        }
        match s.parse::<u32>() {
            Ok(0) => Err("must be at least 1 (or auto)".to_owned()),
            Ok(n) if n > MAX_WORKERS => Err(format!("must be at most {MAX_WORKERS}")),
            Ok(n) => Ok(Workers::Count(n)),
            Err(_) => Err("expected a number of workers or auto".to_owned()),
        }
    }

    /// How many workers to run, given the cores, the hard open-files limit
    /// of one process and `--max-conns`.
    pub fn resolve(self, cores: u32, nofile_hard: u64, max_conns: Option<usize>) -> u32 {
        match self {
            Workers::Count(n) => n,
            Workers::Auto => {
                let per_process = nofile_hard.saturating_sub(FD_RESERVE).max(1);
                let needed =
                    max_conns.map_or(1, |m| (with_headroom(m) as u64).div_ceil(per_process));
                let needed = u32::try_from(needed).unwrap_or(MAX_WORKERS);
                cores.max(needed).clamp(1, MAX_WORKERS)
            }
        }
    }
}

impl std::fmt::Display for Workers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Workers::Count(n) => write!(f, "{n}"),
            Workers::Auto => f.write_str("auto"),
        }
    }
}

/// `max_conns` and a tenth more: client ids do not spread over the
/// workers exactly evenly, and each worker holds the connections of the
/// ids it owns, so each needs room for a little more than its share.
fn with_headroom(max_conns: usize) -> usize {
    max_conns.saturating_add(max_conns.div_ceil(10))
}

/// Each worker's `--max-conns` when the whole server may hold `max_conns`
/// on `count` workers: its share, with headroom (see [`with_headroom`]).
pub fn worker_share(max_conns: usize, count: u32) -> usize {
    with_headroom(max_conns.div_ceil(count.max(1) as usize))
}

/// `--worker-of INDEX/COUNT/GROUP/FIRST_CONN`: the hidden flag the
/// supervisor starts each worker with.
pub fn parse_slot(s: &str) -> Result<WorkerSlot, String> {
    let bad = || format!("expected INDEX/COUNT/GROUP/FIRST_CONN, got {s:?}");
    let mut parts = s.split('/');
    let mut next = || parts.next().ok_or_else(bad);
    let index = next()?.parse().map_err(|_| bad())?;
    let count = next()?.parse().map_err(|_| bad())?;
    let group = next()?.to_owned();
    let first_conn = next()?.parse().map_err(|_| bad())?;
    if index >= count || group.is_empty() || parts.next().is_some() {
        return Err(bad());
    }
    Ok(WorkerSlot {
        index,
        count,
        group,
        first_conn,
    })
}

/// The number of the first connection of worker `index` in its
/// `incarnation`-th start: `(index + 1) × 10^12 + (incarnation mod 1000) ×
/// 10^9 + 1`, so numbers are unique across workers and restarts (for a
/// billion connections per start) and stay below 2^53 (exact in JSON).
pub fn first_conn(index: u32, incarnation: u32) -> u64 {
    (u64::from(index) + 1) * 1_000_000_000_000 + u64::from(incarnation % 1000) * 1_000_000_000 + 1
}

/// The supervisor socket's name for group `group`: workers send `ready`
/// and their final counts there.
pub fn supervisor_socket(group: &str) -> String {
    format!("vigil-{group}-supervisor")
}

/// Tells the supervisor (if any) something: `ready INDEX` once listening,
/// `stopped INDEX ACCEPTED` at exit. Best effort.
pub fn tell_supervisor(slot: &WorkerSlot, message: &str) {
    use std::os::linux::net::SocketAddrExt;
    let sent = UnixDatagram::unbound().and_then(|s| {
        let to = UnixAddr::from_abstract_name(supervisor_socket(&slot.group))?;
        s.send_to_addr(message.as_bytes(), &to)
    });
    if let Err(e) = sent {
        log::warn!("cannot reach the supervisor: {e}");
    }
}

/// What the supervisor starts each worker with.
struct Plan {
    exe: std::path::PathBuf,
    /// `serve` and the user's flags, less the ones the supervisor sets.
    args: Vec<OsString>,
    listen: String,
    count: u32,
    group: String,
    max_conns: Option<usize>,
    events: bool,
}

/// One worker slot: its process, if running, and its restart state.
struct Slot {
    child: Option<Child>,
    pid: u32,
    started: Instant,
    incarnation: u32,
    failures: u32,
    restart_at: Option<Instant>,
    ready: bool,
    reader: Option<JoinHandle<()>>,
}

/// The `--events` output and the presence of every connection.
struct Events {
    out: Box<dyn Write + Send>,
    tracker: Tracker,
    /// The clock the tracker's losses are timed on.
    started: Instant,
}

type SharedEvents = Arc<Mutex<Events>>;

/// Runs the supervisor until SIGINT or SIGTERM; the exit code.
pub fn run(count: u32, listen: &str, max_conns: Option<usize>, events: Option<&str>) -> ExitCode {
    match supervise(count, listen, max_conns, events) {
        Ok(code) => code,
        Err(e) => {
            log::error!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn supervise(
    count: u32,
    listen: &str,
    max_conns: Option<usize>,
    events_path: Option<&str>,
) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let group = std::process::id().to_string();
    // The port is reserved (bound, not listening) before any worker
    // starts: port 0 gets its number here, a port in use fails here.
    let (reserved, listen) = reserve(listen)?;
    // The server's run, as the events file sees it (each worker's
    // connection lines carry their worker's own run id).
    let run = vigil::events::RunId::random();
    let listen_addrs = vigil::addr::resolve(listen.as_str()).unwrap_or_default();
    let events = match events_path {
        None => None,
        Some(path) => {
            let mut out = open_events(path)?;
            let mut line = String::new();
            vigil::events::Start {
                version: env!("CARGO_PKG_VERSION"),
                listen: &listen_addrs,
                schemes: &[],
                protocol: "workers",
                settings: &[("workers", u64::from(count))],
            }
            .write_json(run, std::time::SystemTime::now(), &mut line);
            let _ = out.write_all(line.as_bytes());
            Some(Arc::new(Mutex::new(Events {
                out,
                tracker: Tracker::default(),
                started: Instant::now(),
            })))
        }
    };
    let control = {
        use std::os::linux::net::SocketAddrExt;
        let addr = UnixAddr::from_abstract_name(supervisor_socket(&group))?;
        let s = UnixDatagram::bind_addr(&addr)
            .map_err(|e| format!("cannot bind the supervisor socket: {e}"))?;
        s.set_read_timeout(Some(Duration::from_millis(50)))?;
        s
    };
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop))?;
    }
    let plan = Plan {
        exe: std::env::current_exe()?,
        args: worker_args(std::env::args_os().skip(1)),
        listen,
        count,
        group,
        max_conns: max_conns.map(|m| worker_share(m, count)),
        events: events.is_some(),
    };
    let mut slots: Vec<Slot> = Vec::with_capacity(count as usize);
    for index in 0..count {
        let mut slot = Slot {
            child: None,
            pid: 0,
            started: Instant::now(),
            incarnation: 0,
            failures: 0,
            restart_at: None,
            ready: false,
            reader: None,
        };
        if let Err(e) = start(&plan, index, &mut slot, events.as_ref()) {
            log::error!("cannot start worker {index} of {count}: {e}; stopping");
            stop_all(&mut slots, events.as_ref());
            return Ok(ExitCode::FAILURE);
        }
        slots.push(slot);
    }
    // Wait for every worker to listen, or to fail.
    let deadline = Instant::now() + START_PATIENCE;
    let mut buf = [0u8; 256];
    while slots.iter().any(|s| !s.ready && s.child.is_some()) && Instant::now() < deadline {
        receive(&control, &mut buf, &mut slots);
        reap(&plan, &mut slots, events.as_ref());
        if stop.load(Ordering::Relaxed) {
            break;
        }
    }
    let ready = slots.iter().filter(|s| s.ready).count();
    if ready == 0 {
        log::error!("no worker could start (see their errors above)");
        stop_all(&mut slots, events.as_ref());
        return Ok(ExitCode::FAILURE);
    }
    log::info!(
        "listening on {} with {ready} of {count} workers (supervisor pid {})",
        plan.listen,
        std::process::id()
    );
    drop(reserved);
    let mut accepted = 0u64;
    while !stop.load(Ordering::Relaxed) {
        accepted += receive(&control, &mut buf, &mut slots);
        reap(&plan, &mut slots, events.as_ref());
        let now = Instant::now();
        for (index, slot) in slots.iter_mut().enumerate() {
            if slot.restart_at.is_some_and(|at| at <= now) {
                slot.restart_at = None;
                if let Err(e) = start(&plan, index as u32, slot, events.as_ref()) {
                    log::error!("cannot restart worker {index}: {e}");
                    slot.failures += 1;
                    slot.restart_at = Some(now + backoff(slot.failures));
                }
            }
        }
    }
    log::info!("shutting down {} workers", slots.len());
    let stopped = stop_all(&mut slots, events.as_ref());
    while let Ok(n) = control.recv(&mut buf) {
        accepted += stopped_count(&buf[..n]);
    }
    log::info!("stopped after {accepted} connections (all workers)");
    if let Some(events) = &events {
        if let Ok(mut e) = events.lock() {
            let mut line = String::new();
            vigil::events::write_stop(run, std::time::SystemTime::now(), accepted, 0, &mut line);
            let _ = e.out.write_all(line.as_bytes());
            let _ = e.out.flush();
        }
    }
    if stopped < slots.len() {
        log::error!("only {stopped} of {} workers stopped cleanly", slots.len());
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// Binds every address of `listen` with `SO_REUSEPORT`, without listening,
/// so the port is held for the workers and its number known; returns the
/// sockets and the listen address with the port filled in.
fn reserve(listen: &str) -> Result<(Vec<Socket>, String), Box<dyn std::error::Error>> {
    let addrs = vigil::addr::resolve(listen)?;
    let mut port = None;
    let mut sockets = Vec::with_capacity(addrs.len());
    for mut addr in addrs {
        if let (0, Some(p)) = (addr.port(), port) {
            addr.set_port(p);
        }
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        socket.set_reuse_address(true)?;
        socket.set_reuse_port(true)?;
        if addr.is_ipv6() {
            socket.set_only_v6(true)?;
        }
        socket
            .bind(&addr.into())
            .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
        let local = socket.local_addr()?.as_socket().ok_or("not an IP socket")?;
        port.get_or_insert(local.port());
        sockets.push(socket);
    }
    let port = port.ok_or("no address to listen on")?;
    let host = listen.rsplit_once(':').map_or(listen, |(h, _)| h);
    Ok((sockets, format!("{host}:{port}")))
}

fn open_events(path: &str) -> Result<Box<dyn Write + Send>, String> {
    if path == "-" {
        return Ok(Box::new(io::stdout()));
    }
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| format!("cannot open the events file {path}: {e}"))?;
    Ok(Box::new(io::BufWriter::new(file)))
}

/// The user's flags for the workers: without the ones the supervisor sets
/// for each (`--workers`, `--listen`, `--max-conns`, `--events`).
fn worker_args(args: impl Iterator<Item = OsString>) -> Vec<OsString> {
    const SET_HERE: [&str; 4] = ["--workers", "--listen", "--max-conns", "--events"];
    let mut out = Vec::new();
    let mut skip_value = false;
    for arg in args {
        if std::mem::take(&mut skip_value) {
            continue;
        }
        let text = arg.to_string_lossy();
        if let Some(flag) = SET_HERE.iter().find(|f| text.starts_with(*f)) {
            if text.len() == flag.len() {
                skip_value = true;
                continue;
            }
            if text[flag.len()..].starts_with('=') {
                continue;
            }
        }
        out.push(arg);
    }
    out
}

/// Starts worker `index` in `slot`.
fn start(
    plan: &Plan,
    index: u32,
    slot: &mut Slot,
    events: Option<&SharedEvents>,
) -> io::Result<()> {
    let spec = format!(
        "{index}/{}/{}/{}",
        plan.count,
        plan.group,
        first_conn(index, slot.incarnation)
    );
    let mut cmd = Command::new(&plan.exe);
    cmd.args(&plan.args)
        .arg("--listen")
        .arg(&plan.listen)
        .arg("--worker-of")
        .arg(&spec)
        .stdin(Stdio::null());
    if let Some(m) = plan.max_conns {
        cmd.arg("--max-conns").arg(m.to_string());
    }
    if plan.events {
        cmd.args(["--events", "-"]).stdout(Stdio::piped());
    }
    let mut child = cmd.spawn()?;
    slot.pid = child.id();
    slot.started = Instant::now();
    slot.incarnation += 1;
    slot.ready = false;
    if let (Some(out), Some(events)) = (child.stdout.take(), events) {
        let events = Arc::clone(events);
        slot.reader = Some(
            thread::Builder::new()
                .name(format!("events-{index}"))
                .spawn(move || copy_events(index, out, &events))?,
        );
    }
    log::debug!("worker {index} started: pid {}", slot.pid);
    slot.child = Some(child);
    Ok(())
}

/// Copies worker `index`'s event lines to the events output, whole, and
/// keeps the presence of its connections.
fn copy_events(index: u32, out: ChildStdout, events: &SharedEvents) {
    let mut lines = BufReader::with_capacity(64 * 1024, out);
    let mut line = String::new();
    loop {
        line.clear();
        match lines.read_line(&mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        if !line.ends_with('\n') {
            // A worker killed mid-line: the piece is not an event.
            break;
        }
        let Ok(mut e) = events.lock() else {
            return;
        };
        if e.tracker.handle_line(index, line.trim_end()) {
            let _ = e.out.write_all(line.as_bytes());
        }
        if lines.buffer().is_empty() {
            let _ = e.out.flush();
        }
    }
    if let Ok(mut e) = events.lock() {
        let _ = e.out.flush();
    }
}

/// Reads the workers' messages for up to 50 ms; the connections counted
/// by workers that stopped.
fn receive(control: &UnixDatagram, buf: &mut [u8], slots: &mut [Slot]) -> u64 {
    let mut accepted = 0;
    while let Ok(n) = control.recv(buf) {
        let text = String::from_utf8_lossy(&buf[..n]);
        let mut words = text.split_whitespace();
        match (
            words.next(),
            words.next().and_then(|i| i.parse::<usize>().ok()),
        ) {
            (Some("ready"), Some(i)) => {
                if let Some(slot) = slots.get_mut(i) {
                    slot.ready = true;
                    log::info!("worker {i} ready (pid {})", slot.pid);
                }
            }
            (Some("stopped"), Some(_)) => accepted += stopped_count(&buf[..n]),
            _ => log::debug!("supervisor: unknown message {text:?}"),
        }
        control
            .set_read_timeout(Some(Duration::from_millis(1)))
            .ok();
    }
    control
        .set_read_timeout(Some(Duration::from_millis(50)))
        .ok();
    accepted
}

/// The count in a `stopped INDEX ACCEPTED` message.
fn stopped_count(message: &[u8]) -> u64 {
    let text = String::from_utf8_lossy(message);
    let mut words = text.split_whitespace();
    match (words.next(), words.nth(1)) {
        (Some("stopped"), Some(n)) => n.parse().unwrap_or(0),
        _ => 0,
    }
}

/// Notices workers that exited: reports each with its reason, declares its
/// connections `worker-lost`, and schedules its restart.
fn reap(plan: &Plan, slots: &mut [Slot], events: Option<&SharedEvents>) {
    for (index, slot) in slots.iter_mut().enumerate() {
        let Some(child) = slot.child.as_mut() else {
            continue;
        };
        let status = match child.try_wait() {
            Ok(Some(status)) => status,
            Ok(None) => continue,
            Err(e) => {
                log::error!("worker {index}: cannot wait for it: {e}");
                continue;
            }
        };
        slot.child = None;
        let how = match (status.code(), status.signal()) {
            (Some(code), _) => format!("exited with status {code}"),
            (None, Some(sig)) => format!("was killed by signal {sig}"),
            _ => format!("ended ({status})"),
        };
        let ran = slot.started.elapsed();
        if !slot.ready {
            log::error!(
                "worker {index} (pid {}) {how} before it was ready (see its error above)",
                slot.pid
            );
        } else {
            log::error!("worker {index} (pid {}) {how} after {ran:.1?}", slot.pid);
        }
        lose(index as u32, slot, events);
        if ran >= STABLE_AFTER {
            slot.failures = 0;
        }
        slot.failures += 1;
        {
            let wait = backoff(slot.failures);
            log::info!("restarting worker {index} of {} in {wait:?}", plan.count);
            slot.restart_at = Some(Instant::now() + wait);
        }
    }
}

/// Worker `index` is gone: once its pipe is drained, its live connections
/// get their `worker-lost` offline events.
fn lose(index: u32, slot: &mut Slot, events: Option<&SharedEvents>) {
    if let Some(reader) = slot.reader.take() {
        let _ = reader.join();
    }
    let Some(events) = events else {
        return;
    };
    let Ok(mut e) = events.lock() else {
        return;
    };
    let time = vigil::events::format_time(SystemTime::now());
    let now_ms = u64::try_from(e.started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let lines = e.tracker.handle_lost(index, &time, now_ms);
    if !lines.is_empty() {
        log::warn!("worker {index}: {} connections lost with it", lines.len());
    }
    for line in lines {
        let _ = writeln!(e.out, "{line}");
    }
    let _ = e.out.flush();
}

/// How long to wait before the `failures`-th restart in a row.
fn backoff(failures: u32) -> Duration {
    let doubled = FIRST_BACKOFF.saturating_mul(1 << failures.saturating_sub(1).min(16));
    doubled.min(MAX_BACKOFF)
}

/// SIGTERM to every worker, then waits for them (killing the ones that
/// take longer than [`STOP_PATIENCE`]); drains their events. How many
/// stopped on their own.
fn stop_all(slots: &mut [Slot], events: Option<&SharedEvents>) -> usize {
    for slot in slots.iter() {
        if slot.child.is_some() {
            // SAFETY: kill has no memory preconditions; the pid is our
            // child's, not yet waited for, so it names no other process.
            unsafe { libc::kill(slot.pid as libc::pid_t, libc::SIGTERM) };
        }
    }
    let deadline = Instant::now() + STOP_PATIENCE;
    let mut clean = 0;
    for (index, slot) in slots.iter_mut().enumerate() {
        let Some(mut child) = slot.child.take() else {
            continue;
        };
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
                Ok(None) => {
                    log::error!("worker {index} did not stop in {STOP_PATIENCE:?}; killing it");
                    let _ = child.kill();
                    break child.wait().ok();
                }
                Err(_) => break None,
            }
        };
        if status.is_some_and(|s| s.success()) {
            clean += 1;
        } else {
            log::error!("worker {index} stopped with {status:?}");
        }
        lose(index as u32, slot, events);
    }
    clean
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_counts_are_checked() {
        assert_eq!(Workers::parse("4"), Ok(Workers::Count(4)));
        assert_eq!(Workers::parse("auto"), Ok(Workers::Auto));
        assert!(Workers::parse("0").is_err());
        assert!(Workers::parse("1025").is_err());
        assert!(Workers::parse("-1").is_err());
        assert!(Workers::parse("").is_err());
        assert!(Workers::parse("two").is_err());
    }

    #[test]
    fn auto_is_a_worker_per_core_or_what_open_files_need() {
        // 2 cores, 20,000 open files a process.
        assert_eq!(Workers::Auto.resolve(2, 20_000, None), 2);
        assert_eq!(Workers::Auto.resolve(2, 20_000, Some(30_000)), 2);
        // A million connections and a tenth of headroom need 56
        // processes of 19,936.
        assert_eq!(Workers::Auto.resolve(2, 20_000, Some(1_000_000)), 56);
        assert_eq!(worker_share(1_000_000, 56), 19_644);
        assert_eq!(worker_share(10, 3), 5);
        assert_eq!(Workers::Auto.resolve(8, 1 << 20, Some(1_000_000)), 8);
        assert_eq!(Workers::Auto.resolve(2, 0, Some(usize::MAX)), MAX_WORKERS);
        assert_eq!(Workers::Count(3).resolve(64, 10, Some(1_000_000)), 3);
    }

    #[test]
    fn connection_numbers_do_not_meet() {
        assert_eq!(first_conn(0, 0), 1_000_000_000_001);
        assert_eq!(first_conn(1, 0), 2_000_000_000_001);
        assert_eq!(first_conn(0, 1), 1_001_000_000_001);
        assert!(first_conn(MAX_WORKERS - 1, 999) < 1 << 53);
        let slot = parse_slot("1/4/123/2000000000001").unwrap();
        assert_eq!(
            (slot.index, slot.count, slot.first_conn),
            (1, 4, 2_000_000_000_001)
        );
        for bad in ["", "4/4/g/1", "1/4//1", "1/4/g", "x/4/g/1", "1/4/g/1/2"] {
            assert!(parse_slot(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_supervisor_sets_its_own_flags() {
        let args = |a: &[&str]| a.iter().map(OsString::from).collect::<Vec<_>>();
        assert_eq!(
            worker_args(
                args(&[
                    "serve",
                    "--workers",
                    "4",
                    "--listen=1.2.3.4:5",
                    "--timeout",
                    "3s",
                    "--events",
                    "f",
                    "--max-conns",
                    "9",
                    "--workers=2",
                    "--interval=1s"
                ])
                .into_iter()
            ),
            args(&["serve", "--timeout", "3s", "--interval=1s"])
        );
    }

    #[test]
    fn backoff_doubles_to_a_cap() {
        assert_eq!(backoff(1), Duration::from_millis(100));
        assert_eq!(backoff(2), Duration::from_millis(200));
        assert_eq!(backoff(5), Duration::from_millis(1600));
        assert_eq!(backoff(50), MAX_BACKOFF);
    }
}
