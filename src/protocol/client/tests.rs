//! The client codecs: a readable trace per codec, encodings, the bound on
//! incomplete frames and split invariance as properties, and a session
//! driven through each protocol.

use proptest::prelude::*;

use super::*;
use crate::client::session::{Action, Event, IntervalPolicy, SendError, Session, SessionConfig};
use crate::protocol::ws::{self as websocket, Opcode};
use crate::protocol::{
    BinaryProtocol, Frame, LineProtocol, Protocol, RawProtocol, Reply, RespProtocol,
};

/// Decodes everything in `input` into a readable trace: one entry per
/// frame, then `more(N)` or `err(...)`, checking the contract on the way.
fn trace(codec: ClientCodec, limit: usize, mut input: &[u8]) -> Vec<String> {
    let s = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let mut out = Vec::new();
    loop {
        match codec.decode(input, limit) {
            Ok(Some((frame, used))) => {
                assert!(used >= 1 && used <= input.len());
                out.push(match frame {
                    ServerFrame::Welcome {
                        interval_ms,
                        timeout_ms,
                    } => format!("welcome {interval_ms:?} {timeout_ms:?}"),
                    ServerFrame::Pong { token } => format!("pong {:?}", token.map(s)),
                    ServerFrame::Ping { token } => format!("ping {:?}", token.map(s)),
                    ServerFrame::Ack => "ack".to_owned(),
                    ServerFrame::Echo(d) => format!("echo {:?}", s(d)),
                    ServerFrame::Bye { reason } => format!("bye {reason:?}"),
                    ServerFrame::Message(m) => format!("msg {:?}", s(m)),
                    ServerFrame::Other(o) => format!("other {:?}", s(o)),
                });
                input = &input[used..];
            }
            Ok(None) => {
                assert!(input.len() <= codec.max_incomplete(limit));
                out.push(format!("more({})", input.len()));
                return out;
            }
            Err(e) => {
                out.push(format!("err({e})"));
                return out;
            }
        }
    }
}

#[track_caller]
fn check(codec: ClientCodec, limit: usize, input: &[u8], expected: &[&str]) {
    let got = trace(codec, limit, input);
    assert_eq!(
        got,
        expected,
        "{}: {:?}",
        codec.name(),
        String::from_utf8_lossy(input)
    );
}

/// What the server codec of the same protocol sends for `reply`.
fn server_says(p: &dyn Protocol, reply: Reply<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    p.encode(&reply, &mut out);
    out
}

/// The frame vigil's WebSocket server sends for one line: unmasked text,
/// without the `\n`.
fn ws_frame(line: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    websocket::encode_frame(&mut out, Opcode::Text, None, line);
    out
}

/// What vigil's WebSocket server sends for `reply`: the line server's
/// line, in a frame.
fn ws_server_says(reply: Reply<'_>) -> Vec<u8> {
    let line = server_says(&LineProtocol::default(), reply);
    ws_frame(line.strip_suffix(b"\n").unwrap_or(&line))
}

/// The server's `101` answer to our upgrade.
fn ws_answer() -> Vec<u8> {
    let mut out = Vec::new();
    websocket::write_accept(&mut out, ws::KEY.as_bytes());
    out
}

/// What vigil's WebSocket server reads from a ws client's bytes, in the
/// line protocol: the upgrade request, checked and dropped, then each
/// frame's payload and a `\n`. Every frame must be whole and masked. Other
/// codecs' bytes are returned as they are.
#[track_caller]
fn unframed(codec: ClientCodec, mut bytes: &[u8]) -> Vec<u8> {
    if codec != ClientCodec::WS {
        return bytes.to_vec();
    }
    if let Ok(Some((request, used))) = websocket::parse_request(bytes) {
        assert_eq!(request.key, ws::KEY.as_bytes());
        bytes = &bytes[used..];
    }
    let mut lines = Vec::new();
    while !bytes.is_empty() {
        let h = websocket::parse_header(bytes).unwrap().unwrap();
        let key = h.mask.expect("a client frame is masked");
        assert!(h.fin && key != [0; 4], "{h:?}");
        let end = h.frame_len().unwrap();
        let mut payload = bytes[h.header_len..end].to_vec();
        websocket::apply_mask(&mut payload, key, 0);
        lines.extend_from_slice(&payload);
        lines.push(b'\n');
        bytes = &bytes[end..];
    }
    lines
}

fn replies() -> [Reply<'static>; 6] {
    [
        Reply::Welcome {
            client_id: "dev-1",
            interval_ms: 1000,
            timeout_ms: 3000,
        },
        Reply::Pong { token: Some(b"42") },
        Reply::Pong { token: None },
        Reply::Message(b"hi there"),
        Reply::Bye(CloseReason::Timeout),
        Reply::Unknown { command: b"NOPE" },
    ]
}

