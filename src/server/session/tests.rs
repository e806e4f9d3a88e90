//! Server session tests: a fake clock, the real timing wheel, no sockets.
//!
//! [`Sim`] does what the event loop does, minus the kernel: it holds the
//! sessions in a list (the slab), arms one wheel entry per connection, fires
//! it tick by tick and re-arms or closes as the session says, applies the
//! closes the sessions ask for and drains their outputs. Everything that
//! comes out is one line of the trace:
//!
//! - `"<ms> c<key> < PONG 1 | PONG 2"`: one transmit to connection `key`,
//!   its lines joined by ` | ` (one transmit is one write);
//!   `[end]` marks a connection's last bytes;
//! - `"<ms> online #1"`, `"<ms> hello #1 dev"`, `"<ms> offline #1 dev timeout"`:
//!   presence events (`#` is the connection's number, `-` no client id);
//! - `"<ms> app ..."`: handler hooks, for the tests that ask for them.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;

use proptest::prelude::*;

use super::*;
use crate::protocol::{LineProtocol, RespProtocol};
use crate::server::handler::{ConnInfo, Context, Handler};
use crate::wheel::{TimerKey, Wheel};

/// The wheel's tick in these tests.
const TICK: Tick = 100;

fn settings() -> Settings {
    Settings {
        interval_ms: 1000,
        timeout_ms: 3000,
        max_pings: None,
        phi: None,
        hello_timeout_ms: None,
        max_frames: None,
        max_output: usize::MAX,
    }
}

/// The application: records its hooks when asked to, and acts on a few
/// messages: `echo X` replies X, `all X` broadcasts X to the other clients,
/// `kick ID` closes client ID's connection, `stop` stops the server,
/// `panic` panics. With a verifier, a HELLO needs a token (as
/// [`Authenticated`](crate::server::Authenticated) does it).
struct App {
    log: Option<Rc<RefCell<Vec<String>>>>,
    verifier: Option<crate::auth::Verifier>,
}

/// The secret of the tests that authenticate.
const SECRET: &[u8] = b"the session tests' secret";

impl App {
    fn note(&self, line: String) {
        if let Some(log) = &self.log {
            log.borrow_mut().push(line);
        }
    }
}

impl Handler for App {
    fn on_message(&mut self, ctx: &mut Context<'_>, conn: &ConnInfo<'_>, message: &[u8]) {
        let text = String::from_utf8_lossy(message).into_owned();
        self.note(format!("app message #{} {text}", conn.number));
        let (verb, arg) = text.split_once(' ').unwrap_or((&text, ""));
        match verb {
            "echo" => ctx.reply(arg.as_bytes()),
            "all" => ctx.broadcast(arg.as_bytes(), Some(conn.id)),
            "kick" => {
                if let Some(c) = ctx.client(arg) {
                    ctx.close(c, CloseReason::Replaced);
                }
            }
            "stop" => ctx.stop_server(),
            "panic" => panic!("a handler bug"),
            _ => {}
        }
    }

    fn on_hello_request(
        &mut self,
        ctx: &mut Context<'_>,
        conn: &ConnInfo<'_>,
        client_id: &str,
        token: Option<&[u8]>,
    ) -> Verdict {
        let _ = conn;
        if client_id == "panic" {
            panic!("a handler bug");
        }
        let Some(v) = &self.verifier else {
            return Verdict::Accept;
        };
        match token.map(|t| v.check(client_id, t, ctx.unix_time())) {
            Some(Ok(())) => Verdict::Accept,
            _ => Verdict::Refuse(CloseReason::Unauthorized),
        }
    }

    fn on_online(&mut self, _: &mut Context<'_>, conn: &ConnInfo<'_>) {
        self.note(format!("app online #{}", conn.number));
    }

    fn on_hello(&mut self, ctx: &mut Context<'_>, conn: &ConnInfo<'_>) {
        self.note(format!(
            "app hello #{} {} ({} online)",
            conn.number,
            conn.client.unwrap_or("-"),
            ctx.online_count()
        ));
    }

    fn on_offline(&mut self, ctx: &mut Context<'_>, conn: &ConnInfo<'_>, reason: CloseReason) {
        self.note(format!("app offline #{} {reason}", conn.number));
        // Replies are impossible once offline: this must produce nothing.
        ctx.reply(b"too late");
    }
}

struct Slot {
    session: Session,
    timer: Option<TimerKey>,
}

/// The event loop without the kernel. See the module docs.
struct Sim<P: Protocol = LineProtocol> {
    s: Sessions<P, App>,
    /// The slab: keys are never reused here, so `c<key>` names one
    /// connection for the whole test.
    conns: Vec<Option<Slot>>,
    wheel: Wheel<ConnRef>,
    now: Tick,
    trace: Vec<String>,
    hooks: Rc<RefCell<Vec<String>>>,
    /// How many times a wheel entry fired (re-arms and closes).
    fired: usize,
    stopped: bool,
    /// As worker `.0` of `.1`: the connections handed to other workers.
    worker: Option<(u32, u32)>,
    handed: Vec<Handoff>,
    /// Every byte each connection was sent, by key.
    sent: Vec<Vec<u8>>,
}

impl Sim<LineProtocol> {
    fn new(settings: Settings) -> Self {
        Sim::with(LineProtocol::default(), settings, false)
    }

    /// Worker `index` of `count`: it owns a shard of the client ids, and
    /// numbers its connections from `index * 1000 + 1`.
    fn worker(index: u32, count: u32) -> Self {
        let mut sim = Sim::new(settings());
        sim.s = Sessions::new(
            LineProtocol::default(),
            App {
                log: None,
                verifier: None,
            },
            LocalPresence::default().with_shard(index, count),
            settings(),
        );
        sim.s.set_next_number(u64::from(index) * 1000 + 1);
        sim.worker = Some((index, count));
        sim
    }
}

impl<P: Protocol> Sim<P> {
    fn with(protocol: P, settings: Settings, trace_hooks: bool) -> Self {
        let hooks = Rc::new(RefCell::new(Vec::new()));
        let app = App {
            log: trace_hooks.then(|| Rc::clone(&hooks)),
            verifier: None,
        };
        Sim {
            s: Sessions::new(protocol, app, LocalPresence::default(), settings),
            conns: Vec::new(),
            wheel: Wheel::new(TICK, 64),
            now: 0,
            trace: Vec::new(),
            hooks,
            fired: 0,
            stopped: false,
            worker: None,
            handed: Vec::new(),
            sent: Vec::new(),
        }
    }

    /// Takes in at `t` the connection another worker handed off, as
    /// connection number `number`; returns its key here.
    fn adopt(&mut self, t: Tick, number: u64, h: &Handoff) -> u32 {
        self.at(t);
        let key = self.conns.len() as u32;
        let peer = SocketAddr::from(([127, 0, 0, 1], 6000 + key as u16));
        let mut session = self.s.handle_adopt(t, key, number, peer);
        let timer = self
            .wheel
            .insert(self.s.deadline(key, &session), session.conn_ref(key));
        self.s.handle_bytes(t, key, &mut session, &h.input);
        self.conns.push(Some(Slot {
            session,
            timer: Some(timer),
        }));
        self.settle();
        key
    }

    /// HELLOs need a token under [`SECRET`] from now on; the wall clock
    /// reads `unix` seconds.
    fn authenticate(&mut self, unix: u64) {
        self.s.handler.verifier = crate::auth::Verifier::new(SECRET).ok();
        self.s.handle_unix_time(unix);
    }

    /// A connection accepted at `t`; returns its key.
    fn connect(&mut self, t: Tick) -> u32 {
        self.connect_on(t, 0)
    }

