//! What a load run measured: [`Report`] (counters and two latency
//! histograms), how reports merge, how they print (a table, one JSON
//! object), and the line format a worker process hands its report and its
//! progress to the parent in.
//!
//! Pure: nothing here touches a socket, a clock or a process.
//!
//! # Worker lines
//! A worker writes, on stdout, any number of progress lines
//!
//! ```text
//! progress <elapsed_ms> <phase> <online> <sent> <received> <rtt_p99_us|-> <sched_p99_us|->
//! ```
//!
//! then its report between `report 1` and `end`: one `count <name> <n>`
//! per counter, `close <n> <reason>` and `connect-error <n> <reason>` per
//! reason (the reason last: it may hold spaces), and one
//! `hist <name> <value>:<count>...` per histogram listing its non-empty
//! buckets. Recording each bucket's value back into a histogram of the same
//! shape lands in the same bucket, so merging is exact.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};

use hdrhistogram::Histogram;

use super::config::{millis, LoadConfig};
use crate::client::session::DisconnectReason;

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

    /// Adds every value of `other`.
    pub fn add(&mut self, other: &Latency) {
        // Same bounds on both sides, so adding cannot fail; saturate anyway.
        for v in other.hist.iter_recorded() {
            self.hist
                .saturating_record_n(v.value_iterated_to(), v.count_at_value());
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

    /// The non-empty buckets as `value:count` pairs, space-separated.
    fn encode(&self) -> String {
        let mut s = String::new();
        for v in self.hist.iter_recorded() {
            let _ = write!(s, " {}:{}", v.value_iterated_to(), v.count_at_value());
        }
        s
    }

    /// Reads what [`Latency::encode`] wrote.
    fn decode(text: &str) -> Option<Latency> {
        let mut l = Latency::new();
        for pair in text.split_whitespace() {
            let (v, c) = pair.split_once(':')?;
            let (v, c) = (v.parse().ok()?, c.parse().ok()?);
            l.hist.record_n(v, c).ok()?;
        }
        Some(l)
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
    /// Connects that failed (never established), by reason.
    pub connect_errors: BTreeMap<String, u64>,
    /// Established connections that ended during the run, by reason: the
    /// server's `BYE <reason>` when it said one.
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

/// The counters, by name, in the order they are written.
const COUNTERS: [&str; 12] = [
    "procs",
    "connects",
    "welcomes",
    "reconnects",
    "online_at_end",
    "sent",
    "received",
    "missing",
    "hold_sent",
    "hold_received",
    "ramp_ms",
    "hold_ms",
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
        per_second(self.hold_received, self.hold_ms)
    }

    /// Adds another process's report: counts add, histograms merge
    /// exactly, durations take the longest.
    pub fn merge(&mut self, other: &Report) {
        for name in COUNTERS {
            let theirs = other.counter(name).unwrap_or(0);
            if let Some(mine) = self.counter_mut(name) {
                *mine = if name.ends_with("_ms") {
                    (*mine).max(theirs)
                } else {
                    mine.saturating_add(theirs)
                };
            }
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

    fn counter(&self, name: &str) -> Option<u64> {
        Some(match name {
            "procs" => self.procs,
            "connects" => self.connects,
            "welcomes" => self.welcomes,
            "reconnects" => self.reconnects,
            "online_at_end" => self.online_at_end,
            "sent" => self.sent,
            "received" => self.received,
            "missing" => self.missing,
            "hold_sent" => self.hold_sent,
            "hold_received" => self.hold_received,
            "ramp_ms" => self.ramp_ms,
            "hold_ms" => self.hold_ms,
            _ => return None,
        })
    }

    fn counter_mut(&mut self, name: &str) -> Option<&mut u64> {
        Some(match name {
            "procs" => &mut self.procs,
            "connects" => &mut self.connects,
            "welcomes" => &mut self.welcomes,
            "reconnects" => &mut self.reconnects,
            "online_at_end" => &mut self.online_at_end,
            "sent" => &mut self.sent,
            "received" => &mut self.received,
            "missing" => &mut self.missing,
            "hold_sent" => &mut self.hold_sent,
            "hold_received" => &mut self.hold_received,
            "ramp_ms" => &mut self.ramp_ms,
            "hold_ms" => &mut self.hold_ms,
            _ => return None,
        })
    }

    /// The report as worker lines (see the [module docs](self)).
    pub fn encode(&self) -> String {
        let mut s = String::from("report 1\n");
        for name in COUNTERS {
            let _ = writeln!(s, "count {name} {}", self.counter(name).unwrap_or(0));
        }
        for (n, reason) in self.connect_errors.iter().map(|(r, n)| (n, r)) {
            let _ = writeln!(s, "connect-error {n} {reason}");
        }
        for (n, reason) in self.closes.iter().map(|(r, n)| (n, r)) {
            let _ = writeln!(s, "close {n} {reason}");
        }
        let _ = writeln!(s, "hist scheduled{}", self.scheduled.encode());
        let _ = writeln!(s, "hist rtt{}", self.rtt.encode());
        s.push_str("end\n");
        s
    }

    /// Reads the lines of [`encode`](Report::encode), without the final
    /// `end`, one at a time: feed every line after `report 1` to
    /// [`ReportReader::line`].
    pub fn reader() -> ReportReader {
        ReportReader {
            report: Report {
                procs: 0,
                ..Report::default()
            },
        }
    }
}

/// Reads a worker's report line by line. See [`Report::reader`].
#[derive(Debug)]
pub struct ReportReader {
    report: Report,
}

impl ReportReader {
    /// Takes one line; an error names it.
    pub fn line(&mut self, line: &str) -> Result<(), String> {
        let bad = || format!("bad report line {line:?}");
        let (kind, rest) = line.split_once(' ').unwrap_or((line, ""));
        match kind {
            "count" => {
                let (name, n) = rest.split_once(' ').ok_or_else(bad)?;
                let n = n.parse().map_err(|_| bad())?;
                *self.report.counter_mut(name).ok_or_else(bad)? = n;
            }
            "connect-error" | "close" => {
                let (n, reason) = rest.split_once(' ').ok_or_else(bad)?;
                let n: u64 = n.parse().map_err(|_| bad())?;
                let map = if kind == "close" {
                    &mut self.report.closes
                } else {
                    &mut self.report.connect_errors
                };
                *map.entry(reason.to_owned()).or_default() += n;
            }
            "hist" => {
                let (name, pairs) = rest.split_once(' ').unwrap_or((rest, ""));
                let latency = Latency::decode(pairs).ok_or_else(bad)?;
                match name {
                    "scheduled" => self.report.scheduled = latency,
                    "rtt" => self.report.rtt = latency,
                    _ => return Err(bad()),
                }
            }
            _ => return Err(bad()),
        }
        Ok(())
    }

    /// The report read so far.
    pub fn finish(self) -> Report {
        self.report
    }
}

/// The stable name a disconnect is counted under: the server's
/// `BYE <reason>` as it said it, or what the session saw.
pub fn reason_key(reason: &DisconnectReason) -> String {
    match reason {
        DisconnectReason::Bye(Some(r)) => format!("BYE {}", r.as_str()),
        DisconnectReason::Bye(None) => "BYE (unknown reason)".to_owned(),
        DisconnectReason::Eof => "eof".to_owned(),
        DisconnectReason::Failed(kind) => kebab(&format!("{kind:?}")),
        DisconnectReason::ConnectTimeout => "connect-timeout".to_owned(),
        DisconnectReason::NoWelcome => "no-welcome".to_owned(),
        DisconnectReason::PingTimeout => "ping-timeout".to_owned(),
        DisconnectReason::Silent => "silent".to_owned(),
        DisconnectReason::LineTooLong => "line-too-long".to_owned(),
        DisconnectReason::BadLine(_) => "bad-frame".to_owned(),
    }
}

/// `ConnectionRefused` -> `connection-refused`.
fn kebab(camel: &str) -> String {
    let mut s = String::with_capacity(camel.len() + 4);
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            s.push('-');
        }
        s.push(c.to_ascii_lowercase());
    }
    s
}

fn per_second(n: u64, ms: u64) -> f64 {
    if ms == 0 {
        0.0
    } else {
        n as f64 * 1000.0 / ms as f64
    }
}

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
    /// The phase's name, as in progress lines.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Ramp => "ramp",
            Phase::Hold => "hold",
            Phase::Drain => "drain",
            Phase::Done => "done",
        }
    }

    fn parse(s: &str) -> Option<Phase> {
        [Phase::Ramp, Phase::Hold, Phase::Drain, Phase::Done]
            .into_iter()
            .find(|p| p.as_str() == s)
    }
}