/// Each client codec reads what the server codec of its protocol writes.
#[test]
fn each_codec_reads_its_server() {
    let servers: [(ClientCodec, &dyn Protocol, [&str; 6]); 3] = [
        (
            ClientCodec::LINE,
            &LineProtocol::default(),
            [
                "welcome Some(1000) Some(3000)",
                "pong Some(\"42\")",
                "pong None",
                "msg \"hi there\"",
                "bye Some(Timeout)",
                "msg \"ERR unknown command NOPE\"",
            ],
        ),
        (
            ClientCodec::RESP,
            &RespProtocol::default(),
            [
                "welcome None None",
                "echo \"42\"",
                "pong None",
                "echo \"hi there\"",
                "bye Some(Timeout)",
                "other \"-ERR unknown command 'NOPE'\"",
            ],
        ),
        (
            ClientCodec::BINARY,
            &BinaryProtocol::default(),
            [
                "welcome Some(1000) Some(3000)",
                "pong Some(\"42\")",
                "pong None",
                "msg \"hi there\"",
                "bye Some(Timeout)",
                "other \"\\u{8}NOPE\"",
            ],
        ),
    ];
    for (codec, server, want) in servers {
        for (reply, want) in replies().into_iter().zip(want) {
            let bytes = server_says(server, reply);
            if bytes.is_empty() {
                continue;
            }
            check(codec, 1024, &bytes, &[want, "more(0)"]);
        }
    }
    // The line server's replies, one per text frame.
    let want = [
        "welcome Some(1000) Some(3000)",
        "pong Some(\"42\")",
        "pong None",
        "msg \"hi there\"",
        "bye Some(Timeout)",
        "msg \"ERR unknown command NOPE\"",
    ];
    for (reply, want) in replies().into_iter().zip(want) {
        check(
            ClientCodec::WS,
            1024,
            &ws_server_says(reply),
            &[want, "more(0)"],
        );
    }
    let raw = RawProtocol::default();
    check(
        ClientCodec::RAW,
        0,
        &server_says(&raw, Reply::Pong { token: None }),
        &["ack", "more(0)"],
    );
}

/// Each built-in client codec with the server codec it talks to (ws: the
/// line server behind vigil's WebSocket framing).
fn client_and_server() -> [(ClientCodec, Box<dyn Protocol>); 5] {
    [
        (ClientCodec::LINE, Box::new(LineProtocol::default())),
        (ClientCodec::RESP, Box::new(RespProtocol::default())),
        (ClientCodec::BINARY, Box::new(BinaryProtocol::default())),
        (ClientCodec::RAW, Box::new(RawProtocol::default())),
        (ClientCodec::WS, Box::new(LineProtocol::default())),
    ]
}

/// And each server codec reads what its client codec writes.
#[test]
fn each_server_reads_its_client() {
    for (codec, server) in client_and_server() {
        let server = &*server;
        let mut out = Vec::new();
        codec.encode_hello("dev-1", None, &mut out);
        codec.encode_ping(18_446_744_073_709_551_615, &mut out);
        codec.encode_ping(0, &mut out);
        if codec.check_message(b"hi").is_ok() {
            codec.encode_message(b"hi", &mut out);
        }
        let out = unframed(codec, &out);
        let mut rest = &out[..];
        let mut frames = Vec::new();
        while let Ok(Some((frame, used))) = server.decode(rest) {
            frames.push(format!("{frame:?}"));
            rest = &rest[used..];
        }
        assert!(rest.is_empty(), "{}: {rest:?}", codec.name());
        let want: &[&str] = match codec.name() {
            "line" | "binary" | "ws" => &[
                "Hello { client_id: \"dev-1\", token: None }",
                "Ping { token: Some([49, 56, 52, 52, 54, 55, 52, 52, 48, 55, 51, 55, 48, 57, 53, 53, 49, 54, 49, 53]) }",
                "Ping { token: Some([48]) }",
                "Message([104, 105])",
            ],
            "resp" => &[
                "Hello { client_id: \"dev-1\", token: None }",
                "Ping { token: Some([49, 56, 52, 52, 54, 55, 52, 52, 48, 55, 51, 55, 48, 57, 53, 53, 49, 54, 49, 53]) }",
                "Ping { token: Some([48]) }",
            ],
            // No framing: everything buffered is one heartbeat.
            _ => &["Ping { token: None }"],
        };
        assert_eq!(frames, want, "{}", codec.name());
    }
    let _: Frame<'_> = Frame::Quit;
}

#[test]
fn a_token_reaches_the_server_where_the_login_carries_one() {
    for (codec, server) in client_and_server() {
        let server = &*server;
        let mut out = Vec::new();
        codec.encode_hello("dev-1", Some("12.ab"), &mut out);
        let out = unframed(codec, &out);
        let frame = server
            .decode(&out)
            .ok()
            .flatten()
            .map(|(f, _)| format!("{f:?}"));
        let want = match codec.name() {
            "line" | "binary" | "ws" => {
                Some("Hello { client_id: \"dev-1\", token: Some([49, 50, 46, 97, 98]) }")
            }
            "resp" => Some("Hello { client_id: \"dev-1\", token: None }"),
            _ => None,
        };
        assert_eq!(frame.as_deref(), want, "{}", codec.name());
        assert_eq!(
            codec.carries_token(),
            matches!(codec.name(), "line" | "binary" | "ws"),
            "{}",
            codec.name()
        );
    }
}