    /// A connection accepted at `t` on a listener of wire `wire`.
    fn connect_on(&mut self, t: Tick, wire: u8) -> u32 {
        self.at(t);
        let key = self.conns.len() as u32;
        let peer = SocketAddr::from(([127, 0, 0, 1], 5000 + key as u16));
        let session = self.s.handle_accept(t, key, peer, wire);
        let timer = self
            .wheel
            .insert(self.s.next_timer(key, &session), session.conn_ref(key));
        self.conns.push(Some(Slot {
            session,
            timer: Some(timer),
        }));
        self.settle();
        key
    }

    /// Bytes from connection `key` at `t`.
    fn send(&mut self, t: Tick, key: u32, bytes: &[u8]) {
        self.batch(t, &[(key, bytes)]);
    }

    /// Bytes from several connections in one turn of the loop at `t`:
    /// outputs are drained once, after all of them.
    fn batch(&mut self, t: Tick, inputs: &[(u32, &[u8])]) {
        self.at(t);
        for &(key, bytes) in inputs {
            if let Some(slot) = self.conns[key as usize].as_mut() {
                self.s.handle_bytes(t, key, &mut slot.session, bytes);
                // As the loop does: a timer that moved earlier (the φ
                // detector, a WebSocket's first ping) moves the wheel entry.
                if self.s.timers_can_move_earlier() {
                    let d = self.s.next_timer(key, &slot.session);
                    if let Some(timer) = slot.timer {
                        if self.wheel.deadline(timer).is_some_and(|armed| d < armed) {
                            self.wheel.reset(timer, d);
                        }
                    }
                }
            }
            self.apply_closes();
        }
        self.settle();
    }

    /// Connection `key` ends at `t` for `reason` (end of stream, reset, ...).
    fn end(&mut self, t: Tick, key: u32, reason: CloseReason) {
        self.at(t);
        self.close(key, reason);
        self.settle();
    }

    /// Moves the clock to `t`, advancing the wheel at every tick on the way,
    /// as a loop that wakes at each tick does.
    #[track_caller]
    fn at(&mut self, t: Tick) {
        assert!(t >= self.now, "time goes forward");
        let mut boundary = (self.now / TICK + 1) * TICK;
        while boundary <= t {
            self.now = boundary;
            self.expire();
            boundary += TICK;
        }
        self.now = t;
    }

    fn expire(&mut self) {
        self.wheel.advance(self.now);
        while let Some((_, c)) = self.wheel.poll_expired() {
            self.fired += 1;
            let Some(slot) = self.conns[c.key as usize].as_mut() else {
                continue;
            };
            slot.timer = None;
            match self.s.handle_timeout(self.now, c.key, &mut slot.session) {
                Deadline::At(d) => {
                    assert!(d > self.now, "re-armed at {d}, not after {}", self.now);
                    slot.timer = Some(self.wheel.insert(d, c));
                }
                Deadline::Passed => self.apply_closes(),
                Deadline::Closed => {}
            }
        }
        while let Some(c) = self.s.poll_hello_due(self.now) {
            if let Some(slot) = self.conns[c.key as usize].as_ref() {
                if slot.session.generation() == c.generation
                    && self.s.handle_hello_deadline(c.key, &slot.session)
                {
                    self.apply_closes();
                }
            }
        }
        self.settle();
    }

    fn close(&mut self, key: u32, reason: CloseReason) {
        if let Some(slot) = self.conns[key as usize].as_mut() {
            self.s.handle_close(key, &mut slot.session, reason);
            if let Some(timer) = slot.timer.take() {
                self.wheel.cancel(timer);
            }
        }
    }

    fn apply_closes(&mut self) {
        while let Some((c, reason)) = self.s.poll_close() {
            let current = self.conns[c.key as usize]
                .as_ref()
                .is_some_and(|s| s.session.generation() == c.generation);
            if current {
                self.close(c.key, reason);
            }
        }
    }

    /// Drains every output into the trace and removes ended connections.
    fn settle(&mut self) {
        let t = self.now;
        self.apply_closes();
        self.trace.append(&mut self.hooks.borrow_mut());
        for line in self.trace.iter_mut().filter(|l| l.starts_with("app ")) {
            *line = format!("{t} {line}");
        }
        let websocket: Vec<bool> = self.s.wires.iter().map(|w| w.websocket).collect();
        while let Some(tx) = self.s.poll_transmit() {
            let Some(slot) = self.conns[tx.to.key as usize].as_mut() else {
                panic!("transmit to c{} after it was removed", tx.to.key);
            };
            assert!(
                !slot.session.is_ended(),
                "bytes after the last to c{}",
                tx.to.key
            );
            let text = if websocket[usize::from(slot.session.wire)] {
                ws::render(tx.bytes)
            } else {
                String::from_utf8_lossy(tx.bytes).into_owned()
            };
            let key = tx.to.key as usize;
            if self.sent.len() <= key {
                self.sent.resize(key + 1, Vec::new());
            }
            self.sent[key].extend_from_slice(tx.bytes);
            let mut line = format!("{t} c{} <", tx.to.key);
            let lines: Vec<&str> = text.split_terminator('\n').collect();
            if !lines.is_empty() {
                line.push(' ');
                line.push_str(&lines.join(" | ").replace('\r', ""));
            }
            if tx.last {
                line.push_str(" [end]");
                slot.session.handle_ended();
            }
            self.trace.push(line);
        }
        while let Some(e) = self.s.poll_event() {
            let client = e.client.as_deref().unwrap_or("-");
            self.trace.push(match e.kind {
                EventKind::Online => format!("{t} online #{}", e.number),
                EventKind::Hello => format!("{t} hello #{} {client}", e.number),
                EventKind::Renamed => format!("{t} offline #{} {client} renamed", e.number),
                EventKind::Offline(r) => format!("{t} offline #{} {client} {r}", e.number),
            });
        }
        while let Some(h) = self.s.poll_handoff() {
            let (_, count) = self.worker.unwrap_or((0, 1));
            let text = String::from_utf8_lossy(&h.input).replace('\n', " | ");
            self.trace.push(format!(
                "{t} c{} => worker {}: {}",
                h.conn.key,
                crate::server::workers::owner_of(&h.client, count),
                text.trim_end_matches(" | ")
            ));
            if let Some(slot) = self.conns[h.conn.key as usize].take() {
                if let Some(timer) = slot.timer {
                    self.wheel.cancel(timer);
                }
            }
            self.handed.push(h);
        }
        for slot in &mut self.conns {
            if slot.as_ref().is_some_and(|s| s.session.is_ended()) {
                *slot = None;
            }
        }
        self.stopped |= self.s.poll_stop();
    }

    fn take(&mut self) -> Vec<String> {
        std::mem::take(&mut self.trace)
    }

    fn is_open(&self, key: u32) -> bool {
        self.conns[key as usize].is_some()
    }
}

mod ws;

#[track_caller]
fn check<P: Protocol>(sim: &mut Sim<P>, expected: &[&str]) {
    assert_eq!(sim.take(), expected);
}

#[test]
fn hello_is_welcomed_and_every_ping_answered_in_one_write() {
    let mut sim = Sim::new(settings());
    let c = sim.connect(0);
    sim.send(10, c, b"HELLO dev\nPING 1\nPING\n");
    check(
        &mut sim,
        &[
            "0 online #1",
            "10 c0 < WELCOME dev interval=1000 timeout=3000 | PONG 1 | PONG",
            "10 hello #1 dev",
        ],
    );
    assert_eq!(sim.s.stats().heartbeats, 2);
    assert_eq!(sim.s.stats().frames, 3);
    assert_eq!(sim.s.online_count(), 1);
}

