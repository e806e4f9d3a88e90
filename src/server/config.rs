//! Server settings, with the defaults of `vigil serve`.
//!
//! The `DEFAULT_*` constants are the one source of every default: they
//! make [`Config::default`], and `vigil serve` takes its flags' defaults
//! (and the defaults its `--help` shows) from them.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use super::workers::WorkerSlot;
use crate::duration::MAX_DURATION;
use crate::sys::Keepalive;

use super::limits::ConnectRate;

/// The default listen address, as a flag takes it: `127.0.0.1:7700`
/// ([`DEFAULT_LISTEN_ADDR`] written out).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7700";
/// The default listen address: `127.0.0.1:7700`, loopback only.
pub const DEFAULT_LISTEN_ADDR: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 1), 7700));
/// The default heartbeat interval: 30 s.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
/// The default silence timeout: 45 s, 1.5 × [`DEFAULT_INTERVAL`] (as MQTT).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(45);
/// The default timing-wheel resolution: 100 ms
/// ([`wheel::DEFAULT_RESOLUTION_MS`](crate::wheel::DEFAULT_RESOLUTION_MS)).
pub const DEFAULT_TICK: Duration = Duration::from_millis(crate::wheel::DEFAULT_RESOLUTION_MS);
/// The default number of timing-wheel slots: 1024
/// ([`wheel::DEFAULT_SLOTS`](crate::wheel::DEFAULT_SLOTS)).
pub const DEFAULT_WHEEL_SLOTS: usize = crate::wheel::DEFAULT_SLOTS;
/// The most timing-wheel slots [`Config::validate`] accepts: 2^24.
pub const MAX_WHEEL_SLOTS: usize = 1 << 24;
/// The default cap on a connection's unsent output: 64 KiB.
pub const DEFAULT_MAX_OUTPUT: usize = 64 * 1024;
/// The default period of the stats log line: 10 s.
pub const DEFAULT_STATS_INTERVAL: Duration = Duration::from_secs(10);
/// The default deadline of a WebSocket opening handshake: 10 s.
pub const DEFAULT_WS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// The default listen backlog: 4096 (the kernel caps it at
/// `net.core.somaxconn`).
pub const DEFAULT_BACKLOG: u32 = 4096;

