//! WebSocket connections in the simulation: wire 0 is the line protocol
//! on TCP, wire 1 the line protocol inside WebSocket. The trace shows
//! what a WebSocket connection is sent as its frames: a text frame as its
//! text, `(ping)`, `(pong x)`, `(close 1008 replaced)`, and the HTTP
//! answer to the handshake as its status line.

use super::*;
use crate::protocol::ws::{self as wsp, Opcode};

/// A server with a line listener (wire 0) and a WebSocket one (wire 1)
/// that pings after `ping_after` of silence.
fn sim(ping_after: Option<Tick>) -> Sim {
    let mut sim = Sim::with(LineProtocol::default(), settings(), false);
    sim.s = Sessions::with_wires(
        vec![
            Wire::plain(LineProtocol::default()),
            Wire::websocket(LineProtocol::default(), ping_after),
        ],
        App {
            log: None,
            verifier: None,
        },
        LocalPresence::default(),
        settings(),
    );
    sim.s.set_websocket(crate::server::session::ws::WsOptions {
        handshake_timeout_ms: 2000,
        origins: vec!["http://good.example".into()],
    });
    sim
}

/// What a browser sends to open the connection.
const UPGRADE: &[u8] = b"GET /chat HTTP/1.1\r\nHost: vigil\r\nUpgrade: websocket\r\n\
Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
Origin: http://good.example\r\nSec-WebSocket-Version: 13\r\n\r\n";

/// A masked client frame.
fn frame(fin: bool, opcode: Opcode, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    wsp::encode_header(&mut out, fin, opcode, Some([7, 1, 9, 200]), payload.len());
    let start = out.len();
    out.extend_from_slice(payload);
    wsp::apply_mask(&mut out[start..], [7, 1, 9, 200], 0);
    out
}

fn text(line: &str) -> Vec<u8> {
    frame(true, Opcode::Text, line.as_bytes())
}

/// What a connection was sent, one line per frame (see the module docs).
pub(super) fn render(mut bytes: &[u8]) -> String {
    let mut out = String::new();
    if bytes.starts_with(b"HTTP/") {
        let end = bytes
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map_or(bytes.len(), |i| i + 4);
        let head = String::from_utf8_lossy(&bytes[..end]);
        out.push_str(head.lines().next().unwrap_or(""));
        out.push('\n');
        bytes = &bytes[end..];
        // A refusal's body is text, not frames.
        if !head.starts_with("HTTP/1.1 101") {
            return out;
        }
    }
    while !bytes.is_empty() {
        let h = wsp::parse_header(bytes)
            .expect("a valid frame")
            .expect("a whole frame");
        assert!(h.mask.is_none(), "a server frame is never masked");
        let end = h.frame_len().expect("fits");
        let payload = &bytes[h.header_len..end];
        let shown = match h.opcode {
            Opcode::Text => String::from_utf8_lossy(payload).into_owned(),
            Opcode::Ping => "(ping)".to_owned(),
            Opcode::Pong => format!("(pong {})", payload.escape_ascii()),
            Opcode::Close => match wsp::parse_close(payload) {
                Ok(Some((code, why))) => format!("(close {code} {why})"),
                other => format!("(close {other:?})"),
            },
            other => format!("({other:?})"),
        };
        assert!(!shown.contains('\n'), "one line per frame: {shown:?}");
        out.push_str(&shown);
        out.push('\n');
        bytes = &bytes[end..];
    }
    out
}

/// A WebSocket connection at `t`, upgraded at `t + 1`; its key.
fn upgraded(sim: &mut Sim, t: Tick) -> u32 {
    let c = sim.connect_on(t, 1);
    sim.send(t + 1, c, UPGRADE);
    c
}

