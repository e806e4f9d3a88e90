//! [`Builder`]: a server from documented defaults, one setting at a time.

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use super::ConnectRate;
use super::{Config, Handler, PresenceOnly, Server};
use crate::error::{Error, ErrorKind};
use crate::events::EventSink;
use crate::protocol::{LineProtocol, Protocol};
use crate::sys::Keepalive;

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
    listen: Option<Result<Vec<SocketAddr>, Error>>,
    /// Listeners with a scheme, each resolved when given.
    listen_more: Vec<Result<super::ListenAs, Error>>,
    protocol: P,
    handler: H,
    events: Option<EventSink>,
}

impl Builder<LineProtocol, PresenceOnly> {
    pub(crate) fn new() -> Self {
        Builder {
            config: Config::default(),
            listen: None,
            listen_more: Vec::new(),
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

    /// Where to listen: anything that resolves to socket addresses, such
    /// as `"127.0.0.1:7700"`, `"[::1]:0"`, `"localhost:7700"` or a
    /// `SocketAddr`. The server listens on every address the name resolves
    /// to (`localhost` is often both `127.0.0.1` and `::1`), each once.
    /// Resolved by [`crate::addr::resolve`] now; an error (of kind
    /// [`ErrorKind::Bind`]) is reported by [`Builder::build`].
    pub fn listen<A: ToSocketAddrs + fmt::Debug>(mut self, addr: A) -> Self {
        self.listen = Some(resolve_unique(addr));
        self
    }

    /// One more listener, speaking what `scheme` names (its protocol comes
    /// from [`Protocol::for_scheme`] of the server's): `ws://` serves
    /// browsers beside TCP clients, with one presence for both. Without
    /// [`Builder::listen`], the server listens only on these. See
    /// [`Config::listen_more`].
    ///
    /// ```
    /// use vigil::server::{Scheme, Server};
    ///
    /// let server = Server::builder()
    ///     .listen("127.0.0.1:0")
    ///     .listen_as(Scheme::Ws, "127.0.0.1:0")
    ///     .build()?;
    /// assert_eq!(server.local_addrs().len(), 2);
    /// # Ok::<(), vigil::Error>(())
    /// ```
    pub fn listen_as<A: ToSocketAddrs + fmt::Debug>(
        mut self,
        scheme: super::Scheme,
        addr: A,
    ) -> Self {
        self.listen_more
            .push(resolve_unique(addr).map(|addrs| super::ListenAs { scheme, addrs }));
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

    /// Slots in the timing wheel. See [`Config::wheel_slots`].
    pub fn wheel_slots(mut self, slots: usize) -> Self {
        self.config.wheel_slots = slots;
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

    /// The listen backlog. See [`Config::backlog`].
    pub fn backlog(mut self, backlog: u32) -> Self {
        self.config.backlog = backlog;
        self
    }

    /// Whether the server shuts down on SIGINT and SIGTERM by itself.
    pub fn handle_signals(mut self, yes: bool) -> Self {
        self.config.handle_signals = yes;
        self
    }

    /// Kernel TCP keepalive on every connection. See [`Config::tcp_keepalive`].
    pub fn tcp_keepalive(mut self, keepalive: Keepalive) -> Self {
        self.config.tcp_keepalive = Some(keepalive);
        self
    }

    /// Shares presence with other nodes through Redis. See [`Config::cluster`].
    pub fn cluster(mut self, cluster: crate::cluster::ClusterOptions) -> Self {
        self.config.cluster = Some(cluster);
        self
    }

    /// Which detector declares a silent connection dead. See [`Config::detector`].
    pub fn detector(mut self, detector: crate::detector::Detector) -> Self {
        self.config.detector = detector;
        self
    }

    /// `TCP_USER_TIMEOUT` on every connection. See [`Config::tcp_user_timeout`].
    pub fn tcp_user_timeout(mut self, timeout: Duration) -> Self {
        self.config.tcp_user_timeout = Some(timeout);
        self
    }

    /// Close connections without a completed HELLO after this long. See
    /// [`Config::hello_timeout`].
    pub fn hello_timeout(mut self, timeout: Duration) -> Self {
        self.config.hello_timeout = Some(timeout);
        self
    }

    /// The most frames of any kind per interval. See [`Config::max_frames`].
    pub fn max_frames(mut self, max: u16) -> Self {
        self.config.max_frames = Some(max);
        self
    }

    /// The most connections per source address. See [`Config::max_conns_per_ip`].
    pub fn max_conns_per_ip(mut self, max: u32) -> Self {
        self.config.max_conns_per_ip = Some(max);
        self
    }

    /// The most connects per source address per period. See
    /// [`Config::max_connects_per_ip`].
    pub fn max_connects_per_ip(mut self, rate: ConnectRate) -> Self {
        self.config.max_connects_per_ip = Some(rate);
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
            listen_more: self.listen_more,
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
            listen_more: self.listen_more,
            protocol: self.protocol,
            handler,
            events: self.events,
        }
    }

    /// Serves the admin endpoint (see [`AdminConfig`](super::AdminConfig)).
    /// Default off.
    pub fn admin(mut self, admin: super::AdminConfig) -> Self {
        self.config.admin = Some(admin);
        self
    }

    /// Serves TLS with this certificate and key. See [`Config::tls`].
    pub fn tls(mut self, files: super::TlsFiles) -> Self {
        self.config.tls = Some(files);
        self
    }

    /// Checks the settings and binds the listening socket.
    pub fn build(self) -> Result<Server<P, H>, Error> {
        let mut config = self.config;
        match self.listen {
            Some(listen) => config.listen = listen?,
            None if !self.listen_more.is_empty() => config.listen.clear(),
            None => {}
        }
        for more in self.listen_more {
            config.listen_more.push(more?);
        }
        let mut server = Server::with_handler(config, self.protocol, self.handler)?;
        if let Some(sink) = self.events {
            server.set_events(sink);
        }
        Ok(server)
    }

    /// The `Origin`s a WebSocket handshake may come from. See
    /// [`Config::ws_origins`].
    pub fn ws_origins(mut self, origins: Vec<String>) -> Self {
        self.config.ws_origins = origins;
        self
    }

    /// The deadline of a WebSocket opening handshake. See
    /// [`Config::ws_handshake_timeout`].
    pub fn ws_handshake_timeout(mut self, timeout: Duration) -> Self {
        self.config.ws_handshake_timeout = timeout;
        self
    }

    /// Whether silent line-protocol connections are pinged. See
    /// [`Config::line_ping`].
    pub fn line_ping(mut self, yes: bool) -> Self {
        self.config.line_ping = yes;
        self
    }

    /// Whether silent WebSocket connections are pinged. See
    /// [`Config::ws_ping`].
    pub fn ws_ping(mut self, yes: bool) -> Self {
        self.config.ws_ping = yes;
        self
    }

    /// Runs as one of several worker processes on one port. See
    /// [`Config::worker`].
    pub fn worker(mut self, slot: super::workers::WorkerSlot) -> Self {
        self.config.worker = Some(slot);
        self
    }
}

/// What `addr` resolves to, each address once (a resolver may name one
/// twice, from two /etc/hosts lines; binding it twice would fail).
fn resolve_unique<A: ToSocketAddrs + fmt::Debug>(addr: A) -> Result<Vec<SocketAddr>, Error> {
    crate::addr::resolve_as(&addr, ErrorKind::Bind).map(|addrs| {
        let mut unique = Vec::with_capacity(addrs.len());
        for a in addrs {
            if !unique.contains(&a) {
                unique.push(a);
            }
        }
        unique
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().expect("literal")
    }

    /// What `listen(addr)` resolved to, or the error's kind and text.
    fn listened<A: ToSocketAddrs + fmt::Debug>(addr: A) -> Result<Vec<SocketAddr>, String> {
        match Builder::new().listen(addr).listen {
            Some(Ok(addrs)) => Ok(addrs),
            Some(Err(e)) => Err(format!("{:?}: {e}", e.kind())),
            None => Err("not resolved".to_owned()),
        }
    }

    #[test]
    fn listen_keeps_every_address_once_in_order() {
        let (a, b) = (addr("127.0.0.1:7700"), addr("[::1]:7700"));
        assert_eq!(listened(a), Ok(vec![a]));
        assert_eq!(listened(&[b, a, b, a][..]), Ok(vec![b, a]));
        let mut expected: Vec<SocketAddr> = Vec::new();
        for a in "localhost:7700".to_socket_addrs().expect("localhost") {
            if !expected.contains(&a) {
                expected.push(a);
            }
        }
        assert_eq!(listened("localhost:7700"), Ok(expected));
    }

    #[test]
    fn a_bad_listen_address_is_a_bind_error_that_names_it() {
        let err = listened("nonsense").expect_err("no port");
        assert!(
            err.starts_with("Bind: cannot resolve \"nonsense\""),
            "{err}"
        );
        assert_eq!(
            listened(""),
            Err("Bind: empty address (expected HOST:PORT)".to_owned())
        );
        let built = Builder::new().listen("nonsense").build();
        assert_eq!(built.err().map(|e| e.kind()), Some(ErrorKind::Bind));
    }

    #[test]
    fn settings_land_in_the_config() {
        let keep = Config {
            timeout: Duration::from_secs(9),
            ..Config::default()
        };
        let b = Builder::new()
            .listen("127.0.0.1:1")
            .config(keep.clone())
            .wheel_slots(64)
            .backlog(17)
            .max_conns(5)
            .stats_interval(None);
        // config() replaces what came before, the listen address included.
        assert!(b.listen.is_none());
        let mut expected = keep;
        expected.wheel_slots = 64;
        expected.backlog = 17;
        expected.max_conns = Some(5);
        expected.stats_interval = None;
        assert_eq!(b.config, expected);
    }

    #[test]
    fn build_listens_on_the_first_resolved_address() {
        let server = Builder::new()
            .listen("127.0.0.1:0")
            .stats_interval(None)
            .build()
            .expect("binds");
        assert!(server.local_addr().ip().is_loopback());
        assert_eq!(server.local_addrs(), [server.local_addr()]);
    }
}
