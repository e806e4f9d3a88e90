//! `vigil serve`: flags -> [`vigil::server::Builder`] -> [`Server::run`] -> exit code.

use std::fmt;
use std::fs::OpenOptions;
use std::io::{self, BufWriter};
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use vigil::duration::parse_duration;
use vigil::events::EventSink;
use vigil::protocol::line::DEFAULT_MAX_LINE;
use vigil::protocol::raw::DEFAULT_ACK;
use vigil::protocol::resp::DEFAULT_MAX_FRAME;
use vigil::protocol::{BinaryProtocol, Protocol, RawProtocol, RespProtocol};
use vigil::server::{
    Builder, PresenceOnly, DEFAULT_BACKLOG, DEFAULT_INTERVAL, DEFAULT_LISTEN, DEFAULT_MAX_OUTPUT,
    DEFAULT_STATS_INTERVAL, DEFAULT_TICK, DEFAULT_TIMEOUT, DEFAULT_WHEEL_SLOTS,
};
use vigil::{Keepalive, LineProtocol, Server};

use super::workers::Workers;
use super::Dur;
use vigil::server::workers::WorkerSlot;

// `--max-frame` is one flag for two protocols with one default.
const _: () = assert!(DEFAULT_MAX_FRAME == vigil::protocol::binary::DEFAULT_MAX_LEN);

/// The wire protocols `vigil serve` speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ProtocolName {
    /// Text lines: PING, HELLO, WELCOME, BYE (the default).
    Line,
    /// Redis RESP2: PING, CLIENT SETNAME, QUIT (redis-cli, redis-benchmark).
    Resp,
    /// Length-prefixed binary frames.
    Binary,
    /// No framing: any bytes are a heartbeat, acknowledged once per interval.
    Raw,
}

/// Flags of `vigil serve`. Durations take ms, s or m (250ms, 30s, 5m), up to 525600m (a year).
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Wire protocol.
    #[arg(long, value_enum, default_value_t = ProtocolName::Line)]
    protocol: ProtocolName,
    /// Address to listen on: IPv4 `HOST:PORT`, IPv6 `[ADDR]:PORT` or `NAME:PORT` (port 0 picks one).
    #[arg(long, default_value = DEFAULT_LISTEN)]
    listen: String,
    /// How often clients should beat (sent in WELCOME; the --max-pings window).
    #[arg(long, value_parser = Dur::parse, default_value_t = Dur(DEFAULT_INTERVAL))]
    interval: Dur,
    /// Close a connection silent for this long, with BYE timeout.
    #[arg(long, value_parser = Dur::parse, default_value_t = Dur(DEFAULT_TIMEOUT))]
    timeout: Dur,
    /// Timing-wheel resolution: deadlines fire at most one tick late.
    #[arg(long, value_parser = Dur::parse, default_value_t = Dur(DEFAULT_TICK))]
    tick: Dur,
    /// Timing-wheel slots (rounded up to a power of two).
    #[arg(long, default_value_t = DEFAULT_WHEEL_SLOTS)]
    wheel_slots: usize,
    /// Most connections at once; more get BYE overloaded [default: open-files limit less 64].
    #[arg(long)]
    max_conns: Option<usize>,
    /// Longest line in bytes (line protocol); a longer one gets BYE line-too-long.
    #[arg(long, default_value_t = DEFAULT_MAX_LINE)]
    max_line: usize,
    /// Largest frame in bytes (resp and binary protocols).
    #[arg(long, default_value_t = DEFAULT_MAX_FRAME)]
    max_frame: usize,
    /// Acknowledgement of the raw protocol, sent at most once per interval (\n, \r, \t, \\ escapes).
    #[arg(long, value_name = "TEXT", default_value_t = Ack(DEFAULT_ACK.to_vec()), value_parser = parse_escapes)]
    raw_ack: Ack,
    /// Most unsent output per connection in bytes before it is closed.
    #[arg(long, default_value_t = DEFAULT_MAX_OUTPUT)]
    max_output: usize,
    /// Close a client sending more than N heartbeats per interval (BYE too-many-pings).
    #[arg(long, value_name = "N")]
    max_pings: Option<u32>,
    /// Write presence events as JSON lines to FILE (appending; `-` for stdout).
    #[arg(long, value_name = "FILE")]
    events: Option<String>,
    /// How often to log a stats line (0ms: never).
    #[arg(long, value_parser = Dur::parse, default_value_t = Dur(DEFAULT_STATS_INTERVAL))]
    stats_interval: Dur,
    /// Listen backlog (capped by net.core.somaxconn).
    #[arg(long, default_value_t = DEFAULT_BACKLOG)]
    backlog: u32,
    /// Kernel TCP keepalive on every connection: IDLE,INTVL,CNT such as 60s,10s,5 [default: off].
    #[arg(long, value_name = "IDLE,INTVL,CNT", value_parser = Keepalive::parse)]
    tcp_keepalive: Option<Keepalive>,
    /// TCP_USER_TIMEOUT on every connection: unacknowledged data older than this resets it [default: off].
    #[arg(long, value_name = "D", value_parser = parse_duration)]
    tcp_user_timeout: Option<std::time::Duration>,
    /// Worker processes sharing the port (SO_REUSEPORT): a number, or auto
    /// (one per core, more when --max-conns needs more open files than one
    /// process may have). Client ids are sharded across them; presence stays exact.
    #[arg(long, value_name = "N|auto", default_value_t = Workers::Count(1), value_parser = Workers::parse)]
    workers: Workers,
    /// Internal: run as one worker of a supervisor (INDEX/COUNT/GROUP/FIRST_CONN).
    #[arg(long, hide = true, value_parser = super::workers::parse_slot)]
    worker_of: Option<WorkerSlot>,
}

