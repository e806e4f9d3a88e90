//! Adaptive interval tests: scripted beats with a textual trace of every
//! change, a simulated NAT on a fake clock, and random beat sequences
//! checked against the bounds.

use super::*;

/// Small numbers, short holds: `min..max` with 2 beats per step, 4 beats
/// of hold before a re-probe, 10% margin.
fn config(min_ms: u64, max_ms: u64) -> AdaptiveConfig {
    AdaptiveConfig {
        step_after: 2,
        reprobe_after: 4,
        ..AdaptiveConfig::new(min_ms, max_ms)
    }
}

/// Feeds one beat per letter and records every change as
/// `"<beat> <reason> <from>-><to>"`. Letters: `a` answered and `l` lost
/// after a whole interval of quiet; `b` answered and `x` lost on a busy
/// line (no quiet at all); spaces are ignored.
fn feed(a: &mut AdaptiveInterval, script: &str, trace: &mut Vec<String>) {
    for (i, c) in script.chars().filter(|c| !c.is_whitespace()).enumerate() {
        let quiet = a.current();
        let change = match c {
            'a' => a.handle_answered(quiet),
            'l' => a.handle_lost(quiet),
            'b' => a.handle_answered(0),
            'x' => a.handle_lost(0),
            other => panic!("bad script letter {other:?}"),
        };
        if let Some(ch) = change {
            trace.push(format!("{i} {} {}->{}", ch.reason, ch.from_ms, ch.to_ms));
        }
        assert!(a.current() >= a.config().min_ms && a.current() <= a.config().max_ms);
    }
}

#[track_caller]
fn check(config: AdaptiveConfig, script: &str, expected: &[&str]) -> AdaptiveInterval {
    let mut a = AdaptiveInterval::new(config);
    let mut trace = Vec::new();
    feed(&mut a, script, &mut trace);
    assert_eq!(trace, expected);
    a
}

#[test]
fn doubles_bisects_settles_and_reprobes() {
    let a = check(
        config(1_000, 60_000),
        "aa aa aa l  aa aa l  aa aa  aaaa l  aaaaaaaa l",
        &[
            "1 probe 1000->2000",
            "3 probe 2000->4000",
            "5 probe 4000->8000",
            // 8 s lost: back to 4 s (the longest that worked) less 10%.
            "6 loss 8000->3600",
            // Two beats prove the fallback; then halfway from 4 s to 8 s.
            "8 reprobe 3600->6000",
            "10 probe 6000->7000",
            "11 loss 7000->5400",
            "13 reprobe 5400->6500",
            // 6.5 s works, 7 s failed: within 10%, settle 10% below 6.5 s.
            "15 settle 6500->5850",
            // Four beats of hold, then the failure bound is tried again.
            "19 reprobe 5850->7000",
            "20 loss 7000->5850",
            // That re-test failed: the hold doubles to eight beats.
            "28 reprobe 5850->7000",
            "29 loss 7000->5850",
        ],
    );
    assert_eq!((a.worked(), a.failed()), (Some(6_500), Some(7_000)));
    assert!(a.is_settled());
    // Two failed re-tests: the next hold is 16 beats.
    let mut a = a;
    let mut trace = Vec::new();
    feed(&mut a, &"a".repeat(15), &mut trace);
    assert_eq!(trace, Vec::<String>::new());
    feed(&mut a, "a", &mut trace);
    assert_eq!(trace, ["0 reprobe 5850->7000"]);
}

#[test]
fn a_retest_that_works_drops_the_stale_bound() {
    // The phone moved to a network with a longer NAT timeout.
    check(
        config(1_000, 60_000),
        "aa aa l aa aa aa aa  aaaa aa aa",
        &[
            "1 probe 1000->2000",
            "3 probe 2000->4000",
            "4 loss 4000->1800",
            "6 reprobe 1800->3000",
            // 3 s works, 4 s failed: not within 10%, go halfway.
            "8 probe 3000->3500",
            "10 probe 3500->3750",
            // 3.75 s works and 4 s failed: settle at 3.75 s less 10%.
            "12 settle 3750->3375",
            "16 reprobe 3375->4000",
            // 4 s works now: the bound is gone and doubling resumes.
            "18 probe 4000->8000",
            "20 probe 8000->16000",
        ],
    );
}

