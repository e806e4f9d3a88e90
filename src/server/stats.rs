//! Counters, and the periodic stats line.

use std::fmt::Write as _;

use crate::protocol::CloseReason;

/// What the server has done since it started.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Connections open now.
    pub connections: usize,
    /// Client ids online now.
    pub clients: usize,
    /// Connections accepted since start (refused ones included).
    pub accepted: u64,
    /// Heartbeats (PINGs) received.
    pub heartbeats: u64,
    /// Frames of any kind received.
    pub frames: u64,
    closed: [u64; CloseReason::ALL.len()],
}

impl Stats {
    /// Connections closed for `reason` since start.
    pub fn closed(&self, reason: CloseReason) -> u64 {
        self.closed[reason.index()]
    }

    /// Connections closed for any reason since start.
    pub fn closed_total(&self) -> u64 {
        self.closed.iter().sum()
    }

    pub(crate) fn count_close(&mut self, reason: CloseReason) {
        self.closed[reason.index()] += 1;
    }

    /// The stats line: counters, the heartbeat rate since `prev` (taken
    /// `elapsed_ms` ago), and the resident set size.
    pub fn line(&self, prev: &Stats, elapsed_ms: u64, rss: Option<u64>) -> String {
        let rate = (self.heartbeats - prev.heartbeats.min(self.heartbeats)) as f64 * 1000.0
            / elapsed_ms.max(1) as f64;
        let mut s = format!(
            "stats: conns={} clients={} accepted={} heartbeats/s={:.0} expired={} closed:",
            self.connections,
            self.clients,
            self.accepted,
            rate,
            self.closed(CloseReason::Timeout),
        );
        let mut any = false;
        for r in CloseReason::ALL {
            if self.closed(r) > 0 {
                let _ = write!(s, " {r}={}", self.closed(r));
                any = true;
            }
        }
        if !any {
            s.push_str(" none");
        }
        match rss {
            Some(b) => {
                let _ = write!(s, " rss={:.1}MiB", b as f64 / (1024.0 * 1024.0));
            }
            None => s.push_str(" rss=?"),
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_line() {
        let prev = Stats {
            heartbeats: 100,
            ..Stats::default()
        };
        let mut now = Stats {
            connections: 3,
            clients: 2,
            accepted: 5,
            heartbeats: 600,
            frames: 700,
            ..Stats::default()
        };
        assert_eq!(
            now.line(&prev, 10_000, Some(3 * 1024 * 1024 / 2)),
            "stats: conns=3 clients=2 accepted=5 heartbeats/s=50 expired=0 closed: none rss=1.5MiB"
        );
        now.count_close(CloseReason::Timeout);
        now.count_close(CloseReason::Closed);
        now.count_close(CloseReason::Closed);
        assert_eq!(now.closed_total(), 3);
        assert_eq!(
            now.line(&now.clone(), 0, None),
            "stats: conns=3 clients=2 accepted=5 heartbeats/s=0 expired=1 closed: timeout=1 closed=2 rss=?"
        );
    }
}
