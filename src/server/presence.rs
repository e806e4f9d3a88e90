//! Who is online: client id to connection, with MQTT's takeover rule.

use std::collections::HashMap;
use std::sync::Arc;

use super::conn::ConnRef;

/// The online client ids. One connection per id: a newer HELLO takes the id
/// over, and the older connection is told `BYE replaced`.
#[derive(Debug, Default)]
pub(crate) struct Presence {
    online: HashMap<Arc<str>, ConnRef>,
}

impl Presence {
    /// Gives `id` to `conn`. Returns the shared id to keep on the connection
    /// and the connection that held it before, which must be closed.
    pub fn claim(&mut self, id: &str, conn: ConnRef) -> (Arc<str>, Option<ConnRef>) {
        if let Some((key, &holder)) = self.online.get_key_value(id) {
            let key = Arc::clone(key);
            self.online.insert(Arc::clone(&key), conn);
            return (key, (holder != conn).then_some(holder));
        }
        let key: Arc<str> = Arc::from(id);
        self.online.insert(Arc::clone(&key), conn);
        (key, None)
    }

    /// Takes `id` offline, but only if `conn` still holds it: a replaced
    /// connection must not remove its successor.
    pub fn release(&mut self, id: &str, conn: ConnRef) {
        if self.online.get(id) == Some(&conn) {
            self.online.remove(id);
        }
    }

    /// The connection that holds `id`, if it is online.
    pub fn get(&self, id: &str) -> Option<ConnRef> {
        self.online.get(id).copied()
    }

    /// The online client ids and their connections.
    pub fn iter(&self) -> impl Iterator<Item = (&str, ConnRef)> + '_ {
        self.online.iter().map(|(id, c)| (&**id, *c))
    }

    /// How many client ids are online.
    pub fn len(&self) -> usize {
        self.online.len()
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
        let mut p = Presence::default();
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
        let mut p = Presence::default();
        let (a, _) = p.claim("x", c(1, 1));
        let (b, _) = p.claim("x", c(2, 2));
        assert!(Arc::ptr_eq(&a, &b));
    }
}
