//! Session tests: a fake clock and a textual trace of everything the session
//! asks for, plus a simulated server pair for longer runs.

use std::io;

use super::*;
use crate::client::adaptive::{AdaptiveConfig, ChangeReason, ProbeOutcome};
use crate::client::session::Mode;
use crate::protocol::LineProtocol;
use crate::server::session::{Session as ServerSession, Sessions, Settings};
use crate::server::{LocalPresence, PresenceOnly};

/// Drives a session by hand and records its outputs, one line each:
/// `"<ms> connect 0"`, `"<ms> tx PING 1"`, `"<ms> pong 1 rtt=3"`, …
struct Harness {
    s: Session,
    now: u64,
    trace: Vec<String>,
    /// Every [`Event::PingSent`]: (seq, due, when it was sent). Kept out of
    /// the trace, where the `tx PING` line already shows the ping; `drain`
    /// checks that the two agree.
    pings: Vec<(u64, u64, u64)>,
}

/// Short timeouts and no jitter, so traces are exact.
fn config() -> SessionConfig {
    let mut c = SessionConfig::new("dev", 1);
    c.reply_timeout_ms = 300;
    c.connect_timeout_ms = 500;
    c.backoff_base_ms = 0;
    c.backoff_cap_ms = 0;
    c
}

fn show_event(e: &Event) -> String {
    match e {
        Event::Connected { server } => format!("connected {}", server.0),
        Event::Welcome {
            interval_ms,
            server_interval_ms,
            server_timeout_ms,
        } => format!("welcome interval={interval_ms} server={server_interval_ms} timeout={server_timeout_ms:?}"),
        Event::PingSent { seq, due_ms } => format!("ping-sent {seq} due={due_ms}"),
        Event::Pong { seq, rtt_ms } => format!("pong {seq} rtt={rtt_ms}"),
        Event::Line(l) => format!("line {}", String::from_utf8_lossy(l)),
        Event::Disconnected { server, reason } => format!("down {} {reason:?}", server.0),
        Event::IntervalChanged {
            from_ms,
            to_ms,
            reason,
        } => format!("interval {from_ms}->{to_ms} {reason}"),
        Event::ReconnectScheduled {
            server,
            attempt,
            delay_ms,
        } => format!("reconnect {} attempt={attempt} delay={delay_ms}", server.0),
        Event::Probe {
            interval_ms,
            outcome,
        } => format!("probe {interval_ms} {}", outcome.as_str()),
    }
}

impl Harness {
    fn new(config: SessionConfig) -> Harness {
        let s = Session::new(config, 0).expect("valid config");
        let mut h = Harness {
            s,
            now: 0,
            trace: Vec::new(),
            pings: Vec::new(),
        };
        h.drain();
        h
    }

    /// Drains every output into the trace: actions, bytes, events.
    fn drain(&mut self) {
        let t = self.now;
        while let Some(a) = self.s.poll_action() {
            self.trace.push(match a {
                Action::Connect(i) => format!("{t} connect {}", i.0),
                Action::Close => format!("{t} close"),
            });
        }
        while let Some(bytes) = self.s.poll_transmit() {
            let n = bytes.len();
            let text = String::from_utf8_lossy(bytes).into_owned();
            for line in text.lines() {
                self.trace.push(format!("{t} tx {line}"));
            }
            self.s.handle_transmitted(n);
        }
        while let Some(a) = self.s.poll_probe_action() {
            self.trace.push(match a {
                ProbeAction::Connect(i) => format!("{t} probe-connect {}", i.0),
                ProbeAction::Close => format!("{t} probe-close"),
            });
        }
        while let Some(bytes) = self.s.poll_probe_transmit() {
            let n = bytes.len();
            let text = String::from_utf8_lossy(bytes).into_owned();
            for line in text.lines() {
                self.trace.push(format!("{t} probe-tx {line}"));
            }
            self.s.handle_probe_transmitted(n);
        }
        while let Some(e) = self.s.poll_event() {
            if let Event::PingSent { seq, due_ms } = e {
                let tx = format!("{t} tx PING {seq}");
                assert!(self.trace.contains(&tx), "PingSent {seq} without {tx:?}");
                assert!(due_ms <= t, "ping {seq} due at {due_ms}, after {t}");
                self.pings.push((seq, due_ms, t));
                continue;
            }
            self.trace.push(format!("{t} {}", show_event(&e)));
        }
    }

    /// A driver that wakes late: jumps to `t` and only then fires what is
    /// due, all at `t`.
    fn late(&mut self, t: u64) {
        assert!(t >= self.now, "time goes forward");
        self.now = t;
        self.s.handle_timeout(t);
        self.drain();
    }

    /// Moves the clock to `t`, firing every deadline on the way at its time.
    #[track_caller]
    fn at(&mut self, t: u64) {
        assert!(t >= self.now, "time goes forward");
        for _ in 0..100_000 {
            match self.s.poll_timeout() {
                Some(d) if d <= t => {
                    self.now = d.max(self.now);
                    self.s.handle_timeout(self.now);
                    self.drain();
                }
                _ => {
                    self.now = t;
                    return;
                }
            }
        }
        panic!("deadlines do not advance");
    }

    fn probe_connected(&mut self, t: u64) {
        self.at(t);
        self.s.handle_probe_connected(t);
        self.drain();
    }

    fn probe_recv(&mut self, t: u64, bytes: &[u8]) {
        self.at(t);
        self.s.handle_probe_received(t, bytes);
        self.drain();
    }

    fn probe_closed(&mut self, t: u64, end: TransportEnd) {
        self.at(t);
        self.s.handle_probe_closed(t, end);
        self.drain();
    }

    fn connected(&mut self, t: u64) {
        self.at(t);
        self.s.handle_connected(t);
        self.settle();
    }

    fn recv(&mut self, t: u64, bytes: &[u8]) {
        self.at(t);
        self.s.handle_received(t, bytes);
        self.settle();
    }

    fn closed(&mut self, t: u64, end: TransportEnd) {
        self.at(t);
        self.s.handle_closed(t, end);
        self.settle();
    }

    fn send(&mut self, t: u64, msg: &[u8]) -> Result<(), SendError> {
        self.at(t);
        let r = self.s.send_message(t, msg);
        self.settle();
        r
    }

    /// After an input, as a driver does: drain, then fire what is due now.
    fn settle(&mut self) {
        self.drain();
        self.at(self.now);
    }

    /// Connects at `t` and gets welcomed at `t + 4` with `interval`.
    fn online(&mut self, t: u64, interval: u64) {
        self.connected(t);
        let welcome = format!("WELCOME dev interval={interval} timeout=3000\n");
        self.recv(t + 4, welcome.as_bytes());
        self.trace.clear();
    }

    fn take(&mut self) -> Vec<String> {
        std::mem::take(&mut self.trace)
    }

    /// The trace without lines containing `skip` (e.g. the user's messages).
    fn take_without(&mut self, skip: &str) -> Vec<String> {
        self.take()
            .into_iter()
            .filter(|l| !l.contains(skip))
            .collect()
    }
}

#[track_caller]
fn check(h: &mut Harness, expected: &[&str]) {
    assert_eq!(h.take(), expected);
}

#[test]
fn hello_welcome_and_beats_on_an_idle_line() {
    let mut h = Harness::new(config());
    check(&mut h, &["0 connect 0"]);
    h.connected(5);
    check(&mut h, &["5 tx HELLO dev", "5 connected 0"]);
    h.recv(9, b"WELCOME dev interval=1000 timeout=3000\n");
    check(
        &mut h,
        &["9 welcome interval=1000 server=1000 timeout=Some(3000)"],
    );
    assert_eq!(h.s.interval_ms(), Some(1000));
    // The server last heard from us at 5 (HELLO): beat an interval later.
    h.at(1004);
    check(&mut h, &[]);
    h.at(1005);
    check(&mut h, &["1005 tx PING 1"]);
    h.recv(1008, b"PONG 1\n");
    check(&mut h, &["1008 pong 1 rtt=3"]);
    // Unanswered: dead a reply timeout after the ping, then reconnect.
    h.at(2305);
    check(
        &mut h,
        &[
            "2005 tx PING 2",
            "2305 close",
            "2305 down 0 PingTimeout",
            "2305 reconnect 0 attempt=0 delay=0",
            "2305 connect 0",
        ],
    );
}

#[test]
fn the_server_s_ping_is_answered_at_once() {
    let mut h = Harness::new(config());
    h.connected(5);
    h.recv(9, b"WELCOME dev interval=1000 timeout=3000\n");
    h.take();
    // `vigil serve --line-ping`: the server pings; the answer is life to
    // it, and the line has been busy both ways, so no beat of our own
    // is due an interval after it.
    h.recv(500, b"PING 42\nPING\n");
    check(&mut h, &["500 tx PONG 42", "500 tx PONG"]);
    h.at(1499);
    check(&mut h, &[]);
    h.at(1500);
    check(&mut h, &["1500 tx PING 1"]);
    // An application line that only looks like one is the application's.
    h.recv(1501, b"ping me\n");
    check(&mut h, &["1501 line ping me"]);
}

