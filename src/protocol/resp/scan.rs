//! Resuming an incomplete RESP request where the last read left it.
//!
//! # Why
//! The decoder in the parent module reads a request front to back and
//! answers "need more" when it runs out. Asked again after every read, it
//! would walk the same prefix each time: a 63 KB request trickled one byte
//! per read costs about 2·10⁹ byte visits. Redis avoids this by keeping its
//! place in the client (`multibulklen`, `bulklen` and the query buffer's
//! position); this scanner does the same with a [`Resume`].
//!
//! # Rules
//! - The scanner never decides anything. It walks the bytes the decoder
//!   would read, in the same order, and stops with [`Scan::Decide`] on the
//!   first byte that completes the request, is not what a valid request has
//!   there, or reaches the size limit. The decoder then reads the whole
//!   request once and gives the answer, so results are the decoder's by
//!   construction; the scanner only decides how often the decoder runs.
//! - [`Scan::More`] means the decoder would also say "need more" on these
//!   bytes, and the [`Resume`] says where to carry on: each byte is looked
//!   at once while the request is incomplete, and the contents of a bulk
//!   string not at all (only whether they have all arrived).
//! - The state fits a [`Resume`]: the position, the phase, the elements
//!   still to come and the number being read (each at most `max_frame`,
//!   which must fit in a `u32`; the caller falls back otherwise).

use crate::protocol::Resume;

/// What [`scan`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Scan {
    /// Incomplete: the decoder would need more bytes too.
    More,
    /// Complete, invalid or too long: let the decoder read it and say.
    Decide,
}

/// Where the scanner is in a request. Stored as `Resume::state[0]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
enum Phase {
    /// Nothing read yet (`Resume::default()`).
    Start = 0,
    /// An inline request: `checked` bytes have no `\n`.
    Inline,
    /// After `*`: the count's first byte.
    CountFirst,
    /// In the count's digits.
    CountDigits,
    /// After the count's `\r`: its `\n`.
    CountLf,
    /// At an element: its `$`.
    Element,
    /// After `$`: the length's first byte.
    LenFirst,
    /// In the length's digits.
    LenDigits,
    /// After the length's `\r`: its `\n`.
    LenLf,
    /// At a bulk string's first byte, its length in `state[2]`.
    Data,
    /// After a bulk string's contents: its `\r`.
    DataCr,
    /// After that `\r`: its `\n`.
    DataLf,
}

impl Phase {
    fn from_u32(n: u32) -> Option<Phase> {
        const ALL: [Phase; 12] = [
            Phase::Start,
            Phase::Inline,
            Phase::CountFirst,
            Phase::CountDigits,
            Phase::CountLf,
            Phase::Element,
            Phase::LenFirst,
            Phase::LenDigits,
            Phase::LenLf,
            Phase::Data,
            Phase::DataCr,
            Phase::DataLf,
        ];
        ALL.get(usize::try_from(n).ok()?).copied()
    }
}

/// The smallest multibulk element, `$0\r\n\r\n`, in bytes.
const MIN_ELEMENT: u64 = 6;

/// Walks `input` from where `resume` says, for requests of at most `max`
/// bytes; on [`Scan::More`], `resume` says where to carry on next time
/// (with more bytes appended to the same `input`).
pub(super) fn scan(input: &[u8], max: u32, resume: &mut Resume) -> Scan {
    let mut s = Scanner {
        input,
        max,
        pos: resume.checked,
        phase: Phase::from_u32(resume.state[0]).unwrap_or(Phase::Start),
        remaining: resume.state[1],
        value: resume.state[2],
    };
    let found = s.run();
    *resume = Resume {
        checked: s.pos,
        state: [s.phase as u32, s.remaining, s.value],
    };
    found
}

struct Scanner<'a> {
    input: &'a [u8],
    max: u32,
    /// The next byte to look at.
    pos: u32,
    phase: Phase,
    /// Elements still to come, once the count is known.
    remaining: u32,
    /// The number being read, or the length of the bulk string.
    value: u32,
}

/// Stops the walk: `Err(Scan::More)` or `Err(Scan::Decide)`.
type Step = Result<(), Scan>;