#[test]
fn resp_replies() {
    let r = ClientCodec::RESP;
    check(
        r,
        16,
        b"+OK\r\n+PONG\r\n",
        &["welcome None None", "pong None", "more(0)"],
    );
    check(
        r,
        16,
        b"+QUEUED\r\n:12\r\n$-1\r\n",
        &[
            "other \"+QUEUED\"",
            "other \":12\"",
            "other \"$-1\"",
            "more(0)",
        ],
    );
    check(
        r,
        16,
        b"$0\r\n\r\n$2\r\n\r\n\r\n",
        &["echo \"\"", "echo \"\\r\\n\"", "more(0)"],
    );
    check(
        r,
        32,
        b"-ERR closing: shutdown\r\n",
        &["bye Some(Shutdown)", "more(0)"],
    );
    check(r, 32, b"-ERR closing: later\r\n", &["bye None", "more(0)"]);
    check(
        r,
        32,
        b"-ERR other\r\n",
        &["other \"-ERR other\"", "more(0)"],
    );
    // Incomplete, at every stage.
    check(r, 16, b"", &["more(0)"]);
    check(r, 16, b"+OK", &["more(3)"]);
    check(r, 16, b"+OK\r", &["more(4)"]);
    check(r, 16, b"$3\r\nab", &["more(6)"]);
    check(r, 16, b"$3\r\nabc\r", &["more(8)"]);
    // Malformed.
    check(
        r,
        16,
        b"*1\r\n",
        &["err(bad frame: RESP arrays are not a reply to a heartbeat client)"],
    );
    check(r, 16, b"hello\r\n", &["err(bad frame: not a RESP reply)"]);
    check(
        r,
        16,
        b"+OK\n",
        &["err(bad frame: RESP line not ending in \\r\\n)"],
    );
    check(
        r,
        16,
        b"$x\r\n",
        &["err(bad frame: RESP bulk length is not a number)"],
    );
    check(
        r,
        16,
        b"$-2\r\n",
        &["err(bad frame: RESP bulk length is not a number)"],
    );
    check(
        r,
        16,
        b"$1\r\nab\r\n",
        &["err(bad frame: RESP bulk string not ending in \\r\\n)"],
    );
    // Limits: a line of 4 bytes fits 4, not 3; a bulk of 5 does not fit 4.
    check(r, 4, b"+PONG\r\n", &["err(frame longer than 4 bytes)"]);
    check(r, 5, b"+PONG\r\n", &["pong None", "more(0)"]);
    check(r, 4, b"+PONGX", &["err(frame longer than 4 bytes)"]);
    check(r, 4, b"+PON", &["more(4)"]);
    check(r, 4, b"+PONG", &["more(5)"]);
    check(r, 4, b"$5\r\n", &["err(frame longer than 4 bytes)"]);
    check(r, 4, b"$4\r\nabcd\r\n", &["echo \"abcd\"", "more(0)"]);
}

#[test]
fn binary_frames() {
    let b = ClientCodec::BINARY;
    check(b, 16, &[0, 0, 0, 1, 2], &["pong None", "more(0)"]);
    check(
        b,
        16,
        &[0, 0, 0, 3, 5, b'h', b'i'],
        &["msg \"hi\"", "more(0)"],
    );
    check(b, 16, &[0, 0, 0, 1, 5], &["msg \"\"", "more(0)"]);
    check(b, 16, &[0, 0, 0, 2, 6, b'x'], &["bye None", "more(0)"]);
    check(
        b,
        16,
        &[0, 0, 0, 2, 99, 1],
        &["other \"c\\u{1}\"", "more(0)"],
    );
    check(
        b,
        16,
        &[0, 0, 0, 9, 4, 0, 0, 0, 7, 0, 0, 0, 9],
        &["welcome Some(7) Some(9)", "more(0)"],
    );
    check(
        b,
        16,
        &[0, 0, 0, 8, 4, 0, 0, 0, 7, 0, 0, 0],
        &["err(bad frame: binary WELCOME shorter than 8 bytes)"],
    );
    check(
        b,
        16,
        &[0, 0, 0, 9, 4, 0, 0, 0, 0, 0, 0, 0, 9],
        &["err(bad frame: binary WELCOME interval is zero)"],
    );
    check(
        b,
        16,
        &[0, 0, 0, 0],
        &["err(bad frame: binary frame of length 0)"],
    );
    check(b, 16, &[0, 0, 0], &["more(3)"]);
    check(b, 16, &[0, 0, 0, 3, 5, b'h'], &["more(6)"]);
    // The limit is on the payload: 4 bytes and the type fit a limit of 4.
    check(
        b,
        4,
        &[0, 0, 0, 5, 5, 1, 2, 3, 4],
        &["msg \"\\u{1}\\u{2}\\u{3}\\u{4}\"", "more(0)"],
    );
    check(b, 4, &[0, 0, 0, 6], &["err(frame longer than 5 bytes)"]);
    check(
        b,
        4,
        &[0xff, 0xff, 0xff, 0xff],
        &["err(frame longer than 5 bytes)"],
    );
}

#[test]
fn raw_and_line() {
    check(ClientCodec::RAW, 0, b"", &["more(0)"]);
    check(
        ClientCodec::RAW,
        0,
        b"ack\nack\nwhatever",
        &["ack", "more(0)"],
    );
    check(
        ClientCodec::LINE,
        8,
        b"PONG 1\r\nBYE\n",
        &["pong Some(\"1\")", "bye None", "more(0)"],
    );
    check(ClientCodec::LINE, 4, b"abcd\r", &["more(5)"]);
    check(
        ClientCodec::LINE,
        4,
        b"abcde",
        &["err(frame longer than 4 bytes)"],
    );
}

