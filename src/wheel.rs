//! Hashed timing wheel: O(1) heartbeat deadlines for very many connections.
//!
//! This is scheme 6 of Varghese & Lauck, "Hashed and Hierarchical Timing
//! Wheels" (SOSP 1987): an array of `slots` lists, one per tick modulo
//! `slots`. Each entry keeps its full deadline and sits, unsorted, in the list
//! of the tick at which it becomes due. An entry more than one revolution
//! ahead simply stays in its slot and is skipped each time the wheel passes
//! over it until it is due; heartbeat deadlines are short compared with a
//! revolution (100 ms x 1024 slots is 102.4 s), so that is rare.
//!
//! The wheel is pure: it never reads a clock and does no I/O. Time is a `u64`
//! count of milliseconds since some start chosen by the caller, and a new
//! wheel stands at time 0. The caller says what time it is with
//! [`Wheel::advance`] and drains what became due with [`Wheel::poll_expired`].
//!
//! # Semantics
//! With resolution `res` (one tick, in ms), an entry with deadline `d` becomes
//! due on `advance(now)` iff
//!
//! ```text
//! ceil(d / res) <= floor(now / res)
//! ```
//!
//! that is, at the first tick boundary at or after `d`: never before `d`, and
//! less than one tick after it (given an `advance` at every boundary).
//! - An entry inserted or reset with a deadline that is already due relative
//!   to the last `advance` (the formula with the greatest `now` seen so far,
//!   or 0) goes straight to the expired list; the next `poll_expired` returns
//!   it without another `advance`.
//! - `advance` never goes back: a `now` below an earlier one does nothing.
//! - A deadline after the last tick boundary that fits in a `u64` (less than
//!   one tick below `u64::MAX`) never becomes due; with `res = 1`,
//!   `u64::MAX` itself is due at `advance(u64::MAX)`.
//! - An entry stays in the wheel, and its key stays valid, until it is
//!   cancelled or returned by `poll_expired`. Expired-but-not-polled entries
//!   count in [`Wheel::len`] and can still be cancelled or reset.
//! - `poll_expired` returns entries in the order they reached the expired
//!   list: at `insert` or `reset` for deadlines already due, or during
//!   `advance`. An `advance` that crosses at most `slots` ticks adds entries
//!   in order of due tick; within one tick, and after a longer jump, the
//!   order is unspecified.
//!
//! # Costs
//! - [`Wheel::insert`], [`Wheel::cancel`], [`Wheel::reset`] and
//!   [`Wheel::poll_expired`] are O(1). Entries live in a [`Slab`] and the
//!   per-slot lists are intrusive (doubly linked by slab index), so once the
//!   slab has grown to the peak number of timers nothing allocates; use
//!   [`Wheel::with_capacity`] to size it up front.
//! - [`Wheel::advance`] is O(min(ticks passed, slots) / 64 + entries in the
//!   slots it visits). It visits the slot of each tick passed, but each slot
//!   at most once however far time jumps, and an occupancy bitmap lets it
//!   skip 64 empty slots per word (the idea of tokio's `wheel/level.rs`).
//!   Entries more than a revolution ahead in a visited slot are looked at and
//!   left alone.
//! - Walking a slot's list chases pointers through the slab in list order,
//!   not memory order: with millions of timers that is about one cache miss
//!   per entry fired (see `benches/wheel.rs`).
//!
//! # Keys
//! [`TimerKey`]s are slab indices and are reused: once a timer is cancelled or
//! polled, the next insert may get the same key. A key names the caller's
//! timer only while that timer is armed, so whoever stores a key must forget
//! it (or cancel it) when the timer goes away; the server keeps exactly one
//! key per connection and cancels it when the connection closes.

use std::num::NonZeroU32;
use std::ops::Range;

use slab::Slab;

/// Default tick length in milliseconds: the granularity of deadlines.
pub const DEFAULT_RESOLUTION_MS: u64 = 100;

/// Default number of slots; one revolution is then 102.4 s at the default
/// resolution, longer than any heartbeat deadline we expect.
pub const DEFAULT_SLOTS: usize = 1024;

/// The largest slot count; larger requests are clamped to it.
pub const MAX_SLOTS: usize = 1 << 31;

