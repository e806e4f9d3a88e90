//! The loop's side of the admin endpoint and of [`Handle`](crate::Handle)
//! queries: accept admin connections, read a request, write the answer,
//! close; answer the handle's questions when the waker rings. The HTTP
//! itself is pure, in `server::admin`.
//!
//! Admin connections are not heartbeat connections: they live in their own
//! small slab, have no session, no presence and no events, and are not
//! counted in `connections`. Each has a deadline ([`ADMIN_DEADLINE_MS`]
//! from its accept) so a slow client cannot hold one of the
//! [`MAX_ADMIN_CONNS`] slots; past it, it gets 408 and is closed.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::mpsc;
use std::time::{Duration, SystemTime};

use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Registry, Token};
use slab::Slab;

use super::super::admin::{self, AdminView, OnlineClient, Parsed};
use super::super::presence::PresenceTable;
use super::super::session::ConnRef;
use super::super::status::{self, Ring};
use super::{Driver, Handler, Stats};
use crate::protocol::{CloseReason, Protocol};
use crate::time::{Clock, Tick};

/// The admin listener's token; admin connection `k` has `ADMIN_LISTENER +
/// 1 + k`. Far from heartbeat connections (slab keys, below 2^32 and
/// `max_conns`) and from the listeners and the waker (at the top).
pub(crate) const ADMIN_LISTENER: usize = usize::MAX / 2;
/// The most admin connections at once; more get 503.
pub(crate) const MAX_ADMIN_CONNS: usize = 16;
/// How long an admin connection may take to send its request and read the
/// answer.
pub(crate) const ADMIN_DEADLINE_MS: Tick = 5_000;
/// The most event-stream viewers at once (of the [`MAX_ADMIN_CONNS`]); more
/// get 503.
pub(crate) const MAX_VIEWERS: usize = 4;
/// The most bytes a viewer may leave unread; past it, it is dropped.
pub(crate) const VIEWER_BACKLOG: usize = 256 * 1024;
/// A viewer's socket send buffer.
const VIEWER_SNDBUF: usize = 64 * 1024;

/// A question from a [`Handle`](crate::Handle), answered at the loop's
/// next turn.
#[derive(Debug)]
pub(crate) enum Query {
    Stats(mpsc::Sender<Stats>),
    Clients(mpsc::Sender<Vec<OnlineClient>>),
}

/// What the loop keeps for the admin endpoint and the handle's queries.
pub(crate) struct AdminState {
    /// The wall clock when the loop's clock read 0 (for `since`).
    started: SystemTime,
    queries: Option<mpsc::Receiver<Query>>,
    endpoint: Option<Box<Endpoint>>,
    /// Numbers the cluster lookups of `GET /clients/{id}`.
    next_lookup: u64,
}

/// The admin listener and its connections (boxed: absent unless `--admin`).
struct Endpoint {
    listener: TcpListener,
    token: Option<String>,
    conns: Slab<AdminConn>,
    /// The last ten minutes of rates, for the status page.
    ring: Ring,
    /// When the ring takes its next sample.
    next_sample: Tick,
    /// How many connections are event-stream viewers.
    viewers: usize,
}

struct AdminConn {
    stream: TcpStream,
    peer: SocketAddr,
    /// The request head read so far.
    input: Vec<u8>,
    /// The answer, and how much of it the socket has taken.
    output: Vec<u8>,
    written: usize,
    deadline: Tick,
    /// Waiting for the cluster's answer about this client id (lookup
    /// number, id): the id is not online here, so Redis is asked.
    lookup: Option<(u64, String)>,
    /// A viewer of `GET /events/stream`: open until it leaves, fed
    /// samples and presence events.
    viewer: bool,
}

impl AdminState {
    /// The state for a loop whose clock is `clock`.
    pub fn new(clock: &Clock) -> AdminState {
        // The wall clock when `clock` read 0, whenever this runs.
        let now = SystemTime::now();
        let started = now
            .checked_sub(Duration::from_micros(clock.now_us()))
            .unwrap_or(now);
        AdminState {
            started,
            queries: None,
            endpoint: None,
            next_lookup: 0,
        }
    }

    pub fn set_queries(&mut self, queries: mpsc::Receiver<Query>) {
        self.queries = Some(queries);
    }

