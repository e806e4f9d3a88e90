//! Thin, checked wrappers around the few libc calls vigil makes.

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

/// The resident set size of this process, in bytes, from `/proc/self/statm`.
pub fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * u64::try_from(page).ok()?)
}

/// Sets the listen backlog of a socket that is already listening (Linux
/// takes a second `listen` as a change of backlog; the kernel caps it at
/// `net.core.somaxconn`).
pub fn set_backlog(fd: RawFd, backlog: u32) -> io::Result<()> {
    let backlog = libc::c_int::try_from(backlog).unwrap_or(libc::c_int::MAX);
    syscall!(listen(fd, backlog)).map(drop)
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
        if idle.as_secs() < 1 || interval.as_secs() < 1 || count < 1 {
            return Err(format!(
                "invalid keepalive {s:?}: the kernel counts in whole seconds (at least 1s) and needs at least 1 probe"
            ));
        }
        if idle.as_secs() > 32_767 || interval.as_secs() > 32_767 || count > 127 {
            return Err(format!(
                "invalid keepalive {s:?}: at most 32767s and 127 probes"
            ));
        }
        Ok(k)
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

/// Reads an integer socket option.
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

/// Sets `TCP_NODELAY` (no Nagle delay for small writes).
pub fn set_nodelay(fd: RawFd) -> io::Result<()> {
    setsockopt_int(fd, libc::IPPROTO_TCP, libc::TCP_NODELAY, 1)
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

    /// The server sets these options once, on the listening socket, and
    /// relies on Linux copying them to every accepted socket.
    #[test]
    fn accepted_sockets_inherit_the_listeners_options() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let fd = listener.as_raw_fd();
        let k = Keepalive::parse("7s,3s,4").unwrap();
        set_keepalive(fd, &k).unwrap();
        set_user_timeout(fd, Duration::from_millis(5000)).unwrap();
        set_nodelay(fd).unwrap();
        let _client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        let a = accepted.as_raw_fd();
        let get = |level, name| getsockopt_int(a, level, name).unwrap();
        assert_eq!(get(libc::SOL_SOCKET, libc::SO_KEEPALIVE), 1);
        assert_eq!(get(libc::IPPROTO_TCP, libc::TCP_KEEPIDLE), 7);
        assert_eq!(get(libc::IPPROTO_TCP, libc::TCP_KEEPINTVL), 3);
        assert_eq!(get(libc::IPPROTO_TCP, libc::TCP_KEEPCNT), 4);
        assert_eq!(get(libc::IPPROTO_TCP, libc::TCP_USER_TIMEOUT), 5000);
        assert_eq!(get(libc::IPPROTO_TCP, libc::TCP_NODELAY), 1);
    }

    #[test]
    fn limits_and_rss_are_readable() {
        let (soft, hard) = nofile_limit().unwrap();
        assert!(soft <= hard);
        assert!(raise_nofile_limit().unwrap() >= soft);
        assert!(rss_bytes().unwrap() > 0);
    }
}
