//! The timing wheel against the usual baselines, in the same run.
//!
//! - `wheel`: [`vigil::wheel::Wheel`] at the server's defaults (100 ms ticks,
//!   1024 slots, so the 60 s of deadlines used here fit in one revolution).
//! - `heap`: a lazy `BinaryHeap` of `(deadline, id, generation)`. Re-arming
//!   pushes a new entry and bumps the timer's generation; stale entries are
//!   skipped when they reach the top.
//! - `btree`: a `BTreeMap<(deadline, id), ()>`; re-arming is remove + insert.
//!
//! Each structure is benched at 10K, 100K and 1M timers for three operations:
//! - `arm`: arm N timers, deadlines spread over 30 s, into an empty structure
//!   that already has room for them;
//! - `rearm`: move N armed timers to new deadlines 30 to 60 s out, as
//!   heartbeats do;
//! - `expire`: step time by one 100 ms tick up to 30 s, firing and draining
//!   what is due at each step, until all N have fired.
//!
//! Throughput is per timer, so criterion's time per element is the cost of
//! one operation. Building the input is not timed, nor is dropping the result.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::hint::black_box;
use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{
    criterion_group, criterion_main, BatchSize, BenchmarkGroup, BenchmarkId, Criterion,
    SamplingMode, Throughput,
};
use vigil::wheel::{TimerKey, Wheel, DEFAULT_RESOLUTION_MS, DEFAULT_SLOTS};

const SIZES: [usize; 3] = [10_000, 100_000, 1_000_000];

/// Deadlines are spread over this many milliseconds: a heartbeat timeout.
const SPREAD_MS: u64 = 30_000;

/// The operations every structure offers, with timers named `0..n`.
trait Timers {
    const NAME: &'static str;
    /// An empty structure with room for `n` timers.
    fn with_capacity(n: usize) -> Self;
    /// Arms the next timer; ids are given out in order from 0.
    fn arm(&mut self, deadline: u64);
    /// Moves armed timer `id` to `deadline`.
    fn rearm(&mut self, id: usize, deadline: u64);
    /// Fires everything due at `now`, returning how many fired.
    fn expire(&mut self, now: u64) -> usize;
}

struct WheelTimers {
    wheel: Wheel<u32>,
    keys: Vec<TimerKey>,
}

impl Timers for WheelTimers {
    const NAME: &'static str = "wheel";

    fn with_capacity(n: usize) -> Self {
        WheelTimers {
            wheel: Wheel::with_capacity(DEFAULT_RESOLUTION_MS, DEFAULT_SLOTS, n),
            keys: Vec::with_capacity(n),
        }
    }

    fn arm(&mut self, deadline: u64) {
        let id = self.keys.len() as u32;
        self.keys.push(self.wheel.insert(deadline, id));
    }

    fn rearm(&mut self, id: usize, deadline: u64) {
        if let Some(&key) = self.keys.get(id) {
            self.wheel.reset(key, deadline);
        }
    }

    fn expire(&mut self, now: u64) -> usize {
        self.wheel.advance(now);
        let mut fired = 0;
        while let Some(timer) = self.wheel.poll_expired() {
            black_box(timer);
            fired += 1;
        }
        fired
    }
}

struct HeapTimers {
    heap: BinaryHeap<Reverse<(u64, u32, u32)>>,
    generations: Vec<u32>,
}

impl Timers for HeapTimers {
    const NAME: &'static str = "heap";

    fn with_capacity(n: usize) -> Self {
        HeapTimers {
            // Room for a re-arm of every timer: lazy re-arming doubles the heap.
            heap: BinaryHeap::with_capacity(2 * n),
            generations: Vec::with_capacity(n),
        }
    }

    fn arm(&mut self, deadline: u64) {
        let id = self.generations.len() as u32;
        self.generations.push(0);
        self.heap.push(Reverse((deadline, id, 0)));
    }

    fn rearm(&mut self, id: usize, deadline: u64) {
        if let Some(generation) = self.generations.get_mut(id) {
            *generation += 1;
            self.heap.push(Reverse((deadline, id as u32, *generation)));
        }
    }

    fn expire(&mut self, now: u64) -> usize {
        let mut fired = 0;
        while let Some(&Reverse((deadline, id, generation))) = self.heap.peek() {
            if deadline > now {
                break;
            }
            self.heap.pop();
            if self.generations.get(id as usize) == Some(&generation) {
                black_box((id, deadline));
                fired += 1;
            }
        }
        fired
    }
}

