//! The admin endpoint's HTTP against a fake server: one `check` helper that
//! sends request bytes and compares the status line and body.

use std::collections::BTreeMap;

use std::time::{Duration, UNIX_EPOCH};

use super::*;

/// A server with a few online clients, kicks recorded.
#[derive(Default)]
struct Fake {
    online: BTreeMap<String, OnlineClient>,
    kicked: Vec<String>,
    stats: Stats,
}

impl Fake {
    fn with(ids: &[&str]) -> Fake {
        let mut f = Fake::default();
        for (i, id) in ids.iter().enumerate() {
            f.online.insert(
                (*id).to_owned(),
                OnlineClient {
                    id: (*id).to_owned(),
                    conn: i as u64 + 1,
                    peer: format!("127.0.0.1:{}", 40_000 + i)
                        .parse()
                        .expect("literal"),
                    since: UNIX_EPOCH + Duration::from_millis(1_764_598_035_123 + i as u64),
                },
            );
        }
        f
    }
}

impl AdminView for Fake {
    fn stats(&self) -> Stats {
        self.stats.clone()
    }
    fn client(&self, id: &str) -> Option<OnlineClient> {
        self.online.get(id).cloned()
    }
    fn page(&self, after: Option<&str>, limit: usize) -> Vec<OnlineClient> {
        self.online
            .values()
            .filter(|c| after.is_none_or(|a| c.id.as_str() > a))
            .take(limit)
            .cloned()
            .collect()
    }
    fn kick(&mut self, id: &str) -> Option<OnlineClient> {
        let c = self.online.remove(id)?;
        self.kicked.push(id.to_owned());
        Some(c)
    }
}

/// Sends `request` (with `token` configured) to `view`; the response's
/// status line, and its body, must be `expected` ("STATUS body"), or
/// `partial` when more bytes are needed.
#[track_caller]
fn check(view: &mut Fake, token: Option<&str>, request: &[u8], expected: &str) {
    let got = match parse(request, token) {
        Parsed::Partial => "partial".to_owned(),
        Parsed::Reject(r) => summary(&r),
        Parsed::Request(req) => summary(&respond(&req, view)),
        Parsed::Head(req) => summary(&head_only(respond(&req, view))),
    };
    assert_eq!(got, expected, "{}", String::from_utf8_lossy(request));
}

/// "STATUS body", checking the head is well formed on the way.
#[track_caller]
fn summary(response: &[u8]) -> String {
    let text = std::str::from_utf8(response).expect("UTF-8");
    let (head, body) = text.split_once("\r\n\r\n").expect("a head");
    let mut lines = head.split("\r\n");
    let status = lines.next().expect("status line");
    assert!(status.starts_with("HTTP/1.1 "), "{status}");
    let length: usize = lines
        .clone()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .expect("Content-Length")
        .parse()
        .expect("a length");
    assert_eq!(length, body.len(), "Content-Length is the body's");
    assert!(lines.any(|l| l == "Connection: close"));
    format!("{} {}", &status[9..12], body.trim_end())
}

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").into_bytes()
}

#[test]
fn routes() {
    let mut v = Fake::with(&["b", "a", "c/d", "e%f"]);
    check(&mut v, None, &get("/healthz"), "200 ok");
    check(
        &mut v,
        None,
        &get("/clients/a"),
        r#"200 {"id":"a","conn":2,"peer":"127.0.0.1:40001","since":"2025-12-01T14:07:15.124Z"}"#,
    );
    // Path segments are percent-decoded: ids may hold '/' and '%'.
    check(
        &mut v,
        None,
        &get("/clients/c%2Fd"),
        r#"200 {"id":"c/d","conn":3,"peer":"127.0.0.1:40002","since":"2025-12-01T14:07:15.125Z"}"#,
    );
    check(
        &mut v,
        None,
        &get("/clients/e%25f"),
        r#"200 {"id":"e%f","conn":4,"peer":"127.0.0.1:40003","since":"2025-12-01T14:07:15.126Z"}"#,
    );
    check(&mut v, None, &get("/clients/zz"), "404 client not online");
    check(&mut v, None, &get("/clients/"), "400 empty client id");
    check(&mut v, None, &get("/clients/%zz"), "400 bad percent escape");
    check(
        &mut v,
        None,
        &get("/clients/%ff"),
        "400 not UTF-8 once decoded",
    );
    check(&mut v, None, &get("/nothing"), "404 no such path");
    check(&mut v, None, &get("//"), "404 no such path");
    check(&mut v, None, &get("/events"), "404 no such path");
    check(&mut v, None, &get("/events/stream/x"), "404 no such path");
    check(&mut v, None, &get("/metrics/x"), "404 no such path");
    check(
        &mut v,
        None,
        &get("/clients/a/kick"),
        "405 method not allowed",
    );
    check(
        &mut v,
        None,
        b"POST /metrics HTTP/1.1\r\n\r\n",
        "405 method not allowed",
    );
    // HEAD is GET without the body.
    let head = head_only(respond(
        &match parse(b"HEAD /healthz HTTP/1.1\r\n\r\n", None) {
            Parsed::Head(r) => r,
            other => panic!("{other:?}"),
        },
        &mut v,
    ));
    let head = String::from_utf8(head).unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(
        head.ends_with("\r\n\r\n") && !head.contains("ok\n"),
        "{head}"
    );
    check(
        &mut v,
        None,
        b"HEAD /clients/x/kick HTTP/1.1\r\n\r\n",
        "405 method not allowed",
    );
    assert!(v.kicked.is_empty());
}

