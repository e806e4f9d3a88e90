//! [`Partial`]: a connection's incomplete frame, and where the codec
//! stopped in it. 8 bytes and no heap while there is none.

use crate::protocol::Resume;

/// The bytes of an incomplete frame and the codec's [`Resume`] for them,
/// boxed together so that a connection without a partial frame holds one
/// null pointer (as [`Spill`](crate::server::spill::Spill) does) and the
/// codec's state costs nothing while idle.
#[derive(Debug, Default)]
pub(crate) struct Partial(Option<Box<Pending>>);

#[derive(Debug)]
struct Pending {
    bytes: Vec<u8>,
    resume: Resume,
}

impl Partial {
    /// Takes the contents out, leaving nothing allocated.
    pub fn take(&mut self) -> (Vec<u8>, Resume) {
        match self.0.take() {
            Some(p) => (p.bytes, p.resume),
            None => (Vec::new(), Resume::default()),
        }
    }

    /// Keeps `bytes` and `resume` if either holds anything (a WebSocket
    /// message whose first fragment was empty has no bytes yet, but is
    /// in a message); frees both otherwise.
    pub fn put(&mut self, bytes: Vec<u8>, resume: Resume) {
        self.0 = if bytes.is_empty() && resume == Resume::default() {
            None
        } else {
            Some(Box::new(Pending { bytes, resume }))
        };
    }

    /// The capacity of the bytes held, if any are.
    #[cfg(test)]
    pub fn capacity(&self) -> Option<usize> {
        self.0.as_ref().map(|p| p.bytes.capacity())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_frees_when_empty_and_keeps_the_resume() {
        let mut p = Partial::default();
        assert_eq!(p.take(), (Vec::new(), Resume::default()));
        let r = Resume {
            checked: 2,
            state: [1, 2, 3],
        };
        p.put(b"ab".to_vec(), r);
        assert_eq!(p.take(), (b"ab".to_vec(), r));
        assert!(p.0.is_none());
        p.put(Vec::new(), Resume::default());
        assert!(p.0.is_none());
        // A place in a frame is kept even with no bytes.
        p.put(Vec::new(), r);
        assert_eq!(p.take(), (Vec::new(), r));
        assert_eq!(std::mem::size_of::<Partial>(), 8);
    }
}
