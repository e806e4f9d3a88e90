//! The adaptive heartbeat interval: a pure state machine that finds how
//! long the path lets the connection sit idle, and beats a safety margin
//! below that.
//!
//! # Why
//! A heartbeat's first job on a mobile network is to keep the carrier's NAT
//! from forgetting the flow (mappings of idle flows are dropped after about
//! five minutes on some carriers, more than 28 minutes on others, almost
//! never on home broadband). Every beat wakes the radio and costs battery,
//! so the interval should be as long as the path allows and no longer. The
//! NAT's timeout is not advertised anywhere: it has to be measured, by
//! lengthening the interval while beats are answered and backing off when
//! one is lost. This is the "smart heartbeat" of WeChat's Android client.
//!
//! # In-band search and probe connections
//! [`AdaptiveInterval`] searches with the beats of the connection itself:
//! each too-long interval it tries costs that connection. The client
//! [`Session`](crate::client::Session) does not use it any more: it runs a
//! [`ProbePlanner`] ([`planner`]), which tries candidates on separate,
//! short-lived probe connections and lets the main connection use only
//! intervals a probe has proven. [`AdaptiveInterval`] stays for callers
//! that can afford in-band losses.
//!
//! # What a beat proves
//! A NAT's idle timer counts the silence on the flow, both ways. The
//! session therefore reports every beat with its *quiet time*: how long
//! nothing had been sent or received when the `PING` went out. A beat tests
//! the interval in effect only if its quiet time was at least
//! [`TESTED_PCT`]% of it; a beat on a busy line (the user was chatting)
//! proves nothing about idle timeouts and is ignored, answered or lost.
//!
//! A beat is *lost* when its `PING` gets no `PONG` within the reply timeout,
//! or when the connection fails or ends while the `PING` is outstanding (a
//! NAT that answers a packet of a forgotten flow with a reset). Against a
//! NAT that silently drops a forgotten flow, nothing comes back at all and
//! the reply timeout is the only signal.
//!
//! # Rules
//! Intervals are milliseconds; *worked* is the longest interval answered
//! since the bounds were last reset, *failed* the shortest one lost.
//! 1. **Start** at `min`, probing.
//! 2. **Step up** after [`AdaptiveConfig::step_after`] answered beats at the
//!    interval: double it while no interval has failed; once one has,
//!    bisect: halfway from *worked* to *failed*. Never above `max`, nor
//!    above 90% of the timeout the server announced in `WELCOME` (beyond
//!    it the server, not the NAT, would drop us).
//! 3. **Loss**: the lost interval becomes *failed*. Fall back to *worked*
//!    less the safety margin ([`AdaptiveConfig::margin_pct`]) and hold it
//!    for `step_after` beats (the reconnect has to prove it), then carry on
//!    bisecting. If the lost interval had itself worked before (the path
//!    got worse: another network, another carrier), *worked* is stale and
//!    is forgotten; the fallback is the lost interval less the margin.
//! 4. **Settle**: once *failed* is within the margin above *worked*, more
//!    bisecting buys nothing. Beat at *worked* less the margin and hold it
//!    for [`AdaptiveConfig::reprobe_after`] beats.
//! 5. **Re-probe**: after that hold, try *failed* again: NAT timeouts change
//!    when the phone changes network. If it is answered the bound was stale
//!    and it is dropped (back to rule 2); if it is lost, each failed
//!    re-probe in a row doubles the next hold (up to 32×), so a stable path
//!    costs ever fewer lost beats.
//! 6. **Restart**: three losses in a row with no answered beat in between
//!    mean the bounds are wrong; start over from `min` with none.
//!
//! The interval never goes below `min` or above `max`. Every change comes
//! out as a [`Change`] with its reason, for the log.
//!
//! # Example
//! ```
//! use vigil::client::adaptive::{AdaptiveConfig, AdaptiveInterval, ChangeReason};
//!
//! let mut a = AdaptiveInterval::new(AdaptiveConfig::new(1_000, 60_000));
//! assert_eq!(a.current(), 1_000);
//! // Three beats answered after a whole interval of silence: double.
//! assert!(a.handle_answered(1_000).is_none());
//! assert!(a.handle_answered(1_000).is_none());
//! let change = a.handle_answered(990).unwrap();
//! assert_eq!((change.from_ms, change.to_ms, change.reason), (1_000, 2_000, ChangeReason::Probe));
//! // A beat on a busy line (quiet for 100 ms only) proves nothing.
//! assert!(a.handle_answered(100).is_none());
//! for _ in 0..3 {
//!     a.handle_answered(1_990);
//! }
//! assert_eq!(a.current(), 4_000);
//! // The first beat at 4 s is lost: back to 2 s less the 10% margin.
//! let change = a.handle_lost(3_990).unwrap();
//! assert_eq!((change.to_ms, change.reason), (1_800, ChangeReason::Loss));
//! assert_eq!((a.worked(), a.failed()), (Some(2_000), Some(4_000)));
//! ```

