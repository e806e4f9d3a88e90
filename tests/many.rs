//! Many connections at once: 5,000 heartbeating clients against one server
//! process. The test process holds the 5,000 client ends (the open-files cap
//! here is 20,000 per process).

mod util;

use std::thread;
use std::time::{Duration, Instant};

use util::{Peer, Serve};

const CLIENTS: usize = 5_000;

#[test]
fn five_thousand_concurrent_heartbeating_connections() {
    let server = Serve::start(&[
        "--timeout",
        "2s",
        "--interval",
        "1s",
        "--stats-interval",
        "500ms",
    ]);
    let mut peers: Vec<Peer> = Vec::with_capacity(CLIENTS);
    for i in 0..CLIENTS {
        let mut p = server.connect();
        p.send(format!("HELLO c{i}\n").as_bytes());
        peers.push(p);
    }
    for (i, p) in peers.iter_mut().enumerate() {
        assert_eq!(
            p.line().unwrap(),
            format!("WELCOME c{i} interval=1000 timeout=2000")
        );
    }
    server.wait_log("conns=5000 clients=5000");
    // Beat every 700 ms for three timeouts: nobody may be dropped.
    let start = Instant::now();
    let mut round = 0;
    while start.elapsed() < Duration::from_secs(6) {
        round += 1;
        for p in peers.iter_mut() {
            p.send(format!("PING {round}\n").as_bytes());
        }
        for p in peers.iter_mut() {
            assert_eq!(p.line().unwrap(), format!("PONG {round}"));
        }
        thread::sleep(Duration::from_millis(700));
    }
    assert!(round >= 6);
    assert!(
        !server.log().iter().any(|l| l.contains("offline")),
        "someone was dropped"
    );
    let (status, log) = server.stop();
    assert!(status.success());
    for p in peers.iter_mut() {
        p.expect_bye("shutdown");
    }
    let last = log.iter().rev().find(|l| l.contains("stats:")).unwrap();
    assert!(last.contains(&format!("accepted={CLIENTS}")), "{last}");
    assert!(last.contains(&format!("shutdown={CLIENTS}")), "{last}");
    assert!(!last.contains("timeout="), "{last}");
}
