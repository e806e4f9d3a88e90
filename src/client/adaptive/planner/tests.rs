//! Probe planner tests: a letter script of probe outcomes and a trace of
//! every probe and every change of the main interval.

use super::*;

fn config(min_ms: u64, max_ms: u64) -> AdaptiveConfig {
    AdaptiveConfig {
        reprobe_after: 4,
        ..AdaptiveConfig::new(min_ms, max_ms)
    }
}

/// Runs one probe per letter, each taking its candidate's length plus
/// 100 ms: `a` answered, `l` lost, `i` inconclusive; `w` waits until the
/// next probe is due. Records `"<t> probe <c> <outcome>"` and
/// `"<t> <reason> <from>-><to>"`.
#[track_caller]
fn check(p: &mut ProbePlanner, now: &mut Tick, script: &str, expected: &[&str]) {
    let mut trace = Vec::new();
    for letter in script.chars().filter(|c| !c.is_whitespace()) {
        if letter == 'w' {
            *now = p.next_probe_at().expect("a probe to wait for");
            continue;
        }
        let c = p
            .poll_probe(*now)
            .unwrap_or_else(|| panic!("no probe due at {now}: {trace:?}"));
        *now += c + 100;
        let outcome = match letter {
            'a' => ProbeOutcome::Answered,
            'l' => ProbeOutcome::Lost,
            'i' => ProbeOutcome::Inconclusive,
            other => panic!("bad letter {other:?}"),
        };
        trace.push(format!("{now} probe {c} {}", outcome.as_str()));
        if let Some(ch) = p.handle_result(*now, outcome) {
            trace.push(format!("{now} {} {}->{}", ch.reason, ch.from_ms, ch.to_ms));
        }
        assert!(
            p.interval() <= p.proven(),
            "the main interval is always proven"
        );
        assert!(p.failed().is_none_or(|f| f > p.proven()));
    }
    assert_eq!(trace, expected);
}

#[test]
fn doubles_bisects_settles_and_holds() {
    let mut p = ProbePlanner::new(config(1_000, 60_000), 0);
    let mut t = 0;
    check(
        &mut p,
        &mut t,
        "a a l a l a",
        &[
            "2100 probe 2000 answered",
            "2100 probe 1000->1800",
            "6200 probe 4000 answered",
            "6200 probe 1800->3600",
            // 8 s lost: only the probe; the main interval stays.
            "14300 probe 8000 lost",
            "20400 probe 6000 answered",
            "20400 probe 3600->5400",
            "27500 probe 7000 lost",
            // 6.5 s proven, 7 s failed: within 10%, settle.
            "34100 probe 6500 answered",
            "34100 settle 5400->5850",
        ],
    );
    assert!(p.is_settled());
    // Nothing before the hold: 4 main intervals.
    assert_eq!(p.poll_probe(t), None);
    assert_eq!(p.next_probe_at(), Some(34_100 + 4 * 5_850));
    // The re-probe of the bound is lost: the hold doubles, and again.
    check(&mut p, &mut t, "w l", &["64600 probe 7000 lost"]);
    assert_eq!(p.next_probe_at(), Some(64_600 + 8 * 5_850));
    check(&mut p, &mut t, "w l", &["118500 probe 7000 lost"]);
    assert_eq!(p.next_probe_at(), Some(118_500 + 16 * 5_850));
    // It works now (a new NAT): the stale bound goes, doubling resumes.
    check(
        &mut p,
        &mut t,
        "w a a",
        &[
            "219200 probe 7000 answered",
            "219200 reprobe 5850->6300",
            "233300 probe 14000 answered",
            "233300 probe 6300->12600",
        ],
    );
    assert_eq!(p.failed(), None);
}

#[test]
fn inconclusive_probes_retry_the_same_candidate_later() {
    let mut p = ProbePlanner::new(config(1_000, 60_000), 0);
    let mut t = 0;
    check(&mut p, &mut t, "i", &["2100 probe 2000 inconclusive"]);
    assert_eq!(p.poll_probe(t), None);
    assert_eq!(p.next_probe_at(), Some(4_100));
    check(
        &mut p,
        &mut t,
        "w a",
        &["6200 probe 2000 answered", "6200 probe 1000->1800"],
    );
    // A result with no probe running is ignored.
    assert_eq!(p.handle_result(t, ProbeOutcome::Answered), None);
    assert_eq!(p.proven(), 2_000);
}

