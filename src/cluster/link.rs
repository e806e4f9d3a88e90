//! The event loop's side of the cluster: two non-blocking sockets to Redis
//! in the loop's own `Poll`, reconnected with backoff, feeding the pure
//! [`Cluster`]. Nothing here ever blocks the loop: a slow or stopped Redis
//! only makes output wait in memory (bounded by the cluster's backlog).

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::SystemTime;

use mio::event::Event;
use mio::net::TcpStream;
use mio::{Interest, Registry, Token};

use super::{Change, Cluster, Link, Output};
use crate::time::Tick;

/// The tokens of the two links: above every slab key (a `u32`), below the
/// listeners', waker's and signals' tokens at the top of the range.
pub(crate) const COMMANDS: Token = Token(1 << 40);
pub(crate) const SUBSCRIBER: Token = Token((1 << 40) + 1);

/// Output for Redis held at most: past it Redis is not keeping up (or is
/// stopped), and the link is dropped and made again, which resends what
/// matters (events) and reconciles presence.
const MAX_PENDING: usize = 64 << 20;

/// The first and the largest delay before reconnecting to Redis.
const RETRY_MIN_MS: Tick = 100;
const RETRY_MAX_MS: Tick = 5_000;

#[derive(Debug)]
struct Socket {
    link: Link,
    token: Token,
    stream: Option<TcpStream>,
    connecting: bool,
    retry_at: Option<Tick>,
    retry_ms: Tick,
}

/// The cluster's two links to Redis and its state machine.
#[derive(Debug)]
pub(crate) struct ClusterLink {
    redis: SocketAddr,
    cluster: Cluster,
    sockets: [Socket; 2],
    buf: Vec<u8>,
}

impl ClusterLink {
    pub fn new(redis: SocketAddr, cluster: Cluster) -> ClusterLink {
        let socket = |link, token| Socket {
            link,
            token,
            stream: None,
            connecting: false,
            retry_at: Some(0),
            retry_ms: RETRY_MIN_MS,
        };
        ClusterLink {
            redis,
            cluster,
            sockets: [
                socket(Link::Commands, COMMANDS),
                socket(Link::Subscriber, SUBSCRIBER),
            ],
            buf: vec![0; 64 * 1024],
        }
    }

    /// Whether `token` is one of the cluster's.
    pub fn owns(token: Token) -> bool {
        token == COMMANDS || token == SUBSCRIBER
    }

    /// Readiness on one of the links.
    pub fn handle_ready(&mut self, registry: &Registry, event: &Event, now: Tick) {
        let i = usize::from(event.token() == SUBSCRIBER);
        if self.sockets[i].stream.is_none() {
            return;
        }
        if self.sockets[i].connecting {
            let result = match &self.sockets[i].stream {
                Some(s) => crate::sys::connect_result(s),
                None => return,
            };
            match result {
                Ok(true) => {
                    let s = &mut self.sockets[i];
                    s.connecting = false;
                    s.retry_ms = RETRY_MIN_MS;
                    log::info!(
                        "cluster: {:?} link to Redis at {} is up",
                        s.link,
                        self.redis
                    );
                    self.cluster.handle_connected(s.link, now);
                }
                Ok(false) => return,
                Err(e) => {
                    self.down(registry, i, now, &e.to_string());
                    return;
                }
            }
        }
        if event.is_readable() || event.is_read_closed() || event.is_error() {
            self.read(registry, i, now);
        }
        self.flush(registry, i, now);
    }

