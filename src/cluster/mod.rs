//! Presence across machines, through Redis: a pure state machine.
//!
//! Several `vigil serve --cluster redis://HOST:PORT` nodes share one view
//! of who is online. vigil grows no cluster protocol of its own: Redis
//! holds the shared state and runs the few atomic steps (Lua scripts in
//! [`scripts`]); each node keeps serving its own connections from its own
//! memory, and only presence *changes* go to Redis. Heartbeats never do.
//!
//! [`Cluster`] is sans-IO, like the sessions: the loop tells it what
//! happened (`handle_*`: a link to Redis is up or down, bytes arrived, a
//! presence event, the time) and sends what it asks for (`poll_transmit`
//! for each link, `poll_output` for connections to close). Two links: one
//! for commands (pipelined), one subscribed to this node's takeover
//! channel (a subscribed connection can run nothing else).
//!
//! # Rules
//! - **Claim.** Every `hello` claims the id in Redis (script `CLAIM`). A
//!   local takeover has already happened by then (it never waits for
//!   Redis); a claim that finds another node's record tells that node, on
//!   its channel, to close the older connection with `BYE replaced`.
//! - **Release.** Every `offline` of a named connection releases the id if
//!   this very connection still owns it (script `RELEASE`).
//! - **Events.** Every event goes to the `events` stream (`XADD`, capped
//!   with an approximate `MAXLEN`), with the node and run ids. While Redis
//!   is away, events wait in a bounded backlog (oldest dropped and counted
//!   beyond it); commands in flight when a link drops are sent again, so
//!   across a Redis failure an event may appear twice (never silently
//!   lost while the backlog holds): consumers can tell by `run` + `conn`.
//! - **Lease.** This node's lease (`node:<id>`, `PX lease`) is refreshed
//!   every `refresh` while the link is up; the node registers in `nodes`.
//! - **Dead nodes.** Every `scan`, the nodes without a lease are listed
//!   (script `SCAN`). One missing at two scans at least `grace` apart (in
//!   this node's time) is reaped (script `REAP`): its ids go offline with
//!   reason `node-lost`, exactly once across all nodes (the script removes
//!   the node from `nodes` atomically: a second reaper finds nothing). The
//!   grace keeps a Redis that was paused (every lease expired while it
//!   slept) from reaping nodes whose refresh is already queued.
//! - **Reconnect.** When the command link comes (back) up, the node makes
//!   Redis agree with its memory (script `RECONCILE`, in batches): ids it
//!   no longer holds are released, ids it holds are claimed, except those
//!   another node claimed later while Redis could not hear from us: those
//!   local connections are closed (`replaced`). A Redis that restarted
//!   empty is so filled again. Nobody is declared offline because Redis
//!   was away.

pub(crate) mod link;
mod options;
mod reply;
pub mod resp;
pub mod scripts;

pub use options::{who, ClusterOptions};

use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;

use crate::events::EventKind;
use crate::time::Tick;
use resp::Value;

/// How a node takes part in a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// This node's id, unique in the cluster (default `HOST:PORT` of its
    /// first listening address).
    pub node_id: String,
    /// Prefix of every key and channel. Default `vigil:`.
    pub prefix: String,
    /// How long a lease lasts. Default 3 s.
    pub lease_ms: Tick,
    /// How often the lease is refreshed. Default 1 s.
    pub refresh_ms: Tick,
    /// How often dead nodes are looked for. Default 500 ms.
    pub scan_ms: Tick,
    /// How long a node must stay without a lease before it is reaped.
    /// Default 1.5 s: a dead node's ids go offline within lease + 2 s.
    pub grace_ms: Tick,
    /// The events stream's approximate length cap. Default 1,000,000.
    pub stream_maxlen: u64,
    /// Events held while Redis is away, at most. Default 100,000.
    pub max_backlog: usize,
}

impl ClusterConfig {
    /// The defaults, for node `node_id`.
    pub fn new(node_id: impl Into<String>) -> ClusterConfig {
        ClusterConfig {
            node_id: node_id.into(),
            prefix: "vigil:".to_owned(),
            lease_ms: 3000,
            refresh_ms: 1000,
            scan_ms: 500,
            grace_ms: 1500,
            stream_maxlen: 1_000_000,
            max_backlog: 100_000,
        }
    }
}

