//! The line protocol, client side: [`crate::client::wire`] behind the
//! [`ClientProtocol`] trait.

use super::{ClientProtocol, MessageError, ServerFrame};
use crate::client::wire::{self, ServerLine};
use crate::protocol::DecodeError;

/// The line protocol's client codec: `HELLO <id>`, `PING <seq>`, message
/// lines; reads `WELCOME`, `PONG`, `BYE` and message lines
/// ([`crate::client::wire`] has the details).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LineClient;

impl ClientProtocol for LineClient {
    fn name(&self) -> &'static str {
        "line"
    }

    fn decode<'a>(
        &self,
        input: &'a [u8],
        limit: usize,
    ) -> Result<Option<(ServerFrame<'a>, usize)>, DecodeError> {
        let Some((line, used)) = wire::split_line(input, limit)? else {
            return Ok(None);
        };
        Ok(Some((parse_line(line)?, used)))
    }

    /// A line of `limit` bytes and its `\r`, waiting for the `\n` (a zero
    /// limit behaves as 1).
    fn max_incomplete(&self, limit: usize) -> usize {
        limit.max(1) + 1
    }

    fn carries_token(&self) -> bool {
        true
    }

    fn encode_hello(&self, client_id: &str, token: Option<&str>, out: &mut Vec<u8>) {
        wire::encode_hello(client_id, token, out);
    }

    fn encode_ping(&self, seq: u64, out: &mut Vec<u8>) {
        wire::encode_ping(seq, out);
    }

    fn encode_pong(&self, token: Option<&[u8]>, out: &mut Vec<u8>) {
        out.extend_from_slice(b"PONG");
        if let Some(t) = token {
            out.push(b' ');
            out.extend_from_slice(t);
        }
        out.push(b'\n');
    }

    fn check_message(&self, message: &[u8]) -> Result<(), MessageError> {
        check_line(message)
    }

    fn encode_message(&self, message: &[u8], out: &mut Vec<u8>) {
        wire::encode_message(message, out);
    }
}

/// What one line from the server means, given without its ending: the
/// line protocol's vocabulary, shared with the WebSocket client, whose
/// text frames carry one line each.
pub(crate) fn parse_line(line: &[u8]) -> Result<ServerFrame<'_>, DecodeError> {
    Ok(match wire::parse(line)? {
        ServerLine::Welcome(w) => ServerFrame::Welcome {
            interval_ms: Some(w.interval_ms),
            timeout_ms: w.timeout_ms,
        },
        ServerLine::Pong { token } => ServerFrame::Pong { token },
        ServerLine::Ping { token } => ServerFrame::Ping { token },
        ServerLine::Bye { reason } => ServerFrame::Bye { reason },
        ServerLine::Message(m) => ServerFrame::Message(m),
    })
}

/// Whether `message` can go to the server as one message line: no `\n`,
/// no `\r` at the end (the server would drop it), not a command.
pub(crate) fn check_line(message: &[u8]) -> Result<(), MessageError> {
    if message.contains(&b'\n') || message.last() == Some(&b'\r') {
        return Err(MessageError::NotOneLine);
    }
    if wire::is_command(message) {
        return Err(MessageError::Command);
    }
    Ok(())
}
