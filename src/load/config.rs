//! What a load run is told: [`LoadConfig`], its checks, how it is split
//! between worker processes, and the text form a worker receives it in.
//!
//! All of it is pure: no sockets, no clock, no environment. The one input
//! from the machine, how many descriptors a process may hold, is a
//! parameter ([`LoadConfig::check`]).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use crate::protocol::client::ClientCodec;
use crate::protocol::valid_client_id;
use crate::time::millis_ceil;

/// The default connect rate, per second (per run, shared by the workers).
pub const DEFAULT_CONNECT_RATE: f64 = 1_000.0;
/// The default heartbeat interval.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);
/// The default hold: how long to run once every connection has started.
pub const DEFAULT_DURATION: Duration = Duration::from_secs(30);
/// The default time the server gets to answer a `PING` (or a `HELLO`, or
/// the TCP connect) before the session declares it dead.
pub const DEFAULT_REPLY_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest hold accepted: a load run always ends by itself.
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);
/// The longest interval or reply timeout accepted.
pub const MAX_INTERVAL: Duration = Duration::from_secs(3600);
/// The most worker processes.
pub const MAX_PROCS: usize = 64;
/// Descriptors a load process keeps for itself beyond its connections:
/// stdio, the epoll instance, the signal pipe, a log file.
pub const FD_RESERVE: u64 = 10;

/// An inclusive range of IPv4 source addresses, `A-B` (or a single `A`).
///
/// ```
/// use vigil::load::SourceRange;
///
/// let r: SourceRange = "127.0.0.2-127.0.0.40".parse().unwrap();
/// assert_eq!(r.len(), 39);
/// assert_eq!(r.nth(0).to_string(), "127.0.0.2");
/// assert_eq!(r.nth(39).to_string(), "127.0.0.2"); // wraps around
/// assert!("127.0.0.9-127.0.0.2".parse::<SourceRange>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceRange {
    first: Ipv4Addr,
    last: Ipv4Addr,
}

impl SourceRange {
    /// The range from `first` to `last`, both included; `None` when `last`
    /// comes before `first`.
    pub fn new(first: Ipv4Addr, last: Ipv4Addr) -> Option<SourceRange> {
        (u32::from(first) <= u32::from(last)).then_some(SourceRange { first, last })
    }

    /// The first address.
    pub fn first(&self) -> Ipv4Addr {
        self.first
    }

    /// The last address.
    pub fn last(&self) -> Ipv4Addr {
        self.last
    }

    /// How many addresses the range holds (at least 1).
    pub fn len(&self) -> u64 {
        u64::from(u32::from(self.last) - u32::from(self.first)) + 1
    }

    /// Always false: a range holds at least one address.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The address for connection `i`: the range's addresses in turn.
    pub fn nth(&self, i: u64) -> Ipv4Addr {
        // `len` fits in u32 + 1 and the offset below it in u32.
        let offset = (i % self.len()) as u32;
        Ipv4Addr::from(u32::from(self.first) + offset)
    }
}

impl std::str::FromStr for SourceRange {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<SourceRange, ConfigError> {
        let bad = |why: &str| ConfigError::new(format!("invalid --source-ips {s:?}: {why}"));
        let s = s.trim();
        let (a, b) = s.split_once('-').unwrap_or((s, s));
        let parse = |x: &str| -> Result<Ipv4Addr, ConfigError> {
            x.trim()
                .parse::<Ipv4Addr>()
                .map_err(|_| bad("expected IPv4 addresses A-B such as 127.0.0.2-127.0.0.40"))
        };
        let (first, last) = (parse(a)?, parse(b)?);
        SourceRange::new(first, last).ok_or_else(|| bad("the first address is above the last"))
    }
}

impl fmt::Display for SourceRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.first, self.last)
    }
}

/// Why a [`LoadConfig`] (or a flag behind it) was refused. The message
/// names the flag and what would be accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    message: String,
}

