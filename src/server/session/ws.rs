//! WebSocket connections: the opening handshake, frames in and out, and
//! the server's pings, on top of the rules of [`Sessions`].
//!
//! A listener's [`Wire`] says whether its connections speak WebSocket.
//! Such a connection carries the line protocol, one line per message
//! (see [`crate::protocol::ws`]); here it gets, beyond what every
//! connection gets:
//!
//! # Rules
//! - **Online after the upgrade.** Its `online` event and `on_online` come
//!   when the opening handshake completes, not at accept: until then it is
//!   an HTTP request, not a client. One that closes before has its
//!   `online` and `offline` together, says nothing (no `BYE`), and its
//!   handler hears nothing of it.
//! - **Handshake deadline.** The handshake must complete within
//!   [`WsOptions::handshake_timeout_ms`] of the accept, or the connection
//!   is closed (`hello-timeout`). The connection's wheel entry carries
//!   this deadline (no queue of pending handshakes, which would keep the
//!   size of its peak). A request that is not an acceptable
//!   upgrade gets its HTTP status (400, 403, 426, 431) and is closed.
//! - **Frames.** Client frames must be masked; reserved bits, unknown
//!   opcodes, fragmented or oversize control frames, a continuation with
//!   no message, a new message inside a fragmented one, text that is not
//!   UTF-8 and a message of more than one line are `bad-frame`; a message
//!   longer than the line limit is `line-too-long`. Each sends the close
//!   frame of its reason after `BYE`.
//! - **Life.** Every complete frame is a sign of life, control frames
//!   included: the pong a browser sends by itself keeps its page online.
//!   A ping is answered with a pong carrying its payload; a close frame
//!   is answered with a close frame, and the connection ends (`closed`).
//! - **Server pings.** With [`Wire::ping_after`], a connection that has
//!   said HELLO and is not heard from for that long gets one ping; the
//!   deadline is unchanged, so a peer that answers nothing is closed at
//!   `timeout` as any other. An anonymous connection is not pinged: it
//!   beats by itself or times out.
//! - **Out.** Every reply is one text frame per line, without its `\n`;
//!   a closing connection's `BYE <reason>` is followed by a close frame
//!   with the reason's code ([`close_code`](crate::protocol::ws::close_code))
//!   and the reason as its text.
//!
//! The connection's partial input is one buffer: the payload of the
//! fragmented message so far (unmasked, `Resume::state[0]` bytes, its
//! opcode in `state[1]`), then the raw bytes not yet a whole frame. An
//! idle WebSocket connection costs what a line connection does.

use super::*;
use crate::protocol::ws::{self as wsp, HandshakeError, Opcode};

/// How the connections of one listener speak.
#[derive(Debug, Clone)]
pub(crate) struct Wire<P> {
    /// Their protocol (for WebSocket, the line protocol inside it).
    pub protocol: P,
    /// WebSocket framing around the protocol.
    pub websocket: bool,
    /// Ping a connection not heard from for this long: a WebSocket ping,
    /// or the protocol's [`Reply::Ping`] (which only protocols that
    /// [`can_ping`](Protocol::can_ping) are given).
    pub ping_after: Option<Tick>,
}

impl<P: Protocol> Wire<P> {
    /// `protocol` on plain TCP (or TLS).
    #[cfg(test)]
    pub fn plain(protocol: P) -> Wire<P> {
        Wire {
            protocol,
            websocket: false,
            ping_after: None,
        }
    }

    /// `protocol` on plain TCP (or TLS), pinging after `ping_after` of
    /// silence if the protocol [`can_ping`](Protocol::can_ping).
    pub fn pinging(protocol: P, ping_after: Option<Tick>) -> Wire<P> {
        let ping_after = ping_after.filter(|_| protocol.can_ping());
        Wire {
            protocol,
            websocket: false,
            ping_after,
        }
    }

    /// `protocol` inside WebSocket, pinging after `ping_after` of silence.
    pub fn websocket(protocol: P, ping_after: Option<Tick>) -> Wire<P> {
        Wire {
            protocol,
            websocket: true,
            ping_after,
        }
    }
}

/// What every WebSocket wire shares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WsOptions {
    /// How long the opening handshake may take after the accept.
    pub handshake_timeout_ms: Tick,
    /// The `Origin`s allowed; empty: any (and none).
    pub origins: Vec<String>,
}

/// The default handshake deadline: 10 s.
pub(crate) const DEFAULT_HANDSHAKE_TIMEOUT_MS: Tick = 10_000;

impl Default for WsOptions {
    fn default() -> Self {
        WsOptions {
            handshake_timeout_ms: DEFAULT_HANDSHAKE_TIMEOUT_MS,
            origins: Vec::new(),
        }
    }
}

