//! The HELLO, authentication and takeover path of
//! [`Sessions`](super::Sessions), and the handler calls.

use super::*;

impl<P: Protocol, H: Handler, D: PresenceTable> Sessions<P, H, D> {
    /// Hands in the wall-clock time, in Unix seconds (for
    /// [`Context::unix_time`]): the loop does once per turn.
    pub fn handle_unix_time(&mut self, unix_secs: u64) {
        self.unix_time = unix_secs;
    }

    /// When the first connection still on the HELLO list must have said
    /// HELLO, if any is.
    pub fn next_hello_deadline(&self) -> Option<Tick> {
        self.hellos.front().map(|&(_, at)| at)
    }

    /// The next connection whose HELLO deadline has passed at `now`; the
    /// loop hands it to [`Sessions::handle_hello_deadline`] if it is still
    /// the one the key names.
    pub fn poll_hello_due(&mut self, now: Tick) -> Option<ConnRef> {
        match self.hellos.front() {
            Some(&(c, at)) if at <= now => {
                self.hellos.pop_front();
                // A burst of accepts grew the queue; give the memory back
                // once it has drained, rather than keep the peak's size.
                if self.hellos.capacity() > 1024 && self.hellos.len() < self.hellos.capacity() / 4 {
                    self.hellos.shrink_to(self.hellos.len() * 2);
                }
                Some(c)
            }
            _ => None,
        }
    }

    /// Connection `key`'s HELLO deadline passed: closed (`hello-timeout`)
    /// unless it has completed a HELLO. True when it is to be closed.
    pub fn handle_hello_deadline(&mut self, key: u32, s: &Session) -> bool {
        if !s.is_open() || s.client.is_some() {
            return false;
        }
        log::debug!(
            "conn {} from {}: no HELLO in time; closing",
            s.number,
            s.peer()
        );
        self.closes
            .push_back((s.conn_ref(key), CloseReason::HelloTimeout));
        true
    }

    pub(super) fn on_frame(
        &mut self,
        now: Tick,
        key: u32,
        s: &mut Session,
        frame: Frame<'_>,
    ) -> Result<(), CloseReason> {
        self.stats.frames += 1;
        let cref = s.conn_ref(key);
        if let Some(max) = self.settings.max_frames {
            let count = s.record_frame(now, self.settings.interval_ms);
            if count > max {
                log::debug!(
                    "conn {} from {}: more than {max} frames per interval; closing",
                    s.number,
                    s.peer()
                );
                return Err(CloseReason::TooManyFrames);
            }
        }
        match frame {
            Frame::Ping { token } => {
                self.stats.heartbeats += 1;
                let count = s.record_ping(now, self.settings.interval_ms);
                if let Some(max) = self.settings.max_pings.filter(|&max| count > max) {
                    log::warn!(
                        "conn {} from {}: more than {max} heartbeats per interval; closing",
                        s.number,
                        s.peer()
                    );
                    return Err(CloseReason::TooManyPings);
                }
                if self
                    .protocol_of(s)
                    .max_pongs_per_interval()
                    .is_none_or(|max| count <= max)
                {
                    self.reply(cref, s, &Reply::Pong { token });
                }
            }
            Frame::Hello { client_id, token } => {
                if self.client_of(s) == Some(client_id) {
                    // Nothing changes; a new WELCOME each time would let a
                    // peer turn a few bytes into many. A request-reply
                    // protocol still answers every one.
                    if self.protocol_of(s).welcome_every_hello() {
                        let welcome = self.welcome(client_id);
                        self.reply(cref, s, &welcome);
                    }
                    return Ok(());
                }
                if let Verdict::Refuse(reason) = self.call_hello_request(s, key, client_id, token) {
                    return Err(reason);
                }
                let welcome = self.welcome(client_id);
                self.reply(cref, s, &welcome);
                self.take_id(now, key, s, client_id)?;
            }
            Frame::Message(message) => {
                let ran = self.call_handler(s, key, true, |h, ctx, info| {
                    h.on_message(ctx, info, message)
                });
                if !ran {
                    return Err(CloseReason::InternalError);
                }
            }
            // The answer to the server's own ping: life, and nothing more.
            Frame::Pong { .. } => {}
            Frame::Quit => {
                self.reply(cref, s, &Reply::Quit);
                return Err(CloseReason::Closed);
            }
            Frame::Unknown { command } => self.reply(cref, s, &Reply::Unknown { command }),
            Frame::Command(command) => self.on_command(now, key, s, command)?,
        }
        Ok(())
    }

