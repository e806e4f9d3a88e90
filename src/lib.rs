//! vigil: a heartbeat server and library.
#![deny(missing_docs)]

pub mod duration;
pub mod error;
pub mod events;
pub mod protocol;
pub mod server;
pub mod sys;
pub mod time;
pub mod wheel;

pub use error::{Error, ErrorKind};
pub use protocol::{CloseReason, Frame, LineProtocol, Protocol, Reply};
pub use server::{Config, Handle, Server, Stats};