/// Rewrites the lines in `out[start..]` as text frames, one per line,
/// without their `\n` (or `\r\n`).
pub(crate) fn frame_lines(out: &mut Vec<u8>, start: usize, scratch: &mut Vec<u8>) {
    scratch.clear();
    scratch.extend_from_slice(out.get(start..).unwrap_or_default());
    out.truncate(start);
    for line in scratch.split_inclusive(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        wsp::encode_frame(out, Opcode::Text, None, line);
    }
}

/// What a fragmented message is, in `Resume::state[1]`.
const NO_MESSAGE: u32 = 0;
const TEXT: u32 = 1;
const BINARY: u32 = 2;

impl<P: Protocol, H: Handler, D: PresenceTable> Sessions<P, H, D> {
    /// Whether a frame can bring a connection's next timer forward: the φ
    /// detector learning a faster rhythm, or a connection whose first ping
    /// is due sooner than the deadline armed at its accept.
    pub fn timers_can_move_earlier(&self) -> bool {
        self.deadlines_can_move_earlier() || self.any_pings
    }

    /// When connection `key`'s timer should fire next: its
    /// [`deadline`](Sessions::deadline), or sooner its server ping or its
    /// WebSocket handshake's deadline. The loop arms a new connection's
    /// wheel entry at this.
    pub fn next_timer(&self, key: u32, s: &Session) -> Tick {
        let deadline = self.deadline(key, s);
        let ping = self
            .ping_after(s)
            .map(|every| s.last_seen.saturating_add(every));
        [Some(deadline), ping, self.handshake_deadline(s)]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(deadline)
    }

    /// How long connection `s` may be silent before it is pinged, if the
    /// server pings it: on a wire that pings, once it has said HELLO (an
    /// anonymous connection must beat by itself, or a browser's automatic
    /// pongs would keep any page that connects online for ever).
    fn ping_after(&self, s: &Session) -> Option<Tick> {
        let wire = self.wire_of_session(s);
        wire.ping_after.filter(|_| s.client.is_some())
    }

    /// The timer of connection `key` fired at `now`, before its
    /// `deadline`: pings it if it has been silent for the wire's
    /// `ping_after` (then waits for the deadline), and says when to look
    /// again.
    pub(super) fn ping_due(&mut self, now: Tick, key: u32, s: &Session, deadline: Tick) -> Tick {
        let Some(every) = self.ping_after(s) else {
            return deadline;
        };
        let at = s.last_seen.saturating_add(every);
        if now < at {
            return at.min(deadline);
        }
        let start = self.tx.bytes.len();
        if self.wire_of_session(s).websocket {
            wsp::encode_frame(&mut self.tx.bytes, Opcode::Ping, None, b"");
        } else {
            self.encode_for(s, &Reply::Ping);
        }
        self.tx.push(s.conn_ref(key), start, false);
        self.stats.server_pings += 1;
        deadline
    }

    /// When a WebSocket connection that has not finished its opening
    /// handshake must have: `handshake_timeout` after its accept (its
    /// `last_seen` until the handshake completes). `None` for the others.
    pub(super) fn handshake_deadline(&self, s: &Session) -> Option<Tick> {
        (self.wire_of_session(s).websocket && s.version == 0)
            .then(|| s.last_seen.saturating_add(self.ws.handshake_timeout_ms))
    }

    /// [`Sessions::handle_bytes_after`] for a WebSocket connection. The
    /// bytes are worked on (unmasked) in the connection's own buffer when
    /// it holds a partial frame, in the server's scratch buffer otherwise,
    /// so that a read of whole frames allocates nothing and an idle
    /// connection keeps nothing.
    pub(super) fn handle_ws_bytes(
        &mut self,
        now: Tick,
        key: u32,
        s: &mut Session,
        data: &[u8],
        waiting: usize,
    ) -> bool {
        let (pending, resume) = s.input.take();
        let owned = !pending.is_empty() || resume != Resume::default();
        let mut buf = if owned {
            pending
        } else {
            std::mem::take(&mut self.ws_raw)
        };
        buf.extend_from_slice(data);
        let (open, keep) = self.ws_input(now, key, s, &mut buf, resume, waiting);
        if let Some(resume) = keep.filter(|_| open) {
            if owned {
                if buf.capacity() > RELEASE_INPUT_ABOVE {
                    buf.shrink_to_fit();
                }
                s.input.put(buf, resume);
                return open;
            }
            s.input.put(buf.clone(), resume);
        }
        if !owned {
            buf.clear();
            if buf.capacity() > KEEP_TX_CAPACITY {
                buf.shrink_to(KEEP_TX_CAPACITY);
            }
            self.ws_raw = buf;
        }
        open
    }

