//! `vigil load`: flags -> [`vigil::load::LoadConfig`] -> [`vigil::load::run`]
//! (or [`vigil::load::run_procs`]) -> a table or JSON on stdout -> exit code.

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::process::{Command, ExitCode};

use vigil::duration::format_duration;
use vigil::load::config::{
    DEFAULT_CONNECT_RATE, DEFAULT_DURATION, DEFAULT_INTERVAL, DEFAULT_REPLY_TIMEOUT,
};
use vigil::load::plot::{plot_svg, Timeline};
use vigil::load::render::{format_hgrm, format_json, format_progress, format_table};
use vigil::load::{self, ErrorKind, LoadConfig, Phase, Progress, SourceRange};
use vigil::protocol::client::ClientCodec;

use super::Dur;

/// Open many heartbeat sessions against a server and measure every round trip.
#[derive(clap::Args, Debug, Clone)]
pub struct LoadArgs {
    /// The server to load.
    #[arg(
        env = "VIGIL_LOAD_SERVER",
        long,
        value_name = "HOST:PORT",
        required_unless_present = "worker"
    )]
    pub server: Option<String>,

    /// How many connections to open.
    #[arg(
        env = "VIGIL_LOAD_CONNS",
        long,
        value_name = "N",
        required_unless_present = "worker"
    )]
    pub conns: Option<usize>,

    /// New connections per second, at most (shared by all processes).
    #[arg(env = "VIGIL_LOAD_CONNECT_RATE", long, value_name = "R", default_value_t = DEFAULT_CONNECT_RATE)]
    pub connect_rate: f64,

    /// Heartbeat interval of every session (e.g. 250ms, 1s).
    #[arg(long, value_name = "D", value_parser = Dur::parse,
          env = "VIGIL_LOAD_INTERVAL",
          default_value_t = Dur(DEFAULT_INTERVAL))]
    pub interval: Dur,

    /// How long to hold once every connection has started (the run then
    /// waits at most --timeout for the last replies, and stops).
    #[arg(long, value_name = "D", value_parser = Dur::parse,
          env = "VIGIL_LOAD_DURATION",
          default_value_t = Dur(DEFAULT_DURATION))]
    pub duration: Dur,

    /// How long the server may take to answer a PING, a HELLO or a connect
    /// before the session declares it dead and reconnects.
    #[arg(long, value_name = "D", value_parser = Dur::parse,
          env = "VIGIL_LOAD_TIMEOUT",
          default_value_t = Dur(DEFAULT_REPLY_TIMEOUT))]
    pub timeout: Dur,

    /// Spread connections over these IPv4 source addresses (bound before
    /// connecting), e.g. 127.0.0.2-127.0.0.40.
    #[arg(env = "VIGIL_LOAD_SOURCE_IPS", long, value_name = "A-B", value_parser = parse_source_ips)]
    pub source_ips: Option<SourceRange>,

    /// Worker processes to split the connections and the connect rate over.
    #[arg(env = "VIGIL_LOAD_PROCS", long, value_name = "P", default_value_t = 1)]
    pub procs: usize,

    /// Client ids are this prefix and the connection's number [default: load-<pid>-].
    #[arg(env = "VIGIL_LOAD_ID_PREFIX", long, value_name = "PREFIX")]
    pub id_prefix: Option<String>,

    /// Seed of the start phases and reconnect jitter [default: from the clock].
    #[arg(env = "VIGIL_LOAD_SEED", long, value_name = "N")]
    pub seed: Option<u64>,

    /// Print one JSON object instead of the table.
    #[arg(env = "VIGIL_LOAD_JSON", long)]
    pub json: bool,

    /// Run as a worker of `--procs`: the share comes on stdin.
    #[arg(long, hide = true)]
    pub worker: bool,

    /// Exit with status 3 when connect errors, unexpected closes and
    /// unanswered heartbeats add up to more than N (the report is printed
    /// either way).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub max_errors: u64,

    /// Write the full latency distribution (from the scheduled send) to
    /// FILE, in HdrHistogram's percentile format as wrk2 prints it
    /// (`Value Percentile TotalCount 1/(1-Percentile)`, values in ms),
    /// ready for HdrHistogram's plotter.
    #[arg(long, value_name = "FILE")]
    pub hgrm: Option<std::path::PathBuf>,

    /// The wire protocol, as the server's --protocol: line, resp, binary,
    /// raw or ws. Every session beats at --interval whatever the server says.
    #[arg(env = "VIGIL_LOAD_PROTOCOL", long, value_name = "NAME", default_value = "line", value_parser = parse_protocol)]
    pub protocol: String,

    /// Speak TLS, checking the server's certificate [default: plain TCP].
    #[arg(env = "VIGIL_LOAD_TLS", long)]
    pub tls: bool,

    /// With --tls: trust the certificate authorities in this PEM file instead of the system's.
    #[arg(env = "VIGIL_LOAD_CA", long, value_name = "FILE", requires = "tls")]
    pub ca: Option<std::path::PathBuf>,

    /// With --tls: the name the server's certificate must carry [default: the host of --server].
    #[arg(
        env = "VIGIL_LOAD_TLS_NAME",
        long,
        value_name = "NAME",
        requires = "tls"
    )]
    pub tls_name: Option<String>,

    /// Secret FILE of a server run with --auth-secret: each session mints its own token.
    #[arg(env = "VIGIL_LOAD_AUTH_SECRET", long, value_name = "FILE")]
    pub auth_secret: Option<String>,

    /// Draw the run into FILE, an SVG: the latency percentile curves of
    /// both histograms (from the scheduled send and the round trip, 50 % to
    /// 99.999 %, log scale) and the sessions online and heartbeats per
    /// second over the run.
    #[arg(env = "VIGIL_LOAD_PLOT", long, value_name = "FILE.svg")]
    pub plot: Option<std::path::PathBuf>,
}