#[test]
fn silence_times_out_at_the_deadline_never_before() {
    let mut sim = Sim::new(settings());
    let c = sim.connect(0);
    sim.at(2999);
    check(&mut sim, &["0 online #1"]);
    sim.at(3000);
    check(
        &mut sim,
        &["3000 c0 < BYE timeout [end]", "3000 offline #1 - timeout"],
    );
    assert!(!sim.is_open(c));
}

/// Closed at the first tick at or after `accepted + timeout`: never
/// earlier, less than one tick later.
#[test]
fn a_deadline_between_ticks_fires_at_the_next_tick() {
    for (accepted, closed) in [(1, 3100), (50, 3100), (99, 3100), (100, 3100), (101, 3200)] {
        let mut sim = Sim::new(settings());
        sim.connect(accepted);
        sim.at(closed - 1);
        let early: Vec<String> = sim
            .take()
            .into_iter()
            .filter(|l| l.contains("BYE"))
            .collect();
        assert_eq!(early, Vec::<String>::new(), "accepted at {accepted}");
        sim.at(closed);
        assert_eq!(
            sim.take(),
            [
                format!("{closed} c0 < BYE timeout [end]"),
                format!("{closed} offline #1 - timeout")
            ],
            "accepted at {accepted}"
        );
    }
}

#[test]
fn beats_keep_it_alive_and_touch_the_wheel_once_per_timeout() {
    let mut sim = Sim::new(settings());
    let c = sim.connect(0);
    for k in 1..=30 {
        sim.send(k * 1000, c, b"PING\n");
    }
    assert!(sim.is_open(c));
    // 30 heartbeats over 30 s, and the wheel entry fired 14 times: the
    // heartbeats only move `last_seen`; the entry fires at its deadline
    // (3000 first) and moves to `last_seen + timeout`. A tick at the same
    // ms as a heartbeat runs first, so `last_seen` is then the previous
    // beat's and the entry moves 2 s ahead: 3000, 5000, ..., 29000.
    assert_eq!(sim.fired, 14);
    sim.take();
    sim.at(32_999);
    check(&mut sim, &[]);
    sim.at(33_000);
    check(
        &mut sim,
        &["33000 c0 < BYE timeout [end]", "33000 offline #1 - timeout"],
    );
}

#[test]
fn a_partial_frame_is_not_life_its_completion_is() {
    let mut sim = Sim::new(settings());
    let trickle = sim.connect(0);
    let split = sim.connect(0);
    sim.batch(1000, &[(trickle, b"PI"), (split, b"PI")]);
    sim.send(2500, split, b"NG 7\n");
    sim.at(3000);
    check(
        &mut sim,
        &[
            "0 online #1",
            "0 online #2",
            "2500 c1 < PONG 7",
            "3000 c0 < BYE timeout [end]",
            "3000 offline #1 - timeout",
        ],
    );
    // The split PING completed at 2500: the deadline is 5500.
    sim.at(5499);
    check(&mut sim, &[]);
    sim.at(5500);
    check(
        &mut sim,
        &["5500 c1 < BYE timeout [end]", "5500 offline #2 - timeout"],
    );
}

