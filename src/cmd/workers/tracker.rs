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
//!   about such a connection are dropped, so it has exactly one offline.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};

/// What the supervisor knows of one live connection.
#[derive(Debug, Clone, PartialEq)]
struct Live {
    worker: u32,
    /// The fields of its latest line, to write its `worker-lost` line with
    /// (boxed strings: a `Value` per field would double the cost of a
    /// connection here).
    peer: Box<str>,
    client: Option<Box<str>>,
    online: bool,
    /// Seen an event after `online` (its `hello` at the owner).
    later: bool,
}

/// Every live connection across the workers. See the module docs.
#[derive(Debug, Default)]
pub struct Tracker {
    live: HashMap<u64, Live>,
    /// Connections given `worker-lost`: their late lines are dropped.
    lost: HashSet<u64>,
    /// Offline lines read before the connection's online line.
    early_offline: HashSet<u64>,
}

impl Tracker {
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
        let peer: Box<str> = e.get("peer").and_then(Value::as_str).unwrap_or("").into();
        let client: Option<Box<str>> = e.get("client").and_then(Value::as_str).map(Into::into);
        match kind {
            "offline" => {
                if self.live.remove(&conn).is_none_or(|l| !l.online) {
                    self.early_offline.insert(conn);
                }
            }
            "online" => {
                if self.early_offline.remove(&conn) {
                    self.live.remove(&conn);
                    return true;
                }
                let l = self.live.entry(conn).or_insert(Live {
                    worker,
                    peer: peer.clone(),
                    client: client.clone(),
                    online: true,
                    later: false,
                });
                l.online = true;
                if !l.later {
                    l.worker = worker;
                }
            }
            _ => {
                let l = self.live.entry(conn).or_insert(Live {
                    worker,
                    peer: "".into(),
                    client: None,
                    online: false,
                    later: true,
                });
                l.worker = worker;
                l.later = true;
                l.peer = peer;
                l.client = client;
            }
        }
        true
    }

    /// Worker `worker` is gone and its every line has been read: the
    /// `offline` lines (`worker-lost`) of its live connections, stamped
    /// `time`, in connection order.
    pub fn handle_lost(&mut self, worker: u32, time: &str) -> Vec<String> {
        let mut gone: Vec<u64> = self
            .live
            .iter()
            .filter(|(_, l)| l.worker == worker)
            .map(|(&c, _)| c)
            .collect();
        gone.sort_unstable();
        let mut lines = Vec::with_capacity(gone.len());
        for conn in gone {
            let Some(l) = self.live.remove(&conn) else {
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
        let lost = t.handle_lost(0, "T");
        assert_eq!(
            lost,
            ["{\"time\":\"T\",\"conn\":1,\"peer\":\"127.0.0.1:9\",\"client\":null,\"event\":\"offline\",\"reason\":\"worker-lost\"}"]
        );
        assert!(t.handle_lost(0, "T").is_empty(), "only once");
        assert_eq!(t.live(), 1);
        // A late line about a lost connection is dropped.
        assert_eq!(feed(&mut t, &[(0, 1, "offline", None)]), [false]);
    }

    #[test]
    fn a_handed_off_connection_belongs_to_its_owner_in_any_order() {
        let mut t = Tracker::default();
        // Accepted by 0, handed to 1: 1's hello read before 0's online.
        feed(
            &mut t,
            &[(1, 5, "hello", Some("dev")), (0, 5, "online", None)],
        );
        assert!(t.handle_lost(0, "T").is_empty());
        let lost = t.handle_lost(1, "T");
        assert_eq!(lost.len(), 1);
        assert!(lost[0].contains("\"client\":\"dev\""), "{}", lost[0]);
        // In order, too.
        feed(
            &mut t,
            &[(0, 6, "online", None), (1, 6, "hello", Some("x"))],
        );
        assert!(t.handle_lost(0, "T").is_empty());
        assert_eq!(t.handle_lost(1, "T").len(), 1);
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
        assert!(t.handle_lost(0, "T").is_empty());
        assert!(t.handle_lost(1, "T").is_empty());
    }

    #[test]
    fn other_lines_pass_through() {
        let mut t = Tracker::default();
        assert!(t.handle_line(0, "not json"));
        assert!(t.handle_line(0, "{\"conn\":\"x\"}"));
        assert_eq!(t.live(), 0);
    }
}
