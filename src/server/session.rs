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
use std::sync::Arc;

use super::handler::{ConnInfo, Context, Handler, Outbox, Target};
use super::presence::{LocalPresence, PresenceTable};
use super::stats::Stats;
use crate::detector::{Arrivals, PhiConfig};
use crate::events::EventKind;
use crate::protocol::{CloseReason, Command, Frame, Protocol, Reply, Resume};
use crate::time::Tick;
use partial::Partial;

mod partial;

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
}

/// Where a connection is in its life. See the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Open,
    /// Closed for this reason; its last bytes are queued, not yet written.
    Closing(CloseReason),
    /// Its last bytes have been handed to the socket.
    Ended(CloseReason),
    /// Its HELLO names a client id another worker owns: the connection
    /// goes to that worker (see [`Sessions::poll_handoff`]); no offline
    /// event here, the owner carries on with the same number.
    HandedOff,
}

/// One connection's part of the protocol state: about 100 bytes, and no
/// buffer while it holds no partial frame.
#[derive(Debug)]
pub(crate) struct Session {
    /// Unique for the server's lifetime; its low 32 bits are the generation.
    number: u64,
    peer: SocketAddr,
    /// When the last complete frame arrived.
    last_seen: Tick,
    /// The client id, after HELLO.
    client: Option<Arc<str>>,
    /// Bytes of an incomplete frame, and where the codec stopped in them.
    input: Partial,
    /// When the current `max_pings` window started, and the heartbeats in
    /// it (two fields rather than a struct, so they share its padding).
    ping_window_start: Tick,
    pings_in_window: u32,
    state: State,
    /// The protocol version the peer negotiated ([`Command::Handshake`]);
    /// 0 until it does. One byte in what was padding.
    version: u8,
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
        self.peer
    }

    /// When the last complete frame arrived.
    #[cfg(test)]
    pub fn last_seen(&self) -> Tick {
        self.last_seen
    }

    /// Whether the connection is still served (not closed).
    pub fn is_open(&self) -> bool {
        self.state == State::Open
    }

    /// Whether its last bytes have gone to the socket: nothing more may be
    /// written to it.
    pub fn is_ended(&self) -> bool {
        matches!(self.state, State::Ended(_))
    }

    /// Why it was closed, once it has been.
    #[cfg(test)]
    pub fn close_reason(&self) -> Option<CloseReason> {
        match self.state {
            State::Open => None,
            State::Closing(r) | State::Ended(r) => Some(r),
            State::HandedOff => None,
        }
    }

    /// The driver has handed the connection's last bytes to its socket.
    pub fn handle_ended(&mut self) {
        if let State::Closing(r) = self.state {
            self.state = State::Ended(r);
        }
    }

    /// Records a heartbeat at `now` and returns how many the peer has sent
    /// in the current window of `interval` ms, this one included. A window
    /// starts at the first heartbeat after the previous one ended.
    fn record_ping(&mut self, now: Tick, interval: Tick) -> u32 {
        if self.pings_in_window == 0 || now.saturating_sub(self.ping_window_start) >= interval {
            self.ping_window_start = now;
            self.pings_in_window = 0;
        }
        self.pings_in_window = self.pings_in_window.saturating_add(1);
        self.pings_in_window
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
    pub client: Option<Arc<str>>,
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
    protocol: P,
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
    pub fn new(protocol: P, handler: H, presence: D, settings: Settings) -> Self {
        Sessions {
            protocol,
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
            stop: false,
            arrivals: Vec::new(),
            phi_z: settings.phi.map_or(0.0, |c| c.z()),
            handoffs: VecDeque::new(),
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The wire protocol's name.
    pub fn protocol_name(&self) -> &'static str {
        self.protocol.name()
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
    pub fn handle_accept(&mut self, now: Tick, key: u32, peer: SocketAddr) -> Session {
        let number = self.take_number();
        let session = Session {
            number,
            peer,
            last_seen: now,
            client: None,
            input: Partial::default(),
            ping_window_start: 0,
            pings_in_window: 0,
            state: State::Open,
            version: 0,
        };
        self.stats.accepted += 1;
        self.forget_arrivals(key);
        self.event(&session, EventKind::Online);
        self.call_handler(&session, key, true, |h, ctx, info| h.on_online(ctx, info));
        session
    }

    /// A connection that will not be served: counted, given its online and
    /// offline (`overloaded`) events, and the bytes to tell it so.
    pub fn handle_refused(&mut self, peer: SocketAddr) -> &[u8] {
        let number = self.take_number();
        self.stats.accepted += 1;
        self.stats.count_close(CloseReason::Overloaded);
        for kind in [
            EventKind::Online,
            EventKind::Offline(CloseReason::Overloaded),
        ] {
            self.events.push_back(PresenceEvent {
                number,
                peer,
                client: None,
                kind,
                replaces: None,
            });
        }
        self.refusal.clear();
        self.protocol
            .encode(&Reply::Bye(CloseReason::Overloaded), &mut self.refusal);
        &self.refusal
    }

    /// Bytes read at `now` from connection `key`. Complete frames are
    /// answered (see [`Sessions::poll_transmit`]); an incomplete one is kept
    /// for next time. False when the connection is to be closed (see
    /// [`Sessions::poll_close`]) or was already: stop reading it.
    pub fn handle_bytes(&mut self, now: Tick, key: u32, s: &mut Session, data: &[u8]) -> bool {
        if !s.is_open() {
            return false;
        }
        let heard_before = s.last_seen;
        // The codec resumes the incomplete frame where it stopped, so a
        // frame trickled one byte per read costs O(n), not O(n²).
        let (mut pending, mut resume) = s.input.take();
        let from_pending = !pending.is_empty();
        if from_pending {
            pending.extend_from_slice(data);
        }
        let buf = if from_pending { &pending[..] } else { data };
        let mut used = 0;
        let mut failed = None;
        while used < buf.len() {
            match self.protocol.decode_resume(&buf[used..], &mut resume) {
                Ok(Some((frame, n))) => {
                    if let Frame::Hello { client_id, .. } = frame {
                        if s.client.as_deref() != Some(client_id) && !self.presence.owns(client_id)
                        {
                            self.hand_off(key, s, client_id, buf[used..].to_vec());
                            return false;
                        }
                    }
                    used += n;
                    resume = Resume::default();
                    s.last_seen = s.last_seen.max(now);
                    if let Err(reason) = self.on_frame(now, key, s, frame) {
                        failed = Some(reason);
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    log::warn!(
                        "conn {} from {}: {e}; closing with BYE {}",
                        s.number,
                        s.peer,
                        e.close_reason()
                    );
                    failed = Some(e.close_reason());
                    break;
                }
            }
        }
        if s.last_seen > heard_before {
            if let Some(a) = self.arrivals.get_mut(key as usize) {
                a.record(s.last_seen - heard_before);
            }
        }
        match failed {
            Some(reason) => {
                self.closes.push_back((s.conn_ref(key), reason));
                false
            }
            None => {
                if from_pending {
                    pending.drain(..used);
                    s.input.put(pending, resume);
                } else if used < data.len() {
                    s.input.put(data[used..].to_vec(), resume);
                }
                true
            }
        }
    }

    /// The deadline entry of connection `key` fired at `now`.
    pub fn handle_timeout(&mut self, now: Tick, key: u32, s: &mut Session) -> Deadline {
        if !s.is_open() {
            return Deadline::Closed;
        }
        let deadline = self.deadline(key, s);
        if deadline > now {
            return Deadline::At(deadline);
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
        s.state = State::Closing(reason);
        s.input = Partial::default();
        let cref = s.conn_ref(key);
        let start = self.tx.bytes.len();
        if reason.says_bye() {
            self.protocol
                .encode(&Reply::Bye(reason), &mut self.tx.bytes);
        }
        self.tx.push(cref, start, true);
        if let Some(id) = &s.client {
            self.presence.release(id, cref);
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
    }

    /// A connection handed over by the worker that accepted it (its HELLO
    /// names an id this worker owns): its session under slab key `key`,
    /// with the number and peer it had there, and no second online event.
    /// The bytes from its HELLO on follow through [`Sessions::handle_bytes`].
    pub fn handle_adopt(&mut self, now: Tick, key: u32, number: u64, peer: SocketAddr) -> Session {
        self.forget_arrivals(key);
        Session {
            number,
            peer,
            last_seen: now,
            client: None,
            input: Partial::default(),
            ping_window_start: 0,
            pings_in_window: 0,
            version: 0,
            state: State::Open,
        }
    }

    /// The hand-off of `s` (from [`Sessions::poll_handoff`]) failed, or
    /// the server stops before it could be made: it is closed here instead
    /// for `reason` (`overloaded`, `shutdown`), with its offline event, so
    /// it still has exactly one.
    pub fn handle_handoff_failed(&mut self, key: u32, s: &mut Session, reason: CloseReason) {
        if s.state == State::HandedOff {
            s.state = State::Open;
            self.handle_close(key, s, reason);
        }
    }

    /// The next connection to hand to the worker that owns its client id,
    /// with the bytes to replay there (its HELLO and what followed). The
    /// loop writes what is queued for it first, then sends it on.
    pub fn poll_handoff(&mut self) -> Option<Handoff> {
        self.handoffs.pop_front()
    }

    /// Sets the number the next connection gets (workers start theirs
    /// apart, so numbers are unique across workers).
    pub fn set_next_number(&mut self, number: u64) {
        self.next_number = number;
    }

    /// `s` leaves this worker: its id (if any) is released without an
    /// offline event; the new owner emits the `hello` and, later, the
    /// offline event.
    fn hand_off(&mut self, key: u32, s: &mut Session, id: &str, rest: Vec<u8>) {
        let cref = s.conn_ref(key);
        if let Some(old) = s.client.take() {
            self.presence.release(&old, cref);
        }
        s.state = State::HandedOff;
        s.input = Partial::default();
        self.handoffs.push_back(Handoff {
            conn: cref,
            client: id.into(),
            input: rest,
        });
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
            peer: s.peer,
            client: s.client.clone(),
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
            peer: s.peer,
            client: s.client.clone(),
            kind: EventKind::Offline(CloseReason::Replaced),
            replaces: None,
        };
        match at {
            Some(i) => self.events.insert(i, offline),
            None => self.events.push_back(offline),
        }
    }

    /// Encodes `reply` for connection `to`.
    fn reply(&mut self, to: ConnRef, reply: &Reply<'_>) {
        let start = self.tx.bytes.len();
        self.protocol.encode(reply, &mut self.tx.bytes);
        self.tx.push(to, start, false);
    }

    fn on_frame(
        &mut self,
        now: Tick,
        key: u32,
        s: &mut Session,
        frame: Frame<'_>,
    ) -> Result<(), CloseReason> {
        self.stats.frames += 1;
        let cref = s.conn_ref(key);
        match frame {
            Frame::Ping { token } => {
                self.stats.heartbeats += 1;
                let count = s.record_ping(now, self.settings.interval_ms);
                if let Some(max) = self.settings.max_pings.filter(|&max| count > max) {
                    log::warn!(
                        "conn {} from {}: more than {max} heartbeats per interval; closing",
                        s.number,
                        s.peer
                    );
                    return Err(CloseReason::TooManyPings);
                }
                if self
                    .protocol
                    .max_pongs_per_interval()
                    .is_none_or(|max| count <= max)
                {
                    self.reply(cref, &Reply::Pong { token });
                }
            }
            Frame::Hello {
                client_id,
                token: _,
            } => {
                let welcome = Reply::Welcome {
                    client_id,
                    interval_ms: self.settings.interval_ms,
                    timeout_ms: self.settings.timeout_ms,
                };
                self.reply(cref, &welcome);
                self.take_id(now, key, s, client_id);
            }
            Frame::Message(message) => {
                self.call_handler(s, key, true, |h, ctx, info| {
                    h.on_message(ctx, info, message)
                });
            }
            Frame::Quit => {
                self.reply(cref, &Reply::Quit);
                return Err(CloseReason::Closed);
            }
            Frame::Unknown { command } => self.reply(cref, &Reply::Unknown { command }),
            Frame::Command(command) => self.on_command(now, key, s, command),
        }
        Ok(())
    }

    /// Gives connection `key` the client id `client_id`: releases its old
    /// one, claims this one (the previous holder is closed, `replaced`),
    /// the `hello` event and `on_hello`. The same id again changes nothing.
    fn take_id(&mut self, now: Tick, key: u32, s: &mut Session, client_id: &str) {
        if s.client.as_deref() == Some(client_id) {
            return;
        }
        let cref = s.conn_ref(key);
        if let Some(old) = &s.client {
            // The old id goes offline before anything is said about the
            // new one.
            self.presence.release(old, cref);
            self.event(s, EventKind::Renamed);
            s.client = None;
        }
        let (id, previous) = self.presence.claim(client_id, cref, now);
        if let Some(previous) = previous {
            self.closes.push_back((previous, CloseReason::Replaced));
        }
        s.client = Some(id);
        self.event(s, EventKind::Hello);
        if let Some(hello) = self.events.back_mut() {
            hello.replaces = previous;
        }
        self.call_handler(s, key, true, |h, ctx, info| h.on_hello(ctx, info));
    }

    /// A request about the connection: applies the version it negotiates,
    /// answers it from the connection's state, then takes the client id a
    /// handshake names (after the answer, as for HELLO's WELCOME).
    fn on_command(&mut self, now: Tick, key: u32, s: &mut Session, command: Command<'_>) {
        match command {
            Command::Handshake {
                version: Some(v), ..
            } => s.version = v,
            Command::Reset => s.version = 0,
            _ => {}
        }
        let reply = Reply::Command {
            command,
            number: s.number,
            client_id: s.client.as_deref(),
            version: s.version,
        };
        self.reply(s.conn_ref(key), &reply);
        if let Command::Handshake {
            client_id: Some(id),
            ..
        } = command
        {
            self.take_id(now, key, s, id);
        }
    }

    /// Calls a handler hook for connection `key`, then queues what it asked
    /// for: its replies first, then messages to others, closes and a stop.
    fn call_handler(
        &mut self,
        s: &Session,
        key: u32,
        can_reply: bool,
        hook: impl FnOnce(&mut H, &mut Context<'_>, &ConnInfo<'_>),
    ) {
        let cref = s.conn_ref(key);
        let info = ConnInfo {
            id: super::ConnId(cref),
            number: s.number,
            peer: s.peer,
            client: s.client.as_deref(),
        };
        let start = self.tx.bytes.len();
        let mut ctx = Context {
            current: Some(cref),
            can_reply,
            out: &mut self.tx.bytes,
            outbox: &mut self.outbox,
            presence: &self.presence,
            protocol: &self.protocol,
        };
        hook(&mut self.handler, &mut ctx, &info);
        self.tx.push(cref, start, false);
        if !self.outbox.is_empty() {
            self.apply_outbox();
        }
    }

    /// Queues a hook's messages to other connections (encoded once, shared
    /// by every target), its closes and its stop.
    fn apply_outbox(&mut self) {
        let mut outbox = std::mem::take(&mut self.outbox);
        let base = self.tx.bytes.len();
        self.tx.bytes.extend_from_slice(&outbox.bytes);
        for &(target, start, end) in &outbox.sends {
            self.targets.clear();
            match target {
                Target::Conn(c) => self.targets.push(c),
                Target::Clients { except } => self.targets.extend(
                    self.presence
                        .iter()
                        .map(|(_, c)| c)
                        .filter(|c| Some(*c) != except),
                ),
            }
            for &to in &self.targets {
                self.tx.queue.push(Entry {
                    to,
                    start: base + start,
                    end: base + end,
                    last: false,
                });
            }
        }
        self.closes.extend(outbox.closes.drain(..));
        self.stop |= outbox.stop;
        outbox.bytes.clear();
        outbox.sends.clear();
        outbox.stop = false;
        self.outbox = outbox;
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
