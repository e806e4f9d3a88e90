//! The application's side of the server: a [`Handler`] hears about
//! connections and their messages, and acts through a [`Context`].
//!
//! The event loop pushes to the handler; [`Handler::on_message`] is the one
//! required hook, the others default to doing nothing. Heartbeats, HELLO,
//! deadlines and presence are handled by the server before the handler sees
//! anything: a handler only adds what is particular to its application.
//!
//! What a hook asks for through its [`Context`] happens right after the hook
//! returns, within the same turn of the loop: replies to the connection at
//! hand go out with the other replies of its read, in one write; messages to
//! other connections, closes and a stop are applied at the end of the turn.

use std::net::SocketAddr;

use super::presence::PresenceTable;
use super::session::ConnRef;
use crate::protocol::{CloseReason, Protocol, Reply};

/// A handle on one connection, valid for its lifetime: once the connection
/// is gone, sending to it does nothing, even if its slot is reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnId(pub(crate) ConnRef);

/// What a hook knows about the connection it is called for.
#[derive(Debug, Clone, Copy)]
pub struct ConnInfo<'a> {
    /// The handle to send to this connection or close it.
    pub id: ConnId,
    /// The connection's number, as in events and the log (`conn 7`).
    pub number: u64,
    /// The peer's address.
    pub peer: SocketAddr,
    /// The client id, once the connection has said HELLO.
    pub client: Option<&'a str>,
}

/// The application logic of a server.
///
/// The event loop pushes to the handler; [`Handler::on_message`] is the one
/// required hook, the others default to doing nothing. Heartbeats, HELLO,
/// deadlines and presence are handled by the server before the handler sees
/// anything. What a hook asks for through its [`Context`] happens right
/// after it returns, within the same turn of the loop: replies to the
/// connection at hand go out with the other replies of its read, in one
/// write; messages to other connections, closes and a stop are applied at
/// the end of the turn.
///
/// ```
/// use vigil::server::{ConnInfo, Context, Handler};
///
/// /// Echoes every message back, upper-cased.
/// struct Shout;
///
/// impl Handler for Shout {
///     fn on_message(&mut self, ctx: &mut Context<'_>, _conn: &ConnInfo<'_>, message: &[u8]) {
///         ctx.reply(&message.to_ascii_uppercase());
///     }
/// }
/// ```
pub trait Handler {
    /// A frame that is neither a heartbeat nor a HELLO arrived.
    fn on_message(&mut self, ctx: &mut Context<'_>, conn: &ConnInfo<'_>, message: &[u8]);

    /// A connection was accepted.
    fn on_online(&mut self, ctx: &mut Context<'_>, conn: &ConnInfo<'_>) {
        let _ = (ctx, conn);
    }

    /// A connection asks to take client id `client_id`, with `token` if it
    /// sent one. Runs before anything changes: before the `WELCOME`, and
    /// before the id's current holder, if any, is replaced. Returning
    /// [`Verdict::Refuse`] closes the asking connection with that reason and
    /// leaves the holder alone. The default accepts every HELLO;
    /// [`Authenticated`](super::Authenticated) checks HMAC tokens.
    ///
    /// Not called for a HELLO repeating the id the connection already has
    /// (nothing changes then). Replies and messages queued through `ctx`
    /// are sent even when the HELLO is refused (before the `BYE`).
    fn on_hello_request(
        &mut self,
        ctx: &mut Context<'_>,
        conn: &ConnInfo<'_>,
        client_id: &str,
        token: Option<&[u8]>,
    ) -> Verdict {
        let _ = (ctx, conn, client_id, token);
        Verdict::Accept
    }

    /// A connection named its client id (`conn.client` is set). If the id
    /// was online on another connection, that one has been replaced.
    fn on_hello(&mut self, ctx: &mut Context<'_>, conn: &ConnInfo<'_>) {
        let _ = (ctx, conn);
    }

    /// A connection is gone, for `reason`. Replies are no longer possible;
    /// messages to other connections are.
    fn on_offline(&mut self, ctx: &mut Context<'_>, conn: &ConnInfo<'_>, reason: CloseReason) {
        let _ = (ctx, conn, reason);
    }
}

/// The answer of [`Handler::on_hello_request`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The connection takes the id (and takes it over, if it is online).
    Accept,
    /// The connection is closed with this reason (usually
    /// [`CloseReason::Unauthorized`]); the id's holder is not disturbed.
    Refuse(CloseReason),
}

/// The handler of plain `vigil serve`: presence only, messages are ignored.
#[derive(Debug, Clone, Copy, Default)]
pub struct PresenceOnly;

impl Handler for PresenceOnly {
    fn on_message(&mut self, _: &mut Context<'_>, _: &ConnInfo<'_>, _: &[u8]) {}
}

