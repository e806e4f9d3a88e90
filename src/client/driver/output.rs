//! What `vigil client` shows: a log line for each session event, and each
//! line from the server on stdout (unless quiet).

use std::io::{self, Write};

use log::{debug, info, warn};

use super::{Driver, Error};
use crate::client::adaptive::ChangeReason;
use crate::client::session::Event;

impl Driver {
    /// Logs the session's events and prints the server's lines (unless
    /// quiet). Called after every input, with the session's actions done.
    pub(super) fn report_events(&mut self) -> Result<(), Error> {
        while let Some(event) = self.session.poll_event() {
            match event {
                Event::Connected { server } => info!("connected to {}", self.addr(server)),
                Event::Welcome {
                    interval_ms,
                    server_interval_ms,
                    server_timeout_ms,
                } => {
                    info!(
                        "welcomed by {}: beating every {interval_ms} ms (server asks {server_interval_ms} ms)",
                        self.addr(self.session.server())
                    );
                    if let Some(timeout) = server_timeout_ms.filter(|t| interval_ms >= *t) {
                        warn!(
                            "the interval ({interval_ms} ms) is not below the server's timeout ({timeout} ms): \
                             the server may drop this client when the line is idle"
                        );
                    }
                }
                Event::PingSent { seq, due_ms } => {
                    debug!("ping {seq} sent (due at {due_ms} ms)");
                }
                Event::Pong { seq, rtt_ms } => debug!("pong {seq}: {rtt_ms} ms"),
                Event::Line(line) => {
                    if !self.quiet {
                        self.print(&line)?;
                    }
                }
                Event::Disconnected { server, reason } => {
                    warn!("{}: {reason}", self.addr(server));
                }
                Event::IntervalChanged {
                    from_ms,
                    to_ms,
                    reason,
                } => {
                    let a = self.session.adaptive();
                    let bound =
                        |v: Option<u64>| v.map_or_else(|| "none".to_owned(), |v| format!("{v} ms"));
                    let settled = if a.is_some_and(|a| a.is_settled()) {
                        "; settled, probing again after a hold"
                    } else {
                        ""
                    };
                    info!(
                        "interval {from_ms} ms -> {to_ms} ms: {reason} ({}; proven {}, failed {}){settled}",
                        match reason {
                            ChangeReason::Probe => "a probe proved a longer interval",
                            ChangeReason::Reprobe => "a probe proved the old failure bound stale",
                            ChangeReason::Loss => "the main connection lost a beat: start over",
                            ChangeReason::Settle => "limit found: settle a margin below it",
                            ChangeReason::Restart => "losses in a row: start over",
                            ChangeReason::ServerTimeout => "the server's timeout is shorter",
                            ChangeReason::Network => "the network changed",
                        },
                        bound(a.map(|a| a.proven())),
                        bound(a.and_then(|a| a.failed())),
                    );
                }
                Event::Probe {
                    interval_ms,
                    outcome,
                } => {
                    let beating = self
                        .session
                        .interval_ms()
                        .map_or_else(String::new, |i| format!("; beating every {i} ms"));
                    let settled = if self.session.adaptive().is_some_and(|a| a.is_settled()) {
                        "; settled"
                    } else {
                        ""
                    };
                    info!(
                        "probe of {interval_ms} ms: {}{beating}{settled}",
                        outcome.as_str()
                    );
                }
                Event::ReconnectScheduled {
                    server,
                    attempt,
                    delay_ms,
                } => info!(
                    "reconnecting to {} in {delay_ms} ms (attempt {attempt})",
                    self.addr(server)
                ),
            }
        }
        Ok(())
    }

    fn print(&mut self, line: &[u8]) -> Result<(), Error> {
        let mut out = io::stdout().lock();
        let result = out
            .write_all(line)
            .and_then(|()| out.write_all(b"\n"))
            .and_then(|()| out.flush());
        match result {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                info!("stdout closed: exiting");
                self.stop = true;
                Ok(())
            }
            Err(e) => Err(Error::io("cannot write to stdout", e)),
        }
    }
}