#[test]
fn a_websocket_is_online_once_upgraded_and_speaks_one_line_per_frame() {
    let mut sim = sim(None);
    let c = sim.connect_on(0, 1);
    check(&mut sim, &[]);
    sim.send(10, c, UPGRADE);
    sim.send(20, c, &text("HELLO dev"));
    let mut two = text("PING 1");
    two.extend(text("PING\n"));
    sim.send(30, c, &two);
    check(
        &mut sim,
        &[
            "10 c0 < HTTP/1.1 101 Switching Protocols",
            "10 online #1",
            "20 c0 < WELCOME dev interval=1000 timeout=3000",
            "20 hello #1 dev",
            "30 c0 < PONG 1 | PONG",
        ],
    );
    // Its input buffer is gone once nothing is partial.
    assert_eq!(
        sim.conns[c as usize]
            .as_ref()
            .unwrap()
            .session
            .input
            .capacity(),
        None
    );
}

#[test]
fn reads_split_anywhere_give_the_same_trace() {
    // The upgrade, a HELLO fragmented around a ping, and a PING, in one
    // read, then the same bytes one per read.
    let mut all = UPGRADE.to_vec();
    all.extend(frame(false, Opcode::Text, b"HEL"));
    all.extend(frame(true, Opcode::Ping, b"p1"));
    all.extend(frame(false, Opcode::Continuation, b"LO "));
    all.extend(frame(true, Opcode::Continuation, b"dev"));
    all.extend(text("PING 7"));
    let whole = {
        let mut sim = sim(None);
        let c = sim.connect_on(0, 1);
        sim.send(10, c, &all);
        sim.take()
    };
    assert_eq!(
        whole,
        [
            "10 c0 < HTTP/1.1 101 Switching Protocols | (pong p1) | WELCOME dev interval=1000 \
             timeout=3000 | PONG 7",
            "10 online #1",
            "10 hello #1 dev",
        ]
    );
    let mut sim = sim(None);
    let c = sim.connect_on(0, 1);
    for b in &all {
        sim.send(10, c, std::slice::from_ref(b));
    }
    let bytewise: Vec<String> = sim.take();
    // The same outputs and events, one transmit per read that completed one.
    let joined = bytewise.join(" ");
    for want in [
        "HTTP/1.1 101",
        "(pong p1)",
        "WELCOME dev",
        "PONG 7",
        "online #1",
        "hello #1 dev",
    ] {
        assert!(joined.contains(want), "{want} missing from {bytewise:?}");
    }
    assert_eq!(bytewise.len(), whole.len() + 3, "{bytewise:?}");
}

#[test]
fn the_server_pings_a_silent_page_and_its_pong_keeps_it_online() {
    let mut sim = sim(Some(1000));
    let c = upgraded(&mut sim, 0);
    sim.send(20, c, &text("HELLO tab"));
    sim.take();
    // Silent for an interval (1000 ms after 20): one ping, at the first
    // tick after; the browser's automatic pong is life.
    sim.at(1150);
    sim.send(1150, c, &frame(true, Opcode::Pong, b""));
    sim.at(2200);
    sim.send(2210, c, &frame(true, Opcode::Pong, b""));
    check(&mut sim, &["1100 c0 < (ping)", "2200 c0 < (ping)"]);
    // Many intervals on pongs alone: never offline.
    for i in 0..20 {
        let t = 3300 + i * 1100;
        sim.at(t);
        sim.send(t + 5, c, &frame(true, Opcode::Pong, b""));
    }
    assert!(sim.is_open(c));
    assert_eq!(sim.s.stats().server_pings, 22);
    // The tab dies: one more ping, then `timeout` after its last pong.
    sim.take();
    sim.at(30_000);
    check(
        &mut sim,
        &[
            "25300 c0 < (ping)",
            "27300 c0 < BYE timeout | (close 1000 timeout) [end]",
            "27300 offline #1 tab timeout",
        ],
    );
}

#[test]
fn without_server_pings_a_silent_page_times_out() {
    let mut sim = sim(None);
    let c = upgraded(&mut sim, 0);
    sim.send(20, c, &text("HELLO tab"));
    sim.take();
    sim.at(4000);
    check(
        &mut sim,
        &[
            "3100 c0 < BYE timeout | (close 1000 timeout) [end]",
            "3100 offline #1 tab timeout",
        ],
    );
}

