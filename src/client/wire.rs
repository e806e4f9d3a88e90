//! The client's half of the line protocol: reading what the server says and
//! spelling what the client sends.
//!
//! The framing is the server codec's ([`crate::protocol::line`]): lines end
//! in `\n`, a `\r` just before it is dropped, and a line holds at most
//! `max_line` bytes, not counting its ending. What differs is the vocabulary:
//!
//! | server sends                                     | parsed as                 |
//! |--------------------------------------------------|---------------------------|
//! | `WELCOME <client-id> interval=<ms> timeout=<ms>` | [`ServerLine::Welcome`]   |
//! | `PONG` or `PONG <token>`                         | [`ServerLine::Pong`]      |
//! | `BYE` or `BYE <reason>`                          | [`ServerLine::Bye`]       |
//! | anything else, an empty line included            | [`ServerLine::Message`]   |
//!
//! Commands are matched without regard to ASCII case, to be lenient with
//! servers (vigil's own always spells them in upper case).
//! `WELCOME` fields after the id are `key=value` pairs in any order; unknown
//! keys are skipped so a newer server can add some. `interval` is required
//! and must be a whole number of milliseconds above zero (a client told to
//! beat every 0 ms would spin); `timeout` is optional. A `BYE` reason this
//! version does not know is kept as `None` rather than rejected: the server
//! is leaving either way.
//!
//! # Contract
//! [`decode`] follows the [`Protocol::decode`](crate::protocol::Protocol::decode)
//! contract: `Ok(None)` for "need more bytes", `Ok(Some((line, used)))` with
//! `used >= 1`, or `Err` when the stream can never become valid, and it
//! rejects an incomplete line as soon as it has outgrown `max_line`. It never
//! panics, whatever the bytes.

use crate::protocol::{CloseReason, DecodeError};

/// The default longest server line the client accepts, in bytes.
///
/// Four times the server's own default ([`crate::protocol::line::DEFAULT_MAX_LINE`]),
/// so that a server relaying a client's longest message with a prefix still fits.
pub const DEFAULT_MAX_LINE: usize = 4 * crate::protocol::line::DEFAULT_MAX_LINE;

/// One complete line from the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerLine<'a> {
    /// The answer to `HELLO`.
    Welcome(Welcome<'a>),
    /// The answer to a `PING`.
    Pong {
        /// The echoed token, if the line had one.
        token: Option<&'a [u8]>,
    },
    /// The server's own heartbeat (`vigil serve --line-ping`): answer
    /// `PONG` with its token.
    Ping {
        /// The token to echo, if the line had one.
        token: Option<&'a [u8]>,
    },
    /// The server is about to close the connection.
    Bye {
        /// Why, if the reason is one this version knows.
        reason: Option<CloseReason>,
    },
    /// Anything else: application data from the server.
    Message(&'a [u8]),
}

/// The fields of a `WELCOME` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Welcome<'a> {
    /// The client id the server accepted, as it spelled it.
    pub client_id: &'a [u8],
    /// How often the server wants a heartbeat, in milliseconds (above zero).
    pub interval_ms: u64,
    /// How long the server waits for a sign of life, in milliseconds.
    pub timeout_ms: Option<u64>,
}

/// Decodes at most one line from the front of `input`. See the
/// [module docs](self) for the contract.
pub fn decode(
    input: &[u8],
    max_line: usize,
) -> Result<Option<(ServerLine<'_>, usize)>, DecodeError> {
    match split_line(input, max_line)? {
        Some((line, used)) => Ok(Some((parse(line)?, used))),
        None => Ok(None),
    }
}

pub use crate::protocol::line::split_line;

