//! The server's per-connection rules: pure, no sockets, no clock.
//!
//! [`Sessions`] is the server's side of the heartbeat protocol, shaped like
//! the client's [`Session`](crate::client::session::Session) and quinn-proto's
//! `Connection`: the event loop feeds it inputs with `handle_*` and drains
//! its outputs with `poll_*`. It owns what is one per server (the codec, the
//! application's [`Handler`], the presence table, the limits, the counters
//! and the output queues); the per-connection part, a small [`Session`],
//! lives in the loop's slab beside its socket and is lent to each call, so an
//! idle connection costs a [`Session`] and nothing else here.
//!
//! Inputs, each with the `now` it happened at (a [`Tick`] on any clock that
//! never goes back):
//! - [`handle_accept`](Sessions::handle_accept): a connection is accepted;
//!   it gets its number and its first deadline, `now + timeout`.
//! - [`handle_bytes`](Sessions::handle_bytes): bytes read from it.
//! - [`handle_timeout`](Sessions::handle_timeout): its deadline entry fired.
//! - [`handle_close`](Sessions::handle_close): it ends, for a reason (end of
//!   stream, a socket error, a close asked for by [`poll_close`]).
//! - [`handle_refused`](Sessions::handle_refused): a connection the loop will
//!   not serve (too many connections, no descriptor left).
//!
//! Outputs:
//! - [`poll_transmit`](Sessions::poll_transmit): bytes for one connection, in
//!   the order they were produced; the last for a closing connection is
//!   marked `last` (its `BYE`, if the reason says one).
//! - [`poll_close`](Sessions::poll_close): connections to close and why (a
//!   bad frame, a `QUIT`, too many pings, a silent peer, a takeover, a
//!   handler's request). The loop answers with [`handle_close`](Sessions::handle_close).
//! - [`poll_event`](Sessions::poll_event): presence events, in order.
//! - [`poll_stop`](Sessions::poll_stop): a handler asked the server to stop.
//!
//! # Lifecycle of a connection
//! ```text
//!  handle_accept ──► Open ──HELLO──► Open with a client id (takeover: the
//!                     │                │            previous holder is closed)
//!                     └──── handle_close(reason) ───┴──► Closing ──last bytes──► Ended
//!                                                          (BYE queued)   written
//! ```
//!
//! # Rules
//! - **Life.** Every complete frame, of any kind, is a sign of life: it sets
//!   `last_seen` to the `now` of the bytes that completed it. A partial frame
//!   is not: a peer trickling one byte at a time still times out.
//! - **Deadline.** A connection is silent past its deadline when
//!   `now >= last_seen + timeout`. [`handle_timeout`](Sessions::handle_timeout)
//!   at `now` re-arms (`Deadline::At`) while the deadline is later than `now`,
//!   and asks for the close (`timeout`) otherwise: never earlier than
//!   `timeout` after the last frame, since `now` is never later than the
//!   truth and `last_seen` never earlier.
//! - **Heartbeats.** A `PING` is answered with a `PONG` carrying its token,
//!   up to the protocol's [`max_pongs_per_interval`](Protocol::max_pongs_per_interval).
//!   With `max_pings`, a peer that sends more heartbeats per interval than
//!   that is closed (`too-many-pings`); the window starts at the first ping
//!   after the previous window ended.
//! - **HELLO.** Always answered with `WELCOME <id> interval= timeout=`. A new
//!   id for this connection releases its old one, claims the new one in the
//!   presence table (MQTT's takeover: the previous holder is closed with
//!   `replaced`), emits a `hello` event and calls `on_hello`. The same id
//!   again changes nothing.
//! - **Event order.** A consumer rebuilding presence from the events never
//!   sees an id held twice: a HELLO that changes a connection's id emits the
//!   old id's `offline` (reason `renamed`, the connection stays open) before
//!   the new `hello`; on a takeover, the previous holder's `offline`
//!   (`replaced`) comes before the new holder's `hello`, even though the
//!   close is applied after the HELLO was read.
//! - **Close.** Idempotent. The `BYE <reason>` (for reasons that say one)
//!   is queued after every byte queued before it for that connection, so a
//!   `PONG` already produced is never lost behind a `BYE`. Then the id is
//!   released (only if this connection still holds it), the offline event
//!   is emitted and `on_offline` is called. Every accepted connection gets
//!   exactly one `online` and one `offline` event.
//! - **Bad input.** A frame the codec rejects closes that connection with
//!   the codec's reason (`line-too-long`, `bad-frame`), logged with the peer;
//!   nothing else is disturbed.

