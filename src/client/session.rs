//! The client's heartbeat state machine: pure, no sockets, no clock.
//!
//! A [`Session`] is shaped like quinn-proto's `Connection`: the driver feeds
//! it inputs with `handle_*` (and the user's messages with
//! [`Session::send_message`]), then drains its outputs with `poll_*` —
//! [`poll_action`](Session::poll_action) (connect, close),
//! [`poll_transmit`](Session::poll_transmit) (bytes for the socket),
//! [`poll_event`](Session::poll_event) (what happened) — and sleeps until
//! [`poll_timeout`](Session::poll_timeout), when it calls
//! [`handle_timeout`](Session::handle_timeout). Time is a [`Tick`]: whole
//! milliseconds on any clock the driver likes, as long as it never goes back
//! (the driver uses [`crate::time::Clock`]). Points in time are `Tick`s;
//! lengths of time (intervals, timeouts, delays) stay plain `u64`
//! milliseconds.
//!
//! # Lifecycle
//! ```text
//!        new ──► Connecting ──handle_connected──► Hello ──WELCOME──► Online
//!                    ▲                                                  │
//!                    │ backoff elapsed                                  │ dead / EOF /
//!                    │                                                  │ reset / BYE /
//!                Waiting ◄───────── next server, jittered delay ◄───────┘ bad line
//! ```
//! Any state ends in `Closed` after [`Session::close`].
//!
//! # Rules
//! - **Login.** On connect the session sends `HELLO <id>`, on every connect,
//!   so a reconnect logs in again. `WELCOME` must come within the reply
//!   timeout, or the server is dead (`no-welcome`).
//! - **Interval.** The interval in effect is decided in one place
//!   (`interval_of`): the `interval=` of the last `WELCOME`, the user's
//!   fixed interval, or, with [`IntervalPolicy::Adaptive`], the current
//!   value of an [`AdaptiveInterval`] that lives across reconnects. The
//!   session feeds it the outcome of every beat with the beat's *quiet
//!   time* (how long nothing had been sent or received when the `PING`
//!   went out): a `PONG` is an answered beat; a ping-timeout, or the
//!   connection failing or ending while a `PING` is outstanding, is a lost
//!   one. A `BYE`, a bad line or a failed connect says nothing about idle
//!   timeouts and is not reported. Every change is an
//!   [`Event::IntervalChanged`] with its reason.
//! - **When to beat.** A `PING <seq>` goes out when the line has been idle
//!   for a whole interval: nothing *received* for an interval (the liveness
//!   check), or nothing *sent* for an interval (so the server, whose timeout
//!   counts what it receives, keeps hearing from a client that only
//!   listens). What the client sends never postpones the receive check: a
//!   connection broken one way keeps accepting writes, and a keepalive that
//!   counts its own writes never notices (mqttjs/MQTT.js#1861). At most one
//!   ping is outstanding at a time.
//! - **What clears a ping.** Only the `PONG` carrying the ping's sequence
//!   number. Every received line counts as life (it postpones the next
//!   beat), but only the echo proves the server *reads* what we write: a
//!   server whose input side is stuck can keep pushing lines while our
//!   messages pile up unread. MQTT lets any packet do; we want the round
//!   trip. A `PONG` with another token is ignored.
//! - **Dead.** The outstanding ping is unanswered `reply_timeout` after it
//!   was sent (`ping-timeout`), or, as a backstop, nothing at all arrived
//!   for `interval + reply_timeout` (`silent`). The TCP connect itself gets
//!   `connect_timeout` (`connect-timeout`).
//! - **Reconnect.** Whenever a connection ends — declared dead, end of
//!   stream, socket error, `BYE`, an over-long or malformed line — the
//!   session reports why, asks the driver to close the socket (unless the
//!   driver reported the end itself), moves to the next server in the list
//!   (round robin) and waits a delay from [`Backoff`]: full jitter over
//!   `min(cap, base * 2^attempt)`.
//! - **Backoff reset.** The attempt counter goes back to 0 only when the
//!   connection that just ended had been *healthy*: welcomed, and then
//!   either a `PONG` answered one of its pings (the round trip worked after
//!   the server had had time to fail) or it stayed welcomed for
//!   [`HEALTHY_INTERVALS`] intervals (a line busy both ways sends no pings).
//!   A server that accepts and welcomes but dies right away thus keeps the
//!   delays growing instead of drawing a reconnect storm.
//!
//! # Memory
//! Per session: the config, a partial-line buffer that exists only while a
//! line is split across reads (at most `max_line + 2` bytes), pending output
//! freed as soon as it is all written, and the event queue, freed when
//! drained. Complete lines are parsed straight from the caller's slice.
//!
//! # Example
//! ```
//! use vigil::client::session::{Action, Session, SessionConfig};
//!
//! let mut s = Session::new(SessionConfig::new("dev-1", 1), 0).unwrap();
//! assert!(matches!(s.poll_action(), Some(Action::Connect(_))));
//! s.handle_connected(5);
//! assert_eq!(s.poll_transmit(), Some(&b"HELLO dev-1\n"[..]));
//! s.handle_transmitted(12);
//! s.handle_received(9, b"WELCOME dev-1 interval=1000 timeout=3000\n");
//! // The server last heard from us at 5 (HELLO): beat an interval later.
//! assert_eq!(s.poll_timeout(), Some(1005));
//! s.handle_timeout(1005);
//! assert_eq!(s.poll_transmit(), Some(&b"PING 1\n"[..]));
//! ```
//!
//! [`Backoff`]: super::backoff::Backoff
//! [`AdaptiveInterval`]: super::adaptive::AdaptiveInterval

