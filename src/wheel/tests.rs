//! Wheel tests: the index math boundary by boundary, scenario scripts, a
//! property test against a `BTreeMap` model, and a check that steady state
//! does not allocate.

use std::collections::{BTreeMap, HashMap};

use proptest::prelude::*;

use super::*;

// ---- Index math, boundary by boundary ----

#[test]
fn test_due_tick() {
    // (deadline, resolution, due tick)
    let cases = [
        (0, 1, 0),
        (1, 1, 1),
        (0, 100, 0),
        (1, 100, 1),
        (99, 100, 1),
        (100, 100, 1), // on a boundary: due at that boundary
        (101, 100, 2),
        (199, 100, 2),
        (200, 100, 2),
        (201, 100, 3),
        (u64::MAX, 1, u64::MAX),
        (u64::MAX, 2, u64::MAX / 2 + 1),
        (u64::MAX - 1, 2, u64::MAX / 2),
        (u64::MAX, u64::MAX, 1),
        (u64::MAX - 1, u64::MAX, 1),
        (1, u64::MAX, 1),
    ];
    for (deadline, res, tick) in cases {
        assert_eq!(due_tick(deadline, res), tick, "due_tick({deadline}, {res})");
        // Never early, less than a tick late.
        let boundary = u128::from(tick) * u128::from(res);
        assert!(boundary >= u128::from(deadline));
        assert!(boundary < u128::from(deadline) + u128::from(res));
    }
}

#[test]
fn test_elapsed_tick() {
    let cases = [
        (0, 1, 0),
        (5, 1, 5),
        (0, 100, 0),
        (99, 100, 0),
        (100, 100, 1),
        (101, 100, 1),
        (199, 100, 1),
        (200, 100, 2),
        (u64::MAX, 1, u64::MAX),
        (u64::MAX, u64::MAX, 1),
        (u64::MAX - 1, u64::MAX, 0),
    ];
    for (now, res, tick) in cases {
        assert_eq!(elapsed_tick(now, res), tick, "elapsed_tick({now}, {res})");
    }
    // A deadline is due exactly when `now` reaches its boundary.
    for res in [1, 3, 100] {
        for deadline in 0..400 {
            let fire = (0..).find(|&now| due_tick(deadline, res) <= elapsed_tick(now, res));
            let expected = deadline.div_ceil(res) * res;
            assert_eq!(fire, Some(expected), "deadline {deadline} res {res}");
        }
    }
}

#[test]
fn test_slot_of() {
    let cases = [
        (0, 0, 0),
        (5, 0, 0),
        (u64::MAX, 0, 0),
        (0, 3, 0),
        (3, 3, 3),
        (4, 3, 0),
        (5, 3, 1),
        (1023, 1023, 1023),
        (1024, 1023, 0),
        (u64::MAX, 1023, 1023),
        (u64::MAX, (MAX_SLOTS - 1) as u64, MAX_SLOTS - 1),
    ];
    for (tick, mask, slot) in cases {
        assert_eq!(slot_of(tick, mask), slot, "slot_of({tick}, {mask})");
    }
}

#[test]
fn test_slot_count() {
    let cases = [
        (0, 1),
        (1, 1),
        (2, 2),
        (3, 4),
        (4, 4),
        (5, 8),
        (1023, 1024),
        (1024, 1024),
        (1025, 2048),
        (MAX_SLOTS - 1, MAX_SLOTS),
        (MAX_SLOTS, MAX_SLOTS),
        (MAX_SLOTS + 1, MAX_SLOTS),
        (usize::MAX, MAX_SLOTS),
    ];
    for (requested, slots) in cases {
        assert_eq!(slot_count(requested), slots, "slot_count({requested})");
    }
}

