//! The phases of a load run, ramp → hold → drain → done, as a pure state
//! machine: [`Phases`] takes the time (µs since the run started) and what
//! happened, and says which phase the run is in and what to do next.
//!
//! Pure: no socket, no clock. The driver reads the clock once per turn and
//! hands the time in; these tests hand in whatever time they like.
//!
//! # Lifecycle
//! ```text
//!  Ramp ──every connection started, or a signal──▶ Hold
//!  Hold ──the hold's length passed, or a signal───▶ Drain
//!  Drain ─no counted ping in flight, the reply────▶ Done
//!         timeout passed, or a second signal
//! ```
//!
//! # Rules
//! - **Ramp.** Each connection starts at its own time
//!   ([`LoadConfig::start_ms`](super::LoadConfig::start_ms)); the driver
//!   reports each start with [`Phases::handle_start`], which says whether
//!   to open it: only during the ramp. The ramp ends when the last one has
//!   started.
//! - **Hold.** Starts when the ramp ends and lasts the configured duration,
//!   measured from that moment.
//! - **Drain.** Waits for the replies to the pings counted so far, at most
//!   the reply timeout (then they are missing). Pings sent now are not
//!   counted ([`Phase::counts_pings`]).
//! - **Signals.** A first `SIGINT`/`SIGTERM` ends the ramp or the hold at
//!   once (the drain still waits for the last replies); a second one ends
//!   the drain too.
//! - **Several steps at once.** Time handed in late can cross several
//!   boundaries: [`Phases::poll_change`] reports one phase change per call,
//!   each stamped with the same `now`, until there is none.
//! - **Lengths round up.** The hold and the drain are whole ms, rounded up
//!   ([`millis_ceil`]): a phase never ends before its length has passed.
//! - **Progress** is due every [`PROGRESS_EVERY_US`] on the run's clock
//!   (at 1 s, 2 s, ...), whatever the phase changes in between.

use std::fmt;
use std::time::Duration;

use crate::time::millis_ceil;

/// How often progress is reported, in µs.
pub const PROGRESS_EVERY_US: u64 = 1_000_000;

/// Which part of the run a process is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// Connections are being started at the connect rate.
    Ramp,
    /// Every connection has started; heartbeats run for the duration.
    Hold,
    /// The hold is over: waiting (up to the reply timeout) for the last
    /// replies before closing.
    Drain,
    /// Closed; the report is ready.
    Done,
}

impl Phase {
    /// Every phase, in order.
    pub const ALL: [Phase; 4] = [Phase::Ramp, Phase::Hold, Phase::Drain, Phase::Done];