#[test]
fn ping_sent_says_when_the_ping_was_due() {
    let mut c = config();
    c.reply_timeout_ms = 5_000;
    let mut h = Harness::new(c);
    h.online(0, 1000);
    // On time: due when sent.
    h.at(1000);
    h.recv(1003, b"PONG 1\n");
    assert_eq!(h.pings, [(1, 1000, 1000)]);
    // The driver wakes 150 ms late: the ping says it was due at 2000.
    h.late(2150);
    assert_eq!(h.pings[1], (2, 2000, 2150));
    // A slow PONG holds the next ping back: it was due an interval after
    // the previous send (3150) and goes out when the PONG lets it (3600).
    h.recv(3600, b"PONG 2\n");
    assert_eq!(h.pings[2], (3, 3150, 3600));
    // Answered at once: the schedule goes on from the actual send.
    h.recv(3601, b"PONG 3\n");
    h.at(4600);
    assert_eq!(h.pings[3], (4, 4600, 4600));
    assert_eq!(h.pings.len(), 4);
    let trace = h.take();
    assert!(
        trace.contains(&"3600 pong 2 rtt=1450".to_owned()),
        "{trace:?}"
    );
    assert!(trace.contains(&"3601 pong 3 rtt=1".to_owned()), "{trace:?}");
}

#[test]
fn fixed_interval_overrides_the_welcome() {
    let mut c = config();
    c.interval = IntervalPolicy::Fixed(250);
    let mut h = Harness::new(c);
    h.connected(5);
    h.recv(9, b"WELCOME dev interval=1000\n");
    check(
        &mut h,
        &[
            "0 connect 0",
            "5 tx HELLO dev",
            "5 connected 0",
            "9 welcome interval=250 server=1000 timeout=None",
        ],
    );
    h.at(255);
    check(&mut h, &["255 tx PING 1"]);
}

#[test]
fn a_second_welcome_updates_the_interval() {
    let mut h = Harness::new(config());
    h.online(0, 1000);
    h.recv(100, b"WELCOME dev interval=400 timeout=3000\n");
    check(
        &mut h,
        &["100 welcome interval=400 server=400 timeout=Some(3000)"],
    );
    // Last sent at 0 (HELLO): beat at 0 + 400.
    h.at(400);
    check(&mut h, &["400 tx PING 1"]);
}

#[test]
fn no_beats_while_the_line_is_busy_both_ways() {
    let mut h = Harness::new(config());
    h.online(0, 1000);
    for k in 1..=25u64 {
        h.recv(k * 400, b"news\n");
        h.send(k * 400 + 10, b"chat").unwrap();
    }
    let trace = h.take();
    assert!(trace.iter().all(|l| !l.contains("PING")), "{trace:?}");
    // Then both sides fall quiet: beat an interval after the last receive
    // (10_000), which is earlier than after the last send (10_010).
    h.at(11_000);
    check(&mut h, &["11000 tx PING 1"]);
}

#[test]
fn sends_do_not_postpone_the_check() {
    // mqttjs/MQTT.js#1861: a connection broken one way keeps taking writes.
    // The client chats every 100 ms; the server says nothing at all.
    let mut h = Harness::new(config());
    h.online(0, 1000);
    for k in 1..=20u64 {
        h.at(k * 100);
        if h.s.phase() != Phase::Online {
            break;
        }
        h.send(k * 100, b"chat").unwrap();
    }
    assert_eq!(
        h.take_without("tx chat"),
        [
            "1004 tx PING 1",
            "1304 close",
            "1304 down 0 PingTimeout",
            "1304 reconnect 0 attempt=0 delay=0",
            "1304 connect 0",
        ]
    );
}

#[test]
fn a_listening_client_still_beats_for_the_server() {
    // The server pushes a line every 200 ms and the user types nothing: the
    // receive side never idles, but the server must hear from us within
    // its timeout, so the client beats on its idle send side.
    let mut h = Harness::new(config());
    h.online(0, 1000);
    let mut pings = Vec::new();
    for k in 1..=20u64 {
        h.recv(k * 200, b"news\n");
        for l in h.take() {
            let Some((t, seq)) = l.split_once(" tx PING ") else {
                continue;
            };
            pings.push(t.to_string());
            let pong = format!("PONG {seq}\n");
            h.recv(k * 200 + 1, pong.as_bytes());
        }
    }
    // HELLO went out at 0: beats at 1000, then an interval after each PING.
    assert_eq!(pings, ["1000", "2000", "3000", "4000"]);
    assert_eq!(h.s.phase(), Phase::Online);
}

#[test]
fn only_the_matching_pong_clears_the_ping() {
    let mut h = Harness::new(config());
    h.online(0, 1000);
    h.at(1000);
    check(&mut h, &["1000 tx PING 1"]);
    // Life, but not an answer: a message, a PONG without token, a stale one.
    h.recv(1100, b"news\nPONG\nPONG 7\nPONG 1x\n");
    check(&mut h, &["1100 line news"]);
    h.at(1300);
    check(
        &mut h,
        &[
            "1300 close",
            "1300 down 0 PingTimeout",
            "1300 reconnect 0 attempt=0 delay=0",
            "1300 connect 0",
        ],
    );
}

#[test]
fn pong_case_and_crlf_are_accepted() {
    let mut h = Harness::new(config());
    h.online(0, 1000);
    h.at(1000);
    h.recv(1020, b"pong 1\r\n");
    check(&mut h, &["1000 tx PING 1", "1020 pong 1 rtt=20"]);
}

#[test]
fn silence_backstop_when_the_driver_wakes_late() {
    // A driver that slept through the beat (a suspended laptop) wakes past
    // interval + timeout: nothing arrived for that long, so the server is
    // declared dead without waiting for another ping.
    let mut h = Harness::new(config());
    h.online(0, 1000);
    // Welcome arrived at 4: silent from 4 + 1000 + 300.
    h.now = 1304;
    h.s.handle_timeout(1304);
    h.drain();
    check(
        &mut h,
        &[
            "1304 close",
            "1304 down 0 Silent",
            "1304 reconnect 0 attempt=0 delay=0",
        ],
    );
    // Just before it, a late driver simply beats.
    let mut h = Harness::new(config());
    h.online(0, 1000);
    h.now = 1303;
    h.s.handle_timeout(1303);
    h.drain();
    check(&mut h, &["1303 tx PING 1"]);
}

#[test]
fn connect_and_welcome_have_deadlines() {
    let mut h = Harness::new(config());
    h.at(500);
    check(
        &mut h,
        &[
            "0 connect 0",
            "500 close",
            "500 down 0 ConnectTimeout",
            "500 reconnect 0 attempt=0 delay=0",
            "500 connect 0",
        ],
    );
    h.connected(510);
    h.recv(600, b"hello before welcome\n");
    h.at(810);
    check(
        &mut h,
        &[
            "510 tx HELLO dev",
            "510 connected 0",
            "600 line hello before welcome",
            "810 close",
            "810 down 0 NoWelcome",
            "810 reconnect 0 attempt=1 delay=0",
            "810 connect 0",
        ],
    );
}

#[test]
fn bye_reasons_are_parsed_and_end_the_connection() {
    let mut h = Harness::new(config());
    h.online(0, 1000);
    // Lines after BYE in the same read belong to a connection already gone.
    h.recv(50, b"BYE shutdown\nafter\n");
    check(
        &mut h,
        &[
            "50 close",
            "50 down 0 Bye(Some(Shutdown))",
            "50 reconnect 0 attempt=0 delay=0",
            "50 connect 0",
        ],
    );
    h.online(60, 1000);
    h.recv(70, b"BYE going-fishing\n");
    assert_eq!(h.take()[1], "70 down 0 Bye(None)");
    h.online(80, 1000);
    h.recv(90, b"bye TOO-MANY-PINGS\n");
    assert_eq!(
        h.take()[1],
        "90 down 0 Bye(None)",
        "reasons are case-sensitive"
    );
    h.online(100, 1000);
    h.recv(110, b"BYE replaced\n");
    assert_eq!(h.take()[1], "110 down 0 Bye(Some(Replaced))");
}

#[test]
fn transport_ends_need_no_close() {
    let mut h = Harness::new(config());
    h.closed(3, TransportEnd::Error(io::ErrorKind::ConnectionRefused));
    h.connected(3);
    h.closed(40, TransportEnd::Eof);
    h.connected(40);
    h.closed(50, TransportEnd::Error(io::ErrorKind::ConnectionReset));
    check(
        &mut h,
        &[
            "0 connect 0",
            "3 down 0 Failed(ConnectionRefused)",
            "3 reconnect 0 attempt=0 delay=0",
            "3 connect 0",
            "3 tx HELLO dev",
            "3 connected 0",
            "40 down 0 Eof",
            "40 reconnect 0 attempt=1 delay=0",
            "40 connect 0",
            "40 tx HELLO dev",
            "40 connected 0",
            "50 down 0 Failed(ConnectionReset)",
            "50 reconnect 0 attempt=2 delay=0",
            "50 connect 0",
        ],
    );
}

