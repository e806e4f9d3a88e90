//! The admin endpoint's HTTP, pure: request bytes in, response bytes out.
//!
//! `vigil serve --admin ADDR` serves a small HTTP/1.1 interface on the
//! server's own event loop (one more listening socket in the same `Poll`;
//! the driver's `admin` part accepts, reads, writes and closes). This
//! module holds everything else, without a socket or a clock:
//! [`parse`] turns the bytes read so far into a [`Request`] (or says it
//! needs more, or rejects them with a status), and [`respond`] answers a
//! request from an [`AdminView`] of the server (the driver's state, or a
//! fake in the tests).
//!
//! # Routes
//! - `GET /metrics`: Prometheus text exposition format (see [`metrics`]).
//! - `GET /clients?after=ID&limit=N`: online clients in id order, after
//!   `ID` (exclusive), at most `N` ([`DEFAULT_PAGE`] by default, at most
//!   [`MAX_PAGE`]), as JSON: `{"clients":[...],"next":ID|null}`; `next` is
//!   the `after` of the next page when this one is full, `null` when it is
//!   not (so a full last page is followed by an empty one).
//! - `GET /clients/{id}`: one client, or 404 when it is offline.
//! - `POST /clients/{id}/kick`: closes the client's connection with
//!   `BYE kicked`; 404 when it is offline.
//! - `GET /healthz`: `ok` while the loop turns.
//! - `GET /`: the status page (`server::status`), static HTML.
//! - `GET /events/stream`: Server-Sent Events (the status ring's history,
//!   a sample a second, presence events); the driver keeps it open.
//!
//! # Rules
//! - One request per connection, answered with `Connection: close` (the
//!   event stream ends when either side closes).
//! - A request whose head is longer than [`MAX_REQUEST`] bytes or has more
//!   than [`MAX_HEADERS`] headers gets 431; bytes that are not HTTP get
//!   400; a method a route does not take gets 405; an unknown path 404.
//!   A request body is not read (no route takes one).
//! - With a token, every route but `/healthz` and `/` needs
//!   `Authorization: Bearer <token>`, compared in constant time; without
//!   it the answer is 401.
//! - Path segments are percent-decoded (a client id may hold `%` or `/`).

use std::fmt::{self, Write as _};
use std::net::SocketAddr;
use std::time::SystemTime;

use super::stats::Stats;
use crate::protocol::CloseReason;

/// The longest request head read, in bytes.
pub const MAX_REQUEST: usize = 8 * 1024;
/// The most request headers parsed.
pub const MAX_HEADERS: usize = 32;
/// Clients per page of `GET /clients` when `limit` is not given.
pub const DEFAULT_PAGE: usize = 100;
/// The largest `limit` of `GET /clients`.
pub const MAX_PAGE: usize = 10_000;

/// Settings of the admin endpoint (see [`Config::admin`](super::Config::admin)).
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AdminConfig {
    /// Where to listen for HTTP.
    pub addr: SocketAddr,
    /// Whether a non-loopback `addr` is allowed. Default `false`:
    /// [`Config::validate`](super::Config::validate) refuses one.
    pub public: bool,
    /// The bearer token every request but `GET /healthz` must carry, if any.
    pub token: Option<String>,
}

impl AdminConfig {
    /// The endpoint on `addr`, loopback only, without a token.
    pub fn new(addr: SocketAddr) -> AdminConfig {
        AdminConfig {
            addr,
            public: false,
            token: None,
        }
    }
}

/// The token is not printed.
impl fmt::Debug for AdminConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminConfig")
            .field("addr", &self.addr)
            .field("public", &self.public)
            .field("token", &self.token.as_ref().map(|_| "<hidden>"))
            .finish()
    }
}

/// A client that is online, as [`Handle::clients`](super::Handle::clients)
/// and the admin endpoint tell it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnlineClient {
    /// The client id it said in HELLO.
    pub id: String,
    /// The number of the connection holding the id (as in events and logs).
    pub conn: u64,
    /// The connection's peer address.
    pub peer: SocketAddr,
    /// When it said HELLO, on the wall clock: the server's monotonic
    /// stamp of the HELLO (whole milliseconds, rounded up) added to the
    /// wall-clock time of the server's start, so a later change of the
    /// system date does not move it.
    pub since: SystemTime,
}

