//! Presence events: one `online` and one `offline` per connection, a
//! `hello` when a connection names its client id, and an `offline` with
//! reason `renamed` when a second HELLO gives it another id.
//!
//! Events go to the log and, when configured, to a file (or stdout) as JSON
//! lines, each stamped with the run's random id. A run's lines begin with a
//! `start` record and end with a `stop` record; a `gap` record says how many
//! lines were dropped at that place because the writer could not keep up:
//!
//! ```text
//! {"time":"2026-11-23T18:40:00.001Z","run":"5f0c2a9e8d7b6a14","event":"start","version":"0.1.0","listen":["127.0.0.1:7700"],"settings":{"interval_ms":30000}}
//! {"time":"2026-11-23T18:40:00.123Z","run":"5f0c2a9e8d7b6a14","conn":7,"peer":"127.0.0.1:50514","client":null,"event":"online","reason":null}
//! {"time":"2026-11-23T18:40:00.125Z","run":"5f0c2a9e8d7b6a14","conn":7,"peer":"127.0.0.1:50514","client":"dev-1","event":"hello","reason":null}
//! {"time":"2026-11-23T18:40:05.000Z","run":"5f0c2a9e8d7b6a14","event":"gap","dropped":12}
//! {"time":"2026-11-23T18:41:30.200Z","run":"5f0c2a9e8d7b6a14","conn":7,"peer":"127.0.0.1:50514","client":"dev-1","event":"offline","reason":"timeout"}
//! {"time":"2026-11-23T18:42:00.000Z","run":"5f0c2a9e8d7b6a14","event":"stop","accepted":1,"dropped":12}
//! ```
//!
//! A connection is named by `run` and `conn` together (`conn` restarts at 1
//! in each run). The README's "Events" section gives the schema and the rule
//! a consumer follows to rebuild presence after a crash.
//!
//! Lines are written by a thread of their own through a bounded queue
//! (`events/queue.rs`): the event loop never waits on the file.

pub(crate) mod queue;

pub use queue::{CloseReport, QueueCounters};

use std::fmt::{self, Write as _};
use std::io::{self, Read as _, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use queue::{Output, Queue};

use crate::protocol::CloseReason;
use crate::time::{Clock, Tick};

/// The default bound of the events queue: 64 MiB of lines waiting.
pub const DEFAULT_EVENTS_QUEUE: usize = 64 << 20;

/// How long the events writer gets at shutdown to write what is queued.
pub const STOP_GRACE: Duration = Duration::from_secs(2);

/// A run's random id: tells apart the connections of runs that share an
/// events file. Shown as 16 hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RunId(pub u64);

impl RunId {
    /// A random id, from `/dev/urandom` (or, failing that, the standard
    /// library's randomly keyed hasher).
    pub fn random() -> RunId {
        let mut bytes = [0u8; 8];
        let urandom =
            std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
        if urandom.is_ok() {
            return RunId(u64::from_le_bytes(bytes));
        }
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        RunId(h.finish())
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// What happened to a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// The connection was accepted.
    Online,
    /// The connection said HELLO with a client id.
    Hello,
    /// The connection said HELLO with another id: its previous id (the
    /// event's `client`) is offline, reason `renamed`; the connection stays
    /// open and a `hello` with the new id follows.
    Renamed,
    /// The connection is gone, for this reason.
    Offline(CloseReason),
}

impl EventKind {
    /// The event's name in the JSON `event` field.
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::Online => "online",
            EventKind::Hello => "hello",
            EventKind::Renamed | EventKind::Offline(_) => "offline",
        }
    }

    /// The event's `reason` field, if it has one.
    pub fn reason(&self) -> Option<&'static str> {
        match self {
            EventKind::Renamed => Some(RENAMED),
            EventKind::Offline(r) => Some(r.as_str()),
            EventKind::Online | EventKind::Hello => None,
        }
    }
}

/// The `reason` of a [`EventKind::Renamed`] offline; never a close reason.
pub const RENAMED: &str = "renamed";

