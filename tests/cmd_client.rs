//! The `vigil client` flags. `src/cmd/client.rs` belongs to the binary; it
//! is compiled here too, so its parsing is tested on its own.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

#[path = "../src/cmd/client.rs"]
mod client;

use client::ClientArgs;

#[derive(Parser, Debug)]
struct Cli {
    #[command(flatten)]
    args: ClientArgs,
}

#[track_caller]
fn parse(argv: &[&str]) -> Result<ClientArgs, String> {
    let argv = std::iter::once("vigil-client").chain(argv.iter().copied());
    Cli::try_parse_from(argv)
        .map(|c| c.args)
        .map_err(|e| e.to_string())
}

#[test]
fn flags_and_defaults() {
    let args = parse(&["--server", "127.0.0.1:7000", "--id", "dev-1"]).expect("valid");
    assert_eq!(args.server, ["127.0.0.1:7000"]);
    assert_eq!(args.id, "dev-1");
    assert_eq!(args.interval, None);
    assert_eq!(args.timeout, Duration::from_secs(10));
    assert!(!args.quiet);
    let config = args.config();
    assert_eq!(config.reply_timeout, Duration::from_secs(10));
    assert_eq!(config.interval, None);

    let args = parse(&[
        "--server=a:1,b:2",
        "--server",
        "c:3",
        "--id=x",
        "--interval",
        "250ms",
        "--timeout",
        "2s",
        "--quiet",
    ])
    .expect("valid");
    assert_eq!(args.server, ["a:1", "b:2", "c:3"]);
    assert_eq!(args.interval, Some(Duration::from_millis(250)));
    assert_eq!(args.timeout, Duration::from_secs(2));
    assert!(args.quiet);
    let config = args.config();
    assert_eq!(config.servers, ["a:1", "b:2", "c:3"]);
    assert_eq!(config.interval, Some(Duration::from_millis(250)));
    assert!(config.quiet);
    assert_eq!(config.adaptive, None);
    assert_eq!(config.tcp_keepalive, None);
    assert_eq!(config.tcp_user_timeout, None);
}

#[test]
fn adaptive_and_tcp_options() {
    let args = parse(&[
        "--server",
        "a:1",
        "--id",
        "x",
        "--adaptive",
        "5s..5m",
        "--tcp-keepalive",
        "60s,10s,5",
        "--tcp-user-timeout",
        "20s",
    ])
    .expect("valid");
    let config = args.config();
    let a = config.adaptive.expect("adaptive");
    assert_eq!((a.min_ms, a.max_ms), (5_000, 300_000));
    let k = config.tcp_keepalive.expect("keepalive");
    assert_eq!(
        (k.idle, k.interval, k.count),
        (Duration::from_secs(60), Duration::from_secs(10), 5)
    );
    assert_eq!(config.tcp_user_timeout, Some(Duration::from_secs(20)));

    let e = parse(&[
        "--server",
        "a:1",
        "--id",
        "x",
        "--adaptive",
        "5s..5m",
        "--interval",
        "1s",
    ])
    .expect_err("exclusive");
    assert!(e.contains("cannot be used with"), "{e}");
    let e = parse(&["--server", "a:1", "--id", "x", "--adaptive", "5m..5s"]).expect_err("empty");
    assert!(e.contains("below the minimum"), "{e}");
    let e =
        parse(&["--server", "a:1", "--id", "x", "--tcp-keepalive", "1s,1s"]).expect_err("short");
    assert!(e.contains("IDLE,INTVL,CNT"), "{e}");
}

#[test]
fn bad_flags_say_why() {
    let e = parse(&["--id", "x"]).expect_err("no server");
    assert!(e.contains("--server"), "{e}");
    let e = parse(&["--server", "a:1"]).expect_err("no id");
    assert!(e.contains("--id"), "{e}");
    let e = parse(&["--server", "a:1", "--id", "x", "--interval", "5"]).expect_err("no unit");
    assert!(e.contains("invalid duration"), "{e}");
    let e = parse(&["--server", "a:1", "--id", "x", "--timeout", "1hx"]).expect_err("bad unit");
    assert!(e.contains("invalid duration"), "{e}");
    // Hours and fractions are units now (issue 9).
    let ok = parse(&[
        "--server",
        "a:1",
        "--id",
        "x",
        "--timeout",
        "1h",
        "--interval",
        "1.5s",
    ]);
    assert!(ok.is_ok(), "{ok:?}");
}

#[test]
fn run_fails_with_exit_code_1_on_a_bad_server() {
    let args = parse(&["--server", "no-port-here", "--id", "x"]).expect("parses");
    assert_eq!(client::run(args), ExitCode::FAILURE);
}

#[test]
fn daemon_mode_and_network_flags() {
    let args = parse(&["--server", "a:1", "--id", "x"]).expect("valid");
    let config = args.config();
    // Stdin: decided at run time (a terminal or not); modes: background.
    assert_eq!(config.stdin, None);
    assert!(!config.foreground);
    assert_eq!(config.foreground_interval, None);
    assert!(config.watch_network);

    let args = parse(&[
        "--server",
        "a:1",
        "--id",
        "x",
        "--stdin",
        "--adaptive",
        "5s..5m",
        "--foreground",
        "--foreground-interval",
        "30s",
        "--no-watch-network",
    ])
    .expect("valid");
    let config = args.config();
    assert_eq!(config.stdin, Some(true));
    assert!(config.foreground);
    assert_eq!(config.foreground_interval, Some(Duration::from_secs(30)));
    assert!(!config.watch_network);
    let config = parse(&["--server", "a:1", "--id", "x", "--no-stdin"])
        .expect("valid")
        .config();
    assert_eq!(config.stdin, Some(false));

    let e = parse(&["--server", "a:1", "--id", "x", "--stdin", "--no-stdin"]).expect_err("both");
    assert!(e.contains("cannot be used with"), "{e}");
    let e = parse(&[
        "--server",
        "a:1",
        "--id",
        "x",
        "--foreground-interval",
        "soon",
    ])
    .expect_err("bad");
    assert!(e.contains("invalid duration"), "{e}");
}