#[test]
fn failover_cycles_the_servers_and_logs_in_again() {
    let mut c = config();
    c.servers = 3;
    let mut h = Harness::new(c);
    for t in 1..=4 {
        h.closed(t, TransportEnd::Error(io::ErrorKind::ConnectionRefused));
    }
    let connects: Vec<String> = h
        .take()
        .into_iter()
        .filter(|l| l.contains(" connect "))
        .collect();
    assert_eq!(
        connects,
        [
            "0 connect 0",
            "1 connect 1",
            "2 connect 2",
            "3 connect 0",
            "4 connect 1"
        ]
    );
    // Server 1 answers: HELLO again, then a BYE moves on to server 2.
    h.connected(5);
    h.recv(6, b"WELCOME dev interval=1000\nBYE overloaded\n");
    check(
        &mut h,
        &[
            "5 tx HELLO dev",
            "5 connected 1",
            "6 close",
            "6 welcome interval=1000 server=1000 timeout=None",
            "6 down 1 Bye(Some(Overloaded))",
            "6 reconnect 2 attempt=4 delay=0",
            "6 connect 2",
        ],
    );
    h.connected(7);
    check(&mut h, &["7 tx HELLO dev", "7 connected 2"]);
}

#[derive(Clone, Copy, PartialEq)]
enum Traffic {
    /// Nothing but the heartbeat, and its pings go unanswered.
    None,
    /// The first ping is answered.
    Answer,
    /// Lines both ways every 400 ms: no ping is ever due.
    Busy,
}

/// Runs one connection that is welcomed at `t + 1` and ends by EOF at
/// `end`; returns the attempt of the reconnect it scheduled and when the
/// next connect is due.
fn flap(h: &mut Harness, t: u64, end: u64, traffic: Traffic) -> (u32, u64) {
    h.connected(t);
    h.recv(t + 1, b"WELCOME dev interval=1000\n");
    let mut trace = h.take();
    match traffic {
        Traffic::None => {}
        Traffic::Answer => {
            h.at(t + 1000);
            trace = h.take();
            let ping = trace.last().expect("a ping");
            let (_, seq) = ping.split_once(" tx PING ").expect("a ping");
            let pong = format!("PONG {seq}\n");
            h.recv(t + 1001, pong.as_bytes());
            assert!(h.take().last().is_some_and(|l| l.contains(" pong ")));
        }
        Traffic::Busy => {
            for k in (t + 400..end).step_by(400) {
                h.recv(k, b"news\n");
                h.send(k, b"chat").expect("online");
            }
        }
    }
    h.closed(end, TransportEnd::Eof);
    trace.extend(h.take());
    assert!(trace.iter().all(|l| !l.contains("Timeout")), "{trace:?}");
    let mut attempt = None;
    for l in trace {
        if let Some(rest) = l.split(" attempt=").nth(1) {
            let (a, delay) = rest.split_once(" delay=").expect("delay");
            let (a, delay): (u32, u64) = (a.parse().expect("attempt"), delay.parse().expect("ms"));
            assert!(delay <= Backoff::ceiling(100, 30_000, a), "{l}");
            attempt = Some((a, end + delay));
        }
    }
    attempt.expect("a reconnect was scheduled")
}

#[test]
fn backoff_grows_while_flapping_and_resets_after_health() {
    let mut c = config();
    c.backoff_base_ms = 100;
    c.backoff_cap_ms = 30_000;
    c.seed = 9;
    let mut h = Harness::new(c);
    let mut t = 0;
    let mut run = |h: &mut Harness, lasts: u64, traffic| {
        let (attempt, next) = flap(h, t, t + lasts, traffic);
        h.at(next);
        t = next;
        attempt
    };
    // Welcomed, then gone at once: not healthy, so attempts keep growing.
    for want in 0..5 {
        assert_eq!(run(&mut h, 10, Traffic::None), want);
    }
    // A ping answered: healthy. The next delay starts over at attempt 0.
    assert_eq!(run(&mut h, 1500, Traffic::Answer), 0);
    assert_eq!(run(&mut h, 10, Traffic::None), 1);
    // No ping needed on a busy line, but welcomed (at t + 1) for
    // HEALTHY_INTERVALS intervals: healthy too.
    assert_eq!(run(&mut h, 1 + 2 * 1000, Traffic::Busy), 0);
    // One millisecond short of that is not enough.
    assert_eq!(run(&mut h, 2 * 1000, Traffic::Busy), 1);
    assert_eq!(run(&mut h, 10, Traffic::None), 2);
}

#[test]
fn reconnect_delays_are_jittered_capped_and_deterministic() {
    let run = |seed| {
        let mut c = config();
        c.backoff_base_ms = 100;
        c.backoff_cap_ms = 30_000;
        c.seed = seed;
        let mut h = Harness::new(c);
        let mut delays = Vec::new();
        for _ in 0..12 {
            let t = h.s.poll_timeout().expect("a deadline");
            h.closed(t, TransportEnd::Error(io::ErrorKind::ConnectionRefused));
            for l in h.take() {
                if let Some(d) = l.split(" delay=").nth(1) {
                    delays.push(d.parse::<u64>().expect("ms"));
                }
            }
        }
        delays
    };
    let a = run(1);
    assert_eq!(a, run(1), "same seed, same delays");
    assert_ne!(a, run(2), "another seed, other delays");
    for (n, d) in a.iter().enumerate() {
        assert!(
            *d <= Backoff::ceiling(100, 30_000, n as u32),
            "attempt {n}: {d}"
        );
    }
    assert!(a.iter().all(|d| *d <= 30_000));
}

#[test]
fn over_long_and_malformed_lines_close_with_a_reason() {
    let mut c = config();
    c.max_line = 40;
    let mut h = Harness::new(c);
    h.online(0, 1000);
    // 41 bytes without an end: known to be too long before the newline comes.
    h.recv(10, &[b'x'; 41]);
    assert_eq!(h.take()[..2], ["10 close", "10 down 0 LineTooLong"]);
    // The same split across reads, with a good line in front.
    h.online(20, 1000);
    h.recv(30, b"ok\nxxxxxxxxxxxxxxxxxxxx");
    h.recv(31, b"xxxxxxxxxxxxxxxxxxxxx");
    assert_eq!(
        h.take()[..3],
        ["30 line ok", "31 close", "31 down 0 LineTooLong"]
    );
    // Exactly the limit with "\r\n", split at every place, is fine.
    let line = b"0123456789abcdef0123456789abcdef01234567\r\n";
    for cut in 0..=line.len() {
        let t = 100 + cut as u64 * 10;
        h.online(t, 1000);
        h.recv(t + 5, &line[..cut]);
        h.recv(t + 6, &line[cut..]);
        let trace = h.take();
        assert!(
            trace
                .last()
                .is_some_and(|l| l.ends_with("line 0123456789abcdef0123456789abcdef01234567")),
            "{cut}: {trace:?}"
        );
        h.closed(t + 7, TransportEnd::Eof);
        h.take();
    }
    // A WELCOME that makes no sense.
    h.connected(1000);
    h.recv(1001, b"WELCOME dev interval=0\n");
    assert_eq!(
        h.take()[2..4],
        [
            "1001 close",
            "1001 down 0 BadLine(\"WELCOME interval is zero\")"
        ]
    );
}

#[test]
fn any_split_of_the_stream_gives_the_same_trace() {
    let stream: &[u8] =
        b"WELCOME dev interval=1000 timeout=3000\r\nnews\n\nPONG 9\r\nmore news\nBYE closed\nlost\n";
    let run = |chunk: usize| {
        let mut h = Harness::new(config());
        h.connected(1);
        for part in stream.chunks(chunk) {
            h.recv(2, part);
        }
        h.take()
    };
    let whole = run(stream.len());
    assert_eq!(
        whole,
        [
            "0 connect 0",
            "1 tx HELLO dev",
            "1 connected 0",
            "2 close",
            "2 welcome interval=1000 server=1000 timeout=Some(3000)",
            "2 line news",
            "2 line ",
            "2 line more news",
            "2 down 0 Bye(Some(Closed))",
            "2 reconnect 0 attempt=0 delay=0",
            "2 connect 0",
        ]
    );
    for chunk in 1..stream.len() {
        let mut got = run(chunk);
        // Events drain per read, so only their grouping may differ: compare
        // as sorted multisets of (time, what).
        let mut want = whole.clone();
        got.sort();
        want.sort();
        assert_eq!(got, want, "chunk {chunk}");
    }
}