use std::collections::VecDeque;
use std::net::SocketAddr;

use std::panic::AssertUnwindSafe;

use super::handler::{ConnInfo, Context, Handler, Outbox, Target, Verdict};
use super::presence::{LocalPresence, NameKey, PresenceTable};
use super::stats::Stats;
use crate::detector::{Arrivals, PhiConfig};
use crate::events::EventKind;
use crate::protocol::{CloseReason, Command, Frame, Protocol, Reply, Resume};
use crate::time::Tick;
use compact_str::CompactString;
use partial::Partial;
use peer::Peer;

mod handoff;
mod hello;
mod partial;
mod peer;
mod read;
pub(crate) mod ws;

pub(crate) use ws::Wire;

/// A slab key with the generation of the connection that holds it.
///
/// Slab keys are reused after a connection is removed; whatever keeps a key
/// past the current event batch keeps the generation too, and checks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct ConnRef {
    pub key: u32,
    pub generation: u32,
}

/// The limits a [`Sessions`] applies, in ticks.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Settings {
    /// The interval told to clients in `WELCOME`, and the `max_pings` window.
    pub interval_ms: Tick,
    /// How long a connection may stay silent.
    pub timeout_ms: Tick,
    /// The most heartbeats per interval, if limited.
    pub max_pings: Option<u32>,
    /// A φ accrual detector, if on: a connection may then be declared dead
    /// before `timeout_ms` (never after).
    pub phi: Option<PhiConfig>,
    /// How long a connection may go without a completed HELLO, if limited.
    pub hello_timeout_ms: Option<Tick>,
    /// The most frames of any kind per interval, if limited.
    pub max_frames: Option<u16>,
    /// The most output one connection may have waiting: what one read
    /// produces is checked against it reply by reply.
    pub max_output: usize,
}

/// Where a connection is in its life (see the module docs): open; closed
/// for a reason with its last bytes queued, not yet written (closing); or
/// with them handed to the socket (ended). One byte, the reason's index in
/// [`CloseReason::ALL`] and a bit for ended, rather than an enum of two
/// bytes (tag and reason), so that a [`Session`] stays within 64 bytes
/// beside `frames_in_window` and `version`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct State(u8);

// The reasons' indexes stay clear of the ended bit and of `OPEN`.
const _: () = assert!(CloseReason::ALL.len() < State::ENDED as usize);

impl State {
    const OPEN: State = State(u8::MAX);
    /// Its HELLO names a client id another worker owns: the connection
    /// goes to that worker (see [`Sessions::poll_handoff`]); no offline
    /// event here, the owner carries on with the same number.
    const HANDED_OFF: State = State(u8::MAX - 1);
    const ENDED: u8 = 0x80;

    /// Closed for `reason`; its last bytes are queued, not yet written.
    fn closing(reason: CloseReason) -> State {
        // `index` is below `ALL.len()`, itself below `ENDED` (checked above).
        State(reason.index() as u8)
    }

    /// The same reason, with the last bytes handed to the socket; open
    /// stays open.
    fn ended(self) -> State {
        if self == State::OPEN || self == State::HANDED_OFF {
            self
        } else {
            State(self.0 | State::ENDED)
        }
    }

    fn is_ended(self) -> bool {
        self != State::OPEN && self != State::HANDED_OFF && self.0 & State::ENDED != 0
    }

    /// Why it closed, once it has.
    #[cfg(test)]
    fn reason(self) -> Option<CloseReason> {
        if self == State::OPEN || self == State::HANDED_OFF {
            return None;
        }
        CloseReason::ALL
            .get(usize::from(self.0 & !State::ENDED))
            .copied()
    }
}

