//! What a load run measured: [`Report`] (counters and two latency
//! histograms), the live [`Progress`] snapshot, and how each merges across
//! worker processes.
//!
//! Pure: nothing here touches a socket, a clock or a process. How a report
//! travels from a worker to the parent is [`super::wire`]; how it prints
//! is [`super::render`].

use std::collections::BTreeMap;

use hdrhistogram::Histogram;

pub use super::phase::Phase;

/// The largest latency a histogram tells apart, in µs (one hour); larger
/// values count as this.
pub const MAX_LATENCY_US: u64 = 3_600_000_000;
/// Significant decimal digits kept: values are exact to 0.1 %.
pub const SIGNIFICANT_DIGITS: u8 = 3;

/// A latency histogram in µs: HdrHistogram, 1 µs to one hour, three
/// significant digits.
#[derive(Debug, Clone, PartialEq)]
pub struct Latency {
    hist: Histogram<u64>,
}

impl Default for Latency {
    fn default() -> Latency {
        Latency::new()
    }
}

impl Latency {
    /// An empty histogram.
    #[allow(clippy::expect_used)] // constant arguments, valid by a test: no input reaches this
    pub fn new() -> Latency {
        Latency {
            // The bounds are constants, checked by a test.
            hist: Histogram::new_with_bounds(1, MAX_LATENCY_US, SIGNIFICANT_DIGITS)
                .expect("constant histogram bounds are valid"),
        }
    }

    /// Records one value in µs (above [`MAX_LATENCY_US`]: as the maximum).
    pub fn record(&mut self, us: u64) {
        self.hist.saturating_record(us);
    }

    /// How many values were recorded.
    pub fn count(&self) -> u64 {
        self.hist.len()
    }

    /// The value at quantile `q` (0.99 for p99), in µs; `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<u64> {
        (!self.hist.is_empty()).then(|| self.hist.value_at_quantile(q))
    }

    /// The largest value, in µs (to the histogram's precision); `None`
    /// when empty.
    pub fn max(&self) -> Option<u64> {
        (!self.hist.is_empty()).then(|| self.hist.max())
    }

    /// The mean, in µs; `None` when empty.
    pub fn mean(&self) -> Option<f64> {
        (!self.hist.is_empty()).then(|| self.hist.mean())
    }

    /// Adds every value of `other`.
    pub fn add(&mut self, other: &Latency) {
        // Same bounds on both sides, so adding cannot fail; saturate anyway.
        for (value, count) in other.buckets() {
            self.hist.saturating_record_n(value, count);
        }
    }

    /// Forgets every value.
    pub fn clear(&mut self) {
        self.hist.reset();
    }

    /// The histogram itself.
    pub fn histogram(&self) -> &Histogram<u64> {
        &self.hist
    }

    /// The non-empty buckets, as (a value in the bucket, how many). Each
    /// value recorded back into a histogram of the same shape lands in the
    /// same bucket: that is what makes merging exact.
    pub fn buckets(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.hist
            .iter_recorded()
            .map(|v| (v.value_iterated_to(), v.count_at_value()))
    }

    /// Records `count` values of `value`; `None` if `value` is beyond the
    /// histogram's range (input that did not come from
    /// [`buckets`](Latency::buckets)).
    pub(crate) fn record_bucket(&mut self, value: u64, count: u64) -> Option<()> {
        self.hist.record_n(value, count).ok()
    }
}

