//! Properties of every codec, checked on generated streams.
//!
//! - Split invariance (line, resp, binary): a server that buffers reads and
//!   decodes frames in a loop until the first error sees the same frames,
//!   the same error and the same leftover however the stream was cut into
//!   reads: all at once, one byte at a time, or random sizes. Streams are
//!   random bytes (some from each protocol's own alphabet, to reach deep
//!   into the parsers) and random valid frames with occasional garbage,
//!   decoded under small limits so that "too long" comes up too.
//! - Resuming (every codec): a server that keeps the codec's `Resume`
//!   between reads, as vigil's does, sees exactly what one that decodes
//!   the whole buffer each time sees.
//! - On the way, the contract: `1 <= used <= buffered`, and an incomplete
//!   frame ("need more") never holds more than `max_frame()` bytes.
//! - Raw frames depend on the reads by design. Its property: every
//!   non-empty read is exactly one heartbeat consuming exactly that read,
//!   so the consumed bytes concatenate back to the stream.
//! - Round trips: client frames encoded by hand decode to what was sent;
//!   the server's replies (resp, binary) parse, with a small hand-written
//!   client decoder, back to what was encoded.

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;
use vigil::protocol::binary::kind;
use vigil::protocol::{
    BinaryProtocol, CloseReason, Command, Frame, LineProtocol, Protocol, RawProtocol, Reply,
    RespProtocol, Resume,
};

/// Cuts `stream` into reads of the given sizes, cycling through them; no
/// sizes means one read of everything.
fn reads<'a>(stream: &'a [u8], sizes: &[usize]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut rest = stream;
    let mut sizes = sizes.iter().cycle();
    while !rest.is_empty() {
        let n = sizes
            .next()
            .copied()
            .unwrap_or(rest.len())
            .clamp(1, rest.len());
        let (read, tail) = rest.split_at(n);
        out.push(read);
        rest = tail;
    }
    out
}

/// What a server makes of `reads`: each frame, then the first error (after
/// which it reads no more) or what is left buffered at the end.
#[track_caller]
fn serve<P: Protocol>(p: &P, reads: &[&[u8]]) -> Vec<String> {
    serve_with(p, reads, false)
}

/// [`serve`], keeping the codec's [`Resume`] between reads (as vigil's
/// server does) when `resume` is set; then every resumed call must answer
/// what `decode` answers on the same bytes, at every step.
#[track_caller]
fn serve_with<P: Protocol>(p: &P, reads: &[&[u8]], resume: bool) -> Vec<String> {
    let mut trace = Vec::new();
    let mut buf: Vec<u8> = Vec::new();
    let mut at = Resume::default();
    for read in reads {
        assert!(buf.len() <= p.max_frame(), "buffered past max_frame");
        buf.extend_from_slice(read);
        loop {
            let decoded = p.decode(&buf);
            if resume {
                let resumed = p.decode_resume(&buf, &mut at);
                assert_eq!(resumed, decoded, "resumed from {at:?} on {buf:?}");
            }
            match decoded {
                Ok(Some((frame, used))) => {
                    at = Resume::default();
                    assert!(
                        used >= 1 && used <= buf.len(),
                        "used {used} of {}",
                        buf.len()
                    );
                    trace.push(format!("{frame:?}"));
                    buf.drain(..used);
                }
                Ok(None) => {
                    assert!(
                        buf.len() <= p.max_frame(),
                        "{} bytes incomplete, max_frame {}",
                        buf.len(),
                        p.max_frame()
                    );
                    break;
                }
                Err(e) => {
                    trace.push(format!("error: {e}"));
                    return trace;
                }
            }
        }
    }
    trace.push(format!("left {:?}", buf));
    trace
}