impl ConfigError {
    pub(crate) fn new(message: impl Into<String>) -> ConfigError {
        ConfigError {
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}

/// One load run, or one worker's share of it. [`LoadConfig::new`] fills in
/// the documented defaults; change fields as needed, then
/// [`check`](LoadConfig::check).
#[derive(Debug, Clone, PartialEq)]
pub struct LoadConfig {
    /// The server to load.
    pub server: SocketAddr,
    /// How many connections (sessions) to open.
    pub conns: usize,
    /// How many new connections per second, at most. Default:
    /// [`DEFAULT_CONNECT_RATE`].
    pub connect_rate: f64,
    /// The heartbeat interval every session beats at (fixed, whatever the
    /// server's `WELCOME` says). Default: [`DEFAULT_INTERVAL`].
    pub interval: Duration,
    /// How long to hold once every connection has started. Default:
    /// [`DEFAULT_DURATION`].
    pub duration: Duration,
    /// How long a `PING`, a `HELLO` or a connect may go unanswered before
    /// the session declares the server dead; also how long the run waits
    /// for the last replies at the end. Default: [`DEFAULT_REPLY_TIMEOUT`].
    pub reply_timeout: Duration,
    /// Client ids are this prefix followed by the connection's number.
    pub id_prefix: String,
    /// Source addresses to spread the connections over; `None`: the
    /// kernel's choice.
    pub source_ips: Option<SourceRange>,
    /// The seed of the start phases and of the reconnect jitter.
    pub seed: u64,
    /// The number of this process's first connection in the whole run (a
    /// worker's share starts where the previous one ends): it numbers the
    /// client ids and picks the source addresses.
    pub first_index: usize,
    /// The wire protocol every session speaks. Default:
    /// [`ClientCodec::LINE`]. A protocol of your own runs in one process
    /// ([`run`](super::run)); `--procs` workers are told the protocol by
    /// name, so they need a built-in one.
    pub protocol: ClientCodec,
    /// Speak TLS, checking the server's certificate this way; without a
    /// name, the certificate must carry the server's IP address. Default:
    /// `None`, plain TCP.
    pub tls: Option<crate::tls::TlsClient>,
    /// A file holding the secret of a server run with `--auth-secret`:
    /// each session mints its own token for its id. Default: none.
    pub auth_secret: Option<std::path::PathBuf>,
}

impl LoadConfig {
    /// A config for `conns` connections to `server`, with every default.
    pub fn new(server: SocketAddr, conns: usize) -> LoadConfig {
        LoadConfig {
            server,
            conns,
            connect_rate: DEFAULT_CONNECT_RATE,
            interval: DEFAULT_INTERVAL,
            duration: DEFAULT_DURATION,
            reply_timeout: DEFAULT_REPLY_TIMEOUT,
            id_prefix: "load-".to_owned(),
            source_ips: None,
            seed: 0,
            first_index: 0,
            protocol: ClientCodec::LINE,
            tls: None,
            auth_secret: None,
        }
    }

    /// Checks the config for a run in `procs` processes, each allowed
    /// `fd_limit` open descriptors, with `ephemeral_ports` ports per
    /// (source, destination) pair (`None`: unknown, not checked).
    pub fn check(
        &self,
        procs: usize,
        fd_limit: u64,
        ephemeral_ports: Option<u64>,
    ) -> Result<(), ConfigError> {
        let err = |m: String| Err(ConfigError::new(m));
        if self.conns == 0 {
            return err("--conns must be at least 1".to_owned());
        }
        if procs > 1 && !self.protocol.is_built_in() {
            return err(format!(
                "the {} protocol is not built in: run it in one process, without --procs",
                self.protocol.name()
            ));
        }
        if !(self.connect_rate.is_finite() && self.connect_rate > 0.0) {
            return err(format!(
                "--connect-rate must be a positive number of connections per second, not {}",
                self.connect_rate
            ));
        }
        let ramp_s = self.conns as f64 / self.connect_rate;
        if ramp_s > MAX_DURATION.as_secs_f64() {
            return err(format!(
                "--connect-rate {} is too low for {} connections: the ramp alone would take \
                 {ramp_s:.0}s (at most {}s)",
                self.connect_rate,
                self.conns,
                MAX_DURATION.as_secs()
            ));
        }
        for (flag, d, max) in [
            ("--interval", self.interval, MAX_INTERVAL),
            ("--timeout", self.reply_timeout, MAX_INTERVAL),
            ("--duration", self.duration, MAX_DURATION),
        ] {
            if d < Duration::from_millis(1) || d > max {
                return err(format!(
                    "{flag} must be between 1ms and {}s, not {}ms",
                    max.as_secs(),
                    d.as_millis()
                ));
            }
        }
        if procs == 0 || procs > MAX_PROCS {
            return err(format!("--procs must be between 1 and {MAX_PROCS}"));
        }
        if procs > self.conns {
            return err(format!(
                "--procs {procs} is more than --conns {}: every process needs a connection",
                self.conns
            ));
        }
        let last_index = self.first_index.saturating_add(self.conns - 1);
        if !valid_client_id(format!("{}{last_index}", self.id_prefix).as_bytes()) {
            return err(format!(
                "--id-prefix {:?} does not make valid client ids (printable ASCII, no spaces, \
                 at most 128 characters with the number)",
                self.id_prefix
            ));
        }
        let per_proc = per_process(self.conns, procs);
        let room = max_conns_per_process(fd_limit);
        if per_proc as u64 > room {
            let needed = self.conns.div_ceil(room.max(1) as usize);
            return err(format!(
                "{per_proc} connections in one process, but its open-files limit of {fd_limit} \
                 leaves room for {room}: use --procs {needed} or more"
            ));
        }
        if let (Some(ports), IpAddr::V4(_)) = (ephemeral_ports, self.server.ip()) {
            let sources = self.source_ips.map_or(1, |r| r.len());
            let per_source = (self.conns as u64).div_ceil(sources);
            if per_source > ports {
                return err(format!(
                    "{} connections from {sources} source address(es) to one server need \
                     {per_source} ports per address, more than the {ports} ephemeral ports: \
                     spread them with --source-ips A-B",
                    self.conns
                ));
            }
        }
        if self.source_ips.is_some() && !self.server.is_ipv4() {
            return err("--source-ips takes IPv4 addresses, but the server is IPv6".to_owned());
        }
        Ok(())
    }

    /// The session-level id of connection `i` of this process.
    pub fn client_id(&self, i: usize) -> String {
        format!("{}{}", self.id_prefix, self.first_index.saturating_add(i))
    }

    /// The source address of connection `i` of this process, if any.
    pub fn source_ip(&self, i: usize) -> Option<IpAddr> {
        let global = self.first_index.saturating_add(i) as u64;
        self.source_ips.map(|r| IpAddr::V4(r.nth(global)))
    }

    /// The heartbeat interval in whole ms, as the sessions beat at it:
    /// rounded up (a wait), at least 1.
    pub fn interval_ms(&self) -> u64 {
        millis_ceil(self.interval).max(1)
    }

    /// When connection `i` of this process starts, in ms from the run's
    /// start: its slot in the ramp (`i / connect_rate`) plus a random
    /// phase below one interval (`phase_draw` in `0..=u64::MAX`), so
    /// heartbeats are spread over the interval even when the ramp is
    /// shorter than one. Spreading each slot over an interval never raises
    /// the connect rate above `connect_rate`.
    pub fn start_ms(&self, i: usize, phase_draw: u64) -> u64 {
        let slot = (i as f64 * 1_000.0 / self.connect_rate) as u64;
        let interval = self.interval_ms();
        let phase = ((u128::from(phase_draw) * u128::from(interval)) >> 64) as u64;
        slot.saturating_add(phase)
    }

    /// Splits the run into `procs` shares: the connections as evenly as
    /// possible, the connect rate in proportion (so every share ramps over
    /// the same time), consecutive `first_index`es and distinct seeds.
    pub fn shares(&self, procs: usize) -> Vec<LoadConfig> {
        let procs = procs.clamp(1, self.conns.max(1));
        let mut next = self.first_index;
        (0..procs)
            .map(|k| {
                let conns = self.conns / procs + usize::from(k < self.conns % procs);
                let share = LoadConfig {
                    conns,
                    connect_rate: self.connect_rate * conns as f64 / self.conns.max(1) as f64,
                    seed: mix(self.seed, k as u64),
                    first_index: next,
                    ..self.clone()
                };
                next = next.saturating_add(conns);
                share
            })
            .collect()
    }

    /// The config as `key value` lines, the form a worker reads on stdin.
    /// Durations go in whole ms, rounded up, as a single process would
    /// use them.
    pub fn encode(&self) -> String {
        let mut s = format!(
            "server {}\nconns {}\nconnect_rate {}\ninterval_ms {}\nduration_ms {}\n\
             reply_timeout_ms {}\nid_prefix {}\nseed {}\nfirst_index {}\n",
            self.server,
            self.conns,
            self.connect_rate,
            self.interval_ms(),
            millis_ceil(self.duration),
            millis_ceil(self.reply_timeout),
            self.id_prefix,
            self.seed,
            self.first_index,
        );
        if let Some(r) = self.source_ips {
            s.push_str(&format!("source_ips {r}\n"));
        }
        s.push_str(&format!("protocol {}\n", self.protocol.name()));
        if let Some(tls) = &self.tls {
            s.push_str("tls on\n");
            if let Some(ca) = &tls.ca {
                s.push_str(&format!("tls_ca {}\n", ca.display()));
            }
            if let Some(name) = &tls.name {
                s.push_str(&format!("tls_name {name}\n"));
            }
        }
        if let Some(p) = &self.auth_secret {
            s.push_str(&format!("auth_secret {}\n", p.display()));
        }
        s
    }

    /// Reads what [`encode`](LoadConfig::encode) wrote. Every key but
    /// `source_ips`, `protocol` (default: line) and `auth_secret` is required.
    pub fn decode(text: &str) -> Result<LoadConfig, ConfigError> {
        let bad = |what: &str| ConfigError::new(format!("bad worker config: {what}"));
        let mut c = LoadConfig::new(SocketAddr::from(([0, 0, 0, 0], 0)), 0);
        let mut seen = 0u32;
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let (key, value) = line.split_once(' ').ok_or_else(|| bad(line))?;
            let num = || value.parse::<u64>().map_err(|_| bad(line));
            let ms = || num().map(Duration::from_millis);
            let usize_of = || num().and_then(|n| usize::try_from(n).map_err(|_| bad(line)));
            let bit = match key {
                "server" => {
                    c.server = value.parse().map_err(|_| bad(line))?;
                    1
                }
                "conns" => {
                    c.conns = usize_of()?;
                    2
                }
                "connect_rate" => {
                    c.connect_rate = value.parse().map_err(|_| bad(line))?;
                    4
                }
                "interval_ms" => {
                    c.interval = ms()?;
                    8
                }
                "duration_ms" => {
                    c.duration = ms()?;
                    16
                }
                "reply_timeout_ms" => {
                    c.reply_timeout = ms()?;
                    32
                }
                "id_prefix" => {
                    c.id_prefix = value.to_owned();
                    64
                }
                "seed" => {
                    c.seed = num()?;
                    128
                }
                "first_index" => {
                    c.first_index = usize_of()?;
                    256
                }
                "source_ips" => {
                    c.source_ips = Some(value.parse()?);
                    0
                }
                "protocol" => {
                    c.protocol = ClientCodec::by_name(value).ok_or_else(|| bad(line))?;
                    0
                }
                "tls" if value == "on" => {
                    c.tls.get_or_insert_with(Default::default);
                    0
                }
                "tls_ca" => {
                    c.tls.get_or_insert_with(Default::default).ca = Some(value.into());
                    0
                }
                "tls_name" => {
                    c.tls.get_or_insert_with(Default::default).name = Some(value.to_owned());
                    0
                }
                "auth_secret" => {
                    c.auth_secret = Some(value.into());
                    0
                }
                _ => return Err(bad(line)),
            };
            seen |= bit;
        }
        if seen != 511 {
            return Err(bad("a key is missing"));
        }
        Ok(c)
    }
}

/// The most connections one process holds with `fd_limit` descriptors.
pub fn max_conns_per_process(fd_limit: u64) -> u64 {
    fd_limit.saturating_sub(FD_RESERVE)
}

/// The largest share when `conns` are split over `procs` processes.
pub fn per_process(conns: usize, procs: usize) -> usize {
    conns.div_ceil(procs.max(1))
}

/// A seed for share `k`, from the run's seed (one SplitMix64 step).
fn mix(seed: u64, k: u64) -> u64 {
    crate::client::backoff::SplitMix64::new(seed ^ k.wrapping_mul(0x9e37_79b9_7f4a_7c15)).next_u64()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(conns: usize) -> LoadConfig {
        LoadConfig::new("127.0.0.1:7700".parse().unwrap(), conns)
    }

    #[track_caller]
    fn check_range(input: &str, expected: Result<(&str, &str, u64), &str>) {
        match (input.parse::<SourceRange>(), expected) {
            (Ok(r), Ok((first, last, len))) => {
                assert_eq!(
                    (r.first().to_string(), r.last().to_string(), r.len()),
                    (first.to_owned(), last.to_owned(), len),
                    "{input}"
                );
                // Display reads back.
                assert_eq!(r.to_string().parse::<SourceRange>(), Ok(r));
            }
            (Err(e), Err(needle)) => {
                let m = e.to_string();
                assert!(
                    m.contains("--source-ips") && m.contains(needle),
                    "{input}: {m}"
                );
            }
            (got, want) => panic!("{input}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn source_ranges() {
        check_range("127.0.0.2-127.0.0.40", Ok(("127.0.0.2", "127.0.0.40", 39)));
        check_range(" 127.0.0.2 - 127.0.0.2 ", Ok(("127.0.0.2", "127.0.0.2", 1)));
        check_range("127.0.0.5", Ok(("127.0.0.5", "127.0.0.5", 1)));
        check_range(
            "127.0.0.250-127.0.1.4",
            Ok(("127.0.0.250", "127.0.1.4", 11)),
        );
        check_range(
            "0.0.0.0-255.255.255.255",
            Ok(("0.0.0.0", "255.255.255.255", 1 << 32)),
        );
        check_range("127.0.0.40-127.0.0.2", Err("above the last"));
        check_range("", Err("expected IPv4"));
        check_range("127.0.0.1-", Err("expected IPv4"));
        check_range("-127.0.0.1", Err("expected IPv4"));
        check_range("::1-::2", Err("expected IPv4"));
        check_range("127.0.0.1-127.0.0.2-127.0.0.3", Err("expected IPv4"));
        check_range("127.0.0.256", Err("expected IPv4"));
        check_range("localhost", Err("expected IPv4"));
    }

    #[test]
    fn source_addresses_go_round() {
        let r: SourceRange = "127.0.0.2-127.0.0.4".parse().unwrap();
        let got: Vec<String> = (0..7).map(|i| r.nth(i).to_string()).collect();
        assert_eq!(
            got,
            [
                "127.0.0.2",
                "127.0.0.3",
                "127.0.0.4",
                "127.0.0.2",
                "127.0.0.3",
                "127.0.0.4",
                "127.0.0.2"
            ]
        );
        let all: SourceRange = "0.0.0.0-255.255.255.255".parse().unwrap();
        assert_eq!(all.nth(u64::MAX).to_string(), "255.255.255.255");
        // A worker's share continues the round where the previous one ended.
        let mut c = config(10);
        c.source_ips = Some(r);
        let shares = c.shares(3);
        assert_eq!(shares[1].first_index, 4);
        assert_eq!(shares[1].source_ip(0), Some("127.0.0.3".parse().unwrap()));
        assert_eq!(shares[1].client_id(2), "load-6");
    }

    #[track_caller]
    fn check_refused(c: &LoadConfig, procs: usize, needle: &str) {
        let e = c.check(procs, 20_000, Some(28_232)).expect_err(needle);
        assert!(e.to_string().contains(needle), "{e}");
    }

    #[test]
    fn bad_configs_are_refused_with_the_flag_named() {
        let ok = config(100);
        ok.check(1, 20_000, Some(28_232)).unwrap();
        check_refused(&config(0), 1, "--conns");
        let mut c = config(10);
        for rate in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            c.connect_rate = rate;
            check_refused(&c, 1, "--connect-rate");
        }
        let mut c = config(100);
        c.connect_rate = 0.001;
        check_refused(&c, 1, "the ramp alone would take 100000s");
        let mut c = config(10);
        c.interval = Duration::ZERO;
        check_refused(&c, 1, "--interval");
        c.interval = Duration::from_secs(3601);
        check_refused(&c, 1, "--interval");
        let mut c = config(10);
        c.duration = Duration::ZERO;
        check_refused(&c, 1, "--duration");
        c.duration = MAX_DURATION + Duration::from_millis(1);
        check_refused(&c, 1, "--duration");
        let mut c = config(10);
        c.reply_timeout = Duration::from_micros(999);
        check_refused(&c, 1, "--timeout");
        check_refused(&config(10), 0, "--procs");
        check_refused(&config(100), MAX_PROCS + 1, "--procs");
        check_refused(&config(3), 4, "--procs 4 is more than --conns 3");
        for prefix in ["has space", "é", &"x".repeat(128)] {
            let mut c = config(10);
            c.id_prefix = prefix.to_owned();
            check_refused(&c, 1, "--id-prefix");
        }
        let mut c = config(10);
        c.id_prefix = String::new();
        c.check(1, 20_000, None).unwrap();
    }

    #[test]
    fn one_process_holds_at_most_its_descriptors() {
        assert_eq!(max_conns_per_process(20_000), 19_990);
        assert_eq!(max_conns_per_process(5), 0);
        let c = config(19_990);
        c.check(1, 20_000, None).unwrap();
        let c = config(19_991);
        let e = c.check(1, 20_000, None).unwrap_err().to_string();
        assert!(
            e.contains("open-files limit of 20000") && e.contains("--procs 2"),
            "{e}"
        );
        c.check(2, 20_000, None).unwrap();
        let c = config(50_000);
        let e = c.check(2, 20_000, None).unwrap_err().to_string();
        assert!(e.contains("25000 connections in one process") && e.contains("--procs 3"));
        c.check(3, 20_000, Some(28_232)).unwrap_err(); // ports: see below
        assert_eq!(per_process(10, 3), 4);
    }

    #[test]
    fn ephemeral_ports_need_enough_sources() {
        let mut c = config(50_000);
        let e = c.check(3, 20_000, Some(28_232)).unwrap_err().to_string();
        assert!(e.contains("--source-ips"), "{e}");
        c.source_ips = Some("127.0.0.2-127.0.0.3".parse().unwrap());
        c.check(3, 20_000, Some(28_232)).unwrap();
        c.check(3, 20_000, None).unwrap();
        c.server = "[::1]:7700".parse().unwrap();
        let e = c.check(3, 20_000, None).unwrap_err().to_string();
        assert!(e.contains("IPv6"), "{e}");
    }

    #[test]
    fn shares_add_up() {
        let mut c = config(10);
        c.connect_rate = 500.0;
        c.first_index = 100;
        let shares = c.shares(3);
        let conns: Vec<usize> = shares.iter().map(|s| s.conns).collect();
        assert_eq!(conns, [4, 3, 3]);
        let firsts: Vec<usize> = shares.iter().map(|s| s.first_index).collect();
        assert_eq!(firsts, [100, 104, 107]);
        let rate: f64 = shares.iter().map(|s| s.connect_rate).sum();
        assert!((rate - 500.0).abs() < 1e-9);
        assert_eq!(shares[0].connect_rate, 200.0);
        let mut seeds: Vec<u64> = shares.iter().map(|s| s.seed).collect();
        seeds.dedup();
        assert_eq!(seeds.len(), 3);
        // Every id once.
        let mut ids: Vec<String> = shares
            .iter()
            .flat_map(|s| (0..s.conns).map(|i| s.client_id(i)))
            .collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 10);
        assert_eq!(
            c.shares(1),
            vec![LoadConfig {
                seed: mix(0, 0),
                ..c.clone()
            }]
        );
        // More processes than connections: one connection each.
        assert_eq!(config(2).shares(5).len(), 2);
    }

    #[test]
    fn starts_follow_the_rate_with_a_phase_below_one_interval() {
        let mut c = config(1000);
        c.connect_rate = 200.0;
        c.interval = Duration::from_millis(1000);
        assert_eq!(c.start_ms(0, 0), 0);
        assert_eq!(c.start_ms(1, 0), 5);
        assert_eq!(c.start_ms(999, 0), 4995);
        assert_eq!(c.start_ms(1, u64::MAX), 5 + 999);
        assert_eq!(c.start_ms(0, u64::MAX / 2), 499);
        c.connect_rate = 0.5;
        assert_eq!(c.start_ms(3, 0), 6000);
    }

    #[test]
    fn waits_in_whole_ms_round_up() {
        let mut c = config(1);
        for (interval, ms) in [
            (Duration::from_millis(250), 250),
            (Duration::from_micros(250_001), 251),
            (Duration::from_nanos(1), 1),
            (Duration::ZERO, 1),
        ] {
            c.interval = interval;
            assert_eq!(c.interval_ms(), ms, "{interval:?}");
        }
        // The worker gets what a single process would use.
        c.interval = Duration::from_micros(1_500);
        c.duration = Duration::from_micros(2_000_001);
        c.reply_timeout = Duration::from_micros(999);
        let w = LoadConfig::decode(&c.encode()).unwrap();
        assert_eq!(
            (w.interval, w.duration, w.reply_timeout),
            (
                Duration::from_millis(2),
                Duration::from_millis(2_001),
                Duration::from_millis(1)
            )
        );
    }

    #[test]
    fn a_protocol_of_ones_own_runs_in_one_process() {
        #[derive(Debug)]
        struct Mine;
        impl crate::protocol::client::ClientProtocol for Mine {
            fn name(&self) -> &'static str {
                "mine"
            }
            fn decode<'a>(
                &self,
                _: &'a [u8],
                _: usize,
            ) -> Result<
                Option<(crate::protocol::client::ServerFrame<'a>, usize)>,
                crate::protocol::DecodeError,
            > {
                Ok(None)
            }
            fn max_incomplete(&self, _: usize) -> usize {
                0
            }
            fn encode_hello(&self, _: &str, _: Option<&str>, _: &mut Vec<u8>) {}
            fn encode_ping(&self, _: u64, _: &mut Vec<u8>) {}
            fn check_message(&self, _: &[u8]) -> Result<(), crate::protocol::client::MessageError> {
                Ok(())
            }
            fn encode_message(&self, _: &[u8], _: &mut Vec<u8>) {}
        }
        let mut c = config(10);
        c.protocol = ClientCodec::leak(Mine);
        assert_eq!(c.check(1, 1000, None), Ok(()));
        let e = c.check(2, 1000, None).unwrap_err().to_string();
        assert!(e.contains("the mine protocol is not built in"), "{e}");
    }