/// One of the two connections to Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// Commands and their replies, pipelined.
    Commands,
    /// Subscribed to this node's takeover channel.
    Subscriber,
}

/// A presence event as the cluster publishes it.
#[derive(Debug, Clone, Copy)]
pub struct Change<'a> {
    /// The connection's number on this node.
    pub conn: u64,
    /// The peer's address, as text.
    pub peer: &'a str,
    /// The client id, once the connection has said HELLO.
    pub client: Option<&'a str>,
    /// What happened.
    pub kind: EventKind,
    /// The wall-clock time of the event, RFC 3339 (the loop's to read).
    pub time: &'a str,
}

/// What the cluster asks of the loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Another node took `client` over: close connection `conn` with
    /// `BYE replaced` if it still holds `client`.
    Takeover {
        /// The client id.
        client: String,
        /// The connection's number on this node.
        conn: u64,
    },
    /// The answer to [`Cluster::lookup`]: the id's owner record in Redis,
    /// or `None` when it is offline in the whole cluster.
    Owner {
        /// The number the lookup was asked with.
        request: u64,
        /// The owner record (JSON: node, run, conn, peer, since).
        record: Option<String>,
    },
}

/// What the cluster has done, for logs and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClusterStats {
    /// Whether the command link is up.
    pub up: bool,
    /// Events written to the stream (acknowledged by Redis).
    pub events: u64,
    /// Events dropped because the backlog was full while Redis was away.
    pub dropped: u64,
    /// Takeover requests received from other nodes.
    pub takeovers: u64,
    /// Ids this node took offline for dead nodes.
    pub reaped: u64,
    /// Error replies from Redis.
    pub errors: u64,
}

/// What a command in flight was, to know what its reply means.
#[derive(Debug, Clone)]
enum Expect {
    /// Nothing to do with the reply but check for an error.
    Ignore,
    /// An event: resent if the link drops before Redis acknowledges it.
    Event(Vec<u8>),
    Scan,
    Reap,
    Reconcile,
    /// An owner record asked for by [`Cluster::lookup`].
    Lookup(u64),
}

#[derive(Debug, Default)]
struct LinkState {
    up: bool,
    out: Vec<u8>,
    input: Vec<u8>,
}

/// The cluster state machine. See the [module docs](self).
#[derive(Debug)]
pub struct Cluster {
    config: ClusterConfig,
    /// This run's id: connection numbers restart with each run.
    run: String,
    cmd: LinkState,
    sub: LinkState,
    expect: VecDeque<Expect>,
    /// The ids online here: id → (connection number, owner record).
    local: HashMap<String, (u64, String)>,
    /// Events waiting for the command link.
    backlog: VecDeque<Vec<u8>>,
    /// Nodes seen without a lease, and when first.
    suspects: HashMap<String, Tick>,
    next_refresh: Tick,
    next_scan: Tick,
    scan_in_flight: bool,
    outputs: VecDeque<Output>,
    stats: ClusterStats,
}

impl Cluster {
    /// A node `config.node_id` of run `run` (any string unique per start,
    /// such as random hex), with both links down.
    pub fn new(config: ClusterConfig, run: impl Into<String>) -> Cluster {
        Cluster {
            config,
            run: run.into(),
            cmd: LinkState::default(),
            sub: LinkState::default(),
            expect: VecDeque::new(),
            local: HashMap::new(),
            backlog: VecDeque::new(),
            suspects: HashMap::new(),
            next_refresh: 0,
            next_scan: 0,
            scan_in_flight: false,
            outputs: VecDeque::new(),
            stats: ClusterStats::default(),
        }
    }

    /// Changes the run id; only before the first presence event.
    pub fn set_run(&mut self, run: impl Into<String>) {
        self.run = run.into();
    }

    /// The settings.
    pub fn config(&self) -> &ClusterConfig {
        &self.config
    }

    /// The counters.
    pub fn stats(&self) -> ClusterStats {
        ClusterStats {
            up: self.cmd.up,
            ..self.stats
        }
    }

