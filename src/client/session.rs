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
//! - **Login.** On connect the session sends `HELLO <id>` (`HELLO <id>
//!   <token>` with a token), on every connect,
//!   so a reconnect logs in again. `WELCOME` must come within the reply
//!   timeout, or the server is dead (`no-welcome`).
//! - **Interval.** The interval in effect is decided in one place
//!   (`interval_of`): the `interval=` of the last `WELCOME`, the user's
//!   fixed interval, or, with [`IntervalPolicy::Adaptive`], the interval a
//!   [`ProbePlanner`] has proven (less a margin), which lives across
//!   reconnects. The search runs on short-lived probe connections
//!   (`session/probe.rs`: [`ProbeAction`], `handle_probe_*`,
//!   [`poll_probe_transmit`](Session::poll_probe_transmit)), never with the
//!   main connection's beats; a beat the main connection loses at a proven
//!   interval (its quiet time at least 80% of it) tells the planner the
//!   path got worse. Every change is an [`Event::IntervalChanged`] with its
//!   reason, every probe an [`Event::Probe`].
//! - **Modes.** With an adaptive policy, [`Session::set_mode`]: the
//!   foreground beats at a fixed interval
//!   ([`SessionConfig::foreground_interval_ms`], or the server's); on
//!   entering the background, [`BACKGROUND_MIN_BEATS`] answered beats at
//!   the minimum come first, then the adaptive interval. The default is the
//!   background.
//! - **Networks.** [`Session::handle_network_change`] (the driver saw the
//!   connection's address go, or the default route change) drops the
//!   connection and reconnects at once to the same server, without a
//!   backoff delay; [`Session::handle_network`] names the network a new
//!   connection runs on, and the search starts from what it learned there.
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
//! Per session: the config (with the protocol: one shared 8-byte
//! [`ClientCodec`](crate::protocol::client::ClientCodec)), a partial-frame
//! buffer that exists only while a frame is split across reads (at most the
//! codec's `max_incomplete(max_line) + 1` bytes: `max_line + 2` for lines),
//! pending output freed as soon as it is all written, and the event queue,
//! freed when drained. Complete frames are decoded straight from the
//! caller's slice.
//!
//! # Protocols
//! The session speaks the protocol its config names
//! ([`SessionConfig::protocol`], the line protocol by default) through
//! [`crate::protocol::client`]; the rules below are written in the line
//! protocol's words (`HELLO`, `WELCOME`, `PING`, `PONG`, `BYE`). Where a
//! protocol has no login (raw), the session is online as soon as it is
//! connected; where the answer to a ping cannot name it (raw), any answer
//! clears the outstanding ping.
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
//! [`ProbePlanner`]: super::adaptive::ProbePlanner

use std::collections::VecDeque;

use super::adaptive::ProbePlanner;
use super::backoff::Backoff;
use super::wire;
use crate::detector::{Arrivals, Detector, PhiConfig};
use crate::protocol::client::{Login, MessageError, ServerFrame};
use crate::protocol::{valid_client_id, DecodeError};
use crate::time::Tick;

// The config and the event types sit in their own files, re-exported here.
mod config;
mod event;
mod frame;
mod probe;