#[test]
fn a_405_says_which_method_is_allowed() {
    let Parsed::Reject(r) = parse(b"GET /clients/a/kick HTTP/1.1\r\n\r\n", None) else {
        panic!("rejected");
    };
    assert!(String::from_utf8_lossy(&r).contains("\r\nAllow: POST\r\n"));
}

#[test]
fn kick() {
    let mut v = Fake::with(&["a", "b"]);
    let kick = b"POST /clients/b/kick HTTP/1.1\r\nContent-Length: 0\r\n\r\n";
    check(
        &mut v,
        None,
        kick,
        r#"200 {"kicked":{"id":"b","conn":2,"peer":"127.0.0.1:40001","since":"2025-12-01T14:07:15.124Z"}}"#,
    );
    assert_eq!(v.kicked, ["b"]);
    check(&mut v, None, kick, "404 client not online");
    assert_eq!(v.kicked, ["b"]);
}

#[test]
fn clients_are_paged_in_id_order() {
    let mut v = Fake::with(&["d", "b", "e", "a", "c"]);
    let ids = |v: &mut Fake, path: &str| {
        let Parsed::Request(req) = parse(&get(path), None) else {
            panic!("{path} is a request");
        };
        let r = respond(&req, v);
        let text = String::from_utf8(r).expect("UTF-8");
        let body = text.split_once("\r\n\r\n").expect("head").1;
        let json: serde_json::Value = serde_json::from_str(body).expect("JSON");
        let ids: Vec<String> = json["clients"]
            .as_array()
            .expect("a list")
            .iter()
            .map(|c| c["id"].as_str().expect("id").to_owned())
            .collect();
        (ids.join(","), json["next"].to_string())
    };
    assert_eq!(ids(&mut v, "/clients"), ("a,b,c,d,e".into(), "null".into()));
    assert_eq!(
        ids(&mut v, "/clients?limit=2"),
        ("a,b".into(), "\"b\"".into())
    );
    assert_eq!(
        ids(&mut v, "/clients?after=b&limit=2"),
        ("c,d".into(), "\"d\"".into())
    );
    // A full last page says `next`; the page after it is empty and ends.
    assert_eq!(
        ids(&mut v, "/clients?limit=1&after=d"),
        ("e".into(), "\"e\"".into())
    );
    assert_eq!(ids(&mut v, "/clients?after=e"), ("".into(), "null".into()));
    assert_eq!(
        ids(&mut v, "/clients?after=b&limit=10"),
        ("c,d,e".into(), "null".into())
    );
    for bad in ["limit=0", "limit=10001", "limit=x", "limit=-1", "limit="] {
        check(
            &mut v,
            None,
            &get(&format!("/clients?{bad}")),
            "400 limit must be 1 to 10000",
        );
    }
    check(
        &mut v,
        None,
        &get("/clients?page=2"),
        "400 unknown parameter \"page\"",
    );
    check(
        &mut v,
        None,
        &get("/clients?limit=10000&"),
        r#"200 {"clients":[{"id":"a","conn":4,"peer":"127.0.0.1:40003","since":"2025-12-01T14:07:15.126Z"},{"id":"b","conn":2,"peer":"127.0.0.1:40001","since":"2025-12-01T14:07:15.124Z"},{"id":"c","conn":5,"peer":"127.0.0.1:40004","since":"2025-12-01T14:07:15.127Z"},{"id":"d","conn":1,"peer":"127.0.0.1:40000","since":"2025-12-01T14:07:15.123Z"},{"id":"e","conn":3,"peer":"127.0.0.1:40002","since":"2025-12-01T14:07:15.125Z"}],"next":null}"#,
    );
}

