//! Handing connections between workers (see `server::workers`): sending a
//! connection whose HELLO names an id another worker owns, and taking in
//! the ones other workers send here.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

use mio::net::TcpStream;
use mio::unix::SourceFd;
use mio::{Interest, Token};
use slab::Slab;

use super::super::conn::Conn;
use super::super::session::Handoff as SessionHandoff;
use super::super::workers::{owner_of, Handoff, WorkerSlot};
use super::{Driver, Handler};
use crate::error::{Error, ErrorKind};
use crate::protocol::{CloseReason, Protocol};
use crate::time::Tick;

/// The hand-off listening socket's token: above every slab key (they fit
/// in a `u32`), below the listeners' tokens.
pub(crate) const HANDOFF: Token = Token((1 << 40) + 2);
/// Other workers' connections to this one's hand-off socket have tokens
/// from here on, one per worker at most.
pub(crate) const HANDOFF_PEERS: usize = 1 << 41;
/// The most hand-off connections a worker takes in (one per other worker,
/// and their reconnects).
const MAX_PEERS: usize = 1 << 16;

/// Whether `t` is one of the hand-off connections' tokens.
pub(crate) fn is_peer(t: Token) -> bool {
    (HANDOFF_PEERS..HANDOFF_PEERS + MAX_PEERS).contains(&t.0)
}

/// The largest hand-off message taken in: a read's worth of input and a
/// full output cap fit with room to spare.
const MAX_DATAGRAM: usize = 256 * 1024;
/// How long a hand-off may wait for room at its owner before the
/// connection is closed (`overloaded`) for its client to come back.
const PATIENCE_MS: Tick = 5000;
/// How often waiting hand-offs are tried again: not every millisecond,
/// which would spin many busy workers against each other.
const RETRY_MS: Tick = 10;

/// A worker's hand-off sockets and what goes with them (present only when
/// the server is one of several workers): it listens on a `SOCK_SEQPACKET`
/// socket named after its group and index; each worker that hands it
/// connections connects once and keeps the connection. A message per
/// hand-off, queued up to the socket buffer's bytes (thousands), where a
/// datagram socket would queue `net.unix.max_dgram_qlen` (10).
pub(crate) struct Port {
    slot: WorkerSlot,
    listener: OwnedFd,
    /// Other workers' connections to us, by token `HANDOFF_PEERS + key`.
    inbound: Slab<OwnedFd>,
    /// Our connection to each worker, by index, once made.
    outbound: Vec<Option<OwnedFd>>,
    buf: Vec<u8>,
    /// Hand-offs whose owner had no room, and when each was first tried.
    waiting: VecDeque<(SessionHandoff, Tick)>,
}

impl Port {
    /// Our connection to worker `owner` (listening as `name`), made now if
    /// there is none yet.
    fn connection_to(&mut self, owner: usize, name: &str) -> io::Result<std::os::fd::RawFd> {
        let slot = self
            .outbound
            .get_mut(owner)
            .ok_or_else(|| io::Error::other("no such worker"))?;
        if slot.is_none() {
            *slot = Some(crate::sys::connect_abstract_seqpacket(name.as_bytes())?);
        }
        slot.as_ref()
            .map(|fd| fd.as_raw_fd())
            .ok_or_else(|| io::Error::other("no connection"))
    }
}

/// Whether a failed hand-off may succeed later: the owner's queue is full,
/// or it is restarting (not listening, or the connection to its previous
/// process broke).
fn retry(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::NotConnected
    )
}

impl<P: Protocol, H: Handler> Driver<P, H> {
    /// Makes this loop worker `slot.index` of `slot.count`: binds its
    /// hand-off socket, named after the group and its index.
    pub fn set_worker(&mut self, slot: WorkerSlot) -> Result<(), Error> {
        let name = slot.socket_name(slot.index);
        let listener = crate::sys::listen_abstract_seqpacket(name.as_bytes()).map_err(|e| {
            Error::with_source(
                ErrorKind::Bind,
                format!("cannot listen on the hand-off socket {name}"),
                e,
            )
        })?;
        self.poll
            .registry()
            .register(
                &mut SourceFd(&listener.as_raw_fd()),
                HANDOFF,
                Interest::READABLE,
            )
            .map_err(|e| {
                Error::with_source(ErrorKind::Io, "cannot register the hand-off socket", e)
            })?;
        self.sessions.set_next_number(slot.first_conn);
        let count = slot.count as usize;
        self.handoff = Some(Box::new(Port {
            slot,
            listener,
            inbound: Slab::new(),
            outbound: (0..count).map(|_| None).collect(),
            buf: vec![0; MAX_DATAGRAM],
            waiting: VecDeque::new(),
        }));
        Ok(())
    }

