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
//! - **Stdin** is read by a helper thread that blocks on it, hands lines to
//!   the loop through a bounded channel and wakes it with a mio `Waker`.
//!   That works the same for a terminal, a pipe, a file or `/dev/null`
//!   (epoll refuses regular files), and never flips the terminal's shared
//!   file status to non-blocking behind the shell's back. Lines wait until
//!   the session is welcomed (the channel is bounded, so a fast pipe is
//!   held back rather than buffered). End of input ends the client once
//!   the lines before it are sent; so do `SIGINT` and `SIGTERM`, at once. The client leaves without a
//!   word (the protocol has no client `BYE`): dropping the socket closes it,
//!   after one last non-blocking attempt to write what is pending.
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

use std::io::{self, Read};
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
    Action, IntervalPolicy, Phase, ServerIndex, Session, SessionConfig, TransportEnd,
    DEFAULT_BACKOFF_BASE_MS, DEFAULT_BACKOFF_CAP_MS, DEFAULT_CONNECT_TIMEOUT_MS,
    DEFAULT_REPLY_TIMEOUT_MS,
};
use super::transmit;
use crate::time::{millis_ceil, millis_floor, Clock, Tick};

mod output;
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
        c.token = self.token.clone().map(Box::new);
        Ok(c)
    }
}

pub use crate::error::{Error, ErrorKind};

/// Runs the client until stdin ends or `SIGINT`/`SIGTERM` arrives; server
/// failures never end it, they lead to reconnects. Returns an error only
/// for a bad config, an unresolvable server, or a failing event loop, stdin
/// or stdout (a closed stdout pipe ends the client cleanly).
pub fn run(config: ClientConfig) -> Result<(), Error> {
    let addrs = resolve(&config.servers)?;
    let session_config = config.session_config(addrs.len())?;
    let max_message = session_config.max_message;
    let clock = Clock::new();
    let session =
        Session::new(session_config, clock.now()).map_err(|e| Error::config(e.to_string()))?;
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
            "adaptive interval: from {} ms up to {} ms, stepping up after {} answered beats, \
             {}% margin below what worked, re-probing after {} beats",
            a.min_ms, a.max_ms, a.step_after, a.margin_pct, a.reprobe_after
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
    let mut signals = Signals::new([libc::SIGINT, libc::SIGTERM])
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
    spawn_stdin_reader(tx, Arc::clone(&waker), max_message)
        .map_err(|e| Error::io("cannot start the stdin reader", e))?;

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
        _waker: waker,
        held: None,
        read_buf: vec![0; READ_BUF].into_boxed_slice(),
        stop: false,
    };
    driver.run(&mut signals)
}

/// The stdin reader's wake-up token.
const STDIN: Token = Token(0);
/// The signal pipe's token.
const SIGNALS: Token = Token(1);
/// The first connection token; later ones count up and are never reused.
const FIRST_CONN: usize = 2;
/// How many stdin lines may wait for the loop before the reader blocks.
const STDIN_QUEUE: usize = 64;
/// The size of the one read buffer, in bytes.
const READ_BUF: usize = 16 * 1024;

