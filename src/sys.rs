//! Thin, checked wrappers around the few libc calls vigil makes.
//!
//! Crate-private: users get [`Keepalive`], [`nofile_limit`] and
//! [`raise_nofile_limit`] re-exported at the crate root; the rest is the
//! server's and the drivers' plumbing.

use std::io;
use std::os::fd::RawFd;

/// Calls a libc function and turns `-1` into the `errno` as an
/// [`io::Error`], like mio's `syscall!`.
macro_rules! syscall {
    ($fn: ident ( $($arg: expr),* $(,)* ) ) => {{
        #[allow(unused_unsafe)]
        let res = unsafe { libc::$fn($($arg, )*) };
        if res == -1 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(res)
        }
    }};
}

mod fdpass;
pub use fdpass::{
    accept_unix, connect_abstract_seqpacket, listen_abstract_seqpacket, recv_fd, send_fd,
};

/// The soft and hard limits on open files (`RLIMIT_NOFILE`).
pub fn nofile_limit() -> io::Result<(u64, u64)> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    syscall!(getrlimit(libc::RLIMIT_NOFILE, &mut lim))?;
    Ok((lim.rlim_cur, lim.rlim_max))
}

/// Raises the soft limit on open files to the hard limit and returns the
/// new soft limit.
pub fn raise_nofile_limit() -> io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    syscall!(getrlimit(libc::RLIMIT_NOFILE, &mut lim))?;
    if lim.rlim_cur < lim.rlim_max {
        lim.rlim_cur = lim.rlim_max;
        syscall!(setrlimit(libc::RLIMIT_NOFILE, &lim))?;
    }
    Ok(lim.rlim_cur)
}

/// Asks the kernel to send this process SIGTERM when its parent dies (a
/// worker whose supervisor was killed stops gracefully instead of serving
/// on alone).
pub fn die_with_parent() -> io::Result<()> {
    let signal = libc::c_ulong::try_from(libc::SIGTERM).unwrap_or(15);
    syscall!(prctl(libc::PR_SET_PDEATHSIG, signal, 0, 0, 0)).map(drop)
}

/// The resident set size of this process, in bytes, from `/proc/self/statm`.
pub fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * u64::try_from(page).ok()?)
}

/// TCP keepalive settings: probe after `idle` of silence, every
/// `interval`, and give up after `count` unanswered probes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keepalive {
    /// Silence before the first probe.
    pub idle: std::time::Duration,
    /// Time between probes.
    pub interval: std::time::Duration,
    /// Unanswered probes before the connection is reset.
    pub count: u32,
}

impl Keepalive {
    /// Parses `IDLE,INTVL,CNT`, e.g. `60s,10s,5`.
    pub fn parse(s: &str) -> Result<Keepalive, String> {
        let parts: Vec<&str> = s.split(',').map(str::trim).collect();
        let [idle, interval, count] = parts[..] else {
            return Err(format!(
                "invalid keepalive {s:?}: expected IDLE,INTVL,CNT such as 60s,10s,5"
            ));
        };
        let idle = crate::duration::parse_duration(idle).map_err(|e| e.to_string())?;
        let interval = crate::duration::parse_duration(interval).map_err(|e| e.to_string())?;
        let count: u32 = count
            .parse()
            .map_err(|_| format!("invalid keepalive probe count {count:?}"))?;
        let k = Keepalive {
            idle,
            interval,
            count,
        };
        k.check()
            .map_err(|why| format!("invalid keepalive {s:?}: {why}"))?;
        Ok(k)
    }

    /// Checks the settings against the kernel's ranges: whole seconds from
    /// 1 s to 32767 s, and 1 to 127 probes.
    pub fn check(&self) -> Result<(), String> {
        let (idle, interval, count) = (self.idle.as_secs(), self.interval.as_secs(), self.count);
        if idle < 1 || interval < 1 || count < 1 {
            return Err("the kernel counts keepalive times in whole seconds (at least 1s) and needs at least 1 probe".to_owned());
        }
        if idle > 32_767 || interval > 32_767 || count > 127 {
            return Err("keepalive times are at most 32767s and 127 probes".to_owned());
        }
        Ok(())
    }

