//! The client side of every wire protocol: what a heartbeat client sends
//! and how it reads the server's replies, as a pure codec.
//!
//! The server's half of a protocol is a [`Protocol`](super::Protocol); the
//! client's half is a [`ClientProtocol`]. The client
//! [`Session`](crate::client::Session) (and so `vigil client` and
//! `vigil load`) speaks whichever one its config names through a
//! [`ClientCodec`], a shared `&'static` reference: a session holds one
//! thin pointer (8 bytes), never a codec of its own, so tens of thousands
//! of sessions share one codec.
//!
//! | protocol | login                     | heartbeat            | the answer              |
//! |----------|---------------------------|----------------------|-------------------------|
//! | line     | `HELLO <id> [<token>]` → `WELCOME` with the interval | `PING <seq>` | `PONG <seq>` |
//! | resp     | `CLIENT SETNAME <id>` → `+OK` (no interval) | `PING <seq>` | the bulk string `<seq>` |
//! | binary   | HELLO frame (`<id>[ <token>]`) → WELCOME frame with the interval | PING frame, token `<seq>` | PONG frame, token `<seq>` |
//! | raw      | none: online at connect   | `ping\n`             | any bytes (the server's acknowledgement) |
//! | ws       | HTTP upgrade, then `HELLO <id> [<token>]` → `WELCOME` with the interval, one text frame per line | `PING <seq>` | `PONG <seq>` |
//!
//! Where the server does not say how often to beat (resp, raw), the
//! interval is the client's own (`--interval`); a session refuses to start
//! without one ([`ConfigError::NeedsInterval`]).
//!
//! # Contract
//! - [`ClientProtocol::decode`] follows the server codec's contract
//!   ([`Protocol::decode`](super::Protocol::decode)): `Ok(None)` for "need
//!   more bytes", `Ok(Some((frame, used)))` with `used >= 1`, `Err` when
//!   the stream can never become valid. `limit` bounds a frame (the
//!   session's `max_line`); an incomplete frame never holds more than
//!   [`max_incomplete(limit)`](ClientProtocol::max_incomplete) bytes: with
//!   more, decode returns a frame or an error. It never panics.
//! - Decoding is independent of how the stream was split into reads, except
//!   for the raw protocol, which has no frames (every read is one answer).
//! - The `encode_*` methods append to `out` and never fail; a message is
//!   first checked with [`check_message`](ClientProtocol::check_message).
//! - Encoding is deterministic, except where the protocol wants variety:
//!   ws masks each frame with a key of its own.
//!
//! [`ConfigError::NeedsInterval`]: crate::client::session::ConfigError::NeedsInterval

pub mod binary;
pub mod line;
pub mod raw;
pub mod resp;
pub mod ws;

use std::fmt;

pub use binary::BinaryClient;
pub use line::LineClient;
pub use raw::RawClient;
pub use resp::RespClient;
pub use ws::WsClient;

use super::{CloseReason, DecodeError};

/// One complete frame from the server, as a client reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerFrame<'a> {
    /// The answer to the login.
    Welcome {
        /// How often the server wants a heartbeat, in ms (above zero), if
        /// the protocol says.
        interval_ms: Option<u64>,
        /// How long the server waits for a sign of life, in ms, if it says.
        timeout_ms: Option<u64>,
    },
    /// The answer to a ping, with the token it echoes.
    Pong {
        /// The echoed token, if the frame had one.
        token: Option<&'a [u8]>,
    },
    /// An answer that cannot say which ping it answers (the raw protocol's
    /// acknowledgement): it answers the outstanding one, if any.
    Ack,
    /// Either the answer to a ping or application data; the protocol
    /// cannot tell them apart (a RESP bulk string). It is the pong when it
    /// is the outstanding ping's token, and a message otherwise.
    Echo(&'a [u8]),
    /// The server is about to close the connection.
    Bye {
        /// Why, if the reason is one this version knows.
        reason: Option<CloseReason>,
    },
    /// The server's own heartbeat: the session answers it with
    /// [`encode_pong`](ClientProtocol::encode_pong).
    Ping {
        /// The token to echo, if any.
        token: Option<&'a [u8]>,
    },
    /// Application data from the server.
    Message(&'a [u8]),
    /// Anything else (an error reply, a frame type this version does not
    /// know): a sign of life, nothing more.
    Other(&'a [u8]),
}

/// How a protocol logs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Login {
    /// The client sends a hello; the server's welcome says the interval.
    WelcomeWithInterval,
    /// The client sends a hello; the server's welcome does not say the
    /// interval.
    Welcome,
    /// No login: the session is online as soon as it is connected.
    None,
}

/// Why a message cannot be sent in a protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageError {
    /// The message holds a `\n` or ends in `\r`, and the protocol is lines.
    NotOneLine,
    /// The server would read the message as one of its commands.
    Command,
    /// The protocol has no way to carry application data.
    Unsupported,
}

/// The client's half of a wire protocol. See the [module docs](self) for
/// the contract.
pub trait ClientProtocol: fmt::Debug + Sync {
    /// The protocol's name, as `--protocol` spells it.
    fn name(&self) -> &'static str;

    /// How the protocol logs in. Default: [`Login::WelcomeWithInterval`].
    fn login(&self) -> Login {
        Login::WelcomeWithInterval
    }

