//! Who is online: client id to connection, with MQTT's takeover rule.
//!
//! The server session consults presence only through [`PresenceTable`], so
//! that the table can later live behind workers or a cluster engine; the
//! one in use today is [`LocalPresence`], a hash table in the loop's thread.
//!
//! # Layout (what a named connection costs)
//! The table owns the ids: each claim is a [`Named`] entry (the id, inline
//! up to 24 bytes, the connection, the claim's tick) in a slab, and a
//! connection keeps only its entry's [`NameKey`] (4 bytes). The index from
//! id to entry is a hash table of 4-byte slab keys, so its empty buckets
//! (a hash table is between 44 % and 87.5 % full) cost 5 bytes each
//! rather than an entry's 40. An id of up to 24 bytes takes no allocation
//! of its own.
//!
//! # Rules
//! - One entry per claim, owned by the claiming connection from
//!   [`claim`](PresenceTable::claim) to [`free`](PresenceTable::free). The
//!   index points at the entry of the connection that holds the id now;
//!   an entry that was taken over stays (its connection still names its id
//!   in its last event) until its connection frees it.
//! - [`release`](PresenceTable::release) takes the id offline, but only if
//!   this entry still holds it (a replaced connection must not remove its
//!   successor); the entry stays readable until it is freed.
//! - Listing in id order (the admin endpoint's paging) needs an ordered
//!   index; it exists only when asked for ([`LocalPresence::ordered`]), so
//!   a server without the admin endpoint pays nothing for it, and one with
//!   it pays a `BTreeSet` insert per HELLO and a removal per release, never
//!   anything per heartbeat.

use std::collections::BTreeSet;
use std::hash::{BuildHasher, RandomState};
use std::num::NonZeroU32;
use std::ops::Bound;

use compact_str::CompactString;
use hashbrown::HashTable;
use slab::Slab;

use super::session::ConnRef;
use crate::time::Tick;

/// A connection's claim on a client id: its entry in the presence table.
/// Four bytes, and `Option<NameKey>` too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NameKey(NonZeroU32);

impl NameKey {
    /// The key of slab entry `index`, if it fits (`!index`, so that the
    /// one index that does not is `u32::MAX`).
    fn new(index: usize) -> Option<NameKey> {
        u32::try_from(index)
            .ok()
            .and_then(|i| NonZeroU32::new(!i))
            .map(NameKey)
    }

    fn index(self) -> usize {
        !self.0.get() as usize
    }
}

/// The one table of online client ids a server consults: one connection per
/// id, a newer claim takes the id over (MQTT's rule).
pub(crate) trait PresenceTable {
    /// Gives `id` to `conn`. Returns the key of the claim, to keep on the
    /// connection until [`free`](Self::free), and the connection that held
    /// the id before, which must be closed. `None` when the table can hold
    /// no more claims.
    fn claim(&mut self, id: &str, conn: ConnRef, now: Tick) -> Option<(NameKey, Option<ConnRef>)>;

    /// The client id of claim `key` (empty for a key that is not one).
    fn name(&self, key: NameKey) -> &str;

    /// Takes claim `key`'s id offline, if the claim still holds it; the
    /// claim's name stays readable until [`free`](Self::free).
    fn release(&mut self, key: NameKey);

    /// Forgets claim `key` (releasing it first, if it was not).
    fn free(&mut self, key: NameKey);

    /// The connection that holds `id`, if it is online.
    fn get(&self, id: &str) -> Option<ConnRef>;

    /// The online client ids and their connections, in no order.
    fn iter(&self) -> Box<dyn Iterator<Item = (&str, ConnRef)> + '_>;

    /// How many client ids are online.
    fn len(&self) -> usize;

    /// When the connection holding `id` claimed it (the tick of its HELLO).
    fn since(&self, id: &str) -> Option<Tick>;

    /// Up to `limit` online ids greater than `after` (all, without it), in
    /// ascending order, with their connections; `None` when this table
    /// keeps no ordered index.
    fn page(&self, after: Option<&str>, limit: usize) -> Option<Vec<(CompactString, ConnRef)>>;

    /// Whether this server owns `id`: true unless it is one of several
    /// workers, each owning a shard of the ids (see `server::workers`).
    fn owns(&self, _id: &str) -> bool {
        true
    }
}

