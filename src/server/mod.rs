//! The event loop: one thread, one mio `Poll`, every socket in one `Slab`,
//! every deadline in one timing wheel.
//!
//! Each turn of the loop:
//! 1. waits in `poll` until a socket is ready or the next wheel tick is due;
//! 2. handles *all* ready I/O: accepts, reads (decoding frames and
//!    answering them with one write per read batch), writes;
//! 3. only then advances the wheel and expires deadlines, so a heartbeat
//!    that has already arrived is never lost to a timeout;
//! 4. removes the connections closed during the turn (a slab key is never
//!    reused within the batch of events that might still name it) and
//!    flushes the events file.
//!
//! Deadlines are lazy: a frame only records `last_seen`. When a
//! connection's wheel entry fires, the loop compares `last_seen + timeout`
//! with now and re-arms the entry if the peer has been heard from since. A
//! connection beating every interval costs one wheel operation per timeout,
//! not one per heartbeat.

mod builder;
mod config;
mod conn;
mod handler;
mod presence;
mod stats;

use std::fs::File;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
use slab::Slab;

pub use builder::Builder;
pub use config::{
    Config, ConfigError, DEFAULT_BACKLOG, DEFAULT_INTERVAL, DEFAULT_LISTEN, DEFAULT_LISTEN_ADDR,
    DEFAULT_MAX_OUTPUT, DEFAULT_STATS_INTERVAL, DEFAULT_TICK, DEFAULT_TIMEOUT, DEFAULT_WHEEL_SLOTS,
    MAX_WHEEL_SLOTS,
};
pub use handler::{on_message, ConnId, ConnInfo, Context, FnHandler, Handler, PresenceOnly};
pub use stats::Stats;

use crate::error::{Error, ErrorKind};
use crate::events::{Event, EventKind, EventSink};
use crate::protocol::{CloseReason, Frame, Protocol, Reply};
use crate::time::{millis_ceil, Clock};
use crate::wheel::Wheel;
use conn::{read_some, Conn, ConnRef};
use handler::{Outbox, Target};
use presence::Presence;

const LISTENER: Token = Token(usize::MAX);
const WAKER: Token = Token(usize::MAX - 1);
const SIGNALS: Token = Token(usize::MAX - 2);

/// The shared read buffer: one per server, not one per connection.
const READ_CHUNK: usize = 64 * 1024;
/// Reads per connection per loop turn, so one busy peer cannot starve the
/// others; a connection with more to read is taken up again next turn.
const READ_BUDGET: usize = 4;
/// Accepts per loop turn, for the same reason.
const ACCEPT_BUDGET: usize = 256;
/// File descriptors kept free beyond `max_conns` by default (listener,
/// epoll, events file, spare, logs).
const FD_RESERVE: u64 = 64;
/// How long to stop accepting when no file descriptor can be had.
const ACCEPT_PAUSE_MS: u64 = 100;

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
    poll: Poll,
    events: Option<Events>,
    listener: Option<TcpListener>,
    local_addr: SocketAddr,
    conns: Slab<Conn>,
    core: Core<P, H>,
    scratch: Vec<u8>,
    signals: Option<signal_hook_mio::v1_0::Signals>,
    stop: Arc<AtomicBool>,
    waker: Arc<Waker>,
    /// A descriptor held in reserve: freed to accept-and-refuse when the
    /// process runs out of descriptors.
    spare_fd: Option<File>,
    /// When accepting is paused for lack of descriptors, when to retry.
    accept_retry_at: Option<u64>,
    /// The accept budget ran out with connections still waiting.
    accept_pending: bool,
    stats_every: Option<u64>,
}