    /// Sends every connection the sessions handed off to its owner, after
    /// what was queued for it has been written: first the ones waiting for
    /// room at their owner, then the new ones. One that cannot be sent
    /// within [`PATIENCE_MS`] (or not at all) is closed here (`overloaded`).
    /// Waiting ones are tried again every [`RETRY_MS`], and at the end of
    /// every turn.
    pub(super) fn send_handoffs(&mut self) {
        let mut failed = false;
        let waiting = self
            .handoff
            .as_mut()
            .map(|port| std::mem::take(&mut port.waiting))
            .unwrap_or_default();
        for (h, since) in waiting {
            failed |= self.send_handoff(h, since);
        }
        while let Some(h) = self.sessions.poll_handoff() {
            if let Some(conn) = self.conns.get_mut(h.conn.key as usize) {
                if let Some(timer) = conn.timer.take() {
                    self.wheel.cancel(timer);
                }
                // The registration belongs to the socket, not to this
                // descriptor: left in place it would outlive our close.
                let _ = self.poll.registry().deregister(&mut conn.stream);
            }
            failed |= self.send_handoff(h, self.now);
        }
        if failed {
            self.transmit();
        }
    }

    /// Tries to send one hand-off, first tried at `since`; true if it
    /// failed for good and the connection was closed.
    fn send_handoff(&mut self, h: SessionHandoff, since: Tick) -> bool {
        let key = h.conn.key as usize;
        if !self.is_current(h.conn) {
            return false;
        }
        let sent = match (&mut self.handoff, self.conns.get_mut(key)) {
            (Some(port), Some(conn)) => {
                let message = Handoff {
                    number: conn.session.number(),
                    peer: conn.session.peer(),
                    output: conn.output.as_mut().map(|v| v.to_vec()).unwrap_or_default(),
                    input: h.input.clone(),
                };
                let mut payload = std::mem::take(&mut port.buf);
                message.encode(&mut payload);
                let owner = owner_of(&h.client, port.slot.count) as usize;
                let to = port.slot.socket_name(owner as u32);
                let result = port.connection_to(owner, &to).and_then(|out| {
                    crate::sys::send_fd(out, None, &payload, conn.stream.as_raw_fd())
                });
                payload.resize(MAX_DATAGRAM, 0);
                port.buf = payload;
                match result {
                    // The owner's queue is full, or it is not (yet, or
                    // again) listening: try again in a moment, for a while.
                    Err(e) if retry(&e) && self.now.saturating_sub(since) < PATIENCE_MS => {
                        if !matches!(e.kind(), io::ErrorKind::WouldBlock) {
                            // A restarted owner needs a new connection.
                            if let Some(o) = port.outbound.get_mut(owner) {
                                *o = None;
                            }
                        }
                        port.waiting.push_back((h, since));
                        return false;
                    }
                    other => other.map_err(|e| (e, Some(to))),
                }
            }
            _ => Err((io::Error::other("not a worker"), None)),
        };
        match sent {
            // Our descriptor closes; the owner's copy keeps the socket,
            // and counts it against its address from now on.
            Ok(()) => {
                if let Some(conn) = self.conns.try_remove(key) {
                    if let Some(a) = &mut self.accepting.addresses {
                        a.handle_close(conn.session.peer().ip());
                    }
                }
                false
            }
            Err((e, to)) => {
                log::warn!(
                    "conn {}: cannot hand it to {}: {e}; closing",
                    self.conns.get(key).map_or(0, |c| c.session.number()),
                    to.as_deref().unwrap_or("another worker")
                );
                self.fail_handoff(key, CloseReason::Overloaded);
                true
            }
        }
    }

    fn fail_handoff(&mut self, key: usize, reason: CloseReason) {
        if let Some(conn) = self.conns.get_mut(key) {
            self.sessions
                .handle_handoff_failed(key as u32, &mut conn.session, reason);
            self.turn.closing.push(key);
        }
    }

