//! `vigil serve`: the heartbeat server.

use std::fs::OpenOptions;
use std::io::{self, BufWriter};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, ValueEnum};
use vigil::duration::parse_duration;
use vigil::events::EventSink;
use vigil::protocol::line::DEFAULT_MAX_LINE;
use vigil::protocol::{BinaryProtocol, Protocol, RawProtocol, RespProtocol};
use vigil::server::{Config, DEFAULT_LISTEN};
use vigil::sys::Keepalive;
use vigil::{LineProtocol, Server};

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

/// Flags of `vigil serve`. Durations take ms, s or m (250ms, 30s, 5m).
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Wire protocol.
    #[arg(long, value_enum, default_value_t = ProtocolName::Line)]
    protocol: ProtocolName,
    /// Address to listen on: IPv4 `HOST:PORT` or IPv6 `[ADDR]:PORT` (port 0 picks one).
    #[arg(long, default_value = DEFAULT_LISTEN)]
    listen: String,
    /// How often clients should beat (sent in WELCOME; the --max-pings window).
    #[arg(long, value_parser = parse_duration, default_value = "30s")]
    interval: Duration,
    /// Close a connection silent for this long, with BYE timeout.
    #[arg(long, value_parser = parse_duration, default_value = "45s")]
    timeout: Duration,
    /// Timing-wheel resolution: deadlines fire at most one tick late.
    #[arg(long, value_parser = parse_duration, default_value = "100ms")]
    tick: Duration,
    /// Timing-wheel slots (rounded up to a power of two).
    #[arg(long, default_value_t = 1024)]
    wheel_slots: usize,
    /// Most connections at once; more get BYE overloaded [default: open-files limit less 64].
    #[arg(long)]
    max_conns: Option<usize>,
    /// Longest line in bytes (line protocol); a longer one gets BYE line-too-long.
    #[arg(long, default_value_t = DEFAULT_MAX_LINE)]
    max_line: usize,
    /// Largest frame in bytes (resp and binary protocols).
    #[arg(long, default_value_t = 64 * 1024)]
    max_frame: usize,
    /// Acknowledgement of the raw protocol, sent at most once per interval (\n, \r, \t, \\ escapes).
    #[arg(long, value_name = "TEXT", default_value = "ack\\n", value_parser = parse_escapes)]
    raw_ack: Ack,
    /// Most unsent output per connection in bytes before it is closed.
    #[arg(long, default_value_t = 64 * 1024)]
    max_output: usize,
    /// Close a client sending more than N heartbeats per interval (BYE too-many-pings).
    #[arg(long, value_name = "N")]
    max_pings: Option<u32>,
    /// Write presence events as JSON lines to FILE (appending; `-` for stdout).
    #[arg(long, value_name = "FILE")]
    events: Option<String>,
    /// How often to log a stats line (0ms: never).
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    stats_interval: Duration,
    /// Listen backlog (capped by net.core.somaxconn).
    #[arg(long, default_value_t = 4096)]
    backlog: u32,
    /// Kernel TCP keepalive on every connection: IDLE,INTVL,CNT such as 60s,10s,5 [default: off].
    #[arg(long, value_name = "IDLE,INTVL,CNT", value_parser = Keepalive::parse)]
    tcp_keepalive: Option<Keepalive>,
    /// TCP_USER_TIMEOUT on every connection: unacknowledged data older than this resets it [default: off].
    #[arg(long, value_name = "D", value_parser = parse_duration)]
    tcp_user_timeout: Option<Duration>,
}

/// Runs the server until SIGINT or SIGTERM.
pub fn run(args: ServeArgs) -> ExitCode {
    match serve(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn serve(args: ServeArgs) -> Result<(), Box<dyn std::error::Error>> {
    match vigil::sys::raise_nofile_limit() {
        Ok(n) => log::info!(
            "open files limit {n}: room for about {} connections",
            n.saturating_sub(64)
        ),
        Err(e) => log::warn!("cannot raise the open files limit: {e}"),
    }
    let config = Config {
        listen: vigil::server::resolve(&args.listen)?,
        interval: args.interval,
        timeout: args.timeout,
        tick: args.tick,
        wheel_slots: args.wheel_slots,
        max_conns: args.max_conns,
        max_output: args.max_output,
        max_pings: args.max_pings,
        stats_interval: (!args.stats_interval.is_zero()).then_some(args.stats_interval),
        backlog: args.backlog,
        handle_signals: true,
        tcp_keepalive: args.tcp_keepalive,
        tcp_user_timeout: args.tcp_user_timeout,
    };
    if args.max_line == 0 || args.max_frame == 0 {
        return Err("--max-line and --max-frame must be at least 1".into());
    }
    let events = args.events.clone();
    match args.protocol {
        ProtocolName::Line => run_with(config, LineProtocol::new(args.max_line), events),
        ProtocolName::Resp => run_with(config, RespProtocol::new(args.max_frame), events),
        ProtocolName::Binary => run_with(config, BinaryProtocol::new(args.max_frame), events),
        ProtocolName::Raw => run_with(config, RawProtocol::new(args.raw_ack.0), events),
    }
}

fn run_with<P: Protocol>(
    config: Config,
    protocol: P,
    events: Option<String>,
) -> Result<(), Box<dyn std::error::Error>> {
    log::info!("protocol: {}", protocol.name());
    let mut server = Server::new(config, protocol)?;
    match events.as_deref() {
        None => {}
        Some("-") => server.set_events(EventSink::json(Box::new(BufWriter::new(io::stdout())))),
        Some(path) => {
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| format!("cannot open the events file {path}: {e}"))?;
            server.set_events(EventSink::json(Box::new(BufWriter::new(file))));
        }
    }
    let stats = server.run()?;
    log::info!("stopped after {} connections", stats.accepted);
    Ok(())
}

/// The raw protocol's acknowledgement bytes.
#[derive(Debug, Clone)]
struct Ack(Vec<u8>);

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