/// The most timers one wheel can hold. Keys are `u32`; one value is the
/// list terminator and one is never used (see `Link`).
pub const MAX_TIMERS: usize = NIL as usize;

/// The end of an intrusive list. [`Wheel::try_insert`] never lets the slab
/// hand out this index (or any above it), so it never names an entry.
const NIL: u32 = u32::MAX - 1;

/// Names one armed timer in a [`Wheel`].
///
/// A key is the index of the timer's entry in the wheel's slab. Keys are
/// reused after a timer is cancelled or returned by [`Wheel::poll_expired`],
/// so a key is only meaningful while the caller's timer is armed; using it
/// afterwards may reach whichever timer got the key next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimerKey(u32);

impl TimerKey {
    /// The slab index behind the key, below [`MAX_TIMERS`]; handy for a side
    /// table indexed like the wheel.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// A hashed timing wheel of deadlines, each carrying a `T`.
///
/// See the [module docs](self) for the exact firing rule, ordering and costs.
///
/// # Example
/// ```
/// use vigil::wheel::Wheel;
///
/// // 100 ms ticks, 1024 slots (one revolution is 102.4 s).
/// let mut wheel = Wheel::new(100, 1024);
/// let a = wheel.insert(250, "a"); // fires at the 300 ms boundary
/// let b = wheel.insert(30_000, "b");
///
/// wheel.advance(299);
/// assert_eq!(wheel.poll_expired(), None);
/// wheel.advance(300);
/// assert_eq!(wheel.poll_expired(), Some((a, "a")));
/// assert_eq!(wheel.poll_expired(), None);
///
/// // A heartbeat arrived: push b's deadline out.
/// assert!(wheel.reset(b, 60_000));
/// assert_eq!(wheel.deadline(b), Some(60_000));
/// // The loop sleeps at most until the next tick boundary.
/// assert_eq!(wheel.next_tick_ms(300), 400);
/// assert_eq!(wheel.cancel(b), Some("b"));
/// assert!(wheel.is_empty());
/// ```
#[derive(Debug)]
pub struct Wheel<T> {
    entries: Slab<Entry<T>>,
    /// The first entry of each slot's list, or `NIL`.
    heads: Box<[u32]>,
    /// Bit `s` is set iff slot `s`'s list is not empty.
    occupied: Box<[u64]>,
    /// Due entries waiting for `poll_expired`, oldest first.
    expired_head: u32,
    expired_tail: u32,
    resolution_ms: u64,
    /// `slots - 1`; slots is a power of two, so a tick's slot is `tick & mask`.
    mask: u64,
    /// The last tick `advance` processed: `floor(now / res)` for the greatest
    /// `now` seen. Invariant: an entry is in the expired list iff its due tick
    /// is `<= elapsed`, otherwise it is in the slot of its due tick. So where
    /// an entry lives follows from its deadline ([`Wheel::list_of`]) and is
    /// not stored.
    elapsed: u64,
}

#[derive(Debug)]
struct Entry<T> {
    deadline_ms: u64,
    prev: u32,
    next: Link,
    value: T,
}

/// An entry's `next`: the index as its complement in a `NonZeroU32`. Every
/// index a list holds (an entry's, below `NIL`, or `NIL`) is below
/// `u32::MAX`, so the complement is never 0, and the enum a slab wraps
/// each entry in (occupied or vacant) keeps its tag in that 0: a wheel of
/// connection handles spends 24 bytes a timer instead of 32.
#[derive(Debug, Clone, Copy)]
struct Link(NonZeroU32);

impl Link {
    /// `index`, or `NIL` for the one value that has no complement.
    fn new(index: u32) -> Link {
        Link(NonZeroU32::new(!index).unwrap_or(NonZeroU32::MIN))
    }

    fn get(self) -> u32 {
        !self.0.get()
    }
}

/// Which intrusive list an entry is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum List {
    Slot(usize),
    Expired,
}

impl<T> Wheel<T> {
    /// Makes an empty wheel standing at time 0.
    ///
    /// `resolution_ms` is the tick length; 0 is taken as 1. `slots` is rounded
    /// up to a power of two within `1..=`[`MAX_SLOTS`]. Deadlines more than
    /// `resolution_ms * slots` ahead still work; they cost a look each
    /// revolution until due.
    pub fn new(resolution_ms: u64, slots: usize) -> Self {
        Self::with_capacity(resolution_ms, slots, 0)
    }

