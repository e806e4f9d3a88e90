//! The raw protocol, client side.
//!
//! The raw server ([`crate::protocol::raw`]) has no frames, no login and
//! no tokens: every byte it receives is life, and it answers with its
//! acknowledgement (`ack\n` by default) at most once per interval. So the
//! client logs in with nothing (it is online once connected), beats with
//! `ping\n`, and takes whatever bytes arrive as the answer to its
//! outstanding ping ([`ServerFrame::Ack`]): it cannot tell the
//! acknowledgement from application data, which the raw server sends as
//! is. The interval is the client's own (`--interval`), and should be no
//! shorter than the server's, or some pings go unanswered (the server
//! acknowledges once per interval).

use super::{ClientProtocol, Login, MessageError, ServerFrame};
use crate::protocol::DecodeError;

/// The raw protocol's client codec. See the [module docs](self).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RawClient;

impl ClientProtocol for RawClient {
    fn name(&self) -> &'static str {
        "raw"
    }

    fn login(&self) -> Login {
        Login::None
    }

    /// Everything buffered is one acknowledgement.
    fn decode<'a>(
        &self,
        input: &'a [u8],
        _limit: usize,
    ) -> Result<Option<(ServerFrame<'a>, usize)>, DecodeError> {
        Ok((!input.is_empty()).then_some((ServerFrame::Ack, input.len())))
    }

    /// 0: only an empty input is incomplete.
    fn max_incomplete(&self, _limit: usize) -> usize {
        0
    }

    fn encode_hello(&self, _client_id: &str, _token: Option<&str>, _out: &mut Vec<u8>) {}

    fn encode_ping(&self, _seq: u64, out: &mut Vec<u8>) {
        out.extend_from_slice(b"ping\n");
    }

    /// Any one line.
    fn check_message(&self, message: &[u8]) -> Result<(), MessageError> {
        if message.contains(&b'\n') {
            return Err(MessageError::NotOneLine);
        }
        Ok(())
    }

    /// The message and a `\n`.
    fn encode_message(&self, message: &[u8], out: &mut Vec<u8>) {
        out.extend_from_slice(message);
        out.push(b'\n');
    }
}