/// One connection's part of the protocol state: 64 bytes (its client id
/// lives in the presence table, its peer takes 20), and no buffer while it
/// holds no partial frame.
#[derive(Debug)]
pub(crate) struct Session {
    /// Unique for the server's lifetime; its low 32 bits are the generation.
    number: u64,
    peer: Peer,
    /// When the last complete frame arrived.
    last_seen: Tick,
    /// Its claim on a client id in the presence table, after HELLO.
    client: Option<NameKey>,
    /// Bytes of an incomplete frame, and where the codec stopped in them.
    input: Partial,
    /// When the current `max_pings` window started, and the heartbeats in
    /// it (two fields rather than a struct, so they share its padding).
    ping_window_start: Tick,
    /// Saturates at 65,535, so `max_pings` above that never triggers.
    pings_in_window: u16,
    /// Frames of any kind in the window (with `max_frames`; u16 so that it
    /// fits in the padding).
    frames_in_window: u16,
    state: State,
    /// The protocol version the peer negotiated ([`Command::Handshake`]);
    /// 0 until it does. One byte in what was padding. On a WebSocket
    /// wire, [`ws::VERSION`](crate::protocol::ws::VERSION) once the
    /// opening handshake is done.
    version: u8,
    /// Which of the server's [`Wire`]s the connection speaks: the index
    /// of its listener's.
    wire: u8,
}

impl Session {
    /// The connection's number, as in events and the log (`conn 7`).
    pub fn number(&self) -> u64 {
        self.number
    }

    /// The generation that goes with the connection's slab key.
    pub fn generation(&self) -> u32 {
        self.number as u32
    }

    /// The handle on this connection, given its slab key.
    pub fn conn_ref(&self, key: u32) -> ConnRef {
        ConnRef {
            key,
            generation: self.generation(),
        }
    }

    pub fn peer(&self) -> SocketAddr {
        self.peer.into()
    }

    /// When the last complete frame arrived.
    #[cfg(test)]
    pub fn last_seen(&self) -> Tick {
        self.last_seen
    }

    /// Whether the connection is still served (not closed).
    pub fn is_open(&self) -> bool {
        self.state == State::OPEN
    }

    /// Whether its last bytes have gone to the socket: nothing more may be
    /// written to it.
    pub fn is_ended(&self) -> bool {
        self.state.is_ended()
    }

    /// Why it was closed, once it has been.
    #[cfg(test)]
    pub fn close_reason(&self) -> Option<CloseReason> {
        self.state.reason()
    }

    /// The driver has handed the connection's last bytes to its socket.
    pub fn handle_ended(&mut self) {
        self.state = self.state.ended();
    }

    /// Records a heartbeat at `now` and returns how many the peer has sent
    /// in the current window of `interval` ms, this one included. A window
    /// starts at the first heartbeat after the previous one ended (at the
    /// first frame, when frames are counted too: see [`Session::record_frame`]).
    fn record_ping(&mut self, now: Tick, interval: Tick) -> u32 {
        if self.window_ended(now, interval) {
            self.start_window(now);
        }
        self.pings_in_window = self.pings_in_window.saturating_add(1);
        u32::from(self.pings_in_window)
    }

    /// Records a frame of any kind at `now` (with `max_frames` only) and
    /// returns how many the peer has sent in the current window, this one
    /// included. Heartbeats share the window.
    fn record_frame(&mut self, now: Tick, interval: Tick) -> u16 {
        if self.window_ended(now, interval) {
            self.start_window(now);
        }
        self.frames_in_window = self.frames_in_window.saturating_add(1);
        self.frames_in_window
    }

    fn window_ended(&self, now: Tick, interval: Tick) -> bool {
        (self.pings_in_window == 0 && self.frames_in_window == 0)
            || now.saturating_sub(self.ping_window_start) >= interval
    }

    fn start_window(&mut self, now: Tick) {
        self.ping_window_start = now;
        self.pings_in_window = 0;
        self.frames_in_window = 0;
    }
}

/// Bytes for one connection, from [`Sessions::poll_transmit`].
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Transmit<'a> {
    pub to: ConnRef,
    pub bytes: &'a [u8],
    /// The connection's last bytes (possibly none): it closes after them.
    pub last: bool,
}

/// A presence event, from [`Sessions::poll_event`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PresenceEvent {
    pub number: u64,
    pub peer: SocketAddr,
    pub client: Option<CompactString>,
    pub kind: EventKind,
    /// For a `hello` that took its id over: the connection it replaced,
    /// whose `offline` goes before this event.
    pub replaces: Option<ConnRef>,
}

