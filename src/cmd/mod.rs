//! The subcommands of the `vigil` binary.

pub mod client;
pub mod serve;
