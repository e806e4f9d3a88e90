//! The WebSocket protocol, client side: the line protocol in WebSocket
//! frames ([`crate::protocol::ws`] has the frames and the handshake).
//!
//! The client opens with an HTTP/1.1 upgrade (`GET /`, `Upgrade:
//! websocket`, a `Sec-WebSocket-Key`), then sends each line of the line
//! protocol as one masked text frame, without its `\n`: `HELLO <id>[
//! <token>]`, `PING <seq>`, messages. It reads:
//!
//! | from the server                                  | read as                          |
//! |--------------------------------------------------|----------------------------------|
//! | `HTTP/1.1 101` with our `Sec-WebSocket-Accept`   | [`ServerFrame::Other`] (the whole answer) |
//! | any other HTTP answer (a 4xx refusal)            | an error naming the status       |
//! | a text or binary frame: one line                 | as the line client reads it (`WELCOME`, `PONG`, `BYE`, messages) |
//! | a close frame                                    | [`ServerFrame::Bye`], the reason from its text |
//! | a ping or a pong                                 | [`ServerFrame::Other`] (a sign of life) |
//!
//! # Where it departs from RFC 6455
//! - **No wait for the `101`.** [`encode_hello`](ClientProtocol::encode_hello)
//!   writes the upgrade request and the `HELLO` frame together, which saves
//!   a round trip. RFC 6455 (section 4.1) says a client waits for the
//!   server's answer before it sends frames; vigil's server reads frames
//!   pipelined after the request, but another server may not.
//! - **One fixed `Sec-WebSocket-Key`.** The codec is stateless, so every
//!   connection sends [`KEY`] and expects [`ACCEPT`]. The key only proves
//!   that the server understood the upgrade (it is not a secret), and a
//!   client with a token sends it in `HELLO`, not in the handshake.
//! - **Server pings go unanswered.** The codec cannot answer a frame; the
//!   client beats by itself, which is the sign of life the server waits
//!   for.
//! - **No fragmented messages.** vigil's server never fragments a line; a
//!   fragment is a bad frame.
//!
//! Masks vary: each frame's key comes from a per-process random seed mixed
//! with a counter (SplitMix64; unpredictable enough for intermediaries,
//! not a secret), so the bytes of two encodings of the same frame differ.
//! That counter is the codec's only state.
//!
//! A line frame may end in `\n` (or `\r\n`), which is dropped (vigil's
//! server allows one at the end of a client's frame too). The limit is on a data frame's
//! payload; control frames (close, ping, pong) are at most 125 bytes
//! whatever it is.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

use super::line::{check_line, parse_line};
use super::{ClientProtocol, MessageError, ServerFrame};
use crate::client::backoff::SplitMix64;
use crate::protocol::ws::{self, Opcode};
use crate::protocol::{CloseReason, DecodeError};

/// The `Sec-WebSocket-Key` every connection sends: 16 bytes
/// (`vigil heartbeats`) in base64.
pub const KEY: &str = "dmlnaWwgaGVhcnRiZWF0cw==";

/// The `Sec-WebSocket-Accept` a server answers to [`KEY`]:
/// [`ws::accept_key`] of it.
pub const ACCEPT: &str = "rad0vM7yjMmI/6eCB91CZfHWVcQ=";

/// The longest handshake answer the client reads, as the server bounds
/// the request ([`ws::MAX_REQUEST`]).
pub const MAX_RESPONSE: usize = 8 * 1024;

/// The most header lines a handshake answer may have.
const MAX_HEADERS: usize = 32;

/// The most bytes of a frame header (2, 8 of length, 4 of mask).
const MAX_HEADER: usize = 14;

/// What a fragment says: vigil's server sends one line per frame.
const FRAGMENTED: &str = "a fragmented WebSocket message (vigil's server never fragments)";

/// The WebSocket protocol's client codec. See the [module docs](self).
///
/// ```
/// use vigil::protocol::client::{ClientCodec, ServerFrame};
/// use vigil::protocol::ws::{self, Opcode};
///
/// // What vigil's server sends for `PONG 7`: one unmasked text frame.
/// let mut frame = Vec::new();
/// ws::encode_frame(&mut frame, Opcode::Text, None, b"PONG 7");
/// assert_eq!(
///     ClientCodec::WS.decode(&frame, 1024),
///     Ok(Some((ServerFrame::Pong { token: Some(&b"7"[..]) }, frame.len())))
/// );
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WsClient;