    /// Decodes at most one frame from the front of `input`; no frame is
    /// longer than `limit` bytes of content.
    fn decode<'a>(
        &self,
        input: &'a [u8],
        limit: usize,
    ) -> Result<Option<(ServerFrame<'a>, usize)>, DecodeError>;

    /// The most bytes an incomplete frame may hold under `limit`.
    fn max_incomplete(&self, limit: usize) -> usize;

    /// Whether the login can carry a token (see [`crate::auth`]). Default:
    /// false; a session with a token refuses to start on such a protocol
    /// ([`ConfigError::NoToken`](crate::client::session::ConfigError::NoToken)).
    fn carries_token(&self) -> bool {
        false
    }

    /// Appends the login (hello) for `client_id`, with `token` when the
    /// protocol [`carries_token`](ClientProtocol::carries_token); nothing
    /// when [`login`](ClientProtocol::login) is [`Login::None`].
    fn encode_hello(&self, client_id: &str, token: Option<&str>, out: &mut Vec<u8>);

    /// Appends a heartbeat whose answer will carry `seq`, when the
    /// protocol can echo.
    fn encode_ping(&self, seq: u64, out: &mut Vec<u8>);

    /// Appends the answer to a [`ServerFrame::Ping`] with `token`.
    /// Default: nothing (a protocol whose server never pings).
    fn encode_pong(&self, token: Option<&[u8]>, out: &mut Vec<u8>) {
        let _ = (token, out);
    }

    /// Whether `message` can be sent as application data.
    fn check_message(&self, message: &[u8]) -> Result<(), MessageError>;

    /// Appends `message`, already checked, as application data.
    fn encode_message(&self, message: &[u8], out: &mut Vec<u8>);
}

/// A shared client codec: a reference to a `&'static` [`ClientProtocol`],
/// so that every session of a run shares one, for one thin pointer each
/// (8 bytes, no allocation). The built-in ones are constants; for your
/// own, use a `static`, or [`leak`](ClientCodec::leak) one for the whole
/// run. Codecs are told apart by name: two with the same name are equal.
///
/// ```
/// use vigil::protocol::client::{ClientCodec, ClientProtocol, RespClient};
///
/// static MINE: &dyn ClientProtocol = &RespClient;
/// let codec = ClientCodec::new(&MINE);
/// assert_eq!(codec.name(), "resp");
/// assert_eq!(ClientCodec::by_name("resp"), Some(ClientCodec::RESP));
/// assert_eq!(ClientCodec::by_name("smtp"), None);
/// ```
#[derive(Clone, Copy)]
pub struct ClientCodec(&'static &'static dyn ClientProtocol);

impl ClientCodec {
    /// The line protocol (the default).
    pub const LINE: ClientCodec = ClientCodec(&(&LineClient as &dyn ClientProtocol));
    /// The RESP protocol.
    pub const RESP: ClientCodec = ClientCodec(&(&RespClient as &dyn ClientProtocol));
    /// The binary protocol.
    pub const BINARY: ClientCodec = ClientCodec(&(&BinaryClient as &dyn ClientProtocol));
    /// The raw protocol.
    pub const RAW: ClientCodec = ClientCodec(&(&RawClient as &dyn ClientProtocol));
    /// The WebSocket protocol (the line protocol in WebSocket frames).
    pub const WS: ClientCodec = ClientCodec(&(&WsClient as &dyn ClientProtocol));
    /// Every built-in codec, in `--protocol`'s order.
    pub const BUILT_IN: [ClientCodec; 5] = [
        ClientCodec::LINE,
        ClientCodec::RESP,
        ClientCodec::BINARY,
        ClientCodec::RAW,
        ClientCodec::WS,
    ];

    /// A codec for `protocol`.
    pub fn new(protocol: &'static &'static dyn ClientProtocol) -> ClientCodec {
        ClientCodec(protocol)
    }

    /// A codec for `protocol`, which lives (leaked, two small allocations)
    /// until the process ends: for a protocol built at run time, once per
    /// run, not once per session.
    pub fn leak(protocol: impl ClientProtocol + 'static) -> ClientCodec {
        let inner: &'static dyn ClientProtocol = Box::leak(Box::new(protocol));
        ClientCodec(Box::leak(Box::new(inner)))
    }

    /// The built-in codec called `name` (`line`, `resp`, `binary`, `raw`, `ws`).
    pub fn by_name(name: &str) -> Option<ClientCodec> {
        ClientCodec::BUILT_IN.into_iter().find(|c| c.name() == name)
    }

    /// Whether this is (named as) a built-in codec, which a
    /// `vigil load --procs` worker can be told by name.
    pub fn is_built_in(&self) -> bool {
        ClientCodec::by_name(self.name()).is_some()
    }

    /// The protocol.
    pub fn get(&self) -> &'static dyn ClientProtocol {
        *self.0
    }

    /// The protocol's name.
    pub fn name(&self) -> &'static str {
        self.0.name()
    }
}

impl Default for ClientCodec {
    fn default() -> ClientCodec {
        ClientCodec::LINE
    }
}

impl PartialEq for ClientCodec {
    /// The same name.
    fn eq(&self, other: &ClientCodec) -> bool {
        self.name() == other.name()
    }
}

impl Eq for ClientCodec {}

impl fmt::Debug for ClientCodec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClientCodec({})", self.name())
    }
}

impl std::ops::Deref for ClientCodec {
    type Target = dyn ClientProtocol;

    fn deref(&self) -> &Self::Target {
        *self.0
    }
}

/// `n` in decimal ASCII, written into `buf` without allocating.
pub(crate) fn decimal(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[at..];
        }
    }
}

#[cfg(test)]
mod tests;
