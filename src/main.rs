//! The `vigil` command: flags -> config -> library call -> exit code.

// Bad flags get a message and an exit code, never a panic.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod cmd;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// vigil: heartbeats and presence for very many long-lived TCP connections.
#[derive(Parser)]
#[command(name = "vigil", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the heartbeat server.
    Serve(cmd::serve::ServeArgs),
    /// Connect to a server, keep the session alive, reconnect and fail over.
    Client(cmd::client::ClientArgs),
    /// Open many heartbeat sessions against a server and measure every round trip.
    Load(cmd::load::LoadArgs),
    /// Mint a token for `HELLO <id> <token>` (servers run with --auth-secret).
    Token(cmd::token::TokenArgs),
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format_timestamp_millis()
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => cmd::serve::run(args),
        Command::Client(args) => cmd::client::run(args),
        Command::Load(args) => cmd::load::run(args),
        Command::Token(args) => cmd::token::run(args),
    }
}