#[test]
fn messages_are_checked_and_capped() {
    let mut c = config();
    c.max_message = 8;
    c.max_pending = 32;
    let mut h = Harness::new(c);
    assert_eq!(h.send(1, b"hi"), Err(SendError::NotConnected));
    h.connected(2);
    // Allowed before WELCOME: the server reads lines in order.
    assert_eq!(h.send(3, b"hi"), Ok(()));
    assert_eq!(h.send(3, b""), Ok(()));
    assert_eq!(h.send(3, b"a\nb"), Err(SendError::NotOneLine));
    assert_eq!(h.send(3, b"ab\r"), Err(SendError::NotOneLine));
    assert_eq!(h.send(3, b"a\rb"), Ok(()));
    assert_eq!(h.send(3, b"PING 1"), Err(SendError::Command));
    assert_eq!(h.send(3, b"hello x"), Err(SendError::Command));
    assert_eq!(h.send(3, b"PINGPONG"), Ok(()));
    assert_eq!(
        h.send(3, b"123456789"),
        Err(SendError::TooLong { limit: 8 })
    );
    check(
        &mut h,
        &[
            "0 connect 0",
            "2 tx HELLO dev",
            "2 connected 0",
            "3 tx hi",
            "3 tx ",
            "3 tx a\rb",
            "3 tx PINGPONG",
        ],
    );
    h.recv(4, b"WELCOME dev interval=1000\n");
    h.take();
    // Nothing written: output piles up to the cap, then messages are refused.
    for _ in 0..3 {
        h.s.send_message(4, b"12345678").unwrap(); // 9 bytes each: 27
    }
    assert_eq!(h.s.send_message(4, b"12345"), Err(SendError::Full)); // 33
    assert_eq!(h.s.send_message(4, b"1234"), Ok(())); // 32
    assert_eq!(h.s.send_message(4, b""), Err(SendError::Full));
    // Heartbeats are not capped: a beat still goes out.
    h.at(1004);
    assert_eq!(h.take().last().map(String::as_str), Some("1004 tx PING 1"));
}

#[test]
fn buffers_are_freed_when_empty() {
    let mut h = Harness::new(config());
    h.online(0, 1000);
    assert_eq!(h.s.out.capacity(), 0);
    assert_eq!(h.s.partial.capacity(), 0);
    assert_eq!(h.s.events.capacity(), 0);
    // A split line is buffered, and freed once complete.
    h.s.handle_received(10, b"half a li");
    assert_eq!(h.s.partial, b"half a li");
    h.s.handle_received(11, b"ne\nand the start of ");
    assert_eq!(h.s.partial, b"and the start of ");
    h.s.handle_received(12, b"another\n");
    assert_eq!(h.s.partial.capacity(), 0);
    // Partly written output keeps the rest, then is freed.
    h.s.send_message(13, b"abcdef").unwrap();
    h.s.handle_transmitted(3);
    assert_eq!(h.s.poll_transmit(), Some(&b"def\n"[..]));
    h.s.handle_transmitted(4);
    assert_eq!(h.s.poll_transmit(), None);
    assert_eq!(h.s.out.capacity(), 0);
    h.drain();
    assert_eq!(h.s.events.capacity(), 0);
    // A session is small: the load generator holds tens of thousands.
    // 408 bytes: 376 before the protocol codec (an 8-byte shared pointer),
    // the foreground interval, the φ detector's box and the HELLO token
    // (boxed), 8 bytes each.
    assert!(
        std::mem::size_of::<Session>() <= 408,
        "{}",
        std::mem::size_of::<Session>()
    );
}

#[test]
fn close_stops_everything() {
    let mut h = Harness::new(config());
    h.online(0, 1000);
    h.s.send_message(1, b"unsent").unwrap();
    h.s.close();
    h.drain();
    check(&mut h, &["4 close"]);
    assert_eq!(h.s.phase(), Phase::Closed);
    assert_eq!(h.s.poll_timeout(), None);
    h.s.handle_received(5, b"PONG 1\n");
    h.s.handle_closed(5, TransportEnd::Eof);
    h.s.handle_connected(5);
    h.s.handle_timeout(1_000_000);
    assert_eq!(h.s.send_message(5, b"x"), Err(SendError::NotConnected));
    h.drain();
    check(&mut h, &[]);
    // Closing while waiting to reconnect has no socket to close.
    let mut c = config();
    c.backoff_base_ms = 1000;
    c.backoff_cap_ms = 1000;
    c.seed = 1;
    let mut h = Harness::new(c);
    h.closed(1, TransportEnd::Error(io::ErrorKind::ConnectionRefused));
    h.take();
    assert_eq!(h.s.phase(), Phase::Waiting);
    h.s.close();
    h.drain();
    check(&mut h, &[]);
}

#[test]
fn inputs_in_the_wrong_state_are_ignored() {
    let mut h = Harness::new(config());
    // Connecting: bytes and a second connect are ignored.
    h.s.handle_received(1, b"WELCOME dev interval=5\n");
    h.s.handle_transmitted(100);
    h.connected(2);
    h.connected(3);
    check(&mut h, &["0 connect 0", "2 tx HELLO dev", "2 connected 0"]);
}

#[test]
fn config_is_validated() {
    let bad_id = SessionConfig::new("a b", 1);
    assert_eq!(
        Session::new(bad_id, 0).err(),
        Some(ConfigError::BadClientId)
    );
    let no_servers = SessionConfig::new("a", 0);
    assert_eq!(
        Session::new(no_servers, 0).err(),
        Some(ConfigError::NoServers)
    );
    // A token only where the login can carry one (line, binary).
    let mut token = SessionConfig::new("a", 1);
    token.token = Some(Box::new("12.ab".to_owned()));
    token.protocol = crate::protocol::client::ClientCodec::RESP;
    token.interval = IntervalPolicy::Fixed(1000);
    assert_eq!(Session::new(token, 0).err(), Some(ConfigError::NoToken));
    let mut spaced = SessionConfig::new("a", 1);
    spaced.token = Some(Box::new("12 ab".to_owned()));
    assert_eq!(Session::new(spaced, 0).err(), Some(ConfigError::BadToken));
    let mut zero = SessionConfig::new("a", 1);
    zero.reply_timeout_ms = 0;
    zero.connect_timeout_ms = 0;
    let s = Session::new(zero, 0).expect("clamped");
    assert_eq!(s.config().reply_timeout_ms, 1);
    assert_eq!(s.poll_timeout(), Some(1));
}

#[test]
fn huge_numbers_saturate() {
    let mut c = config();
    c.reply_timeout_ms = u64::MAX;
    c.connect_timeout_ms = u64::MAX;
    let mut h = Harness::new(c);
    h.connected(u64::MAX - 10);
    h.s.handle_received(u64::MAX - 9, b"WELCOME dev interval=18446744073709551615\n");
    assert_eq!(h.s.poll_timeout(), Some(u64::MAX));
    h.now = u64::MAX;
    h.s.handle_timeout(u64::MAX);
    h.drain();
    assert!(h
        .take()
        .contains(&"18446744073709551615 down 0 Silent".to_string()));
}

proptest::proptest! {
    /// Whatever the server sends, in whatever pieces: no panic, the partial
    /// buffer stays within its bound, and the session keeps a deadline.
    #[test]
    fn garbage_from_the_server_never_panics(
        chunks in proptest::collection::vec(
            proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::prelude::any::<u8>(),
                    proptest::strategy::Just(b'\n'),
                    proptest::strategy::Just(b' '),
                ],
                0..40,
            ),
            0..20,
        ),
        prefix in proptest::prop_oneof![
            proptest::strategy::Just(&b""[..]),
            proptest::strategy::Just(&b"WELCOME dev interval=7 timeout=9\n"[..]),
            proptest::strategy::Just(&b"PONG "[..]),
        ],
    ) {
        let mut c = config();
        c.max_line = 24;
        let mut s = Session::new(c, 0).expect("valid");
        let mut now = 0;
        for chunk in std::iter::once(prefix.to_vec()).chain(chunks) {
            if s.phase() == Phase::Connecting {
                s.handle_connected(now);
            }
            s.handle_received(now, &chunk);
            proptest::prop_assert!(s.partial.len() <= 24 + 1);
            while s.poll_action().is_some() {}
            while let Some(b) = s.poll_transmit() {
                let n = b.len();
                s.handle_transmitted(n);
            }
            while s.poll_event().is_some() {}
            now += 3;
            s.handle_timeout(now);
            proptest::prop_assert!(s.poll_timeout().is_some());
        }
    }
}

// ---- the real server session, simulated --------------------------------

/// The server's real protocol logic ([`Sessions`], the same code `vigil
/// serve` runs) on the simulated link, with a few faults: it can be down
/// (connects are refused), hang (its kernel still takes our bytes, nothing
/// is read or answered, no deadline is checked) or push a line every
/// `push_every` ms. Its own deadlines run too: a connection it stops
/// hearing from for its timeout (1.5 intervals) gets `BYE timeout`.
struct SimServer {
    sessions: Sessions<LineProtocol, PresenceOnly>,
    /// The server's connections by slab key; `Pair` maps each client
    /// connection (its generation) to a key.
    conns: Vec<Option<ServerSession>>,
    up: bool,
    hung: bool,
    push_every: Option<u64>,
    /// The longest time the server went without a frame on a connection
    /// that stayed open.
    longest_silence: u64,
}

