//! `vigil serve`: flags -> [`vigil::server::Builder`] -> [`Server::run`] -> exit code.

use std::fmt;
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use vigil::cluster::ClusterOptions;
use vigil::detector::Detector;
use vigil::duration::parse_duration;
use vigil::events::{EventSink, DEFAULT_EVENTS_QUEUE};
use vigil::protocol::line::DEFAULT_MAX_LINE;
use vigil::protocol::raw::DEFAULT_ACK;
use vigil::protocol::resp::DEFAULT_MAX_FRAME;
use vigil::protocol::{AnyProtocol, BinaryProtocol, Protocol, RawProtocol, RespProtocol};
use vigil::server::Scheme;
use vigil::server::{
    AdminConfig, Authenticated, Builder, ConnectRate, Handler, PresenceOnly, DEFAULT_BACKLOG,
    DEFAULT_INTERVAL, DEFAULT_LISTEN, DEFAULT_MAX_OUTPUT, DEFAULT_STATS_INTERVAL, DEFAULT_TICK,
    DEFAULT_TIMEOUT, DEFAULT_WHEEL_SLOTS,
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

/// Flags of `vigil serve`. Durations such as 250ms, 30s, 5m, 1h30m or 1.5s, up to 525600m (a year).
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Wire protocol.
    #[arg(env = "VIGIL_PROTOCOL", long, value_enum, default_value_t = ProtocolName::Line)]
    protocol: ProtocolName,
    /// Address to listen on: IPv4 `HOST:PORT`, IPv6 `[ADDR]:PORT` or `NAME:PORT` (port 0 picks one).
    /// Repeat it for more listeners; `SCHEME://ADDR` speaks what the scheme names instead of
    /// --protocol: line://, resp://, binary://, raw://, ws:// (WebSocket), wss:// (WebSocket over
    /// TLS). All listeners share one presence: the same id on two of them takes over.
    #[arg(env = "VIGIL_LISTEN", long, default_value = DEFAULT_LISTEN, value_parser = check_listen,
          value_delimiter = ',')]
    listen: Vec<String>,
    /// An Origin a WebSocket handshake may come from (repeat it; the others get 403). Default: any.
    #[arg(env = "VIGIL_WS_ORIGIN", long, value_delimiter = ',')]
    ws_origin: Vec<String>,
    /// How long a WebSocket connection may take to finish its opening handshake.
    #[arg(env = "VIGIL_WS_HANDSHAKE_TIMEOUT", long, value_parser = Dur::parse,
          default_value_t = Dur(vigil::server::DEFAULT_WS_HANDSHAKE_TIMEOUT))]
    ws_handshake_timeout: Dur,
    /// Do not ping WebSocket connections silent for an interval (by default the server does,
    /// and the browser's automatic pong keeps a page online with no heartbeat code).
    #[arg(env = "VIGIL_NO_WS_PING", long)]
    no_ws_ping: bool,
    /// Send PING to a line-protocol connection silent for an interval; a client that answers
    /// PONG stays online without beating itself (vigil client answers). Default off.
    #[arg(env = "VIGIL_LINE_PING", long)]
    line_ping: bool,
    /// How often clients should beat (sent in WELCOME; the --max-pings window).
    #[arg(env = "VIGIL_INTERVAL", long, value_parser = Dur::parse, default_value_t = Dur(DEFAULT_INTERVAL))]
    interval: Dur,
    /// Close a connection silent for this long, with BYE timeout.
    #[arg(env = "VIGIL_TIMEOUT", long, value_parser = Dur::parse, default_value_t = Dur(DEFAULT_TIMEOUT))]
    timeout: Dur,
    /// Timing-wheel resolution: deadlines fire at most one tick late.
    #[arg(env = "VIGIL_TICK", long, value_parser = Dur::parse, default_value_t = Dur(DEFAULT_TICK))]
    tick: Dur,
    /// Timing-wheel slots (rounded up to a power of two).
    #[arg(env = "VIGIL_WHEEL_SLOTS", long, default_value_t = DEFAULT_WHEEL_SLOTS)]
    wheel_slots: usize,
    /// Most connections at once; more get BYE overloaded [default: open-files limit less 64].
    #[arg(env = "VIGIL_MAX_CONNS", long)]
    max_conns: Option<usize>,
    /// Longest line in bytes (line protocol); a longer one gets BYE line-too-long.
    #[arg(env = "VIGIL_MAX_LINE", long, default_value_t = DEFAULT_MAX_LINE, value_parser = at_least_one)]
    max_line: usize,
    /// Largest frame in bytes (resp and binary protocols).
    #[arg(env = "VIGIL_MAX_FRAME", long, default_value_t = DEFAULT_MAX_FRAME, value_parser = at_least_one)]
    max_frame: usize,
    /// Acknowledgement of the raw protocol, sent at most once per interval (\n, \r, \t, \\ escapes).
    #[arg(env = "VIGIL_RAW_ACK", long, value_name = "TEXT", default_value_t = Ack(DEFAULT_ACK.to_vec()), value_parser = parse_escapes)]
    raw_ack: Ack,
    /// Most unsent output per connection in bytes before it is closed.
    #[arg(env = "VIGIL_MAX_OUTPUT", long, default_value_t = DEFAULT_MAX_OUTPUT)]
    max_output: usize,
    /// Close a client sending more than N heartbeats per interval (BYE too-many-pings).
    #[arg(env = "VIGIL_MAX_PINGS", long, value_name = "N")]
    max_pings: Option<u32>,
    /// Write presence events as JSON lines to FILE (appending; `-` for stdout).
    #[arg(env = "VIGIL_EVENTS", long, value_name = "FILE")]
    events: Option<String>,
    /// How often to log a stats line (0ms: never).
    #[arg(env = "VIGIL_STATS_INTERVAL", long, value_parser = Dur::parse, default_value_t = Dur(DEFAULT_STATS_INTERVAL))]
    stats_interval: Dur,
    /// Listen backlog (capped by net.core.somaxconn).
    #[arg(env = "VIGIL_BACKLOG", long, default_value_t = DEFAULT_BACKLOG)]
    backlog: u32,
    /// Kernel TCP keepalive on every connection: IDLE,INTVL,CNT such as 60s,10s,5 [default: off].
    #[arg(env = "VIGIL_TCP_KEEPALIVE", long, value_name = "IDLE,INTVL,CNT", value_parser = Keepalive::parse)]
    tcp_keepalive: Option<Keepalive>,
    /// TCP_USER_TIMEOUT on every connection: unacknowledged data older than this resets it [default: off].
    #[arg(env = "VIGIL_TCP_USER_TIMEOUT", long, value_name = "D", value_parser = parse_duration)]
    tcp_user_timeout: Option<std::time::Duration>,
    /// Most bytes of events waiting to be written; beyond it events are dropped, counted, and a gap record says how many.
    #[arg(env = "VIGIL_EVENTS_QUEUE", long, value_name = "BYTES", default_value_t = DEFAULT_EVENTS_QUEUE, value_parser = parse_queue)]
    events_queue: usize,
    /// Who declares a silent connection dead: `fixed` (after --timeout) or
    /// `phi:THRESHOLD[,min-std=D][,pause=D]`, a φ accrual detector that learns each
    /// connection's rhythm and gives up sooner on a regular one, never later than --timeout
    /// (min-std defaults to a twentieth of --interval, pause to 0).
    #[arg(env = "VIGIL_DETECTOR", long, value_name = "fixed|phi:N", default_value = "fixed", value_parser = check_detector)]
    detector: String,
    /// Share presence with other vigil nodes through this Redis: redis://HOST:PORT [default: off].
    #[arg(env = "VIGIL_CLUSTER", long, value_name = "URL", value_parser = ClusterOptions::parse)]
    cluster: Option<ClusterOptions>,
    /// This node's id in the cluster [default: the first listening HOST:PORT].
    #[arg(env = "VIGIL_NODE_ID", long, value_name = "NAME", requires = "cluster")]
    node_id: Option<String>,
    /// Prefix of the cluster's Redis keys and channels.
    #[arg(
        env = "VIGIL_CLUSTER_PREFIX",
        long,
        value_name = "PREFIX",
        default_value = "vigil:",
        requires = "cluster"
    )]
    cluster_prefix: String,
    /// Serve the admin endpoint (HTTP: status page at /, /events/stream, /metrics, /clients, /healthz, kick) on ADDR; loopback only unless --admin-public [default: off].
    #[arg(env = "VIGIL_ADMIN", long, value_name = "ADDR")]
    admin: Option<String>,
    /// Allow a non-loopback --admin address (protect it with --admin-token-file and a firewall).
    #[arg(env = "VIGIL_ADMIN_PUBLIC", long, requires = "admin")]
    admin_public: bool,
    /// Require `Authorization: Bearer <token>` on the admin endpoint (but /healthz), the token read from FILE.
    #[arg(
        env = "VIGIL_ADMIN_TOKEN_FILE",
        long,
        value_name = "FILE",
        requires = "admin"
    )]
    admin_token_file: Option<std::path::PathBuf>,
    /// Serve TLS only: the certificate chain, PEM, the server's certificate first [default: plain TCP].
    #[arg(
        env = "VIGIL_TLS_CERT",
        long,
        value_name = "FILE",
        requires = "tls_key"
    )]
    tls_cert: Option<std::path::PathBuf>,
    /// The private key of --tls-cert, PEM (PKCS#8, PKCS#1 or SEC1).
    #[arg(
        env = "VIGIL_TLS_KEY",
        long,
        value_name = "FILE",
        requires = "tls_cert"
    )]
    tls_key: Option<std::path::PathBuf>,
    /// Worker processes sharing the port (SO_REUSEPORT): a number, or auto
    /// (one per core, more when --max-conns needs more open files than one
    /// process may have). Client ids are sharded across them; presence stays exact.
    #[arg(env = "VIGIL_WORKERS", long, value_name = "N|auto", default_value_t = Workers::Count(1), value_parser = Workers::parse)]
    workers: Workers,
    /// Internal: run as one worker of a supervisor (INDEX/COUNT/GROUP/FIRST_CONN).
    #[arg(long, hide = true, value_parser = super::workers::parse_slot)]
    worker_of: Option<WorkerSlot>,
    /// Require `HELLO <id> <token>` with an HMAC-SHA256 token under the secret in FILE (see `vigil token`); others get BYE unauthorized.
    #[arg(env = "VIGIL_AUTH_SECRET", long, value_name = "FILE")]
    auth_secret: Option<String>,
    /// Close a connection without a completed (authenticated) HELLO after D, with BYE hello-timeout; 0ms: off [default: 10s with --auth-secret, else off].
    #[arg(env = "VIGIL_HELLO_TIMEOUT", long, value_name = "D", value_parser = parse_duration)]
    hello_timeout: Option<std::time::Duration>,
    /// Most connections from one source address; more get BYE too-many-connections.
    #[arg(env = "VIGIL_MAX_CONNS_PER_IP", long, value_name = "N")]
    max_conns_per_ip: Option<u32>,
    /// Most new connections per source address: N/s, N/m, N/h or N/<duration> (a token bucket of N); faster ones are refused at accept.
    #[arg(env = "VIGIL_MAX_CONNECTS_PER_IP", long, value_name = "RATE", value_parser = ConnectRate::parse)]
    max_connects_per_ip: Option<ConnectRate>,
    /// Close a client sending more than N frames of any kind per interval (BYE too-many-frames; N up to 65535).
    #[arg(env = "VIGIL_MAX_FRAMES", long, value_name = "N")]
    max_frames: Option<u16>,
}