    #[test]
    fn the_worker_form_reads_back() {
        let mut c = config(1234);
        c.connect_rate = 333.333_333_333_333_3;
        c.interval = Duration::from_millis(250);
        c.duration = Duration::from_secs(7);
        c.reply_timeout = Duration::from_millis(1500);
        c.id_prefix = "w-1-".to_owned();
        c.seed = u64::MAX;
        c.first_index = 42;
        assert_eq!(LoadConfig::decode(&c.encode()), Ok(c.clone()));
        c.source_ips = Some("127.0.0.2-127.0.0.40".parse().unwrap());
        c.server = "[::1]:9".parse().unwrap();
        assert_eq!(LoadConfig::decode(&c.encode()), Ok(c.clone()));
        for codec in ClientCodec::BUILT_IN {
            c.protocol = codec;
            assert_eq!(LoadConfig::decode(&c.encode()), Ok(c.clone()));
        }
        c.protocol = ClientCodec::RAW;
        // Without the key: the line protocol.
        let old = c.encode().replace("protocol raw\n", "");
        assert_eq!(
            LoadConfig::decode(&old).map(|c| c.protocol),
            Ok(ClientCodec::LINE)
        );
        c.tls = Some(crate::tls::TlsClient::default());
        assert_eq!(LoadConfig::decode(&c.encode()), Ok(c.clone()));
        c.tls = Some(crate::tls::TlsClient {
            ca: Some("/etc/vigil/ca with space.pem".into()),
            name: Some("vigil.example".to_owned()),
        });
        assert_eq!(LoadConfig::decode(&c.encode()), Ok(c.clone()));
        for bad in [
            c.encode().replace("tls on", "tls off"),
            c.encode().replace("protocol raw", "protocol smtp"),
            String::new(),
            c.encode().replace("conns 1234", "conns x"),
            c.encode().replace("seed", "sead"),
            c.encode().replace("interval_ms 250\n", ""),
            c.encode() + "nonsense\n",
        ] {
            assert!(LoadConfig::decode(&bad).is_err(), "{bad}");
        }
    }
}
