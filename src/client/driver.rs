//! The thin mio driver behind `vigil client`: one [`Session`], at most one
//! socket, stdin and signals.
//!
//! This is the only client code that reads the clock, and with its stdin
//! reader thread and the shared write loop (`transmit`), the only client
//! code that does I/O. It turns readiness into `handle_*` calls, carries
//! out the session's actions (connect, close), writes its output until
//! `WouldBlock`, logs and prints its events, and sleeps until
//! [`Session::poll_timeout`].
//!
//! - **Connect** is mio's non-blocking connect: the socket is registered for
//!   both directions and its first event is checked with `take_error` then
//!   `peer_addr` (`NotConnected` means "not yet": a spurious wakeup). The
//!   session's connect timeout covers a connect that never finishes.
//!   `TCP_NODELAY` is set: heartbeats are tiny and latency is what we
//!   measure. With [`ClientConfig::tcp_keepalive`] and
//!   [`ClientConfig::tcp_user_timeout`] the socket also gets kernel
//!   keepalive and `TCP_USER_TIMEOUT`, set right after the connect starts
//!   (so the user timeout covers the handshake too); a kernel verdict
//!   arrives as a socket error and ends the connection like any other.
//! - **Tokens** are never reused: each connection gets a fresh one, so an
//!   event still queued for a socket closed earlier in the same batch is
//!   recognised as stale and ignored.
//! - **Stdin** is read only on a terminal, or with `--stdin`
//!   ([`ClientConfig::stdin`]); otherwise the client runs until a signal,
//!   as a daemon. When read, it is read by a helper thread that blocks on it, hands lines to
//!   the loop through a bounded channel and wakes it with a mio `Waker`.
//!   That works the same for a terminal, a pipe, a file or `/dev/null`
//!   (epoll refuses regular files), and never flips the terminal's shared
//!   file status to non-blocking behind the shell's back. Lines wait until
//!   the session is welcomed (the channel is bounded, so a fast pipe is
//!   held back rather than buffered). End of input ends the client once
//!   the lines before it are sent; so do `SIGINT` and `SIGTERM`, at once. The client leaves without a
//!   word (the protocol has no client `BYE`): dropping the socket closes it,
//!   after one last non-blocking attempt to write what is pending.
//! - **Probes** (`driver/probe.rs`): with an adaptive interval the session
//!   asks for short-lived probe connections to its server; the driver
//!   opens them like the main one, on fresh tokens, and feeds them to the
//!   `handle_probe_*` inputs.
//! - **Signals**: `SIGINT`/`SIGTERM` end the client (exit 0);
//!   `SIGUSR1`/`SIGUSR2` switch to the foreground/background mode.
//! - **Networks** (`driver/netwatch.rs`): a non-blocking `NETLINK_ROUTE`
//!   socket in the same `Poll`; when the connection's local address goes
//!   away or the default route changes, the session is told at once.
//! - **Time** is a [`Tick`] from the one [`Clock`] that [`run`] starts:
//!   read for each input as it is handed to the session (rounded down, so
//!   a reply is never stamped late), and for each wait. The configured
//!   durations become milliseconds rounded up (see
//!   [`ClientConfig`]'s fields): nothing is given up on sooner than asked.
//!
//! What it does not do: it reads the server until `WouldBlock` without a
//! budget (one server, so there is no one to be fair to), and prints server
//! lines with blocking writes to stdout, so a stalled stdout stalls the loop.
//!
//! Files: the loop and the connection are here; the stdin reader thread is
//! in `driver/stdin.rs`, the event log and stdout in `driver/output.rs`, and
//! the write loop, shared with the load generator, in `client/transmit.rs`.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::mpsc::{self, Receiver, TryRecvError};
use std::sync::Arc;
use std::time::Duration;

use log::{debug, info, warn};
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token, Waker};
use signal_hook_mio::v1_0::Signals;

