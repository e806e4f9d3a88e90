//! The resp decoder: the server's read loop over any bytes, split any way.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil::protocol::{resp, RespProtocol};
use vigil_fuzz::{check_split, Input};

fuzz_target!(|data: &[u8]| {
    let input = Input::parse(data);
    let p = RespProtocol::new(input.limit(resp::DEFAULT_MAX_FRAME));
    check_split(&p, &input);
});