#[test]
fn frames_split_anywhere_decode_the_same() {
    let stream = b"HELLO dev\nPING 1\nhi there\nPING 2\n";
    for cut in 0..=stream.len() {
        let mut sim = Sim::new(settings());
        let c = sim.connect(0);
        sim.take();
        sim.send(10, c, &stream[..cut]);
        sim.send(20, c, &stream[cut..]);
        let lines: Vec<String> = sim
            .take()
            .into_iter()
            .filter(|l| l.contains(" < "))
            .flat_map(|l| {
                let (_, replies) = l.split_once(" < ").unwrap();
                replies.split(" | ").map(str::to_owned).collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(
            lines,
            ["WELCOME dev interval=1000 timeout=3000", "PONG 1", "PONG 2"],
            "cut at {cut}"
        );
    }
}

#[test]
fn a_hello_with_a_taken_id_takes_it_over() {
    let mut sim = Sim::new(settings());
    let old = sim.connect(0);
    sim.send(5, old, b"HELLO dev\n");
    let new = sim.connect(10);
    sim.send(15, new, b"HELLO dev\n");
    check(
        &mut sim,
        &[
            "0 online #1",
            "5 c0 < WELCOME dev interval=1000 timeout=3000",
            "5 hello #1 dev",
            "10 online #2",
            "15 c1 < WELCOME dev interval=1000 timeout=3000",
            "15 c0 < BYE replaced [end]",
            // The old holder's offline first: the id is never held twice.
            "15 offline #1 dev replaced",
            "15 hello #2 dev",
        ],
    );
    // The replaced connection's id went to its successor, who keeps it.
    assert_eq!(sim.s.online_count(), 1);
    assert!(sim.is_open(new) && !sim.is_open(old));
    sim.end(20, new, CloseReason::Closed);
    assert_eq!(sim.s.online_count(), 0);
}

#[test]
fn a_reply_already_produced_goes_out_before_the_bye_of_a_takeover() {
    // The old connection's PING and the new one's HELLO are read in the
    // same turn: the PONG is not lost behind the BYE.
    let mut sim = Sim::new(settings());
    let old = sim.connect(0);
    let new = sim.connect(0);
    sim.send(5, old, b"HELLO dev\n");
    sim.take();
    sim.batch(10, &[(old, b"PING 1\n"), (new, b"HELLO dev\n")]);
    check(
        &mut sim,
        &[
            "10 c0 < PONG 1",
            "10 c1 < WELCOME dev interval=1000 timeout=3000",
            "10 c0 < BYE replaced [end]",
            "10 offline #1 dev replaced",
            "10 hello #2 dev",
        ],
    );
}

#[test]
fn the_same_id_again_changes_nothing_a_new_one_releases_the_old() {
    // Nothing changes, not even a second WELCOME: a peer cannot turn a
    // few bytes into many on demand.
    let mut sim = Sim::new(settings());
    let c = sim.connect(0);
    sim.send(1, c, b"HELLO a\nHELLO a\n");
    sim.send(2, c, &b"HELLO a\n".repeat(100));
    check(
        &mut sim,
        &[
            "0 online #1",
            "1 c0 < WELCOME a interval=1000 timeout=3000",
            "1 hello #1 a",
        ],
    );
    let last_seen = sim.conns[c as usize]
        .as_ref()
        .map(|s| s.session.last_seen());
    assert_eq!(
        last_seen,
        Some(2),
        "a repeated HELLO is still a sign of life"
    );
    sim.send(2, c, b"HELLO b\n");
    // Another connection can now take `a` without replacing anyone.
    let d = sim.connect(3);
    sim.send(4, d, b"HELLO a\n");
    check(
        &mut sim,
        &[
            "2 c0 < WELCOME b interval=1000 timeout=3000",
            "2 offline #1 a renamed",
            "2 hello #1 b",
            "3 online #2",
            "4 c1 < WELCOME a interval=1000 timeout=3000",
            "4 hello #2 a",
        ],
    );
    assert_eq!(sim.s.online_count(), 2);
}

#[test]
fn a_rename_onto_a_taken_id_says_both_offlines_before_the_hello() {
    let mut sim = Sim::new(settings());
    let holder = sim.connect(0);
    let mover = sim.connect(0);
    sim.batch(1, &[(holder, b"HELLO b\n"), (mover, b"HELLO a\n")]);
    sim.take();
    sim.send(2, mover, b"HELLO b\n");
    check(
        &mut sim,
        &[
            "2 c1 < WELCOME b interval=1000 timeout=3000",
            "2 c0 < BYE replaced [end]",
            "2 offline #2 a renamed",
            "2 offline #1 b replaced",
            "2 hello #2 b",
        ],
    );
    assert_eq!(sim.s.online_count(), 1);
    // The renamed connection is still served, and ends once.
    sim.end(3, mover, CloseReason::Closed);
    check(&mut sim, &["3 c1 < [end]", "3 offline #2 b closed"]);
}

#[test]
fn a_takeover_in_one_read_with_other_events_keeps_each_in_place() {
    // Two takeovers and a newcomer in one turn: each replaced holder's
    // offline sits right before its own successor's hello.
    let mut sim = Sim::new(settings());
    let a1 = sim.connect(0);
    let b1 = sim.connect(0);
    sim.batch(1, &[(a1, b"HELLO a\n"), (b1, b"HELLO b\n")]);
    let a2 = sim.connect(2);
    let b2 = sim.connect(2);
    let c = sim.connect(2);
    sim.take();
    sim.batch(
        3,
        &[(a2, b"HELLO a\n"), (c, b"HELLO c\n"), (b2, b"HELLO b\n")],
    );
    let events: Vec<String> = sim
        .take()
        .into_iter()
        .filter(|l| !l.contains(" < "))
        .collect();
    assert_eq!(
        events,
        [
            "3 offline #1 a replaced",
            "3 hello #3 a",
            "3 hello #5 c",
            "3 offline #2 b replaced",
            "3 hello #4 b",
        ]
    );
}

#[test]
fn more_heartbeats_than_max_pings_per_interval_close_it() {
    let mut sim = Sim::new(Settings {
        max_pings: Some(3),
        ..settings()
    });
    let c = sim.connect(0);
    sim.take();
    // Three in the window that starts at 0 are fine; the window ends at
    // 1000 and the next one starts with the ping at 1000.
    sim.send(0, c, b"PING\nPING\nPING\n");
    sim.send(1000, c, b"PING\nPING\nPING\n");
    check(
        &mut sim,
        &["0 c0 < PONG | PONG | PONG", "1000 c0 < PONG | PONG | PONG"],
    );
    // A fourth in the window: the replies so far, then the BYE.
    sim.send(1999, c, b"PING\n");
    check(
        &mut sim,
        &[
            "1999 c0 < BYE too-many-pings [end]",
            "1999 offline #1 - too-many-pings",
        ],
    );
}

#[test]
fn bad_input_closes_that_connection_with_its_reason_and_no_other() {
    let mut sim = Sim::with(LineProtocol::new(16), settings(), false);
    let long = sim.connect(0);
    let bad = sim.connect(0);
    let good = sim.connect(0);
    sim.take();
    sim.batch(
        10,
        &[
            (long, b"PING 1\nthis line is far too long for 16 bytes"),
            (bad, b"PING 2\nHELLO  b\nPING 3\n"),
            (good, b"PING 4\n"),
        ],
    );
    check(
        &mut sim,
        &[
            "10 c0 < PONG 1 | BYE line-too-long [end]",
            "10 c1 < PONG 2 | BYE bad-frame [end]",
            "10 c2 < PONG 4",
            "10 offline #1 - line-too-long",
            "10 offline #2 - bad-frame",
        ],
    );
    assert!(sim.is_open(good));
}

#[test]
fn every_close_reason_says_bye_where_the_peer_can_hear_it() {
    for reason in CloseReason::ALL {
        let mut sim = Sim::new(settings());
        let c = sim.connect(0);
        sim.send(1, c, b"HELLO dev\n");
        sim.take();
        sim.end(2, c, reason);
        let last = if reason.says_bye() {
            format!("2 c0 < BYE {reason} [end]")
        } else {
            "2 c0 < [end]".to_owned()
        };
        assert_eq!(
            sim.take(),
            [last, format!("2 offline #1 dev {reason}")],
            "{reason}"
        );
        assert_eq!(sim.s.online_count(), 0, "{reason}");
        assert_eq!(sim.s.stats().closed(reason), 1, "{reason}");
    }
}

#[test]
fn closing_is_idempotent_and_nothing_follows_the_last_bytes() {
    let mut sim = Sim::new(settings());
    let c = sim.connect(0);
    sim.take();
    let slot = sim.conns[c as usize].as_mut().unwrap();
    sim.s
        .handle_close(c, &mut slot.session, CloseReason::Shutdown);
    sim.s
        .handle_close(c, &mut slot.session, CloseReason::Timeout);
    assert!(!sim.s.handle_bytes(5, c, &mut slot.session, b"PING\n"));
    assert_eq!(
        sim.s.handle_timeout(99_999, c, &mut slot.session),
        Deadline::Closed
    );
    assert_eq!(slot.session.close_reason(), Some(CloseReason::Shutdown));
    sim.settle();
    check(
        &mut sim,
        &["0 c0 < BYE shutdown [end]", "0 offline #1 - shutdown"],
    );
    assert_eq!(sim.s.stats().closed_total(), 1);
}

#[test]
fn a_refused_connection_is_told_overloaded_and_counted() {
    let mut sim = Sim::new(settings());
    let bye = sim.s.handle_refused("10.0.0.1:9".parse().unwrap()).to_vec();
    assert_eq!(bye, b"BYE overloaded\n");
    sim.settle();
    check(&mut sim, &["0 online #1", "0 offline #1 - overloaded"]);
    let stats = sim.s.stats();
    assert_eq!(
        (stats.accepted, stats.closed(CloseReason::Overloaded)),
        (1, 1)
    );
    // Numbers are never reused: the next connection is #2.
    sim.connect(1);
    check(&mut sim, &["1 online #2"]);
}

#[test]
fn quit_is_answered_then_closed_without_a_bye() {
    let mut sim = Sim::with(RespProtocol::default(), settings(), false);
    let c = sim.connect(0);
    sim.take();
    sim.send(
        1,
        c,
        b"*1\r\n$4\r\nPING\r\n*1\r\n$4\r\nQUIT\r\n*1\r\n$4\r\nPING\r\n",
    );
    check(
        &mut sim,
        &["1 c0 < +PONG | +OK [end]", "1 offline #1 - closed"],
    );
}

#[test]
fn an_unknown_command_is_answered_and_the_connection_goes_on() {
    let mut sim = Sim::with(RespProtocol::default(), settings(), false);
    let c = sim.connect(0);
    sim.take();
    sim.send(1, c, b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*1\r\n$4\r\nPING\r\n");
    check(&mut sim, &["1 c0 < -ERR unknown command 'GET' | +PONG"]);
    assert!(sim.is_open(c));
}

#[test]
fn handler_hooks_reply_broadcast_close_and_stop() {
    let mut sim = Sim::with(LineProtocol::default(), settings(), true);
    let a = sim.connect(0);
    let b = sim.connect(0);
    let anon = sim.connect(0);
    sim.batch(1, &[(a, b"HELLO a\n"), (b, b"HELLO b\n")]);
    sim.take();
    sim.send(2, a, b"echo hi\nall news\n");
    check(
        &mut sim,
        &[
            "2 app message #1 echo hi",
            "2 app message #1 all news",
            "2 c0 < hi",
            // To every client but the sender; `anon` said no HELLO.
            "2 c1 < news",
        ],
    );
    sim.send(3, b, b"kick a\n");
    check(
        &mut sim,
        &[
            "3 app message #2 kick a",
            "3 app offline #1 replaced",
            "3 c0 < BYE replaced [end]",
            "3 offline #1 a replaced",
        ],
    );
    sim.send(4, anon, b"stop\n");
    assert!(sim.stopped);
    check(&mut sim, &["4 app message #3 stop"]);
}

#[test]
fn hooks_see_each_connection_come_and_go_once() {
    let mut sim = Sim::with(LineProtocol::default(), settings(), true);
    let c = sim.connect(0);
    sim.send(1, c, b"HELLO dev\n");
    sim.end(2, c, CloseReason::Closed);
    check(
        &mut sim,
        &[
            "0 app online #1",
            "0 online #1",
            "1 app hello #1 dev (1 online)",
            "1 c0 < WELCOME dev interval=1000 timeout=3000",
            "1 hello #1 dev",
            "2 app offline #1 closed",
            "2 c0 < [end]",
            "2 offline #1 dev closed",
        ],
    );
}

#[test]
fn a_stale_handle_reaches_nobody() {
    // A handler's send to a connection that has ended is dropped by the
    // loop (generation check); the session never queues after the end.
    let mut sim = Sim::new(settings());
    let c = sim.connect(0);
    sim.end(1, c, CloseReason::Closed);
    sim.take();
    let gone = ConnRef {
        key: c,
        generation: 1,
    };
    assert!(sim.conns[gone.key as usize].is_none());
    assert_eq!(sim.s.poll_transmit(), None);
}

// ---- the φ accrual detector -----------------------------------------------

fn phi_settings(min_std_dev_ms: u64) -> Settings {
    Settings {
        phi: Some(crate::detector::PhiConfig::new(8.0, min_std_dev_ms)),
        ..settings()
    }
}

#[test]
fn phi_gives_up_on_a_regular_client_sooner_and_never_after_the_timeout() {
    let mut sim = Sim::new(phi_settings(50));
    let c = sim.connect(0);
    for k in 1..=20 {
        sim.send(k * 1000, c, b"PING\n");
    }
    sim.take();
    // Beats every 1000 ms exactly: σ is the minimum, 50 ms, so φ reaches
    // 8 about 1000 + 5.2 × 50 ms after the last beat, rounded up to the
    // wheel's 100 ms tick: 21300, where the fixed timeout says 23000.
    sim.at(21_299);
    check(&mut sim, &[]);
    sim.at(21_300);
    check(
        &mut sim,
        &["21300 c0 < BYE timeout [end]", "21300 offline #1 - timeout"],
    );
}

#[test]
fn phi_waits_for_enough_samples_then_follows_a_slower_rhythm() {
    // Seven intervals are not enough to trust φ: the fixed timeout applies.
    let mut sim = Sim::new(phi_settings(50));
    let c = sim.connect(0);
    for k in 1..=7 {
        sim.send(k * 1000, c, b"PING\n");
    }
    sim.at(9_999);
    assert!(sim.is_open(c));
    sim.at(10_000);
    assert!(!sim.is_open(c));
    // A client beating every 2500 ms (within the 3000 ms timeout) is never
    // closed by φ while it beats, though that is slower than the interval.
    let mut sim = Sim::new(phi_settings(50));
    let c = sim.connect(0);
    for k in 1..=40 {
        sim.send(k * 2500, c, b"PING\n");
    }
    assert!(sim.is_open(c));
}

/// A tiny deterministic random source for jitter (xorshift64*).
struct Jitter(u64);

impl Jitter {
    fn unit(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Roughly normal, mean 0, standard deviation `sd` (the sum of four
    /// uniforms), clamped to ±3 sd.
    fn normal(&mut self, sd: f64) -> f64 {
        let sum: f64 = (0..4).map(|_| self.unit()).sum();
        ((sum - 2.0) / (4.0f64 / 12.0).sqrt()).clamp(-3.0, 3.0) * sd
    }
}

/// Runs `clients` connections beating every `interval_ms` with delay
/// jitter of standard deviation `jitter_ms` for 600 simulated seconds, then
/// silences them all. Returns (false expirations while beating, mean ms
/// from the last beat to the close, largest such).
fn jittery_run(
    settings: Settings,
    clients: u32,
    interval_ms: u64,
    jitter_ms: f64,
) -> (u32, u64, u64) {
    let mut sim = Sim::new(settings);
    let mut rng = Jitter(0x9e37_79b9_7f4a_7c15);
    let keys: Vec<u32> = (0..clients).map(|_| sim.connect(0)).collect();
    // Each client's sends: on schedule plus jitter, in time order overall.
    let mut sends: Vec<(u64, u32)> = Vec::new();
    for &k in &keys {
        let mut t = 0u64;
        let phase = (rng.unit() * interval_ms as f64) as u64;
        while t < 600_000 {
            let due = phase + t + interval_ms;
            let at = (due as f64 + rng.normal(jitter_ms)).max(1.0) as u64;
            sends.push((at, k));
            t += interval_ms;
        }
    }
    sends.sort();
    let mut last = vec![0u64; clients as usize];
    let mut false_expirations = 0;
    for (at, k) in sends {
        if !sim.is_open(k) {
            continue;
        }
        sim.send(at.max(sim.now), k, b"PING\n");
        last[k as usize] = at.max(sim.now);
        let trace = sim.take();
        false_expirations += trace.iter().filter(|l| l.contains("BYE timeout")).count() as u32;
    }
    let end = sim.now;
    let mut delays = Vec::new();
    let mut t = end;
    while keys.iter().any(|&k| sim.is_open(k)) {
        t += 10;
        sim.at(t);
        for line in sim.take() {
            if let Some(rest) = line
                .split_once(" c")
                .map(|(time, rest)| (time.parse::<u64>().unwrap(), rest))
            {
                if rest.1.contains("BYE timeout") {
                    let key: usize = rest.1.split(' ').next().unwrap().parse().unwrap();
                    delays.push(rest.0 - last[key]);
                }
            }
        }
    }
    let mean = delays.iter().sum::<u64>() / delays.len().max(1) as u64;
    (
        false_expirations,
        mean,
        delays.into_iter().max().unwrap_or(0),
    )
}

/// The measurement the φ detector is for, on simulated jittery traffic:
/// 50 clients beating every second for ten minutes, then silent. The
/// fixed timeout is 3 s; φ has threshold 8 and a minimum σ of 50 ms.
#[test]
fn phi_against_the_fixed_timeout_on_jittery_traffic() {
    let mut rows = Vec::new();
    for jitter in [20.0, 100.0, 300.0] {
        let fixed = jittery_run(settings(), 50, 1000, jitter);
        let phi = jittery_run(phi_settings(50), 50, 1000, jitter);
        rows.push((jitter, fixed, phi));
    }
    println!("jitter sd | fixed: false, mean/max detection | phi:8: false, mean/max detection");
    for (jitter, f, p) in &rows {
        println!(
            "{jitter:>6} ms | {:>3}, {:>5} / {:>5} ms | {:>3}, {:>5} / {:>5} ms",
            f.0, f.1, f.2, p.0, p.1, p.2
        );
    }
    for (jitter, fixed, phi) in rows {
        // Neither kills a client that beats, at any of these jitters.
        assert_eq!(
            (fixed.0, phi.0),
            (0, 0),
            "false expirations at jitter {jitter}"
        );
        // φ never waits longer than the fixed timeout; on fairly regular
        // traffic it gives up in under two thirds of the time (measured:
        // 1321 against 3043 ms at 20 ms, 1779 against 3051 ms at 100 ms);
        // on very jittery traffic it learns to wait as long (3012 ms).
        assert!(phi.2 <= fixed.2, "jitter {jitter}: {phi:?} vs {fixed:?}");
        if jitter <= 100.0 {
            assert!(
                phi.1 * 3 < fixed.1 * 2,
                "jitter {jitter}: {phi:?} vs {fixed:?}"
            );
        }
    }
}

proptest! {
    /// Whatever the heartbeat pattern, a connection is closed exactly at
    /// the first tick at or after its last frame plus the timeout: never
    /// before, less than a tick after, and never while it beats in time.
    #[test]
    fn closed_at_the_first_tick_after_last_frame_plus_timeout(
        accepted in 0u64..500,
        gaps in proptest::collection::vec(1u64..3000, 0..20),
    ) {
        let mut sim = Sim::new(settings());
        let c = sim.connect(accepted);
        let mut last = accepted;
        for gap in gaps {
            last += gap;
            sim.send(last, c, b"PING\n");
        }
        let deadline = last + 3000;
        let due = deadline.div_ceil(TICK) * TICK;
        sim.at(due - 1);
        prop_assert!(sim.is_open(c), "closed before {due}: {:?}", sim.take());
        sim.at(due);
        prop_assert!(!sim.is_open(c));
        let trace = sim.take();
        let bye = format!("{due} c0 < BYE timeout [end]");
        prop_assert!(trace.contains(&bye), "{trace:?}");
    }
}

// ---- RESP: the Redis handshake, answered from the connection's state ----

#[test]
fn a_redis_handshake_negotiates_resp3_and_names_the_connection() {
    let mut sim = Sim::with(RespProtocol::default(), settings(), true);
    let c = sim.connect(0);
    sim.take();
    // No name yet, in RESP2: a null bulk string.
    sim.send(1, c, b"CLIENT GETNAME\r\n");
    check(&mut sim, &["1 c0 < $-1"]);
    // HELLO 3 with SETNAME: the map in RESP3, then the id is taken as a
    // HELLO takes it (event, hook); GETNAME now answers it.
    sim.send(
        2,
        c,
        b"HELLO 3 SETNAME dev\r\nCLIENT GETNAME\r\nCLIENT ID\r\n",
    );
    check(
        &mut sim,
        &[
            "2 app hello #1 dev (1 online)",
            &format!(
                "2 c0 < %7 | $6 | server | $5 | vigil | $7 | version | ${} | {} | $5 | proto | :3 \
                 | $2 | id | :1 | $4 | mode | $10 | standalone | $4 | role | $6 | master \
                 | $7 | modules | *0 | $3 | dev | :1",
                env!("CARGO_PKG_VERSION").len(),
                env!("CARGO_PKG_VERSION")
            ),
            "2 hello #1 dev",
        ],
    );
    // The negotiated version stays: a bare HELLO answers in RESP3 too.
    sim.send(3, c, b"HELLO\r\n");
    let t = sim.take();
    assert!(t[0].starts_with("3 c0 < %7 | "), "{t:?}");
    // RESET goes back to RESP2; the id stays.
    sim.send(4, c, b"RESET\r\nHELLO\r\n");
    let t = sim.take();
    assert!(t[0].starts_with("4 c0 < +RESET | *14 | "), "{t:?}");
    assert!(t[0].contains("| proto | :2 |"), "{t:?}");
    assert_eq!(sim.s.online_count(), 1);
}

#[test]
fn a_handshake_with_a_taken_name_takes_it_over_and_errors_change_nothing() {
    let mut sim = Sim::with(RespProtocol::default(), settings(), false);
    let a = sim.connect(0);
    let b = sim.connect(0);
    sim.send(1, a, b"CLIENT SETNAME dev\r\n");
    sim.take();
    // Refused: unsupported version, bad option. No version change, no id.
    sim.send(
        2,
        b,
        b"HELLO 4 SETNAME dev\r\nHELLO 3 SETNAME\r\nCLIENT GETNAME\r\n",
    );
    check(
        &mut sim,
        &["2 c1 < -NOPROTO unsupported protocol version \
           | -ERR Syntax error in HELLO option | $-1"],
    );
    sim.send(3, b, b"HELLO 2 AUTH default secret SETNAME dev\r\n");
    let t = sim.take();
    assert!(t[0].starts_with("3 c1 < *14 | "), "{t:?}");
    assert_eq!(
        t[1..],
        [
            "3 c0 < -ERR closing: replaced [end]",
            // The old holder's offline comes before the new holder's hello.
            "3 offline #1 dev replaced",
            "3 hello #2 dev",
        ]
    );
}

#[test]
fn a_request_trickled_byte_by_byte_is_one_frame_and_one_sign_of_life() {
    let mut sim = Sim::with(RespProtocol::default(), settings(), false);
    let c = sim.connect(0);
    sim.take();
    let request = b"*2\r\n$4\r\nECHO\r\n$5\r\nhello\r\n";
    for (i, b) in request.iter().enumerate() {
        sim.send(1 + i as Tick, c, std::slice::from_ref(b));
    }
    let done = request.len() as Tick;
    check(&mut sim, &[&format!("{done} c0 < $5 | hello")]);
    let s = &sim.conns[c as usize].as_ref().unwrap().session;
    assert_eq!(s.last_seen(), done);
}
/// The first id `dev-N` that worker `index` of `count` owns.
fn id_owned_by(index: u32, count: u32) -> String {
    (0..)
        .map(|i| format!("dev-{i}"))
        .find(|id| crate::server::workers::owner_of(id, count) == index)
        .unwrap()
}

#[test]
fn a_hello_for_another_workers_id_goes_there_with_its_bytes() {
    let (mut a, mut b) = (Sim::worker(0, 2), Sim::worker(1, 2));
    let (mine, theirs) = (id_owned_by(0, 2), id_owned_by(1, 2));
    let c = a.connect(0);
    // What came before the HELLO is answered here, first; the HELLO and
    // what follows it go to the owner, untouched.
    a.send(
        10,
        c,
        format!("PING 1\nHELLO {theirs}\nPING 2\nPI").as_bytes(),
    );
    check(
        &mut a,
        &[
            "0 online #1",
            "10 c0 < PONG 1",
            &format!("10 c0 => worker 1: HELLO {theirs} | PING 2 | PI"),
        ],
    );
    assert!(!a.is_open(c));
    assert_eq!(a.s.online_count(), 0);
    // The owner: same number, no second online event; the partial frame
    // waits for the rest.
    let h = a.handed.pop().unwrap();
    let k = b.adopt(20, 1, &h);
    check(
        &mut b,
        &[
            &format!("20 c0 < WELCOME {theirs} interval=1000 timeout=3000 | PONG 2"),
            &format!("20 hello #1 {theirs}"),
        ],
    );
    b.send(30, k, b"NG 3\n");
    check(&mut b, &["30 c0 < PONG 3"]);
    // An id this worker owns stays here; nothing is handed off.
    let d = a.connect(40);
    a.send(40, d, format!("HELLO {mine}\n").as_bytes());
    check(
        &mut a,
        &[
            "40 online #2",
            &format!("40 c1 < WELCOME {mine} interval=1000 timeout=3000"),
            &format!("40 hello #2 {mine}"),
        ],
    );
    // Renaming itself to the other shard's id: it leaves with no offline
    // event, and its old id is free here.
    a.send(50, d, format!("HELLO {theirs}\n").as_bytes());
    check(&mut a, &[&format!("50 c1 => worker 1: HELLO {theirs}")]);
    assert_eq!(a.s.online_count(), 0);
    // At the owner it takes the id over, as within one server.
    let h = a.handed.pop().unwrap();
    b.adopt(60, 2, &h);
    check(
        &mut b,
        &[
            &format!("60 c1 < WELCOME {theirs} interval=1000 timeout=3000"),
            "60 c0 < BYE replaced [end]",
            // The old holder's offline comes before the new holder's hello.
            &format!("60 offline #1 {theirs} replaced"),
            &format!("60 hello #2 {theirs}"),
        ],
    );
    // The same HELLO again, where it already holds the id, stays, and (as
    // any repeated HELLO on the line protocol) gets no second WELCOME.
    b.send(70, 1, format!("HELLO {theirs}\n").as_bytes());
    check(&mut b, &[]);
    assert_eq!(b.s.online_count(), 1);
}

#[test]
fn a_failed_handoff_closes_with_one_offline_event() {
    let mut a = Sim::worker(0, 2);
    let theirs = id_owned_by(1, 2);
    let c = a.connect(0);
    // Held in the slab, as the loop holds it until the send is tried.
    a.at(10);
    let slot = a.conns[c as usize].as_mut().unwrap();
    a.s.handle_bytes(
        10,
        c,
        &mut slot.session,
        format!("HELLO {theirs}\n").as_bytes(),
    );
    let h = a.s.poll_handoff().unwrap();
    assert_eq!(&*h.client, theirs.as_str());
    let slot = a.conns[c as usize].as_mut().unwrap();
    assert!(!slot.session.is_open());
    a.s.handle_handoff_failed(c, &mut slot.session, CloseReason::Overloaded);
    // Failing twice changes nothing.
    a.s.handle_handoff_failed(c, &mut slot.session, CloseReason::Overloaded);
    a.settle();
    check(
        &mut a,
        &[
            "0 online #1",
            "10 c0 < BYE overloaded [end]",
            "10 offline #1 - overloaded",
        ],
    );
}

#[test]
fn without_workers_every_id_is_owned() {
    let mut sim = Sim::new(settings());
    let c = sim.connect(0);
    for i in 0..50 {
        sim.send(10, c, format!("HELLO dev-{i}\n").as_bytes());
    }
    assert!(sim.handed.is_empty());
    assert_eq!(sim.s.online_count(), 1);
}

/// A token for `id` under [`SECRET`], valid up to Unix second `expiry`.
fn token(id: &str, expiry: u64) -> String {
    crate::auth::Verifier::new(SECRET)
        .map(|v| v.mint(id, expiry))
        .unwrap_or_default()
}

#[test]
fn only_an_authenticated_hello_takes_an_id_over() {
    let mut sim = Sim::new(settings());
    sim.authenticate(1_000);
    let holder = sim.connect(0);
    let hello = format!("HELLO dev {}\n", token("dev", 2_000));
    sim.send(1, holder, hello.as_bytes());
    sim.take();
    // A stranger without a token, with one for another id, with a forged
    // one and with a malformed one: each is refused and the holder stays.
    let other = format!("HELLO dev {}\n", token("dev2", 2_000));
    let real = token("dev", 2_000);
    let flipped = if real.ends_with('0') { '1' } else { '0' };
    let forged = format!("HELLO dev {}{flipped}\n", &real[..real.len() - 1]);
    for (i, line) in ["HELLO dev\n", &other, &forged, "HELLO dev x.y\n"]
        .into_iter()
        .enumerate()
    {
        let stranger = sim.connect(10);
        sim.send(10, stranger, line.as_bytes());
        let n = i + 2;
        check(
            &mut sim,
            &[
                &format!("10 online #{n}"),
                &format!("10 c{stranger} < BYE unauthorized [end]"),
                &format!("10 offline #{n} - unauthorized"),
            ],
        );
    }
    assert!(sim.is_open(holder));
    assert_eq!(sim.s.online_count(), 1);
    // The holder still beats.
    sim.send(20, holder, b"PING\n");
    check(&mut sim, &["20 c0 < PONG"]);
    // A valid token takes over, as before.
    let taker = sim.connect(30);
    sim.send(30, taker, hello.as_bytes());
    check(
        &mut sim,
        &[
            "30 online #6",
            "30 c5 < WELCOME dev interval=1000 timeout=3000",
            "30 c0 < BYE replaced [end]",
            // The old holder's offline comes before the new holder's hello.
            "30 offline #1 dev replaced",
            "30 hello #6 dev",
        ],
    );
}

#[test]
fn a_token_expires_at_the_end_of_its_second() {
    let mut sim = Sim::new(settings());
    sim.authenticate(2_000);
    let hello = format!("HELLO dev {}\n", token("dev", 2_000));
    let c = sim.connect(0);
    sim.send(0, c, hello.as_bytes());
    assert!(sim.take().iter().any(|l| l.contains("WELCOME")));
    sim.s.handle_unix_time(2_001);
    let d = sim.connect(1);
    sim.send(1, d, hello.as_bytes());
    check(
        &mut sim,
        &[
            "1 online #2",
            "1 c1 < BYE unauthorized [end]",
            "1 offline #2 - unauthorized",
        ],
    );
    assert!(sim.is_open(c), "an expired token does not touch the holder");
}

#[test]
fn a_refused_hello_does_not_release_the_id_the_connection_has() {
    let mut sim = Sim::new(settings());
    sim.authenticate(0);
    let c = sim.connect(0);
    let hello = format!("HELLO a {}\n", token("a", 10));
    sim.send(1, c, hello.as_bytes());
    sim.take();
    // Asking for `b` without a token closes it: `a` goes with the close.
    sim.send(2, c, b"HELLO b\n");
    check(
        &mut sim,
        &[
            "2 c0 < BYE unauthorized [end]",
            "2 offline #1 a unauthorized",
        ],
    );
}

#[test]
fn no_hello_in_time_closes_it_a_hello_in_time_does_not() {
    let mut sim = Sim::new(Settings {
        hello_timeout_ms: Some(500),
        ..settings()
    });
    let silent = sim.connect(0);
    let pinger = sim.connect(0);
    let named = sim.connect(0);
    sim.take();
    sim.send(100, named, b"HELLO n\n");
    // Heartbeats are life, not a HELLO.
    for t in [100, 200, 300, 400] {
        sim.send(t, pinger, b"PING\n");
    }
    sim.take();
    sim.at(499);
    assert!(sim.is_open(silent) && sim.is_open(pinger));
    sim.at(500);
    check(
        &mut sim,
        &[
            "500 c0 < BYE hello-timeout [end]",
            "500 c1 < BYE hello-timeout [end]",
            "500 offline #1 - hello-timeout",
            "500 offline #2 - hello-timeout",
        ],
    );
    sim.at(5_000);
    assert!(sim
        .take()
        .iter()
        .any(|l| l.contains("offline #3 n timeout")));
}

#[test]
fn with_auth_only_an_accepted_hello_stops_the_hello_timer() {
    let mut sim = Sim::new(Settings {
        hello_timeout_ms: Some(500),
        ..settings()
    });
    sim.authenticate(0);
    let good = sim.connect(0);
    sim.take();
    let hello = format!("HELLO g {}\n", token("g", 10));
    sim.send(499, good, hello.as_bytes());
    sim.take();
    sim.at(600);
    assert!(sim.is_open(good));
    assert_eq!(sim.take(), Vec::<String>::new());
}

#[test]
fn every_frame_counts_against_max_frames() {
    let mut sim = Sim::new(Settings {
        max_frames: Some(3),
        ..settings()
    });
    let c = sim.connect(0);
    let d = sim.connect(0);
    sim.take();
    // Empty lines, unknown messages and HELLOs count as much as PINGs.
    sim.send(0, c, b"\nhi\nHELLO a\n");
    sim.send(999, c, b"\n");
    sim.send(1000, d, b"\n\n\n");
    sim.send(1999, d, b"\n\n\n");
    check(
        &mut sim,
        &[
            "0 c0 < WELCOME a interval=1000 timeout=3000",
            "0 hello #1 a",
            "999 c0 < BYE too-many-frames [end]",
            "999 offline #1 a too-many-frames",
            "1999 c1 < BYE too-many-frames [end]",
            "1999 offline #2 - too-many-frames",
        ],
    );
}

#[test]
fn max_frames_and_max_pings_share_one_window() {
    let mut sim = Sim::new(Settings {
        max_frames: Some(4),
        max_pings: Some(2),
        ..settings()
    });
    let c = sim.connect(0);
    sim.take();
    sim.send(0, c, b"x\nPING\nPING\n");
    sim.send(1000, c, b"PING\nPING\nx\nx\n");
    check(&mut sim, &["0 c0 < PONG | PONG", "1000 c0 < PONG | PONG"]);
    sim.send(1500, c, b"PING\n");
    check(
        &mut sim,
        &[
            "1500 c0 < BYE too-many-frames [end]",
            "1500 offline #1 - too-many-frames",
        ],
    );
}

#[test]
fn the_output_cap_is_checked_reply_by_reply() {
    // 64 bytes of replies at most: a peer that sends 10,000 unknown
    // commands in one read does not get 10,000 answers queued.
    let mut sim = Sim::with(
        RespProtocol::default(),
        Settings {
            max_output: 64,
            ..settings()
        },
        false,
    );
    let c = sim.connect(0);
    let bystander = sim.connect(0);
    sim.take();
    sim.at(1);
    let slot = sim.conns[c as usize].as_mut().map(|s| &mut s.session);
    let flood = b"x\n".repeat(10_000);
    if let Some(session) = slot {
        assert!(!sim.s.handle_bytes_after(1, c, session, &flood, 0));
        assert!(sim.s.queued_len() <= 64 + 40, "{}", sim.s.queued_len());
    }
    sim.apply_closes();
    sim.settle();
    let trace = sim.take();
    assert_eq!(
        trace.last().map(String::as_str),
        Some("1 offline #1 - output-overflow")
    );
    // Output already waiting counts too.
    let session = sim.conns[bystander as usize]
        .as_mut()
        .map(|s| &mut s.session);
    if let Some(session) = session {
        assert!(!sim
            .s
            .handle_bytes_after(2, bystander, session, b"PING\n", 60));
    }
}

#[test]
fn a_large_frame_done_gives_its_buffer_back() {
    let mut sim = Sim::with(LineProtocol::new(100_000), settings(), false);
    let c = sim.connect(0);
    sim.take();
    let capacity = |sim: &mut Sim| {
        sim.conns[c as usize]
            .as_mut()
            .and_then(|s| s.session.input.capacity())
    };
    sim.send(1, c, &[b'a'; 60_000]);
    assert!(capacity(&mut sim).unwrap_or(0) >= 60_000);
    // The end of the line and the start of the next.
    sim.send(2, c, b"a\nPI");
    let left = capacity(&mut sim);
    assert!(left.is_some_and(|c| c < 4096), "{left:?}");
    sim.send(3, c, b"NG\n");
    assert_eq!(capacity(&mut sim), None);
}

/// A codec that breaks its contract: `zero` uses 0 bytes for a frame,
/// `past` more than it was given.
struct Broken;

impl Protocol for Broken {
    fn decode<'a>(
        &self,
        input: &'a [u8],
    ) -> Result<Option<(Frame<'a>, usize)>, crate::protocol::DecodeError> {
        let frame = Frame::Ping { token: None };
        Ok(match input.first() {
            None => None,
            Some(b'z') => Some((frame, 0)),
            Some(b'p') => Some((frame, input.len() + 1)),
            Some(_) => Some((frame, 1)),
        })
    }

    fn encode(&self, reply: &Reply<'_>, out: &mut Vec<u8>) {
        LineProtocol::default().encode(reply, out)
    }

    fn max_frame(&self) -> usize {
        16
    }

    fn name(&self) -> &'static str {
        "broken"
    }
}

#[test]
fn a_codec_that_breaks_its_contract_closes_that_connection_only() {
    let mut sim = Sim::with(Broken, settings(), false);
    let zero = sim.connect(0);
    let past = sim.connect(0);
    let fine = sim.connect(0);
    sim.take();
    sim.batch(1, &[(zero, b".z"), (past, b"p"), (fine, b"..")]);
    check(
        &mut sim,
        &[
            "1 c0 < PONG | BYE bad-frame [end]",
            "1 c1 < BYE bad-frame [end]",
            "1 c2 < PONG | PONG",
            "1 offline #1 - bad-frame",
            "1 offline #2 - bad-frame",
        ],
    );
}

#[test]
fn a_panicking_hook_closes_its_connection_and_the_server_goes_on() {
    let mut sim = Sim::with(LineProtocol::default(), settings(), true);
    let a = sim.connect(0);
    let b = sim.connect(0);
    sim.send(1, a, b"HELLO a\n");
    sim.take();
    // The hook queued nothing before panicking; the PONG before it stays.
    sim.send(2, a, b"PING\npanic\nPING\n");
    sim.send(3, b, b"HELLO panic\n");
    sim.send(4, b, b"PING\n");
    let trace = sim.take();
    assert_eq!(
        trace,
        [
            "2 app message #1 panic",
            "2 app offline #1 internal-error",
            "2 c0 < PONG | BYE internal-error [end]",
            "2 offline #1 a internal-error",
            "3 app offline #2 internal-error",
            "3 c1 < BYE internal-error [end]",
            "3 offline #2 - internal-error",
        ]
    );
    let c = sim.connect(5);
    sim.send(6, c, b"HELLO c\nPING\n");
    assert!(sim.take().iter().any(|l| l.contains("c2 < WELCOME c")));
}

#[test]
fn a_redis_handshake_is_put_to_the_same_check_as_a_hello() {
    let mut sim = Sim::with(RespProtocol::default(), settings(), false);
    sim.authenticate(1_000);
    let holder = sim.connect(0);
    sim.take();
    // The password is the token.
    let good = format!(
        "HELLO 2 AUTH default {} SETNAME dev\r\n",
        token("dev", 2_000)
    );
    sim.send(1, holder, good.as_bytes());
    let t = sim.take();
    assert!(t[0].starts_with("1 c0 < *14 | "), "{t:?}");
    assert_eq!(t[1..], ["1 hello #1 dev"]);
    // A wrong password, a handshake without one and CLIENT SETNAME (which
    // cannot carry one) are refused before anything is answered or taken.
    let wrong = format!(
        "HELLO 3 AUTH default {} SETNAME dev\r\n",
        token("dev2", 2_000)
    );
    for (i, request) in [
        wrong.as_str(),
        "HELLO 3 SETNAME dev\r\n",
        "CLIENT SETNAME dev\r\n",
    ]
    .into_iter()
    .enumerate()
    {
        let stranger = sim.connect(10);
        sim.send(10, stranger, request.as_bytes());
        let n = i + 2;
        check(
            &mut sim,
            &[
                &format!("10 online #{n}"),
                &format!("10 c{stranger} < -ERR closing: unauthorized [end]"),
                &format!("10 offline #{n} - unauthorized"),
            ],
        );
    }
    assert!(sim.is_open(holder));
    assert_eq!(sim.s.online_count(), 1);
    // A handshake naming no id asks nothing: it is answered.
    let plain = sim.connect(20);
    sim.take();
    sim.send(21, plain, b"HELLO 3\r\n");
    let t = sim.take();
    assert!(t[0].starts_with("21 c4 < %7 | "), "{t:?}");
    assert!(sim.is_open(plain));
}
