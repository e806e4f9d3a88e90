//! The one spelling of why a load connection ended: what the report
//! counts closes and connect errors under, what the worker lines carry and
//! what the table and the JSON print.
//!
//! [`DisconnectReason`] belongs to the client session; the load generator
//! adds [`ReasonName::as_str`] to it here and reads a spelling back with
//! [`parse`]. The spellings are the server's `BYE <reason>` as it said it
//! ([`CloseReason::as_str`]), or what the session saw in kebab case
//! (`ping-timeout`, `connection-refused`).

use std::io::ErrorKind;

use crate::client::session::DisconnectReason;
use crate::protocol::CloseReason;

/// The spelling of a [`DisconnectReason`] for counting.
pub trait ReasonName {
    /// The stable name: `BYE timeout`, `eof`, `connection-refused`, ...
    fn as_str(&self) -> &'static str;
}

/// `BYE` with a reason this version does not know.
const BYE_UNKNOWN: &str = "BYE (unknown reason)";
/// An I/O error kind this version does not name.
const OTHER_FAILURE: &str = "uncategorized";

/// Every I/O error kind with a name, spelled as its `Debug` name in kebab
/// case (`AddrNotAvailable` -> `addr-not-available`).
const FAILURES: [(ErrorKind, &str); 34] = [
    (ErrorKind::NotFound, "not-found"),
    (ErrorKind::PermissionDenied, "permission-denied"),
    (ErrorKind::ConnectionRefused, "connection-refused"),
    (ErrorKind::ConnectionReset, "connection-reset"),
    (ErrorKind::HostUnreachable, "host-unreachable"),
    (ErrorKind::NetworkUnreachable, "network-unreachable"),
    (ErrorKind::ConnectionAborted, "connection-aborted"),
    (ErrorKind::NotConnected, "not-connected"),
    (ErrorKind::AddrInUse, "addr-in-use"),
    (ErrorKind::AddrNotAvailable, "addr-not-available"),
    (ErrorKind::NetworkDown, "network-down"),
    (ErrorKind::BrokenPipe, "broken-pipe"),
    (ErrorKind::AlreadyExists, "already-exists"),
    (ErrorKind::WouldBlock, "would-block"),
    (ErrorKind::NotADirectory, "not-a-directory"),
    (ErrorKind::IsADirectory, "is-a-directory"),
    (ErrorKind::DirectoryNotEmpty, "directory-not-empty"),
    (ErrorKind::ReadOnlyFilesystem, "read-only-filesystem"),
    (
        ErrorKind::StaleNetworkFileHandle,
        "stale-network-file-handle",
    ),
    (ErrorKind::InvalidInput, "invalid-input"),
    (ErrorKind::InvalidData, "invalid-data"),
    (ErrorKind::TimedOut, "timed-out"),
    (ErrorKind::WriteZero, "write-zero"),
    (ErrorKind::StorageFull, "storage-full"),
    (ErrorKind::NotSeekable, "not-seekable"),
    (ErrorKind::FileTooLarge, "file-too-large"),
    (ErrorKind::ResourceBusy, "resource-busy"),
    (ErrorKind::ExecutableFileBusy, "executable-file-busy"),
    (ErrorKind::Deadlock, "deadlock"),
    (ErrorKind::TooManyLinks, "too-many-links"),
    (ErrorKind::Interrupted, "interrupted"),
    (ErrorKind::Unsupported, "unsupported"),
    (ErrorKind::UnexpectedEof, "unexpected-eof"),
    (ErrorKind::OutOfMemory, "out-of-memory"),
];

impl ReasonName for DisconnectReason {
    fn as_str(&self) -> &'static str {
        match self {
            DisconnectReason::Bye(Some(r)) => bye(*r),
            DisconnectReason::Bye(None) => BYE_UNKNOWN,
            DisconnectReason::Eof => "eof",
            DisconnectReason::Failed(ErrorKind::Other) => "other",
            DisconnectReason::Failed(kind) => FAILURES
                .iter()
                .find(|(k, _)| k == kind)
                .map_or(OTHER_FAILURE, |(_, name)| name),
            DisconnectReason::ConnectTimeout => "connect-timeout",
            DisconnectReason::NoWelcome => "no-welcome",
            DisconnectReason::PingTimeout => "ping-timeout",
            DisconnectReason::Silent => "silent",
            DisconnectReason::LineTooLong => "line-too-long",
            // What was wrong with the line is for the log, not a counter.
            DisconnectReason::BadLine(_) => "bad-frame",
        }
    }
}