/// Everything the per-connection handlers touch besides the slab.
struct Core<P, H> {
    protocol: P,
    handler: H,
    outbox: Outbox,
    /// Where a closing connection's BYE is encoded.
    bye: Vec<u8>,
    /// Targets of a broadcast, gathered before sending.
    targets: Vec<ConnRef>,
    clock: Clock,
    /// The time of this loop turn (ms on `clock`).
    now: u64,
    interval_ms: u64,
    timeout_ms: u64,
    max_output: usize,
    max_pings: Option<u32>,
    max_conns: usize,
    wheel: Wheel<ConnRef>,
    /// The `now` the wheel was last advanced to.
    advanced_to: u64,
    presence: Presence,
    stats: Stats,
    sink: EventSink,
    /// Replies being built for one connection's read batch.
    out: Vec<u8>,
    /// Keys closed during this turn, removed at its end.
    closing: Vec<usize>,
    /// Connections whose read budget ran out with input left.
    again: Vec<ConnRef>,
    /// Connections replaced by a HELLO in this read batch.
    replaced: Vec<ConnRef>,
    /// Replies of this turn's reads, written once every ready socket has
    /// been read, like Redis's write-before-sleep: reading the whole batch
    /// first keeps the loop from being interrupted by the peers its writes
    /// wake (on loopback, a write runs the receiver's TCP in the writer's
    /// context).
    replies: Vec<u8>,
    pending: Vec<(ConnRef, usize, usize)>,
    next_id: u64,
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
        // TODO(lead): bind all of config.listen (validate() ensured one).
        let first = config.listen.first().copied();
        let first = first.ok_or_else(|| Error::new(ErrorKind::Config, "no listen address"))?;
        let mut listener = TcpListener::bind(first).map_err(|e| {
            Error::with_source(ErrorKind::Bind, format!("cannot listen on {first}"), e)
        })?;
        let fd = listener.as_raw_fd();
        if let Err(e) = crate::sys::set_backlog(fd, config.backlog) {
            log::warn!("cannot set the listen backlog to {}: {e}", config.backlog);
        }
        // Socket options set on the listener are copied by Linux to every
        // accepted socket: one syscall at start instead of one per accept.
        if let Err(e) = crate::sys::set_nodelay(fd) {
            log::warn!("cannot set TCP_NODELAY: {e}");
        }
        if let Some(k) = &config.tcp_keepalive {
            crate::sys::set_keepalive(fd, k).map_err(|e| {
                Error::with_source(ErrorKind::Config, "cannot set TCP keepalive", e)
            })?;
            log::info!(
                "TCP keepalive: probe after {}s idle, every {}s, {} probes (dead peers found within {}s)",
                k.idle.as_secs(),
                k.interval.as_secs(),
                k.count,
                k.detection_time().as_secs()
            );
        }
        if let Some(t) = config.tcp_user_timeout {
            crate::sys::set_user_timeout(fd, t).map_err(|e| {
                Error::with_source(ErrorKind::Config, "cannot set TCP_USER_TIMEOUT", e)
            })?;
            log::info!("TCP_USER_TIMEOUT: {}ms", t.as_millis());
        }
        let local_addr = listener.local_addr().map_err(|e| {
            Error::with_source(ErrorKind::Bind, "cannot read the listening address", e)
        })?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)
            .map_err(|e| Error::with_source(ErrorKind::Io, "cannot register the listener", e))?;
        let waker = Arc::new(
            Waker::new(poll.registry(), WAKER)
                .map_err(|e| Error::with_source(ErrorKind::Io, "cannot create the waker", e))?,
        );
        let signals = if config.handle_signals {
            let mut s = signal_hook_mio::v1_0::Signals::new([
                signal_hook::consts::SIGINT,
                signal_hook::consts::SIGTERM,
            ])
            .map_err(|e| Error::with_source(ErrorKind::Io, "cannot handle signals", e))?;
            poll.registry()
                .register(&mut s, SIGNALS, Interest::READABLE)
                .map_err(|e| Error::with_source(ErrorKind::Io, "cannot register signals", e))?;
            Some(s)
        } else {
            None
        };
        let max_conns = config.max_conns.unwrap_or_else(|| {
            crate::sys::nofile_limit()
                .map(|(soft, _)| soft.saturating_sub(FD_RESERVE).max(1))
                .map_or(usize::MAX, |n| usize::try_from(n).unwrap_or(usize::MAX))
        });
        let tick_ms = millis_ceil(config.tick).max(1);
        let core = Core {
            protocol,
            handler,
            outbox: Outbox::default(),
            bye: Vec::new(),
            targets: Vec::new(),
            clock: Clock::new(),
            now: 0,
            interval_ms: millis_ceil(config.interval),
            timeout_ms: millis_ceil(config.timeout),
            max_output: config.max_output,
            max_pings: config.max_pings,
            max_conns,
            wheel: Wheel::new(tick_ms, config.wheel_slots),
            advanced_to: 0,
            presence: Presence::default(),
            stats: Stats::default(),
            sink: EventSink::log_only(),
            out: Vec::with_capacity(READ_CHUNK),
            closing: Vec::new(),
            again: Vec::new(),
            replaced: Vec::new(),
            replies: Vec::with_capacity(READ_CHUNK),
            pending: Vec::new(),
            next_id: 1,
        };
        Ok(Server {
            poll,
            events: Some(Events::with_capacity(1024)),
            listener: Some(listener),
            local_addr,
            conns: Slab::new(),
            core,
            scratch: vec![0; READ_CHUNK],
            signals,
            stop: Arc::new(AtomicBool::new(false)),
            waker,
            spare_fd: File::open("/dev/null").ok(),
            accept_retry_at: None,
            accept_pending: false,
            stats_every: config.stats_interval.map(|d| millis_ceil(d).max(1)),
        })
    }

    /// Sends presence events to `sink` as well as to the log.
    pub fn set_events(&mut self, sink: EventSink) {
        self.core.sink = sink;
    }

    /// The address the server listens on (with the real port when the
    /// configuration asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Every address the server listens on, the first being
    /// [`Server::local_addr`].
    // TODO(lead): bind all; today only the first configured address is bound.
    pub fn local_addrs(&self) -> &[SocketAddr] {
        std::slice::from_ref(&self.local_addr)
    }

    /// The most connections this server holds at once.
    pub fn max_conns(&self) -> usize {
        self.core.max_conns
    }

    /// A handle that stops the server from another thread.
    pub fn handle(&self) -> Handle {
        Handle {
            stop: Arc::clone(&self.stop),
            waker: Arc::clone(&self.waker),
        }
    }

    /// Serves until shut down by a [`Handle`] or (when configured) a signal.
    /// Returns the final counters.
    pub fn run(mut self) -> Result<Stats, Error> {
        log::info!(
            "listening on {} (interval {}ms, timeout {}ms, tick {}ms, max {} connections)",
            self.local_addr,
            self.core.interval_ms,
            self.core.timeout_ms,
            self.core.wheel.resolution_ms(),
            self.core.max_conns,
        );
        let mut last_report = (self.core.stats.clone(), self.core.clock.now());
        let mut next_stats = self.stats_every.map(|every| last_report.1 + every);
        loop {
            let timeout = self.poll_timeout(next_stats);
            let mut events = self
                .events
                .take()
                .unwrap_or_else(|| Events::with_capacity(1024));
            let polled = self.poll.poll(&mut events, timeout);
            self.core.now = self.core.clock.now();
            if let Err(e) = polled {
                if e.kind() != io::ErrorKind::Interrupted {
                    self.events = Some(events);
                    return Err(Error::with_source(ErrorKind::Io, "poll failed", e));
                }
            }
            for again in std::mem::take(&mut self.core.again) {
                if self.is_current(again) {
                    self.on_readable(again.key as usize, false);
                }
            }
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept_all(),
                    WAKER => {}
                    SIGNALS => self.on_signals(),
                    Token(key) => {
                        if event.is_readable() || event.is_read_closed() || event.is_error() {
                            self.on_readable(key, event.is_read_closed());
                        }
                        if event.is_writable() {
                            self.on_writable(key);
                        }
                    }
                }
            }
            self.events = Some(events);
            self.flush_replies();
            if self.accept_pending || self.accept_retry_at.is_some_and(|t| t <= self.core.now) {
                self.accept_retry_at = None;
                self.accept_all();
            }
            self.expire();
            self.flush_replies();
            self.flush_outbox();
            self.reap();
            if let Some(at) = next_stats.filter(|&at| at <= self.core.now) {
                self.report(&mut last_report);
                next_stats = self.stats_every.map(|every| at.max(self.core.now) + every);
            }
            if let Err(e) = self.core.sink.flush() {
                log::error!("cannot write events: {e}");
            }
            if self.stop.load(Ordering::Acquire) {
                return Ok(self.shutdown(&mut last_report));
            }
        }
    }

    /// How long `poll` may sleep: until the next wheel tick, the next stats
    /// line or the next accept retry, and not at all if work is left over.
    fn poll_timeout(&self, next_stats: Option<u64>) -> Option<Duration> {
        if !self.core.again.is_empty() || self.accept_pending {
            return Some(Duration::ZERO);
        }
        let now = self.core.clock.now();
        let tick = (!self.core.wheel.is_empty())
            .then(|| self.core.wheel.next_tick_ms(self.core.advanced_to));
        [tick, next_stats, self.accept_retry_at]
            .into_iter()
            .flatten()
            .min()
            .map(|at| Duration::from_millis(at.saturating_sub(now)))
    }

    fn is_current(&self, c: ConnRef) -> bool {
        self.conns
            .get(c.key as usize)
            .is_some_and(|conn| conn.generation() == c.generation && conn.closing.is_none())
    }

    fn on_signals(&mut self) {
        if let Some(signals) = &mut self.signals {
            for signal in signals.pending() {
                log::info!("received signal {signal}: shutting down");
                self.stop.store(true, Ordering::Release);
            }
        }
    }

    /// Accepts until the backlog is empty or the budget is spent.
    fn accept_all(&mut self) {
        self.accept_pending = false;
        for _ in 0..ACCEPT_BUDGET {
            let Some(listener) = &self.listener else {
                return;
            };
            match listener.accept() {
                Ok((stream, peer)) => self.admit(stream, peer),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if out_of_descriptors(&e) => {
                    self.on_out_of_descriptors(e);
                    return;
                }
                // The peer gave up before we accepted (ECONNABORTED) and
                // the like: nothing to do for it, go on with the others.
                Err(e) => log::debug!("accept: {e}"),
            }
        }
        self.accept_pending = true;
    }

    /// Out of file descriptors: free the spare, accept and refuse what is
    /// waiting, and take the spare back, so the backlog does not fill while
    /// edge-triggered readiness stays silent. Without a spare, pause
    /// accepting briefly instead of spinning.
    fn on_out_of_descriptors(&mut self, e: io::Error) {
        log::warn!(
            "accept failed: {e} ({} connections open); refusing waiting connections",
            self.conns.len()
        );
        if self.spare_fd.take().is_some() {
            if let Some(listener) = &self.listener {
                loop {
                    match listener.accept() {
                        Ok((stream, peer)) => {
                            let id = self.core.next_id();
                            self.core.refuse(stream, peer, id);
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(_) => break,
                    }
                }
            }
            self.spare_fd = File::open("/dev/null").ok();
        }
        if self.spare_fd.is_none() {
            self.accept_retry_at = Some(self.core.now + ACCEPT_PAUSE_MS);
        }
    }

    fn admit(&mut self, stream: TcpStream, peer: SocketAddr) {
        let core = &mut self.core;
        let id = core.next_id();
        if self.conns.len() >= core.max_conns {
            core.refuse(stream, peer, id);
            return;
        }
        let entry = self.conns.vacant_entry();
        let key = entry.key();
        let Ok(key32) = u32::try_from(key) else {
            core.refuse(stream, peer, id);
            return;
        };
        let mut conn = Conn::new(stream, peer, id, core.now);
        // Readable and writable once, edge-triggered: no re-registration
        // syscalls as output comes and goes.
        if let Err(e) = self.poll.registry().register(
            &mut conn.stream,
            Token(key),
            Interest::READABLE | Interest::WRITABLE,
        ) {
            log::warn!("conn {id} from {peer}: cannot register: {e}");
            core.stats.accepted += 1;
            core.emit(id, peer, None, EventKind::Online);
            core.stats.count_close(CloseReason::Reset);
            core.emit(id, peer, None, EventKind::Offline(CloseReason::Reset));
            return;
        }
        let cref = ConnRef {
            key: key32,
            generation: conn.generation(),
        };
        let Ok(timer) = core.wheel.try_insert(core.now + core.timeout_ms, cref) else {
            // Only a wheel holding 2^32 timers is full: refuse rather than panic.
            core.refuse(conn.stream, peer, id);
            return;
        };
        conn.timer = Some(timer);
        core.stats.accepted += 1;
        core.emit(id, peer, None, EventKind::Online);
        core.call_handler(&conn, cref, true, |h, ctx, info| h.on_online(ctx, info));
        if !core.out.is_empty() {
            let sent = conn.send(&core.out, core.max_output);
            core.out.clear();
            if let Err(reason) = sent {
                entry.insert(conn);
                core.close(&mut self.conns, key, reason);
                return;
            }
        }
        entry.insert(conn);
    }

    /// Carries out what handlers asked for that touches other connections:
    /// messages, closes, a stop. Closing may call `on_offline`, which may
    /// ask for more; every connection closes once, so this ends.
    fn flush_outbox(&mut self) {
        while !self.core.outbox.is_empty() {
            let mut outbox = std::mem::take(&mut self.core.outbox);
            for &(target, start, end) in &outbox.sends {
                let message = &outbox.bytes[start..end];
                self.core.targets.clear();
                match target {
                    Target::Conn(c) => self.core.targets.push(c),
                    Target::Clients { except } => self.core.targets.extend(
                        self.core
                            .presence
                            .iter()
                            .map(|(_, c)| c)
                            .filter(|c| Some(*c) != except),
                    ),
                }
                for i in 0..self.core.targets.len() {
                    let c = self.core.targets[i];
                    if !self.is_current(c) {
                        continue;
                    }
                    let key = c.key as usize;
                    if let Some(conn) = self.conns.get_mut(key) {
                        if let Err(reason) = conn.send(message, self.core.max_output) {
                            self.core.close(&mut self.conns, key, reason);
                        }
                    }
                }
            }
            for &(c, reason) in &outbox.closes {
                if self.is_current(c) {
                    self.core.close(&mut self.conns, c.key as usize, reason);
                }
            }
            if outbox.stop {
                self.stop.store(true, Ordering::Release);
            }
            outbox.bytes.clear();
            outbox.sends.clear();
            outbox.closes.clear();
            outbox.stop = false;
            // Keep the buffers for next time, unless hooks queued more.
            if self.core.outbox.is_empty() {
                self.core.outbox = outbox;
            }
        }
    }

    /// Reads what a connection has sent, answers it, and closes it on EOF,
    /// error or protocol violation.
    fn on_readable(&mut self, key: usize, peer_closed: bool) {
        let Server {
            conns,
            core,
            scratch,
            ..
        } = self;
        let Some(conn) = conns.get_mut(key) else {
            return;
        };
        if conn.closing.is_some() {
            return;
        }
        let cref = ConnRef {
            key: key as u32,
            generation: conn.generation(),
        };
        let mut close = None;
        for reads in 1..=READ_BUDGET + 1 {
            if reads > READ_BUDGET {
                core.again.push(cref);
                break;
            }
            match read_some(&mut conn.stream, scratch) {
                Ok(0) => {
                    close = Some(CloseReason::Closed);
                    break;
                }
                Ok(n) => {
                    if let Err(reason) = core.on_bytes(conn, cref, &scratch[..n]) {
                        close = Some(reason);
                        break;
                    }
                    // A short read emptied the socket's receive queue; on
                    // Linux new data (or a FIN) raises a new edge, so the
                    // read that would say WouldBlock can be skipped, as
                    // nginx does. A FIN already seen is read to the end.
                    if n < scratch.len() && !peer_closed {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    if e.raw_os_error() == Some(libc::ETIMEDOUT) {
                        // Not the peer's doing: our kernel gave up on it.
                        log::info!(
                            "conn {} from {}: {e}: TCP keepalive or TCP_USER_TIMEOUT gave up on the peer",
                            conn.id,
                            conn.peer
                        );
                    } else {
                        log::debug!("conn {} from {}: read: {e}", conn.id, conn.peer);
                    }
                    close = Some(CloseReason::Reset);
                    break;
                }
            }
        }
        // Everything this batch produced goes out in one write: now if the
        // connection is closing (the replies must precede its BYE), else
        // after every ready socket has been read (see `flush_replies`).
        if !core.out.is_empty() {
            if close.is_some() {
                let sent = conn.send(&core.out, core.max_output);
                if let Err(reason) = sent {
                    close = close.or(Some(reason));
                }
            } else {
                let start = core.replies.len();
                core.replies.extend_from_slice(&core.out);
                core.pending.push((cref, start, core.replies.len()));
            }
            core.out.clear();
        }
        if let Some(reason) = close {
            core.close(conns, key, reason);
        }
        for old in std::mem::take(&mut core.replaced) {
            let current = conns
                .get(old.key as usize)
                .is_some_and(|c| c.generation() == old.generation);
            if current {
                core.close(conns, old.key as usize, CloseReason::Replaced);
            }
        }
    }

    /// Writes the replies held back during the turn's reads: one write per
    /// connection that read something.
    fn flush_replies(&mut self) {
        for i in 0..self.core.pending.len() {
            let (c, start, end) = self.core.pending[i];
            if !self.is_current(c) {
                continue;
            }
            let key = c.key as usize;
            if let Some(conn) = self.conns.get_mut(key) {
                let sent = conn.send(&self.core.replies[start..end], self.core.max_output);
                if let Err(reason) = sent {
                    self.core.close(&mut self.conns, key, reason);
                }
            }
        }
        self.core.pending.clear();
        self.core.replies.clear();
    }

    fn on_writable(&mut self, key: usize) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if conn.closing.is_some() {
            return;
        }
        if let Err(reason) = conn.flush() {
            self.core.close(&mut self.conns, key, reason);
        }
    }

    /// Advances the wheel and deals with the connections whose deadline
    /// entry fired: re-arm the ones heard from since, close the others.
    fn expire(&mut self) {
        let now = self.core.clock.now();
        self.core.now = now;
        self.core.wheel.advance(now);
        self.core.advanced_to = now;
        while let Some((_, cref)) = self.core.wheel.poll_expired() {
            let key = cref.key as usize;
            match self.conns.get_mut(key) {
                Some(conn) if conn.generation() == cref.generation => conn.timer = None,
                _ => continue,
            }
            if !self.rearm_if_alive(key, cref) {
                // A last look before declaring it dead: a heartbeat may have
                // reached the socket since this turn's poll returned.
                self.on_readable(key, false);
                if !self.rearm_if_alive(key, cref) {
                    self.core.close(&mut self.conns, key, CloseReason::Timeout);
                }
            }
        }
    }

    /// Re-arms the deadline of a connection heard from within the timeout.
    /// False if it is silent past its deadline (or already closing).
    fn rearm_if_alive(&mut self, key: usize, cref: ConnRef) -> bool {
        let core = &mut self.core;
        let Some(conn) = self.conns.get_mut(key) else {
            return true;
        };
        if conn.closing.is_some() {
            return true;
        }
        let deadline = conn.last_seen.saturating_add(core.timeout_ms);
        if deadline > core.now {
            // The entry that fired was just removed, so there is room.
            conn.timer = core.wheel.try_insert(deadline, cref).ok();
            return conn.timer.is_some();
        }
        false
    }

    /// Removes the connections closed during this turn.
    fn reap(&mut self) {
        for key in self.core.closing.drain(..) {
            if let Some(mut conn) = self.conns.try_remove(key) {
                // Read what the peer sent and we will not process, so the
                // close sends a FIN after our BYE rather than a reset that
                // could make the peer drop the BYE unread.
                let _ = read_some(&mut conn.stream, &mut self.scratch);
                // Dropping closes the socket, which also takes it out of
                // the epoll set.
            }
        }
    }

    fn report(&mut self, last: &mut (Stats, u64)) {
        let now = self.core.clock.now();
        let stats = self.stats();
        log::info!(
            "{}",
            stats.line(&last.0, now.saturating_sub(last.1), crate::sys::rss_bytes())
        );
        *last = (stats, now);
    }

    /// The counters as of now.
    pub fn stats(&self) -> Stats {
        let mut stats = self.core.stats.clone();
        stats.connections = self.conns.len();
        stats.clients = self.core.presence.len();
        stats
    }

    fn shutdown(mut self, last: &mut (Stats, u64)) -> Stats {
        self.listener = None;
        log::info!("shutting down: closing {} connections", self.conns.len());
        let keys: Vec<usize> = self.conns.iter().map(|(key, _)| key).collect();
        for key in keys {
            self.core.close(&mut self.conns, key, CloseReason::Shutdown);
        }
        self.flush_outbox();
        self.reap();
        if let Err(e) = self.core.sink.flush() {
            log::error!("cannot write events: {e}");
        }
        self.report(last);
        self.stats()
    }
}