#[test]
fn messages_per_protocol() {
    let m = |c: ClientCodec, msg: &[u8]| c.check_message(msg);
    assert_eq!(m(ClientCodec::LINE, b"hi"), Ok(()));
    assert_eq!(m(ClientCodec::LINE, b"a\nb"), Err(MessageError::NotOneLine));
    assert_eq!(m(ClientCodec::LINE, b"PING 3"), Err(MessageError::Command));
    assert_eq!(m(ClientCodec::BINARY, b"PING\n\0"), Ok(()));
    assert_eq!(m(ClientCodec::RESP, b"hi"), Err(MessageError::Unsupported));
    assert_eq!(m(ClientCodec::RAW, b"hi"), Ok(()));
    assert_eq!(m(ClientCodec::RAW, b"a\nb"), Err(MessageError::NotOneLine));
    let mut out = Vec::new();
    ClientCodec::RAW.encode_ping(7, &mut out);
    ClientCodec::RAW.encode_message(b"hi", &mut out);
    ClientCodec::RAW.encode_hello("dev", None, &mut out);
    assert_eq!(out, b"ping\nhi\n");
}

#[test]
fn codecs_by_name() {
    for c in ClientCodec::BUILT_IN {
        assert_eq!(ClientCodec::by_name(c.name()), Some(c));
        assert!(c.is_built_in());
    }
    assert_eq!(ClientCodec::default(), ClientCodec::LINE);
    assert_ne!(ClientCodec::LINE, ClientCodec::RESP);
    assert_eq!(format!("{:?}", ClientCodec::RAW), "ClientCodec(raw)");
    #[derive(Debug)]
    struct Mine;
    impl ClientProtocol for Mine {
        fn name(&self) -> &'static str {
            "mine"
        }
        fn decode<'a>(
            &self,
            _: &'a [u8],
            _: usize,
        ) -> Result<Option<(ServerFrame<'a>, usize)>, DecodeError> {
            Ok(None)
        }
        fn max_incomplete(&self, _: usize) -> usize {
            usize::MAX
        }
        fn encode_hello(&self, _: &str, _: Option<&str>, _: &mut Vec<u8>) {}
        fn encode_ping(&self, _: u64, _: &mut Vec<u8>) {}
        fn check_message(&self, _: &[u8]) -> Result<(), MessageError> {
            Ok(())
        }
        fn encode_message(&self, _: &[u8], _: &mut Vec<u8>) {}
    }
    static MINE: &dyn ClientProtocol = &Mine;
    let mine = ClientCodec::new(&MINE);
    assert!(!mine.is_built_in());
    assert_eq!(mine.name(), "mine");
    let leaked = ClientCodec::leak(Mine);
    assert_eq!(leaked, mine);
    assert_eq!(std::mem::size_of::<ClientCodec>(), 8);
    assert_eq!(ClientCodec::by_name("mine"), None);
}

#[test]
fn decimal_digits() {
    let mut buf = [0u8; 20];
    for n in [0, 7, 10, 99, 12_345, u64::MAX] {
        assert_eq!(decimal(n, &mut buf), n.to_string().as_bytes());
    }
}

/// A session through each protocol: log in, beat, get the answer, and
/// what each refuses.
#[test]
fn a_session_speaks_each_protocol() {
    struct Case {
        codec: ClientCodec,
        welcome: Vec<u8>,
        /// The answer to `PING 1`.
        pong: Vec<u8>,
    }
    let cases = [
        Case {
            codec: ClientCodec::LINE,
            welcome: b"WELCOME dev interval=1000 timeout=3000\n".to_vec(),
            pong: b"PONG 1\n".to_vec(),
        },
        Case {
            codec: ClientCodec::RESP,
            welcome: b"+OK\r\n".to_vec(),
            pong: b"$1\r\n1\r\n".to_vec(),
        },
        Case {
            codec: ClientCodec::BINARY,
            welcome: vec![
                0, 0, 0, 12, 4, 0, 0, 3, 0xe8, 0, 0, 0x0b, 0xb8, b'd', b'e', b'v',
            ],
            pong: vec![0, 0, 0, 2, 2, b'1'],
        },
        Case {
            codec: ClientCodec::RAW,
            welcome: Vec::new(),
            pong: b"ack\n".to_vec(),
        },
        Case {
            codec: ClientCodec::WS,
            welcome: [
                ws_answer(),
                ws_frame(b"WELCOME dev interval=1000 timeout=3000"),
            ]
            .concat(),
            pong: ws_frame(b"PONG 1"),
        },
    ];
    for case in cases {
        let name = case.codec.name();
        let mut config = SessionConfig::new("dev", 1);
        config.protocol = case.codec;
        if case.codec.login() != Login::WelcomeWithInterval {
            assert_eq!(
                Session::new(config.clone(), 0).err(),
                Some(crate::client::session::ConfigError::NeedsInterval),
                "{name}"
            );
            config.interval = IntervalPolicy::Fixed(1000);
        }
        let mut s = Session::new(config, 0).unwrap();
        assert!(matches!(s.poll_action(), Some(Action::Connect(_))));
        s.handle_connected(5);
        let mut hello = Vec::new();
        case.codec.encode_hello("dev", None, &mut hello);
        // Compared unmasked: ws masks each frame with a key of its own.
        let sent = unframed(case.codec, s.poll_transmit().unwrap_or_default());
        assert_eq!(sent, unframed(case.codec, &hello), "{name}");
        s.handle_transmitted(hello.len());
        // The welcome, split byte by byte.
        for (i, b) in case.welcome.iter().enumerate() {
            s.handle_received(10 + i as u64, std::slice::from_ref(b));
        }
        assert_eq!(s.interval_ms(), Some(1000), "{name}");
        let events: Vec<Event> = std::iter::from_fn(|| s.poll_event()).collect();
        assert!(
            events.iter().any(|e| matches!(
                e,
                Event::Welcome {
                    interval_ms: 1000,
                    ..
                }
            )),
            "{name}: {events:?}"
        );
        let due = s.poll_timeout().unwrap();
        s.handle_timeout(due);
        let mut ping = Vec::new();
        case.codec.encode_ping(1, &mut ping);
        let sent = unframed(case.codec, s.poll_transmit().unwrap_or_default());
        assert_eq!(sent, unframed(case.codec, &ping), "{name}");
        s.handle_transmitted(ping.len());
        s.handle_received(due + 7, &case.pong);
        let events: Vec<Event> = std::iter::from_fn(|| s.poll_event()).collect();
        assert!(
            events
                .iter()
                .any(|e| matches!(e, Event::Pong { seq: 1, rtt_ms: 7 })),
            "{name}: {events:?}"
        );
        let sent = s.send_message(due + 8, b"hi");
        match name {
            "resp" => assert_eq!(sent, Err(SendError::Unsupported)),
            _ => assert_eq!(sent, Ok(())),
        }
    }
}