/// `BYE <reason>`, one static string per reason (a test checks each is
/// `BYE` and [`CloseReason::as_str`]).
fn bye(r: CloseReason) -> &'static str {
    match r {
        CloseReason::Timeout => "BYE timeout",
        CloseReason::Closed => "BYE closed",
        CloseReason::Reset => "BYE reset",
        CloseReason::LineTooLong => "BYE line-too-long",
        CloseReason::BadFrame => "BYE bad-frame",
        CloseReason::Replaced => "BYE replaced",
        CloseReason::Overloaded => "BYE overloaded",
        CloseReason::TooManyPings => "BYE too-many-pings",
        CloseReason::OutputOverflow => "BYE output-overflow",
        CloseReason::Shutdown => "BYE shutdown",
        CloseReason::Kicked => "BYE kicked",
        CloseReason::Unauthorized => "BYE unauthorized",
        CloseReason::HelloTimeout => "BYE hello-timeout",
        CloseReason::TooManyConnections => "BYE too-many-connections",
        CloseReason::TooManyFrames => "BYE too-many-frames",
        CloseReason::InternalError => "BYE internal-error",
    }
}

/// The reason [`ReasonName::as_str`] spells `s`, if any. `bad-frame`
/// comes back without its detail; `uncategorized` (an error kind this
/// version does not name) stands for no one reason and reads back as
/// `None`.
pub fn parse(s: &str) -> Option<DisconnectReason> {
    every().find(|r| r.as_str() == s)
}

/// Every reason with a spelling of its own: the simple ones, a `BYE` for
/// every close reason, a failure for every named error kind.
fn every() -> impl Iterator<Item = DisconnectReason> {
    [
        DisconnectReason::Bye(None),
        DisconnectReason::Eof,
        DisconnectReason::Failed(ErrorKind::Other),
        DisconnectReason::ConnectTimeout,
        DisconnectReason::NoWelcome,
        DisconnectReason::PingTimeout,
        DisconnectReason::Silent,
        DisconnectReason::LineTooLong,
        DisconnectReason::BadLine(""),
    ]
    .into_iter()
    .chain(CloseReason::ALL.map(|r| DisconnectReason::Bye(Some(r))))
    .chain(FAILURES.map(|(k, _)| DisconnectReason::Failed(k)))
}

/// Whether `s` is a spelling [`ReasonName::as_str`] can give: one of
/// [`parse`]'s, or `uncategorized`.
pub fn is_name(s: &str) -> bool {
    s == OTHER_FAILURE || parse(s).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every variant: every close reason, every named error kind.
    fn every_reason() -> Vec<DisconnectReason> {
        every().collect()
    }

    #[test]
    fn every_reason_round_trips_through_its_one_spelling() {
        let all = every_reason();
        for r in &all {
            assert_eq!(parse(r.as_str()), Some(*r), "{r:?}");
        }
        let mut names: Vec<&str> = all.iter().map(|r| r.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), all.len(), "two reasons share a spelling");
        // The detail of a bad line is not part of the name.
        assert_eq!(DisconnectReason::BadLine("x").as_str(), "bad-frame");
        assert_eq!(parse("nope"), None);
        assert_eq!(parse(OTHER_FAILURE), None);
        assert!(is_name(OTHER_FAILURE) && is_name("BYE reset") && !is_name("BYE nope"));
    }

    #[test]
    fn names_are_the_servers_bye_and_the_error_kinds_in_kebab_case() {
        for r in CloseReason::ALL {
            assert_eq!(
                DisconnectReason::Bye(Some(r)).as_str(),
                format!("BYE {}", r.as_str())
            );
        }
        for (kind, name) in FAILURES {
            let mut kebab = String::new();
            for (i, c) in format!("{kind:?}").chars().enumerate() {
                if c.is_ascii_uppercase() && i > 0 {
                    kebab.push('-');
                }
                kebab.push(c.to_ascii_lowercase());
            }
            assert_eq!(name, kebab);
        }
        for (r, name) in [
            (DisconnectReason::Bye(None), "BYE (unknown reason)"),
            (DisconnectReason::Eof, "eof"),
            (
                DisconnectReason::Failed(ErrorKind::ConnectionRefused),
                "connection-refused",
            ),
            (DisconnectReason::ConnectTimeout, "connect-timeout"),
            (DisconnectReason::NoWelcome, "no-welcome"),
            (DisconnectReason::PingTimeout, "ping-timeout"),
            (DisconnectReason::Silent, "silent"),
            (DisconnectReason::LineTooLong, "line-too-long"),
        ] {
            assert_eq!(r.as_str(), name);
        }
    }
}