    /// Like [`Wheel::new`], with room for `capacity` timers (at most
    /// [`MAX_TIMERS`]) so that arming up to that many never allocates.
    pub fn with_capacity(resolution_ms: u64, slots: usize, capacity: usize) -> Self {
        let slots = slot_count(slots);
        Wheel {
            entries: Slab::with_capacity(capacity.min(MAX_TIMERS)),
            heads: vec![NIL; slots].into_boxed_slice(),
            occupied: vec![0; slots.div_ceil(64)].into_boxed_slice(),
            expired_head: NIL,
            expired_tail: NIL,
            resolution_ms: resolution_ms.max(1),
            mask: slots as u64 - 1,
            elapsed: 0,
        }
    }

    /// Arms a timer for `deadline_ms` carrying `value`, and returns its key.
    ///
    /// If the deadline is already due (see the [module docs](self)), the
    /// timer goes straight to the expired list.
    ///
    /// # Panics
    /// If the wheel already holds [`MAX_TIMERS`] timers (over 4 billion,
    /// well beyond 100 GiB of entries), like `Vec::push` past its maximum
    /// capacity. Use [`Wheel::try_insert`] to get the value back instead.
    #[allow(clippy::panic)] // documented above; the server uses try_insert
    pub fn insert(&mut self, deadline_ms: u64, value: T) -> TimerKey {
        match self.try_insert(deadline_ms, value) {
            Ok(key) => key,
            Err(_) => panic!("timing wheel is full ({MAX_TIMERS} timers)"),
        }
    }

    /// Like [`Wheel::insert`], but hands `value` back if the wheel already
    /// holds [`MAX_TIMERS`] timers.
    pub fn try_insert(&mut self, deadline_ms: u64, value: T) -> Result<TimerKey, T> {
        // The slab gives out `vacant_key()` next; NIL must stay free to end lists.
        let index = match u32::try_from(self.entries.vacant_key()) {
            Ok(index) if index < NIL => index,
            _ => return Err(value),
        };
        self.entries.insert(Entry {
            deadline_ms,
            prev: NIL,
            next: Link::new(NIL),
            value,
        });
        self.link(index, self.list_of(deadline_ms));
        Ok(TimerKey(index))
    }

    /// Disarms a timer and returns its value, or `None` if `key` is not armed.
    ///
    /// A timer that is due but not yet polled is still armed.
    pub fn cancel(&mut self, key: TimerKey) -> Option<T> {
        let deadline_ms = self.entries.get(key.index())?.deadline_ms;
        self.unlink(key.0, self.list_of(deadline_ms));
        self.entries
            .try_remove(key.index())
            .map(|entry| entry.value)
    }

    /// Moves an armed timer to a new deadline, earlier or later; returns
    /// `false` (and does nothing) if `key` is not armed.
    ///
    /// The key stays the same. A due-but-unpolled timer reset to a future
    /// deadline goes back on the wheel; any timer reset to a deadline already
    /// due goes to the expired list.
    pub fn reset(&mut self, key: TimerKey, deadline_ms: u64) -> bool {
        let Some(entry) = self.entries.get_mut(key.index()) else {
            return false;
        };
        let old = std::mem::replace(&mut entry.deadline_ms, deadline_ms);
        let (from, to) = (self.list_of(old), self.list_of(deadline_ms));
        // Lists are unsorted, so staying on the same list needs no relinking.
        if from != to {
            self.unlink(key.0, from);
            self.link(key.0, to);
        }
        true
    }

    /// Tells the wheel the time is `now_ms` and moves every timer that is now
    /// due to the expired list; drain it with [`Wheel::poll_expired`].
    ///
    /// A `now_ms` below one given before does nothing, and so does one in the
    /// same tick as before.
    pub fn advance(&mut self, now_ms: u64) {
        let target = elapsed_tick(now_ms, self.resolution_ms);
        if target <= self.elapsed {
            return;
        }
        for range in slots_to_visit(self.elapsed, target, self.slots()) {
            let mut from = range.start;
            while let Some(slot) = next_set_bit(&self.occupied, from, range.end) {
                self.expire_slot(slot, target);
                from = slot + 1;
            }
        }
        self.elapsed = target;
    }