/// `--protocol`: one of the built-in client codecs.
fn parse_protocol(s: &str) -> Result<String, String> {
    match ClientCodec::by_name(s) {
        Some(c) => Ok(c.name().to_owned()),
        None => Err("expected line, resp, binary, raw or ws".to_owned()),
    }
}

fn parse_source_ips(s: &str) -> Result<SourceRange, String> {
    s.parse().map_err(|e: load::ConfigError| e.to_string())
}

impl LoadArgs {
    /// The library config these flags describe.
    pub fn config(&self) -> Result<LoadConfig, String> {
        let server = self.server.as_deref().unwrap_or_default();
        let addr = resolve(server)?;
        let mut c = LoadConfig::new(addr, self.conns.unwrap_or(0));
        c.connect_rate = self.connect_rate;
        c.interval = self.interval.0;
        c.duration = self.duration.0;
        c.reply_timeout = self.timeout.0;
        c.source_ips = self.source_ips;
        c.id_prefix = self
            .id_prefix
            .clone()
            .unwrap_or_else(|| format!("load-{}-", std::process::id()));
        c.seed = self.seed.unwrap_or_else(clock_seed);
        c.protocol = ClientCodec::by_name(&self.protocol).unwrap_or_default();
        c.tls = self.tls.then(|| vigil::tls::TlsClient {
            ca: self.ca.clone(),
            name: Some(
                self.tls_name
                    .clone()
                    .unwrap_or_else(|| vigil::tls::host_of(server).to_owned()),
            ),
        });
        if let Some(path) = &self.auth_secret {
            // Absolute, so workers started elsewhere read the same file.
            let path =
                std::fs::canonicalize(path).map_err(|e| format!("--auth-secret {path}: {e}"))?;
            c.auth_secret = Some(path);
        }
        Ok(c)
    }
}

/// The first address `--server` names (a load run targets one address).
fn resolve(server: &str) -> Result<SocketAddr, String> {
    let addrs = vigil::addr::resolve(server).map_err(|e| format!("--server: {e}"))?;
    addrs
        .first()
        .copied()
        .ok_or_else(|| format!("--server {server:?} resolves to no address"))
}

fn clock_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos ^ (u64::from(std::process::id()) << 32)
}

/// Exit status when the run completed but had more errors than `--max-errors`.
pub const TOO_MANY_ERRORS: u8 = 3;

