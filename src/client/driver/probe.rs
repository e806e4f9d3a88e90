//! The adaptive search's probe connection: a second, short-lived socket to
//! the main connection's server, opened and closed as the session asks
//! ([`ProbeAction`](crate::client::session::ProbeAction)). It never sends
//! `HELLO`, so the server counts it as no one's presence.

use std::io::{self, Read, Write};

use log::debug;

use super::{Driver, Error};
use crate::client::session::{ServerIndex, TransportEnd};

impl Driver {
    pub(super) fn connect_probe(&mut self, server: ServerIndex) {
        self.drop_probe();
        match self.open(server) {
            Ok(conn) => self.probe = Some(conn),
            Err(e) => {
                let now = self.now();
                self.session
                    .handle_probe_closed(now, TransportEnd::Error(e.kind()));
            }
        }
    }

    pub(super) fn drop_probe(&mut self) {
        if let Some(mut probe) = self.probe.take() {
            let _ = self.poll.registry().deregister(&mut probe.stream);
        }
    }

    /// The probe socket ended under us: forget it, tell the session.
    fn fail_probe(&mut self, end: TransportEnd) {
        self.drop_probe();
        let now = self.now();
        self.session.handle_probe_closed(now, end);
    }

    /// Writes the probe's few bytes until done or `WouldBlock`.
    pub(super) fn flush_probe(&mut self) {
        let Some(probe) = self.probe.as_mut().filter(|c| c.connected) else {
            return;
        };
        while let Some(pending) = self.session.poll_probe_transmit() {
            match probe.stream.write(pending) {
                Ok(0) => return self.fail_probe(TransportEnd::Error(io::ErrorKind::WriteZero)),
                Ok(n) => self.session.handle_probe_transmitted(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    debug!("probe write to {}: {e}", probe.addr);
                    return self.fail_probe(TransportEnd::Error(e.kind()));
                }
            }
        }
    }

    pub(super) fn handle_probe_socket(&mut self, token: mio::Token) -> Result<(), Error> {
        let Some(probe) = self.probe.as_mut().filter(|c| c.token == token) else {
            return Ok(());
        };
        if !probe.connected {
            match crate::sys::connect_result(&probe.stream) {
                Ok(false) => return Ok(()),
                Ok(true) => {
                    probe.connected = true;
                    let _ = probe.stream.set_nodelay(true);
                    let now = self.now();
                    self.session.handle_probe_connected(now);
                }
                Err(e) => {
                    debug!("probe connect to {}: {e}", probe.addr);
                    self.fail_probe(TransportEnd::Error(e.kind()));
                    return self.pump();
                }
            }
        }
        while let Some(probe) = self.probe.as_mut().filter(|c| c.token == token) {
            match probe.stream.read(&mut self.read_buf) {
                Ok(0) => {
                    self.fail_probe(TransportEnd::Eof);
                    break;
                }
                Ok(n) => {
                    let now = self.now();
                    let data = self.read_buf.get(..n).unwrap_or_default();
                    self.session.handle_probe_received(now, data);
                    self.pump()?;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    debug!("probe read from {}: {e}", probe.addr);
                    self.fail_probe(TransportEnd::Error(e.kind()));
                    break;
                }
            }
        }
        self.pump()
    }
}
