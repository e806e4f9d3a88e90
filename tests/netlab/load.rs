//! Many heartbeat clients in one test-side mio loop: one library
//! [`Session`] per connection, driven the way `vigil client`'s driver does
//! it, on a thread moved into the client namespace. Stopped, it goes quiet
//! and reads everything before it closes the sockets, so that the server
//! sees each close as a FIN.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use vigil::client::session::{Action, Event, Session, SessionConfig, TransportEnd};

use super::{Net, Ns};

/// What the loop has seen, per session.
#[derive(Debug, Default)]
pub struct Seen {
    /// Whether each session is welcomed right now.
    pub online: Vec<bool>,
    /// When each session was last welcomed.
    pub welcomed_at: Vec<Option<Instant>>,
    /// Every welcome, for counting reconnects.
    pub welcomes: u64,
    /// Every connection that ended.
    pub disconnects: u64,
}

/// The loop, stopped and joined on drop.
pub struct Load {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Seen>>,
    thread: Option<JoinHandle<()>>,
}

struct Slot {
    session: Session,
    stream: Option<TcpStream>,
    connected: bool,
    generation: u32,
}

impl Load {
    /// Starts `n` sessions, in the client namespace, against `server`;
    /// `config(i)` gives session `i` its config.
    pub fn start(
        net: &Net,
        server: SocketAddr,
        n: usize,
        config: impl Fn(usize) -> SessionConfig + Send + 'static,
    ) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Seen {
            online: vec![false; n],
            welcomed_at: vec![None; n],
            ..Seen::default()
        }));
        let ns = format!("/run/netns/{}", net.name(Ns::Client));
        let (stop2, seen2) = (Arc::clone(&stop), Arc::clone(&seen));
        let thread = thread::spawn(move || {
            let file = std::fs::File::open(&ns).expect("open the client namespace");
            // SAFETY: a valid namespace descriptor; only this thread moves.
            let r =
                unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&file), libc::CLONE_NEWNET) };
            assert_eq!(r, 0, "setns: {}", io::Error::last_os_error());
            run(server, n, config, &stop2, &seen2);
        });
        Load {
            stop,
            seen,
            thread: Some(thread),
        }
    }

    /// How many sessions are welcomed right now.
    pub fn online(&self) -> usize {
        self.seen
            .lock()
            .unwrap()
            .online
            .iter()
            .filter(|o| **o)
            .count()
    }

    /// Reads what the loop has seen.
    pub fn with<T>(&self, f: impl FnOnce(&Seen) -> T) -> T {
        f(&self.seen.lock().unwrap())
    }

    /// Stops the loop and closes every socket.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            t.join().expect("load loop");
        }
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop();
    }
}

fn token(i: usize, generation: u32) -> Token {
    Token((generation as usize) << 32 | i)
}

fn run(
    server: SocketAddr,
    n: usize,
    config: impl Fn(usize) -> SessionConfig,
    stop: &AtomicBool,
    seen: &Mutex<Seen>,
) {
    let mut poll = Poll::new().expect("poll");
    let mut events = Events::with_capacity(1024);
    let start = Instant::now();
    let now = || u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
    let mut slots: Vec<Slot> = (0..n)
        .map(|i| Slot {
            session: Session::new(config(i), now()).expect("session config"),
            stream: None,
            connected: false,
            generation: 0,
        })
        .collect();
    let mut buf = vec![0u8; 16 * 1024];
    for i in 0..n {
        pump(&poll, server, &mut slots, i, now(), seen);
    }
    while !stop.load(Ordering::Acquire) {
        let t = now();
        let next = slots
            .iter()
            .filter_map(|s| s.session.poll_timeout())
            .min()
            .unwrap_or(t + 100);
        let wait = Duration::from_millis(next.saturating_sub(t).min(100));
        if let Err(e) = poll.poll(&mut events, Some(wait)) {
            assert_eq!(e.kind(), io::ErrorKind::Interrupted, "poll: {e}");
            continue;
        }
        for ev in events.iter() {
            let i = ev.token().0 & 0xffff_ffff;
            let generation = (ev.token().0 >> 32) as u32;
            let Some(slot) = slots.get_mut(i) else {
                continue;
            };
            if slot.generation != generation || slot.stream.is_none() {
                continue; // a socket closed earlier
            }
            handle_socket(slot, &mut buf, now());
            pump(&poll, server, &mut slots, i, now(), seen);
        }
        let t = now();
        for i in 0..n {
            if slots[i].session.poll_timeout().is_some_and(|d| d <= t) {
                slots[i].session.handle_timeout(t);
                pump(&poll, server, &mut slots, i, t, seen);
            }
        }
    }
    quiet_spell(&mut poll, &mut events, &mut slots, &mut buf);
}