impl<P: Protocol, H: Handler> Core<P, H> {
    /// Calls a handler hook for `conn` with a fresh [`Context`].
    fn call_handler(
        &mut self,
        conn: &Conn,
        cref: ConnRef,
        can_reply: bool,
        hook: impl FnOnce(&mut H, &mut Context<'_>, &ConnInfo<'_>),
    ) {
        let info = ConnInfo {
            id: ConnId(cref),
            number: conn.id,
            peer: conn.peer,
            client: conn.client.as_deref(),
        };
        let mut ctx = Context {
            current: Some(cref),
            can_reply,
            out: &mut self.out,
            outbox: &mut self.outbox,
            presence: &self.presence,
            protocol: &self.protocol,
        };
        hook(&mut self.handler, &mut ctx, &info);
    }

    fn next_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    fn emit(&mut self, conn: u64, peer: SocketAddr, client: Option<&str>, kind: EventKind) {
        self.sink.emit(&Event {
            conn,
            peer,
            client,
            kind,
        });
    }

    /// Turns one read's bytes (after any partial frame kept from before)
    /// into frames and replies. Keeps an incomplete frame for next time.
    fn on_bytes(&mut self, conn: &mut Conn, cref: ConnRef, data: &[u8]) -> Result<(), CloseReason> {
        let mut pending = conn.input.take();
        let from_pending = !pending.is_empty();
        if from_pending {
            pending.extend_from_slice(data);
        }
        let buf = if from_pending { &pending[..] } else { data };
        let mut used = 0;
        let mut result = Ok(());
        let mut heard = false;
        while used < buf.len() {
            match self.protocol.decode(&buf[used..]) {
                Ok(Some((frame, n))) => {
                    used += n;
                    heard = true;
                    if let Err(reason) = self.on_frame(conn, cref, frame) {
                        result = Err(reason);
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    log::warn!(
                        "conn {} from {}: {e}; closing with BYE {}",
                        conn.id,
                        conn.peer,
                        e.close_reason()
                    );
                    result = Err(e.close_reason());
                    break;
                }
            }
        }
        if heard {
            conn.last_seen = self.now;
        }
        if result.is_ok() {
            if from_pending {
                pending.drain(..used);
                conn.input.put(pending);
            } else if used < data.len() {
                conn.input.put(data[used..].to_vec());
            }
        }
        result
    }

    fn on_frame(
        &mut self,
        conn: &mut Conn,
        cref: ConnRef,
        frame: Frame<'_>,
    ) -> Result<(), CloseReason> {
        self.stats.frames += 1;
        match frame {
            Frame::Ping { token } => {
                self.stats.heartbeats += 1;
                let count = conn.pings.record(self.now, self.interval_ms);
                if let Some(max) = self.max_pings.filter(|&max| count > max) {
                    log::warn!(
                        "conn {} from {}: more than {max} heartbeats per interval; closing",
                        conn.id,
                        conn.peer
                    );
                    return Err(CloseReason::TooManyPings);
                }
                if self
                    .protocol
                    .max_pongs_per_interval()
                    .is_none_or(|max| count <= max)
                {
                    self.protocol.encode(&Reply::Pong { token }, &mut self.out);
                }
            }
            Frame::Hello { client_id } => {
                let welcome = Reply::Welcome {
                    client_id,
                    interval_ms: self.interval_ms,
                    timeout_ms: self.timeout_ms,
                };
                self.protocol.encode(&welcome, &mut self.out);
                if conn.client.as_deref() != Some(client_id) {
                    if let Some(old) = conn.client.take() {
                        self.presence.release(&old, cref);
                    }
                    let (id, previous) = self.presence.claim(client_id, cref);
                    if let Some(previous) = previous {
                        self.replaced.push(previous);
                    }
                    conn.client = Some(id);
                    self.emit(conn.id, conn.peer, Some(client_id), EventKind::Hello);
                    self.call_handler(conn, cref, true, |h, ctx, info| h.on_hello(ctx, info));
                }
            }
            Frame::Message(message) => {
                self.call_handler(conn, cref, true, |h, ctx, info| {
                    h.on_message(ctx, info, message)
                });
            }
            Frame::Quit => {
                self.protocol.encode(&Reply::Quit, &mut self.out);
                return Err(CloseReason::Closed);
            }
            Frame::Unknown { command } => {
                self.protocol
                    .encode(&Reply::Unknown { command }, &mut self.out);
            }
        }
        Ok(())
    }

    /// Closes a connection: `BYE` where the peer can still hear it, the
    /// offline event, and removal at the end of the turn. Idempotent.
    fn close(&mut self, conns: &mut Slab<Conn>, key: usize, reason: CloseReason) {
        let Some(conn) = conns.get_mut(key) else {
            return;
        };
        if conn.closing.is_some() {
            return;
        }
        conn.closing = Some(reason);
        if reason.says_bye() {
            self.bye.clear();
            self.protocol.encode(&Reply::Bye(reason), &mut self.bye);
            // Best effort: the connection is going either way.
            let _ = conn.send(&self.bye, usize::MAX);
        }
        if let Some(timer) = conn.timer.take() {
            self.wheel.cancel(timer);
        }
        let cref = ConnRef {
            key: key as u32,
            generation: conn.generation(),
        };
        if let Some(id) = &conn.client {
            self.presence.release(id, cref);
        }
        self.stats.count_close(reason);
        self.sink.emit(&Event {
            conn: conn.id,
            peer: conn.peer,
            client: conn.client.as_deref(),
            kind: EventKind::Offline(reason),
        });
        self.call_handler(conn, cref, false, |h, ctx, info| {
            h.on_offline(ctx, info, reason)
        });
        self.closing.push(key);
    }

    /// Says `BYE overloaded` to a connection that will not be served.
    fn refuse(&mut self, mut stream: TcpStream, peer: SocketAddr, id: u64) {
        use std::io::Write;
        self.stats.accepted += 1;
        self.emit(id, peer, None, EventKind::Online);
        self.bye.clear();
        self.protocol
            .encode(&Reply::Bye(CloseReason::Overloaded), &mut self.bye);
        let _ = stream.write(&self.bye);
        self.stats.count_close(CloseReason::Overloaded);
        self.emit(id, peer, None, EventKind::Offline(CloseReason::Overloaded));
    }
}

fn out_of_descriptors(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

/// Resolves `addr` (an IP address and port, or a host name and port) to
/// the first socket address it names.
pub fn resolve(addr: &str) -> Result<SocketAddr, Error> {
    addr.to_socket_addrs()
        .map_err(|e| Error::with_source(ErrorKind::Bind, format!("cannot resolve {addr:?}"), e))?
        .next()
        .ok_or_else(|| Error::new(ErrorKind::Bind, format!("{addr:?} names no address")))
}