/// Checks that `stream` decodes the same whole, byte by byte and in reads
/// of `sizes`.
#[track_caller]
fn check_split<P: Protocol>(p: &P, stream: &[u8], sizes: &[usize]) {
    let whole = serve(p, &reads(stream, &[]));
    let bytes = serve(p, &reads(stream, &[1]));
    let chunks = serve(p, &reads(stream, sizes));
    assert_eq!(whole, bytes, "one byte at a time, stream {stream:?}");
    assert_eq!(whole, chunks, "reads of {sizes:?}, stream {stream:?}");
    let bytes = serve_with(p, &reads(stream, &[1]), true);
    let chunks = serve_with(p, &reads(stream, sizes), true);
    assert_eq!(
        whole, bytes,
        "resumed, one byte at a time, stream {stream:?}"
    );
    assert_eq!(
        whole, chunks,
        "resumed, reads of {sizes:?}, stream {stream:?}"
    );
}

/// Random read sizes.
fn sizes() -> impl Strategy<Value = Vec<usize>> {
    vec(prop_oneof![1usize..8, 1usize..200], 1..16)
}

/// Random bytes, half of them from `alphabet`.
fn bytes_from(alphabet: &'static [u8], max: usize) -> impl Strategy<Value = Vec<u8>> {
    vec(prop_oneof![any::<u8>(), select(alphabet)], 0..max)
}

/// Concatenated pieces: mostly `valid`, sometimes short garbage.
fn stream_of(valid: impl Strategy<Value = Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    vec(prop_oneof![10 => valid, 1 => vec(any::<u8>(), 1..4)], 0..24)
        .prop_map(|pieces| pieces.concat())
}

fn client_id() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9-]{1,12}",
        "[!-~]{1,130}", // sometimes too long
        Just("a b".to_string()),
    ]
}

fn token() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        "[a-z0-9]{1,8}".prop_map(String::into_bytes),
        vec(any::<u8>(), 0..8)
    ]
}

// ---- line ----------------------------------------------------------------

fn line_frame() -> impl Strategy<Value = Vec<u8>> {
    let ending = select(vec![&b"\n"[..], b"\r\n"]);
    let body = prop_oneof![
        Just(b"PING".to_vec()),
        token().prop_map(|t| [&b"PING "[..], &t].concat()),
        client_id().prop_map(|id| format!("HELLO {id}").into_bytes()),
        "[ -~]{0,20}".prop_map(String::into_bytes),
        Just(Vec::new()),
    ];
    (body, ending).prop_map(|(body, end)| {
        // A "\n" inside would make two lines; that is fine too.
        [&body[..], end].concat()
    })
}

fn line_protocol() -> impl Strategy<Value = LineProtocol> {
    prop_oneof![
        (1usize..40).prop_map(LineProtocol::new),
        Just(LineProtocol::default())
    ]
}

// ---- resp ----------------------------------------------------------------

/// A command's arguments, as a client might send them.
fn resp_args() -> impl Strategy<Value = Vec<Vec<u8>>> {
    let word = |w: &'static str| Just(w.as_bytes().to_vec());
    let name = prop_oneof![
        word("PING"),
        word("ping"),
        word("QUIT"),
        word("CLIENT"),
        word("GET"),
        word("HELLO"),
        word("ECHO"),
        word("SELECT"),
        word("AUTH"),
        "[a-zA-Z]{1,8}".prop_map(String::into_bytes),
    ];
    let arg = prop_oneof![
        word("SETNAME"),
        word("setname"),
        word("GETNAME"),
        word("3"),
        word("AUTH"),
        client_id().prop_map(String::into_bytes),
        token(),
    ];
    (name, vec(arg, 0..3)).prop_map(|(name, args)| {
        let mut all = vec![name];
        all.extend(args);
        all
    })
}

fn multibulk(args: &[Vec<u8>]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// An inline request, if the arguments can be written as one.
fn inline(args: &[Vec<u8>], crlf: bool) -> Option<Vec<u8>> {
    let plain = |a: &Vec<u8>| !a.is_empty() && a.iter().all(|b| b.is_ascii_graphic());
    if !args.iter().all(plain) || args.first()?.first() == Some(&b'*') {
        return None;
    }
    let mut out = args.join(&b' ');
    out.extend_from_slice(if crlf { b"\r\n" } else { b"\n" });
    Some(out)
}

fn resp_frame() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        resp_args().prop_map(|a| multibulk(&a)),
        (resp_args(), any::<bool>())
            .prop_map(|(a, crlf)| inline(&a, crlf).unwrap_or_else(|| multibulk(&a))),
        select(vec![&b"\r\n"[..], b"*0\r\n", b"*-1\r\n", b"\n"]).prop_map(<[u8]>::to_vec),
    ]
}

