//! The load driver: one mio loop, every session in one `Slab`, every
//! deadline in one [`Wheel`].
//!
//! This is the only load code that touches sockets or reads the clock.
//! Each connection is a [`Session`], the same state machine `vigil client`
//! runs (`HELLO`, heartbeats, dead-server detection, reconnects with
//! jittered backoff), driven the way [`crate::client::driver`] drives its
//! one session; the driver only adds the bookkeeping of what it measures.
//!
//! - **Time.** The loop reads the clock in µs. Sessions get whole ms (the
//!   same clock, rounded down), so a ping due at `due_ms` was due at
//!   `due_ms * 1000` µs, never after the µs time it was sent at.
//! - **Deadlines.** The wheel has 1 ms ticks: a session's
//!   [`poll_timeout`](Session::poll_timeout) is its one wheel entry, moved
//!   with `reset` whenever it changes. The wheel also holds each
//!   connection's start time during the ramp. `epoll_wait` sleeps in
//!   whole ms (mio rounds up), which would let a beat go out up to 1 ms
//!   after it was due on an idle machine; a periodic 1 ms `timerfd` wakes
//!   the loop at each tick instead, within the kernel's timer slack
//!   (50 µs by default). Whatever lag remains is part of the latency
//!   measured from the scheduled time, as it should be.
//! - **Tokens** are slab keys. Connections stay in the slab for the whole
//!   run, but a reconnect puts a new socket behind the same key, so an event
//!   still queued for the old socket may reach the new one. That is
//!   harmless: readiness is only ever a hint to try `take_error`, `read`
//!   and `write`, whose results are the truth (a spurious wake-up).
//! - **Phases.** Ramp (connections start at their slot plus a random phase
//!   below one interval, see [`LoadConfig::start_ms`]), hold (for the
//!   duration), drain (up to the reply timeout for the last counted
//!   replies; pings sent now are not counted), then every session is
//!   closed. `SIGINT`/`SIGTERM` ends the ramp or hold early; a second one
//!   ends the drain. Those rules live in [`Phases`]: the loop tells it the
//!   time, the starts, the signals and the pings in flight, and acts on
//!   what it answers.

use std::io::{self, Read};
use std::net::IpAddr;
use std::time::Duration;

use log::{debug, warn};
use mio::net::TcpStream;
use std::os::fd::{AsRawFd, OwnedFd};

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use signal_hook_mio::v1_0::Signals;
use slab::Slab;

use super::config::LoadConfig;
use super::phase::{Phase, Phases};
use super::reason::ReasonName;
use super::report::{Latency, Progress, Report};
use super::Error;
use crate::client::backoff::SplitMix64;
use crate::client::session::{Action, Event, IntervalPolicy, Session, SessionConfig, TransportEnd};
use crate::time::{millis_ceil, Clock, Tick};
use crate::wheel::{TimerKey, Wheel};

/// The signal pipe's token; connections use their slab keys.
const SIGNALS: Token = Token(usize::MAX);
/// The 1 ms tick timer's token.
const TICK: Token = Token(usize::MAX - 1);
/// The one read buffer.
const READ_BUF: usize = 16 * 1024;
/// Wheel slots at 1 ms ticks: one revolution is 8.2 s.
const WHEEL_SLOTS: usize = 8192;

