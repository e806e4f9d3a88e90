//! The one place that reads the monotonic clock.
//!
//! Everything else in vigil works with `u64` milliseconds since the clock's
//! start ("now_ms"), handed in by the event loop. The clock is
//! [`std::time::Instant`], which is monotonic: changing the system date never
//! moves a deadline, so it never disconnects anyone.

use std::time::{Duration, Instant};

/// A monotonic millisecond clock, counting from its creation.
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

    /// Whole milliseconds since the clock started (rounded down, so a time
    /// read from the clock is never later than the truth).
    pub fn now_ms(&self) -> u64 {
        millis_floor(self.start.elapsed())
    }
}

/// A duration in whole milliseconds, rounded down.
pub fn millis_floor(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A duration in whole milliseconds, rounded up: used for timeouts, so that
/// a deadline computed from it is never earlier than asked.
pub fn millis_ceil(d: Duration) -> u64 {
    let ms = millis_floor(d);
    if d.subsec_nanos() % 1_000_000 != 0 {
        ms.saturating_add(1)
    } else {
        ms
    }
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
    }

    #[test]
    fn clock_is_monotonic() {
        let c = Clock::new();
        let a = c.now_ms();
        let b = c.now_ms();
        assert!(b >= a);
    }
}
