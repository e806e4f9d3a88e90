//! The probe planner: the search for the longest safe interval, run on
//! short-lived probe connections so that it never costs the main one.
//!
//! # Why
//! Searching with the main connection's own beats gambles it: every beat
//! at an interval longer than the NAT keeps a flow is lost, and with it the
//! connection (the server sees the client go offline, pushes are lost). A
//! NAT's idle timeout is per flow, so a second, short-lived connection to
//! the same server meets the same timeout: it stays silent for the
//! candidate interval, then sends `PING` and expects `PONG` within the reply
//! timeout. Only the probe is lost when the candidate is too long.
//!
//! # Rules
//! Intervals are milliseconds. *Proven* is the longest interval a probe
//! came back from (at first `min`, which is assumed to work); *failed* the
//! shortest a probe was lost at.
//! 1. **Main interval.** The main connection beats at *proven* less the
//!    safety margin ([`AdaptiveConfig::margin_pct`]), never below `min`:
//!    only an interval a probe has proven, never a guess.
//! 2. **Candidate.** While no interval has failed, double *proven*; once
//!    one has, bisect: halfway from *proven* to *failed*. Never above the
//!    ceiling: `max`, and 90% of the timeout the server announced.
//! 3. **Settle.** Once *failed* is within the margin above *proven* (or
//!    *proven* is the ceiling), the search is over: no probe for a hold of
//!    [`AdaptiveConfig::reprobe_after`] main intervals.
//! 4. **Re-probe.** After the hold, *failed* is probed again (NAT timeouts
//!    change with the network). Answered: the bound was stale, it is
//!    dropped and the search goes on. Lost: the next hold doubles (up to
//!    32×). An interval known to fail is never tried by the main
//!    connection, and by a probe only after such a hold.
//! 5. **Inconclusive.** A probe that cannot connect, or that the server
//!    ends with `BYE`, proves nothing; the same candidate is tried again
//!    after the candidate's length.
//! 6. **Main loss.** If the main connection loses a beat at a proven
//!    interval anyway, the path got worse: *proven* is forgotten (back to
//!    `min`) and the lost interval becomes *failed*.
//! 7. **Network change.** The search restarts from what was learned for
//!    the new network ([`Learned`]), or from scratch.
//!
//! Every change of the main interval comes out as a [`Change`].
//!
//! # Example
//! ```
//! use vigil::client::adaptive::{AdaptiveConfig, ChangeReason, ProbeOutcome, ProbePlanner};
//!
//! let mut p = ProbePlanner::new(AdaptiveConfig::new(1_000, 60_000), 0);
//! assert_eq!(p.interval(), 1_000);
//! // The first probe tries 2 s, and comes back: the main connection moves.
//! assert_eq!(p.poll_probe(0), Some(2_000));
//! let c = p.handle_result(2_100, ProbeOutcome::Answered).unwrap();
//! assert_eq!((c.to_ms, c.reason), (1_800, ChangeReason::Probe));
//! // 4 s is lost (only the probe): the main interval stays.
//! assert_eq!(p.poll_probe(2_100), Some(4_000));
//! assert_eq!(p.handle_result(7_100, ProbeOutcome::Lost), None);
//! assert_eq!((p.proven(), p.failed()), (2_000, Some(4_000)));
//! assert_eq!(p.poll_probe(7_100), Some(3_000));
//! ```

use super::{AdaptiveConfig, Change, ChangeReason, SERVER_TIMEOUT_PCT};
use crate::time::Tick;

/// The most the hold before a re-probe is doubled: 2^5 = 32×.
const MAX_HOLD_DOUBLINGS: u32 = 5;

/// How a probe ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeOutcome {
    /// The `PING` after the silence got its `PONG` in time: the interval is
    /// proven.
    Answered,
    /// No `PONG` in time, or the connection died during the silence or
    /// under the `PING`: the interval failed.
    Lost,
    /// The probe could not connect, or the server ended it with `BYE`:
    /// nothing was learned.
    Inconclusive,
}

