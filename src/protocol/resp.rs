//! The RESP protocol: enough of Redis's RESP2 and RESP3 for heartbeats and
//! for the handshake Redis clients open with, so that `redis-cli` (also
//! `-3`), `redis-benchmark -t ping_inline,ping_mbulk` and libraries such as
//! redis-py at their defaults can talk to vigil.
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
//! | `HELLO`, `AUTH`, `SELECT`, `INFO`, `ECHO`, `RESET`, `CLIENT GETNAME\|ID\|SETINFO` | [`Frame::Command`] | see below |
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
//! # The handshake
//!
//! Redis clients send these when they connect; each is a
//! [`Frame::Command`], answered in Redis's spelling (a RESP3 type only on
//! a connection that negotiated version 3 with `HELLO 3`):
//!
//! | peer sends | command | server answers |
//! |------------|---------|----------------|
//! | `HELLO [2\|3] [AUTH <user> <password>] [SETNAME <id>]` | [`Command::Handshake`] | Redis's server description: a map (`%7`) on RESP3, an array (`*14`) on RESP2; `SETNAME` then takes the id as `CLIENT SETNAME` does |
//! | `RESET` | [`Command::Reset`] | `+RESET`, back to RESP2 |
//! | `CLIENT GETNAME` | [`Command::GetName`] | the id as a bulk string; none: `$-1` (RESP2), `_` (RESP3) |
//! | `CLIENT ID` | [`Command::Id`] | the connection's number, `:<n>` |
//! | `INFO [...]` | [`Command::Info`] | a `# Server` section: bulk (RESP2), verbatim `=` (RESP3) |
//! | `ECHO <msg>` | [`Command::Echo`] | `<msg>`, bulk |
//! | `SELECT 0`, `CLIENT SETINFO LIB-NAME\|LIB-VER <v>`, `AUTH default <pw>` | [`Command::Ok`] | `+OK` |
//! | anything refused | [`Command::Error`] | Redis's error for it |
//!
//! Refused, with Redis's words: a `HELLO` version other than 2 or 3
//! (`-NOPROTO unsupported protocol version`) or not a number, an unknown
//! or incomplete `HELLO` option, a `SETNAME` that is not a valid client id,
//! `SELECT` of another database, `AUTH <password>` (no password is set) or
//! another user, another `CLIENT SETINFO` attribute, and a wrong number of
//! arguments (`-ERR wrong number of arguments for 'echo' command`). These
//! never close the connection. `HELLO` reads at most eight arguments.
//!
//! # Incomplete requests
//!
//! [`Protocol::decode_resume`] keeps its place in an incomplete request
//! (see the `scan` submodule): each byte is looked at once while the
//! request is incomplete and once more when it is read whole, so a request
//! trickled one byte per read costs O(n), not O(n²).
//!
//! # Other replies
//!
//! - Application data ([`Reply::Message`]) is a bulk string.
//! - Before closing, the server sends the error `-ERR closing: <reason>\r\n`
//!   (for instance `-ERR closing: timeout\r\n`); the reasons are spelled as
//!   in [`CloseReason::as_str`](super::CloseReason::as_str).

mod command;
mod scan;

#[cfg(doc)]
use super::Command;
use super::{valid_client_id, DecodeError, Frame, Protocol, Reply, Resume};
use scan::Scan;

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
        self.decode_whole(input)
    }

    /// Reads a request once it is complete; while it is not, walks only the
    /// bytes that arrived since the last call (see `scan`).
    #[inline]
    fn decode_resume<'a>(
        &self,
        input: &'a [u8],
        resume: &mut Resume,
    ) -> Result<Option<(Frame<'a>, usize)>, DecodeError> {
        if resume.checked == 0 {
            // Nothing checked yet (the scanner checks at least one byte of
            // anything it keeps). Most requests arrive whole: read them as
            // `decode` does, and only when one is incomplete, note where it
            // stopped.
            let decoded = self.decode_whole(input);
            if let Ok(None) = decoded {
                self.remember(input, resume);
            }
            return decoded;
        }
        self.carry_on(input, resume)
    }

    fn encode(&self, reply: &Reply<'_>, out: &mut Vec<u8>) {
        match *reply {
            Reply::Pong { token: None } => out.extend_from_slice(b"+PONG\r\n"),
            // A RESP client never expects a request from its server.
            Reply::Ping => {}
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
            Reply::Command {
                command,
                number,
                client_id,
                version,
            } => command::encode(&command, number, client_id, version, out),
        }
    }

    fn max_frame(&self) -> usize {
        self.max_frame
    }

    fn name(&self) -> &'static str {
        "resp"
    }

    fn for_scheme(&self, scheme: crate::server::Scheme) -> Option<Self> {
        matches!(scheme, crate::server::Scheme::Resp).then_some(*self)
    }

    /// Every `CLIENT SETNAME` gets its `+OK`: clients wait for it.
    fn welcome_every_hello(&self) -> bool {
        true
    }
}

