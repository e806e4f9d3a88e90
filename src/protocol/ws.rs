//! WebSocket (RFC 6455) as pure functions: the opening handshake, frame
//! headers, masking and close codes, for both ends. No socket, no clock,
//! no state: the server keeps a connection's place in its
//! [`Partial`](crate::server) input, and the client needs none.
//!
//! # How vigil speaks WebSocket
//! A WebSocket connection carries the [line protocol](super::line): each
//! text (or binary) message is one line, without its `\n` (one is allowed
//! at the end and ignored): `HELLO <id>`, `PING <token>`, messages. The
//! server answers with one text frame per line (`WELCOME ...`, `PONG ...`,
//! messages, `BYE <reason>`), and closes with a close frame whose reason is
//! the `BYE`'s (see [`close_code`]). Control frames are WebSocket's own:
//! a client's ping gets a pong, a pong is a sign of life, and the server
//! pings a connection it has not heard from for an interval, so a page
//! that only says HELLO stays online while it lives.
//!
//! # Limits (RFC 6455 section 5)
//! - Client frames must be masked; server frames are not.
//! - Control frames are at most 125 bytes of payload and never fragmented.
//! - The reserved bits must be 0 (no extension is negotiated).
//! - A message (all its fragments) is at most the server's `--max-frame`.

use base64::Engine;
use sha1::{Digest, Sha1};

use super::CloseReason;

/// The GUID that RFC 6455 appends to the client's key.
const GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The only protocol version RFC 6455 defines (`Sec-WebSocket-Version`).
pub const VERSION: u8 = 13;

/// The longest opening handshake request the server reads.
pub const MAX_REQUEST: usize = 8 * 1024;

/// The most payload a control frame may carry.
pub const MAX_CONTROL: usize = 125;

/// `Sec-WebSocket-Accept` for the client's `Sec-WebSocket-Key`:
/// base64(SHA-1(key ++ GUID)).
///
/// ```
/// // The example of RFC 6455, section 1.3.
/// assert_eq!(
///     vigil::protocol::ws::accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
///     "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
/// );
/// ```
pub fn accept_key(key: &[u8]) -> String {
    let mut sha = Sha1::new();
    sha.update(key);
    sha.update(GUID);
    base64::engine::general_purpose::STANDARD.encode(sha.finalize())
}

/// A frame's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opcode {
    /// The next fragment of a message.
    Continuation,
    /// A text message (UTF-8).
    Text,
    /// A binary message.
    Binary,
    /// The closing handshake.
    Close,
    /// A ping: the other end answers with a pong.
    Ping,
    /// The answer to a ping, or a one-way sign of life.
    Pong,
}

impl Opcode {
    fn from_bits(b: u8) -> Option<Opcode> {
        Some(match b {
            0x0 => Opcode::Continuation,
            0x1 => Opcode::Text,
            0x2 => Opcode::Binary,
            0x8 => Opcode::Close,
            0x9 => Opcode::Ping,
            0xA => Opcode::Pong,
            _ => return None,
        })
    }

    fn bits(self) -> u8 {
        match self {
            Opcode::Continuation => 0x0,
            Opcode::Text => 0x1,
            Opcode::Binary => 0x2,
            Opcode::Close => 0x8,
            Opcode::Ping => 0x9,
            Opcode::Pong => 0xA,
        }
    }

    /// Close, ping and pong.
    pub fn is_control(self) -> bool {
        matches!(self, Opcode::Close | Opcode::Ping | Opcode::Pong)
    }
}

/// A frame's header, as [`parse_header`] reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The last fragment of its message.
    pub fin: bool,
    /// What kind of frame.
    pub opcode: Opcode,
    /// The masking key, when the frame is masked.
    pub mask: Option<[u8; 4]>,
    /// Payload bytes after the header.
    pub len: u64,
    /// Bytes of the header itself (2 to 14).
    pub header_len: usize,
}

impl Header {
    /// Header and payload together, if it fits a `usize`.
    pub fn frame_len(&self) -> Option<usize> {
        usize::try_from(self.len).ok()?.checked_add(self.header_len)
    }
}

/// Why a frame is not acceptable; each maps to a close code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// A reserved bit is set, and no extension was negotiated.
    Reserved,
    /// An opcode RFC 6455 reserves.
    UnknownOpcode(u8),
    /// A control frame with more than 125 bytes, or fragmented.
    BadControl,
    /// A length in the 64-bit form with its top bit set.
    BadLength,
}

impl FrameError {
    /// What it says in a log line.
    pub fn as_str(self) -> &'static str {
        match self {
            FrameError::Reserved => "a reserved bit is set",
            FrameError::UnknownOpcode(_) => "an unknown opcode",
            FrameError::BadControl => "a control frame fragmented or over 125 bytes",
            FrameError::BadLength => "a length with its top bit set",
        }
    }
}