impl ClientProtocol for WsClient {
    fn name(&self) -> &'static str {
        "ws"
    }

    fn decode<'a>(
        &self,
        input: &'a [u8],
        limit: usize,
    ) -> Result<Option<(ServerFrame<'a>, usize)>, DecodeError> {
        // A frame never starts with `H` (0x48 sets a reserved bit), so the
        // handshake answer and its every prefix are told apart from frames.
        if input.starts_with(b"HTTP/") {
            return decode_answer(input);
        }
        if !input.is_empty() && b"HTTP/".starts_with(input) {
            return Ok(None);
        }
        decode_frame(input, limit)
    }

    /// A frame header (14 bytes) and `limit` bytes of payload, or the
    /// handshake answer ([`MAX_RESPONSE`]), whichever is longer.
    fn max_incomplete(&self, limit: usize) -> usize {
        limit.saturating_add(MAX_HEADER).max(MAX_RESPONSE)
    }

    /// The token follows the id in `HELLO`, as in the line protocol.
    fn carries_token(&self) -> bool {
        true
    }

    /// The upgrade request, then the `HELLO` frame without waiting for the
    /// answer (see the [module docs](self)).
    fn encode_hello(&self, client_id: &str, token: Option<&str>, out: &mut Vec<u8>) {
        out.extend_from_slice(
            b"GET / HTTP/1.1\r\nHost: vigil\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Key: ",
        );
        out.extend_from_slice(KEY.as_bytes());
        out.extend_from_slice(b"\r\nSec-WebSocket-Version: 13\r\n\r\n");
        match token {
            Some(t) => frame(
                Opcode::Text,
                &[b"HELLO ", client_id.as_bytes(), b" ", t.as_bytes()],
                out,
            ),
            None => frame(Opcode::Text, &[b"HELLO ", client_id.as_bytes()], out),
        }
    }

    fn encode_ping(&self, seq: u64, out: &mut Vec<u8>) {
        let mut digits = [0u8; 20];
        frame(
            Opcode::Text,
            &[b"PING ", super::decimal(seq, &mut digits)],
            out,
        );
    }

    fn encode_pong(&self, token: Option<&[u8]>, out: &mut Vec<u8>) {
        match token {
            Some(t) => frame(Opcode::Text, &[b"PONG ", t], out),
            None => frame(Opcode::Text, &[b"PONG"], out),
        }
    }

    /// One line that is not a command, as in the line protocol.
    fn check_message(&self, message: &[u8]) -> Result<(), MessageError> {
        check_line(message)
    }

    /// A text frame, or a binary one when the message is not UTF-8 (a
    /// text frame must be); the server reads either as one line.
    fn encode_message(&self, message: &[u8], out: &mut Vec<u8>) {
        let opcode = match std::str::from_utf8(message) {
            Ok(_) => Opcode::Text,
            Err(_) => Opcode::Binary,
        };
        frame(opcode, &[message], out);
    }
}

/// Reads the server's answer to the upgrade from the front of `input`
/// (which starts with `HTTP/`).
fn decode_answer(input: &[u8]) -> Result<Option<(ServerFrame<'_>, usize)>, DecodeError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut answer = httparse::Response::new(&mut headers);
    let used = match answer.parse(input) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if input.len() >= MAX_RESPONSE => {
            return Err(DecodeError::TooLong {
                limit: MAX_RESPONSE,
            })
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(DecodeError::BadFrame(
                "a WebSocket handshake answer with more than 32 header lines",
            ))
        }
        Err(_) => {
            return Err(DecodeError::BadFrame(
                "the answer to the WebSocket upgrade is not HTTP",
            ))
        }
    };
    if used > MAX_RESPONSE {
        return Err(DecodeError::TooLong {
            limit: MAX_RESPONSE,
        });
    }
    if answer.code != Some(101) {
        return Err(DecodeError::BadFrame(refusal(answer.code)));
    }
    let has_token = |name: &str, token: &str| {
        answer
            .headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case(name))
            .flat_map(|h| h.value.split(|&b| b == b','))
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
    };
    if !has_token("Upgrade", "websocket") || !has_token("Connection", "upgrade") {
        return Err(DecodeError::BadFrame(
            "a 101 answer that does not upgrade to WebSocket",
        ));
    }
    let accept = answer
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("Sec-WebSocket-Accept"))
        .map(|h| h.value.trim_ascii());
    if accept != Some(ACCEPT.as_bytes()) {
        return Err(DecodeError::BadFrame(
            "a 101 answer without the Sec-WebSocket-Accept of our key",
        ));
    }
    Ok(Some((ServerFrame::Other(&input[..used]), used)))
}

