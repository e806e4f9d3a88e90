//! TEMPORARY stand-in with the wheel's API (BTreeMap inside); replaced by the real wheel.
#![allow(missing_docs)]
use std::collections::{BTreeMap, VecDeque};
pub const DEFAULT_RESOLUTION_MS: u64 = 100;
pub const DEFAULT_SLOTS: usize = 1024;
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimerKey(u32);
pub struct Wheel<T> {
    res: u64,
    slots: usize,
    map: BTreeMap<(u64, u32), T>,
    dl: std::collections::HashMap<u32, u64>,
    next: u32,
    expired: VecDeque<(TimerKey, T)>,
    now: u64,
}
impl<T> Wheel<T> {
    pub fn new(res: u64, slots: usize) -> Self {
        Wheel {
            res: res.max(1),
            slots,
            map: BTreeMap::new(),
            dl: Default::default(),
            next: 0,
            expired: VecDeque::new(),
            now: 0,
        }
    }
    pub fn with_capacity(res: u64, slots: usize, _c: usize) -> Self {
        Self::new(res, slots)
    }
    pub fn insert(&mut self, d: u64, v: T) -> TimerKey {
        self.next += 1;
        let k = self.next;
        self.map.insert((d, k), v);
        self.dl.insert(k, d);
        TimerKey(k)
    }
    pub fn cancel(&mut self, k: TimerKey) -> Option<T> {
        let d = self.dl.remove(&k.0)?;
        self.map.remove(&(d, k.0))
    }
    pub fn reset(&mut self, k: TimerKey, d: u64) -> bool {
        match self.cancel(k) {
            Some(v) => {
                self.map.insert((d, k.0), v);
                self.dl.insert(k.0, d);
                true
            }
            None => false,
        }
    }
    pub fn advance(&mut self, now: u64) {
        self.now = now;
        let lim = now / self.res * self.res;
        while let Some(e) = self.map.first_entry() {
            if e.key().0 <= lim {
                let ((_, k), v) = e.remove_entry();
                self.dl.remove(&k);
                self.expired.push_back((TimerKey(k), v));
            } else {
                break;
            }
        }
    }
    pub fn poll_expired(&mut self) -> Option<(TimerKey, T)> {
        self.expired.pop_front()
    }
    pub fn deadline(&self, k: TimerKey) -> Option<u64> {
        self.dl.get(&k.0).copied()
    }
    pub fn get(&self, k: TimerKey) -> Option<&T> {
        let d = self.dl.get(&k.0)?;
        self.map.get(&(*d, k.0))
    }
    pub fn len(&self) -> usize {
        self.map.len()
    }
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
    pub fn resolution_ms(&self) -> u64 {
        self.res
    }
    pub fn slots(&self) -> usize {
        self.slots
    }
    pub fn next_tick_ms(&self, now: u64) -> u64 {
        (now / self.res + 1) * self.res
    }
}
