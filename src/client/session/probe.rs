//! The session's probe sub-connection, its modes and its networks: the
//! adaptive search's side of [`Session`].
//!
//! With [`IntervalPolicy::Adaptive`](super::IntervalPolicy::Adaptive) the
//! session asks the driver, while it is online, for short-lived probe
//! connections to the server it is connected to
//! ([`ProbeAction::Connect`]). A probe sends nothing for the candidate
//! interval (no `HELLO`: the server sees an anonymous connection, which is
//! no one's presence), then `PING <seq>`, and expects the `PONG` within the
//! reply timeout. The outcome goes to the [`ProbePlanner`]; the main
//! connection only ever beats at intervals the planner has proven.
//!
//! ```text
//!  Idle ──planner due──► Connecting ──handle_probe_connected──► Silent
//!   ▲                        │                                    │ candidate elapsed
//!   │  inconclusive          │ refused / connect timeout          ▼
//!   └────────────────────────┴──── answered / lost / BYE ◄──── Pinging
//! ```
//! Rules:
//! - A probe runs only while the main connection is welcomed (its server is
//!   known to answer, and its `WELCOME` has capped the candidates below the
//!   server's timeout), and ends when the main connection ends.
//! - Anything received during the silence breaks it: inconclusive. A
//!   transport end during the silence or under the `PING` is a loss (a NAT
//!   answers a packet of a flow it forgot with a reset).
//! - The probe's bytes are tiny and few; its input is read a line at a time
//!   into a buffer bounded by `max_line`.

use super::{Event, Mode, Session, State};
use crate::client::adaptive::{Learned, ProbeOutcome, ProbePlanner, TESTED_PCT};
use crate::client::wire::{self, ServerLine};
use crate::time::Tick;

use super::{ServerIndex, TransportEnd};

/// The most networks whose search results are remembered.
pub const MAX_NETWORKS: usize = 16;

/// Something the driver must do with the probe connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeAction {
    /// Open a probe connection to this server (the main connection's),
    /// then report with [`Session::handle_probe_connected`] or
    /// [`Session::handle_probe_closed`].
    Connect(ServerIndex),
    /// Close the probe socket; the session has forgotten it.
    Close,
}

/// The network a connection runs on, as the driver sees it: the local
/// address it uses and the default gateway. What the adaptive search
/// learned is kept per network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NetworkKey {
    /// The connection's local address.
    pub local: Option<std::net::IpAddr>,
    /// The default route's gateway.
    pub gateway: Option<std::net::IpAddr>,
}

/// Where the probe connection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ProbeState {
    Idle,
    Connecting { deadline: Tick },
    Silent { until: Tick },
    Pinging { seq: u64, deadline: Tick },
}

/// The adaptive search's state, boxed in the session so that sessions
/// without it do not pay for it.
#[derive(Debug)]
pub(super) struct Adaptive {
    pub(super) planner: ProbePlanner,
    state: ProbeState,
    out: Vec<u8>,
    sent: usize,
    partial: Vec<u8>,
    close_pending: bool,
    connect_pending: Option<ServerIndex>,
    /// Beats at `min` still to send after entering the background.
    pub(super) min_beats_left: u32,
    network: Option<NetworkKey>,
    learned: Vec<(NetworkKey, Learned)>,
}

impl Adaptive {
    pub(super) fn new(planner: ProbePlanner) -> Adaptive {
        Adaptive {
            planner,
            state: ProbeState::Idle,
            out: Vec::new(),
            sent: 0,
            partial: Vec::new(),
            close_pending: false,
            connect_pending: None,
            min_beats_left: 0,
            network: None,
            learned: Vec::new(),
        }
    }

    fn deadline(&self) -> Option<Tick> {
        match self.state {
            ProbeState::Idle => self.planner.next_probe_at(),
            ProbeState::Connecting { deadline } | ProbeState::Pinging { deadline, .. } => {
                Some(deadline)
            }
            ProbeState::Silent { until } => Some(until),
        }
    }

