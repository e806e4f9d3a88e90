//! A burst of expirations does not starve the living: 15,000 silent
//! connections expire in one turn (the server was paused past their
//! timeout), while a bystander beating every 200 ms keeps getting its
//! replies within 500 ms and stays connected.

mod util;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use util::Serve;

const SILENT: usize = 15_000;

#[test]
fn a_bystander_is_answered_while_15000_connections_expire_at_once() {
    let limit = vigil::raise_nofile_limit().unwrap();
    assert!(
        limit > SILENT as u64 + 500,
        "open files limit {limit} too low"
    );
    let server = Serve::start(&[
        "--interval",
        "4s",
        "--timeout",
        "8s",
        "--stats-interval",
        "0ms",
    ]);
    // Every silent connection is accepted and has been heard from once.
    let setup = Instant::now();
    let mut silent = Vec::with_capacity(SILENT);
    for _ in 0..SILENT {
        let s = TcpStream::connect(server.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        (&s).write_all(b"PING\n").unwrap();
        silent.push(BufReader::new(s));
    }
    for s in &mut silent {
        let mut line = String::new();
        s.read_line(&mut line).unwrap();
        assert_eq!(line, "PONG\n");
    }

    let setup = setup.elapsed();
    assert!(setup < Duration::from_secs(7), "the setup took {setup:?}");
    // The bystander: a PING every 200 ms, pause or not (its beats queue
    // in the socket while the server is stopped); a reader notes when
    // each PONG comes back.
    let done = Arc::new(AtomicBool::new(false));
    let stream = TcpStream::connect(server.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.set_nodelay(true).unwrap();
    let start = Instant::now();
    let writer = {
        let (done, stream) = (Arc::clone(&done), stream.try_clone().unwrap());
        thread::spawn(move || {
            let mut sent = Vec::new();
            while !done.load(Ordering::Acquire) {
                let n = sent.len();
                sent.push(start.elapsed());
                (&stream)
                    .write_all(format!("PING {n}\n").as_bytes())
                    .unwrap();
                thread::sleep(Duration::from_millis(200));
            }
            sent
        })
    };
    let closer = stream.try_clone().unwrap();
    let reader = {
        let done = Arc::clone(&done);
        thread::spawn(move || {
            let mut reader = BufReader::new(stream);
            let mut got = Vec::new();
            loop {
                let mut line = String::new();
                let n = reader.read_line(&mut line);
                if done.load(Ordering::Acquire) {
                    break;
                }
                n.unwrap();
                if line != format!("PONG {}\n", got.len()) {
                    eprintln!("bystander got {line:?} at {:?}", start.elapsed());
                    break;
                }
                got.push(start.elapsed());
            }
            got
        })
    };
    thread::sleep(Duration::from_secs(1));
    // Everyone heard from once more, together, so that all their
    // deadlines fall within a few hundred ms...
    let refreshed = Instant::now();
    for s in &mut silent {
        s.get_ref().write_all(b"PING\n").unwrap();
    }
    for s in &mut silent {
        let mut line = String::new();
        s.read_line(&mut line).unwrap();
        assert_eq!(line, "PONG\n");
    }
    let spread = refreshed.elapsed();
    assert!(
        spread < Duration::from_secs(4),
        "the refresh took {spread:?}"
    );
    // ...then the server paused past all of them: they expire in one go.
    let stopped = start.elapsed();
    server.signal(libc::SIGSTOP);
    thread::sleep(Duration::from_millis(8500));
    server.signal(libc::SIGCONT);
    let resumed = Instant::now();
    let resumed_at = start.elapsed();
    // Every silent connection is closed for its silence.
    for s in &mut silent {
        let mut line = String::new();
        s.read_line(&mut line).unwrap();
        assert_eq!(line, "BYE timeout\n");
    }
    let all_closed = resumed.elapsed();
    thread::sleep(Duration::from_secs(2));
    done.store(true, Ordering::Release);
    closer.shutdown(std::net::Shutdown::Both).unwrap();
    let sent = writer.join().unwrap();
    let got = reader.join().unwrap();
    assert!(
        got.len() + 2 >= sent.len(),
        "{} beats, {} replies; stopped at {stopped:?}, resumed at {resumed_at:?}, all closed {all_closed:?} later\nsent {sent:?}\ngot {got:?}",
        sent.len(),
        got.len()
    );
    // Beats whose 500 ms overlap the pause are excused; every other one
    // was answered within 500 ms, those during the expiry burst included.
    let due = Duration::from_millis(500);
    let mut worst = Duration::ZERO;
    let mut counted = 0;
    for (s, r) in sent.iter().zip(&got) {
        if *s + due > stopped && *s < resumed_at {
            continue;
        }
        worst = worst.max(*r - *s);
        counted += 1;
    }
    eprintln!(
        "setup took {setup:?}, refresh {spread:?}; {SILENT} expired within {all_closed:?} of the resume; the bystander's worst reply took {worst:?} over {counted} beats"
    );
    assert!(counted >= 12, "only {counted} beats counted");
    assert!(worst < due, "a reply took {worst:?}");
}