#[test]
fn bad_requests() {
    let mut v = Fake::with(&["a"]);
    // Incomplete heads wait for more, up to the limit.
    check(&mut v, None, b"", "partial");
    check(&mut v, None, b"GET /healthz HTTP/1.1\r\n", "partial");
    check(
        &mut v,
        None,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r",
        "partial",
    );
    // Not HTTP.
    check(
        &mut v,
        None,
        b"\x00\x01\x02\r\n\r\n",
        "400 bad request: invalid token",
    );
    check(
        &mut v,
        None,
        b"PING 1\n\n",
        "400 bad request: invalid token",
    );
    check(
        &mut v,
        None,
        b"GET /healthz HTTP/9.9\r\n\r\n",
        "400 bad request: invalid HTTP version",
    );
    check(
        &mut v,
        None,
        b"GET /healthz HTTP/1.1\r\nbad header\r\n\r\n",
        "400 bad request: invalid header name",
    );
    // Too large: a head that never ends, or too many headers.
    let mut long = b"GET /healthz HTTP/1.1\r\nX: ".to_vec();
    long.resize(MAX_REQUEST - 1, b'a');
    check(&mut v, None, &long, "partial");
    long.push(b'a');
    check(&mut v, None, &long, "431 request head too large");
    let mut many = b"GET /healthz HTTP/1.1\r\n".to_vec();
    for i in 0..=MAX_HEADERS {
        many.extend_from_slice(format!("X-{i}: y\r\n").as_bytes());
    }
    many.extend_from_slice(b"\r\n");
    check(&mut v, None, &many, "431 too many headers");
    // A complete head over the limit, arriving in one read.
    let mut big = b"GET /healthz HTTP/1.1\r\nX: ".to_vec();
    big.resize(MAX_REQUEST + 10, b'a');
    big.extend_from_slice(b"\r\n\r\n");
    check(&mut v, None, &big, "431 request head too large");
}

#[test]
fn the_token_is_required_but_for_healthz() {
    let mut v = Fake::with(&["a"]);
    let token = Some("s3cret");
    let with = |auth: &str, path: &str| {
        format!("GET {path} HTTP/1.1\r\nAuthorization: {auth}\r\n\r\n").into_bytes()
    };
    check(&mut v, token, &get("/metrics"), "401 unauthorized");
    check(&mut v, token, &get("/clients"), "401 unauthorized");
    check(&mut v, token, &get("/clients/a"), "401 unauthorized");
    check(
        &mut v,
        token,
        b"POST /clients/a/kick HTTP/1.1\r\n\r\n",
        "401 unauthorized",
    );
    assert!(v.kicked.is_empty());
    check(&mut v, token, &get("/healthz"), "200 ok");
    for wrong in [
        "Bearer s3cre",
        "Bearer s3cret2",
        "Bearer S3cret",
        "Basic s3cret",
        "s3cret",
        "Bearer  s3cret",
        "bearer s3cret",
        "",
    ] {
        check(
            &mut v,
            token,
            &with(wrong, "/clients/a"),
            "401 unauthorized",
        );
    }
    check(
        &mut v,
        token,
        &with("Bearer s3cret", "/clients/zz"),
        "404 client not online",
    );
    // The header name is case-insensitive.
    let lower = b"GET /clients/zz HTTP/1.1\r\nauthorization: Bearer s3cret\r\n\r\n";
    check(&mut v, token, lower, "404 client not online");
    // Unknown paths are 404 before the token is looked at: nothing to hide.
    check(&mut v, token, &get("/nothing"), "404 no such path");
    let Parsed::Reject(r) = parse(&get("/metrics"), token) else {
        panic!("rejected");
    };
    assert!(String::from_utf8_lossy(&r).contains("\r\nWWW-Authenticate: Bearer\r\n"));
}

#[test]
fn constant_time_compare() {
    assert!(constant_time_eq(b"", b""));
    assert!(constant_time_eq(b"abc", b"abc"));
    assert!(!constant_time_eq(b"abc", b"abd"));
    assert!(!constant_time_eq(b"abc", b"ab"));
    assert!(!constant_time_eq(b"xbc", b"abc"));
}

