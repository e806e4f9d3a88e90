//! The heartbeat client: a pure session state machine and a thin driver.
//!
//! # Map
//! - [`session`]: [`Session`], the heartbeat state machine. It decides when
//!   to log in, when to beat, when the server is dead, when and where to
//!   reconnect. Inputs are `handle_*` calls, outputs are `poll_*` calls, time
//!   is a [`Tick`](crate::time::Tick) given by the caller. Its module docs hold the
//!   rules (what clears a ping, when the backoff resets) and why.
//! - [`adaptive`]: [`adaptive::ProbePlanner`], the search for the longest
//!   heartbeat interval the path keeps alive (below a NAT's idle timeout),
//!   run on short-lived probe connections so that it never costs the main
//!   one (and [`adaptive::AdaptiveInterval`], the older in-band search).
//! - [`netlink`]: parsing the kernel's address and route messages (pure),
//!   for the driver's network watch.
//! - [`backoff`]: exponential backoff with full jitter, and the seeded
//!   SplitMix64 generator it draws from.
//! - [`wire`]: the client's half of the line protocol: parsing `WELCOME`,
//!   `PONG`, `BYE` and messages from the server (bounded, never panicking),
//!   spelling `HELLO`, `PING` and messages.
//! - [`driver`]: [`run`], the mio loop behind `vigil client`: resolves the
//!   servers, connects without blocking, feeds the session bytes and time,
//!   writes its output, opens the session's probe connections, sends stdin
//!   lines (read by a helper thread, on a terminal or with `--stdin`),
//!   prints server lines, switches modes on `SIGUSR1`/`SIGUSR2`, watches
//!   netlink for network changes, exits on end of input (when stdin is
//!   read) or `SIGINT`/`SIGTERM`.
//! - `transmit` (crate-private): the one loop that writes a session's
//!   output to its socket until `WouldBlock`, shared by [`driver`] and the
//!   load generator's driver, so that neither driver calls into the other.
//!
//! # Entry points
//! - A command-line client: [`run`] with a [`ClientConfig`].
//! - Anything that runs many clients in one loop (a load generator, such as
//!   [`crate::load`]): one [`Session`] per connection, driven the way
//!   [`driver`] does it (the crate's own load generator shares its write
//!   loop), each with its own jitter seed.
//!
//! # Invariants
//! - The session, the adaptive search, the backoff and the wire code never touch a socket, a
//!   clock or the OS's randomness; the same inputs give the same outputs.
//!   Only [`driver`] (with its stdin thread) and `transmit` do I/O, and only
//!   [`driver`] reads the time, from [`crate::time::Clock`]: a time read
//!   rounds down, a configured duration to wait rounds up.
//! - Nothing a server sends can make the client panic or buffer without
//!   bound: a line over the limit ends the connection with
//!   `line-too-long`, a malformed `WELCOME` with `bad-frame`.
//! - What the client sends never postpones the check that the server is
//!   alive; only what it receives does, and only a `PONG` clears a ping.
//! - Messages are fire-and-forget: never queued across reconnects, never
//!   resent.
//!
//! # Example
//! ```no_run
//! use std::time::Duration;
//! use vigil::client::{run, ClientConfig};
//!
//! let mut config = ClientConfig::new(vec!["127.0.0.1:7000".into()], "dev-1");
//! config.reply_timeout = Duration::from_secs(5);
//! run(config)?;
//! # Ok::<(), vigil::client::Error>(())
//! ```

pub mod adaptive;
pub mod backoff;
pub mod driver;
pub mod netlink;
pub mod session;
mod transmit;
pub mod wire;

pub(crate) use transmit::transmit;

pub use driver::{run, ClientConfig, Error, ErrorKind};
pub use session::{Event, Session, SessionConfig};
