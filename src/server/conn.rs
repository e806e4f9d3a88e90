//! One connection as the event loop holds it: its socket, its pure
//! [`Session`], the output its socket has not taken, and its wheel entry.
//! Small, and free of buffers while idle.

use std::io::{self, Read, Write};

use mio::net::TcpStream;

use super::session::Session;
use super::spill::Spill;
use crate::protocol::CloseReason;
use crate::wheel::TimerKey;

/// A connection in the loop's slab: 88 bytes in a release build while idle
/// (the socket 4, the session 64, the output and timer handles 8 each, the
/// read state 3); its buffers exist only while it holds a partial frame or
/// unsent output.
pub(crate) struct Conn {
    pub stream: TcpStream,
    pub session: Session,
    /// Replies the socket has not taken yet.
    pub output: Spill,
    /// The wheel entry for this connection's deadline, while armed.
    pub timer: Option<TimerKey>,
    /// The loop's per-turn bookkeeping for reads.
    pub read: ReadState,
}

impl Conn {
    pub fn new(stream: TcpStream, session: Session) -> Conn {
        Conn {
            stream,
            session,
            output: Spill::default(),
            timer: None,
            read: ReadState::default(),
        }
    }

    /// Reads what the peer sent into `buf`, as [`read_some`] does; through
    /// `tls` (the connection's entry in [`super::tls::TlsConns`]), the
    /// plaintext (see [`crate::tls`] for the rules).
    pub fn receive(
        &mut self,
        tls: Option<&mut rustls::ServerConnection>,
        buf: &mut [u8],
    ) -> io::Result<usize> {
        match tls {
            None => read_some(&mut self.stream, buf),
            Some(tls) => crate::tls::read(tls, &mut self.stream, buf),
        }
    }

    /// [`Conn::send`], or through `tls` when the connection has it: rustls
    /// holds what the socket does not take (not `output`). Says how many
    /// bytes went out: through TLS, the plaintext rustls took (its records
    /// are a little larger).
    pub fn send_via(
        &mut self,
        tls: Option<&mut rustls::ServerConnection>,
        data: &[u8],
        max_output: usize,
    ) -> Result<usize, CloseReason> {
        match tls {
            None => self.send(data, max_output),
            Some(tls) => send_tls(tls, &mut self.stream, data),
        }
    }

    /// [`Conn::flush`], or the records `tls` holds. Says how many bytes of
    /// `output` went out (none through TLS: they were counted when sent).
    pub fn flush_via(
        &mut self,
        tls: Option<&mut rustls::ServerConnection>,
    ) -> Result<usize, CloseReason> {
        match tls {
            None => self.flush(),
            Some(tls) => crate::tls::flush(tls, &mut self.stream)
                .map(|_| 0)
                .map_err(|_| CloseReason::Reset),
        }
    }

    /// Sends a connection's last bytes (its BYE) whatever the output cap,
    /// then, through TLS, a `close_notify`. Best effort: the connection is
    /// going either way. Says how many bytes went out (as
    /// [`Conn::send_via`]).
    pub fn send_last(&mut self, tls: Option<&mut rustls::ServerConnection>, data: &[u8]) -> usize {
        match tls {
            None => self.send(data, usize::MAX).unwrap_or(0),
            Some(tls) => {
                tls.set_buffer_limit(None);
                let n = crate::tls::write(tls, &mut self.stream, data).unwrap_or(0);
                tls.send_close_notify();
                let _ = crate::tls::flush(tls, &mut self.stream);
                n
            }
        }
    }

    /// Writes `data` after whatever output is already pending, and says
    /// how many bytes the socket took. What the socket does not take is
    /// kept; the error says the connection is unusable (`Reset`) or the
    /// peer is not reading (`OutputOverflow`).
    pub fn send(&mut self, data: &[u8], max_output: usize) -> Result<usize, CloseReason> {
        let written = if self.output.is_empty() {
            let written = write_some(&mut self.stream, data)?;
            if written < data.len() {
                self.output.get_mut().extend_from_slice(&data[written..]);
            }
            written
        } else {
            self.output.get_mut().extend_from_slice(data);
            self.flush()?
        };
        if self.output.len() > max_output {
            return Err(CloseReason::OutputOverflow);
        }
        Ok(written)
    }