/// Runs one load process: checks the config against this process's
/// open-files limit and the source addresses against the machine, opens
/// the connections, holds them, closes them, and returns what it measured.
/// `on_progress` gets a snapshot every second and at each phase change.
pub fn run(config: &LoadConfig, on_progress: &mut dyn FnMut(&Progress)) -> Result<Report, Error> {
    let fd_limit = crate::sys::raise_nofile_limit()
        .or_else(|_| crate::sys::nofile_limit().map(|(soft, _)| soft))
        .map_err(|e| Error::io("cannot read the open-files limit", e))?;
    config
        .check(1, fd_limit, crate::sys::ephemeral_ports())
        .map_err(Error::config)?;
    check_sources(config)?;
    let verifier = match &config.auth_secret {
        Some(path) => Some(
            crate::auth::load_secret(path)
                .map_err(|e| Error::config(super::ConfigError::new(e)))?,
        ),
        None => None,
    };
    warn_about_ports(config, crate::sys::ephemeral_ports());
    let tls = match &config.tls {
        None => None,
        Some(t) => {
            let settings = t.config().map_err(tls_error)?;
            let name = t
                .server_name(&config.server.to_string())
                .map_err(tls_error)?;
            Some((settings, name))
        }
    };
    let poll = Poll::new().map_err(|e| Error::io("cannot create the event loop", e))?;
    let mut signals = Signals::new([libc::SIGINT, libc::SIGTERM])
        .map_err(|e| Error::io("cannot install signal handlers", e))?;
    poll.registry()
        .register(&mut signals, SIGNALS, Interest::READABLE)
        .map_err(|e| Error::io("cannot watch signals", e))?;
    // The clock starts before the tick timer, so ticks come just after
    // each ms boundary of the clock, never just before.
    let clock = Clock::new();
    let tick = crate::sys::periodic_timer(Duration::from_millis(1))
        .map_err(|e| Error::io("cannot create the tick timer", e))?;
    poll.registry()
        .register(&mut SourceFd(&tick.as_raw_fd()), TICK, Interest::READABLE)
        .map_err(|e| Error::io("cannot watch the tick timer", e))?;
    let mut driver = Driver {
        tick,
        conns: Slab::with_capacity(config.conns),
        w: World {
            poll,
            wheel: Wheel::with_capacity(1, WHEEL_SLOTS, config.conns.saturating_mul(2)),
            report: Report::new(),
            phases: Phases::new(config.conns, config.duration, config.reply_timeout),
            online: 0,
            in_flight: 0,
            recent_rtt: Latency::new(),
            recent_scheduled: Latency::new(),
            clock,
            config: config.clone(),
            tls,
            verifier,
        },
        read_buf: vec![0; READ_BUF].into_boxed_slice(),
    };
    driver.run(&mut signals, on_progress)?;
    Ok(driver.w.report)
}

/// A TLS setting that cannot be used, as a config error.
fn tls_error(e: String) -> Error {
    Error::config(super::ConfigError::new(e))
}

/// Refuses source addresses this machine does not have, before any
/// connection is tried.
pub(crate) fn check_sources(config: &LoadConfig) -> Result<(), Error> {
    let Some(range) = config.source_ips else {
        return Ok(());
    };
    for ip in [range.first(), range.last()] {
        crate::sys::check_source_address(IpAddr::V4(ip)).map_err(|e| {
            Error::config(super::ConfigError::new(format!(
                "--source-ips {range}: cannot bind to {ip} ({e}); \
                 every address must be one of this machine's (all of 127.0.0.0/8 is)"
            )))
        })?;
    }
    Ok(())
}

/// Warns when one source address would use more than half the ephemeral
/// ports: `connect()` then searches longer and longer for a free port,
/// which stalls the loop (a 0.3 s stall at the end of a 15,000-connection
/// ramp here).
fn warn_about_ports(config: &LoadConfig, ports: Option<u64>) {
    let sources = config.source_ips.map_or(1, |r| r.len());
    let per_source = (config.conns as u64).div_ceil(sources);
    if let Some(ports) = ports.filter(|p| per_source > p / 2) {
        warn!(
            "{per_source} connections per source address use more than half of the              {ports} ephemeral ports: connects will slow down; spread them with --source-ips"
        );
    }
}

/// A ping sent while measuring and not answered yet.
#[derive(Debug, Clone, Copy)]
struct InFlight {
    seq: u64,
    due_us: u64,
    sent_us: u64,
    /// Sent during the hold (counts for the hold rates too).
    hold: bool,
}

/// What a wheel entry stands for.
#[derive(Debug, Clone, Copy)]
enum Timer {
    /// Connection `i` of this process is due to start.
    Start(usize),
    /// The session in this slab entry has a deadline.
    Session(usize),
}

