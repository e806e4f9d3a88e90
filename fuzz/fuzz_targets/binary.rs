//! The binary decoder: the server's read loop over any bytes, split any way.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil::protocol::{binary, BinaryProtocol};
use vigil_fuzz::{check_split, Input};

fuzz_target!(|data: &[u8]| {
    let input = Input::parse(data);
    let p = BinaryProtocol::new(input.limit(binary::DEFAULT_MAX_LEN));
    check_split(&p, &input);
});
