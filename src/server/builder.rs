//! [`Builder`]: a server from documented defaults, one setting at a time.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use super::{Config, Handler, PresenceOnly, Server};
use crate::error::{Error, ErrorKind};
use crate::events::EventSink;
use crate::protocol::{LineProtocol, Protocol};

/// Builds a [`Server`]. Every setting starts at the default of
/// `vigil serve` (see [`Config`]); the protocol starts as the line protocol
/// and the handler as [`PresenceOnly`].
///
/// ```
/// use std::time::Duration;
/// use vigil::server::{on_message, Server};
///
/// let server = Server::builder()
///     .listen("127.0.0.1:0")
///     .interval(Duration::from_secs(20))
///     .timeout(Duration::from_secs(30))
///     .handler(on_message(|ctx, _conn, message| ctx.reply(message)))
///     .build()?;
/// let stop = server.handle();
/// let running = std::thread::spawn(move || server.run());
/// stop.shutdown();
/// running.join().unwrap()?;
/// # Ok::<(), vigil::Error>(())
/// ```
pub struct Builder<P, H> {
    config: Config,
    listen: Option<Result<SocketAddr, Error>>,
    protocol: P,
    handler: H,
    events: Option<EventSink>,
}

impl Builder<LineProtocol, PresenceOnly> {
    pub(crate) fn new() -> Self {
        Builder {
            config: Config::default(),
            listen: None,
            protocol: LineProtocol::default(),
            handler: PresenceOnly,
            events: None,
        }
    }
}

impl<P: Protocol, H: Handler> Builder<P, H> {
    /// Starts from `config` instead of the defaults (settings made before
    /// are replaced).
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self.listen = None;
        self
    }

    /// Where to listen: anything that resolves to a socket address, such as
    /// `"127.0.0.1:7700"`, `"[::1]:0"` or a `SocketAddr`. Resolved (and any
    /// error reported) by [`Builder::build`].
    pub fn listen(mut self, addr: impl ToSocketAddrs) -> Self {
        let resolved = addr
            .to_socket_addrs()
            .map_err(|e| {
                Error::with_source(ErrorKind::Bind, "cannot resolve the listen address", e)
            })
            .and_then(|mut addrs| {
                addrs.next().ok_or_else(|| {
                    Error::new(ErrorKind::Bind, "the listen address names no address")
                })
            });
        self.listen = Some(resolved);
        self
    }

    /// How often clients should beat. See [`Config::interval`].
    pub fn interval(mut self, interval: Duration) -> Self {
        self.config.interval = interval;
        self
    }

    /// How long a connection may stay silent. See [`Config::timeout`].
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.config.timeout = timeout;
        self
    }

    /// The timing wheel's resolution. See [`Config::tick`].
    pub fn tick(mut self, tick: Duration) -> Self {
        self.config.tick = tick;
        self
    }

    /// The most connections at once. See [`Config::max_conns`].
    pub fn max_conns(mut self, max: usize) -> Self {
        self.config.max_conns = Some(max);
        self
    }

    /// The most unsent output per connection. See [`Config::max_output`].
    pub fn max_output(mut self, bytes: usize) -> Self {
        self.config.max_output = bytes;
        self
    }

    /// The most heartbeats per interval. See [`Config::max_pings`].
    pub fn max_pings(mut self, max: u32) -> Self {
        self.config.max_pings = Some(max);
        self
    }

    /// How often to log a stats line, or never. See [`Config::stats_interval`].
    pub fn stats_interval(mut self, every: Option<Duration>) -> Self {
        self.config.stats_interval = every;
        self
    }

    /// Whether the server shuts down on SIGINT and SIGTERM by itself.
    pub fn handle_signals(mut self, yes: bool) -> Self {
        self.config.handle_signals = yes;
        self
    }

    /// Kernel TCP keepalive on every connection. See [`Config::tcp_keepalive`].
    pub fn tcp_keepalive(mut self, keepalive: crate::sys::Keepalive) -> Self {
        self.config.tcp_keepalive = Some(keepalive);
        self
    }

    /// `TCP_USER_TIMEOUT` on every connection. See [`Config::tcp_user_timeout`].
    pub fn tcp_user_timeout(mut self, timeout: Duration) -> Self {
        self.config.tcp_user_timeout = Some(timeout);
        self
    }

    /// Where presence events go besides the log.
    pub fn events(mut self, sink: EventSink) -> Self {
        self.events = Some(sink);
        self
    }

    /// The wire protocol.
    pub fn protocol<Q: Protocol>(self, protocol: Q) -> Builder<Q, H> {
        Builder {
            config: self.config,
            listen: self.listen,
            protocol,
            handler: self.handler,
            events: self.events,
        }
    }

    /// The application logic.
    pub fn handler<G: Handler>(self, handler: G) -> Builder<P, G> {
        Builder {
            config: self.config,
            listen: self.listen,
            protocol: self.protocol,
            handler,
            events: self.events,
        }
    }

    /// Checks the settings and binds the listening socket.
    pub fn build(self) -> Result<Server<P, H>, Error> {
        let mut config = self.config;
        if let Some(listen) = self.listen {
            config.listen = listen?;
        }
        let mut server = Server::with_handler(config, self.protocol, self.handler)?;
        if let Some(sink) = self.events {
            server.set_events(sink);
        }
        Ok(server)
    }
}