struct Socket {
    stream: TcpStream,
    connected: bool,
    /// The TLS connection in front of the socket, with `--tls`.
    tls: Option<Box<rustls::ClientConnection>>,
}

impl Socket {
    /// Reads plaintext: from the socket, or through TLS.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match &mut self.tls {
            None => self.stream.read(buf),
            Some(tls) => crate::tls::read(tls, &mut self.stream, buf),
        }
    }

    /// Writes `session`'s output, then (TLS) what the handshake has to send.
    fn transmit(&mut self, session: &mut Session) -> Result<(), TransportEnd> {
        let Some(tls) = &mut self.tls else {
            return crate::client::transmit(session, &mut self.stream);
        };
        let mut writer = crate::tls::Writer {
            tls,
            sock: &mut self.stream,
        };
        crate::client::transmit(session, &mut writer)?;
        io::Write::flush(&mut writer).map_err(|e| TransportEnd::Error(e.kind()))
    }
}

/// One connection: its session, its socket when it has one, and what the
/// driver tracks about it.
struct Conn {
    /// The connection's number in this process (ids, source addresses).
    index: usize,
    session: Session,
    socket: Option<Socket>,
    /// The session's wheel entry and the deadline it is armed for.
    timer: Option<(TimerKey, u64)>,
    ping: Option<InFlight>,
    /// Between `Connected` and `Disconnected`: a disconnect now is a close,
    /// before it a connect error.
    established: bool,
    /// Welcomed and not disconnected since.
    online: bool,
}

/// Everything but the connections, so a connection can be borrowed
/// alongside it.
/// How much longer than the run a session's token stays valid.
const TOKEN_SLACK_SECS: u64 = 24 * 3600;

struct World {
    poll: Poll,
    wheel: Wheel<Timer>,
    report: Report,
    phases: Phases,
    online: u64,
    /// Counted pings not answered yet.
    in_flight: u64,
    /// Latencies since the last progress snapshot.
    recent_rtt: Latency,
    recent_scheduled: Latency,
    /// The one clock: µs for latencies, and whole ms of the same reading
    /// ([`tick`]) for the sessions.
    clock: Clock,
    config: LoadConfig,
    /// With TLS: the settings and the name the certificate must carry.
    tls: Option<(
        std::sync::Arc<rustls::ClientConfig>,
        rustls_pki_types::ServerName<'static>,
    )>,
    /// With `auth_secret`: mints each session's token.
    verifier: Option<crate::auth::Verifier>,
}

/// The session time of a clock reading in µs: whole ms, rounded down like
/// [`Clock::now`], so a ping due at `due_ms` was due at `due_ms * 1000` µs,
/// never after the µs time it was sent at.
fn tick(now_us: u64) -> Tick {
    now_us / 1000
}

impl World {
    fn progress(&mut self, now_us: u64) -> Progress {
        let mut p = Progress::new(now_us / 1000, self.phases.phase());
        p.online = self.online;
        p.sent = self.report.sent;
        p.received = self.report.received;
        p.errors = self.report.errors();
        p.reconnects = self.report.reconnects;
        // The snapshot takes the window's histograms; new empty ones start
        // the next window (once a second: the allocation does not matter).
        p.rtt = std::mem::take(&mut self.recent_rtt);
        p.scheduled = std::mem::take(&mut self.recent_scheduled);
        p
    }
}

struct Driver {
    /// Wakes the loop at every ms (see the module docs, "Deadlines").
    tick: OwnedFd,
    conns: Slab<Conn>,
    w: World,
    read_buf: Box<[u8]>,
}