    fn key(&self, name: &str) -> String {
        format!("{}{name}", self.config.prefix)
    }

    fn mine(&self) -> String {
        format!("{}node-clients:{}", self.config.prefix, self.config.node_id)
    }

    /// A link is up (connected) at `now`.
    pub fn handle_connected(&mut self, link: Link, now: Tick) {
        match link {
            Link::Subscriber => {
                self.sub = LinkState {
                    up: true,
                    ..LinkState::default()
                };
                let channel = self.key(&format!("takeover:{}", self.config.node_id));
                resp::encode(&[b"SUBSCRIBE", channel.as_bytes()], &mut self.sub.out);
            }
            Link::Commands => {
                self.cmd = LinkState {
                    up: true,
                    ..LinkState::default()
                };
                // Commands that never got a reply are sent again: events
                // first, in their order.
                let resend: Vec<Vec<u8>> = self
                    .expect
                    .drain(..)
                    .filter_map(|e| match e {
                        Expect::Event(bytes) => Some(bytes),
                        _ => None,
                    })
                    .collect();
                self.scan_in_flight = false;
                self.refresh(now);
                self.reconcile();
                for bytes in resend
                    .into_iter()
                    .chain(self.backlog.drain(..).collect::<Vec<_>>())
                {
                    self.cmd.out.extend_from_slice(&bytes);
                    self.expect.push_back(Expect::Event(bytes));
                }
                self.next_scan = now.saturating_add(self.config.scan_ms);
            }
        }
    }

    /// A link went down (an error, an end of stream, a failed connect).
    pub fn handle_disconnected(&mut self, link: Link) {
        let state = match link {
            Link::Commands => &mut self.cmd,
            Link::Subscriber => &mut self.sub,
        };
        state.up = false;
        state.out.clear();
        state.input.clear();
        if link == Link::Commands {
            self.suspects.clear();
        }
    }

    /// Whether `link` is up.
    pub fn is_up(&self, link: Link) -> bool {
        match link {
            Link::Commands => self.cmd.up,
            Link::Subscriber => self.sub.up,
        }
    }

    /// A presence event of this node.
    pub fn handle_event(&mut self, change: &Change<'_>) {
        let conn = change.conn.to_string();
        match (change.kind, change.client) {
            (EventKind::Hello, Some(id)) => {
                let record = self.record(&conn, change.peer, change.time);
                self.local
                    .insert(id.to_owned(), (change.conn, record.clone()));
                if self.cmd.up {
                    let (online, mine, me, prefix) = (
                        self.key("online"),
                        self.mine(),
                        self.config.node_id.clone(),
                        self.config.prefix.clone(),
                    );
                    self.command(
                        &[
                            b"EVAL",
                            scripts::CLAIM.as_bytes(),
                            b"2",
                            online.as_bytes(),
                            mine.as_bytes(),
                            id.as_bytes(),
                            record.as_bytes(),
                            me.as_bytes(),
                            prefix.as_bytes(),
                        ],
                        Expect::Ignore,
                    );
                }
            }
            (EventKind::Offline(_) | EventKind::Renamed, Some(id)) => {
                if self.local.get(id).is_some_and(|(c, _)| *c == change.conn) {
                    self.local.remove(id);
                }
                if self.cmd.up {
                    let (online, mine, me, run) = (
                        self.key("online"),
                        self.mine(),
                        self.config.node_id.clone(),
                        self.run.clone(),
                    );
                    self.command(
                        &[
                            b"EVAL",
                            scripts::RELEASE.as_bytes(),
                            b"2",
                            online.as_bytes(),
                            mine.as_bytes(),
                            id.as_bytes(),
                            me.as_bytes(),
                            run.as_bytes(),
                            conn.as_bytes(),
                        ],
                        Expect::Ignore,
                    );
                }
            }
            _ => {}
        }
        self.publish_event(change, &conn);
    }