impl SimServer {
    fn new(interval_ms: u64) -> SimServer {
        let settings = Settings {
            interval_ms,
            timeout_ms: interval_ms * 3 / 2,
            max_pings: None,
            phi: None,
            hello_timeout_ms: None,
            max_frames: None,
            max_output: usize::MAX,
        };
        SimServer {
            sessions: Sessions::new(
                LineProtocol::default(),
                PresenceOnly,
                LocalPresence::default(),
                settings,
            ),
            conns: Vec::new(),
            up: true,
            hung: false,
            push_every: None,
            longest_silence: 0,
        }
    }

    /// Heartbeats the server has read.
    fn pings(&self) -> u64 {
        self.sessions.stats().heartbeats
    }

    /// A connection accepted at `now`: its key.
    fn accept(&mut self, now: u64) -> u32 {
        let key = self.conns.len() as u32;
        let peer = std::net::SocketAddr::from(([198, 18, 0, 2], 40_000));
        let session = self.sessions.handle_accept(now, key, peer, 0);
        self.conns.push(Some(session));
        key
    }

    /// Bytes from the client on connection `key`; returns what the server
    /// sends to each connection as a result (a takeover's BYE goes to the
    /// connection it replaces).
    fn receive(&mut self, now: u64, key: u32, bytes: &[u8]) -> Vec<(u32, Vec<u8>)> {
        if self.hung {
            return Vec::new();
        }
        if let Some(s) = self.conns[key as usize].as_mut() {
            let before = s.last_seen();
            self.sessions.handle_bytes(now, key, s, bytes);
            if s.last_seen() > before {
                self.longest_silence = self.longest_silence.max(s.last_seen() - before);
            }
        }
        self.outputs()
    }

    /// The earliest deadline of an open connection, unless hung.
    fn poll_timeout(&self) -> Option<u64> {
        if self.hung {
            return None;
        }
        self.conns
            .iter()
            .enumerate()
            .filter_map(|(key, s)| Some((key as u32, s.as_ref()?)))
            .filter(|(_, s)| s.is_open())
            .map(|(key, s)| self.sessions.deadline(key, s))
            .min()
    }

    fn handle_timeout(&mut self, now: u64) -> Vec<(u32, Vec<u8>)> {
        for key in 0..self.conns.len() as u32 {
            if let Some(s) = self.conns[key as usize].as_mut() {
                self.sessions.handle_timeout(now, key, s);
            }
        }
        self.outputs()
    }

    /// Applies the closes the sessions asked for and collects their bytes.
    fn outputs(&mut self) -> Vec<(u32, Vec<u8>)> {
        while let Some((c, reason)) = self.sessions.poll_close() {
            if let Some(s) = self.conns[c.key as usize].as_mut() {
                if s.generation() == c.generation {
                    self.sessions.handle_close(c.key, s, reason);
                }
            }
        }
        let mut out = Vec::new();
        while let Some(t) = self.sessions.poll_transmit() {
            out.push((t.to.key, t.bytes.to_vec()));
            if t.last {
                if let Some(slot) = self.conns.get_mut(t.to.key as usize) {
                    *slot = None;
                }
            }
        }
        while self.sessions.poll_event().is_some() {}
        out
    }
}

#[derive(Debug)]
enum Flight {
    ToClient(Vec<u8>),
    ToServer(Vec<u8>),
    Connected,
    Refused,
}

/// A NAT on the link that forgets a flow idle (no packet either way) for
/// `timeout_ms`, and from then on silently drops its packets, as carrier
/// NATs do. A new connection is a new flow.
struct Nat {
    timeout_ms: u64,
    last_packet: u64,
    forgotten: bool,
    dropped: u64,
}

impl Nat {
    fn new(timeout_ms: u64) -> Nat {
        Nat {
            timeout_ms,
            last_packet: 0,
            forgotten: false,
            dropped: 0,
        }
    }

    /// A NAT put on the link at `now` (the flow is fresh then).
    fn since(timeout_ms: u64, now: u64) -> Nat {
        Nat {
            last_packet: now,
            ..Nat::new(timeout_ms)
        }
    }

    /// Whether a packet sent at `now` gets through.
    fn pass(&mut self, now: u64) -> bool {
        if now.saturating_sub(self.last_packet) >= self.timeout_ms {
            self.forgotten = true;
        }
        if self.forgotten {
            self.dropped += 1;
            return false;
        }
        self.last_packet = now;
        true
    }
}

/// Which of the client's connections a flight belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Flow {
    Main,
    Probe,
}

/// A client session and a [`SimServer`] joined by a link with a fixed
/// one-way latency, run on a fake clock (quinn's `Pair` idea), optionally
/// through a [`Nat`]. The main connection and the probe connections are
/// separate flows: each has its own NAT mapping with the same timeout.
struct Pair {
    client: Session,
    server: SimServer,
    /// The server's key for each client connection, by flow and generation.
    server_keys: std::collections::HashMap<(Flow, u64), u32>,
    nat: Option<Nat>,
    /// The probe flow's mapping (a new one per probe connection).
    probe_nat: Option<Nat>,
    now: u64,
    latency: u64,
    /// What is on the wire: (arrival time, flow, connection generation, what).
    flights: Vec<(u64, Flow, u64, Flight)>,
    generation: u64,
    probe_generation: u64,
    next_push: Option<u64>,
    events: Vec<(u64, Event)>,
}

impl Pair {
    fn new(config: SessionConfig, server: SimServer) -> Pair {
        let client = Session::new(config, 0).expect("valid");
        let mut p = Pair {
            client,
            server,
            server_keys: std::collections::HashMap::new(),
            nat: None,
            probe_nat: None,
            now: 0,
            latency: 20,
            flights: Vec::new(),
            generation: 0,
            probe_generation: 0,
            next_push: None,
            events: Vec::new(),
        };
        p.outputs();
        p
    }

    fn send(&mut self, flight: Flight) {
        self.send_on(Flow::Main, flight);
    }

    fn send_on(&mut self, flow: Flow, flight: Flight) {
        if flow == Flow::Probe && matches!(flight, Flight::Connected | Flight::Refused) {
            self.probe_nat = self.nat.as_ref().map(|n| Nat::new(n.timeout_ms));
        }
        let nat = match flow {
            Flow::Main => &mut self.nat,
            Flow::Probe => &mut self.probe_nat,
        };
        if let Some(nat) = nat {
            let passes = match flight {
                Flight::ToClient(_) | Flight::ToServer(_) => nat.pass(self.now),
                // A new connection: a new flow, a new mapping.
                Flight::Connected | Flight::Refused => {
                    nat.forgotten = false;
                    nat.last_packet = self.now;
                    true
                }
            };
            if !passes {
                return;
            }
        }
        let generation = match flow {
            Flow::Main => self.generation,
            Flow::Probe => self.probe_generation,
        };
        self.flights
            .push((self.now + self.latency, flow, generation, flight));
    }

    /// Acts on everything the client asked for.
    fn outputs(&mut self) {
        while let Some(a) = self.client.poll_action() {
            self.generation += 1;
            match a {
                Action::Close => {}
                Action::Connect(_) => {
                    let f = if self.server.up {
                        Flight::Connected
                    } else {
                        Flight::Refused
                    };
                    self.send(f);
                }
            }
        }
        while let Some(b) = self.client.poll_transmit() {
            let (bytes, n) = (b.to_vec(), b.len());
            self.client.handle_transmitted(n);
            self.send(Flight::ToServer(bytes));
        }
        while let Some(a) = self.client.poll_probe_action() {
            self.probe_generation += 1;
            if let ProbeAction::Connect(_) = a {
                let f = if self.server.up {
                    Flight::Connected
                } else {
                    Flight::Refused
                };
                self.send_on(Flow::Probe, f);
            }
        }
        while let Some(b) = self.client.poll_probe_transmit() {
            let (bytes, n) = (b.to_vec(), b.len());
            self.client.handle_probe_transmitted(n);
            self.send_on(Flow::Probe, Flight::ToServer(bytes));
        }
        while let Some(e) = self.client.poll_event() {
            self.events.push((self.now, e));
        }
    }

