//! Presence across nodes through Redis: real `redis-server` and
//! `redis-cli` (Debian's packages, installed by scripts/install-deps.sh),
//! several `vigil serve --cluster` processes, real sockets on loopback.

mod util;

use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use util::{eventually, Peer, Serve};

/// A `redis-server` on a free loopback port, killed when dropped.
struct Redis {
    child: Child,
    port: u16,
}

impl Redis {
    fn start() -> Redis {
        let port = free_port();
        Redis::start_on(port)
    }

    fn start_on(port: u16) -> Redis {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--loglevel", "warning"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server (scripts/install-deps.sh installs it)");
        let redis = Redis { child, port };
        eventually("redis-server answers PING", || {
            redis.cli(&["PING"]) == "PONG"
        });
        redis
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// `redis-cli ARGS...`, its output trimmed.
    fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    fn signal(&self, sig: i32) {
        // SAFETY: a signal to our own child, by pid.
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }

    /// The events stream: one map of fields per entry.
    fn events(&self) -> Vec<std::collections::HashMap<String, String>> {
        let text = self.cli(&["--no-raw", "XRANGE", "vigil:events", "-", "+"]);
        // --no-raw prints nested arrays; the raw form is easier: one value a line.
        let _ = text;
        let raw = self.cli(&["XRANGE", "vigil:events", "-", "+"]);
        let lines: Vec<&str> = raw.lines().collect();
        let mut out = Vec::new();
        let mut i = 0;
        while i < lines.len() {
            // id, then field/value pairs until the next id (which has a '-'
            // between two numbers and is followed by "time").
            i += 1;
            let mut map = std::collections::HashMap::new();
            while i + 1 < lines.len() && !is_entry_id(lines[i], lines.get(i + 1)) {
                map.insert(lines[i].to_owned(), lines[i + 1].to_owned());
                i += 2;
            }
            out.push(map);
        }
        out
    }
}

fn is_entry_id(line: &str, next: Option<&&str>) -> bool {
    let mut parts = line.split('-');
    let ms = parts
        .next()
        .is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    let seq = parts
        .next()
        .is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    ms && seq && parts.next().is_none() && next == Some(&"time")
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn node(redis: &Redis, id: &str) -> Serve {
    let serve = Serve::start(&[
        "--cluster",
        &redis.url(),
        "--node-id",
        id,
        "--stats-interval",
        "0ms",
    ]);
    serve.wait_log("cluster: Commands link to Redis");
    serve.wait_log("cluster: Subscriber link to Redis");
    serve
}

fn hello(node: &Serve, id: &str) -> Peer {
    let mut p = node.connect();
    assert!(p
        .ask(&format!("HELLO {id}\n"))
        .starts_with(&format!("WELCOME {id}")));
    p
}

/// `vigil who ID --cluster URL`: (exit code, stdout).
fn who(redis: &Redis, id: &str) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["who", id, "--cluster", &redis.url()])
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).trim().to_owned(),
    )
}

fn owner_node(redis: &Redis, id: &str) -> Option<String> {
    let (code, out) = who(redis, id);
    (code == 0).then(|| {
        let v: serde_json::Value = serde_json::from_str(&out).expect("an owner record");
        v["node"].as_str().unwrap().to_owned()
    })
}

#[test]
fn a_hello_on_another_node_takes_the_id_over() {
    let redis = Redis::start();
    let a = node(&redis, "a");
    let b = node(&redis, "b");
    let mut old = hello(&a, "phone");
    eventually("a owns phone", || {
        owner_node(&redis, "phone").as_deref() == Some("a")
    });
    let started = Instant::now();
    let mut new = hello(&b, "phone");
    old.expect_bye("replaced");
    let took = started.elapsed();
    assert_eq!(owner_node(&redis, "phone").as_deref(), Some("b"));
    // The new connection is undisturbed.
    assert_eq!(new.ask("PING 1\n"), "PONG 1");
    assert!(took < Duration::from_secs(2), "{took:?}");
    // The stream: a's online, hello and offline (replaced), b's online and
    // hello, each exactly once.
    eventually("five events", || redis.events().len() >= 5);
    let events: Vec<(String, String, String)> = redis
        .events()
        .into_iter()
        .map(|e| (e["node"].clone(), e["event"].clone(), e["reason"].clone()))
        .collect();
    for expected in [
        ("a", "online", ""),
        ("a", "hello", ""),
        ("a", "offline", "replaced"),
        ("b", "online", ""),
        ("b", "hello", ""),
    ] {
        let n = events
            .iter()
            .filter(|(node, ev, r)| (node.as_str(), ev.as_str(), r.as_str()) == expected)
            .count();
        assert_eq!(n, 1, "{expected:?} in {events:?}");
    }
    assert_eq!(who(&redis, "nobody"), (1, "offline".to_owned()));
}

#[test]
fn a_killed_node_s_clients_go_offline_once_and_can_come_back_elsewhere() {
    let redis = Redis::start();
    let a = node(&redis, "a");
    let c = node(&redis, "c");
    let b = node(&redis, "b");
    let held: Vec<Peer> = (0..20).map(|k| hello(&b, &format!("dev-{k}"))).collect();
    let _mine = hello(&a, "stays");
    eventually("21 online", || redis.cli(&["HLEN", "vigil:online"]) == "21");
    let killed = Instant::now();
    b.signal(libc::SIGKILL);
    eventually("b's 20 ids gone", || {
        redis.cli(&["HLEN", "vigil:online"]) == "1"
    });
    let took = killed.elapsed();
    // Lease 3 s + grace 1.5 s + a scan: within lease + 2 s, with a second
    // for this machine.
    assert!(took < Duration::from_secs(6), "{took:?}");
    thread::sleep(Duration::from_secs(2));
    let lost: Vec<String> = redis
        .events()
        .into_iter()
        .filter(|e| e.get("reason").map(String::as_str) == Some("node-lost"))
        .map(|e| e["client"].clone())
        .collect();
    let mut unique = lost.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        (lost.len(), unique.len()),
        (20, 20),
        "exactly once each: {lost:?}"
    );
    assert_eq!(owner_node(&redis, "stays").as_deref(), Some("a"));
    // A phone of the dead node reconnects to another node: online again.
    let _back = hello(&c, "dev-3");
    eventually("dev-3 on c", || {
        owner_node(&redis, "dev-3").as_deref() == Some("c")
    });
    drop(held);
}

