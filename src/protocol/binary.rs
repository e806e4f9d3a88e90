//! The binary protocol: length-prefixed frames.
//!
//! # Frames
//!
//! Every frame, in both directions, is
//!
//! | bytes       | field                                                   |
//! |-------------|---------------------------------------------------------|
//! | 0 to 3      | `length`: u32, big-endian, of what follows (type and payload), at least 1 |
//! | 4           | `type`: u8                                              |
//! | 5 and after | `payload`: `length - 1` bytes                           |
//!
//! `length` is at most `max_len` (64 KiB by default). A `length` of 0 is a
//! bad frame; a larger one than `max_len` is refused as too long as soon as
//! its four bytes arrive, before any of the frame is buffered.
//!
//! # Types
//!
//! From the client:
//!
//! | type | name  | payload                        | frame              | server answers         |
//! |------|-------|--------------------------------|--------------------|------------------------|
//! | 1    | PING  | a token to echo, maybe empty   | [`Frame::Ping`]    | PONG with the token    |
//! | 3    | HELLO | the client id, then optionally a space (`0x20`) and the token | [`Frame::Hello`]   | WELCOME (BYE `unauthorized` if the token is refused) |
//! | 5    | DATA  | application data, maybe empty  | [`Frame::Message`] | nothing                |
//! | 7    | QUIT  | none                           | [`Frame::Quit`]    | BYE `closed`, closes   |
//! | other| -     | anything                       | [`Frame::Unknown`] | ERROR                  |
//!
//! From the server:
//!
//! | type | name    | payload                                                        |
//! |------|---------|----------------------------------------------------------------|
//! | 2    | PONG    | the PING's token (empty if it had none)                        |
//! | 4    | WELCOME | u32 BE interval in ms, u32 BE timeout in ms (both saturated at `u32::MAX`), then the client id |
//! | 5    | DATA    | application data                                               |
//! | 6    | BYE     | why the server closes, in ASCII (`timeout`, `closed`, ...), as [`CloseReason::as_str`](super::CloseReason::as_str) spells it |
//! | 8    | ERROR   | the type byte the server did not understand                    |
//!
//! A HELLO whose id is not 1 to 128 printable ASCII characters and a QUIT
//! with a payload are bad frames: the connection closes (BYE `bad-frame`).
//! An unknown type is answered with ERROR and the connection carries on,
//! so a newer client can probe an older server.
//!
//! # Examples (hex)
//!
//! | frame                         | bytes                                                 |
//! |-------------------------------|-------------------------------------------------------|
//! | PING                          | `00 00 00 01 01`                                      |
//! | PING token `42`               | `00 00 00 03 01 34 32`                                |
//! | PONG                          | `00 00 00 01 02`                                      |
//! | PONG token `42`               | `00 00 00 03 02 34 32`                                |
//! | HELLO `dev`                   | `00 00 00 04 03 64 65 76`                             |
//! | HELLO `dev` token `1.ab`      | `00 00 00 09 03 64 65 76 20 31 2e 61 62`              |
//! | WELCOME `dev` 30 s, 45 s      | `00 00 00 0c 04 00 00 75 30 00 00 af c8 64 65 76`     |
//! | DATA `hi`                     | `00 00 00 03 05 68 69`                                |
//! | BYE `timeout`                 | `00 00 00 08 06 74 69 6d 65 6f 75 74`                 |
//! | QUIT                          | `00 00 00 01 07`                                      |
//! | ERROR for type `0x2a`         | `00 00 00 02 08 2a`                                   |

use super::{valid_client_id, DecodeError, Frame, Protocol, Reply};

/// The default largest `length` field, in bytes.
pub const DEFAULT_MAX_LEN: usize = 64 * 1024;

/// The size of the `length` field.
const HEADER: usize = 4;