fn resp_protocol() -> impl Strategy<Value = RespProtocol> {
    prop_oneof![
        (1usize..80).prop_map(RespProtocol::new),
        Just(RespProtocol::default())
    ]
}

// ---- binary --------------------------------------------------------------

fn binary(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = (payload.len() as u32 + 1).to_be_bytes().to_vec();
    out.push(kind);
    out.extend_from_slice(payload);
    out
}

fn binary_frame() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        token().prop_map(|t| binary(kind::PING, &t)),
        Just(binary(kind::PING, b"")),
        client_id().prop_map(|id| binary(kind::HELLO, id.as_bytes())),
        vec(any::<u8>(), 0..32).prop_map(|m| binary(kind::DATA, &m)),
        Just(binary(kind::QUIT, b"")),
        (any::<u8>(), vec(any::<u8>(), 0..8)).prop_map(|(k, p)| binary(k, &p)),
    ]
}

fn binary_protocol() -> impl Strategy<Value = BinaryProtocol> {
    prop_oneof![
        (1usize..40).prop_map(BinaryProtocol::new),
        Just(BinaryProtocol::default())
    ]
}

// ---- the properties --------------------------------------------------------

proptest! {
    #[test]
    fn line_random_bytes_split(
        p in line_protocol(),
        stream in bytes_from(b"PINGHELLO \r\n", 400),
        sizes in sizes(),
    ) {
        check_split(&p, &stream, &sizes);
    }

    #[test]
    fn line_frames_split(p in line_protocol(), stream in stream_of(line_frame()), sizes in sizes()) {
        check_split(&p, &stream, &sizes);
    }

    #[test]
    fn resp_random_bytes_split(
        p in resp_protocol(),
        stream in bytes_from(b"*$-0123456789\r\nPING ", 400),
        sizes in sizes(),
    ) {
        check_split(&p, &stream, &sizes);
    }

    #[test]
    fn resp_frames_split(p in resp_protocol(), stream in stream_of(resp_frame()), sizes in sizes()) {
        check_split(&p, &stream, &sizes);
    }

    #[test]
    fn binary_random_bytes_split(
        p in binary_protocol(),
        stream in bytes_from(&[0, 0, 0, 1, 2, 3, 5, 7, 8], 400),
        sizes in sizes(),
    ) {
        check_split(&p, &stream, &sizes);
    }

    #[test]
    fn binary_frames_split(
        p in binary_protocol(),
        stream in stream_of(binary_frame()),
        sizes in sizes(),
    ) {
        check_split(&p, &stream, &sizes);
    }

    /// Raw: every non-empty read is one heartbeat that uses all of it.
    #[test]
    fn raw_one_heartbeat_per_read(
        ack in vec(any::<u8>(), 0..8),
        stream in vec(any::<u8>(), 0..400),
        sizes in sizes(),
    ) {
        let p = RawProtocol::new(ack);
        for sizes in [&[][..], &[1], &sizes] {
            let reads = reads(&stream, sizes);
            let mut consumed = Vec::new();
            for read in &reads {
                let (frame, used) = p.decode(read).unwrap().unwrap();
                prop_assert_eq!(frame, Frame::Ping { token: None });
                prop_assert_eq!(used, read.len());
                consumed.extend_from_slice(read);
            }
            prop_assert_eq!(&consumed, &stream);
            let trace = serve(&p, &reads);
            prop_assert_eq!(trace.len(), reads.len() + 1);
            prop_assert_eq!(trace.last().unwrap(), "left []");
        }
    }
}

// ---- round trips -----------------------------------------------------------