#[test]
fn a_tcp_client_and_a_page_take_an_id_over_from_each_other() {
    let mut sim = sim(None);
    let tcp = sim.connect(0);
    sim.send(5, tcp, b"HELLO pat\n");
    let page = upgraded(&mut sim, 10);
    sim.send(20, page, &text("HELLO pat"));
    let tcp2 = sim.connect(30);
    sim.send(40, tcp2, b"HELLO pat\n");
    check(
        &mut sim,
        &[
            "0 online #1",
            "5 c0 < WELCOME pat interval=1000 timeout=3000",
            "5 hello #1 pat",
            "11 c1 < HTTP/1.1 101 Switching Protocols",
            "11 online #2",
            "20 c1 < WELCOME pat interval=1000 timeout=3000",
            "20 c0 < BYE replaced [end]",
            "20 offline #1 pat replaced",
            "20 hello #2 pat",
            "30 online #3",
            "40 c2 < WELCOME pat interval=1000 timeout=3000",
            "40 c1 < BYE replaced | (close 1008 replaced) [end]",
            "40 offline #2 pat replaced",
            "40 hello #3 pat",
        ],
    );
}

#[test]
fn a_broadcast_reaches_each_wire_in_its_own_framing() {
    let mut sim = sim(None);
    let a = sim.connect(0);
    sim.send(1, a, b"HELLO a\n");
    let b = upgraded(&mut sim, 2);
    sim.send(4, b, &text("HELLO b"));
    let c = sim.connect(5);
    sim.send(6, c, b"HELLO c\n");
    sim.take();
    sim.send(10, a, b"all hi there\n");
    sim.send(20, b, &text("all from the page"));
    let got = sim.take();
    assert!(got.contains(&"10 c1 < hi there".to_owned()), "{got:?}");
    assert!(got.contains(&"10 c2 < hi there".to_owned()), "{got:?}");
    assert!(got.contains(&"20 c0 < from the page".to_owned()), "{got:?}");
    assert!(got.contains(&"20 c2 < from the page".to_owned()), "{got:?}");
    // The raw bytes: a frame to the page, a line to the others.
    let mut sim2 = sim;
    sim2.send(30, c, b"all x\n");
    let mut raw = Vec::new();
    wsp::encode_frame(&mut raw, Opcode::Text, None, b"x");
    assert_eq!(render(&raw), "x\n");
}

#[test]
fn a_close_frame_is_answered_and_ends_the_connection() {
    let mut sim = sim(None);
    let c = upgraded(&mut sim, 0);
    sim.send(10, c, &text("HELLO dev"));
    sim.take();
    let mut bye = Vec::new();
    wsp::encode_close(&mut bye, 1001, "tab closed", Some([1, 2, 3, 4]));
    sim.send(20, c, &bye);
    check(
        &mut sim,
        &[
            "20 c0 < (close 1000 closed) [end]",
            "20 offline #1 dev closed",
        ],
    );
}

/// Bytes after the upgrade and a HELLO, and what they end in.
#[track_caller]
fn refused(input: &[u8], reason: &str, close: &str) {
    let mut sim = sim(None);
    let c = upgraded(&mut sim, 0);
    sim.send(10, c, &text("HELLO dev"));
    sim.take();
    sim.send(20, c, input);
    check(
        &mut sim,
        &[
            &format!("20 c0 < BYE {reason} | (close {close} {reason}) [end]"),
            &format!("20 offline #1 dev {reason}"),
        ],
    );
}

