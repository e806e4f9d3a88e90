//! The status page of the admin endpoint (`GET /`) and what feeds it: a
//! fixed ring of the last [`RING_SECONDS`] seconds of rates, sampled once a
//! second from the counters the loop keeps anyway, and the Server-Sent
//! Events framing of `GET /events/stream`. Pure: the driver decides when
//! to sample and where the bytes go.

use std::fmt::Write as _;

use super::stats::Stats;
use crate::protocol::CloseReason;
use crate::time::Tick;

/// How many one-second samples the ring keeps (ten minutes).
pub(crate) const RING_SECONDS: usize = 600;
/// How often the loop takes a sample, in milliseconds.
pub(crate) const SAMPLE_EVERY_MS: Tick = 1_000;

/// The page, HTML with its CSS and JavaScript inline: no other asset.
pub(crate) const PAGE: &str = include_str!("status.html");

const REASONS: usize = CloseReason::ALL.len();

/// One second (or so) of the server: levels at its end, counts during it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Sample {
    /// The loop's clock at the end of the sample.
    pub at: Tick,
    /// How long the sample spans, in milliseconds (about a second).
    pub span_ms: u32,
    /// Connections open at its end.
    pub connections: u32,
    /// Client ids online at its end.
    pub clients: u32,
    /// Heartbeats received during it.
    pub heartbeats: u32,
    /// Connections accepted during it.
    pub accepted: u32,
    /// Connections closed during it, per [`CloseReason::index`].
    pub closed: [u32; REASONS],
    /// Event lines dropped during it (a full events queue).
    pub dropped: u32,
}

/// The running totals a sample is the difference of.
#[derive(Debug, Clone, Copy)]
struct Totals {
    at: Tick,
    heartbeats: u64,
    accepted: u64,
    closed: [u64; REASONS],
    dropped: u64,
}

impl Totals {
    fn of(at: Tick, stats: &Stats) -> Totals {
        let mut closed = [0; REASONS];
        for r in CloseReason::ALL {
            closed[r.index()] = stats.closed(r);
        }
        Totals {
            at,
            heartbeats: stats.heartbeats,
            accepted: stats.accepted,
            closed,
            dropped: stats.events.map_or(0, |e| e.dropped),
        }
    }
}

/// The last [`RING_SECONDS`] samples; its size never changes once full.
#[derive(Debug)]
pub(crate) struct Ring {
    samples: Vec<Sample>,
    /// Where the next sample goes once the ring is full (the oldest).
    next: usize,
    last: Option<Totals>,
}

fn delta(now: u64, before: u64) -> u32 {
    u32::try_from(now.saturating_sub(before)).unwrap_or(u32::MAX)
}

fn level(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl Ring {
    /// An empty ring (its room is taken at once, not as it fills).
    pub fn new() -> Ring {
        Ring {
            samples: Vec::with_capacity(RING_SECONDS),
            next: 0,
            last: None,
        }
    }

    /// Takes the sample ending at `now` from the counters `stats`: the
    /// first call only sets the starting totals. Returns the new sample.
    pub fn record(&mut self, now: Tick, stats: &Stats) -> Option<Sample> {
        let totals = Totals::of(now, stats);
        let before = self.last.replace(totals)?;
        let mut closed = [0; REASONS];
        for (i, c) in closed.iter_mut().enumerate() {
            *c = delta(totals.closed[i], before.closed[i]);
        }
        let sample = Sample {
            at: now,
            span_ms: delta(now, before.at).max(1),
            connections: level(stats.connections),
            clients: level(stats.clients),
            heartbeats: delta(totals.heartbeats, before.heartbeats),
            accepted: delta(totals.accepted, before.accepted),
            closed,
            dropped: delta(totals.dropped, before.dropped),
        };
        if self.samples.len() < RING_SECONDS {
            self.samples.push(sample);
        } else {
            self.samples[self.next] = sample;
            self.next = (self.next + 1) % RING_SECONDS;
        }
        Some(sample)
    }

    /// The samples, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &Sample> {
        let (newer, older) = self.samples.split_at(self.next);
        older.iter().chain(newer)
    }

    /// How many samples it holds.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// The whole ring as one SSE `history` event: a JSON array of samples,
    /// oldest first.
    pub fn history_event(&self) -> String {
        let mut out = String::from("event: history\ndata: [");
        for (i, s) in self.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            sample_json(s, &mut out);
        }
        out.push_str("]\n\n");
        out
    }
}

/// Appends `s` as a JSON object: levels, rates per second, closes per
/// reason (only the reasons seen).
fn sample_json(s: &Sample, out: &mut String) {
    let per_s = |n: u32| f64::from(n) * 1000.0 / f64::from(s.span_ms);
    let _ = write!(
        out,
        "{{\"at\":{},\"connections\":{},\"clients\":{},\"heartbeats\":{:.1},\"accepted\":{:.1},\"closed\":{:.1},\"dropped\":{},\"reasons\":{{",
        s.at,
        s.connections,
        s.clients,
        per_s(s.heartbeats),
        per_s(s.accepted),
        per_s(s.closed.iter().fold(0u32, |a, &b| a.saturating_add(b))),
        s.dropped,
    );
    let mut first = true;
    for r in CloseReason::ALL {
        let n = s.closed[r.index()];
        if n > 0 {
            if !first {
                out.push(',');
            }
            first = false;
            let _ = write!(out, "\"{}\":{n}", r.as_str());
        }
    }
    out.push_str("}}");
}

/// `s` as one SSE `sample` event.
pub(crate) fn sample_event(s: &Sample) -> String {
    let mut out = String::from("event: sample\ndata: ");
    sample_json(s, &mut out);
    out.push_str("\n\n");
    out
}

/// A presence event, already one JSON line (no newline inside), as one SSE
/// `presence` event.
pub(crate) fn presence_event(json: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(b"event: presence\ndata: ");
    out.extend_from_slice(json.trim_end().as_bytes());
    out.extend_from_slice(b"\n\n");
}

/// The head of the event stream's response: no length, open until either
/// side closes.
pub(crate) fn stream_head() -> Vec<u8> {
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nConnection: close\r\nX-Accel-Buffering: no\r\n\r\nretry: 2000\n\n".to_vec()
}

#[cfg(test)]
mod tests;