/// Long enough for every answer to a ping sent before the stop to arrive.
const QUIET: Duration = Duration::from_millis(500);

/// Sends nothing and reads (and drops) everything for [`QUIET`], so that
/// the sockets can then be closed with nothing unread. The server sends
/// nothing unasked, and 500 ms is far below its timeout.
fn quiet_spell(poll: &mut Poll, events: &mut Events, slots: &mut [Slot], buf: &mut [u8]) {
    // Whatever came in since the last readiness event was handled.
    for slot in slots.iter_mut() {
        drain(slot, buf);
    }
    let start = Instant::now();
    while let Some(left) = QUIET.checked_sub(start.elapsed()) {
        if let Err(e) = poll.poll(events, Some(left)) {
            assert_eq!(e.kind(), io::ErrorKind::Interrupted, "poll: {e}");
            continue;
        }
        for ev in events.iter() {
            let i = ev.token().0 & 0xffff_ffff;
            let generation = (ev.token().0 >> 32) as u32;
            if let Some(slot) = slots.get_mut(i).filter(|s| s.generation == generation) {
                drain(slot, buf);
            }
        }
    }
}

/// Reads a socket dry, dropping the bytes; at its end, drops it.
fn drain(slot: &mut Slot, buf: &mut [u8]) {
    while let Some(stream) = slot.stream.as_mut() {
        match stream.read(buf) {
            Ok(k) if k > 0 => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Ok(_) | Err(_) => slot.stream = None,
        }
    }
}

fn handle_socket(slot: &mut Slot, buf: &mut [u8], now: u64) {
    let Some(stream) = slot.stream.as_mut() else {
        return;
    };
    if !slot.connected {
        let status = match stream.take_error() {
            Ok(Some(e)) | Err(e) => Err(e),
            Ok(None) => match stream.peer_addr() {
                Ok(_) => Ok(true),
                Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
                Err(e) => Err(e),
            },
        };
        match status {
            Ok(false) => return,
            Ok(true) => {
                slot.connected = true;
                let _ = stream.set_nodelay(true);
                slot.session.handle_connected(now);
            }
            Err(e) => {
                slot.stream = None;
                slot.session
                    .handle_closed(now, TransportEnd::Error(e.kind()));
                return;
            }
        }
    }
    loop {
        let Some(stream) = slot.stream.as_mut() else {
            return;
        };
        match stream.read(buf) {
            Ok(0) => {
                slot.stream = None;
                slot.session.handle_closed(now, TransportEnd::Eof);
                return;
            }
            Ok(k) => slot.session.handle_received(now, &buf[..k]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                slot.stream = None;
                slot.session
                    .handle_closed(now, TransportEnd::Error(e.kind()));
                return;
            }
        }
    }
}

/// Carries out session `i`'s actions, writes its output, records its events.
fn pump(
    poll: &Poll,
    server: SocketAddr,
    slots: &mut [Slot],
    i: usize,
    now: u64,
    seen: &Mutex<Seen>,
) {
    let slot = &mut slots[i];
    for _ in 0..8 {
        match slot.session.poll_action() {
            Some(Action::Close) => {
                slot.stream = None;
                slot.connected = false;
            }
            Some(Action::Connect(_)) => {
                slot.stream = None;
                slot.connected = false;
                slot.generation = slot.generation.wrapping_add(1);
                match TcpStream::connect(server) {
                    Ok(mut s) => {
                        let interest = Interest::READABLE | Interest::WRITABLE;
                        match poll
                            .registry()
                            .register(&mut s, token(i, slot.generation), interest)
                        {
                            Ok(()) => slot.stream = Some(s),
                            Err(e) => slot
                                .session
                                .handle_closed(now, TransportEnd::Error(e.kind())),
                        }
                    }
                    Err(e) => slot
                        .session
                        .handle_closed(now, TransportEnd::Error(e.kind())),
                }
            }
            None => break,
        }
    }
    if slot.connected {
        while let (Some(stream), Some(out)) = (slot.stream.as_mut(), slot.session.poll_transmit()) {
            match stream.write(out) {
                Ok(k) => slot.session.handle_transmitted(k),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    slot.stream = None;
                    slot.session
                        .handle_closed(now, TransportEnd::Error(e.kind()));
                    break;
                }
            }
        }
    }
    let mut seen = seen.lock().unwrap();
    while let Some(e) = slot.session.poll_event() {
        match e {
            Event::Welcome { .. } => {
                seen.online[i] = true;
                seen.welcomed_at[i] = Some(Instant::now());
                seen.welcomes += 1;
            }
            Event::Disconnected { .. } => {
                seen.online[i] = false;
                seen.disconnects += 1;
            }
            _ => {}
        }
    }
}