use std::collections::VecDeque;
use std::fmt;
use std::io;

use super::adaptive::{AdaptiveConfig, AdaptiveInterval, ChangeReason};
use super::backoff::Backoff;
use super::wire::{self, ServerLine};
use crate::protocol::{valid_client_id, CloseReason, DecodeError};
use crate::time::Tick;

/// The default time the server gets to answer a `PING` or a `HELLO`, in ms.
pub const DEFAULT_REPLY_TIMEOUT_MS: u64 = 10_000;
/// The default time a TCP connect may take, in ms.
pub const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 10_000;
/// The default first reconnect ceiling, in ms.
pub const DEFAULT_BACKOFF_BASE_MS: u64 = 100;
/// The default largest reconnect delay, in ms.
pub const DEFAULT_BACKOFF_CAP_MS: u64 = 30_000;
/// The default cap on output waiting for the socket, in bytes. User messages
/// beyond it are refused with [`SendError::Full`]; heartbeats are not.
pub const DEFAULT_MAX_PENDING: usize = 64 * 1024;
/// The default longest message the user may send, in bytes: the server's
/// default line limit.
pub const DEFAULT_MAX_MESSAGE: usize = crate::protocol::line::DEFAULT_MAX_LINE;
/// How many intervals a welcomed connection must last to count as healthy
/// when no ping has been answered yet. See the module docs, "Backoff reset".
pub const HEALTHY_INTERVALS: u64 = 2;

/// Which server in the driver's list: an index into it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServerIndex(pub usize);

/// How the heartbeat interval is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntervalPolicy {
    /// Use the `interval=` the server sent in `WELCOME`.
    Server,
    /// Use this interval in ms, whatever the server says (`--interval`).
    Fixed(u64),
    /// Search for the longest interval the path keeps alive, between a
    /// minimum and a maximum (`--adaptive MIN..MAX`); see
    /// [`adaptive`](super::adaptive).
    Adaptive(AdaptiveConfig),
}

impl IntervalPolicy {
    /// The interval a policy starts with, in ms (at least 1), given the
    /// server's: for [`IntervalPolicy::Adaptive`] its minimum, which the
    /// session's search then moves.
    pub fn interval_ms(&self, server_ms: u64) -> u64 {
        match *self {
            IntervalPolicy::Server => server_ms,
            IntervalPolicy::Fixed(ms) => ms,
            IntervalPolicy::Adaptive(c) => c.min_ms,
        }
        .max(1)
    }
}

