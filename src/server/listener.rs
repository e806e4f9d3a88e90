//! Listening sockets: created, tuned and bound with `socket2`, so every
//! option and the backlog are in place before `listen()` lets the first
//! connection in.
//!
//! Options set on a listening socket are copied by Linux to every socket it
//! accepts: `TCP_NODELAY`, keepalive and `TCP_USER_TIMEOUT` cost one syscall
//! each at start instead of one per accepted connection.

use std::net::SocketAddr;
use std::time::Duration;

use mio::net::TcpListener;
use socket2::{Domain, Protocol, Socket, TcpKeepalive, Type};

use crate::error::{Error, ErrorKind};
use crate::sys::Keepalive;

/// How the listening sockets are set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ListenOptions {
    /// The `listen()` backlog (the kernel caps it at `net.core.somaxconn`).
    pub backlog: u32,
    pub keepalive: Option<Keepalive>,
    pub user_timeout: Option<Duration>,
    /// `SO_REUSEPORT`: several worker processes listen on one port and the
    /// kernel spreads new connections over them.
    pub reuse_port: bool,
}

/// Binds one listening socket per address, all on one port: when the first
/// address asks for port 0, the port the kernel picks for it is used for
/// the others too, so a name that resolves to several addresses
/// (`localhost`: `127.0.0.1` and `::1`) is served on the same port on each.
pub(crate) fn bind_all(
    addrs: &[SocketAddr],
    options: &ListenOptions,
) -> Result<Vec<TcpListener>, Error> {
    if addrs.is_empty() {
        return Err(Error::new(ErrorKind::Config, "no address to listen on"));
    }
    let mut listeners = Vec::with_capacity(addrs.len());
    let mut port = None;
    for &addr in addrs {
        let mut addr = addr;
        if let (0, Some(p)) = (addr.port(), port) {
            addr.set_port(p);
        }
        let listener = bind(addr, options, addrs.len() > 1)?;
        let local = listener.local_addr().map_err(|e| {
            Error::with_source(ErrorKind::Bind, "cannot read the listening address", e)
        })?;
        port.get_or_insert(local.port());
        listeners.push(listener);
    }
    log_options(options);
    Ok(listeners)
}

fn bind(addr: SocketAddr, options: &ListenOptions, several: bool) -> Result<TcpListener, Error> {
    let bind_error = |e| Error::with_source(ErrorKind::Bind, format!("cannot listen on {addr}"), e);
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
        .map_err(bind_error)?;
    // As std's TcpListener does: a restarted server can bind while old
    // connections linger in TIME_WAIT.
    socket.set_reuse_address(true).map_err(bind_error)?;
    if options.reuse_port {
        socket.set_reuse_port(true).map_err(bind_error)?;
    }
    if several && addr.is_ipv6() {
        // Beside an IPv4 address of its own, `[::]` must not also claim
        // the IPv4 port through mapped addresses.
        socket.set_only_v6(true).map_err(bind_error)?;
    }
    socket.set_nonblocking(true).map_err(bind_error)?;
    if let Err(e) = socket.set_tcp_nodelay(true) {
        log::warn!("cannot set TCP_NODELAY: {e}");
    }
    if let Some(k) = &options.keepalive {
        let params = TcpKeepalive::new()
            .with_time(k.idle)
            .with_interval(k.interval)
            .with_retries(k.count);
        socket
            .set_tcp_keepalive(&params)
            .map_err(|e| Error::with_source(ErrorKind::Config, "cannot set TCP keepalive", e))?;
    }
    if let Some(t) = options.user_timeout {
        socket
            .set_tcp_user_timeout(Some(t))
            .map_err(|e| Error::with_source(ErrorKind::Config, "cannot set TCP_USER_TIMEOUT", e))?;
    }
    socket.bind(&addr.into()).map_err(bind_error)?;
    let backlog = i32::try_from(options.backlog).unwrap_or(i32::MAX);
    socket.listen(backlog).map_err(bind_error)?;
    Ok(TcpListener::from_std(socket.into()))
}

fn log_options(options: &ListenOptions) {
    if let Some(k) = &options.keepalive {
        log::info!(
            "TCP keepalive: probe after {}s idle, every {}s, {} probes (dead peers found within {}s)",
            k.idle.as_secs(),
            k.interval.as_secs(),
            k.count,
            k.detection_time().as_secs()
        );
    }
    if let Some(t) = options.user_timeout {
        log::info!("TCP_USER_TIMEOUT: {}ms", t.as_millis());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    fn options() -> ListenOptions {
        ListenOptions {
            backlog: 16,
            keepalive: Some(Keepalive {
                idle: Duration::from_secs(7),
                interval: Duration::from_secs(3),
                count: 4,
            }),
            user_timeout: Some(Duration::from_millis(2500)),
            reuse_port: false,
        }
    }

    #[test]
    fn options_are_on_the_listener_and_copied_to_accepted_sockets() {
        let ls = bind_all(&["127.0.0.1:0".parse().unwrap()], &options()).unwrap();
        let addr = ls[0].local_addr().unwrap();
        let _client = std::net::TcpStream::connect(addr).unwrap();
        let (accepted, _) = loop {
            match ls[0].accept() {
                Ok(a) => break a,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(5))
                }
                Err(e) => panic!("{e}"),
            }
        };
        for fd in [ls[0].as_raw_fd(), accepted.as_raw_fd()] {
            let get = |level, name| crate::sys::getsockopt_int(fd, level, name).unwrap();
            assert_eq!(get(libc::IPPROTO_TCP, libc::TCP_NODELAY), 1);
            assert_eq!(get(libc::SOL_SOCKET, libc::SO_KEEPALIVE), 1);
            assert_eq!(get(libc::IPPROTO_TCP, libc::TCP_KEEPIDLE), 7);
            assert_eq!(get(libc::IPPROTO_TCP, libc::TCP_KEEPINTVL), 3);
            assert_eq!(get(libc::IPPROTO_TCP, libc::TCP_KEEPCNT), 4);
            assert_eq!(get(libc::IPPROTO_TCP, libc::TCP_USER_TIMEOUT), 2500);
        }
    }

    #[test]
    fn several_addresses_share_the_port_picked_for_the_first() {
        let addrs: Vec<SocketAddr> = vec![
            "127.0.0.1:0".parse().unwrap(),
            "127.0.0.2:0".parse().unwrap(),
        ];
        let ls = bind_all(&addrs, &options()).unwrap();
        let a = ls[0].local_addr().unwrap();
        let b = ls[1].local_addr().unwrap();
        assert_ne!(a.port(), 0);
        assert_eq!(a.port(), b.port());
        assert_eq!(b.ip().to_string(), "127.0.0.2");
    }

    #[test]
    fn an_address_in_use_is_a_bind_error_naming_it() {
        let ls = bind_all(&["127.0.0.1:0".parse().unwrap()], &options()).unwrap();
        let taken = ls[0].local_addr().unwrap();
        let e = bind_all(&[taken], &options()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Bind);
        assert!(e.to_string().contains(&taken.to_string()), "{e}");
        assert!(bind_all(&[], &options()).is_err());
    }
}
