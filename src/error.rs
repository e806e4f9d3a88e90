//! The library's error type.

use std::fmt;
use std::io;

/// What kind of failure an [`Error`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The configuration is inconsistent; nothing was started.
    Config,
    /// The listening socket could not be set up (address in use, no
    /// permission, unknown address).
    Bind,
    /// A host name could not be resolved to an address.
    Resolve,
    /// An event loop, a pipe or a system call failed (poll, registration,
    /// signals, stdin or stdout).
    Io,
    /// A `vigil load` worker process failed, or its output was unreadable.
    Worker,
}

/// An error from setting up or running a server, a client or a load run.
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    source: Option<io::Error>,
}

impl Error {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error {
            kind,
            message: message.into(),
            source: None,
        }
    }

    pub(crate) fn with_source(
        kind: ErrorKind,
        message: impl Into<String>,
        source: io::Error,
    ) -> Error {
        Error {
            kind,
            message: message.into(),
            source: Some(source),
        }
    }

    /// An unusable configuration; `why` says what is wrong.
    pub(crate) fn config(why: impl fmt::Display) -> Error {
        Error::new(ErrorKind::Config, why.to_string())
    }

    /// A failed system call, with what was being done.
    pub(crate) fn io(doing: impl Into<String>, source: io::Error) -> Error {
        Error::with_source(ErrorKind::Io, doing, source)
    }

    /// A failed worker process.
    pub(crate) fn worker(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Worker, message)
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            Some(e) => write!(f, "{}: {e}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_ref().map(|e| e as _)
    }
}

/// The result of vigil's fallible operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;
