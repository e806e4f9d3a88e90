//! What a [`Session`](super::Session) is told at creation: its config, the
//! documented defaults, and why a config is refused.

use std::fmt;

use crate::client::adaptive::AdaptiveConfig;
use crate::client::wire;
use crate::protocol::client::ClientCodec;

/// The default time the server gets to answer a `PING` or a `HELLO`, in ms.
pub const DEFAULT_REPLY_TIMEOUT_MS: u64 = 10_000;
/// The default time a TCP connect may take, in ms.
pub const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 10_000;
/// The default first reconnect ceiling, in ms.
pub const DEFAULT_BACKOFF_BASE_MS: u64 = 100;
/// The default largest reconnect delay, in ms.
pub const DEFAULT_BACKOFF_CAP_MS: u64 = 30_000;
/// The default cap on output waiting for the socket, in bytes. User messages
/// beyond it are refused with [`SendError::Full`]; heartbeats are not.
///
/// [`SendError::Full`]: super::SendError::Full
pub const DEFAULT_MAX_PENDING: usize = 64 * 1024;
/// The default longest message the user may send, in bytes: the server's
/// default line limit.
pub const DEFAULT_MAX_MESSAGE: usize = crate::protocol::line::DEFAULT_MAX_LINE;
/// How many intervals a welcomed connection must last to count as healthy
/// when no ping has been answered yet. See the [session docs](super),
/// "Backoff reset".
pub const HEALTHY_INTERVALS: u64 = 2;

/// The beats at the adaptive minimum after entering the background, before
/// the adaptive interval is used (seed 004: "a few minimum beats").
pub const BACKGROUND_MIN_BEATS: u32 = 3;

/// Whether the app is in use (foreground) or not (background); see
/// [`Session::set_mode`](super::Session::set_mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// In use: beat at a fixed interval
    /// ([`SessionConfig::foreground_interval_ms`]).
    Foreground,
    /// Not in use: a few beats at the adaptive minimum, then the adaptive
    /// interval. The default.
    Background,
}

impl Mode {
    /// A short name for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Foreground => "foreground",
            Mode::Background => "background",
        }
    }
}

/// Which server in the driver's list: an index into it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServerIndex(pub usize);

/// How the heartbeat interval is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntervalPolicy {
    /// Use the `interval=` the server sent in `WELCOME`.
    Server,
    /// Use this interval in ms, whatever the server says (`--interval`).
    Fixed(u64),
    /// Search for the longest interval the path keeps alive, between a
    /// minimum and a maximum (`--adaptive MIN..MAX`); see
    /// [`adaptive`](crate::client::adaptive).
    Adaptive(AdaptiveConfig),
}

impl IntervalPolicy {
    /// The interval a policy starts with, in ms (at least 1), given the
    /// server's: for [`IntervalPolicy::Adaptive`] its minimum, which the
    /// session's search then moves.
    pub fn interval_ms(&self, server_ms: u64) -> u64 {
        match *self {
            IntervalPolicy::Server => server_ms,
            IntervalPolicy::Fixed(ms) => ms,
            IntervalPolicy::Adaptive(c) => c.min_ms,
        }
        .max(1)
    }
}

