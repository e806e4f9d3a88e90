//! The heartbeat server: a pure protocol core, a thin event loop around it.
//!
//! - [`Server`] (this file) is the public face: it checks the [`Config`],
//!   binds the listeners and hands everything to the loop.
//! - `session` holds the rules of the protocol for every connection, pure:
//!   no socket, no clock (HELLO, takeover, heartbeats and their limits,
//!   deadlines, close reasons and `BYE`). Its tests run on a fake clock.
//! - `driver` is the mio event loop: it owns the `Poll`, the `Slab` of
//!   connections, the timing wheel, the sockets and the clock, and moves
//!   bytes and time between the kernel and the sessions.
//! - `listener` creates and tunes the listening sockets; `conn` is one
//!   connection as the loop holds it; `presence` is the table of online
//!   client ids behind a small interface; `handler` is the application's
//!   side ([`Handler`], [`Context`]).
//! - `admin` is the admin endpoint's HTTP, pure (request bytes in, response
//!   bytes out); the driver's `admin` part serves it on the same loop and
//!   answers the [`Handle`]'s queries ([`Handle::stats`], [`Handle::clients`]).

mod admin;
mod authenticated;
mod builder;
mod config;
mod conn;
mod driver;
mod handler;
mod limits;
mod listener;
mod presence;
pub(crate) mod session;
mod spill;
mod stats;
mod status;
mod tls;
pub mod workers;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use mio::{Poll, Waker};

pub use admin::{AdminConfig, OnlineClient, MAX_HEADERS, MAX_PAGE, MAX_REQUEST};
pub use authenticated::Authenticated;
pub use builder::Builder;
pub use config::{
    Config, ConfigError, ListenAs, Scheme, DEFAULT_BACKLOG, DEFAULT_INTERVAL, DEFAULT_LISTEN,
    DEFAULT_LISTEN_ADDR, DEFAULT_MAX_OUTPUT, DEFAULT_STATS_INTERVAL, DEFAULT_TICK, DEFAULT_TIMEOUT,
    DEFAULT_WHEEL_SLOTS, DEFAULT_WS_HANDSHAKE_TIMEOUT, MAX_WHEEL_SLOTS,
};
pub use handler::{
    on_message, ConnId, ConnInfo, Context, FnHandler, Handler, PresenceOnly, Verdict,
};
pub use limits::ConnectRate;
pub use stats::{EventCounts, Stats, TurnTimes, TURN_BUCKETS_US};
pub use tls::TlsFiles;

use crate::error::{Error, ErrorKind};
use crate::events::EventSink;
use crate::protocol::Protocol;
use crate::time::millis_ceil;
use crate::wheel::Wheel;
use driver::{Driver, Limits, Listening, Query, WAKER};
use listener::ListenOptions;
pub(crate) use presence::LocalPresence;

/// Connections the per-connection tables (the slab of connections, the
/// wheel's entries, the presence table's names) have room for from the
/// start: enough that each begins as a mapping of its own (past malloc's
/// mmap threshold, 128 KiB), which grows by remapping and is resident only
/// where used. Grown from nothing, each would leave its smaller copies
/// behind as holes in the heap (measured with `scripts/bench-idle-rss.sh`:
/// 12 bytes a bare connection and 21 a named one, at 15,000).
pub(crate) const INITIAL_ROOM: usize = 4096;
use session::ws::WsOptions;
use session::{Sessions, Settings, Wire};

/// File descriptors kept free beyond `max_conns` by default (listener,
/// epoll, events file, spare, logs).
const FD_RESERVE: u64 = 64;

/// How long [`Handle::stats`] and [`Handle::clients`] wait for the loop.
const QUERY_PATIENCE: Duration = Duration::from_secs(10);

/// Stops a running [`Server`] from another thread, and asks it for its
/// counters and its online clients.
#[derive(Debug, Clone)]
pub struct Handle {
    stop: Arc<AtomicBool>,
    waker: Arc<Waker>,
    queries: mpsc::Sender<Query>,
}

impl Handle {
    /// Asks the server to shut down gracefully: stop accepting, say
    /// `BYE shutdown` to everyone, flush, and return from [`Server::run`].
    pub fn shutdown(&self) {
        self.stop.store(true, Ordering::Release);
        if let Err(e) = self.waker.wake() {
            log::error!("cannot wake the server to shut it down: {e}");
        }
    }

    /// The running server's counters, as its admin endpoint's `/metrics`
    /// tells them. The loop answers at its next turn (it is woken for it);
    /// nothing on its hot path takes a lock. Waits at most 10 s; an error
    /// of kind [`ErrorKind::Io`] when the server has stopped or is not
    /// running ([`Server::run`]).
    pub fn stats(&self) -> Result<Stats, Error> {
        self.ask(Query::Stats)
    }

    /// The clients online now, in no particular order, as the admin
    /// endpoint's `/clients` tells them. Answered like [`Handle::stats`].
    pub fn clients(&self) -> Result<Vec<OnlineClient>, Error> {
        self.ask(Query::Clients)
    }

