//! The supervisor's view of every connection's presence, from the event
//! lines its workers write: pure, no pipes, no clock.
//!
//! # Rules
//! - A connection is live from its `online` line to its `offline` line,
//!   whichever pipe each comes from and in whichever order they are read
//!   (a handed-off connection's `online` comes from the worker that
//!   accepted it, its `hello` and `offline` from the owner).
//! - It belongs to the worker whose line about it came last, the `online`
//!   line excepted when a later event was already read.
//! - When a worker is lost, each live connection that belongs to it gets
//!   one `offline` line with reason `worker-lost`; lines read afterwards
//!   about such a connection (for a minute: only a hand-off in flight can
//!   still bring one) are dropped, so it has exactly one offline.

use std::collections::{HashSet, VecDeque};
use std::hash::{BuildHasher, RandomState};

use compact_str::CompactString;
use hashbrown::HashTable;
use serde_json::{Map, Value};
use slab::Slab;

/// What the supervisor knows of one live connection: 64 bytes, and no
/// allocation of its own while its peer and client id are short (up to
/// 24 bytes each, inline).
#[derive(Debug, Clone, PartialEq)]
struct Live {
    conn: u64,
    worker: u32,
    /// Seen its `online` line.
    online: bool,
    /// Seen an event after `online` (its `hello` at the owner).
    later: bool,
    /// The fields of its latest line, to write its `worker-lost` line with.
    peer: CompactString,
    client: Option<CompactString>,
}

/// How long a lost connection's late lines are dropped. They can only come
/// from a hand-off the lost worker had sent, which its owner takes or
/// refuses within its patience (5 s); after a minute none can, and the
/// set of lost connections does not grow with every crash.
const KEEP_LOST_MS: u64 = 60_000;

/// Every live connection across the workers. See the module docs.
///
/// The connections are kept densely in a slab, found by number through a
/// hash table of 4-byte slab keys: a hash table of the entries themselves
/// would be between 44 % and 87.5 % full, paying for the empty buckets
/// at the size of an entry.
#[derive(Debug, Default)]
pub struct Tracker {
    live: Slab<Live>,
    /// `live`'s keys, by connection number.
    index: HashTable<u32>,
    hasher: RandomState,
    /// Connections given `worker-lost`: their late lines are dropped.
    lost: HashSet<u64>,
    /// When each loss happened (ms on the caller's clock) and its
    /// connections, oldest first: `lost` forgets them after `KEEP_LOST_MS`.
    losses: VecDeque<(u64, Vec<u64>)>,
    /// Offline lines read before the connection's online line.
    early_offline: HashSet<u64>,
}

impl Tracker {
    /// The slab key of live connection `conn`, if it is live.
    fn find(&self, conn: u64) -> Option<usize> {
        let live = &self.live;
        let k = self.index.find(self.hasher.hash_one(conn), |&k| {
            live.get(k as usize).is_some_and(|l| l.conn == conn)
        })?;
        Some(*k as usize)
    }

    /// Forgets connection `conn`; what was known of it, if anything.
    fn remove(&mut self, conn: u64) -> Option<Live> {
        let live = &self.live;
        let found = self.index.find_entry(self.hasher.hash_one(conn), |&k| {
            live.get(k as usize).is_some_and(|l| l.conn == conn)
        });
        let (k, _) = found.ok()?.remove();
        self.live.try_remove(k as usize)
    }

    /// Live connection `new.conn`, which is `new` if it was not live.
    /// `None` only past 2^32 live connections.
    fn get_or_insert(&mut self, new: Live) -> Option<&mut Live> {
        let k = match self.find(new.conn) {
            Some(k) => k,
            None => {
                let k = self.live.vacant_key();
                let key = u32::try_from(k).ok()?;
                let (hasher, live) = (&self.hasher, &self.live);
                self.index
                    .insert_unique(hasher.hash_one(new.conn), key, |&k| {
                        live.get(k as usize).map_or(0, |l| hasher.hash_one(l.conn))
                    });
                self.live.insert(new)
            }
        };
        self.live.get_mut(k)
    }