    /// Removes and returns one due timer, or `None` when none is due.
    pub fn poll_expired(&mut self) -> Option<(TimerKey, T)> {
        let index = self.expired_head;
        if index == NIL {
            return None;
        }
        self.unlink(index, List::Expired);
        let entry = self.entries.try_remove(index as usize)?;
        Some((TimerKey(index), entry.value))
    }

    /// The deadline of an armed timer.
    pub fn deadline(&self, key: TimerKey) -> Option<u64> {
        self.entries.get(key.index()).map(|entry| entry.deadline_ms)
    }

    /// The value of an armed timer.
    pub fn get(&self, key: TimerKey) -> Option<&T> {
        self.entries.get(key.index()).map(|entry| &entry.value)
    }

    /// The number of armed timers, including due ones not yet polled.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no timer is armed.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The tick length in milliseconds, after clamping.
    pub fn resolution_ms(&self) -> u64 {
        self.resolution_ms
    }

    /// The number of slots, after rounding to a power of two.
    pub fn slots(&self) -> usize {
        self.heads.len()
    }

    /// The first tick boundary strictly after `now_ms`: the latest time the
    /// event loop should call [`Wheel::advance`] again (saturating at
    /// `u64::MAX`). Something may already be due before that: poll first.
    pub fn next_tick_ms(&self, now_ms: u64) -> u64 {
        next_boundary(now_ms, self.resolution_ms)
    }

    /// Where an entry with this deadline lives, given the current `elapsed`.
    fn list_of(&self, deadline_ms: u64) -> List {
        let tick = due_tick(deadline_ms, self.resolution_ms);
        if tick <= self.elapsed {
            List::Expired
        } else {
            List::Slot(slot_of(tick, self.mask))
        }
    }

    /// Moves the entries of `slot` that are due by tick `target` to the
    /// expired list; entries a revolution or more ahead stay.
    fn expire_slot(&mut self, slot: usize, target: u64) {
        let mut cur = self.heads.get(slot).copied().unwrap_or(NIL);
        while let Some(entry) = self.entries.get(cur as usize) {
            let (next, deadline_ms) = (entry.next.get(), entry.deadline_ms);
            if due_tick(deadline_ms, self.resolution_ms) <= target {
                self.unlink(cur, List::Slot(slot));
                self.push_expired(cur);
            }
            cur = next;
        }
    }

    /// `None` for `NIL` (and any other vacant index).
    fn entry_mut(&mut self, index: u32) -> Option<&mut Entry<T>> {
        self.entries.get_mut(index as usize)
    }

    fn link(&mut self, index: u32, list: List) {
        match list {
            List::Slot(slot) => self.push_slot(slot, index),
            List::Expired => self.push_expired(index),
        }
    }

    /// Pushes at the front: slot lists are unordered.
    fn push_slot(&mut self, slot: usize, index: u32) {
        let Some(head) = self.heads.get_mut(slot) else {
            return;
        };
        let old_head = std::mem::replace(head, index);
        if let Some(entry) = self.entry_mut(index) {
            entry.prev = NIL;
            entry.next = Link::new(old_head);
        }
        if let Some(entry) = self.entry_mut(old_head) {
            entry.prev = index;
        }
        set_bit(&mut self.occupied, slot, true);
    }

    /// Pushes at the back, so entries are polled in the order they fell due.
    fn push_expired(&mut self, index: u32) {
        let old_tail = std::mem::replace(&mut self.expired_tail, index);
        if let Some(entry) = self.entry_mut(index) {
            entry.prev = old_tail;
            entry.next = Link::new(NIL);
        }
        if old_tail == NIL {
            self.expired_head = index;
        } else if let Some(entry) = self.entry_mut(old_tail) {
            entry.next = Link::new(index);
        }
    }

    /// Takes `index` off `list`, which must be the list it is on.
    fn unlink(&mut self, index: u32, list: List) {
        let Some(entry) = self.entry_mut(index) else {
            return;
        };
        let (prev, next) = (entry.prev, entry.next.get());
        entry.prev = NIL;
        entry.next = Link::new(NIL);

        if prev != NIL {
            if let Some(entry) = self.entry_mut(prev) {
                entry.next = Link::new(next);
            }
        } else {
            match list {
                List::Slot(slot) => {
                    if let Some(head) = self.heads.get_mut(slot) {
                        *head = next;
                    }
                    if next == NIL {
                        set_bit(&mut self.occupied, slot, false);
                    }
                }
                List::Expired => self.expired_head = next,
            }
        }

        if next != NIL {
            if let Some(entry) = self.entry_mut(next) {
                entry.prev = prev;
            }
        } else if list == List::Expired {
            self.expired_tail = prev;
        }
    }
}