    fn read(&mut self, registry: &Registry, i: usize, now: Tick) {
        loop {
            let Some(stream) = self.sockets[i].stream.as_mut() else {
                return;
            };
            match stream.read(&mut self.buf) {
                Ok(0) => return self.down(registry, i, now, "Redis closed the connection"),
                Ok(n) => {
                    let link = self.sockets[i].link;
                    if let Err(e) = self.cluster.handle_bytes(link, now, &self.buf[..n]) {
                        return self.down(registry, i, now, &e.to_string());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.down(registry, i, now, &e.to_string()),
            }
        }
    }

    /// Writes what the cluster has for link `i`, as far as the socket takes it.
    fn flush(&mut self, registry: &Registry, i: usize, now: Tick) {
        let link = self.sockets[i].link;
        loop {
            let Some(stream) = self.sockets[i].stream.as_mut() else {
                return;
            };
            if self.sockets[i].connecting {
                return;
            }
            if self.cluster.pending(link) > MAX_PENDING {
                return self.down(registry, i, now, "Redis is not keeping up");
            }
            let Some(bytes) = self.cluster.poll_transmit(link) else {
                return;
            };
            match stream.write(bytes) {
                Ok(0) => return self.down(registry, i, now, "Redis takes no more bytes"),
                Ok(n) => self.cluster.handle_transmitted(link, n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.down(registry, i, now, &e.to_string()),
            }
        }
    }

    fn down(&mut self, registry: &Registry, i: usize, now: Tick, why: &str) {
        let s = &mut self.sockets[i];
        if let Some(mut stream) = s.stream.take() {
            let _ = registry.deregister(&mut stream);
        }
        let was_up = !s.connecting;
        s.connecting = false;
        s.retry_at = Some(now.saturating_add(s.retry_ms));
        s.retry_ms = (s.retry_ms * 2).min(RETRY_MAX_MS);
        if was_up {
            log::warn!(
                "cluster: {:?} link to Redis at {} is down: {why}; presence carries on locally",
                s.link,
                self.redis
            );
        } else {
            log::debug!("cluster: cannot reach Redis at {}: {why}", self.redis);
        }
        self.cluster.handle_disconnected(s.link);
    }

    fn connect(&mut self, registry: &Registry, i: usize, now: Tick) {
        let s = &mut self.sockets[i];
        s.retry_at = None;
        match TcpStream::connect(self.redis) {
            Ok(mut stream) => {
                if let Err(e) = registry.register(
                    &mut stream,
                    s.token,
                    Interest::READABLE | Interest::WRITABLE,
                ) {
                    s.retry_at = Some(now.saturating_add(s.retry_ms));
                    log::warn!("cluster: cannot register the Redis link: {e}");
                    return;
                }
                let _ = stream.set_nodelay(true);
                s.stream = Some(stream);
                s.connecting = true;
            }
            Err(e) => {
                s.retry_at = Some(now.saturating_add(s.retry_ms));
                s.retry_ms = (s.retry_ms * 2).min(RETRY_MAX_MS);
                log::debug!("cluster: cannot connect to Redis at {}: {e}", self.redis);
            }
        }
    }

    /// Time has reached `now`: reconnect what is due, refresh the lease,
    /// look for dead nodes, write.
    pub fn handle_timeout(&mut self, registry: &Registry, now: Tick) {
        for i in 0..2 {
            if self.sockets[i].retry_at.is_some_and(|t| t <= now) {
                self.connect(registry, i, now);
            }
        }
        if self.cluster.poll_timeout().is_some_and(|t| t <= now) {
            self.cluster
                .handle_timeout(now, &crate::events::format_time(SystemTime::now()));
        }
        for i in 0..2 {
            self.flush(registry, i, now);
        }
    }

    /// When [`ClusterLink::handle_timeout`] wants to run next.
    pub fn poll_timeout(&self) -> Option<Tick> {
        self.sockets
            .iter()
            .filter_map(|s| s.retry_at)
            .chain(self.cluster.poll_timeout())
            .min()
    }

    /// This run's id (before the links are up).
    pub fn set_run(&mut self, run: String) {
        self.cluster.set_run(run);
    }

    /// Asks who holds `id` in the whole cluster (see [`Cluster::lookup`]).
    pub fn lookup(&mut self, registry: &Registry, now: Tick, id: &str, request: u64) -> bool {
        let asked = self.cluster.lookup(id, request);
        self.flush(registry, 0, now);
        asked
    }

    /// Whether the command link to Redis is up.
    pub fn is_up(&self) -> bool {
        self.cluster.is_up(Link::Commands)
    }

    /// A presence event of this node.
    pub fn publish(&mut self, change: &Change<'_>) {
        self.cluster.handle_event(change);
    }

    /// Writes what is queued, now.
    pub fn flush_all(&mut self, registry: &Registry, now: Tick) {
        for i in 0..2 {
            self.flush(registry, i, now);
        }
    }

    /// The next thing for the loop to do.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.cluster.poll_output()
    }

    /// At shutdown: waits up to `patience` for the command link to take
    /// what is queued (the last offline events and releases), with short
    /// sleeps: the loop is stopping and serves no one any more.
    pub fn drain(&mut self, registry: &Registry, now: Tick, patience: std::time::Duration) {
        let started = std::time::Instant::now();
        while self.cluster.poll_transmit(Link::Commands).is_some()
            && self.sockets[0].stream.is_some()
            && started.elapsed() < patience
        {
            self.flush(registry, 0, now);
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
}