/// What a [`Session`] is told at creation. [`SessionConfig::new`] fills in
/// the documented defaults; change fields as needed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    /// The id sent in `HELLO`: 1 to 128 printable ASCII characters, no spaces.
    pub client_id: String,
    /// How many servers the driver can connect to (at least 1); the session
    /// names them by [`ServerIndex`] and cycles through them.
    pub servers: usize,
    /// How the heartbeat interval is chosen. Default: [`IntervalPolicy::Server`].
    pub interval: IntervalPolicy,
    /// How long a `PING` or `HELLO` may go unanswered, in ms (at least 1).
    /// Default: [`DEFAULT_REPLY_TIMEOUT_MS`].
    pub reply_timeout_ms: u64,
    /// How long a TCP connect may take, in ms (at least 1).
    /// Default: [`DEFAULT_CONNECT_TIMEOUT_MS`].
    pub connect_timeout_ms: u64,
    /// The first reconnect ceiling, in ms. Default: [`DEFAULT_BACKOFF_BASE_MS`].
    pub backoff_base_ms: u64,
    /// The largest reconnect delay, in ms. Default: [`DEFAULT_BACKOFF_CAP_MS`].
    pub backoff_cap_ms: u64,
    /// The longest server line accepted, in bytes.
    /// Default: [`wire::DEFAULT_MAX_LINE`].
    pub max_line: usize,
    /// The longest message the user may send, in bytes.
    /// Default: [`DEFAULT_MAX_MESSAGE`].
    pub max_message: usize,
    /// The most output that may wait for the socket before user messages
    /// are refused, in bytes. Default: [`DEFAULT_MAX_PENDING`].
    pub max_pending: usize,
    /// The seed of the jitter generator. Default: 0; a driver running many
    /// sessions should give each its own.
    pub seed: u64,
}

impl SessionConfig {
    /// A config for `client_id` with `servers` servers and every default.
    pub fn new(client_id: impl Into<String>, servers: usize) -> SessionConfig {
        SessionConfig {
            client_id: client_id.into(),
            servers,
            interval: IntervalPolicy::Server,
            reply_timeout_ms: DEFAULT_REPLY_TIMEOUT_MS,
            connect_timeout_ms: DEFAULT_CONNECT_TIMEOUT_MS,
            backoff_base_ms: DEFAULT_BACKOFF_BASE_MS,
            backoff_cap_ms: DEFAULT_BACKOFF_CAP_MS,
            max_line: wire::DEFAULT_MAX_LINE,
            max_message: DEFAULT_MAX_MESSAGE,
            max_pending: DEFAULT_MAX_PENDING,
            seed: 0,
        }
    }
}

/// Why a [`SessionConfig`] was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigError {
    /// The client id is not 1 to 128 printable ASCII characters without spaces.
    BadClientId,
    /// The server list is empty.
    NoServers,
    /// The adaptive range is empty or its tuning is out of range.
    BadAdaptive,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::BadClientId => {
                f.write_str("client id must be 1 to 128 printable ASCII characters without spaces")
            }
            ConfigError::NoServers => f.write_str("no server to connect to"),
            ConfigError::BadAdaptive => f.write_str(
                "adaptive interval: the minimum must be above 0 and at most the maximum",
            ),
        }
    }
}

impl std::error::Error for ConfigError {}

/// How the transport ended, as the driver saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportEnd {
    /// The server closed its side: a read returned 0 bytes.
    Eof,
    /// The connect or the connection failed (refused, reset, unreachable…).
    Error(io::ErrorKind),
}

/// Why a connection to a server ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisconnectReason {
    /// The server said `BYE`, with a reason if it is one this version knows.
    Bye(Option<CloseReason>),
    /// The server closed the stream without saying `BYE`.
    Eof,
    /// The connect or the connection failed.
    Failed(io::ErrorKind),
    /// The TCP connect did not complete within the connect timeout.
    ConnectTimeout,
    /// `HELLO` got no `WELCOME` within the reply timeout.
    NoWelcome,
    /// A `PING` got no `PONG` within the reply timeout: the server is dead
    /// (or hung while its kernel still acknowledges our bytes).
    PingTimeout,
    /// Nothing at all arrived for interval + reply timeout.
    Silent,
    /// The server sent a line longer than the limit.
    LineTooLong,
    /// The server sent a malformed protocol line; the text says what.
    BadLine(&'static str),
}

impl DisconnectReason {
    /// Whether the session itself declared the server dead (no answer in
    /// time), as opposed to the server or the network ending the connection.
    pub fn is_dead(&self) -> bool {
        matches!(
            self,
            DisconnectReason::ConnectTimeout
                | DisconnectReason::NoWelcome
                | DisconnectReason::PingTimeout
                | DisconnectReason::Silent
        )
    }
}

