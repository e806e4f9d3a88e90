//! The subcommands of the `vigil` binary.

pub mod serve;