/// Frame types. See the [module docs](self).
pub mod kind {
    /// A heartbeat, from the client.
    pub const PING: u8 = 1;
    /// The answer to a PING.
    pub const PONG: u8 = 2;
    /// The client names itself.
    pub const HELLO: u8 = 3;
    /// The answer to a HELLO.
    pub const WELCOME: u8 = 4;
    /// Application data, either way.
    pub const DATA: u8 = 5;
    /// The server closes the connection.
    pub const BYE: u8 = 6;
    /// The client ends the session.
    pub const QUIT: u8 = 7;
    /// The answer to a type the server does not know.
    pub const ERROR: u8 = 8;
}

/// The binary protocol codec. See the [module docs](self).
///
/// ```
/// use vigil::protocol::{BinaryProtocol, Frame, Protocol, Reply};
///
/// let binary = BinaryProtocol::default();
/// let input = [0, 0, 0, 3, 1, b'4', b'2', 0, 0];
/// let (frame, used) = binary.decode(&input)?.unwrap();
/// assert_eq!(frame, Frame::Ping { token: Some(b"42") });
/// assert_eq!(used, 7);
/// assert_eq!(binary.decode(&input[used..])?, None);
///
/// let mut out = Vec::new();
/// binary.encode(&Reply::Pong { token: Some(b"42") }, &mut out);
/// assert_eq!(out, [0, 0, 0, 3, 2, b'4', b'2']);
/// # Ok::<(), vigil::protocol::DecodeError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BinaryProtocol {
    max_len: usize,
}

impl Default for BinaryProtocol {
    fn default() -> Self {
        BinaryProtocol::new(DEFAULT_MAX_LEN)
    }
}

impl BinaryProtocol {
    /// A codec that accepts `length` fields of up to `max_len` (at least 1,
    /// at most `u32::MAX - 4`, so that a whole frame's size fits a `u32`).
    pub fn new(max_len: usize) -> BinaryProtocol {
        BinaryProtocol {
            max_len: max_len.clamp(1, u32::MAX as usize - HEADER),
        }
    }

    /// The largest `length` field accepted.
    pub fn max_len(&self) -> usize {
        self.max_len
    }
}

impl Protocol for BinaryProtocol {
    fn decode<'a>(&self, input: &'a [u8]) -> Result<Option<(Frame<'a>, usize)>, DecodeError> {
        let Some(&[a, b, c, d]) = input.get(..HEADER) else {
            return Ok(None);
        };
        // A u32 always fits a usize on the platforms mio supports.
        let len = u32::from_be_bytes([a, b, c, d]) as usize;
        if len == 0 {
            return Err(DecodeError::BadFrame("frame length is 0"));
        }
        if len > self.max_len {
            return Err(DecodeError::TooLong {
                limit: self.max_len,
            });
        }
        let used = HEADER + len;
        let Some([kind, payload @ ..]) = input.get(HEADER..used) else {
            return Ok(None);
        };
        let frame = match *kind {
            kind::PING => Frame::Ping {
                token: Some(payload).filter(|t| !t.is_empty()),
            },
            kind::HELLO => {
                // The id, then optionally one space and the token: an id
                // holds no space, so the first one ends it.
                let (id, token) = match payload.iter().position(|&b| b == b' ') {
                    Some(sp) => (&payload[..sp], Some(&payload[sp + 1..])),
                    None => (payload, None),
                };
                let token = token.filter(|t| !t.is_empty());
                if !valid_client_id(id) {
                    return Err(DecodeError::BadFrame(
                        "HELLO needs a client id of 1 to 128 printable ASCII characters without spaces",
                    ));
                }
                // Printable ASCII is valid UTF-8.
                let client_id = std::str::from_utf8(id)
                    .map_err(|_| DecodeError::BadFrame("client id is not ASCII"))?;
                Frame::Hello { client_id, token }
            }
            kind::DATA => Frame::Message(payload),
            kind::QUIT if payload.is_empty() => Frame::Quit,
            kind::QUIT => return Err(DecodeError::BadFrame("QUIT has no payload")),
            _ => Frame::Unknown {
                command: std::slice::from_ref(kind),
            },
        };
        Ok(Some((frame, used)))
    }

    fn encode(&self, reply: &Reply<'_>, out: &mut Vec<u8>) {
        match *reply {
            Reply::Pong { token } => frame(kind::PONG, &[token.unwrap_or_default()], out),
            Reply::Welcome {
                client_id,
                interval_ms,
                timeout_ms,
            } => {
                let ms = |ms: u64| u32::try_from(ms).unwrap_or(u32::MAX).to_be_bytes();
                frame(
                    kind::WELCOME,
                    &[&ms(interval_ms), &ms(timeout_ms), client_id.as_bytes()],
                    out,
                );
            }
            Reply::Message(m) => frame(kind::DATA, &[m], out),
            Reply::Bye(reason) => frame(kind::BYE, &[reason.as_str().as_bytes()], out),
            Reply::Quit => frame(kind::BYE, &[b"closed"], out),
            Reply::Unknown { command } => frame(kind::ERROR, &[command], out),
            // This codec decodes no Frame::Command, so none is answered.
            Reply::Command { .. } | Reply::Ping => {}
        }
    }

    fn max_frame(&self) -> usize {
        HEADER + self.max_len
    }

    fn name(&self) -> &'static str {
        "binary"
    }

    fn for_scheme(&self, scheme: crate::server::Scheme) -> Option<Self> {
        matches!(scheme, crate::server::Scheme::Binary).then_some(*self)
    }
}