/// A request the admin endpoint understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Request {
    Metrics,
    Healthz,
    Clients {
        after: Option<String>,
        limit: usize,
    },
    Client(String),
    Kick(String),
    /// The status page (`GET /`).
    Page,
    /// The live event stream (`GET /events/stream`).
    Stream,
}

/// What [`parse`] made of the bytes read so far.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Parsed {
    /// The head is not complete yet: read more.
    Partial,
    /// A request to answer with [`respond`].
    Request(Request),
    /// The same, asked with `HEAD`: answer with [`head_only`] of it.
    Head(Request),
    /// A response that needs no look at the server (an error).
    Reject(Vec<u8>),
}

/// The server as the admin endpoint sees it.
pub(crate) trait AdminView {
    /// The counters, complete (connections, clients, wheel, RSS...).
    fn stats(&self) -> Stats;
    /// The client holding `id`, if it is online.
    fn client(&self, id: &str) -> Option<OnlineClient>;
    /// Up to `limit` online clients with ids after `after`, in id order.
    fn page(&self, after: Option<&str>, limit: usize) -> Vec<OnlineClient>;
    /// Closes the connection of client `id` with `BYE kicked`; the client
    /// as it was, or `None` when it is offline.
    fn kick(&mut self, id: &str) -> Option<OnlineClient>;
}

/// Reads a request head from `buf` (what the connection has sent so far),
/// checking the bearer `token` if one is set.
pub(crate) fn parse(buf: &[u8], token: Option<&str>) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(buf) {
        Ok(httparse::Status::Partial) if buf.len() >= MAX_REQUEST => {
            Parsed::Reject(error(431, "request head too large"))
        }
        Ok(httparse::Status::Partial) => Parsed::Partial,
        Err(httparse::Error::TooManyHeaders) => Parsed::Reject(error(431, "too many headers")),
        Err(e) => Parsed::Reject(error(400, &format!("bad request: {e}"))),
        Ok(httparse::Status::Complete(n)) if n > MAX_REQUEST => {
            Parsed::Reject(error(431, "request head too large"))
        }
        Ok(httparse::Status::Complete(_)) => {
            let (Some(method), Some(target)) = (req.method, req.path) else {
                return Parsed::Reject(error(400, "bad request"));
            };
            let auth = req
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("authorization"))
                .map(|h| h.value);
            route(method, target, token, auth)
        }
    }
}

fn route(method: &str, target: &str, token: Option<&str>, auth: Option<&[u8]>) -> Parsed {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let (allowed, request) = match segments.as_slice() {
        ["healthz"] => ("GET", Ok(Request::Healthz)),
        ["metrics"] => ("GET", Ok(Request::Metrics)),
        ["clients"] => ("GET", clients_query(query)),
        ["clients", id] => ("GET", decode_id(id).map(Request::Client)),
        ["clients", id, "kick"] => ("POST", decode_id(id).map(Request::Kick)),
        [""] => ("GET", Ok(Request::Page)),
        ["events", "stream"] => ("GET", Ok(Request::Stream)),
        _ => return Parsed::Reject(error(404, "no such path")),
    };
    // HEAD is GET without the body (and, for the stream, without staying
    // open).
    let head = method == "HEAD" && allowed == "GET";
    if method != allowed && !head {
        return Parsed::Reject(response(
            405,
            TEXT,
            &format!("Allow: {allowed}\r\n"),
            "method not allowed\n",
        ));
    }
    // The page is static (its data comes from the stream and `/clients`).
    if request != Ok(Request::Healthz) && request != Ok(Request::Page) {
        if let Some(token) = token {
            if !authorized(token, auth) {
                return Parsed::Reject(response(
                    401,
                    TEXT,
                    "WWW-Authenticate: Bearer\r\n",
                    "unauthorized\n",
                ));
            }
        }
    }
    match request {
        Ok(r) if head => Parsed::Head(r),
        Ok(r) => Parsed::Request(r),
        Err(why) => Parsed::Reject(error(400, &why)),
    }
}