    /// A line from worker `worker`: whether to write it to the events file.
    /// Lines that are not events pass through.
    pub fn handle_line(&mut self, worker: u32, line: &str) -> bool {
        let Ok(Value::Object(e)) = serde_json::from_str::<Value>(line) else {
            return true;
        };
        // Each worker's run records are its own: the file gets the
        // supervisor's one `start` and `stop` for the whole server, so the
        // reconciliation rule (a `start` without a `stop` before it means a
        // crash) holds for the server, not for one worker's restart.
        if matches!(
            e.get("event").and_then(Value::as_str),
            Some("start" | "stop")
        ) {
            return false;
        }
        let (Some(conn), Some(kind)) = (
            e.get("conn").and_then(Value::as_u64),
            e.get("event").and_then(Value::as_str),
        ) else {
            return true;
        };
        if self.lost.contains(&conn) {
            return false;
        }
        let peer = CompactString::from(e.get("peer").and_then(Value::as_str).unwrap_or(""));
        let client = e
            .get("client")
            .and_then(Value::as_str)
            .map(CompactString::from);
        match kind {
            "offline" => {
                if self.remove(conn).is_none_or(|l| !l.online) {
                    self.early_offline.insert(conn);
                }
            }
            "online" => {
                if self.early_offline.remove(&conn) {
                    self.remove(conn);
                    return true;
                }
                let new = Live {
                    conn,
                    worker,
                    online: true,
                    later: false,
                    peer,
                    client,
                };
                if let Some(l) = self.get_or_insert(new) {
                    l.online = true;
                    if !l.later {
                        l.worker = worker;
                    }
                }
            }
            _ => {
                let new = Live {
                    conn,
                    worker,
                    online: false,
                    later: true,
                    peer: CompactString::default(),
                    client: None,
                };
                if let Some(l) = self.get_or_insert(new) {
                    l.worker = worker;
                    l.later = true;
                    l.peer = peer;
                    l.client = client;
                }
            }
        }
        true
    }

    /// Worker `worker` is gone and its every line has been read: the
    /// `offline` lines (`worker-lost`) of its live connections, stamped
    /// `time`, in connection order. `now_ms` is when, on any clock that
    /// never goes back (for forgetting losses older than `KEEP_LOST_MS`).
    pub fn handle_lost(&mut self, worker: u32, time: &str, now_ms: u64) -> Vec<String> {
        while let Some((at, _)) = self.losses.front() {
            if now_ms.saturating_sub(*at) < KEEP_LOST_MS {
                break;
            }
            if let Some((_, conns)) = self.losses.pop_front() {
                for conn in conns {
                    self.lost.remove(&conn);
                }
            }
        }
        let mut gone: Vec<u64> = self
            .live
            .iter()
            .filter(|(_, l)| l.worker == worker)
            .map(|(_, l)| l.conn)
            .collect();
        gone.sort_unstable();
        let mut lines = Vec::with_capacity(gone.len());
        for &conn in &gone {
            let Some(l) = self.remove(conn) else {
                continue;
            };
            self.lost.insert(conn);
            let mut e = Map::new();
            e.insert("time".into(), Value::from(time));
            e.insert("conn".into(), Value::from(conn));
            e.insert("peer".into(), Value::from(&*l.peer));
            e.insert(
                "client".into(),
                l.client.as_deref().map_or(Value::Null, Value::from),
            );
            e.insert("event".into(), Value::from("offline"));
            e.insert("reason".into(), Value::from("worker-lost"));
            lines.push(Value::Object(e).to_string());
        }
        self.losses.push_back((now_ms, gone));
        lines
    }