impl fmt::Display for DisconnectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DisconnectReason::Bye(Some(r)) => write!(f, "server said BYE {r}"),
            DisconnectReason::Bye(None) => f.write_str("server said BYE (unknown reason)"),
            DisconnectReason::Eof => f.write_str("server closed the connection"),
            DisconnectReason::Failed(kind) => write!(f, "connection failed: {kind}"),
            DisconnectReason::ConnectTimeout => {
                f.write_str("connect-timeout: connect took too long")
            }
            DisconnectReason::NoWelcome => {
                f.write_str("no-welcome: HELLO was not answered in time")
            }
            DisconnectReason::PingTimeout => {
                f.write_str("ping-timeout: PING was not answered in time")
            }
            DisconnectReason::Silent => {
                f.write_str("silent: nothing received for interval + timeout")
            }
            DisconnectReason::LineTooLong => {
                f.write_str("line-too-long: server line over the limit")
            }
            DisconnectReason::BadLine(what) => write!(f, "bad-frame: {what}"),
        }
    }
}

/// Something that happened, for the application to log or show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The TCP connection to `server` is up; `HELLO` is on its way.
    Connected {
        /// The server connected to.
        server: ServerIndex,
    },
    /// The server said `WELCOME`.
    Welcome {
        /// The interval now in effect, in ms.
        interval_ms: u64,
        /// The interval the server asked for, in ms.
        server_interval_ms: u64,
        /// How long the server waits for a sign of life, if it said.
        server_timeout_ms: Option<u64>,
    },
    /// A `PING` was queued for the server. `due_ms` is when the schedule
    /// wanted it: at most the `now` of the call that queued it. The gap is
    /// how late the driver called [`Session::handle_timeout`], or how long
    /// the previous ping's `PONG` held this one back (at most one ping is
    /// outstanding). A load generator measures latency from `due_ms` to
    /// avoid coordinated omission: a stall that delays the sending of pings
    /// then still shows in the figures.
    PingSent {
        /// The sequence number it carries.
        seq: u64,
        /// When it was due.
        due_ms: Tick,
    },
    /// A `PONG` answered our `PING`.
    Pong {
        /// The sequence number of the ping.
        seq: u64,
        /// The round trip, in ms.
        rtt_ms: u64,
    },
    /// A line from the server that is not part of the heartbeat protocol.
    Line(Vec<u8>),
    /// The connection ended; a reconnect is scheduled.
    Disconnected {
        /// The server the connection was to.
        server: ServerIndex,
        /// Why it ended.
        reason: DisconnectReason,
    },
    /// The adaptive heartbeat interval changed ([`IntervalPolicy::Adaptive`]).
    IntervalChanged {
        /// The interval before, in ms.
        from_ms: u64,
        /// The interval now, in ms.
        to_ms: u64,
        /// Why.
        reason: ChangeReason,
    },
    /// The next connect is scheduled.
    ReconnectScheduled {
        /// The server it will be to.
        server: ServerIndex,
        /// The backoff attempt the delay was drawn for (0 after a healthy
        /// connection).
        attempt: u32,
        /// The delay, in ms.
        delay_ms: u64,
    },
}

/// Something the driver must do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Open a connection to this server, then report with
    /// [`Session::handle_connected`] or [`Session::handle_closed`].
    Connect(ServerIndex),
    /// Close the current socket and drop its unwritten output; the session
    /// has already forgotten it.
    Close,
}

/// Why a user message was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendError {
    /// No connection is up: messages are not queued across reconnects.
    NotConnected,
    /// The message holds a `\n` or ends in `\r`, so it is not one line.
    NotOneLine,
    /// The server would read the line as `PING` or `HELLO`, not a message.
    Command,
    /// The message is longer than the limit.
    TooLong {
        /// The limit, in bytes.
        limit: usize,
    },
    /// Too much output is already waiting for the socket.
    Full,
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::NotConnected => f.write_str("not connected"),
            SendError::NotOneLine => f.write_str("a message must be a single line"),
            SendError::Command => f.write_str("a message may not start with PING or HELLO"),
            SendError::TooLong { limit } => write!(f, "message longer than {limit} bytes"),
            SendError::Full => f.write_str("too much output waiting for the server"),
        }
    }
}

impl std::error::Error for SendError {}

