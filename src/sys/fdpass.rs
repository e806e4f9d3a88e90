//! Passing a socket to another process: a message on an abstract Unix
//! socket carrying the descriptor (`SCM_RIGHTS`) and a payload. Workers
//! hand connections over connected `SOCK_SEQPACKET` sockets: a message
//! each, like a datagram, but queued up to the socket's buffer (about
//! 200 KB, some thousands of hand-offs) rather than
//! `net.unix.max_dgram_qlen` datagrams (10 by default).

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

/// The address of the abstract Unix socket `name` (no file on disk; it
/// goes away with the last socket bound to it), and its length.
fn abstract_addr(name: &[u8]) -> io::Result<(libc::sockaddr_un, libc::socklen_t)> {
    // SAFETY: sockaddr_un is plain data; all zeroes is a valid value.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    // sun_path[0] stays 0: the abstract namespace.
    if name.len() + 1 > addr.sun_path.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "abstract socket name too long",
        ));
    }
    for (dst, &b) in addr.sun_path[1..].iter_mut().zip(name) {
        *dst = b as libc::c_char;
    }
    let len = std::mem::size_of::<libc::sa_family_t>() + 1 + name.len();
    Ok((addr, len as libc::socklen_t))
}

/// A non-blocking Unix socket of type `kind`, bound to the abstract name
/// `name` (`connect`: false) or connected to it (true).
fn abstract_socket(kind: libc::c_int, name: &[u8], connect: bool) -> io::Result<OwnedFd> {
    let fd = syscall!(socket(
        libc::AF_UNIX,
        kind | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
        0
    ))?;
    // SAFETY: socket() just returned this descriptor; nothing else owns it.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    let (addr, len) = abstract_addr(name)?;
    let addr = &addr as *const libc::sockaddr_un as *const libc::sockaddr;
    if connect {
        syscall!(connect(fd, addr, len))?;
    } else {
        syscall!(bind(fd, addr, len))?;
    }
    Ok(owned)
}

/// A non-blocking datagram socket bound to the abstract name `name`.
#[cfg(test)]
pub fn bind_abstract_datagram(name: &[u8]) -> io::Result<OwnedFd> {
    abstract_socket(libc::SOCK_DGRAM, name, false)
}

/// A non-blocking `SOCK_SEQPACKET` socket listening on the abstract name
/// `name`.
pub fn listen_abstract_seqpacket(name: &[u8]) -> io::Result<OwnedFd> {
    use std::os::fd::AsRawFd;
    let owned = abstract_socket(libc::SOCK_SEQPACKET, name, false)?;
    syscall!(listen(owned.as_raw_fd(), 1024))?;
    Ok(owned)
}

/// A non-blocking `SOCK_SEQPACKET` socket connected to the abstract name
/// `name`. A listener whose backlog is full is `WouldBlock`, a missing
/// one `ConnectionRefused`.
pub fn connect_abstract_seqpacket(name: &[u8]) -> io::Result<OwnedFd> {
    abstract_socket(libc::SOCK_SEQPACKET, name, true)
}

/// The next connection waiting on listening socket `fd`, non-blocking.
pub fn accept_unix(fd: RawFd) -> io::Result<OwnedFd> {
    let got = syscall!(accept4(
        fd,
        std::ptr::null_mut(),
        std::ptr::null_mut(),
        libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC
    ))?;
    // SAFETY: accept4() just returned this descriptor; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(got) })
}

/// Sends `payload` and a copy of descriptor `pass` from socket `fd`, in
/// one message: to the abstract name `to` (a datagram socket), or to its
/// peer (`None`: a connected socket). Does not block: a full receiver is
/// `WouldBlock`, a missing one `ConnectionRefused` (or, connected,
/// `BrokenPipe`).
pub fn send_fd(fd: RawFd, to: Option<&[u8]>, payload: &[u8], pass: RawFd) -> io::Result<()> {
    let mut named = to.map(abstract_addr).transpose()?;
    let mut iov = libc::iovec {
        iov_base: payload.as_ptr() as *mut libc::c_void,
        iov_len: payload.len(),
    };
    // SAFETY: CMSG_SPACE is a pure size computation.
    let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) } as usize;
    // u64s keep the control buffer aligned for cmsghdr.
    let mut control = vec![0u64; space.div_ceil(8)];
    // SAFETY: msghdr is plain data; all zeroes is a valid value.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    if let Some((addr, len)) = &mut named {
        msg.msg_name = addr as *mut libc::sockaddr_un as *mut libc::c_void;
        msg.msg_namelen = *len;
    }
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr() as *mut libc::c_void;
    msg.msg_controllen = space as _;
    // SAFETY: msg_control points at `space` bytes, room for one header
    // and one descriptor, so the first header exists and its data fits.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg) as *mut RawFd, pass);
    }
    let sent = syscall!(sendmsg(fd, &msg, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL))?;
    if sent as usize != payload.len() {
        return Err(io::Error::other("short datagram"));
    }
    Ok(())
}