use std::fmt;
use std::time::Duration;

pub mod planner;

pub use planner::{Learned, ProbeOutcome, ProbePlanner};

use crate::duration::{format_duration, parse_duration};
use crate::time::millis_ceil;

/// A beat tests the interval only if the line had been quiet for at least
/// this share of it, in percent, when the `PING` went out.
pub const TESTED_PCT: u64 = 80;
/// Losses in a row, with no answered beat between them, that restart the
/// search from the minimum.
pub const RESTART_AFTER_LOSSES: u32 = 3;
/// The server's timeout, in percent, above which no interval is tried.
pub const SERVER_TIMEOUT_PCT: u64 = 90;
/// The default answered beats at an interval before stepping up.
pub const DEFAULT_STEP_AFTER: u32 = 3;
/// The default answered beats at the settled interval before re-probing.
pub const DEFAULT_REPROBE_AFTER: u32 = 30;
/// The default safety margin below an interval known to work, in percent.
pub const DEFAULT_MARGIN_PCT: u64 = 10;
/// The most the hold before a re-probe is doubled: 2^5 = 32×.
const MAX_HOLD_DOUBLINGS: u32 = 5;

/// How an [`AdaptiveInterval`] searches. [`AdaptiveConfig::new`] fills in
/// the documented defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdaptiveConfig {
    /// The shortest interval, and the first, in ms (at least 1).
    pub min_ms: u64,
    /// The longest interval, in ms (at least `min_ms`).
    pub max_ms: u64,
    /// Answered beats at an interval before a longer one is tried (at
    /// least 1), by [`AdaptiveInterval`] ([`ProbePlanner`] needs one
    /// answered probe). Default: [`DEFAULT_STEP_AFTER`].
    pub step_after: u32,
    /// Answered beats at the settled interval before the failure bound is
    /// tried again (at least 1); for [`ProbePlanner`], main intervals of
    /// hold before the bound is probed again. Default:
    /// [`DEFAULT_REPROBE_AFTER`].
    pub reprobe_after: u32,
    /// The safety margin kept below an interval known to work, in percent
    /// (0 to 50). Default: [`DEFAULT_MARGIN_PCT`].
    pub margin_pct: u64,
}

impl AdaptiveConfig {
    /// Searching between `min_ms` and `max_ms` with every default.
    pub fn new(min_ms: u64, max_ms: u64) -> AdaptiveConfig {
        AdaptiveConfig {
            min_ms,
            max_ms,
            step_after: DEFAULT_STEP_AFTER,
            reprobe_after: DEFAULT_REPROBE_AFTER,
            margin_pct: DEFAULT_MARGIN_PCT,
        }
    }

    /// Parses `MIN..MAX`, such as `5s..5m`, with every other default.
    pub fn parse(s: &str) -> Result<AdaptiveConfig, String> {
        let Some((min, max)) = s.split_once("..") else {
            return Err(format!(
                "invalid adaptive range {s:?}: expected MIN..MAX such as 5s..5m"
            ));
        };
        let min = parse_duration(min).map_err(|e| e.to_string())?;
        let max = parse_duration(max).map_err(|e| e.to_string())?;
        // Intervals are lengths of time to wait, so they round up (exact
        // here: `parse_duration` reads whole milliseconds).
        let config = AdaptiveConfig::new(millis_ceil(min), millis_ceil(max));
        config.check()?;
        Ok(config)
    }

    /// Whether the config can run; the error says why not.
    pub fn check(&self) -> Result<(), String> {
        let range = || {
            format!(
                "{}..{}",
                format_duration(Duration::from_millis(self.min_ms)),
                format_duration(Duration::from_millis(self.max_ms))
            )
        };
        if self.min_ms == 0 {
            return Err(format!(
                "invalid adaptive range {}: the minimum must be above 0",
                range()
            ));
        }
        if self.max_ms < self.min_ms {
            return Err(format!(
                "invalid adaptive range {}: the maximum is below the minimum",
                range()
            ));
        }
        if self.step_after == 0 || self.reprobe_after == 0 {
            return Err("adaptive step_after and reprobe_after must be at least 1".to_owned());
        }
        if self.margin_pct > 50 {
            return Err("adaptive margin must be at most 50%".to_owned());
        }
        Ok(())
    }

    fn margin(&self, interval_ms: u64) -> u64 {
        (interval_ms.saturating_mul(self.margin_pct) / 100).max(1)
    }
}