use super::adaptive::AdaptiveConfig;
use super::session::{
    Action, IntervalPolicy, Mode, Phase, ProbeAction, ServerIndex, Session, SessionConfig,
    TransportEnd, DEFAULT_BACKOFF_BASE_MS, DEFAULT_BACKOFF_CAP_MS, DEFAULT_CONNECT_TIMEOUT_MS,
    DEFAULT_REPLY_TIMEOUT_MS,
};
use super::transmit;
use crate::time::{millis_ceil, millis_floor, Clock, Tick};

mod netwatch;
mod output;
mod probe;
mod socket;
mod stdin;

use stdin::{spawn_stdin_reader, Input};

/// Everything `vigil client` needs. Build it with [`ClientConfig::new`],
/// which fills in the documented defaults, then change fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// The servers, as `HOST:PORT`, tried in turn. Every address a name
    /// resolves to becomes its own entry in the rotation.
    pub servers: Vec<String>,
    /// The client id sent in `HELLO`.
    pub id: String,
    /// A fixed heartbeat interval; `None` (the default) adopts the one the
    /// server sends in `WELCOME`.
    pub interval: Option<Duration>,
    /// Search for the longest interval the path keeps alive instead (see
    /// [`adaptive`](super::adaptive)); exclusive with `interval`.
    /// Default: `None`.
    pub adaptive: Option<AdaptiveConfig>,
    /// Kernel TCP keepalive on the connection. Default: off. Heartbeats
    /// already find a dead server (and a hung one, which keepalive cannot
    /// see: its kernel still answers the probes); keepalive is a second net
    /// for long intervals, at the price of its own packets.
    pub tcp_keepalive: Option<crate::sys::Keepalive>,
    /// `TCP_USER_TIMEOUT` on the connection: how long written data may go
    /// unacknowledged before the kernel gives up. Default: off (the
    /// kernel's retransmission limit, about 15 minutes); the reply timeout
    /// usually decides first.
    pub tcp_user_timeout: Option<Duration>,
    /// How long a `PING` or `HELLO` may go unanswered. Default: 10 s.
    pub reply_timeout: Duration,
    /// How long a TCP connect may take. Default: 10 s.
    pub connect_timeout: Duration,
    /// The first reconnect ceiling. Default: 100 ms.
    pub backoff_base: Duration,
    /// The largest reconnect delay. Default: 30 s.
    pub backoff_cap: Duration,
    /// Do not print server lines to stdout. Default: false.
    pub quiet: bool,
    /// The seed of the reconnect jitter; `None` (the default) derives one
    /// from the time and the process id.
    pub seed: Option<u64>,
    /// Send stdin's lines to the server, and end at end of input. `None`
    /// (the default): only when stdin is a terminal. Without it the client
    /// never reads stdin and runs until `SIGINT`/`SIGTERM`, as a daemon.
    pub stdin: Option<bool>,
    /// With an adaptive interval, the fixed interval in the foreground;
    /// `None` (the default): the server's.
    pub foreground_interval: Option<Duration>,
    /// Start in the foreground (default: the background). `SIGUSR1`
    /// switches to the foreground, `SIGUSR2` to the background.
    pub foreground: bool,
    /// Watch the kernel's address and route changes (netlink) and
    /// reconnect at once when the connection's network changes. Default:
    /// true (Linux).
    pub watch_network: bool,
    /// The wire protocol. Default: the line protocol.
    pub protocol: crate::protocol::client::ClientCodec,
    /// Which detector declares the server dead. See
    /// [`Session::set_detector`](super::Session::set_detector).
    pub detector: crate::detector::Detector,
    /// Speak TLS to the servers, checking their certificates this way.
    /// Default: `None`, plain TCP.
    pub tls: Option<crate::tls::TlsClient>,
    /// The token sent with `HELLO` (see [`crate::auth`]). Default: none.
    pub token: Option<String>,
}

