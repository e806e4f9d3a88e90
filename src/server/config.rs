//! Server settings, with the defaults of `vigil serve`.

use std::net::SocketAddr;
use std::time::Duration;

use crate::sys::Keepalive;

/// How a server listens, times out and limits its peers.
///
/// `Config::default()` is what `vigil serve` runs with when given no flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Where to listen. Default `127.0.0.1:7700`.
    pub listen: SocketAddr,
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
    /// Whether the server itself handles SIGINT and SIGTERM by shutting down
    /// gracefully. Default `false` for the library; `vigil serve` sets it.
    pub handle_signals: bool,
    /// Kernel TCP keepalive on every connection. Default off: heartbeats
    /// are how vigil finds dead peers; keepalive is a second net for
    /// deployments whose heartbeat timeout is long.
    pub tcp_keepalive: Option<Keepalive>,
    /// `TCP_USER_TIMEOUT` on every connection: how long written data may
    /// go unacknowledged before the kernel gives up on the peer. Default
    /// off (the kernel's retransmission limit, about 15 minutes).
    pub tcp_user_timeout: Option<Duration>,
}

/// The default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7700";

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 7700)),
            interval: Duration::from_secs(30),
            timeout: Duration::from_secs(45),
            tick: Duration::from_millis(100),
            wheel_slots: 1024,
            max_conns: None,
            max_output: 64 * 1024,
            max_pings: None,
            stats_interval: Some(Duration::from_secs(10)),
            backlog: 4096,
            handle_signals: false,
            tcp_keepalive: None,
            tcp_user_timeout: None,
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
    /// Checks the settings against each other.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |s: &str| Err(ConfigError(s.to_owned()));
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
        if self.wheel_slots == 0 || self.wheel_slots > 1 << 24 {
            return err("the wheel needs 1 to 16777216 slots");
        }
        if self.max_output == 0 {
            return err("the output cap must be at least 1 byte");
        }
        if self.max_conns == Some(0) {
            return err("--max-conns must be at least 1");
        }
        if self.stats_interval == Some(Duration::ZERO) {
            return err("the stats interval must be at least 1ms");
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
        assert_eq!(c.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(c.timeout, c.interval * 3 / 2);
    }

    #[test]
    fn bad_settings_are_named() {
        let bad = [
            Config {
                tick: Duration::ZERO,
                ..Config::default()
            },
            Config {
                timeout: Duration::ZERO,
                ..Config::default()
            },
            Config {
                tick: Duration::from_secs(60),
                ..Config::default()
            },
            Config {
                wheel_slots: 0,
                ..Config::default()
            },
            Config {
                max_conns: Some(0),
                ..Config::default()
            },
            Config {
                max_output: 0,
                ..Config::default()
            },
        ];
        for c in bad {
            assert!(c.validate().is_err(), "{c:?}");
        }
    }
}