/// The state a session is in, for getters and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Waiting out the backoff delay before the next connect.
    Waiting,
    /// The driver was asked to connect.
    Connecting,
    /// Connected, `HELLO` sent, waiting for `WELCOME`.
    Hello,
    /// Welcomed: heartbeats run.
    Online,
    /// Closed for good by [`Session::close`].
    Closed,
}

/// The outstanding ping.
#[derive(Debug, Clone, Copy)]
struct Ping {
    seq: u64,
    sent_at: Tick,
    /// How long nothing had been sent or received when it went out.
    quiet: u64,
}

#[derive(Debug, Clone, Copy)]
struct Online {
    welcomed_at: Tick,
    server_interval_ms: u64,
    ping: Option<Ping>,
    pong_seen: bool,
}

#[derive(Debug, Clone, Copy)]
enum State {
    Waiting { until: Tick },
    Connecting { deadline: Tick },
    Hello { deadline: Tick },
    Online(Online),
    Closed,
}

/// The client's heartbeat state machine. See the [module docs](self).
#[derive(Debug)]
pub struct Session {
    config: SessionConfig,
    state: State,
    server: usize,
    backoff: Backoff,
    /// The adaptive interval's search, with [`IntervalPolicy::Adaptive`];
    /// boxed so sessions with a fixed interval do not pay for it.
    adaptive: Option<Box<AdaptiveInterval>>,
    next_seq: u64,
    /// Per connection: when a line last arrived and when output was last queued.
    last_rx: Tick,
    last_tx: Tick,
    /// Output not yet written; `out[sent..]` is pending.
    out: Vec<u8>,
    sent: usize,
    /// The start of a line split across reads; never holds a `\n`.
    partial: Vec<u8>,
    events: VecDeque<Event>,
    /// The driver's to-do list: close comes before connect.
    close_pending: bool,
    connect_pending: Option<ServerIndex>,
}

impl Session {
    /// A session that connects to server 0 right away (its first
    /// [`poll_action`](Session::poll_action) is a connect).
    pub fn new(config: SessionConfig, now: Tick) -> Result<Session, ConfigError> {
        if !valid_client_id(config.client_id.as_bytes()) {
            return Err(ConfigError::BadClientId);
        }
        if config.servers == 0 {
            return Err(ConfigError::NoServers);
        }
        let adaptive = match config.interval {
            IntervalPolicy::Adaptive(c) => {
                c.check().map_err(|_| ConfigError::BadAdaptive)?;
                Some(Box::new(AdaptiveInterval::new(c)))
            }
            _ => None,
        };
        let mut config = config;
        config.reply_timeout_ms = config.reply_timeout_ms.max(1);
        config.connect_timeout_ms = config.connect_timeout_ms.max(1);
        let backoff = Backoff::new(config.backoff_base_ms, config.backoff_cap_ms, config.seed);
        let mut session = Session {
            config,
            state: State::Waiting { until: now },
            server: 0,
            backoff,
            adaptive,
            next_seq: 1,
            last_rx: now,
            last_tx: now,
            out: Vec::new(),
            sent: 0,
            partial: Vec::new(),
            events: VecDeque::new(),
            close_pending: false,
            connect_pending: None,
        };
        session.handle_timeout(now);
        Ok(session)
    }

    // ---- getters ----------------------------------------------------------

    /// The state the session is in.
    pub fn phase(&self) -> Phase {
        match self.state {
            State::Waiting { .. } => Phase::Waiting,
            State::Connecting { .. } => Phase::Connecting,
            State::Hello { .. } => Phase::Hello,
            State::Online(_) => Phase::Online,
            State::Closed => Phase::Closed,
        }
    }

    /// The server connected to, being connected to, or next in line.
    pub fn server(&self) -> ServerIndex {
        ServerIndex(self.server)
    }

    /// The heartbeat interval in effect, once welcomed.
    pub fn interval_ms(&self) -> Option<u64> {
        match self.state {
            State::Online(o) => Some(self.interval_of(&o)),
            _ => None,
        }
    }

    /// The adaptive interval's search, with [`IntervalPolicy::Adaptive`].
    pub fn adaptive(&self) -> Option<&AdaptiveInterval> {
        self.adaptive.as_deref()
    }

    /// How many reconnect delays have been drawn since the backoff was last
    /// reset.
    pub fn attempt(&self) -> u32 {
        self.backoff.attempt()
    }