/// Appends one frame of type `kind` whose payload is `parts`, concatenated.
/// A payload too long for the `length` field (over 4 GiB) is cut to fit.
fn frame(kind: u8, parts: &[&[u8]], out: &mut Vec<u8>) {
    let mut room = u32::MAX as usize - 1;
    let len = parts
        .iter()
        .fold(0usize, |sum, p| sum.saturating_add(p.len()))
        .min(room)
        + 1;
    out.extend_from_slice(&(len as u32).to_be_bytes());
    out.push(kind);
    for part in parts {
        let part = part.get(..room).unwrap_or(part);
        out.extend_from_slice(part);
        room -= part.len();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::CloseReason;

    /// Decodes everything in `input`, as the server would, into a readable
    /// trace: one entry per frame, then "need more" or the error.
    fn decode_all(p: &BinaryProtocol, input: &[u8]) -> Vec<String> {
        crate::protocol::decode_trace(p, input, |f| format!("{f:?}"))
    }

    #[track_caller]
    fn check(max_len: usize, input: &[u8], expected: &[&str]) {
        let got = decode_all(&BinaryProtocol::new(max_len), input);
        assert_eq!(got, expected, "input {input:02x?}");
    }

    #[test]
    fn client_frames() {
        check(64, &[0, 0, 0, 1, 1], &["Ping { token: None }", "more(0)"]);
        check(
            64,
            &[0, 0, 0, 3, 1, b'4', b'2'],
            &["Ping { token: Some([52, 50]) }", "more(0)"],
        );
        check(
            64,
            &[0, 0, 0, 4, 3, b'd', b'e', b'v'],
            &["Hello { client_id: \"dev\", token: None }", "more(0)"],
        );
        check(
            64,
            &[
                0, 0, 0, 9, 3, b'd', b'e', b'v', b' ', b'1', b'.', b'a', b'b',
            ],
            &[
                "Hello { client_id: \"dev\", token: Some([49, 46, 97, 98]) }",
                "more(0)",
            ],
        );
        // A space with nothing after it is no token; an empty id is bad.
        check(
            64,
            &[0, 0, 0, 5, 3, b'd', b'e', b'v', b' '],
            &["Hello { client_id: \"dev\", token: None }", "more(0)"],
        );
        check(
            64,
            &[0, 0, 0, 3, 3, b' ', b'x'],
            &["err(bad frame: HELLO needs a client id of 1 to 128 printable ASCII characters without spaces)"],
        );
        check(64, &[0, 0, 0, 1, 5], &["Message([])", "more(0)"]);
        check(
            64,
            &[0, 0, 0, 3, 5, 0, 0xff],
            &["Message([0, 255])", "more(0)"],
        );
        check(64, &[0, 0, 0, 1, 7], &["Quit", "more(0)"]);
        check(
            64,
            &[0, 0, 0, 2, 0x2a, 0, 0, 0, 0, 1, 1],
            &[
                "Unknown { command: [42] }",
                "Ping { token: None }",
                "more(0)",
            ],
        );
        // The server's own types are unknown coming from a client.
        check(
            64,
            &[0, 0, 0, 1, 2],
            &["Unknown { command: [2] }", "more(0)"],
        );
    }

    #[test]
    fn bad_frames() {
        let bad_id = "err(bad frame: HELLO needs a client id of 1 to 128 printable ASCII characters without spaces)";
        check(64, &[0, 0, 0, 1, 3], &[bad_id]);
        check(64, &[0, 0, 0, 4, 3, b' ', b'a', b'b'], &[bad_id]);
        check(64, &[0, 0, 0, 4, 3, b'a', b'\t', b'b'], &[bad_id]);
        check(64, &[0, 0, 0, 3, 3, 0xc3, 0xa9], &[bad_id]);
        check(
            64,
            &[0, 0, 0, 2, 7, 0],
            &["err(bad frame: QUIT has no payload)"],
        );
        check(64, &[0, 0, 0, 0, 1], &["err(bad frame: frame length is 0)"]);
    }

    #[test]
    fn partial_frames_wait() {
        check(64, &[], &["more(0)"]);
        check(64, &[0, 0, 0], &["more(3)"]);
        check(64, &[0, 0, 0, 3], &["more(4)"]);
        check(64, &[0, 0, 0, 3, 1, b'4'], &["more(6)"]);
        check(
            64,
            &[0, 0, 0, 1, 1, 0, 0],
            &["Ping { token: None }", "more(2)"],
        );
    }

    #[test]
    fn length_boundaries() {
        let mut max = vec![0, 0, 0, 4, 5];
        max.extend_from_slice(b"abc");
        check(4, &max, &["Message([97, 98, 99])", "more(0)"]);
        // Refused on the header alone, before the rest arrives.
        check(3, &max[..4], &["err(frame longer than 3 bytes)"]);
        check(
            64,
            &[0xff, 0xff, 0xff, 0xff],
            &["err(frame longer than 64 bytes)"],
        );
        check(64, &[0, 0, 0, 65], &["err(frame longer than 64 bytes)"]);
        check(64, &[0, 0, 0, 64], &["more(4)"]);
    }

    #[test]
    fn encoding() {
        let p = BinaryProtocol::default();
        let enc = |reply: Reply<'_>| {
            let mut out = Vec::new();
            p.encode(&reply, &mut out);
            out
        };
        assert_eq!(enc(Reply::Pong { token: None }), [0, 0, 0, 1, 2]);
        assert_eq!(
            enc(Reply::Pong { token: Some(b"42") }),
            [0, 0, 0, 3, 2, b'4', b'2']
        );
        assert_eq!(
            enc(Reply::Welcome {
                client_id: "dev",
                interval_ms: 30_000,
                timeout_ms: 45_000,
            }),
            [0, 0, 0, 0x0c, 4, 0, 0, 0x75, 0x30, 0, 0, 0xaf, 0xc8, b'd', b'e', b'v']
        );
        assert_eq!(
            enc(Reply::Welcome {
                client_id: "d",
                interval_ms: 1 << 40,
                timeout_ms: u64::MAX,
            }),
            [0, 0, 0, 0x0a, 4, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, b'd']
        );
        assert_eq!(enc(Reply::Message(b"hi")), [0, 0, 0, 3, 5, b'h', b'i']);
        assert_eq!(
            enc(Reply::Bye(CloseReason::Timeout)),
            b"\x00\x00\x00\x08\x06timeout"
        );
        assert_eq!(enc(Reply::Quit), b"\x00\x00\x00\x07\x06closed");
        assert_eq!(
            enc(Reply::Unknown { command: &[0x2a] }),
            [0, 0, 0, 2, 8, 0x2a]
        );
    }
}
