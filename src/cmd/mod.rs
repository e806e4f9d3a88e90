//! The subcommands of the `vigil` binary.
//!
//! Flags take their defaults from the library's `DEFAULT_*` constants, never
//! from literals of their own, so `--help` and the library cannot disagree.

pub mod client;
pub mod load;
pub mod serve;
pub mod token;
pub mod who;
pub mod workers;

use std::fmt;
use std::time::Duration;

use vigil::duration::{format_duration, parse_duration, ParseDurationError};

/// A duration flag: read by [`parse_duration`] (so at most
/// [`vigil::duration::MAX_DURATION`]) and shown by [`format_duration`].
/// Being `Display`, it lets clap take a flag's default from a library
/// constant (`default_value_t = Dur(DEFAULT_TIMEOUT)`) and show it in
/// `--help`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dur(pub Duration);

impl Dur {
    /// The clap value parser.
    pub fn parse(s: &str) -> Result<Dur, ParseDurationError> {
        parse_duration(s).map(Dur)
    }
}

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_duration(self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    /// The whole command line, as `main` parses it.
    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        command: Command,
    }

    // Parsed once per run: the size of the largest variant costs nothing.
    #[allow(clippy::large_enum_variant)]
    #[derive(clap::Subcommand)]
    enum Command {
        Serve(serve::ServeArgs),
        Client(client::ClientArgs),
        Load(load::LoadArgs),
        Token(token::TokenArgs),
    }

    #[test]
    fn durations_show_as_they_parse() {
        for d in [
            Duration::ZERO,
            Duration::from_millis(1500),
            vigil::duration::MAX_DURATION,
        ] {
            assert_eq!(Dur::parse(&Dur(d).to_string()), Ok(Dur(d)));
        }
    }

    #[test]
    fn the_command_line_is_consistent() {
        // Catches clap misdeclarations (a default its parser refuses, a
        // conflict naming no flag) that would otherwise panic at run time.
        Cli::command().debug_assert();
    }

    /// The `--help` of `subcommand`.
    fn help(subcommand: &str) -> String {
        let mut cli = Cli::command();
        cli.find_subcommand_mut(subcommand)
            .map(|c| c.render_help().to_string())
            .unwrap_or_default()
    }

    /// `help` shows `flag`'s default as `[default: shown]` in its entry
    /// (from its line to the next flag's).
    #[track_caller]
    fn check_default(help: &str, flag: &str, shown: &str) {
        let is_flag = |l: &str| l.starts_with("  -") || l.starts_with("      --");
        let start = format!("--{flag} ");
        let mut lines = help
            .lines()
            .skip_while(|l| !(is_flag(l) && l.trim_start().starts_with(&start)));
        let Some(first) = lines.next() else {
            panic!("no --{flag} in\n{help}");
        };
        let rest = lines.take_while(|l| !is_flag(l));
        let entry = std::iter::once(first)
            .chain(rest)
            .collect::<Vec<_>>()
            .join("\n");
        assert!(
            entry.contains(&format!("[default: {shown}]")),
            "--{flag} should show [default: {shown}]:\n{entry}"
        );
    }

    #[test]
    fn serve_shows_the_library_defaults() {
        let help = help("serve");
        check_default(&help, "listen", "127.0.0.1:7700");
        check_default(&help, "interval", "30s");
        check_default(&help, "timeout", "45s");
        check_default(&help, "tick", "100ms");
        check_default(&help, "wheel-slots", "1024");
        check_default(&help, "max-line", "1024");
        check_default(&help, "max-frame", "65536");
        check_default(&help, "raw-ack", "ack\\n");
        check_default(&help, "max-output", "65536");
        check_default(&help, "stats-interval", "10s");
        check_default(&help, "backlog", "4096");
        check_default(&help, "events-queue", "67108864");
    }

    #[test]
    fn client_and_load_show_the_library_defaults() {
        check_default(&help("client"), "timeout", "10s");
        let load = help("load");
        check_default(&load, "interval", "1s");
        check_default(&load, "duration", "30s");
        check_default(&load, "timeout", "10s");
    }
}