impl ProbeOutcome {
    /// A short name for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            ProbeOutcome::Answered => "answered",
            ProbeOutcome::Lost => "lost",
            ProbeOutcome::Inconclusive => "inconclusive",
        }
    }
}

/// What a search learned about one network, to start from when the client
/// comes back to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Learned {
    /// The longest interval proven, in ms.
    pub proven_ms: u64,
    /// The shortest interval that failed, in ms.
    pub failed_ms: Option<u64>,
}

/// The probe planner. See the [module docs](self) for the rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbePlanner {
    config: AdaptiveConfig,
    /// `min(max, 90% of the server's timeout)`, never below `min`.
    ceiling: u64,
    proven: u64,
    failed: Option<u64>,
    /// Re-probes of *failed* lost in a row.
    failed_reprobes: u32,
    /// When the next probe may start.
    next_at: Tick,
    /// The candidate a probe is testing now.
    running: Option<u64>,
}

impl ProbePlanner {
    /// A search that may send its first probe at `now`. The config should
    /// pass [`AdaptiveConfig::check`]; out-of-range values are clamped.
    pub fn new(config: AdaptiveConfig, now: Tick) -> ProbePlanner {
        let mut config = config;
        config.min_ms = config.min_ms.max(1);
        config.max_ms = config.max_ms.max(config.min_ms);
        config.reprobe_after = config.reprobe_after.max(1);
        config.margin_pct = config.margin_pct.min(50);
        ProbePlanner {
            config,
            ceiling: config.max_ms,
            proven: config.min_ms,
            failed: None,
            failed_reprobes: 0,
            next_at: now,
            running: None,
        }
    }

    /// The interval the main connection beats at, in ms: *proven* less the
    /// margin, never below `min`.
    pub fn interval(&self) -> u64 {
        if self.proven <= self.config.min_ms {
            return self.config.min_ms;
        }
        self.proven
            .saturating_sub(self.config.margin(self.proven))
            .max(self.config.min_ms)
    }

    /// The longest interval a probe has proven (`min` before any).
    pub fn proven(&self) -> u64 {
        self.proven
    }

    /// The shortest interval a probe (or the main connection) was lost at.
    pub fn failed(&self) -> Option<u64> {
        self.failed
    }

    /// The longest interval it will try, in ms.
    pub fn ceiling(&self) -> u64 {
        self.ceiling
    }

    /// The config it runs with (clamped).
    pub fn config(&self) -> &AdaptiveConfig {
        &self.config
    }

    /// The candidate a probe is testing, if one is out.
    pub fn running(&self) -> Option<u64> {
        self.running
    }

    /// Whether the search is over until the next re-probe.
    pub fn is_settled(&self) -> bool {
        self.converged() || self.proven >= self.ceiling
    }

    /// When the next probe may start (with none out and one to try).
    pub fn next_probe_at(&self) -> Option<Tick> {
        (self.running.is_none() && self.candidate().is_some()).then_some(self.next_at)
    }

    /// What was learned, to keep for this network.
    pub fn learned(&self) -> Learned {
        Learned {
            proven_ms: self.proven,
            failed_ms: self.failed,
        }
    }

    /// The candidate to probe now, if one is due; it is then running until
    /// [`handle_result`](ProbePlanner::handle_result).
    pub fn poll_probe(&mut self, now: Tick) -> Option<u64> {
        if self.running.is_some() || now < self.next_at {
            return None;
        }
        let c = self.candidate()?;
        self.running = Some(c);
        Some(c)
    }

