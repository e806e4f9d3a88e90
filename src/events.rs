//! Presence events: one `online` and one `offline` per connection, and a
//! `hello` when a connection names its client id.
//!
//! Events go to the log and, when configured, to a file (or stdout) as JSON
//! lines:
//!
//! ```text
//! {"time":"2026-11-23T18:40:00.123Z","conn":7,"peer":"127.0.0.1:50514","client":null,"event":"online","reason":null}
//! {"time":"2026-11-23T18:40:00.125Z","conn":7,"peer":"127.0.0.1:50514","client":"dev-1","event":"hello","reason":null}
//! {"time":"2026-11-23T18:41:30.200Z","conn":7,"peer":"127.0.0.1:50514","client":"dev-1","event":"offline","reason":"timeout"}
//! ```

use std::fmt::Write as _;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::protocol::CloseReason;

/// What happened to a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// The connection was accepted.
    Online,
    /// The connection said HELLO with a client id.
    Hello,
    /// The connection is gone, for this reason.
    Offline(CloseReason),
}

impl EventKind {
    /// The event's name in the JSON `event` field.
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::Online => "online",
            EventKind::Hello => "hello",
            EventKind::Offline(_) => "offline",
        }
    }
}

/// One presence event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event<'a> {
    /// The connection's id, unique for the server's lifetime.
    pub conn: u64,
    /// The peer's address.
    pub peer: SocketAddr,
    /// The client id, once the connection has said HELLO.
    pub client: Option<&'a str>,
    /// What happened.
    pub kind: EventKind,
}

impl Event<'_> {
    /// Appends the event as one JSON line, stamped with wall-clock `time`.
    pub fn write_json(&self, time: SystemTime, out: &mut String) {
        out.push_str("{\"time\":\"");
        write_rfc3339(time, out);
        let _ = write!(
            out,
            "\",\"conn\":{},\"peer\":\"{}\",\"client\":",
            self.conn, self.peer
        );
        match self.client {
            Some(c) => write_json_string(c, out),
            None => out.push_str("null"),
        }
        let _ = write!(out, ",\"event\":\"{}\",\"reason\":", self.kind.name());
        match self.kind {
            EventKind::Offline(r) => {
                let _ = write!(out, "\"{r}\"");
            }
            _ => out.push_str("null"),
        }
        out.push_str("}\n");
    }
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
fn write_rfc3339(time: SystemTime, out: &mut String) {
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

/// Where events go: the log always, and optionally a JSON-lines writer.
pub struct EventSink {
    out: Option<Box<dyn Write + Send>>,
    line: String,
    dirty: bool,
}

impl std::fmt::Debug for EventSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventSink")
            .field("json", &self.out.is_some())
            .finish()
    }
}

impl EventSink {
    /// Events go to the log only.
    pub fn log_only() -> EventSink {
        EventSink {
            out: None,
            line: String::new(),
            dirty: false,
        }
    }

    /// Events also go to `out` as JSON lines. Pass a buffered writer: the
    /// server flushes once per loop iteration.
    pub fn json(out: Box<dyn Write + Send>) -> EventSink {
        EventSink {
            out: Some(out),
            line: String::with_capacity(256),
            dirty: false,
        }
    }

    /// Records one event.
    pub fn emit(&mut self, event: &Event<'_>) {
        let client = event.client.unwrap_or("-");
        match event.kind {
            EventKind::Online => log::debug!("conn {} online from {}", event.conn, event.peer),
            EventKind::Hello => {
                log::debug!("conn {} from {} is client {client}", event.conn, event.peer)
            }
            EventKind::Offline(reason) => log::info!(
                "conn {} offline: {reason} (peer {}, client {client})",
                event.conn,
                event.peer
            ),
        }
        if let Some(out) = &mut self.out {
            self.line.clear();
            event.write_json(SystemTime::now(), &mut self.line);
            if let Err(e) = out.write_all(self.line.as_bytes()) {
                log::error!("cannot write events: {e}; events now go to the log only");
                self.out = None;
            }
            self.dirty = true;
        }
    }

    /// Flushes buffered events, if any were written since the last flush.
    pub fn flush(&mut self) -> io::Result<()> {
        if !self.dirty {
            return Ok(());
        }
        self.dirty = false;
        match &mut self.out {
            Some(out) => out.flush(),
            None => Ok(()),
        }
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
        e.write_json(UNIX_EPOCH, &mut s);
        assert_eq!(
            s,
            "{\"time\":\"1970-01-01T00:00:00.000Z\",\"conn\":7,\"peer\":\"127.0.0.1:5000\",\
             \"client\":\"a\\\"b\\\\c\",\"event\":\"offline\",\"reason\":\"timeout\"}\n"
        );
        let e = Event {
            client: None,
            kind: EventKind::Online,
            peer: "[::1]:9".parse().unwrap(),
            ..e
        };
        s.clear();
        e.write_json(UNIX_EPOCH, &mut s);
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
