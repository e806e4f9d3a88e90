//! Fault tests on a real kernel network: `vigil serve` in one network
//! namespace, `vigil client` (or a test-side loop of sessions) in another,
//! a router namespace between them where nftables cuts, drops one way, or
//! plays a carrier NAT. See `tests/netlab/mod.rs` for what is built.
//!
//! These tests need root, `ip` and `nft`; without them they fail with a
//! message saying so. They run in parallel (cargo's default, one test per
//! core), except that the 1,000-client test takes [`HEAVY`] exclusively so
//! that its CPU burst cannot skew the tight timings of the fault tests on a
//! small machine. The whole file takes about 55 s on two cores, most of it
//! the adaptive heartbeat's search.

mod netlab;
mod util;

use std::collections::BTreeMap;
use std::sync::RwLock;
use std::thread;
use std::time::{Duration, Instant};

use netlab::load::Load;
use netlab::{Net, Ns, Proc, TempDir, PATIENCE, SERVER_ADDR, SERVER_ADDR_2};
use util::{ever, parse_events, EventLine};
use vigil::client::session::SessionConfig;

/// Shared by the light tests, exclusive for the heavy one.
static HEAVY: RwLock<()> = RwLock::new(());

fn light() -> std::sync::RwLockReadGuard<'static, ()> {
    HEAVY.read().unwrap_or_else(|e| e.into_inner())
}

fn heavy() -> std::sync::RwLockWriteGuard<'static, ()> {
    HEAVY.write().unwrap_or_else(|e| e.into_inner())
}

fn ms(d: Duration) -> u128 {
    d.as_millis()
}

/// The events file, parsed.
fn events(path: &str) -> Vec<EventLine> {
    parse_events(&std::fs::read_to_string(path).unwrap_or_default())
}

