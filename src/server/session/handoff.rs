//! Hand-off of connections between workers.

use super::*;

impl<P: Protocol, H: Handler, D: PresenceTable> Sessions<P, H, D> {
    /// A connection handed over by the worker that accepted it (its HELLO
    /// names an id this worker owns): its session under slab key `key`,
    /// with the number and peer it had there, and no second online event.
    /// The bytes from its HELLO on follow through [`Sessions::handle_bytes`].
    pub fn handle_adopt(&mut self, now: Tick, key: u32, number: u64, peer: SocketAddr) -> Session {
        self.forget_arrivals(key);
        Session {
            number,
            peer: peer.into(),
            last_seen: now,
            client: None,
            input: Partial::default(),
            ping_window_start: 0,
            pings_in_window: 0,
            frames_in_window: 0,
            version: 0,
            wire: 0,
            state: State::OPEN,
        }
    }

    /// The hand-off of `s` (from [`Sessions::poll_handoff`]) failed, or
    /// the server stops before it could be made: it is closed here instead
    /// for `reason` (`overloaded`, `shutdown`), with its offline event, so
    /// it still has exactly one.
    pub fn handle_handoff_failed(&mut self, key: u32, s: &mut Session, reason: CloseReason) {
        if s.state == State::HANDED_OFF {
            s.state = State::OPEN;
            self.handle_close(key, s, reason);
        }
    }

    /// The next connection to hand to the worker that owns its client id,
    /// with the bytes to replay there (its HELLO and what followed). The
    /// loop writes what is queued for it first, then sends it on.
    pub fn poll_handoff(&mut self) -> Option<Handoff> {
        self.handoffs.pop_front()
    }

    /// Sets the number the next connection gets (workers start theirs
    /// apart, so numbers are unique across workers).
    pub fn set_next_number(&mut self, number: u64) {
        self.next_number = number;
    }

    /// `s` leaves this worker: its id (if any) is released without an
    /// offline event; the new owner emits the `hello` and, later, the
    /// offline event.
    pub(super) fn hand_off(&mut self, key: u32, s: &mut Session, id: &str, rest: Vec<u8>) {
        let cref = s.conn_ref(key);
        if let Some(old) = s.client.take() {
            self.presence.free(old);
        }
        s.state = State::HANDED_OFF;
        s.input = Partial::default();
        self.handoffs.push_back(Handoff {
            conn: cref,
            client: id.into(),
            input: rest,
        });
    }
}