    /// Serves the admin endpoint on `listener`.
    pub fn listen(
        &mut self,
        registry: &Registry,
        mut listener: TcpListener,
        token: Option<String>,
        now: Tick,
    ) -> io::Result<SocketAddr> {
        registry.register(&mut listener, Token(ADMIN_LISTENER), Interest::READABLE)?;
        let addr = listener.local_addr()?;
        self.endpoint = Some(Box::new(Endpoint {
            listener,
            token,
            conns: Slab::with_capacity(MAX_ADMIN_CONNS),
            ring: Ring::new(),
            next_sample: now,
            viewers: 0,
        }));
        Ok(addr)
    }

    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.endpoint
            .as_ref()
            .and_then(|e| e.listener.local_addr().ok())
    }

    /// The earliest admin connection deadline, or the status ring's next
    /// sample.
    pub fn next_deadline(&self) -> Option<Tick> {
        let e = self.endpoint.as_ref()?;
        let conns = e.conns.iter().map(|(_, c)| c.deadline).min();
        Some(conns.map_or(e.next_sample, |d| d.min(e.next_sample)))
    }

    /// Whether anyone watches the event stream (cheap: one load).
    pub fn watched(&self) -> bool {
        self.endpoint.as_ref().is_some_and(|e| e.viewers > 0)
    }

    /// Queues one presence event (a JSON line) to every viewer.
    pub fn tell_viewers(&mut self, json: &str) {
        let Some(e) = self.endpoint.as_deref_mut() else {
            return;
        };
        for (_, c) in e.conns.iter_mut().filter(|(_, c)| c.viewer) {
            status::presence_event(json, &mut c.output);
        }
    }
}

/// Whether `token` is the admin endpoint's (its listener or a connection).
pub(crate) fn is_admin(token: Token) -> bool {
    (ADMIN_LISTENER..=ADMIN_LISTENER + MAX_ADMIN_CONNS).contains(&token.0)
}

impl<P: Protocol, H: Handler> Driver<P, H> {
    /// An event on an admin token.
    pub(super) fn on_admin_event(&mut self, token: Token) {
        if token.0 == ADMIN_LISTENER {
            self.admin_accept();
        } else {
            self.admin_serve(token.0 - ADMIN_LISTENER - 1);
        }
    }

    fn admin_accept(&mut self) {
        let deadline = self.now + ADMIN_DEADLINE_MS;
        let Some(e) = self.admin.endpoint.as_deref_mut() else {
            return;
        };
        loop {
            let (mut stream, peer) = match e.listener.accept() {
                Ok(accepted) => accepted,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return,
                Err(err) => {
                    // Out of descriptors and the like: the heartbeat
                    // listener's rules handle that; here, try next event.
                    log::debug!("admin accept: {err}");
                    return;
                }
            };
            if e.conns.len() >= MAX_ADMIN_CONNS {
                // Debug, not warn: a flood of connections must not flood the log.
                log::debug!("admin: {peer} refused: {MAX_ADMIN_CONNS} admin connections open");
                // Best effort; the connection is dropped either way.
                let _ = stream.write(&admin::busy());
                continue;
            }
            let entry = e.conns.vacant_entry();
            let token = Token(ADMIN_LISTENER + 1 + entry.key());
            if let Err(err) = self.poll.registry().register(
                &mut stream,
                token,
                Interest::READABLE | Interest::WRITABLE,
            ) {
                log::warn!("admin: {peer}: cannot register: {err}");
                continue;
            }
            log::debug!("admin: connection from {peer}");
            entry.insert(AdminConn {
                stream,
                peer,
                input: Vec::new(),
                output: Vec::new(),
                written: 0,
                deadline,
                lookup: None,
                viewer: false,
            });
        }
    }

