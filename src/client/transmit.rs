//! Writing a session's output to its socket: the one write loop shared by
//! `vigil client` ([`super::driver`]) and `vigil load` ([`crate::load`]), so
//! that neither driver calls into the other.

use std::io::{self, Write};

use super::session::{Session, TransportEnd};

/// Writes `session`'s pending output to `stream` (a socket, or a socket
/// through TLS: [`crate::tls::Writer`]) until it is all written or
/// the socket would block (a writable event brings the caller back). `Err`
/// says how the connection failed.
pub(crate) fn transmit(session: &mut Session, stream: &mut impl Write) -> Result<(), TransportEnd> {
    while let Some(pending) = session.poll_transmit() {
        match stream.write(pending) {
            Ok(0) => return Err(TransportEnd::Error(io::ErrorKind::WriteZero)),
            Ok(n) => session.handle_transmitted(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(TransportEnd::Error(e.kind())),
        }
    }
    Ok(())
}