    /// Gives connection `key` the client id `client_id`: releases its old
    /// one, claims this one (the previous holder is closed, `replaced`),
    /// the `hello` event and `on_hello`. The same id again changes nothing.
    /// The caller has asked `on_hello_request` already. Err when `on_hello`
    /// panicked.
    pub(super) fn take_id(
        &mut self,
        now: Tick,
        key: u32,
        s: &mut Session,
        client_id: &str,
    ) -> Result<(), CloseReason> {
        if self.client_of(s) == Some(client_id) {
            return Ok(());
        }
        let cref = s.conn_ref(key);
        if let Some(old) = s.client {
            // The old id goes offline before anything is said about the
            // new one.
            self.presence.release(old);
            self.event(s, EventKind::Renamed);
            self.presence.free(old);
            s.client = None;
        }
        let Some((id, previous)) = self.presence.claim(client_id, cref, now) else {
            log::error!(
                "conn {} from {}: the presence table is full; closing",
                s.number,
                s.peer()
            );
            return Err(CloseReason::Overloaded);
        };
        if let Some(previous) = previous {
            self.closes.push_back((previous, CloseReason::Replaced));
        }
        s.client = Some(id);
        self.event(s, EventKind::Hello);
        if let Some(hello) = self.events.back_mut() {
            hello.replaces = previous;
        }
        if !self.call_handler(s, key, true, |h, ctx, info| h.on_hello(ctx, info)) {
            return Err(CloseReason::InternalError);
        }
        Ok(())
    }

    /// A request about the connection: applies the version it negotiates,
    /// answers it from the connection's state, then takes the client id a
    /// handshake names (after the answer, as for HELLO's WELCOME). A
    /// handshake naming a new id is put to `on_hello_request` first, with
    /// its password as the token, as a HELLO is: refused, it gets no answer.
    pub(super) fn on_command(
        &mut self,
        now: Tick,
        key: u32,
        s: &mut Session,
        command: Command<'_>,
    ) -> Result<(), CloseReason> {
        if let Command::Handshake {
            client_id: Some(id),
            token,
            ..
        } = command
        {
            if self.client_of(s) != Some(id) {
                if let Verdict::Refuse(reason) = self.call_hello_request(s, key, id, token) {
                    return Err(reason);
                }
            }
        }
        match command {
            Command::Handshake {
                version: Some(v), ..
            } => s.version = v,
            Command::Reset => s.version = 0,
            _ => {}
        }
        let client = self.client_of(s).map(CompactString::from);
        let reply = Reply::Command {
            command,
            number: s.number,
            client_id: client.as_deref(),
            version: s.version,
        };
        self.reply(s.conn_ref(key), s, &reply);
        if let Command::Handshake {
            client_id: Some(id),
            ..
        } = command
        {
            self.take_id(now, key, s, id)?;
        }
        Ok(())
    }

