//! How a load report prints: the live progress line, the summary table,
//! the JSON object of `vigil load --json` and the percentile distribution
//! of `vigil load --hgrm`.
//!
//! Pure: text out, no I/O. The JSON is built with `serde_json`, so numbers
//! print exactly as they are (`--connect-rate 0.25` is `0.25`) and strings
//! are escaped by the JSON library.

use std::fmt::Write as _;

use serde_json::{json, Value};

use super::config::LoadConfig;
use super::report::{Latency, Progress, Report};
use crate::time::millis_ceil;

/// The live line:
/// `12.0s hold   online 15000/15000  hb/s 15023  p99 rtt 180µs sched 950µs  errors 0  reconnects 0`.
/// `sent_per_s` is the caller's (it knows the previous snapshot). The p99s
/// are of the replies since the previous snapshot.
pub fn format_progress(p: &Progress, target: usize, sent_per_s: f64) -> String {
    let us = |v: Option<u64>| v.map_or("-".to_owned(), format_us);
    format!(
        "{:>6.1}s {:<5}  online {}/{}  hb/s {:.0}  p99 rtt {} sched {}  errors {}  reconnects {}",
        p.elapsed_ms as f64 / 1000.0,
        p.phase.as_str(),
        p.online,
        target,
        sent_per_s,
        us(p.rtt_p99_us()),
        us(p.scheduled_p99_us()),
        p.errors,
        p.reconnects,
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
        config.interval_ms()
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
    let _ = write!(s, "{:<24}{:>10}{:>10}", "latency (µs)", "count", "mean");
    for (name, _) in QUANTILES {
        let _ = write!(s, "{name:>10}");
    }
    let _ = writeln!(s, "{:>10}", "max");
    for (name, l) in [
        ("  from scheduled send", &r.scheduled),
        ("  round trip", &r.rtt),
    ] {
        let show = |v: Option<u64>| v.map_or("-".to_owned(), |v| v.to_string());
        let mean = l.mean().map_or("-".to_owned(), |m| format!("{m:.1}"));
        let _ = write!(s, "{name:<24}{:>10}{mean:>10}", l.count());
        for (_, q) in QUANTILES {
            let _ = write!(s, "{:>10}", show(l.quantile(q)));
        }
        let _ = writeln!(s, "{:>10}", show(l.max()));
    }
    s
}

/// The quantiles the table and the JSON show, with their column names.
pub const QUANTILES: [(&str, f64); 5] = [
    ("p50", 0.5),
    ("p90", 0.9),
    ("p99", 0.99),
    ("p99.9", 0.999),
    ("p99.99", 0.9999),
];

/// The heartbeat rate the configuration offers: one per connection per
/// interval.
pub fn offered_rate(config: &LoadConfig) -> f64 {
    config.conns as f64 * 1000.0 / config.interval_ms() as f64
}

/// The report as one JSON object (one line).
///
/// The fields, in order: `server`, `conns`, `procs`, `connect_rate`,
/// `interval_ms`, `duration_ms`, `reply_timeout_ms` (the config, in whole
/// ms as the run used them), `ramp_ms`, `hold_ms`, `connections`,
/// `connect_errors` and `closes` (`total`, `by_reason`), `heartbeats`,
/// `errors`, `latency_us` (`scheduled` and `rtt`: `count`, `p50`, `p99`,
/// `p99_9`, `max`, then `p90`, `p99_99` and `mean`; `null` when empty). A
/// number that is not finite is `null`.
pub fn format_json(config: &LoadConfig, r: &Report) -> String {
    let by_reason = |total: u64, map: &std::collections::BTreeMap<String, u64>| json!({ "total": total, "by_reason": map });
    json!({
        "server": config.server.to_string(),
        "conns": config.conns,
        "procs": r.procs,
        "connect_rate": config.connect_rate,
        "interval_ms": config.interval_ms(),
        "duration_ms": millis_ceil(config.duration),
        "reply_timeout_ms": millis_ceil(config.reply_timeout),
        "ramp_ms": r.ramp_ms,
        "hold_ms": r.hold_ms,
        "connections": {
            "connected": r.connects,
            "welcomed": r.welcomes,
            "online_at_end": r.online_at_end,
            "reconnects": r.reconnects,
        },
        "connect_errors": by_reason(r.connect_errors_total(), &r.connect_errors),
        "closes": by_reason(r.closes_total(), &r.closes),
        "heartbeats": {
            "sent": r.sent,
            "received": r.received,
            "missing": r.missing,
            "hold_sent": r.hold_sent,
            "hold_received": r.hold_received,
            "offered_per_s": offered_rate(config),
            "replies_per_s": r.hold_reply_rate(),
        },
        "errors": r.errors(),
        "latency_us": {
            "scheduled": json_latency(&r.scheduled),
            "rtt": json_latency(&r.rtt),
        },
    })
    .to_string()
}

fn json_latency(l: &Latency) -> Value {
    json!({
        "count": l.count(),
        "p50": l.quantile(0.5),
        "p99": l.quantile(0.99),
        "p99_9": l.quantile(0.999),
        "max": l.max(),
        "p90": l.quantile(0.9),
        "p99_99": l.quantile(0.9999),
        "mean": l.mean(),
    })
}

/// The full percentile distribution of `l` (µs) in HdrHistogram's text
/// format, as wrk2's `--latency` prints it and HdrHistogram's plotter
/// reads it: a header, one row per step (`Value Percentile TotalCount
/// 1/(1-Percentile)`, values in ms with three decimals, five steps per
/// halving of the distance to 100 %), then a summary in `#[...]` lines.
/// The 100 % row has no last column (it would be infinite). An empty
/// histogram gives the header and the summary only.
pub fn format_hgrm(l: &Latency) -> String {
    let ms = |us: f64| us / 1000.0;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:>12} {:>14} {:>10} {:>14}\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    );
    let h = l.histogram();
    let mut total = 0u64;
    if !h.is_empty() {
        for v in h.iter_quantiles(5) {
            total += v.count_since_last_iteration();
            let q = v.quantile_iterated_to();
            let value = ms(h.highest_equivalent(v.value_iterated_to()) as f64);
            if q < 1.0 {
                let _ = writeln!(
                    s,
                    "{value:>12.3} {q:>14.12} {total:>10} {:>14.2}",
                    1.0 / (1.0 - q)
                );
            } else {
                let _ = writeln!(s, "{value:>12.3} {q:>14.12} {total:>10}");
            }
        }
    }
    let (mean, stdev, max) = if h.is_empty() {
        (0.0, 0.0, 0.0)
    } else {
        (ms(h.mean()), ms(h.stdev()), ms(h.max() as f64))
    };
    let _ = writeln!(
        s,
        "#[Mean    = {mean:>12.3}, StdDeviation   = {stdev:>12.3}]"
    );
    let _ = writeln!(
        s,
        "#[Max     = {max:>12.3}, Total count    = {:>12}]",
        h.len()
    );
    let _ = writeln!(
        s,
        "#[Buckets = {:>12}, SubBuckets     = {:>12}]",
        h.buckets(),
        // The sub-bucket count HdrHistogram derives from the precision.
        (2 * 10u64.pow(u32::from(super::report::SIGNIFICANT_DIGITS))).next_power_of_two()
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::report::tests::sample;
    use crate::load::report::Phase;

    #[test]
    fn the_progress_line() {
        let mut p = Progress::new(1500, Phase::Ramp);
        (p.online, p.sent, p.received, p.errors, p.reconnects) = (15, 101, 100, 2, 3);
        p.rtt.record(120);
        p.scheduled.record(7);
        assert_eq!(
            format_progress(&p, 20, 10.0),
            "   1.5s ramp   online 15/20  hb/s 10  p99 rtt 120µs sched 7µs  errors 2  reconnects 3"
        );
        p.rtt.clear();
        p.phase = Phase::Drain;
        assert_eq!(
            format_progress(&p, 20, 0.4),
            "   1.5s drain  online 15/20  hb/s 0  p99 rtt - sched 7µs  errors 2  reconnects 3"
        );
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
            "latency (µs)                 count      mean       p50       p90       p99     p99.9    p99.99       max",
            "  from scheduled send            5    1452.4       470      5403      5403      5403      5403      5403",
            "  round trip                     5    1052.4        70      5003      5003      5003      5003      5003",
        ] {
            assert!(t.contains(needle), "{needle:?} not in\n{t}");
        }
        let empty = format_table(&config(), &Report::new());
        assert!(
            empty.contains(
                "  round trip                     0         -         -         -         -         -         -         -"
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
        assert_eq!(rtt["p90"].as_u64(), r.rtt.quantile(0.9));
        assert_eq!(rtt["p99_99"].as_u64(), r.rtt.quantile(0.9999));
        assert_eq!(rtt["mean"].as_f64(), r.rtt.mean());
        let e: serde_json::Value =
            serde_json::from_str(&format_json(&config(), &Report::new())).unwrap();
        assert!(e["latency_us"]["scheduled"]["p99"].is_null());
        assert!(e["latency_us"]["scheduled"]["mean"].is_null());
    }

    /// Every key of `v`, depth first, in the order printed (`a.b`).
    fn keys(v: &Value, prefix: &str, out: &mut Vec<String>) {
        if let Value::Object(map) = v {
            for (k, v) in map {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                out.push(path.clone());
                if !path.ends_with("by_reason") {
                    keys(v, &path, out);
                }
            }
        }
    }

    #[test]
    fn json_keeps_every_field_in_order() {
        let v: Value = serde_json::from_str(&format_json(&config(), &sample(1, 10))).unwrap();
        let mut got = Vec::new();
        keys(&v, "", &mut got);
        let latency = |name: &str| {
            [
                "", ".count", ".p50", ".p99", ".p99_9", ".max", ".p90", ".p99_99", ".mean",
            ]
            .map(|k| format!("latency_us.{name}{k}"))
        };
        let mut want: Vec<String> = [
            "server",
            "conns",
            "procs",
            "connect_rate",
            "interval_ms",
            "duration_ms",
            "reply_timeout_ms",
            "ramp_ms",
            "hold_ms",
            "connections",
            "connections.connected",
            "connections.welcomed",
            "connections.online_at_end",
            "connections.reconnects",
            "connect_errors",
            "connect_errors.total",
            "connect_errors.by_reason",
            "closes",
            "closes.total",
            "closes.by_reason",
            "heartbeats",
            "heartbeats.sent",
            "heartbeats.received",
            "heartbeats.missing",
            "heartbeats.hold_sent",
            "heartbeats.hold_received",
            "heartbeats.offered_per_s",
            "heartbeats.replies_per_s",
            "errors",
            "latency_us",
        ]
        .map(str::to_owned)
        .to_vec();
        want.extend(latency("scheduled"));
        want.extend(latency("rtt"));
        assert_eq!(got, want);
        assert_eq!(v["server"], "127.0.0.1:7700");
        assert_eq!(v["procs"], 1);
        assert_eq!(
            (v["ramp_ms"].as_u64(), v["hold_ms"].as_u64()),
            (Some(100), Some(3001))
        );
        assert_eq!(v["connections"]["reconnects"], 1);
        assert_eq!(v["duration_ms"], 30_000);
        assert_eq!(v["reply_timeout_ms"], 10_000);
    }

    #[test]
    fn json_numbers_are_exact() {
        // Printed with one decimal, 0.25 came out as 0.2.
        let mut c = config();
        c.connect_rate = 0.25;
        c.conns = 3;
        c.interval = std::time::Duration::from_millis(700);
        let mut r = Report::new();
        r.hold_received = 1;
        r.hold_ms = 3;
        let v: Value = serde_json::from_str(&format_json(&c, &r)).unwrap();
        assert_eq!(v["connect_rate"].as_f64(), Some(0.25));
        assert_eq!(
            v["heartbeats"]["offered_per_s"].as_f64(),
            Some(3000.0 / 700.0)
        );
        assert_eq!(
            v["heartbeats"]["replies_per_s"].as_f64(),
            Some(1000.0 / 3.0)
        );
    }

    /// The rows of an hgrm text: (value ms, percentile, total count, 1/(1-p)).
    fn hgrm_rows(text: &str) -> Vec<(f64, f64, u64, Option<f64>)> {
        text.lines()
            .skip(2)
            .take_while(|l| !l.starts_with('#'))
            .map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                let inv = f.get(3).map(|v| v.parse().unwrap());
                (
                    f[0].parse().unwrap(),
                    f[1].parse().unwrap(),
                    f[2].parse().unwrap(),
                    inv,
                )
            })
            .collect()
    }

    #[test]
    fn hgrm_is_the_full_distribution() {
        let mut l = Latency::new();
        // 1 ms to 1 s, 1000 values.
        for v in 1..=1000u64 {
            l.record(v * 1000);
        }
        let text = format_hgrm(&l);
        let mut lines = text.lines();
        let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
        assert_eq!(
            header,
            ["Value", "Percentile", "TotalCount", "1/(1-Percentile)"]
        );
        assert_eq!(lines.next(), Some(""));
        let rows = hgrm_rows(&text);
        assert!(rows.len() > 50, "{text}");
        // Values, percentiles and counts only grow; the count ends at all.
        for w in rows.windows(2) {
            assert!(
                w[0].0 <= w[1].0 && w[0].1 <= w[1].1 && w[0].2 <= w[1].2,
                "{w:?}"
            );
        }
        let last = rows[rows.len() - 1];
        assert_eq!((last.1, last.2, last.3), (1.0, 1000, None));
        assert!((last.0 - 1000.0).abs() / 1000.0 < 0.001, "{last:?}");
        for &(value, p, count, inv) in &rows[..rows.len() - 1] {
            let inv = inv.unwrap();
            assert!((inv - 1.0 / (1.0 - p)).abs() / inv < 0.01, "{p} {inv}");
            // The value at a percentile is the count-th smallest value.
            assert!(
                (value - count as f64).abs() <= 1.0 + count as f64 / 1000.0,
                "{value} {count}"
            );
        }
        let median = rows.iter().find(|r| r.1 >= 0.5).unwrap();
        assert!((median.0 - 500.0).abs() < 2.0, "{median:?}");
        assert!(
            text.contains("#[Mean    =      500.505, StdDeviation   ="),
            "{text}"
        );
        assert!(text.contains("Total count    =         1000]"), "{text}");
        // Empty: header and summary only.
        let empty = format_hgrm(&Latency::new());
        assert!(hgrm_rows(&empty).is_empty(), "{empty}");
        assert!(empty.contains("Total count    =            0]"), "{empty}");
    }
}