    /// How long a silent dead peer takes to be detected: idle + count × interval.
    pub fn detection_time(&self) -> std::time::Duration {
        self.idle + self.interval * self.count
    }
}

fn setsockopt_int(
    fd: RawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    syscall!(setsockopt(
        fd,
        level,
        name,
        (&value as *const libc::c_int).cast(),
        std::mem::size_of::<libc::c_int>() as libc::socklen_t,
    ))
    .map(drop)
}

/// Reads an integer socket option (the tests read back what was set).
#[cfg(test)]
pub fn getsockopt_int(fd: RawFd, level: libc::c_int, name: libc::c_int) -> io::Result<libc::c_int> {
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    syscall!(getsockopt(
        fd,
        level,
        name,
        (&mut value as *mut libc::c_int).cast(),
        &mut len
    ))?;
    Ok(value)
}

/// Turns TCP keepalive on with these settings (`SO_KEEPALIVE`,
/// `TCP_KEEPIDLE`, `TCP_KEEPINTVL`, `TCP_KEEPCNT`).
pub fn set_keepalive(fd: RawFd, k: &Keepalive) -> io::Result<()> {
    let secs =
        |d: std::time::Duration| libc::c_int::try_from(d.as_secs()).unwrap_or(libc::c_int::MAX);
    setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1)?;
    setsockopt_int(fd, libc::IPPROTO_TCP, libc::TCP_KEEPIDLE, secs(k.idle))?;
    setsockopt_int(fd, libc::IPPROTO_TCP, libc::TCP_KEEPINTVL, secs(k.interval))?;
    setsockopt_int(
        fd,
        libc::IPPROTO_TCP,
        libc::TCP_KEEPCNT,
        libc::c_int::try_from(k.count).unwrap_or(libc::c_int::MAX),
    )
}

/// Sets `TCP_USER_TIMEOUT`: how long sent data may stay unacknowledged
/// before the kernel resets the connection.
pub fn set_user_timeout(fd: RawFd, timeout: std::time::Duration) -> io::Result<()> {
    let ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
    setsockopt_int(fd, libc::IPPROTO_TCP, libc::TCP_USER_TIMEOUT, ms)
}

/// Starts a non-blocking TCP connect to `dst`, from source address `src`
/// when one is given, and returns the socket at once (the connect finishes
/// later: wait for it to turn writable, then check `take_error`).
///
/// With a source address the socket is bound before the connect, with
/// `IP_BIND_ADDRESS_NO_PORT` (for IPv4) so that the bind only fixes the
/// address: the kernel picks the port at connect time, per destination,
/// and binds do not use up the ephemeral ports the way `bind(addr:0)`
/// alone would. Spreading connections over several source addresses is
/// how one machine opens more than one port range's worth of connections
/// to one server.
pub fn connect_nonblocking(
    dst: std::net::SocketAddr,
    src: Option<std::net::IpAddr>,
) -> io::Result<std::net::TcpStream> {
    use std::os::fd::{FromRawFd, OwnedFd};

    let domain = if dst.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    let fd = syscall!(socket(
        domain,
        libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
        0
    ))?;
    // SAFETY: `socket` just returned this descriptor and nothing else owns it.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    if let Some(src) = src {
        if src.is_ipv4() != dst.is_ipv4() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "source and destination are not the same IP version",
            ));
        }
        bind_no_port(fd, src)?;
    }
    let (addr, len) = sockaddr(dst);
    match syscall!(connect(
        fd,
        (&addr as *const libc::sockaddr_storage).cast(),
        len
    )) {
        Ok(_) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    Ok(std::net::TcpStream::from(socket))
}