#[test]
fn the_server_timeout_caps_candidates_and_the_proven() {
    let mut p = ProbePlanner::new(config(1_000, 60_000), 0);
    let mut t = 0;
    check(
        &mut p,
        &mut t,
        "a a",
        &[
            "2100 probe 2000 answered",
            "2100 probe 1000->1800",
            "6200 probe 4000 answered",
            "6200 probe 1800->3600",
        ],
    );
    // The server times out at 3 s: 2.7 s at most.
    let c = p.handle_server_timeout(Some(3_000)).expect("capped");
    assert_eq!(
        (c.from_ms, c.to_ms, c.reason),
        (3_600, 2_430, ChangeReason::ServerTimeout)
    );
    assert_eq!((p.ceiling(), p.proven()), (2_700, 2_700));
    // At the ceiling with nothing failed: settled, no probe ever.
    assert!(p.is_settled());
    assert_eq!(p.next_probe_at(), None);
    // Huge timeouts and none at all.
    p.handle_server_timeout(Some(u64::MAX));
    assert_eq!(p.ceiling(), 60_000);
    p.handle_server_timeout(None);
    assert_eq!(p.ceiling(), 60_000);
    // A timeout below min: never below min.
    p.handle_server_timeout(Some(10));
    assert_eq!((p.ceiling(), p.interval()), (1_000, 1_000));
}

#[test]
fn a_main_loss_and_network_changes_restart_the_search() {
    let mut p = ProbePlanner::new(config(1_000, 60_000), 0);
    let mut t = 0;
    check(
        &mut p,
        &mut t,
        "a a l a",
        &[
            "2100 probe 2000 answered",
            "2100 probe 1000->1800",
            "6200 probe 4000 answered",
            "6200 probe 1800->3600",
            "14300 probe 8000 lost",
            "20400 probe 6000 answered",
            "20400 probe 3600->5400",
        ],
    );
    let learned = p.learned();
    assert_eq!(
        learned,
        Learned {
            proven_ms: 6_000,
            failed_ms: Some(8_000)
        }
    );
    // The main connection lost a beat at 5.4 s: the path got worse.
    let c = p.handle_main_lost(t).expect("change");
    assert_eq!(
        (c.from_ms, c.to_ms, c.reason),
        (5_400, 1_000, ChangeReason::Loss)
    );
    assert_eq!((p.proven(), p.failed()), (1_000, Some(5_400)));
    assert_eq!(p.poll_probe(t), Some(3_200));
    // Back on a known network: what was learned comes back, a probe that
    // was running is forgotten.
    let c = p.restart(t, Some(learned)).expect("change");
    assert_eq!((c.to_ms, c.reason), (5_400, ChangeReason::Network));
    assert_eq!(p.running(), None);
    assert_eq!(p.poll_probe(t), Some(7_000));
    // An unknown network: from scratch.
    let c = p.restart(t, None).expect("change");
    assert_eq!((c.to_ms, p.failed()), (1_000, None));
    // Learned values out of range are clamped.
    p.restart(
        t,
        Some(Learned {
            proven_ms: u64::MAX,
            failed_ms: Some(5),
        }),
    );
    assert_eq!((p.proven(), p.failed()), (60_000, None));
}

#[test]
fn random_outcomes_keep_the_bounds() {
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..200 {
        let mut p = ProbePlanner::new(config(500, 100_000), 0);
        let mut t = 0u64;
        for _ in 0..200 {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            if let Some(at) = p.next_probe_at() {
                t = t.max(at);
            }
            if p.poll_probe(t).is_none() {
                if rng % 7 == 0 {
                    p.handle_main_lost(t);
                }
                continue;
            }
            let outcome = match rng % 3 {
                0 => ProbeOutcome::Answered,
                1 => ProbeOutcome::Lost,
                _ => ProbeOutcome::Inconclusive,
            };
            t += 1_000;
            p.handle_result(t, outcome);
            assert!((500..=100_000).contains(&p.interval()));
            assert!(p.interval() <= p.proven());
            assert!(p.proven() <= p.ceiling());
            assert!(p.failed().is_none_or(|f| f > p.proven()));
        }
    }
}
