//! The cluster state machine without Redis: what it sends for each input,
//! and what it makes of replies written by hand. The scripts themselves run
//! against a real `redis-server` in `tests/cluster.rs`.

use super::*;
use crate::protocol::CloseReason;

fn cluster() -> Cluster {
    let mut c = ClusterConfig::new("a");
    c.max_backlog = 3;
    Cluster::new(c, "r1")
}

/// The commands queued on `link`, one line each: the command name and, for
/// EVAL, which script (by its first Redis call), for XADD the event.
fn sent(c: &mut Cluster, link: Link) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(bytes) = c.poll_transmit(link) {
        let mut rest = bytes.to_vec();
        c.handle_transmitted(link, rest.len());
        while !rest.is_empty() {
            // A command is an array of bulk strings: parse it as a reply.
            let (v, n) = resp::parse(&rest).unwrap().unwrap();
            rest.drain(..n);
            let Value::Array(Some(items)) = v else {
                panic!()
            };
            let args: Vec<String> = items
                .iter()
                .map(|i| i.as_str().unwrap().to_owned())
                .collect();
            out.push(match args[0].as_str() {
                "EVAL" => {
                    let script = [
                        (scripts::CLAIM, "claim"),
                        (scripts::RELEASE, "release"),
                        (scripts::SCAN, "scan"),
                        (scripts::REAP, "reap"),
                        (scripts::RECONCILE, "reconcile"),
                    ]
                    .iter()
                    .find(|(s, _)| *s == args[1])
                    .map(|(_, n)| *n)
                    .unwrap();
                    format!(
                        "{script} {}",
                        args[3..].join(" ").chars().take(60).collect::<String>()
                    )
                }
                "XADD" => {
                    let field = |f: &str| {
                        args.iter()
                            .position(|a| a == f)
                            .map(|i| args[i + 1].clone())
                            .unwrap()
                    };
                    format!(
                        "xadd {} {} {}",
                        field("conn"),
                        field("event"),
                        field("reason")
                    )
                }
                _ => args.join(" "),
            });
        }
    }
    out
}

