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

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use mio::{Poll, Waker};

pub use authenticated::Authenticated;
pub use builder::Builder;
pub use config::{
    Config, ConfigError, DEFAULT_BACKLOG, DEFAULT_INTERVAL, DEFAULT_LISTEN, DEFAULT_LISTEN_ADDR,
    DEFAULT_MAX_OUTPUT, DEFAULT_STATS_INTERVAL, DEFAULT_TICK, DEFAULT_TIMEOUT, DEFAULT_WHEEL_SLOTS,
    MAX_WHEEL_SLOTS,
};
pub use handler::{
    on_message, ConnId, ConnInfo, Context, FnHandler, Handler, PresenceOnly, Verdict,
};
pub use limits::ConnectRate;
pub use stats::Stats;

use crate::error::{Error, ErrorKind};
use crate::events::EventSink;
use crate::protocol::Protocol;
use crate::time::millis_ceil;
use crate::wheel::Wheel;
use driver::{Driver, Limits, WAKER};
use listener::ListenOptions;
pub(crate) use presence::LocalPresence;
use session::{Sessions, Settings};

/// File descriptors kept free beyond `max_conns` by default (listener,
/// epoll, events file, spare, logs).
const FD_RESERVE: u64 = 64;

/// Stops a running [`Server`] from another thread.
#[derive(Debug, Clone)]
pub struct Handle {
    stop: Arc<AtomicBool>,
    waker: Arc<Waker>,
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
}

/// A heartbeat server speaking protocol `P`, with application logic `H`.
/// See the [module docs](self).
pub struct Server<P: Protocol, H: Handler = PresenceOnly> {
    driver: Driver<P, H>,
    stop: Arc<AtomicBool>,
    waker: Arc<Waker>,
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
        let listeners = listener::bind_all(
            &config.listen,
            &ListenOptions {
                backlog: config.backlog,
                keepalive: config.tcp_keepalive,
                user_timeout: config.tcp_user_timeout,
            },
        )?;
        let waker = Arc::new(
            Waker::new(poll.registry(), WAKER)
                .map_err(|e| Error::with_source(ErrorKind::Io, "cannot create the waker", e))?,
        );
        let signals = if config.handle_signals {
            Some(
                signal_hook_mio::v1_0::Signals::new([
                    signal_hook::consts::SIGINT,
                    signal_hook::consts::SIGTERM,
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
            interval_ms: millis_ceil(config.interval),
            timeout_ms: millis_ceil(config.timeout),
            max_pings: config.max_pings,
            hello_timeout_ms: config.hello_timeout.map(millis_ceil),
            max_frames: config.max_frames,
            max_output: config.max_output,
        };
        let sessions = Sessions::new(protocol, handler, LocalPresence::default(), settings);
        let wheel = Wheel::new(millis_ceil(config.tick).max(1), config.wheel_slots);
        let limits = Limits {
            max_conns,
            max_output: config.max_output,
            stats_every: config.stats_interval.map(|d| millis_ceil(d).max(1)),
            max_conns_per_ip: config.max_conns_per_ip,
            max_connects_per_ip: config.max_connects_per_ip,
        };
        let stop = Arc::new(AtomicBool::new(false));
        let driver = Driver::new(
            poll,
            listeners,
            sessions,
            wheel,
            limits,
            signals,
            Arc::clone(&stop),
        )?;
        Ok(Server {
            driver,
            stop,
            waker,
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

    /// The most connections this server holds at once.
    pub fn max_conns(&self) -> usize {
        self.driver.max_conns()
    }

    /// A handle that stops the server from another thread.
    pub fn handle(&self) -> Handle {
        Handle {
            stop: Arc::clone(&self.stop),
            waker: Arc::clone(&self.waker),
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
