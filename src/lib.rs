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
//! One thread, one event loop, no thread per client. Logic first, I/O at the
//! edge: every rule of the protocol lives in pure code that takes `now` and
//! bytes and says what should happen; thin drivers own the sockets and the
//! clock and carry it out; binaries are glue.
//!
//! ## Code map
//!
//! Pure (no socket, no clock, no thread; tested with a fake clock):
//! - `server::session`: the server's rules for every connection (HELLO and
//!   takeover, heartbeats and `max_pings`, deadlines, close reasons and
//!   `BYE`): `handle_*` inputs, `poll_*` outputs. Per-connection state is a
//!   small `Session` the loop keeps in its slab; what is one per server (the
//!   codec, the [`server::Handler`], presence, counters, output queues) is
//!   `Sessions`. Presence is consulted only through `PresenceTable`.
//!   Each listener's connections speak a `Wire` (a codec, WebSocket
//!   framing or not, server pings or not); `server/session/ws.rs` is the
//!   WebSocket part: the opening handshake, frames in and out, pings.
//! - [`client::session`]: the client's rules (login, beats, dead-server
//!   verdicts, reconnects with jittered backoff, probe connections, modes,
//!   network changes), with [`client::adaptive`] (the longest interval a
//!   NAT keeps alive, searched on probe connections), [`client::backoff`]
//!   and [`client::netlink`] (the kernel's address and route messages).
//! - [`load::phase`]: the load generator's ramp, hold and drain.
//! - [`wheel`]: a hashed timing wheel, O(1) arm, cancel and re-arm, no
//!   allocation in steady state.
//! - [`protocol`]: the codecs, bytes to [`Frame`]s and [`Reply`]s to bytes
//!   ([`LineProtocol`] is the default; RESP, binary, raw;
//!   [`protocol::AnyProtocol`] is all of them, one per listener;
//!   [`protocol::ws`] is WebSocket's handshake and framing as pure
//!   functions), and in
//!   [`protocol::client`] the client side of each (what `vigil client` and
//!   `vigil load` speak), shared by sessions as a [`protocol::client::ClientCodec`].
//! - [`events`]: presence events, the run's records and their JSON lines,
//!   written through a bounded queue by a thread of its own (the loop never
//!   waits on the events file); [`logging`]: the log, through the same kind
//!   of queue to stderr; [`duration`]: the duration syntax of the flags.
//! - [`detector`]: the φ accrual failure detector (`--detector phi:N`):
//!   running moments of a peer's arrival intervals, a deadline from them.
//! - [`cluster`]: presence across nodes through Redis: the state machine
//!   (claims, releases, events, leases, reaping dead nodes, reconciling
//!   after an outage), the Lua scripts Redis runs atomically, and a small
//!   RESP client codec.
//! - `server::admin`: the admin endpoint's HTTP (`--admin`): request bytes
//!   in, response bytes out, from a read-only view of the server (metrics,
//!   online clients, kick, health).
//! - [`auth`]: HELLO tokens (HMAC-SHA256 over the id and an expiry), the
//!   wall-clock time handed in; `server::limits`: per-address connection
//!   counts and connect rates, touched only at accept and close.
//!
//! Drivers (the only code that touches sockets and reads the clock):
//! - `server::driver`: the mio loop behind [`Server`]: one `Poll`, every
//!   connection in one `Slab` (the key is the token), every deadline in one
//!   wheel; it feeds the server sessions and writes what they produce.
//!   `server::listener` sets up the listening sockets (socket2);
//!   `cluster::link` holds the two Redis sockets in the same `Poll`.
//!   The driver's `admin` part accepts, reads, answers and closes the admin
//!   endpoint's connections in the same `Poll` (bounded in number, size
//!   and time; not heartbeat connections) and answers the [`Handle`]'s
//!   queries when the waker rings.
//! - [`server::workers`]: one server as several worker processes on one
//!   port (`SO_REUSEPORT`), client ids sharded by hash; a connection whose
//!   `HELLO` names another worker's id is handed there with its bytes
//!   (`SCM_RIGHTS`, `server/driver/handoff.rs`). The supervisor that starts,
//!   restarts and stops them is the binary's (`src/cmd/workers.rs`).
//! - [`client::driver`]: the loop behind `vigil client`; [`load`]'s driver
//!   runs many client sessions in one loop (`vigil load`), [`load::procs`]
//!   spreads them over processes.
//! - [`tls`]: TLS as a transport (rustls, sans-IO): the three calls the
//!   drivers make instead of a socket's `read`/`write` when TLS is on;
//!   `server::tls` holds the server's TLS state beside the connection slab.
//! - [`time`]: the one [`time::Clock`] and the one [`time::Tick`]; the only
//!   place that turns `Instant`s and `Duration`s into ticks, with the
//!   rounding rule that keeps deadlines from firing early.
//! - `sys` (crate-private): the few libc calls, through one `syscall!`;
//!   [`addr`]: the one address resolver.
//!
//! Entry points: [`Server::builder`] (or [`Server::new`]) and
//! [`server::Handler`] for a server with its own logic;
//! [`client::run`] and [`client::session::Session`] for a client;
//! [`load::run`] for a load test. `src/main.rs` and `src/cmd/` are the
//! binary: flags, then one of those calls, then an exit code.
//!
//! ## Invariants
//!
//! - Pure code never reads a clock: time is a [`time::Tick`] handed in.
//!   The server's loop reads the clock for the turn (rounded down) and
//!   stamps each input when it is read (rounded up), so a deadline never
//!   fires before the timeout has passed since the last frame, however
//!   long a turn takes, and at most one tick after.
//! - Time is monotonic: changing the system date never disconnects anyone.
//! - Every turn of the loop handles all ready I/O before it expires
//!   deadlines, so a heartbeat that has arrived is never lost to a timeout;
//!   a connection past its deadline gets one last look at its socket.
//! - A turn's work is bounded: at most 2,048 expirations, a budget of
//!   accepts and of refusals, shutdown in slices; what is left waits for
//!   the next turn, which polls without sleeping.
//! - Across workers, a client id is held only by the worker that owns it;
//!   a handed-off connection keeps its number and gets no second `online`.
//! - A heartbeat moves the connection's `last_seen` and leaves the wheel
//!   alone; when the wheel fires, the session compares and the loop re-arms.
//! - A connection is read at most a fixed budget of times per turn, and a
//!   FIN seen once is remembered until the read that reaches it.
//! - A WebSocket connection is `online` once its opening handshake is
//!   done; one that never finishes it is closed at its deadline, having
//!   said nothing, with its `online` and `offline` together.
//! - An idle connection holds no buffer: input is kept only while a frame
//!   is incomplete (with the codec's `Resume`, its place in it, so the
//!   frame is never walked again from its start: O(n) however it is
//!   split), output only while the socket will not take it. (Over
//!   TLS, rustls keeps its own 4 KB receive buffer: see [`tls`].)
//! - Whatever is queued for a connection goes out in order, and its `BYE`
//!   last: nothing is written after it.
//! - Every connection produces exactly one online and one offline event
//!   (plus an offline `renamed` for each id it gives up by a second HELLO);
//!   a client id is never held twice in the event stream.
//! - The loop never writes the events file or stderr itself: it appends to
//!   bounded queues that writer threads drain; when one is full, lines are
//!   dropped and counted, never waited for.
//! - Nothing a peer sends can make the server panic; bad input closes that
//!   connection, with a `BYE <reason>` and a log line naming the peer.
//!
//! ## Tests
//!
//! - Beside the code (`#[cfg(test)]`, files named `tests.rs` under the
//!   module): the server session (`server/session/tests.rs`: a simulated
//!   loop with the real wheel), the client session (`client/session/tests.rs`:
//!   traces, and a `Pair` of the client and the real server session over a
//!   simulated link and NAT), the adaptive interval, the wheel (scenarios and
//!   a property test against a `BTreeMap`), codecs, the load phases.
//! - `tests/` (real processes and sockets on loopback): `serve.rs` (the
//!   server binary: timeouts, limits, signals, IPv6, a jumping wall clock),
//!   `admin.rs` (the admin endpoint, checked with `promtool`, and the
//!   handle's queries), `client.rs` and `cmd_client.rs` (the client), `load.rs` (the load
//!   generator), `library.rs` (the public API), `real_clients.rs`
//!   (`redis-cli`, `redis-benchmark`, a select() C client), `codec_split.rs`
//!   (every codec, every split), `many.rs` (5,000 connections),
//!   `workers.rs` (`--workers`: hand-offs, takeover across workers, a
//!   killed worker, events once), `burst.rs` (15,000 expiring at once
//!   beside a bystander), and
//!   `netns.rs` (faults across network namespaces: partitions, loss, a
//!   carrier NAT, frozen peers), `cluster.rs` (nodes sharing presence
//!   through a real `redis-server`), `tls.rs` (TLS with `openssl s_client`,
//!   the client and the load generator; garbage and stalled handshakes),
//!   `ws.rs` (WebSocket listeners: the `websockets` library from PyPI,
//!   takeover between TCP and WebSocket, bad frames beside a bystander,
//!   `wss://`, the line protocol's server pings), `browser.rs` (a page in
//!   headless Chromium kept online by the server's pings alone).
//!   `tests/util` and `tests/netlab` are their shared helpers.
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
pub mod auth;
pub mod client;
pub mod cluster;
pub mod detector;
pub mod duration;
pub mod error;
pub mod events;
pub mod load;
pub mod logging;
pub mod protocol;
pub mod server;
pub(crate) mod sys;
pub mod time;
pub mod tls;
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
