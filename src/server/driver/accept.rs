//! Accepting: the budget per turn, running out of descriptors or memory,
//! refusing past `max_conns`, and taking a connection in.

use std::fs::File;
use std::io;
use std::net::SocketAddr;

use mio::net::TcpStream;
use mio::{Interest, Token};

use super::super::conn::Conn;
use super::super::limits::Addresses;
use super::super::session::Sessions;
use super::{Driver, Handler, Limits};
use crate::protocol::{CloseReason, Protocol};
use crate::time::Tick;

/// Accepts per listener per loop turn, so a flood of connects cannot
/// starve the connections already open.
const ACCEPT_BUDGET: usize = 256;
/// Connections accepted and refused per turn when out of descriptors.
const REFUSE_BUDGET: usize = 4 * ACCEPT_BUDGET;
/// How long to stop accepting when no file descriptor or no kernel memory
/// can be had.
const ACCEPT_PAUSE_MS: Tick = 100;

/// The loop's side of accepting: what to do when the process runs out.
#[derive(Debug)]
pub(super) struct Accepting {
    /// A descriptor held in reserve: freed to accept-and-refuse when the
    /// process runs out of descriptors.
    pub spare_fd: Option<File>,
    /// When accepting is paused, when to retry.
    pub retry_at: Option<Tick>,
    /// The accept budget ran out with connections still waiting.
    pub pending: bool,
    /// Per-address limits, when any is set.
    pub addresses: Option<Addresses>,
}

/// Addresses the per-address table keeps beyond one per connection (each
/// address with a connection has an entry, so the table always has room
/// for those).
const SPARE_ADDRESSES: usize = 65_536;

impl Accepting {
    pub fn new(limits: &Limits) -> Accepting {
        let limited = limits.max_conns_per_ip.is_some() || limits.max_connects_per_ip.is_some();
        Accepting {
            spare_fd: File::open("/dev/null").ok(),
            retry_at: None,
            pending: false,
            addresses: limited.then(|| {
                Addresses::new(
                    limits.max_conns_per_ip,
                    limits.max_connects_per_ip,
                    limits.max_conns.saturating_add(SPARE_ADDRESSES),
                )
            }),
        }
    }
}

/// Why `accept` failed, as far as the loop cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AcceptFailure {
    /// No file descriptor left (EMFILE, ENFILE): refuse what waits, with the
    /// spare descriptor, so the backlog does not fill.
    OutOfDescriptors,
    /// The kernel is short of memory (ENOMEM, ENOBUFS): freeing a descriptor
    /// would not help; pause accepting briefly.
    OutOfMemory,
    /// Interrupted: try again at once.
    Interrupted,
    /// Nothing more waits.
    WouldBlock,
    /// This one connection failed (the peer gave up, ECONNABORTED, and the
    /// like): go on with the others.
    Connection,
}

impl AcceptFailure {
    pub(crate) fn of(e: &io::Error) -> AcceptFailure {
        match (e.kind(), e.raw_os_error()) {
            (io::ErrorKind::WouldBlock, _) => AcceptFailure::WouldBlock,
            (io::ErrorKind::Interrupted, _) => AcceptFailure::Interrupted,
            (_, Some(libc::EMFILE | libc::ENFILE)) => AcceptFailure::OutOfDescriptors,
            (_, Some(libc::ENOMEM | libc::ENOBUFS)) => AcceptFailure::OutOfMemory,
            _ => AcceptFailure::Connection,
        }
    }
}

impl<P: Protocol, H: Handler> Driver<P, H> {
    /// Accepts from every listener.
    pub(super) fn accept_all(&mut self) {
        self.accepting.pending = false;
        for i in 0..self.listeners.len() {
            self.accept_from(i);
        }
    }

    /// Accepts from listener `i` until its backlog is empty or the budget
    /// is spent.
    pub(super) fn accept_from(&mut self, i: usize) {
        if self.accepting.retry_at.is_some() {
            return;
        }
        for _ in 0..ACCEPT_BUDGET {
            let Some(listener) = self.listeners.get(i) else {
                return;
            };
            match listener.accept() {
                Ok((stream, peer)) => self.admit(stream, peer, i),
                Err(e) => match AcceptFailure::of(&e) {
                    AcceptFailure::WouldBlock => return,
                    AcceptFailure::Interrupted => {}
                    AcceptFailure::OutOfDescriptors => {
                        self.on_out_of_descriptors(i, e);
                        return;
                    }
                    AcceptFailure::OutOfMemory => {
                        log::warn!(
                            "accept failed: {e} ({} connections open); pausing accepts for {ACCEPT_PAUSE_MS}ms",
                            self.conns.len()
                        );
                        self.accepting.retry_at = Some(self.now + ACCEPT_PAUSE_MS);
                        return;
                    }
                    AcceptFailure::Connection => log::debug!("accept: {e}"),
                },
            }
        }
        self.accepting.pending = true;
    }