impl ClientConfig {
    /// A config for `id` talking to `servers`, with every default.
    pub fn new(servers: Vec<String>, id: impl Into<String>) -> ClientConfig {
        ClientConfig {
            servers,
            id: id.into(),
            interval: None,
            adaptive: None,
            tcp_keepalive: None,
            tcp_user_timeout: None,
            reply_timeout: Duration::from_millis(DEFAULT_REPLY_TIMEOUT_MS),
            connect_timeout: Duration::from_millis(DEFAULT_CONNECT_TIMEOUT_MS),
            backoff_base: Duration::from_millis(DEFAULT_BACKOFF_BASE_MS),
            backoff_cap: Duration::from_millis(DEFAULT_BACKOFF_CAP_MS),
            quiet: false,
            seed: None,
            stdin: None,
            foreground_interval: None,
            foreground: false,
            watch_network: true,
            protocol: crate::protocol::client::ClientCodec::LINE,
            detector: crate::detector::Detector::Fixed,
            tls: None,
            token: None,
        }
    }

    /// The session config for `servers` resolved addresses. Every duration
    /// here is a length of time to wait, so it becomes whole milliseconds
    /// rounded up ([`millis_ceil`]): the session never gives up on a reply
    /// or a connect, nor beats or reconnects, sooner than configured, and a
    /// positive duration never becomes 0 ms.
    fn session_config(&self, servers: usize) -> Result<SessionConfig, Error> {
        let positive = |d: Duration, what: &str| {
            if d.is_zero() {
                Err(Error::config(format!("{what} must be above 0")))
            } else {
                Ok(millis_ceil(d))
            }
        };
        let mut c = SessionConfig::new(self.id.clone(), servers);
        c.interval = match (self.interval, self.adaptive) {
            (Some(_), Some(_)) => {
                return Err(Error::config(
                    "a fixed interval and an adaptive one are exclusive".to_owned(),
                ))
            }
            (Some(d), None) => IntervalPolicy::Fixed(positive(d, "interval")?),
            (None, Some(a)) => {
                a.check().map_err(Error::config)?;
                IntervalPolicy::Adaptive(a)
            }
            (None, None) => IntervalPolicy::Server,
        };
        if self.tcp_user_timeout.is_some_and(|d| d.is_zero()) {
            return Err(Error::config("TCP user timeout must be above 0".to_owned()));
        }
        c.reply_timeout_ms = positive(self.reply_timeout, "timeout")?;
        c.connect_timeout_ms = positive(self.connect_timeout, "connect timeout")?;
        c.backoff_base_ms = millis_ceil(self.backoff_base);
        c.backoff_cap_ms = millis_ceil(self.backoff_cap);
        c.seed = self.seed.unwrap_or_else(default_seed);
        c.foreground_interval_ms = match self.foreground_interval {
            Some(d) => std::num::NonZeroU64::new(positive(d, "foreground interval")?),
            None => None,
        };
        c.protocol = self.protocol;
        if c.protocol.login() != crate::protocol::client::Login::WelcomeWithInterval
            && c.interval == IntervalPolicy::Server
        {
            return Err(Error::config(format!(
                "the {} protocol's server does not say how often to beat: give --interval or --adaptive",
                c.protocol.name()
            )));
        }
        c.token = self.token.clone().map(Box::new);
        Ok(c)
    }
}

pub use crate::error::{Error, ErrorKind};