impl<T> Default for Wheel<T> {
    /// A wheel with [`DEFAULT_RESOLUTION_MS`] and [`DEFAULT_SLOTS`].
    fn default() -> Self {
        Self::new(DEFAULT_RESOLUTION_MS, DEFAULT_SLOTS)
    }
}

/// The tick at which a deadline becomes due: the first tick boundary at or
/// after it. Rounding up is what keeps timers from firing early; a deadline
/// on a boundary is due at that boundary, not one tick later.
fn due_tick(deadline_ms: u64, resolution_ms: u64) -> u64 {
    deadline_ms.div_ceil(resolution_ms)
}

/// The last tick boundary at or before `now_ms`: the tick the wheel has
/// reached. Rounding down means a tick is only processed once its boundary
/// has really passed.
fn elapsed_tick(now_ms: u64, resolution_ms: u64) -> u64 {
    now_ms / resolution_ms
}

/// The slot holding timers due at `tick`. `mask` is `slots - 1` with `slots`
/// a power of two, so this is `tick % slots` and always a valid slot.
fn slot_of(tick: u64, mask: u64) -> usize {
    (tick & mask) as usize
}

/// What the wheel does with a requested slot count: at least 1, at most
/// [`MAX_SLOTS`] (so slot indices fit the `u32` lists and never collide with
/// `NIL`), rounded up to a power of two so a slot is a mask, not a division.
fn slot_count(requested: usize) -> usize {
    requested.clamp(1, MAX_SLOTS).next_power_of_two()
}

/// The slots to visit when the wheel goes from tick `elapsed` to `target`: the
/// slots of ticks `elapsed + 1 ..= target`, in tick order, as a range of slot
/// indices and a second range for the part that wraps past the last slot.
///
/// After `slots` ticks the slots repeat, so a longer jump visits every slot
/// exactly once, starting at the slot of `elapsed + 1` like a short jump
/// (then a jump of exactly `slots` ticks still expires in tick order).
/// Nothing to visit if `target <= elapsed`.
fn slots_to_visit(elapsed: u64, target: u64, slots: usize) -> [Range<usize>; 2] {
    let count = target.saturating_sub(elapsed).min(slots as u64) as usize;
    // If `elapsed` is u64::MAX then `count` is 0 and `first` does not matter.
    let first = slot_of(elapsed.wrapping_add(1), slots as u64 - 1);
    // first < slots and count <= slots <= 2^31, so this cannot overflow.
    let end = first + count;
    if end <= slots {
        [first..end, 0..0]
    } else {
        [first..slots, 0..end - slots]
    }
}

/// The first set bit of `words` (bit `i` is bit `i % 64` of word `i / 64`)
/// in `from..end`, if any.
fn next_set_bit(words: &[u64], from: usize, end: usize) -> Option<usize> {
    let mut index = from / 64;
    // Ignore the bits below `from` in its word.
    let mut word = words.get(index)? & (u64::MAX << (from % 64));
    loop {
        if word != 0 {
            let bit = index * 64 + word.trailing_zeros() as usize;
            return (bit < end).then_some(bit);
        }
        index += 1;
        if index * 64 >= end {
            return None;
        }
        word = *words.get(index)?;
    }
}

fn set_bit(words: &mut [u64], bit: usize, on: bool) {
    if let Some(word) = words.get_mut(bit / 64) {
        let mask = 1 << (bit % 64);
        if on {
            *word |= mask;
        } else {
            *word &= !mask;
        }
    }
}

/// The first multiple of `resolution_ms` strictly after `now_ms`, saturating.
fn next_boundary(now_ms: u64, resolution_ms: u64) -> u64 {
    (now_ms / resolution_ms)
        .saturating_add(1)
        .saturating_mul(resolution_ms)
}

#[cfg(test)]
mod tests;