/// Everything one load run (or the sum of several) measured.
///
/// Heartbeat counters and histograms cover the pings sent from the start
/// to the end of the hold; pings the sessions send while the run waits for
/// the last replies are not counted. Every counted ping ends up either
/// `received` or `missing`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    /// How many processes' reports this is the sum of.
    pub procs: u64,
    /// TCP connections established (reconnects included).
    pub connects: u64,
    /// `WELCOME`s received.
    pub welcomes: u64,
    /// Reconnects the sessions scheduled, after any failure.
    pub reconnects: u64,
    /// Sessions online (welcomed) when the hold ended.
    pub online_at_end: u64,
    /// Connects that failed (never established), by reason, as
    /// [`ReasonName::as_str`](super::reason::ReasonName::as_str) spells it.
    pub connect_errors: BTreeMap<String, u64>,
    /// Established connections that ended during the run, by reason (the
    /// server's `BYE <reason>` when it said one), spelled the same way.
    pub closes: BTreeMap<String, u64>,
    /// `PING`s sent.
    pub sent: u64,
    /// `PONG`s received for them.
    pub received: u64,
    /// Pings never answered: the connection ended first, or the run did
    /// (after waiting up to the reply timeout for the last replies).
    pub missing: u64,
    /// Pings sent during the hold alone, and their replies: the steady
    /// state, for rates.
    pub hold_sent: u64,
    /// See [`hold_sent`](Report::hold_sent).
    pub hold_received: u64,
    /// How long the ramp took, in ms (the longest of the processes).
    pub ramp_ms: u64,
    /// How long the hold lasted, in ms (the longest of the processes).
    pub hold_ms: u64,
    /// Latency from when each ping was *due* to its `PONG`, in µs: what a
    /// client that must beat on schedule sees, stalls included
    /// (coordinated omission corrected, as wrk2 does).
    pub scheduled: Latency,
    /// Round trip from when each ping was actually sent to its `PONG`, µs.
    pub rtt: Latency,
}

/// How a counter merges across processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Merge {
    /// Counts add up.
    Add,
    /// Durations: the longest.
    Max,
}

/// One counter of a [`Report`]: its name (as on the wire), how it merges,
/// where it lives.
#[derive(Clone, Copy)]
pub(crate) struct Counter {
    pub(crate) name: &'static str,
    pub(crate) merge: Merge,
    pub(crate) get: fn(&Report) -> u64,
    pub(crate) get_mut: fn(&mut Report) -> &mut u64,
}

/// Every counter, in the order they are written.
pub(crate) const COUNTERS: [Counter; 12] = [
    Counter {
        name: "procs",
        merge: Merge::Add,
        get: |r| r.procs,
        get_mut: |r| &mut r.procs,
    },
    Counter {
        name: "connects",
        merge: Merge::Add,
        get: |r| r.connects,
        get_mut: |r| &mut r.connects,
    },
    Counter {
        name: "welcomes",
        merge: Merge::Add,
        get: |r| r.welcomes,
        get_mut: |r| &mut r.welcomes,
    },
    Counter {
        name: "reconnects",
        merge: Merge::Add,
        get: |r| r.reconnects,
        get_mut: |r| &mut r.reconnects,
    },
    Counter {
        name: "online_at_end",
        merge: Merge::Add,
        get: |r| r.online_at_end,
        get_mut: |r| &mut r.online_at_end,
    },
    Counter {
        name: "sent",
        merge: Merge::Add,
        get: |r| r.sent,
        get_mut: |r| &mut r.sent,
    },
    Counter {
        name: "received",
        merge: Merge::Add,
        get: |r| r.received,
        get_mut: |r| &mut r.received,
    },
    Counter {
        name: "missing",
        merge: Merge::Add,
        get: |r| r.missing,
        get_mut: |r| &mut r.missing,
    },
    Counter {
        name: "hold_sent",
        merge: Merge::Add,
        get: |r| r.hold_sent,
        get_mut: |r| &mut r.hold_sent,
    },
    Counter {
        name: "hold_received",
        merge: Merge::Add,
        get: |r| r.hold_received,
        get_mut: |r| &mut r.hold_received,
    },
    Counter {
        name: "ramp_ms",
        merge: Merge::Max,
        get: |r| r.ramp_ms,
        get_mut: |r| &mut r.ramp_ms,
    },
    Counter {
        name: "hold_ms",
        merge: Merge::Max,
        get: |r| r.hold_ms,
        get_mut: |r| &mut r.hold_ms,
    },
];

impl Report {
    /// An empty report for one process.
    pub fn new() -> Report {
        Report {
            procs: 1,
            ..Report::default()
        }
    }

    /// All connect errors.
    pub fn connect_errors_total(&self) -> u64 {
        self.connect_errors.values().sum()
    }

    /// All unexpected closes.
    pub fn closes_total(&self) -> u64 {
        self.closes.values().sum()
    }

    /// Connect errors, closes and missing replies: zero in a clean run.
    pub fn errors(&self) -> u64 {
        self.connect_errors_total() + self.closes_total() + self.missing
    }

    /// Replies per second during the hold.
    pub fn hold_reply_rate(&self) -> f64 {
        if self.hold_ms == 0 {
            0.0
        } else {
            self.hold_received as f64 * 1000.0 / self.hold_ms as f64
        }
    }