/// A snapshot of a running load, once a second and at each phase change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
    /// The round trip p99 since the previous snapshot, in µs.
    pub rtt_p99_us: Option<u64>,
    /// The p99 from the scheduled send since the previous snapshot, in µs.
    pub scheduled_p99_us: Option<u64>,
}

impl Progress {
    /// The snapshot as a worker line.
    pub fn encode(&self) -> String {
        let opt = |v: Option<u64>| v.map_or("-".to_owned(), |v| v.to_string());
        format!(
            "progress {} {} {} {} {} {} {}",
            self.elapsed_ms,
            self.phase.as_str(),
            self.online,
            self.sent,
            self.received,
            opt(self.rtt_p99_us),
            opt(self.scheduled_p99_us),
        )
    }

    /// Reads what [`encode`](Progress::encode) wrote.
    pub fn decode(line: &str) -> Option<Progress> {
        let fields: Vec<&str> = line.strip_prefix("progress ")?.split(' ').collect();
        let [elapsed, phase, online, sent, received, rtt, sched] = fields[..] else {
            return None;
        };
        let num = |s: &str| s.parse::<u64>().ok();
        let opt = |s: &str| {
            if s == "-" {
                Some(None)
            } else {
                num(s).map(Some)
            }
        };
        Some(Progress {
            elapsed_ms: num(elapsed)?,
            phase: Phase::parse(phase)?,
            online: num(online)?,
            sent: num(sent)?,
            received: num(received)?,
            rtt_p99_us: opt(rtt)?,
            scheduled_p99_us: opt(sched)?,
        })
    }