impl Driver {
    fn run(
        &mut self,
        signals: &mut Signals,
        on_progress: &mut dyn FnMut(&Progress),
    ) -> Result<(), Error> {
        let n = self.w.config.conns;
        let mut draws = SplitMix64::new(self.w.config.seed);
        for i in 0..n {
            let at = self.w.config.start_ms(i, draws.next_u64());
            if self.w.wheel.try_insert(at, Timer::Start(i)).is_err() {
                return Err(Error::config(super::ConfigError::new(
                    "too many connections for one timing wheel",
                )));
            }
        }
        let mut events = Events::with_capacity(1024);
        let mut backlog = false;
        'turns: loop {
            let now_us = self.w.clock.now_us();
            while let Some(phase) = self.w.phases.poll_change(now_us, self.w.in_flight) {
                match phase {
                    Phase::Hold => self.w.report.ramp_ms = self.w.phases.ramp_ms(),
                    Phase::Drain => {
                        self.w.report.hold_ms = self.w.phases.hold_ms();
                        self.w.report.online_at_end = self.w.online;
                    }
                    Phase::Done => break 'turns,
                    Phase::Ramp => {}
                }
                on_progress(&self.w.progress(now_us));
            }
            if self.w.phases.poll_progress(now_us) {
                on_progress(&self.w.progress(now_us));
            }

            // The tick timer wakes the loop for the wheel; this timeout is
            // for the rest, and a backstop.
            let mut wake_us = self.w.phases.poll_deadline();
            if !self.w.wheel.is_empty() {
                let tick_ms = self.w.wheel.next_tick_ms(tick(now_us));
                wake_us = wake_us.min(tick_ms.saturating_add(1).saturating_mul(1000));
            }
            if backlog {
                wake_us = now_us;
            }
            let timeout = Duration::from_micros(wake_us.saturating_sub(now_us));
            if let Err(e) = self.w.poll.poll(&mut events, Some(timeout)) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(Error::io("event loop failed", e));
            }
            for event in events.iter() {
                match event.token() {
                    TICK => {
                        if let Err(e) = crate::sys::read_timer(self.tick.as_raw_fd()) {
                            return Err(Error::io("tick timer failed", e));
                        }
                    }
                    SIGNALS => {
                        if signals.pending().count() > 0 {
                            self.w.phases.handle_signal();
                            debug!("signal during the {}: ending it", self.w.phases.phase());
                        }
                    }
                    Token(key) => {
                        if let Some(conn) = self.conns.get_mut(key) {
                            conn.handle_ready(key, &mut self.w, &mut self.read_buf);
                        }
                    }
                }
            }

            self.w.wheel.advance(self.w.clock.now());
            // A session may re-arm for a time already past; a budget keeps
            // such chains from holding the loop (the rest runs next turn).
            let mut budget = self.conns.len() + n + 64;
            backlog = false;
            while let Some((_, timer)) = self.w.wheel.poll_expired() {
                match timer {
                    Timer::Start(i) => {
                        if self.w.phases.handle_start() {
                            self.start(i)?;
                        }
                    }
                    Timer::Session(key) => {
                        if let Some(conn) = self.conns.get_mut(key) {
                            conn.timer = None;
                            let now_us = self.w.clock.now_us();
                            conn.session.handle_timeout(tick(now_us));
                            conn.pump(key, &mut self.w, now_us);
                        }
                    }
                }
                budget -= 1;
                if budget == 0 {
                    backlog = true;
                    break;
                }
            }
        }
        self.close_all();
        let now_us = self.w.clock.now_us();
        on_progress(&self.w.progress(now_us));
        Ok(())
    }

    /// Creates connection `i`'s session, which asks to connect at once.
    fn start(&mut self, i: usize) -> Result<(), Error> {
        let config = &self.w.config;
        let mut sc = SessionConfig::new(config.client_id(i), 1);
        // Waits round up: a session never gives up on the server early.
        sc.interval = IntervalPolicy::Fixed(config.interval_ms());
        sc.reply_timeout_ms = millis_ceil(config.reply_timeout);
        sc.connect_timeout_ms = millis_ceil(config.reply_timeout);
        sc.seed = config.seed ^ (i as u64).wrapping_mul(0xd6e8_feb8_6659_fd93);
        sc.protocol = config.protocol;
        if let Some(v) = &self.w.verifier {
            // Valid for the whole run and a day more: reconnects reuse it.
            let ttl = config.duration.as_secs().saturating_add(TOKEN_SLACK_SECS);
            let expiry = crate::auth::unix_now().saturating_add(ttl);
            sc.token = Some(Box::new(v.mint(&sc.client_id, expiry)));
        }
        let now_us = self.w.clock.now_us();
        let session = Session::new(sc, tick(now_us))
            .map_err(|e| Error::config(super::ConfigError::new(e.to_string())))?;
        let key = self.conns.insert(Conn {
            index: i,
            session,
            socket: None,
            timer: None,
            ping: None,
            established: false,
            online: false,
        });
        if let Some(conn) = self.conns.get_mut(key) {
            conn.pump(key, &mut self.w, now_us);
        }
        Ok(())
    }

    /// Ends the run: pings still unanswered are missing; every session is
    /// closed and its socket dropped.
    fn close_all(&mut self) {
        for (_, conn) in self.conns.iter_mut() {
            if conn.ping.take().is_some() {
                self.w.report.missing += 1;
                self.w.in_flight -= 1;
            }
            conn.session.close();
            while conn.session.poll_action().is_some() {}
            conn.drop_socket(&self.w);
            if let Some((key, _)) = conn.timer.take() {
                self.w.wheel.cancel(key);
            }
        }
    }
}

