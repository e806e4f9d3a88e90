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
        hello_timeout_ms: None,
        max_frames: None,
        max_output: usize::MAX,
    }
}

/// The application: records its hooks when asked to, and acts on a few
/// messages: `echo X` replies X, `all X` broadcasts X to the other clients,
/// `kick ID` closes client ID's connection, `stop` stops the server.
struct App {
    log: Option<Rc<RefCell<Vec<String>>>>,
}

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
            _ => {}
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
}

impl Sim<LineProtocol> {
    fn new(settings: Settings) -> Self {
        Sim::with(LineProtocol::default(), settings, false)
    }
}

impl<P: Protocol> Sim<P> {
    fn with(protocol: P, settings: Settings, trace_hooks: bool) -> Self {
        let hooks = Rc::new(RefCell::new(Vec::new()));
        let app = App {
            log: trace_hooks.then(|| Rc::clone(&hooks)),
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
        }
    }

    /// A connection accepted at `t`; returns its key.
    fn connect(&mut self, t: Tick) -> u32 {
        self.at(t);
        let key = self.conns.len() as u32;
        let peer = SocketAddr::from(([127, 0, 0, 1], 5000 + key as u16));
        let session = self.s.handle_accept(t, key, peer);
        let timer = self
            .wheel
            .insert(self.s.deadline(&session), session.conn_ref(key));
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
        while let Some(tx) = self.s.poll_transmit() {
            let Some(slot) = self.conns[tx.to.key as usize].as_mut() else {
                panic!("transmit to c{} after it was removed", tx.to.key);
            };
            assert!(
                !slot.session.is_ended(),
                "bytes after the last to c{}",
                tx.to.key
            );
            let text = String::from_utf8_lossy(tx.bytes);
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
                EventKind::Offline(r) => format!("{t} offline #{} {client} {r}", e.number),
            });
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
            "15 hello #2 dev",
            "15 offline #1 dev replaced",
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
            "10 hello #2 dev",
            "10 offline #1 dev replaced",
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
            "2 hello #1 b",
            "3 online #2",
            "4 c1 < WELCOME a interval=1000 timeout=3000",
            "4 hello #2 a",
        ],
    );
    assert_eq!(sim.s.online_count(), 2);
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