    /// Adds another process's snapshot: counts add, the phase is the
    /// earliest, the p99s the largest (an approximation: percentiles do
    /// not add).
    pub fn merge(&mut self, other: &Progress) {
        self.elapsed_ms = self.elapsed_ms.max(other.elapsed_ms);
        self.phase = self.phase.min(other.phase);
        self.online += other.online;
        self.sent += other.sent;
        self.received += other.received;
        self.rtt_p99_us = self.rtt_p99_us.max(other.rtt_p99_us);
        self.scheduled_p99_us = self.scheduled_p99_us.max(other.scheduled_p99_us);
    }
}

/// The live line: `12.0s hold  online 15000/15000  hb/s 15023  p99 rtt 180µs sched 950µs`.
/// `sent_per_s` is the caller's (it knows the previous snapshot).
pub fn format_progress(p: &Progress, target: usize, sent_per_s: f64) -> String {
    let us = |v: Option<u64>| v.map_or("-".to_owned(), format_us);
    format!(
        "{:>6.1}s {:<5}  online {}/{}  hb/s {:.0}  p99 rtt {} sched {}",
        p.elapsed_ms as f64 / 1000.0,
        p.phase.as_str(),
        p.online,
        target,
        sent_per_s,
        us(p.rtt_p99_us),
        us(p.scheduled_p99_us),
    )
}

/// µs for people: `850µs`, `12.4ms`, `3.20s`.
pub fn format_us(us: u64) -> String {
    if us < 10_000 {
        format!("{us}µs")
    } else if us < 10_000_000 {
        format!("{:.1}ms", us as f64 / 1000.0)
    } else {
        format!("{:.2}s", us as f64 / 1_000_000.0)
    }
}

