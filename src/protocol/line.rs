//! The line protocol, vigil's default.
//!
//! Frames are lines ending in `\n`; a `\r` just before it is dropped. A line
//! holds at most `max_line` bytes, not counting its ending.
//!
//! | peer sends          | server answers                                     |
//! |---------------------|----------------------------------------------------|
//! | `PING`              | `PONG`                                             |
//! | `PING <token>`      | `PONG <token>`                                     |
//! | `HELLO <client-id>` | `WELCOME <client-id> interval=<ms> timeout=<ms>`   |
//! | `HELLO <client-id> <token>` | the same, once the token is accepted; `BYE unauthorized` if refused |
//! | anything else       | nothing: a message for the application             |
//!
//! Commands are upper case and matched exactly (`hello` is a message, not a
//! HELLO without an id); the token is echoed byte for byte. Every complete line, an empty one included, is a sign of
//! life. Before closing, the server sends `BYE <reason>`.
//!
//! A message the application sends is one line: any `\r` or `\n` in it is
//! sent as a space, so a handler's data can never inject protocol lines.

use super::{valid_client_id, DecodeError, Frame, Protocol, Reply};

/// The default longest line, in bytes, not counting its ending.
pub const DEFAULT_MAX_LINE: usize = 1024;

/// The line protocol codec. See the [module docs](self).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineProtocol {
    max_line: usize,
}

impl Default for LineProtocol {
    fn default() -> Self {
        LineProtocol::new(DEFAULT_MAX_LINE)
    }
}

impl LineProtocol {
    /// A codec that accepts lines of up to `max_line` bytes (at least 1).
    pub fn new(max_line: usize) -> LineProtocol {
        LineProtocol {
            max_line: max_line.max(1),
        }
    }

    /// The longest line accepted, in bytes, not counting its ending.
    pub fn max_line(&self) -> usize {
        self.max_line
    }
}

impl Protocol for LineProtocol {
    fn decode<'a>(&self, input: &'a [u8]) -> Result<Option<(Frame<'a>, usize)>, DecodeError> {
        match split_line(input, self.max_line)? {
            Some((line, used)) => Ok(Some((parse_line(line)?, used))),
            None => Ok(None),
        }
    }

    fn encode(&self, reply: &Reply<'_>, out: &mut Vec<u8>) {
        match *reply {
            Reply::Pong { token: None } => out.extend_from_slice(b"PONG\n"),
            Reply::Ping => out.extend_from_slice(b"PING\n"),
            Reply::Pong { token: Some(t) } => {
                out.extend_from_slice(b"PONG ");
                out.extend_from_slice(t);
                out.push(b'\n');
            }
            Reply::Welcome {
                client_id,
                interval_ms,
                timeout_ms,
            } => {
                use std::io::Write;
                // Writing into a Vec cannot fail.
                let _ = writeln!(
                    out,
                    "WELCOME {client_id} interval={interval_ms} timeout={timeout_ms}"
                );
            }
            Reply::Message(m) => {
                // One message is one line: a `\r` or `\n` in it would
                // let a handler's data inject protocol lines (a forged
                // `BYE`, a `WELCOME` for someone else), so each becomes a
                // space.
                out.extend(
                    m.iter()
                        .map(|&b| if b == b'\n' || b == b'\r' { b' ' } else { b }),
                );
                out.push(b'\n');
            }
            Reply::Bye(reason) => {
                out.extend_from_slice(b"BYE ");
                out.extend_from_slice(reason.as_str().as_bytes());
                out.push(b'\n');
            }
            Reply::Quit => out.extend_from_slice(b"BYE closed\n"),
            Reply::Unknown { command } => {
                out.extend_from_slice(b"ERR unknown command ");
                out.extend_from_slice(command);
                out.push(b'\n');
            }
            // This codec decodes no Frame::Command, so none is answered.
            Reply::Command { .. } => {}
        }
    }

    fn max_frame(&self) -> usize {
        self.max_line.saturating_add(2)
    }

    fn name(&self) -> &'static str {
        "line"
    }

    fn can_ping(&self) -> bool {
        true
    }

    fn for_scheme(&self, scheme: crate::server::Scheme) -> Option<Self> {
        matches!(
            scheme,
            crate::server::Scheme::Line | crate::server::Scheme::Ws | crate::server::Scheme::Wss
        )
        .then_some(*self)
    }
}