    fn ask<T>(&self, query: impl FnOnce(mpsc::Sender<T>) -> Query) -> Result<T, Error> {
        let (tx, rx) = mpsc::channel();
        let gone = || Error::new(ErrorKind::Io, "the server is not running");
        self.queries.send(query(tx)).map_err(|_| gone())?;
        self.waker
            .wake()
            .map_err(|e| Error::with_source(ErrorKind::Io, "cannot wake the server", e))?;
        rx.recv_timeout(QUERY_PATIENCE).map_err(|e| match e {
            mpsc::RecvTimeoutError::Disconnected => gone(),
            mpsc::RecvTimeoutError::Timeout => Error::new(
                ErrorKind::Io,
                "the server did not answer in time (is it running?)",
            ),
        })
    }
}

/// A heartbeat server speaking protocol `P`, with application logic `H`.
/// See the [module docs](self).
pub struct Server<P: Protocol, H: Handler = PresenceOnly> {
    driver: Driver<P, H>,
    stop: Arc<AtomicBool>,
    waker: Arc<Waker>,
    queries: mpsc::Sender<Query>,
}

impl Server<crate::protocol::LineProtocol, PresenceOnly> {
    /// A builder, starting from the defaults of `vigil serve`: the line
    /// protocol and a presence-only handler.
    pub fn builder() -> Builder<crate::protocol::LineProtocol, PresenceOnly> {
        Builder::new()
    }
}

impl<P: Protocol> Server<P, PresenceOnly> {
    /// Binds the listening socket and sets up the loop, with a handler that
    /// does nothing but presence. Nothing is served until [`Server::run`].
    pub fn new(config: Config, protocol: P) -> Result<Server<P>, Error> {
        Server::with_handler(config, protocol, PresenceOnly)
    }
}