/// A response cut after its head, for a `HEAD` request: the status line
/// and the headers (its `Content-Length` says what a GET would get).
pub(crate) fn head_only(mut response: Vec<u8>) -> Vec<u8> {
    if let Some(end) = response.windows(4).position(|w| w == b"\r\n\r\n") {
        response.truncate(end + 4);
    }
    response
}

/// Whether the `Authorization` header carries `Bearer <token>`, compared
/// in time that depends on the lengths only, not on where they differ.
fn authorized(token: &str, auth: Option<&[u8]>) -> bool {
    let Some(auth) = auth else {
        return false;
    };
    let Some(given) = auth.strip_prefix(b"Bearer ") else {
        return false;
    };
    constant_time_eq(given, token.as_bytes())
}

/// `a == b`, looking at every byte whatever the first difference.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    // Keeps the compiler from cutting the loop short on the first difference.
    std::hint::black_box(diff) == 0
}

fn clients_query(query: &str) -> Result<Request, String> {
    let mut after = None;
    let mut limit = DEFAULT_PAGE;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "after" => after = Some(percent_decode(value)?),
            "limit" => {
                limit = value
                    .parse()
                    .ok()
                    .filter(|n| (1..=MAX_PAGE).contains(n))
                    .ok_or_else(|| format!("limit must be 1 to {MAX_PAGE}"))?;
            }
            _ => return Err(format!("unknown parameter {key:?}")),
        }
    }
    Ok(Request::Clients { after, limit })
}

fn decode_id(segment: &str) -> Result<String, String> {
    let id = percent_decode(segment)?;
    if id.is_empty() {
        return Err("empty client id".to_owned());
    }
    Ok(id)
}

/// Decodes `%XX` escapes (and `+` as itself, as in a path).
fn percent_decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or("bad percent escape")?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "not UTF-8 once decoded".to_owned())
}

/// Answers `request` from `view`.
pub(crate) fn respond(request: &Request, view: &mut dyn AdminView) -> Vec<u8> {
    match request {
        Request::Healthz => ok(TEXT, "ok\n"),
        Request::Page => ok("text/html; charset=utf-8", super::status::PAGE),
        // The driver keeps the connection open and feeds it.
        Request::Stream => super::status::stream_head(),
        Request::Metrics => ok(
            "text/plain; version=0.0.4; charset=utf-8",
            &metrics(&view.stats()),
        ),
        Request::Clients { after, limit } => {
            let page = view.page(after.as_deref(), *limit);
            let next = (page.len() == *limit)
                .then(|| page.last().map(|c| c.id.clone()))
                .flatten();
            let body = serde_json::json!({
                "clients": page.iter().map(client_json).collect::<Vec<_>>(),
                "next": next,
            });
            ok("application/json", &format!("{body}\n"))
        }
        Request::Client(id) => match view.client(id) {
            Some(c) => ok("application/json", &format!("{}\n", client_json(&c))),
            None => error(404, "client not online"),
        },
        Request::Kick(id) => match view.kick(id) {
            Some(c) => {
                let body = serde_json::json!({ "kicked": client_json(&c) });
                ok("application/json", &format!("{body}\n"))
            }
            None => error(404, "client not online"),
        },
    }
}

/// The response to a connection that was too slow to send its request.
pub(crate) fn timed_out() -> Vec<u8> {
    error(408, "request timeout")
}

/// The response to a connection beyond the admin connection limit.
pub(crate) fn busy() -> Vec<u8> {
    error(503, "too many admin connections")
}

fn client_json(c: &OnlineClient) -> serde_json::Value {
    serde_json::json!({
        "id": c.id,
        "conn": c.conn,
        "peer": c.peer.to_string(),
        "since": rfc3339(c.since),
    })
}

