//! Redis replies and pub/sub messages.

use super::*;

impl Cluster {
    pub(super) fn on_reply(&mut self, now: Tick, value: Value) {
        let expect = self.expect.pop_front().unwrap_or(Expect::Ignore);
        if let Value::Error(e) = &value {
            self.stats.errors += 1;
            log::warn!("cluster: Redis answered an error: {e}");
            match expect {
                Expect::Scan => self.scan_in_flight = false,
                Expect::Lookup(request) => self.outputs.push_back(Output::Owner {
                    request,
                    record: None,
                }),
                _ => {}
            }
            return;
        }
        match expect {
            Expect::Ignore => {}
            Expect::Event(_) => self.stats.events += 1,
            Expect::Lookup(request) => {
                let record = match value {
                    Value::Bulk(Some(b)) => Some(String::from_utf8_lossy(&b).into_owned()),
                    _ => None,
                };
                self.outputs.push_back(Output::Owner { request, record });
            }
            Expect::Scan => {
                self.scan_in_flight = false;
                let missing: Vec<String> = match value {
                    Value::Array(Some(items)) => items
                        .iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect(),
                    _ => Vec::new(),
                };
                self.suspects.retain(|n, _| missing.contains(n));
                for node in missing {
                    self.suspects.entry(node).or_insert(now);
                }
            }
            Expect::Reap => {
                if let Value::Int(n) = value {
                    if n > 0 {
                        self.stats.reaped += n as u64;
                        log::warn!("cluster: a node's lease expired: took {n} of its clients offline (node-lost)");
                    }
                }
            }
            Expect::Reconcile => {
                if let Value::Array(Some(items)) = value {
                    for pair in items.chunks(2) {
                        if let [conn, id] = pair {
                            if let (Some(conn), Some(id)) = (conn.as_str(), id.as_str()) {
                                self.takeover_of(conn, id);
                            }
                        }
                    }
                }
            }
        }
    }

    /// A message on the subscribed link: `<run>/<conn>\t<id>` asks to close
    /// connection `conn` of run `run` if it holds `id`.
    pub(super) fn on_message(&mut self, value: Value) {
        let Value::Array(Some(items)) = value else {
            return;
        };
        if items.first().and_then(Value::as_str) != Some("message") {
            return;
        }
        let Some(payload) = items.get(2).and_then(Value::as_str) else {
            return;
        };
        if let Some((conn, id)) = payload.split_once('\t') {
            self.stats.takeovers += 1;
            self.takeover_of(conn, id);
        }
    }

    pub(super) fn takeover_of(&mut self, conn: &str, id: &str) {
        let Some((run, number)) = conn.split_once('/') else {
            return;
        };
        let Ok(number) = number.parse::<u64>() else {
            return;
        };
        if run != self.run {
            return;
        }
        if self.local.get(id).is_some_and(|(c, _)| *c == number) {
            self.local.remove(id);
        }
        self.outputs.push_back(Output::Takeover {
            client: id.to_owned(),
            conn: number,
        });
    }
}