    /// Adds another process's report: counts add, histograms merge
    /// exactly, durations take the longest.
    pub fn merge(&mut self, other: &Report) {
        for c in COUNTERS {
            let theirs = (c.get)(other);
            let mine = (c.get_mut)(self);
            *mine = match c.merge {
                Merge::Add => mine.saturating_add(theirs),
                Merge::Max => (*mine).max(theirs),
            };
        }
        for (mine, theirs) in [
            (&mut self.connect_errors, &other.connect_errors),
            (&mut self.closes, &other.closes),
        ] {
            for (reason, n) in theirs {
                *mine.entry(reason.clone()).or_default() += n;
            }
        }
        self.scheduled.add(&other.scheduled);
        self.rtt.add(&other.rtt);
    }
}

/// A snapshot of a running load, once a second and at each phase change.
///
/// It carries the latencies of the last second themselves, not their p99:
/// snapshots of several processes then merge exactly, and the p99 shown
/// for `--procs` is the p99 of every worker's replies together.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    /// Time since the run started, in ms.
    pub elapsed_ms: u64,
    /// The phase.
    pub phase: Phase,
    /// Sessions online (welcomed) now.
    pub online: u64,
    /// Pings sent so far (counted ones).
    pub sent: u64,
    /// Replies received so far.
    pub received: u64,
    /// Connect errors, unexpected closes and missing replies so far
    /// ([`Report::errors`]).
    pub errors: u64,
    /// Reconnects scheduled so far.
    pub reconnects: u64,
    /// Round trips since the previous snapshot.
    pub rtt: Latency,
    /// Latencies from the scheduled send since the previous snapshot.
    pub scheduled: Latency,
}

impl Progress {
    /// A snapshot at `elapsed_ms` in `phase` with nothing counted yet.
    pub fn new(elapsed_ms: u64, phase: Phase) -> Progress {
        Progress {
            elapsed_ms,
            phase,
            online: 0,
            sent: 0,
            received: 0,
            errors: 0,
            reconnects: 0,
            rtt: Latency::new(),
            scheduled: Latency::new(),
        }
    }

    /// The round trip p99 since the previous snapshot, in µs.
    pub fn rtt_p99_us(&self) -> Option<u64> {
        self.rtt.quantile(0.99)
    }

    /// The p99 from the scheduled send since the previous snapshot, in µs.
    pub fn scheduled_p99_us(&self) -> Option<u64> {
        self.scheduled.quantile(0.99)
    }