    /// The config the session runs with (timeouts clamped to at least 1 ms).
    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    // ---- inputs -----------------------------------------------------------

    /// The connection asked for by [`Action::Connect`] is up. Queues `HELLO`.
    pub fn handle_connected(&mut self, now: Tick) {
        if !matches!(self.state, State::Connecting { .. }) {
            return;
        }
        self.state = State::Hello {
            deadline: now.saturating_add(self.config.reply_timeout_ms),
        };
        self.last_rx = now;
        self.last_tx = now;
        wire::encode_hello(&self.config.client_id, &mut self.out);
        self.events.push_back(Event::Connected {
            server: ServerIndex(self.server),
        });
    }

    /// Bytes arrived from the server. Any split of the stream into calls
    /// gives the same result.
    pub fn handle_received(&mut self, now: Tick, data: &[u8]) {
        if !self.is_connected() {
            return;
        }
        let max_line = self.config.max_line;
        let mut rest = data;
        if !self.partial.is_empty() {
            // Finish the split line with just enough bytes: up to its `\n`,
            // and never more than a full line with "\r\n" (enough to know).
            let want = rest
                .iter()
                .position(|&b| b == b'\n')
                .map_or(rest.len(), |nl| nl + 1);
            let room = (max_line.max(1) + 2).saturating_sub(self.partial.len());
            let take = want.min(room);
            self.partial.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            let buf = std::mem::take(&mut self.partial);
            match wire::decode(&buf, max_line) {
                // `partial` never holds a `\n`, so the line ends at the byte
                // just added and used all of `buf`.
                Ok(Some((line, _))) => self.handle_line(now, line),
                Ok(None) => {
                    // `rest` is empty here: no `\n` was found and all was taken.
                    self.partial = buf;
                    return;
                }
                Err(e) => return self.handle_decode_error(now, e),
            }
        }
        while self.is_connected() {
            match wire::decode(rest, max_line) {
                Ok(Some((line, used))) => {
                    self.handle_line(now, line);
                    rest = &rest[used..];
                }
                Ok(None) => {
                    if !rest.is_empty() {
                        self.partial = rest.to_vec();
                    }
                    return;
                }
                Err(e) => return self.handle_decode_error(now, e),
            }
        }
    }

    /// The transport ended (end of stream, or the connect or connection
    /// failed). The driver has dropped the socket already, so no
    /// [`Action::Close`] follows.
    pub fn handle_closed(&mut self, now: Tick, end: TransportEnd) {
        if !matches!(
            self.state,
            State::Connecting { .. } | State::Hello { .. } | State::Online(_)
        ) {
            return;
        }
        let reason = match end {
            TransportEnd::Eof => DisconnectReason::Eof,
            TransportEnd::Error(kind) => DisconnectReason::Failed(kind),
        };
        self.disconnect(now, reason, false);
    }

    /// Time has reached `now`: fire whatever deadline has passed. Calling it
    /// early or often is harmless.
    pub fn handle_timeout(&mut self, now: Tick) {
        match self.state {
            State::Waiting { until } if now >= until => {
                self.connect_pending = Some(ServerIndex(self.server));
                self.state = State::Connecting {
                    deadline: now.saturating_add(self.config.connect_timeout_ms),
                };
            }
            State::Connecting { deadline } if now >= deadline => {
                self.disconnect(now, DisconnectReason::ConnectTimeout, true);
            }
            State::Hello { deadline } if now >= deadline => {
                self.disconnect(now, DisconnectReason::NoWelcome, true);
            }
            State::Online(o) => {
                if o.ping.is_some_and(|p| now >= self.ping_deadline(p)) {
                    self.disconnect(now, DisconnectReason::PingTimeout, true);
                } else if now >= self.silence_deadline(&o) {
                    self.disconnect(now, DisconnectReason::Silent, true);
                } else if o.ping.is_none() && now >= self.beat_at(&o) {
                    let due_ms = self.beat_at(&o);
                    self.send_ping(now, due_ms);
                }
            }
            _ => {}
        }
    }

