//! `vigil client`: flags -> [`vigil::client::ClientConfig`] -> [`vigil::client::run`] -> exit code.

use std::process::ExitCode;
use std::sync::OnceLock;
use std::time::Duration;

use vigil::client::adaptive::AdaptiveConfig;
use vigil::client::session::DEFAULT_REPLY_TIMEOUT_MS;
use vigil::client::{self, ClientConfig};
use vigil::duration::{format_duration, parse_duration};
use vigil::Keepalive;

/// Connect to a vigil server, keep the connection alive with heartbeats,
/// and chat: stdin lines go to the server (on a terminal, or with --stdin),
/// server lines go to stdout.
#[derive(clap::Args, Debug, Clone, PartialEq, Eq)]
pub struct ClientArgs {
    /// Servers to use, tried in turn when one fails.
    #[arg(
        env = "VIGIL_CLIENT_SERVER",
        long,
        value_name = "HOST:PORT[,HOST:PORT...]",
        required = true,
        value_delimiter = ','
    )]
    pub server: Vec<String>,

    /// The client id to log in with (1 to 128 printable ASCII characters, no spaces).
    #[arg(env = "VIGIL_CLIENT_ID", long, value_name = "ID")]
    pub id: String,

    /// Heartbeat interval, overriding the one the server sends (e.g. 250ms, 30s, 5m).
    #[arg(env = "VIGIL_CLIENT_INTERVAL", long, value_name = "D", value_parser = parse_duration)]
    pub interval: Option<Duration>,

    /// Adaptive heartbeat: search, on short-lived probe connections, for the
    /// longest interval the path keeps alive (below a NAT's idle timeout),
    /// from MIN up to MAX and never past 90% of the server's timeout; the
    /// connection itself only beats at intervals a probe proved (e.g. 5s..5m).
    #[arg(
        env = "VIGIL_CLIENT_ADAPTIVE",
        long,
        value_name = "MIN..MAX",
        value_parser = AdaptiveConfig::parse,
        conflicts_with = "interval"
    )]
    pub adaptive: Option<AdaptiveConfig>,

    /// Kernel TCP keepalive on the connection: IDLE,INTVL,CNT such as 60s,10s,5 [default: off].
    #[arg(env = "VIGIL_CLIENT_TCP_KEEPALIVE", long, value_name = "IDLE,INTVL,CNT", value_parser = Keepalive::parse)]
    pub tcp_keepalive: Option<Keepalive>,

    /// TCP_USER_TIMEOUT on the connection: unacknowledged data older than this resets it [default: off].
    #[arg(env = "VIGIL_CLIENT_TCP_USER_TIMEOUT", long, value_name = "D", value_parser = parse_duration)]
    pub tcp_user_timeout: Option<Duration>,

    /// How long the server may take to answer a PING or HELLO before it is
    /// declared dead.
    #[arg(env = "VIGIL_CLIENT_TIMEOUT", long, value_name = "D", default_value = default_reply_timeout(), value_parser = parse_duration)]
    pub timeout: Duration,

    /// Do not print the server's lines to stdout.
    #[arg(env = "VIGIL_CLIENT_QUIET", long)]
    pub quiet: bool,

    /// Send stdin's lines to the server, and exit at end of input [default:
    /// on only when stdin is a terminal; otherwise stdin is never read and
    /// the client runs until SIGINT/SIGTERM, as a daemon].
    #[arg(env = "VIGIL_CLIENT_STDIN", long, conflicts_with = "no_stdin")]
    pub stdin: bool,

    /// Never read stdin (run as a daemon even on a terminal).
    #[arg(env = "VIGIL_CLIENT_NO_STDIN", long)]
    pub no_stdin: bool,

    /// Start in the foreground mode (default: background). With --adaptive,
    /// the foreground beats at a fixed interval and the background, after a
    /// few beats at the minimum, at the adaptive one. SIGUSR1 switches to
    /// the foreground, SIGUSR2 to the background.
    #[arg(env = "VIGIL_CLIENT_FOREGROUND", long)]
    pub foreground: bool,

    /// With --adaptive, the fixed interval in the foreground [default: the server's].
    #[arg(env = "VIGIL_CLIENT_FOREGROUND_INTERVAL", long, value_name = "D", value_parser = parse_duration, requires = "adaptive")]
    pub foreground_interval: Option<Duration>,

    /// Do not watch the kernel's address and route changes (netlink); by
    /// default a change of the connection's network reconnects at once.
    #[arg(env = "VIGIL_CLIENT_NO_WATCH_NETWORK", long)]
    pub no_watch_network: bool,
    /// The wire protocol, as the server's --protocol: line, resp, binary,
    /// raw or ws. With resp and raw the server does not say the interval:
    /// give --interval (or --adaptive). resp carries no messages (stdin lines
    /// are refused); raw takes any bytes from the server as the answer; ws
    /// is the line protocol in WebSocket frames.
    #[arg(env = "VIGIL_CLIENT_PROTOCOL", long, value_name = "NAME", default_value = "line", value_parser = parse_protocol)]
    pub protocol: String,

    /// Speak TLS, checking the server's certificate [default: plain TCP].
    #[arg(env = "VIGIL_CLIENT_TLS", long)]
    pub tls: bool,

    /// With --tls: trust the certificate authorities in this PEM file instead of the system's.
    #[arg(env = "VIGIL_CLIENT_CA", long, value_name = "FILE", requires = "tls")]
    pub ca: Option<std::path::PathBuf>,

    /// With --tls: the name the server's certificate must carry [default: the host of --server].
    #[arg(
        env = "VIGIL_CLIENT_TLS_NAME",
        long,
        value_name = "NAME",
        requires = "tls"
    )]
    pub tls_name: Option<String>,

    /// Who declares the server dead when it falls silent: `fixed` (an interval and --timeout
    /// after the last line received) or `phi:THRESHOLD[,min-std=D][,pause=D]`, a φ accrual
    /// detector that learns the server's rhythm and gives up sooner, never later (min-std
    /// defaults to a twentieth of the interval, 30 s when the server sets it).
    #[arg(env = "VIGIL_CLIENT_DETECTOR", long, value_name = "fixed|phi:N", default_value = "fixed", value_parser = check_detector)]
    pub detector: String,

    /// Token to send with HELLO, for a server run with --auth-secret (see `vigil token`).
    #[arg(
        env = "VIGIL_CLIENT_TOKEN",
        long,
        value_name = "TOKEN",
        conflicts_with = "auth_secret"
    )]
    pub token: Option<String>,

    /// Mint our own token (valid 24h) from the secret in FILE: for testing; a real client gets its token from its backend.
    #[arg(env = "VIGIL_CLIENT_AUTH_SECRET", long, value_name = "FILE")]
    pub auth_secret: Option<String>,
}

