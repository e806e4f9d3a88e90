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
    Authenticated, Builder, ConnectRate, Handler, PresenceOnly, DEFAULT_BACKLOG, DEFAULT_INTERVAL,
    DEFAULT_LISTEN, DEFAULT_MAX_OUTPUT, DEFAULT_STATS_INTERVAL, DEFAULT_TICK, DEFAULT_TIMEOUT,
    DEFAULT_WHEEL_SLOTS,
};
use vigil::{Keepalive, LineProtocol, Server};

use super::Dur;

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
    /// Require `HELLO <id> <token>` with an HMAC-SHA256 token under the secret in FILE (see `vigil token`); others get BYE unauthorized.
    #[arg(long, value_name = "FILE")]
    auth_secret: Option<String>,
    /// Close a connection without a completed (authenticated) HELLO after D, with BYE hello-timeout; 0ms: off [default: 10s with --auth-secret, else off].
    #[arg(long, value_name = "D", value_parser = parse_duration)]
    hello_timeout: Option<std::time::Duration>,
    /// Most connections from one source address; more get BYE too-many-connections.
    #[arg(long, value_name = "N")]
    max_conns_per_ip: Option<u32>,
    /// Most new connections per source address: N/s, N/m, N/h or N/<duration> (a token bucket of N); faster ones are refused at accept.
    #[arg(long, value_name = "RATE", value_parser = ConnectRate::parse)]
    max_connects_per_ip: Option<ConnectRate>,
    /// Close a client sending more than N frames of any kind per interval (BYE too-many-frames; N up to 65535).
    #[arg(long, value_name = "N")]
    max_frames: Option<u16>,
}

/// `--hello-timeout` when `--auth-secret` is given without it.
const DEFAULT_AUTH_HELLO_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

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
    let verifier = match &args.auth_secret {
        Some(path) => Some(vigil::auth::load_secret(path.as_ref())?),
        None => None,
    };
    let hello_timeout = args
        .hello_timeout
        .or(verifier.as_ref().map(|_| DEFAULT_AUTH_HELLO_TIMEOUT))
        .filter(|d| !d.is_zero());
    if let Some(d) = hello_timeout {
        builder = builder.hello_timeout(d);
    }
    if let Some(n) = args.max_conns_per_ip {
        builder = builder.max_conns_per_ip(n);
    }
    if let Some(r) = args.max_connects_per_ip {
        builder = builder.max_connects_per_ip(r);
    }
    if let Some(n) = args.max_frames {
        builder = builder.max_frames(n);
    }
    match verifier {
        Some(v) => {
            log::info!("authentication on: HELLO needs a token");
            let builder = builder.handler(Authenticated::new(v, PresenceOnly));
            run_protocol(args.protocol, &args, builder)
        }
        None => run_protocol(args.protocol, &args, builder),
    }
}

fn run_protocol<H: Handler>(
    protocol: ProtocolName,
    args: &ServeArgs,
    builder: Builder<LineProtocol, H>,
) -> Result<(), Box<dyn std::error::Error>> {
    match protocol {
        ProtocolName::Line => run_with(builder, LineProtocol::new(args.max_line)),
        ProtocolName::Resp => run_with(builder, RespProtocol::new(args.max_frame)),
        ProtocolName::Binary => run_with(builder, BinaryProtocol::new(args.max_frame)),
        ProtocolName::Raw => run_with(builder, RawProtocol::new(args.raw_ack.0.clone())),
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

fn run_with<P: Protocol, H: Handler>(
    builder: Builder<LineProtocol, H>,
    protocol: P,
) -> Result<(), Box<dyn std::error::Error>> {
    log::info!("protocol: {}", protocol.name());
    let server = builder.protocol(protocol).build()?;
    let stats = server.run()?;
    log::info!("stopped after {} connections", stats.accepted);
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