    /// Queues a message for the server. Refused when no connection is up
    /// (messages are never kept across reconnects), or when it is not one
    /// plain line the server would pass on as a message.
    pub fn send_message(&mut self, now: Tick, message: &[u8]) -> Result<(), SendError> {
        if !self.is_connected() {
            return Err(SendError::NotConnected);
        }
        if message.contains(&b'\n') || message.last() == Some(&b'\r') {
            return Err(SendError::NotOneLine);
        }
        if wire::is_command(message) {
            return Err(SendError::Command);
        }
        if message.len() > self.config.max_message {
            return Err(SendError::TooLong {
                limit: self.config.max_message,
            });
        }
        if self.out.len() - self.sent + message.len() + 1 > self.config.max_pending {
            return Err(SendError::Full);
        }
        self.compact_output();
        wire::encode_message(message, &mut self.out);
        // Sending counts for the server's view of us, never for ours of it.
        self.last_tx = now;
        Ok(())
    }

    /// Closes the session for good: no more reconnects, no more deadlines.
    pub fn close(&mut self) {
        if self.is_connected() || matches!(self.state, State::Connecting { .. }) {
            self.close_pending = true;
        }
        self.connect_pending = None;
        self.state = State::Closed;
        self.drop_connection_buffers();
    }

    // ---- outputs ----------------------------------------------------------

    /// The next thing the driver must do, if any.
    pub fn poll_action(&mut self) -> Option<Action> {
        if self.close_pending {
            self.close_pending = false;
            return Some(Action::Close);
        }
        self.connect_pending.take().map(Action::Connect)
    }

    /// The bytes waiting for the socket, if any. Report how many were
    /// written with [`handle_transmitted`](Session::handle_transmitted).
    pub fn poll_transmit(&self) -> Option<&[u8]> {
        let pending = self.out.get(self.sent..).unwrap_or_default();
        (!pending.is_empty()).then_some(pending)
    }

    /// `n` bytes from [`poll_transmit`](Session::poll_transmit) were written.
    pub fn handle_transmitted(&mut self, n: usize) {
        self.sent = self.sent.saturating_add(n).min(self.out.len());
        if self.sent == self.out.len() {
            self.out = Vec::new();
            self.sent = 0;
        }
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        let event = self.events.pop_front();
        if self.events.is_empty() && self.events.capacity() > 0 {
            self.events = VecDeque::new();
        }
        event
    }

    /// When [`handle_timeout`](Session::handle_timeout) must next be called,
    /// or `None` once closed.
    pub fn poll_timeout(&self) -> Option<Tick> {
        match self.state {
            State::Waiting { until } => Some(until),
            State::Connecting { deadline } | State::Hello { deadline } => Some(deadline),
            State::Online(o) => Some(match o.ping {
                Some(p) => self.ping_deadline(p).min(self.silence_deadline(&o)),
                None => self.beat_at(&o).min(self.silence_deadline(&o)),
            }),
            State::Closed => None,
        }
    }

    // ---- internals --------------------------------------------------------

    fn is_connected(&self) -> bool {
        matches!(self.state, State::Hello { .. } | State::Online(_))
    }

    /// The one place the interval is decided.
    fn interval_of(&self, o: &Online) -> u64 {
        match &self.adaptive {
            Some(a) => a.current(),
            None => self.config.interval.interval_ms(o.server_interval_ms),
        }
    }

    fn report_change(&mut self, change: Option<super::adaptive::Change>) {
        if let Some(c) = change {
            self.events.push_back(Event::IntervalChanged {
                from_ms: c.from_ms,
                to_ms: c.to_ms,
                reason: c.reason,
            });
        }
    }

    fn ping_deadline(&self, p: Ping) -> Tick {
        p.sent_at.saturating_add(self.config.reply_timeout_ms)
    }

    fn silence_deadline(&self, o: &Online) -> Tick {
        self.last_rx
            .saturating_add(self.interval_of(o))
            .saturating_add(self.config.reply_timeout_ms)
    }

    /// The line is idle when nothing was received, or nothing sent, for an
    /// interval. Sends can move this earlier than `last_rx + interval`,
    /// never later.
    fn beat_at(&self, o: &Online) -> Tick {
        self.last_rx
            .min(self.last_tx)
            .saturating_add(self.interval_of(o))
    }

    fn send_ping(&mut self, now: Tick, due_ms: Tick) {
        let State::Online(o) = &mut self.state else {
            return;
        };
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        let quiet = now.saturating_sub(self.last_rx.max(self.last_tx));
        o.ping = Some(Ping {
            seq,
            sent_at: now,
            quiet,
        });
        self.compact_output();
        wire::encode_ping(seq, &mut self.out);
        self.last_tx = now;
        self.events.push_back(Event::PingSent {
            seq,
            due_ms: due_ms.min(now),
        });
    }

