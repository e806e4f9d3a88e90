//! [`Spill`]: a byte buffer that costs 8 bytes and no heap while empty.

/// A byte buffer that takes 8 bytes and no heap while empty.
///
/// A plain `Vec` would take 24 bytes in every idle connection; the extra
/// allocation is paid only by connections that have something buffered
/// (output the socket has not taken yet; see also the session's `Partial`).
#[allow(clippy::box_collection)]
#[derive(Debug, Default)]
pub(crate) struct Spill(Option<Box<Vec<u8>>>);

impl Spill {
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |v| v.len())
    }

    pub fn as_mut(&mut self) -> Option<&mut Vec<u8>> {
        self.0.as_deref_mut()
    }

    /// The buffer, created on first use.
    pub fn get_mut(&mut self) -> &mut Vec<u8> {
        self.0.get_or_insert_with(Box::default)
    }

    pub fn release_if_empty(&mut self) {
        if self.is_empty() {
            self.0 = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spill_frees_when_empty() {
        let mut s = Spill::default();
        assert!(s.is_empty());
        s.get_mut().extend_from_slice(b"ab");
        assert_eq!(s.len(), 2);
        s.as_mut().unwrap().clear();
        s.release_if_empty();
        assert!(s.0.is_none());
        assert_eq!(std::mem::size_of::<Spill>(), 8);
    }
}