    fn remember(&mut self) {
        if let Some(key) = self.network {
            let learned = self.planner.learned();
            self.learned.retain(|(k, _)| *k != key);
            if self.learned.len() >= MAX_NETWORKS {
                self.learned.remove(0);
            }
            self.learned.push((key, learned));
        }
    }

    fn learned_for(&self, key: NetworkKey) -> Option<Learned> {
        self.learned
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, l)| *l)
    }
}

impl Session {
    // ---- getters ----------------------------------------------------------

    /// The adaptive search, with [`IntervalPolicy::Adaptive`](super::IntervalPolicy::Adaptive).
    pub fn adaptive(&self) -> Option<&ProbePlanner> {
        self.adaptive.as_deref().map(|a| &a.planner)
    }

    /// Whether a probe connection is open or being opened.
    pub fn probe_active(&self) -> bool {
        self.adaptive
            .as_deref()
            .is_some_and(|a| a.state != ProbeState::Idle)
    }

    /// The network the session last heard it runs on.
    pub fn network(&self) -> Option<NetworkKey> {
        self.adaptive.as_deref().and_then(|a| a.network)
    }

    /// Foreground or background.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    // ---- inputs -----------------------------------------------------------

    /// The app moved to the foreground or the background at `now`. In the
    /// foreground the session beats at a fixed interval; on entering the
    /// background it sends [`BACKGROUND_MIN_BEATS`](super::BACKGROUND_MIN_BEATS)
    /// beats at the adaptive minimum, then uses the adaptive interval.
    /// Without an adaptive policy the mode changes nothing. Returns whether
    /// it changed.
    pub fn set_mode(&mut self, _now: Tick, mode: Mode) -> bool {
        if mode == self.mode {
            return false;
        }
        self.mode = mode;
        if let Some(a) = self.adaptive.as_deref_mut() {
            a.min_beats_left = match mode {
                Mode::Background => super::BACKGROUND_MIN_BEATS,
                Mode::Foreground => 0,
            };
        }
        true
    }

    /// The network changed under the session at `now` (the local address
    /// of its connection went away, or the default route changed): what
    /// the search learned is kept for the old network, the search starts
    /// over, a probe is dropped, and the main connection is dropped and
    /// made again at once, to the same server, without a backoff delay.
    /// Once the new connection is up, the driver reports its network with
    /// [`handle_network`](Session::handle_network).
    pub fn handle_network_change(&mut self, now: Tick) {
        if let Some(a) = self.adaptive.as_deref_mut() {
            a.remember();
            a.network = None;
            let change = a.planner.restart(now, None);
            self.abort_probe(now);
            self.report_change(change);
        }
        match self.state {
            State::Closed => {}
            State::Waiting { .. } => {
                self.state = State::Waiting { until: now };
            }
            State::Connecting { .. } | State::Hello { .. } | State::Online(_) => {
                self.close_pending = true;
                self.drop_connection_buffers();
                self.events.push_back(Event::Disconnected {
                    server: ServerIndex(self.server),
                    reason: super::DisconnectReason::Failed(std::io::ErrorKind::NetworkDown),
                });
                self.events.push_back(Event::ReconnectScheduled {
                    server: ServerIndex(self.server),
                    attempt: self.backoff.attempt(),
                    delay_ms: 0,
                });
                self.state = State::Waiting { until: now };
            }
        }
        self.handle_timeout(now);
    }

    /// The main connection runs on `key`. The first time, or after
    /// [`handle_network_change`](Session::handle_network_change), the
    /// search takes up what it learned for that network, if anything; a
    /// different network than the one known is a change noticed late.
    pub fn handle_network(&mut self, now: Tick, key: NetworkKey) {
        let Some(a) = self.adaptive.as_deref_mut() else {
            return;
        };
        if a.network == Some(key) {
            return;
        }
        let change = if a.network.is_some() {
            a.remember();
            a.network = Some(key);
            let learned = a.learned_for(key);
            a.planner.restart(now, learned)
        } else {
            a.network = Some(key);
            match a.learned_for(key) {
                Some(l) => a.planner.restart(now, Some(l)),
                None => None,
            }
        };
        if change.is_some() {
            self.abort_probe(now);
        }
        self.report_change(change);
    }