/// The Prometheus text exposition of `stats`.
pub(crate) fn metrics(stats: &Stats) -> String {
    let mut m = String::with_capacity(4096);
    let mut metric = |name: &str, kind: &str, help: &str, value: &dyn fmt::Display| {
        let _ = write!(
            m,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
        );
    };
    metric(
        "vigil_connections",
        "gauge",
        "Heartbeat connections open now.",
        &stats.connections,
    );
    metric(
        "vigil_online_clients",
        "gauge",
        "Client ids online now.",
        &stats.clients,
    );
    metric(
        "vigil_max_connections",
        "gauge",
        "The most heartbeat connections held at once.",
        &stats.max_conns,
    );
    metric(
        "vigil_accepted_total",
        "counter",
        "Connections accepted since start, refused ones included.",
        &stats.accepted,
    );
    metric(
        "vigil_heartbeats_total",
        "counter",
        "Heartbeats received.",
        &stats.heartbeats,
    );
    metric(
        "vigil_server_pings_total",
        "counter",
        "Pings the server sent to silent WebSocket connections.",
        &stats.server_pings,
    );
    metric(
        "vigil_frames_total",
        "counter",
        "Frames of any kind received.",
        &stats.frames,
    );
    metric(
        "vigil_received_bytes_total",
        "counter",
        "Bytes read from heartbeat connections.",
        &stats.bytes_in,
    );
    metric(
        "vigil_sent_bytes_total",
        "counter",
        "Bytes written to heartbeat connections.",
        &stats.bytes_out,
    );
    metric(
        "vigil_wheel_entries",
        "gauge",
        "Deadline entries in the timing wheel.",
        &stats.wheel_entries,
    );
    if let Some(e) = &stats.events {
        metric(
            "vigil_events_queued_total",
            "counter",
            "Event lines handed to the events file's queue.",
            &e.queued,
        );
        metric(
            "vigil_events_dropped_total",
            "counter",
            "Event lines dropped because the queue was full (gap records count them).",
            &e.dropped,
        );
        metric(
            "vigil_events_written_total",
            "counter",
            "Event lines written whole to the events file.",
            &e.written,
        );
        metric(
            "vigil_events_write_errors_total",
            "counter",
            "Failed writes to the events file (retried with backoff).",
            &e.write_errors,
        );
    }
    if let Some(up) = stats.cluster_up {
        metric(
            "vigil_cluster_redis_up",
            "gauge",
            "1 while the cluster's command link to Redis is up.",
            &u8::from(up),
        );
    }
    if let Some(rss) = stats.rss_bytes {
        metric(
            "vigil_resident_memory_bytes",
            "gauge",
            "Resident set size of the server process.",
            &rss,
        );
    }
    m.push_str(
        "# HELP vigil_offline_total Connections closed since start, by reason.\n\
         # TYPE vigil_offline_total counter\n",
    );
    for r in CloseReason::ALL {
        let _ = writeln!(
            m,
            "vigil_offline_total{{reason=\"{r}\"}} {}",
            stats.closed(r)
        );
    }
    m.push_str(
        "# HELP vigil_loop_turn_seconds Time the event loop spent per turn, from poll returning to the next poll.\n\
         # TYPE vigil_loop_turn_seconds histogram\n",
    );
    for (bound, count) in stats.turns.cumulative() {
        let le = bound.map_or_else(|| "+Inf".to_owned(), seconds);
        let _ = writeln!(m, "vigil_loop_turn_seconds_bucket{{le=\"{le}\"}} {count}");
    }
    let _ = writeln!(
        m,
        "vigil_loop_turn_seconds_sum {}\nvigil_loop_turn_seconds_count {}",
        seconds(stats.turns.sum_us()),
        stats.turns.count()
    );
    m
}

/// Microseconds as seconds, exactly (`2500` is `0.0025`).
fn seconds(us: u64) -> String {
    let (whole, frac) = (us / 1_000_000, us % 1_000_000);
    if frac == 0 {
        return whole.to_string();
    }
    let frac = format!("{frac:06}");
    format!("{whole}.{}", frac.trim_end_matches('0'))
}

/// Wall-clock times as the events show them (RFC 3339, UTC, ms).
pub(crate) use crate::events::format_time as rfc3339;

const TEXT: &str = "text/plain; charset=utf-8";

/// A whole response: status line, headers (`extra` is more of them, each
/// ending in CRLF), body.
fn response(status: u16, content_type: &str, extra: &str, body: &str) -> Vec<u8> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "",
    };
    format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n{extra}\r\n{body}",
        body.len()
    )
    .into_bytes()
}

pub(crate) fn ok(content_type: &str, body: &str) -> Vec<u8> {
    response(200, content_type, "", body)
}

pub(crate) fn error(status: u16, message: &str) -> Vec<u8> {
    response(status, TEXT, "", &format!("{message}\n"))
}

#[cfg(test)]
mod tests;