    /// Works through `buf` (what the connection has sent and not yet
    /// used, with `resume` its place): the handshake, then frames. False
    /// when the connection is to be closed. With what `buf` still holds
    /// to keep (compacted), the place to keep with it.
    fn ws_input(
        &mut self,
        now: Tick,
        key: u32,
        s: &mut Session,
        buf: &mut Vec<u8>,
        resume: Resume,
        waiting: usize,
    ) -> (bool, Option<Resume>) {
        let heard_before = s.last_seen;
        let budget = self.settings.max_output.saturating_sub(waiting);
        let produced_from = self.tx.bytes.len();
        let cref = s.conn_ref(key);
        let mut pos = 0;
        if s.version == 0 {
            // Parsed only once its blank line is in (or it is too long),
            // so a request trickled a byte per read costs O(n).
            let from = (resume.checked as usize).min(buf.len());
            let ended = buf[from..].windows(4).any(|w| w == b"\r\n\r\n");
            let parsed = if ended || buf.len() >= wsp::MAX_REQUEST {
                wsp::parse_request(buf)
            } else {
                Ok(None)
            };
            match parsed {
                Ok(None) => {
                    let checked = buf.len().saturating_sub(3) as u32;
                    let resume = Resume {
                        checked,
                        state: [0; 3],
                    };
                    return (true, Some(resume));
                }
                Err(e) => {
                    self.refuse_handshake(s, cref, e);
                    return (false, None);
                }
                Ok(Some((req, used))) => {
                    if !self.origin_allowed(req.origin) {
                        self.refuse_handshake(s, cref, HandshakeError::Forbidden);
                        return (false, None);
                    }
                    let start = self.tx.bytes.len();
                    wsp::write_accept(&mut self.tx.bytes, req.key);
                    self.tx.push(cref, start, false);
                    s.version = wsp::VERSION;
                    s.last_seen = s.last_seen.max(now);
                    pos = used;
                    self.event(s, EventKind::Online);
                    if !self.call_handler(s, key, true, |h, ctx, info| h.on_online(ctx, info)) {
                        return (false, None);
                    }
                }
            }
        }
        let max = self.protocol_of(s).max_frame();
        let (mut assembled, mut kind) = if pos == 0 {
            ((resume.state[0] as usize).min(buf.len()), resume.state[1])
        } else {
            (0, NO_MESSAGE)
        };
        if pos == 0 {
            pos = assembled;
        }
        let mut failed: Option<(CloseReason, &'static str)> = None;
        while pos < buf.len() && failed.is_none() {
            let h = match wsp::parse_header(&buf[pos..]) {
                Ok(Some(h)) => h,
                Ok(None) => break,
                Err(e) => {
                    failed = Some((CloseReason::BadFrame, e.as_str()));
                    break;
                }
            };
            let Some(mask) = h.mask else {
                failed = Some((CloseReason::BadFrame, "an unmasked client frame"));
                break;
            };
            let len = usize::try_from(h.len).unwrap_or(usize::MAX);
            if !h.opcode.is_control() && assembled.saturating_add(len) > max {
                failed = Some((CloseReason::LineTooLong, "a message over the line limit"));
                break;
            }
            let Some(end) = h.frame_len().and_then(|n| n.checked_add(pos)) else {
                failed = Some((CloseReason::LineTooLong, "a frame too long to hold"));
                break;
            };
            if end > buf.len() {
                break;
            }
            let body = pos + h.header_len..end;
            wsp::apply_mask(&mut buf[body.clone()], mask, 0);
            pos = end;
            s.last_seen = s.last_seen.max(now);
            if let Err(reason) = self.count_frame(now, s) {
                failed = Some((reason, "too many frames"));
                break;
            }
            let message = match (h.opcode, kind) {
                (Opcode::Ping, _) => {
                    let start = self.tx.bytes.len();
                    wsp::encode_frame(&mut self.tx.bytes, Opcode::Pong, None, &buf[body]);
                    self.tx.push(cref, start, false);
                    None
                }
                (Opcode::Pong, _) => None,
                (Opcode::Close, _) => {
                    match wsp::parse_close(&buf[body]) {
                        Ok(_) => {
                            let start = self.tx.bytes.len();
                            wsp::encode_close(&mut self.tx.bytes, 1000, "closed", None);
                            self.tx.push(cref, start, false);
                            failed = Some((CloseReason::Closed, "a close frame"));
                        }
                        Err(why) => failed = Some((CloseReason::BadFrame, why)),
                    }
                    None
                }
                (Opcode::Text | Opcode::Binary, NO_MESSAGE) if h.fin => {
                    Some((body, h.opcode == Opcode::Text))
                }
                (Opcode::Text | Opcode::Binary, NO_MESSAGE) => {
                    buf.copy_within(body.clone(), assembled);
                    assembled += body.len();
                    kind = if h.opcode == Opcode::Text {
                        TEXT
                    } else {
                        BINARY
                    };
                    None
                }
                (Opcode::Text | Opcode::Binary, _) => {
                    failed = Some((
                        CloseReason::BadFrame,
                        "a new message inside a fragmented one",
                    ));
                    None
                }
                (Opcode::Continuation, NO_MESSAGE) => {
                    failed = Some((CloseReason::BadFrame, "a continuation with no message"));
                    None
                }
                (Opcode::Continuation, k) => {
                    buf.copy_within(body.clone(), assembled);
                    assembled += body.len();
                    if h.fin {
                        let whole = 0..assembled;
                        assembled = 0;
                        kind = NO_MESSAGE;
                        Some((whole, k == TEXT))
                    } else {
                        None
                    }
                }
            };
            if let Some((range, text)) = message {
                if let Err(e) = self.ws_message(now, key, s, &buf[range], text) {
                    failed = Some(e);
                }
            }
            if failed.is_none() && self.tx.bytes.len() - produced_from > budget {
                failed = Some((CloseReason::OutputOverflow, "replies not read"));
            }
        }
        if s.last_seen > heard_before {
            if let Some(a) = self.arrivals.get_mut(key as usize) {
                a.record(s.last_seen - heard_before);
            }
        }
        if let Some((reason, why)) = failed {
            if reason != CloseReason::Closed {
                log::warn!(
                    "conn {} from {}: WebSocket: {why}; closing with {reason}",
                    s.number,
                    s.peer()
                );
            }
            self.closes.push_back((cref, reason));
            return (false, None);
        }
        if !s.is_open() {
            return (false, None);
        }
        buf.drain(assembled..pos);
        let resume = Resume {
            checked: 0,
            state: [assembled as u32, kind, 0],
        };
        (true, Some(resume))
    }

    /// Counts a frame against `max_frames`, when it is set.
    fn count_frame(&mut self, now: Tick, s: &mut Session) -> Result<(), CloseReason> {
        if let Some(max) = self.settings.max_frames {
            if s.record_frame(now, self.settings.interval_ms) > max {
                return Err(CloseReason::TooManyFrames);
            }
        }
        Ok(())
    }

    /// One whole message: one line of the protocol inside.
    fn ws_message(
        &mut self,
        now: Tick,
        key: u32,
        s: &mut Session,
        message: &[u8],
        text: bool,
    ) -> Result<(), (CloseReason, &'static str)> {
        let message = message.strip_suffix(b"\n").unwrap_or(message);
        let message = message.strip_suffix(b"\r").unwrap_or(message);
        if text && std::str::from_utf8(message).is_err() {
            return Err((CloseReason::BadFrame, "a text message that is not UTF-8"));
        }
        if message.contains(&b'\n') {
            return Err((CloseReason::BadFrame, "a message of more than one line"));
        }
        let mut line = std::mem::take(&mut self.ws_scratch);
        line.clear();
        line.extend_from_slice(message);
        line.push(b'\n');
        let result = match self.protocol_of(s).decode(&line) {
            Ok(Some((frame, _))) => self
                .on_frame(now, key, s, frame)
                .map_err(|reason| (reason, "refused")),
            Ok(None) => Err((CloseReason::BadFrame, "a message the protocol cannot read")),
            Err(e) => Err((e.close_reason(), "a message the protocol cannot read")),
        };
        if self.ws_scratch.capacity() < line.capacity() {
            self.ws_scratch = line;
        }
        result
    }

    /// Whether a handshake with `origin` may go on.
    fn origin_allowed(&self, origin: Option<&[u8]>) -> bool {
        self.ws.origins.is_empty()
            || origin.is_some_and(|o| self.ws.origins.iter().any(|a| a.as_bytes() == o))
    }

    /// Answers a handshake that will not go on with its HTTP status, and
    /// closes the connection.
    fn refuse_handshake(&mut self, s: &Session, cref: ConnRef, e: HandshakeError) {
        log::warn!(
            "conn {} from {}: WebSocket handshake refused ({} {}): {}",
            s.number,
            s.peer(),
            e.status().0,
            e.status().1,
            e.as_str()
        );
        let start = self.tx.bytes.len();
        wsp::write_refusal(&mut self.tx.bytes, e.status(), e.as_str());
        self.tx.push(cref, start, false);
        let reason = match e {
            HandshakeError::Forbidden => CloseReason::Unauthorized,
            HandshakeError::TooLarge => CloseReason::LineTooLong,
            HandshakeError::BadRequest(_) | HandshakeError::BadVersion => CloseReason::BadFrame,
        };
        self.closes.push_back((cref, reason));
    }
}
