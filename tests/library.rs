//! The library API: a server with its own handler, run in a thread of the
//! test process, over real sockets on 127.0.0.1.

mod util;

use std::thread::{self, JoinHandle};
use std::time::Duration;

use util::Peer;
use vigil::server::{ConnInfo, Context, Handle, Handler, Server};
use vigil::{CloseReason, Error, Protocol, Stats};

/// Runs a built server in a thread; shut down and joined on drop.
struct Running {
    addr: std::net::SocketAddr,
    handle: Handle,
    thread: Option<JoinHandle<Result<Stats, Error>>>,
}

impl Running {
    fn start<P, H>(server: Server<P, H>) -> Running
    where
        P: Protocol + Send + 'static,
        H: Handler + Send + 'static,
    {
        let addr = server.local_addr();
        let handle = server.handle();
        let thread = Some(thread::spawn(move || server.run()));
        Running {
            addr,
            handle,
            thread,
        }
    }

    fn connect(&self) -> Peer {
        Peer::connect(self.addr)
    }

    fn stop(mut self) -> Stats {
        self.handle.shutdown();
        let thread = self.thread.take().unwrap();
        thread.join().unwrap().unwrap()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(t) = self.thread.take() {
            self.handle.shutdown();
            let _ = t.join();
        }
    }
}

/// A chat room: messages from a named client go to every other client;
/// joins and leaves are announced; `/quit` closes, `/stop` stops.
#[derive(Default)]
struct Room {
    offline_seen: Vec<(String, CloseReason)>,
}

impl Handler for Room {
    fn on_message(&mut self, ctx: &mut Context<'_>, conn: &ConnInfo<'_>, message: &[u8]) {
        match message {
            b"/quit" => ctx.close(conn.id, CloseReason::Closed),
            b"/stop" => ctx.stop_server(),
            b"/who" => {
                let mut names: Vec<&str> = ctx.online().map(|(id, _)| id).collect();
                names.sort_unstable();
                ctx.reply(names.join(",").as_bytes());
            }
            _ => {
                let Some(from) = conn.client else {
                    ctx.reply(b"say HELLO first");
                    return;
                };
                if let Some(rest) = message.strip_prefix(b"@") {
                    let (to, text) = match rest.iter().position(|&b| b == b' ') {
                        Some(sp) => (&rest[..sp], &rest[sp + 1..]),
                        None => (rest, &b""[..]),
                    };
                    let to = String::from_utf8_lossy(to);
                    let line = format!("{from} (private): {}", String::from_utf8_lossy(text));
                    if !ctx.send_to_client(&to, line.as_bytes()) {
                        ctx.reply(format!("{to} is not online").as_bytes());
                    }
                    return;
                }
                let line = format!("{from}: {}", String::from_utf8_lossy(message));
                ctx.broadcast(line.as_bytes(), Some(conn.id));
            }
        }
    }

    fn on_hello(&mut self, ctx: &mut Context<'_>, conn: &ConnInfo<'_>) {
        let name = conn.client.unwrap_or("?");
        ctx.broadcast(format!("* {name} joined").as_bytes(), Some(conn.id));
    }

    fn on_offline(&mut self, ctx: &mut Context<'_>, conn: &ConnInfo<'_>, reason: CloseReason) {
        // Replies are impossible now; this must be a no-op, not a panic.
        ctx.reply(b"nobody hears this");
        if let Some(name) = conn.client {
            self.offline_seen.push((name.to_owned(), reason));
            ctx.broadcast(format!("* {name} left ({reason})").as_bytes(), None);
        }
    }
}

fn room() -> Running {
    let server = Server::builder()
        .listen("127.0.0.1:0")
        .stats_interval(None)
        .handler(Room::default())
        .build()
        .unwrap();
    Running::start(server)
}

#[test]
fn a_handler_replies_broadcasts_and_sends_to_a_client() {
    let room = room();
    let mut ann = room.connect();
    let mut bob = room.connect();
    assert_eq!(ann.ask("anyone?\n"), "say HELLO first");
    assert!(ann.ask("HELLO ann\n").starts_with("WELCOME ann"));
    assert!(bob.ask("HELLO bob\n").starts_with("WELCOME bob"));
    assert_eq!(ann.line().unwrap(), "* bob joined");
    bob.send(b"hi all\n");
    assert_eq!(ann.line().unwrap(), "bob: hi all");
    ann.send(b"@bob psst\n");
    assert_eq!(bob.line().unwrap(), "ann (private): psst");
    assert_eq!(ann.ask("@carol hello?\n"), "carol is not online");
    assert_eq!(ann.ask("/who\n"), "ann,bob");
    // Heartbeats still work beside the application.
    assert_eq!(bob.ask("PING 1\n"), "PONG 1");
}

#[test]
fn a_handler_can_close_a_connection_and_hears_every_offline() {
    let room = room();
    let mut ann = room.connect();
    let mut bob = room.connect();
    assert!(ann.ask("HELLO ann\n").starts_with("WELCOME"));
    assert!(bob.ask("HELLO bob\n").starts_with("WELCOME"));
    assert_eq!(ann.line().unwrap(), "* bob joined");
    bob.send(b"/quit\n");
    assert_eq!(bob.line(), None, "closed with reason `closed`: no BYE");
    assert_eq!(ann.line().unwrap(), "* bob left (closed)");
    drop(ann);
    let stats = room.stop();
    // ann's close may reach the server before or after the stop.
    assert!(stats.closed(CloseReason::Closed) >= 1);
    assert_eq!(
        stats.closed(CloseReason::Closed) + stats.closed(CloseReason::Shutdown),
        2
    );
}