    /// The phase's name, as in progress lines.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Ramp => "ramp",
            Phase::Hold => "hold",
            Phase::Drain => "drain",
            Phase::Done => "done",
        }
    }

    /// The phase [`as_str`](Phase::as_str) spells `s`.
    pub fn parse(s: &str) -> Option<Phase> {
        Phase::ALL.into_iter().find(|p| p.as_str() == s)
    }

    /// Whether a ping sent in this phase is counted (and timed): from the
    /// start to the end of the hold.
    pub fn counts_pings(self) -> bool {
        self <= Phase::Hold
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The phase machine of one load process. See the [module docs](self).
///
/// ```
/// use std::time::Duration;
/// use vigil::load::{Phase, Phases};
///
/// // One connection, a 500 ms hold, up to 1 s for the last replies.
/// let mut p = Phases::new(1, Duration::from_millis(500), Duration::from_secs(1));
/// assert!(p.handle_start()); // its start time came: open it
/// assert_eq!(p.poll_change(5_000, 0), Some(Phase::Hold)); // at 5 ms
/// assert_eq!(p.poll_change(5_000, 0), None);
/// assert_eq!(p.poll_deadline(), 505_000); // ask again when the hold ends
/// assert_eq!(p.poll_change(505_000, 1), Some(Phase::Drain));
/// assert!(!p.handle_start()); // a start after the ramp: not opened
/// assert_eq!(p.poll_change(600_000, 0), Some(Phase::Done)); // the last reply came
/// assert_eq!((p.ramp_ms(), p.hold_ms()), (5, 500));
/// assert!(p.poll_progress(1_000_000)); // progress: every second
/// ```
#[derive(Debug, Clone)]
pub struct Phases {
    phase: Phase,
    /// Connections to start, and started so far.
    conns: usize,
    started: usize,
    signals: u32,
    /// The lengths of the hold and of the longest drain, in µs.
    hold_us: u64,
    drain_us: u64,
    /// When the current phase began and when it ends at the latest
    /// (`u64::MAX`: when something else ends it).
    began_us: u64,
    ends_us: u64,
    ramp_ms: u64,
    hold_ms: u64,
    next_progress_us: u64,
}

impl Phases {
    /// A run of `conns` connections that holds for `hold` and then waits
    /// up to `drain` for the last replies. It starts in the ramp at time 0.
    pub fn new(conns: usize, hold: Duration, drain: Duration) -> Phases {
        Phases {
            phase: Phase::Ramp,
            conns,
            started: 0,
            signals: 0,
            hold_us: millis_ceil(hold).saturating_mul(1000),
            drain_us: millis_ceil(drain).saturating_mul(1000),
            began_us: 0,
            ends_us: u64::MAX,
            ramp_ms: 0,
            hold_ms: 0,
            next_progress_us: PROGRESS_EVERY_US,
        }
    }

    /// The phase the run is in.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// How long the ramp took, in ms (0 until it ends).
    pub fn ramp_ms(&self) -> u64 {
        self.ramp_ms
    }

    /// How long the hold lasted, in ms (0 until it ends).
    pub fn hold_ms(&self) -> u64 {
        self.hold_ms
    }

    /// Connection number `started` so far is due to start: returns whether
    /// to open it (only during the ramp; a signal may have ended it).
    pub fn handle_start(&mut self) -> bool {
        self.started = self.started.saturating_add(1);
        self.phase == Phase::Ramp
    }

    /// A `SIGINT` or `SIGTERM` arrived.
    pub fn handle_signal(&mut self) {
        self.signals = self.signals.saturating_add(1);
    }

    /// Moves on at `now_us`, with `in_flight` counted pings unanswered:
    /// the phase entered, if any. Call again until `None` (see the
    /// [module docs](self)).
    pub fn poll_change(&mut self, now_us: u64, in_flight: u64) -> Option<Phase> {
        let next = match self.phase {
            Phase::Ramp if self.started >= self.conns || self.signals > 0 => {
                self.ramp_ms = now_us / 1000;
                Phase::Hold
            }
            Phase::Hold if now_us >= self.ends_us || self.signals > 0 => {
                self.hold_ms = now_us.saturating_sub(self.began_us) / 1000;
                Phase::Drain
            }
            Phase::Drain if in_flight == 0 || now_us >= self.ends_us || self.signals > 1 => {
                Phase::Done
            }
            _ => return None,
        };
        self.phase = next;
        self.began_us = now_us;
        self.ends_us = match next {
            Phase::Hold => now_us.saturating_add(self.hold_us),
            Phase::Drain => now_us.saturating_add(self.drain_us),
            Phase::Ramp | Phase::Done => u64::MAX,
        };
        Some(next)
    }

    /// Whether a progress snapshot is due at `now_us`; if so, the next one
    /// is scheduled (at the next whole period after `now_us`).
    pub fn poll_progress(&mut self, now_us: u64) -> bool {
        if now_us < self.next_progress_us {
            return false;
        }
        let periods = (now_us - self.next_progress_us) / PROGRESS_EVERY_US + 1;
        self.next_progress_us = self
            .next_progress_us
            .saturating_add(periods.saturating_mul(PROGRESS_EVERY_US));
        true
    }

    /// The next time, in µs, at which the phases want to be asked again:
    /// the next progress snapshot or the end of the hold or drain,
    /// whichever is first. Connection starts are the driver's (its wheel).
    pub fn poll_deadline(&self) -> u64 {
        self.next_progress_us.min(self.ends_us)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One step of a script.
    #[derive(Debug, Clone, Copy)]
    enum In {
        /// `poll_change` until `None`, with this many pings in flight.
        Poll(u64),
        /// A connection is due to start.
        Start,
        /// A signal.
        Signal,
        /// `poll_progress`.
        Progress,
    }
    use In::*;

    /// Runs the rows `(now_us, input, expected)` on `phases` and compares
    /// the whole trace at once. `expected` is what happened, in words:
    /// the phases entered (`hold ramp=5ms`), `open`/`skip` for a start,
    /// `progress`/`-`, and ` wake@<µs>` after every poll.
    #[track_caller]
    fn check(mut phases: Phases, rows: &[(u64, In, &str)]) {
        let mut got = Vec::new();
        let mut want = Vec::new();
        for &(now, input, expected) in rows {
            let out = match input {
                Poll(in_flight) => {
                    let mut steps = Vec::new();
                    while let Some(p) = phases.poll_change(now, in_flight) {
                        steps.push(match p {
                            Phase::Hold => format!("hold ramp={}ms", phases.ramp_ms()),
                            Phase::Drain => format!("drain hold={}ms", phases.hold_ms()),
                            p => p.to_string(),
                        });
                    }
                    if steps.is_empty() {
                        steps.push("-".to_owned());
                    }
                    let wake = match phases.poll_deadline() {
                        u64::MAX => "never".to_owned(),
                        t => t.to_string(),
                    };
                    format!("{} wake@{wake}", steps.join(", "))
                }
                Start => if phases.handle_start() {
                    "open"
                } else {
                    "skip"
                }
                .to_owned(),
                Signal => {
                    phases.handle_signal();
                    "-".to_owned()
                }
                Progress => if phases.poll_progress(now) {
                    "progress"
                } else {
                    "-"
                }
                .to_owned(),
            };
            got.push(format!("{now:>9} {input:<9?} {out}"));
            want.push(format!("{now:>9} {input:<9?} {expected}"));
        }
        assert_eq!(got.join("\n"), want.join("\n"));
    }

    fn phases(conns: usize, hold_ms: u64, drain_ms: u64) -> Phases {
        Phases::new(
            conns,
            Duration::from_millis(hold_ms),
            Duration::from_millis(drain_ms),
        )
    }

    #[test]
    fn ramp_hold_drain_done() {
        check(
            phases(2, 3_000, 500),
            &[
                (0, Poll(0), "- wake@1000000"),
                (4_000, Start, "open"),
                (4_999, Poll(1), "- wake@1000000"),
                (7_400, Start, "open"),
                // The hold starts when the last connection has started.
                (7_500, Poll(1), "hold ramp=7ms wake@1000000"),
                (1_000_000, Progress, "progress"),
                (1_000_001, Poll(1), "- wake@2000000"),
                (2_000_000, Progress, "progress"),
                (3_000_000, Progress, "progress"),
                // Exactly the hold's length after it began, not before.
                (3_007_499, Poll(2), "- wake@3007500"),
                (3_007_500, Poll(2), "drain hold=3000ms wake@3507500"),
                (3_100_000, Poll(1), "- wake@3507500"),
                // Every counted reply is in: no need to wait longer.
                (3_200_000, Poll(0), "done wake@4000000"),
                (3_300_000, Poll(0), "- wake@4000000"),
            ],
        );
    }

    #[test]
    fn the_drain_gives_up_after_the_reply_timeout() {
        check(
            phases(1, 1_000, 500),
            &[
                (0, Start, "open"),
                (0, Poll(0), "hold ramp=0ms wake@1000000"),
                (1_000_000, Progress, "progress"),
                (1_000_000, Poll(3), "drain hold=1000ms wake@1500000"),
                (1_499_999, Poll(3), "- wake@1500000"),
                (1_500_000, Poll(3), "done wake@2000000"),
            ],
        );
    }

    #[test]
    fn a_late_turn_crosses_several_phases_at_one_time() {
        check(
            phases(1, 1, 1),
            &[
                (0, Start, "open"),
                // The hold is measured from when its start was seen.
                (9_000, Poll(1), "hold ramp=9ms wake@10000"),
                (10_000, Poll(0), "drain hold=1ms, done wake@1000000"),
            ],
        );
        check(
            phases(1, 1_000, 1_000),
            &[
                (0, Signal, "-"),
                (
                    5_000,
                    Poll(0),
                    "hold ramp=5ms, drain hold=0ms, done wake@1000000",
                ),
            ],
        );
    }

    #[test]
    fn one_signal_ends_the_ramp_and_hold_two_end_the_drain() {
        check(
            phases(3, 10_000, 5_000),
            &[
                (1_000, Start, "open"),
                (2_000, Signal, "-"),
                (2_500, Poll(1), "hold ramp=2ms, drain hold=0ms wake@1000000"),
                // Starts still due after the ramp are counted, not opened.
                (3_000, Start, "skip"),
                (3_500, Poll(1), "- wake@1000000"),
                (1_000_000, Progress, "progress"),
                (2_000_000, Poll(1), "- wake@2000000"),
                (2_100_000, Signal, "-"),
                (2_100_000, Poll(1), "done wake@2000000"),
            ],
        );
    }

    #[test]
    fn lengths_round_up_to_whole_ms_and_saturate() {
        // A fraction of a ms rounds up: a phase never ends early.
        let mut p = Phases::new(1, Duration::from_micros(1_500), Duration::from_nanos(1));
        assert!(p.handle_start());
        assert_eq!(p.poll_change(0, 1), Some(Phase::Hold));
        assert_eq!(p.poll_change(1_999, 1), None);
        assert_eq!(p.poll_change(2_000, 1), Some(Phase::Drain));
        assert_eq!(p.poll_change(2_999, 1), None);
        assert_eq!(p.poll_change(3_000, 1), Some(Phase::Done));
        assert_eq!(p.poll_change(u64::MAX, 1), None);
        // The longest hold and drain do not overflow.
        let mut p = Phases::new(0, Duration::MAX, Duration::MAX);
        assert_eq!(p.poll_change(5, 1), Some(Phase::Hold));
        assert_eq!(p.poll_deadline(), PROGRESS_EVERY_US);
        assert_eq!(p.poll_change(u64::MAX - 1, 1), None);
        assert_eq!(p.poll_change(u64::MAX, 1), Some(Phase::Drain));
    }

    #[test]
    fn progress_comes_once_per_period_even_after_a_stall() {
        check(
            phases(1, 60_000, 1_000),
            &[
                (0, Progress, "-"),
                (999_999, Progress, "-"),
                (1_000_000, Progress, "progress"),
                (1_000_000, Progress, "-"),
                // A 3.5 s stall: one snapshot, the next on the period.
                (4_500_000, Progress, "progress"),
                (4_999_999, Progress, "-"),
                (4_999_999, Poll(0), "- wake@5000000"),
                (5_000_000, Progress, "progress"),
            ],
        );
    }

    #[test]
    fn phases_have_one_spelling_and_count_pings_until_the_drain() {
        for p in Phase::ALL {
            assert_eq!(Phase::parse(p.as_str()), Some(p));
            assert_eq!(p.to_string(), p.as_str());
        }
        assert_eq!(Phase::parse("nope"), None);
        let counted: Vec<bool> = Phase::ALL.iter().map(|p| p.counts_pings()).collect();
        assert_eq!(counted, [true, true, false, false]);
    }
}
