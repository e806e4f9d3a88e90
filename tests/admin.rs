//! End-to-end tests of the admin endpoint (`vigil serve --admin`): a real
//! server process, real sockets on 127.0.0.1, `promtool` for the metrics,
//! bounded waits; and the library's `Handle::stats` / `Handle::clients`
//! from another thread.

mod util;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use util::{eventually, Peer, Serve, PATIENCE};
use vigil::server::AdminConfig;
use vigil::{CloseReason, Server};

/// A `vigil serve --admin 127.0.0.1:0 ARGS...`, and its admin address.
#[track_caller]
fn serve(args: &[&str]) -> (Serve, SocketAddr) {
    Serve::start_admin(args)
}

/// Sends `request` as is and reads the whole response (the server closes).
#[track_caller]
fn raw(admin: SocketAddr, request: &[u8]) -> String {
    let mut s = TcpStream::connect_timeout(&admin, PATIENCE).expect("connect");
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    s.write_all(request).expect("send");
    let mut out = Vec::new();
    s.read_to_end(&mut out).expect("a response, then EOF");
    String::from_utf8(out).expect("UTF-8")
}

/// `METHOD path` with optional extra headers; (status, body).
#[track_caller]
fn http(admin: SocketAddr, method: &str, path: &str, headers: &str) -> (u16, String) {
    let r = raw(
        admin,
        format!("{method} {path} HTTP/1.1\r\nHost: test\r\n{headers}\r\n").as_bytes(),
    );
    split(&r)
}

#[track_caller]
fn split(response: &str) -> (u16, String) {
    let (head, body) = response.split_once("\r\n\r\n").expect("a head");
    let status = head
        .strip_prefix("HTTP/1.1 ")
        .and_then(|s| s.get(..3))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("a status line: {head:?}"));
    (status, body.to_owned())
}

#[track_caller]
fn get(admin: SocketAddr, path: &str) -> (u16, String) {
    http(admin, "GET", path, "")
}

#[track_caller]
fn json(admin: SocketAddr, path: &str) -> serde_json::Value {
    let (status, body) = get(admin, path);
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
}

/// The value of the sample named exactly `name` (labels included).
#[track_caller]
fn sample(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{metrics}"))
}

/// A peer that said HELLO `id`; its local address is its peer address on
/// the server.
#[track_caller]
fn hello(server: &Serve, id: &str) -> Peer {
    let mut p = server.connect();
    assert!(p.ask(&format!("HELLO {id}\n")).starts_with("WELCOME "));
    p
}

