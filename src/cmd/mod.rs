//! The subcommands of the `vigil` binary.

pub mod client;
pub mod load;
pub mod serve;