/// RESP: a bulk string that is not the outstanding ping's token is a
/// message; one that is, is the pong (and not also a message).
#[test]
fn resp_echo_is_a_pong_or_a_message() {
    let mut config = SessionConfig::new("dev", 1);
    config.protocol = ClientCodec::RESP;
    config.interval = IntervalPolicy::Fixed(100);
    let mut s = Session::new(config, 0).unwrap();
    s.poll_action();
    s.handle_connected(0);
    s.handle_received(1, b"+OK\r\n$5\r\nhello\r\n");
    s.handle_timeout(101);
    s.handle_received(102, b"$1\r\n2\r\n$1\r\n1\r\n");
    let events: Vec<String> = std::iter::from_fn(|| s.poll_event())
        .filter(|e| matches!(e, Event::Line(_) | Event::Pong { .. }))
        .map(|e| format!("{e:?}"))
        .collect();
    assert_eq!(
        events,
        [
            "Line([104, 101, 108, 108, 111])",
            "Line([50])",
            "Pong { seq: 1, rtt_ms: 1 }"
        ]
    );
}

fn codec_strategy() -> impl Strategy<Value = ClientCodec> {
    prop_oneof![
        Just(ClientCodec::LINE),
        Just(ClientCodec::RESP),
        Just(ClientCodec::BINARY),
        Just(ClientCodec::WS),
    ]
}

/// Bytes that are mostly valid replies of `codec`'s protocol, with noise.
fn stream(codec: ClientCodec, picks: &[(u8, u8)]) -> Vec<u8> {
    let servers: [&dyn Protocol; 3] = [
        &LineProtocol::default(),
        &RespProtocol::default(),
        &BinaryProtocol::default(),
    ];
    let server = match codec.name() {
        "line" => servers[0],
        "resp" => servers[1],
        _ => servers[2],
    };
    let mut out = Vec::new();
    // ws: the upgrade's answer first, most of the time.
    if codec == ClientCodec::WS && picks.first().is_some_and(|p| p.1 % 4 != 0) {
        out = ws_answer();
    }
    for &(pick, noise) in picks {
        let noisy = [noise; 7];
        let reply = match pick % 8 {
            0..=5 => replies()[usize::from(pick % 8)],
            6 => Reply::Message(&noisy),
            _ => {
                out.push(noise);
                continue;
            }
        };
        match codec.name() {
            "ws" => out.extend(ws_server_says(reply)),
            _ => server.encode(&reply, &mut out),
        }
    }
    out
}

proptest! {
    /// However the stream is split into reads, the frames and the error are
    /// the same: the client codecs decode from the front of whatever is
    /// buffered, as the session feeds them.
    #[test]
    fn decoding_does_not_depend_on_the_split(
        codec in codec_strategy(),
        picks in prop::collection::vec((any::<u8>(), any::<u8>()), 0..12),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
        limit in 1usize..48,
    ) {
        let bytes = stream(codec, &picks);
        let whole = trace(codec, limit, &bytes);
        // Feed the pieces, keeping the undecoded rest as the session does.
        let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
        cuts.push(bytes.len());
        cuts.sort_unstable();
        let mut buffered = Vec::new();
        let mut frames = Vec::new();
        let mut at = 0;
        for cut in cuts {
            buffered.extend_from_slice(&bytes[at..cut]);
            at = cut;
            let t = trace(codec, limit, &buffered);
            let (last, done) = t.split_last().unwrap();
            frames.extend(done.iter().cloned());
            if last.starts_with("err") {
                frames.push(last.clone());
                break;
            }
            let left: usize = last.trim_start_matches("more(").trim_end_matches(')').parse().unwrap();
            buffered.drain(..buffered.len() - left);
            prop_assert!(buffered.len() <= codec.max_incomplete(limit));
        }
        if !frames.last().is_some_and(|f| f.starts_with("err")) {
            frames.push(format!("more({})", buffered.len()));
        }
        prop_assert_eq!(frames, whole);
    }

    /// Whatever the bytes, decoding never panics and an incomplete frame
    /// stays within the codec's bound.
    #[test]
    fn decoding_is_bounded(
        codec in prop_oneof![codec_strategy(), Just(ClientCodec::RAW)],
        bytes in prop::collection::vec(any::<u8>(), 0..96),
        limit in 0usize..40,
    ) {
        let _ = trace(codec, limit, &bytes);
    }
}

