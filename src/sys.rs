//! Thin, checked wrappers around the few libc calls vigil makes.

use std::io;

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
pub fn set_backlog(fd: std::os::fd::RawFd, backlog: u32) -> io::Result<()> {
    let backlog = libc::c_int::try_from(backlog).unwrap_or(libc::c_int::MAX);
    syscall!(listen(fd, backlog)).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_and_rss_are_readable() {
        let (soft, hard) = nofile_limit().unwrap();
        assert!(soft <= hard);
        assert!(raise_nofile_limit().unwrap() >= soft);
        assert!(rss_bytes().unwrap() > 0);
    }
}
