//! One connection as the event loop holds it: its socket, its pure
//! [`Session`], the output its socket has not taken, and its wheel entry.
//! Small, and free of buffers while idle.

use std::io::{self, Read, Write};

use mio::net::TcpStream;

use super::session::Session;
use super::spill::Spill;
use crate::protocol::CloseReason;
use crate::wheel::TimerKey;

/// A connection in the loop's slab. About 130 bytes while idle; its buffers
/// exist only while it holds a partial frame or unsent output.
pub(crate) struct Conn {
    pub stream: TcpStream,
    pub session: Session,
    /// Replies the socket has not taken yet.
    pub output: Spill,
    /// The wheel entry for this connection's deadline, while armed.
    pub timer: Option<TimerKey>,
    /// Already on the list of connections to read (see `Turn`).
    pub queued: bool,
    /// The peer's FIN has been reported: read to the end of stream.
    pub fin: bool,
    /// The turn whose read budget `reads` counts.
    pub read_turn: u16,
    /// Reads made in turn `read_turn`.
    pub reads: u8,
}

impl Conn {
    pub fn new(stream: TcpStream, session: Session) -> Conn {
        Conn {
            stream,
            session,
            output: Spill::default(),
            timer: None,
            queued: false,
            fin: false,
            read_turn: 0,
            reads: 0,
        }
    }

    /// Reads what the peer sent into `buf`, as [`read_some`] does; through
    /// `tls` (the connection's entry in [`super::tls::TlsConns`]), the
    /// plaintext (see [`crate::tls`] for the rules).
    pub fn read(
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
    /// holds what the socket does not take (not `output`).
    pub fn send_via(
        &mut self,
        tls: Option<&mut rustls::ServerConnection>,
        data: &[u8],
        max_output: usize,
    ) -> Result<(), CloseReason> {
        match tls {
            None => self.send(data, max_output),
            Some(tls) => send_tls(tls, &mut self.stream, data),
        }
    }

    /// [`Conn::flush`], or the records `tls` holds.
    pub fn flush_via(
        &mut self,
        tls: Option<&mut rustls::ServerConnection>,
    ) -> Result<(), CloseReason> {
        match tls {
            None => self.flush(),
            Some(tls) => crate::tls::flush(tls, &mut self.stream).map_err(|_| CloseReason::Reset),
        }
    }

    /// Sends a connection's last bytes (its BYE) whatever the output cap,
    /// then, through TLS, a `close_notify`. Best effort: the connection is
    /// going either way.
    pub fn send_last(&mut self, tls: Option<&mut rustls::ServerConnection>, data: &[u8]) {
        match tls {
            None => {
                let _ = self.send(data, usize::MAX);
            }
            Some(tls) => {
                tls.set_buffer_limit(None);
                let _ = crate::tls::write(tls, &mut self.stream, data);
                tls.send_close_notify();
                let _ = crate::tls::flush(tls, &mut self.stream);
            }
        }
    }

    /// Writes `data` after whatever output is already pending. What the
    /// socket does not take is kept; the error says the connection is
    /// unusable (`Reset`) or the peer is not reading (`OutputOverflow`).
    pub fn send(&mut self, data: &[u8], max_output: usize) -> Result<(), CloseReason> {
        if self.output.is_empty() {
            let written = write_some(&mut self.stream, data)?;
            if written < data.len() {
                self.output.get_mut().extend_from_slice(&data[written..]);
            }
        } else {
            self.output.get_mut().extend_from_slice(data);
            self.flush()?;
        }
        if self.output.len() > max_output {
            return Err(CloseReason::OutputOverflow);
        }
        Ok(())
    }

    /// Writes pending output until it is gone or the socket is full.
    pub fn flush(&mut self) -> Result<(), CloseReason> {
        let Some(pending) = self.output.as_mut() else {
            return Ok(());
        };
        let written = write_some(&mut self.stream, pending)?;
        pending.drain(..written);
        self.output.release_if_empty();
        Ok(())
    }
}

/// Hands `data` to TLS and writes what the socket takes. rustls holds the
/// rest, up to the output cap it was given at accept
/// ([`super::tls::accept`]): past the cap it takes less than all of `data`.
fn send_tls(
    tls: &mut rustls::ServerConnection,
    stream: &mut TcpStream,
    data: &[u8],
) -> Result<(), CloseReason> {
    match crate::tls::write(tls, stream, data) {
        Ok(n) if n == data.len() => Ok(()),
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
        // wheel entries: keep an eye on it (the target is < 200 bytes all in).
        assert!(
            std::mem::size_of::<Conn>() <= 128,
            "{}",
            std::mem::size_of::<Conn>()
        );
    }
}