/// Reads a frame header from the front of `input`: `Ok(None)` while it is
/// incomplete. Checks what the header alone can show (reserved bits,
/// opcode, control frame rules); masking and length limits are the
/// caller's, who knows which end it is and its limit.
pub fn parse_header(input: &[u8]) -> Result<Option<Header>, FrameError> {
    let [b0, b1, rest @ ..] = input else {
        return Ok(None);
    };
    if b0 & 0x70 != 0 {
        return Err(FrameError::Reserved);
    }
    let fin = b0 & 0x80 != 0;
    let opcode = Opcode::from_bits(b0 & 0x0F).ok_or(FrameError::UnknownOpcode(b0 & 0x0F))?;
    let masked = b1 & 0x80 != 0;
    let (len, ext) = match b1 & 0x7F {
        126 => match rest {
            [a, b, ..] => (u64::from(u16::from_be_bytes([*a, *b])), 2),
            _ => return Ok(None),
        },
        127 => match rest.get(..8) {
            Some(b) => {
                let mut eight = [0u8; 8];
                eight.copy_from_slice(b);
                let len = u64::from_be_bytes(eight);
                if len >> 63 != 0 {
                    return Err(FrameError::BadLength);
                }
                (len, 8)
            }
            None => return Ok(None),
        },
        n => (u64::from(n), 0),
    };
    if opcode.is_control() && (!fin || len > MAX_CONTROL as u64) {
        return Err(FrameError::BadControl);
    }
    let mask = if masked {
        match rest.get(ext..ext + 4) {
            Some(m) => Some([m[0], m[1], m[2], m[3]]),
            None => return Ok(None),
        }
    } else {
        None
    };
    Ok(Some(Header {
        fin,
        opcode,
        mask,
        len,
        header_len: 2 + ext + if masked { 4 } else { 0 },
    }))
}

/// Appends a frame's header: `len` payload bytes follow, masked with `mask`
/// when given (clients mask, servers do not).
pub fn encode_header(
    out: &mut Vec<u8>,
    fin: bool,
    opcode: Opcode,
    mask: Option<[u8; 4]>,
    len: usize,
) {
    out.push(if fin { 0x80 } else { 0 } | opcode.bits());
    let m = if mask.is_some() { 0x80 } else { 0 };
    if len < 126 {
        out.push(m | len as u8);
    } else if let Ok(short) = u16::try_from(len) {
        out.push(m | 126);
        out.extend_from_slice(&short.to_be_bytes());
    } else {
        out.push(m | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    if let Some(key) = mask {
        out.extend_from_slice(&key);
    }
}

/// The size of the header [`encode_header`] writes.
pub fn header_len(len: usize, masked: bool) -> usize {
    let ext = if len < 126 {
        0
    } else if len <= usize::from(u16::MAX) {
        2
    } else {
        8
    };
    2 + ext + if masked { 4 } else { 0 }
}

/// Appends a whole frame, masking the payload when `mask` is given.
pub fn encode_frame(out: &mut Vec<u8>, opcode: Opcode, mask: Option<[u8; 4]>, payload: &[u8]) {
    encode_header(out, true, opcode, mask, payload.len());
    let start = out.len();
    out.extend_from_slice(payload);
    if let Some(key) = mask {
        apply_mask(&mut out[start..], key, 0);
    }
}

/// XORs `data` with the masking key, `data` starting `offset` bytes into
/// the payload (masking is its own inverse).
pub fn apply_mask(data: &mut [u8], key: [u8; 4], offset: usize) {
    for (i, b) in data.iter_mut().enumerate() {
        *b ^= key[(offset + i) % 4];
    }
}

/// The close code that goes with a reason, and the status it tells a
/// browser's `CloseEvent.code` (RFC 6455 section 7.4.1):
///
/// | reasons | code |
/// |---|---|
/// | timeout, hello-timeout, closed, reset | 1000 normal |
/// | shutdown | 1001 going away |
/// | bad-frame | 1002 protocol error |
/// | replaced, kicked, unauthorized, too-many-* | 1008 policy violation |
/// | line-too-long, output-overflow | 1009 message too big |
/// | internal-error | 1011 internal error |
/// | overloaded | 1013 try again later |
pub fn close_code(reason: CloseReason) -> u16 {
    match reason {
        CloseReason::Shutdown => 1001,
        CloseReason::BadFrame => 1002,
        CloseReason::Replaced
        | CloseReason::Kicked
        | CloseReason::Unauthorized
        | CloseReason::TooManyPings
        | CloseReason::TooManyConnections
        | CloseReason::TooManyFrames => 1008,
        CloseReason::LineTooLong | CloseReason::OutputOverflow => 1009,
        CloseReason::InternalError => 1011,
        CloseReason::Overloaded => 1013,
        _ => 1000,
    }
}

/// Appends a close frame with `code` and `reason` (cut to fit 125 bytes).
pub fn encode_close(out: &mut Vec<u8>, code: u16, reason: &str, mask: Option<[u8; 4]>) {
    let mut payload = [0u8; MAX_CONTROL];
    payload[..2].copy_from_slice(&code.to_be_bytes());
    let text = &reason.as_bytes()[..reason.len().min(MAX_CONTROL - 2)];
    payload[2..2 + text.len()].copy_from_slice(text);
    encode_frame(out, Opcode::Close, mask, &payload[..2 + text.len()]);
}

/// The close code and reason of a close frame's (unmasked) payload: none
/// for an empty one, and an error for one byte or a reason that is not
/// UTF-8.
pub fn parse_close(payload: &[u8]) -> Result<Option<(u16, &str)>, &'static str> {
    match payload {
        [] => Ok(None),
        [_] => Err("a close frame with one byte of payload"),
        [a, b, text @ ..] => {
            let text = std::str::from_utf8(text).map_err(|_| "a close reason that is not UTF-8")?;
            Ok(Some((u16::from_be_bytes([*a, *b]), text)))
        }
    }
}

/// An opening handshake request the server accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request<'a> {
    /// `Sec-WebSocket-Key`, trimmed.
    pub key: &'a [u8],
    /// `Origin`, if the client sent one (browsers always do).
    pub origin: Option<&'a [u8]>,
}