/// Runs the client until `SIGINT`/`SIGTERM` arrives, or stdin ends when it
/// is read ([`ClientConfig::stdin`]); server
/// failures never end it, they lead to reconnects. Returns an error only
/// for a bad config, an unresolvable server, or a failing event loop, stdin
/// or stdout (a closed stdout pipe ends the client cleanly).
pub fn run(config: ClientConfig) -> Result<(), Error> {
    let (addrs, hosts) = resolve_hosts(&config.servers)?;
    let tls = match &config.tls {
        None => None,
        Some(t) => {
            let names = hosts
                .iter()
                .map(|host| t.server_name(host))
                .collect::<Result<Vec<_>, _>>()
                .map_err(Error::config)?;
            Some((t.config().map_err(Error::config)?, names))
        }
    };
    let session_config = config.session_config(addrs.len())?;
    let max_message = session_config.max_message;
    let clock = Clock::new();
    let mut session =
        Session::new(session_config, clock.now()).map_err(|e| Error::config(e.to_string()))?;
    session.set_detector(config.detector);
    info!(
        "client {} starting; servers: {}",
        config.id,
        addrs
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    );

    if let Some(a) = &config.adaptive {
        info!(
            "adaptive interval: from {} ms up to {} ms, searched on probe connections; \
             beating {}% below what a probe proved; once settled, the failed bound is \
             probed again after {} intervals (doubling after each loss)",
            a.min_ms, a.max_ms, a.margin_pct, a.reprobe_after
        );
    }
    if let Some(k) = &config.tcp_keepalive {
        info!(
            "TCP keepalive: probe after {}s idle, every {}s, {} probes (a dead server found within {}s)",
            k.idle.as_secs(),
            k.interval.as_secs(),
            k.count,
            k.detection_time().as_secs()
        );
    }
    if let Some(t) = config.tcp_user_timeout {
        // What `sys::set_user_timeout` hands the kernel: it rounds down.
        info!("TCP_USER_TIMEOUT: {}ms", millis_floor(t));
    }

    let poll = Poll::new().map_err(|e| Error::io("cannot create the event loop", e))?;
    let mut signals = Signals::new([libc::SIGINT, libc::SIGTERM, libc::SIGUSR1, libc::SIGUSR2])
        .map_err(|e| Error::io("cannot install signal handlers", e))?;
    poll.registry()
        .register(&mut signals, SIGNALS, Interest::READABLE)
        .map_err(|e| Error::io("cannot watch signals", e))?;
    let waker =
        Waker::new(poll.registry(), STDIN).map_err(|e| Error::io("cannot create a waker", e))?;
    // The loop keeps the waker too: were the reader thread the last owner,
    // its exit would close the eventfd, and epoll drops a pending event of
    // a closed descriptor, so the final wake-up (end of input) could be lost.
    let waker = Arc::new(waker);
    let (tx, stdin) = mpsc::sync_channel(STDIN_QUEUE);
    // Without stdin the sender is dropped unused; `stdin_on` keeps the
    // loop from reading that as end of input.
    let stdin_on = config
        .stdin
        .unwrap_or_else(|| std::io::IsTerminal::is_terminal(&std::io::stdin()));
    if stdin_on {
        spawn_stdin_reader(tx, Arc::clone(&waker), max_message)
            .map_err(|e| Error::io("cannot start the stdin reader", e))?;
    } else {
        info!("not reading stdin: running until SIGINT or SIGTERM");
    }
    if config.foreground {
        session.set_mode(clock.now(), Mode::Foreground);
    }
    let netlink = if config.watch_network {
        match netwatch::NetWatch::open(&poll) {
            Ok(w) => Some(w),
            Err(e) => {
                warn!("cannot watch network changes: {e}");
                None
            }
        }
    } else {
        None
    };

    let mut driver = Driver {
        poll,
        session,
        addrs,
        conn: None,
        next_token: FIRST_CONN,
        clock,
        quiet: config.quiet,
        keepalive: config.tcp_keepalive,
        user_timeout: config.tcp_user_timeout,
        stdin,
        stdin_on,
        probe: None,
        netlink,
        _waker: waker,
        held: None,
        read_buf: vec![0; READ_BUF].into_boxed_slice(),
        stop: false,
        tls,
    };
    driver.run(&mut signals)
}

/// The stdin reader's wake-up token.
const STDIN: Token = Token(0);
/// The signal pipe's token.
const SIGNALS: Token = Token(1);
/// The netlink socket's token.
const NETLINK: Token = Token(2);
/// The first connection token; later ones count up and are never reused.
const FIRST_CONN: usize = 3;
/// How many stdin lines may wait for the loop before the reader blocks.
const STDIN_QUEUE: usize = 64;
/// The size of the one read buffer, in bytes.
const READ_BUF: usize = 16 * 1024;

