//! Failure detectors: when to give up on a peer that has gone quiet.
//!
//! vigil's default is a **fixed timeout**: a peer is dead once nothing has
//! arrived from it for `timeout`. The alternative here is the **φ accrual
//! detector** of Hayashibara, Défago, Yared and Katayama (2004), as used by
//! Akka and Cassandra: instead of a yes/no verdict at a fixed time, the
//! suspicion φ grows with the time since the last arrival, measured against
//! the distribution of the intervals between arrivals seen so far:
//!
//! ```text
//! φ(t) = −log10( P(an interval longer than t − last) )
//! ```
//!
//! with the intervals taken as normally distributed (mean μ, standard
//! deviation σ), `σ` never below `min_std_dev` (so a perfectly regular peer
//! does not make every late packet fatal) and `acceptable_pause` added to
//! `μ` (a pause the peer may take, such as a garbage collection or a radio
//! waking up). The peer is declared dead when φ reaches the threshold
//! (8 in Akka and Cassandra: a chance of 10⁻⁸ that a live peer is that late).
//!
//! # Why here, and how it stays cheap
//! A peer whose heartbeats are regular is found dead sooner than with a
//! fixed timeout sized for the worst case; a peer whose beats are irregular
//! (a client that only beats when idle, a jittery mobile link) gets a
//! longer grace automatically. The fixed timeout stays the hard upper bound.
//!
//! On the server each connection needs only [`Arrivals`]: 12 bytes of
//! running moments (an exponentially weighted mean and variance of the
//! intervals, and a sample count), never an array of samples; it lives in a
//! table beside the connections, only when φ is on. The threshold is turned
//! into a number of standard deviations once ([`PhiConfig::z`]), so the
//! deadline of a connection is one multiply-add: `last + pause + μ + z·σ`.
//! The deadline is what the timing wheel needs (it is lazy: a deadline is
//! computed when its entry fires); φ itself ([`Arrivals::phi`]) is for
//! tests and diagnostics.
//!
//! # The normal tail
//! `P(interval > x)` uses the logistic approximation of the normal
//! distribution's tail, `1 / (1 + e^(y·(1.5976 + 0.070566·y²)))` with
//! `y = (x − μ)/σ` (Bowling et al., 2009; error below 1.4·10⁻⁴), which is
//! also what Akka computes, so thresholds mean the same thing here.
//!
//! Pure: no clock, no I/O. Times are [`Tick`]s handed in.

use std::fmt;
use std::str::FromStr;

use crate::time::Tick;

/// The weight of a new interval in the running moments once enough have
/// been seen: about the last 32 intervals count. Before that, every
/// interval so far weighs the same (a plain running mean and variance), so
/// the first few samples do not start from a variance of zero.
const ALPHA: f32 = 1.0 / 32.0;

/// A φ accrual detector's settings. See the [module docs](self).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PhiConfig {
    /// The suspicion at which a peer is dead (Akka's default: 8).
    pub threshold: f64,
    /// The smallest standard deviation assumed, in ms.
    pub min_std_dev_ms: u64,
    /// A pause the peer may take beyond the mean interval, in ms.
    pub acceptable_pause_ms: u64,
    /// How many intervals must be seen before φ is trusted; until then the
    /// fixed timeout applies.
    pub min_samples: u16,
}

// The threshold is a finite number in 0.5..=30 (checked where it is
// parsed), so equality is an equivalence: configurations holding a
// `PhiConfig` can be `Eq`.
impl Eq for PhiConfig {}

impl PhiConfig {
    /// Threshold `threshold`, no acceptable pause, 8 intervals seen before
    /// φ is trusted, and `min_std_dev_ms` as given.
    pub fn new(threshold: f64, min_std_dev_ms: u64) -> PhiConfig {
        PhiConfig {
            threshold,
            min_std_dev_ms,
            acceptable_pause_ms: 0,
            min_samples: 8,
        }
    }

    /// How many standard deviations past the mean φ reaches the threshold:
    /// the `z` of the deadline `last + pause + μ + z·σ`.
    pub fn z(&self) -> f64 {
        z_for(self.threshold)
    }
}