    /// Reads what admin connection `k` sent; answers once its request is
    /// complete; writes; closes when the answer is out.
    fn admin_serve(&mut self, k: usize) {
        let Some(e) = self.admin.endpoint.as_deref_mut() else {
            return;
        };
        let Some(c) = e.conns.get_mut(k) else {
            return;
        };
        if c.viewer {
            // A viewer sends nothing more; reading tells when it leaves.
            let mut chunk = [0u8; 512];
            loop {
                match c.stream.read(&mut chunk) {
                    Ok(0) => {
                        log::debug!("admin: {}: viewer left", c.peer);
                        self.admin_close(k);
                        return;
                    }
                    Ok(_) => {}
                    Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                    Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
                    Err(_) => {
                        self.admin_close(k);
                        return;
                    }
                }
            }
            self.admin_flush(k);
            return;
        }
        let mut parsed = Parsed::Partial;
        if c.lookup.is_some() {
            // Its answer waits for the cluster (see `admin_owner`).
            return;
        }
        if c.output.is_empty() {
            let mut eof = false;
            let mut chunk = [0u8; 2048];
            loop {
                let room = admin::MAX_REQUEST + 1 - c.input.len().min(admin::MAX_REQUEST);
                match c.stream.read(&mut chunk[..room.min(2048)]) {
                    Ok(0) => {
                        eof = true;
                        break;
                    }
                    Ok(n) => {
                        c.input.extend_from_slice(&chunk[..n]);
                        if c.input.len() > admin::MAX_REQUEST {
                            break;
                        }
                    }
                    Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                    Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
                    Err(err) => {
                        log::debug!("admin: {}: read: {err}", c.peer);
                        eof = true;
                        break;
                    }
                }
            }
            parsed = admin::parse(&c.input, e.token.as_deref());
            if eof && parsed == Parsed::Partial {
                // Gone before a whole request: nothing to answer.
                self.admin_close(k);
                return;
            }
        }
        match parsed {
            Parsed::Partial => {}
            Parsed::Reject(answer) => self.admin_answer(k, answer),
            Parsed::Head(request) => {
                let answer = admin::head_only(admin::respond(&request, &mut View { d: self }));
                self.admin_answer(k, answer);
            }
            Parsed::Request(admin::Request::Client(id))
                if self.sessions.holder(&id).is_none() && self.cluster.is_some() =>
            {
                // Not online here: ask the cluster who holds it.
                let request = self.admin.next_lookup;
                self.admin.next_lookup += 1;
                let asked = match self.cluster.as_mut() {
                    Some(cl) => cl.lookup(self.poll.registry(), self.now, &id, request),
                    None => false,
                };
                if asked {
                    if let Some(c) = self
                        .admin
                        .endpoint
                        .as_deref_mut()
                        .and_then(|e| e.conns.get_mut(k))
                    {
                        c.lookup = Some((request, id));
                    }
                    return;
                }
                let answer = admin::error(
                    503,
                    "not online here, and the cluster's Redis is unreachable",
                );
                self.admin_answer(k, answer);
            }
            Parsed::Request(admin::Request::Stream) => {
                if e.viewers >= MAX_VIEWERS {
                    log::debug!("admin: {}: refused: {MAX_VIEWERS} viewers already", c.peer);
                    self.admin_answer(k, admin::error(503, "too many viewers"));
                } else {
                    e.viewers += 1;
                    log::info!("admin: {}: watching the event stream", c.peer);
                    // A small socket buffer: what a viewer leaves unread is
                    // bounded in the kernel too. Best effort.
                    let _ = socket2::SockRef::from(&c.stream).set_send_buffer_size(VIEWER_SNDBUF);
                    let mut head = status::stream_head();
                    head.extend_from_slice(e.ring.history_event().as_bytes());
                    c.viewer = true;
                    c.deadline = Tick::MAX;
                    c.output = head;
                    c.written = 0;
                }
            }
            Parsed::Request(request) => {
                let answer = admin::respond(&request, &mut View { d: self });
                self.admin_answer(k, answer);
            }
        }
        self.admin_flush(k);
    }

    /// The cluster's answer to a lookup: the owner record of a client id
    /// online on another node (200, the record with the id), or 404.
    pub(super) fn admin_owner(&mut self, request: u64, record: Option<String>) {
        let Some(e) = self.admin.endpoint.as_deref_mut() else {
            return;
        };
        let Some((k, id)) = e.conns.iter_mut().find_map(|(k, c)| match &c.lookup {
            Some((r, _)) if *r == request => c.lookup.take().map(|(_, id)| (k, id)),
            _ => None,
        }) else {
            return;
        };
        let owner = record.and_then(|r| serde_json::from_str::<serde_json::Value>(&r).ok());
        let answer = match owner {
            Some(serde_json::Value::Object(mut fields)) => {
                fields.insert("id".to_owned(), serde_json::Value::String(id));
                let body = serde_json::Value::Object(fields);
                admin::ok("application/json", &format!("{body}\n"))
            }
            _ => admin::error(404, "client not online in the cluster"),
        };
        self.admin_answer(k, answer);
        self.admin_flush(k);
    }