    /// Runs until `until`, one event at a time in time order.
    fn run(&mut self, until: u64) {
        loop {
            let flight = self.flights.iter().map(|f| f.0).min();
            let server = self.server.poll_timeout();
            let next = [flight, self.client.poll_timeout(), self.next_push, server]
                .into_iter()
                .flatten()
                .min();
            let Some(next) = next.filter(|t| *t <= until) else {
                self.now = until;
                return;
            };
            self.now = next;
            if self.next_push == Some(next) {
                self.next_push = self.server.push_every.map(|p| next + p);
                if self.server.up && !self.server.hung {
                    self.send(Flight::ToClient(b"news\n".to_vec()));
                }
            } else if flight == Some(next) {
                let i = self.flights.iter().position(|f| f.0 == next).expect("due");
                let (_, flow, generation, f) = self.flights.remove(i);
                let current = match flow {
                    Flow::Main => self.generation,
                    Flow::Probe => self.probe_generation,
                };
                if generation != current {
                    continue; // belongs to a connection since closed
                }
                match (flow, f) {
                    (Flow::Main, Flight::Connected) => {
                        let key = self.server.accept(next);
                        self.server_keys.insert((flow, generation), key);
                        self.client.handle_connected(next);
                        self.next_push = self.server.push_every.map(|p| next + p);
                    }
                    (Flow::Probe, Flight::Connected) => {
                        let key = self.server.accept(next);
                        self.server_keys.insert((flow, generation), key);
                        self.client.handle_probe_connected(next);
                    }
                    (Flow::Main, Flight::Refused) => self
                        .client
                        .handle_closed(next, TransportEnd::Error(io::ErrorKind::ConnectionRefused)),
                    (Flow::Probe, Flight::Refused) => self.client.handle_probe_closed(
                        next,
                        TransportEnd::Error(io::ErrorKind::ConnectionRefused),
                    ),
                    (_, Flight::ToServer(b)) => {
                        let key = self.server_keys[&(flow, generation)];
                        let answer = self.server.receive(next, key, &b);
                        self.deliver(answer);
                    }
                    (Flow::Main, Flight::ToClient(b)) => self.client.handle_received(next, &b),
                    (Flow::Probe, Flight::ToClient(b)) => {
                        self.client.handle_probe_received(next, &b)
                    }
                }
            } else if server == Some(next) {
                let answer = self.server.handle_timeout(next);
                self.deliver(answer);
            } else {
                self.client.handle_timeout(next);
            }
            self.outputs();
        }
    }

    /// Sends the server's bytes for the client's current connection; those
    /// for connections the client has left go nowhere.
    fn deliver(&mut self, answer: Vec<(u32, Vec<u8>)>) {
        let main = self
            .server_keys
            .get(&(Flow::Main, self.generation))
            .copied();
        let probe = self
            .server_keys
            .get(&(Flow::Probe, self.probe_generation))
            .copied();
        for (key, bytes) in answer {
            if bytes.is_empty() {
                continue;
            }
            if Some(key) == main {
                self.send_on(Flow::Main, Flight::ToClient(bytes));
            } else if Some(key) == probe {
                self.send_on(Flow::Probe, Flight::ToClient(bytes));
            }
        }
    }

    fn disconnects(&self) -> Vec<(u64, DisconnectReason)> {
        self.events
            .iter()
            .filter_map(|(t, e)| match e {
                Event::Disconnected { reason, .. } => Some((*t, *reason)),
                _ => None,
            })
            .collect()
    }
}

#[test]
fn an_hour_with_a_healthy_server() {
    let mut c = SessionConfig::new("dev", 1);
    c.seed = 3;
    let mut p = Pair::new(c, SimServer::new(30_000));
    p.run(3_600_000);
    assert_eq!(p.disconnects(), []);
    // One beat per interval, each answered within the link's round trip.
    assert!(
        (118..=120).contains(&p.server.pings()),
        "{}",
        p.server.pings()
    );
    let rtts: Vec<u64> = p
        .events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::Pong { rtt_ms, .. } => Some(*rtt_ms),
            _ => None,
        })
        .collect();
    assert!(rtts.iter().all(|r| *r == 40), "{rtts:?}");
    assert!(
        p.server.longest_silence <= 30_000,
        "{}",
        p.server.longest_silence
    );
}

#[test]
fn a_pushy_server_still_hears_from_a_quiet_client() {
    let mut server = SimServer::new(30_000);
    server.push_every = Some(1_000);
    let mut p = Pair::new(SessionConfig::new("dev", 1), server);
    p.run(600_000);
    assert_eq!(p.disconnects(), []);
    // The server's timeout is 45 s; it never waited more than an interval.
    assert!(
        p.server.longest_silence <= 30_000,
        "{}",
        p.server.longest_silence
    );
    assert!(p.server.pings() >= 19, "{}", p.server.pings());
}

#[test]
fn a_hung_server_is_declared_dead_and_a_restart_is_rejoined() {
    let mut server = SimServer::new(30_000);
    server.push_every = None;
    let mut c = SessionConfig::new("dev", 1);
    c.seed = 5;
    let mut p = Pair::new(c, server);
    p.run(100_000);
    // Hang: TCP still takes our bytes, nothing comes back.
    p.server.hung = true;
    p.run(200_000);
    let downs = p.disconnects();
    let (t, reason) = downs[0];
    assert_eq!(reason, DisconnectReason::PingTimeout);
    // Last heard (a PONG) at most one interval before the unanswered ping.
    assert!((100_000..=100_000 + 30_000 + 10_000).contains(&t), "{t}");
    // While hung it accepts connections but never welcomes.
    assert!(
        downs[1..]
            .iter()
            .all(|(_, r)| *r == DisconnectReason::NoWelcome),
        "{downs:?}"
    );
    // Crash and restart: refused for a while, then back.
    p.server.hung = false;
    p.server.up = false;
    p.run(260_000);
    p.server.up = true;
    p.run(400_000);
    let after: Vec<DisconnectReason> = p
        .disconnects()
        .into_iter()
        .filter(|(t, _)| *t > 260_000)
        .map(|(_, r)| r)
        .collect();
    assert!(
        after
            .iter()
            .all(|r| *r == DisconnectReason::Failed(io::ErrorKind::ConnectionRefused)),
        "{after:?}"
    );
    assert_eq!(p.client.phase(), Phase::Online);
    // The last login was answered, and the backoff never waited over the cap.
    assert!(p
        .events
        .iter()
        .rev()
        .any(|(_, e)| matches!(e, Event::Welcome { .. })));
    for (_, e) in &p.events {
        if let Event::ReconnectScheduled { delay_ms, .. } = e {
            assert!(*delay_ms <= DEFAULT_BACKOFF_CAP_MS);
        }
    }
}

// ---- the adaptive interval against a simulated NAT ----------------------

/// An adaptive session (`min..max`, reply timeout 1 s) against a server
/// whose own timeout is far away (45 s).
fn adaptive_pair(min_ms: u64, max_ms: u64, tune: impl FnOnce(&mut AdaptiveConfig)) -> Pair {
    let mut a = AdaptiveConfig::new(min_ms, max_ms);
    tune(&mut a);
    let mut c = SessionConfig::new("dev", 1);
    c.interval = IntervalPolicy::Adaptive(a);
    c.reply_timeout_ms = 1_000;
    c.seed = 9;
    Pair::new(c, SimServer::new(30_000))
}

fn interval_changes(p: &Pair) -> Vec<(u64, u64, u64, ChangeReason)> {
    p.events
        .iter()
        .filter_map(|(t, e)| match e {
            Event::IntervalChanged {
                from_ms,
                to_ms,
                reason,
            } => Some((*t, *from_ms, *to_ms, *reason)),
            _ => None,
        })
        .collect()
}

/// Moves the clock to `until` like [`Harness::at`], answering every main
/// `PING` 5 ms after it goes out.
fn answering(h: &mut Harness, until: u64) {
    let mut answered = h.pings.len();
    while let Some(d) = h.s.poll_timeout().filter(|d| *d <= until) {
        h.at(d);
        while answered < h.pings.len() {
            let (seq, _, sent) = h.pings[answered];
            answered += 1;
            if sent + 5 <= until {
                h.recv(sent + 5, format!("PONG {seq}\n").as_bytes());
            }
        }
    }
    h.at(until);
}

fn probes(p: &Pair) -> Vec<(u64, u64, ProbeOutcome)> {
    p.events
        .iter()
        .filter_map(|(t, e)| match e {
            Event::Probe {
                interval_ms,
                outcome,
            } => Some((*t, *interval_ms, *outcome)),
            _ => None,
        })
        .collect()
}