impl<P: Protocol, H: Handler> Server<P, H> {
    /// Binds the listening socket and sets up the loop. Nothing is served
    /// until [`Server::run`].
    pub fn with_handler(config: Config, protocol: P, handler: H) -> Result<Server<P, H>, Error> {
        config
            .validate()
            .map_err(|e| Error::new(ErrorKind::Config, e.to_string()))?;
        let poll =
            Poll::new().map_err(|e| Error::with_source(ErrorKind::Io, "cannot create poll", e))?;
        let options = ListenOptions {
            backlog: config.backlog,
            keepalive: config.tcp_keepalive,
            user_timeout: config.tcp_user_timeout,
            reuse_port: config.worker.is_some(),
        };
        let interval_ms = millis_ceil(config.interval);
        // Wire 0 is `listen`'s; each extra listener has its own after it.
        let mut wires = Vec::with_capacity(1 + config.listen_more.len());
        let mut listeners = Vec::new();
        let tls_on = config.tls.is_some();
        if !config.listen.is_empty() {
            for l in listener::bind_all(&config.listen, &options)? {
                listeners.push((
                    l,
                    Listening {
                        wire: 0,
                        tls: tls_on,
                        scheme: None,
                    },
                ));
            }
        }
        for (i, more) in config.listen_more.iter().enumerate() {
            let Some(p) = protocol.for_scheme(more.scheme) else {
                return Err(Error::new(
                    ErrorKind::Config,
                    format!(
                        "the {} protocol cannot serve {}:// listeners",
                        protocol.name(),
                        more.scheme.as_str()
                    ),
                ));
            };
            wires.push(if more.scheme.is_websocket() {
                Wire::websocket(p, config.ws_ping.then_some(interval_ms))
            } else {
                Wire::pinging(p, config.line_ping.then_some(interval_ms))
            });
            let tls = match more.scheme {
                Scheme::Ws => false,
                Scheme::Wss => true,
                _ => tls_on,
            };
            let wire = u8::try_from(i + 1)
                .map_err(|_| Error::new(ErrorKind::Config, "more than 255 listeners"))?;
            for l in listener::bind_all(&more.addrs, &options)? {
                listeners.push((
                    l,
                    Listening {
                        wire,
                        tls,
                        scheme: Some(more.scheme),
                    },
                ));
            }
        }
        let waker = Arc::new(
            Waker::new(poll.registry(), WAKER)
                .map_err(|e| Error::with_source(ErrorKind::Io, "cannot create the waker", e))?,
        );
        let signals = if config.handle_signals {
            Some(
                signal_hook_mio::v1_0::Signals::new([
                    signal_hook::consts::SIGINT,
                    signal_hook::consts::SIGTERM,
                    signal_hook::consts::SIGHUP,
                    signal_hook::consts::SIGUSR1,
                    signal_hook::consts::SIGUSR2,
                ])
                .map_err(|e| Error::with_source(ErrorKind::Io, "cannot handle signals", e))?,
            )
        } else {
            None
        };
        let max_conns = config.max_conns.unwrap_or_else(|| {
            crate::sys::nofile_limit()
                .map(|(soft, _)| soft.saturating_sub(FD_RESERVE).max(1))
                .map_or(usize::MAX, |n| usize::try_from(n).unwrap_or(usize::MAX))
        });
        let settings = Settings {
            interval_ms,
            timeout_ms: millis_ceil(config.timeout),
            max_pings: config.max_pings,
            phi: match config.detector {
                crate::detector::Detector::Phi(c) => Some(c),
                crate::detector::Detector::Fixed => None,
            },
            hello_timeout_ms: config.hello_timeout.map(millis_ceil),
            max_frames: config.max_frames,
            max_output: config.max_output,
        };
        // The ordered index (for paging by id) only when something pages;
        // a worker owns a shard of the ids.
        let mut presence = match config.admin {
            Some(_) => LocalPresence::ordered(),
            None => LocalPresence::default(),
        }
        .with_room(INITIAL_ROOM);
        if let Some(w) = &config.worker {
            presence = presence.with_shard(w.index, w.count);
        }
        wires.insert(
            0,
            Wire::pinging(protocol, config.line_ping.then_some(interval_ms)),
        );
        let mut sessions = Sessions::with_wires(wires, handler, presence, settings);
        sessions.set_websocket(WsOptions {
            handshake_timeout_ms: millis_ceil(config.ws_handshake_timeout),
            origins: config.ws_origins.clone(),
        });
        let wheel = Wheel::with_capacity(
            millis_ceil(config.tick).max(1),
            config.wheel_slots,
            INITIAL_ROOM,
        );
        let limits = Limits {
            max_conns,
            max_output: config.max_output,
            stats_every: config.stats_interval.map(|d| millis_ceil(d).max(1)),
            max_conns_per_ip: config.max_conns_per_ip,
            max_connects_per_ip: config.max_connects_per_ip,
        };
        let stop = Arc::new(AtomicBool::new(false));
        let tls = config.tls.as_ref().map(tls::server_config).transpose()?;
        let mut driver = Driver::new(
            poll,
            listeners,
            sessions,
            wheel,
            limits,
            signals,
            Arc::clone(&stop),
        )?;
        if let Some(options) = &config.cluster {
            let redis = crate::addr::resolve(options.redis.as_str())?[0];
            let node_id = options
                .node_id
                .clone()
                .unwrap_or_else(|| driver.local_addrs()[0].to_string());
            let mut c = crate::cluster::ClusterConfig::new(node_id);
            c.prefix = options.prefix.clone();
            log::info!(
                "cluster: node {} sharing presence through Redis at {redis}",
                c.node_id
            );
            let cluster = crate::cluster::Cluster::new(c, driver.run_id().to_string());
            driver.set_cluster(crate::cluster::link::ClusterLink::new(redis, cluster));
        }
        let (queries, answers) = mpsc::channel();
        driver.admin().set_queries(answers);
        if let Some(admin) = &config.admin {
            let listener = mio::net::TcpListener::bind(admin.addr).map_err(|e| {
                Error::with_source(
                    ErrorKind::Bind,
                    format!("cannot listen on the admin address {}", admin.addr),
                    e,
                )
            })?;
            let addr = driver
                .listen_admin(listener, admin.token.clone())
                .map_err(|e| {
                    Error::with_source(ErrorKind::Io, "cannot register the admin listener", e)
                })?;
            log::info!(
                "admin endpoint on http://{addr}/ ({})",
                if admin.token.is_some() {
                    "bearer token required"
                } else {
                    "no token"
                }
            );
        }
        driver.set_tls(tls);
        if let Some(w) = config.worker {
            // A worker stops with its supervisor, however that one ends.
            if let Err(e) = crate::sys::die_with_parent() {
                log::warn!("cannot tie this worker to its supervisor: {e}");
            }
            driver.set_worker(w)?;
        }
        Ok(Server {
            driver,
            stop,
            waker,
            queries,
        })
    }

    /// Sends presence events to `sink` as well as to the log.
    pub fn set_events(&mut self, sink: EventSink) {
        self.driver.set_events(sink);
    }

    /// The address the server listens on (with the real port when the
    /// configuration asked for port 0); the first, if it listens on several.
    pub fn local_addr(&self) -> SocketAddr {
        self.driver.local_addrs()[0]
    }

    /// Every address the server listens on.
    pub fn local_addrs(&self) -> &[SocketAddr] {
        self.driver.local_addrs()
    }

    /// The admin endpoint's address, when it is on (with the real port when
    /// the configuration asked for port 0).
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.driver.admin_addr()
    }

    /// The most connections this server holds at once.
    pub fn max_conns(&self) -> usize {
        self.driver.max_conns()
    }

    /// A handle that stops the server from another thread.
    pub fn handle(&self) -> Handle {
        Handle {
            stop: Arc::clone(&self.stop),
            waker: Arc::clone(&self.waker),
            queries: self.queries.clone(),
        }
    }

    /// The counters as of now.
    pub fn stats(&self) -> Stats {
        self.driver.stats()
    }

    /// Serves until shut down by a [`Handle`], a handler or (when
    /// configured) a signal. Returns the final counters.
    pub fn run(self) -> Result<Stats, Error> {
        // The waker must outlive the loop: dropping the last one would
        // close its eventfd under a pending wake-up.
        let _waker = self.waker;
        self.driver.run()
    }
}