/// The online client ids of one server (and, when asked for, an ordered
/// index of the same ids). See the module docs for the layout.
#[derive(Debug, Default)]
pub(crate) struct LocalPresence {
    names: Slab<Named>,
    /// The claims that hold their id, one per id (slab keys of `names`),
    /// hashed by id.
    online: HashTable<u32>,
    hasher: RandomState,
    ordered: Option<BTreeSet<CompactString>>,
    /// As worker `.0` of `.1`, the shard of ids this table owns.
    shard: Option<(u32, u32)>,
}

/// One claim: the id, who claimed it, and when.
#[derive(Debug)]
struct Named {
    id: CompactString,
    conn: ConnRef,
    since: Tick,
}

impl LocalPresence {
    /// A table that also keeps its ids in order, for paging.
    pub fn ordered() -> LocalPresence {
        LocalPresence {
            ordered: Some(BTreeSet::new()),
            ..LocalPresence::default()
        }
    }

    /// This table, with room for `names` claims before it grows.
    pub fn with_room(mut self, names: usize) -> LocalPresence {
        self.names = Slab::with_capacity(names);
        self
    }

    /// This table, as worker `index` of `count`: it owns the ids that
    /// [`owner_of`](super::workers::owner_of) gives to `index`.
    pub fn with_shard(mut self, index: u32, count: u32) -> LocalPresence {
        self.shard = Some((index, count));
        self
    }

    /// The claim that holds `id`, if it is online.
    fn holder(&self, id: &str) -> Option<&Named> {
        let hash = self.hasher.hash_one(id);
        let names = &self.names;
        let k = self
            .online
            .find(hash, |&k| names.get(k as usize).is_some_and(|n| n.id == id))?;
        names.get(*k as usize)
    }
}

impl PresenceTable for LocalPresence {
    fn claim(&mut self, id: &str, conn: ConnRef, now: Tick) -> Option<(NameKey, Option<ConnRef>)> {
        let hash = self.hasher.hash_one(id);
        let names = &mut self.names;
        let entry = self.online.entry(
            hash,
            |&k| names.get(k as usize).is_some_and(|n| n.id == id),
            |&k| {
                names
                    .get(k as usize)
                    .map_or(0, |n| self.hasher.hash_one(&*n.id))
            },
        );
        let vacant = match entry {
            hashbrown::hash_table::Entry::Occupied(mut held) => {
                let index = *held.get() as usize;
                let holder = names.get(index)?.conn;
                if holder == conn {
                    // The same connection saying HELLO again: still the first.
                    return Some((NameKey::new(index)?, None));
                }
                let new = names.vacant_entry();
                let key = NameKey::new(new.key())?;
                *held.get_mut() = new.key() as u32;
                new.insert(Named {
                    id: id.into(),
                    conn,
                    since: now,
                });
                return Some((key, Some(holder)));
            }
            hashbrown::hash_table::Entry::Vacant(vacant) => vacant,
        };
        let new = names.vacant_entry();
        let key = NameKey::new(new.key())?;
        vacant.insert(new.key() as u32);
        new.insert(Named {
            id: id.into(),
            conn,
            since: now,
        });
        if let Some(ordered) = &mut self.ordered {
            ordered.insert(id.into());
        }
        Some((key, None))
    }

    fn name(&self, key: NameKey) -> &str {
        self.names.get(key.index()).map_or("", |n| &n.id)
    }

    fn release(&mut self, key: NameKey) {
        let Some(named) = self.names.get(key.index()) else {
            return;
        };
        let hash = self.hasher.hash_one(&*named.id);
        if let Ok(held) = self.online.find_entry(hash, |&k| k as usize == key.index()) {
            held.remove();
            if let Some(ordered) = &mut self.ordered {
                ordered.remove(&named.id);
            }
        }
    }

    fn free(&mut self, key: NameKey) {
        self.release(key);
        self.names.try_remove(key.index());
    }

    fn get(&self, id: &str) -> Option<ConnRef> {
        self.holder(id).map(|n| n.conn)
    }