/// What a refusal of the upgrade says, by its status (those vigil's server
/// sends have their own words).
fn refusal(code: Option<u16>) -> &'static str {
    match code {
        Some(400) => "the server refused the WebSocket upgrade: 400 Bad Request",
        Some(403) => "the server refused the WebSocket upgrade: 403 Forbidden",
        Some(426) => "the server refused the WebSocket upgrade: 426 Upgrade Required",
        Some(431) => {
            "the server refused the WebSocket upgrade: 431 Request Header Fields Too Large"
        }
        Some(400..=499) => "the server refused the WebSocket upgrade: a 4xx status",
        Some(500..=599) => "the server refused the WebSocket upgrade: a 5xx status",
        _ => "the server answered the WebSocket upgrade without switching protocols",
    }
}

/// Reads one frame from the front of `input`.
fn decode_frame(
    input: &[u8],
    limit: usize,
) -> Result<Option<(ServerFrame<'_>, usize)>, DecodeError> {
    let header = match ws::parse_header(input) {
        Ok(Some(h)) => h,
        Ok(None) => return Ok(None),
        Err(e) => return Err(DecodeError::BadFrame(e.as_str())),
    };
    if header.mask.is_some() {
        return Err(DecodeError::BadFrame(
            "a masked WebSocket frame from the server",
        ));
    }
    // Refused as soon as the header is in, so nothing longer is buffered.
    // Control frames are at most 125 bytes (`parse_header` checks).
    if !header.opcode.is_control() && header.len > limit as u64 {
        return Err(DecodeError::TooLong { limit });
    }
    let Some(end) = header.frame_len() else {
        return Err(DecodeError::TooLong { limit });
    };
    let Some(payload) = input.get(header.header_len..end) else {
        return Ok(None);
    };
    let frame = match header.opcode {
        Opcode::Continuation => return Err(DecodeError::BadFrame(FRAGMENTED)),
        Opcode::Text | Opcode::Binary if !header.fin => {
            return Err(DecodeError::BadFrame(FRAGMENTED))
        }
        Opcode::Text | Opcode::Binary => parse_line(without_ending(payload))?,
        Opcode::Close => match ws::parse_close(payload).map_err(DecodeError::BadFrame)? {
            Some((_code, text)) => ServerFrame::Bye {
                reason: CloseReason::parse(text),
            },
            None => ServerFrame::Bye { reason: None },
        },
        Opcode::Ping | Opcode::Pong => ServerFrame::Other(payload),
    };
    Ok(Some((frame, end)))
}

/// `line` without one `\n` at its end, and a `\r` before that one.
fn without_ending(line: &[u8]) -> &[u8] {
    match line.strip_suffix(b"\n") {
        Some(l) => l.strip_suffix(b"\r").unwrap_or(l),
        None => line,
    }
}

/// Appends one masked frame (FIN set) with `parts` as its payload.
fn frame(opcode: Opcode, parts: &[&[u8]], out: &mut Vec<u8>) {
    let len = parts.iter().map(|p| p.len()).sum();
    let key = next_mask();
    ws::encode_header(out, true, opcode, Some(key), len);
    let start = out.len();
    for part in parts {
        out.extend_from_slice(part);
    }
    ws::apply_mask(&mut out[start..], key, 0);
}

/// The next masking key: the process's random seed mixed with a counter,
/// never all zeros (which would leave the payload in the clear).
fn next_mask() -> [u8; 4] {
    static SEED: OnceLock<u64> = OnceLock::new();
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let seed = *SEED.get_or_init(|| {
        use std::hash::BuildHasher;
        // The standard library's randomly keyed hasher: random per process.
        std::collections::hash_map::RandomState::new().hash_one(std::process::id())
    });
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let bits = SplitMix64::new(seed ^ u64::from(n).wrapping_mul(0x9e37_79b9_7f4a_7c15)).next_u64();
    (bits as u32).max(1).to_be_bytes()
}