/// A connection to hand to the worker that owns its client id, from
/// [`Sessions::poll_handoff`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Handoff {
    pub conn: ConnRef,
    /// The id its HELLO names.
    pub client: Box<str>,
    /// The bytes from its HELLO on, to replay at the owner.
    pub input: Vec<u8>,
}

/// What [`Sessions::handle_timeout`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Deadline {
    /// Heard from since: the deadline is now this.
    At(Tick),
    /// Silent past its deadline: its close (`timeout`) is queued.
    Passed,
    /// Already closed: nothing to do.
    Closed,
}

/// The server side of the protocol for every connection. See the module docs.
pub(crate) struct Sessions<P, H, D = LocalPresence> {
    /// How each listener's connections speak, by [`Session`]'s `wire`.
    wires: Vec<Wire<P>>,
    /// Some wire pings silent connections (fixed at construction; asked
    /// after every read).
    any_pings: bool,
    /// Each slab key's wire, while there is more than one.
    wire_of: Vec<u8>,
    /// The WebSocket settings every WebSocket wire shares.
    ws: ws::WsOptions,
    /// Where replies are moved while they are framed for WebSocket.
    ws_scratch: Vec<u8>,
    /// Where a WebSocket connection's bytes are unmasked when it holds no
    /// partial frame of its own.
    ws_raw: Vec<u8>,
    handler: H,
    presence: D,
    settings: Settings,
    stats: Stats,
    next_number: u64,
    tx: Transmits,
    closes: VecDeque<(ConnRef, CloseReason)>,
    events: VecDeque<PresenceEvent>,
    /// What a handler hook asked for beyond its own connection.
    outbox: Outbox,
    /// Targets of a broadcast, gathered before queueing.
    targets: Vec<ConnRef>,
    /// Where a refused connection's BYE is encoded.
    refusal: Vec<u8>,
    /// Connections that must complete a HELLO, with their deadline, in
    /// accept order (so in deadline order: the timeout is the same for all).
    /// Empty unless `hello_timeout_ms` is set.
    hellos: VecDeque<(ConnRef, Tick)>,
    /// Wall-clock Unix seconds, handed in by the loop once per turn.
    unix_time: u64,
    stop: bool,
    /// With φ on: each connection's arrival moments, by slab key (12 bytes
    /// a connection, beside the sessions rather than in them), and the
    /// threshold's `z`.
    arrivals: Vec<Arrivals>,
    phi_z: f64,
    /// Connections to hand to the worker that owns their client id, with
    /// the bytes from their HELLO on (see `server::workers`).
    handoffs: VecDeque<Handoff>,
}

impl<P: Protocol, H: Handler, D: PresenceTable> Sessions<P, H, D> {
    #[cfg(test)]
    pub fn new(protocol: P, handler: H, presence: D, settings: Settings) -> Self {
        Self::with_wires(vec![Wire::plain(protocol)], handler, presence, settings)
    }

    /// Sessions for listeners that speak differently: a connection speaks
    /// `wires[i]` when [`handle_accept`](Sessions::handle_accept) gives it
    /// `wire` i. At least one and at most 256 wires.
    pub fn with_wires(wires: Vec<Wire<P>>, handler: H, presence: D, settings: Settings) -> Self {
        Sessions {
            any_pings: wires.iter().any(|w| w.ping_after.is_some()),
            wires,
            wire_of: Vec::new(),
            ws: ws::WsOptions::default(),
            ws_scratch: Vec::new(),
            ws_raw: Vec::new(),
            handler,
            presence,
            settings,
            stats: Stats::default(),
            next_number: 1,
            tx: Transmits::default(),
            closes: VecDeque::new(),
            events: VecDeque::new(),
            outbox: Outbox::default(),
            targets: Vec::new(),
            refusal: Vec::new(),
            hellos: VecDeque::new(),
            unix_time: 0,
            stop: false,
            arrivals: Vec::new(),
            phi_z: settings.phi.map_or(0.0, |c| c.z()),
            handoffs: VecDeque::new(),
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The wire protocol's name (the first listener's).
    pub fn protocol_name(&self) -> &'static str {
        self.wires.first().map_or("none", |w| w.protocol.name())
    }

    /// The WebSocket settings.
    pub fn set_websocket(&mut self, options: ws::WsOptions) {
        self.ws = options;
    }

    /// The wire of the connection under slab key `key`.
    fn wire_index(&self, key: u32) -> usize {
        if self.wires.len() <= 1 {
            return 0;
        }
        self.wire_of
            .get(key as usize)
            .map_or(0, |&w| usize::from(w))
    }