/// Prometheus's own checker on `metrics` (promtool, from Debian's
/// prometheus package, which scripts/install-deps.sh installs).
#[track_caller]
fn promtool_check(metrics: &str) {
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (scripts/install-deps.sh installs it)");
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(metrics.as_bytes())
        .unwrap();
    let out = promtool.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool: {}{}\n{metrics}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn metrics_pass_promtool_and_count_the_connections_held() {
    let (server, admin) = serve(&[]);
    let mut anonymous: Vec<Peer> = (0..4).map(|_| server.connect()).collect();
    let mut named: Vec<Peer> = (0..3).map(|i| hello(&server, &format!("m{i}"))).collect();
    for p in anonymous.iter_mut().chain(named.iter_mut()) {
        assert_eq!(p.ask("PING 1\n"), "PONG 1");
    }
    let (status, metrics) = get(admin, "/metrics");
    assert_eq!(status, 200);
    // The admin connection asking is not a heartbeat connection.
    assert_eq!(sample(&metrics, "vigil_connections"), 7.0, "{metrics}");
    assert_eq!(sample(&metrics, "vigil_online_clients"), 3.0);
    assert_eq!(sample(&metrics, "vigil_accepted_total"), 7.0);
    assert_eq!(sample(&metrics, "vigil_heartbeats_total"), 7.0);
    assert_eq!(sample(&metrics, "vigil_frames_total"), 10.0);
    assert_eq!(sample(&metrics, "vigil_wheel_entries"), 7.0);
    // "PING 1\n" x7 and "HELLO mN\n" x3 in; "PONG 1\n" x7 and the three
    // WELCOMEs out.
    assert_eq!(
        sample(&metrics, "vigil_received_bytes_total"),
        7.0 * 7.0 + 3.0 * 9.0
    );
    let welcome = "WELCOME m0 interval=30000 timeout=45000\n".len() as f64;
    assert_eq!(
        sample(&metrics, "vigil_sent_bytes_total"),
        7.0 * 7.0 + 3.0 * welcome
    );
    assert!(sample(&metrics, "vigil_loop_turn_seconds_count") > 0.0);
    assert!(sample(&metrics, "vigil_resident_memory_bytes") > 1e6);

    promtool_check(&metrics);

    // Closing connections shows: two fewer, by reason.
    drop(anonymous.pop());
    named.pop().unwrap().send(b"QUIT\n");
    eventually("two connections closed", || {
        sample(&get(admin, "/metrics").1, "vigil_connections") == 5.0
    });
    let metrics = get(admin, "/metrics").1;
    assert_eq!(sample(&metrics, "vigil_online_clients"), 2.0);
    assert_eq!(
        sample(&metrics, "vigil_offline_total{reason=\"closed\"}"),
        2.0
    );
}

#[test]
fn clients_after_hello_and_after_takeover() {
    let (server, admin) = serve(&[]);
    assert_eq!(get(admin, "/clients/dev").0, 404);
    let mut first = hello(&server, "dev");
    let c = json(admin, "/clients/dev");
    assert_eq!(c["id"], "dev");
    assert_eq!(c["conn"], 1);
    assert_eq!(c["peer"], first.stream.local_addr().unwrap().to_string());
    let since = c["since"].as_str().expect("since").to_owned();
    assert!(since.ends_with('Z') && since.len() == 24, "{since}");

    // A second connection takes the id over: the first is closed, and the
    // id now names the second, since its own HELLO.
    thread::sleep(Duration::from_millis(20));
    let second = hello(&server, "dev");
    first.expect_bye("replaced");
    let c = json(admin, "/clients/dev");
    assert_eq!(c["conn"], 2);
    assert_eq!(c["peer"], second.stream.local_addr().unwrap().to_string());
    assert!(c["since"].as_str().unwrap() > since.as_str(), "{c}");

    // The list, paged in id order.
    let _others: Vec<Peer> = ["b", "a", "c%/d"]
        .iter()
        .map(|id| hello(&server, id))
        .collect();
    let page = json(admin, "/clients?limit=2");
    let ids = |page: &serde_json::Value| -> Vec<String> {
        page["clients"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(ids(&page), ["a", "b"]);
    assert_eq!(page["next"], "b");
    let page = json(admin, "/clients?after=b&limit=2");
    assert_eq!(ids(&page), ["c%/d", "dev"]);
    let page = json(admin, "/clients?after=dev&limit=2");
    assert_eq!(ids(&page), Vec::<String>::new());
    assert_eq!(page["next"], serde_json::Value::Null);
    // An id with '%' and '/' is reached percent-encoded.
    assert_eq!(json(admin, "/clients/c%25%2Fd")["id"], "c%/d");

    drop(second);
    eventually("dev offline", || get(admin, "/clients/dev").0 == 404);
}

#[test]
fn kick_closes_with_bye_kicked() {
    let (server, admin) = serve(&[]);
    let mut victim = hello(&server, "victim");
    let mut bystander = hello(&server, "bystander");
    let (status, body) = http(admin, "POST", "/clients/victim/kick", "");
    assert_eq!(status, 200, "{body}");
    let kicked: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(kicked["kicked"]["id"], "victim");
    victim.expect_bye("kicked");
    assert_eq!(get(admin, "/clients/victim").0, 404);
    assert_eq!(http(admin, "POST", "/clients/victim/kick", "").0, 404);
    assert_eq!(bystander.ask("PING 2\n"), "PONG 2");
    let metrics = get(admin, "/metrics").1;
    assert_eq!(
        sample(&metrics, "vigil_offline_total{reason=\"kicked\"}"),
        1.0
    );
    assert_eq!(sample(&metrics, "vigil_online_clients"), 1.0);
    server.wait_log("admin: kicking client victim");
}

#[test]
fn bad_requests_are_answered_and_disturb_no_bystander() {
    let (server, admin) = serve(&[]);
    let mut bystander = hello(&server, "bystander");
    let started = Instant::now();

    // A slow client holds a slot only until its deadline (5 s): 408.
    let mut slow = TcpStream::connect(admin).unwrap();
    slow.set_read_timeout(Some(PATIENCE)).unwrap();
    slow.write_all(b"GET /metrics HTTP/1.1\r\nHost:").unwrap();

    assert_eq!(
        split(&raw(admin, b"\x16\x03\x01\x00\xa5garbage\r\n\r\n")).0,
        400
    );
    assert_eq!(split(&raw(admin, b"PING 1\n\n")).0, 400);
    let mut big = b"GET /metrics HTTP/1.1\r\nX-Big: ".to_vec();
    big.extend(std::iter::repeat_n(b'a', 20_000));
    big.extend_from_slice(b"\r\n\r\n");
    assert_eq!(split(&raw(admin, &big)).0, 431);
    let mut many = b"GET /metrics HTTP/1.1\r\n".to_vec();
    for i in 0..100 {
        many.extend_from_slice(format!("X-{i}: y\r\n").as_bytes());
    }
    many.extend_from_slice(b"\r\n");
    assert_eq!(split(&raw(admin, &many)).0, 431);
    // A heartbeat client dialling the admin port by mistake.
    assert_eq!(split(&raw(admin, b"HELLO x\r\nPING\r\n\r\n")).0, 400);
    // Connects that send nothing and go.
    for _ in 0..5 {
        drop(TcpStream::connect(admin).unwrap());
    }
    assert_eq!(bystander.ask("PING 1\n"), "PONG 1");

    // More admin connections than allowed at once: the extra one gets 503.
    let mut held: Vec<TcpStream> = (0..15)
        .map(|_| TcpStream::connect(admin).unwrap())
        .collect();
    // It connects after the 16 others, so it is accepted after them. It
    // sends nothing: the server closing on a request it did not read
    // would reset the connection, and the reset could overtake the 503.
    let (status, _) = split(&raw(admin, b""));
    assert_eq!(status, 503);
    // The bystander is served promptly while the slots are held.
    for i in 0..10 {
        let asked = Instant::now();
        assert_eq!(bystander.ask(&format!("PING {i}\n")), format!("PONG {i}"));
        assert!(
            asked.elapsed() < Duration::from_millis(100),
            "{:?}",
            asked.elapsed()
        );
        thread::sleep(Duration::from_millis(50));
    }

    let mut answer = String::new();
    slow.read_to_string(&mut answer).unwrap();
    assert_eq!(split(&answer).0, 408, "{answer}");
    let waited = started.elapsed();
    // The deadline counts from the accept's turn time, rounded down.
    assert!(waited >= Duration::from_millis(4_990), "{waited:?}");
    assert!(waited < Duration::from_secs(8), "{waited:?}");
    // The held ones timed out too, freeing their slots.
    for h in &mut held {
        h.set_read_timeout(Some(PATIENCE)).unwrap();
        let mut s = String::new();
        h.read_to_string(&mut s).unwrap();
        assert_eq!(split(&s).0, 408);
    }
    assert_eq!(get(admin, "/healthz"), (200, "ok\n".to_owned()));
    assert_eq!(bystander.ask("PING 9\n"), "PONG 9");
    let metrics = get(admin, "/metrics").1;
    assert_eq!(sample(&metrics, "vigil_connections"), 1.0);
    assert_eq!(sample(&metrics, "vigil_accepted_total"), 1.0);
}

#[test]
fn the_token_is_enforced() {
    let dir = std::env::temp_dir().join(format!("vigil-admin-token-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("token");
    std::fs::write(&file, "s3cret-token\n").unwrap();
    let (server, admin) = serve(&["--admin-token-file", file.to_str().unwrap()]);
    server.wait_log("bearer token required");
    let _c = hello(&server, "dev");
    for path in ["/metrics", "/clients", "/clients/dev"] {
        assert_eq!(get(admin, path).0, 401, "{path}");
        for wrong in [
            "Bearer s3cret-toke",
            "Bearer s3cret-token2",
            "Basic s3cret-token",
        ] {
            let h = format!("Authorization: {wrong}\r\n");
            assert_eq!(http(admin, "GET", path, &h).0, 401, "{path} {wrong}");
        }
        let h = "Authorization: Bearer s3cret-token\r\n";
        assert_eq!(http(admin, "GET", path, h).0, 200, "{path}");
    }
    assert_eq!(http(admin, "POST", "/clients/dev/kick", "").0, 401);
    assert_eq!(
        get(admin, "/clients/dev").0,
        401,
        "still online, still guarded"
    );
    assert_eq!(get(admin, "/healthz").0, 200, "health needs no token");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs `vigil serve ARGS` expecting it to exit at once; (code, stderr).
fn refused(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .arg("serve")
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_public_admin_address_needs_admin_public() {
    let (code, err) = refused(&["--admin", "0.0.0.0:0"]);
    // A configuration the server refuses: a usage error, as everywhere.
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("the admin address 0.0.0.0:0 is not loopback"),
        "{err}"
    );
    assert!(err.contains("--admin-public"), "{err}");
    // With it, the server starts.
    let server = Serve::start(&["--admin", "0.0.0.0:0", "--admin-public"]);
    server.wait_log("admin endpoint on http://0.0.0.0:");
    // Usage errors: the companions need --admin; a token file must exist
    // and hold a token.
    let (code, err) = refused(&["--admin-public"]);
    assert_eq!(code, Some(2), "{err}");
    let (code, err) = refused(&[
        "--admin",
        "127.0.0.1:0",
        "--admin-token-file",
        "/nonexistent/t",
    ]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("cannot read the admin token file"), "{err}");
    let (code, err) = refused(&["--admin", "127.0.0.1:0", "--admin-token-file", "/dev/null"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("is empty"), "{err}");
    let (code, err) = refused(&["--admin", "nonsense"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("--admin"), "{err}");
}

#[test]
fn handle_stats_and_clients_from_another_thread() {
    let server = Server::builder()
        .listen("127.0.0.1:0")
        .stats_interval(None)
        .build()
        .unwrap();
    let addr = server.local_addr();
    assert_eq!(server.admin_addr(), None, "off by default");
    let handle = server.handle();
    let running = thread::spawn(move || server.run());

    let asker = handle.clone();
    let stats = thread::spawn(move || asker.stats())
        .join()
        .unwrap()
        .unwrap();
    assert_eq!((stats.connections, stats.clients), (0, 0));

    let mut a = Peer::connect(addr);
    let before = SystemTime::now();
    assert!(a.ask("HELLO alpha\n").starts_with("WELCOME alpha"));
    let after = SystemTime::now();
    let mut b = Peer::connect(addr);
    assert_eq!(b.ask("PING 3\n"), "PONG 3");
    let asker = handle.clone();
    let (stats, clients) = thread::spawn(move || (asker.stats(), asker.clients()))
        .join()
        .unwrap();
    let stats = stats.unwrap();
    assert_eq!(
        (stats.connections, stats.clients, stats.accepted),
        (2, 1, 2)
    );
    assert_eq!(stats.heartbeats, 1);
    assert_eq!(
        stats.bytes_in,
        ("HELLO alpha\n".len() + "PING 3\n".len()) as u64
    );
    assert_eq!(stats.wheel_entries, 2);
    assert!(stats.rss_bytes.is_some());
    assert!(stats.turns.count() > 0);
    let clients = clients.unwrap();
    assert_eq!(clients.len(), 1);
    assert_eq!(clients[0].id, "alpha");
    assert_eq!(clients[0].conn, 1);
    assert_eq!(clients[0].peer, a.stream.local_addr().unwrap());
    // The HELLO's stamp rounds up to the millisecond.
    let since = clients[0].since;
    assert!(
        since >= before && since <= after + Duration::from_millis(1),
        "{since:?} not in {before:?}..{after:?}"
    );

    // Many threads at once, each answered.
    let askers: Vec<_> = (0..8)
        .map(|_| {
            let h = handle.clone();
            thread::spawn(move || h.stats().map(|s| s.connections))
        })
        .collect();
    for asker in askers {
        assert_eq!(asker.join().unwrap().unwrap(), 2);
    }

    handle.shutdown();
    let last = running.join().unwrap().unwrap();
    assert_eq!(last.closed(CloseReason::Shutdown), 2);
    // A stopped server says so instead of hanging.
    let err = handle.stats().expect_err("stopped");
    assert_eq!(err.kind(), vigil::ErrorKind::Io);
}

#[test]
fn the_library_serves_the_admin_endpoint_too() {
    let server = Server::builder()
        .listen("127.0.0.1:0")
        .stats_interval(None)
        .admin(AdminConfig::new("127.0.0.1:0".parse().unwrap()))
        .build()
        .unwrap();
    let admin = server.admin_addr().expect("on");
    let addr = server.local_addr();
    let handle = server.handle();
    let running = thread::spawn(move || server.run());
    let mut p = Peer::connect(addr);
    assert!(p.ask("HELLO lib\n").starts_with("WELCOME lib"));
    assert_eq!(json(admin, "/clients/lib")["conn"], 1);
    assert_eq!(http(admin, "POST", "/clients/lib/kick", "").0, 200);
    p.expect_bye("kicked");
    handle.shutdown();
    let stats = running.join().unwrap().unwrap();
    assert_eq!(stats.closed(CloseReason::Kicked), 1);
    assert_eq!(stats.accepted, 1, "admin connections are not counted");
}

/// With an events file and a cluster whose Redis is not there, /metrics
/// also says how the events queue is doing and that Redis is down, and
/// still passes promtool.
#[test]
fn metrics_show_the_events_queue_and_the_cluster_link() {
    let dir = std::env::temp_dir().join(format!("vigil-admin-events-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let events = dir.join("events.jsonl");
    let nobody = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let redis = format!("redis://{}", nobody.local_addr().unwrap());
    drop(nobody);
    let (server, admin) = serve(&["--events", events.to_str().unwrap(), "--cluster", &redis]);
    let _p = hello(&server, "ev");
    eventually("the events are written", || {
        sample(&get(admin, "/metrics").1, "vigil_events_written_total") >= 3.0
    });
    let metrics = get(admin, "/metrics").1;
    assert_eq!(sample(&metrics, "vigil_events_dropped_total"), 0.0);
    assert_eq!(sample(&metrics, "vigil_cluster_redis_up"), 0.0, "{metrics}");
    promtool_check(&metrics);
    drop(server);
    std::fs::remove_dir_all(&dir).unwrap();
}
