//! The event loop: one thread, one mio `Poll`, every socket in one `Slab`,
//! every deadline in one timing wheel. Thin: the protocol's rules are in
//! the pure [`Sessions`]; this file moves bytes and time between it and the
//! kernel.
//!
//! Each turn of the loop:
//! 1. waits in `poll` until a socket is ready or the next wheel tick, stats
//!    line or accept retry is due, and reads the clock: the turn's time;
//! 2. accepts, writes pending output, and lists the connections to read:
//!    the ones whose read budget ran out last turn, then the ready ones,
//!    each once;
//! 3. reads each listed connection, at most [`READ_BUDGET`] reads per turn,
//!    and hands the bytes to the session;
//! 4. writes what the sessions produced: every reply of the turn after every
//!    ready socket has been read (Redis's write-before-sleep: reading the
//!    whole batch first keeps the loop from being interrupted by the peers
//!    its writes wake);
//! 5. only then advances the wheel and expires deadlines, so a heartbeat that
//!    has already arrived is never lost to a timeout; a connection silent
//!    past its deadline gets one last look at its socket first;
//! 6. removes the connections closed during the turn (a slab key is never
//!    reused within the batch of events that might still name it), and
//!    hands the turn's presence events to the sink.
//!
//! # Time
//! The clock is read once per turn for the turn's time (the wheel, expiry,
//! stats, accept retries), once before sleeping (so the sleep ends on the
//! tick, however long the turn took), and once per read or accept that
//! brought something: an input is stamped with a reading taken after it left
//! the kernel and rounded up ([`Clock::stamp`]), never with the turn's
//! earlier time, so a deadline counted from it is never early however long
//! the turn takes; the turn's time rounds down. See [`crate::time`].
//!
//! Deadlines are lazy: a frame only moves the session's `last_seen`. When a
//! connection's wheel entry fires, the session compares `last_seen +
//! timeout` with the turn's time and the loop re-arms the entry if the peer
//! has been heard from since. A connection beating every interval costs one
//! wheel operation per timeout, not one per heartbeat.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

use super::conn::{read_some, Conn};
use super::session::{ConnRef, Deadline, Sessions};
use super::stats::TurnTimes;
use super::tls::TlsConns;
use super::{Handler, Stats};
use crate::cluster::link::ClusterLink;
use crate::cluster::{Change, Output};
use crate::error::{Error, ErrorKind};
use crate::events::{Event, EventSink, Start, STOP_GRACE};
use crate::protocol::{CloseReason, Protocol};
use crate::time::{Clock, Tick};
use crate::wheel::Wheel;

// The loop's tokens: connections are slab keys (below 2^32); the cluster's
// two Redis links are 2^40 and 2^40 + 1, the workers' hand-off socket
// 2^40 + 2; the admin endpoint's listener and connections start at
// usize::MAX / 2; listeners, signals and the waker are at the very top.
pub(crate) const WAKER: Token = Token(usize::MAX);
pub(crate) const SIGNALS: Token = Token(usize::MAX - 1);
/// Listener `i` has token `FIRST_LISTENER - i`. Connection tokens are slab
/// keys, which fit in a `u32`, so the two never meet.
pub(crate) const FIRST_LISTENER: usize = usize::MAX - 2;

/// The shared read buffer: one per server, not one per connection.
const READ_CHUNK: usize = 64 * 1024;
/// Reads per connection per loop turn, so one busy peer cannot starve the
/// others; a connection with more to read is taken up again next turn.
pub(crate) const READ_BUDGET: u8 = 4;
/// Expired deadlines dealt with per turn, and connections closed per slice
/// of a shutdown. When a paused server (or a dropped NAT) lets 100,000
/// deadlines pass at once, the loop goes on polling (with a zero timeout)
/// between slices, so the connections still alive keep being answered.
/// Each expiry costs a last look, a `BYE` and a close (about 40 µs in a
/// debug build): 2048 keep a turn near 100 ms there (`tests/burst.rs`).
pub(crate) const EXPIRE_BUDGET: usize = 2048;

/// A duration in ticks as the flags take it (`30s`, `1500ms`, `90m`).
fn readable(ms: Tick) -> String {
    crate::duration::format_duration(Duration::from_millis(ms))
}

