//! One address resolver for the whole crate: `HOST:PORT` to every socket
//! address it names.
//!
//! The server's `--listen`, [`Builder::listen`](crate::server::Builder::listen)
//! and `vigil load --server` all resolve through [`resolve`], so a name
//! means the same everywhere and every caller sees the same errors.
//!
//! # Rules
//!
//! - Every address a name resolves to is returned, in the resolver's order
//!   (`localhost:7700` is usually both `127.0.0.1:7700` and `[::1]:7700`);
//!   the caller decides whether to use all of them or the first.
//! - An empty list is an error, never an `Ok(vec![])`: a caller can take the
//!   first element without checking.
//! - Errors name the address as given (quoted), say what was expected
//!   (`HOST:PORT`, `[IPv6]:PORT`) and carry the resolver's own error as
//!   their source.

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};

use crate::error::{Error, ErrorKind};

/// Resolves `addr` (an IP address and port such as `127.0.0.1:7700` or
/// `[::1]:0`, a host name and port such as `localhost:7700`, or anything
/// else that is [`ToSocketAddrs`], such as a [`SocketAddr`]) to every
/// socket address it names.
///
/// Fails with [`ErrorKind::Resolve`] when the address is malformed, the
/// name is unknown, or it names no address.
///
/// ```
/// let addrs = vigil::addr::resolve("127.0.0.1:7700")?;
/// assert_eq!(addrs, ["127.0.0.1:7700".parse().unwrap()]);
///
/// let err = vigil::addr::resolve("127.0.0.1").unwrap_err();
/// assert_eq!(err.kind(), vigil::ErrorKind::Resolve);
/// assert!(err.to_string().contains("\"127.0.0.1\""), "{err}");
/// # Ok::<(), vigil::Error>(())
/// ```
pub fn resolve<A>(addr: &A) -> Result<Vec<SocketAddr>, Error>
where
    A: ToSocketAddrs + fmt::Debug + ?Sized,
{
    resolve_as(addr, ErrorKind::Resolve)
}

/// [`resolve`], with errors of `kind`: the server reports an address it
/// cannot listen on as [`ErrorKind::Bind`].
pub(crate) fn resolve_as<A>(addr: &A, kind: ErrorKind) -> Result<Vec<SocketAddr>, Error>
where
    A: ToSocketAddrs + fmt::Debug + ?Sized,
{
    // `{:?}` quotes strings, so an empty or blank address is still visible.
    let shown = format!("{addr:?}");
    if shown.trim_matches('"').trim().is_empty() {
        return Err(Error::new(kind, "empty address (expected HOST:PORT)"));
    }
    let found = addr.to_socket_addrs().map_err(|e| {
        Error::with_source(
            kind,
            format!("cannot resolve {shown} (expected HOST:PORT or [IPv6]:PORT)"),
            e,
        )
    })?;
    let addrs: Vec<SocketAddr> = found.collect();
    if addrs.is_empty() {
        return Err(Error::new(kind, format!("{shown} resolves to no address")));
    }
    Ok(addrs)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Resolves `addr` and renders the outcome: the addresses, or the
    /// error's kind and text.
    #[track_caller]
    fn check(addr: &str, expected: &str) {
        let got = match resolve(addr) {
            Ok(addrs) => addrs
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(" "),
            Err(e) => format!("{:?}: {e}", e.kind()),
        };
        assert!(
            got.starts_with(expected),
            "resolve({addr:?})\n  got: {got}\n  expected to start with: {expected}"
        );
    }

    #[test]
    fn literals_resolve_to_themselves() {
        check("127.0.0.1:7700", "127.0.0.1:7700");
        check("[::1]:0", "[::1]:0");
        check("0.0.0.0:65535", "0.0.0.0:65535");
    }

    #[test]
    fn bad_addresses_are_named_and_typed() {
        check("", "Resolve: empty address (expected HOST:PORT)");
        check("   ", "Resolve: empty address (expected HOST:PORT)");
        check(
            "127.0.0.1",
            "Resolve: cannot resolve \"127.0.0.1\" (expected HOST:PORT or [IPv6]:PORT): ",
        );
        check(
            "127.0.0.1:99999",
            "Resolve: cannot resolve \"127.0.0.1:99999\"",
        );
    }

    #[test]
    fn localhost_resolves_to_every_loopback_address() {
        // What localhost names depends on /etc/hosts; whatever it is, each
        // address is a loopback one on the given port, and none is dropped.
        let all = resolve("localhost:7700").expect("localhost resolves");
        let direct: Vec<SocketAddr> = "localhost:7700"
            .to_socket_addrs()
            .expect("localhost")
            .collect();
        assert_eq!(all, direct);
        for a in &all {
            assert!(a.ip().is_loopback() && a.port() == 7700, "{a}");
        }
    }

    #[test]
    fn socket_addresses_and_tuples_resolve_too() {
        let a: SocketAddr = "[::1]:9".parse().expect("literal");
        assert_eq!(resolve(&a).ok(), Some(vec![a]));
        assert_eq!(
            resolve(&("127.0.0.1", 9)).ok(),
            Some(vec!["127.0.0.1:9".parse().expect("literal")])
        );
    }

    #[test]
    fn the_kind_is_the_callers() {
        let err = resolve_as("nonsense", ErrorKind::Bind).expect_err("no port");
        assert_eq!(err.kind(), ErrorKind::Bind);
        assert!(err.to_string().contains("\"nonsense\""), "{err}");
    }
}