/// How a server listens, times out and limits its peers.
///
/// `Config::default()` is what `vigil serve` runs with when given no flags.
/// The struct is `#[non_exhaustive]`, so a new setting is not a breaking
/// change: outside this crate, start from `Config::default()` and assign
/// fields, or use the [`Builder`](super::Builder).
///
/// ```
/// use std::time::Duration;
/// use vigil::{Config, LineProtocol, Server};
///
/// let mut config = Config::default();
/// config.listen = vec!["127.0.0.1:0".parse().unwrap()];
/// config.timeout = Duration::from_secs(90);
/// let server = Server::new(config, LineProtocol::default())?;
/// assert!(server.local_addr().ip().is_loopback());
/// # Ok::<(), vigil::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Config {
    /// Where to listen: one or more addresses, none of them repeated.
    /// Default [`DEFAULT_LISTEN_ADDR`] (`127.0.0.1:7700`).
    pub listen: Vec<SocketAddr>,
    /// How often clients are told to beat (in `WELCOME`), and the window of
    /// `max_pings`. Default 30 s.
    pub interval: Duration,
    /// How long a connection may stay silent before it is closed with
    /// `BYE timeout`. Default 45 s (1.5 × interval, as MQTT).
    pub timeout: Duration,
    /// The timing wheel's resolution: deadlines fire at most one tick late.
    /// Default 100 ms.
    pub tick: Duration,
    /// Slots in the timing wheel (rounded up to a power of two).
    /// Default 1024: with 100 ms ticks one revolution is 102.4 s, longer than
    /// the default timeout, so no entry is visited before it is due.
    pub wheel_slots: usize,
    /// The most connections at once; more are refused with `BYE overloaded`.
    /// `None`: as many as the open-files limit allows, less a reserve.
    pub max_conns: Option<usize>,
    /// The most unsent output a connection may hold before it is closed
    /// (a peer that never reads). Default 64 KiB.
    pub max_output: usize,
    /// Close a client that sends more than this many heartbeats per
    /// interval, with `BYE too-many-pings`. Default off.
    pub max_pings: Option<u32>,
    /// How often to log a stats line; `None` for never. Default 10 s.
    pub stats_interval: Option<Duration>,
    /// The listen backlog (capped by the kernel's `net.core.somaxconn`).
    /// Default 4096.
    pub backlog: u32,
    /// Whether the server itself handles signals: SIGINT and SIGTERM shut
    /// it down gracefully, SIGHUP reopens the events file, SIGUSR1 logs a
    /// stats line, SIGUSR2 is ignored. Default `false` for the library;
    /// `vigil serve` sets it.
    pub handle_signals: bool,
    /// Kernel TCP keepalive on every connection. Default off: heartbeats
    /// are how vigil finds dead peers; keepalive is a second net for
    /// deployments whose heartbeat timeout is long.
    pub tcp_keepalive: Option<Keepalive>,
    /// `TCP_USER_TIMEOUT` on every connection: how long written data may
    /// go unacknowledged before the kernel gives up on the peer. Default
    /// off (the kernel's retransmission limit, about 15 minutes).
    pub tcp_user_timeout: Option<Duration>,
    /// Which detector declares a silent connection dead: the fixed
    /// `timeout` (the default), or a φ accrual detector that learns each
    /// connection's heartbeat rhythm and gives up sooner on a regular one,
    /// with `timeout` as its upper bound. See [`crate::detector`].
    pub detector: crate::detector::Detector,
    /// Share presence with other nodes through Redis. Default off: see
    /// [`crate::cluster`].
    pub cluster: Option<crate::cluster::ClusterOptions>,
    /// The admin endpoint (HTTP: metrics, online clients, kick, health),
    /// served on the server's own loop. Default off. See
    /// [`AdminConfig`](super::AdminConfig).
    pub admin: Option<super::AdminConfig>,
    /// Serve TLS only, with this certificate and key (rustls: TLS 1.2 and
    /// 1.3). Default off: plain TCP.
    pub tls: Option<super::TlsFiles>,
    /// As one of several worker processes sharing the port (`vigil serve
    /// --workers`): which one. The listening sockets get `SO_REUSEPORT`
    /// and client ids are sharded (see [`WorkerSlot`]). Default `None`.
    pub worker: Option<WorkerSlot>,
    /// Close a connection that has not completed a HELLO (an accepted one,
    /// when the handler checks tokens) within this long, with
    /// `BYE hello-timeout`. Default off (`vigil serve` turns it on, 10 s,
    /// with `--auth-secret`).
    pub hello_timeout: Option<Duration>,
    /// Close a connection that sends more than this many frames of any kind
    /// per interval, with `BYE too-many-frames`. Default off.
    pub max_frames: Option<u16>,
    /// The most connections from one source address; more are refused with
    /// `BYE too-many-connections`. Default off.
    pub max_conns_per_ip: Option<u32>,
    /// How fast one source address may open connections (a token bucket);
    /// faster connects are refused at accept. Default off.
    pub max_connects_per_ip: Option<ConnectRate>,
    /// More listeners, each speaking the protocol its [`Scheme`] names
    /// (`vigil serve --listen ws://ADDR`); `listen` speaks the server's
    /// protocol. All share one presence table, one wheel and one events
    /// stream. Default none.
    pub listen_more: Vec<ListenAs>,
    /// Ping a WebSocket connection not heard from for an interval (it
    /// answers by itself, so a page needs no heartbeat code). Default on.
    pub ws_ping: bool,
    /// Ping a line-protocol connection not heard from for an interval
    /// (`PING`; a client answers `PONG`, which counts as life). Default
    /// off: line clients beat by themselves.
    pub line_ping: bool,
    /// How long a WebSocket connection may take to finish its opening
    /// handshake after the accept. Default 10 s.
    pub ws_handshake_timeout: Duration,
    /// The `Origin`s a WebSocket handshake may come from (`403` for the
    /// others). Default empty: any.
    pub ws_origins: Vec<String>,
}

/// What a listener speaks, as the scheme of `vigil serve --listen`
/// names it (`resp://0.0.0.0:6379`, `ws://[::]:8080`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Scheme {
    /// `line://`: the line protocol.
    Line,
    /// `resp://`: RESP.
    Resp,
    /// `binary://`: the binary protocol.
    Binary,
    /// `raw://`: the raw protocol.
    Raw,
    /// `ws://`: the line protocol inside WebSocket, on plain TCP.
    Ws,
    /// `wss://`: the line protocol inside WebSocket, inside TLS (needs
    /// [`Config::tls`]).
    Wss,
}

