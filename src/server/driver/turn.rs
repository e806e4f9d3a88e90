//! The end of a turn: transmit, expire, re-arm or close; the cluster link and signals.

use super::*;

impl<P: Protocol, H: Handler> Driver<P, H> {
    /// Writes everything the sessions produced, in order: one write per
    /// connection per batch of replies. A connection's last bytes (its BYE)
    /// go out whatever the output cap; nothing goes after them.
    pub(super) fn transmit(&mut self) {
        loop {
            self.apply_closes();
            let Some(t) = self.sessions.poll_transmit() else {
                return;
            };
            let key = t.to.key as usize;
            let Some(conn) = self.conns.get_mut(key) else {
                continue;
            };
            if conn.session.generation() != t.to.generation || conn.session.is_ended() {
                continue;
            }
            if t.last || !conn.session.is_open() {
                // Best effort: the connection is going either way.
                let tls = self.tls.get_mut(key);
                if t.last {
                    self.traffic.bytes_out += conn.send_last(tls, t.bytes) as u64;
                    conn.session.handle_ended();
                } else if let Ok(n) = conn.send_via(tls, t.bytes, usize::MAX) {
                    self.traffic.bytes_out += n as u64;
                }
                continue;
            }
            match conn.send_via(self.tls.get_mut(key), t.bytes, self.limits.max_output) {
                Ok(n) => self.traffic.bytes_out += n as u64,
                Err(reason) => self.close(key, reason),
            }
        }
    }

    /// Advances the wheel to the turn's time and deals with the connections
    /// whose deadline entry fired: re-arm the ones heard from since, close
    /// the others, after a last look at their sockets.
    pub(super) fn expire(&mut self) {
        self.wheel.advance(self.now);
        self.advanced_to = self.now;
        self.turn.expiring = false;
        for done in 0.. {
            if done == EXPIRE_BUDGET {
                // The rest stay on the wheel's expired list for next turn.
                self.turn.expiring = true;
                break;
            }
            let Some((_, c)) = self.wheel.poll_expired() else {
                break;
            };
            let key = c.key as usize;
            let silent = match self.conns.get_mut(key) {
                Some(conn) if conn.session.generation() == c.generation => {
                    conn.timer = None;
                    conn.session.is_open()
                        && self.sessions.deadline(key as u32, &conn.session) <= self.now
                }
                _ => continue,
            };
            if silent {
                // A last look before declaring it dead: a heartbeat may have
                // reached the socket since this turn's poll returned.
                self.read(key);
            }
            self.rearm_or_close(key);
        }
        while let Some(c) = self.sessions.poll_hello_due(self.now) {
            if let Some(conn) = self.conns.get(c.key as usize) {
                if conn.session.generation() == c.generation
                    && self.sessions.handle_hello_deadline(c.key, &conn.session)
                {
                    self.apply_closes();
                }
            }
        }
    }

    /// Asks the session of connection `key` whether it is past its
    /// deadline: re-arms its entry if not, closes it (`timeout`) if so.
    pub(super) fn rearm_or_close(&mut self, key: usize) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        match self
            .sessions
            .handle_timeout(self.now, key as u32, &mut conn.session)
        {
            Deadline::At(deadline) => {
                let c = conn.session.conn_ref(key as u32);
                // The entry that fired was just removed, so there is room.
                conn.timer = self.wheel.try_insert(deadline, c).ok();
                if conn.timer.is_none() {
                    self.close(key, CloseReason::Overloaded);
                }
            }
            Deadline::Passed => self.apply_closes(),
            Deadline::Closed => {}
        }
    }

    /// Removes the connections closed during this turn and hands the turn's
    /// presence events to the sink.
    pub(super) fn end_turn(&mut self) {
        self.send_handoffs();
        for key in self.turn.closing.drain(..) {
            self.tls.remove(key);
            if let Some(mut conn) = self.conns.try_remove(key) {
                // Read what the peer sent and we will not process, so the
                // close sends a FIN after our BYE rather than a reset that
                // could make the peer drop the BYE unread.
                let _ = read_some(&mut conn.stream, &mut self.scratch);
                // Dropping closes the socket, which also takes it out of
                // the epoll set.
            }
        }
        if self.sessions.poll_stop() {
            self.stop.store(true, Ordering::Release);
        }
        let mut wall = None;
        let watched = self.admin.watched();
        while let Some(e) = self.sessions.poll_event() {
            let event = Event {
                conn: e.number,
                peer: e.peer,
                client: e.client.as_deref(),
                kind: e.kind,
            };
            self.sink.emit(&event);
            if watched {
                let mut json = String::new();
                event.write_json(self.run_id(), SystemTime::now(), &mut json);
                self.admin.tell_viewers(&json);
            }
            if let Some(c) = &mut self.cluster {
                let time =
                    wall.get_or_insert_with(|| crate::events::format_time(SystemTime::now()));
                c.publish(&Change {
                    conn: e.number,
                    peer: &e.peer.to_string(),
                    client: e.client.as_deref(),
                    kind: e.kind,
                    time,
                });
            }
        }
        if let Some(c) = &mut self.cluster {
            c.flush_all(self.poll.registry(), self.now);
        }
        if let Err(e) = self.sink.flush() {
            log::error!("cannot write events: {e}");
        }
        if watched {
            self.admin_flush_viewers();
        }
    }

    /// Lets the cluster reconnect, refresh its lease and look for dead
    /// nodes, and carries out the takeovers other nodes asked for: the
    /// connection that still holds the id is closed with `BYE replaced`.
    pub(super) fn run_cluster(&mut self) {
        let Some(c) = &mut self.cluster else {
            return;
        };
        c.handle_timeout(self.poll.registry(), self.now);
        let mut takeovers = Vec::new();
        let mut owners = Vec::new();
        while let Some(output) = c.poll_output() {
            match output {
                Output::Takeover { client, conn } => takeovers.push((client, conn)),
                Output::Owner { request, record } => owners.push((request, record)),
            }
        }
        for (request, record) in owners {
            self.admin_owner(request, record);
        }
        for (client, conn) in takeovers {
            if let Some(holder) = self.sessions.holder(&client) {
                if holder.generation == conn as u32 && self.is_current(holder) {
                    self.close(holder.key as usize, CloseReason::Replaced);
                }
            }
        }
    }

    /// SIGHUP reopens the events file; SIGUSR1 asks for a stats line;
    /// SIGUSR2 is ignored; SIGINT and SIGTERM stop the server.
    pub(super) fn on_signals(&mut self) {
        use signal_hook::consts::{SIGHUP, SIGUSR1, SIGUSR2};
        let Some(signals) = &mut self.signals else {
            return;
        };
        for signal in signals.pending() {
            match signal {
                SIGHUP => {
                    log::info!("received SIGHUP: reopening the events file");
                    self.sink.reopen();
                }
                SIGUSR1 => self.stats_asked = true,
                SIGUSR2 => log::info!("received SIGUSR2: ignored"),
                _ => {
                    log::info!("received signal {signal}: shutting down");
                    self.stop.store(true, Ordering::Release);
                }
            }
        }
    }
}