    /// Writes pending output until it is gone or the socket is full; how
    /// many bytes the socket took.
    pub fn flush(&mut self) -> Result<usize, CloseReason> {
        let Some(pending) = self.output.as_mut() else {
            return Ok(0);
        };
        let written = write_some(&mut self.stream, pending)?;
        pending.drain(..written);
        self.output.release_if_empty();
        Ok(written)
    }
}

/// What the loop keeps per connection about reading: whether it is on the
/// list of connections to read, whether its FIN has been reported, and how
/// many reads it has had in which turn. Three bytes, so that a connection
/// stays at 112 bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ReadState {
    /// The turn (modulo 2^16) whose budget `bits` counts.
    turn: u16,
    /// `QUEUED`, `FIN`, and the reads made in `turn` from bit 2 up.
    bits: u8,
}

const QUEUED: u8 = 1;
const FIN: u8 = 2;
const READ_ONE: u8 = 4;

impl ReadState {
    /// Already on the list of connections to read (see `Turn`).
    pub fn is_queued(&self) -> bool {
        self.bits & QUEUED != 0
    }

    pub fn set_queued(&mut self, queued: bool) {
        if queued {
            self.bits |= QUEUED;
        } else {
            self.bits &= !QUEUED;
        }
    }

    /// The peer's FIN has been reported: read to the end of stream.
    pub fn saw_fin(&self) -> bool {
        self.bits & FIN != 0
    }

    pub fn mark_fin(&mut self) {
        self.bits |= FIN;
    }

    /// Takes one read from turn `turn`'s budget of `budget` (at most 63);
    /// false when it is spent. A turn number met again 65,536 turns later
    /// may find a stale count: the read then waits one turn, never more.
    pub fn take_read(&mut self, turn: u16, budget: u8) -> bool {
        if self.turn != turn {
            self.turn = turn;
            self.bits &= QUEUED | FIN;
        }
        if self.bits / READ_ONE >= budget {
            return false;
        }
        self.bits += READ_ONE;
        true
    }
}

/// Hands `data` to TLS and writes what the socket takes. rustls holds the
/// rest, up to the output cap it was given at accept
/// ([`super::tls::accept`]): past the cap it takes less than all of `data`.
fn send_tls(
    tls: &mut rustls::ServerConnection,
    stream: &mut TcpStream,
    data: &[u8],
) -> Result<usize, CloseReason> {
    match crate::tls::write(tls, stream, data) {
        Ok(n) if n == data.len() => Ok(n),
        Ok(_) => Err(CloseReason::OutputOverflow),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Err(CloseReason::OutputOverflow),
        Err(_) => Err(CloseReason::Reset),
    }
}

/// Writes as much of `data` as the socket takes now.
fn write_some(stream: &mut TcpStream, data: &[u8]) -> Result<usize, CloseReason> {
    let mut written = 0;
    while written < data.len() {
        match stream.write(&data[written..]) {
            Ok(0) => return Err(CloseReason::Reset),
            Ok(n) => written += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Err(CloseReason::Reset),
        }
    }
    Ok(written)
}

/// Reads what is there, up to `buf.len()`, retrying on `Interrupted`.
pub(crate) fn read_some(stream: &mut TcpStream, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match stream.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_connection_is_small() {
        // The user-space cost of an idle connection, beside the slab and
        // wheel entries: keep an eye on it (the target is < 200 bytes all
        // in). Debug builds add 12 bytes to mio's socket (and 4 of
        // padding) to the 88 of a release build.
        use std::mem::size_of;
        let conn = if cfg!(debug_assertions) { 104 } else { 88 };
        assert!(size_of::<Session>() <= 64, "{}", size_of::<Session>());
        assert!(size_of::<ReadState>() <= 4, "{}", size_of::<ReadState>());
        assert!(size_of::<Conn>() <= conn, "{}", size_of::<Conn>());
    }

    #[test]
    fn the_read_budget_is_counted_per_turn() {
        let mut r = ReadState::default();
        r.mark_fin();
        r.set_queued(true);
        let taken: Vec<bool> = (0..5).map(|_| r.take_read(7, 4)).collect();
        assert_eq!(taken, [true, true, true, true, false]);
        // A new turn, a new budget; the flags stay.
        assert!(r.take_read(8, 4));
        assert!(r.saw_fin() && r.is_queued());
        r.set_queued(false);
        assert!(!r.is_queued() && r.saw_fin());
    }
}