/// A handler from a closure that takes each message.
///
/// ```
/// use vigil::server::{on_message, Server};
///
/// let echo = on_message(|ctx, _conn, message| ctx.reply(message));
/// let server = Server::builder().listen("127.0.0.1:0").handler(echo).build();
/// assert!(server.is_ok());
/// ```
pub fn on_message<F>(f: F) -> FnHandler<F>
where
    F: FnMut(&mut Context<'_>, &ConnInfo<'_>, &[u8]),
{
    FnHandler(f)
}

/// See [`on_message`].
#[derive(Debug, Clone, Copy)]
pub struct FnHandler<F>(F);

impl<F> Handler for FnHandler<F>
where
    F: FnMut(&mut Context<'_>, &ConnInfo<'_>, &[u8]),
{
    fn on_message(&mut self, ctx: &mut Context<'_>, conn: &ConnInfo<'_>, message: &[u8]) {
        (self.0)(ctx, conn, message)
    }
}

/// Where a queued message goes.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Target {
    Conn(ConnRef),
    /// Every connection with a client id, but one.
    Clients {
        except: Option<ConnRef>,
    },
}

/// What hooks asked for that touches other connections; applied at the end
/// of the turn. Messages are kept as given, in one buffer, and encoded
/// once per wire when applied.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    pub bytes: Vec<u8>,
    pub sends: Vec<(Target, usize, usize)>,
    pub closes: Vec<(ConnRef, CloseReason)>,
    pub stop: bool,
}

impl Outbox {
    pub fn is_empty(&self) -> bool {
        self.sends.is_empty() && self.closes.is_empty() && !self.stop
    }
}

/// What a hook can do: reply, send to other connections or client ids,
/// close connections, ask who is online, stop the server.
pub struct Context<'a> {
    pub(crate) current: Option<ConnRef>,
    pub(crate) can_reply: bool,
    pub(crate) out: &'a mut Vec<u8>,
    pub(crate) outbox: &'a mut Outbox,
    pub(crate) presence: &'a dyn PresenceTable,
    pub(crate) protocol: &'a dyn Protocol,
    /// Wall-clock time, in Unix seconds, as of the current turn.
    pub(crate) unix_time: u64,
}

impl Context<'_> {
    /// Sends `message` to the connection the hook is called for (nothing in
    /// [`Handler::on_offline`]).
    pub fn reply(&mut self, message: &[u8]) {
        if self.can_reply {
            self.protocol.encode(&Reply::Message(message), self.out);
        }
    }

    /// Sends `message` to connection `to`, if it is still open.
    pub fn send(&mut self, to: ConnId, message: &[u8]) {
        self.queue(Target::Conn(to.0), message);
    }

    /// Sends `message` to the connection of client `client`; false if that
    /// client is not online.
    pub fn send_to_client(&mut self, client: &str, message: &[u8]) -> bool {
        match self.presence.get(client) {
            Some(conn) => {
                self.queue(Target::Conn(conn), message);
                true
            }
            None => false,
        }
    }

    /// Sends `message` to every online client (every connection that said
    /// HELLO), except `except`.
    pub fn broadcast(&mut self, message: &[u8], except: Option<ConnId>) {
        self.queue(
            Target::Clients {
                except: except.map(|c| c.0),
            },
            message,
        );
    }

    /// Closes connection `conn` with `BYE <reason>` (where the reason says
    /// one).
    pub fn close(&mut self, conn: ConnId, reason: CloseReason) {
        self.outbox.closes.push((conn.0, reason));
    }

    /// The connection of client `client`, if it is online.
    pub fn client(&self, client: &str) -> Option<ConnId> {
        self.presence.get(client).map(ConnId)
    }

    /// The online clients and their connections, in no particular order.
    pub fn online(&self) -> impl Iterator<Item = (&str, ConnId)> + '_ {
        self.presence.iter().map(|(id, c)| (id, ConnId(c)))
    }

    /// How many clients are online.
    pub fn online_count(&self) -> usize {
        self.presence.len()
    }

    /// The connection the hook is called for.
    pub fn current(&self) -> Option<ConnId> {
        self.current.map(ConnId)
    }

    /// Wall-clock time in whole Unix seconds, read by the event loop once per
    /// turn (for token expiry; deadlines use the monotonic clock).
    pub fn unix_time(&self) -> u64 {
        self.unix_time
    }

    /// Asks the server to shut down gracefully at the end of this turn.
    pub fn stop_server(&mut self) {
        self.outbox.stop = true;
    }

    fn queue(&mut self, target: Target, message: &[u8]) {
        // Kept as it is: each target's wire encodes it (see `apply_outbox`).
        let start = self.outbox.bytes.len();
        self.outbox.bytes.extend_from_slice(message);
        let end = self.outbox.bytes.len();
        self.outbox.sends.push((target, start, end));
    }
}
