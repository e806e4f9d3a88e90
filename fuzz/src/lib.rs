//! The server's read loop, for fuzzing the decoders.
//!
//! Each target turns the fuzzer's bytes into an [`Input`]: a size limit for
//! the codec, read sizes, and the stream a peer sends. [`check_split`] feeds
//! the stream through the loop the server runs (append a read to the buffer,
//! decode frames until "need more" or the first error) and asserts the
//! codec contract on every step, that resuming with the codec's `Resume`
//! (as the server does) answers what `decode` answers at every step, and
//! that the result does not depend on how the stream was split into reads.

use vigil::protocol::{Protocol, Resume};

/// What a fuzz target runs on, read from the fuzzer's bytes: byte 0 is
/// `limit`, byte 1 the number `k` of read sizes (mod 32), the next `k`
/// bytes the sizes, and the rest the stream. A plain layout rather than
/// `Arbitrary`, so that crafted inputs are easy to write by hand.
#[derive(Debug)]
pub struct Input<'a> {
    /// The codec's size limit: small, so that streams cross it often
    /// (0 is clamped to 1 by the constructors); 255 means the default.
    pub limit: u8,
    /// Read sizes, used in turn (0 counts as 1); none means one read.
    pub sizes: &'a [u8],
    /// What the peer sends.
    pub stream: &'a [u8],
}

impl<'a> Input<'a> {
    /// Splits the fuzzer's bytes into an input.
    pub fn parse(data: &'a [u8]) -> Input<'a> {
        let limit = data.first().copied().unwrap_or(255);
        let k = data.get(1).map_or(0, |&k| usize::from(k % 32));
        let rest = data.get(2..).unwrap_or_default();
        let (sizes, stream) = rest.split_at(k.min(rest.len()));
        Input {
            limit,
            sizes,
            stream,
        }
    }

    /// The limit to build the codec with, `default` for 255.
    pub fn limit(&self, default: usize) -> usize {
        match self.limit {
            255 => default,
            n => usize::from(n),
        }
    }
}

/// Cuts `stream` into reads of the given sizes, cycling through them.
pub fn reads<'a>(stream: &'a [u8], sizes: &[u8]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut rest = stream;
    let mut sizes = sizes.iter().cycle();
    while !rest.is_empty() {
        let n = sizes
            .next()
            .map_or(rest.len(), |&n| usize::from(n))
            .clamp(1, rest.len());
        let (read, tail) = rest.split_at(n);
        out.push(read);
        rest = tail;
    }
    out
}

/// Runs the server's loop over `reads`, asserting the contract, and returns
/// a trace: every frame, then the first error or what was left buffered.
pub fn serve<P: Protocol>(p: &P, reads: &[&[u8]]) -> Vec<String> {
    let mut trace = Vec::new();
    let mut buf: Vec<u8> = Vec::new();
    let mut resume = Resume::default();
    for read in reads {
        buf.extend_from_slice(read);
        assert!(
            buf.len() <= p.max_frame() + read.len(),
            "buffered {} > max_frame {} + read {}",
            buf.len(),
            p.max_frame(),
            read.len()
        );
        loop {
            let decoded = p.decode(&buf);
            let resumed = p.decode_resume(&buf, &mut resume);
            assert_eq!(resumed, decoded, "resumed answer differs on {buf:?}");
            match decoded {
                Ok(Some((frame, used))) => {
                    resume = Resume::default();
                    assert!(
                        used >= 1 && used <= buf.len(),
                        "used {used} of {}",
                        buf.len()
                    );
                    trace.push(format!("{frame:?}"));
                    buf.drain(..used);
                }
                Ok(None) => {
                    assert!(
                        buf.len() <= p.max_frame(),
                        "incomplete frame of {} > max_frame {}",
                        buf.len(),
                        p.max_frame()
                    );
                    break;
                }
                Err(e) => {
                    trace.push(format!("error: {e}"));
                    return trace;
                }
            }
        }
    }
    trace.push(format!("left {}", buf.len()));
    trace
}

/// The stream decodes the same in one read, one byte at a time and in
/// reads of `input.sizes`.
pub fn check_split<P: Protocol>(p: &P, input: &Input<'_>) {
    let whole = serve(p, &reads(input.stream, &[]));
    let split = serve(p, &reads(input.stream, input.sizes));
    assert_eq!(whole, split, "split into reads of {:?}", input.sizes);
    let bytes = serve(p, &reads(input.stream, &[1]));
    assert_eq!(whole, bytes, "one byte at a time");
}