/// Counts the bytes the decoder looks at, for the test that proves a
/// trickled request costs O(n); nothing outside tests.
#[cfg(test)]
fn count_examined(n: usize) {
    tests::EXAMINED.with(|c| c.set(c.get() + n as u64));
}

#[cfg(not(test))]
fn count_examined(_: usize) {}

impl RespProtocol {
    /// Notes where the incomplete request in `input` stops, so that the
    /// next call carries on from there; leaves `resume` at its default if
    /// the scanner cannot keep the place (see [`RespProtocol::carry_on`]).
    #[cold]
    #[inline(never)]
    fn remember(&self, input: &[u8], resume: &mut Resume) {
        *resume = Resume::default();
        // The scanner counts in u32; a larger limit simply does not resume.
        if let Ok(max) = u32::try_from(self.max_frame) {
            if scan::scan(input, max, resume) != Scan::More {
                *resume = Resume::default();
            }
        }
    }

    /// Carries on with an incomplete request from where `resume` says:
    /// only the new bytes are walked until the request is complete (or
    /// wrong), and then it is read whole, once.
    #[cold]
    #[inline(never)]
    fn carry_on<'a>(
        &self,
        input: &'a [u8],
        resume: &mut Resume,
    ) -> Result<Option<(Frame<'a>, usize)>, DecodeError> {
        let Ok(max) = u32::try_from(self.max_frame) else {
            *resume = Resume::default();
            return self.decode_whole(input);
        };
        match scan::scan(input, max, resume) {
            Scan::More => Ok(None),
            Scan::Decide => {
                *resume = Resume::default();
                self.decode_whole(input)
            }
        }
    }

    /// Reads one request from the front of `input`, from its first byte.
    #[inline]
    fn decode_whole<'a>(&self, input: &'a [u8]) -> Result<Option<(Frame<'a>, usize)>, DecodeError> {
        let parsed = match input.first() {
            None => return Ok(None),
            Some(b'*') => self.multibulk::<SHORT>(input),
            Some(_) => self.inline::<SHORT>(input),
        };
        match parsed {
            Ok((request, used)) if request.needs_more_arguments() => {
                Ok(Some((self.long_request(input.get(..used))?, used)))
            }
            Ok((request, used)) => Ok(Some((request.frame()?, used))),
            Err(Stop::More) => Ok(None),
            Err(Stop::Error(e)) => Err(e),
        }
    }

    /// The frame of a complete request that needs more than the first
    /// three arguments (a long `HELLO`), read again keeping eight. Rare, so
    /// kept out of the way of every other request, which keeps three.
    #[cold]
    #[inline(never)]
    fn long_request<'a>(&self, request: Option<&'a [u8]>) -> Result<Frame<'a>, DecodeError> {
        let request = request.unwrap_or_default();
        let parsed = match request.first() {
            Some(b'*') => self.multibulk::<LONG>(request),
            _ => self.inline::<LONG>(request),
        };
        match parsed {
            Ok((long, _)) => long.frame(),
            // It was read whole once already: this cannot happen.
            Err(_) => Err(DecodeError::BadFrame("request changed while read")),
        }
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

/// How many arguments a request keeps: the first three, which are all any
/// command but `HELLO` looks at, or eight for a long `HELLO` (`HELLO 3
/// AUTH user password SETNAME id` is seven).
const SHORT: usize = 3;
const LONG: usize = 8;