    pub(super) fn welcome<'a>(&self, client_id: &'a str) -> Reply<'a> {
        Reply::Welcome {
            client_id,
            interval_ms: self.settings.interval_ms,
            timeout_ms: self.settings.timeout_ms,
        }
    }

    /// Asks the handler whether connection `key` may take `client_id`.
    pub(super) fn call_hello_request(
        &mut self,
        s: &Session,
        key: u32,
        client_id: &str,
        token: Option<&[u8]>,
    ) -> Verdict {
        let mut verdict = Verdict::Accept;
        let ran = self.call_handler(s, key, true, |h, ctx, info| {
            verdict = h.on_hello_request(ctx, info, client_id, token);
        });
        if ran {
            verdict
        } else {
            Verdict::Refuse(CloseReason::InternalError)
        }
    }

    /// Calls a handler hook for connection `key`, then queues what it asked
    /// for: its replies first, then messages to others, closes and a stop.
    ///
    /// A hook that panics does not take the server down: the panic is
    /// caught, logged, what the hook queued is dropped, and the connection
    /// is closed with `internal-error`; false then. The cost is nothing on
    /// the path that does not panic (`catch_unwind` is a call through an
    /// unwinding landing pad, no allocation); it needs `panic = "unwind"`
    /// (the default), and a hook that panics may leave its own state half
    /// updated: the server only promises to go on serving.
    pub(super) fn call_handler(
        &mut self,
        s: &Session,
        key: u32,
        can_reply: bool,
        hook: impl FnOnce(&mut H, &mut Context<'_>, &ConnInfo<'_>),
    ) -> bool {
        let cref = s.conn_ref(key);
        let info = ConnInfo {
            id: super::super::ConnId(cref),
            number: s.number,
            peer: s.peer(),
            client: s.client.map(|k| self.presence.name(k)),
        };
        let start = self.tx.bytes.len();
        let w = usize::from(s.wire).min(self.wires.len() - 1);
        let mut ctx = Context {
            current: Some(cref),
            can_reply,
            out: &mut self.tx.bytes,
            outbox: &mut self.outbox,
            presence: &self.presence,
            protocol: &self.wires[w].protocol,
            unix_time: self.unix_time,
        };
        let handler = &mut self.handler;
        let ran = std::panic::catch_unwind(AssertUnwindSafe(|| hook(handler, &mut ctx, &info)));
        if ran.is_err() {
            log::error!(
                "conn {} from {}: a handler hook panicked; closing with BYE internal-error",
                s.number,
                s.peer()
            );
            self.tx.bytes.truncate(start);
            self.outbox.bytes.clear();
            self.outbox.sends.clear();
            self.outbox.closes.clear();
            self.outbox.stop = false;
            if s.is_open() {
                self.closes.push_back((cref, CloseReason::InternalError));
            }
            return false;
        }
        if self.wires[w].websocket && self.tx.bytes.len() > start {
            ws::frame_lines(&mut self.tx.bytes, start, &mut self.ws_scratch);
        }
        self.tx.push(cref, start, false);
        if !self.outbox.is_empty() {
            self.apply_outbox();
        }
        true
    }

    /// Queues a hook's messages to other connections (encoded once per
    /// wire, shared by every target that speaks it), its closes and its
    /// stop.
    pub(super) fn apply_outbox(&mut self) {
        let mut outbox = std::mem::take(&mut self.outbox);
        let mut encoded: Vec<Option<(usize, usize)>> = vec![None; self.wires.len()];
        for &(target, start, end) in &outbox.sends {
            encoded.iter_mut().for_each(|e| *e = None);
            self.targets.clear();
            match target {
                Target::Conn(c) => self.targets.push(c),
                Target::Clients { except } => self.targets.extend(
                    self.presence
                        .iter()
                        .map(|(_, c)| c)
                        .filter(|c| Some(*c) != except),
                ),
            }
            let message = outbox.bytes.get(start..end).unwrap_or_default();
            for i in 0..self.targets.len() {
                let to = self.targets[i];
                let w = self.wire_index(to.key);
                let (from, to_end) = match encoded.get(w).copied().flatten() {
                    Some(range) => range,
                    None => {
                        let from = self.tx.bytes.len();
                        self.encode_on(w, &Reply::Message(message));
                        let range = (from, self.tx.bytes.len());
                        if let Some(e) = encoded.get_mut(w) {
                            *e = Some(range);
                        }
                        range
                    }
                };
                self.tx.queue.push(Entry {
                    to,
                    start: from,
                    end: to_end,
                    last: false,
                });
            }
        }
        self.closes.extend(outbox.closes.drain(..));
        self.stop |= outbox.stop;
        outbox.bytes.clear();
        outbox.sends.clear();
        outbox.stop = false;
        self.outbox = outbox;
    }
}