#[test]
fn frames_that_break_rfc_6455_close_with_their_code() {
    // Unmasked.
    let mut unmasked = Vec::new();
    wsp::encode_frame(&mut unmasked, Opcode::Text, None, b"PING");
    refused(&unmasked, "bad-frame", "1002");
    // A reserved bit, an unknown opcode.
    let mut rsv = text("PING");
    rsv[0] |= 0x40;
    refused(&rsv, "bad-frame", "1002");
    let mut op = text("PING");
    op[0] = 0x83;
    refused(&op, "bad-frame", "1002");
    // A fragmented ping, a ping of 126 bytes.
    refused(&frame(false, Opcode::Ping, b"x"), "bad-frame", "1002");
    refused(
        &frame(true, Opcode::Ping, &[b'x'; 126]),
        "bad-frame",
        "1002",
    );
    // A continuation with no message; a new message inside one.
    refused(
        &frame(true, Opcode::Continuation, b"x"),
        "bad-frame",
        "1002",
    );
    let mut twice = frame(false, Opcode::Text, b"a");
    twice.extend(text("b"));
    refused(&twice, "bad-frame", "1002");
    // Text that is not UTF-8; two lines in one message.
    refused(&frame(true, Opcode::Text, b"\xff\xfe"), "bad-frame", "1002");
    refused(&text("PING 1\nPING 2"), "bad-frame", "1002");
    // A close frame of one byte.
    refused(&frame(true, Opcode::Close, b"x"), "bad-frame", "1002");
    // Longer than the line limit (1024 by default): refused from the
    // header, before the payload arrives.
    let long = frame(true, Opcode::Binary, &[b'a'; 5000]);
    refused(&long[..8], "line-too-long", "1009");
    // ...and as fragments that add up to too much.
    let mut parts = frame(false, Opcode::Text, &[b'a'; 600]);
    parts.extend(frame(true, Opcode::Continuation, &[b'a'; 600]));
    refused(&parts, "line-too-long", "1009");
}

#[test]
fn handshakes_that_cannot_go_on_get_their_http_status_and_nothing_else() {
    let swap = |from: &str, to: &str| {
        String::from_utf8_lossy(UPGRADE)
            .replace(from, to)
            .into_bytes()
    };
    for (input, status, reason) in [
        (
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            "400 Bad Request",
            "bad-frame",
        ),
        (
            swap("Version: 13", "Version: 8"),
            "426 Upgrade Required",
            "bad-frame",
        ),
        (
            swap("good.example", "evil.example"),
            "403 Forbidden",
            "unauthorized",
        ),
        (
            b"\x16\x03\x01\x00\x05hello\r\n\r\n".to_vec(),
            "400 Bad Request",
            "bad-frame",
        ),
    ] {
        let mut sim = sim(None);
        let c = sim.connect_on(0, 1);
        sim.send(10, c, &input);
        check(
            &mut sim,
            &[
                &format!("10 c0 < HTTP/1.1 {status} [end]"),
                "10 online #1",
                &format!("10 offline #1 - {reason}"),
            ],
        );
    }
}

#[test]
fn a_handshake_that_never_ends_is_closed_at_its_deadline_silently() {
    let mut sim = sim(None);
    let c = sim.connect_on(0, 1);
    // Trickled, never finished.
    for t in 1..20 {
        sim.send(t * 50, c, b"X");
    }
    sim.at(1000);
    check(&mut sim, &[]);
    sim.at(2500);
    check(
        &mut sim,
        &[
            "2000 c0 < [end]",
            "2000 online #1",
            "2000 offline #1 - hello-timeout",
        ],
    );
    // A handshake trickled a byte per read still completes.
    let mut trickled = self::sim(None);
    let c = trickled.connect_on(0, 1);
    for b in UPGRADE {
        trickled.send(1, c, std::slice::from_ref(b));
    }
    assert!(trickled.take().contains(&"1 online #1".to_owned()));
}

#[test]
fn a_connection_refused_at_accept_on_a_websocket_listener_gets_http_503() {
    let mut sim = sim(None);
    let peer = SocketAddr::from(([127, 0, 0, 1], 9));
    let bytes = sim
        .s
        .handle_refused_for(peer, CloseReason::Overloaded, 1)
        .to_vec();
    let text = String::from_utf8(bytes).unwrap();
    assert!(
        text.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
        "{text}"
    );
    assert!(text.ends_with("overloaded\n"), "{text}");
}