/// Resolves every `HOST:PORT`; each address becomes one server entry.
#[cfg(test)]
fn resolve(servers: &[String]) -> Result<Vec<SocketAddr>, Error> {
    resolve_hosts(servers).map(|(addrs, _)| addrs)
}

/// Resolves every `HOST:PORT`; each address becomes one server entry,
/// with the `HOST:PORT` it came from (TLS checks the certificate against
/// the name, not the address).
fn resolve_hosts(servers: &[String]) -> Result<(Vec<SocketAddr>, Vec<String>), Error> {
    if servers.is_empty() {
        return Err(Error::config("no server given".to_owned()));
    }
    let mut addrs = Vec::new();
    let mut hosts = Vec::new();
    for server in servers {
        let server = server.trim();
        if server.is_empty() {
            return Err(Error::config("empty server address".to_owned()));
        }
        for addr in crate::addr::resolve(server)? {
            addrs.push(addr);
            hosts.push(server.to_owned());
        }
    }
    Ok((addrs, hosts))
}

fn default_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos ^ (u64::from(std::process::id()) << 32)
}

/// The one connection, connecting or connected.
struct Conn {
    stream: TcpStream,
    token: Token,
    addr: SocketAddr,
    connected: bool,
    /// The TLS connection in front of the socket, with `--tls`.
    tls: Option<Box<rustls::ClientConnection>>,
}

impl Conn {
    /// Reads plaintext: from the socket, or through TLS.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match &mut self.tls {
            None => self.stream.read(buf),
            Some(tls) => crate::tls::read(tls, &mut self.stream, buf),
        }
    }
}

struct Driver {
    poll: Poll,
    session: Session,
    addrs: Vec<SocketAddr>,
    conn: Option<Conn>,
    next_token: usize,
    clock: Clock,
    quiet: bool,
    keepalive: Option<crate::sys::Keepalive>,
    user_timeout: Option<Duration>,
    stdin: Receiver<Input>,
    /// Whether stdin is read at all.
    stdin_on: bool,
    /// The adaptive search's probe connection.
    probe: Option<Conn>,
    /// The kernel's address and route changes, when watched.
    netlink: Option<netwatch::NetWatch>,
    _waker: Arc<Waker>,
    /// A stdin line waiting for the session to come online.
    held: Option<Input>,
    read_buf: Box<[u8]>,
    stop: bool,
    /// With `--tls`: the settings, and the name to check for each address.
    tls: Option<(
        Arc<rustls::ClientConfig>,
        Vec<rustls_pki_types::ServerName<'static>>,
    )>,
}