    fn handle_line(&mut self, now: Tick, line: ServerLine<'_>) {
        // Every line is a sign of life.
        self.last_rx = now;
        match line {
            ServerLine::Welcome(w) => {
                if let Some(a) = &mut self.adaptive {
                    let change = a.handle_server_timeout(w.timeout_ms);
                    self.report_change(change);
                }
                let online = match self.state {
                    State::Online(o) => Online {
                        server_interval_ms: w.interval_ms,
                        ..o
                    },
                    _ => Online {
                        welcomed_at: now,
                        server_interval_ms: w.interval_ms,
                        ping: None,
                        pong_seen: false,
                    },
                };
                self.state = State::Online(online);
                self.events.push_back(Event::Welcome {
                    interval_ms: self.interval_of(&online),
                    server_interval_ms: w.interval_ms,
                    server_timeout_ms: w.timeout_ms,
                });
            }
            ServerLine::Pong { token } => {
                let State::Online(o) = &mut self.state else {
                    return;
                };
                let Some(ping) = o.ping else {
                    return;
                };
                if token.and_then(wire::parse_ms) == Some(ping.seq) {
                    o.ping = None;
                    o.pong_seen = true;
                    self.events.push_back(Event::Pong {
                        seq: ping.seq,
                        rtt_ms: now.saturating_sub(ping.sent_at),
                    });
                    if let Some(a) = &mut self.adaptive {
                        let change = a.handle_answered(ping.quiet);
                        self.report_change(change);
                    }
                }
            }
            ServerLine::Bye { reason } => {
                self.disconnect(now, DisconnectReason::Bye(reason), true);
            }
            ServerLine::Message(m) => self.events.push_back(Event::Line(m.to_vec())),
        }
    }

    fn handle_decode_error(&mut self, now: Tick, e: DecodeError) {
        let reason = match e {
            DecodeError::TooLong { .. } => DisconnectReason::LineTooLong,
            DecodeError::BadFrame(what) => DisconnectReason::BadLine(what),
        };
        self.disconnect(now, reason, true);
    }

    /// Ends the current connection (or connect attempt) and schedules the
    /// next, on the next server.
    fn disconnect(&mut self, now: Tick, reason: DisconnectReason, close: bool) {
        let mut change = None;
        if let State::Online(o) = self.state {
            let lasted = now.saturating_sub(o.welcomed_at);
            let enough = self.interval_of(&o).saturating_mul(HEALTHY_INTERVALS);
            if o.pong_seen || lasted >= enough {
                self.backoff.reset();
            }
            // A beat lost: unanswered, or the connection died under it (a
            // NAT that resets a flow it has forgotten). A BYE or a bad
            // line is the server talking, not the path failing.
            let lost = matches!(
                reason,
                DisconnectReason::PingTimeout
                    | DisconnectReason::Silent
                    | DisconnectReason::Failed(_)
                    | DisconnectReason::Eof
            );
            if let (Some(ping), Some(a), true) = (o.ping, &mut self.adaptive, lost) {
                change = a.handle_lost(ping.quiet);
            }
        }
        self.close_pending |= close;
        self.drop_connection_buffers();
        self.events.push_back(Event::Disconnected {
            server: ServerIndex(self.server),
            reason,
        });
        self.report_change(change);
        self.server = (self.server + 1) % self.config.servers;
        let (attempt, delay_ms) = self.backoff.next_delay();
        self.state = State::Waiting {
            until: now.saturating_add(delay_ms),
        };
        self.events.push_back(Event::ReconnectScheduled {
            server: ServerIndex(self.server),
            attempt,
            delay_ms,
        });
    }

    fn drop_connection_buffers(&mut self) {
        self.out = Vec::new();
        self.sent = 0;
        self.partial = Vec::new();
    }

    /// Drops written bytes from the front before appending, so a buffer
    /// that is never fully written does not grow without bound.
    fn compact_output(&mut self) {
        if self.sent > 0 {
            self.out.drain(..self.sent);
            self.sent = 0;
        }
    }
}

#[cfg(test)]
mod tests;