/// Runs the load; 0 when the run completed with at most `--max-errors`
/// errors, 3 when it completed with more, 2 for unusable flags, 1 for
/// other failures (including a `--hgrm` file that cannot be written).
pub fn run(args: LoadArgs) -> ExitCode {
    if args.worker {
        return match load::run_worker() {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                vigil::logging::fatal(&format!("vigil load worker: {e}"));
                ExitCode::FAILURE
            }
        };
    }
    let config = match args.config() {
        Ok(c) => c,
        Err(e) => {
            vigil::logging::fatal(&format!("vigil load: {e}"));
            return ExitCode::from(2);
        }
    };
    let mut live = Live::new(config.conns, std::io::stderr().is_terminal());
    let mut timeline = Timeline::new();
    let mut progress = |p: &vigil::load::Progress| {
        timeline.record(p);
        live.show(p, &config);
    };
    let result = if args.procs == 1 {
        load::run(&config, &mut progress)
    } else {
        let exe = match std::env::current_exe() {
            Ok(exe) => exe,
            Err(e) => {
                vigil::logging::fatal(&format!(
                    "vigil load: cannot find this program to start workers: {e}"
                ));
                return ExitCode::FAILURE;
            }
        };
        let worker = || {
            let mut cmd = Command::new(&exe);
            cmd.args(["load", "--worker"]);
            cmd
        };
        load::run_procs(&config, args.procs, &worker, &mut progress)
    };
    live.finish();
    match result {
        Ok(report) => {
            let text = if args.json {
                format_json(&config, &report) + "\n"
            } else {
                format_table(&config, &report)
            };
            let mut out = std::io::stdout().lock();
            if let Err(e) = out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
                vigil::logging::fatal(&format!("vigil load: cannot write the report: {e}"));
                return ExitCode::FAILURE;
            }
            if let Some(path) = &args.hgrm {
                if let Err(e) = std::fs::write(path, format_hgrm(&report.scheduled)) {
                    vigil::logging::fatal(&format!(
                        "vigil load: cannot write {}: {e}",
                        path.display()
                    ));
                    return ExitCode::FAILURE;
                }
            }
            if let Some(path) = &args.plot {
                let title = format!(
                    "vigil load: {} connections to {}, interval {:?}",
                    config.conns, config.server, config.interval
                );
                let written = plot_svg(&title, &report, &timeline)
                    .and_then(|svg| std::fs::write(path, svg).map_err(|e| e.to_string()));
                if let Err(e) = written {
                    vigil::logging::fatal(&format!(
                        "vigil load: cannot write {}: {e}",
                        path.display()
                    ));
                    return ExitCode::FAILURE;
                }
            }
            let errors = report.errors();
            if errors > args.max_errors {
                eprintln!(
                    "vigil load: {errors} errors ({} connect errors, {} unexpected closes, \
                     {} heartbeats unanswered), more than --max-errors {}",
                    report.connect_errors_total(),
                    report.closes_total(),
                    report.missing,
                    args.max_errors
                );
                return ExitCode::from(TOO_MANY_ERRORS);
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            vigil::logging::fatal(&format!("vigil load: {e}"));
            if e.kind() == ErrorKind::Config {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// The progress line: redrawn in place on a terminal, one plain line a
/// second otherwise (a CI log, a pipe); and the phase changes in the log.
struct Live {
    target: usize,
    tty: bool,
    shown: bool,
    /// The previous snapshot's time and heartbeats sent, for the rate.
    last: Option<(u64, u64)>,
    phase: Phase,
}

impl Live {
    fn new(target: usize, tty: bool) -> Live {
        Live {
            target,
            tty,
            shown: false,
            last: None,
            phase: Phase::Ramp,
        }
    }

    fn show(&mut self, p: &Progress, config: &LoadConfig) {
        if p.phase != self.phase {
            self.clear();
            match p.phase {
                Phase::Hold => log::info!(
                    "holding: {}/{} online after {:.1}s; holding for {}",
                    p.online,
                    self.target,
                    p.elapsed_ms as f64 / 1000.0,
                    format_duration(config.duration)
                ),
                Phase::Drain => log::info!(
                    "hold over: {}/{} online at {:.1}s; waiting for the last replies",
                    p.online,
                    self.target,
                    p.elapsed_ms as f64 / 1000.0
                ),
                Phase::Done | Phase::Ramp => {}
            }
            self.phase = p.phase;
        }
        let rate = match self.last {
            Some((elapsed_ms, sent)) if p.elapsed_ms > elapsed_ms => {
                p.sent.saturating_sub(sent) as f64 * 1000.0 / (p.elapsed_ms - elapsed_ms) as f64
            }
            _ => 0.0,
        };
        self.last = Some((p.elapsed_ms, p.sent));
        if p.phase == Phase::Done {
            return;
        }
        if self.tty {
            eprint!("\r{}\x1b[K", format_progress(p, self.target, rate));
            self.shown = true;
        } else {
            eprintln!("{}", format_progress(p, self.target, rate));
        }
    }

    fn clear(&mut self) {
        if self.shown {
            eprint!("\r\x1b[K");
            self.shown = false;
        }
    }

    fn finish(&mut self) {
        self.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use std::time::Duration;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        load: LoadArgs,
    }

    fn parse(args: &[&str]) -> Result<LoadArgs, String> {
        Cli::try_parse_from(std::iter::once("load").chain(args.iter().copied()))
            .map(|c| c.load)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_are_the_librarys() {
        let a = parse(&["--server", "127.0.0.1:7700", "--conns", "5"]).unwrap();
        assert_eq!(a.interval, Dur(DEFAULT_INTERVAL));
        assert_eq!(a.duration, Dur(DEFAULT_DURATION));
        assert_eq!(a.timeout, Dur(DEFAULT_REPLY_TIMEOUT));
        assert_eq!(a.procs, 1);
        assert_eq!((a.max_errors, a.hgrm.is_none()), (0, true));
        let c = a.config().unwrap();
        assert_eq!(c.conns, 5);
        assert_eq!(c.connect_rate, DEFAULT_CONNECT_RATE);
        assert!(c.id_prefix.starts_with("load-"), "{}", c.id_prefix);
    }

    #[test]
    fn flags_map_to_the_config() {
        let a = parse(&[
            "--server",
            "127.0.0.1:9",
            "--conns",
            "10",
            "--connect-rate",
            "2.5",
            "--interval",
            "250ms",
            "--duration",
            "2s",
            "--timeout",
            "1s",
            "--source-ips",
            "127.0.0.2-127.0.0.9",
            "--id-prefix",
            "t-",
            "--seed",
            "7",
            "--json",
            "--max-errors",
            "12",
            "--hgrm",
            "out.hgrm",
            "--protocol",
            "binary",
        ])
        .unwrap();
        assert_eq!(a.max_errors, 12);
        assert_eq!(a.hgrm.as_deref(), Some(std::path::Path::new("out.hgrm")));
        let c = a.config().unwrap();
        assert_eq!(c.server, "127.0.0.1:9".parse().unwrap());
        assert_eq!(c.connect_rate, 2.5);
        assert_eq!(c.interval, Duration::from_millis(250));
        assert_eq!(c.duration, Duration::from_secs(2));
        assert_eq!(c.reply_timeout, Duration::from_secs(1));
        assert_eq!(c.source_ips.map(|r| r.len()), Some(8));
        assert_eq!((c.id_prefix.as_str(), c.seed), ("t-", 7));
        assert_eq!(c.protocol, ClientCodec::BINARY);
        assert!(a.json);
    }

    #[test]
    fn every_built_in_protocol_is_a_protocol_flag() {
        for codec in ClientCodec::BUILT_IN {
            let a = parse(&[
                "--server",
                "127.0.0.1:9",
                "--conns",
                "1",
                "--protocol",
                codec.name(),
            ])
            .unwrap();
            assert_eq!(a.config().unwrap().protocol, codec);
        }
    }

    #[test]
    fn bad_flags_are_refused() {
        for (args, needle) in [
            (&["--conns", "5"][..], "--server"),
            (&["--server", "127.0.0.1:1"][..], "--conns"),
            (&["--server", "x:1", "--conns", "many"][..], "--conns"),
            (
                &["--server", "x:1", "--conns", "1", "--interval", "1"][..],
                "invalid duration",
            ),
            (
                &[
                    "--server",
                    "x:1",
                    "--conns",
                    "1",
                    "--source-ips",
                    "1.2.3.4-1.2.3.1",
                ][..],
                "above the last",
            ),
            (
                &["--server", "x:1", "--conns", "1", "--connect-rate", "fast"][..],
                "--connect-rate",
            ),
            (
                &["--server", "x:1", "--conns", "1", "--max-errors", "some"][..],
                "--max-errors",
            ),
            (
                &["--server", "x:1", "--conns", "1", "--protocol", "smtp"][..],
                "expected line, resp, binary, raw or ws",
            ),
        ] {
            let e = parse(args).expect_err(needle);
            assert!(e.contains(needle), "{args:?}: {e}");
        }
        let a = parse(&["--server", "127.0.0.1", "--conns", "1"]).unwrap();
        assert!(a.config().unwrap_err().contains("HOST:PORT"));
        // The worker needs nothing else.
        assert!(parse(&["--worker"]).unwrap().worker);
    }
}