/// A client frame, owned, to compare with what decoding gives.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Sent {
    Ping(Option<Vec<u8>>),
    Hello(String),
    Message(Vec<u8>),
    Quit,
    Unknown(Vec<u8>),
    /// A [`Frame::Command`], as its `Debug` spells it.
    Command(String),
}

impl Sent {
    fn of(frame: Frame<'_>) -> Sent {
        match frame {
            Frame::Ping { token } => Sent::Ping(token.map(<[u8]>::to_vec)),
            Frame::Hello {
                client_id,
                token: None,
            } => Sent::Hello(client_id.to_string()),
            Frame::Hello { client_id, token } => {
                Sent::Command(format!("Hello {client_id} {token:?}"))
            }
            Frame::Message(m) => Sent::Message(m.to_vec()),
            Frame::Pong { token } => Sent::Command(format!("Pong {token:?}")),
            Frame::Quit => Sent::Quit,
            Frame::Unknown { command } => Sent::Unknown(command.to_vec()),
            Frame::Command(c) => Sent::Command(format!("{c:?}")),
        }
    }
}

/// Decodes `stream` completely, as one read.
fn decode_all<P: Protocol>(p: &P, mut stream: &[u8]) -> Vec<Sent> {
    let mut out = Vec::new();
    while let Some((frame, used)) = p.decode(stream).expect("valid stream") {
        out.push(Sent::of(frame));
        stream = &stream[used..];
    }
    assert!(stream.is_empty(), "left over: {stream:?}");
    out
}

fn valid_id() -> impl Strategy<Value = String> {
    "[!-~]{1,128}"
}

fn line_sent() -> impl Strategy<Value = (Vec<u8>, Sent)> {
    prop_oneof![
        Just((b"PING\n".to_vec(), Sent::Ping(None))),
        "[!-~]{1,8}".prop_map(|t| (
            format!("PING {t}\r\n").into_bytes(),
            Sent::Ping(Some(t.into_bytes()))
        )),
        valid_id().prop_map(|id| (format!("HELLO {id}\n").into_bytes(), Sent::Hello(id))),
        "[a-z][a-z ]{0,30}"
            .prop_map(|m| (format!("{m}\n").into_bytes(), Sent::Message(m.into_bytes()))),
    ]
}

fn resp_sent() -> impl Strategy<Value = (Vec<u8>, Sent)> {
    let mixed_case = |w: &'static str| {
        vec(any::<bool>(), w.len()).prop_map(move |up| {
            w.bytes()
                .zip(up)
                .map(|(b, up)| {
                    if up {
                        b.to_ascii_uppercase()
                    } else {
                        b.to_ascii_lowercase()
                    }
                })
                .collect::<Vec<u8>>()
        })
    };
    let args = prop_oneof![
        mixed_case("ping").prop_map(|p| (vec![p], Sent::Ping(None))),
        (mixed_case("ping"), vec(any::<u8>(), 0..16))
            .prop_map(|(p, t)| (vec![p, t.clone()], Sent::Ping(Some(t)))),
        (mixed_case("client"), mixed_case("setname"), valid_id())
            .prop_map(|(c, s, id)| (vec![c, s, id.clone().into_bytes()], Sent::Hello(id))),
        (mixed_case("echo"), vec(any::<u8>(), 0..16)).prop_map(|(e, t)| {
            let sent = Sent::Command(format!("{:?}", Command::Echo(&t)));
            (vec![e, t], sent)
        }),
        (mixed_case("hello"), select(vec![2u8, 3])).prop_map(|(h, v)| {
            let sent = Sent::Command(format!(
                "{:?}",
                Command::Handshake {
                    version: Some(v),
                    client_id: None,
                    token: None
                }
            ));
            (vec![h, v.to_string().into_bytes()], sent)
        }),
        (mixed_case("quit"), vec(token(), 0..2)).prop_map(|(q, rest)| {
            let mut args = vec![q];
            args.extend(rest);
            (args, Sent::Quit)
        }),
        ("[a-zA-Z]{1,10}", vec(token(), 0..3))
            .prop_filter("not a known command", |(name, _)| {
                ![
                    "ping", "quit", "client", "hello", "auth", "select", "info", "echo", "reset",
                ]
                .contains(&name.to_ascii_lowercase().as_str())
            })
            .prop_map(|(name, rest)| {
                let mut args = vec![name.clone().into_bytes()];
                args.extend(rest);
                (args, Sent::Unknown(name.into_bytes()))
            }),
        Just((Vec::new(), Sent::Message(Vec::new()))),
    ];
    (args, any::<bool>()).prop_map(|((args, sent), as_inline)| {
        let wire = if args.is_empty() {
            if as_inline {
                b"\r\n".to_vec()
            } else {
                b"*0\r\n".to_vec()
            }
        } else if as_inline {
            inline(&args, true).unwrap_or_else(|| multibulk(&args))
        } else {
            multibulk(&args)
        };
        (wire, sent)
    })
}