    fn admin_answer(&mut self, k: usize, answer: Vec<u8>) {
        if let Some(c) = self
            .admin
            .endpoint
            .as_deref_mut()
            .and_then(|e| e.conns.get_mut(k))
        {
            if let Some(status) = answer.get(9..12) {
                log::debug!(
                    "admin: {} {} -> {}",
                    c.peer,
                    String::from_utf8_lossy(c.input.split(|&b| b == b'\r').next().unwrap_or(&[])),
                    String::from_utf8_lossy(status)
                );
            }
            c.output = answer;
            c.written = 0;
        }
    }

    /// Writes what the socket takes of admin connection `k`'s answer; closes
    /// it once all is written.
    fn admin_flush(&mut self, k: usize) {
        let Some(c) = self
            .admin
            .endpoint
            .as_deref_mut()
            .and_then(|e| e.conns.get_mut(k))
        else {
            return;
        };
        if c.output.is_empty() {
            return;
        }
        let mut failed = false;
        while c.written < c.output.len() {
            match c.stream.write(&c.output[c.written..]) {
                Ok(0) => break,
                Ok(n) => c.written += n,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => {
                    failed = true;
                    break;
                }
            }
        }
        if c.viewer && !failed {
            // Open until it leaves; what it has not read stays queued,
            // within bounds.
            if c.written == c.output.len() {
                c.output.clear();
                c.written = 0;
            } else if c.output.len() - c.written > VIEWER_BACKLOG {
                log::warn!(
                    "admin: {}: viewer does not read ({} bytes unread); dropping it",
                    c.peer,
                    c.output.len() - c.written
                );
                self.admin_close(k);
            }
            return;
        }
        if c.written < c.output.len() && !failed {
            // The socket is full: the rest when it is writable.
            return;
        }
        self.admin_close(k);
    }

    fn admin_close(&mut self, k: usize) {
        if let Some(e) = self.admin.endpoint.as_deref_mut() {
            if let Some(mut c) = e.conns.try_remove(k) {
                if c.viewer {
                    e.viewers -= 1;
                }
                // Read what the client sent and we will not (a body, the
                // rest of an oversized head), so the close is a FIN after
                // our answer, not a reset that could make the client drop
                // the answer unread. Bounded: at most 64 KiB.
                let mut discard = [0u8; 4096];
                for _ in 0..16 {
                    match c.stream.read(&mut discard) {
                        Ok(n) if n > 0 => {}
                        _ => break,
                    }
                }
                // Dropping deregisters and closes.
                let _ = c.stream.shutdown(Shutdown::Write);
            }
        }
    }

    /// Closes the admin connections past their deadline, telling the ones
    /// still sending their request so (408).
    pub(super) fn admin_expire(&mut self) {
        let now = self.now;
        self.admin_sample();
        let late: Vec<usize> = match self.admin.endpoint.as_deref() {
            Some(e) => e
                .conns
                .iter()
                .filter(|(_, c)| c.deadline <= now)
                .map(|(k, _)| k)
                .collect(),
            None => return,
        };
        for k in late {
            if let Some(c) = self
                .admin
                .endpoint
                .as_deref_mut()
                .and_then(|e| e.conns.get_mut(k))
            {
                log::debug!("admin: {}: too slow; closing", c.peer);
                if c.output.is_empty() {
                    // Best effort.
                    let _ = c.stream.write(&admin::timed_out());
                }
            }
            self.admin_close(k);
        }
    }