/// The `y` at which the approximated normal tail is `10^-phi`.
fn z_for(phi: f64) -> f64 {
    // tail(y) = 1 / (1 + e^g(y)) with g increasing, so tail(y) = 10^-phi
    // when g(y) = ln(10^phi - 1). Solve by bisection: g is a cubic.
    let target = (10f64.powf(phi) - 1.0).max(f64::MIN_POSITIVE).ln();
    let g = |y: f64| y * (1.5976 + 0.070566 * y * y);
    let (mut lo, mut hi) = (-50.0f64, 50.0f64);
    for _ in 0..200 {
        let mid = (lo + hi) / 2.0;
        if g(mid) < target {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    (lo + hi) / 2.0
}

/// The approximated probability that a normal variable is more than `y`
/// standard deviations above its mean.
fn tail(y: f64) -> f64 {
    1.0 / (1.0 + (y * (1.5976 + 0.070566 * y * y)).exp())
}

/// Which detector decides that a peer is dead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Detector {
    /// Dead after the fixed timeout of silence (the default).
    #[default]
    Fixed,
    /// Dead when φ reaches its threshold, or after the fixed timeout,
    /// whichever comes first.
    Phi(PhiConfig),
}

impl Detector {
    /// The detector a flag names: `fixed`, or `phi:THRESHOLD` with optional
    /// `,min-std=DURATION` and `,pause=DURATION` (durations as in the other
    /// flags, e.g. `250ms`). `interval_ms` sets the default smallest
    /// standard deviation: a twentieth of the interval, at least 1 ms.
    pub fn parse(s: &str, interval_ms: u64) -> Result<Detector, String> {
        if s == "fixed" {
            return Ok(Detector::Fixed);
        }
        let Some(rest) = s.strip_prefix("phi:") else {
            return Err(format!(
                "invalid detector {s:?}: expected fixed or phi:THRESHOLD[,min-std=D][,pause=D]"
            ));
        };
        let mut parts = rest.split(',');
        let threshold: f64 =
            parts.next().unwrap_or_default().parse().map_err(|_| {
                format!("invalid φ threshold in {s:?}: expected a number such as 8")
            })?;
        if !(0.5..=30.0).contains(&threshold) {
            return Err(format!(
                "invalid φ threshold {threshold} in {s:?}: between 0.5 and 30"
            ));
        }
        let mut config = PhiConfig::new(threshold, (interval_ms / 20).max(1));
        for part in parts {
            let (key, value) = part
                .split_once('=')
                .ok_or_else(|| format!("invalid detector option {part:?} in {s:?}"))?;
            let ms = crate::duration::parse_duration(value)
                .map(crate::time::millis_ceil)
                .map_err(|e| format!("invalid {key} in {s:?}: {e}"))?;
            match key {
                "min-std" => config.min_std_dev_ms = ms.max(1),
                "pause" => config.acceptable_pause_ms = ms,
                _ => {
                    return Err(format!(
                        "unknown detector option {key:?} in {s:?}: min-std or pause"
                    ))
                }
            }
        }
        Ok(Detector::Phi(config))
    }
}

impl fmt::Display for Detector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Detector::Fixed => f.write_str("fixed"),
            Detector::Phi(c) => write!(
                f,
                "phi:{},min-std={}ms,pause={}ms",
                c.threshold, c.min_std_dev_ms, c.acceptable_pause_ms
            ),
        }
    }
}

impl FromStr for PhiConfig {
    type Err = String;

    /// `THRESHOLD` alone, with the default smallest standard deviation of a
    /// 1 s interval; see [`Detector::parse`] for the full syntax.
    fn from_str(s: &str) -> Result<PhiConfig, String> {
        match Detector::parse(&format!("phi:{s}"), 1000)? {
            Detector::Phi(c) => Ok(c),
            Detector::Fixed => Err(format!("{s:?} is not a φ detector")),
        }
    }
}

/// Running moments of the intervals between one peer's arrivals: 12 bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Arrivals {
    mean: f32,
    var: f32,
    samples: u16,
}

impl Arrivals {
    /// Records an interval of `ms` between two arrivals.
    pub fn record(&mut self, ms: u64) {
        let x = ms as f32;
        self.samples = self.samples.saturating_add(1);
        // Welford's running mean and variance while few samples are in,
        // then West's exponentially weighted form of the same update.
        let alpha = (1.0 / f32::from(self.samples)).max(ALPHA);
        let diff = x - self.mean;
        let incr = alpha * diff;
        self.mean += incr;
        self.var = (1.0 - alpha) * (self.var + diff * incr);
    }

    /// How many intervals have been recorded (saturating).
    pub fn samples(&self) -> u16 {
        self.samples
    }

    /// The mean interval, in ms.
    pub fn mean_ms(&self) -> f64 {
        f64::from(self.mean)
    }

    /// The standard deviation used: the measured one, at least the minimum.
    pub fn std_dev_ms(&self, config: &PhiConfig) -> f64 {
        f64::from(self.var.max(0.0))
            .sqrt()
            .max(config.min_std_dev_ms as f64)
    }