/// Why the interval changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeReason {
    /// Enough beats were answered at the old interval: try a longer one.
    Probe,
    /// The hold at a fallback or settled interval is over: try a longer one.
    Reprobe,
    /// A beat at the old interval was lost: fall back.
    Loss,
    /// The longest interval that works is known to within the margin: beat
    /// the margin below it.
    Settle,
    /// Losses in a row: start over from the minimum.
    Restart,
    /// The server's timeout leaves no room for the old interval.
    ServerTimeout,
    /// The network changed: the search starts over from what was learned
    /// for the new one.
    Network,
}

impl ChangeReason {
    /// A short name for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeReason::Probe => "probe",
            ChangeReason::Reprobe => "reprobe",
            ChangeReason::Loss => "loss",
            ChangeReason::Settle => "settle",
            ChangeReason::Restart => "restart",
            ChangeReason::ServerTimeout => "server-timeout",
            ChangeReason::Network => "network",
        }
    }
}

impl fmt::Display for ChangeReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A change of interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    /// The interval before, in ms.
    pub from_ms: u64,
    /// The interval after, in ms.
    pub to_ms: u64,
    /// Why.
    pub reason: ChangeReason,
}

/// Where the search is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Trying `current`: step up after `step_after` answered beats.
    Probing,
    /// Keeping `current`: try longer after `need` answered beats.
    Holding { need: u32 },
}

/// The adaptive interval. See the [module docs](self) for the rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdaptiveInterval {
    config: AdaptiveConfig,
    current: u64,
    /// The longest interval tried: `min(max, 90% of the server's timeout)`,
    /// never below `min`.
    ceiling: u64,
    /// The longest interval answered since the bounds were reset; 0: none.
    worked: u64,
    /// The shortest interval lost since then; always above `worked`.
    failed: Option<u64>,
    mode: Mode,
    /// Answered beats at `current` since it was last set.
    beats: u32,
    losses_in_row: u32,
    /// Whether `current` is a re-test of the settled failure bound.
    retesting: bool,
    /// Re-tests of the failure bound lost in a row.
    failed_retests: u32,
}

impl AdaptiveInterval {
    /// A search that starts at `config.min_ms`. The config should pass
    /// [`AdaptiveConfig::check`]; out-of-range values are clamped.
    pub fn new(config: AdaptiveConfig) -> AdaptiveInterval {
        let mut config = config;
        config.min_ms = config.min_ms.max(1);
        config.max_ms = config.max_ms.max(config.min_ms);
        config.step_after = config.step_after.max(1);
        config.reprobe_after = config.reprobe_after.max(1);
        config.margin_pct = config.margin_pct.min(50);
        AdaptiveInterval {
            config,
            current: config.min_ms,
            ceiling: config.max_ms,
            worked: 0,
            failed: None,
            mode: Mode::Probing,
            beats: 0,
            losses_in_row: 0,
            retesting: false,
            failed_retests: 0,
        }
    }

    /// The interval in effect, in ms.
    pub fn current(&self) -> u64 {
        self.current
    }

    /// The longest interval answered since the bounds were last reset.
    pub fn worked(&self) -> Option<u64> {
        (self.worked > 0).then_some(self.worked)
    }

    /// The shortest interval lost since the bounds were last reset.
    pub fn failed(&self) -> Option<u64> {
        self.failed
    }

    /// Whether the search has settled: the longest interval that works is
    /// known to within the margin (or is the ceiling), and it is holding
    /// until the next re-probe.
    pub fn is_settled(&self) -> bool {
        matches!(self.mode, Mode::Holding { .. })
            && (self.converged() || (self.failed.is_none() && self.current >= self.ceiling))
    }

    /// How many more answered beats until the next longer interval is
    /// tried, while holding (after a loss, or settled).
    pub fn holding_for(&self) -> Option<u32> {
        match self.mode {
            Mode::Holding { need } => Some(need.saturating_sub(self.beats)),
            Mode::Probing => None,
        }
    }

    /// The longest interval it will try, in ms.
    pub fn ceiling(&self) -> u64 {
        self.ceiling
    }

    /// The config it runs with (clamped).
    pub fn config(&self) -> &AdaptiveConfig {
        &self.config
    }

    /// The server announced its timeout (`None`: it did not): no interval
    /// above [`SERVER_TIMEOUT_PCT`]% of it is tried.
    pub fn handle_server_timeout(&mut self, timeout_ms: Option<u64>) -> Option<Change> {
        let cap = timeout_ms.map_or(u64::MAX, |t| {
            u64::try_from(u128::from(t) * u128::from(SERVER_TIMEOUT_PCT) / 100).unwrap_or(u64::MAX)
        });
        self.ceiling = self.config.max_ms.min(cap).max(self.config.min_ms);
        if self.current > self.ceiling {
            self.mode = Mode::Probing;
            self.retesting = false;
            return self.set(self.ceiling, ChangeReason::ServerTimeout);
        }
        None
    }