    /// The probe connection asked for by [`ProbeAction::Connect`] is up:
    /// its silence starts.
    pub fn handle_probe_connected(&mut self, now: Tick) {
        let Some(a) = self.adaptive.as_deref_mut() else {
            return;
        };
        if let (ProbeState::Connecting { .. }, Some(c)) = (a.state, a.planner.running()) {
            a.state = ProbeState::Silent {
                until: now.saturating_add(c),
            };
        }
    }

    /// Bytes arrived on the probe connection.
    pub fn handle_probe_received(&mut self, now: Tick, data: &[u8]) {
        let max_line = self.config.max_line;
        let Some(a) = self.adaptive.as_deref_mut() else {
            return;
        };
        let seq = match a.state {
            ProbeState::Pinging { seq, .. } => seq,
            ProbeState::Silent { .. } => {
                // The silence is broken: it proves nothing.
                return self.finish_probe(now, ProbeOutcome::Inconclusive, true);
            }
            _ => return,
        };
        a.partial.extend_from_slice(data);
        let mut outcome = None;
        let mut used = 0;
        loop {
            match wire::decode(a.partial.get(used..).unwrap_or_default(), max_line) {
                Ok(Some((line, n))) => {
                    used += n;
                    match line {
                        ServerLine::Pong { token }
                            if token.and_then(wire::parse_ms) == Some(seq) =>
                        {
                            outcome = Some(ProbeOutcome::Answered);
                            break;
                        }
                        ServerLine::Bye { .. } => {
                            outcome = Some(ProbeOutcome::Inconclusive);
                            break;
                        }
                        _ => {}
                    }
                }
                Ok(None) => break,
                Err(_) => {
                    outcome = Some(ProbeOutcome::Inconclusive);
                    break;
                }
            }
        }
        a.partial.drain(..used.min(a.partial.len()));
        if let Some(outcome) = outcome {
            self.finish_probe(now, outcome, true);
        }
    }

    /// The probe connection ended (the driver has dropped its socket).
    pub fn handle_probe_closed(&mut self, now: Tick, _end: TransportEnd) {
        let Some(a) = self.adaptive.as_deref() else {
            return;
        };
        let outcome = match a.state {
            ProbeState::Idle => return,
            ProbeState::Connecting { .. } => ProbeOutcome::Inconclusive,
            ProbeState::Silent { .. } | ProbeState::Pinging { .. } => ProbeOutcome::Lost,
        };
        self.finish_probe(now, outcome, false);
    }

    /// `n` bytes from [`poll_probe_transmit`](Session::poll_probe_transmit)
    /// were written.
    pub fn handle_probe_transmitted(&mut self, n: usize) {
        if let Some(a) = self.adaptive.as_deref_mut() {
            a.sent = a.sent.saturating_add(n).min(a.out.len());
            if a.sent == a.out.len() {
                a.out = Vec::new();
                a.sent = 0;
            }
        }
    }

    // ---- outputs ----------------------------------------------------------

    /// The next thing the driver must do with the probe connection.
    pub fn poll_probe_action(&mut self) -> Option<ProbeAction> {
        let a = self.adaptive.as_deref_mut()?;
        if a.close_pending {
            a.close_pending = false;
            return Some(ProbeAction::Close);
        }
        a.connect_pending.take().map(ProbeAction::Connect)
    }

    /// The bytes waiting for the probe socket, if any.
    pub fn poll_probe_transmit(&self) -> Option<&[u8]> {
        let a = self.adaptive.as_deref()?;
        let pending = a.out.get(a.sent..).unwrap_or_default();
        (!pending.is_empty()).then_some(pending)
    }