    fn publish_event(&mut self, change: &Change<'_>, conn: &str) {
        let reason = change.kind.reason().unwrap_or("");
        let maxlen = self.config.stream_maxlen.to_string();
        let mut bytes = Vec::new();
        resp::encode(
            &[
                b"XADD",
                self.key("events").as_bytes(),
                b"MAXLEN",
                b"~",
                maxlen.as_bytes(),
                b"*",
                b"time",
                change.time.as_bytes(),
                b"node",
                self.config.node_id.as_bytes(),
                b"run",
                self.run.as_bytes(),
                b"conn",
                conn.as_bytes(),
                b"peer",
                change.peer.as_bytes(),
                b"client",
                change.client.unwrap_or("").as_bytes(),
                b"event",
                change.kind.name().as_bytes(),
                b"reason",
                reason.as_bytes(),
            ],
            &mut bytes,
        );
        if self.cmd.up {
            self.cmd.out.extend_from_slice(&bytes);
            self.expect.push_back(Expect::Event(bytes));
        } else {
            if self.backlog.len() >= self.config.max_backlog {
                self.backlog.pop_front();
                self.stats.dropped += 1;
            }
            self.backlog.push_back(bytes);
        }
    }

    /// An owner record: JSON that the scripts read with `cjson`.
    fn record(&self, conn: &str, peer: &str, since: &str) -> String {
        let mut r = String::from("{\"node\":");
        crate::events::write_json_string(&self.config.node_id, &mut r);
        r.push_str(",\"run\":");
        crate::events::write_json_string(&self.run, &mut r);
        let _ = write!(r, ",\"conn\":\"{conn}\",\"peer\":");
        crate::events::write_json_string(peer, &mut r);
        r.push_str(",\"since\":");
        crate::events::write_json_string(since, &mut r);
        r.push('}');
        r
    }

    fn command(&mut self, args: &[&[u8]], expect: Expect) {
        resp::encode(args, &mut self.cmd.out);
        self.expect.push_back(expect);
    }

    fn refresh(&mut self, now: Tick) {
        let (lease, nodes, me) = (
            self.key(&format!("node:{}", self.config.node_id)),
            self.key("nodes"),
            self.config.node_id.clone(),
        );
        let px = self.config.lease_ms.to_string();
        self.command(
            &[b"SET", lease.as_bytes(), b"1", b"PX", px.as_bytes()],
            Expect::Ignore,
        );
        self.command(&[b"SADD", nodes.as_bytes(), me.as_bytes()], Expect::Ignore);
        self.next_refresh = now.saturating_add(self.config.refresh_ms);
    }

    /// Sends this node's view of its ids, in batches of 1,000.
    fn reconcile(&mut self) {
        let (online, mine, me, prefix) = (
            self.key("online"),
            self.mine(),
            self.config.node_id.clone(),
            self.config.prefix.clone(),
        );
        let ids: Vec<(String, String, String)> = self
            .local
            .iter()
            .map(|(id, (conn, rec))| (id.clone(), format!("{}/{conn}", self.run), rec.clone()))
            .collect();
        let mut first = true;
        let mut chunks: Vec<&[(String, String, String)]> = ids.chunks(1000).collect();
        if chunks.is_empty() {
            chunks.push(&[]);
        }
        for chunk in chunks {
            let mut args: Vec<&[u8]> = vec![
                b"EVAL",
                scripts::RECONCILE.as_bytes(),
                b"2",
                online.as_bytes(),
                mine.as_bytes(),
                me.as_bytes(),
                prefix.as_bytes(),
                if first { b"1" } else { b"0" },
            ];
            for (id, conn, rec) in chunk {
                args.extend([id.as_bytes(), conn.as_bytes(), rec.as_bytes()]);
            }
            self.command(&args, Expect::Reconcile);
            first = false;
        }
    }

    /// Asks Redis who holds `id` in the whole cluster; the answer comes as
    /// [`Output::Owner`] with `request`. False when Redis is away (nothing
    /// is asked).
    pub fn lookup(&mut self, id: &str, request: u64) -> bool {
        if !self.cmd.up {
            return false;
        }
        let online = self.key("online");
        self.command(
            &[b"HGET", online.as_bytes(), id.as_bytes()],
            Expect::Lookup(request),
        );
        true
    }