    /// A beat was answered; the line had been quiet for `quiet_ms` when it
    /// went out.
    pub fn handle_answered(&mut self, quiet_ms: u64) -> Option<Change> {
        if !self.tests_current(quiet_ms) {
            return None;
        }
        self.losses_in_row = 0;
        self.worked = self.worked.max(self.current);
        if self.failed.is_some_and(|f| f <= self.worked) {
            // An interval that once failed works now: the bound was stale.
            self.failed = None;
            self.failed_retests = 0;
        }
        self.beats = self.beats.saturating_add(1);
        match self.mode {
            Mode::Probing if self.beats >= self.config.step_after => {
                if self.converged() {
                    let settled = self
                        .worked
                        .saturating_sub(self.config.margin(self.worked))
                        .max(self.config.min_ms);
                    self.hold(self.settled_hold());
                    return self.set(settled, ChangeReason::Settle);
                }
                match self.next_probe() {
                    Some(next) => self.set(next, ChangeReason::Probe),
                    None => {
                        // At the ceiling: nothing longer to try.
                        self.hold(self.settled_hold());
                        None
                    }
                }
            }
            Mode::Holding { need } if self.beats >= need => match self.next_probe() {
                Some(next) => {
                    self.mode = Mode::Probing;
                    self.retesting = self.failed == Some(next);
                    self.set(next, ChangeReason::Reprobe)
                }
                None => {
                    self.beats = 0;
                    None
                }
            },
            _ => None,
        }
    }

    /// A beat was lost (no `PONG` in time, or the connection ended while it
    /// was outstanding); the line had been quiet for `quiet_ms` when it
    /// went out.
    pub fn handle_lost(&mut self, quiet_ms: u64) -> Option<Change> {
        if !self.tests_current(quiet_ms) {
            return None;
        }
        self.losses_in_row = self.losses_in_row.saturating_add(1);
        if self.losses_in_row >= RESTART_AFTER_LOSSES {
            self.losses_in_row = 0;
            self.worked = 0;
            self.failed = None;
            self.failed_retests = 0;
            self.retesting = false;
            self.mode = Mode::Probing;
            self.beats = 0;
            return self.set(self.config.min_ms, ChangeReason::Restart);
        }
        let lost = self.current;
        if self.retesting {
            self.failed_retests = self.failed_retests.saturating_add(1);
        }
        self.retesting = false;
        let base = if self.worked > 0 && self.worked < lost {
            self.worked
        } else {
            // The lost interval had worked before: the path got worse.
            self.worked = 0;
            lost
        };
        self.failed = Some(lost);
        let next = base
            .saturating_sub(self.config.margin(base))
            .max(self.config.min_ms);
        let need = if self.converged() {
            self.settled_hold()
        } else {
            self.config.step_after
        };
        self.hold(need);
        self.set(next, ChangeReason::Loss)
    }

    // ---- internals --------------------------------------------------------

    fn tests_current(&self, quiet_ms: u64) -> bool {
        u128::from(quiet_ms) * 100 >= u128::from(self.current) * u128::from(TESTED_PCT)
    }

    /// Whether *failed* is within the margin above *worked*.
    fn converged(&self) -> bool {
        self.worked > 0
            && self
                .failed
                .is_some_and(|f| f <= self.worked.saturating_add(self.config.margin(self.worked)))
    }

    /// The next interval to try, if any is longer than the current one.
    fn next_probe(&self) -> Option<u64> {
        let lo = self.worked.max(self.current);
        let target = match self.failed {
            Some(f) if self.converged() => f,
            Some(f) => lo + f.saturating_sub(lo) / 2,
            None => lo.saturating_mul(2),
        }
        .min(self.ceiling);
        (target > self.current).then_some(target)
    }

    fn settled_hold(&self) -> u32 {
        let doublings = self.failed_retests.min(MAX_HOLD_DOUBLINGS);
        self.config.reprobe_after.saturating_mul(1 << doublings)
    }

    fn hold(&mut self, need: u32) {
        self.mode = Mode::Holding { need };
        self.beats = 0;
    }

    fn set(&mut self, to: u64, reason: ChangeReason) -> Option<Change> {
        let to = to.clamp(self.config.min_ms, self.ceiling);
        let from = self.current;
        self.current = to;
        if matches!(self.mode, Mode::Probing) {
            self.beats = 0;
        }
        (from != to).then_some(Change {
            from_ms: from,
            to_ms: to,
            reason,
        })
    }
}

#[cfg(test)]
mod tests;