pub use config::{
    ConfigError, IntervalPolicy, Mode, ServerIndex, SessionConfig, BACKGROUND_MIN_BEATS,
    DEFAULT_BACKOFF_BASE_MS, DEFAULT_BACKOFF_CAP_MS, DEFAULT_CONNECT_TIMEOUT_MS,
    DEFAULT_MAX_MESSAGE, DEFAULT_MAX_PENDING, DEFAULT_REPLY_TIMEOUT_MS, HEALTHY_INTERVALS,
};
pub use event::{Action, DisconnectReason, Event, SendError, TransportEnd};
pub use probe::{NetworkKey, ProbeAction, MAX_NETWORKS};

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
    /// The adaptive search and its probe connection, with
    /// [`IntervalPolicy::Adaptive`]; boxed so sessions with a fixed
    /// interval do not pay for it.
    adaptive: Option<Box<probe::Adaptive>>,
    /// Foreground or background (see [`Session::set_mode`]).
    mode: Mode,
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
    /// With the φ detector: its settings, the intervals between frames
    /// received on this connection, and the threshold's `z`. Boxed: off,
    /// it costs 8 bytes.
    phi: Option<Box<(PhiConfig, Arrivals, f64)>>,
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
        if config.protocol.login() != Login::WelcomeWithInterval
            && config.interval == IntervalPolicy::Server
        {
            return Err(ConfigError::NeedsInterval);
        }
        if config.token.as_deref().is_some_and(|t| {
            !(1..=256).contains(&t.len()) || !t.bytes().all(|b| (b'!'..=b'~').contains(&b))
        }) {
            return Err(ConfigError::BadToken);
        }
        if config.token.is_some() && !config.protocol.carries_token() {
            return Err(ConfigError::NoToken);
        }
        let adaptive = match config.interval {
            IntervalPolicy::Adaptive(c) => {
                c.check().map_err(|_| ConfigError::BadAdaptive)?;
                Some(Box::new(probe::Adaptive::new(ProbePlanner::new(c, now))))
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
            mode: Mode::Background,
            next_seq: 1,
            last_rx: now,
            last_tx: now,
            out: Vec::new(),
            sent: 0,
            partial: Vec::new(),
            events: VecDeque::new(),
            close_pending: false,
            connect_pending: None,
            phi: None,
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

    /// How many reconnect delays have been drawn since the backoff was last
    /// reset.
    pub fn attempt(&self) -> u32 {
        self.backoff.attempt()
    }

    /// The config the session runs with (timeouts clamped to at least 1 ms).
    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// Chooses which detector declares the server dead when it falls
    /// silent: the fixed `interval + reply timeout` after the last frame
    /// received (the default), or a φ accrual detector over the intervals
    /// between frames received, which gives up sooner on a regular server
    /// and never later than the fixed rule. A ping unanswered within the
    /// reply timeout is dead either way. See [`crate::detector`].
    pub fn set_detector(&mut self, detector: Detector) {
        self.phi = match detector {
            Detector::Phi(c) => Some(Box::new((c, Arrivals::default(), c.z()))),
            Detector::Fixed => None,
        };
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
        // A new connection: its rhythm is learned afresh.
        if let Some(p) = self.phi.as_deref_mut() {
            p.1 = Arrivals::default();
        }
        self.last_rx = now;
        self.last_tx = now;
        let protocol = self.config.protocol;
        protocol.encode_hello(
            &self.config.client_id,
            self.config.token.as_deref().map(String::as_str),
            &mut self.out,
        );
        self.events.push_back(Event::Connected {
            server: ServerIndex(self.server),
        });
        if protocol.login() == Login::None {
            // Nothing to wait for: online now, at the client's interval.
            self.handle_frame(
                now,
                ServerFrame::Welcome {
                    interval_ms: None,
                    timeout_ms: None,
                },
            );
        }
    }

    /// Bytes arrived from the server. Any split of the stream into calls
    /// gives the same result.
    pub fn handle_received(&mut self, now: Tick, data: &[u8]) {
        if !self.is_connected() {
            return;
        }
        let protocol = self.config.protocol;
        let limit = self.config.max_line;
        let mut rest = data;
        if !self.partial.is_empty() {
            // Finish the split frame with at most enough bytes for the
            // codec to decide (it must, past `max_incomplete`), so the
            // buffer stays bounded whatever the read sizes.
            let had = self.partial.len();
            let bound = protocol.max_incomplete(limit);
            let take = rest.len().min(bound.saturating_add(1).saturating_sub(had));
            self.partial.extend_from_slice(&rest[..take]);
            let buf = std::mem::take(&mut self.partial);
            match protocol.decode(&buf, limit) {
                // `partial` held no complete frame, so this one ends in the
                // bytes just added.
                Ok(Some((frame, used))) => {
                    rest = &rest[used.saturating_sub(had).min(rest.len())..];
                    self.handle_frame(now, frame);
                }
                // Within the bound, `take` was all of `rest`.
                Ok(None) if buf.len() <= bound => {
                    self.partial = buf;
                    return;
                }
                // A codec of one's own may break its bound: never buffer
                // past it, the frame is too long.
                Ok(None) => {
                    return self.handle_decode_error(now, DecodeError::TooLong { limit });
                }
                Err(e) => return self.handle_decode_error(now, e),
            }
        }
        while self.is_connected() {
            match protocol.decode(rest, limit) {
                Ok(Some((frame, used))) => {
                    self.handle_frame(now, frame);
                    rest = &rest[used.min(rest.len())..];
                }
                // A codec of one's own may break its bound: never buffer
                // past it.
                Ok(None) if rest.len() > protocol.max_incomplete(limit) => {
                    return self.handle_decode_error(now, DecodeError::TooLong { limit });
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
        self.handle_probe_timeout(now);
    }

    /// Queues a message for the server. Refused when no connection is up
    /// (messages are never kept across reconnects), or when it is not one
    /// plain line the server would pass on as a message.
    pub fn send_message(&mut self, now: Tick, message: &[u8]) -> Result<(), SendError> {
        if !self.is_connected() {
            return Err(SendError::NotConnected);
        }
        let protocol = self.config.protocol;
        protocol.check_message(message).map_err(|e| match e {
            MessageError::NotOneLine => SendError::NotOneLine,
            MessageError::Command => SendError::Command,
            MessageError::Unsupported => SendError::Unsupported,
        })?;
        if message.len() > self.config.max_message {
            return Err(SendError::TooLong {
                limit: self.config.max_message,
            });
        }
        if self.out.len() - self.sent + message.len() + 1 > self.config.max_pending {
            return Err(SendError::Full);
        }
        self.compact_output();
        protocol.encode_message(message, &mut self.out);
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
        self.abort_probe(0);
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
        let main = match self.state {
            State::Waiting { until } => Some(until),
            State::Connecting { deadline } | State::Hello { deadline } => Some(deadline),
            State::Online(o) => Some(match o.ping {
                Some(p) => self.ping_deadline(p).min(self.silence_deadline(&o)),
                None => self.beat_at(&o).min(self.silence_deadline(&o)),
            }),
            State::Closed => None,
        };
        match (main, self.probe_timeout()) {
            (Some(m), Some(p)) => Some(m.min(p)),
            (m, p) => m.or(p),
        }
    }

    // ---- internals --------------------------------------------------------

    fn is_connected(&self) -> bool {
        matches!(self.state, State::Hello { .. } | State::Online(_))
    }

    /// The one place the interval is decided.
    fn interval_of(&self, o: &Online) -> u64 {
        match &self.adaptive {
            Some(_) if self.mode == Mode::Foreground => self
                .config
                .foreground_interval_ms
                .map_or(o.server_interval_ms, |f| f.get())
                .max(1),
            Some(a) if a.min_beats_left > 0 => a.planner.config().min_ms,
            Some(a) => a.planner.interval(),
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

    /// When silence means death: an interval and a reply timeout after the
    /// last frame received, or sooner when the φ detector, having learned
    /// the server's rhythm, reaches its threshold.
    fn silence_deadline(&self, o: &Online) -> Tick {
        let fixed = self
            .last_rx
            .saturating_add(self.interval_of(o))
            .saturating_add(self.config.reply_timeout_ms);
        let phi = self
            .phi
            .as_deref()
            .and_then(|(c, a, z)| a.deadline(self.last_rx, c, *z));
        phi.map_or(fixed, |d| d.min(fixed))
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
        self.config.protocol.encode_ping(seq, &mut self.out);
        self.last_tx = now;
        self.events.push_back(Event::PingSent {
            seq,
            due_ms: due_ms.min(now),
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