    /// When φ reaches the threshold for a peer last heard from at `last`,
    /// given `z` from [`PhiConfig::z`]; `None` until enough intervals have
    /// been seen. Never before `last + 1`.
    pub fn deadline(&self, last: Tick, config: &PhiConfig, z: f64) -> Option<Tick> {
        if self.samples < config.min_samples {
            return None;
        }
        let after =
            config.acceptable_pause_ms as f64 + self.mean_ms() + z * self.std_dev_ms(config);
        // Round up: a deadline is never earlier than asked.
        let after = after.ceil().clamp(1.0, 1e15) as u64;
        Some(last.saturating_add(after))
    }

    /// The suspicion at `now` for a peer last heard from at `last`.
    pub fn phi(&self, now: Tick, last: Tick, config: &PhiConfig) -> f64 {
        let elapsed = now.saturating_sub(last) as f64;
        let y = (elapsed - config.acceptable_pause_ms as f64 - self.mean_ms())
            / self.std_dev_ms(config);
        -tail(y).max(f64::MIN_POSITIVE).log10()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn z_is_where_phi_reaches_the_threshold() {
        for threshold in [1.0, 3.0, 8.0, 12.0] {
            let z = z_for(threshold);
            let phi = -tail(z).log10();
            assert!((phi - threshold).abs() < 1e-9, "{threshold}: {phi}");
        }
        // φ = 8 is about 5.2 standard deviations with this approximation
        // (5.6 for the exact normal tail).
        assert!((5.2..5.25).contains(&z_for(8.0)), "{}", z_for(8.0));
        // φ grows with lateness.
        let mut last = 0.0;
        for y in [-3.0, -1.0, 0.0, 1.0, 2.0, 4.0] {
            let phi = -tail(y).log10();
            assert!(phi > last);
            last = phi;
        }
    }

    #[test]
    fn moments_follow_the_intervals() {
        let mut a = Arrivals::default();
        for _ in 0..200 {
            a.record(1000);
        }
        assert!((a.mean_ms() - 1000.0).abs() < 1e-3);
        let c = PhiConfig::new(8.0, 50);
        // A perfectly regular peer: σ is the minimum.
        assert_eq!(a.std_dev_ms(&c), 50.0);
        // Alternating 800/1200: σ close to 200.
        let mut b = Arrivals::default();
        for k in 0..400 {
            b.record(if k % 2 == 0 { 800 } else { 1200 });
        }
        assert!((b.mean_ms() - 1000.0).abs() < 20.0, "{}", b.mean_ms());
        assert!(
            (180.0..220.0).contains(&b.std_dev_ms(&c)),
            "{}",
            b.std_dev_ms(&c)
        );
        assert_eq!(std::mem::size_of::<Arrivals>(), 12);
    }

    #[test]
    fn the_deadline_is_where_phi_crosses_the_threshold() {
        let c = PhiConfig {
            acceptable_pause_ms: 300,
            ..PhiConfig::new(8.0, 100)
        };
        let z = c.z();
        let mut a = Arrivals::default();
        assert_eq!(a.deadline(10_000, &c, z), None, "no samples yet");
        for _ in 0..7 {
            a.record(1000);
        }
        assert_eq!(a.deadline(10_000, &c, z), None, "7 samples are not enough");
        a.record(1000);
        let d = a.deadline(10_000, &c, z).unwrap();
        // mean 1000 + pause 300 + z·σ (5.23 × 100) after the last arrival.
        assert_eq!(d, 11_823);
        assert!(a.phi(d - 1, 10_000, &c) < 8.0);
        assert!(a.phi(d, 10_000, &c) >= 8.0 - 1e-6);
        assert!(a.phi(10_500, 10_000, &c) < 0.1);
    }

    #[test]
    fn flags() {
        assert_eq!(Detector::parse("fixed", 30_000), Ok(Detector::Fixed));
        let Ok(Detector::Phi(c)) = Detector::parse("phi:8", 30_000) else {
            panic!()
        };
        assert_eq!(
            (c.threshold, c.min_std_dev_ms, c.acceptable_pause_ms),
            (8.0, 1500, 0)
        );
        let Ok(Detector::Phi(c)) = Detector::parse("phi:10.5,min-std=200ms,pause=2s", 1000) else {
            panic!()
        };
        assert_eq!(
            (c.threshold, c.min_std_dev_ms, c.acceptable_pause_ms),
            (10.5, 200, 2000)
        );
        assert_eq!(
            Detector::Phi(c).to_string(),
            "phi:10.5,min-std=200ms,pause=2000ms"
        );
        for bad in [
            "phi",
            "phi:",
            "phi:x",
            "phi:0",
            "phi:99",
            "phi:8,min-std",
            "phi:8,nope=1s",
            "phi:8,pause=forever",
            "accrual",
        ] {
            assert!(Detector::parse(bad, 1000).is_err(), "{bad}");
        }
        assert_eq!("8".parse::<PhiConfig>().map(|c| c.threshold), Ok(8.0));
    }
}