/// The summary table printed at the end of a run.
pub fn format_table(config: &LoadConfig, r: &Report) -> String {
    let mut s = String::new();
    let procs = if r.procs == 1 { "process" } else { "processes" };
    let _ = writeln!(
        s,
        "vigil load: {} connections to {}, {} {procs}, one heartbeat every {} ms",
        config.conns,
        config.server,
        r.procs,
        millis(config.interval)
    );
    let _ = writeln!(
        s,
        "ramp {:.2} s at {} connections/s, hold {:.2} s\n",
        r.ramp_ms as f64 / 1000.0,
        config.connect_rate,
        r.hold_ms as f64 / 1000.0
    );
    let _ = writeln!(
        s,
        "{:<16}connected {}  welcomed {}  online at end {}  reconnects {}",
        "connections", r.connects, r.welcomes, r.online_at_end, r.reconnects
    );
    for (title, map, total) in [
        (
            "connect errors",
            &r.connect_errors,
            r.connect_errors_total(),
        ),
        ("closes", &r.closes, r.closes_total()),
    ] {
        let _ = writeln!(s, "{title:<16}{total}");
        for (reason, n) in map {
            let _ = writeln!(s, "  {reason:<26}{n}");
        }
    }
    let _ = writeln!(
        s,
        "{:<16}sent {}  replies {}  missing {}",
        "heartbeats", r.sent, r.received, r.missing
    );
    let _ = writeln!(
        s,
        "{:<16}offered {:.1}/s  replied {:.1}/s (during the hold)\n",
        "rate",
        offered_rate(config),
        r.hold_reply_rate()
    );
    let _ = writeln!(
        s,
        "{:<24}{:>10}{:>10}{:>10}{:>10}{:>10}",
        "latency (µs)", "count", "p50", "p99", "p99.9", "max"
    );
    for (name, l) in [
        ("  from scheduled send", &r.scheduled),
        ("  round trip", &r.rtt),
    ] {
        let q = |q: f64| l.quantile(q).map_or("-".to_owned(), |v| v.to_string());
        let _ = writeln!(
            s,
            "{name:<24}{:>10}{:>10}{:>10}{:>10}{:>10}",
            l.count(),
            q(0.5),
            q(0.99),
            q(0.999),
            l.max().map_or("-".to_owned(), |v| v.to_string())
        );
    }
    s
}

/// The heartbeat rate the configuration offers: one per connection per
/// interval.
pub fn offered_rate(config: &LoadConfig) -> f64 {
    config.conns as f64 * 1000.0 / millis(config.interval).max(1) as f64
}

/// The report as one JSON object (one line).
pub fn format_json(config: &LoadConfig, r: &Report) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "{{\"server\":{},\"conns\":{},\"procs\":{},\"connect_rate\":{},\"interval_ms\":{},\
         \"duration_ms\":{},\"reply_timeout_ms\":{},\"ramp_ms\":{},\"hold_ms\":{},",
        json_str(&config.server.to_string()),
        config.conns,
        r.procs,
        json_f64(config.connect_rate),
        millis(config.interval),
        millis(config.duration),
        millis(config.reply_timeout),
        r.ramp_ms,
        r.hold_ms,
    );
    let _ = write!(
        s,
        "\"connections\":{{\"connected\":{},\"welcomed\":{},\"online_at_end\":{},\"reconnects\":{}}},",
        r.connects, r.welcomes, r.online_at_end, r.reconnects
    );
    for (name, map, total) in [
        (
            "connect_errors",
            &r.connect_errors,
            r.connect_errors_total(),
        ),
        ("closes", &r.closes, r.closes_total()),
    ] {
        let by: Vec<String> = map
            .iter()
            .map(|(k, v)| format!("{}:{v}", json_str(k)))
            .collect();
        let _ = write!(
            s,
            "\"{name}\":{{\"total\":{total},\"by_reason\":{{{}}}}},",
            by.join(",")
        );
    }
    let _ = write!(
        s,
        "\"heartbeats\":{{\"sent\":{},\"received\":{},\"missing\":{},\"hold_sent\":{},\
         \"hold_received\":{},\"offered_per_s\":{},\"replies_per_s\":{}}},",
        r.sent,
        r.received,
        r.missing,
        r.hold_sent,
        r.hold_received,
        json_f64(offered_rate(config)),
        json_f64(r.hold_reply_rate()),
    );
    let _ = write!(
        s,
        "\"errors\":{},\"latency_us\":{{\"scheduled\":{},\"rtt\":{}}}}}",
        r.errors(),
        json_latency(&r.scheduled),
        json_latency(&r.rtt)
    );
    s
}