    /// The server stops: the connections still waiting to be handed off
    /// are closed here (`shutdown`).
    pub(super) fn drop_handoffs(&mut self) {
        let waiting = self
            .handoff
            .as_mut()
            .map(|port| std::mem::take(&mut port.waiting))
            .unwrap_or_default();
        for (h, _) in waiting {
            if self.is_current(h.conn) {
                self.fail_handoff(h.conn.key as usize, CloseReason::Shutdown);
            }
        }
    }

    /// When to try the waiting hand-offs again, if any wait.
    pub(super) fn handoff_retry_at(&self) -> Option<Tick> {
        self.handoff
            .as_ref()
            .filter(|port| !port.waiting.is_empty())
            .map(|_| self.now + RETRY_MS)
    }

    /// Takes in the connections of other workers that will hand
    /// connections to this one.
    pub(super) fn accept_handoff_peers(&mut self) {
        let Some(port) = &mut self.handoff else {
            return;
        };
        loop {
            let fd = match crate::sys::accept_unix(port.listener.as_raw_fd()) {
                Ok(fd) => fd,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    log::warn!("hand-off socket: accept: {e}");
                    return;
                }
            };
            if port.inbound.len() >= MAX_PEERS {
                log::warn!("hand-off socket: {MAX_PEERS} peers already; refusing one");
                continue;
            }
            let entry = port.inbound.vacant_entry();
            let token = Token(HANDOFF_PEERS + entry.key());
            match self.poll.registry().register(
                &mut SourceFd(&fd.as_raw_fd()),
                token,
                Interest::READABLE,
            ) {
                Ok(()) => {
                    entry.insert(fd);
                }
                Err(e) => log::warn!("hand-off socket: cannot register a peer: {e}"),
            }
        }
    }

    /// Takes in every connection the worker behind hand-off connection
    /// `peer` has sent here.
    pub(super) fn take_handoffs(&mut self, peer: Token) {
        let key = peer.0.wrapping_sub(HANDOFF_PEERS);
        loop {
            let Some(port) = &mut self.handoff else {
                return;
            };
            let Some(socket) = port.inbound.get(key) else {
                return;
            };
            let (n, fd) = match crate::sys::recv_fd(socket.as_raw_fd(), &mut port.buf) {
                Ok(got) => got,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    log::warn!("hand-off connection: {e}");
                    port.inbound.remove(key);
                    return;
                }
            };
            let Some(fd) = fd else {
                if n == 0 {
                    // That worker is gone: its connection ends here.
                    port.inbound.remove(key);
                    return;
                }
                log::warn!("a hand-off came without its socket (no descriptor left?)");
                continue;
            };
            let Some(h) = Handoff::decode(&port.buf[..n]) else {
                log::warn!("a hand-off datagram could not be read; dropping its connection");
                continue;
            };
            let stream = TcpStream::from_std(std::net::TcpStream::from(fd));
            self.adopt(stream, h);
        }
    }

    /// Takes a handed-off connection in: a session with its number (no
    /// online event), a slab entry, epoll, a deadline; then its unwritten
    /// output goes out and its HELLO and what followed are replayed.
    fn adopt(&mut self, stream: TcpStream, h: Handoff) {
        let entry = self.conns.vacant_entry();
        let key = entry.key();
        let Ok(key32) = u32::try_from(key) else {
            log::warn!("conn {}: no slab key left; dropping it", h.number);
            return;
        };
        let now = self.clock.stamp();
        let session = self.sessions.handle_adopt(now, key32, h.number, h.peer);
        let deadline = self.sessions.deadline(key32, &session);
        let c = session.conn_ref(key32);
        let mut conn = Conn::new(stream, session);
        let registered = self.poll.registry().register(
            &mut conn.stream,
            Token(key),
            Interest::READABLE | Interest::WRITABLE,
        );
        let timer = self.wheel.try_insert(deadline, c);
        conn.timer = timer.ok();
        if !h.output.is_empty() {
            // Best effort, as for any write; what it does not take waits.
            let _ = conn.send(&h.output, usize::MAX);
        }
        let conn = entry.insert(conn);
        if let Some(a) = &mut self.accepting.addresses {
            a.handle_adopt(now, h.peer.ip());
        }
        let waiting = conn.output.len();
        self.sessions
            .handle_bytes_after(now, key32, &mut conn.session, &h.input, waiting);
        if let Err(e) = registered {
            log::warn!("conn {}: cannot register: {e}", h.number);
            self.close(key, CloseReason::Reset);
        } else if timer.is_err() {
            self.close(key, CloseReason::Overloaded);
        }
        self.apply_closes();
    }
}
