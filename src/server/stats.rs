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
    /// Pings the server sent to silent WebSocket connections.
    pub server_pings: u64,
    closed: [u64; CloseReason::ALL.len()],
    /// Bytes read from heartbeat connections.
    pub bytes_in: u64,
    /// Bytes written to heartbeat connections (what the sockets took).
    pub bytes_out: u64,
    /// Deadline entries in the timing wheel now.
    pub wheel_entries: usize,
    /// The most connections the server holds at once.
    pub max_conns: usize,
    /// The process's resident set size, when it could be read.
    pub rss_bytes: Option<u64>,
    /// How long the loop's turns took (from `poll` returning to the next
    /// `poll`), as a histogram.
    pub turns: TurnTimes,
    /// The events file's queue (`--events`), when there is one.
    pub events: Option<EventCounts>,
    /// Whether the cluster's link to Redis is up, with `--cluster`.
    pub cluster_up: Option<bool>,
}

/// What the events queue has done since start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EventCounts {
    /// Lines handed to the queue.
    pub queued: u64,
    /// Lines dropped because the queue was full (a `gap` record counts them).
    pub dropped: u64,
    /// Lines written whole.
    pub written: u64,
    /// Failed writes (retried).
    pub write_errors: u64,
}

/// Upper bounds of the [`TurnTimes`] buckets, in microseconds (the last
/// bucket, unbounded, is implied).
pub const TURN_BUCKETS_US: [u64; 12] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 100_000, 250_000, 1_000_000,
];

/// A histogram of loop turn times: a count per bucket of
/// [`TURN_BUCKETS_US`] and one for longer turns, the count and the sum.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TurnTimes {
    counts: [u64; TURN_BUCKETS_US.len() + 1],
    sum_us: u64,
}

impl TurnTimes {
    /// Counts one turn that took `us` microseconds.
    pub fn record(&mut self, us: u64) {
        let i = TURN_BUCKETS_US
            .iter()
            .position(|&bound| us <= bound)
            .unwrap_or(TURN_BUCKETS_US.len());
        self.counts[i] += 1;
        self.sum_us = self.sum_us.saturating_add(us);
    }

    /// Turns counted.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// The sum of the turn times counted, in microseconds.
    pub fn sum_us(&self) -> u64 {
        self.sum_us
    }

    /// Each bucket's upper bound in microseconds (`None`: unbounded) and
    /// how many turns took at most that long (cumulative, as Prometheus
    /// counts them).
    pub fn cumulative(&self) -> impl Iterator<Item = (Option<u64>, u64)> + '_ {
        let bounds = TURN_BUCKETS_US.iter().map(|&b| Some(b)).chain([None]);
        bounds
            .zip(self.counts.iter())
            .scan(0u64, |total, (bound, &n)| {
                *total += n;
                Some((bound, *total))
            })
    }
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

    #[test]
    fn turn_times_fall_in_their_bucket_bounds_included() {
        let mut t = TurnTimes::default();
        for us in [0, 50, 51, 1_000_000, 1_000_001, u64::MAX] {
            t.record(us);
        }
        let c: Vec<_> = t.cumulative().collect();
        assert_eq!(c.len(), TURN_BUCKETS_US.len() + 1);
        assert_eq!(c[0], (Some(50), 2), "0 and 50 are at most 50us");
        assert_eq!(c[1], (Some(100), 3));
        assert_eq!(c[11], (Some(1_000_000), 4));
        assert_eq!(c[12], (None, 6));
        assert_eq!(t.count(), 6);
        assert_eq!(t.sum_us(), u64::MAX, "the sum saturates");
    }
}