fn json_latency(l: &Latency) -> String {
    let q = |q: f64| l.quantile(q).map_or("null".to_owned(), |v| v.to_string());
    format!(
        "{{\"count\":{},\"p50\":{},\"p99\":{},\"p99_9\":{},\"max\":{}}}",
        l.count(),
        q(0.5),
        q(0.99),
        q(0.999),
        l.max().map_or("null".to_owned(), |v| v.to_string())
    )
}

/// A finite number as JSON (rounded to 0.1; JSON has no NaN).
fn json_f64(x: f64) -> String {
    if x.is_finite() {
        format!("{:.1}", x)
    } else {
        "null".to_owned()
    }
}

/// A JSON string literal.
fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    crate::events::write_json_string(s, &mut out);
    out
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::CloseReason;
    use std::io;

    fn sample(seed: u64, n: u64) -> Report {
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
    fn worker_lines_read_back() {
        let mut r = sample(3, 1_000);
        r.closes.insert("BYE (unknown reason)".to_owned(), 1);
        let text = r.encode();
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some("report 1"));
        let mut reader = Report::reader();
        for line in lines.by_ref() {
            if line == "end" {
                break;
            }
            reader.line(line).unwrap();
        }
        assert_eq!(lines.next(), None);
        assert_eq!(reader.finish(), r);
        // An empty report too.
        let mut reader = Report::reader();
        for line in Report::new()
            .encode()
            .lines()
            .skip(1)
            .filter(|l| *l != "end")
        {
            reader.line(line).unwrap();
        }
        assert_eq!(reader.finish(), Report::new());
        for bad in [
            "count nope 1",
            "count sent x",
            "close x y",
            "hist rtt 1:x",
            "hist rtt 99999999999999:1",
            "hist other 1:1",
            "what",
            "",
        ] {
            assert!(Report::reader().line(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn progress_lines_read_back_and_merge() {
        let p = Progress {
            elapsed_ms: 1500,
            phase: Phase::Hold,
            online: 10,
            sent: 100,
            received: 99,
            rtt_p99_us: Some(120),
            scheduled_p99_us: None,
        };
        assert_eq!(p.encode(), "progress 1500 hold 10 100 99 120 -");
        assert_eq!(Progress::decode(&p.encode()), Some(p));
        for bad in [
            "progress 1 hold 1 1 1 1",
            "progress 1 hold 1 1 1 1 1 1",
            "progress 1 nope 1 1 1 1 1",
            "progress x hold 1 1 1 1 1",
            "report 1",
        ] {
            assert_eq!(Progress::decode(bad), None, "{bad}");
        }
        let mut m = p;
        m.merge(&Progress {
            elapsed_ms: 1400,
            phase: Phase::Ramp,
            online: 5,
            sent: 1,
            received: 1,
            rtt_p99_us: Some(90),
            scheduled_p99_us: Some(7),
        });
        assert_eq!(
            (m.phase, m.online, m.sent, m.received),
            (Phase::Ramp, 15, 101, 100)
        );
        assert_eq!((m.rtt_p99_us, m.scheduled_p99_us), (Some(120), Some(7)));
        assert_eq!(
            format_progress(&m, 20, 10.0),
            "   1.5s ramp   online 15/20  hb/s 10  p99 rtt 120µs sched 7µs"
        );
    }

    #[test]
    fn reasons_have_stable_names() {
        let check = |r: DisconnectReason, name: &str| assert_eq!(reason_key(&r), name);
        check(
            DisconnectReason::Bye(Some(CloseReason::Timeout)),
            "BYE timeout",
        );
        check(
            DisconnectReason::Bye(Some(CloseReason::TooManyPings)),
            "BYE too-many-pings",
        );
        check(DisconnectReason::Bye(None), "BYE (unknown reason)");
        check(DisconnectReason::Eof, "eof");
        check(
            DisconnectReason::Failed(io::ErrorKind::ConnectionRefused),
            "connection-refused",
        );
        check(
            DisconnectReason::Failed(io::ErrorKind::AddrNotAvailable),
            "addr-not-available",
        );
        check(DisconnectReason::ConnectTimeout, "connect-timeout");
        check(DisconnectReason::NoWelcome, "no-welcome");
        check(DisconnectReason::PingTimeout, "ping-timeout");
        check(DisconnectReason::Silent, "silent");
        check(DisconnectReason::LineTooLong, "line-too-long");
        check(DisconnectReason::BadLine("x"), "bad-frame");
    }

    #[test]
    fn microseconds_for_people() {
        for (us, s) in [
            (0, "0µs"),
            (9_999, "9999µs"),
            (10_000, "10.0ms"),
            (12_345, "12.3ms"),
            (9_999_999, "10000.0ms"),
            (10_000_000, "10.00s"),
        ] {
            assert_eq!(format_us(us), s);
        }
    }

    fn config() -> LoadConfig {
        let mut c = LoadConfig::new("127.0.0.1:7700".parse().unwrap(), 200);
        c.interval = std::time::Duration::from_millis(500);
        c
    }

    #[test]
    fn the_table_shows_every_figure() {
        let mut r = Report::new();
        r.sent = 1200;
        r.received = 1199;
        r.missing = 1;
        r.hold_received = 1000;
        r.hold_ms = 2500;
        r.closes.insert("BYE shutdown".to_owned(), 1);
        for v in [50, 60, 70, 80, 5000] {
            r.rtt.record(v);
            r.scheduled.record(v + 400);
        }
        let t = format_table(&config(), &r);
        for needle in [
            "200 connections to 127.0.0.1:7700, 1 process, one heartbeat every 500 ms",
            "connect errors  0\n",
            "closes          1\n  BYE shutdown",
            "sent 1200  replies 1199  missing 1",
            "offered 400.0/s  replied 400.0/s",
            "  from scheduled send            5       470      5403      5403      5403",
            "  round trip                     5        70      5003      5003      5003",
        ] {
            assert!(t.contains(needle), "{needle:?} not in\n{t}");
        }
        let empty = format_table(&config(), &Report::new());
        assert!(
            empty.contains(
                "  round trip                     0         -         -         -         -"
            ),
            "{empty}"
        );
    }

    #[test]
    fn json_is_one_valid_object() {
        let mut r = sample(4, 100);
        r.closes.insert("odd \"reason\"\\\n".to_owned(), 1);
        let j = format_json(&config(), &r);
        assert!(!j.contains('\n'));
        let v: serde_json::Value = serde_json::from_str(&j).expect(&j);
        assert_eq!(v["conns"], 200);
        assert_eq!(v["interval_ms"], 500);
        assert_eq!(v["heartbeats"]["sent"], 102);
        assert_eq!(v["heartbeats"]["missing"], 2);
        assert_eq!(v["heartbeats"]["offered_per_s"], 400.0);
        assert_eq!(v["closes"]["total"], 5);
        assert_eq!(v["closes"]["by_reason"]["odd \"reason\"\\\n"], 1);
        assert_eq!(v["connect_errors"]["by_reason"]["connection-refused"], 8);
        assert_eq!(v["errors"], 8 + 5 + 2);
        let rtt = &v["latency_us"]["rtt"];
        assert_eq!(rtt["count"], 100);
        assert_eq!(rtt["p50"].as_u64(), r.rtt.quantile(0.5));
        assert!(rtt["p99_9"].as_u64() <= rtt["max"].as_u64());
        let e: serde_json::Value =
            serde_json::from_str(&format_json(&config(), &Report::new())).unwrap();
        assert!(e["latency_us"]["scheduled"]["p99"].is_null());
    }
}
