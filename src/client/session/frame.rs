//! Frames from the server, and disconnects.

use super::*;

impl Session {
    pub(super) fn handle_frame(&mut self, now: Tick, frame: ServerFrame<'_>) {
        // Every frame is a sign of life; once online, the interval since
        // the one before is what the φ detector learns from.
        if let (Some(p), State::Online(_)) = (self.phi.as_deref_mut(), &self.state) {
            p.1.record(now.saturating_sub(self.last_rx));
        }
        self.last_rx = now;
        match frame {
            ServerFrame::Welcome {
                interval_ms,
                timeout_ms,
            } => {
                if let Some(a) = &mut self.adaptive {
                    let change = a.planner.handle_server_timeout(timeout_ms);
                    self.report_change(change);
                }
                let online = match self.state {
                    State::Online(o) => Online {
                        server_interval_ms: interval_ms.unwrap_or(o.server_interval_ms),
                        ..o
                    },
                    _ => Online {
                        welcomed_at: now,
                        // 0 when the server does not say: the session then
                        // has a fixed or adaptive interval (checked in `new`).
                        server_interval_ms: interval_ms.unwrap_or(0),
                        ping: None,
                        pong_seen: false,
                    },
                };
                self.state = State::Online(online);
                self.events.push_back(Event::Welcome {
                    interval_ms: self.interval_of(&online),
                    server_interval_ms: online.server_interval_ms,
                    server_timeout_ms: timeout_ms,
                });
            }
            ServerFrame::Pong { token } => {
                let seq = token.and_then(wire::parse_ms);
                self.handle_answer(now, |ping| seq == Some(ping));
            }
            ServerFrame::Ack => {
                self.handle_answer(now, |_| true);
            }
            ServerFrame::Echo(data) => {
                let seq = wire::parse_ms(data);
                if !self.handle_answer(now, |ping| seq == Some(ping)) {
                    self.events.push_back(Event::Line(data.to_vec()));
                }
            }
            ServerFrame::Bye { reason } => {
                self.disconnect(now, DisconnectReason::Bye(reason), true);
            }
            ServerFrame::Message(m) => self.events.push_back(Event::Line(m.to_vec())),
            // The server pings when it has not heard from us for its
            // interval: answer at once (the answer is life to it).
            ServerFrame::Ping { token } => {
                if matches!(self.state, State::Online(_) | State::Hello { .. }) {
                    self.compact_output();
                    self.config.protocol.encode_pong(token, &mut self.out);
                    self.last_tx = now;
                }
            }
            ServerFrame::Other(_) => {}
        }
    }

    /// An answer arrived: it clears the outstanding ping if `answers` says
    /// it is that ping's. Returns whether it did.
    pub(super) fn handle_answer(&mut self, now: Tick, answers: impl Fn(u64) -> bool) -> bool {
        let State::Online(o) = &mut self.state else {
            return false;
        };
        let Some(ping) = o.ping.filter(|p| answers(p.seq)) else {
            return false;
        };
        o.ping = None;
        o.pong_seen = true;
        self.events.push_back(Event::Pong {
            seq: ping.seq,
            rtt_ms: now.saturating_sub(ping.sent_at),
        });
        // The main connection's beats teach the probe search nothing (it
        // only uses proven intervals); in the background they count down
        // the beats at the minimum that come first.
        if let Some(a) = self.adaptive.as_deref_mut() {
            if self.mode == Mode::Background {
                a.min_beats_left = a.min_beats_left.saturating_sub(1);
            }
        }
        true
    }

    pub(super) fn handle_decode_error(&mut self, now: Tick, e: DecodeError) {
        let reason = match e {
            DecodeError::TooLong { .. } => DisconnectReason::LineTooLong,
            DecodeError::BadFrame(what) => DisconnectReason::BadLine(what),
        };
        self.disconnect(now, reason, true);
    }

    /// Ends the current connection (or connect attempt) and schedules the
    /// next, on the next server.
    pub(super) fn disconnect(&mut self, now: Tick, reason: DisconnectReason, close: bool) {
        let mut change = None;
        if let State::Online(o) = self.state {
            let lasted = now.saturating_sub(o.welcomed_at);
            let enough = self.interval_of(&o).saturating_mul(HEALTHY_INTERVALS);
            if o.pong_seen || lasted >= enough {
                self.backoff.reset();
            }
            // A beat lost: unanswered, or the connection died under it (a
            // NAT that resets a flow it has forgotten). A BYE or a bad
            // line is the server talking, not the path failing.
            let lost = matches!(
                reason,
                DisconnectReason::PingTimeout
                    | DisconnectReason::Silent
                    | DisconnectReason::Failed(_)
                    | DisconnectReason::Eof
            );
            if let (Some(ping), true) = (o.ping, lost) {
                change = self.main_beat_lost(now, ping.quiet);
            }
        }
        // A probe needs the main connection's server: it ends with it.
        self.abort_probe(now);
        self.close_pending |= close;
        self.drop_connection_buffers();
        self.events.push_back(Event::Disconnected {
            server: ServerIndex(self.server),
            reason,
        });
        self.report_change(change);
        self.server = (self.server + 1) % self.config.servers;
        let (attempt, delay_ms) = self.backoff.next_delay();
        self.state = State::Waiting {
            until: now.saturating_add(delay_ms),
        };
        self.events.push_back(Event::ReconnectScheduled {
            server: ServerIndex(self.server),
            attempt,
            delay_ms,
        });
    }
}