#[test]
fn line_clients_are_pinged_when_asked_and_their_pong_is_life() {
    let mut sim = Sim::with(LineProtocol::default(), settings(), false);
    sim.s = Sessions::with_wires(
        vec![Wire::pinging(LineProtocol::default(), Some(1000))],
        App {
            log: None,
            verifier: None,
        },
        LocalPresence::default(),
        settings(),
    );
    let c = sim.connect(0);
    sim.send(20, c, b"HELLO dev\n");
    sim.take();
    sim.at(1150);
    sim.send(1150, c, b"PONG\n");
    sim.at(5000);
    check(
        &mut sim,
        &[
            "1100 c0 < PING",
            "2200 c0 < PING",
            "4200 c0 < BYE timeout [end]",
            "4200 offline #1 dev timeout",
        ],
    );
    // The pong reached nobody's handler and got no answer.
    assert_eq!(sim.s.stats().server_pings, 2);
    // A protocol that cannot ping is never given the setting.
    let resp = Wire::pinging(RespProtocol::default(), Some(1000));
    assert_eq!(resp.ping_after, None);
}

/// A client frame for the property test: a line, a fragmented line, a
/// ping, a pong, or bytes that may be anything.
fn any_frame() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => (0u32..1000).prop_map(|n| text(&format!("PING {n}"))),
        1 => "[a-z]{1,8}".prop_map(|id| text(&format!("HELLO {id}"))),
        1 => ("[a-z ]{0,20}", "[a-z ]{0,20}").prop_map(|(a, b)| {
            let mut f = frame(false, Opcode::Text, a.as_bytes());
            f.extend(frame(true, Opcode::Ping, b"mid"));
            f.extend(frame(true, Opcode::Continuation, b.as_bytes()));
            f
        }),
        1 => proptest::collection::vec(any::<u8>(), 0..125)
            .prop_map(|p| frame(true, Opcode::Ping, &p)),
        1 => Just(frame(true, Opcode::Pong, b"")),
        1 => proptest::collection::vec(any::<u8>(), 1..40),
    ]
}

proptest! {
    /// Whatever a peer sends after the upgrade, and however it is split
    /// into reads, the server sends it the same bytes and emits the same
    /// events (and never panics).
    #[test]
    fn any_frames_split_any_way_give_the_same_bytes_and_events(
        frames in proptest::collection::vec(any_frame(), 1..12),
        cuts in proptest::collection::vec(1usize..64, 1..8),
    ) {
        let stream: Vec<u8> = UPGRADE.iter().copied().chain(frames.concat()).collect();
        let run = |reads: &[&[u8]]| {
            let mut sim = sim(None);
            let c = sim.connect_on(0, 1);
            for r in reads {
                sim.send(10, c, r);
            }
            sim.end(20, c, CloseReason::Closed);
            let events: Vec<String> = sim
                .take()
                .into_iter()
                .filter(|l| !l.contains(" c0 <"))
                .collect();
            (sim.sent.first().cloned().unwrap_or_default(), events)
        };
        let whole = run(&[&stream]);
        let mut reads = Vec::new();
        let mut rest = &stream[..];
        for &n in cuts.iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let (a, b) = rest.split_at(n.min(rest.len()));
            reads.push(a);
            rest = b;
        }
        let split = run(&reads);
        prop_assert_eq!(render(&whole.0), render(&split.0));
        prop_assert_eq!(whole.1, split.1);
    }
}

#[test]
fn an_empty_first_fragment_is_remembered_between_reads() {
    // Found by the property test above: a message begun with an empty
    // fragment has no bytes to keep, but its place must be kept.
    let mut sim = sim(None);
    let c = upgraded(&mut sim, 0);
    sim.take();
    sim.send(10, c, &frame(false, Opcode::Text, b""));
    sim.send(11, c, &frame(true, Opcode::Continuation, b"PING 5"));
    check(&mut sim, &["11 c0 < PONG 5"]);
}

#[test]
fn an_anonymous_page_is_not_pinged_and_times_out() {
    let mut sim = sim(Some(1000));
    let c = upgraded(&mut sim, 0);
    sim.take();
    // Its automatic pongs would keep it online for ever: it gets no ping.
    sim.at(4000);
    check(
        &mut sim,
        &[
            "3100 c0 < BYE timeout | (close 1000 timeout) [end]",
            "3100 offline #1 - timeout",
        ],
    );
    assert!(!sim.is_open(c));
    assert_eq!(sim.s.stats().server_pings, 0);
}
