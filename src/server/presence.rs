//! Who is online: client id to connection, with MQTT's takeover rule.
//!
//! The server session consults presence only through [`PresenceTable`], so
//! that the table can later live behind workers or a cluster engine; the
//! one in use today is [`LocalPresence`], a hash map in the loop's thread.
//!
//! Each entry also keeps the tick of the HELLO that claimed it (for the
//! admin endpoint's `since`): the connection itself stays small. Listing
//! in id order (the admin endpoint's paging) needs an ordered index; it
//! exists only when asked for ([`LocalPresence::ordered`]), so a server
//! without the admin endpoint pays nothing for it, and one with it pays a
//! `BTreeSet` insert per HELLO and a removal per release, never anything
//! per heartbeat.

use std::collections::{BTreeSet, HashMap};
use std::ops::Bound;
use std::sync::Arc;

use super::session::ConnRef;
use crate::time::Tick;

/// The one table of online client ids a server consults: one connection per
/// id, a newer claim takes the id over (MQTT's rule).
pub(crate) trait PresenceTable {
    /// Gives `id` to `conn`. Returns the shared id to keep on the connection
    /// and the connection that held it before, which must be closed.
    fn claim(&mut self, id: &str, conn: ConnRef, now: Tick) -> (Arc<str>, Option<ConnRef>);

    /// Takes `id` offline, but only if `conn` still holds it: a replaced
    /// connection must not remove its successor.
    fn release(&mut self, id: &str, conn: ConnRef);

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
    fn page(&self, after: Option<&str>, limit: usize) -> Option<Vec<(Arc<str>, ConnRef)>>;

    /// Whether this server owns `id`: true unless it is one of several
    /// workers, each owning a shard of the ids (see `server::workers`).
    fn owns(&self, _id: &str) -> bool {
        true
    }
}

/// The online client ids of one server, in a hash map (and, when asked
/// for, an ordered index of the same ids).
#[derive(Debug, Default)]
pub(crate) struct LocalPresence {
    online: HashMap<Arc<str>, Claim>,
    ordered: Option<BTreeSet<Arc<str>>>,
    /// As worker `.0` of `.1`, the shard of ids this table owns.
    shard: Option<(u32, u32)>,
}

/// Who holds an id, and since when.
#[derive(Debug, Clone, Copy)]
struct Claim {
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

    /// This table, as worker `index` of `count`: it owns the ids that
    /// [`owner_of`](super::workers::owner_of) gives to `index`.
    pub fn with_shard(mut self, index: u32, count: u32) -> LocalPresence {
        self.shard = Some((index, count));
        self
    }
}

impl PresenceTable for LocalPresence {
    fn claim(&mut self, id: &str, conn: ConnRef, now: Tick) -> (Arc<str>, Option<ConnRef>) {
        let claim = Claim { conn, since: now };
        if let Some((key, &holder)) = self.online.get_key_value(id) {
            let key = Arc::clone(key);
            if holder.conn == conn {
                // The same connection saying HELLO again: still the first.
                return (key, None);
            }
            self.online.insert(Arc::clone(&key), claim);
            return (key, Some(holder.conn));
        }
        let key: Arc<str> = Arc::from(id);
        self.online.insert(Arc::clone(&key), claim);
        if let Some(ordered) = &mut self.ordered {
            ordered.insert(Arc::clone(&key));
        }
        (key, None)
    }

    fn release(&mut self, id: &str, conn: ConnRef) {
        if self.online.get(id).map(|c| c.conn) == Some(conn) {
            self.online.remove(id);
            if let Some(ordered) = &mut self.ordered {
                ordered.remove(id);
            }
        }
    }

    fn get(&self, id: &str) -> Option<ConnRef> {
        self.online.get(id).map(|c| c.conn)
    }

    fn iter(&self) -> Box<dyn Iterator<Item = (&str, ConnRef)> + '_> {
        Box::new(self.online.iter().map(|(id, c)| (&**id, c.conn)))
    }

    fn len(&self) -> usize {
        self.online.len()
    }

    fn since(&self, id: &str) -> Option<Tick> {
        self.online.get(id).map(|c| c.since)
    }

    fn page(&self, after: Option<&str>, limit: usize) -> Option<Vec<(Arc<str>, ConnRef)>> {
        let ordered = self.ordered.as_ref()?;
        let from = after.map_or(Bound::Unbounded, Bound::Excluded);
        Some(
            ordered
                .range::<str, _>((from, Bound::Unbounded))
                .take(limit)
                .filter_map(|id| Some((Arc::clone(id), self.online.get(&**id)?.conn)))
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

    fn c(key: u32, generation: u32) -> ConnRef {
        ConnRef { key, generation }
    }

    #[test]
    fn takeover_and_release() {
        let mut p = LocalPresence::default();
        let (id, old) = p.claim("dev", c(1, 1), 10);
        assert_eq!((&*id, old), ("dev", None));
        // The same connection saying HELLO again replaces nobody, and
        // keeps its first claim's time.
        assert_eq!(p.claim("dev", c(1, 1), 20).1, None);
        assert_eq!(p.since("dev"), Some(10));
        // A newer connection takes over; the older one is named.
        assert_eq!(p.claim("dev", c(2, 2), 30).1, Some(c(1, 1)));
        assert_eq!(p.since("dev"), Some(30));
        // The replaced connection closing does not take the id offline.
        p.release("dev", c(1, 1));
        assert_eq!(p.get("dev"), Some(c(2, 2)));
        // A reused slab key with another generation is another connection.
        p.release("dev", c(2, 3));
        assert_eq!(p.get("dev"), Some(c(2, 2)));
        p.release("dev", c(2, 2));
        assert_eq!((p.get("dev"), p.len()), (None, 0));
    }

    #[test]
    fn the_id_is_shared_not_copied() {
        let mut p = LocalPresence::default();
        let (a, _) = p.claim("x", c(1, 1), 0);
        let (b, _) = p.claim("x", c(2, 2), 0);
        assert!(Arc::ptr_eq(&a, &b));
    }

    fn ids(page: Option<Vec<(Arc<str>, ConnRef)>>) -> Vec<String> {
        page.expect("ordered")
            .into_iter()
            .map(|(id, _)| id.to_string())
            .collect()
    }

    #[test]
    fn pages_walk_the_ids_in_order() {
        // Without the index there are no pages, and nothing is kept.
        let mut plain = LocalPresence::default();
        plain.claim("a", c(1, 1), 0);
        assert!(plain.page(None, 10).is_none());
        assert!(plain.ordered.is_none());

        let mut p = LocalPresence::ordered();
        for (i, id) in ["d", "b", "e", "a", "c"].into_iter().enumerate() {
            p.claim(id, c(i as u32, i as u32), 0);
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
        p.claim("c", c(9, 9), 0);
        p.release("c", c(2, 2));
        assert_eq!(ids(p.page(None, 10)), ["a", "b", "c", "d", "e"]);
        assert_eq!(p.page(Some("b"), 1).expect("ordered")[0].1, c(9, 9));
        p.release("c", c(9, 9));
        assert_eq!(ids(p.page(None, 10)), ["a", "b", "d", "e"]);
    }
}
