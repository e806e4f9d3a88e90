//! `vigil serve`: the heartbeat server.

use std::fs::OpenOptions;
use std::io::{self, BufWriter};
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use vigil::duration::parse_duration;
use vigil::events::EventSink;
use vigil::protocol::line::DEFAULT_MAX_LINE;
use vigil::server::{Config, DEFAULT_LISTEN};
use vigil::sys::Keepalive;
use vigil::{LineProtocol, Server};

/// Flags of `vigil serve`. Durations take ms, s or m (250ms, 30s, 5m).
#[derive(Args, Debug)]
pub struct ServeArgs {
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
    /// Longest line in bytes; a longer one gets BYE line-too-long.
    #[arg(long, default_value_t = DEFAULT_MAX_LINE)]
    max_line: usize,
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
    if args.max_line == 0 {
        return Err("--max-line must be at least 1".into());
    }
    let mut server = Server::new(config, LineProtocol::new(args.max_line))?;
    match args.events.as_deref() {
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
