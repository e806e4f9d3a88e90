//! Bytes read from a connection, decoded into frames.

use super::*;

impl<P: Protocol, H: Handler, D: PresenceTable> Sessions<P, H, D> {
    /// Bytes read at `now` from connection `key`. Complete frames are
    /// answered (see [`Sessions::poll_transmit`]); an incomplete one is kept
    /// for next time. False when the connection is to be closed (see
    /// [`Sessions::poll_close`]) or was already: stop reading it.
    #[cfg(test)]
    pub fn handle_bytes(&mut self, now: Tick, key: u32, s: &mut Session, data: &[u8]) -> bool {
        self.handle_bytes_after(now, key, s, data, 0)
    }

    /// [`Sessions::handle_bytes`] for a connection that already has
    /// `waiting` bytes of output the socket has not taken: the replies to
    /// `data` may add at most `max_output - waiting` more, checked after
    /// each reply (a peer that never reads cannot make one read produce
    /// more), or it is closed with `output-overflow`.
    pub fn handle_bytes_after(
        &mut self,
        now: Tick,
        key: u32,
        s: &mut Session,
        data: &[u8],
        waiting: usize,
    ) -> bool {
        if !s.is_open() {
            return false;
        }
        if self.wire_of_session(s).websocket {
            return self.handle_ws_bytes(now, key, s, data, waiting);
        }
        let heard_before = s.last_seen;
        let budget = self.settings.max_output.saturating_sub(waiting);
        let produced_from = self.tx.bytes.len();
        // The codec resumes the incomplete frame where it stopped, so a
        // frame trickled one byte per read costs O(n), not O(n²).
        let (mut pending, mut resume) = s.input.take();
        let from_pending = !pending.is_empty();
        if from_pending {
            pending.extend_from_slice(data);
        }
        let buf = if from_pending { &pending[..] } else { data };
        let mut used = 0;
        let mut failed = None;
        while used < buf.len() {
            let left = buf.len() - used;
            match self.protocol_of(s).decode_resume(&buf[used..], &mut resume) {
                Ok(Some((_, n))) if n == 0 || n > left => {
                    // The codec broke its contract: 0 would loop forever,
                    // more than it was given would read past the input.
                    log::error!(
                        "conn {} from {}: protocol {} decoded a frame using {n} of {left} bytes \
                         (the contract is 1 to {left}); closing with BYE bad-frame",
                        s.number,
                        s.peer(),
                        self.protocol_of(s).name()
                    );
                    failed = Some(CloseReason::BadFrame);
                    break;
                }
                Ok(Some((frame, n))) => {
                    if let Frame::Hello { client_id, .. } = frame {
                        if self.client_of(s) != Some(client_id) && !self.presence.owns(client_id) {
                            self.hand_off(key, s, client_id, buf[used..].to_vec());
                            return false;
                        }
                    }
                    used += n;
                    resume = Resume::default();
                    s.last_seen = s.last_seen.max(now);
                    if let Err(reason) = self.on_frame(now, key, s, frame) {
                        failed = Some(reason);
                        break;
                    }
                    if self.tx.bytes.len() - produced_from > budget {
                        log::debug!(
                            "conn {} from {}: more than {} bytes of replies waiting; closing",
                            s.number,
                            s.peer(),
                            self.settings.max_output
                        );
                        failed = Some(CloseReason::OutputOverflow);
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    log::warn!(
                        "conn {} from {}: {e}; closing with BYE {}",
                        s.number,
                        s.peer(),
                        e.close_reason()
                    );
                    failed = Some(e.close_reason());
                    break;
                }
            }
        }
        if s.last_seen > heard_before {
            if let Some(a) = self.arrivals.get_mut(key as usize) {
                a.record(s.last_seen - heard_before);
            }
        }
        match failed {
            Some(reason) => {
                self.closes.push_back((s.conn_ref(key), reason));
                false
            }
            None => {
                if from_pending {
                    if used > 0 && pending.capacity() > RELEASE_INPUT_ABOVE {
                        // A large frame is done: keep only what is left, in
                        // a buffer of its size, so the large one's capacity
                        // is not held for the connection's lifetime.
                        s.input.put(pending[used..].to_vec(), resume);
                    } else {
                        pending.drain(..used);
                        s.input.put(pending, resume);
                    }
                } else if used < data.len() {
                    s.input.put(data[used..].to_vec(), resume);
                }
                true
            }
        }
    }
}
