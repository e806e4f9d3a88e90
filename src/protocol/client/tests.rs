//! The client codecs: a readable trace per codec, encodings, the bound on
//! incomplete frames and split invariance as properties, and a session
//! driven through each protocol.

use proptest::prelude::*;

use super::*;
use crate::client::session::{Action, Event, IntervalPolicy, SendError, Session, SessionConfig};
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
    let raw = RawProtocol::default();
    check(
        ClientCodec::RAW,
        0,
        &server_says(&raw, Reply::Pong { token: None }),
        &["ack", "more(0)"],
    );
}

/// And each server codec reads what its client codec writes.
#[test]
fn each_server_reads_its_client() {
    let servers: [(ClientCodec, &dyn Protocol); 4] = [
        (ClientCodec::LINE, &LineProtocol::default()),
        (ClientCodec::RESP, &RespProtocol::default()),
        (ClientCodec::BINARY, &BinaryProtocol::default()),
        (ClientCodec::RAW, &RawProtocol::default()),
    ];
    for (codec, server) in servers {
        let mut out = Vec::new();
        codec.encode_hello("dev-1", None, &mut out);
        codec.encode_ping(18_446_744_073_709_551_615, &mut out);
        codec.encode_ping(0, &mut out);
        if codec.check_message(b"hi").is_ok() {
            codec.encode_message(b"hi", &mut out);
        }
        let mut rest = &out[..];
        let mut frames = Vec::new();
        while let Ok(Some((frame, used))) = server.decode(rest) {
            frames.push(format!("{frame:?}"));
            rest = &rest[used..];
        }
        assert!(rest.is_empty(), "{}: {rest:?}", codec.name());
        let want: &[&str] = match codec.name() {
            "line" | "binary" => &[
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
    let servers: [(ClientCodec, &dyn Protocol); 4] = [
        (ClientCodec::LINE, &LineProtocol::default()),
        (ClientCodec::RESP, &RespProtocol::default()),
        (ClientCodec::BINARY, &BinaryProtocol::default()),
        (ClientCodec::RAW, &RawProtocol::default()),
    ];
    for (codec, server) in servers {
        let mut out = Vec::new();
        codec.encode_hello("dev-1", Some("12.ab"), &mut out);
        let frame = server
            .decode(&out)
            .ok()
            .flatten()
            .map(|(f, _)| format!("{f:?}"));
        let want = match codec.name() {
            "line" | "binary" => {
                Some("Hello { client_id: \"dev-1\", token: Some([49, 50, 46, 97, 98]) }")
            }
            "resp" => Some("Hello { client_id: \"dev-1\", token: None }"),
            _ => None,
        };
        assert_eq!(frame.as_deref(), want, "{}", codec.name());
        assert_eq!(
            codec.carries_token(),
            matches!(codec.name(), "line" | "binary"),
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
        welcome: &'static [u8],
        /// The answer to `PING 1`.
        pong: &'static [u8],
    }
    let cases = [
        Case {
            codec: ClientCodec::LINE,
            welcome: b"WELCOME dev interval=1000 timeout=3000\n",
            pong: b"PONG 1\n",
        },
        Case {
            codec: ClientCodec::RESP,
            welcome: b"+OK\r\n",
            pong: b"$1\r\n1\r\n",
        },
        Case {
            codec: ClientCodec::BINARY,
            welcome: &[
                0, 0, 0, 12, 4, 0, 0, 3, 0xe8, 0, 0, 0x0b, 0xb8, b'd', b'e', b'v',
            ],
            pong: &[0, 0, 0, 2, 2, b'1'],
        },
        Case {
            codec: ClientCodec::RAW,
            welcome: b"",
            pong: b"ack\n",
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
        assert_eq!(s.poll_transmit().unwrap_or_default(), &hello[..], "{name}");
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
        assert_eq!(s.poll_transmit().unwrap_or_default(), &ping[..], "{name}");
        s.handle_transmitted(ping.len());
        s.handle_received(due + 7, case.pong);
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
    for &(pick, noise) in picks {
        match pick % 8 {
            0..=5 => server.encode(&replies()[usize::from(pick % 8)], &mut out),
            6 => server.encode(&Reply::Message(&[noise; 7]), &mut out),
            _ => out.push(noise),
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
