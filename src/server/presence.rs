//! Who is online: client id to connection, with MQTT's takeover rule.
//!
//! The server session consults presence only through [`PresenceTable`], so
//! that the table can later live behind workers or a cluster engine; the
//! one in use today is [`LocalPresence`], a hash map in the loop's thread.

use std::collections::HashMap;
use std::sync::Arc;

use super::session::ConnRef;

/// The one table of online client ids a server consults: one connection per
/// id, a newer claim takes the id over (MQTT's rule).
pub(crate) trait PresenceTable {
    /// Gives `id` to `conn`. Returns the shared id to keep on the connection
    /// and the connection that held it before, which must be closed.
    fn claim(&mut self, id: &str, conn: ConnRef) -> (Arc<str>, Option<ConnRef>);

    /// Takes `id` offline, but only if `conn` still holds it: a replaced
    /// connection must not remove its successor.
    fn release(&mut self, id: &str, conn: ConnRef);

    /// The connection that holds `id`, if it is online.
    fn get(&self, id: &str) -> Option<ConnRef>;

    /// The online client ids and their connections, in no order.
    fn iter(&self) -> Box<dyn Iterator<Item = (&str, ConnRef)> + '_>;

    /// How many client ids are online.
    fn len(&self) -> usize;

    /// Whether this server owns `id`: true unless it is one of several
    /// workers, each owning a shard of the ids (see `server::workers`).
    fn owns(&self, _id: &str) -> bool {
        true
    }
}

/// The online client ids of one server, in a hash map.
#[derive(Debug, Default)]
pub(crate) struct LocalPresence {
    online: HashMap<Arc<str>, ConnRef>,
    /// As worker `.0` of `.1`, the shard of ids this table owns.
    shard: Option<(u32, u32)>,
}

impl LocalPresence {
    /// The table of worker `index` of `count`: it owns the ids that
    /// [`owner_of`](super::workers::owner_of) gives to `index`.
    pub fn shard(index: u32, count: u32) -> LocalPresence {
        LocalPresence {
            online: HashMap::new(),
            shard: Some((index, count)),
        }
    }
}

impl PresenceTable for LocalPresence {
    fn claim(&mut self, id: &str, conn: ConnRef) -> (Arc<str>, Option<ConnRef>) {
        if let Some((key, &holder)) = self.online.get_key_value(id) {
            let key = Arc::clone(key);
            self.online.insert(Arc::clone(&key), conn);
            return (key, (holder != conn).then_some(holder));
        }
        let key: Arc<str> = Arc::from(id);
        self.online.insert(Arc::clone(&key), conn);
        (key, None)
    }

    fn release(&mut self, id: &str, conn: ConnRef) {
        if self.online.get(id) == Some(&conn) {
            self.online.remove(id);
        }
    }

    fn get(&self, id: &str) -> Option<ConnRef> {
        self.online.get(id).copied()
    }

    fn iter(&self) -> Box<dyn Iterator<Item = (&str, ConnRef)> + '_> {
        Box::new(self.online.iter().map(|(id, c)| (&**id, *c)))
    }

    fn len(&self) -> usize {
        self.online.len()
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
        let (id, old) = p.claim("dev", c(1, 1));
        assert_eq!((&*id, old), ("dev", None));
        // The same connection saying HELLO again replaces nobody.
        assert_eq!(p.claim("dev", c(1, 1)).1, None);
        // A newer connection takes over; the older one is named.
        assert_eq!(p.claim("dev", c(2, 2)).1, Some(c(1, 1)));
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
        let (a, _) = p.claim("x", c(1, 1));
        let (b, _) = p.claim("x", c(2, 2));
        assert!(Arc::ptr_eq(&a, &b));
    }
}