    /// Time has reached `now`: refresh the lease, look for dead nodes.
    pub fn handle_timeout(&mut self, now: Tick, time: &str) {
        if !self.cmd.up {
            return;
        }
        if now >= self.next_refresh {
            self.refresh(now);
        }
        if now >= self.next_scan && !self.scan_in_flight {
            let (nodes, prefix, me) = (
                self.key("nodes"),
                self.config.prefix.clone(),
                self.config.node_id.clone(),
            );
            self.command(
                &[
                    b"EVAL",
                    scripts::SCAN.as_bytes(),
                    b"1",
                    nodes.as_bytes(),
                    prefix.as_bytes(),
                    me.as_bytes(),
                ],
                Expect::Scan,
            );
            self.scan_in_flight = true;
            self.next_scan = now.saturating_add(self.config.scan_ms);
        }
        let due: Vec<String> = self
            .suspects
            .iter()
            .filter(|(_, since)| now.saturating_sub(**since) >= self.config.grace_ms)
            .map(|(n, _)| n.clone())
            .collect();
        for node in due {
            self.suspects.remove(&node);
            let (nodes, online, events, prefix) = (
                self.key("nodes"),
                self.key("online"),
                self.key("events"),
                self.config.prefix.clone(),
            );
            let maxlen = self.config.stream_maxlen.to_string();
            self.command(
                &[
                    b"EVAL",
                    scripts::REAP.as_bytes(),
                    b"3",
                    nodes.as_bytes(),
                    online.as_bytes(),
                    events.as_bytes(),
                    prefix.as_bytes(),
                    node.as_bytes(),
                    time.as_bytes(),
                    maxlen.as_bytes(),
                ],
                Expect::Reap,
            );
        }
    }

    /// When [`Cluster::handle_timeout`] wants to run next.
    pub fn poll_timeout(&self) -> Option<Tick> {
        if !self.cmd.up {
            return None;
        }
        let reap = self
            .suspects
            .values()
            .map(|since| since.saturating_add(self.config.grace_ms))
            .min();
        [
            Some(self.next_refresh),
            (!self.scan_in_flight).then_some(self.next_scan),
            reap,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Bytes read from `link` at `now`. An error means the stream is not
    /// RESP: the link must be closed (and is reported down).
    pub fn handle_bytes(
        &mut self,
        link: Link,
        now: Tick,
        data: &[u8],
    ) -> Result<(), resp::ParseError> {
        let state = match link {
            Link::Commands => &mut self.cmd,
            Link::Subscriber => &mut self.sub,
        };
        state.input.extend_from_slice(data);
        let mut input = std::mem::take(&mut state.input);
        let mut used = 0;
        let result = loop {
            match resp::parse(&input[used..]) {
                Ok(Some((value, n))) => {
                    used += n;
                    match link {
                        Link::Commands => self.on_reply(now, value),
                        Link::Subscriber => self.on_message(value),
                    }
                }
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        input.drain(..used);
        let state = match link {
            Link::Commands => &mut self.cmd,
            Link::Subscriber => &mut self.sub,
        };
        state.input = input;
        if result.is_err() {
            self.handle_disconnected(link);
        }
        result
    }

    /// Bytes queued for `link` and not written yet.
    pub fn pending(&self, link: Link) -> usize {
        match link {
            Link::Commands => self.cmd.out.len(),
            Link::Subscriber => self.sub.out.len(),
        }
    }

    /// Bytes to write to `link`, if any.
    pub fn poll_transmit(&self, link: Link) -> Option<&[u8]> {
        let state = match link {
            Link::Commands => &self.cmd,
            Link::Subscriber => &self.sub,
        };
        (state.up && !state.out.is_empty()).then_some(&state.out[..])
    }

    /// `n` bytes of [`Cluster::poll_transmit`] were written.
    pub fn handle_transmitted(&mut self, link: Link, n: usize) {
        let state = match link {
            Link::Commands => &mut self.cmd,
            Link::Subscriber => &mut self.sub,
        };
        state.out.drain(..n.min(state.out.len()));
    }

    /// The next thing for the loop to do.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }
}

#[cfg(test)]
mod tests;