/// Parses one line (without its ending) into what the server meant.
pub fn parse(line: &[u8]) -> Result<ServerLine<'_>, DecodeError> {
    let (command, rest) = match line.iter().position(|&b| b == b' ') {
        Some(sp) => (&line[..sp], Some(&line[sp + 1..])),
        None => (line, None),
    };
    if command.eq_ignore_ascii_case(b"PONG") {
        let token = rest.filter(|t| !t.is_empty());
        return Ok(ServerLine::Pong { token });
    }
    // Exactly as the server spells it: an application line "ping me" is
    // the application's.
    if command == b"PING" {
        let token = rest.filter(|t| !t.is_empty());
        return Ok(ServerLine::Ping { token });
    }
    if command.eq_ignore_ascii_case(b"BYE") {
        // The reason is the first word; later words are room for detail.
        let word = rest
            .unwrap_or_default()
            .split(|&b| b == b' ')
            .next()
            .unwrap_or_default();
        let reason = std::str::from_utf8(word).ok().and_then(CloseReason::parse);
        return Ok(ServerLine::Bye { reason });
    }
    if command.eq_ignore_ascii_case(b"WELCOME") {
        return parse_welcome(rest.unwrap_or_default()).map(ServerLine::Welcome);
    }
    Ok(ServerLine::Message(line))
}

fn parse_welcome(rest: &[u8]) -> Result<Welcome<'_>, DecodeError> {
    let mut words = rest.split(|&b| b == b' ').filter(|w| !w.is_empty());
    let client_id = words
        .next()
        .ok_or(DecodeError::BadFrame("WELCOME without a client id"))?;
    let mut interval_ms = None;
    let mut timeout_ms = None;
    for word in words {
        let Some(eq) = word.iter().position(|&b| b == b'=') else {
            continue;
        };
        let (key, value) = (&word[..eq], &word[eq + 1..]);
        match key {
            b"interval" => {
                interval_ms = Some(parse_ms(value).ok_or(DecodeError::BadFrame(
                    "WELCOME interval is not a whole number of milliseconds",
                ))?)
            }
            b"timeout" => {
                timeout_ms = Some(parse_ms(value).ok_or(DecodeError::BadFrame(
                    "WELCOME timeout is not a whole number of milliseconds",
                ))?)
            }
            _ => {}
        }
    }
    match interval_ms {
        Some(interval_ms) if interval_ms > 0 => Ok(Welcome {
            client_id,
            interval_ms,
            timeout_ms,
        }),
        Some(_) => Err(DecodeError::BadFrame("WELCOME interval is zero")),
        None => Err(DecodeError::BadFrame("WELCOME without interval=")),
    }
}

/// Parses a whole number of ASCII digits (1 to 20 of them) into a `u64`.
pub(crate) fn parse_ms(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &b| {
        let d = b.checked_sub(b'0').filter(|d| *d <= 9)?;
        n.checked_mul(10)?.checked_add(u64::from(d))
    })
}

/// Appends `HELLO <client_id>\n`, or `HELLO <client_id> <token>\n`, to `out`.
pub fn encode_hello(client_id: &str, token: Option<&str>, out: &mut Vec<u8>) {
    out.extend_from_slice(b"HELLO ");
    out.extend_from_slice(client_id.as_bytes());
    if let Some(t) = token {
        out.push(b' ');
        out.extend_from_slice(t.as_bytes());
    }
    out.push(b'\n');
}

/// Appends `PING <seq>\n` to `out`.
pub fn encode_ping(seq: u64, out: &mut Vec<u8>) {
    use std::io::Write;
    // Writing into a Vec cannot fail.
    let _ = writeln!(out, "PING {seq}");
}

/// Appends a message line to `out`. The caller has checked it with
/// [`is_command`] and for line endings.
pub fn encode_message(message: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(message);
    out.push(b'\n');
}