/// Runs the server until SIGINT or SIGTERM.
pub fn run(args: ServeArgs) -> ExitCode {
    if args.worker_of.is_none() {
        let workers = args.workers.resolve(
            std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
            vigil::nofile_limit().map_or(u64::MAX, |(_, hard)| hard),
            args.max_conns,
        );
        if workers > 1 {
            return super::workers::run(
                workers,
                &args.listen,
                args.max_conns,
                args.events.as_deref(),
            );
        }
    }
    match serve(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn serve(args: ServeArgs) -> Result<(), Box<dyn std::error::Error>> {
    match vigil::raise_nofile_limit() {
        Ok(n) => log::info!(
            "open files limit {n}: room for about {} connections",
            n.saturating_sub(64)
        ),
        Err(e) => log::warn!("cannot raise the open files limit: {e}"),
    }
    if args.max_line == 0 || args.max_frame == 0 {
        return Err("--max-line and --max-frame must be at least 1".into());
    }
    let mut builder = Server::builder()
        .listen(args.listen.as_str())
        .interval(args.interval.0)
        .timeout(args.timeout.0)
        .tick(args.tick.0)
        .wheel_slots(args.wheel_slots)
        .max_output(args.max_output)
        .stats_interval((!args.stats_interval.0.is_zero()).then_some(args.stats_interval.0))
        .backlog(args.backlog)
        .handle_signals(true);
    if let Some(n) = args.max_conns {
        builder = builder.max_conns(n);
    }
    if let Some(n) = args.max_pings {
        builder = builder.max_pings(n);
    }
    if let Some(k) = args.tcp_keepalive {
        builder = builder.tcp_keepalive(k);
    }
    if let Some(t) = args.tcp_user_timeout {
        builder = builder.tcp_user_timeout(t);
    }
    if let Some(sink) = events(args.events.as_deref())? {
        builder = builder.events(sink);
    }
    let slot = args.worker_of;
    if let Some(slot) = &slot {
        builder = builder.worker(slot.clone());
    }
    let slot = slot.as_ref();
    match args.protocol {
        ProtocolName::Line => run_with(builder, LineProtocol::new(args.max_line), slot),
        ProtocolName::Resp => run_with(builder, RespProtocol::new(args.max_frame), slot),
        ProtocolName::Binary => run_with(builder, BinaryProtocol::new(args.max_frame), slot),
        ProtocolName::Raw => run_with(builder, RawProtocol::new(args.raw_ack.0), slot),
    }
}

/// The sink of `--events`: none, stdout for `-`, or a file appended to.
fn events(path: Option<&str>) -> Result<Option<EventSink>, String> {
    Ok(match path {
        None => None,
        Some("-") => Some(EventSink::json(Box::new(BufWriter::new(io::stdout())))),
        Some(path) => {
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| format!("cannot open the events file {path}: {e}"))?;
            Some(EventSink::json(Box::new(BufWriter::new(file))))
        }
    })
}

fn run_with<P: Protocol>(
    builder: Builder<LineProtocol, PresenceOnly>,
    protocol: P,
    worker: Option<&WorkerSlot>,
) -> Result<(), Box<dyn std::error::Error>> {
    log::info!("protocol: {}", protocol.name());
    let server = builder.protocol(protocol).build()?;
    if let Some(w) = worker {
        super::workers::tell_supervisor(w, &format!("ready {}", w.index));
    }
    let stats = server.run()?;
    log::info!("stopped after {} connections", stats.accepted);
    if let Some(w) = worker {
        super::workers::tell_supervisor(w, &format!("stopped {} {}", w.index, stats.accepted));
    }
    Ok(())
}

/// The raw protocol's acknowledgement bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Ack(Vec<u8>);

/// Writes the bytes back with the escapes [`parse_escapes`] reads, so the
/// default shows in `--help` as it would be typed.
impl fmt::Display for Ack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut text = Vec::with_capacity(self.0.len());
        for &b in &self.0 {
            match b {
                b'\n' => text.extend_from_slice(b"\\n"),
                b'\r' => text.extend_from_slice(b"\\r"),
                b'\t' => text.extend_from_slice(b"\\t"),
                b'\\' => text.extend_from_slice(b"\\\\"),
                b => text.push(b),
            }
        }
        f.write_str(&String::from_utf8_lossy(&text))
    }
}

/// Reads `\n`, `\r`, `\t` and `\\` escapes, so an acknowledgement with a
/// newline can be given on the command line.
fn parse_escapes(s: &str) -> Result<Ack, String> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        if b != b'\\' {
            out.push(b);
            continue;
        }
        out.push(match bytes.next() {
            Some(b'n') => b'\n',
            Some(b'r') => b'\r',
            Some(b't') => b'\t',
            Some(b'\\') => b'\\',
            other => {
                return Err(format!(
                    "unknown escape \\{} (known: \\n \\r \\t \\\\)",
                    other.map_or(String::new(), |c| (c as char).to_string())
                ))
            }
        });
    }
    if out.is_empty() {
        return Err("the acknowledgement must not be empty".to_owned());
    }
    Ok(Ack(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acknowledgements_show_as_they_are_typed() {
        for typed in ["ack\\n", "a\\tb\\r\\n", "back\\\\slash", "plain", "é\\n"] {
            let ack = parse_escapes(typed).expect(typed);
            assert_eq!(ack.to_string(), typed);
        }
        assert_eq!(Ack(DEFAULT_ACK.to_vec()).to_string(), "ack\\n");
        assert_eq!(parse_escapes("ack\\n"), Ok(Ack(b"ack\n".to_vec())));
        assert!(parse_escapes("").is_err());
        assert!(parse_escapes("\\x").is_err());
    }
}