fn binary_sent() -> impl Strategy<Value = (Vec<u8>, Sent)> {
    prop_oneof![
        vec(any::<u8>(), 0..16).prop_map(|t| {
            let sent = Sent::Ping(Some(t.clone()).filter(|t| !t.is_empty()));
            (binary(kind::PING, &t), sent)
        }),
        valid_id().prop_map(|id| (binary(kind::HELLO, id.as_bytes()), Sent::Hello(id))),
        vec(any::<u8>(), 0..64).prop_map(|m| (binary(kind::DATA, &m), Sent::Message(m))),
        Just((binary(kind::QUIT, b""), Sent::Quit)),
        (any::<u8>(), vec(any::<u8>(), 0..8))
            .prop_filter("not a client type", |(k, _)| {
                ![kind::PING, kind::HELLO, kind::DATA, kind::QUIT].contains(k)
            })
            .prop_map(|(k, p)| (binary(k, &p), Sent::Unknown(vec![k]))),
    ]
}

/// A reply, owned, so that a strategy can make it.
#[derive(Debug, Clone)]
enum Owned {
    Pong(Option<Vec<u8>>),
    Welcome(String, u64, u64),
    Message(Vec<u8>),
    Bye(CloseReason),
    Quit,
    Unknown(Vec<u8>),
}

impl Owned {
    fn reply(&self) -> Reply<'_> {
        match self {
            Owned::Pong(t) => Reply::Pong {
                token: t.as_deref(),
            },
            Owned::Welcome(id, i, t) => Reply::Welcome {
                client_id: id,
                interval_ms: *i,
                timeout_ms: *t,
            },
            Owned::Message(m) => Reply::Message(m),
            Owned::Bye(r) => Reply::Bye(*r),
            Owned::Quit => Reply::Quit,
            Owned::Unknown(c) => Reply::Unknown { command: c },
        }
    }
}

fn replies() -> impl Strategy<Value = Vec<Owned>> {
    let ms = prop_oneof![any::<u64>(), 0u64..100_000];
    vec(
        prop_oneof![
            proptest::option::of(vec(any::<u8>(), 0..16)).prop_map(Owned::Pong),
            (valid_id(), ms.clone(), ms).prop_map(|(id, i, t)| Owned::Welcome(id, i, t)),
            vec(any::<u8>(), 0..32).prop_map(Owned::Message),
            select(CloseReason::ALL.to_vec()).prop_map(Owned::Bye),
            Just(Owned::Quit),
            vec(any::<u8>(), 0..200).prop_map(Owned::Unknown),
        ],
        0..10,
    )
}

/// A RESP2 reply as a client sees it.
#[derive(Debug, PartialEq, Eq)]
enum Resp {
    Simple(Vec<u8>),
    Error(Vec<u8>),
    Bulk(Vec<u8>),
}