/// Binds `fd` to address `src` and no port yet (`IP_BIND_ADDRESS_NO_PORT`
/// for IPv4): the port is chosen at `connect`, per destination, so binds do
/// not use up the ephemeral ports.
fn bind_no_port(fd: RawFd, src: std::net::IpAddr) -> io::Result<()> {
    if src.is_ipv4() {
        setsockopt_int(fd, libc::IPPROTO_IP, libc::IP_BIND_ADDRESS_NO_PORT, 1)?;
    }
    let (addr, len) = sockaddr(std::net::SocketAddr::new(src, 0));
    syscall!(bind(
        fd,
        (&addr as *const libc::sockaddr_storage).cast(),
        len
    ))
    .map(drop)
}

/// Checks that `src` is an address of this machine that a socket can be
/// bound to (`EADDRNOTAVAIL` otherwise), without using a port.
pub fn check_source_address(src: std::net::IpAddr) -> io::Result<()> {
    use std::os::fd::{FromRawFd, OwnedFd};

    let domain = if src.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    let fd = syscall!(socket(domain, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0))?;
    // SAFETY: `socket` just returned this descriptor and nothing else owns it.
    let _socket = unsafe { OwnedFd::from_raw_fd(fd) };
    bind_no_port(fd, src)
}

/// The kernel's ephemeral port range (`net.ipv4.ip_local_port_range`), as
/// the number of ports in it; `None` when it cannot be read.
pub fn ephemeral_ports() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    let mut it = text.split_whitespace().map(str::parse::<u64>);
    let (low, high) = (it.next()?.ok()?, it.next()?.ok()?);
    Some(high.checked_sub(low)? + 1)
}

/// A `CLOCK_MONOTONIC` timer descriptor that becomes readable every
/// `period`, starting one period from now: a wake-up source for an event
/// loop that needs finer than the whole milliseconds `epoll_wait` sleeps
/// in. Non-blocking; clear it with [`read_timer`].
pub fn periodic_timer(period: std::time::Duration) -> io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

    let fd = syscall!(timerfd_create(
        libc::CLOCK_MONOTONIC,
        libc::TFD_NONBLOCK | libc::TFD_CLOEXEC
    ))?;
    // SAFETY: `timerfd_create` just returned this descriptor and nothing
    // else owns it.
    let timer = unsafe { OwnedFd::from_raw_fd(fd) };
    let period = libc::timespec {
        tv_sec: libc::time_t::try_from(period.as_secs()).unwrap_or(libc::time_t::MAX),
        // Below 10^9: fits any `c_long`.
        tv_nsec: period.subsec_nanos() as libc::c_long,
    };
    let spec = libc::itimerspec {
        it_interval: period,
        it_value: period,
    };
    syscall!(timerfd_settime(
        timer.as_raw_fd(),
        0,
        &spec,
        std::ptr::null_mut()
    ))?;
    Ok(timer)
}

/// Clears a timer from [`periodic_timer`] and returns how many periods
/// have passed since it was last cleared (0 if none: a spurious wake-up).
pub fn read_timer(fd: RawFd) -> io::Result<u64> {
    let mut expirations = [0u8; 8];
    match syscall!(read(fd, expirations.as_mut_ptr().cast(), expirations.len())) {
        Ok(_) => Ok(u64::from_ne_bytes(expirations)),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
        Err(e) => Err(e),
    }
}

/// Sends `signal` to process `pid`.
pub fn send_signal(pid: u32, signal: libc::c_int) -> io::Result<()> {
    let pid = libc::pid_t::try_from(pid)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "process id out of range"))?;
    syscall!(kill(pid, signal)).map(drop)
}

/// A socket address in the C layout.
fn sockaddr(addr: std::net::SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: all-zero bytes are a valid `sockaddr_storage`.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match addr {
        std::net::SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: `sockaddr_storage` is larger than and aligned for
            // every socket address type.
            unsafe { std::ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), sin) };
            std::mem::size_of::<libc::sockaddr_in>()
        }
        std::net::SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: as above.
            unsafe { std::ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), sin6) };
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, len as libc::socklen_t)
}