/// Checks the detector's syntax when flags are parsed (a usage error);
/// its defaults depend on --interval and are filled in later.
fn check_detector(s: &str) -> Result<String, String> {
    Detector::parse(s, 1000).map(|_| s.to_owned())
}

/// `--hello-timeout` when `--auth-secret` is given without it.
const DEFAULT_AUTH_HELLO_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Runs the server until SIGINT or SIGTERM: 0 then, 2 for a configuration
/// the library refuses, 1 for any other error.
pub fn run(args: ServeArgs) -> ExitCode {
    if args.worker_of.is_none() {
        let workers = args.workers.resolve(
            std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
            vigil::nofile_limit().map_or(u64::MAX, |(_, hard)| hard),
            args.max_conns,
        );
        if workers > 1 {
            if args.listen.len() != 1 || args.listen[0].contains("://") {
                vigil::logging::fatal(
                    "vigil serve: several --listen, or one with a scheme, cannot be combined \
                     with --workers above 1 yet",
                );
                return ExitCode::from(2);
            }
            // Each worker would bind the admin address, and join the
            // cluster as the same node: not supported together yet.
            for (given, flag) in [
                (args.admin.is_some(), "--admin"),
                (args.cluster.is_some(), "--cluster"),
            ] {
                if given {
                    vigil::logging::fatal(&format!(
                        "vigil serve: {flag} cannot be combined with --workers above 1 yet"
                    ));
                    return ExitCode::from(2);
                }
            }
            return super::workers::run(
                workers,
                &args.listen[0],
                args.max_conns,
                args.events.as_deref(),
            );
        }
    }
    match serve(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            vigil::logging::fatal(&format!("vigil serve: {e}"));
            let usage = e
                .downcast_ref::<vigil::Error>()
                .is_some_and(|e| e.kind() == vigil::ErrorKind::Config);
            ExitCode::from(if usage { 2 } else { 1 })
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
    let mut plain = Vec::new();
    let mut more = Vec::new();
    for l in &args.listen {
        match Scheme::split(l)? {
            (None, addr) => plain.push(addr),
            (Some(scheme), addr) => more.push((scheme, addr)),
        }
    }
    let codec = CodecArgs {
        any: !more.is_empty(),
        protocol: args.protocol,
        max_line: args.max_line,
        max_frame: args.max_frame,
        raw_ack: args.raw_ack.0.clone(),
    };
    let mut builder = Server::builder();
    match plain.as_slice() {
        [] => {}
        [one] => builder = builder.listen(*one),
        several => {
            // One name or address per flag; all of them as one list.
            let mut addrs = Vec::new();
            for a in several {
                addrs.extend(vigil::addr::resolve(a)?);
            }
            builder = builder.listen(addrs.as_slice());
        }
    }
    for (scheme, addr) in more {
        builder = builder.listen_as(scheme, addr);
    }
    let mut builder = builder
        .ws_origins(args.ws_origin.clone())
        .ws_handshake_timeout(args.ws_handshake_timeout.0)
        .ws_ping(!args.no_ws_ping)
        .line_ping(args.line_ping)
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
    let interval_ms = vigil::time::millis_ceil(args.interval.0);
    builder = builder.detector(Detector::parse(&args.detector, interval_ms)?);
    if let Some(mut cluster) = args.cluster {
        cluster.node_id = args.node_id;
        cluster.prefix = args.cluster_prefix;
        builder = builder.cluster(cluster);
    }
    if let Some(addr) = &args.admin {
        builder = builder.admin(admin(
            addr,
            args.admin_public,
            args.admin_token_file.as_deref(),
        )?);
    }
    if let (Some(cert), Some(key)) = (args.tls_cert, args.tls_key) {
        log::info!("TLS with certificate {}", cert.display());
        builder = builder.tls(vigil::server::TlsFiles::new(cert, key));
    }
    if let Some(sink) = events(args.events.as_deref(), args.events_queue)? {
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
    let slot = args.worker_of;
    if let Some(slot) = &slot {
        builder = builder.worker(slot.clone());
    }
    let slot = slot.as_ref();
    match verifier {
        Some(v) => {
            log::info!("authentication on: HELLO needs a token");
            let builder = builder.handler(Authenticated::new(v, PresenceOnly));
            run_protocol(&codec, builder, slot)
        }
        None => run_protocol(&codec, builder, slot),
    }
}

/// What `--protocol` and its limits say, kept apart from the flags that
/// are moved into the builder.
struct CodecArgs {
    /// Some listener has a scheme: the server speaks every protocol.
    any: bool,
    protocol: ProtocolName,
    max_line: usize,
    max_frame: usize,
    raw_ack: Vec<u8>,
}

fn run_protocol<H: Handler>(
    codec: &CodecArgs,
    builder: Builder<LineProtocol, H>,
    slot: Option<&WorkerSlot>,
) -> Result<(), Box<dyn std::error::Error>> {
    if codec.any {
        let scheme = match codec.protocol {
            ProtocolName::Line => Scheme::Line,
            ProtocolName::Resp => Scheme::Resp,
            ProtocolName::Binary => Scheme::Binary,
            ProtocolName::Raw => Scheme::Raw,
        };
        let any = AnyProtocol::new(
            scheme,
            LineProtocol::new(codec.max_line),
            RespProtocol::new(codec.max_frame),
            BinaryProtocol::new(codec.max_frame),
            RawProtocol::new(codec.raw_ack.clone()),
        );
        return run_with(builder, any, slot);
    }
    match codec.protocol {
        ProtocolName::Line => run_with(builder, LineProtocol::new(codec.max_line), slot),
        ProtocolName::Resp => run_with(builder, RespProtocol::new(codec.max_frame), slot),
        ProtocolName::Binary => run_with(builder, BinaryProtocol::new(codec.max_frame), slot),
        ProtocolName::Raw => run_with(builder, RawProtocol::new(codec.raw_ack.clone()), slot),
    }
}

/// The admin endpoint of `--admin`, `--admin-public` and
/// `--admin-token-file` (the token is the file's first line, without the
/// line end).
fn admin(
    addr: &str,
    public: bool,
    token_file: Option<&std::path::Path>,
) -> Result<AdminConfig, String> {
    let resolved = vigil::addr::resolve(&addr).map_err(|e| format!("--admin: {e}"))?;
    let Some(&first) = resolved.first() else {
        return Err(format!("--admin: {addr:?} resolves to no address"));
    };
    let mut admin = AdminConfig::new(first);
    admin.public = public;
    if let Some(path) = token_file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the admin token file {}: {e}", path.display()))?;
        let token = text.lines().next().unwrap_or("").trim_end();
        if token.is_empty() {
            return Err(format!("the admin token file {} is empty", path.display()));
        }
        admin.token = Some(token.to_owned());
    }
    Ok(admin)
}

/// The sink of `--events`: none, stdout for `-`, or a file appended to.
fn events(path: Option<&str>, queue: usize) -> Result<Option<EventSink>, String> {
    Ok(match path {
        None => None,
        Some("-") => Some(
            EventSink::stdout(queue).map_err(|e| format!("cannot start the events writer: {e}"))?,
        ),
        Some(path) => Some(
            EventSink::file(path, queue)
                .map_err(|e| format!("cannot open the events file {path}: {e}"))?,
        ),
    })
}

fn run_with<P: Protocol, H: Handler>(
    builder: Builder<LineProtocol, H>,
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

/// `--listen`: `HOST:PORT` or `[IPv6]:PORT` with a port number, checked
/// when the flags are read (names are resolved when the server binds).
fn check_listen(given: &str) -> Result<String, String> {
    let (_, s) = Scheme::split(given)?;
    let bad = || format!("{s:?} is not HOST:PORT or [IPv6]:PORT");
    let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
    port.parse::<u16>().map_err(|_| bad())?;
    let host = host.trim();
    let v6 = host.starts_with('[');
    if host.is_empty() || v6 != host.ends_with(']') || (!v6 && host.contains(':')) {
        return Err(bad());
    }
    Ok(given.to_owned())
}

/// `--max-line`, `--max-frame`: a size of at least 1.
fn at_least_one(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("must be at least 1".to_owned()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

/// `--events-queue`: at least 1024 bytes, so a record always fits.
fn parse_queue(s: &str) -> Result<usize, String> {
    let n: usize = s
        .parse()
        .map_err(|_| format!("invalid size {s:?}: expected a number of bytes"))?;
    if n < 1024 {
        return Err(format!("{n} is too small: at least 1024 bytes"));
    }
    Ok(n)
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
    fn listen_addresses_are_checked_when_parsed() {
        for ok in ["127.0.0.1:7700", "[::1]:0", "localhost:80", "0.0.0.0:65535"] {
            assert_eq!(check_listen(ok), Ok(ok.to_owned()));
        }
        for bad in [
            "",
            "7700",
            ":7700",
            "127.0.0.1",
            "127.0.0.1:",
            "127.0.0.1:70000",
            "::1:80",
            "[::1:80",
            "host:port",
            "127.0.0.1:-1",
        ] {
            assert!(check_listen(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn sizes_are_checked_when_parsed() {
        assert!(at_least_one("0").is_err());
        assert!(at_least_one("-1").is_err());
        assert_eq!(at_least_one("1"), Ok(1));
        assert!(parse_queue("1023").is_err());
        assert!(parse_queue("lots").is_err());
        assert_eq!(parse_queue("1024"), Ok(1024));
    }

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