    /// Once a second: a sample of the counters into the status ring, and
    /// to every viewer.
    fn admin_sample(&mut self) {
        let due = match self.admin.endpoint.as_deref() {
            Some(e) => e.next_sample <= self.now,
            None => false,
        };
        if !due {
            return;
        }
        let stats = self.stats();
        let now = self.now;
        let Some(e) = self.admin.endpoint.as_deref_mut() else {
            return;
        };
        // Late turns skip samples rather than take several at once.
        e.next_sample =
            e.next_sample.max(now - now % status::SAMPLE_EVERY_MS) + status::SAMPLE_EVERY_MS;
        let Some(sample) = e.ring.record(now, &stats) else {
            return;
        };
        if e.viewers > 0 {
            let text = status::sample_event(&sample);
            for (_, c) in e.conns.iter_mut().filter(|(_, c)| c.viewer) {
                c.output.extend_from_slice(text.as_bytes());
            }
            self.admin_flush_viewers();
        }
    }

    /// Writes what the viewers have queued.
    pub(super) fn admin_flush_viewers(&mut self) {
        let keys: Vec<usize> = match self.admin.endpoint.as_deref() {
            Some(e) if e.viewers > 0 => e
                .conns
                .iter()
                .filter(|(_, c)| c.viewer && !c.output.is_empty())
                .map(|(k, _)| k)
                .collect(),
            _ => return,
        };
        for k in keys {
            self.admin_flush(k);
        }
    }

    /// Answers the questions [`Handle`](crate::Handle)s have queued.
    pub(super) fn answer_queries(&mut self) {
        let Some(queries) = self.admin.queries.take() else {
            return;
        };
        while let Ok(q) = queries.try_recv() {
            // A handle that gave up waiting has dropped its receiver:
            // nothing to do about it.
            match q {
                Query::Stats(to) => {
                    let _ = to.send(self.full_stats());
                }
                Query::Clients(to) => {
                    let view = View { d: self };
                    let all = view.d.sessions.presence().iter().map(|(id, _)| id);
                    let list = all.filter_map(|id| view.client(id)).collect();
                    let _ = to.send(list);
                }
            }
        }
        self.admin.queries = Some(queries);
    }

    /// The counters, with what only the loop knows filled in.
    pub(super) fn full_stats(&self) -> Stats {
        let mut stats = self.stats();
        stats.rss_bytes = crate::sys::rss_bytes();
        stats
    }

    /// The online client holding `c`, given its id and the tick of its claim.
    fn online_client(&self, id: &str, c: ConnRef) -> Option<OnlineClient> {
        let conn = self.conns.get(c.key as usize)?;
        if conn.session.generation() != c.generation || !conn.session.is_open() {
            return None;
        }
        let since = self.sessions.presence().since(id).unwrap_or(0);
        Some(OnlineClient {
            id: id.to_owned(),
            conn: conn.session.number(),
            peer: conn.session.peer(),
            since: self.admin.started + Duration::from_millis(since),
        })
    }
}

/// The driver as the admin endpoint sees it.
struct View<'a, P: Protocol, H: Handler> {
    d: &'a mut Driver<P, H>,
}

impl<P: Protocol, H: Handler> AdminView for View<'_, P, H> {
    fn stats(&self) -> Stats {
        self.d.full_stats()
    }

    fn client(&self, id: &str) -> Option<OnlineClient> {
        let c = self.d.sessions.presence().get(id)?;
        self.d.online_client(id, c)
    }

    fn page(&self, after: Option<&str>, limit: usize) -> Vec<OnlineClient> {
        let presence = self.d.sessions.presence();
        let page = presence.page(after, limit).unwrap_or_else(|| {
            // A table without an ordered index (not built for the admin
            // endpoint): sort a copy, O(n log n), once per page.
            let mut all: Vec<_> = presence
                .iter()
                .filter(|(id, _)| after.is_none_or(|a| *id > a))
                .map(|(id, c)| (compact_str::CompactString::from(id), c))
                .collect();
            all.sort_unstable_by(|a, b| a.0.cmp(&b.0));
            all.truncate(limit);
            all
        });
        page.iter()
            .filter_map(|(id, c)| self.d.online_client(id, *c))
            .collect()
    }

    fn kick(&mut self, id: &str) -> Option<OnlineClient> {
        let c = self.d.sessions.presence().get(id)?;
        let client = self.d.online_client(id, c)?;
        log::info!(
            "admin: kicking client {id} (conn {} from {})",
            client.conn,
            client.peer
        );
        self.d.close(c.key as usize, CloseReason::Kicked);
        Some(client)
    }
}