#[test]
fn never_below_min_nor_above_max() {
    // Everything answered: climb to the maximum and stay there.
    let a = check(
        config(1_000, 5_000),
        &"a".repeat(40),
        &[
            "1 probe 1000->2000",
            "3 probe 2000->4000",
            "5 probe 4000->5000",
        ],
    );
    assert_eq!(a.current(), 5_000);
    assert!(a.is_settled());
    // Everything lost: the minimum is the floor.
    check(config(1_000, 5_000), "l l l l l l l", &[]);
    // min == max: a fixed interval with extra steps.
    check(config(2_000, 2_000), "aaaa l aaaa l l l aaaa", &[]);
}

#[test]
fn busy_beats_prove_nothing() {
    // A beat on a busy line neither steps up nor counts as a loss.
    check(config(1_000, 60_000), "bbbbbb xxxxxx", &[]);
    // Nor does it interrupt a run of answered beats.
    check(config(1_000, 60_000), "a b a", &["2 probe 1000->2000"]);
    // The threshold: quiet for 80% of the interval counts, less does not.
    let mut a = AdaptiveInterval::new(config(1_000, 60_000));
    assert_eq!(a.handle_answered(799), None);
    assert_eq!(a.handle_answered(799), None);
    assert_eq!(a.current(), 1_000);
    assert_eq!(a.handle_answered(800), None);
    assert!(a.handle_answered(800).is_some());
}

#[test]
fn losses_in_a_row_start_over() {
    check(
        config(1_000, 60_000),
        "aa aa aa aa l l l",
        &[
            "1 probe 1000->2000",
            "3 probe 2000->4000",
            "5 probe 4000->8000",
            "7 probe 8000->16000",
            "8 loss 16000->7200",
            // The fallback fails too: the path got worse; 8 s is stale.
            "9 loss 7200->6480",
            "10 restart 6480->1000",
        ],
    );
    // An answered beat between losses breaks the run.
    check(
        config(1_000, 60_000),
        "aa aa l a l a l",
        &[
            "1 probe 1000->2000",
            "3 probe 2000->4000",
            "4 loss 4000->1800",
            "6 loss 1800->1620",
            "8 loss 1620->1458",
        ],
    );
}

#[test]
fn the_held_interval_failing_lowers_it() {
    // Settled at 3375 (3.75 s worked, 4 s failed), then the path gets worse.
    let a = check(
        config(1_000, 60_000),
        "aa aa l aa aa aa aa  a l",
        &[
            "1 probe 1000->2000",
            "3 probe 2000->4000",
            "4 loss 4000->1800",
            "6 reprobe 1800->3000",
            "8 probe 3000->3500",
            "10 probe 3500->3750",
            "12 settle 3750->3375",
            "14 loss 3375->3038",
        ],
    );
    // What worked before is forgotten; the lost interval is the new bound.
    assert_eq!((a.worked(), a.failed()), (None, Some(3_375)));
}

#[test]
fn the_server_timeout_caps_the_search() {
    let mut a = AdaptiveInterval::new(config(1_000, 60_000));
    assert_eq!(a.handle_server_timeout(Some(10_000)), None);
    assert_eq!(a.ceiling(), 9_000);
    let mut trace = Vec::new();
    feed(&mut a, "aa aa aa aa aaaa", &mut trace);
    assert_eq!(
        trace,
        [
            "1 probe 1000->2000",
            "3 probe 2000->4000",
            "5 probe 4000->8000",
            "7 probe 8000->9000"
        ]
    );
    // Another server with a shorter timeout: come down at once.
    let change = a.handle_server_timeout(Some(5_000)).unwrap();
    assert_eq!(
        (change.from_ms, change.to_ms, change.reason),
        (9_000, 4_500, ChangeReason::ServerTimeout)
    );
    // A timeout shorter than the minimum: the minimum wins.
    a.handle_server_timeout(Some(500));
    assert_eq!((a.ceiling(), a.current()), (1_000, 1_000));
    // No timeout announced: only the maximum.
    assert_eq!(a.handle_server_timeout(None), None);
    assert_eq!(a.ceiling(), 60_000);
    assert_eq!(a.handle_server_timeout(Some(u64::MAX)), None, "no overflow");
}

