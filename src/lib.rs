//! vigil: a heartbeat server and library.
#![deny(missing_docs)]

pub mod client;
pub mod duration;
pub mod protocol;
pub mod wheel;
