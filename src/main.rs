//! The `vigil` command: flags -> config -> library call -> exit code.

// Bad flags get a message and an exit code, never a panic.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod cmd;

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use vigil::logging::{self, LogFormat};

/// vigil: heartbeats and presence for very many long-lived TCP connections.
///
/// Exit codes: 0 success, 1 runtime error, 2 usage error. Every flag can also
/// be set from the environment (see each flag's `[env: ...]`).
#[derive(Parser)]
#[command(name = "vigil", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log line format (the level is set by RUST_LOG, default info).
    #[arg(long, global = true, value_enum, default_value_t = Format::Text, env = "VIGIL_LOG_FORMAT")]
    log_format: Format,
}

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    /// Human-readable lines.
    Text,
    /// One JSON object per line: time, level, target, msg.
    Json,
}

/// How long the log may take to drain at exit (stderr may be a pipe nobody
/// reads: the process exits anyway).
const LOG_GRACE: Duration = Duration::from_secs(1);

// Parsed once per run: the size of the largest variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Run the heartbeat server.
    Serve(cmd::serve::ServeArgs),
    /// Connect to a server, keep the session alive, reconnect and fail over.
    Client(cmd::client::ClientArgs),
    /// Open many heartbeat sessions against a server and measure every round trip.
    Load(cmd::load::LoadArgs),
    /// Ask a cluster's Redis which node and connection hold a client id.
    Who(cmd::who::WhoArgs),
    /// Mint a token for `HELLO <id> <token>` (servers run with --auth-secret).
    Token(cmd::token::TokenArgs),
}

fn main() -> ExitCode {
    // clap prints usage errors and exits 2 (0 for --help and --version).
    let cli = Cli::parse();
    let log = logging::init(match cli.log_format {
        Format::Text => LogFormat::Text,
        Format::Json => LogFormat::Json,
    });
    let code = match cli.command {
        Command::Serve(args) => cmd::serve::run(args),
        Command::Client(args) => cmd::client::run(args),
        Command::Load(args) => cmd::load::run(args),
        Command::Who(args) => cmd::who::run(args),
        Command::Token(args) => cmd::token::run(args),
    };
    log.finish(LOG_GRACE);
    code
}