/// Finds the first complete line in `input`: the line without its ending,
/// and how many bytes it used with its ending. A line holds at most
/// `max_line` bytes (at least 1) not counting its ending; a longer one is an
/// error as soon as that is certain, whether or not its `\n` has arrived.
/// The framing of both sides of the line protocol (the client's too).
pub fn split_line(input: &[u8], max_line: usize) -> Result<Option<(&[u8], usize)>, DecodeError> {
    let max_line = max_line.max(1);
    let too_long = DecodeError::TooLong { limit: max_line };
    // A line may carry `max_line` bytes plus "\r\n": look no further.
    let window = &input[..input.len().min(max_line.saturating_add(2))];
    let Some(nl) = window.iter().position(|&b| b == b'\n') else {
        // Without an ending, `max_line + 1` bytes may still be a full line
        // followed by "\r" and a "\n" yet to come; one more cannot.
        if input.len() > max_line.saturating_add(1)
            || (input.len() == max_line.saturating_add(1) && input.get(max_line) != Some(&b'\r'))
        {
            return Err(too_long);
        }
        return Ok(None);
    };
    let line = match &input[..nl] {
        [rest @ .., b'\r'] => rest,
        line => line,
    };
    if line.len() > max_line {
        return Err(too_long);
    }
    Ok(Some((line, nl + 1)))
}

/// Splits a line into its command and the rest, after one space.
fn split_command(line: &[u8]) -> (&[u8], Option<&[u8]>) {
    match line.iter().position(|&b| b == b' ') {
        Some(sp) => (&line[..sp], Some(&line[sp + 1..])),
        None => (line, None),
    }
}

