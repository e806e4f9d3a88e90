//! vigil: heartbeats and presence for very many long-lived TCP connections.
//!
//! Long-lived TCP connections die silently: NAT boxes drop idle flows,
//! firewalls cut them, a peer's process hangs while its kernel still answers.
//! vigil's clients send a small heartbeat at intervals, the server answers,
//! and a connection silent past its timeout is declared offline, cleaned up,
//! and (on the client side) reconnected.
//!
//! # Architecture
//!
//! One thread, one event loop, no thread per client:
//!
//! - [`server`] owns the loop: one mio `Poll`, every connection in one
//!   `Slab` (the key is the mio token), every deadline in one
//!   [`wheel::Wheel`]. It is the only code that calls `poll` and reads the
//!   clock; it feeds the pure pieces below and carries out what they say.
//! - [`wheel`] is a hashed timing wheel: O(1) arm, cancel and re-arm, no
//!   allocation in steady state. Pure: it never reads a clock.
//! - [`protocol`] holds the codecs (bytes to [`Frame`]s, [`Reply`]s to
//!   bytes). Pure: they never touch a socket. [`LineProtocol`] is the default.
//! - [`client`] is the heartbeat client: a pure session state machine and
//!   the thin driver behind `vigil client`. [`load`] runs many of those
//!   sessions in one loop (`vigil load`) and measures every round trip.
//! - [`events`] formats presence events (online, hello, offline with its
//!   reason) for the log and for a JSON-lines file.
//! - [`client`] is the other end: a pure heartbeat [`client::Session`]
//!   (login, beats, dead-server verdicts, reconnects with jittered
//!   backoff), the adaptive interval search it can consult
//!   ([`client::adaptive`], finding the longest interval a NAT keeps
//!   alive), and the thin mio driver behind `vigil client`.
//! - [`time`] is the only place that turns `Instant`s into the milliseconds
//!   everything else works with; `sys` (crate-private) wraps the few libc calls.
//!
//! # Invariants
//!
//! - Time is monotonic: changing the system date never disconnects anyone.
//! - Every turn of the loop handles all ready I/O before it expires
//!   deadlines, so a heartbeat that has arrived is never lost to a timeout.
//! - A heartbeat writes the connection's `last_seen` and leaves the wheel
//!   alone; when the wheel fires, the loop compares and re-arms.
//! - An idle connection holds no buffer: input is kept only while a frame
//!   is incomplete, output only while the socket will not take it.
//! - Every connection produces exactly one online and one offline event.
//! - Nothing a peer sends can make the server panic; bad input closes that
//!   connection, with a `BYE <reason>` and a log line naming the peer.
//!
//! # Example
//!
//! ```
//! use std::io::{BufRead, BufReader, Write};
//! use std::net::TcpStream;
//! use std::time::Duration;
//!
//! use vigil::Server;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let server = Server::builder()
//!     .listen("127.0.0.1:0")
//!     .interval(Duration::from_secs(5))
//!     .timeout(Duration::from_secs(8))
//!     .build()?;
//! let addr = server.local_addr();
//! let handle = server.handle();
//! let running = std::thread::spawn(move || server.run());
//!
//! let mut conn = TcpStream::connect(addr)?;
//! conn.write_all(b"HELLO sensor-7\nPING 1\n")?;
//! let mut lines = BufReader::new(conn.try_clone()?).lines();
//! assert_eq!(lines.next().unwrap()?, "WELCOME sensor-7 interval=5000 timeout=8000");
//! assert_eq!(lines.next().unwrap()?, "PONG 1");
//!
//! handle.shutdown();
//! assert_eq!(lines.next().unwrap()?, "BYE shutdown");
//! let stats = running.join().unwrap()?;
//! assert_eq!(stats.heartbeats, 1);
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]
// Nothing a peer or a user sends may panic the library: no unwrap, expect or
// panic outside tests (the one documented panic, Wheel::insert on a full
// wheel, is allowed where it stands; the server uses try_insert).
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod addr;
pub mod client;
pub mod duration;
pub mod error;
pub mod events;
pub mod load;
pub mod protocol;
pub mod server;
pub(crate) mod sys;
pub mod time;
pub mod wheel;

pub use error::{Error, ErrorKind};
pub use protocol::{CloseReason, Frame, LineProtocol, Protocol, Reply};
pub use server::{Config, Handle, Server, Stats};
/// TCP keepalive settings, for [`Config::tcp_keepalive`] and
/// [`client::ClientConfig::tcp_keepalive`].
pub use sys::Keepalive;
/// The open-files limit (`RLIMIT_NOFILE`), which bounds how many
/// connections a process can hold: read it, or raise the soft limit to the
/// hard one as `vigil serve` does at start.
pub use sys::{nofile_limit, raise_nofile_limit};

/// The README's Rust examples, compiled as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