#[test]
fn a_paused_redis_declares_no_one_offline_and_a_restarted_one_is_filled_again() {
    let redis = Redis::start();
    let a = node(&redis, "a");
    let b = node(&redis, "b");
    let _pa: Vec<Peer> = (0..5).map(|k| hello(&a, &format!("a-{k}"))).collect();
    let _pb: Vec<Peer> = (0..5).map(|k| hello(&b, &format!("b-{k}"))).collect();
    eventually("10 online", || redis.cli(&["HLEN", "vigil:online"]) == "10");
    // Paused past every lease (3 s).
    redis.signal(libc::SIGSTOP);
    thread::sleep(Duration::from_millis(4500));
    // Heartbeats carry on meanwhile.
    let mut p = hello(&a, "during-pause");
    assert_eq!(p.ask("PING 7\n"), "PONG 7");
    redis.signal(libc::SIGCONT);
    thread::sleep(Duration::from_secs(4));
    let lost = redis
        .events()
        .iter()
        .filter(|e| e.get("reason").map(String::as_str) == Some("node-lost"))
        .count();
    assert_eq!(lost, 0, "no one is offline because Redis slept");
    assert_eq!(redis.cli(&["HLEN", "vigil:online"]), "11");
    // Redis restarts empty: the nodes reconnect and publish their presence.
    let port = redis.port;
    drop(redis);
    let redis = Redis::start_on(port);
    eventually("presence published again", || {
        redis.cli(&["HLEN", "vigil:online"]) == "11"
    });
    assert_eq!(owner_node(&redis, "b-4").as_deref(), Some("b"));
    drop((a, b));
}

#[test]
fn heartbeats_never_touch_redis() {
    let redis = Redis::start();
    let a = node(&redis, "a");
    let mut p = hello(&a, "beater");
    eventually("online", || owner_node(&redis, "beater").is_some());
    let count = |redis: &Redis| -> u64 {
        let info = redis.cli(&["INFO", "commandstats"]);
        info.lines()
            .filter(|l| l.starts_with("cmdstat_eval") || l.starts_with("cmdstat_xadd"))
            .filter_map(|l| {
                l.split("calls=")
                    .nth(1)?
                    .split(',')
                    .next()?
                    .parse::<u64>()
                    .ok()
            })
            .sum()
    };
    let before = count(&redis);
    for seq in 0..200 {
        assert_eq!(p.ask(&format!("PING {seq}\n")), format!("PONG {seq}"));
    }
    thread::sleep(Duration::from_millis(300));
    // Lease refreshes (SET, SADD) and scans (one EVAL each 500 ms) go on;
    // 200 heartbeats add no claim, release or event.
    let scans_at_most = 2;
    assert!(
        count(&redis) <= before + scans_at_most,
        "{} -> {}",
        before,
        count(&redis)
    );
    drop(a);
}

#[test]
fn bad_cluster_urls_are_usage_errors() {
    for url in ["http://x:1", "redis://", "nohost"] {
        let out = Command::new(env!("CARGO_BIN_EXE_vigil"))
            .args(["serve", "--listen", "127.0.0.1:0", "--cluster", url])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{url}");
    }
    // Redis unreachable at start: the node serves anyway and says so.
    let port = free_port();
    let serve = Serve::start(&[
        "--cluster",
        &format!("redis://127.0.0.1:{port}"),
        "--stats-interval",
        "0ms",
    ]);
    let mut p = serve.connect();
    assert!(p.ask("HELLO lonely\n").starts_with("WELCOME lonely"));
    assert_eq!(p.ask("PING\n"), "PONG");
}

/// `GET /clients/{id}` on a node's admin endpoint answers for the whole
/// cluster: an id online on another node comes back with that node's owner
/// record; one online nowhere is a 404.
#[test]
fn the_admin_endpoint_answers_for_the_whole_cluster() {
    let redis = Redis::start();
    let admin_port = free_port();
    let a = Serve::start(&[
        "--cluster",
        &redis.url(),
        "--node-id",
        "a",
        "--stats-interval",
        "0ms",
        "--admin",
        &format!("127.0.0.1:{admin_port}"),
    ]);
    a.wait_log("cluster: Commands link to Redis");
    let b = node(&redis, "b");
    let _there = hello(&b, "far");
    let _here = hello(&a, "near");
    eventually("far is in Redis", || owner_node(&redis, "far").is_some());
    let get = |path: &str| -> (u16, String) {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", admin_port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        let status = text[9..12].parse().unwrap();
        let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_owned();
        (status, body)
    };
    let (status, body) = get("/clients/far");
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (v["id"].as_str(), v["node"].as_str()),
        (Some("far"), Some("b")),
        "{body}"
    );
    // Local ids are answered from the node's own table, as before.
    let (status, body) = get("/clients/near");
    assert_eq!(status, 200, "{body}");
    assert_eq!(get("/clients/nowhere").0, 404);
}