struct TreeTimers {
    tree: BTreeMap<(u64, u32), ()>,
    deadlines: Vec<u64>,
}

impl Timers for TreeTimers {
    const NAME: &'static str = "btree";

    fn with_capacity(n: usize) -> Self {
        TreeTimers {
            tree: BTreeMap::new(),
            deadlines: Vec::with_capacity(n),
        }
    }

    fn arm(&mut self, deadline: u64) {
        let id = self.deadlines.len() as u32;
        self.deadlines.push(deadline);
        self.tree.insert((deadline, id), ());
    }

    fn rearm(&mut self, id: usize, deadline: u64) {
        if let Some(old) = self.deadlines.get_mut(id) {
            self.tree.remove(&(*old, id as u32));
            self.tree.insert((deadline, id as u32), ());
            *old = deadline;
        }
    }

    fn expire(&mut self, now: u64) -> usize {
        let mut fired = 0;
        while let Some(entry) = self.tree.first_entry() {
            if entry.key().0 > now {
                break;
            }
            black_box(entry.remove_entry());
            fired += 1;
        }
        fired
    }
}

/// `n` deadlines in `1..=SPREAD_MS`, pseudo-random but the same every run.
fn spread_deadlines(n: usize, seed: u64) -> Vec<u64> {
    let mut state = seed | 1;
    (0..n)
        .map(|_| {
            // xorshift64
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            1 + state % SPREAD_MS
        })
        .collect()
}

fn armed<S: Timers>(deadlines: &[u64], capacity: usize) -> S {
    let mut timers = S::with_capacity(capacity);
    for &deadline in deadlines {
        timers.arm(deadline);
    }
    timers
}

#[derive(Clone, Copy)]
enum Op {
    Arm,
    Rearm,
    Expire,
}

/// The deadlines for one size: `first` to arm, `second` to re-arm to.
struct Input {
    n: usize,
    first: Vec<u64>,
    second: Vec<u64>,
}

impl Input {
    fn new(n: usize) -> Self {
        Input {
            n,
            first: spread_deadlines(n, 0x9e37_79b9_7f4a_7c15),
            second: spread_deadlines(n, 0xd1b5_4a32_d192_ed03)
                .into_iter()
                .map(|d| d + SPREAD_MS)
                .collect(),
        }
    }
}

fn bench_one<S: Timers>(group: &mut BenchmarkGroup<'_, WallTime>, op: Op, input: &Input) {
    let n = input.n;
    let id = BenchmarkId::new(S::NAME, n);
    match op {
        Op::Arm => group.bench_function(id, |b| {
            b.iter_batched(
                || S::with_capacity(n),
                |mut timers| {
                    for &deadline in &input.first {
                        timers.arm(black_box(deadline));
                    }
                    timers
                },
                BatchSize::PerIteration,
            )
        }),
        Op::Rearm => group.bench_function(id, |b| {
            b.iter_batched(
                || armed::<S>(&input.first, n),
                |mut timers| {
                    for (id, &deadline) in input.second.iter().enumerate() {
                        timers.rearm(id, black_box(deadline));
                    }
                    timers
                },
                BatchSize::PerIteration,
            )
        }),
        Op::Expire => group.bench_function(id, |b| {
            b.iter_batched(
                || armed::<S>(&input.first, n),
                |mut timers| {
                    let mut fired = 0;
                    let mut now = 0;
                    while now < SPREAD_MS {
                        now += DEFAULT_RESOLUTION_MS;
                        fired += timers.expire(black_box(now));
                    }
                    assert_eq!(fired, n, "{} lost timers", S::NAME);
                    timers
                },
                BatchSize::PerIteration,
            )
        }),
    };
}

fn benches(c: &mut Criterion) {
    let inputs = SIZES.map(Input::new);
    for (name, op) in [
        ("arm", Op::Arm),
        ("rearm", Op::Rearm),
        ("expire", Op::Expire),
    ] {
        let mut group = c.benchmark_group(name);
        // Few, flat samples: one iteration is already N operations, and the
        // whole bench should finish in a few minutes on two cores.
        group
            .sample_size(10)
            .sampling_mode(SamplingMode::Flat)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(2));
        for input in &inputs {
            group.throughput(Throughput::Elements(input.n as u64));
            bench_one::<WheelTimers>(&mut group, op, input);
            bench_one::<HeapTimers>(&mut group, op, input);
            bench_one::<TreeTimers>(&mut group, op, input);
        }
        group.finish();
    }
}

criterion_group!(wheel, benches);
criterion_main!(wheel);