    // ---- internals --------------------------------------------------------

    /// The probe's next deadline (or the planner's next probe), while online.
    pub(super) fn probe_timeout(&self) -> Option<Tick> {
        let a = self.adaptive.as_deref()?;
        if !matches!(self.state, State::Online(_)) && a.state == ProbeState::Idle {
            return None;
        }
        a.deadline()
    }

    /// Fires the probe's deadlines and starts the next probe when due.
    pub(super) fn handle_probe_timeout(&mut self, now: Tick) {
        let online = matches!(self.state, State::Online(_));
        let server = ServerIndex(self.server);
        let reply_timeout = self.config.reply_timeout_ms;
        let connect_timeout = self.config.connect_timeout_ms;
        let seq = self.next_seq;
        let Some(a) = self.adaptive.as_deref_mut() else {
            return;
        };
        match a.state {
            ProbeState::Idle if online && a.planner.poll_probe(now).is_some() => {
                a.state = ProbeState::Connecting {
                    deadline: now.saturating_add(connect_timeout),
                };
                a.connect_pending = Some(server);
            }
            ProbeState::Connecting { deadline } if now >= deadline => {
                self.finish_probe(now, ProbeOutcome::Inconclusive, true);
            }
            ProbeState::Silent { until } if now >= until => {
                self.next_seq = self.next_seq.wrapping_add(1);
                a.state = ProbeState::Pinging {
                    seq,
                    deadline: now.saturating_add(reply_timeout),
                };
                wire::encode_ping(seq, &mut a.out);
            }
            ProbeState::Pinging { deadline, .. } if now >= deadline => {
                self.finish_probe(now, ProbeOutcome::Lost, true);
            }
            _ => {}
        }
    }

    /// The probe ended with `outcome`: tell the planner, log it, and close
    /// the socket unless the driver already has.
    fn finish_probe(&mut self, now: Tick, outcome: ProbeOutcome, close: bool) {
        let Some(a) = self.adaptive.as_deref_mut() else {
            return;
        };
        let interval_ms = a.planner.running().unwrap_or_default();
        let change = a.planner.handle_result(now, outcome);
        a.state = ProbeState::Idle;
        a.close_pending |= close;
        a.connect_pending = None;
        a.out = Vec::new();
        a.sent = 0;
        a.partial = Vec::new();
        self.events.push_back(Event::Probe {
            interval_ms,
            outcome,
        });
        self.report_change(change);
    }

    /// Drops a probe without a verdict (the main connection ended, or the
    /// network changed).
    pub(super) fn abort_probe(&mut self, now: Tick) {
        let Some(a) = self.adaptive.as_deref_mut() else {
            return;
        };
        if a.state == ProbeState::Idle {
            return;
        }
        if a.planner.running().is_some() {
            // Nothing learned; the planner retries after the candidate.
            let _ = a.planner.handle_result(now, ProbeOutcome::Inconclusive);
        }
        a.state = ProbeState::Idle;
        a.close_pending = true;
        a.connect_pending = None;
        a.out = Vec::new();
        a.sent = 0;
        a.partial = Vec::new();
    }

    /// The main connection lost a beat with quiet time `quiet`: if it tested
    /// the adaptive interval, the path got worse than what was proven.
    pub(super) fn main_beat_lost(
        &mut self,
        now: Tick,
        quiet: u64,
    ) -> Option<crate::client::adaptive::Change> {
        if self.mode != Mode::Background {
            return None;
        }
        let a = self.adaptive.as_deref_mut()?;
        if a.min_beats_left > 0 {
            return None;
        }
        let interval = a.planner.interval();
        let tested = u128::from(quiet) * 100 >= u128::from(interval) * u128::from(TESTED_PCT);
        tested.then(|| a.planner.handle_main_lost(now)).flatten()
    }
}