/// A small RESP2 reply parser, just for simple strings, errors and bulk
/// strings: strict about every ending.
fn parse_resp(mut input: &[u8]) -> Result<Vec<Resp>, String> {
    fn line(input: &[u8]) -> Result<(&[u8], &[u8]), String> {
        let end = input
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("no CRLF")?;
        let text = &input[..end];
        if text.contains(&b'\r') || text.contains(&b'\n') {
            return Err(format!("CR or LF inside {text:?}"));
        }
        Ok((text, &input[end + 2..]))
    }
    let mut out = Vec::new();
    while let Some((&first, rest)) = input.split_first() {
        let (text, rest) = line(rest)?;
        input = rest;
        out.push(match first {
            b'+' => Resp::Simple(text.to_vec()),
            b'-' => Resp::Error(text.to_vec()),
            b'$' => {
                let len: usize = std::str::from_utf8(text)
                    .map_err(|e| e.to_string())?
                    .parse()
                    .map_err(|e| format!("bulk length: {e}"))?;
                if input.len() < len + 2 || &input[len..len + 2] != b"\r\n" {
                    return Err("bad bulk".into());
                }
                let data = input[..len].to_vec();
                input = &input[len + 2..];
                Resp::Bulk(data)
            }
            other => return Err(format!("unexpected type byte {other}")),
        });
    }
    Ok(out)
}

fn resp_expected(reply: &Owned) -> Resp {
    match reply {
        Owned::Pong(None) => Resp::Simple(b"PONG".to_vec()),
        Owned::Pong(Some(t)) => Resp::Bulk(t.clone()),
        Owned::Welcome(..) | Owned::Quit => Resp::Simple(b"OK".to_vec()),
        Owned::Message(m) => Resp::Bulk(m.clone()),
        Owned::Bye(r) => Resp::Error(format!("ERR closing: {r}").into_bytes()),
        Owned::Unknown(c) => {
            let mut text = b"ERR unknown command '".to_vec();
            text.extend(
                c.iter()
                    .take(128)
                    .map(|&b| if b.is_ascii_control() { b'?' } else { b }),
            );
            text.push(b'\'');
            Resp::Error(text)
        }
    }
}

/// A small client-side decoder of the binary protocol: (type, payload).
fn parse_binary(mut input: &[u8]) -> Result<Vec<(u8, Vec<u8>)>, String> {
    let mut out = Vec::new();
    while !input.is_empty() {
        if input.len() < 5 {
            return Err("short header".into());
        }
        let len = u32::from_be_bytes([input[0], input[1], input[2], input[3]]) as usize;
        if len == 0 || input.len() < 4 + len {
            return Err(format!("bad length {len}"));
        }
        out.push((input[4], input[5..4 + len].to_vec()));
        input = &input[4 + len..];
    }
    Ok(out)
}

fn binary_expected(reply: &Owned) -> (u8, Vec<u8>) {
    let sat = |ms: u64| u32::try_from(ms).unwrap_or(u32::MAX).to_be_bytes();
    match reply {
        Owned::Pong(t) => (kind::PONG, t.clone().unwrap_or_default()),
        Owned::Welcome(id, i, t) => (
            kind::WELCOME,
            [&sat(*i)[..], &sat(*t), id.as_bytes()].concat(),
        ),
        Owned::Message(m) => (kind::DATA, m.clone()),
        Owned::Bye(r) => (kind::BYE, r.as_str().as_bytes().to_vec()),
        Owned::Quit => (kind::BYE, b"closed".to_vec()),
        Owned::Unknown(c) => (kind::ERROR, c.clone()),
    }
}

proptest! {
    #[test]
    fn line_round_trip(frames in vec(line_sent(), 0..20)) {
        let (wire, sent): (Vec<_>, Vec<_>) = frames.into_iter().unzip();
        prop_assert_eq!(decode_all(&LineProtocol::default(), &wire.concat()), sent);
    }

    #[test]
    fn resp_round_trip(frames in vec(resp_sent(), 0..20)) {
        let (wire, sent): (Vec<_>, Vec<_>) = frames.into_iter().unzip();
        prop_assert_eq!(decode_all(&RespProtocol::default(), &wire.concat()), sent);
    }

    #[test]
    fn binary_round_trip(frames in vec(binary_sent(), 0..20)) {
        let (wire, sent): (Vec<_>, Vec<_>) = frames.into_iter().unzip();
        prop_assert_eq!(decode_all(&BinaryProtocol::default(), &wire.concat()), sent);
    }

    #[test]
    fn resp_replies_parse(replies in replies()) {
        let mut out = Vec::new();
        for r in &replies {
            RespProtocol::default().encode(&r.reply(), &mut out);
        }
        let expected: Vec<Resp> = replies.iter().map(resp_expected).collect();
        prop_assert_eq!(parse_resp(&out), Ok(expected));
    }

    #[test]
    fn binary_replies_parse(replies in replies()) {
        let mut out = Vec::new();
        for r in &replies {
            BinaryProtocol::default().encode(&r.reply(), &mut out);
        }
        let expected: Vec<_> = replies.iter().map(binary_expected).collect();
        prop_assert_eq!(parse_binary(&out), Ok(expected));
    }
}