    /// The protocol connection `s` speaks.
    fn protocol_of(&self, s: &Session) -> &P {
        &self.wire_of_session(s).protocol
    }

    fn wire_of_session(&self, s: &Session) -> &Wire<P> {
        // `wire` was checked against `wires` when the session was made.
        &self.wires[usize::from(s.wire).min(self.wires.len() - 1)]
    }

    /// The counters (connections and clients are the loop's to fill in).
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The connection that holds client id `id`, if it is online here.
    pub fn holder(&self, id: &str) -> Option<ConnRef> {
        self.presence.get(id)
    }

    /// How many client ids are online.
    pub fn online_count(&self) -> usize {
        self.presence.len()
    }

    /// The presence table, to read (the admin endpoint's lookups).
    pub fn presence(&self) -> &D {
        &self.presence
    }

    /// When connection `key` is silent past its deadline if nothing more
    /// arrives: `timeout` after its last frame, or sooner when the φ
    /// detector is on and has seen enough of its rhythm.
    pub fn deadline(&self, key: u32, s: &Session) -> Tick {
        let fixed = s.last_seen.saturating_add(self.settings.timeout_ms);
        let phi = self.settings.phi.and_then(|c| {
            let a = self.arrivals.get(key as usize)?;
            a.deadline(s.last_seen, &c, self.phi_z)
        });
        phi.map_or(fixed, |d| d.min(fixed))
    }

    /// Whether a frame can bring a connection's deadline forward (the φ
    /// detector learning a faster rhythm), so that the loop must compare
    /// and move its wheel entry after a read rather than wait for it.
    pub fn deadlines_can_move_earlier(&self) -> bool {
        self.settings.phi.is_some()
    }

    /// A connection accepted at `now`, held under slab key `key`: its
    /// session, whose first deadline is [`Sessions::deadline`] of it.
    pub fn handle_accept(&mut self, now: Tick, key: u32, peer: SocketAddr, wire: u8) -> Session {
        let wire = if usize::from(wire) < self.wires.len() {
            wire
        } else {
            0
        };
        let number = self.take_number();
        let session = Session {
            number,
            peer: peer.into(),
            last_seen: now,
            client: None,
            input: Partial::default(),
            ping_window_start: 0,
            pings_in_window: 0,
            frames_in_window: 0,
            state: State::OPEN,
            version: 0,
            wire,
        };
        if let Some(d) = self.settings.hello_timeout_ms {
            self.hellos
                .push_back((session.conn_ref(key), now.saturating_add(d)));
        }
        self.stats.accepted += 1;
        self.forget_arrivals(key);
        if self.wires.len() > 1 {
            let i = key as usize;
            if self.wire_of.len() <= i {
                self.wire_of.resize(i + 1, 0);
            }
            self.wire_of[i] = wire;
        }
        // A WebSocket connection is online once its opening handshake is
        // done (see `ws`); its wheel entry keeps the handshake's deadline.
        if !self.wire_of_session(&session).websocket {
            self.event(&session, EventKind::Online);
            self.call_handler(&session, key, true, |h, ctx, info| h.on_online(ctx, info));
        }
        session
    }

    /// A connection that will not be served: counted, given its online and
    /// offline (`overloaded`) events, and the bytes to tell it so.
    #[cfg(test)]
    pub fn handle_refused(&mut self, peer: SocketAddr) -> &[u8] {
        self.handle_refused_for(peer, CloseReason::Overloaded, 0)
    }

    /// A connection that will not be served, for `reason`: counted, given
    /// its online and offline events, and the bytes to tell it so.
    pub fn handle_refused_for(&mut self, peer: SocketAddr, reason: CloseReason, wire: u8) -> &[u8] {
        let number = self.take_number();
        self.stats.accepted += 1;
        self.stats.count_close(reason);
        for kind in [EventKind::Online, EventKind::Offline(reason)] {
            self.events.push_back(PresenceEvent {
                number,
                peer,
                client: None,
                kind,
                replaces: None,
            });
        }
        self.refusal.clear();
        let wire = &self.wires[usize::from(wire).min(self.wires.len() - 1)];
        if wire.websocket {
            // Before any handshake: an HTTP answer.
            crate::protocol::ws::write_refusal(
                &mut self.refusal,
                (503, "Service Unavailable"),
                reason.as_str(),
            );
        } else {
            wire.protocol.encode(&Reply::Bye(reason), &mut self.refusal);
        }
        &self.refusal
    }

