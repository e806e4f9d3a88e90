//! Wire protocols: pure codecs between bytes and frames.
//!
//! A [`Protocol`] never touches a socket or a clock. The server hands it the
//! bytes a connection has buffered so far and gets back one [`Frame`] at a
//! time (or "need more bytes"); to answer, it asks the protocol to encode a
//! [`Reply`] into an output buffer it owns. Everything about framing, limits
//! and spelling lives behind this seam, so a new protocol is a new codec and
//! nothing else.
//!
//! # Contract
//! - [`Protocol::decode`] looks at `input` (everything received and not yet
//!   consumed). It returns `Ok(None)` when `input` holds no complete frame
//!   yet, `Ok(Some((frame, used)))` for one complete frame that used the first
//!   `used` bytes (`used >= 1`), or `Err` when the stream can never become
//!   valid; the connection is then closed with the error's [`CloseReason`].
//!   It must reject an incomplete frame that has already grown past the
//!   protocol's limit, so a peer cannot make the server buffer without bound.
//! - Decoding is independent of how the stream was split into reads: the same
//!   bytes give the same frames and errors whatever the read sizes were.
//! - [`Protocol::encode`] appends to `out` and never fails.
//! - **Resuming.** The server keeps a small [`Resume`] per connection while
//!   it holds an incomplete frame, and calls [`Protocol::decode_resume`]
//!   instead of [`Protocol::decode`]: after `Ok(None)`, the next call gets
//!   the same bytes with more appended and the [`Resume`] the codec left,
//!   so the codec can carry on where it stopped instead of walking the
//!   frame from its start again (a frame trickled one byte per read would
//!   otherwise cost O(n²)). Any other call starts from
//!   `Resume::default()`. The results must be those of `decode` on the
//!   same bytes; a codec that keeps no state leaves the default method,
//!   which is `decode`.
//! - **Commands.** A codec that speaks a richer protocol (RESP) may decode
//!   requests about the connection itself into [`Frame::Command`]; the
//!   server answers each with [`Reply::Command`], which carries the
//!   connection's state, and hands nothing to the application. A codec
//!   that never produces them may encode [`Reply::Command`] as nothing.
//!
//! The client's half of each protocol (what `vigil client` and `vigil load`
//! speak) is [`client::ClientProtocol`], in [`client`].

mod any;
pub mod binary;
pub mod client;
pub mod line;
pub mod raw;
pub mod resp;
pub mod ws;

use std::fmt;

use crate::server::Scheme;

pub use any::AnyProtocol;
pub use binary::BinaryProtocol;
pub use line::LineProtocol;
pub use raw::RawProtocol;
pub use resp::RespProtocol;

