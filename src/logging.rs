//! The log: env_logger's filter and format, written to stderr by a thread
//! of its own, so a stderr nobody reads never stops the event loop.
//!
//! # Why
//! env_logger writes to stderr synchronously: with stderr a pipe whose
//! reader stopped, the first log line after the pipe fills would block the
//! event loop, and with it every heartbeat. Here each formatted line goes
//! to the same bounded queue as the events ([`crate::events::QueueCounters`]
//! counts it); when the queue is full lines are dropped and counted, and a
//! line saying how many comes first when stderr is read again.
//!
//! # Rules
//! - `RUST_LOG` filters as usual (default `info`).
//! - [`LogFormat::Text`]: env_logger's usual lines, millisecond timestamps.
//!   [`LogFormat::Json`]: one object a line,
//!   `{"time":"...","level":"INFO","target":"vigil::server","msg":"..."}`.
//! - [`fatal`] writes whatever `RUST_LOG` says, and [`Logging::finish`]
//!   waits a bounded time for the queue to drain, so a fatal error reaches
//!   stderr if anyone reads it and the process exits anyway if nobody does.

use std::fmt::Write as _;
use std::io::{self, Write};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use crate::events::queue::{GapFn, Output, Queue};
use crate::events::{write_json_string, write_rfc3339, QueueCounters};

/// The most bytes of log lines waiting for stderr.
pub const LOG_QUEUE: usize = 1 << 20;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// env_logger's human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

static QUEUE: OnceLock<Arc<Queue>> = OnceLock::new();
static FORMAT: OnceLock<LogFormat> = OnceLock::new();

/// The installed logger; [`Logging::finish`] before the process exits.
pub struct Logging {
    queue: Option<Arc<Queue>>,
}

impl std::fmt::Debug for Logging {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Logging")
            .field("queued", &self.queue.is_some())
            .finish()
    }
}

/// Installs the logger. If the writer thread cannot start, the log goes to
/// stderr directly (blocking, as env_logger does by default).
pub fn init(format: LogFormat) -> Logging {
    let _ = FORMAT.set(format);
    let mut builder =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"));
    match format {
        LogFormat::Text => {
            builder.format_timestamp_millis();
        }
        LogFormat::Json => {
            builder.format(|buf, record| {
                let mut line = String::with_capacity(128);
                json_line(
                    record.level().as_str(),
                    record.target(),
                    &record.args().to_string(),
                    &mut line,
                );
                buf.write_all(line.as_bytes())
            });
        }
    }
    let gap: GapFn = Box::new(move |n, buf| {
        let msg = format!("{n} log lines dropped: stderr was not read");
        let mut line = String::with_capacity(128);
        match format {
            LogFormat::Json => json_line("WARN", "vigil::logging", &msg, &mut line),
            LogFormat::Text => {
                let _ = writeln!(line, "[vigil WARN] {msg}");
            }
        }
        buf.extend_from_slice(line.as_bytes());
    });
    let queue = Queue::spawn("log", Output::Other(Box::new(io::stderr())), LOG_QUEUE, gap)
        .ok()
        .map(Arc::new);
    if let Some(q) = &queue {
        let _ = QUEUE.set(Arc::clone(q));
        builder.target(env_logger::Target::Pipe(Box::new(QueueWriter(Arc::clone(
            q,
        )))));
    }
    let _ = builder.try_init();
    Logging { queue }
}

impl Logging {
    /// The log queue's counters (lines queued, dropped, written).
    pub fn counters(&self) -> Option<Arc<QueueCounters>> {
        self.queue.as_ref().map(|q| Arc::clone(q.counters()))
    }

    /// Waits at most `grace` for the log lines still queued to be written.
    pub fn finish(&self, grace: Duration) {
        if let Some(q) = &self.queue {
            q.close(grace);
        }
    }
}

/// Logs a fatal error whatever `RUST_LOG` says (as an error line of the
/// chosen format).
pub fn fatal(msg: &str) {
    let mut line = String::with_capacity(128);
    match FORMAT.get().copied().unwrap_or_default() {
        LogFormat::Json => json_line("ERROR", "vigil", msg, &mut line),
        LogFormat::Text => {
            let _ = writeln!(line, "[vigil ERROR] {msg}");
        }
    }
    match QUEUE.get() {
        Some(q) => {
            q.push(line.as_bytes());
            q.notify();
        }
        None => {
            let _ = io::stderr().write_all(line.as_bytes());
        }
    }
}

/// One JSON log line.
fn json_line(level: &str, target: &str, msg: &str, out: &mut String) {
    out.push_str("{\"time\":\"");
    write_rfc3339(SystemTime::now(), out);
    out.push_str("\",\"level\":");
    write_json_string(level, out);
    out.push_str(",\"target\":");
    write_json_string(target, out);
    out.push_str(",\"msg\":");
    write_json_string(msg, out);
    out.push_str("}\n");
}

/// env_logger's pipe: each `write` is one formatted record, queued whole.
struct QueueWriter(Arc<Queue>);

impl Write for QueueWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.push(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.notify();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_are_one_escaped_object() {
        let mut s = String::new();
        json_line("INFO", "vigil::x", "a \"b\"\nc", &mut s);
        assert!(s.ends_with(
            "\",\"level\":\"INFO\",\"target\":\"vigil::x\",\"msg\":\"a \\\"b\\\"\\u000ac\"}\n"
        ));
        assert_eq!(s.matches('\n').count(), 1);
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v["msg"], "a \"b\"\nc");
    }
}