#[test]
fn metrics_exposition() {
    let mut stats = Stats::default();
    (stats.connections, stats.clients, stats.accepted) = (3, 2, 7);
    (stats.heartbeats, stats.frames, stats.server_pings) = (11, 13, 5);
    (stats.bytes_in, stats.bytes_out) = (100, 200);
    (stats.wheel_entries, stats.max_conns) = (3, 1000);
    stats.rss_bytes = Some(4096);
    stats.count_close(CloseReason::Kicked);
    stats.count_close(CloseReason::Timeout);
    stats.count_close(CloseReason::Timeout);
    stats.turns.record(40);
    stats.turns.record(2_500);
    stats.turns.record(2_000_000);
    let m = metrics(&stats);
    for line in [
        "vigil_connections 3",
        "vigil_online_clients 2",
        "vigil_max_connections 1000",
        "vigil_accepted_total 7",
        "vigil_heartbeats_total 11",
        "vigil_server_pings_total 5",
        "vigil_frames_total 13",
        "vigil_received_bytes_total 100",
        "vigil_sent_bytes_total 200",
        "vigil_wheel_entries 3",
        "vigil_resident_memory_bytes 4096",
        "vigil_offline_total{reason=\"timeout\"} 2",
        "vigil_offline_total{reason=\"kicked\"} 1",
        "vigil_offline_total{reason=\"replaced\"} 0",
        "vigil_loop_turn_seconds_bucket{le=\"0.00005\"} 1",
        "vigil_loop_turn_seconds_bucket{le=\"0.001\"} 1",
        "vigil_loop_turn_seconds_bucket{le=\"0.0025\"} 2",
        "vigil_loop_turn_seconds_bucket{le=\"1\"} 2",
        "vigil_loop_turn_seconds_bucket{le=\"+Inf\"} 3",
        "vigil_loop_turn_seconds_sum 2.00254",
        "vigil_loop_turn_seconds_count 3",
    ] {
        assert!(m.lines().any(|l| l == line), "no {line:?} in\n{m}");
    }
    // Every family has its HELP and TYPE once, before its samples.
    let types = m.lines().filter(|l| l.starts_with("# TYPE ")).count();
    let helps = m.lines().filter(|l| l.starts_with("# HELP ")).count();
    assert_eq!((types, helps), (13, 13), "{m}");
    assert!(m.ends_with('\n'));
    // Without an RSS reading the gauge is left out rather than invented.
    stats.rss_bytes = None;
    assert!(!metrics(&stats).contains("resident"));
}

#[test]
fn seconds_are_exact() {
    assert_eq!(seconds(0), "0");
    assert_eq!(seconds(50), "0.00005");
    assert_eq!(seconds(2_500), "0.0025");
    assert_eq!(seconds(1_000_000), "1");
    assert_eq!(seconds(1_500_001), "1.500001");
}

#[test]
fn wall_clock_times_are_rfc3339() {
    let at = |ms: u64| rfc3339(UNIX_EPOCH + Duration::from_millis(ms));
    assert_eq!(at(0), "1970-01-01T00:00:00.000Z");
    assert_eq!(at(951_782_400_000), "2000-02-29T00:00:00.000Z");
    assert_eq!(at(951_868_799_999), "2000-02-29T23:59:59.999Z");
    assert_eq!(at(951_868_800_000), "2000-03-01T00:00:00.000Z");
    assert_eq!(at(1_709_251_199_000), "2024-02-29T23:59:59.000Z");
    assert_eq!(at(4_107_542_400_000), "2100-03-01T00:00:00.000Z");
    assert_eq!(at(1_767_225_599_500), "2025-12-31T23:59:59.500Z");
    // Before the epoch (a clock set far back) reads as the epoch.
    assert_eq!(
        rfc3339(UNIX_EPOCH - Duration::from_secs(5)),
        "1970-01-01T00:00:00.000Z"
    );
}

#[test]
fn the_status_page_and_the_event_stream() {
    let mut v = Fake::with(&["a"]);
    let Parsed::Request(page) = parse(&get("/"), None) else {
        panic!("GET / is a request");
    };
    assert_eq!(page, Request::Page);
    let answer = respond(&page, &mut v);
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n"));
    assert_eq!(
        summary(&answer),
        format!("200 {}", crate::server::status::PAGE.trim_end())
    );
    let Parsed::Request(stream) = parse(&get("/events/stream"), None) else {
        panic!("GET /events/stream is a request");
    };
    assert_eq!(stream, Request::Stream);
    let head = respond(&stream, &mut v);
    let text = String::from_utf8_lossy(&head);
    assert!(text.starts_with("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"));
    assert!(!text.contains("Content-Length"), "a stream has no length");
    for path in ["/", "/events/stream"] {
        for method in ["POST", "PUT", "DELETE"] {
            let req = format!("{method} {path} HTTP/1.1\r\n\r\n");
            check(&mut v, None, req.as_bytes(), "405 method not allowed");
        }
    }
    // The page holds no data; the stream does, and wants the token.
    let token = Some("s3cret");
    assert_eq!(parse(&get("/"), token), Parsed::Request(Request::Page));
    check(&mut v, token, &get("/events/stream"), "401 unauthorized");
    let authed = b"GET /events/stream HTTP/1.1\r\nAuthorization: Bearer s3cret\r\n\r\n";
    assert_eq!(parse(authed, token), Parsed::Request(Request::Stream));
}