impl Scanner<'_> {
    fn run(&mut self) -> Scan {
        loop {
            if let Err(found) = self.step() {
                return found;
            }
        }
    }

    /// The next byte, which the decoder would read too; the decoder says
    /// "too long" for any read at `max` or beyond.
    fn byte(&mut self) -> Result<u8, Scan> {
        if self.pos >= self.max {
            return Err(Scan::Decide);
        }
        let at = usize::try_from(self.pos).map_err(|_| Scan::Decide)?;
        let b = *self.input.get(at).ok_or(Scan::More)?;
        super::count_examined(1);
        self.pos += 1;
        Ok(b)
    }

    /// Adds a digit to the number being read; past `max` it is too long.
    fn digit(&mut self, b: u8) -> Step {
        let n = u64::from(self.value) * 10 + u64::from(b - b'0');
        if n > u64::from(self.max) {
            return Err(Scan::Decide);
        }
        self.value = u32::try_from(n).map_err(|_| Scan::Decide)?;
        Ok(())
    }

    /// One move of the walk. Each phase is entered with `pos` at the byte it
    /// names, so stopping for more bytes anywhere loses nothing.
    fn step(&mut self) -> Step {
        match self.phase {
            Phase::Start => match self.byte()? {
                b'*' => self.phase = Phase::CountFirst,
                b'\n' => return Err(Scan::Decide),
                _ => self.phase = Phase::Inline,
            },
            Phase::Inline => return self.inline(),
            Phase::CountFirst | Phase::LenFirst => {
                let b = self.byte()?;
                if !b.is_ascii_digit() {
                    // A sign (`*-1` is handled by the decoder at once, it is
                    // at most four bytes), an empty number or garbage.
                    return Err(Scan::Decide);
                }
                self.value = 0;
                self.digit(b)?;
                self.phase = if self.phase == Phase::CountFirst {
                    Phase::CountDigits
                } else {
                    Phase::LenDigits
                };
            }
            Phase::CountDigits | Phase::LenDigits => match self.byte()? {
                b'\r' => {
                    self.phase = if self.phase == Phase::CountDigits {
                        Phase::CountLf
                    } else {
                        Phase::LenLf
                    }
                }
                b if b.is_ascii_digit() => self.digit(b)?,
                _ => return Err(Scan::Decide),
            },
            Phase::CountLf => {
                if self.byte()? != b'\n' {
                    return Err(Scan::Decide);
                }
                // The decoder refuses a count that cannot fit before any
                // element arrives, and `*0` is complete.
                let least = u64::from(self.value) * MIN_ELEMENT + u64::from(self.pos);
                if self.value == 0 || least > u64::from(self.max) {
                    return Err(Scan::Decide);
                }
                self.remaining = self.value;
                self.phase = Phase::Element;
            }
            Phase::Element => {
                if self.byte()? != b'$' {
                    return Err(Scan::Decide);
                }
                self.phase = Phase::LenFirst;
            }
            Phase::LenLf => {
                if self.byte()? != b'\n' {
                    return Err(Scan::Decide);
                }
                // The decoder refuses a bulk string whose "\r\n" would end
                // past the limit before any of it arrives.
                if u64::from(self.pos) + u64::from(self.value) + 2 > u64::from(self.max) {
                    return Err(Scan::Decide);
                }
                self.phase = Phase::Data;
            }
            Phase::Data => return self.data(),
            Phase::DataCr => {
                if self.byte()? != b'\r' {
                    return Err(Scan::Decide);
                }
                self.phase = Phase::DataLf;
            }
            Phase::DataLf => {
                if self.byte()? != b'\n' {
                    return Err(Scan::Decide);
                }
                self.remaining = self.remaining.saturating_sub(1);
                if self.remaining == 0 {
                    return Err(Scan::Decide);
                }
                self.phase = Phase::Element;
            }
        }
        Ok(())
    }

    /// An inline request: look for its `\n` among the bytes not yet
    /// searched (the decoder wants it among the first `max`).
    fn inline(&mut self) -> Step {
        let start = usize::try_from(self.pos).map_err(|_| Scan::Decide)?;
        let window_end = self
            .input
            .len()
            .min(usize::try_from(self.max).map_err(|_| Scan::Decide)?);
        let window = self.input.get(start..window_end).unwrap_or_default();
        super::count_examined(window.len());
        if window.contains(&b'\n') {
            return Err(Scan::Decide);
        }
        self.pos = u32::try_from(window_end).map_err(|_| Scan::Decide)?;
        if self.pos >= self.max {
            return Err(Scan::Decide);
        }
        Err(Scan::More)
    }

    /// A bulk string of `value` bytes and its "\r\n": the contents are not
    /// looked at, only whether they are all there; then the "\r\n" is read
    /// byte by byte as the decoder does.
    fn data(&mut self) -> Step {
        let end = u64::from(self.pos) + u64::from(self.value);
        if (self.input.len() as u64) < end {
            return Err(Scan::More);
        }
        self.pos = u32::try_from(end).map_err(|_| Scan::Decide)?;
        self.value = 0;
        self.phase = Phase::DataCr;
        Ok(())
    }
}