impl Scheme {
    /// Every scheme, in the order `--help` lists them.
    pub const ALL: [Scheme; 6] = [
        Scheme::Line,
        Scheme::Resp,
        Scheme::Binary,
        Scheme::Raw,
        Scheme::Ws,
        Scheme::Wss,
    ];

    /// The scheme as written before `://`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Line => "line",
            Scheme::Resp => "resp",
            Scheme::Binary => "binary",
            Scheme::Raw => "raw",
            Scheme::Ws => "ws",
            Scheme::Wss => "wss",
        }
    }

    /// Splits `scheme://rest` into the scheme and the rest; `None` for an
    /// address without one; an error for a scheme it does not know.
    pub fn split(s: &str) -> Result<(Option<Scheme>, &str), String> {
        let Some((name, rest)) = s.split_once("://") else {
            return Ok((None, s));
        };
        match Scheme::ALL.into_iter().find(|k| k.as_str() == name) {
            Some(k) => Ok((Some(k), rest)),
            None => Err(format!(
                "unknown scheme {name}:// (one of line, resp, binary, raw, ws, wss)"
            )),
        }
    }

    /// Whether its connections speak WebSocket.
    pub fn is_websocket(self) -> bool {
        matches!(self, Scheme::Ws | Scheme::Wss)
    }
}

/// A listener of [`Config::listen_more`]: where, and what it speaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenAs {
    /// What it speaks.
    pub scheme: Scheme,
    /// Every address it listens on, all on one port (port 0: one the
    /// kernel picks, its own).
    pub addrs: Vec<SocketAddr>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: vec![DEFAULT_LISTEN_ADDR],
            interval: DEFAULT_INTERVAL,
            timeout: DEFAULT_TIMEOUT,
            tick: DEFAULT_TICK,
            wheel_slots: DEFAULT_WHEEL_SLOTS,
            max_conns: None,
            max_output: DEFAULT_MAX_OUTPUT,
            max_pings: None,
            stats_interval: Some(DEFAULT_STATS_INTERVAL),
            backlog: DEFAULT_BACKLOG,
            handle_signals: false,
            tcp_keepalive: None,
            tcp_user_timeout: None,
            detector: crate::detector::Detector::Fixed,
            cluster: None,
            admin: None,
            tls: None,
            worker: None,
            hello_timeout: None,
            max_frames: None,
            max_conns_per_ip: None,
            max_connects_per_ip: None,
            listen_more: Vec::new(),
            ws_ping: true,
            line_ping: false,
            ws_handshake_timeout: DEFAULT_WS_HANDSHAKE_TIMEOUT,
            ws_origins: Vec::new(),
        }
    }
}

