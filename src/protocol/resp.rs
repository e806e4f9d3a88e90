//! The RESP protocol: enough of Redis's RESP2 for heartbeats, so that
//! `redis-cli` and `redis-benchmark -t ping_inline,ping_mbulk` can talk to
//! vigil.
//!
//! # Requests
//!
//! A request is a command and its arguments, in one of the two forms Redis
//! accepts. The first byte decides which:
//!
//! - **Multibulk** (first byte `*`): `*<n>\r\n` then `n` bulk strings, each
//!   `$<len>\r\n<len bytes>\r\n`; for instance `*1\r\n$4\r\nPING\r\n` or
//!   `*2\r\n$4\r\nPING\r\n$3\r\nmsg\r\n`. Arguments are binary-safe. `<n>`
//!   and `<len>` are decimal; `*0\r\n` and `*-1\r\n` are empty requests.
//!   Any other negative number, a number without digits or with anything
//!   else in it, an element not starting with `$`, or a header or bulk
//!   string not followed by exactly `\r\n` is a bad frame.
//! - **Inline** (any other first byte): one line ending in `\n`, a `\r`
//!   just before it dropped, split into arguments at runs of spaces, tabs,
//!   vertical tabs, form feeds and `\r`; for instance `PING\r\n` or
//!   `PING hello\n`. There is no quoting (`"a b"` is two arguments). A line
//!   with no arguments is an empty request.
//!
//! A request, with every header and ending, holds at most `max_frame` bytes
//! (64 KiB by default, Redis's inline limit). The decoder rejects a request
//! as too long as soon as it is bound to exceed that: a line with no `\n`
//! in its first `max_frame` bytes, a `*<n>` or `$<len>` announcing more
//! than fits, before waiting for (or allocating) any of it. This also bounds
//! the number of arguments, to `max_frame / 6`.
//!
//! Command names are case-insensitive, as in Redis:
//!
//! | peer sends              | frame                         | server answers                       |
//! |-------------------------|-------------------------------|--------------------------------------|
//! | `PING`                  | [`Frame::Ping`] without token | `+PONG\r\n`                          |
//! | `PING <msg>`            | [`Frame::Ping`] with `<msg>`  | `$<len>\r\n<msg>\r\n` (bulk string)  |
//! | `CLIENT SETNAME <id>`   | [`Frame::Hello`]              | `+OK\r\n`                            |
//! | `QUIT` (any arguments)  | [`Frame::Quit`]               | `+OK\r\n`, then closes               |
//! | an empty request        | [`Frame::Message`] (empty)    | nothing: a sign of life, as Redis ignores it |
//! | any other command       | [`Frame::Unknown`]            | `-ERR unknown command '<name>'\r\n`  |
//!
//! `PING` with two or more arguments, `CLIENT SETNAME` without exactly one
//! argument, and a client id that is not 1 to 128 printable ASCII characters
//! are bad frames: the connection closes. Other `CLIENT` subcommands are
//! unknown commands named `CLIENT`. In the unknown-command error, the name
//! is cut to 128 bytes and every ASCII control byte (so `\r` and `\n`) is
//! replaced by `?`.
//!
//! # Other replies
//!
//! - Application data ([`Reply::Message`]) is a bulk string.
//! - Before closing, the server sends the error `-ERR closing: <reason>\r\n`
//!   (for instance `-ERR closing: timeout\r\n`); the reasons are spelled as
//!   in [`CloseReason::as_str`](super::CloseReason::as_str).

use super::{valid_client_id, DecodeError, Frame, Protocol, Reply};

/// The default largest request, in bytes (Redis's inline limit).
pub const DEFAULT_MAX_FRAME: usize = 64 * 1024;

/// The smallest multibulk element, `$0\r\n\r\n`, in bytes.
const MIN_ELEMENT: usize = 6;

/// How much of an unknown command's name the error echoes, in bytes.
const MAX_ECHOED_NAME: usize = 128;