/// One presence event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event<'a> {
    /// The connection's number, unique for the run (with the run id,
    /// unique across runs).
    pub conn: u64,
    /// The peer's address.
    pub peer: SocketAddr,
    /// The client id, once the connection has said HELLO.
    pub client: Option<&'a str>,
    /// What happened.
    pub kind: EventKind,
}

impl Event<'_> {
    /// Appends the event as one JSON line of run `run`, stamped with
    /// wall-clock `time`.
    pub fn write_json(&self, run: RunId, time: SystemTime, out: &mut String) {
        record_head(run, time, out);
        let _ = write!(
            out,
            ",\"conn\":{},\"peer\":\"{}\",\"client\":",
            self.conn, self.peer
        );
        match self.client {
            Some(c) => write_json_string(c, out),
            None => out.push_str("null"),
        }
        let _ = write!(out, ",\"event\":\"{}\",\"reason\":", self.kind.name());
        match self.kind.reason() {
            Some(r) => {
                let _ = write!(out, "\"{r}\"");
            }
            None => out.push_str("null"),
        }
        out.push_str("}\n");
    }
}

/// `{"time":"...","run":"..."`: the start of every line.
fn record_head(run: RunId, time: SystemTime, out: &mut String) {
    out.push_str("{\"time\":\"");
    write_rfc3339(time, out);
    let _ = write!(out, "\",\"run\":\"{run}\"");
}

/// What the `start` record of a run says.
#[derive(Debug, Clone, Copy)]
pub struct Start<'a> {
    /// The server's version.
    pub version: &'a str,
    /// Every address it listens on.
    pub listen: &'a [SocketAddr],
    /// The scheme of each address in `listen` that was given one (`ws`,
    /// `resp`, ...), by position; `None` or missing: the server's
    /// protocol. Written as `ws://ADDR`.
    pub schemes: &'a [Option<&'a str>],
    /// The wire protocol's name.
    pub protocol: &'a str,
    /// Settings, by name (`interval_ms`, ...).
    pub settings: &'a [(&'a str, u64)],
}

impl Start<'_> {
    /// Appends the `start` record as one JSON line.
    pub fn write_json(&self, run: RunId, time: SystemTime, out: &mut String) {
        record_head(run, time, out);
        out.push_str(",\"event\":\"start\",\"version\":");
        write_json_string(self.version, out);
        out.push_str(",\"listen\":[");
        for (i, a) in self.listen.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            match self.schemes.get(i).copied().flatten() {
                Some(scheme) => {
                    let _ = write!(out, "\"{scheme}://{a}\"");
                }
                None => {
                    let _ = write!(out, "\"{a}\"");
                }
            }
        }
        out.push_str("],\"protocol\":");
        write_json_string(self.protocol, out);
        out.push_str(",\"settings\":{");
        for (i, (name, value)) in self.settings.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            write_json_string(name, out);
            let _ = write!(out, ":{value}");
        }
        out.push_str("}}\n");
    }
}

/// Appends the `stop` record of a run: how many connections it accepted
/// and how many lines it dropped.
pub fn write_stop(run: RunId, time: SystemTime, accepted: u64, dropped: u64, out: &mut String) {
    record_head(run, time, out);
    let _ = writeln!(
        out,
        ",\"event\":\"stop\",\"accepted\":{accepted},\"dropped\":{dropped}}}"
    );
}

/// Appends a `gap` record: `dropped` lines are missing at this place.
pub fn write_gap(run: RunId, time: SystemTime, dropped: u64, out: &mut String) {
    record_head(run, time, out);
    let _ = writeln!(out, ",\"event\":\"gap\",\"dropped\":{dropped}}}");
}

/// `time` as the events' `time` field shows it (`YYYY-MM-DDTHH:MM:SS.mmmZ`,
/// UTC), for events written by others (the supervisor of `vigil serve
/// --workers`).
pub fn format_time(time: SystemTime) -> String {
    let mut out = String::with_capacity(24);
    write_rfc3339(time, &mut out);
    out
}

/// Writes `s` as a JSON string literal (also used by `vigil load`'s report).
pub(crate) fn write_json_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Writes a UTC time as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub(crate) fn write_rfc3339(time: SystemTime, out: &mut String) {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    let _ = write!(
        out,
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        since.subsec_millis()
    );
}