/// Why an opening handshake is refused, with the HTTP status to answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeError {
    /// Not a WebSocket upgrade (a plain HTTP request, a missing header,
    /// not `GET`, not HTTP/1.1): `400 Bad Request`.
    BadRequest(&'static str),
    /// A `Sec-WebSocket-Version` other than 13: `426 Upgrade Required`
    /// with the version the server speaks.
    BadVersion,
    /// The request is longer than [`MAX_REQUEST`]: `431`.
    TooLarge,
    /// Its `Origin` is not on the allowlist: `403 Forbidden`.
    Forbidden,
}

impl HandshakeError {
    /// The status line's code and text.
    pub fn status(self) -> (u16, &'static str) {
        match self {
            HandshakeError::BadRequest(_) => (400, "Bad Request"),
            HandshakeError::BadVersion => (426, "Upgrade Required"),
            HandshakeError::TooLarge => (431, "Request Header Fields Too Large"),
            HandshakeError::Forbidden => (403, "Forbidden"),
        }
    }

    /// What it says in a log line.
    pub fn as_str(self) -> &'static str {
        match self {
            HandshakeError::BadRequest(why) => why,
            HandshakeError::BadVersion => "a Sec-WebSocket-Version other than 13",
            HandshakeError::TooLarge => "a handshake longer than 8 KiB",
            HandshakeError::Forbidden => "an Origin not on the allowlist",
        }
    }
}

/// The most header lines a handshake request may have.
const MAX_HEADERS: usize = 32;

/// Reads an opening handshake request from the front of `input`:
/// `Ok(None)` while it is incomplete, the request and the bytes it used
/// when it is complete and acceptable.
pub fn parse_request(input: &[u8]) -> Result<Option<(Request<'_>, usize)>, HandshakeError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let used = match req.parse(input) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if input.len() >= MAX_REQUEST => {
            return Err(HandshakeError::TooLarge)
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(HandshakeError::BadRequest("more than 32 header lines"))
        }
        Err(_) => return Err(HandshakeError::BadRequest("not an HTTP request")),
    };
    if used > MAX_REQUEST {
        return Err(HandshakeError::TooLarge);
    }
    if req.method != Some("GET") || req.version != Some(1) {
        return Err(HandshakeError::BadRequest("not a GET over HTTP/1.1"));
    }
    let header = |name: &str| {
        req.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.trim_ascii())
    };
    let has_token = |name: &str, token: &str| {
        req.headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case(name))
            .flat_map(|h| h.value.split(|&b| b == b','))
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
    };
    if !has_token("Upgrade", "websocket") || !has_token("Connection", "upgrade") {
        return Err(HandshakeError::BadRequest("not a WebSocket upgrade"));
    }
    if header("Sec-WebSocket-Version") != Some(b"13") {
        return Err(HandshakeError::BadVersion);
    }
    let key = match header("Sec-WebSocket-Key") {
        // 16 random bytes in base64.
        Some(k) if k.len() == 24 => k,
        _ => return Err(HandshakeError::BadRequest("no valid Sec-WebSocket-Key")),
    };
    Ok(Some((
        Request {
            key,
            origin: header("Origin"),
        },
        used,
    )))
}

/// Appends the `101 Switching Protocols` answer to a request with `key`.
pub fn write_accept(out: &mut Vec<u8>, key: &[u8]) {
    out.extend_from_slice(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Accept: ",
    );
    out.extend_from_slice(accept_key(key).as_bytes());
    out.extend_from_slice(b"\r\n\r\n");
}

/// Appends the HTTP answer that refuses a handshake, with `why` as its
/// body; the connection closes after it.
pub fn write_refusal(out: &mut Vec<u8>, status: (u16, &str), why: &str) {
    use std::io::Write;
    let extra = if status.0 == 426 {
        "Sec-WebSocket-Version: 13\r\n"
    } else {
        ""
    };
    // Writing into a Vec cannot fail.
    let _ = write!(
        out,
        "HTTP/1.1 {} {}\r\n{extra}Content-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{why}\n",
        status.0,
        status.1,
        why.len() + 1
    );
}

#[cfg(test)]
mod tests;