impl Conn {
    /// After any input: carries out the session's actions, writes its
    /// output, accounts for its events and re-arms its timer.
    fn pump(&mut self, key: usize, w: &mut World, now_us: u64) {
        while let Some(action) = self.session.poll_action() {
            match action {
                Action::Close => self.drop_socket(w),
                Action::Connect(_) => self.connect(key, w, now_us),
            }
        }
        self.flush(w, now_us);
        while let Some(event) = self.session.poll_event() {
            self.account(event, w, now_us);
        }
        self.arm(key, w);
    }

    fn connect(&mut self, key: usize, w: &mut World, now_us: u64) {
        // The session closes before it connects; never keep two sockets.
        self.drop_socket(w);
        let src = w.config.source_ip(self.index);
        let opened = crate::sys::connect_nonblocking(w.config.server, src).and_then(|s| {
            let mut stream = TcpStream::from_std(s);
            stream.set_nodelay(true)?;
            let interest = Interest::READABLE | Interest::WRITABLE;
            w.poll
                .registry()
                .register(&mut stream, Token(key), interest)?;
            Ok(stream)
        });
        let opened = opened.and_then(|stream| {
            let tls = match &w.tls {
                None => None,
                Some((settings, name)) => Some(Box::new(
                    rustls::ClientConnection::new(std::sync::Arc::clone(settings), name.clone())
                        .map_err(io::Error::other)?,
                )),
            };
            Ok((stream, tls))
        });
        match opened {
            Ok((stream, tls)) => {
                self.socket = Some(Socket {
                    stream,
                    connected: false,
                    tls,
                })
            }
            Err(e) => {
                debug!("connect {}: {e}", self.index);
                self.session
                    .handle_closed(tick(now_us), TransportEnd::Error(e.kind()));
            }
        }
    }

    fn drop_socket(&mut self, w: &World) {
        if let Some(mut socket) = self.socket.take() {
            let _ = w.poll.registry().deregister(&mut socket.stream);
        }
    }

    /// The transport ended under the session.
    fn fail(&mut self, w: &World, now_us: u64, end: TransportEnd) {
        self.drop_socket(w);
        self.session.handle_closed(tick(now_us), end);
    }

    fn handle_ready(&mut self, key: usize, w: &mut World, buf: &mut [u8]) {
        let Some(socket) = self.socket.as_mut() else {
            return; // closed earlier in this batch
        };
        if !socket.connected {
            match crate::sys::connect_result(&socket.stream) {
                Ok(false) => return, // spurious: not connected yet
                Ok(true) => {
                    socket.connected = true;
                    self.session.handle_connected(w.clock.now());
                }
                Err(e) => {
                    let now_us = w.clock.now_us();
                    self.fail(w, now_us, TransportEnd::Error(e.kind()));
                    return self.pump(key, w, now_us);
                }
            }
        }
        // The session may drop the socket while handling what was read.
        while let Some(socket) = self.socket.as_mut() {
            match socket.read(buf) {
                Ok(0) => {
                    let now_us = w.clock.now_us();
                    self.fail(w, now_us, TransportEnd::Eof);
                    break;
                }
                Ok(n) => {
                    // The time a reply is seen: right after its read.
                    let now_us = w.clock.now_us();
                    self.session
                        .handle_received(tick(now_us), buf.get(..n).unwrap_or_default());
                    self.pump(key, w, now_us);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let now_us = w.clock.now_us();
                    self.fail(w, now_us, TransportEnd::Error(e.kind()));
                    break;
                }
            }
        }
        let now_us = w.clock.now_us();
        self.pump(key, w, now_us);
    }