/// A parsed request: how many arguments it had and the first `N`. Slices
/// of the input, never copies.
struct Request<'a, const N: usize> {
    argc: usize,
    argv: [&'a [u8]; N],
}

impl<const N: usize> Default for Request<'_, N> {
    fn default() -> Self {
        Request {
            argc: 0,
            argv: [&[]; N],
        }
    }
}

impl<'a, const N: usize> Request<'a, N> {
    /// Whether this request is a `HELLO` with arguments past the first `N`
    /// (which [`RespProtocol::long_request`] reads again, keeping more).
    fn needs_more_arguments(&self) -> bool {
        self.argc > N
            && N < LONG
            && self
                .argv
                .first()
                .is_some_and(|name| name.eq_ignore_ascii_case(b"HELLO"))
    }

    fn push(&mut self, arg: &'a [u8]) {
        if let Some(slot) = self.argv.get_mut(self.argc) {
            *slot = arg;
        }
        self.argc += 1;
    }

    /// What the request means.
    fn frame(&self) -> Result<Frame<'a>, DecodeError> {
        let (name, first, second) = match self.argv.as_slice() {
            [name, first, second, ..] => (*name, *first, *second),
            _ => return Err(DecodeError::BadFrame("request kept too few arguments")),
        };
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
        let connection = if name.eq_ignore_ascii_case(b"CLIENT") && self.argc >= 2 {
            command::client(self)
        } else {
            command::frame(self)
        };
        Ok(connection.unwrap_or(Frame::Unknown { command: name }))
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
    fn inline<'a, const N: usize>(&self, input: &'a [u8]) -> Result<(Request<'a, N>, usize), Stop> {
        // The "\n" must be among the first `max_frame` bytes.
        let window = input.get(..self.max_frame).unwrap_or(input);
        let nl = window.iter().position(|&b| b == b'\n');
        count_examined(nl.map_or(window.len(), |nl| nl + 1));
        let Some(nl) = nl else {
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
    fn multibulk<'a, const N: usize>(
        &self,
        input: &'a [u8],
    ) -> Result<(Request<'a, N>, usize), Stop> {
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

    #[inline]
    fn byte(&mut self) -> Result<u8, Stop> {
        if self.pos >= self.max {
            return Err(self.too_long());
        }
        let b = *self.input.get(self.pos).ok_or(Stop::More)?;
        count_examined(1);
        self.pos += 1;
        Ok(b)
    }

    /// A bulk string's `len` bytes and the "\r\n" after them, refused as
    /// too long before any of it arrives if the "\r\n" would end past `max`.
    #[inline]
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

    #[inline]
    fn crlf(&mut self, what: &'static str) -> Result<(), Stop> {
        if self.byte()? != b'\r' || self.byte()? != b'\n' {
            return Err(DecodeError::BadFrame(what).into());
        }
        Ok(())
    }

    /// A decimal header number and its "\r\n": `None` for `-1` when
    /// `minus_one` allows it. A number larger than `max` cannot describe
    /// anything that fits, so it is too long as soon as it gets there.
    #[inline]
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
    use crate::protocol::{CloseReason, Command};
    use std::cell::Cell;

    thread_local! {
        /// Bytes the decoder and the scanner looked at on this thread.
        pub(super) static EXAMINED: Cell<u64> = const { Cell::new(0) };
    }

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
            Frame::Pong { token } => format!("pong {:?}", token.map(s)),
            Frame::Hello {
                client_id,
                token: None,
            } => format!("hello {client_id}"),
            Frame::Hello {
                client_id,
                token: Some(t),
            } => format!("hello {client_id} token {:?}", s(t)),
            Frame::Command(Command::Handshake {
                version,
                client_id,
                token,
            }) => {
                let mut out = "handshake".to_string();
                if let Some(v) = version {
                    out += &format!(" {v}");
                }
                if let Some(t) = token {
                    out += &format!(" auth {:?}", s(t));
                }
                if let Some(id) = client_id {
                    out += &format!(" name {id}");
                }
                out
            }
            Frame::Command(Command::Echo(data)) => format!("echo {:?}", s(data)),
            Frame::Command(Command::Error(e)) => format!("-{e}"),
            Frame::Command(c) => format!("{c:?}").to_lowercase(),
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

    /// Feeds `stream` one byte per read, keeping the [`Resume`] as the
    /// server does, and checks every answer against `decode` on the same
    /// bytes.
    #[track_caller]
    fn check_resume_matches_decode(p: &RespProtocol, stream: &[u8]) {
        let mut buf = Vec::new();
        let mut resume = Resume::default();
        for &b in stream {
            buf.push(b);
            loop {
                let whole = p.decode(&buf);
                let before = resume;
                let resumed = p.decode_resume(&buf, &mut resume);
                assert_eq!(
                    resumed,
                    whole,
                    "stream {:?}, buffered {:?}, resumed from {before:?}",
                    String::from_utf8_lossy(stream),
                    String::from_utf8_lossy(&buf)
                );
                match whole {
                    Ok(Some((_, used))) => {
                        buf.drain(..used);
                        resume = Resume::default();
                    }
                    Ok(None) => break,
                    Err(_) => return,
                }
            }
        }
    }

    #[test]
    fn resuming_answers_what_decode_answers_on_every_corruption() {
        let requests: [&[u8]; 10] = [
            b"*4\r\n$5\r\nHELLO\r\n$1\r\n3\r\n$7\r\nSETNAME\r\n$1\r\nd\r\n",
            b"*2\r\n$4\r\nPING\r\n$3\r\nabc\r\n*1\r\n$4\r\nPING\r\n",
            b"*3\r\n$6\r\nCLIENT\r\n$7\r\nSETNAME\r\n$2\r\nid\r\nPING\r\n",
            b"*-1\r\n*0\r\n*01\r\n$004\r\nPING\r\n",
            b"*2\r\n$5\r\nHELLO\r\n$1\r\n3\r\n",
            b"*1\r\n$0\r\n\r\n",
            b"PING hello\r\nPING\n\n",
            b"*12\r\n$1\r\na\r\n",
            b"*1\r\n$20\r\n01234567890123456789\r\n",
            b"*1\r\n$2\r\n\r\n\r\n",
        ];
        let swaps = b"\r\n*$-019x ";
        for max in [8, 13, 14, 20, 40, 1024] {
            let p = RespProtocol::new(max);
            for request in requests {
                check_resume_matches_decode(&p, request);
                for i in 0..request.len() {
                    for &swap in swaps {
                        let mut bad = request.to_vec();
                        bad[i] = swap;
                        check_resume_matches_decode(&p, &bad);
                        // Cut short right after the change, too.
                        check_resume_matches_decode(&p, &bad[..=i]);
                    }
                }
            }
        }
    }

    /// Bytes examined to decode `stream` fed `step` bytes per read,
    /// resuming or not.
    fn work(p: &RespProtocol, stream: &[u8], step: usize, resume: bool) -> u64 {
        EXAMINED.with(|c| c.set(0));
        let mut buf = Vec::new();
        let mut at = Resume::default();
        let mut frames = 0;
        for read in stream.chunks(step) {
            buf.extend_from_slice(read);
            loop {
                let decoded = if resume {
                    p.decode_resume(&buf, &mut at)
                } else {
                    p.decode(&buf)
                };
                match decoded.expect("a valid stream") {
                    Some((_, used)) => {
                        buf.drain(..used);
                        at = Resume::default();
                        frames += 1;
                    }
                    None => break,
                }
            }
        }
        assert!(buf.is_empty() && frames >= 1, "{frames} frames");
        EXAMINED.with(Cell::get)
    }

    #[test]
    fn a_trickled_request_costs_linear_work() {
        let p = RespProtocol::default();
        // A 63 KB multibulk with one large bulk string.
        let mut big = b"*2\r\n$4\r\nPING\r\n$64000\r\n".to_vec();
        big.extend(std::iter::repeat_n(b'x', 64_000));
        big.extend_from_slice(b"\r\n");
        // A 63 KB multibulk of 9,000 one-byte arguments.
        let mut many = b"*9000\r\n".to_vec();
        for _ in 0..9000 {
            many.extend_from_slice(b"$1\r\na\r\n");
        }
        // A 63 KB inline request.
        let mut line = b"PING ".to_vec();
        line.extend(std::iter::repeat_n(b'y', 63_000));
        line.extend_from_slice(b"\r\n");
        for stream in [&big, &many, &line] {
            let n = stream.len() as u64;
            assert!(n > 63_000 && n < 65_536, "{n}");
            let whole = work(&p, stream, stream.len(), true);
            let trickled = work(&p, stream, 1, true);
            // Each byte once while incomplete, once more when complete.
            assert!(trickled <= 3 * n, "{trickled} bytes examined for {n}");
            assert!(whole <= n, "{whole} bytes examined for {n}");
        }
        // Without resuming, a request is walked from its start on every
        // read: quadratic, which is what the bounds above guard against
        // (shown on 7 KB; 63 KB would take 2·10⁹ steps).
        let mut small = b"*1000\r\n".to_vec();
        for _ in 0..1000 {
            small.extend_from_slice(b"$1\r\na\r\n");
        }
        let n = small.len() as u64;
        let naive = work(&p, &small, 1, false);
        assert!(naive > n * n / 4, "{naive} for {n}");
        assert!(work(&p, &small, 1, true) <= 3 * n);
    }

    #[test]
    fn connection_commands() {
        // HELLO, checked in Redis's order: the version, then the options.
        check(BIG, b"HELLO\r\n", &["handshake", "more(0)"]);
        check(BIG, b"hello 3\r\n", &["handshake 3", "more(0)"]);
        check(BIG, b"HELLO 2\r\n", &["handshake 2", "more(0)"]);
        check(
            BIG,
            b"HELLO 3 AUTH default tok SETNAME dev\r\n",
            &["handshake 3 auth \"tok\" name dev", "more(0)"],
        );
        // Past the three arguments other requests keep, in both forms.
        check(
            BIG,
            b"*7\r\n$5\r\nhello\r\n$1\r\n2\r\n$4\r\nauth\r\n$1\r\nu\r\n$2\r\npw\r\n\
              $7\r\nsetname\r\n$2\r\nid\r\nPING\r\n",
            &["handshake 2 auth \"pw\" name id", "ping", "more(0)"],
        );
        check(
            BIG,
            b"HELLO 3 setname dev auth u p\r\n",
            &["handshake 3 auth \"p\" name dev", "more(0)"],
        );
        let noproto = "-NOPROTO unsupported protocol version";
        check(BIG, b"HELLO 1\r\n", &[noproto, "more(0)"]);
        check(BIG, b"HELLO 4 SETNAME x\r\n", &[noproto, "more(0)"]);
        check(BIG, b"HELLO -3\r\n", &[noproto, "more(0)"]);
        let not_int = "-ERR Protocol version is not an integer or out of range";
        check(BIG, b"HELLO three\r\n", &[not_int, "more(0)"]);
        check(BIG, b"HELLO +3\r\n", &[not_int, "more(0)"]);
        let syntax = "-ERR Syntax error in HELLO option";
        check(BIG, b"HELLO 3 SETNAME\r\n", &[syntax, "more(0)"]);
        check(BIG, b"HELLO 3 AUTH u\r\n", &[syntax, "more(0)"]);
        check(BIG, b"HELLO 3 FOO\r\n", &[syntax, "more(0)"]);
        check(
            BIG,
            b"HELLO 3 SETNAME a SETNAME b SETNAME c SETNAME d\r\n",
            &[syntax, "more(0)"],
        );
        check(
            BIG,
            b"*4\r\n$5\r\nHELLO\r\n$1\r\n3\r\n$7\r\nSETNAME\r\n$3\r\na b\r\n",
            &[
                "-ERR Client names cannot contain spaces, newlines or special characters.",
                "more(0)",
            ],
        );
        // CLIENT: SETNAME is a HELLO; GETNAME, ID, SETINFO are answered;
        // the rest is an unknown command named CLIENT.
        check(BIG, b"CLIENT GETNAME\r\n", &["getname", "more(0)"]);
        check(BIG, b"client id\r\n", &["id", "more(0)"]);
        check(
            BIG,
            b"CLIENT SETINFO LIB-NAME redis-py\r\nCLIENT SETINFO lib-ver 8\r\n",
            &["ok", "ok", "more(0)"],
        );
        check(
            BIG,
            b"CLIENT SETINFO color red\r\n",
            &["-ERR Unrecognized option", "more(0)"],
        );
        check(
            BIG,
            b"CLIENT GETNAME x\r\n",
            &[
                "-ERR wrong number of arguments for 'client|getname' command",
                "more(0)",
            ],
        );
        // The rest of the handshake.
        check(BIG, b"SELECT 0\r\n", &["ok", "more(0)"]);
        check(
            BIG,
            b"SELECT 1\r\n",
            &["-ERR DB index is out of range", "more(0)"],
        );
        check(
            BIG,
            b"SELECT x\r\n",
            &["-ERR value is not an integer or out of range", "more(0)"],
        );
        check(
            BIG,
            b"SELECT\r\n",
            &[
                "-ERR wrong number of arguments for 'select' command",
                "more(0)",
            ],
        );
        check(
            BIG,
            b"INFO\r\nINFO server\r\n",
            &["info", "info", "more(0)"],
        );
        check(
            BIG,
            b"ECHO hi\r\n*2\r\n$4\r\necho\r\n$0\r\n\r\n",
            &["echo \"hi\"", "echo \"\"", "more(0)"],
        );
        check(
            BIG,
            b"ECHO\r\n",
            &[
                "-ERR wrong number of arguments for 'echo' command",
                "more(0)",
            ],
        );
        check(BIG, b"RESET\r\n", &["reset", "more(0)"]);
        check(BIG, b"AUTH default pw\r\n", &["ok", "more(0)"]);
        check(
            BIG,
            b"AUTH pw\r\n",
            &["-ERR AUTH <password> called without any password configured for the default user. \
               Are you sure your configuration is correct?", "more(0)"],
        );
        check(
            BIG,
            b"AUTH bob pw\r\n",
            &[
                "-WRONGPASS invalid username-password pair or user is disabled.",
                "more(0)",
            ],
        );
    }

    #[test]
    fn connection_command_replies() {
        let p = RespProtocol::default();
        let text = |command: Command<'_>, client_id: Option<&str>, version: u8| {
            let mut out = Vec::new();
            p.encode(
                &Reply::Command {
                    command,
                    number: 42,
                    client_id,
                    version,
                },
                &mut out,
            );
            String::from_utf8(out).unwrap()
        };
        let hello = Command::Handshake {
            version: None,
            client_id: None,
            token: None,
        };
        let v = env!("CARGO_PKG_VERSION");
        let fields = format!(
            "$6\r\nserver\r\n$5\r\nvigil\r\n$7\r\nversion\r\n${}\r\n{v}\r\n$5\r\nproto\r\n",
            v.len()
        );
        let rest = "$2\r\nid\r\n:42\r\n$4\r\nmode\r\n$10\r\nstandalone\r\n\
                    $4\r\nrole\r\n$6\r\nmaster\r\n$7\r\nmodules\r\n*0\r\n";
        assert_eq!(text(hello, None, 3), format!("%7\r\n{fields}:3\r\n{rest}"));
        for version in [0, 2] {
            assert_eq!(
                text(hello, None, version),
                format!("*14\r\n{fields}:2\r\n{rest}")
            );
        }
        assert_eq!(text(Command::GetName, None, 0), "$-1\r\n");
        assert_eq!(text(Command::GetName, None, 3), "_\r\n");
        assert_eq!(text(Command::GetName, Some("dev"), 3), "$3\r\ndev\r\n");
        assert_eq!(text(Command::Id, None, 0), ":42\r\n");
        assert_eq!(text(Command::Reset, None, 0), "+RESET\r\n");
        assert_eq!(text(Command::Ok, None, 3), "+OK\r\n");
        assert_eq!(text(Command::Echo(b"a\r\n"), None, 3), "$3\r\na\r\n\r\n");
        assert_eq!(
            text(
                Command::Error("NOPROTO unsupported protocol version"),
                None,
                0
            ),
            "-NOPROTO unsupported protocol version\r\n"
        );
        let info =
            format!("# Server\r\nvigil_version:{v}\r\nredis_mode:standalone\r\nloading:0\r\n");
        assert_eq!(
            text(Command::Info, None, 0),
            format!("${}\r\n{info}\r\n", info.len())
        );
        assert_eq!(
            text(Command::Info, None, 3),
            format!("={}\r\ntxt:{info}\r\n", info.len() + 4)
        );
    }
}