/// The proleptic Gregorian date of a day count since 1970-01-01
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Offline lines logged at info per second at most; the rest are counted
/// and only in the events (they are there whatever the log level).
const OFFLINE_LOG_PER_SECOND: u32 = 10;

/// Where events go: the log, and optionally JSON lines written by a thread
/// of their own through a bounded queue (see the module docs).
///
/// The log gets `online` and `hello` at debug, and `offline` at info, at
/// most 10 a second (a count of the rest follows),
/// so a flood of disconnections does not flood the log.
pub struct EventSink {
    run: RunId,
    queue: Option<Queue>,
    line: String,
    clock: Clock,
    /// The second (in ticks / 1000) the offline log budget is for.
    log_second: Tick,
    logged: u32,
    unlogged: u64,
    /// The queue refused the last event: say so once, not per event.
    dropping: bool,
}

impl std::fmt::Debug for EventSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventSink")
            .field("run", &self.run)
            .field("json", &self.queue.is_some())
            .finish()
    }
}

impl EventSink {
    fn new(queue: Option<Queue>, run: RunId) -> EventSink {
        EventSink {
            run,
            queue,
            line: String::with_capacity(256),
            clock: Clock::new(),
            log_second: 0,
            logged: 0,
            unlogged: 0,
            dropping: false,
        }
    }

    /// Events go to the log only.
    pub fn log_only() -> EventSink {
        EventSink::new(None, RunId::random())
    }

    /// Events also go to `out` as JSON lines, through a queue of
    /// [`DEFAULT_EVENTS_QUEUE`] bytes. Fails only if the writer thread
    /// cannot be started.
    pub fn json(out: Box<dyn Write + Send>) -> io::Result<EventSink> {
        EventSink::spawn(Output::Other(out), DEFAULT_EVENTS_QUEUE)
    }

    /// Events also go to the file at `path` (created, appended to, and
    /// opened again by [`EventSink::reopen`]), through a queue of at most
    /// `capacity` bytes.
    pub fn file(path: impl Into<PathBuf>, capacity: usize) -> io::Result<EventSink> {
        EventSink::spawn(Output::open(path.into())?, capacity)
    }

    /// Events also go to standard output, through a queue of at most
    /// `capacity` bytes.
    pub fn stdout(capacity: usize) -> io::Result<EventSink> {
        EventSink::spawn(Output::Other(Box::new(io::stdout())), capacity)
    }

    fn spawn(out: Output, capacity: usize) -> io::Result<EventSink> {
        let run = RunId::random();
        let gap: queue::GapFn = Box::new(move |n, buf| {
            let mut s = String::with_capacity(96);
            write_gap(run, SystemTime::now(), n, &mut s);
            buf.extend_from_slice(s.as_bytes());
        });
        let queue = Queue::spawn("events", out, capacity, gap)?;
        Ok(EventSink::new(Some(queue), run))
    }

    /// This run's id.
    pub fn run_id(&self) -> RunId {
        self.run
    }

    /// The queue's counters (lines queued, dropped, written), readable from
    /// any thread; `None` when events go to the log only.
    pub fn counters(&self) -> Option<Arc<QueueCounters>> {
        self.queue.as_ref().map(|q| Arc::clone(q.counters()))
    }

    /// Records one event.
    pub fn emit(&mut self, event: &Event<'_>) {
        let client = event.client.unwrap_or("-");
        match event.kind {
            EventKind::Online => log::debug!("conn {} online from {}", event.conn, event.peer),
            EventKind::Hello => {
                log::debug!("conn {} from {} is client {client}", event.conn, event.peer)
            }
            EventKind::Renamed => log::debug!(
                "conn {} from {}: client {client} renamed",
                event.conn,
                event.peer
            ),
            EventKind::Offline(reason) => {
                if self.may_log_offline() {
                    log::info!(
                        "conn {} offline: {reason} (peer {}, client {client})",
                        event.conn,
                        event.peer
                    );
                }
            }
        }
        if let Some(queue) = &self.queue {
            self.line.clear();
            event.write_json(self.run, SystemTime::now(), &mut self.line);
            let accepted = queue.push(self.line.as_bytes());
            if accepted == self.dropping {
                self.dropping = !accepted;
                let dropped = queue.counters().dropped();
                if self.dropping {
                    log::warn!(
                        "events queue full: dropping and counting events until the writer catches up ({dropped} dropped so far)"
                    );
                } else {
                    log::info!("events queue has room again: a gap record counts what was dropped ({dropped} so far)");
                }
            }
        }
    }