#[test]
fn adaptive_trace_probe_answered_lost_and_server_cap() {
    let mut c = config();
    c.interval = IntervalPolicy::Adaptive(AdaptiveConfig::new(1_000, 10_000));
    let mut h = Harness::new(c);
    h.connected(0);
    // The server's timeout (5 s) caps the search at 4.5 s.
    h.recv(4, b"WELCOME dev interval=30000 timeout=5000\n");
    assert_eq!(h.s.adaptive().map(|a| a.ceiling()), Some(4_500));
    check(
        &mut h,
        &[
            "0 connect 0",
            "0 tx HELLO dev",
            "0 connected 0",
            "4 welcome interval=1000 server=30000 timeout=Some(5000)",
            // Online: the first probe (2 s) starts at once, on its own socket.
            "4 probe-connect 0",
        ],
    );
    // Silent for 2 s after it connects, then a PING without HELLO. The
    // main connection beats at 1 s meanwhile (its PONGs come 5 ms later).
    h.probe_connected(10);
    answering(&mut h, 2_010);
    h.probe_recv(2_015, b"PONG 3\n");
    check(
        &mut h,
        &[
            "1000 tx PING 1",
            "1005 pong 1 rtt=5",
            "2000 tx PING 2",
            "2005 pong 2 rtt=5",
            "2010 probe-tx PING 3",
            "2015 probe-close",
            "2015 probe 2000 answered",
            // Only now does the main connection move: 2 s less 10%.
            "2015 interval 1000->1800 probe",
        ],
    );
    // Next candidate: 4 s; no PONG within the reply timeout (300 ms).
    h.probe_connected(2_020);
    answering(&mut h, 6_400);
    let trace = h.take_without("pong ");
    assert!(
        trace.contains(&"2015 probe-connect 0".to_owned()),
        "{trace:?}"
    );
    assert!(
        trace.contains(&"6020 probe-tx PING 6".to_owned()),
        "{trace:?}"
    );
    assert!(
        trace.contains(&"6320 probe 4000 lost".to_owned()),
        "{trace:?}"
    );
    // The main connection never beat at more than 1.8 s, and is still up.
    assert!(trace.iter().all(|l| !l.contains("interval ")), "{trace:?}");
    assert!(trace.iter().all(|l| !l.contains("down")), "{trace:?}");
    assert_eq!(h.s.adaptive().and_then(|a| a.failed()), Some(4_000));
    // A probe reset during its silence (a NAT that resets a forgotten
    // flow) is a loss; a refused probe connect proves nothing.
    assert_eq!(h.s.adaptive().and_then(|a| a.running()), Some(3_000));
    h.probe_connected(6_400);
    h.probe_closed(6_450, TransportEnd::Error(io::ErrorKind::ConnectionReset));
    assert_eq!(h.s.adaptive().and_then(|a| a.failed()), Some(3_000));
    answering(&mut h, 6_450);
    assert_eq!(h.s.adaptive().and_then(|a| a.running()), Some(2_500));
    h.probe_closed(6_460, TransportEnd::Error(io::ErrorKind::ConnectionRefused));
    let trace = h.take();
    assert!(
        trace.contains(&"6460 probe 2500 inconclusive".to_owned()),
        "{trace:?}"
    );
    // Retried after the candidate's length.
    answering(&mut h, 8_959);
    assert!(!h.s.probe_active());
    answering(&mut h, 8_960);
    assert!(h.s.probe_active());
    // Bytes during the silence break it; a BYE ends it: both inconclusive.
    h.probe_connected(8_970);
    h.probe_recv(8_980, b"ERR unexpected\n");
    assert!(h
        .take()
        .contains(&"8980 probe 2500 inconclusive".to_owned()));
    // The main connection ends: the probe goes with it, unjudged.
    answering(&mut h, 11_480);
    assert!(h.s.probe_active());
    h.closed(11_500, TransportEnd::Eof);
    assert!(!h.s.probe_active());
    let trace = h.take();
    assert!(trace.contains(&"11500 probe-close".to_owned()), "{trace:?}");
    assert!(trace.iter().all(|l| !l.contains("probe 2500")), "{trace:?}");
    assert_eq!(h.s.adaptive().map(|a| a.proven()), Some(2_000));
}

#[test]
fn probe_garbage_never_panics_and_is_bounded() {
    let mut c = config();
    c.interval = IntervalPolicy::Adaptive(AdaptiveConfig::new(1_000, 10_000));
    c.max_line = 64;
    let mut h = Harness::new(c);
    h.online(0, 30_000);
    h.take();
    h.probe_connected(5);
    answering(&mut h, 2_005);
    // Other PONGs and lines are skipped; an over-long line ends the probe.
    h.probe_recv(2_006, b"PONG 999\nnews\n");
    assert!(h.s.probe_active());
    h.probe_recv(2_007, &[b'x'; 200]);
    assert!(!h.s.probe_active());
    // Inputs for a probe that is not there are ignored.
    h.probe_recv(2_008, b"PONG 3\n");
    h.probe_closed(2_009, TransportEnd::Eof);
    h.s.handle_probe_connected(2_010);
    h.s.handle_probe_transmitted(1_000);
    assert!(!h.s.probe_active());
    let trace = h.take();
    assert!(
        trace.contains(&"2007 probe 2000 inconclusive".to_owned()),
        "{trace:?}"
    );
    // A BYE under the PING proves nothing; an end of stream under it is a
    // loss (a NAT answering a forgotten flow with a reset, or a FIN).
    answering(&mut h, 4_007);
    assert!(h.s.probe_active());
    h.probe_connected(4_010);
    answering(&mut h, 6_010);
    h.probe_recv(6_011, b"BYE shutdown\n");
    assert!(h
        .take()
        .contains(&"6011 probe 2000 inconclusive".to_owned()));
    answering(&mut h, 8_011);
    h.probe_connected(8_012);
    answering(&mut h, 10_012);
    h.probe_closed(10_013, TransportEnd::Eof);
    let trace = h.take();
    assert!(
        trace.contains(&"10013 probe 2000 lost".to_owned()),
        "{trace:?}"
    );
    assert_eq!(h.s.adaptive().and_then(|a| a.failed()), Some(2_000));
}

/// The main connection is never lost to the search: over twelve hours
/// behind NATs from 30 s to 30 min, every loss is a probe's.
#[test]
fn probes_never_cost_the_main_connection() {
    for nat_ms in [30_000, 60_000, 300_000, 600_000, 1_800_000] {
        let mut a = AdaptiveConfig::new(10_000, 3_600_000);
        a.reprobe_after = 10;
        let mut c = SessionConfig::new("dev", 1);
        c.interval = IntervalPolicy::Adaptive(a);
        c.reply_timeout_ms = 5_000;
        c.seed = 9;
        // The server's own timeout (90 min) is far away: only the NAT limits.
        let mut p = Pair::new(c, SimServer::new(3_600_000));
        p.nat = Some(Nat::new(nat_ms));
        p.run(12 * 3_600_000);
        assert_eq!(p.disconnects(), [], "NAT {nat_ms}");
        // One connection, one login: the server saw no offline/online flap.
        let welcomes = p
            .events
            .iter()
            .filter(|(_, e)| matches!(e, Event::Welcome { .. }))
            .count();
        assert_eq!(welcomes, 1, "NAT {nat_ms}");
        let held = p.client.interval_ms().expect("online");
        assert!(
            held < nat_ms && held * 100 >= nat_ms * 80,
            "NAT {nat_ms}: held {held}"
        );
        assert!(p.client.adaptive().is_some_and(|a| a.is_settled()));
        // The probes did meet the NAT, and every interval the main
        // connection used was proven by a probe first.
        let probes = probes(&p);
        assert!(
            probes.iter().any(|(_, _, o)| *o == ProbeOutcome::Lost),
            "NAT {nat_ms}: {probes:?}"
        );
        for (t, from, to, reason) in interval_changes(&p) {
            assert!(to < nat_ms, "NAT {nat_ms}: {from}->{to} {reason} at {t}");
            assert!(
                probes
                    .iter()
                    .any(|(pt, i, o)| *pt <= t && *o == ProbeOutcome::Answered && *i >= to),
                "NAT {nat_ms}: {to} unproven at {t}"
            );
        }
        // The main connection kept the NAT mapping alive all along.
        assert_eq!(p.nat.as_ref().map(|n| n.dropped), Some(0));
        // The failed bound is probed again ever less often.
        let bound = p.client.adaptive().and_then(|a| a.failed()).expect("bound");
        let retries: Vec<u64> = probes
            .iter()
            .filter(|(_, i, _)| *i == bound)
            .map(|(t, _, _)| *t)
            .collect();
        let gaps: Vec<u64> = retries.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(
            gaps.windows(2).all(|g| g[1] >= g[0]),
            "NAT {nat_ms}: {gaps:?}"
        );
    }
}

#[test]
fn without_a_nat_the_probes_climb_to_the_max() {
    let mut a = AdaptiveConfig::new(1_000, 20_000);
    a.reprobe_after = 4;
    let mut c = SessionConfig::new("dev", 1);
    c.interval = IntervalPolicy::Adaptive(a);
    c.reply_timeout_ms = 1_000;
    let mut p = Pair::new(c, SimServer::new(30_000));
    p.run(600_000);
    assert_eq!(p.disconnects(), []);
    let changes: Vec<(u64, u64)> = interval_changes(&p).iter().map(|c| (c.1, c.2)).collect();
    // Each step is a probe proven, less the 10% margin.
    assert_eq!(
        changes,
        [
            (1_000, 1_800),
            (1_800, 3_600),
            (3_600, 7_200),
            (7_200, 14_400),
            (14_400, 18_000)
        ]
    );
    // At the ceiling with nothing failed: no more probes.
    let after = probes(&p).last().map(|x| x.0).unwrap_or_default();
    assert!(after < 100_000, "{:?}", probes(&p));
    // The server's longest silence is a probe's: 20 s and the link's latency.
    assert!(
        p.server.longest_silence <= 20_000 + p.latency,
        "{}",
        p.server.longest_silence
    );
}