#[test]
fn ranges_parse_or_say_why() {
    let c = AdaptiveConfig::parse("5s..5m").unwrap();
    assert_eq!((c.min_ms, c.max_ms), (5_000, 300_000));
    assert_eq!(c.step_after, DEFAULT_STEP_AFTER);
    assert_eq!(AdaptiveConfig::parse("250ms..250ms").unwrap().max_ms, 250);
    for (bad, why) in [
        ("5s", "MIN..MAX"),
        ("5s-5m", "MIN..MAX"),
        ("0ms..5s", "above 0"),
        ("5m..5s", "below the minimum"),
        ("5..5m", "invalid duration"),
        ("5s..", "invalid duration"),
    ] {
        let e = AdaptiveConfig::parse(bad).expect_err(bad);
        assert!(e.contains(why), "{bad}: {e}");
    }
    let mut c = AdaptiveConfig::new(1, 2);
    c.margin_pct = 51;
    assert!(c.check().is_err());
    c.margin_pct = 10;
    c.step_after = 0;
    assert!(c.check().is_err());
}

// ---- a simulated NAT ------------------------------------------------------

/// The adaptive interval against a NAT that forgets a flow idle for
/// `nat_ms` or more, on a fake clock: a beat at interval `i` is quiet for
/// `i - rtt` and lost when that reaches the NAT's timeout; a loss costs the
/// reply timeout and a reconnect.
struct NatSim {
    a: AdaptiveInterval,
    nat_ms: u64,
    now: u64,
    /// (time, interval, lost) per beat.
    beats: Vec<(u64, u64, bool)>,
}

const RTT: u64 = 40;
const REPLY_TIMEOUT: u64 = 1_000;
const RECONNECT: u64 = 100;

impl NatSim {
    fn new(config: AdaptiveConfig, nat_ms: u64) -> NatSim {
        NatSim {
            a: AdaptiveInterval::new(config),
            nat_ms,
            now: 0,
            beats: Vec::new(),
        }
    }

    fn beat(&mut self) {
        let i = self.a.current();
        let quiet = i.saturating_sub(RTT);
        self.now += i;
        let lost = quiet >= self.nat_ms;
        if lost {
            self.now += REPLY_TIMEOUT + RECONNECT;
            self.a.handle_lost(quiet);
        } else {
            self.now += RTT;
            self.a.handle_answered(quiet);
        }
        self.beats.push((self.now, i, lost));
    }

    fn run_until(&mut self, t: u64) {
        while self.now < t {
            self.beat();
        }
    }
}

#[test]
fn settles_below_a_nat_timeout_and_stays_there() {
    // The netns test's numbers: a 3 s NAT, 400 ms..20 s, the defaults.
    let mut sim = NatSim::new(AdaptiveConfig::new(400, 20_000), 3_000);
    while !sim.a.is_settled() {
        sim.beat();
        assert!(sim.now < 120_000, "not settled: {:?}", sim.beats);
    }
    let settled_at = sim.now;
    eprintln!(
        "nat 3s: settled at {} ms after {settled_at} ms, {} beats",
        sim.a.current(),
        sim.beats.len()
    );
    assert!(settled_at <= 60_000, "settled after {settled_at} ms");
    sim.run_until(settled_at + 60_000);
    let held = sim.a.current();
    assert!((2_400..3_000).contains(&held), "{held}");
    // Lost beats while searching: bounded.
    let losses = sim.beats.iter().filter(|b| b.2).count();
    assert!(losses <= 4, "{losses} losses: {:?}", sim.beats);
    // Then 30 answered beats (the default hold) before the next probe.
    let after: Vec<_> = sim.beats.iter().filter(|b| b.0 > settled_at).collect();
    assert!(after.iter().all(|b| !b.2 && b.1 == held), "{after:?}");
}