#[test]
fn test_slots_to_visit() {
    // (elapsed, target, slots, expected ranges)
    let cases: [(u64, u64, usize, [Range<usize>; 2]); 18] = [
        // Nothing passed, or time went back.
        (0, 0, 4, [1..1, 0..0]),
        (7, 7, 4, [0..0, 0..0]),
        (7, 3, 4, [0..0, 0..0]),
        // One tick: the slot of elapsed + 1.
        (0, 1, 4, [1..2, 0..0]),
        (2, 3, 4, [3..4, 0..0]),
        (3, 4, 4, [0..1, 0..0]),
        // Up to the last slot without wrapping, then wrapping.
        (0, 3, 4, [1..4, 0..0]),
        (1, 3, 4, [2..4, 0..0]),
        (1, 4, 4, [2..4, 0..1]),
        (2, 5, 4, [3..4, 0..2]),
        // Exactly one revolution, and more: every slot once, from elapsed + 1.
        (0, 4, 4, [1..4, 0..1]),
        (3, 7, 4, [0..4, 0..0]),
        (2, 1_000_000, 4, [3..4, 0..3]),
        // A single slot is visited once whatever the jump.
        (0, 1, 1, [0..1, 0..0]),
        (5, 9, 1, [0..1, 0..0]),
        // Extremes.
        (u64::MAX - 1, u64::MAX, 4, [3..4, 0..0]),
        (0, u64::MAX, 1024, [1..1024, 0..1]),
        (u64::MAX, u64::MAX, 4, [0..0, 0..0]),
    ];
    for (elapsed, target, slots, expected) in cases {
        let ranges = slots_to_visit(elapsed, target, slots);
        assert_eq!(
            ranges, expected,
            "slots_to_visit({elapsed}, {target}, {slots})"
        );
        // The slots visited are those of the ticks passed, each at most once.
        let visited: Vec<usize> = ranges.into_iter().flatten().collect();
        let ticks = target.saturating_sub(elapsed).min(slots as u64);
        let want: Vec<usize> = (1..=ticks)
            .map(|i| slot_of(elapsed.wrapping_add(i), slots as u64 - 1))
            .collect();
        assert_eq!(visited, want);
    }
}

#[test]
fn test_next_set_bit() {
    let words = [1 << 3 | 1 << 63, 0, 1 << 5];
    // (from, end, expected)
    let cases = [
        (0, 192, Some(3)),
        (3, 192, Some(3)),
        (4, 192, Some(63)),
        (63, 192, Some(63)),
        (64, 192, Some(133)),
        (133, 192, Some(133)),
        (134, 192, None),
        // `end` is exclusive, also inside a word and at a word boundary.
        (0, 3, None),
        (0, 4, Some(3)),
        (4, 63, None),
        (4, 64, Some(63)),
        (64, 128, None),
        (64, 133, None),
        (64, 134, Some(133)),
        (3, 3, None),
        // Past the bitmap.
        (192, 500, None),
        (1000, 2000, None),
    ];
    for (from, end, expected) in cases {
        assert_eq!(
            next_set_bit(&words, from, end),
            expected,
            "next_set_bit({from}, {end})"
        );
    }
    assert_eq!(next_set_bit(&[], 0, 64), None);
    assert_eq!(next_set_bit(&[0], 0, 64), None);
}

#[test]
fn test_set_bit() {
    let mut words = [0u64; 2];
    for bit in [0, 63, 64, 127] {
        set_bit(&mut words, bit, true);
        assert_eq!(next_set_bit(&words, bit, 128), Some(bit));
    }
    assert_eq!(words, [1 | 1 << 63, 1 | 1 << 63]);
    set_bit(&mut words, 63, false);
    set_bit(&mut words, 63, false);
    set_bit(&mut words, 128, true); // out of range: ignored
    assert_eq!(words, [1, 1 | 1 << 63]);
}

