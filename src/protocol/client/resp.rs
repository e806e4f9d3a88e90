//! The RESP protocol, client side: what a heartbeat client says to the
//! RESP server ([`crate::protocol::resp`]) and how it reads the replies.
//!
//! The client sends multibulk requests: `CLIENT SETNAME <id>` to log in
//! and `PING <seq>` to beat. RESP has no message request, so the client
//! sends no application data ([`MessageError::Unsupported`]). It reads
//! RESP2 replies, every one ending in `\r\n`:
//!
//! | reply                         | read as                                  |
//! |-------------------------------|------------------------------------------|
//! | `+OK`                         | [`ServerFrame::Welcome`], no interval    |
//! | `+PONG`                       | [`ServerFrame::Pong`] without a token    |
//! | `$<len>\r\n<bytes>`           | [`ServerFrame::Echo`]: the pong for `PING <seq>` when it is `<seq>`, else a message |
//! | `-ERR closing: <reason>`      | [`ServerFrame::Bye`]                      |
//! | any other `+`, `-`, `:` line, `$-1` | [`ServerFrame::Other`]              |
//! | `*` (an array), another first byte, a line not ending in `\r\n` | a bad frame |
//!
//! A reply line longer than `limit` bytes (without its `\r\n`), or a bulk
//! string announcing more than `limit` bytes, is refused as too long as
//! soon as that is known.

use super::{ClientProtocol, Login, MessageError, ServerFrame};
use crate::client::wire::parse_ms;
use crate::protocol::{CloseReason, DecodeError};

/// The RESP protocol's client codec. See the [module docs](self).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RespClient;

/// The line at the front of `input`, without its `\r\n`, and the bytes
/// used with it.
fn line(input: &[u8], limit: usize) -> Result<Option<(&[u8], usize)>, DecodeError> {
    let Some(nl) = input
        .iter()
        .take(limit.saturating_add(2))
        .position(|&b| b == b'\n')
    else {
        if input.len() > limit.saturating_add(1) {
            return Err(DecodeError::TooLong { limit });
        }
        return Ok(None);
    };
    match nl.checked_sub(1).map(|cr| (cr, input[cr])) {
        Some((cr, b'\r')) if cr <= limit => Ok(Some((&input[..cr], nl + 1))),
        Some((_, b'\r')) => Err(DecodeError::TooLong { limit }),
        _ => Err(DecodeError::BadFrame("RESP line not ending in \\r\\n")),
    }
}

/// Appends one bulk string.
fn bulk(data: &[u8], out: &mut Vec<u8>) {
    let mut digits = [0u8; 20];
    out.push(b'$');
    out.extend_from_slice(super::decimal(data.len() as u64, &mut digits));
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

impl ClientProtocol for RespClient {
    fn name(&self) -> &'static str {
        "resp"
    }

    fn login(&self) -> Login {
        Login::Welcome
    }

    fn decode<'a>(
        &self,
        input: &'a [u8],
        limit: usize,
    ) -> Result<Option<(ServerFrame<'a>, usize)>, DecodeError> {
        let Some(&first) = input.first() else {
            return Ok(None);
        };
        if !matches!(first, b'+' | b'-' | b':' | b'$') {
            return Err(DecodeError::BadFrame(if first == b'*' {
                "RESP arrays are not a reply to a heartbeat client"
            } else {
                "not a RESP reply"
            }));
        }
        let Some((head, used)) = line(input, limit)? else {
            return Ok(None);
        };
        let rest = &head[1..];
        let frame = match first {
            b'+' if rest == b"OK" => ServerFrame::Welcome {
                interval_ms: None,
                timeout_ms: None,
            },
            b'+' if rest == b"PONG" => ServerFrame::Pong { token: None },
            b'-' => match rest.strip_prefix(b"ERR closing: ") {
                Some(reason) => ServerFrame::Bye {
                    reason: std::str::from_utf8(reason)
                        .ok()
                        .and_then(CloseReason::parse),
                },
                None => ServerFrame::Other(head),
            },
            b'$' if rest == b"-1" => ServerFrame::Other(head),
            b'$' => {
                let len = parse_ms(rest)
                    .ok_or(DecodeError::BadFrame("RESP bulk length is not a number"))?;
                if len > limit as u64 {
                    return Err(DecodeError::TooLong { limit });
                }
                let end = used.saturating_add(len as usize);
                let Some(tail) = input.get(end..end.saturating_add(2)) else {
                    return Ok(None);
                };
                if tail != b"\r\n" {
                    return Err(DecodeError::BadFrame(
                        "RESP bulk string not ending in \\r\\n",
                    ));
                }
                return Ok(Some((ServerFrame::Echo(&input[used..end]), end + 2)));
            }
            _ => ServerFrame::Other(head),
        };
        Ok(Some((frame, used)))
    }

    /// A bulk string: a header line of `limit` bytes with its `\r\n`, then
    /// `limit` bytes and the `\r` of their ending.
    fn max_incomplete(&self, limit: usize) -> usize {
        limit.saturating_mul(2).saturating_add(3)
    }

    /// `CLIENT SETNAME` has no room for one.
    fn encode_hello(&self, client_id: &str, _token: Option<&str>, out: &mut Vec<u8>) {
        out.extend_from_slice(b"*3\r\n");
        bulk(b"CLIENT", out);
        bulk(b"SETNAME", out);
        bulk(client_id.as_bytes(), out);
    }

    fn encode_ping(&self, seq: u64, out: &mut Vec<u8>) {
        let mut digits = [0u8; 20];
        out.extend_from_slice(b"*2\r\n");
        bulk(b"PING", out);
        bulk(super::decimal(seq, &mut digits), out);
    }

    fn check_message(&self, _message: &[u8]) -> Result<(), MessageError> {
        Err(MessageError::Unsupported)
    }

    fn encode_message(&self, _message: &[u8], _out: &mut Vec<u8>) {}
}
