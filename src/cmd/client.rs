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
/// and chat: stdin lines go to the server, server lines go to stdout.
#[derive(clap::Args, Debug, Clone, PartialEq, Eq)]
pub struct ClientArgs {
    /// Servers to use, tried in turn when one fails.
    #[arg(
        long,
        value_name = "HOST:PORT[,HOST:PORT...]",
        required = true,
        value_delimiter = ','
    )]
    pub server: Vec<String>,

    /// The client id to log in with (1 to 128 printable ASCII characters, no spaces).
    #[arg(long, value_name = "ID")]
    pub id: String,

    /// Heartbeat interval, overriding the one the server sends (e.g. 250ms, 30s, 5m).
    #[arg(long, value_name = "D", value_parser = parse_duration)]
    pub interval: Option<Duration>,

    /// Adaptive heartbeat: start at MIN and lengthen the interval while
    /// beats are answered, back off below one that is lost (a NAT's idle
    /// timeout), never past MAX or 90% of the server's timeout (e.g. 5s..5m).
    #[arg(
        long,
        value_name = "MIN..MAX",
        value_parser = AdaptiveConfig::parse,
        conflicts_with = "interval"
    )]
    pub adaptive: Option<AdaptiveConfig>,

    /// Kernel TCP keepalive on the connection: IDLE,INTVL,CNT such as 60s,10s,5 [default: off].
    #[arg(long, value_name = "IDLE,INTVL,CNT", value_parser = Keepalive::parse)]
    pub tcp_keepalive: Option<Keepalive>,

    /// TCP_USER_TIMEOUT on the connection: unacknowledged data older than this resets it [default: off].
    #[arg(long, value_name = "D", value_parser = parse_duration)]
    pub tcp_user_timeout: Option<Duration>,

    /// How long the server may take to answer a PING or HELLO before it is
    /// declared dead.
    #[arg(long, value_name = "D", default_value = default_reply_timeout(), value_parser = parse_duration)]
    pub timeout: Duration,

    /// Do not print the server's lines to stdout.
    #[arg(long)]
    pub quiet: bool,

    /// Token to send with HELLO, for a server run with --auth-secret (see `vigil token`).
    #[arg(long, value_name = "TOKEN", conflicts_with = "auth_secret")]
    pub token: Option<String>,

    /// Mint our own token (valid 24h) from the secret in FILE: for testing; a real client gets its token from its backend.
    #[arg(long, value_name = "FILE")]
    pub auth_secret: Option<String>,
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
        config.quiet = self.quiet;
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

/// Runs the client; 0 when it ends on end of input or a signal, 1 on error.
pub fn run(args: ClientArgs) -> ExitCode {
    let mut config = args.config();
    match args.minted_token() {
        Ok(Some(token)) => config.token = Some(token),
        Ok(None) => {}
        Err(e) => {
            eprintln!("vigil client: {e}");
            return ExitCode::FAILURE;
        }
    }
    match client::run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vigil client: {e}");
            ExitCode::FAILURE
        }
    }
}