/// A codec of one's own that never decides (breaking its own bound) cannot
/// make the session buffer without limit: past the bound, the frame is
/// too long and the connection ends.
#[test]
fn a_codec_that_never_decides_is_cut_off_at_its_bound() {
    #[derive(Debug)]
    struct Undecided;
    impl ClientProtocol for Undecided {
        fn name(&self) -> &'static str {
            "undecided"
        }
        fn login(&self) -> Login {
            Login::None
        }
        fn decode<'a>(
            &self,
            _: &'a [u8],
            _: usize,
        ) -> Result<Option<(ServerFrame<'a>, usize)>, DecodeError> {
            Ok(None)
        }
        fn max_incomplete(&self, _: usize) -> usize {
            4
        }
        fn encode_hello(&self, _: &str, _: Option<&str>, _: &mut Vec<u8>) {}
        fn encode_ping(&self, _: u64, _: &mut Vec<u8>) {}
        fn check_message(&self, _: &[u8]) -> Result<(), MessageError> {
            Ok(())
        }
        fn encode_message(&self, _: &[u8], _: &mut Vec<u8>) {}
    }
    static UNDECIDED: &dyn ClientProtocol = &Undecided;
    for reads in [
        &[&b"0123456789"[..]][..],
        &[b"012", b"345"],
        &[b"0123", b"4"],
    ] {
        let mut config = SessionConfig::new("dev", 1);
        config.protocol = ClientCodec::new(&UNDECIDED);
        config.interval = IntervalPolicy::Fixed(1000);
        let mut s = Session::new(config, 0).unwrap();
        s.poll_action();
        s.handle_connected(0);
        for read in reads {
            s.handle_received(1, read);
        }
        let events: Vec<Event> = std::iter::from_fn(|| s.poll_event()).collect();
        assert!(
            events.iter().any(|e| matches!(
                e,
                Event::Disconnected {
                    reason: crate::client::session::DisconnectReason::LineTooLong,
                    ..
                }
            )),
            "{reads:?}: {events:?}"
        );
    }
}