/// Checks the detector's syntax when flags are parsed (a usage error).
fn check_detector(s: &str) -> Result<String, String> {
    vigil::detector::Detector::parse(s, 1000).map(|_| s.to_owned())
}

/// `--protocol`: one of the built-in client codecs.
fn parse_protocol(s: &str) -> Result<String, String> {
    match vigil::protocol::client::ClientCodec::by_name(s) {
        Some(c) => Ok(c.name().to_owned()),
        None => Err("expected line, resp, binary, raw or ws".to_owned()),
    }
}

/// How long a token minted by `vigil client --auth-secret` lasts.
const SELF_MINTED_TTL_SECS: u64 = 24 * 3600;

impl ClientArgs {
    /// The library config these flags describe (the token of `--token`;
    /// see [`ClientArgs::minted_token`] for `--auth-secret`).
    pub fn config(&self) -> ClientConfig {
        let mut config = ClientConfig::new(self.server.clone(), self.id.clone());
        config.interval = self.interval;
        config.adaptive = self.adaptive;
        config.tcp_keepalive = self.tcp_keepalive;
        config.tcp_user_timeout = self.tcp_user_timeout;
        config.reply_timeout = self.timeout;
        // Checked when the flags were parsed; the default smallest σ
        // depends on the interval, when it is known here.
        let interval_ms = self.interval.map_or(30_000, vigil::time::millis_ceil);
        config.detector =
            vigil::detector::Detector::parse(&self.detector, interval_ms).unwrap_or_default();
        config.quiet = self.quiet;
        config.stdin = match (self.stdin, self.no_stdin) {
            (true, _) => Some(true),
            (false, true) => Some(false),
            (false, false) => None,
        };
        config.foreground = self.foreground;
        config.foreground_interval = self.foreground_interval;
        config.watch_network = !self.no_watch_network;
        if let Some(codec) = vigil::protocol::client::ClientCodec::by_name(&self.protocol) {
            config.protocol = codec;
        }
        config.tls = self.tls.then(|| vigil::tls::TlsClient {
            ca: self.ca.clone(),
            name: self.tls_name.clone(),
        });
        config.token = self.token.clone();
        config
    }

    /// With `--auth-secret`, a token minted for our id (valid a day).
    pub fn minted_token(&self) -> Result<Option<String>, String> {
        let Some(path) = &self.auth_secret else {
            return Ok(None);
        };
        let v = vigil::auth::load_secret(path.as_ref())?;
        let expiry = vigil::auth::unix_now().saturating_add(SELF_MINTED_TTL_SECS);
        Ok(Some(v.mint(&self.id, expiry)))
    }
}

/// `--timeout`'s default: the session's, written as the flag takes it.
/// (This file is also compiled alone by tests/cmd_client.rs, so it does
/// not use the binary's `cmd::Dur`.)
fn default_reply_timeout() -> &'static str {
    static TEXT: OnceLock<String> = OnceLock::new();
    TEXT.get_or_init(|| format_duration(Duration::from_millis(DEFAULT_REPLY_TIMEOUT_MS)))
}

/// Runs the client; 0 when it ends on end of input or a signal, 2 for
/// unusable flags, 1 on other errors.
pub fn run(args: ClientArgs) -> ExitCode {
    let mut config = args.config();
    match args.minted_token() {
        Ok(Some(token)) => config.token = Some(token),
        Ok(None) => {}
        Err(e) => {
            vigil::logging::fatal(&format!("vigil client: {e}"));
            return ExitCode::FAILURE;
        }
    }
    match client::run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            vigil::logging::fatal(&format!("vigil client: {e}"));
            if e.kind() == vigil::ErrorKind::Config {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        client: ClientArgs,
    }

    fn parse(args: &[&str]) -> Result<ClientArgs, String> {
        Cli::try_parse_from(std::iter::once("client").chain(args.iter().copied()))
            .map(|c| c.client)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn every_built_in_protocol_is_a_protocol_flag() {
        use vigil::protocol::client::ClientCodec;
        let base = ["--server", "127.0.0.1:9", "--id", "dev"];
        assert_eq!(parse(&base).unwrap().config().protocol, ClientCodec::LINE);
        for codec in ClientCodec::BUILT_IN {
            let a = parse(&[&base[..], &["--protocol", codec.name()]].concat()).unwrap();
            assert_eq!(a.config().protocol, codec);
        }
        let e = parse(&[&base[..], &["--protocol", "smtp"]].concat()).unwrap_err();
        assert!(e.contains("expected line, resp, binary, raw or ws"), "{e}");
    }
}