/// What the loop carries from one step of a turn to the next.
#[derive(Debug, Default)]
struct Turn {
    /// Counts turns, so a connection knows whether its read budget is this
    /// turn's (see `ReadState`).
    number: u16,
    /// Connections to read this turn, each once (`ReadState::is_queued`).
    reads: Vec<ConnRef>,
    /// Connections whose read budget ran out with input left: read first
    /// next turn.
    again: Vec<ConnRef>,
    /// Keys closed during this turn, removed at its end.
    closing: Vec<usize>,
    /// The expiry budget ran out with expired entries left: poll without
    /// sleeping and expire the rest next turn.
    expiring: bool,
}

mod accept;
mod admin;
mod handoff;
mod turn;

use accept::Accepting;
pub(crate) use admin::{AdminState, Query};

/// What a listener's connections speak: their wire (see
/// [`Sessions::with_wires`]) and whether TLS is under it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Listening {
    pub wire: u8,
    pub tls: bool,
    /// The scheme it was given with, if any (for the log).
    pub scheme: Option<super::Scheme>,
}

/// Settings the loop applies itself.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub max_conns: usize,
    pub max_output: usize,
    pub stats_every: Option<Tick>,
    pub max_conns_per_ip: Option<u32>,
    pub max_connects_per_ip: Option<super::ConnectRate>,
}

/// The event loop of a [`Server`](super::Server).
pub(crate) struct Driver<P: Protocol, H: Handler> {
    poll: Poll,
    events: Option<Events>,
    listeners: Vec<TcpListener>,
    /// What each listener's connections speak.
    listening: Vec<Listening>,
    local_addrs: Vec<SocketAddr>,
    conns: Slab<Conn>,
    sessions: Sessions<P, H>,
    wheel: Wheel<ConnRef>,
    /// The time the wheel was last advanced to.
    advanced_to: Tick,
    clock: Clock,
    /// The turn's time.
    now: Tick,
    turn: Turn,
    accepting: Accepting,
    limits: Limits,
    scratch: Vec<u8>,
    sink: EventSink,
    signals: Option<signal_hook_mio::v1_0::Signals>,
    /// SIGUSR1 asked for a stats line.
    stats_asked: bool,
    stop: Arc<AtomicBool>,
    /// Presence shared with other nodes through Redis, when configured.
    cluster: Option<ClusterLink>,
    /// The TLS connections beside `conns`, by slab key (empty when off).
    tls: TlsConns,
    /// As one of several workers, the socket connections are handed over on.
    handoff: Option<Box<handoff::Port>>,
    /// Bytes in and out, turn times (for stats and metrics).
    traffic: Traffic,
    /// The admin endpoint and the handles' queries.
    admin: AdminState,
}

/// What the loop itself counts.
#[derive(Debug, Default)]
struct Traffic {
    bytes_in: u64,
    bytes_out: u64,
    turns: TurnTimes,
    /// When the current turn began (`poll` returned), in microseconds.
    turn_began_us: Option<u64>,
}

impl<P: Protocol, H: Handler> Driver<P, H> {
    /// Registers the listeners (and signals, if given) with a new loop.
    pub fn new(
        poll: Poll,
        listeners: Vec<(TcpListener, Listening)>,
        sessions: Sessions<P, H>,
        wheel: Wheel<ConnRef>,
        limits: Limits,
        signals: Option<signal_hook_mio::v1_0::Signals>,
        stop: Arc<AtomicBool>,
    ) -> Result<Self, Error> {
        let (mut listeners, listening): (Vec<TcpListener>, Vec<Listening>) =
            listeners.into_iter().unzip();
        let mut local_addrs = Vec::with_capacity(listeners.len());
        for (i, listener) in listeners.iter_mut().enumerate() {
            local_addrs.push(listener.local_addr().map_err(|e| {
                Error::with_source(ErrorKind::Bind, "cannot read the listening address", e)
            })?);
            poll.registry()
                .register(listener, Token(FIRST_LISTENER - i), Interest::READABLE)
                .map_err(|e| {
                    Error::with_source(ErrorKind::Io, "cannot register the listener", e)
                })?;
        }
        let mut signals = signals;
        if let Some(s) = &mut signals {
            poll.registry()
                .register(s, SIGNALS, Interest::READABLE)
                .map_err(|e| Error::with_source(ErrorKind::Io, "cannot register signals", e))?;
        }
        let clock = Clock::new();
        Ok(Driver {
            admin: AdminState::new(&clock),
            poll,
            events: Some(Events::with_capacity(1024)),
            listeners,
            listening,
            local_addrs,
            conns: Slab::with_capacity(super::INITIAL_ROOM),
            sessions,
            wheel,
            advanced_to: 0,
            clock,
            now: 0,
            turn: Turn::default(),
            accepting: Accepting::new(&limits),
            limits,
            scratch: vec![0; READ_CHUNK],
            sink: EventSink::log_only(),
            signals,
            stats_asked: false,
            stop,
            traffic: Traffic::default(),
            cluster: None,
            tls: TlsConns::default(),
            handoff: None,
        })
    }