    /// The deadline entry of connection `key` fired at `now`.
    pub fn handle_timeout(&mut self, now: Tick, key: u32, s: &mut Session) -> Deadline {
        if !s.is_open() {
            return Deadline::Closed;
        }
        let deadline = self.deadline(key, s);
        if let Some(handshake) = self.handshake_deadline(s) {
            if now >= handshake {
                log::debug!(
                    "conn {} from {}: no WebSocket handshake in time; closing",
                    s.number,
                    s.peer()
                );
                self.closes
                    .push_back((s.conn_ref(key), CloseReason::HelloTimeout));
                return Deadline::Passed;
            }
            if deadline > now {
                return Deadline::At(handshake.min(deadline));
            }
        }
        if deadline > now {
            return Deadline::At(self.ping_due(now, key, s, deadline));
        }
        self.closes
            .push_back((s.conn_ref(key), CloseReason::Timeout));
        Deadline::Passed
    }

    /// Closes connection `key` for `reason`: its `BYE` (where the reason
    /// says one) after everything queued for it, its id released, the
    /// offline event, `on_offline`. Does nothing if it is closed already.
    pub fn handle_close(&mut self, key: u32, s: &mut Session, reason: CloseReason) {
        if !s.is_open() {
            return;
        }
        s.state = State::closing(reason);
        s.input = Partial::default();
        let cref = s.conn_ref(key);
        let start = self.tx.bytes.len();
        let websocket = self.wire_of_session(s).websocket;
        if websocket && s.version == 0 {
            // A WebSocket connection that never finished its handshake
            // was never online (see `ws`): it says nothing, and its online
            // event goes out with its offline.
            self.event(s, EventKind::Online);
            self.stats.count_close(reason);
            self.event(s, EventKind::Offline(reason));
            self.tx.push(cref, start, true);
            return;
        }
        if reason.says_bye() {
            self.encode_for(s, &Reply::Bye(reason));
            if websocket {
                crate::protocol::ws::encode_close(
                    &mut self.tx.bytes,
                    crate::protocol::ws::close_code(reason),
                    reason.as_str(),
                    None,
                );
            }
        }
        self.tx.push(cref, start, true);
        // Offline now; the name stays readable for the events and
        // `on_offline` below.
        if let Some(id) = s.client {
            self.presence.release(id);
        }
        self.stats.count_close(reason);
        if reason == CloseReason::Replaced {
            self.replaced_event(key, s);
        } else {
            self.event(s, EventKind::Offline(reason));
        }
        self.call_handler(s, key, false, |h, ctx, info| {
            h.on_offline(ctx, info, reason)
        });
        if let Some(id) = s.client.take() {
            self.presence.free(id);
        }
    }

    /// The client id connection `s` holds (or held, until it is freed).
    fn client_of(&self, s: &Session) -> Option<&str> {
        s.client.map(|k| self.presence.name(k))
    }

    /// How many bytes of output are queued, for every connection together.
    pub fn queued_len(&self) -> usize {
        self.tx.bytes.len()
    }