// ---- the client codecs ----------------------------------------------------
//
// - Split invariance (line, resp, binary client codecs): a client session
//   fed the server's replies in any cut sees the same events as one fed
//   them at once, through its own partial-frame buffer; and the codec
//   alone, decoding from the front of what is buffered, gives the same
//   frames, the same error and the same leftover. Streams are the server
//   codec's own replies with occasional garbage, under small limits.
// - The bound: an incomplete frame never holds more than the codec's
//   `max_incomplete(limit)`.
// - Round trip: whatever the server codec writes (a reply of any kind),
//   the client codec of the same protocol reads, under a large limit.

use vigil::client::session::{Event, IntervalPolicy, Session, SessionConfig};
use vigil::protocol::client::{ClientCodec, ServerFrame};

/// Each client codec with a server codec of its protocol.
fn client_codec() -> impl Strategy<Value = (ClientCodec, usize)> {
    (select(vec![0usize, 1, 2]), 1usize..40).prop_map(|(k, limit)| {
        (
            [ClientCodec::LINE, ClientCodec::RESP, ClientCodec::BINARY][k],
            limit,
        )
    })
}

fn server_of(codec: ClientCodec) -> Box<dyn Protocol> {
    match codec.name() {
        "line" => Box::new(LineProtocol::default()),
        "resp" => Box::new(RespProtocol::default()),
        _ => Box::new(BinaryProtocol::default()),
    }
}

/// Replies of the server codec for `codec`'s protocol, with garbage bytes
/// (`Some`) in between now and then.
fn reply_stream(codec: ClientCodec, replies: &[(Owned, Option<u8>)]) -> Vec<u8> {
    let server = server_of(codec);
    let mut out = Vec::new();
    for (reply, garbage) in replies {
        server.encode(&reply.reply(), &mut out);
        out.extend(garbage);
    }
    out
}

fn replies_with_garbage() -> impl Strategy<Value = Vec<(Owned, Option<u8>)>> {
    (
        replies(),
        vec(proptest::option::weighted(0.1, any::<u8>()), 10),
    )
        .prop_map(|(r, g)| r.into_iter().zip(g.into_iter().cycle()).collect())
}

/// What a client makes of `reads` with the codec alone: each frame, then
/// the first error or what is left buffered.
#[track_caller]
fn client_reads(codec: ClientCodec, limit: usize, reads: &[&[u8]]) -> Vec<String> {
    let mut trace = Vec::new();
    let mut buf: Vec<u8> = Vec::new();
    for read in reads {
        buf.extend_from_slice(read);
        loop {
            match codec.decode(&buf, limit) {
                Ok(Some((frame, used))) => {
                    assert!(
                        used >= 1 && used <= buf.len(),
                        "used {used} of {}",
                        buf.len()
                    );
                    trace.push(format!("{frame:?}"));
                    buf.drain(..used);
                }
                Ok(None) => {
                    let max = codec.max_incomplete(limit);
                    assert!(
                        buf.len() <= max,
                        "{} bytes incomplete, max {max}",
                        buf.len()
                    );
                    break;
                }
                Err(e) => {
                    trace.push(format!("error: {e}"));
                    return trace;
                }
            }
        }
    }
    trace.push(format!("left {}", buf.len()));
    trace
}

