//! `vigil load`: many heartbeat sessions against one server, measured.
//!
//! # Map
//! - [`config`]: [`LoadConfig`] (what to run, with documented defaults and
//!   checks that name the flag at fault), [`SourceRange`], how a run is
//!   split between worker processes. Pure.
//! - [`phase`]: [`Phases`], the run's ramp → hold → drain → done as a
//!   state machine that takes the time and says what to do. Pure.
//! - [`report`]: [`Report`] (counters and two HDR histograms of latency in
//!   µs) and [`Progress`], and how they merge across processes (exactly,
//!   for reports). Pure.
//! - [`reason`]: the one spelling of a disconnect reason
//!   ([`ReasonName::as_str`]) that reports count under. Pure.
//! - [`wire`]: the lines a worker hands its progress and report to the
//!   parent in: one spec, one type that prints and parses them. Pure.
//! - [`render`]: the live progress line, the summary table, the JSON
//!   object. Pure.
//! - [`driver`]: [`run`], one process's mio loop: every connection a
//!   [`Session`](crate::client::Session) in one `Slab`, every deadline in one
//!   [`Wheel`](crate::wheel::Wheel). The only load code that reads the
//!   clock.
//! - [`procs`]: [`run_procs`] starts worker processes, feeds each its share,
//!   merges their reports; [`run_worker`] is the worker's side.
//!
//! # What is measured
//! Every session beats at the configured interval, and the driver times
//! every `PING` to its `PONG` twice:
//! - **from the scheduled send** ([`Report::scheduled`]): from when the
//!   ping was *due* ([`Event::PingSent`](crate::client::Event::PingSent)).
//!   A session has at most one ping outstanding, so a slow reply delays
//!   the next ping; measuring from the actual send would hide that wait
//!   (coordinated omission). This is the latency a client beating on
//!   schedule sees, and the figure to judge a server by.
//! - **round trip** ([`Report::rtt`]): from when the ping was actually
//!   sent. The network and the server's turnaround alone.
//!
//! # Example
//! ```no_run
//! use std::time::Duration;
//! use vigil::load::{run, LoadConfig};
//!
//! let mut config = LoadConfig::new("127.0.0.1:7700".parse()?, 1_000);
//! config.interval = Duration::from_millis(500);
//! config.duration = Duration::from_secs(10);
//! let report = run(&config, &mut |progress| eprintln!("{} online", progress.online))?;
//! assert_eq!(report.sent, report.received + report.missing);
//! println!("p99 from the schedule: {:?} µs", report.scheduled.quantile(0.99));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Invariants
//! - Every counted ping ends up received or missing: `sent = received +
//!   missing`.
//! - A run always ends by itself: ramp + hold + at most one reply timeout.
//! - A process never opens more connections than its open-files limit
//!   allows (checked before the first connect).

pub mod config;
pub mod driver;
pub mod phase;
pub mod plot;
pub mod procs;
pub mod reason;
pub mod render;
pub mod report;
pub mod wire;

pub use config::{ConfigError, LoadConfig, SourceRange};
pub use driver::run;
pub use phase::{Phase, Phases};
pub use procs::{run_procs, run_worker};
pub use reason::ReasonName;
pub use report::{Latency, Progress, Report};

pub use crate::error::{Error, ErrorKind};