    /// The running probe ended at `now`.
    pub fn handle_result(&mut self, now: Tick, outcome: ProbeOutcome) -> Option<Change> {
        let c = self.running.take()?;
        let before = self.interval();
        let was_settled = self.is_settled();
        let mut reason = ChangeReason::Probe;
        match outcome {
            ProbeOutcome::Answered => {
                if c > self.proven {
                    self.proven = c;
                }
                if self.failed.is_some_and(|f| f <= self.proven) {
                    // An interval that once failed works now: the bound was
                    // stale.
                    self.failed = None;
                    self.failed_reprobes = 0;
                    reason = ChangeReason::Reprobe;
                }
            }
            ProbeOutcome::Lost => {
                if was_settled && self.failed == Some(c) {
                    self.failed_reprobes = self.failed_reprobes.saturating_add(1);
                }
                if c > self.proven {
                    self.failed = Some(self.failed.map_or(c, |f| f.min(c)));
                }
            }
            ProbeOutcome::Inconclusive => {
                self.next_at = now.saturating_add(c);
                return None;
            }
        }
        self.next_at = if self.is_settled() {
            now.saturating_add(self.hold())
        } else {
            now
        };
        if self.is_settled() && !was_settled && reason == ChangeReason::Probe {
            reason = ChangeReason::Settle;
        }
        self.change(before, reason)
    }

    /// The server announced its timeout (`None`: it did not): no interval
    /// above [`SERVER_TIMEOUT_PCT`]% of it is probed or used.
    pub fn handle_server_timeout(&mut self, timeout_ms: Option<u64>) -> Option<Change> {
        let before = self.interval();
        let cap = timeout_ms.map_or(u64::MAX, |t| {
            u64::try_from(u128::from(t) * u128::from(SERVER_TIMEOUT_PCT) / 100).unwrap_or(u64::MAX)
        });
        self.ceiling = self.config.max_ms.min(cap).max(self.config.min_ms);
        self.proven = self.proven.min(self.ceiling);
        self.change(before, ChangeReason::ServerTimeout)
    }

    /// The main connection lost a beat at the main interval, at `now`: the
    /// path got worse than what was proven.
    pub fn handle_main_lost(&mut self, now: Tick) -> Option<Change> {
        let before = self.interval();
        let lost = before;
        if lost > self.config.min_ms {
            self.failed = Some(self.failed.map_or(lost, |f| f.min(lost)));
        }
        self.proven = self.config.min_ms;
        self.failed_reprobes = 0;
        self.next_at = now;
        self.change(before, ChangeReason::Loss)
    }

    /// The network changed at `now`: start over from what was learned for
    /// the new one, or from `min`. A running probe is forgotten (the driver
    /// closes it).
    pub fn restart(&mut self, now: Tick, learned: Option<Learned>) -> Option<Change> {
        let before = self.interval();
        self.running = None;
        self.failed_reprobes = 0;
        match learned {
            Some(l) => {
                self.proven = l.proven_ms.clamp(self.config.min_ms, self.ceiling);
                self.failed = l.failed_ms.filter(|f| *f > self.proven);
            }
            None => {
                self.proven = self.config.min_ms;
                self.failed = None;
            }
        }
        self.next_at = if self.is_settled() {
            now.saturating_add(self.hold())
        } else {
            now
        };
        self.change(before, ChangeReason::Network)
    }

    // ---- internals --------------------------------------------------------

    /// Whether *failed* is within the margin above *proven*.
    fn converged(&self) -> bool {
        self.failed
            .is_some_and(|f| f <= self.proven.saturating_add(self.config.margin(self.proven)))
    }

    /// The next interval to probe, if any is longer than *proven*.
    fn candidate(&self) -> Option<u64> {
        let target = if self.converged() {
            // Settled: the re-probe of the bound (after the hold).
            self.failed?
        } else {
            match self.failed {
                Some(f) => self.proven + f.saturating_sub(self.proven) / 2,
                None => self.proven.saturating_mul(2),
            }
        }
        .min(self.ceiling);
        (target > self.proven).then_some(target)
    }

    /// The hold before a re-probe: `reprobe_after` main intervals, doubled
    /// for each re-probe lost in a row.
    fn hold(&self) -> u64 {
        let doublings = self.failed_reprobes.min(MAX_HOLD_DOUBLINGS);
        self.interval()
            .saturating_mul(u64::from(self.config.reprobe_after))
            .saturating_mul(1 << doublings)
    }

    fn change(&self, before: u64, reason: ChangeReason) -> Option<Change> {
        let to = self.interval();
        (to != before).then_some(Change {
            from_ms: before,
            to_ms: to,
            reason,
        })
    }
}

#[cfg(test)]
mod tests;