#[test]
fn a_handler_can_stop_the_server() {
    let room = room();
    let mut ann = room.connect();
    let mut bob = room.connect();
    assert!(bob.ask("HELLO bob\n").starts_with("WELCOME"));
    ann.send(b"/stop\n");
    ann.expect_bye("shutdown");
    assert_eq!(bob.line().unwrap(), "BYE shutdown");
    let handle = room.handle.clone();
    let mut room = room;
    let stats = room.thread.take().unwrap().join().unwrap().unwrap();
    drop(handle);
    assert_eq!(stats.closed(CloseReason::Shutdown), 2);
}

#[test]
fn a_replaced_client_leaves_once_and_the_new_one_stays() {
    let room = room();
    let mut watcher = room.connect();
    assert!(watcher.ask("HELLO watcher\n").starts_with("WELCOME"));
    let mut old = room.connect();
    assert!(old.ask("HELLO dev\n").starts_with("WELCOME"));
    assert_eq!(watcher.line().unwrap(), "* dev joined");
    let mut new = room.connect();
    assert!(new.ask("HELLO dev\n").starts_with("WELCOME"));
    old.expect_bye("replaced");
    assert_eq!(watcher.line().unwrap(), "* dev joined");
    assert_eq!(watcher.line().unwrap(), "* dev left (replaced)");
    // The newcomer hears of its predecessor's departure too.
    assert_eq!(new.line().unwrap(), "* dev left (replaced)");
    // The presence table names the new connection.
    watcher.send(b"@dev still there?\n");
    assert_eq!(new.line().unwrap(), "watcher (private): still there?");
    let stats = room.stop();
    assert_eq!(stats.closed(CloseReason::Replaced), 1);
}

#[test]
fn builder_errors_are_typed() {
    let err = Server::builder()
        .listen("definitely not an address")
        .build()
        .err()
        .unwrap();
    assert_eq!(err.kind(), vigil::ErrorKind::Bind);
    let err = Server::builder()
        .listen("127.0.0.1:0")
        .tick(Duration::ZERO)
        .build()
        .err()
        .unwrap();
    assert_eq!(err.kind(), vigil::ErrorKind::Config);
    // Two servers on one port: the second cannot bind.
    let first = Server::builder().listen("127.0.0.1:0").build().unwrap();
    let err = Server::builder()
        .listen(first.local_addr())
        .build()
        .err()
        .unwrap();
    assert_eq!(err.kind(), vigil::ErrorKind::Bind);
    assert!(err.to_string().contains("cannot listen"), "{err}");
}

#[test]
fn a_config_is_the_defaults_with_fields_assigned() {
    // Config is #[non_exhaustive]: users start from the defaults.
    let mut config = vigil::Config::default();
    config.listen = vec!["127.0.0.1:0".parse().unwrap()];
    config.timeout = Duration::from_secs(3);
    config.interval = Duration::from_secs(2);
    config.stats_interval = None;
    let server = Server::new(config, vigil::LineProtocol::default()).unwrap();
    let running = Running::start(server);
    let mut peer = running.connect();
    assert_eq!(
        peer.ask("HELLO cfg-1\n"),
        "WELCOME cfg-1 interval=2000 timeout=3000"
    );
    running.stop();
}

#[test]
fn a_host_name_listens_and_every_address_is_reported() {
    let server = Server::builder()
        .listen("localhost:0")
        .stats_interval(None)
        .build()
        .unwrap();
    let addrs = server.local_addrs().to_vec();
    assert!(!addrs.is_empty());
    assert_eq!(addrs[0], server.local_addr());
    for a in &addrs {
        assert!(a.ip().is_loopback() && a.port() != 0, "{a}");
    }
    let running = Running::start(server);
    for a in addrs {
        assert_eq!(Peer::connect(a).ask("PING x\n"), "PONG x");
    }
    running.stop();
}

#[test]
fn out_of_range_settings_are_config_errors_not_panics() {
    let year = vigil::duration::MAX_DURATION;
    let over = year + Duration::from_millis(1);
    let builders = [
        Server::builder().timeout(Duration::MAX),
        Server::builder().timeout(over),
        Server::builder().interval(over),
        Server::builder().stats_interval(Some(over)),
        Server::builder().tcp_user_timeout(over),
        Server::builder().wheel_slots(0),
        Server::builder().tcp_keepalive(vigil::Keepalive {
            idle: Duration::from_secs(u64::MAX),
            interval: Duration::from_secs(1),
            count: 1,
        }),
    ];
    for b in builders {
        let err = b.listen("127.0.0.1:0").build().err().unwrap();
        assert_eq!(err.kind(), vigil::ErrorKind::Config, "{err}");
    }
    let mut config = vigil::Config::default();
    config.listen.clear();
    let err = Server::new(config, vigil::LineProtocol::default())
        .err()
        .unwrap();
    assert_eq!(err.kind(), vigil::ErrorKind::Config);
    assert!(err.to_string().contains("no listen address"), "{err}");
}