#[test]
fn a_main_loss_at_a_proven_interval_restarts_from_min() {
    // The NAT is generous while the search runs, then a new one (3 s)
    // takes over: the main connection's next beat is lost.
    let mut p = adaptive_pair(400, 20_000, |a| a.reprobe_after = 4);
    p.run(200_000);
    let held = p.client.interval_ms().expect("online");
    assert!(held >= 3_000, "{held}");
    p.nat = Some(Nat::since(3_000, p.now));
    p.run(400_000);
    let downs = p.disconnects();
    assert_eq!(downs.len(), 1, "{downs:?}");
    let changes = interval_changes(&p);
    assert!(
        changes
            .iter()
            .any(|c| c.3 == ChangeReason::Loss && c.2 == 400),
        "{changes:?}"
    );
    // Then the probes find the new NAT without another main loss.
    let held = p.client.interval_ms().expect("online");
    assert!((2_400..3_000).contains(&held), "{held}: {changes:?}");
}

// ---- foreground and background, network changes ------------------------

/// The `PingSent` times in `from..to`.
fn pings_between(p: &Pair, from: u64, to: u64) -> Vec<u64> {
    p.events
        .iter()
        .filter(|(t, e)| (from..to).contains(t) && matches!(e, Event::PingSent { .. }))
        .map(|(t, _)| *t)
        .collect()
}

fn gaps(times: &[u64]) -> Vec<u64> {
    times.windows(2).map(|w| w[1] - w[0]).collect()
}

#[test]
fn foreground_is_fixed_and_background_starts_with_minimum_beats() {
    let mut c = SessionConfig::new("dev", 1);
    c.interval = IntervalPolicy::Adaptive(AdaptiveConfig::new(1_000, 20_000));
    c.reply_timeout_ms = 1_000;
    c.foreground_interval_ms = std::num::NonZeroU64::new(5_000);
    let mut p = Pair::new(c, SimServer::new(30_000));
    // The default is the background: the search runs, the beats follow.
    assert_eq!(p.client.mode(), Mode::Background);
    p.run(300_000);
    assert_eq!(p.client.interval_ms(), Some(18_000));
    // Foreground: the fixed interval at once.
    assert!(p.client.set_mode(300_000, Mode::Foreground));
    assert!(!p.client.set_mode(300_000, Mode::Foreground));
    assert_eq!(p.client.interval_ms(), Some(5_000));
    p.run(360_000);
    let fg = pings_between(&p, 300_000, 360_000);
    assert!(gaps(&fg).iter().all(|g| *g == 5_000), "{fg:?}");
    assert!(fg.len() >= 11, "{fg:?}");
    // Background again: three beats at the minimum, then the adaptive one.
    assert!(p.client.set_mode(360_000, Mode::Background));
    assert_eq!(p.client.interval_ms(), Some(1_000));
    // The shorter interval is overdue: a driver fires it at once.
    p.client.handle_timeout(360_000);
    p.outputs();
    p.run(460_000);
    let bg = pings_between(&p, 360_000, 460_000);
    let bg_gaps = gaps(&bg);
    assert_eq!(&bg_gaps[..2], [1_000, 1_000], "{bg:?}");
    assert!(bg_gaps[2..].iter().all(|g| *g == 18_000), "{bg:?}");
    assert_eq!(p.client.interval_ms(), Some(18_000));
    assert_eq!(p.disconnects(), []);
}

#[test]
fn modes_change_nothing_without_an_adaptive_policy() {
    let mut p = Pair::new(SessionConfig::new("dev", 1), SimServer::new(10_000));
    p.run(50_000);
    assert!(p.client.set_mode(50_000, Mode::Foreground));
    assert_eq!(p.client.interval_ms(), Some(10_000));
    assert!(p.client.set_mode(50_000, Mode::Background));
    assert_eq!(p.client.interval_ms(), Some(10_000));
}

#[test]
fn a_network_change_reconnects_at_once_and_keeps_what_was_learned() {
    let home = NetworkKey {
        local: Some([10, 0, 0, 2].into()),
        gateway: Some([10, 0, 0, 1].into()),
    };
    let office = NetworkKey {
        local: Some([192, 168, 1, 7].into()),
        gateway: Some([192, 168, 1, 1].into()),
    };
    let mut p = adaptive_pair(400, 20_000, |a| a.reprobe_after = 4);
    p.nat = Some(Nat::new(3_000));
    p.client.handle_network(0, home);
    p.run(200_000);
    let at_home = p.client.interval_ms().expect("online");
    assert!((2_400..3_000).contains(&at_home), "{at_home}");

    // The phone moves to the office (a 10 s NAT): reconnect at once, to
    // the same server, and search from scratch.
    p.client.handle_network_change(200_000);
    p.outputs();
    p.nat = Some(Nat::since(10_000, 200_000));
    let moved: Vec<String> = p
        .events
        .iter()
        .filter(|(t, _)| *t == 200_000)
        .map(|(_, e)| show_event(e))
        .collect();
    assert_eq!(
        moved,
        [
            format!("interval {at_home}->400 network"),
            "down 0 Failed(NetworkDown)".to_owned(),
            "reconnect 0 attempt=0 delay=0".to_owned(),
        ]
    );
    p.run(200_100);
    assert_eq!(p.client.phase(), Phase::Online);
    p.client.handle_network(200_100, office);
    assert_eq!(p.client.network(), Some(office));
    p.run(600_000);
    let at_office = p.client.interval_ms().expect("online");
    assert!((8_000..10_000).contains(&at_office), "{at_office}");

    // Back home: what was learned there applies as soon as it is known.
    p.client.handle_network_change(600_000);
    p.outputs();
    p.nat = Some(Nat::since(3_000, 600_000));
    p.run(600_100);
    p.client.handle_network(600_100, home);
    assert_eq!(p.client.interval_ms(), Some(at_home));
    p.run(700_000);
    // The only disconnects were the two moves.
    let downs = p.disconnects();
    assert_eq!(
        downs,
        [
            (
                200_000,
                DisconnectReason::Failed(io::ErrorKind::NetworkDown)
            ),
            (
                600_000,
                DisconnectReason::Failed(io::ErrorKind::NetworkDown)
            ),
        ]
    );
    // A network noticed late (no change reported first) also switches.
    p.client.handle_network(700_000, office);
    assert_eq!(p.client.interval_ms(), Some(at_office));
}

#[test]
fn a_network_change_cuts_a_backoff_wait_short() {
    let mut h = Harness::new(config());
    h.connected(0);
    h.closed(10, TransportEnd::Error(io::ErrorKind::NetworkUnreachable));
    h.take();
    // Backoff 0 in this config: waiting until 10; a long one shown by hand.
    h.s.state = State::Waiting { until: 60_000 };
    h.now = 20;
    h.s.handle_network_change(20);
    h.drain();
    check(&mut h, &["20 connect 0"]);
}

// ---- the φ accrual detector -------------------------------------------------

/// A client beating every second (reply timeout 5 s) against the real
/// server session, which hangs at 60 s: the fixed rule gives up a reply
/// timeout after the unanswered ping; φ, having learned that a PONG comes
/// every second, gives up about a second and a half after the last one.
/// Neither gives up on a healthy server in the ten minutes before.
#[test]
fn phi_finds_a_hung_server_sooner_and_never_a_healthy_one() {
    let mut detected = Vec::new();
    for detector in [
        crate::detector::Detector::Fixed,
        crate::detector::Detector::Phi(crate::detector::PhiConfig::new(8.0, 100)),
    ] {
        let mut c = SessionConfig::new("dev", 1);
        c.interval = IntervalPolicy::Fixed(1_000);
        c.reply_timeout_ms = 5_000;
        c.seed = 4;
        let mut p = Pair::new(c, SimServer::new(30_000));
        p.client.set_detector(detector);
        p.run(600_000);
        assert_eq!(p.disconnects(), [], "{detector:?}");
        let last_pong = p
            .events
            .iter()
            .rev()
            .find_map(|(t, e)| matches!(e, Event::Pong { .. }).then_some(*t))
            .expect("pongs");
        p.server.hung = true;
        p.run(700_000);
        let (t, reason) = p.disconnects()[0];
        detected.push((t - last_pong, reason));
    }
    // Fixed: the next ping (1 s after the last PONG) and 5 s of waiting.
    let (fixed, fixed_reason) = detected[0];
    assert_eq!(fixed_reason, DisconnectReason::PingTimeout);
    assert!((5_900..=6_100).contains(&fixed), "{detected:?}");
    // φ: the mean interval (1 s) plus 5.2 σ (σ = 100 ms, the minimum).
    let (phi, phi_reason) = detected[1];
    assert_eq!(phi_reason, DisconnectReason::Silent);
    assert!((1_400..=1_600).contains(&phi), "{detected:?}");
}