    /// How many connections are live.
    #[cfg(test)]
    pub fn live(&self) -> usize {
        self.live.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(conn: u64, event: &str, client: Option<&str>) -> String {
        let client = client.map_or("null".to_owned(), |c| format!("\"{c}\""));
        let reason = if event == "offline" {
            "\"closed\""
        } else {
            "null"
        };
        format!(
            "{{\"time\":\"2026-12-01T00:00:00.000Z\",\"conn\":{conn},\"peer\":\"127.0.0.1:9\",\"client\":{client},\"event\":\"{event}\",\"reason\":{reason}}}"
        )
    }

    /// Feeds `(worker, conn, event, client)` lines; returns which were kept.
    fn feed(t: &mut Tracker, lines: &[(u32, u64, &str, Option<&str>)]) -> Vec<bool> {
        lines
            .iter()
            .map(|&(w, c, e, id)| t.handle_line(w, &line(c, e, id)))
            .collect()
    }

    #[test]
    fn a_lost_worker_takes_its_live_connections_once() {
        let mut t = Tracker::default();
        feed(
            &mut t,
            &[
                (0, 1, "online", None),
                (0, 2, "online", None),
                (1, 3, "online", None),
                (0, 2, "offline", None),
            ],
        );
        assert_eq!(t.live(), 2);
        let lost = t.handle_lost(0, "T", 0);
        assert_eq!(
            lost,
            ["{\"time\":\"T\",\"conn\":1,\"peer\":\"127.0.0.1:9\",\"client\":null,\"event\":\"offline\",\"reason\":\"worker-lost\"}"]
        );
        assert!(t.handle_lost(0, "T", 0).is_empty(), "only once");
        assert_eq!(t.live(), 1);
        // A late line about a lost connection is dropped.
        assert_eq!(feed(&mut t, &[(0, 1, "offline", None)]), [false]);
    }

    #[test]
    fn thousands_of_connections_across_workers_are_each_lost_once() {
        let mut t = Tracker::default();
        // 6,000 connections on three workers (enough to grow the index
        // several times); every fifth ends; the even ones say HELLO.
        for conn in 1..=6000u64 {
            let w = (conn % 3) as u32;
            t.handle_line(w, &line(conn, "online", None));
            if conn % 2 == 0 {
                let id = format!("id-{conn}");
                t.handle_line(w, &line(conn, "hello", Some(&id)));
            }
            if conn % 5 == 0 {
                t.handle_line(w, &line(conn, "offline", None));
            }
        }
        assert_eq!(t.live(), 4800);
        let lost = t.handle_lost(1, "T", 0);
        let expected: Vec<u64> = (1..=6000u64).filter(|c| c % 3 == 1 && c % 5 != 0).collect();
        assert_eq!(lost.len(), expected.len());
        for (line, conn) in lost.iter().zip(&expected) {
            assert!(line.contains(&format!("\"conn\":{conn},")), "{line}");
            let client = if conn % 2 == 0 {
                format!("\"id-{conn}\"")
            } else {
                "null".into()
            };
            assert!(line.contains(&format!("\"client\":{client}")), "{line}");
        }
        assert_eq!(t.live(), 4800 - expected.len());
        assert!(t.handle_lost(1, "T", 0).is_empty());
        assert_eq!(
            t.handle_lost(0, "T", 0).len() + t.handle_lost(2, "T", 0).len(),
            3200
        );
        assert_eq!(t.live(), 0);
    }

    #[test]
    fn a_lost_connection_is_forgotten_a_minute_later() {
        let mut t = Tracker::default();
        feed(&mut t, &[(0, 1, "online", None), (1, 2, "online", None)]);
        assert_eq!(t.handle_lost(0, "T", 1_000).len(), 1);
        // A late line (a hand-off in flight) within the minute: dropped.
        assert_eq!(feed(&mut t, &[(1, 1, "hello", Some("a"))]), [false]);
        assert_eq!(t.handle_lost(1, "T", 60_999).len(), 1);
        assert_eq!(t.lost.len(), 2);
        // The next loss a minute after the first forgets the first.
        assert!(t.handle_lost(2, "T", 61_000).is_empty());
        assert_eq!(t.lost.len(), 1);
        assert_eq!(feed(&mut t, &[(1, 2, "hello", Some("b"))]), [false]);
        assert!(t.handle_lost(2, "T", 200_000).is_empty());
        assert!(t.lost.is_empty() && t.losses.len() == 1);
    }

    #[test]
    fn a_live_connection_takes_64_bytes() {
        assert_eq!(std::mem::size_of::<Live>(), 64);
    }

    #[test]
    fn a_handed_off_connection_belongs_to_its_owner_in_any_order() {
        let mut t = Tracker::default();
        // Accepted by 0, handed to 1: 1's hello read before 0's online.
        feed(
            &mut t,
            &[(1, 5, "hello", Some("dev")), (0, 5, "online", None)],
        );
        assert!(t.handle_lost(0, "T", 0).is_empty());
        let lost = t.handle_lost(1, "T", 0);
        assert_eq!(lost.len(), 1);
        assert!(lost[0].contains("\"client\":\"dev\""), "{}", lost[0]);
        // In order, too.
        feed(
            &mut t,
            &[(0, 6, "online", None), (1, 6, "hello", Some("x"))],
        );
        assert!(t.handle_lost(0, "T", 0).is_empty());
        assert_eq!(t.handle_lost(1, "T", 0).len(), 1);
    }

    #[test]
    fn an_offline_read_before_its_online_ends_it() {
        let mut t = Tracker::default();
        let kept = feed(
            &mut t,
            &[
                (0, 7, "online", None),
                (1, 7, "hello", Some("d")),
                (1, 7, "offline", Some("d")),
            ],
        );
        assert_eq!(kept, [true, true, true]);
        assert_eq!(t.live(), 0);
        // Offline from the owner's pipe first, online from the acceptor's.
        feed(
            &mut t,
            &[(1, 8, "hello", Some("d")), (1, 8, "offline", Some("d"))],
        );
        feed(&mut t, &[(0, 8, "online", None)]);
        assert_eq!(t.live(), 0);
        assert!(t.handle_lost(0, "T", 0).is_empty());
        assert!(t.handle_lost(1, "T", 0).is_empty());
    }

    #[test]
    fn other_lines_pass_through() {
        let mut t = Tracker::default();
        assert!(t.handle_line(0, "not json"));
        assert!(t.handle_line(0, "{\"conn\":\"x\"}"));
        assert_eq!(t.live(), 0);
    }
}
