//! The raw decoder: every non-empty read is one heartbeat using all of it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil::protocol::{Frame, Protocol, RawProtocol};
use vigil_fuzz::{reads, serve, Input};

fuzz_target!(|data: &[u8]| {
    let input = Input::parse(data);
    let p = RawProtocol::default();
    let reads = reads(input.stream, input.sizes);
    let mut consumed = Vec::new();
    for read in &reads {
        assert_eq!(
            p.decode(read),
            Ok(Some((Frame::Ping { token: None }, read.len())))
        );
        consumed.extend_from_slice(read);
    }
    assert_eq!(consumed, input.stream);
    let trace = serve(&p, &reads);
    assert_eq!(trace.len(), reads.len() + 1);
});