    fn iter(&self) -> Box<dyn Iterator<Item = (&str, ConnRef)> + '_> {
        Box::new(
            self.online
                .iter()
                .filter_map(|&k| self.names.get(k as usize))
                .map(|n| (&*n.id, n.conn)),
        )
    }

    fn len(&self) -> usize {
        self.online.len()
    }

    fn since(&self, id: &str) -> Option<Tick> {
        self.holder(id).map(|n| n.since)
    }

    fn page(&self, after: Option<&str>, limit: usize) -> Option<Vec<(CompactString, ConnRef)>> {
        let ordered = self.ordered.as_ref()?;
        let from = after.map_or(Bound::Unbounded, Bound::Excluded);
        Some(
            ordered
                .range::<str, _>((from, Bound::Unbounded))
                .take(limit)
                .filter_map(|id| Some((id.clone(), self.get(id)?)))
                .collect(),
        )
    }

    fn owns(&self, id: &str) -> bool {
        self.shard
            .is_none_or(|(index, count)| super::workers::owner_of(id, count) == index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    fn c(key: u32, generation: u32) -> ConnRef {
        ConnRef { key, generation }
    }

    fn claim(
        p: &mut LocalPresence,
        id: &str,
        conn: ConnRef,
        now: Tick,
    ) -> (NameKey, Option<ConnRef>) {
        p.claim(id, conn, now).expect("room")
    }

    #[test]
    fn takeover_and_release() {
        let mut p = LocalPresence::default();
        let (first, old) = claim(&mut p, "dev", c(1, 1), 10);
        assert_eq!((p.name(first), old), ("dev", None));
        // The same connection saying HELLO again replaces nobody, and
        // keeps its first claim's time and key.
        assert_eq!(claim(&mut p, "dev", c(1, 1), 20), (first, None));
        assert_eq!(p.since("dev"), Some(10));
        // A newer connection takes over; the older one is named, and its
        // claim still reads the id (for its offline event).
        let (second, old) = claim(&mut p, "dev", c(2, 2), 30);
        assert_eq!(old, Some(c(1, 1)));
        assert_eq!(p.since("dev"), Some(30));
        assert_eq!((p.name(first), p.name(second)), ("dev", "dev"));
        // The replaced connection closing does not take the id offline.
        p.release(first);
        assert_eq!(p.name(first), "dev");
        p.free(first);
        assert_eq!(p.get("dev"), Some(c(2, 2)));
        assert_eq!(p.len(), 1);
        p.release(second);
        assert_eq!((p.get("dev"), p.len(), p.name(second)), (None, 0, "dev"));
        p.free(second);
        assert_eq!(p.name(second), "");
        assert!(p.names.is_empty());
    }

    #[test]
    fn a_replaced_claim_freed_last_leaves_the_holder_alone() {
        let mut p = LocalPresence::default();
        let (a, _) = claim(&mut p, "x", c(1, 1), 0);
        let (b, _) = claim(&mut p, "x", c(2, 2), 0);
        let (d, old) = claim(&mut p, "x", c(3, 3), 0);
        assert_eq!(old, Some(c(2, 2)));
        // The holder goes first; then the two it replaced.
        p.free(d);
        assert_eq!(p.get("x"), None);
        // Its slot is reused by another id: the old claims must not touch it.
        let (e, _) = claim(&mut p, "y", c(4, 4), 0);
        p.free(b);
        p.free(a);
        assert_eq!((p.get("y"), p.name(e), p.len()), (Some(c(4, 4)), "y", 1));
    }

    #[test]
    fn long_ids_and_short_ids_alike() {
        let mut p = LocalPresence::default();
        let long = "l".repeat(200);
        let (k, _) = claim(&mut p, &long, c(1, 1), 0);
        let (s, _) = claim(&mut p, "s", c(2, 2), 0);
        assert_eq!((p.name(k), p.name(s)), (&*long, "s"));
        assert_eq!(p.get(&long), Some(c(1, 1)));
    }

    fn ids(page: Option<Vec<(CompactString, ConnRef)>>) -> Vec<String> {
        page.expect("ordered")
            .into_iter()
            .map(|(id, _)| id.to_string())
            .collect()
    }

    #[test]
    fn pages_walk_the_ids_in_order() {
        // Without the index there are no pages, and nothing is kept.
        let mut plain = LocalPresence::default();
        claim(&mut plain, "a", c(1, 1), 0);
        assert!(plain.page(None, 10).is_none());
        assert!(plain.ordered.is_none());

        let mut p = LocalPresence::ordered();
        let mut keys = Vec::new();
        for (i, id) in ["d", "b", "e", "a", "c"].into_iter().enumerate() {
            keys.push(claim(&mut p, id, c(i as u32, i as u32), 0).0);
        }
        assert_eq!(ids(p.page(None, 2)), ["a", "b"]);
        assert_eq!(ids(p.page(Some("b"), 2)), ["c", "d"]);
        assert_eq!(ids(p.page(Some("d"), 2)), ["e"]);
        assert_eq!(ids(p.page(Some("e"), 2)), Vec::<String>::new());
        // `after` need not be online itself.
        assert_eq!(ids(p.page(Some("bb"), 1)), ["c"]);
        assert_eq!(ids(p.page(None, 0)), Vec::<String>::new());
        // A takeover keeps one entry; a stale release removes nothing; a
        // real one removes the id from the index too.
        let (newer, _) = claim(&mut p, "c", c(9, 9), 0);
        p.free(keys[4]);
        assert_eq!(ids(p.page(None, 10)), ["a", "b", "c", "d", "e"]);
        assert_eq!(p.page(Some("b"), 1).expect("ordered")[0].1, c(9, 9));
        p.release(newer);
        assert_eq!(ids(p.page(None, 10)), ["a", "b", "d", "e"]);
    }

    #[test]
    fn no_key_is_u32_max() {
        assert_eq!(NameKey::new(0).map(NameKey::index), Some(0));
        assert_eq!(
            NameKey::new(u32::MAX as usize - 1).map(NameKey::index),
            Some(u32::MAX as usize - 1)
        );
        assert_eq!(NameKey::new(u32::MAX as usize), None);
        assert_eq!(std::mem::size_of::<Option<NameKey>>(), 4);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Claim(u8, u8),
        Release(u8),
        Free(u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0..6u8, 0..8u8).prop_map(|(id, conn)| Op::Claim(id, conn)),
            (0..8u8).prop_map(Op::Release),
            (0..8u8).prop_map(Op::Free),
        ]
    }

    proptest! {
        /// Against a model (a map of id to holder, and each connection's
        /// claim as the session keeps it): any claims, releases and frees
        /// give the same holders, the same takeovers and the same names.
        #[test]
        fn the_table_agrees_with_a_map(ops in proptest::collection::vec(op(), 0..200)) {
            let mut p = LocalPresence::ordered();
            let mut holders: HashMap<String, u8> = HashMap::new();
            // What each connection holds: its key, its id, whether released.
            let mut held: HashMap<u8, (NameKey, String, bool)> = HashMap::new();
            for op in ops {
                match op {
                    Op::Claim(id, conn) => {
                        let id = format!("id-{id}");
                        if held.get(&conn).is_some_and(|(_, h, r)| *h == id && !r) {
                            continue; // the session checks this itself
                        }
                        if let Some((k, _, _)) = held.remove(&conn) {
                            p.free(k);
                            holders.retain(|_, c| *c != conn);
                        }
                        let cref = c(u32::from(conn), 1);
                        let (k, old) = claim(&mut p, &id, cref, 0);
                        let before = holders.insert(id.clone(), conn);
                        prop_assert_eq!(old, before.map(|b| c(u32::from(b), 1)));
                        held.insert(conn, (k, id, false));
                    }
                    Op::Release(conn) => {
                        if let Some((k, id, released)) = held.get_mut(&conn) {
                            p.release(*k);
                            *released = true;
                            if holders.get(id) == Some(&conn) {
                                holders.remove(id);
                            }
                        }
                    }
                    Op::Free(conn) => {
                        if let Some((k, id, _)) = held.remove(&conn) {
                            p.free(k);
                            if holders.get(&id) == Some(&conn) {
                                holders.remove(&id);
                            }
                        }
                    }
                }
                prop_assert_eq!(p.len(), holders.len());
                for (id, &conn) in &holders {
                    prop_assert_eq!(p.get(id), Some(c(u32::from(conn), 1)));
                }
                for (k, id, _) in held.values() {
                    prop_assert_eq!(p.name(*k), id.as_str());
                }
                prop_assert_eq!(p.names.len(), held.len());
                let mut listed: Vec<String> = p.iter().map(|(id, _)| id.to_owned()).collect();
                listed.sort();
                let mut expected: Vec<String> = holders.keys().cloned().collect();
                expected.sort();
                prop_assert_eq!(&ids(p.page(None, 100)), &expected);
                prop_assert_eq!(listed, expected);
            }
        }
    }
}
