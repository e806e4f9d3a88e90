//! Durations as people type them: `250ms`, `30s`, `5m`, `1h30m`, `1.5s`.
//!
//! A whole number and one unit (`ms`, `s`, `m`) is read here; anything else
//! goes to jiff's "friendly" format (`1h30m`, `1.5s`, `2 hours`; units up to hours),
//! with three extra rules: no sign, no space between a number and its
//! unit's start (so `5 s` stays a typo), and whole milliseconds only
//! (time is counted in milliseconds).
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
    /// Finer than a millisecond.
    too_fine: bool,
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
        if self.too_fine {
            return write!(
                f,
                "invalid duration {:?}: at most millisecond precision",
                self.input
            );
        }
        write!(
            f,
            "invalid duration {:?}: expected a number and a unit (e.g. 250ms, 30s, 5m, 1h30m, 1.5s)",
            self.input
        )
    }
}

impl std::error::Error for ParseDurationError {}

/// Parses a duration (see the module docs), at most [`MAX_DURATION`].
pub fn parse_duration(input: &str) -> Result<Duration, ParseDurationError> {
    let err = |too_long| ParseDurationError {
        input: input.to_owned(),
        too_long,
        too_fine: false,
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
        _ => return parse_friendly(input, s),
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

/// `1h30m`, `1.5s` and the rest of jiff's friendly format, `s` being the
/// trimmed `input` (which starts with a digit).
fn parse_friendly(input: &str, s: &str) -> Result<Duration, ParseDurationError> {
    let err = |too_long, too_fine| ParseDurationError {
        input: input.to_owned(),
        too_long,
        too_fine,
    };
    // A digit followed by a space is `5 s`: refused, as it always was.
    let spaced = s
        .as_bytes()
        .windows(2)
        .any(|w| w[0].is_ascii_digit() && w[1].is_ascii_whitespace());
    if spaced {
        return Err(err(false, false));
    }
    let d: jiff::SignedDuration = s.parse().map_err(|_| err(false, false))?;
    let d = Duration::try_from(d).map_err(|_| err(false, false))?;
    if d.subsec_nanos() % 1_000_000 != 0 {
        return Err(err(false, true));
    }
    if d > MAX_DURATION {
        return Err(err(true, false));
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
    fn parses_compound_and_fractional_durations() {
        for (typed, ms) in [
            ("1h30m", 90 * 60_000),
            ("1.5s", 1500),
            ("10h", 36_000_000),
            ("2m30s", 150_000),
            ("0.25s", 250),
            ("1h 30m", 90 * 60_000),
            ("8760h", 365 * 86_400_000),
        ] {
            assert_eq!(
                parse_duration(typed),
                Ok(Duration::from_millis(ms)),
                "{typed}"
            );
        }
    }

    #[test]
    fn refuses_sub_millisecond_and_over_a_year_in_any_form() {
        let e = parse_duration("1.5ms").unwrap_err();
        assert!(e.to_string().contains("millisecond precision"), "{e}");
        for bad in ["8761h", "366d", "1y", "2y"] {
            let e = parse_duration(bad).unwrap_err();
            assert!(
                e.to_string().contains("too long") || e.to_string().contains("invalid"),
                "{bad}: {e}"
            );
        }
        assert!(parse_duration("8761h")
            .unwrap_err()
            .to_string()
            .contains("too long"));
    }

    #[test]
    fn rejects_the_rest() {
        for bad in [
            "",
            "30",
            "s",
            "1.5",
            "-1s",
            "-1h",
            "5 s",
            "+5s",
            "ms",
            "1hx",
            "1h-30m",
            "99999999999999999999",
            "1e3s",
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