fn change(conn: u64, client: Option<&'static str>, kind: EventKind) -> Change<'static> {
    Change {
        conn,
        peer: "127.0.0.1:9",
        client,
        kind,
        time: "2026-12-01T00:00:00.000Z",
    }
}

#[test]
fn on_connect_it_registers_reconciles_and_subscribes() {
    let mut c = cluster();
    assert_eq!(c.poll_transmit(Link::Commands), None, "nothing while down");
    c.handle_connected(Link::Commands, 0);
    c.handle_connected(Link::Subscriber, 0);
    assert_eq!(
        sent(&mut c, Link::Commands),
        [
            "SET vigil:node:a 1 PX 3000",
            "SADD vigil:nodes a",
            "reconcile vigil:online vigil:node-clients:a a vigil: 1",
        ]
    );
    assert_eq!(
        sent(&mut c, Link::Subscriber),
        ["SUBSCRIBE vigil:takeover:a"]
    );
    assert_eq!(c.poll_timeout(), Some(500));
}

#[test]
fn presence_changes_become_claims_releases_and_events() {
    let mut c = cluster();
    c.handle_connected(Link::Commands, 0);
    sent(&mut c, Link::Commands);
    c.handle_event(&change(7, None, EventKind::Online));
    c.handle_event(&change(7, Some("dev"), EventKind::Hello));
    c.handle_event(&change(
        7,
        Some("dev"),
        EventKind::Offline(CloseReason::Timeout),
    ));
    let got = sent(&mut c, Link::Commands);
    assert_eq!(got.len(), 5, "{got:?}");
    assert_eq!(got[0], "xadd 7 online ");
    assert!(
        got[1].starts_with("claim vigil:online vigil:node-clients:a dev {\"node\":\"a\""),
        "{}",
        got[1]
    );
    assert_eq!(got[2], "xadd 7 hello ");
    assert_eq!(
        got[3],
        "release vigil:online vigil:node-clients:a dev a r1 7"
    );
    assert_eq!(got[4], "xadd 7 offline timeout");
}

#[test]
fn events_wait_while_redis_is_away_boundedly_and_unacknowledged_ones_are_sent_again() {
    let mut c = cluster();
    c.handle_connected(Link::Commands, 0);
    sent(&mut c, Link::Commands);
    c.handle_event(&change(1, None, EventKind::Online));
    sent(&mut c, Link::Commands);
    // The link drops before Redis acknowledged the event.
    c.handle_disconnected(Link::Commands);
    for n in 2..=6 {
        c.handle_event(&change(n, None, EventKind::Online));
    }
    assert_eq!(
        c.stats().dropped,
        2,
        "a backlog of 3: the two oldest dropped"
    );
    c.handle_connected(Link::Commands, 10);
    let got = sent(&mut c, Link::Commands);
    let events: Vec<&String> = got.iter().filter(|l| l.starts_with("xadd")).collect();
    assert_eq!(
        events,
        [
            "xadd 1 online ",
            "xadd 4 online ",
            "xadd 5 online ",
            "xadd 6 online "
        ]
    );
}

#[test]
fn a_node_missing_at_two_scans_a_grace_apart_is_reaped() {
    let mut c = cluster();
    c.handle_connected(Link::Commands, 0);
    sent(&mut c, Link::Commands);
    // Replies to the registration and reconcile.
    c.handle_bytes(Link::Commands, 0, b"+OK\r\n:1\r\n*0\r\n")
        .unwrap();
    c.handle_timeout(500, "t");
    assert_eq!(sent(&mut c, Link::Commands), ["scan vigil:nodes vigil: a"]);
    c.handle_bytes(Link::Commands, 510, b"*1\r\n$1\r\nb\r\n")
        .unwrap();
    // Suspected since 510: reaped only from 2010 on.
    c.handle_timeout(1000, "t");
    assert!(sent(&mut c, Link::Commands)
        .iter()
        .all(|l| !l.starts_with("reap")));
    // Next: the lease refresh at 2000, then the reap at 2010.
    assert_eq!(c.poll_timeout(), Some(2000));
    c.handle_timeout(2010, "2026-12-01T00:00:02.010Z");
    let got = sent(&mut c, Link::Commands);
    assert!(
        got.contains(
            &"reap vigil:nodes vigil:online vigil:events vigil: b 2026-12-01T00".to_owned()
        ),
        "{got:?}"
    );
    // A node that comes back in between is forgotten.
    let mut c = cluster();
    c.handle_connected(Link::Commands, 0);
    c.handle_bytes(Link::Commands, 0, b"+OK\r\n:1\r\n*0\r\n")
        .unwrap();
    c.handle_timeout(500, "t");
    c.handle_bytes(Link::Commands, 510, b"*1\r\n$1\r\nb\r\n")
        .unwrap();
    c.handle_timeout(1000, "t");
    // The lease refresh's two replies, then the scan's: nobody missing.
    c.handle_bytes(Link::Commands, 1010, b"+OK\r\n:0\r\n*0\r\n")
        .unwrap();
    sent(&mut c, Link::Commands);
    c.handle_timeout(2500, "t");
    assert!(sent(&mut c, Link::Commands)
        .iter()
        .all(|l| !l.starts_with("reap")));
}

#[test]
fn takeovers_name_connections_of_this_run_only() {
    let mut c = cluster();
    c.handle_connected(Link::Subscriber, 0);
    c.handle_connected(Link::Commands, 0);
    c.handle_event(&change(3, Some("dev"), EventKind::Hello));
    let message = |payload: &str| {
        let mut out = Vec::new();
        resp::encode(
            &[b"message", b"vigil:takeover:a", payload.as_bytes()],
            &mut out,
        );
        out
    };
    let mut bytes = message("r1/3\tdev");
    bytes.extend(message("old-run/3\tdev"));
    bytes.extend(message("garbage"));
    c.handle_bytes(Link::Subscriber, 5, &bytes).unwrap();
    assert_eq!(
        c.poll_output(),
        Some(Output::Takeover {
            client: "dev".into(),
            conn: 3
        })
    );
    assert_eq!(c.poll_output(), None);
    assert!(c.handle_bytes(Link::Subscriber, 6, b"?bad\r\n").is_err());
    assert!(!c.is_up(Link::Subscriber));
}

#[test]
fn cluster_urls() {
    assert_eq!(
        ClusterOptions::parse("redis://h:1").map(|o| o.redis),
        Ok("h:1".to_owned())
    );
    assert_eq!(
        ClusterOptions::parse("h:1/").map(|o| o.redis),
        Ok("h:1".to_owned())
    );
    for bad in ["http://h:1", "redis://", "", "nohost"] {
        assert!(ClusterOptions::parse(bad).is_err(), "{bad}");
    }
}