    /// Whether this offline line fits in this second's log budget.
    fn may_log_offline(&mut self) -> bool {
        if !log::log_enabled!(log::Level::Info) {
            return false;
        }
        let second = self.clock.now() / 1000;
        if second != self.log_second {
            if self.unlogged > 0 {
                log::info!(
                    "{} more offline lines not logged (over {OFFLINE_LOG_PER_SECOND}/s; see the events)",
                    self.unlogged
                );
            }
            self.log_second = second;
            self.logged = 0;
            self.unlogged = 0;
        }
        if self.logged < OFFLINE_LOG_PER_SECOND {
            self.logged += 1;
            true
        } else {
            self.unlogged += 1;
            false
        }
    }

    /// Queues the run's `start` record.
    pub fn start(&mut self, start: &Start<'_>) {
        log::info!("run {}", self.run);
        if let Some(queue) = &self.queue {
            self.line.clear();
            start.write_json(self.run, SystemTime::now(), &mut self.line);
            queue.push(self.line.as_bytes());
            queue.notify();
        }
    }

    /// Queues the run's `stop` record and gives the writer at most `grace`
    /// to write everything; what it could not is in the report.
    pub fn stop(&mut self, accepted: u64, grace: Duration) -> Option<CloseReport> {
        let queue = self.queue.as_ref()?;
        self.line.clear();
        let dropped = queue.counters().dropped();
        write_stop(
            self.run,
            SystemTime::now(),
            accepted,
            dropped,
            &mut self.line,
        );
        queue.push(self.line.as_bytes());
        Some(queue.close(grace))
    }

    /// Asks the writer to open the events file again (after rotation).
    pub fn reopen(&self) {
        if let Some(queue) = &self.queue {
            queue.reopen();
        }
    }

    /// Wakes the writer for the events of this loop turn. Never waits.
    pub fn flush(&mut self) -> io::Result<()> {
        if let Some(queue) = &self.queue {
            queue.notify();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(20_415), (2025, 11, 23));
        let mut s = String::new();
        write_rfc3339(
            UNIX_EPOCH + Duration::from_millis(1_763_926_800_123),
            &mut s,
        );
        assert_eq!(s, "2025-11-23T19:40:00.123Z");
    }

    #[test]
    fn json_line() {
        let e = Event {
            conn: 7,
            peer: "127.0.0.1:5000".parse().unwrap(),
            client: Some("a\"b\\c"),
            kind: EventKind::Offline(CloseReason::Timeout),
        };
        let mut s = String::new();
        e.write_json(RunId(0xab), UNIX_EPOCH, &mut s);
        assert_eq!(
            s,
            "{\"time\":\"1970-01-01T00:00:00.000Z\",\"run\":\"00000000000000ab\",\"conn\":7,\"peer\":\"127.0.0.1:5000\",\
             \"client\":\"a\\\"b\\\\c\",\"event\":\"offline\",\"reason\":\"timeout\"}\n"
        );
        let e = Event {
            client: None,
            kind: EventKind::Online,
            peer: "[::1]:9".parse().unwrap(),
            ..e
        };
        s.clear();
        e.write_json(RunId(1), UNIX_EPOCH, &mut s);
        assert!(s.contains(
            "\"peer\":\"[::1]:9\",\"client\":null,\"event\":\"online\",\"reason\":null}"
        ));
    }

    #[test]
    fn control_characters_are_escaped() {
        let mut s = String::new();
        write_json_string("a\u{1}\n", &mut s);
        assert_eq!(s, "\"a\\u0001\\u000a\"");
    }
}