/// One complete frame received from a peer.
///
/// Every frame, whatever its kind, counts as a sign of life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A heartbeat, optionally with a token that the reply echoes.
    Ping {
        /// The token to echo back, if the peer sent one.
        token: Option<&'a [u8]>,
    },
    /// The answer to a [`Reply::Ping`] the server sent: a sign of life,
    /// answered with nothing.
    Pong {
        /// The token the peer echoed, if any.
        token: Option<&'a [u8]>,
    },
    /// The peer names itself; the id is already validated by the codec.
    Hello {
        /// The client id (1 to 128 printable ASCII characters, no spaces).
        client_id: &'a str,
        /// The credential that proves the peer may use this id, if it sent
        /// one (RESP: the password of `HELLO .. AUTH user password`).
        token: Option<&'a [u8]>,
    },
    /// Anything else: application data, which the server passes on.
    Message(&'a [u8]),
    /// The peer asks to end the session (RESP's `QUIT`). The server answers
    /// [`Reply::Quit`] and closes the connection (reason `closed`).
    Quit,
    /// A command the protocol knows is a command but does not support. The
    /// server answers [`Reply::Unknown`] and carries on.
    Unknown {
        /// The command's name as the peer sent it.
        command: &'a [u8],
    },
    /// A request about the connection rather than a heartbeat (RESP's
    /// handshake: `HELLO`, `CLIENT GETNAME`, `SELECT`, ...). The server
    /// applies what it changes, answers [`Reply::Command`] and does not
    /// call the application's handler.
    Command(Command<'a>),
}

/// A request about the connection, from [`Frame::Command`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command<'a> {
    /// Negotiates the protocol version and, with a client id, is also a
    /// HELLO (RESP: `HELLO [2|3] [AUTH user password] [SETNAME id]`). The
    /// server records `version` for the connection and answers with its
    /// description; a `client_id` then takes the id as [`Frame::Hello`]
    /// does.
    Handshake {
        /// The protocol version asked for; `None` keeps the current one.
        version: Option<u8>,
        /// The client id to take, if any.
        client_id: Option<&'a str>,
        /// The credential sent with it, if any.
        token: Option<&'a [u8]>,
    },
    /// Back to the connection's defaults (RESP's `RESET`: version 2).
    Reset,
    /// Asks for the connection's client id (RESP's `CLIENT GETNAME`).
    GetName,
    /// Asks for the connection's number (RESP's `CLIENT ID`).
    Id,
    /// Asks for the server's description (RESP's `INFO`).
    Info,
    /// Asks for `data` back (RESP's `ECHO`).
    Echo(&'a [u8]),
    /// Accepted and changes nothing (RESP's `SELECT 0`, `CLIENT SETINFO`).
    Ok,
    /// Refused with this error, spelled as the protocol's reference server
    /// spells it so that clients recognise it (RESP: `NOPROTO ...`).
    Error(&'static str),
}

/// Something the server sends to a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply<'a> {
    /// The answer to a [`Frame::Ping`].
    Pong {
        /// The token of the ping being answered.
        token: Option<&'a [u8]>,
    },
    /// The answer to a [`Frame::Hello`]: how often to beat.
    Welcome {
        /// The client id that is now online.
        client_id: &'a str,
        /// How often the client should send a heartbeat, in milliseconds.
        interval_ms: u64,
        /// How long the server waits for a sign of life, in milliseconds.
        timeout_ms: u64,
    },
    /// Application data.
    Message(&'a [u8]),
    /// The server's own heartbeat, to a connection it has not heard from
    /// for an interval (only for protocols that
    /// [`can_ping`](Protocol::can_ping)); the peer answers with a pong.
    Ping,
    /// The last thing the server says before it closes the connection.
    Bye(CloseReason),
    /// The answer to [`Frame::Quit`], just before the server closes.
    Quit,
    /// The answer to [`Frame::Unknown`].
    Unknown {
        /// The command's name, as the peer sent it.
        command: &'a [u8],
    },
    /// The answer to a [`Frame::Command`], with what the codec needs to
    /// know about the connection to spell it.
    Command {
        /// The command being answered.
        command: Command<'a>,
        /// The connection's number.
        number: u64,
        /// The connection's client id, if it has one.
        client_id: Option<&'a str>,
        /// The protocol version the connection negotiated (after the
        /// command took effect); 0 if it never did.
        version: u8,
    },
}

/// Why a frame could not be decoded. The connection cannot continue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// A frame is longer than the protocol's limit.
    TooLong {
        /// The limit that was exceeded, in bytes.
        limit: usize,
    },
    /// A frame is complete but malformed; the text says what was wrong.
    BadFrame(&'static str),
}

impl DecodeError {
    /// The reason the server gives when it closes the connection for this error.
    pub fn close_reason(&self) -> CloseReason {
        match self {
            DecodeError::TooLong { .. } => CloseReason::LineTooLong,
            DecodeError::BadFrame(_) => CloseReason::BadFrame,
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::TooLong { limit } => write!(f, "frame longer than {limit} bytes"),
            DecodeError::BadFrame(what) => write!(f, "bad frame: {what}"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// Why a connection went offline.
///
/// The spelling from [`CloseReason::as_str`] is what `BYE <reason>` carries
/// on the wire and what the `reason` field of an offline event says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CloseReason {
    /// No sign of life within the timeout.
    Timeout,
    /// The peer closed its side (end of stream).
    Closed,
    /// The connection failed: reset by the peer or another socket error,
    /// including our kernel giving up on a silent peer (TCP keepalive or
    /// `TCP_USER_TIMEOUT`, `ETIMEDOUT`; the server's log says which).
    Reset,
    /// A frame exceeded the size limit.
    LineTooLong,
    /// A frame was malformed (for instance an invalid client id).
    BadFrame,
    /// Another connection said HELLO with the same client id.
    Replaced,
    /// The server refused the connection: `--max-conns` was reached or no
    /// file descriptor was left.
    Overloaded,
    /// More heartbeats per interval than `--max-pings` allows.
    TooManyPings,
    /// The peer does not read its replies and its output exceeded the cap.
    OutputOverflow,
    /// The server is shutting down.
    Shutdown,
    /// An operator closed it through the admin endpoint
    /// (`POST /clients/{id}/kick`).
    Kicked,
    /// A HELLO was refused: no token, or a malformed, expired or wrong one
    /// (or the application's hook said no).
    Unauthorized,
    /// No (authenticated) HELLO within `--hello-timeout`.
    HelloTimeout,
    /// The peer's address has `--max-conns-per-ip` connections already.
    TooManyConnections,
    /// More frames per interval than `--max-frames` allows.
    TooManyFrames,
    /// An application hook panicked while handling this connection.
    InternalError,
}

impl CloseReason {
    /// Every reason, in a fixed order (for statistics).
    pub const ALL: [CloseReason; 16] = [
        CloseReason::Timeout,
        CloseReason::Closed,
        CloseReason::Reset,
        CloseReason::LineTooLong,
        CloseReason::BadFrame,
        CloseReason::Replaced,
        CloseReason::Overloaded,
        CloseReason::TooManyPings,
        CloseReason::OutputOverflow,
        CloseReason::Shutdown,
        CloseReason::Kicked,
        CloseReason::Unauthorized,
        CloseReason::HelloTimeout,
        CloseReason::TooManyConnections,
        CloseReason::TooManyFrames,
        CloseReason::InternalError,
    ];

    /// The reason as it is spelled on the wire and in events.
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::Timeout => "timeout",
            CloseReason::Closed => "closed",
            CloseReason::Reset => "reset",
            CloseReason::LineTooLong => "line-too-long",
            CloseReason::BadFrame => "bad-frame",
            CloseReason::Replaced => "replaced",
            CloseReason::Overloaded => "overloaded",
            CloseReason::TooManyPings => "too-many-pings",
            CloseReason::OutputOverflow => "output-overflow",
            CloseReason::Shutdown => "shutdown",
            CloseReason::Kicked => "kicked",
            CloseReason::Unauthorized => "unauthorized",
            CloseReason::HelloTimeout => "hello-timeout",
            CloseReason::TooManyConnections => "too-many-connections",
            CloseReason::TooManyFrames => "too-many-frames",
            CloseReason::InternalError => "internal-error",
        }
    }

    /// The position of this reason in [`CloseReason::ALL`].
    pub fn index(self) -> usize {
        CloseReason::ALL
            .iter()
            .position(|r| *r == self)
            .unwrap_or(0)
    }

    /// Parses the wire spelling back (for clients reading `BYE <reason>`).
    pub fn parse(s: &str) -> Option<CloseReason> {
        CloseReason::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// Whether the server tells the peer this reason with a `BYE` before
    /// closing. The peer is gone or unreachable for the others.
    pub fn says_bye(self) -> bool {
        !matches!(
            self,
            CloseReason::Closed | CloseReason::Reset | CloseReason::OutputOverflow
        )
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A wire protocol: a pure codec from bytes to [`Frame`]s and from
/// [`Reply`]s to bytes. See the [module docs](self) for the contract.
pub trait Protocol {
    /// Decodes at most one frame from the front of `input`.
    fn decode<'a>(&self, input: &'a [u8]) -> Result<Option<(Frame<'a>, usize)>, DecodeError>;

    /// Appends the wire form of `reply` to `out`.
    fn encode(&self, reply: &Reply<'_>, out: &mut Vec<u8>);

    /// Decodes at most one frame from the front of `input`, carrying on
    /// from where an earlier call on a shorter prefix of the same bytes
    /// left off, as `resume` says (see the [module docs](self)). The
    /// default forgets nothing because it keeps nothing: it is `decode`.
    fn decode_resume<'a>(
        &self,
        input: &'a [u8],
        resume: &mut Resume,
    ) -> Result<Option<(Frame<'a>, usize)>, DecodeError> {
        let _ = resume;
        self.decode(input)
    }

    /// The most bytes an incomplete frame may hold before it is rejected.
    /// The server never buffers more than this per connection.
    fn max_frame(&self) -> usize;

    /// The protocol's name, as `vigil serve --protocol` spells it.
    fn name(&self) -> &'static str;

    /// How many [`Frame::Ping`]s per interval get a [`Reply::Pong`];
    /// `None` (the default) answers every one. A protocol whose peers
    /// expect only an occasional acknowledgement (the raw protocol) limits
    /// it here; the pings still count as life.
    fn max_pongs_per_interval(&self) -> Option<u32> {
        None
    }

    /// Whether a [`Frame::Hello`] repeating the id the connection already
    /// has is answered with another [`Reply::Welcome`]. By default it is
    /// not (nothing changed, and a peer must not turn a few bytes into many
    /// on demand); a request-reply protocol whose clients wait for an
    /// answer to every command (RESP) says true.
    fn welcome_every_hello(&self) -> bool {
        false
    }

    /// Whether its peers answer a [`Reply::Ping`] (the line protocol's
    /// `PING`, answered `PONG`), so that the server may ping a silent
    /// connection (`vigil serve --line-ping`). Default: false, and
    /// [`Reply::Ping`] encodes as nothing.
    fn can_ping(&self) -> bool {
        false
    }

    /// The codec for a listener of `scheme` (with this one's limits), if
    /// this protocol can serve it: a server built with it accepts extra
    /// listeners of those schemes ([`Config::listen_more`]). The default
    /// serves none; each built-in protocol serves its own, the line
    /// protocol also WebSocket (which carries it), and [`AnyProtocol`]
    /// every one.
    ///
    /// [`Config::listen_more`]: crate::server::Config::listen_more
    fn for_scheme(&self, scheme: Scheme) -> Option<Self>
    where
        Self: Sized,
    {
        let _ = scheme;
        None
    }
}

/// Where a codec stopped in an incomplete frame, kept by the server
/// between reads (see [`Protocol::decode_resume`]). Its meaning is the
/// codec's; `Resume::default()` means "from the start".
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Resume {
    /// How many bytes at the front of the input the codec has checked.
    pub checked: u32,
    /// What the codec was in the middle of, in its own words.
    pub state: [u32; 3],
}

/// Whether `id` is a valid client id: 1 to 128 printable ASCII characters
/// (`!` to `~`), so no spaces and no control characters.
pub fn valid_client_id(id: &[u8]) -> bool {
    (1..=MAX_CLIENT_ID).contains(&id.len()) && id.iter().all(|b| (b'!'..=b'~').contains(b))
}

/// The longest client id, in bytes.
pub const MAX_CLIENT_ID: usize = 128;

/// Decodes everything in `input`, as the server would, into a readable
/// trace for tests: one entry per frame (as `show` spells it), then
/// `more(N)` or `err(...)`. Checks the [`Protocol`] contract on the way: a
/// frame uses 1 to all of the bytes, and an incomplete frame never holds
/// `max_frame()` bytes or more.
#[cfg(test)]
pub(crate) fn decode_trace(
    p: &impl Protocol,
    mut input: &[u8],
    show: impl Fn(&Frame<'_>) -> String,
) -> Vec<String> {
    let mut out = Vec::new();
    loop {
        match p.decode(input) {
            Ok(Some((frame, used))) => {
                assert!(used >= 1 && used <= input.len());
                out.push(show(&frame));
                input = &input[used..];
            }
            Ok(None) => {
                assert!(input.len() < p.max_frame() || p.max_frame() == 0);
                out.push(format!("more({})", input.len()));
                return out;
            }
            Err(e) => {
                out.push(format!("err({e})"));
                return out;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_id_boundaries() {
        assert!(!valid_client_id(b""));
        assert!(valid_client_id(b"a"));
        assert!(valid_client_id(&[b'x'; 128]));
        assert!(!valid_client_id(&[b'x'; 129]));
        assert!(!valid_client_id(b"a b"));
        assert!(!valid_client_id(b"a\tb"));
        assert!(!valid_client_id("é".as_bytes()));
        assert!(valid_client_id(b"!~\"\\"));
    }

    #[test]
    fn reasons_round_trip_and_index() {
        for (i, r) in CloseReason::ALL.into_iter().enumerate() {
            assert_eq!(CloseReason::parse(r.as_str()), Some(r));
            assert_eq!(r.index(), i);
        }
        assert_eq!(CloseReason::parse("nope"), None);
    }
}