fn parse_line(line: &[u8]) -> Result<Frame<'_>, DecodeError> {
    let (command, rest) = split_command(line);
    if command == b"PING" {
        let token = rest.filter(|t| !t.is_empty());
        return Ok(Frame::Ping { token });
    }
    if command == b"PONG" {
        let token = rest.filter(|t| !t.is_empty());
        return Ok(Frame::Pong { token });
    }
    if command == b"HELLO" {
        let (id, token) = split_command(rest.unwrap_or_default());
        let token = token.filter(|t| !t.is_empty());
        if !valid_client_id(id) {
            return Err(DecodeError::BadFrame(
                "HELLO needs a client id of 1 to 128 printable ASCII characters without spaces",
            ));
        }
        // Printable ASCII is valid UTF-8.
        let client_id =
            std::str::from_utf8(id).map_err(|_| DecodeError::BadFrame("client id is not ASCII"))?;
        return Ok(Frame::Hello { client_id, token });
    }
    Ok(Frame::Message(line))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::CloseReason;

    /// Decodes everything in `input`, as the server would, into a readable
    /// trace: one entry per frame, then "need more" or the error.
    fn decode_all(p: &LineProtocol, input: &[u8]) -> Vec<String> {
        crate::protocol::decode_trace(p, input, |f| format!("{f:?}"))
    }

    #[track_caller]
    fn check(max_line: usize, input: &[u8], expected: &[&str]) {
        let got = decode_all(&LineProtocol::new(max_line), input);
        assert_eq!(got, expected, "input {:?}", String::from_utf8_lossy(input));
    }

    #[test]
    fn pings() {
        check(64, b"PING\n", &["Ping { token: None }", "more(0)"]);
        check(64, b"PING\r\n", &["Ping { token: None }", "more(0)"]);
        check(64, b"ping\n", &["Message([112, 105, 110, 103])", "more(0)"]);
        check(
            64,
            b"hello\n",
            &["Message([104, 101, 108, 108, 111])", "more(0)"],
        );
        check(64, b"PING \n", &["Ping { token: None }", "more(0)"]);
        check(
            64,
            b"PING 42\nPING a b\n",
            &[
                "Ping { token: Some([52, 50]) }",
                "Ping { token: Some([97, 32, 98]) }",
                "more(0)",
            ],
        );
        check(
            64,
            b"PINGX\n",
            &["Message([80, 73, 78, 71, 88])", "more(0)"],
        );
    }

    #[test]
    fn partial_lines_wait() {
        check(64, b"", &["more(0)"]);
        check(64, b"PIN", &["more(3)"]);
        check(64, b"PING\nPI", &["Ping { token: None }", "more(2)"]);
        check(64, b"PING\r", &["more(5)"]);
    }

    #[test]
    fn hello() {
        check(
            64,
            b"HELLO dev-1\n",
            &["Hello { client_id: \"dev-1\", token: None }", "more(0)"],
        );
        check(
            64,
            b"HELLO dev-1 12.ab\nHELLO dev-2 \n",
            &[
                "Hello { client_id: \"dev-1\", token: Some([49, 50, 46, 97, 98]) }",
                "Hello { client_id: \"dev-2\", token: None }",
                "more(0)",
            ],
        );
        // The token is the rest of the line, spaces and all: the verifier
        // judges it.
        check(
            64,
            b"HELLO a b c\n",
            &[
                "Hello { client_id: \"a\", token: Some([98, 32, 99]) }",
                "more(0)",
            ],
        );
        check(
            64,
            b"HELLO\n",
            &["err(bad frame: HELLO needs a client id of 1 to 128 printable ASCII characters without spaces)"],
        );
        let bad = "err(bad frame: HELLO needs a client id of 1 to 128 printable ASCII characters without spaces)";
        check(64, b"HELLO  b\n", &[bad]);
        check(64, b"HELLO \n", &[bad]);
        check(64, b"HELLO \x01\n", &[bad]);
        let mut long = b"HELLO ".to_vec();
        long.extend_from_slice(&[b'x'; 129]);
        long.push(b'\n');
        check(300, &long, &[bad]);
    }

    #[test]
    fn messages_and_empty_lines() {
        check(64, b"\n", &["Message([])", "more(0)"]);
        check(64, b"\r\n", &["Message([])", "more(0)"]);
        check(64, b"hi\n", &["Message([104, 105])", "more(0)"]);
        check(64, b"\xff\xfe\n", &["Message([255, 254])", "more(0)"]);
    }

    #[test]
    fn line_length_boundaries() {
        // Exactly max_line bytes is fine, with either ending.
        check(4, b"abcd\n", &["Message([97, 98, 99, 100])", "more(0)"]);
        check(4, b"abcd\r\n", &["Message([97, 98, 99, 100])", "more(0)"]);
        // Still waiting: could be a full line whose "\r\n" is on its way.
        check(4, b"abcd", &["more(4)"]);
        check(4, b"abcd\r", &["more(5)"]);
        // One byte too many: rejected as soon as it is known.
        check(4, b"abcde", &["err(frame longer than 4 bytes)"]);
        check(4, b"abcde\n", &["err(frame longer than 4 bytes)"]);
        check(4, b"abcd\rx", &["err(frame longer than 4 bytes)"]);
        check(4, b"abcd\r\r\n", &["err(frame longer than 4 bytes)"]);
        // A long line after a good one: the good one comes first.
        check(
            4,
            b"ok\nabcdef",
            &["Message([111, 107])", "err(frame longer than 4 bytes)"],
        );
    }

    #[test]
    fn encoding() {
        let p = LineProtocol::default();
        let mut out = Vec::new();
        p.encode(&Reply::Pong { token: None }, &mut out);
        p.encode(&Reply::Pong { token: Some(b"7") }, &mut out);
        p.encode(
            &Reply::Welcome {
                client_id: "dev",
                interval_ms: 30_000,
                timeout_ms: 45_000,
            },
            &mut out,
        );
        p.encode(&Reply::Bye(CloseReason::Timeout), &mut out);
        p.encode(&Reply::Message(b"hi"), &mut out);
        p.encode(&Reply::Quit, &mut out);
        p.encode(&Reply::Unknown { command: b"FOO" }, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "PONG\nPONG 7\nWELCOME dev interval=30000 timeout=45000\nBYE timeout\nhi\n\
             BYE closed\nERR unknown command FOO\n"
        );
    }

    #[test]
    fn a_message_cannot_inject_lines() {
        let p = LineProtocol::default();
        let mut out = Vec::new();
        p.encode(&Reply::Message(b"ok\nBYE replaced\r\nWELCOME x"), &mut out);
        assert_eq!(out, b"ok BYE replaced  WELCOME x\n");
        let frames = decode_all(&p, &out);
        assert_eq!(frames.len(), 2, "{frames:?}");
    }

    #[test]
    fn decoding_ignores_how_the_stream_is_split() {
        let stream = b"PING 1\r\nHELLO a\n\nmsg\r\nPING\nHELLO\n";
        let p = LineProtocol::new(16);
        let whole = decode_all(&p, stream);
        // Feed the stream one byte at a time, as a server buffering reads.
        let mut buf = Vec::new();
        let mut frames = Vec::new();
        for &b in stream.iter() {
            buf.push(b);
            loop {
                match p.decode(&buf) {
                    Ok(Some((f, used))) => {
                        frames.push(format!("{f:?}"));
                        buf.drain(..used);
                    }
                    Ok(None) => break,
                    Err(e) => {
                        frames.push(format!("err({e})"));
                        buf.clear();
                        break;
                    }
                }
            }
        }
        assert_eq!(whole, frames);
    }
}
