//! The raw protocol: no framing at all, for clients that just send bytes.
//!
//! Whatever arrives counts as a heartbeat: each decode takes all the bytes
//! buffered so far, as long as there is at least one, and makes them one
//! [`Frame::Ping`] without a token. The server decodes after every read, so
//! in practice each read of one or more bytes is one heartbeat; frames
//! therefore depend on how the stream was split, by design. Nothing is ever
//! buffered, so nothing is too long or malformed.
//!
//! The server answers a heartbeat with the configured acknowledgement
//! (`ack\n` by default), at most once per interval
//! ([`max_pongs_per_interval`](Protocol::max_pongs_per_interval) is 1): a
//! chatty client is not flooded, and every byte still counts as life.
//!
//! | peer sends          | server answers                                  |
//! |---------------------|-------------------------------------------------|
//! | any bytes           | the acknowledgement, at most once per interval  |
//!
//! This is what the classic select() client expects: it sends
//! `hello server` (no newline) whenever it has been idle for two seconds
//! and prints whatever comes back.
//!
//! The raw protocol has no way to say anything but the acknowledgement, so
//! the server says nothing else: no message before closing (the peer sees
//! the end of the stream; the reason is in the server's events), and
//! nothing for the other replies, which raw frames never cause anyway.
//! Application data ([`Reply::Message`]) is sent as is.

use super::{DecodeError, Frame, Protocol, Reply};

/// The default acknowledgement.
pub const DEFAULT_ACK: &[u8] = b"ack\n";

/// The raw protocol codec. See the [module docs](self).
///
/// ```
/// use vigil::protocol::{Frame, Protocol, RawProtocol, Reply};
///
/// let raw = RawProtocol::default();
/// assert_eq!(raw.decode(b"hello server")?, Some((Frame::Ping { token: None }, 12)));
/// assert_eq!(raw.decode(b"")?, None);
///
/// let mut out = Vec::new();
/// raw.encode(&Reply::Pong { token: None }, &mut out);
/// assert_eq!(out, b"ack\n");
/// # Ok::<(), vigil::protocol::DecodeError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawProtocol {
    ack: Vec<u8>,
}

impl Default for RawProtocol {
    fn default() -> Self {
        RawProtocol::new(DEFAULT_ACK.to_vec())
    }
}

impl RawProtocol {
    /// A codec that acknowledges heartbeats with `ack` (sent as is; it may
    /// be empty, for a server that never answers).
    pub fn new(ack: Vec<u8>) -> RawProtocol {
        RawProtocol { ack }
    }

    /// The acknowledgement.
    pub fn ack(&self) -> &[u8] {
        &self.ack
    }
}

impl Protocol for RawProtocol {
    fn decode<'a>(&self, input: &'a [u8]) -> Result<Option<(Frame<'a>, usize)>, DecodeError> {
        if input.is_empty() {
            return Ok(None);
        }
        Ok(Some((Frame::Ping { token: None }, input.len())))
    }

    fn encode(&self, reply: &Reply<'_>, out: &mut Vec<u8>) {
        match *reply {
            Reply::Pong { .. } => out.extend_from_slice(&self.ack),
            Reply::Message(m) => out.extend_from_slice(m),
            Reply::Welcome { .. }
            | Reply::Bye(_)
            | Reply::Quit
            | Reply::Unknown { .. }
            | Reply::Command { .. }
            | Reply::Ping => {}
        }
    }

    /// 0: only an empty input is incomplete, so nothing is ever buffered.
    fn max_frame(&self) -> usize {
        0
    }

    fn name(&self) -> &'static str {
        "raw"
    }

    fn for_scheme(&self, scheme: crate::server::Scheme) -> Option<Self> {
        matches!(scheme, crate::server::Scheme::Raw).then(|| self.clone())
    }

    fn max_pongs_per_interval(&self) -> Option<u32> {
        Some(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::CloseReason;

    #[track_caller]
    fn check(input: &[u8], expected: Option<usize>) {
        let got = RawProtocol::default().decode(input);
        assert_eq!(
            got,
            Ok(expected.map(|used| (Frame::Ping { token: None }, used)))
        );
    }

    #[test]
    fn everything_is_one_heartbeat() {
        check(b"", None);
        check(b"x", Some(1));
        check(b"hello server", Some(12));
        check(b"PING\nPING\n", Some(10));
        check(b"\0\xff\r\n", Some(4));
        check(&[0; 100_000], Some(100_000));
    }

    #[test]
    fn encoding() {
        let enc = |p: &RawProtocol| {
            let mut out = Vec::new();
            p.encode(&Reply::Pong { token: None }, &mut out);
            p.encode(&Reply::Pong { token: Some(b"t") }, &mut out);
            p.encode(
                &Reply::Welcome {
                    client_id: "dev",
                    interval_ms: 1,
                    timeout_ms: 2,
                },
                &mut out,
            );
            p.encode(&Reply::Bye(CloseReason::Timeout), &mut out);
            p.encode(&Reply::Quit, &mut out);
            p.encode(&Reply::Unknown { command: b"x" }, &mut out);
            p.encode(&Reply::Message(b"data"), &mut out);
            out
        };
        assert_eq!(enc(&RawProtocol::default()), b"ack\nack\ndata");
        assert_eq!(enc(&RawProtocol::new(b"OK".to_vec())), b"OKOKdata");
        assert_eq!(enc(&RawProtocol::new(Vec::new())), b"data");
    }

    #[test]
    fn limits_pongs() {
        let p = RawProtocol::default();
        assert_eq!(p.max_pongs_per_interval(), Some(1));
        assert_eq!(p.max_frame(), 0);
        assert_eq!(p.name(), "raw");
    }
}
