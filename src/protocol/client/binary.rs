//! The binary protocol, client side: the frames of
//! [`crate::protocol::binary`], in the other direction.
//!
//! The client sends HELLO (type 3) with its id, PING (type 1) with the
//! decimal sequence number as its token, and DATA (type 5) for messages
//! (any bytes). It reads:
//!
//! | type | frame                                  | read as                          |
//! |------|----------------------------------------|----------------------------------|
//! | 2    | PONG, the token                        | [`ServerFrame::Pong`]            |
//! | 4    | WELCOME, u32 interval, u32 timeout, id | [`ServerFrame::Welcome`]         |
//! | 5    | DATA                                   | [`ServerFrame::Message`]         |
//! | 6    | BYE, the reason in ASCII               | [`ServerFrame::Bye`]             |
//! | other| ERROR (8) and types it does not know   | [`ServerFrame::Other`]           |
//!
//! A `length` of 0, and a WELCOME shorter than 8 bytes of payload or with
//! an interval of 0, are bad frames; a `length` above `limit + 1` (the type
//! byte and `limit` bytes of payload) is refused as soon as its four bytes
//! are in.

use super::{ClientProtocol, MessageError, ServerFrame};
use crate::protocol::binary::kind;
use crate::protocol::{CloseReason, DecodeError};

/// The size of the `length` field.
const HEADER: usize = 4;

/// The binary protocol's client codec. See the [module docs](self).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BinaryClient;

/// Appends one frame: `length`, `kind`, then `parts` as the payload (cut to
/// what a `length` field can say).
fn frame(kind: u8, parts: &[&[u8]], out: &mut Vec<u8>) {
    let payload: usize = parts.iter().map(|p| p.len()).sum();
    let len = payload.min(u32::MAX as usize - 1) + 1;
    out.extend_from_slice(&(len as u32).to_be_bytes());
    out.push(kind);
    let mut room = len - 1;
    for part in parts {
        let part = part.get(..room).unwrap_or(part);
        out.extend_from_slice(part);
        room -= part.len();
    }
}

fn be32(b: &[u8]) -> Option<u64> {
    let b: [u8; 4] = b.get(..4)?.try_into().ok()?;
    Some(u64::from(u32::from_be_bytes(b)))
}

impl ClientProtocol for BinaryClient {
    fn name(&self) -> &'static str {
        "binary"
    }

    fn decode<'a>(
        &self,
        input: &'a [u8],
        limit: usize,
    ) -> Result<Option<(ServerFrame<'a>, usize)>, DecodeError> {
        let Some(len) = be32(input) else {
            return Ok(None);
        };
        let max = limit.saturating_add(1);
        if len == 0 {
            return Err(DecodeError::BadFrame("binary frame of length 0"));
        }
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        if len > max {
            return Err(DecodeError::TooLong { limit: max });
        }
        let Some(body) = input.get(HEADER..HEADER.saturating_add(len)) else {
            return Ok(None);
        };
        let (kind, payload) = (body[0], &body[1..]);
        let frame = match kind {
            kind::PONG => ServerFrame::Pong {
                token: (!payload.is_empty()).then_some(payload),
            },
            kind::WELCOME => {
                let (Some(interval), Some(timeout)) =
                    (be32(payload), payload.get(4..).and_then(be32))
                else {
                    return Err(DecodeError::BadFrame("binary WELCOME shorter than 8 bytes"));
                };
                if interval == 0 {
                    return Err(DecodeError::BadFrame("binary WELCOME interval is zero"));
                }
                ServerFrame::Welcome {
                    interval_ms: Some(interval),
                    timeout_ms: Some(timeout),
                }
            }
            kind::DATA => ServerFrame::Message(payload),
            kind::BYE => ServerFrame::Bye {
                reason: std::str::from_utf8(payload)
                    .ok()
                    .and_then(CloseReason::parse),
            },
            _ => ServerFrame::Other(body),
        };
        Ok(Some((frame, HEADER + len)))
    }

    /// A header announcing the longest frame, and all but its last byte.
    fn max_incomplete(&self, limit: usize) -> usize {
        HEADER.saturating_add(limit)
    }

    /// The token follows the id after one space, as the server reads it.
    fn carries_token(&self) -> bool {
        true
    }

    fn encode_hello(&self, client_id: &str, token: Option<&str>, out: &mut Vec<u8>) {
        match token {
            Some(t) => frame(
                kind::HELLO,
                &[client_id.as_bytes(), b" ", t.as_bytes()],
                out,
            ),
            None => frame(kind::HELLO, &[client_id.as_bytes()], out),
        }
    }

    fn encode_ping(&self, seq: u64, out: &mut Vec<u8>) {
        let mut digits = [0u8; 20];
        frame(kind::PING, &[super::decimal(seq, &mut digits)], out);
    }

    /// Any bytes.
    fn check_message(&self, _message: &[u8]) -> Result<(), MessageError> {
        Ok(())
    }

    fn encode_message(&self, message: &[u8], out: &mut Vec<u8>) {
        frame(kind::DATA, &[message], out);
    }
}