    /// Shares presence with other nodes through Redis (see [`crate::cluster`]).
    pub fn set_cluster(&mut self, cluster: ClusterLink) {
        self.cluster = Some(cluster);
    }

    /// The admin endpoint and the handles' queries.
    pub fn admin(&mut self) -> &mut AdminState {
        &mut self.admin
    }

    /// Serves the admin endpoint on `listener` (see `driver::admin`).
    pub fn listen_admin(
        &mut self,
        listener: TcpListener,
        token: Option<String>,
    ) -> io::Result<SocketAddr> {
        let now = self.clock.now();
        self.admin
            .listen(self.poll.registry(), listener, token, now)
    }

    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.local_addr()
    }

    pub fn set_events(&mut self, sink: EventSink) {
        if let Some(c) = &mut self.cluster {
            c.set_run(sink.run_id().to_string());
        }
        self.sink = sink;
    }

    /// The run id of the events (and of the cluster's records).
    pub fn run_id(&self) -> crate::events::RunId {
        self.sink.run_id()
    }

    /// Serves TLS with `config` (`None`: plain TCP).
    pub fn set_tls(&mut self, config: Option<Arc<rustls::ServerConfig>>) {
        self.tls = TlsConns::new(config);
    }

    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.local_addrs
    }

    pub fn max_conns(&self) -> usize {
        self.limits.max_conns
    }

    /// The counters as of now.
    pub fn stats(&self) -> Stats {
        let mut stats = self.sessions.stats().clone();
        stats.connections = self.conns.len();
        stats.clients = self.sessions.online_count();
        stats.bytes_in = self.traffic.bytes_in;
        stats.bytes_out = self.traffic.bytes_out;
        stats.turns = self.traffic.turns.clone();
        stats.wheel_entries = self.wheel.len();
        stats.max_conns = self.limits.max_conns;
        stats.events = self.sink.counters().map(|c| super::stats::EventCounts {
            queued: c.queued(),
            dropped: c.dropped(),
            written: c.written(),
            write_errors: c.write_errors(),
        });
        stats.cluster_up = self.cluster.as_ref().map(|c| c.is_up());
        stats
    }

    /// Serves until `stop` is set (by a handle, a signal or a handler).
    pub fn run(mut self) -> Result<Stats, Error> {
        let settings = *self.sessions.settings();
        log::info!(
            "listening on {} (interval {}, timeout {}, tick {}, max {} connections)",
            self.addrs_text(),
            readable(settings.interval_ms),
            readable(settings.timeout_ms),
            readable(self.wheel.resolution_ms()),
            self.limits.max_conns,
        );
        self.start_record(&settings);
        let mut last_report = (self.stats(), self.clock.now());
        let mut next_stats = self.limits.stats_every.map(|every| last_report.1 + every);
        loop {
            self.wait(next_stats)?;
            self.take_events();
            self.read_listed();
            self.transmit();
            if self.accepting.pending || self.accepting.retry_at.is_some_and(|t| t <= self.now) {
                self.accepting.retry_at = None;
                self.accept_all();
            }
            self.run_cluster();
            self.expire();
            self.admin_expire();
            self.transmit();
            self.end_turn();
            if std::mem::take(&mut self.stats_asked) {
                self.report(&mut last_report);
            }
            if let Some(at) = next_stats.filter(|&at| at <= self.now) {
                self.report(&mut last_report);
                next_stats = self
                    .limits
                    .stats_every
                    .map(|every| at.max(self.now) + every);
            }
            if self.stop.load(Ordering::Acquire) {
                return Ok(self.shutdown(&mut last_report));
            }
        }
    }

    /// Sleeps in `poll` until something is ready or due; sets the turn's time.
    fn wait(&mut self, next_stats: Option<Tick>) -> Result<(), Error> {
        // The reading that ends this turn, before sleeping, also times it.
        let before_us = self.clock.now_us();
        if let Some(began) = self.traffic.turn_began_us {
            self.traffic.turns.record(before_us.saturating_sub(began));
        }
        let timeout = self.poll_timeout(next_stats, before_us / 1000);
        let mut events = self
            .events
            .take()
            .unwrap_or_else(|| Events::with_capacity(1024));
        let polled = self.poll.poll(&mut events, timeout);
        self.events = Some(events);
        // `now_us / 1000` is `Clock::now`: whole milliseconds, rounded down.
        let now_us = self.clock.now_us();
        self.now = now_us / 1000;
        self.traffic.turn_began_us = Some(now_us);
        self.sessions.handle_unix_time(crate::auth::unix_now());
        self.turn.number = self.turn.number.wrapping_add(1);
        match polled {
            Err(e) if e.kind() != io::ErrorKind::Interrupted => {
                Err(Error::with_source(ErrorKind::Io, "poll failed", e))
            }
            _ => Ok(()),
        }
    }

    /// How long `poll` may sleep: until the next wheel tick, the next stats
    /// line or the next accept retry, and not at all if work is left over.
    fn poll_timeout(&self, next_stats: Option<Tick>, now: Tick) -> Option<Duration> {
        if !self.turn.again.is_empty() || self.accepting.pending || self.turn.expiring {
            return Some(Duration::ZERO);
        }
        let tick = (!self.wheel.is_empty()).then(|| self.wheel.next_tick_ms(self.advanced_to));
        let cluster = self.cluster.as_ref().and_then(ClusterLink::poll_timeout);
        let hello = self.sessions.next_hello_deadline();
        let at = [
            tick,
            next_stats,
            self.accepting.retry_at,
            self.admin.next_deadline(),
            cluster,
            self.handoff_retry_at(),
            hello,
        ]
        .into_iter()
        .flatten()
        .min()?;
        Some(Duration::from_millis(at.saturating_sub(now)))
    }

    /// Goes through the events `poll` returned: accepts, writes, signals,
    /// and the list of connections to read (last turn's leftovers first).
    fn take_events(&mut self) {
        self.turn.reads.append(&mut self.turn.again);
        let Some(events) = self.events.take() else {
            return;
        };
        for event in events.iter() {
            match event.token() {
                WAKER => self.answer_queries(),
                SIGNALS => self.on_signals(),
                token if ClusterLink::owns(token) => {
                    if let Some(c) = &mut self.cluster {
                        c.handle_ready(self.poll.registry(), event, self.now);
                    }
                }
                t if admin::is_admin(t) => self.on_admin_event(t),
                handoff::HANDOFF => self.accept_handoff_peers(),
                t if handoff::is_peer(t) => self.take_handoffs(t),
                Token(t) if t <= FIRST_LISTENER && FIRST_LISTENER - t < self.listeners.len() => {
                    self.accept_from(FIRST_LISTENER - t)
                }
                Token(key) => {
                    let Some(conn) = self.conns.get_mut(key) else {
                        continue;
                    };
                    // A FIN is seen once: remember it, so the read that
                    // reaches it is not skipped as a drained socket.
                    if event.is_read_closed() {
                        conn.read.mark_fin();
                    }
                    if (event.is_readable() || event.is_read_closed() || event.is_error())
                        && !conn.read.is_queued()
                    {
                        conn.read.set_queued(true);
                        self.turn.reads.push(conn.session.conn_ref(key as u32));
                    }
                    if event.is_writable() && conn.session.is_open() {
                        match conn.flush_via(self.tls.get_mut(key)) {
                            Ok(n) => self.traffic.bytes_out += n as u64,
                            Err(reason) => self.close(key, reason),
                        }
                    }
                }
            }
        }
        self.events = Some(events);
    }

    /// Reads every listed connection once.
    fn read_listed(&mut self) {
        let mut reads = std::mem::take(&mut self.turn.reads);
        for &c in &reads {
            if let Some(conn) = self.conns.get_mut(c.key as usize) {
                if conn.session.generation() == c.generation {
                    conn.read.set_queued(false);
                    self.read(c.key as usize);
                }
            }
        }
        reads.clear();
        self.turn.reads = reads;
    }

    /// Reads what connection `key` has sent, within what is left of its
    /// read budget for this turn, and hands it to its session.
    fn read(&mut self, key: usize) {
        let Driver {
            conns,
            sessions,
            scratch,
            clock,
            turn,
            traffic,
            tls,
            ..
        } = self;
        let Some(conn) = conns.get_mut(key) else {
            return;
        };
        if !conn.session.is_open() {
            return;
        }
        let mut end = None;
        // Replies of earlier reads this call wait in the sessions' buffer,
        // not yet in the connection's: both count against the output cap.
        let queued_before = sessions.queued_len();
        loop {
            if !conn.read.take_read(turn.number, READ_BUDGET) {
                if !conn.read.is_queued() {
                    conn.read.set_queued(true);
                    turn.again.push(conn.session.conn_ref(key as u32));
                }
                break;
            }
            match conn.receive(tls.get_mut(key), scratch) {
                Ok(0) => {
                    end = Some(CloseReason::Closed);
                    break;
                }
                Ok(n) => {
                    traffic.bytes_in += n as u64;
                    let now = clock.stamp();
                    let waiting =
                        conn.output.len() + sessions.queued_len().saturating_sub(queued_before);
                    let data = &scratch[..n];
                    if !sessions.handle_bytes_after(
                        now,
                        key as u32,
                        &mut conn.session,
                        data,
                        waiting,
                    ) {
                        break;
                    }
                    // A short read emptied the socket's receive queue; on
                    // Linux new data (or a FIN) raises a new edge, so the
                    // read that would say WouldBlock can be skipped, as
                    // nginx does. A FIN already seen is read to the end.
                    if n < scratch.len() && !conn.read.saw_fin() {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    let number = conn.session.number();
                    let peer = conn.session.peer();
                    if e.raw_os_error() == Some(libc::ETIMEDOUT) {
                        // Not the peer's doing: our kernel gave up on it.
                        log::info!(
                            "conn {number} from {peer}: {e}: TCP keepalive or TCP_USER_TIMEOUT gave up on the peer"
                        );
                    } else {
                        log::debug!("conn {number} from {peer}: read: {e}");
                    }
                    end = Some(CloseReason::Reset);
                    break;
                }
            }
        }
        if let Some(reason) = end {
            self.close(key, reason);
        } else if sessions.timers_can_move_earlier() {
            // The φ detector may have learned a faster rhythm, or a
            // WebSocket's first ping is due: the lazy wheel entry must not
            // fire later than the new deadline.
            let deadline = sessions.next_timer(key as u32, &conn.session);
            if let Some(timer) = conn.timer {
                if self
                    .wheel
                    .deadline(timer)
                    .is_some_and(|armed| deadline < armed)
                {
                    self.wheel.reset(timer, deadline);
                }
            }
        }
        self.apply_closes();
    }

    /// Closes what the sessions asked to close (takeovers, bad frames,
    /// handlers' requests), until they ask for nothing more.
    fn apply_closes(&mut self) {
        while let Some((c, reason)) = self.sessions.poll_close() {
            if self.is_current(c) {
                self.close(c.key as usize, reason);
            }
        }
    }

    fn is_current(&self, c: ConnRef) -> bool {
        self.conns
            .get(c.key as usize)
            .is_some_and(|conn| conn.session.generation() == c.generation)
    }

    /// Closes connection `key`: its session says goodbye (queued), its timer
    /// goes, and it is removed at the end of the turn. Idempotent.
    fn close(&mut self, key: usize, reason: CloseReason) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if !conn.session.is_open() {
            return;
        }
        if let Some(a) = &mut self.accepting.addresses {
            a.handle_close(conn.session.peer().ip());
        }
        self.sessions
            .handle_close(key as u32, &mut conn.session, reason);
        if let Some(timer) = conn.timer.take() {
            self.wheel.cancel(timer);
        }
        self.turn.closing.push(key);
    }

    /// Queues the events' `start` record: the run, the addresses, settings.
    fn start_record(&mut self, settings: &super::session::Settings) {
        let max_conns = u64::try_from(self.limits.max_conns).unwrap_or(u64::MAX);
        let values = [
            ("interval_ms", settings.interval_ms),
            ("timeout_ms", settings.timeout_ms),
            ("tick_ms", self.wheel.resolution_ms()),
            ("max_conns", max_conns),
            ("max_pings", settings.max_pings.map_or(0, u64::from)),
        ];
        let addrs = self.local_addrs.clone();
        let schemes: Vec<Option<&str>> = self
            .listening
            .iter()
            .map(|l| l.scheme.map(super::Scheme::as_str))
            .collect();
        self.sink.start(&Start {
            version: env!("CARGO_PKG_VERSION"),
            listen: &addrs,
            schemes: &schemes,
            protocol: self.sessions.protocol_name(),
            settings: &values,
        });
    }

    /// The listening addresses, each with its scheme when it has one:
    /// `127.0.0.1:7700, ws://127.0.0.1:7701`.
    fn addrs_text(&self) -> String {
        let addrs: Vec<String> = self
            .local_addrs
            .iter()
            .zip(&self.listening)
            .map(|(a, l)| match l.scheme {
                Some(s) => format!("{}://{a}", s.as_str()),
                None => a.to_string(),
            })
            .collect();
        addrs.join(", ")
    }

    fn report(&mut self, last: &mut (Stats, Tick)) {
        let stats = self.stats();
        log::info!(
            "{}",
            stats.line(
                &last.0,
                self.now.saturating_sub(last.1),
                crate::sys::rss_bytes()
            )
        );
        *last = (stats, self.now);
    }

    fn shutdown(mut self, last: &mut (Stats, Tick)) -> Stats {
        self.listeners.clear();
        self.drop_handoffs();
        log::info!("shutting down: closing {} connections", self.conns.len());
        let keys: Vec<usize> = self.conns.iter().map(|(key, _)| key).collect();
        // In slices, so the output queue and the events of one slice are
        // written and freed before the next.
        for slice in keys.chunks(EXPIRE_BUDGET) {
            for &key in slice {
                self.close(key, CloseReason::Shutdown);
            }
            self.transmit();
            self.end_turn();
        }
        self.transmit();
        self.end_turn();
        if let Some(c) = &mut self.cluster {
            c.drain(self.poll.registry(), self.now, Duration::from_secs(1));
        }
        self.now = self.clock.now();
        self.report(last);
        let stats = self.stats();
        if let Some(r) = self.sink.stop(stats.accepted, STOP_GRACE) {
            log::info!(
                "events: {} lines written, {} dropped, {} not written at exit",
                r.written,
                r.dropped,
                r.unwritten
            );
        }
        stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::{ConnInfo, Context, Server};
    use std::io::Write;
    use std::sync::mpsc;

    /// Tells a channel why each connection went offline.
    struct Offline(mpsc::Sender<CloseReason>);

    impl Handler for Offline {
        fn on_message(&mut self, _: &mut Context<'_>, _: &ConnInfo<'_>, _: &[u8]) {}
        fn on_offline(&mut self, _: &mut Context<'_>, _: &ConnInfo<'_>, reason: CloseReason) {
            let _ = self.0.send(reason);
        }
    }

    fn server(
        timeout: Duration,
    ) -> (
        Server<crate::LineProtocol, Offline>,
        mpsc::Receiver<CloseReason>,
    ) {
        let (tx, rx) = mpsc::channel();
        let server = Server::builder()
            .listen("127.0.0.1:0")
            .interval(timeout / 2)
            .timeout(timeout)
            .stats_interval(None)
            .handler(Offline(tx))
            .build()
            .unwrap();
        (server, rx)
    }

    /// Accepts what waits in the backlog; the key of the first connection.
    fn accept_one(d: &mut Driver<crate::LineProtocol, Offline>) -> usize {
        for _ in 0..200 {
            d.accept_all();
            if let Some((key, _)) = d.conns.iter().next() {
                return key;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        panic!("nothing to accept");
    }

    #[test]
    fn the_loop_s_tokens_never_meet() {
        // Every kind of socket in the one Poll has a token of its own:
        // a clash sends one kind's readiness to another's handler.
        let specials = [
            WAKER.0,
            SIGNALS.0,
            FIRST_LISTENER,
            crate::cluster::link::COMMANDS.0,
            crate::cluster::link::SUBSCRIBER.0,
            handoff::HANDOFF.0,
            handoff::HANDOFF_PEERS,
            handoff::HANDOFF_PEERS + (1 << 16) - 1,
        ];
        for (i, a) in specials.iter().enumerate() {
            assert!(*a > u32::MAX as usize, "{a} could be a slab key");
            assert!(!admin::is_admin(Token(*a)), "{a} is in the admin range");
            for b in &specials[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }

    #[test]
    fn a_fin_behind_the_read_budget_is_still_read() {
        // 1000 bytes read 64 at a time, 4 reads a turn: the FIN, reported
        // once by edge-triggered epoll with the first batch, is reached
        // four turns later, after a short read.
        let (mut server, offline) = server(Duration::from_secs(20));
        server.driver.scratch.truncate(64);
        let mut peer = std::net::TcpStream::connect(server.local_addr()).unwrap();
        peer.write_all(&b"x\n".repeat(500)).unwrap();
        peer.shutdown(std::net::Shutdown::Write).unwrap();
        let stop = server.handle();
        let running = std::thread::spawn(move || server.run());
        let reason = offline.recv_timeout(Duration::from_secs(5));
        stop.shutdown();
        running.join().unwrap().unwrap();
        assert_eq!(reason, Ok(CloseReason::Closed), "the FIN was missed");
    }

    #[test]
    fn the_read_budget_is_per_turn_not_per_call() {
        let (mut server, _offline) = server(Duration::from_secs(20));
        let d = &mut server.driver;
        d.scratch.truncate(64);
        let mut peer = std::net::TcpStream::connect(d.local_addrs()[0]).unwrap();
        peer.write_all(&b"x\n".repeat(500)).unwrap();
        let key = accept_one(d);
        std::thread::sleep(Duration::from_millis(50));
        let frames = |d: &Driver<_, _>| d.sessions.stats().frames;
        // Four reads of 64 bytes: 128 lines, then the budget is spent...
        d.read(key);
        assert_eq!(frames(d), 128);
        assert_eq!(d.turn.again.len(), 1);
        // ...for the whole turn, whoever asks (the event list, a last look).
        d.read(key);
        assert_eq!(frames(d), 128);
        assert_eq!(d.turn.again.len(), 1, "queued for next turn once");
        // The next turn reads it first, with a fresh budget.
        d.turn.number += 1;
        d.turn.again.clear();
        d.conns[key].read.set_queued(false);
        d.read(key);
        assert_eq!(frames(d), 256);
    }

    #[test]
    fn a_frame_is_stamped_when_it_is_read_not_when_the_turn_began() {
        let (mut server, _offline) = server(Duration::from_secs(20));
        let d = &mut server.driver;
        let mut peer = std::net::TcpStream::connect(d.local_addrs()[0]).unwrap();
        let key = accept_one(d);
        // The turn began at 0; the heartbeat is read 60 ms later.
        d.now = 0;
        peer.write_all(b"PING\n").unwrap();
        std::thread::sleep(Duration::from_millis(60));
        let before_read = d.clock.now();
        d.read(key);
        assert!(
            d.conns[key].session.last_seen() >= before_read,
            "stamped {} before the read at {before_read}",
            d.conns[key].session.last_seen()
        );
    }
}