/// The RESP codec. See the [module docs](self).
///
/// ```
/// use vigil::protocol::{Frame, Protocol, Reply, RespProtocol};
///
/// let resp = RespProtocol::default();
/// let input = b"*2\r\n$4\r\nping\r\n$2\r\nhi\r\nPING\r\n";
/// let (frame, used) = resp.decode(input)?.unwrap();
/// assert_eq!(frame, Frame::Ping { token: Some(b"hi") });
/// assert_eq!(used, 22);
/// let (frame, _) = resp.decode(&input[used..])?.unwrap();
/// assert_eq!(frame, Frame::Ping { token: None });
///
/// let mut out = Vec::new();
/// resp.encode(&Reply::Pong { token: Some(b"hi") }, &mut out);
/// resp.encode(&Reply::Pong { token: None }, &mut out);
/// assert_eq!(out, b"$2\r\nhi\r\n+PONG\r\n");
/// # Ok::<(), vigil::protocol::DecodeError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RespProtocol {
    max_frame: usize,
}

impl Default for RespProtocol {
    fn default() -> Self {
        RespProtocol::new(DEFAULT_MAX_FRAME)
    }
}

impl RespProtocol {
    /// A codec that accepts requests of up to `max_frame` bytes (at least 1),
    /// headers and endings included.
    pub fn new(max_frame: usize) -> RespProtocol {
        RespProtocol {
            max_frame: max_frame.max(1),
        }
    }
}

impl Protocol for RespProtocol {
    fn decode<'a>(&self, input: &'a [u8]) -> Result<Option<(Frame<'a>, usize)>, DecodeError> {
        let parsed = match input.first() {
            None => return Ok(None),
            Some(b'*') => self.multibulk(input),
            Some(_) => self.inline(input),
        };
        match parsed {
            Ok((request, used)) => Ok(Some((request.frame()?, used))),
            Err(Stop::More) => Ok(None),
            Err(Stop::Error(e)) => Err(e),
        }
    }

    fn encode(&self, reply: &Reply<'_>, out: &mut Vec<u8>) {
        match *reply {
            Reply::Pong { token: None } => out.extend_from_slice(b"+PONG\r\n"),
            Reply::Pong { token: Some(t) } => bulk(t, out),
            Reply::Welcome { .. } | Reply::Quit => out.extend_from_slice(b"+OK\r\n"),
            Reply::Message(m) => bulk(m, out),
            Reply::Bye(reason) => {
                out.extend_from_slice(b"-ERR closing: ");
                out.extend_from_slice(reason.as_str().as_bytes());
                out.extend_from_slice(b"\r\n");
            }
            Reply::Unknown { command } => {
                out.extend_from_slice(b"-ERR unknown command '");
                let shown = command.get(..MAX_ECHOED_NAME).unwrap_or(command);
                out.extend(
                    shown
                        .iter()
                        .map(|&b| if b.is_ascii_control() { b'?' } else { b }),
                );
                out.extend_from_slice(b"'\r\n");
            }
        }
    }

    fn max_frame(&self) -> usize {
        self.max_frame
    }

    fn name(&self) -> &'static str {
        "resp"
    }

    /// Every `CLIENT SETNAME` gets its `+OK`: clients wait for it.
    fn welcome_every_hello(&self) -> bool {
        true
    }
}

/// Appends `data` as a RESP bulk string.
fn bulk(data: &[u8], out: &mut Vec<u8>) {
    use std::io::Write;
    // Writing into a Vec cannot fail.
    let _ = write!(out, "${}\r\n", data.len());
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// Why parsing stopped short of a request.
enum Stop {
    /// The request is not complete yet.
    More,
    /// The request can never become valid.
    Error(DecodeError),
}

impl From<DecodeError> for Stop {
    fn from(e: DecodeError) -> Stop {
        Stop::Error(e)
    }
}

/// A parsed request: how many arguments it had and the first three, which
/// are all any command looks at. Slices of the input, never copies.
#[derive(Default)]
struct Request<'a> {
    argc: usize,
    argv: [&'a [u8]; 3],
}

impl<'a> Request<'a> {
    fn push(&mut self, arg: &'a [u8]) {
        if let Some(slot) = self.argv.get_mut(self.argc) {
            *slot = arg;
        }
        self.argc += 1;
    }

    /// What the request means.
    fn frame(&self) -> Result<Frame<'a>, DecodeError> {
        let [name, first, second] = self.argv;
        if self.argc == 0 {
            return Ok(Frame::Message(b""));
        }
        if name.eq_ignore_ascii_case(b"PING") {
            return match self.argc {
                1 => Ok(Frame::Ping { token: None }),
                2 => Ok(Frame::Ping { token: Some(first) }),
                _ => Err(DecodeError::BadFrame("PING takes at most one argument")),
            };
        }
        if name.eq_ignore_ascii_case(b"QUIT") {
            return Ok(Frame::Quit);
        }
        if name.eq_ignore_ascii_case(b"CLIENT")
            && self.argc >= 2
            && first.eq_ignore_ascii_case(b"SETNAME")
        {
            if self.argc != 3 {
                return Err(DecodeError::BadFrame(
                    "CLIENT SETNAME takes exactly one argument",
                ));
            }
            if !valid_client_id(second) {
                return Err(DecodeError::BadFrame(
                    "CLIENT SETNAME needs a client id of 1 to 128 printable ASCII characters without spaces",
                ));
            }
            // Printable ASCII is valid UTF-8.
            let client_id = std::str::from_utf8(second)
                .map_err(|_| DecodeError::BadFrame("client id is not ASCII"))?;
            return Ok(Frame::Hello {
                client_id,
                token: None,
            });
        }
        Ok(Frame::Unknown { command: name })
    }
}

