//! Time: the one [`Tick`] type and the one [`Clock`].
//!
//! Everything in vigil that decides by time (the wheel, both sessions, the
//! adaptive interval, the load generator's phases) works with a [`Tick`]:
//! whole milliseconds since some start, handed in by a driver. Pure code
//! never reads a clock; the drivers read this one.
//!
//! The clock is [`std::time::Instant`], which is monotonic: changing the
//! system date never moves a deadline, so it never disconnects anyone. This
//! module is the only place that turns an `Instant` or a [`Duration`] into
//! ticks or microseconds, and it states which way it rounds:
//! - the time *at which to decide* (is a deadline past?) rounds **down**
//!   ([`Clock::now`]): never later than the truth;
//! - the time *an input happened* rounds **up** ([`Clock::stamp`]): never
//!   earlier than the truth;
//! - a *length of time to wait* rounds **up** ([`millis_ceil`]), so a
//!   deadline computed from it is never earlier than asked.
//!
//! Together: with `deadline = stamp + millis_ceil(timeout)`, a check
//! `now >= deadline` holds only once `timeout` has really passed since the
//! input, to the nanosecond: `true_now >= now >= stamp + timeout >=
//! true_input + timeout`. Rounding the stamp down instead would let a
//! deadline fire up to a millisecond early.

use std::time::{Duration, Instant};

/// A point in time: whole milliseconds since a [`Clock`] started (or any
/// other start a driver or a test picks, as long as it never goes back).
pub type Tick = u64;

/// A monotonic clock counting from its creation.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    start: Instant,
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

impl Clock {
    /// A clock whose zero is now.
    pub fn new() -> Clock {
        Clock {
            start: Instant::now(),
        }
    }

    /// Whole milliseconds since the clock started, rounded down.
    pub fn now(&self) -> Tick {
        millis_floor(self.start.elapsed())
    }

    /// The stamp of an input that has just happened: milliseconds since the
    /// clock started, rounded up, so a deadline counted from it is never
    /// early (see the module docs).
    pub fn stamp(&self) -> Tick {
        millis_ceil(self.start.elapsed())
    }

    /// Whole microseconds since the clock started, rounded down (for
    /// latencies, which need finer grain than ticks).
    pub fn now_us(&self) -> u64 {
        micros_floor(self.start.elapsed())
    }

    /// The tick of `instant` on this clock (0 for instants before its start).
    pub fn tick_of(&self, instant: Instant) -> Tick {
        millis_floor(instant.saturating_duration_since(self.start))
    }
}

/// A duration in whole milliseconds, rounded down, saturating.
pub fn millis_floor(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A duration in whole milliseconds, rounded up, saturating: used for
/// timeouts, so that a deadline computed from it is never earlier than asked.
pub fn millis_ceil(d: Duration) -> u64 {
    let ms = millis_floor(d);
    if d.subsec_nanos() % 1_000_000 != 0 {
        ms.saturating_add(1)
    } else {
        ms
    }
}

/// A duration in whole microseconds, rounded down, saturating.
pub fn micros_floor(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding() {
        assert_eq!(millis_floor(Duration::from_micros(1999)), 1);
        assert_eq!(millis_ceil(Duration::from_micros(1999)), 2);
        assert_eq!(millis_ceil(Duration::from_millis(2)), 2);
        assert_eq!(millis_ceil(Duration::from_nanos(1)), 1);
        assert_eq!(millis_ceil(Duration::ZERO), 0);
        assert_eq!(millis_floor(Duration::MAX), u64::MAX);
        assert_eq!(millis_ceil(Duration::MAX), u64::MAX);
        assert_eq!(micros_floor(Duration::from_nanos(1999)), 1);
        assert_eq!(micros_floor(Duration::MAX), u64::MAX);
    }

    #[test]
    fn clock_is_monotonic() {
        let c = Clock::new();
        let a = c.now();
        let b = c.now();
        assert!(b >= a);
        assert!(c.stamp() >= b);
        assert!(c.now_us() >= a * 1000);
        assert_eq!(c.tick_of(c.start), 0);
        assert_eq!(c.tick_of(c.start + Duration::from_micros(2500)), 2);
    }
}