/// Whether a non-blocking connect has finished: `Ok(true)` connected,
/// `Ok(false)` not yet, `Err` with the reason it failed.
pub fn connect_result(stream: &mio::net::TcpStream) -> io::Result<bool> {
    if let Some(e) = stream.take_error()? {
        return Err(e);
    }
    match stream.peer_addr() {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => Ok(false),
        Err(e) => Err(e),
    }
}

/// A non-blocking `NETLINK_ROUTE` socket subscribed to IPv4 address and
/// route changes (`RTMGRP_IPV4_IFADDR | RTMGRP_IPV4_ROUTE`), for
/// `vigil client`'s network watch.
pub fn netlink_route_socket() -> io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    let fd = syscall!(socket(
        libc::AF_NETLINK,
        libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
        libc::NETLINK_ROUTE
    ))?;
    // SAFETY: `fd` was just returned by socket(2) and is owned by no one else.
    let owned = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
    // SAFETY: an all-zero sockaddr_nl is a valid value.
    let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    addr.nl_groups = (libc::RTMGRP_IPV4_IFADDR | libc::RTMGRP_IPV4_ROUTE) as u32;
    syscall!(bind(
        fd,
        std::ptr::addr_of!(addr).cast::<libc::sockaddr>(),
        std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t
    ))?;
    Ok(owned)
}

/// One non-blocking `recv` into `buf`.
pub fn recv(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    let n = syscall!(recv(
        fd,
        buf.as_mut_ptr().cast::<libc::c_void>(),
        buf.len(),
        libc::MSG_DONTWAIT
    ))?;
    Ok(n as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;
    use std::time::Duration;

    #[test]
    fn keepalive_parsing() {
        let k = Keepalive::parse("60s,10s,5").unwrap();
        assert_eq!(k.idle, Duration::from_secs(60));
        assert_eq!(k.interval, Duration::from_secs(10));
        assert_eq!(k.count, 5);
        assert_eq!(k.detection_time(), Duration::from_secs(110));
        for bad in [
            "",
            "1s,1s",
            "1s,1s,0",
            "500ms,1s,3",
            "1s,1s,x",
            "1,1,1",
            "1s,1s,1,1",
            "99999s,1s,1",
        ] {
            assert!(Keepalive::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn connects_from_a_chosen_source_address() {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let dst = listener.local_addr().unwrap();
        for src in [None, Some("127.0.0.2"), Some("127.0.0.3")] {
            let src = src.map(|s| s.parse().unwrap());
            let mut c = connect_nonblocking(dst, src).unwrap();
            let (mut accepted, peer) = listener.accept().unwrap();
            assert_eq!(peer.ip(), src.unwrap_or(dst.ip()));
            c.set_nonblocking(false).unwrap();
            c.write_all(b"hi").unwrap();
            let mut buf = [0; 2];
            accepted.read_exact(&mut buf).unwrap();
            assert_eq!(&buf, b"hi");
        }
        // Not an address of this machine; a version mismatch.
        let far: std::net::IpAddr = "192.0.2.1".parse().unwrap();
        assert!(check_source_address(far).is_err());
        assert!(connect_nonblocking(dst, Some(far)).is_err());
        assert!(connect_nonblocking(dst, Some("::1".parse().unwrap())).is_err());
        check_source_address("127.0.0.9".parse().unwrap()).unwrap();
        assert!(ephemeral_ports().unwrap() > 1000);
    }

    #[test]
    fn a_periodic_timer_ticks() {
        let t = periodic_timer(Duration::from_millis(1)).unwrap();
        let fd = t.as_raw_fd();
        assert_eq!(read_timer(fd).unwrap(), 0, "not due yet");
        std::thread::sleep(Duration::from_millis(20));
        let n = read_timer(fd).unwrap();
        assert!((10..=40).contains(&n), "{n} ticks in 20 ms");
        assert_eq!(read_timer(fd).unwrap(), 0, "cleared");
    }

    #[test]
    fn limits_and_rss_are_readable() {
        let (soft, hard) = nofile_limit().unwrap();
        assert!(soft <= hard);
        assert!(raise_nofile_limit().unwrap() >= soft);
        assert!(rss_bytes().unwrap() > 0);
    }
}