/// The events of a running server once `ready` holds of them: the file is
/// written by the server's writer thread, a moment after the fact.
#[track_caller]
fn events_once(path: &str, ready: impl Fn(&[EventLine]) -> bool) -> Vec<EventLine> {
    let start = Instant::now();
    loop {
        let evs = events(path);
        if ready(&evs) || start.elapsed() > PATIENCE {
            return evs;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Per connection: its events in order.
fn by_conn(events: &[EventLine]) -> BTreeMap<u64, Vec<EventLine>> {
    let mut map: BTreeMap<u64, Vec<EventLine>> = BTreeMap::new();
    for e in events {
        map.entry(e.conn).or_default().push(e.clone());
    }
    map
}

/// The server's invariant, checked from the outside, for a server that has
/// ended every connection: the `made` connections the test made are all in
/// the events file (a connection missing from it fails the check, as does
/// one too many), each with exactly one online and, after it, exactly one
/// offline event. Returns their offline reasons, in the order the
/// connections came online.
#[track_caller]
fn check_connections(events: &[EventLine], made: usize) -> Vec<String> {
    let conns = by_conn(events);
    let count = |kind: &str| events.iter().filter(|e| e.event == kind).count();
    assert_eq!(
        (conns.len(), count("online"), count("offline")),
        (made, made, made),
        "(connections, online, offline) for {made} connections made: {conns:#?}"
    );
    for (conn, evs) in &conns {
        let kinds: Vec<&str> = evs
            .iter()
            .map(|e| e.event.as_str())
            .filter(|k| *k != "hello")
            .collect();
        assert_eq!(kinds, ["online", "offline"], "conn {conn}: {evs:?}");
    }
    events
        .iter()
        .filter(|e| e.event == "online")
        .map(|online| {
            let offline = conns[&online.conn].iter().find(|e| e.event == "offline");
            offline
                .and_then(|e| e.reason.clone())
                .unwrap_or_else(|| panic!("conn {}: no offline reason", online.conn))
        })
        .collect()
}

/// A heartbeat server in the server namespace: 1 s interval, 3 s timeout,
/// 100 ms ticks, events to a file.
fn heartbeat_server(net: &Net, dir: &TempDir, name: &str, listen: &str) -> (Proc, String) {
    let events = dir.file(&format!("{name}.jsonl"));
    let p = Proc::serve(
        net,
        name,
        listen,
        &[
            "--interval",
            "1s",
            "--timeout",
            "3s",
            "--tick",
            "100ms",
            "--events",
            &events,
            "--stats-interval",
            "1s",
        ],
    );
    (p, events)
}

/// How the client says it declared the server dead: its ping went
/// unanswered, or (when the beat left a millisecond late and the backstop
/// fell due first) nothing arrived for interval + reply timeout. The same
/// instant either way.
const DEAD: &[&str] = &["ping-timeout:", "silent:"];
const TIMEOUT: Duration = Duration::from_secs(3);
const TICK: Duration = Duration::from_millis(100);
const INTERVAL: Duration = Duration::from_secs(1);
const REPLY_TIMEOUT: Duration = Duration::from_secs(1);
/// Scheduling slack for a loaded two-core machine: on top of every bound
/// the protocol promises, never instead of it.
const SLACK: Duration = Duration::from_millis(500);

#[test]
fn the_nat_forgets_idle_flows_silently() {
    let _g = light();
    let net = Net::with_nat(2);
    // The conntrack settings took in the router's namespace, and only there.
    assert_eq!(
        net.read_sysctl(
            Ns::Router,
            "net.netfilter.nf_conntrack_tcp_timeout_established"
        ),
        "2"
    );
    assert_eq!(
        net.read_sysctl(Ns::Router, "net.netfilter.nf_conntrack_tcp_loose"),
        "0"
    );
    let dir = TempDir::new("nat");
    let (mut server, events_file) =
        heartbeat_server(&net, &dir, "srv", &format!("{SERVER_ADDR}:7700"));
    let server_addr = format!("{SERVER_ADDR}:7700");
    let (early, late, peer) = net.in_ns(Ns::Client, move || {
        use std::io::{BufRead, BufReader, Write};
        let mut s = std::net::TcpStream::connect(&server_addr).expect("connect through the NAT");
        s.set_read_timeout(Some(Duration::from_millis(1_500)))
            .unwrap();
        let mut r = BufReader::new(s.try_clone().unwrap());
        let mut ask = |s: &mut std::net::TcpStream, q: &str| {
            s.write_all(q.as_bytes()).unwrap();
            let mut line = String::new();
            match r.read_line(&mut line) {
                Ok(n) if n > 0 => Some(line.trim().to_owned()),
                _ => None,
            }
        };
        let _ = ask(&mut s, "HELLO natted\n");
        // Idle for half the NAT's timeout: the flow survives.
        thread::sleep(Duration::from_millis(1_000));
        let early = ask(&mut s, "PING 1\n");
        // Idle past it: the flow is forgotten, the ping vanishes.
        thread::sleep(Duration::from_millis(3_000));
        let late = ask(&mut s, "PING 2\n");
        (early, late, s.local_addr().unwrap())
    });
    assert_eq!(early.as_deref(), Some("PONG 1"));
    assert_eq!(late, None, "a PING after the NAT timeout was answered");
    // The server saw the masquerading router, not the client.
    let seen = server.find("online from");
    assert!(
        seen.iter()
            .all(|(_, l)| l.contains(netlab::ROUTER_SERVER_SIDE)),
        "{seen:?} (client {peer})"
    );
    // The server heard nothing after `PING 1` (the NAT dropped `PING 2`),
    // so it expired the connection (by now: the test waited 3 s and then
    // 1.5 s for an answer); its BYE was dropped too.
    server.wait_for("offline: timeout", ever());
    assert!(server.stop());
    assert_eq!(check_connections(&events(&events_file), 1), ["timeout"]);
}

#[test]
fn a_partition_is_detected_by_both_sides_and_healed() {
    let _g = light();
    let net = Net::new();
    let dir = TempDir::new("partition");
    let addr = format!("{SERVER_ADDR}:7700");
    let (mut server, events_file) = heartbeat_server(&net, &dir, "srv", &addr);
    let client = Proc::client(&net, "part-1", &addr, &["--timeout", "1s"]);
    client.wait_for("welcomed by", ever());
    client.wait_for("pong 2:", ever());

    let cut = Instant::now();
    net.partition();
    let server_saw = server.wait_for("offline: timeout", cut);
    let client_saw = client.wait_for_any(DEAD, cut, PATIENCE);
    let (server_took, client_took) = (server_saw - cut, client_saw - cut);
    eprintln!(
        "partition: server expired the client after {} ms, the client declared the server dead after {} ms",
        ms(server_took),
        ms(client_took)
    );
    // The server last heard the client at most an interval before the cut,
    // and expires it at most two ticks after its timeout.
    assert!(
        server_took <= TIMEOUT + 2 * TICK + SLACK,
        "server took {server_took:?}"
    );
    assert!(
        server_took >= TIMEOUT - INTERVAL - SLACK,
        "server took {server_took:?}"
    );
    // The client's next beat goes out within an interval; it is dead a
    // reply timeout later.
    assert!(
        client_took <= INTERVAL + REPLY_TIMEOUT + SLACK,
        "client took {client_took:?}"
    );
    // Partitioned for a while: reconnects fail (their SYNs vanish).
    thread::sleep(Duration::from_secs(2));
    let healed = Instant::now();
    net.heal();
    client.wait_for("welcomed by", healed);
    let back = server.wait_for("is client part-1", healed);
    eprintln!(
        "partition healed: the client was back online after {} ms",
        ms(back - healed)
    );
    // Let the new connection beat a few times, then stop the server so
    // every connection has its offline event.
    client.wait_for("pong ", back);
    assert!(server.stop());
    let evs = events(&events_file);
    // Reconnects during the partition never reached the server: the first
    // connection and the one after the heal are all it saw.
    assert_eq!(check_connections(&evs, 2), ["timeout", "shutdown"]);
    let conns = by_conn(&evs);
    let named: Vec<&Vec<EventLine>> = conns
        .values()
        .filter(|evs| evs.iter().any(|e| e.client.as_deref() == Some("part-1")))
        .collect();
    assert_eq!(named.len(), 2, "{conns:#?}");
    let reasons: Vec<Option<String>> = named
        .iter()
        .map(|evs| {
            evs.iter()
                .find(|e| e.event == "offline")
                .and_then(|e| e.reason.clone())
        })
        .collect();
    assert_eq!(
        reasons,
        [Some("timeout".to_owned()), Some("shutdown".to_owned())]
    );
}

#[test]
fn one_way_loss_is_detected_in_either_direction() {
    let _g = light();
    let net = Net::new();
    let dir = TempDir::new("oneway");
    let addr = format!("{SERVER_ADDR}:7700");
    let (mut server, events_file) = heartbeat_server(&net, &dir, "srv", &addr);

    // Client to server dropped: the server hears nothing and times the
    // client out; the client's pings go unanswered.
    let client = Proc::client(&net, "up-lost", &addr, &["--timeout", "1s"]);
    client.wait_for("pong 2:", ever());
    let cut = Instant::now();
    net.drop_from_client();
    let client_saw = client.wait_for_any(DEAD, cut, PATIENCE);
    let server_saw = server.wait_for("offline: timeout (peer 198.18.1.2", cut);
    eprintln!(
        "client->server dropped: client dead after {} ms, server expired it after {} ms",
        ms(client_saw - cut),
        ms(server_saw - cut)
    );
    assert!(client_saw - cut <= INTERVAL + REPLY_TIMEOUT + SLACK);
    assert!(server_saw - cut <= TIMEOUT + 2 * TICK + SLACK);
    // Killed before the heal, so that none of its reconnects (whose SYNs
    // were dropped) can reach the server afterwards.
    drop(client);
    net.heal();

    // Server to client dropped: the server still hears the client's ping
    // but its PONG (and its ACKs) vanish, so the client declares the server
    // dead and hangs up. Its FIN queues behind the ping its kernel still
    // retransmits (never acknowledged, the window collapsed to one
    // segment), so the server does not see it: for the server the client
    // just fell silent after its last ping, and it expires it a timeout
    // later.
    let client = Proc::client(&net, "down-lost", &addr, &["--timeout", "1s"]);
    client.wait_for("pong 2:", ever());
    let cut = Instant::now();
    net.drop_from_server();
    let client_saw = client.wait_for_any(DEAD, cut, PATIENCE);
    let server_saw = server.wait_for("client down-lost)", cut);
    let line = server
        .find("client down-lost)")
        .pop()
        .map(|(_, l)| l)
        .unwrap_or_default();
    eprintln!(
        "server->client dropped: client dead after {} ms, server saw `{}` after {} ms",
        ms(client_saw - cut),
        line.split("offline: ").nth(1).unwrap_or(&line),
        ms(server_saw - cut)
    );
    assert!(client_saw - cut <= INTERVAL + REPLY_TIMEOUT + SLACK);
    // Never `closed`: the FIN cannot overtake the unacknowledged ping.
    assert!(line.contains("offline: timeout"), "{line}");
    assert!(server_saw - cut <= INTERVAL + TIMEOUT + 2 * TICK + SLACK);
    // Its reconnects' SYNs reach the server, but the SYN-ACKs are dropped,
    // so none is accepted; killed before the heal, none ever will be.
    drop(client);
    net.heal();
    assert!(server.stop());
    assert_eq!(
        check_connections(&events(&events_file), 2),
        ["timeout", "timeout"]
    );
}

#[test]
fn a_frozen_client_is_expired_and_comes_back() {
    let _g = light();
    let net = Net::new();
    let dir = TempDir::new("frozen-client");
    let addr = format!("{SERVER_ADDR}:7700");
    let (mut server, events_file) = heartbeat_server(&net, &dir, "srv", &addr);
    let client = Proc::client(&net, "frozen-c", &addr, &["--timeout", "1s"]);
    client.wait_for("pong 2:", ever());
    // The client's process stops; its kernel still acknowledges everything.
    let frozen = Instant::now();
    client.signal(libc::SIGSTOP);
    let expired = server.wait_for("offline: timeout", frozen);
    let took = expired - frozen;
    eprintln!("frozen client: expired by the server after {} ms", ms(took));
    assert!(took <= TIMEOUT + 2 * TICK + SLACK, "{took:?}");
    assert!(took >= TIMEOUT - INTERVAL - SLACK, "{took:?}");
    // Thawed, it reads the server's BYE and logs in again.
    // Stamp first: the thawed process may log before this thread runs again.
    let thawed = Instant::now();
    client.signal(libc::SIGCONT);
    client.wait_for("server said BYE timeout", thawed);
    client.wait_for("welcomed by", thawed);
    server.wait_for("is client frozen-c", thawed);
    client.wait_for("pong ", thawed);
    assert!(server.stop());
    assert_eq!(
        check_connections(&events(&events_file), 2),
        ["timeout", "shutdown"]
    );
}

#[test]
fn a_frozen_server_is_declared_dead_and_the_client_fails_over() {
    let _g = light();
    let net = Net::new();
    let dir = TempDir::new("frozen-server");
    let a_addr = format!("{SERVER_ADDR}:7700");
    let b_addr = format!("{SERVER_ADDR_2}:7700");
    let (mut a, a_events) = heartbeat_server(&net, &dir, "srv-a", &a_addr);
    let (mut b, b_events) = heartbeat_server(&net, &dir, "srv-b", &b_addr);
    let servers = format!("{a_addr},{b_addr}");
    let client = Proc::client(&net, "roamer", &servers, &["--timeout", "1s"]);
    client.wait_for(&format!("welcomed by {a_addr}"), ever());
    client.wait_for("pong 2:", ever());
    // Seed 004: the connection is alive (A's kernel still answers TCP),
    // the service is dead.
    let frozen = Instant::now();
    a.signal(libc::SIGSTOP);
    let declared = client.wait_for_any(DEAD, frozen, PATIENCE);
    let moved = client.wait_for(&format!("welcomed by {b_addr}"), frozen);
    eprintln!(
        "frozen server: declared dead after {} ms, welcomed by the second server after {} ms",
        ms(declared - frozen),
        ms(moved - frozen)
    );
    assert!(declared - frozen <= INTERVAL + REPLY_TIMEOUT + SLACK);
    b.wait_for("is client roamer", frozen);
    client.wait_for("pong ", moved);
    // Thawed, A finds the client gone: its FIN was acknowledged by A's
    // kernel while A slept, and A reads it now.
    // Stamp first: the thawed process may log before this thread runs again.
    let thawed = Instant::now();
    a.signal(libc::SIGCONT);
    a.wait_for("offline: closed (peer 198.18.1.2", thawed);
    assert!(a.stop());
    assert!(b.stop());
    // The client moves on to the next server in its list: one connection
    // each.
    assert_eq!(check_connections(&events(&a_events), 1), ["closed"]);
    assert_eq!(check_connections(&events(&b_events), 1), ["shutdown"]);
}

#[test]
fn tcp_keepalive_finds_a_cut_peer_when_heartbeats_are_off() {
    let _g = light();
    let net = Net::new();
    let dir = TempDir::new("keepalive");
    let addr = format!("{SERVER_ADDR}:7700");
    let events_file = dir.file("events.jsonl");
    // Heartbeats effectively off: a ten-minute interval and timeout.
    let mut server = Proc::serve(
        &net,
        "srv",
        &addr,
        &[
            "--interval",
            "10m",
            "--timeout",
            "10m",
            "--tcp-keepalive",
            "1s,1s,3",
            "--events",
            &events_file,
        ],
    );
    server.wait_for(
        "TCP keepalive: probe after 1s idle, every 1s, 3 probes",
        ever(),
    );
    // One client with kernel keepalive of its own, one without.
    let mut with = Proc::client(
        &net,
        "ka-on",
        &addr,
        &["--timeout", "10m", "--tcp-keepalive", "1s,1s,3"],
    );
    let without = Proc::client(&net, "ka-off", &addr, &["--timeout", "10m"]);
    with.wait_for("TCP keepalive: probe after 1s idle", ever());
    with.wait_for("welcomed by", ever());
    without.wait_for("welcomed by", ever());
    // Idle long enough for the probes to be flowing (and answered).
    thread::sleep(Duration::from_millis(2_500));
    let cut = Instant::now();
    net.partition();
    let detection = Duration::from_secs(1 + 3);
    let on_client = with.wait_for("connection failed: timed out", cut) - cut;
    // Both clients are reset by the server, and the log says it was the kernel.
    eventually_count(&server, "offline: reset (peer 198.18.1.2", 2);
    assert_eq!(
        server.count("TCP keepalive or TCP_USER_TIMEOUT gave up on the peer"),
        2,
        "{:#?}",
        server.lines()
    );
    let all: Vec<Duration> = server
        .find("offline: reset (peer 198.18.1.2")
        .iter()
        .map(|(t, _)| *t - cut)
        .collect();
    eprintln!(
        "keepalive 1s,1s,3: the server's kernel gave up on the cut clients after {:?} ms; \
         the client with keepalive gave up on the server after {} ms",
        all.iter().map(|d| ms(*d)).collect::<Vec<_>>(),
        ms(on_client)
    );
    for t in all.iter().copied().chain([on_client]) {
        // The last answered probe was at most a probe interval before the
        // cut; three unanswered probes a second apart, then the reset.
        assert!(t >= detection - Duration::from_secs(2), "{t:?}");
        assert!(t <= detection + SLACK, "{t:?}");
    }
    // The client without keepalive, and with heartbeats ten minutes apart,
    // has noticed nothing.
    assert_eq!(without.count("reconnecting"), 0, "{:#?}", without.lines());
    // The client with keepalive is reconnecting through the partition; stop
    // it before healing, or a retransmitted SYN could land in the gap
    // before the server stops and make a third connection.
    assert!(with.stop());
    net.heal();
    assert!(server.stop());
    let evs = events(&events_file);
    assert_eq!(check_connections(&evs, 2), ["reset", "reset"]);
    let reasons: Vec<String> = evs
        .iter()
        .filter(|e| e.event == "offline")
        .filter_map(|e| e.reason.clone())
        .collect();
    assert_eq!(
        reasons.iter().filter(|r| *r == "reset").count(),
        2,
        "{reasons:?}"
    );
}

#[test]
fn tcp_user_timeout_ends_a_client_connection_before_the_reply_timeout() {
    let _g = light();
    let net = Net::new();
    let dir = TempDir::new("user-timeout");
    let addr = format!("{SERVER_ADDR}:7700");
    let (_server, _) = heartbeat_server(&net, &dir, "srv", &addr);
    // A patient client (10 s reply timeout) whose kernel gives up on
    // unacknowledged data after 2 s.
    let client = Proc::client(
        &net,
        "impatient-kernel",
        &addr,
        &["--timeout", "10s", "--tcp-user-timeout", "2s"],
    );
    client.wait_for("TCP_USER_TIMEOUT: 2000ms", ever());
    client.wait_for("pong 2:", ever());
    let cut = Instant::now();
    net.partition();
    let failed = client.wait_for_any(
        &["connection failed", "ping-timeout", "silent"],
        cut,
        PATIENCE,
    );
    let line = client
        .find("WARN")
        .into_iter()
        .find(|(t, _)| *t >= cut)
        .map(|(_, l)| l)
        .unwrap_or_default();
    eprintln!(
        "TCP_USER_TIMEOUT 2s: the client's kernel gave up after {} ms: {}",
        ms(failed - cut),
        line.split("] ").nth(1).unwrap_or(&line)
    );
    assert!(line.contains("connection failed: timed out"), "{line}");
    // The next ping leaves within an interval; about 2 s later (at the
    // retransmission timer's next firing) the kernel gives up: long before
    // the 10 s reply timeout would have.
    let took = failed - cut;
    assert!(
        took <= INTERVAL + Duration::from_secs(2 + 1) + SLACK,
        "{took:?}"
    );
    net.heal();
}

/// Waits until `needle` has been logged `n` times.
#[track_caller]
fn eventually_count(p: &Proc, needle: &str, n: usize) {
    let start = Instant::now();
    while p.count(needle) < n {
        assert!(
            start.elapsed() < PATIENCE,
            "{needle:?} logged {} times, not {n}: {:#?}",
            p.count(needle),
            p.lines()
        );
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_server_restart_with_1000_clients_spreads_the_reconnects() {
    const N: usize = 1_000;
    let _g = heavy();
    vigil::raise_nofile_limit().expect("raise the open-files limit");
    let net = Net::new();
    let dir = TempDir::new("restart");
    let addr = format!("{SERVER_ADDR}:7700");
    let serve_args = |events: &str| {
        vec![
            "--interval".to_owned(),
            "2s".to_owned(),
            "--timeout".to_owned(),
            "6s".to_owned(),
            "--events".to_owned(),
            events.to_owned(),
            "--stats-interval".to_owned(),
            "500ms".to_owned(),
        ]
    };
    let first_events = dir.file("first.jsonl");
    let args = serve_args(&first_events);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut first = Proc::serve(&net, "srv-1", &addr, &args);
    let server: std::net::SocketAddr = addr.parse().unwrap();
    // 1,000 sessions of the library in one test-side loop, in the client
    // namespace; reconnects: full jitter, 100 ms base, 5 s cap.
    let mut load = Load::start(&net, server, N, |i| {
        let mut c = SessionConfig::new(format!("load-{i}"), 1);
        c.reply_timeout_ms = 2_000;
        c.backoff_cap_ms = 5_000;
        c.seed = 0x9e37_79b9_7f4a_7c15u64.wrapping_mul(i as u64 + 1);
        c
    });
    let start = Instant::now();
    wait_until("1,000 clients online", Duration::from_secs(30), || {
        load.online() == N
    });
    eprintln!(
        "restart: 1,000 clients online after {} ms",
        ms(start.elapsed())
    );
    assert_eq!(established(&net, Ns::Server, "sport"), N);

    // Restart: SIGTERM (BYE shutdown to everyone), a second down, back up
    // on the same address.
    let down = Instant::now();
    assert!(first.stop());
    thread::sleep(Duration::from_secs(1));
    let second_events = dir.file("second.jsonl");
    let args = serve_args(&second_events);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    // Times count from the restart being issued: a client may be welcomed
    // before this thread sees the new server's "listening" line.
    let up = Instant::now();
    let mut second = Proc::serve(&net, "srv-2", &addr, &args);
    wait_until("1,000 clients back", Duration::from_secs(30), || {
        load.with(|s| s.welcomed_at.iter().all(|t| t.is_some_and(|t| t > down)))
    });
    let mut back: Vec<Duration> = load.with(|s| {
        s.welcomed_at
            .iter()
            .map(|t| t.expect("welcomed").saturating_duration_since(up))
            .collect()
    });
    back.sort();
    let pct = |p: usize| back[(N - 1) * p / 100];
    let spread = back[N - 1] - back[0];
    // The busiest 100 ms: how much of a herd there was.
    let busiest = (0..N)
        .map(|i| {
            back[i..]
                .iter()
                .take_while(|t| **t - back[i] < Duration::from_millis(100))
                .count()
        })
        .max()
        .unwrap_or(0);
    eprintln!(
        "restart: server down {} ms; after the restart: first {} ms, median {} ms, p90 {} ms, last {} ms; \
         spread {} ms; busiest 100 ms held {busiest} reconnects",
        ms(up - down),
        ms(back[0]),
        ms(pct(50)),
        ms(pct(90)),
        ms(back[N - 1]),
        ms(spread)
    );
    // No thundering herd: spread over a second or more, no 100 ms window
    // with more than a fifth of the clients.
    assert!(spread >= Duration::from_secs(1), "spread {spread:?}");
    assert!(busiest <= N / 5, "busiest 100 ms: {busiest}");
    // All back within a few backoff ceilings.
    assert!(back[N - 1] <= Duration::from_secs(15), "{:?}", back[N - 1]);

    // Nothing half-open: once every client has beaten on its new
    // connection, the server namespace holds exactly the live connections,
    // and the server's own count agrees.
    thread::sleep(Duration::from_millis(2_500));
    assert_eq!(established(&net, Ns::Server, "sport"), N);
    assert_eq!(established(&net, Ns::Client, "dport"), N);
    let stray: Vec<String> = net
        .ss(Ns::Server, "sport = :7700")
        .into_iter()
        .filter(|l| {
            !l.starts_with("ESTAB") && !l.starts_with("LISTEN") && !l.starts_with("TIME-WAIT")
        })
        .collect();
    assert!(stray.is_empty(), "{stray:#?}");
    let stats = second.wait_for("stats: ", Instant::now());
    let line = second
        .find("stats: ")
        .into_iter()
        .rev()
        .find(|(t, _)| *t >= stats)
        .map(|(_, l)| l)
        .unwrap();
    assert!(line.contains(&format!("conns={N} clients={N}")), "{line}");
    assert_eq!(load.with(|s| s.welcomes), 2 * N as u64);

    // The events: the first server said goodbye to every client once, the
    // second welcomed each exactly once.
    load.stop();
    // Closed: the load reads everything before it closes (no reset).
    // Counted in the events (the log limits offline lines to 10 a second).
    let start = Instant::now();
    loop {
        let closed = events(&second_events)
            .iter()
            .filter(|e| e.event == "offline" && e.reason.as_deref() == Some("closed"))
            .count();
        if closed == N {
            break;
        }
        assert!(
            start.elapsed() < PATIENCE,
            "{closed} offline closed, not {N}"
        );
        thread::sleep(Duration::from_millis(20));
    }
    assert!(second.stop());
    let first_evs = events(&first_events);
    let second_evs = events(&second_events);
    let first_reasons = check_connections(&first_evs, N);
    let second_reasons = check_connections(&second_evs, N);
    assert!(first_reasons.iter().all(|r| r == "shutdown"));
    assert!(
        second_reasons.iter().all(|r| r == "closed"),
        "{second_reasons:?}"
    );
    for evs in [&first_evs, &second_evs] {
        assert_eq!(by_conn(evs).len(), N);
        let hellos: std::collections::BTreeSet<&str> = evs
            .iter()
            .filter(|e| e.event == "hello")
            .filter_map(|e| e.client.as_deref())
            .collect();
        assert_eq!(hellos.len(), N);
    }
    assert!(first_evs
        .iter()
        .filter(|e| e.event == "offline")
        .all(|e| e.reason.as_deref() == Some("shutdown")));
}

/// Established TCP connections on port 7700 in a namespace (`sport` on the
/// server's side, `dport` on the client's).
fn established(net: &Net, ns: Ns, side: &str) -> usize {
    net.ss(ns, &format!("state established {side} = :7700"))
        .len()
}

/// Polls `cond` every 50 ms until it holds; fails after `patience`.
#[track_caller]
fn wait_until(what: &str, patience: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < patience, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(50));
    }
}

/// The longest test (a search of about 16 s on probe connections, then a
/// 30 s run), named to
/// start first. It takes no lock: it measures idle gaps of seconds against
/// a margin of hundreds of milliseconds, which the 1,000-client test's CPU
/// burst cannot eat.
#[test]
fn a_carrier_nat_is_met_by_the_adaptive_heartbeat() {
    const NAT_TIMEOUT: Duration = Duration::from_secs(3);
    let net = Net::with_nat(3);
    let dir = TempDir::new("adaptive");
    let addr = format!("{SERVER_ADDR}:7700");
    let events_file = dir.file("events.jsonl");
    // The server's own timeout (60 s) is far away: only the NAT limits.
    let server = Proc::serve(
        &net,
        "srv",
        &addr,
        &[
            "--interval",
            "30s",
            "--timeout",
            "60s",
            "--events",
            &events_file,
        ],
    );
    let start = Instant::now();
    let client = Proc::client(
        &net,
        "phone",
        &addr,
        &["--adaptive", "400ms..20s", "--timeout", "1s"],
    );
    let settled = client.wait_for_any(&["; settled"], start, Duration::from_secs(120));
    // The probe line that settled the search says the interval in force.
    let line = client
        .find("probe of ")
        .into_iter()
        .filter(|(t, _)| *t <= settled)
        .map(|(_, l)| l)
        .next_back()
        .unwrap_or_default();
    let held: u64 = line
        .split("beating every ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no interval in {line:?}"));
    let probes_lost = client.count(": lost");
    let main_losses: Vec<String> = client
        .find("WARN")
        .into_iter()
        .filter(|(_, l)| DEAD.iter().any(|d| l.contains(d)))
        .map(|(_, l)| l)
        .collect();
    let changes: Vec<String> = client
        .find("probe of ")
        .into_iter()
        .chain(client.find(" ms -> "))
        .map(|(t, l)| {
            let what = l.split("] ").nth(1).unwrap_or(&l).to_owned();
            format!("{:>6} ms  {what}", ms(t - start))
        })
        .collect();
    eprintln!(
        "adaptive against a {} s NAT: settled at {held} ms after {} ms, {probes_lost} probes lost, \
         {} main beats lost:\n{}",
        NAT_TIMEOUT.as_secs(),
        ms(settled - start),
        main_losses.len(),
        changes.join("\n")
    );
    assert!(held < ms(NAT_TIMEOUT) as u64, "{line}");
    assert!(held * 100 >= ms(NAT_TIMEOUT) as u64 * 70, "{line}");
    // The search met the NAT, on its probes only.
    assert!(
        probes_lost >= 1,
        "the search never met the NAT: {changes:#?}"
    );
    assert!(main_losses.is_empty(), "{main_losses:#?}");
    assert!(settled - start <= Duration::from_secs(90));

    // Then a long run on the same connection: no loss, no change, and the
    // one welcome it started with.
    const RUN: Duration = Duration::from_secs(30);
    thread::sleep(RUN);
    let after: Vec<String> = client
        .find("")
        .into_iter()
        .filter(|(t, _)| *t > settled)
        .map(|(_, l)| l)
        .collect();
    let pongs = after.iter().filter(|l| l.contains("pong ")).count();
    let trouble: Vec<&String> = after
        .iter()
        .filter(|l| l.contains("WARN") || l.contains(" ms -> ") || l.contains("connected to"))
        .collect();
    eprintln!(
        "adaptive: {} s after settling: {pongs} beats answered at {held} ms, {} troubles",
        RUN.as_secs(),
        trouble.len()
    );
    assert!(trouble.is_empty(), "{trouble:#?}");
    assert!(
        pongs as u64 >= (ms(RUN) as u64 / held).saturating_sub(2),
        "{pongs}"
    );
    assert_eq!(client.count("welcomed by"), 1, "{:#?}", client.lines());
    // The server never saw the client go offline and online: one login,
    // no offline; the probes were anonymous connections.
    let evs = events(&events_file);
    let mine: Vec<&EventLine> = evs
        .iter()
        .filter(|e| e.client.as_deref() == Some("phone"))
        .collect();
    assert_eq!(
        mine.iter().filter(|e| e.event == "hello").count(),
        1,
        "{mine:#?}"
    );
    assert!(mine.iter().all(|e| e.event != "offline"), "{mine:#?}");
    drop(server);
}

/// Runs `ip ARGS...` in the client's namespace.
#[track_caller]
fn client_ip(net: &Net, args: &[&str]) {
    let out = net
        .command(Ns::Client, "ip")
        .args(args)
        .output()
        .expect("ip");
    assert!(out.status.success(), "ip {args:?}: {out:?}");
}

/// The client's address changes under its connection (a DHCP renewal, a
/// new network): the netlink watch sees the address go and the client
/// reconnects from the new one within a second, where its heartbeat
/// (a 20 s interval, a 10 s reply timeout) would have taken half a minute.
#[test]
fn an_address_change_reconnects_within_a_second() {
    let _g = light();
    let net = Net::new();
    let dir = TempDir::new("address");
    let addr = format!("{SERVER_ADDR}:7700");
    let events_file = dir.file("events.jsonl");
    let _server = Proc::serve(
        &net,
        "srv",
        &addr,
        &[
            "--interval",
            "20s",
            "--timeout",
            "30s",
            "--events",
            &events_file,
        ],
    );
    let client = Proc::client(&net, "roamer", &addr, &["--timeout", "10s"]);
    client.wait_for("welcomed by", ever());
    // The new address first (kept as the primary when the old one goes),
    // then the old one away.
    net.sysctl(Ns::Client, "net.ipv4.conf.eth0.promote_secondaries", "1");
    client_ip(&net, &["addr", "add", "198.18.1.5/24", "dev", "eth0"]);
    thread::sleep(Duration::from_millis(200));
    assert_eq!(client.count("network changed"), 0, "{:#?}", client.lines());
    let cut = Instant::now();
    client_ip(
        &net,
        &[
            "addr",
            "del",
            &format!("{}/24", netlab::CLIENT_ADDR),
            "dev",
            "eth0",
        ],
    );
    let noticed = client.wait_for(
        &format!(
            "network changed: local address {} removed",
            netlab::CLIENT_ADDR
        ),
        cut,
    );
    let back = client.wait_for("welcomed by", noticed);
    eprintln!(
        "address change: noticed after {} ms, welcomed again after {} ms",
        ms(noticed - cut),
        ms(back - cut)
    );
    assert!(back - cut < Duration::from_secs(1), "{:#?}", client.lines());
    assert_eq!(client.count("welcomed by"), 2);
    // The server saw the login from the new address take over.
    let hello_of_roamer =
        |e: &EventLine| e.event == "hello" && e.client.as_deref() == Some("roamer");
    let evs = events_once(&events_file, |evs| {
        evs.iter().filter(|e| hello_of_roamer(e)).count() >= 2
    });
    let hellos = evs.iter().filter(|e| hello_of_roamer(e)).count();
    assert_eq!(hellos, 2, "{evs:#?}");
    assert!(!client
        .find("WARN")
        .iter()
        .any(|(_, l)| DEAD.iter().any(|d| l.contains(d))));
}
