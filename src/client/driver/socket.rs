//! Socket and standard-input events of the client driver.

use super::*;

impl Driver {
    pub(super) fn handle_socket(&mut self, token: Token) -> Result<(), Error> {
        if self.probe.as_ref().is_some_and(|p| p.token == token) {
            return self.handle_probe_socket(token);
        }
        let Some(conn) = self.conn.as_mut().filter(|c| c.token == token) else {
            return Ok(()); // a socket closed earlier in this batch
        };
        if !conn.connected {
            match crate::sys::connect_result(&conn.stream) {
                Ok(false) => return Ok(()), // spurious: not connected yet
                Ok(true) => {
                    conn.connected = true;
                    if let Err(e) = conn.stream.set_nodelay(true) {
                        debug!("TCP_NODELAY on {}: {e}", conn.addr);
                    }
                    let local = conn.stream.local_addr().ok().map(|a| a.ip());
                    let now = self.now();
                    self.session.handle_connected(now);
                    self.report_network(now, local);
                }
                Err(e) => {
                    debug!("connect to {}: {e}", conn.addr);
                    self.fail(TransportEnd::Error(e.kind()));
                    return self.pump();
                }
            }
        }
        self.read_socket(token)?;
        self.pump()
    }

    /// Reads until `WouldBlock`, feeding the session as it goes.
    pub(super) fn read_socket(&mut self, token: Token) -> Result<(), Error> {
        loop {
            // The session may have closed this connection (and even opened
            // the next) while handling what was read.
            let Some(conn) = self.conn.as_mut().filter(|c| c.token == token) else {
                return Ok(());
            };
            match conn.read(&mut self.read_buf) {
                Ok(0) => {
                    self.fail(TransportEnd::Eof);
                    return Ok(());
                }
                Ok(n) => {
                    let now = self.now();
                    let data = self.read_buf.get(..n).unwrap_or_default();
                    self.session.handle_received(now, data);
                    self.pump()?;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    if e.kind() == io::ErrorKind::InvalidData && conn.tls.is_some() {
                        // A certificate refused, or not TLS at all: say why.
                        warn!("TLS with {}: {e}", conn.addr);
                    } else {
                        debug!("read from {}: {e}", conn.addr);
                    }
                    self.fail(TransportEnd::Error(e.kind()));
                    return Ok(());
                }
            }
        }
    }

    /// Writes the session's output until it is all written or the socket
    /// would block (a writable event brings us back).
    pub(super) fn flush(&mut self) {
        let Some(conn) = self.conn.as_mut().filter(|c| c.connected) else {
            return;
        };
        let sent = match &mut conn.tls {
            None => transmit(&mut self.session, &mut conn.stream),
            Some(tls) => {
                let mut writer = crate::tls::Writer {
                    tls,
                    sock: &mut conn.stream,
                };
                // The session's output, then whatever records the
                // handshake still has to send.
                transmit(&mut self.session, &mut writer)
                    .and_then(|()| writer.flush().map_err(|e| TransportEnd::Error(e.kind())))
            }
        };
        if let Err(end) = sent {
            debug!("write to {}: {end:?}", conn.addr);
            self.fail(end);
        }
    }

    /// Sends what was typed. Lines wait (in `held`, then in the bounded
    /// channel, then in the reader thread) until the session is welcomed,
    /// so lines typed or piped before a connection are not lost; end of
    /// input with nothing waiting ends the client at once.
    pub(super) fn handle_stdin(&mut self) -> Result<(), Error> {
        loop {
            let input = match self.held.take() {
                Some(input) => input,
                None => match self.stdin.try_recv() {
                    Ok(input) => input,
                    Err(TryRecvError::Empty) => return Ok(()),
                    Err(TryRecvError::Disconnected) if !self.stdin_on => return Ok(()),
                    Err(TryRecvError::Disconnected) => Input::Eof,
                },
            };
            match input {
                Input::Line(line) if self.session.phase() != Phase::Online => {
                    self.held = Some(Input::Line(line));
                    return Ok(());
                }
                Input::Line(line) => {
                    let now = self.now();
                    if let Err(e) = self.session.send_message(now, &line) {
                        warn!("message not sent: {e}");
                    }
                    self.pump()?;
                }
                Input::TooLong => warn!(
                    "message not sent: longer than {} bytes",
                    self.session.config().max_message
                ),
                Input::Eof => {
                    info!("end of input: exiting");
                    self.stop = true;
                    return Ok(());
                }
                Input::Failed(e) => return Err(Error::io("cannot read stdin", e)),
            }
        }
    }
}