/// Whether the server would read `line` as a command (`PING`, `HELLO`)
/// rather than as a message.
pub fn is_command(line: &[u8]) -> bool {
    let command = line.split(|&b| b == b' ').next().unwrap_or_default();
    command.eq_ignore_ascii_case(b"PING") || command.eq_ignore_ascii_case(b"HELLO")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes everything in `input` into a readable trace: one entry per
    /// line, then "more(n)" or the error.
    fn decode_all(max_line: usize, mut input: &[u8]) -> Vec<String> {
        let mut out = Vec::new();
        loop {
            match decode(input, max_line) {
                Ok(Some((line, used))) => {
                    assert!(used >= 1 && used <= input.len());
                    out.push(show(&line));
                    input = &input[used..];
                }
                Ok(None) => {
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

    fn show(line: &ServerLine<'_>) -> String {
        let s = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        match line {
            ServerLine::Welcome(w) => format!(
                "welcome {} interval={} timeout={:?}",
                s(w.client_id),
                w.interval_ms,
                w.timeout_ms
            ),
            ServerLine::Pong { token } => format!("pong {:?}", token.map(s)),
            ServerLine::Ping { token } => format!("ping {:?}", token.map(s)),
            ServerLine::Bye { reason } => format!("bye {reason:?}"),
            ServerLine::Message(m) => format!("msg {:?}", s(m)),
        }
    }

    #[track_caller]
    fn check(max_line: usize, input: &[u8], expected: &[&str]) {
        let got = decode_all(max_line, input);
        assert_eq!(got, expected, "input {:?}", String::from_utf8_lossy(input));
    }

    #[test]
    fn welcome() {
        check(
            64,
            b"WELCOME dev-1 interval=30000 timeout=45000\n",
            &[
                "welcome dev-1 interval=30000 timeout=Some(45000)",
                "more(0)",
            ],
        );
        check(
            64,
            b"welcome d timeout=5 x=y flag interval=7\r\n",
            &["welcome d interval=7 timeout=Some(5)", "more(0)"],
        );
        check(
            64,
            b"WELCOME d  interval=1\n",
            &["welcome d interval=1 timeout=None", "more(0)"],
        );
        check(
            64,
            b"WELCOME\n",
            &["err(bad frame: WELCOME without a client id)"],
        );
        check(
            64,
            b"WELCOME d\n",
            &["err(bad frame: WELCOME without interval=)"],
        );
        check(
            64,
            b"WELCOME d interval=0\n",
            &["err(bad frame: WELCOME interval is zero)"],
        );
        let bad = "err(bad frame: WELCOME interval is not a whole number of milliseconds)";
        check(64, b"WELCOME d interval=\n", &[bad]);
        check(64, b"WELCOME d interval=-1\n", &[bad]);
        check(64, b"WELCOME d interval=1s\n", &[bad]);
        check(64, b"WELCOME d interval=18446744073709551616\n", &[bad]);
        check(
            64,
            b"WELCOME d interval=18446744073709551615\n",
            &[
                "welcome d interval=18446744073709551615 timeout=None",
                "more(0)",
            ],
        );
        check(
            64,
            b"WELCOME d interval=1 timeout=x\n",
            &["err(bad frame: WELCOME timeout is not a whole number of milliseconds)"],
        );
        // Not the command: a message.
        check(64, b"WELCOMEX d\n", &["msg \"WELCOMEX d\"", "more(0)"]);
    }

    #[test]
    fn pong_and_bye() {
        check(64, b"PONG 17\n", &["pong Some(\"17\")", "more(0)"]);
        check(64, b"pong\r\n", &["pong None", "more(0)"]);
        check(64, b"PONG \n", &["pong None", "more(0)"]);
        check(64, b"BYE timeout\n", &["bye Some(Timeout)", "more(0)"]);
        check(
            64,
            b"bye too-many-pings\n",
            &["bye Some(TooManyPings)", "more(0)"],
        );
        check(
            64,
            b"BYE shutdown now\n",
            &["bye Some(Shutdown)", "more(0)"],
        );
        check(64, b"BYE\n", &["bye None", "more(0)"]);
        check(64, b"BYE \xff\n", &["bye None", "more(0)"]);
        check(64, b"BYE later\n", &["bye None", "more(0)"]);
        for r in CloseReason::ALL {
            let line = format!("BYE {r}\n");
            let want = format!("bye Some({r:?})");
            check(64, line.as_bytes(), &[want.as_str(), "more(0)"]);
        }
    }

    #[test]
    fn messages() {
        check(64, b"\n", &["msg \"\"", "more(0)"]);
        check(64, b"hello there\n", &["msg \"hello there\"", "more(0)"]);
        check(64, b"\xff\x00\n", &["msg \"\u{fffd}\\0\"", "more(0)"]);
        // Only the server's exact spelling is its ping.
        check(64, b"ping me\n", &["msg \"ping me\"", "more(0)"]);
    }

    #[test]
    fn the_server_s_pings() {
        check(64, b"PING 1\n", &["ping Some(\"1\")", "more(0)"]);
        check(64, b"PING\r\n", &["ping None", "more(0)"]);
        check(64, b"PING \n", &["ping None", "more(0)"]);
    }

    #[test]
    fn line_length_boundaries() {
        check(4, b"abcd\n", &["msg \"abcd\"", "more(0)"]);
        check(4, b"abcd\r\n", &["msg \"abcd\"", "more(0)"]);
        check(4, b"abcd", &["more(4)"]);
        check(4, b"abcd\r", &["more(5)"]);
        check(4, b"abcde", &["err(frame longer than 4 bytes)"]);
        check(4, b"abcde\n", &["err(frame longer than 4 bytes)"]);
        check(4, b"abcd\rx", &["err(frame longer than 4 bytes)"]);
        check(
            4,
            b"ok\nabcdef",
            &["msg \"ok\"", "err(frame longer than 4 bytes)"],
        );
        // A zero limit behaves as 1, like the server codec.
        check(0, b"a\n", &["msg \"a\"", "more(0)"]);
    }

    #[test]
    fn framing_matches_the_server_codec() {
        use crate::protocol::{LineProtocol, Protocol};
        let inputs: [&[u8]; 8] = [
            b"abcd\n",
            b"abcd\r\n",
            b"abcd",
            b"abcd\r",
            b"abcde",
            b"abcd\rx",
            b"abcd\r\r\n",
            b"\r\n",
        ];
        let p = LineProtocol::new(4);
        for input in inputs {
            let ours = split_line(input, 4).map(|o| o.map(|(_, used)| used));
            let theirs = p.decode(input).map(|o| o.map(|(_, used)| used));
            assert_eq!(ours, theirs, "{:?}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn ms_numbers() {
        assert_eq!(parse_ms(b"0"), Some(0));
        assert_eq!(parse_ms(b"007"), Some(7));
        assert_eq!(parse_ms(b""), None);
        assert_eq!(parse_ms(b"+1"), None);
        assert_eq!(parse_ms(b"1 "), None);
        assert_eq!(parse_ms(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_ms(b"18446744073709551616"), None);
    }

    #[test]
    fn encoding_and_commands() {
        let mut out = Vec::new();
        encode_hello("dev-1", None, &mut out);
        encode_ping(42, &mut out);
        encode_message(b"hi", &mut out);
        assert_eq!(out, b"HELLO dev-1\nPING 42\nhi\n");
        for line in [&b"PING"[..], b"ping 3", b"HELLO x", b"hello"] {
            assert!(is_command(line), "{:?}", String::from_utf8_lossy(line));
        }
        for line in [&b""[..], b"PINGS", b" PING", b"HELLOx y", b"hi"] {
            assert!(!is_command(line), "{:?}", String::from_utf8_lossy(line));
        }
    }

    proptest::proptest! {
        #[test]
        fn decode_never_panics(input in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64),
                               max_line in 0usize..16) {
            let mut rest = &input[..];
            while let Ok(Some((_, used))) = decode(rest, max_line) {
                proptest::prop_assert!(used >= 1 && used <= rest.len());
                rest = &rest[used..];
            }
        }
    }
}