/// Why a configuration cannot run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub(crate) String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Checks each setting's range and the settings against each other.
    ///
    /// Every duration is at most [`MAX_DURATION`] (a year), so no deadline
    /// arithmetic on them can overflow.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |s: &str| Err(ConfigError(s.to_owned()));
        if self.listen.is_empty() && self.listen_more.is_empty() {
            return err("no listen address");
        }
        let all: Vec<SocketAddr> = self
            .listen
            .iter()
            .chain(self.listen_more.iter().flat_map(|l| l.addrs.iter()))
            .copied()
            .collect();
        for (i, a) in all.iter().enumerate() {
            if a.port() != 0 && all[..i].contains(a) {
                return Err(ConfigError(format!(
                    "the listen address {a} is given twice"
                )));
            }
        }
        if self.listen_more.iter().any(|l| l.addrs.is_empty()) {
            return err("a listener with no address");
        }
        if self.listen_more.len() > 200 {
            return err("more than 200 extra listeners");
        }
        if self.tls.is_none() && self.listen_more.iter().any(|l| l.scheme == Scheme::Wss) {
            return err("wss:// needs a TLS certificate and key (--tls-cert, --tls-key)");
        }
        if self.worker.is_some() && !self.listen_more.is_empty() {
            return err("listeners with a scheme are not served by several workers yet");
        }
        let durations = [
            ("ws handshake timeout", Some(self.ws_handshake_timeout)),
            ("tick", Some(self.tick)),
            ("timeout", Some(self.timeout)),
            ("interval", Some(self.interval)),
            ("stats interval", self.stats_interval),
            ("TCP user timeout", self.tcp_user_timeout),
            ("hello timeout", self.hello_timeout),
            (
                "connect rate period",
                self.max_connects_per_ip.map(|r| r.per),
            ),
        ];
        for (what, d) in durations {
            if d.is_some_and(|d| d > MAX_DURATION) {
                return Err(ConfigError(format!(
                    "the {what} must be at most {}",
                    crate::duration::format_duration(MAX_DURATION)
                )));
            }
        }
        if let Some(k) = &self.tcp_keepalive {
            k.check().map_err(ConfigError)?;
        }
        if self.tick.is_zero() {
            return err("the tick must be at least 1ms");
        }
        if self.timeout.is_zero() {
            return err("the timeout must be at least 1ms");
        }
        if self.interval.is_zero() {
            return err("the interval must be at least 1ms");
        }
        if self.tick > self.timeout {
            return err("the tick must not be longer than the timeout");
        }
        if self.wheel_slots == 0 || self.wheel_slots > MAX_WHEEL_SLOTS {
            return err("the wheel needs 1 to 16777216 slots");
        }
        if let Some(admin) = &self.admin {
            if !admin.addr.ip().is_loopback() && !admin.public {
                return Err(ConfigError(format!(
                    "the admin address {} is not loopback: allow it explicitly (--admin-public)",
                    admin.addr
                )));
            }
            if admin
                .token
                .as_deref()
                .is_some_and(|t| t.is_empty() || !t.bytes().all(|b| b.is_ascii_graphic()))
            {
                return err("the admin token must be printable ASCII without spaces, not empty");
            }
            // Port 0 picks a free port for each: no clash.
            if admin.addr.port() != 0 && self.listen.contains(&admin.addr) {
                return err("the admin address must differ from the listen addresses");
            }
        }
        if self.max_output == 0 {
            return err("the output cap must be at least 1 byte");
        }
        if self.max_conns == Some(0) {
            return err("--max-conns must be at least 1");
        }
        if self.hello_timeout == Some(Duration::ZERO) {
            return err("the hello timeout must be at least 1ms");
        }
        if self.max_frames == Some(0) || self.max_conns_per_ip == Some(0) {
            return err("--max-frames and --max-conns-per-ip must be at least 1");
        }
        if self
            .max_connects_per_ip
            .is_some_and(|r| r.count == 0 || r.per < Duration::from_millis(1))
        {
            return err("--max-connects-per-ip needs at least 1 connect per at least 1ms");
        }
        if self.stats_interval == Some(Duration::ZERO) {
            return err("the stats interval must be at least 1ms");
        }
        if let Some(w) = &self.worker {
            if w.index >= w.count {
                return err("a worker's index must be below the worker count");
            }
        }
        if self.timeout < self.interval {
            log::warn!(
                "the timeout ({:?}) is shorter than the interval ({:?}): clients that beat at the interval will time out",
                self.timeout,
                self.interval
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_as_documented() {
        let c = Config::default();
        assert!(c.validate().is_ok());
        assert_eq!(c.listen, [DEFAULT_LISTEN_ADDR]);
        assert_eq!(DEFAULT_LISTEN_ADDR.to_string(), DEFAULT_LISTEN);
        assert_eq!(c.timeout, c.interval * 3 / 2);
        assert_eq!(c.interval, Duration::from_secs(30));
        assert_eq!(c.tick, Duration::from_millis(100));
        assert_eq!(c.wheel_slots, 1024);
        assert_eq!(c.max_output, 64 * 1024);
        assert_eq!(c.stats_interval, Some(Duration::from_secs(10)));
        assert_eq!(c.backlog, 4096);
    }

    /// `change` applied to the defaults is refused with a message
    /// containing `needle`, or accepted when `needle` is `None`.
    #[track_caller]
    fn check(change: impl FnOnce(&mut Config), needle: Option<&str>) {
        let mut c = Config::default();
        change(&mut c);
        match (c.validate(), needle) {
            (Ok(()), None) => {}
            (Err(e), Some(needle)) => assert!(e.to_string().contains(needle), "{e}"),
            (got, _) => panic!("{c:?}: got {got:?}, expected {needle:?}"),
        }
    }

    #[test]
    fn bad_settings_are_named() {
        check(|c| c.tick = Duration::ZERO, Some("tick"));
        check(|c| c.timeout = Duration::ZERO, Some("timeout"));
        check(|c| c.interval = Duration::ZERO, Some("interval"));
        check(|c| c.tick = Duration::from_secs(60), Some("tick"));
        check(|c| c.wheel_slots = 0, Some("slots"));
        check(|c| c.wheel_slots = MAX_WHEEL_SLOTS + 1, Some("slots"));
        check(|c| c.wheel_slots = MAX_WHEEL_SLOTS, None);
        check(|c| c.max_conns = Some(0), Some("max-conns"));
        check(|c| c.max_output = 0, Some("output"));
        check(|c| c.stats_interval = Some(Duration::ZERO), Some("stats"));
    }

    #[test]
    fn listen_addresses_are_one_or_more_and_distinct() {
        let v6: SocketAddr = "[::1]:7700".parse().expect("literal");
        check(|c| c.listen.clear(), Some("no listen address"));
        check(|c| c.listen.push(v6), None);
        check(
            |c| c.listen = vec![v6, DEFAULT_LISTEN_ADDR, v6],
            Some("[::1]:7700 is given twice"),
        );
    }

    #[test]
    fn durations_are_at_most_a_year() {
        let over = MAX_DURATION + Duration::from_millis(1);
        check(
            |c| c.timeout = over,
            Some("timeout must be at most 525600m"),
        );
        check(|c| c.interval = over, Some("interval must be at most"));
        check(|c| c.tick = over, Some("tick must be at most"));
        check(
            |c| c.stats_interval = Some(over),
            Some("stats interval must be at most"),
        );
        check(
            |c| c.tcp_user_timeout = Some(over),
            Some("TCP user timeout must be at most"),
        );
        check(
            |c| c.timeout = Duration::MAX,
            Some("timeout must be at most"),
        );
        // The bound itself is fine, for every duration at once.
        check(
            |c| {
                c.interval = MAX_DURATION;
                c.timeout = MAX_DURATION;
                c.tick = MAX_DURATION;
                c.stats_interval = Some(MAX_DURATION);
                c.tcp_user_timeout = Some(MAX_DURATION);
            },
            None,
        );
    }

    #[test]
    fn the_admin_endpoint_is_loopback_unless_made_public() {
        let admin = |addr: &str, public: bool, token: Option<&str>| {
            let mut a = super::super::AdminConfig::new(addr.parse().expect("literal"));
            a.public = public;
            a.token = token.map(str::to_owned);
            Some(a)
        };
        check(|c| c.admin = admin("127.0.0.1:9000", false, None), None);
        check(
            |c| c.admin = admin("[::1]:9000", false, Some("s3cret")),
            None,
        );
        check(
            |c| c.admin = admin("0.0.0.0:9000", false, None),
            Some("the admin address 0.0.0.0:9000 is not loopback"),
        );
        check(
            |c| c.admin = admin("192.0.2.1:9000", false, None),
            Some("--admin-public"),
        );
        check(|c| c.admin = admin("0.0.0.0:9000", true, None), None);
        check(
            |c| c.admin = admin("127.0.0.1:9000", false, Some("")),
            Some("admin token"),
        );
        check(
            |c| c.admin = admin("127.0.0.1:9000", false, Some("a b")),
            Some("admin token"),
        );
        check(
            |c| c.admin = admin(DEFAULT_LISTEN, false, None),
            Some("must differ from the listen"),
        );
        check(
            |c| {
                c.listen = vec!["127.0.0.1:0".parse().expect("literal")];
                c.admin = admin("127.0.0.1:0", false, None);
            },
            None,
        );
    }

    #[test]
    fn keepalive_is_checked_like_the_flag() {
        let k = |idle, count| Keepalive {
            idle: Duration::from_secs(idle),
            interval: Duration::from_secs(10),
            count,
        };
        check(|c| c.tcp_keepalive = Some(k(60, 5)), None);
        check(|c| c.tcp_keepalive = Some(k(0, 5)), Some("at least 1s"));
        check(
            |c| c.tcp_keepalive = Some(k(32_768, 5)),
            Some("at most 32767s"),
        );
        check(
            |c| c.tcp_keepalive = Some(k(60, 0)),
            Some("at least 1 probe"),
        );
        check(|c| c.tcp_keepalive = Some(k(60, 128)), Some("127 probes"));
    }
}