/// Whether `b` separates inline arguments.
fn is_inline_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\x0b' | b'\x0c')
}

impl RespProtocol {
    fn too_long(&self) -> Stop {
        Stop::Error(DecodeError::TooLong {
            limit: self.max_frame,
        })
    }

    /// An inline request: one line, split at spaces.
    fn inline<'a>(&self, input: &'a [u8]) -> Result<(Request<'a>, usize), Stop> {
        // The "\n" must be among the first `max_frame` bytes.
        let window = input.get(..self.max_frame).unwrap_or(input);
        let Some(nl) = window.iter().position(|&b| b == b'\n') else {
            return Err(if window.len() == self.max_frame {
                self.too_long()
            } else {
                Stop::More
            });
        };
        let line = window.get(..nl).unwrap_or_default();
        let mut request = Request::default();
        for arg in line.split(|&b| is_inline_space(b)) {
            if !arg.is_empty() {
                request.push(arg);
            }
        }
        Ok((request, nl + 1))
    }

    /// A multibulk request: `*<n>\r\n` and `n` bulk strings.
    fn multibulk<'a>(&self, input: &'a [u8]) -> Result<(Request<'a>, usize), Stop> {
        let mut at = Cursor {
            input,
            pos: 0,
            max: self.max_frame,
        };
        at.byte()?; // The '*' that brought us here.
        let mut request = Request::default();
        let Some(count) = at.number(true, "invalid multibulk length")? else {
            // `*-1`: a null array, an empty request.
            return Ok((request, at.pos));
        };
        // Refuse what cannot fit before waiting for any of it.
        let least = count
            .checked_mul(MIN_ELEMENT)
            .and_then(|n| n.checked_add(at.pos));
        if least.is_none_or(|n| n > self.max_frame) {
            return Err(self.too_long());
        }
        for _ in 0..count {
            if at.byte()? != b'$' {
                return Err(DecodeError::BadFrame("expected '$' in a multibulk request").into());
            }
            let Some(len) = at.number(false, "invalid bulk length")? else {
                return Err(DecodeError::BadFrame("invalid bulk length").into());
            };
            request.push(at.bulk(len)?);
        }
        Ok((request, at.pos))
    }
}

/// Reads a multibulk request front to back.
///
/// Every decision depends only on the bytes read so far, never on how many
/// more are buffered: running out gives [`Stop::More`] and nothing else.
/// That is what makes decoding independent of how the stream was split.
/// A read past `max` is [`DecodeError::TooLong`] whether or not those bytes
/// have arrived, so an incomplete request never holds more than `max`.
struct Cursor<'a> {
    input: &'a [u8],
    pos: usize,
    max: usize,
}

impl<'a> Cursor<'a> {
    fn too_long(&self) -> Stop {
        Stop::Error(DecodeError::TooLong { limit: self.max })
    }

    fn byte(&mut self) -> Result<u8, Stop> {
        if self.pos >= self.max {
            return Err(self.too_long());
        }
        let b = *self.input.get(self.pos).ok_or(Stop::More)?;
        self.pos += 1;
        Ok(b)
    }

