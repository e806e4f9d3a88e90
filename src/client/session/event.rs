//! What a [`Session`](super::Session) is told about its transport and what it
//! reports back: how a connection ended, the events and actions it queues,
//! and why a message was not sent.

use std::fmt;
use std::io;

use crate::client::adaptive::{ChangeReason, ProbeOutcome};
use crate::protocol::CloseReason;
use crate::time::Tick;

use super::ServerIndex;

/// How the transport ended, as the driver saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportEnd {
    /// The server closed its side: a read returned 0 bytes.
    Eof,
    /// The connect or the connection failed (refused, reset, unreachable…).
    Error(io::ErrorKind),
}

/// Why a connection to a server ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisconnectReason {
    /// The server said `BYE`, with a reason if it is one this version knows.
    Bye(Option<CloseReason>),
    /// The server closed the stream without saying `BYE`.
    Eof,
    /// The connect or the connection failed.
    Failed(io::ErrorKind),
    /// The TCP connect did not complete within the connect timeout.
    ConnectTimeout,
    /// `HELLO` got no `WELCOME` within the reply timeout.
    NoWelcome,
    /// A `PING` got no `PONG` within the reply timeout: the server is dead
    /// (or hung while its kernel still acknowledges our bytes).
    PingTimeout,
    /// Nothing at all arrived for interval + reply timeout.
    Silent,
    /// The server sent a line longer than the limit.
    LineTooLong,
    /// The server sent a malformed protocol line; the text says what.
    BadLine(&'static str),
}

impl DisconnectReason {
    /// Whether the session itself declared the server dead (no answer in
    /// time), as opposed to the server or the network ending the connection.
    pub fn is_dead(&self) -> bool {
        matches!(
            self,
            DisconnectReason::ConnectTimeout
                | DisconnectReason::NoWelcome
                | DisconnectReason::PingTimeout
                | DisconnectReason::Silent
        )
    }
}

impl fmt::Display for DisconnectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DisconnectReason::Bye(Some(r)) => write!(f, "server said BYE {r}"),
            DisconnectReason::Bye(None) => f.write_str("server said BYE (unknown reason)"),
            DisconnectReason::Eof => f.write_str("server closed the connection"),
            DisconnectReason::Failed(kind) => write!(f, "connection failed: {kind}"),
            DisconnectReason::ConnectTimeout => {
                f.write_str("connect-timeout: connect took too long")
            }
            DisconnectReason::NoWelcome => {
                f.write_str("no-welcome: HELLO was not answered in time")
            }
            DisconnectReason::PingTimeout => {
                f.write_str("ping-timeout: PING was not answered in time")
            }
            DisconnectReason::Silent => {
                f.write_str("silent: nothing received for interval + timeout (or past the φ detector's threshold)")
            }
            DisconnectReason::LineTooLong => {
                f.write_str("line-too-long: server line over the limit")
            }
            DisconnectReason::BadLine(what) => write!(f, "bad-frame: {what}"),
        }
    }
}

/// Something that happened, for the application to log or show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The TCP connection to `server` is up; `HELLO` is on its way.
    Connected {
        /// The server connected to.
        server: ServerIndex,
    },
    /// The server said `WELCOME`.
    Welcome {
        /// The interval now in effect, in ms.
        interval_ms: u64,
        /// The interval the server asked for, in ms.
        server_interval_ms: u64,
        /// How long the server waits for a sign of life, if it said.
        server_timeout_ms: Option<u64>,
    },
    /// A `PING` was queued for the server. `due_ms` is when the schedule
    /// wanted it: at most the `now` of the call that queued it. The gap is
    /// how late the driver called [`Session::handle_timeout`], or how long
    /// the previous ping's `PONG` held this one back (at most one ping is
    /// outstanding). A load generator measures latency from `due_ms` to
    /// avoid coordinated omission: a stall that delays the sending of pings
    /// then still shows in the figures.
    ///
    /// [`Session::handle_timeout`]: super::Session::handle_timeout
    PingSent {
        /// The sequence number it carries.
        seq: u64,
        /// When it was due.
        due_ms: Tick,
    },
    /// A `PONG` answered our `PING`.
    Pong {
        /// The sequence number of the ping.
        seq: u64,
        /// The round trip, in ms.
        rtt_ms: u64,
    },
    /// A line from the server that is not part of the heartbeat protocol.
    Line(Vec<u8>),
    /// The connection ended; a reconnect is scheduled.
    Disconnected {
        /// The server the connection was to.
        server: ServerIndex,
        /// Why it ended.
        reason: DisconnectReason,
    },
    /// The adaptive heartbeat interval changed ([`IntervalPolicy::Adaptive`]).
    ///
    /// [`IntervalPolicy::Adaptive`]: super::IntervalPolicy::Adaptive
    IntervalChanged {
        /// The interval before, in ms.
        from_ms: u64,
        /// The interval now, in ms.
        to_ms: u64,
        /// Why.
        reason: ChangeReason,
    },
    /// A probe connection of the adaptive search ended.
    Probe {
        /// The interval it tested, in ms.
        interval_ms: u64,
        /// How it ended.
        outcome: ProbeOutcome,
    },
    /// The next connect is scheduled.
    ReconnectScheduled {
        /// The server it will be to.
        server: ServerIndex,
        /// The backoff attempt the delay was drawn for (0 after a healthy
        /// connection).
        attempt: u32,
        /// The delay, in ms.
        delay_ms: u64,
    },
}

/// Something the driver must do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Open a connection to this server, then report with
    /// [`Session::handle_connected`] or [`Session::handle_closed`].
    ///
    /// [`Session::handle_connected`]: super::Session::handle_connected
    /// [`Session::handle_closed`]: super::Session::handle_closed
    Connect(ServerIndex),
    /// Close the current socket and drop its unwritten output; the session
    /// has already forgotten it.
    Close,
}

/// Why a user message was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendError {
    /// No connection is up: messages are not queued across reconnects.
    NotConnected,
    /// The message holds a `\n` or ends in `\r`, so it is not one line.
    NotOneLine,
    /// The server would read the line as `PING` or `HELLO`, not a message.
    Command,
    /// The message is longer than the limit.
    TooLong {
        /// The limit, in bytes.
        limit: usize,
    },
    /// Too much output is already waiting for the socket.
    Full,
    /// The protocol cannot carry application data (RESP).
    Unsupported,
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::NotConnected => f.write_str("not connected"),
            SendError::NotOneLine => f.write_str("a message must be a single line"),
            SendError::Command => f.write_str("a message may not start with PING or HELLO"),
            SendError::TooLong { limit } => write!(f, "message longer than {limit} bytes"),
            SendError::Full => f.write_str("too much output waiting for the server"),
            SendError::Unsupported => f.write_str("this protocol cannot carry messages"),
        }
    }
}

impl std::error::Error for SendError {}