/// The server's answer to the upgrade: the `101` is a sign of life (and
/// every shorter prefix is incomplete); a refusal is an error naming it.
#[test]
fn ws_handshake_answers() {
    let w = ClientCodec::WS;
    let answer = ws_answer();
    let other = format!("other {:?}", String::from_utf8_lossy(&answer));
    check(w, 64, &answer, &[&other, "more(0)"]);
    for cut in 0..answer.len() {
        let more = format!("more({cut})");
        check(w, 64, &answer[..cut], &[&more]);
    }
    // The first frame in the same read.
    let both = [answer.clone(), ws_frame(b"WELCOME d interval=5")].concat();
    check(w, 64, &both, &[&other, "welcome Some(5) None", "more(0)"]);
    // Header names and tokens in any case, values trimmed, more headers.
    check(
        w,
        64,
        b"HTTP/1.1 101 OK\r\nconnection: keep-alive, UPGRADE\r\nupgrade: WebSocket\r\n\
          X-Other: 1\r\nsec-websocket-accept:   rad0vM7yjMmI/6eCB91CZfHWVcQ=  \r\n\r\n",
        &[
            "other \"HTTP/1.1 101 OK\\r\\nconnection: keep-alive, UPGRADE\\r\\nupgrade: WebSocket\\r\\nX-Other: 1\\r\\nsec-websocket-accept:   rad0vM7yjMmI/6eCB91CZfHWVcQ=  \\r\\n\\r\\n\"",
            "more(0)",
        ],
    );

    let refused = |status: (u16, &str)| {
        let mut out = Vec::new();
        websocket::write_refusal(&mut out, status, "why");
        out
    };
    let refusals = [
        ((400, "Bad Request"), "400 Bad Request"),
        ((403, "Forbidden"), "403 Forbidden"),
        ((426, "Upgrade Required"), "426 Upgrade Required"),
        (
            (431, "Request Header Fields Too Large"),
            "431 Request Header Fields Too Large",
        ),
        ((404, "Not Found"), "a 4xx status"),
        ((503, "Service Unavailable"), "a 5xx status"),
    ];
    for (status, says) in refusals {
        let want = format!("err(bad frame: the server refused the WebSocket upgrade: {says})");
        check(w, 64, &refused(status), &[&want]);
    }
    check(
        w,
        64,
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
        &["err(bad frame: the server answered the WebSocket upgrade without switching protocols)"],
    );
    // A 101 that is not ours.
    let not_ours = String::from_utf8(answer.clone())
        .unwrap()
        .replace(ws::ACCEPT, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    check(
        w,
        64,
        not_ours.as_bytes(),
        &["err(bad frame: a 101 answer without the Sec-WebSocket-Accept of our key)"],
    );
    check(
        w,
        64,
        format!(
            "HTTP/1.1 101 OK\r\nSec-WebSocket-Accept: {}\r\n\r\n",
            ws::ACCEPT
        )
        .as_bytes(),
        &["err(bad frame: a 101 answer that does not upgrade to WebSocket)"],
    );
    check(
        w,
        64,
        b"HTTP/1.1 abc\r\n\r\n",
        &["err(bad frame: the answer to the WebSocket upgrade is not HTTP)"],
    );
    let many = format!("HTTP/1.1 101 OK\r\n{}\r\n", "X: y\r\n".repeat(33));
    check(
        w,
        64,
        many.as_bytes(),
        &["err(bad frame: a WebSocket handshake answer with more than 32 header lines)"],
    );
    // Never complete: cut off at 8 KiB, even under a small limit.
    let mut endless = b"HTTP/1.1 101 OK\r\nX: ".to_vec();
    endless.resize(ws::MAX_RESPONSE - 1, b'a');
    check(w, 4, &endless, &["more(8191)"]);
    endless.push(b'a');
    check(w, 4, &endless, &["err(frame longer than 8192 bytes)"]);
}

/// Frames after the upgrade: one line each, the close frame as the BYE,
/// control frames as signs of life, and what can never be valid.
#[test]
fn ws_frames() {
    let w = ClientCodec::WS;
    let frames = [
        (
            ws_frame(b"WELCOME dev-1 interval=30000 timeout=45000"),
            "welcome Some(30000) Some(45000)",
        ),
        (ws_frame(b"PONG 7"), "pong Some(\"7\")"),
        (ws_frame(b"PONG 7\r\n"), "pong Some(\"7\")"),
        (ws_frame(b"PONG 7\n"), "pong Some(\"7\")"),
        (ws_frame(b"BYE replaced"), "bye Some(Replaced)"),
        (ws_frame(b"hi there"), "msg \"hi there\""),
        (ws_frame(b""), "msg \"\""),
        (ws_frame(b"a\nb"), "msg \"a\\nb\""),
    ];
    for (bytes, want) in &frames {
        check(w, 64, bytes, &[want, "more(0)"]);
        for cut in 0..bytes.len() {
            let more = format!("more({cut})");
            check(w, 64, &bytes[..cut], &[&more]);
        }
    }
    let mut binary = Vec::new();
    websocket::encode_frame(&mut binary, Opcode::Binary, None, b"PONG 8");
    check(w, 64, &binary, &["pong Some(\"8\")", "more(0)"]);
    check(
        w,
        64,
        &ws_frame(b"WELCOME d interval=0"),
        &["err(bad frame: WELCOME interval is zero)"],
    );

    // Close frames: the reason from the text, whatever the code.
    let close = |code: u16, reason: &str| {
        let mut out = Vec::new();
        websocket::encode_close(&mut out, code, reason, None);
        out
    };
    check(
        w,
        64,
        &close(1008, "replaced"),
        &["bye Some(Replaced)", "more(0)"],
    );
    check(
        w,
        64,
        &close(1001, "shutdown"),
        &["bye Some(Shutdown)", "more(0)"],
    );
    check(w, 64, &close(1000, ""), &["bye None", "more(0)"]);
    check(w, 64, &close(1000, "later"), &["bye None", "more(0)"]);
    check(w, 64, &[0x88, 0x00], &["bye None", "more(0)"]);
    check(
        w,
        64,
        &[0x88, 0x01, 0x03],
        &["err(bad frame: a close frame with one byte of payload)"],
    );
    check(
        w,
        64,
        &[0x88, 0x03, 0x03, 0xe8, 0xff],
        &["err(bad frame: a close reason that is not UTF-8)"],
    );
    // A BYE frame, then the close, as the server ends.
    let bye = [ws_frame(b"BYE replaced"), close(1008, "replaced")].concat();
    check(
        w,
        64,
        &bye,
        &["bye Some(Replaced)", "bye Some(Replaced)", "more(0)"],
    );

    // The server's ping and pong: signs of life.
    check(w, 64, &[0x89, 0x00], &["other \"\"", "more(0)"]);
    check(
        w,
        64,
        &[0x89, 0x02, b'h', b'i'],
        &["other \"hi\"", "more(0)"],
    );
    check(w, 64, &[0x8A, 0x00], &["other \"\"", "more(0)"]);

    // Never valid from a server.
    let mut masked = Vec::new();
    websocket::encode_frame(&mut masked, Opcode::Text, Some([1, 2, 3, 4]), b"PONG 1");
    check(
        w,
        64,
        &masked,
        &["err(bad frame: a masked WebSocket frame from the server)"],
    );
    let fragmented =
        "err(bad frame: a fragmented WebSocket message (vigil's server never fragments))";
    check(w, 64, &[0x01, 0x03, b'P', b'O', b'N'], &[fragmented]);
    check(w, 64, &[0x80, 0x01, b'G'], &[fragmented]);
    check(
        w,
        64,
        &[0xC1, 0x00],
        &["err(bad frame: a reserved bit is set)"],
    );
    check(w, 64, &[0x83, 0x00], &["err(bad frame: an unknown opcode)"]);
    check(
        w,
        64,
        &[0x09, 0x00],
        &["err(bad frame: a control frame fragmented or over 125 bytes)"],
    );
    // A line server's answer is not a frame.
    check(
        w,
        64,
        b"ERR unknown command GET\n",
        &["err(bad frame: a reserved bit is set)"],
    );

    // The limit is on a data frame's payload, refused from its header.
    check(w, 4, &ws_frame(b"PONG"), &["pong None", "more(0)"]);
    check(
        w,
        4,
        &ws_frame(b"PONG1"),
        &["err(frame longer than 4 bytes)"],
    );
    check(w, 4, &[0x81, 0x05], &["err(frame longer than 4 bytes)"]);
    check(w, 4, &[0x81, 126, 0xff], &["more(3)"]);
    check(
        w,
        4,
        &[0x81, 126, 0xff, 0xff],
        &["err(frame longer than 4 bytes)"],
    );
    let mut huge = vec![0x81, 127];
    huge.extend_from_slice(&(1u64 << 62).to_be_bytes());
    check(w, 4, &huge, &["err(frame longer than 4 bytes)"]);
    // Under a limit that large, no sum overflows: it waits for the rest.
    check(w, usize::MAX, &huge, &["more(10)"]);
    // Control frames pass whatever the limit (they are at most 125 bytes).
    check(
        w,
        0,
        &close(1008, "replaced"),
        &["bye Some(Replaced)", "more(0)"],
    );
    check(
        w,
        0,
        &[0x89, 0x02, b'h', b'i'],
        &["other \"hi\"", "more(0)"],
    );
    assert_eq!(w.max_incomplete(0), ws::MAX_RESPONSE);
    assert_eq!(w.max_incomplete(100_000), 100_014);
    assert_eq!(w.max_incomplete(usize::MAX), usize::MAX);
}

/// What the client writes: an upgrade vigil's server accepts, then masked
/// text frames, with masks that vary.
#[test]
fn ws_encoding() {
    let w = ClientCodec::WS;
    assert_eq!(websocket::accept_key(ws::KEY.as_bytes()), ws::ACCEPT);
    let mut out = Vec::new();
    w.encode_hello("dev-1", Some("12.ab"), &mut out);

    // A well-formed HTTP/1.1 request, as httparse reads it.
    let mut headers = [httparse::EMPTY_HEADER; 16];
    let mut request = httparse::Request::new(&mut headers);
    let used = match request.parse(&out) {
        Ok(httparse::Status::Complete(n)) => n,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        (request.method, request.path, request.version),
        (Some("GET"), Some("/"), Some(1))
    );
    let header = |name: &str| {
        request
            .headers
            .iter()
            .find(|h| h.name == name)
            .map(|h| h.value)
    };
    assert_eq!(header("Host"), Some(&b"vigil"[..]));
    assert_eq!(header("Upgrade"), Some(&b"websocket"[..]));
    assert_eq!(header("Connection"), Some(&b"Upgrade"[..]));
    assert_eq!(header("Sec-WebSocket-Version"), Some(&b"13"[..]));
    assert_eq!(header("Sec-WebSocket-Key"), Some(ws::KEY.as_bytes()));
    // And the server's own reader agrees.
    assert_eq!(
        websocket::parse_request(&out),
        Ok(Some((
            websocket::Request {
                key: ws::KEY.as_bytes(),
                origin: None
            },
            used
        )))
    );

    // Then one masked text frame: the HELLO line, without `\n`.
    let h = websocket::parse_header(&out[used..]).unwrap().unwrap();
    assert!(h.fin && h.opcode == Opcode::Text, "{h:?}");
    let key = h.mask.unwrap();
    assert_ne!(key, [0; 4]);
    let mut payload = out[used + h.header_len..].to_vec();
    assert_eq!(payload.len() as u64, h.len);
    websocket::apply_mask(&mut payload, key, 0);
    assert_eq!(payload, b"HELLO dev-1 12.ab");
    assert_eq!(unframed(w, &out), b"HELLO dev-1 12.ab\n");
    let mut out = Vec::new();
    w.encode_hello("dev-1", None, &mut out);
    assert_eq!(unframed(w, &out), b"HELLO dev-1\n");

    // Pings round trip through the server's primitives; masks vary.
    let mut keys = Vec::new();
    for seq in [0, 1, 42, u64::MAX] {
        let mut out = Vec::new();
        w.encode_ping(seq, &mut out);
        let h = websocket::parse_header(&out).unwrap().unwrap();
        assert_eq!(h.frame_len(), Some(out.len()));
        assert!(h.fin && h.opcode == Opcode::Text);
        let key = h.mask.unwrap();
        let mut payload = out[h.header_len..].to_vec();
        websocket::apply_mask(&mut payload, key, 0);
        assert_eq!(payload, format!("PING {seq}").as_bytes());
        keys.push(key);
    }
    keys.sort_unstable();
    keys.dedup();
    assert!(keys.len() >= 3, "{keys:?}");
    assert!(!keys.contains(&[0; 4]));

    // Messages: one line, not a command; text, or binary when not UTF-8;
    // the 16-bit length form past 125 bytes.
    let m = |msg: &[u8]| w.check_message(msg);
    assert_eq!(m(b"hi"), Ok(()));
    assert_eq!(m(b"a\nb"), Err(MessageError::NotOneLine));
    assert_eq!(m(b"a\r"), Err(MessageError::NotOneLine));
    assert_eq!(m(b"PING 3"), Err(MessageError::Command));
    assert_eq!(m(b"hello dev"), Err(MessageError::Command));
    for (msg, opcode) in [
        (&b"hi"[..], Opcode::Text),
        (&[0xff, 0xfe][..], Opcode::Binary),
        (&[b'x'; 300][..], Opcode::Text),
    ] {
        let mut out = Vec::new();
        w.encode_message(msg, &mut out);
        let h = websocket::parse_header(&out).unwrap().unwrap();
        assert_eq!(h.opcode, opcode);
        assert_eq!(unframed(w, &out), [msg, b"\n"].concat());
    }
}