    /// The next bytes to write, in the order they were produced.
    pub fn poll_transmit(&mut self) -> Option<Transmit<'_>> {
        self.tx.next()
    }

    /// The next connection to close, and why.
    pub fn poll_close(&mut self) -> Option<(ConnRef, CloseReason)> {
        self.closes.pop_front()
    }

    /// The next presence event.
    pub fn poll_event(&mut self) -> Option<PresenceEvent> {
        self.events.pop_front()
    }

    /// Whether a handler asked the server to stop (once).
    pub fn poll_stop(&mut self) -> bool {
        std::mem::take(&mut self.stop)
    }

    /// With φ on: a new connection under slab key `key` starts with no
    /// arrival moments (the key's last holder's are forgotten).
    fn forget_arrivals(&mut self, key: u32) {
        if self.settings.phi.is_some() {
            let i = key as usize;
            if self.arrivals.len() <= i {
                self.arrivals.resize(i + 1, Arrivals::default());
            }
            self.arrivals[i] = Arrivals::default();
        }
    }

    fn take_number(&mut self) -> u64 {
        let n = self.next_number;
        self.next_number += 1;
        n
    }

    fn event(&mut self, s: &Session, kind: EventKind) {
        self.events.push_back(PresenceEvent {
            number: s.number,
            peer: s.peer(),
            client: self.client_of(s).map(CompactString::from),
            kind,
            replaces: None,
        });
    }

    /// The offline of connection `key`, replaced by a takeover: placed
    /// before the `hello` of the connection that took its id over, so a
    /// consumer never sees two holders of one id.
    fn replaced_event(&mut self, key: u32, s: &Session) {
        let me = Some(s.conn_ref(key));
        let at = self
            .events
            .iter()
            .rposition(|e| e.kind == EventKind::Hello && e.replaces == me);
        let offline = PresenceEvent {
            number: s.number,
            peer: s.peer(),
            client: self.client_of(s).map(CompactString::from),
            kind: EventKind::Offline(CloseReason::Replaced),
            replaces: None,
        };
        match at {
            Some(i) => self.events.insert(i, offline),
            None => self.events.push_back(offline),
        }
    }

    /// Encodes `reply` for connection `s` under `to`.
    fn reply(&mut self, to: ConnRef, s: &Session, reply: &Reply<'_>) {
        let start = self.tx.bytes.len();
        self.encode_for(s, reply);
        self.tx.push(to, start, false);
    }

    /// Appends `reply` as connection `s` speaks it to the output.
    fn encode_for(&mut self, s: &Session, reply: &Reply<'_>) {
        let w = usize::from(s.wire).min(self.wires.len() - 1);
        self.encode_on(w, reply);
    }

    /// Appends `reply` as wire `w` speaks it to the output.
    fn encode_on(&mut self, w: usize, reply: &Reply<'_>) {
        let start = self.tx.bytes.len();
        let wire = &self.wires[w];
        wire.protocol.encode(reply, &mut self.tx.bytes);
        if wire.websocket {
            ws::frame_lines(&mut self.tx.bytes, start, &mut self.ws_scratch);
        }
    }
}

/// Output waiting for the loop: one buffer, and which connection each
/// range of it goes to, in the order produced.
#[derive(Debug, Default)]
struct Transmits {
    bytes: Vec<u8>,
    queue: Vec<Entry>,
    /// The next entry [`Transmits::next`] returns.
    next: usize,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    to: ConnRef,
    start: usize,
    end: usize,
    last: bool,
}

/// Output buffers above this are given back once drained, so one burst
/// (a large broadcast) does not hold memory for the server's lifetime.
const KEEP_TX_CAPACITY: usize = 1 << 20;

/// An input buffer above this, once the frame that grew it is done, is
/// replaced by one the size of what is left.
const RELEASE_INPUT_ABOVE: usize = 4096;

impl Transmits {
    /// Records that `bytes[start..]` goes to `to`: one more range, or the
    /// previous one grown when it is `to`'s and ends at `start` (so all the
    /// replies to one read go out in one write).
    fn push(&mut self, to: ConnRef, start: usize, last: bool) {
        let end = self.bytes.len();
        if end == start && !last {
            return;
        }
        let unsent = self.queue.len() > self.next;
        if let Some(prev) = self.queue.last_mut().filter(|_| unsent) {
            if prev.to == to && !prev.last && prev.end == start {
                prev.end = end;
                prev.last = last;
                return;
            }
        }
        self.queue.push(Entry {
            to,
            start,
            end,
            last,
        });
    }

    fn next(&mut self) -> Option<Transmit<'_>> {
        let Some(&e) = self.queue.get(self.next) else {
            self.bytes.clear();
            self.queue.clear();
            self.next = 0;
            if self.bytes.capacity() > KEEP_TX_CAPACITY {
                self.bytes.shrink_to(KEEP_TX_CAPACITY);
            }
            if self.queue.capacity() > KEEP_TX_CAPACITY / std::mem::size_of::<Entry>() {
                self.queue
                    .shrink_to(KEEP_TX_CAPACITY / std::mem::size_of::<Entry>());
            }
            return None;
        };
        self.next += 1;
        Some(Transmit {
            to: e.to,
            bytes: &self.bytes[e.start..e.end],
            last: e.last,
        })
    }
}

#[cfg(test)]
mod tests;