/// Receives one datagram from socket `fd` into `buf`: its length and the
/// descriptor it carried (`None` if it carried none, or the kernel dropped
/// it because this process has no descriptor left). Does not block.
pub fn recv_fd(fd: RawFd, buf: &mut [u8]) -> io::Result<(usize, Option<OwnedFd>)> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr() as *mut libc::c_void,
        iov_len: buf.len(),
    };
    // SAFETY: CMSG_SPACE is a pure size computation.
    let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) } as usize;
    let mut control = vec![0u64; space.div_ceil(8)];
    // SAFETY: msghdr is plain data; all zeroes is a valid value.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr() as *mut libc::c_void;
    msg.msg_controllen = space as _;
    let n = syscall!(recvmsg(
        fd,
        &mut msg,
        libc::MSG_DONTWAIT | libc::MSG_CMSG_CLOEXEC
    ))?;
    let mut passed = None;
    // SAFETY: the kernel filled msg_control and msg_controllen; the
    // CMSG_* walk stays within them.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let got = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg) as *const RawFd);
                passed = Some(OwnedFd::from_raw_fd(got));
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    if msg.msg_flags & libc::MSG_TRUNC != 0 {
        return Err(io::Error::other("handoff datagram truncated"));
    }
    Ok((n as usize, passed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::fd::AsRawFd;

    #[test]
    fn a_socket_and_its_bytes_cross_to_another_socket() {
        let name = format!("vigil-test-fdpass-{}", std::process::id());
        let rx = bind_abstract_datagram(name.as_bytes()).unwrap();
        let tx = bind_abstract_datagram(format!("{name}-tx").as_bytes()).unwrap();
        let (mut a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        send_fd(
            tx.as_raw_fd(),
            Some(name.as_bytes()),
            b"hello",
            b.as_raw_fd(),
        )
        .unwrap();
        drop(b);
        let mut buf = [0u8; 64];
        let (n, fd) = recv_fd(rx.as_raw_fd(), &mut buf).unwrap();
        assert_eq!(&buf[..n], b"hello");
        let mut b2 = std::os::unix::net::UnixStream::from(fd.unwrap());
        a.write_all(b"through").unwrap();
        let mut got = [0u8; 7];
        b2.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"through");
        // Nothing more: WouldBlock, not a wait.
        let e = recv_fd(rx.as_raw_fd(), &mut buf).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        // Nobody bound there: refused, at once.
        let e = send_fd(
            tx.as_raw_fd(),
            Some(b"vigil-test-nobody"),
            b"x",
            a.as_raw_fd(),
        )
        .unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ECONNREFUSED));
    }

    #[test]
    fn seqpacket_hand_offs_queue_by_bytes_not_by_ten_datagrams() {
        let name = format!("vigil-test-seqpacket-{}", std::process::id());
        let listener = listen_abstract_seqpacket(name.as_bytes()).unwrap();
        let tx = connect_abstract_seqpacket(name.as_bytes()).unwrap();
        let rx = accept_unix(listener.as_raw_fd()).unwrap();
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        // Far more than net.unix.max_dgram_qlen (10 by default) wait
        // unread; each keeps its own boundary and descriptor.
        for i in 0..200u32 {
            let payload = format!("hand-off {i}");
            send_fd(tx.as_raw_fd(), None, payload.as_bytes(), b.as_raw_fd()).unwrap();
        }
        let mut buf = [0u8; 64];
        for i in 0..200u32 {
            let (n, fd) = recv_fd(rx.as_raw_fd(), &mut buf).unwrap();
            assert_eq!(&buf[..n], format!("hand-off {i}").as_bytes());
            assert!(fd.is_some());
        }
        let e = recv_fd(rx.as_raw_fd(), &mut buf).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        // The sender gone: end of stream, no descriptor.
        drop(tx);
        assert_eq!(recv_fd(rx.as_raw_fd(), &mut buf).unwrap().0, 0);
        drop((a, b));
        // Nobody listening there: refused.
        let e = connect_abstract_seqpacket(b"vigil-test-nobody-listens").unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ECONNREFUSED));
    }
}
