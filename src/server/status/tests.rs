//! The ring of rates and the SSE framing, with counters set by hand.

use super::*;
use crate::server::stats::EventCounts;

/// Counters after `heartbeats` PINGs, `accepted` accepts and `timeouts`
/// expiries, `open` connections and clients online.
fn stats(heartbeats: u64, accepted: u64, timeouts: u64, open: usize) -> Stats {
    let mut s = Stats::default();
    s.connections = open;
    s.clients = open;
    s.heartbeats = heartbeats;
    s.accepted = accepted;
    s.events = Some(EventCounts {
        dropped: timeouts / 2,
        ..EventCounts::default()
    });
    for _ in 0..timeouts {
        s.count_close(CloseReason::Timeout);
    }
    s
}

#[test]
fn first_record_only_sets_the_totals() {
    let mut ring = Ring::new();
    assert_eq!(ring.record(0, &stats(500, 10, 0, 10)), None);
    assert_eq!(ring.len(), 0);
    assert_eq!(ring.history_event(), "event: history\ndata: []\n\n");
}

#[test]
fn a_sample_is_the_difference_over_its_span() {
    let mut ring = Ring::new();
    ring.record(1_000, &stats(500, 10, 0, 10));
    let s = ring
        .record(3_000, &stats(2_500, 14, 4, 10))
        .expect("second record makes a sample");
    assert_eq!(s.span_ms, 2_000);
    assert_eq!(s.heartbeats, 2_000);
    assert_eq!(s.accepted, 4);
    assert_eq!(s.closed[CloseReason::Timeout.index()], 4);
    assert_eq!(s.dropped, 2);
    assert_eq!(
        sample_event(&s),
        "event: sample\ndata: {\"at\":3000,\"connections\":10,\"clients\":10,\
         \"heartbeats\":1000.0,\"accepted\":2.0,\"closed\":2.0,\"dropped\":2,\
         \"reasons\":{\"timeout\":4}}\n\n"
    );
}

#[test]
fn the_ring_keeps_the_last_ten_minutes_oldest_first() {
    let mut ring = Ring::new();
    let capacity = ring.samples.capacity();
    for t in 0..=(RING_SECONDS as u64 + 25) {
        ring.record(t * 1000, &stats(t * 7, t, 0, t as usize));
    }
    assert_eq!(ring.len(), RING_SECONDS);
    assert_eq!(ring.samples.capacity(), capacity, "never grows");
    let ats: Vec<Tick> = ring.iter().map(|s| s.at).collect();
    let want: Vec<Tick> = (26..=(RING_SECONDS as u64 + 25))
        .map(|t| t * 1000)
        .collect();
    assert_eq!(ats, want);
    assert!(ring.iter().all(|s| s.heartbeats == 7 && s.accepted == 1));
}

#[test]
fn counters_going_back_count_as_zero() {
    // A counter never goes back; if it ever did, no huge wrapped rate.
    let mut ring = Ring::new();
    ring.record(0, &stats(100, 5, 0, 1));
    let s = ring.record(0, &stats(50, 5, 0, 1)).expect("sample");
    assert_eq!((s.heartbeats, s.span_ms), (0, 1));
}

#[test]
fn presence_events_are_one_sse_event_each() {
    let mut out = Vec::new();
    presence_event("{\"client\":\"a\"}\n", &mut out);
    presence_event("{\"client\":\"b\"}", &mut out);
    assert_eq!(
        String::from_utf8_lossy(&out),
        "event: presence\ndata: {\"client\":\"a\"}\n\nevent: presence\ndata: {\"client\":\"b\"}\n\n"
    );
}

#[test]
fn the_page_is_self_contained_and_small() {
    assert!(PAGE.len() < 32 * 1024, "{} bytes", PAGE.len());
    for external in ["src=\"http", "href=\"http", "<link", "@import", "src=\"//"] {
        assert!(!PAGE.contains(external), "page loads {external}");
    }
    for needed in ["/events/stream", "/clients/", "EventSource"] {
        assert!(PAGE.contains(needed), "page lacks {needed}");
    }
}