#[test]
fn test_next_boundary() {
    let cases = [
        (0, 100, 100),
        (1, 100, 100),
        (99, 100, 100),
        (100, 100, 200),
        (101, 100, 200),
        (0, 1, 1),
        (7, 1, 8),
        (u64::MAX - 1, 1, u64::MAX),
        (u64::MAX, 1, u64::MAX), // saturates
        (u64::MAX, 100, u64::MAX),
        (0, u64::MAX, u64::MAX),
        (u64::MAX - 1, u64::MAX, u64::MAX),
    ];
    for (now, res, next) in cases {
        assert_eq!(next_boundary(now, res), next, "next_boundary({now}, {res})");
    }
}

// ---- Scenarios ----

#[derive(Debug, Clone, Copy)]
enum Step {
    Insert(&'static str, u64),
    Cancel(&'static str),
    Reset(&'static str, u64),
    /// Advance, then drain.
    Advance(u64),
    /// Advance without draining.
    Tick(u64),
    /// Drain without advancing.
    Poll,
}
use Step::*;

/// Runs the steps on a wheel and compares each step's output: the sorted
/// names drained for `Advance` and `Poll`, the result of `Cancel` and
/// `Reset`, and nothing otherwise.
#[track_caller]
fn check(resolution_ms: u64, slots: usize, script: &[(Step, &str)]) {
    let mut wheel = Wheel::new(resolution_ms, slots);
    let mut keys = HashMap::new();
    for &(step, expected) in script {
        let output = match step {
            Insert(name, deadline) => {
                keys.insert(name, wheel.insert(deadline, name));
                String::new()
            }
            Cancel(name) => format!("{:?}", wheel.cancel(keys[name])),
            Reset(name, deadline) => format!("{}", wheel.reset(keys[name], deadline)),
            Tick(now) => {
                wheel.advance(now);
                String::new()
            }
            Advance(now) => {
                wheel.advance(now);
                drain(&mut wheel)
            }
            Poll => drain(&mut wheel),
        };
        check_invariants(&wheel);
        assert_eq!(output, expected, "after {step:?}");
    }
}

fn drain(wheel: &mut Wheel<&'static str>) -> String {
    let mut names = Vec::new();
    while let Some((key, name)) = wheel.poll_expired() {
        assert_eq!(wheel.get(key), None);
        names.push(name);
    }
    names.sort_unstable();
    names.join(" ")
}

#[test]
fn fires_at_the_first_boundary_at_or_after_the_deadline() {
    check(
        100,
        1024,
        &[
            (Insert("d0", 0), ""),
            (Insert("d1", 1), ""),
            (Insert("d99", 99), ""),
            (Insert("d100", 100), ""),
            (Insert("d101", 101), ""),
            (Insert("d200", 200), ""),
            (Poll, "d0"), // due at time 0 already
            (Advance(99), ""),
            (Advance(100), "d1 d100 d99"),
            (Advance(199), ""),
            (Advance(200), "d101 d200"),
            (Advance(10_000), ""),
        ],
    );
    check(
        1,
        8,
        &[(Insert("a", 5), ""), (Advance(4), ""), (Advance(5), "a")],
    );
}

#[test]
fn deadlines_beyond_a_revolution_wait_in_their_slot() {
    // 4 slots of 100 ms: a revolution is 400 ms and a, b, c share slot 1.
    check(
        100,
        4,
        &[
            (Insert("a", 100), ""),
            (Insert("b", 500), ""),
            (Insert("c", 900), ""),
            (Insert("d", 450), ""),
            (Advance(100), "a"),
            (Advance(499), ""),
            (Advance(500), "b d"),
            (Advance(899), ""),
            (Advance(900), "c"),
        ],
    );
}

#[test]
fn large_jumps_visit_every_slot_once() {
    check(
        100,
        4,
        &[
            (Insert("a", 150), ""),
            (Insert("b", 1_000), ""),
            (Insert("c", 40_000), ""),
            (Insert("d", 40_001), ""),
            (Insert("e", u64::MAX / 100 * 100), ""), // the last boundary
            (Insert("never", u64::MAX / 100 * 100 + 1), ""),
            (Advance(39_999), "a b"),
            (Advance(40_000), "c"),
            (Advance(10_000_000_000), "d"),
            (Advance(u64::MAX / 100 * 100 - 1), ""),
            (Advance(u64::MAX / 100 * 100), "e"),
            (Advance(u64::MAX), ""),
            (Insert("f", u64::MAX / 100 * 100), ""),
            (Poll, "f"),
            (Cancel("never"), "Some(\"never\")"),
        ],
    );
}

#[test]
fn already_due_goes_straight_to_expired() {
    check(
        100,
        16,
        &[
            (Advance(150), ""),
            (Insert("a", 120), ""), // tick 2: not due until 200
            (Insert("b", 100), ""), // tick 1: due
            (Insert("c", 50), ""),  // tick 1: due
            (Poll, "b c"),
            (Poll, ""),
            (Advance(199), ""),
            (Advance(200), "a"),
        ],
    );
}

#[test]
fn advance_never_goes_back() {
    check(
        100,
        16,
        &[
            (Advance(500), ""),
            (Insert("a", 550), ""),
            (Advance(100), ""),
            (Insert("b", 450), ""), // due relative to 500, not to 100
            (Poll, "b"),
            (Advance(499), ""),
            (Advance(600), "a"),
        ],
    );
}

#[test]
fn reset_moves_in_every_direction() {
    check(
        100,
        4,
        &[
            (Insert("a", 1_000), ""),
            (Insert("b", 1_000), ""),
            (Insert("c", 300), ""),
            (Reset("a", 200), "true"),   // earlier
            (Reset("c", 2_000), "true"), // later, more than a revolution
            (Reset("b", 1_050), "true"), // same tick: stays put
            (Advance(200), "a"),
            (Reset("a", 900), "false"), // polled: not armed
            (Reset("b", 0), "true"),    // already due
            (Poll, "b"),
            (Advance(1_100), ""),
            (Advance(2_000), "c"),
        ],
    );
    // A due timer that has not been polled can be pushed out again.
    check(
        100,
        4,
        &[
            (Insert("a", 100), ""),
            (Insert("b", 100), ""),
            (Tick(100), ""),
            (Reset("a", 300), "true"),
            (Reset("b", 50), "true"), // still due: stays on the expired list
            (Poll, "b"),
            (Advance(299), ""),
            (Advance(300), "a"),
        ],
    );
}

#[test]
fn cancel_returns_the_value_once() {
    check(
        100,
        4,
        &[
            (Insert("a", 100), ""),
            (Insert("b", 100), ""),
            (Insert("c", 700), ""),
            (Cancel("a"), "Some(\"a\")"),
            (Cancel("a"), "None"),
            (Tick(100), ""),
            (Cancel("b"), "Some(\"b\")"), // due but not polled: still armed
            (Poll, ""),
            (Cancel("c"), "Some(\"c\")"),
            (Advance(100_000), ""),
        ],
    );
}

#[test]
fn keys_are_reused() {
    let mut wheel = Wheel::new(100, 4);
    let a = wheel.insert(100, 'a');
    assert_eq!(a.index(), 0);
    assert_eq!(wheel.cancel(a), Some('a'));
    let b = wheel.insert(900, 'b');
    // `a` is gone; the same key now names `b`.
    assert_eq!(b, a);
    assert_eq!(wheel.get(a), Some(&'b'));
    assert_eq!(wheel.deadline(a), Some(900));
    assert_eq!(wheel.get(TimerKey(NIL)), None);
    assert_eq!(wheel.cancel(TimerKey(NIL)), None);
    assert!(!wheel.reset(TimerKey(NIL), 5));
}

#[test]
fn configuration_is_clamped_and_rounded() {
    let wheel: Wheel<()> = Wheel::new(0, 0);
    assert_eq!((wheel.resolution_ms(), wheel.slots()), (1, 1));
    let wheel: Wheel<()> = Wheel::new(250, 3);
    assert_eq!((wheel.resolution_ms(), wheel.slots()), (250, 4));
    let wheel: Wheel<()> = Wheel::default();
    assert_eq!(
        (wheel.resolution_ms(), wheel.slots()),
        (DEFAULT_RESOLUTION_MS, DEFAULT_SLOTS)
    );
    assert_eq!(wheel.next_tick_ms(0), 100);
    assert_eq!(wheel.next_tick_ms(100), 200);
    assert!(wheel.is_empty());
    let wheel: Wheel<()> = Wheel::with_capacity(100, 1024, 1000);
    assert!(wheel.entries.capacity() >= 1000);
    // A one-slot wheel works: every timer shares the slot.
    check(
        10,
        1,
        &[
            (Insert("a", 15), ""),
            (Insert("b", 35), ""),
            (Advance(19), ""),
            (Advance(20), "a"),
            (Advance(40), "b"),
        ],
    );
}

#[test]
fn steady_state_does_not_allocate() {
    let n = 1000;
    let mut wheel = Wheel::with_capacity(100, 64, n);
    let capacity = wheel.entries.capacity();
    let mut keys: Vec<TimerKey> = (0..n as u64)
        .map(|i| wheel.insert(i * 37 % 30_000, i))
        .collect();
    for round in 1..50u64 {
        for (i, key) in keys.iter().enumerate() {
            wheel.reset(*key, round * 1_000 + (i as u64 * 37) % 30_000);
        }
        wheel.advance(round * 1_000);
        while let Some((_, i)) = wheel.poll_expired() {
            keys[i as usize] = wheel.insert(round * 1_000 + 30_000, i);
        }
        assert_eq!(wheel.len(), n);
    }
    assert_eq!(wheel.entries.capacity(), capacity);
}

/// Walks every list and checks the links, the bitmap and the rule that an
/// entry's list follows from its deadline.
#[track_caller]
fn check_invariants<T>(wheel: &Wheel<T>) {
    let mut seen = 0;
    let mut walk = |head: u32, list: List| -> u32 {
        let (mut prev, mut cur) = (NIL, head);
        while cur != NIL {
            let entry = &wheel.entries[cur as usize];
            assert_eq!(entry.prev, prev, "back link of {cur}");
            assert_eq!(wheel.list_of(entry.deadline_ms), list, "list of {cur}");
            seen += 1;
            assert!(seen <= wheel.len(), "cycle");
            (prev, cur) = (cur, entry.next.get());
        }
        prev
    };
    for slot in 0..wheel.slots() {
        walk(wheel.heads[slot], List::Slot(slot));
    }
    let tail = walk(wheel.expired_head, List::Expired);
    assert_eq!(wheel.expired_tail, tail);
    assert_eq!(seen, wheel.len(), "entries on no list");
    for bit in 0..wheel.occupied.len() * 64 {
        let occupied = wheel.occupied[bit / 64] >> (bit % 64) & 1 == 1;
        assert_eq!(
            occupied,
            wheel.heads.get(bit).is_some_and(|&h| h != NIL),
            "bit {bit}"
        );
    }
}

// ---- Property tests against a BTreeMap model ----

#[derive(Debug, Clone)]
enum Op {
    /// Arm a timer at `now + offset` (clamped at 0).
    Insert(i64),
    /// Cancel whatever key this is; armed or not.
    Cancel(u32),
    /// Reset a key to `now + offset`.
    Reset(u32, i64),
    /// Move time forward by `step`, then drain if asked.
    Advance(u64, bool),
    /// Advance to `now - back`, which must change nothing; then drain.
    Back(u64),
    /// Drain without advancing.
    Drain,
}

fn op_strategy(res: u64, slots: usize) -> impl Strategy<Value = Op> {
    let revolution = (res * slot_count(slots) as u64) as i64;
    let res = res as i64;
    let offset = prop_oneof![
        4 => -2 * res..=3 * res,    // around now, some already due
        4 => 0..=4 * revolution,    // up to several revolutions ahead
        1 => Just(0i64),
        1 => 0..=10_000_000i64,     // far ahead
    ];
    let step = prop_oneof![
        6 => 0..=2 * res as u64,
        2 => 0..=3 * revolution as u64,
        1 => 0..=50_000_000u64,
    ];
    prop_oneof![
        4 => offset.clone().prop_map(Op::Insert),
        2 => (0..32u32).prop_map(Op::Cancel),
        3 => (0..32u32, offset).prop_map(|(key, offset)| Op::Reset(key, offset)),
        4 => (step, proptest::bool::weighted(0.8)).prop_map(|(s, d)| Op::Advance(s, d)),
        1 => (0..=3 * res as u64).prop_map(Op::Back),
        1 => Just(Op::Drain),
    ]
}

fn case_strategy() -> impl Strategy<Value = (u64, usize, Vec<Op>)> {
    let slots = prop_oneof![1..=8usize, 60..=130usize, Just(1024usize)];
    (1..=250u64, slots).prop_flat_map(|(res, slots)| {
        (
            Just(res),
            Just(slots),
            proptest::collection::vec(op_strategy(res, slots), 1..200),
        )
    })
}

/// The model: armed keys with (deadline, value), and the time.
struct Model {
    res: u64,
    now: u64,
    armed: BTreeMap<u32, (u64, u64)>,
}

impl Model {
    fn due(&self, deadline_ms: u64) -> bool {
        deadline_ms.div_ceil(self.res) <= self.now / self.res
    }

    fn deadline(&self, offset: i64) -> u64 {
        self.now.saturating_add_signed(offset)
    }
}

/// Drains the wheel and checks that exactly the model's due timers came
/// out, none early, and that those which fell due in the advance from
/// `before` to `model.now` are at most a tick late and in tick order.
fn drain_and_check(
    wheel: &mut Wheel<u64>,
    model: &mut Model,
    before: u64,
    slots: usize,
) -> Result<(), TestCaseError> {
    let res = model.res;
    let mut fresh_ticks = Vec::new();
    while let Some((key, value)) = wheel.poll_expired() {
        let entry = model.armed.remove(&key.0);
        prop_assert_eq!(entry.map(|(_, v)| v), Some(value), "fired {:?}", key);
        let Some((deadline, _)) = entry else {
            unreachable!()
        };
        prop_assert!(
            model.due(deadline),
            "{} fired early at {}",
            deadline,
            model.now
        );
        prop_assert!(deadline <= model.now);
        if due_tick(deadline, res) > before / res {
            // Fell due in this advance, so it was not due at `before`.
            prop_assert!(model.now - deadline < (model.now - before).saturating_add(res));
            fresh_ticks.push(due_tick(deadline, res));
        }
    }
    let late: Vec<_> = model
        .armed
        .iter()
        .filter(|(_, &(d, _))| model.due(d))
        .collect();
    prop_assert!(
        late.is_empty(),
        "due but not fired at {}: {:?}",
        model.now,
        late
    );
    if model.now / res - before / res <= slots as u64 {
        prop_assert!(fresh_ticks.is_sorted(), "out of order: {:?}", fresh_ticks);
    }
    Ok(())
}

fn run_model(res: u64, slots: usize, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let mut wheel = Wheel::new(res, slots);
    let slots = wheel.slots();
    let mut model = Model {
        res,
        now: 0,
        armed: BTreeMap::new(),
    };
    let mut next_value = 0u64;
    for op in ops {
        match op {
            Op::Insert(offset) => {
                let deadline = model.deadline(offset);
                let key = wheel.insert(deadline, next_value);
                let old = model.armed.insert(key.0, (deadline, next_value));
                prop_assert_eq!(old, None, "key {:?} handed out twice", key);
                next_value += 1;
            }
            Op::Cancel(key) => {
                let expected = model.armed.remove(&key).map(|(_, v)| v);
                prop_assert_eq!(wheel.cancel(TimerKey(key)), expected);
            }
            Op::Reset(key, offset) => {
                let deadline = model.deadline(offset);
                let armed = match model.armed.get_mut(&key) {
                    Some(entry) => {
                        entry.0 = deadline;
                        true
                    }
                    None => false,
                };
                prop_assert_eq!(wheel.reset(TimerKey(key), deadline), armed);
            }
            Op::Advance(step, drain) => {
                let before = model.now;
                model.now = model.now.saturating_add(step);
                wheel.advance(model.now);
                if drain {
                    drain_and_check(&mut wheel, &mut model, before, slots)?;
                }
            }
            Op::Back(back) => {
                let now = model.now;
                wheel.advance(now.saturating_sub(back));
                drain_and_check(&mut wheel, &mut model, now, slots)?;
            }
            Op::Drain => {
                let now = model.now;
                drain_and_check(&mut wheel, &mut model, now, slots)?;
            }
        }
        check_invariants(&wheel);
        prop_assert_eq!(wheel.len(), model.armed.len());
        prop_assert_eq!(wheel.is_empty(), model.armed.is_empty());
        for (&key, &(deadline, value)) in &model.armed {
            prop_assert_eq!(wheel.deadline(TimerKey(key)), Some(deadline));
            prop_assert_eq!(wheel.get(TimerKey(key)), Some(&value));
        }
    }
    // Finally everything fires.
    let before = model.now;
    model.now = u64::MAX;
    wheel.advance(u64::MAX);
    drain_and_check(&mut wheel, &mut model, before, slots)?;
    prop_assert!(wheel.is_empty() && model.armed.is_empty());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn wheel_matches_model((res, slots, ops) in case_strategy()) {
        run_model(res, slots, ops)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Advancing one millisecond at a time, each timer fires exactly at
    /// the first tick boundary at or after its deadline.
    #[test]
    fn fine_grained_advance_fires_within_one_tick(
        res in 1..=250u64,
        slots in 1..=16usize,
        deadlines in proptest::collection::vec(0..20_000u64, 0..40),
    ) {
        let mut wheel = Wheel::new(res, slots);
        for (i, &deadline) in deadlines.iter().enumerate() {
            wheel.insert(deadline, i);
        }
        let mut fired = vec![None; deadlines.len()];
        let end = deadlines.iter().max().copied().unwrap_or(0) + res;
        for now in 0..=end {
            wheel.advance(now);
            while let Some((_, i)) = wheel.poll_expired() {
                prop_assert_eq!(fired[i], None);
                fired[i] = Some(now);
            }
        }
        for (i, &deadline) in deadlines.iter().enumerate() {
            let at = fired[i];
            prop_assert_eq!(at, Some(deadline.div_ceil(res) * res), "deadline {}", deadline);
            let at = at.unwrap_or(0);
            prop_assert!(deadline <= at && at - deadline < res);
        }
        prop_assert!(wheel.is_empty());
    }
}

#[test]
fn a_timer_of_connection_handles_takes_24_bytes_in_the_slab() {
    #[allow(dead_code)]
    enum SlabEntry<T> {
        Vacant(usize),
        Occupied(T),
    }
    // What the server's wheel holds: a deadline, its links and a `ConnRef`
    // (two u32s), and the slab's own enum around it, tagged in the niche.
    assert_eq!(std::mem::size_of::<SlabEntry<Entry<(u32, u32)>>>(), 24);
    // Out-of-range links read as the end of a list.
    assert_eq!(Link::new(u32::MAX).get(), NIL);
    assert_eq!(Link::new(0).get(), 0);
    assert_eq!(Link::new(NIL).get(), NIL);
}
