//! The line decoder: the server's read loop over any bytes, split any way.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil::protocol::{line, LineProtocol};
use vigil_fuzz::{check_split, Input};

fuzz_target!(|data: &[u8]| {
    let input = Input::parse(data);
    let p = LineProtocol::new(input.limit(line::DEFAULT_MAX_LINE));
    check_split(&p, &input);
});