impl Driver {
    fn run(&mut self, signals: &mut Signals) -> Result<(), Error> {
        let mut events = Events::with_capacity(64);
        self.pump()?;
        while !self.stop {
            // `now` rounds down, so this wait never ends before the deadline.
            let now = self.now();
            let timeout = self
                .session
                .poll_timeout()
                .map(|deadline| Duration::from_millis(deadline.saturating_sub(now)));
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(Error::io("event loop failed", e));
            }
            for event in events.iter() {
                match event.token() {
                    STDIN => self.handle_stdin()?,
                    SIGNALS => {
                        for signal in signals.pending() {
                            self.handle_signal(signal);
                        }
                    }
                    NETLINK => self.handle_netlink()?,
                    token => self.handle_socket(token)?,
                }
            }
            self.fire_timers()?;
            // The session may have come online: send what was held.
            self.handle_stdin()?;
        }
        // Leave without a word: one last try at the pending output, then
        // dropping the socket closes it.
        self.flush();
        self.drop_conn();
        self.drop_probe();
        Ok(())
    }

    fn handle_signal(&mut self, signal: libc::c_int) {
        let mode = match signal {
            libc::SIGUSR1 => Mode::Foreground,
            libc::SIGUSR2 => Mode::Background,
            _ => {
                info!("signal {signal}: exiting");
                self.stop = true;
                return;
            }
        };
        let now = self.now();
        if self.session.set_mode(now, mode) {
            info!("mode: {} (signal {signal})", mode.as_str());
        } else {
            debug!("mode: already {} (signal {signal})", mode.as_str());
        }
    }

    /// The time of an input, read when it is handed to the session (the
    /// clock rounds down, so a stamp is never later than the truth).
    fn now(&self) -> Tick {
        self.clock.now()
    }

    fn addr(&self, server: ServerIndex) -> String {
        self.addrs
            .get(server.0)
            .map_or_else(|| format!("server {}", server.0), ToString::to_string)
    }

    /// Fires every deadline that has passed; each may lead to the next
    /// (a zero backoff delay, then a connect).
    fn fire_timers(&mut self) -> Result<(), Error> {
        for _ in 0..16 {
            let now = self.now();
            match self.session.poll_timeout() {
                Some(deadline) if deadline <= now => {
                    self.session.handle_timeout(now);
                    self.pump()?;
                }
                _ => break,
            }
        }
        Ok(())
    }

    /// Carries out the session's actions, writes its output and reports its
    /// events. Called after every input.
    fn pump(&mut self) -> Result<(), Error> {
        while let Some(action) = self.session.poll_action() {
            match action {
                Action::Close => self.drop_conn(),
                Action::Connect(server) => self.connect(server),
            }
        }
        while let Some(action) = self.session.poll_probe_action() {
            match action {
                ProbeAction::Close => self.drop_probe(),
                ProbeAction::Connect(server) => self.connect_probe(server),
            }
        }
        self.flush();
        self.flush_probe();
        self.report_events()
    }

    fn connect(&mut self, server: ServerIndex) {
        // The session closes before it connects; never keep two sockets.
        self.drop_conn();
        match self.open(server) {
            Ok(conn) => self.conn = Some(conn),
            Err(e) => {
                let now = self.now();
                self.session
                    .handle_closed(now, TransportEnd::Error(e.kind()));
            }
        }
    }

    /// Starts a non-blocking connect to `server`, registered with a fresh
    /// token.
    fn open(&mut self, server: ServerIndex) -> io::Result<Conn> {
        let Some(&addr) = self.addrs.get(server.0) else {
            return Err(io::ErrorKind::InvalidInput.into());
        };
        debug!("connecting to {addr}");
        let mut stream = TcpStream::connect(addr).inspect_err(|e| {
            debug!("connect to {addr}: {e}");
        })?;
        self.set_socket_options(&stream).inspect_err(|e| {
            warn!("{addr}: {e}");
        })?;
        let tls = match &self.tls {
            None => None,
            Some((config, names)) => {
                let started = names
                    .get(server.0)
                    .ok_or(rustls::Error::General("no server name".to_owned()))
                    .and_then(|name| {
                        rustls::ClientConnection::new(Arc::clone(config), name.clone())
                    });
                match started {
                    Ok(tls) => Some(Box::new(tls)),
                    Err(e) => {
                        warn!("TLS to {addr}: {e}");
                        return Err(io::ErrorKind::InvalidInput.into());
                    }
                }
            }
        };
        let token = Token(self.next_token);
        self.next_token = self.next_token.checked_add(1).unwrap_or(FIRST_CONN);
        let interest = Interest::READABLE | Interest::WRITABLE;
        self.poll
            .registry()
            .register(&mut stream, token, interest)
            .inspect_err(|e| debug!("register {addr}: {e}"))?;
        Ok(Conn {
            stream,
            token,
            addr,
            connected: false,
            tls,
        })
    }

    /// Kernel keepalive and `TCP_USER_TIMEOUT`, when asked for.
    fn set_socket_options(&self, stream: &TcpStream) -> io::Result<()> {
        let fd = stream.as_raw_fd();
        if let Some(k) = &self.keepalive {
            crate::sys::set_keepalive(fd, k)
                .map_err(|e| io::Error::new(e.kind(), format!("cannot set TCP keepalive: {e}")))?;
        }
        if let Some(t) = self.user_timeout {
            crate::sys::set_user_timeout(fd, t).map_err(|e| {
                io::Error::new(e.kind(), format!("cannot set TCP_USER_TIMEOUT: {e}"))
            })?;
        }
        Ok(())
    }

    fn drop_conn(&mut self) {
        if let Some(mut conn) = self.conn.take() {
            let _ = self.poll.registry().deregister(&mut conn.stream);
            // Read what the server sent and we will not process (a PONG in
            // flight), so that the close sends a FIN, not a reset: the
            // server then records a clean `closed` rather than `reset`,
            // as it does the other way round. Bounded: the socket does not
            // block, and a server still sending is not waited for.
            let mut sink = [0u8; 4096];
            for _ in 0..16 {
                match conn.stream.read(&mut sink) {
                    Ok(n) if n > 0 => {}
                    _ => break,
                }
            }
        }
    }

    /// The transport ended under us: forget the socket, tell the session.
    fn fail(&mut self, end: TransportEnd) {
        self.drop_conn();
        let now = self.now();
        self.session.handle_closed(now, end);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_maps_to_the_session() {
        let mut c = ClientConfig::new(vec!["127.0.0.1:1".to_owned()], "dev");
        c.seed = Some(7);
        let s = c.session_config(1).expect("valid");
        assert_eq!(s.interval, IntervalPolicy::Server);
        assert_eq!(s.reply_timeout_ms, 10_000);
        assert_eq!(s.connect_timeout_ms, 10_000);
        assert_eq!((s.backoff_base_ms, s.backoff_cap_ms), (100, 30_000));
        assert_eq!(s.seed, 7);
        c.interval = Some(Duration::from_millis(1500));
        assert_eq!(
            c.session_config(1).expect("valid").interval,
            IntervalPolicy::Fixed(1500)
        );
        // Durations to wait round up: a positive one never becomes 0 ms.
        c.interval = Some(Duration::from_micros(1500));
        c.reply_timeout = Duration::from_micros(1);
        let s = c.session_config(1).expect("valid");
        assert_eq!(s.interval, IntervalPolicy::Fixed(2));
        assert_eq!(s.reply_timeout_ms, 1);
        c.reply_timeout = Duration::from_secs(10);
        c.interval = Some(Duration::ZERO);
        assert_eq!(
            c.session_config(1).map_err(|e| e.kind()).err(),
            Some(ErrorKind::Config)
        );
        c.interval = None;
        c.reply_timeout = Duration::ZERO;
        assert!(c.session_config(1).is_err());
        c.reply_timeout = Duration::from_secs(10);
        // The foreground interval rounds up too, and may not be zero.
        c.foreground_interval = Some(Duration::from_micros(2_500));
        let s = c.session_config(1).expect("valid");
        assert_eq!(s.foreground_interval_ms.map(|f| f.get()), Some(3));
        c.foreground_interval = Some(Duration::ZERO);
        let e = c.session_config(1).expect_err("zero");
        assert!(e.to_string().contains("foreground interval"), "{e}");
    }

    #[test]
    fn servers_resolve_or_say_why() {
        let ok = resolve(&["127.0.0.1:7000".to_owned(), "[::1]:7001".to_owned()]).expect("literal");
        assert_eq!(ok.len(), 2);
        assert_eq!(ok[0].port(), 7000);
        assert_eq!(
            resolve(&[]).map_err(|e| e.kind()).err(),
            Some(ErrorKind::Config)
        );
        assert_eq!(
            resolve(&[" ".to_owned()]).map_err(|e| e.kind()).err(),
            Some(ErrorKind::Config)
        );
        let no_port = resolve(&["127.0.0.1".to_owned()]).expect_err("no port");
        assert_eq!(no_port.kind(), ErrorKind::Resolve);
        assert!(no_port.to_string().contains("HOST:PORT"), "{no_port}");
    }

    #[test]
    fn bad_configs_fail_before_any_io() {
        let c = ClientConfig::new(vec!["127.0.0.1:1".to_owned()], "has space");
        let e = run(c).expect_err("bad id");
        assert_eq!(e.kind(), ErrorKind::Config);
        assert!(e.to_string().contains("client id"), "{e}");
    }
}