    /// Adds another process's snapshot: counts add, the phase is the
    /// earliest, the latencies merge exactly (so the p99 is the p99 of
    /// both processes' replies, not the larger of two p99s).
    pub fn merge(&mut self, other: &Progress) {
        self.elapsed_ms = self.elapsed_ms.max(other.elapsed_ms);
        self.phase = self.phase.min(other.phase);
        self.online += other.online;
        self.sent += other.sent;
        self.received += other.received;
        self.errors += other.errors;
        self.reconnects += other.reconnects;
        self.rtt.add(&other.rtt);
        self.scheduled.add(&other.scheduled);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A report with every field set, different for each `seed`.
    pub(crate) fn sample(seed: u64, n: u64) -> Report {
        let mut r = Report::new();
        let mut rng = crate::client::backoff::SplitMix64::new(seed);
        for _ in 0..n {
            let rtt = 20 + rng.up_to(5_000);
            r.rtt.record(rtt);
            r.scheduled.record(rtt + rng.up_to(2_000_000));
        }
        r.sent = n + 2;
        r.received = n;
        r.missing = 2;
        r.hold_sent = n;
        r.hold_received = n - 1;
        r.connects = 10 + seed;
        r.welcomes = 9;
        r.reconnects = seed;
        r.online_at_end = 8;
        r.ramp_ms = 100 * seed;
        r.hold_ms = 3000 + seed;
        r.closes.insert("BYE timeout".to_owned(), seed);
        r.connect_errors
            .insert("connection-refused".to_owned(), 2 * seed);
        r
    }

    #[test]
    fn histogram_bounds_are_valid_and_saturate() {
        let mut l = Latency::new();
        assert_eq!((l.count(), l.quantile(0.5), l.max()), (0, None, None));
        l.record(0);
        l.record(u64::MAX);
        assert_eq!(l.count(), 2);
        assert!(l.max().unwrap() >= MAX_LATENCY_US);
        assert_eq!(l.quantile(0.0), Some(0));
        assert_eq!(l.record_bucket(MAX_LATENCY_US * 100, 1), None);
    }

    #[test]
    fn merging_adds_counts_and_is_exact() {
        let (a, b) = (sample(1, 5_000), sample(2, 7_000));
        let mut m = Report::new();
        m.procs = 0;
        m.merge(&a);
        m.merge(&b);
        assert_eq!(m.procs, 2);
        assert_eq!(m.sent, a.sent + b.sent);
        assert_eq!(m.missing, 4);
        assert_eq!(m.connects, 23);
        assert_eq!(m.reconnects, 3);
        assert_eq!((m.ramp_ms, m.hold_ms), (200, 3002));
        assert_eq!(m.closes["BYE timeout"], 3);
        assert_eq!(m.connect_errors["connection-refused"], 6);
        assert_eq!(m.errors(), 6 + 3 + 4);
        // Exactly the histogram of all values recorded in one.
        let mut one = Latency::new();
        for l in [&a.rtt, &b.rtt] {
            for v in l.histogram().iter_recorded() {
                for _ in 0..v.count_at_value() {
                    one.record(v.value_iterated_to());
                }
            }
        }
        assert_eq!(m.rtt, one);
        assert_eq!(m.rtt.count(), 12_000);
        assert_eq!(m.scheduled.count(), 12_000);
        let mut direct = a.scheduled.clone();
        direct.add(&b.scheduled);
        assert_eq!(m.scheduled, direct);
        assert_eq!(m.scheduled.quantile(0.99), direct.quantile(0.99));
    }

    #[test]
    fn every_counter_is_listed_once() {
        let mut r = Report::default();
        for (k, c) in COUNTERS.iter().enumerate() {
            *(c.get_mut)(&mut r) = k as u64 + 1;
            assert_eq!((c.get)(&r), k as u64 + 1, "{}", c.name);
        }
        let all = [
            r.procs,
            r.connects,
            r.welcomes,
            r.reconnects,
            r.online_at_end,
            r.sent,
            r.received,
            r.missing,
            r.hold_sent,
            r.hold_received,
            r.ramp_ms,
            r.hold_ms,
        ];
        let mut sorted = all.to_vec();
        sorted.sort_unstable();
        assert_eq!(sorted, (1..=12).collect::<Vec<u64>>());
    }

    #[test]
    fn progress_merges() {
        let mut m = Progress::new(1500, Phase::Hold);
        (m.online, m.sent, m.received, m.errors, m.reconnects) = (10, 100, 99, 1, 2);
        // Two slow replies in a hundred here; a hundred at 200 µs there.
        for v in (0..98).map(|_| 100).chain([10_000, 10_000]) {
            m.rtt.record(v);
        }
        let mut other = Progress::new(1400, Phase::Ramp);
        (
            other.online,
            other.sent,
            other.received,
            other.errors,
            other.reconnects,
        ) = (5, 1, 1, 3, 4);
        for _ in 0..100 {
            other.rtt.record(200);
        }
        other.scheduled.record(7);
        assert_eq!(
            (m.rtt_p99_us(), other.rtt_p99_us()),
            (Some(10_007), Some(200))
        );
        m.merge(&other);
        assert_eq!(
            (
                m.elapsed_ms,
                m.phase,
                m.online,
                m.sent,
                m.received,
                m.errors,
                m.reconnects
            ),
            (1500, Phase::Ramp, 15, 101, 100, 4, 6)
        );
        // The p99 of all 200 replies: 2 of them are slow, 1 % is 2, so the
        // p99 is 200 µs, where the larger of the two p99s would say 10 ms.
        assert_eq!(m.rtt.count(), 200);
        assert_eq!(m.rtt_p99_us(), Some(200));
        assert_eq!(m.rtt.quantile(0.999), Some(10_007));
        assert_eq!(m.scheduled_p99_us(), Some(7));
    }

    #[test]
    fn mean() {
        let mut l = Latency::new();
        assert_eq!(l.mean(), None);
        for v in [100, 200, 300] {
            l.record(v);
        }
        assert_eq!(l.mean(), Some(200.0));
    }
}