/// A session speaking `codec`, logged in (where the protocol logs in with
/// an interval, the stream's own WELCOMEs set it; otherwise it is fixed),
/// fed `reads`: everything it reports.
fn session_events(codec: ClientCodec, limit: usize, reads: &[&[u8]]) -> Vec<String> {
    let mut config = SessionConfig::new("dev", 1);
    config.protocol = codec;
    config.max_line = limit;
    config.interval = IntervalPolicy::Fixed(1000);
    let mut s = Session::new(config, 0).unwrap();
    s.poll_action();
    s.handle_connected(0);
    for read in reads {
        s.handle_received(1, read);
    }
    std::iter::from_fn(|| s.poll_event())
        .filter(|e| !matches!(e, Event::ReconnectScheduled { .. }))
        .map(|e| format!("{e:?}"))
        .collect()
}

proptest! {
    #[test]
    fn client_codecs_split(
        (codec, limit) in client_codec(),
        replies in replies_with_garbage(),
        sizes in sizes(),
    ) {
        let stream = reply_stream(codec, &replies);
        prop_assert_eq!(
            client_reads(codec, limit, &reads(&stream, &sizes)),
            client_reads(codec, limit, &[&stream])
        );
    }

    #[test]
    fn client_sessions_split(
        (codec, limit) in client_codec(),
        replies in replies_with_garbage(),
        sizes in sizes(),
    ) {
        let stream = reply_stream(codec, &replies);
        let whole = session_events(codec, limit, &[&stream]);
        prop_assert_eq!(session_events(codec, limit, &reads(&stream, &sizes)), whole.clone());
        prop_assert_eq!(session_events(codec, limit, &reads(&stream, &[1])), whole);
    }

    #[test]
    fn client_codecs_read_their_server(
        (codec, _) in client_codec(),
        replies in replies(),
    ) {
        let server = server_of(codec);
        for reply in &replies {
            // Lines cannot carry a line ending: the line server never has a
            // payload with one to send (its frames are lines).
            let payload = match reply {
                Owned::Pong(Some(b)) | Owned::Message(b) | Owned::Unknown(b) => &b[..],
                _ => &[],
            };
            if codec.name() == "line" && payload.iter().any(|&b| b == b'\n' || b == b'\r') {
                continue;
            }
            let mut out = Vec::new();
            server.encode(&reply.reply(), &mut out);
            let got = client_reads(codec, 1 << 20, &[&out]);
            // A WELCOME with interval 0 is refused (a client told to beat
            // every 0 ms would spin); everything else is one frame.
            let refused_welcome = matches!(reply, Owned::Welcome(_, 0, _));
            if refused_welcome && codec.name() != "resp" {
                prop_assert!(got[0].contains("interval is zero"), "{:?}", got);
            } else {
                prop_assert_eq!(got.len(), 2, "{:?}", got);
                prop_assert_eq!(got[1].as_str(), "left 0");
                let frame = &got[0];
                let kind_ok = match reply {
                    Owned::Pong(_) => frame.starts_with("Pong") || frame.starts_with("Echo"),
                    Owned::Welcome(..) => frame.starts_with("Welcome"),
                    Owned::Message(_) => frame.starts_with("Message") || frame.starts_with("Echo"),
                    Owned::Bye(_) => frame.starts_with("Bye { reason: Some"),
                    Owned::Quit => frame.starts_with("Bye") || frame.starts_with("Welcome"),
                    Owned::Unknown(_) => frame.starts_with("Message") || frame.starts_with("Other"),
                };
                prop_assert!(kind_ok, "{:?} read as {}", reply, frame);
            }
        }
    }
}

/// The raw client takes each read as one answer, whatever its bytes.
#[test]
fn raw_client_one_answer_per_read() {
    for read in [&b"a"[..], b"ack\n", b"\0\xff", &[7; 5000]] {
        let got = ClientCodec::RAW.decode(read, 0);
        assert_eq!(got, Ok(Some((ServerFrame::Ack, read.len()))));
    }
    assert_eq!(ClientCodec::RAW.decode(b"", 0), Ok(None));
}