#[test]
fn finds_any_nat_timeout_within_bounds() {
    // Mobile numbers: 5 s..30 m against NAT timeouts from 10 s to 29 min.
    for nat_s in [10, 31, 60, 119, 300, 301, 599, 1_000, 1_740] {
        let nat_ms = nat_s * 1_000;
        let mut sim = NatSim::new(AdaptiveConfig::new(5_000, 1_800_000), nat_ms);
        // Search, then twice the settled hold.
        let mut t = 0;
        while !sim.a.is_settled() {
            sim.beat();
            t += 1;
            assert!(t < 200, "nat {nat_s}s: no settling: {:?}", sim.beats);
        }
        let search = sim.now;
        let losses = sim.beats.iter().filter(|b| b.2).count();
        let held = sim.a.current();
        eprintln!(
            "nat {nat_s}s: settled at {held} ms after {} s, {} beats, {losses} lost",
            search / 1_000,
            sim.beats.len()
        );
        // Within the margin arithmetic: above 80% of the NAT timeout, below it.
        assert!(
            held * 100 >= nat_ms * 80 && held < nat_ms,
            "nat {nat_s}s: held {held}"
        );
        assert!(losses <= 6, "nat {nat_s}s: {losses} losses");
        // The search costs a few dozen beats, not hundreds.
        assert!(
            sim.beats.len() <= 60,
            "nat {nat_s}s: {} beats",
            sim.beats.len()
        );
        let before = sim.beats.len();
        sim.run_until(search + u64::from(DEFAULT_REPROBE_AFTER) * held);
        assert!(
            sim.beats[before..].iter().all(|b| !b.2),
            "nat {nat_s}s: a loss during the hold"
        );
    }
}

#[test]
fn keeps_reprobing_ever_less_often() {
    let mut sim = NatSim::new(config(1_000, 60_000), 5_000);
    sim.run_until(3_600_000);
    let losses: Vec<u64> = sim.beats.iter().filter(|b| b.2).map(|b| b.0).collect();
    // The gaps between re-probe losses grow (holds double up to 32×).
    let gaps: Vec<u64> = losses.windows(2).map(|w| w[1] - w[0]).collect();
    let late = &gaps[gaps.len().saturating_sub(3)..];
    assert!(late.iter().all(|g| *g >= 4 * 32 * 4_000), "{gaps:?}");
    assert!(losses.len() < 20, "{losses:?}");
}

#[test]
fn follows_a_nat_timeout_that_changes() {
    let mut sim = NatSim::new(config(1_000, 120_000), 20_000);
    sim.run_until(600_000);
    let held = sim.a.current();
    assert!((16_000..20_000).contains(&held), "{held}");
    // A shorter NAT: the held interval fails and the search goes down.
    sim.nat_ms = 6_000;
    sim.run_until(1_200_000);
    let held = sim.a.current();
    assert!((4_800..6_000).contains(&held), "{held}");
    // A longer one: found at the next re-probe.
    sim.nat_ms = 60_000;
    sim.run_until(6_000_000);
    let held = sim.a.current();
    assert!((48_000..60_000).contains(&held), "{held}");
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]
    #[test]
    fn random_outcomes_stay_in_bounds(
        min in 1u64..10_000,
        span in 0u64..1_000_000,
        ops in proptest::collection::vec((0u8..4, 0u64..=120, 0u64..2_000_000), 0..300),
    ) {
        let max = min + span;
        let mut a = AdaptiveInterval::new(AdaptiveConfig::new(min, max));
        for (op, quiet_pct, timeout) in ops {
            let quiet = a.current() * quiet_pct / 100;
            let change = match op {
                0 | 1 => a.handle_answered(quiet),
                2 => a.handle_lost(quiet),
                _ => a.handle_server_timeout((timeout > 0).then_some(timeout)),
            };
            proptest::prop_assert!(a.current() >= min && a.current() <= max);
            proptest::prop_assert!(a.current() <= a.ceiling());
            if let (Some(w), Some(f)) = (a.worked(), a.failed()) {
                proptest::prop_assert!(w < f, "worked {} failed {}", w, f);
            }
            if let Some(c) = change {
                proptest::prop_assert!(c.from_ms != c.to_ms);
                proptest::prop_assert_eq!(c.to_ms, a.current());
            }
        }
    }
}