/// What a [`Session`](super::Session) is told at creation.
/// [`SessionConfig::new`] fills in the documented defaults; change fields
/// as needed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    /// The id sent in `HELLO`: 1 to 128 printable ASCII characters, no spaces.
    pub client_id: String,
    /// How many servers the driver can connect to (at least 1); the session
    /// names them by [`ServerIndex`] and cycles through them.
    pub servers: usize,
    /// How the heartbeat interval is chosen. Default: [`IntervalPolicy::Server`].
    pub interval: IntervalPolicy,
    /// How long a `PING` or `HELLO` may go unanswered, in ms (at least 1).
    /// Default: [`DEFAULT_REPLY_TIMEOUT_MS`].
    pub reply_timeout_ms: u64,
    /// How long a TCP connect may take, in ms (at least 1).
    /// Default: [`DEFAULT_CONNECT_TIMEOUT_MS`].
    pub connect_timeout_ms: u64,
    /// The first reconnect ceiling, in ms. Default: [`DEFAULT_BACKOFF_BASE_MS`].
    pub backoff_base_ms: u64,
    /// The largest reconnect delay, in ms. Default: [`DEFAULT_BACKOFF_CAP_MS`].
    pub backoff_cap_ms: u64,
    /// The longest server line accepted, in bytes.
    /// Default: [`wire::DEFAULT_MAX_LINE`].
    pub max_line: usize,
    /// The longest message the user may send, in bytes.
    /// Default: [`DEFAULT_MAX_MESSAGE`].
    pub max_message: usize,
    /// The most output that may wait for the socket before user messages
    /// are refused, in bytes. Default: [`DEFAULT_MAX_PENDING`].
    pub max_pending: usize,
    /// The seed of the jitter generator. Default: 0; a driver running many
    /// sessions should give each its own.
    pub seed: u64,
    /// With an adaptive policy, the fixed interval in the foreground, in
    /// ms; `None` (the default): the server's `WELCOME` interval.
    pub foreground_interval_ms: Option<std::num::NonZeroU64>,
    /// The wire protocol, shared by reference. Default:
    /// [`ClientCodec::LINE`]. With a protocol whose server does not say the
    /// interval (resp, raw), the interval must be [`IntervalPolicy::Fixed`]
    /// or [`IntervalPolicy::Adaptive`].
    pub protocol: ClientCodec,
    /// The token sent with the id, `HELLO <id> <token>`, for a server that
    /// checks them (see [`crate::auth`]): 1 to 256 printable ASCII
    /// characters, no spaces. Default: none. Boxed (8 bytes, like the
    /// server's `Spill`) so that a session without one stays as small as
    /// before.
    #[allow(clippy::box_collection)]
    pub token: Option<Box<String>>,
}

impl SessionConfig {
    /// A config for `client_id` with `servers` servers and every default.
    pub fn new(client_id: impl Into<String>, servers: usize) -> SessionConfig {
        SessionConfig {
            client_id: client_id.into(),
            servers,
            interval: IntervalPolicy::Server,
            reply_timeout_ms: DEFAULT_REPLY_TIMEOUT_MS,
            connect_timeout_ms: DEFAULT_CONNECT_TIMEOUT_MS,
            backoff_base_ms: DEFAULT_BACKOFF_BASE_MS,
            backoff_cap_ms: DEFAULT_BACKOFF_CAP_MS,
            max_line: wire::DEFAULT_MAX_LINE,
            max_message: DEFAULT_MAX_MESSAGE,
            max_pending: DEFAULT_MAX_PENDING,
            seed: 0,
            foreground_interval_ms: None,
            protocol: ClientCodec::LINE,
            token: None,
        }
    }
}

/// Why a [`SessionConfig`] was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigError {
    /// The client id is not 1 to 128 printable ASCII characters without spaces.
    BadClientId,
    /// The server list is empty.
    NoServers,
    /// The adaptive range is empty or its tuning is out of range.
    BadAdaptive,
    /// The protocol's server does not say the interval, and the policy is
    /// to use the server's ([`IntervalPolicy::Server`]).
    NeedsInterval,
    /// The token is not 1 to 256 printable ASCII characters without spaces.
    BadToken,
    /// A token is given, and the protocol's login cannot carry one.
    NoToken,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::BadClientId => {
                f.write_str("client id must be 1 to 128 printable ASCII characters without spaces")
            }
            ConfigError::NoServers => f.write_str("no server to connect to"),
            ConfigError::NoToken => {
                f.write_str("this protocol's login cannot carry a token: use line or binary")
            }
            ConfigError::BadToken => {
                f.write_str("token must be 1 to 256 printable ASCII characters without spaces")
            }
            ConfigError::BadAdaptive => f.write_str(
                "adaptive interval: the minimum must be above 0 and at most the maximum",
            ),
            ConfigError::NeedsInterval => f.write_str(
                "this protocol's server does not say how often to beat: give an interval",
            ),
        }
    }
}

impl std::error::Error for ConfigError {}