/// Resolves every `HOST:PORT`; each address becomes one server entry.
fn resolve(servers: &[String]) -> Result<Vec<SocketAddr>, Error> {
    if servers.is_empty() {
        return Err(Error::config("no server given".to_owned()));
    }
    let mut addrs = Vec::new();
    for server in servers {
        let server = server.trim();
        if server.is_empty() {
            return Err(Error::config("empty server address".to_owned()));
        }
        addrs.extend(crate::addr::resolve(server)?);
    }
    Ok(addrs)
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
    _waker: Arc<Waker>,
    /// A stdin line waiting for the session to come online.
    held: Option<Input>,
    read_buf: Box<[u8]>,
    stop: bool,
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
                        if let Some(signal) = signals.pending().next() {
                            info!("signal {signal}: exiting");
                            self.stop = true;
                        }
                    }
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
        Ok(())
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
        self.flush();
        self.report_events()
    }

    fn connect(&mut self, server: ServerIndex) {
        // The session closes before it connects; never keep two sockets.
        self.drop_conn();
        let now = self.now();
        let Some(&addr) = self.addrs.get(server.0) else {
            self.session
                .handle_closed(now, TransportEnd::Error(io::ErrorKind::InvalidInput));
            return;
        };
        debug!("connecting to {addr}");
        let mut stream = match TcpStream::connect(addr) {
            Ok(stream) => stream,
            Err(e) => {
                debug!("connect to {addr}: {e}");
                self.session
                    .handle_closed(now, TransportEnd::Error(e.kind()));
                return;
            }
        };
        if let Err(e) = self.set_socket_options(&stream) {
            warn!("{addr}: {e}");
            self.session
                .handle_closed(now, TransportEnd::Error(e.kind()));
            return;
        }
        let token = Token(self.next_token);
        self.next_token = self.next_token.checked_add(1).unwrap_or(FIRST_CONN);
        let interest = Interest::READABLE | Interest::WRITABLE;
        if let Err(e) = self.poll.registry().register(&mut stream, token, interest) {
            debug!("register {addr}: {e}");
            self.session
                .handle_closed(now, TransportEnd::Error(e.kind()));
            return;
        }
        self.conn = Some(Conn {
            stream,
            token,
            addr,
            connected: false,
        });
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
        }
    }

    /// The transport ended under us: forget the socket, tell the session.
    fn fail(&mut self, end: TransportEnd) {
        self.drop_conn();
        let now = self.now();
        self.session.handle_closed(now, end);
    }

    fn handle_socket(&mut self, token: Token) -> Result<(), Error> {
        let Some(conn) = self.conn.as_mut().filter(|c| c.token == token) else {
            return Ok(()); // a socket closed earlier in this batch
        };
        if !conn.connected {
            match crate::sys::connect_result(&conn.stream) {
                Ok(false) => return Ok(()), // spurious: not connected yet
                Ok(true) => {
                    conn.connected = true;
                    if let Err(e) = conn.stream.set_nodelay(true) {
                        debug!("TCP_NODELAY on {}: {e}", conn.addr);
                    }
                    let now = self.now();
                    self.session.handle_connected(now);
                }
                Err(e) => {
                    debug!("connect to {}: {e}", conn.addr);
                    self.fail(TransportEnd::Error(e.kind()));
                    return self.pump();
                }
            }
        }
        self.read_socket(token)?;
        self.pump()
    }

    /// Reads until `WouldBlock`, feeding the session as it goes.
    fn read_socket(&mut self, token: Token) -> Result<(), Error> {
        loop {
            // The session may have closed this connection (and even opened
            // the next) while handling what was read.
            let Some(conn) = self.conn.as_mut().filter(|c| c.token == token) else {
                return Ok(());
            };
            match conn.stream.read(&mut self.read_buf) {
                Ok(0) => {
                    self.fail(TransportEnd::Eof);
                    return Ok(());
                }
                Ok(n) => {
                    let now = self.now();
                    let data = self.read_buf.get(..n).unwrap_or_default();
                    self.session.handle_received(now, data);
                    self.pump()?;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    debug!("read from {}: {e}", conn.addr);
                    self.fail(TransportEnd::Error(e.kind()));
                    return Ok(());
                }
            }
        }
    }

    /// Writes the session's output until it is all written or the socket
    /// would block (a writable event brings us back).
    fn flush(&mut self) {
        let Some(conn) = self.conn.as_mut().filter(|c| c.connected) else {
            return;
        };
        if let Err(end) = transmit(&mut self.session, &mut conn.stream) {
            debug!("write to {}: {end:?}", conn.addr);
            self.fail(end);
        }
    }

    /// Sends what was typed. Lines wait (in `held`, then in the bounded
    /// channel, then in the reader thread) until the session is welcomed,
    /// so lines typed or piped before a connection are not lost; end of
    /// input with nothing waiting ends the client at once.
    fn handle_stdin(&mut self) -> Result<(), Error> {
        loop {
            let input = match self.held.take() {
                Some(input) => input,
                None => match self.stdin.try_recv() {
                    Ok(input) => input,
                    Err(TryRecvError::Empty) => return Ok(()),
                    Err(TryRecvError::Disconnected) => Input::Eof,
                },
            };
            match input {
                Input::Line(line) if self.session.phase() != Phase::Online => {
                    self.held = Some(Input::Line(line));
                    return Ok(());
                }
                Input::Line(line) => {
                    let now = self.now();
                    if let Err(e) = self.session.send_message(now, &line) {
                        warn!("message not sent: {e}");
                    }
                    self.pump()?;
                }
                Input::TooLong => warn!(
                    "message not sent: longer than {} bytes",
                    self.session.config().max_message
                ),
                Input::Eof => {
                    info!("end of input: exiting");
                    self.stop = true;
                    return Ok(());
                }
                Input::Failed(e) => return Err(Error::io("cannot read stdin", e)),
            }
        }
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