    /// A bulk string's `len` bytes and the "\r\n" after them, refused as
    /// too long before any of it arrives if the "\r\n" would end past `max`.
    fn bulk(&mut self, len: usize) -> Result<&'a [u8], Stop> {
        let end = match self.pos.checked_add(len) {
            Some(end) if end.saturating_add(2) <= self.max => end,
            _ => return Err(self.too_long()),
        };
        let data = self.input.get(self.pos..end).ok_or(Stop::More)?;
        self.pos = end;
        self.crlf("missing CRLF after a bulk string")?;
        Ok(data)
    }

    fn crlf(&mut self, what: &'static str) -> Result<(), Stop> {
        if self.byte()? != b'\r' || self.byte()? != b'\n' {
            return Err(DecodeError::BadFrame(what).into());
        }
        Ok(())
    }

    /// A decimal header number and its "\r\n": `None` for `-1` when
    /// `minus_one` allows it. A number larger than `max` cannot describe
    /// anything that fits, so it is too long as soon as it gets there.
    fn number(&mut self, minus_one: bool, what: &'static str) -> Result<Option<usize>, Stop> {
        let bad = || Stop::Error(DecodeError::BadFrame(what));
        let mut b = self.byte()?;
        if b == b'-' {
            if !minus_one || self.byte()? != b'1' {
                return Err(bad());
            }
            self.crlf(what)?;
            return Ok(None);
        }
        let mut n: usize = 0;
        let mut digits = 0;
        while b != b'\r' {
            if !b.is_ascii_digit() {
                return Err(bad());
            }
            n = n
                .checked_mul(10)
                .and_then(|n| n.checked_add(usize::from(b - b'0')))
                .filter(|&n| n <= self.max)
                .ok_or_else(|| self.too_long())?;
            digits += 1;
            b = self.byte()?;
        }
        if digits == 0 || self.byte()? != b'\n' {
            return Err(bad());
        }
        Ok(Some(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::CloseReason;

    /// Decodes everything in `input`, as the server would, into a readable
    /// trace: one entry per frame, then "need more" or the error.
    fn decode_all(p: &RespProtocol, input: &[u8]) -> Vec<String> {
        crate::protocol::decode_trace(p, input, show)
    }

    /// A frame with its byte strings shown as text.
    fn show(frame: &Frame<'_>) -> String {
        let s = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        match *frame {
            Frame::Ping { token: None } => "ping".into(),
            Frame::Ping { token: Some(t) } => format!("ping {:?}", s(t)),
            Frame::Hello { client_id, .. } => format!("hello {client_id}"),
            Frame::Message(m) => format!("message {:?}", s(m)),
            Frame::Quit => "quit".into(),
            Frame::Unknown { command } => format!("unknown {:?}", s(command)),
        }
    }

    #[track_caller]
    fn check(max_frame: usize, input: &[u8], expected: &[&str]) {
        let got = decode_all(&RespProtocol::new(max_frame), input);
        assert_eq!(got, expected, "input {:?}", String::from_utf8_lossy(input));
    }

    const BIG: usize = 1024;

    #[test]
    fn inline_commands() {
        check(BIG, b"PING\r\n", &["ping", "more(0)"]);
        check(BIG, b"PING\n", &["ping", "more(0)"]);
        check(BIG, b"ping\r\n", &["ping", "more(0)"]);
        check(BIG, b"PiNg hello\r\n", &["ping \"hello\"", "more(0)"]);
        check(
            BIG,
            b"  PING \t hello  \r\n",
            &["ping \"hello\"", "more(0)"],
        );
        check(
            BIG,
            b"PING a b\r\n",
            &["err(bad frame: PING takes at most one argument)"],
        );
        check(BIG, b"quit\r\n", &["quit", "more(0)"]);
        check(BIG, b"QUIT now\r\n", &["quit", "more(0)"]);
        check(
            BIG,
            b"client setname dev-1\r\n",
            &["hello dev-1", "more(0)"],
        );
        check(BIG, b"GET x\r\n", &["unknown \"GET\"", "more(0)"]);
        check(BIG, b"CLIENT LIST\r\n", &["unknown \"CLIENT\"", "more(0)"]);
        check(BIG, b"CLIENT\r\n", &["unknown \"CLIENT\"", "more(0)"]);
        // No quoting: the quotes are part of the arguments.
        check(
            BIG,
            b"PING \"a b\"\r\n",
            &["err(bad frame: PING takes at most one argument)"],
        );
    }

    #[test]
    fn empty_requests_are_signs_of_life() {
        check(BIG, b"\r\n", &["message \"\"", "more(0)"]);
        check(BIG, b"\n", &["message \"\"", "more(0)"]);
        check(BIG, b" \t \r\n", &["message \"\"", "more(0)"]);
        check(BIG, b"*0\r\n", &["message \"\"", "more(0)"]);
        check(BIG, b"*-1\r\n", &["message \"\"", "more(0)"]);
    }

    #[test]
    fn multibulk_commands() {
        check(BIG, b"*1\r\n$4\r\nPING\r\n", &["ping", "more(0)"]);
        check(
            BIG,
            b"*2\r\n$4\r\nping\r\n$3\r\nmsg\r\n",
            &["ping \"msg\"", "more(0)"],
        );
        // Binary-safe arguments, empty ones included.
        check(
            BIG,
            b"*2\r\n$4\r\nPING\r\n$4\r\na\r\nb\r\n",
            &["ping \"a\\r\\nb\"", "more(0)"],
        );
        check(
            BIG,
            b"*2\r\n$4\r\nPING\r\n$0\r\n\r\n",
            &["ping \"\"", "more(0)"],
        );
        check(
            BIG,
            b"*3\r\n$6\r\nCLIENT\r\n$7\r\nSETNAME\r\n$3\r\nabc\r\n",
            &["hello abc", "more(0)"],
        );
        check(BIG, b"*1\r\n$4\r\nQUIT\r\n", &["quit", "more(0)"]);
        check(
            BIG,
            b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n",
            &["unknown \"SET\"", "more(0)"],
        );
        check(BIG, b"*1\r\n$0\r\n\r\n", &["unknown \"\"", "more(0)"]);
        check(BIG, b"*01\r\n$004\r\nPING\r\n", &["ping", "more(0)"]);
        // Pipelined, and mixed with inline.
        check(
            BIG,
            b"*1\r\n$4\r\nPING\r\nPING\r\n*1\r\n$4\r\nPING\r\n",
            &["ping", "ping", "ping", "more(0)"],
        );
    }

    #[test]
    fn client_setname() {
        let bad_id = "err(bad frame: CLIENT SETNAME needs a client id of 1 to 128 printable ASCII characters without spaces)";
        check(
            BIG,
            b"*3\r\n$6\r\nclient\r\n$7\r\nsetname\r\n$3\r\na b\r\n",
            &[bad_id],
        );
        check(
            BIG,
            b"*3\r\n$6\r\nclient\r\n$7\r\nsetname\r\n$0\r\n\r\n",
            &[bad_id],
        );
        let mut long = b"CLIENT SETNAME ".to_vec();
        long.extend_from_slice(&[b'x'; 129]);
        long.extend_from_slice(b"\r\n");
        check(BIG, &long, &[bad_id]);
        let arity = "err(bad frame: CLIENT SETNAME takes exactly one argument)";
        check(BIG, b"CLIENT SETNAME\r\n", &[arity]);
        check(BIG, b"CLIENT SETNAME a b\r\n", &[arity]);
    }

    #[test]
    fn partial_requests_wait() {
        check(BIG, b"", &["more(0)"]);
        check(BIG, b"PIN", &["more(3)"]);
        check(BIG, b"PING\r", &["more(5)"]);
        check(BIG, b"*", &["more(1)"]);
        check(BIG, b"*1", &["more(2)"]);
        check(BIG, b"*1\r", &["more(3)"]);
        check(BIG, b"*1\r\n", &["more(4)"]);
        check(BIG, b"*1\r\n$4\r\nPI", &["more(10)"]);
        check(BIG, b"*1\r\n$4\r\nPING", &["more(12)"]);
        check(BIG, b"*1\r\n$4\r\nPING\r", &["more(13)"]);
        check(BIG, b"*-", &["more(2)"]);
    }

    #[test]
    fn malformed_multibulk() {
        let count = "err(bad frame: invalid multibulk length)";
        check(BIG, b"*x\r\n", &[count]);
        check(BIG, b"*\r\n", &[count]);
        check(BIG, b"*-2\r\n", &[count]);
        check(BIG, b"*-1x", &[count]);
        check(BIG, b"*+1\r\n", &[count]);
        check(BIG, b"*1\rx", &[count]);
        check(BIG, b"*1 \r\n", &[count]);
        let len = "err(bad frame: invalid bulk length)";
        check(BIG, b"*1\r\n$-5\r\n", &[len]);
        check(BIG, b"*1\r\n$-1\r\n", &[len]);
        check(BIG, b"*1\r\n$\r\n", &[len]);
        check(BIG, b"*1\r\n$4x\r\n", &[len]);
        check(
            BIG,
            b"*1\r\n:4\r\n",
            &["err(bad frame: expected '$' in a multibulk request)"],
        );
        let crlf = "err(bad frame: missing CRLF after a bulk string)";
        check(BIG, b"*1\r\n$4\r\nPINGX\r\n", &[crlf]);
        check(BIG, b"*1\r\n$4\r\nPING\rX", &[crlf]);
        check(BIG, b"*1\r\n$3\r\nPING\r\n", &[crlf]);
        // A good request before a bad one comes out first.
        check(BIG, b"PING\r\n*x\r\n", &["ping", count]);
    }

    #[test]
    fn size_boundaries() {
        // "*1\r\n$4\r\nPING\r\n" is 14 bytes.
        check(14, b"*1\r\n$4\r\nPING\r\n", &["ping", "more(0)"]);
        check(
            13,
            b"*1\r\n$4\r\nPING\r\n",
            &["err(frame longer than 13 bytes)"],
        );
        // Known too long from the bulk header, before any of it arrives.
        check(13, b"*1\r\n$4\r\n", &["err(frame longer than 13 bytes)"]);
        check(12, b"*1\r\n$4\r\n", &["err(frame longer than 12 bytes)"]);
        check(11, b"*1\r\n$4\r\n", &["err(frame longer than 11 bytes)"]);
        // From the element count: 1000 elements need at least 6000 bytes.
        check(BIG, b"*1000\r\n", &["err(frame longer than 1024 bytes)"]);
        check(BIG, b"*169\r\n", &["more(6)"]);
        check(BIG, b"*170\r\n", &["err(frame longer than 1024 bytes)"]);
        // A huge number is refused as soon as it passes the limit.
        check(BIG, b"*1\r\n$99999", &["err(frame longer than 1024 bytes)"]);
        check(
            BIG,
            b"*1\r\n$99999999999999999999999999\r\n",
            &["err(frame longer than 1024 bytes)"],
        );
        check(
            BIG,
            b"*1\r\n$1025\r\n",
            &["err(frame longer than 1024 bytes)"],
        );
        // Inline: the "\n" must be within the first max_frame bytes.
        check(6, b"PING\r\n", &["ping", "more(0)"]);
        check(5, b"PING\n", &["ping", "more(0)"]);
        check(5, b"PING\r", &["err(frame longer than 5 bytes)"]);
        check(6, b"PING\r", &["more(5)"]);
        check(4, b"PING", &["err(frame longer than 4 bytes)"]);
        check(1, b"\n\n", &["message \"\"", "message \"\"", "more(0)"]);
    }

    #[test]
    fn encoding() {
        let p = RespProtocol::default();
        let mut out = Vec::new();
        p.encode(&Reply::Pong { token: None }, &mut out);
        p.encode(
            &Reply::Pong {
                token: Some(b"msg"),
            },
            &mut out,
        );
        p.encode(&Reply::Pong { token: Some(b"") }, &mut out);
        p.encode(
            &Reply::Welcome {
                client_id: "dev",
                interval_ms: 30_000,
                timeout_ms: 45_000,
            },
            &mut out,
        );
        p.encode(&Reply::Bye(CloseReason::Timeout), &mut out);
        p.encode(&Reply::Message(b"a\r\nb"), &mut out);
        p.encode(&Reply::Quit, &mut out);
        p.encode(&Reply::Unknown { command: b"GET" }, &mut out);
        p.encode(
            &Reply::Unknown {
                command: b"A\r\nB\x00",
            },
            &mut out,
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "+PONG\r\n$3\r\nmsg\r\n$0\r\n\r\n+OK\r\n-ERR closing: timeout\r\n$4\r\na\r\nb\r\n\
             +OK\r\n-ERR unknown command 'GET'\r\n-ERR unknown command 'A??B?'\r\n"
        );
        // Long names are cut.
        let mut out = Vec::new();
        p.encode(
            &Reply::Unknown {
                command: &[b'x'; 300],
            },
            &mut out,
        );
        assert_eq!(out.len(), "-ERR unknown command ''\r\n".len() + 128);
    }
}