    /// Out of file descriptors: free the spare, accept and refuse what is
    /// waiting, and take the spare back, so the backlog does not fill while
    /// edge-triggered readiness stays silent. Without a spare, pause
    /// accepting briefly instead of spinning.
    fn on_out_of_descriptors(&mut self, i: usize, e: io::Error) {
        log::warn!(
            "accept failed: {e} ({} connections open); refusing waiting connections",
            self.conns.len()
        );
        if self.accepting.spare_fd.take().is_some() {
            if let Some(listener) = self.listeners.get(i) {
                let mut refused = 0;
                loop {
                    if refused == REFUSE_BUDGET {
                        // More next turn, after the others have been served.
                        self.accepting.pending = true;
                        break;
                    }
                    match listener.accept() {
                        Ok((stream, peer)) => {
                            refused += 1;
                            let wire = self.listening.get(i).map_or(0, |l| l.wire);
                            refuse(
                                &mut self.sessions,
                                stream,
                                peer,
                                CloseReason::Overloaded,
                                wire,
                            );
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(_) => break,
                    }
                }
            }
            self.accepting.spare_fd = File::open("/dev/null").ok();
        }
        if self.accepting.spare_fd.is_none() {
            self.accepting.retry_at = Some(self.now + ACCEPT_PAUSE_MS);
        }
    }

    /// Takes a new connection from listener `i` in: a session, a slab
    /// entry, epoll, a deadline.
    fn admit(&mut self, stream: TcpStream, peer: SocketAddr, i: usize) {
        let Some(&listening) = self.listening.get(i) else {
            return;
        };
        let wire = listening.wire;
        if self.conns.len() >= self.limits.max_conns {
            refuse(
                &mut self.sessions,
                stream,
                peer,
                CloseReason::Overloaded,
                wire,
            );
            return;
        }
        if let Some(a) = &mut self.accepting.addresses {
            if a.handle_connect(self.now, peer.ip()).is_err() {
                refuse(
                    &mut self.sessions,
                    stream,
                    peer,
                    CloseReason::TooManyConnections,
                    wire,
                );
                return;
            }
        }
        // The key the connection will take; nothing else enters the slab
        // before it does.
        let key = self.conns.vacant_key();
        let admitted = match u32::try_from(key) {
            Err(_) => Err(None),
            Ok(key32) if listening.tls => self
                .tls
                .accept(key, self.limits.max_output)
                .map(|()| key32)
                .map_err(Some),
            Ok(key32) => Ok(key32),
        };
        let key32 = match admitted {
            Ok(key32) => key32,
            Err(tls_error) => {
                if let Some(e) = tls_error {
                    log::warn!("TLS for a connection from {peer}: {e}");
                }
                if let Some(a) = &mut self.accepting.addresses {
                    a.handle_close(peer.ip());
                }
                refuse(
                    &mut self.sessions,
                    stream,
                    peer,
                    CloseReason::Overloaded,
                    wire,
                );
                return;
            }
        };
        let session = self
            .sessions
            .handle_accept(self.clock.stamp(), key32, peer, wire);
        let deadline = self.sessions.next_timer(key32, &session);
        let c = session.conn_ref(key32);
        let number = session.number();
        let mut conn = Conn::new(stream, session);
        // Readable and writable once, edge-triggered: no re-registration
        // syscalls as output comes and goes.
        let registered = self.poll.registry().register(
            &mut conn.stream,
            Token(key),
            Interest::READABLE | Interest::WRITABLE,
        );
        let timer = self.wheel.try_insert(deadline, c);
        conn.timer = timer.ok();
        self.conns.insert(conn);
        if let Err(e) = registered {
            log::warn!("conn {number} from {peer}: cannot register: {e}");
            self.close(key, CloseReason::Reset);
        } else if timer.is_err() {
            // Only a wheel holding 2^32 timers is full: refuse rather than panic.
            self.close(key, CloseReason::Overloaded);
        }
    }
}

/// Says `BYE <reason>` to a connection that will not be served.
fn refuse<P: Protocol, H: Handler>(
    sessions: &mut Sessions<P, H>,
    mut stream: TcpStream,
    peer: SocketAddr,
    reason: CloseReason,
    wire: u8,
) {
    use std::io::Write;
    let bye = sessions.handle_refused_for(peer, reason, wire);
    // Best effort: the connection is dropped either way.
    let _ = stream.write(bye);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_failures_are_told_apart() {
        let of = |errno| AcceptFailure::of(&io::Error::from_raw_os_error(errno));
        assert_eq!(of(libc::EMFILE), AcceptFailure::OutOfDescriptors);
        assert_eq!(of(libc::ENFILE), AcceptFailure::OutOfDescriptors);
        // Short of kernel memory is not short of descriptors: refusing with
        // the spare descriptor would not help.
        assert_eq!(of(libc::ENOMEM), AcceptFailure::OutOfMemory);
        assert_eq!(of(libc::ENOBUFS), AcceptFailure::OutOfMemory);
        assert_eq!(of(libc::EAGAIN), AcceptFailure::WouldBlock);
        assert_eq!(of(libc::EINTR), AcceptFailure::Interrupted);
        assert_eq!(of(libc::ECONNABORTED), AcceptFailure::Connection);
        assert_eq!(of(libc::EPROTO), AcceptFailure::Connection);
    }
}