    /// Writes the session's output until it is all written or the socket
    /// would block (a writable event brings us back).
    fn flush(&mut self, w: &World, now_us: u64) {
        let Some(socket) = self.socket.as_mut().filter(|s| s.connected) else {
            return;
        };
        if let Err(end) = socket.transmit(&mut self.session) {
            self.fail(w, now_us, end);
        }
    }

    /// Counts what the session reports.
    fn account(&mut self, event: Event, w: &mut World, now_us: u64) {
        match event {
            Event::Connected { .. } => {
                self.established = true;
                w.report.connects += 1;
            }
            Event::Welcome { .. } => {
                if !self.online {
                    self.online = true;
                    w.online += 1;
                    w.report.welcomes += 1;
                }
            }
            Event::PingSent { seq, due_ms } => {
                if w.phases.phase().counts_pings() {
                    let hold = w.phases.phase() == Phase::Hold;
                    self.ping = Some(InFlight {
                        seq,
                        due_us: due_ms.saturating_mul(1000),
                        sent_us: now_us,
                        hold,
                    });
                    w.report.sent += 1;
                    w.report.hold_sent += u64::from(hold);
                    w.in_flight += 1;
                }
            }
            Event::Pong { seq, .. } => {
                if let Some(p) = self.ping.filter(|p| p.seq == seq) {
                    self.ping = None;
                    w.in_flight -= 1;
                    let rtt = now_us.saturating_sub(p.sent_us);
                    let scheduled = now_us.saturating_sub(p.due_us);
                    w.report.rtt.record(rtt);
                    w.report.scheduled.record(scheduled);
                    w.recent_rtt.record(rtt);
                    w.recent_scheduled.record(scheduled);
                    w.report.received += 1;
                    w.report.hold_received += u64::from(p.hold);
                }
            }
            // Load sessions beat at a fixed interval: no adaptive changes.
            Event::Line(_) | Event::IntervalChanged { .. } | Event::Probe { .. } => {}
            Event::Disconnected { reason, .. } => {
                if self.ping.take().is_some() {
                    w.report.missing += 1;
                    w.in_flight -= 1;
                }
                if self.online {
                    self.online = false;
                    w.online -= 1;
                }
                let by_reason = if self.established {
                    &mut w.report.closes
                } else {
                    &mut w.report.connect_errors
                };
                *by_reason.entry(reason.as_str().to_owned()).or_default() += 1;
                self.established = false;
            }
            Event::ReconnectScheduled { .. } => w.report.reconnects += 1,
        }
    }

    /// Keeps the session's one wheel entry at its current deadline.
    fn arm(&mut self, key: usize, w: &mut World) {
        let want = self.session.poll_timeout();
        match (want, self.timer) {
            (Some(d), Some((_, at))) if d == at => {}
            (Some(d), Some((k, _))) if w.wheel.reset(k, d) => self.timer = Some((k, d)),
            (Some(d), _) => match w.wheel.try_insert(d, Timer::Session(key)) {
                Ok(k) => self.timer = Some((k, d)),
                Err(_) => {
                    warn!(
                        "timing wheel full: connection {} has no deadline",
                        self.index
                    );
                    self.timer = None;
                }
            },
            (None, Some((k, _))) => {
                w.wheel.cancel(k);
                self.timer = None;
            }
            (None, None) => {}
        }
    }
}
