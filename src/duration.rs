//! Durations as people type them: `250ms`, `30s`, `5m`.
//!
//! Every duration read here is at most [`MAX_DURATION`] (a year), so the
//! deadline arithmetic done on configured durations (adding them to a
//! `Tick`, multiplying an interval by a few) cannot overflow, and a
//! mistyped flag is refused when it is parsed instead of panicking or
//! spinning later.

use std::fmt;
use std::time::Duration;

/// The longest duration [`parse_duration`] accepts, and the longest any
/// server setting may be ([`Config::validate`](crate::Config::validate)):
/// 365 days, written `525600m`.
///
/// Why a year: no heartbeat interval, timeout or stats period is sensibly
/// longer, and a year in milliseconds (about 2^35) leaves 2^29 of headroom
/// in the `u64` milliseconds time is counted in, so sums and small
/// multiples of configured durations never overflow.
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// Why a duration could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseDurationError {
    input: String,
    too_long: bool,
}

impl fmt::Display for ParseDurationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.too_long {
            return write!(
                f,
                "duration {:?} is too long: at most {} (a year)",
                self.input,
                format_duration(MAX_DURATION)
            );
        }
        write!(
            f,
            "invalid duration {:?}: expected a whole number followed by ms, s or m (e.g. 250ms, 30s, 5m)",
            self.input
        )
    }
}

impl std::error::Error for ParseDurationError {}

/// Parses a whole number followed by a unit: `ms`, `s` or `m`, at most
/// [`MAX_DURATION`].
pub fn parse_duration(input: &str) -> Result<Duration, ParseDurationError> {
    let err = |too_long| ParseDurationError {
        input: input.to_owned(),
        too_long,
    };
    let s = input.trim();
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = s.split_at(digits);
    if digits == 0 {
        return Err(err(false));
    }
    let per_unit: u64 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        _ => return Err(err(false)),
    };
    // Any number of digits is well-formed; too many of them is too long.
    let ms = number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(per_unit))
        .ok_or_else(|| err(true))?;
    let d = Duration::from_millis(ms);
    if d > MAX_DURATION {
        return Err(err(true));
    }
    Ok(d)
}

/// Formats a duration the way [`parse_duration`] reads it, in the largest
/// unit that represents it exactly.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms != 0 && ms % 60_000 == 0 {
        format!("{}m", ms / 60_000)
    } else if ms != 0 && ms % 1_000 == 0 {
        format!("{}s", ms / 1_000)
    } else {
        format!("{ms}ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration(" 0ms "), Ok(Duration::ZERO));
    }

    #[test]
    fn rejects_the_rest() {
        for bad in [
            "",
            "30",
            "s",
            "1.5s",
            "-1s",
            "10h",
            "5 s",
            "+5s",
            "ms",
            "99999999999999999999",
        ] {
            let e = parse_duration(bad).unwrap_err();
            assert!(e.to_string().contains("invalid duration"), "{bad}: {e}");
        }
    }

    #[test]
    fn is_at_most_a_year() {
        let year_ms = 365 * 24 * 60 * 60 * 1000_u64;
        assert_eq!(MAX_DURATION, Duration::from_millis(year_ms));
        // The bound itself, in every unit.
        for ok in [
            format!("{year_ms}ms"),
            format!("{}s", year_ms / 1000),
            "525600m".to_owned(),
        ] {
            assert_eq!(parse_duration(&ok), Ok(MAX_DURATION), "{ok}");
        }
        // One step past it in every unit, and numbers past u64 or its products.
        for bad in [
            format!("{}ms", year_ms + 1),
            format!("{}s", year_ms / 1000 + 1),
            "525601m".to_owned(),
            "18446744073709551615ms".to_owned(),
            "18446744073709551615s".to_owned(),
            "18446744073709551615m".to_owned(),
            "99999999999999999999s".to_owned(),
        ] {
            let e = parse_duration(&bad).expect_err(&bad);
            assert_eq!(
                e.to_string(),
                format!("duration {bad:?} is too long: at most 525600m (a year)")
            );
        }
    }
    #[test]
    fn formats_back() {
        for s in ["250ms", "30s", "5m", "0ms", "1500ms"] {
            assert_eq!(format_duration(parse_duration(s).unwrap()), s);
        }
    }
}
