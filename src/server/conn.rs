//! One connection's state: small, and free of buffers while idle.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;

use mio::net::TcpStream;

use crate::protocol::CloseReason;
use crate::wheel::TimerKey;

/// A slab key with the generation of the connection that holds it.
///
/// Slab keys are reused after a connection is removed; whatever keeps a key
/// past the current event batch keeps the generation too, and checks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct ConnRef {
    pub key: u32,
    pub generation: u32,
}

/// A connection. About 150 bytes while idle; its buffers exist only while
/// it holds a partial frame or unsent output.
pub(crate) struct Conn {
    pub stream: TcpStream,
    pub peer: SocketAddr,
    /// Unique for the server's lifetime; its low 32 bits are the generation.
    pub id: u64,
    /// When the last complete frame arrived (ms on the server clock).
    pub last_seen: u64,
    /// The wheel entry for this connection's deadline, while armed.
    pub timer: Option<TimerKey>,
    /// The client id, after HELLO.
    pub client: Option<Arc<str>>,
    /// Bytes of an incomplete frame.
    pub input: Spill,
    /// Replies the socket has not taken yet.
    pub output: Spill,
    pub pings: PingWindow,
    /// Set once the connection is closed; removal waits for the batch end.
    pub closing: Option<CloseReason>,
}

impl Conn {
    pub fn new(stream: TcpStream, peer: SocketAddr, id: u64, now: u64) -> Conn {
        Conn {
            stream,
            peer,
            id,
            last_seen: now,
            timer: None,
            client: None,
            input: Spill::default(),
            output: Spill::default(),
            pings: PingWindow::default(),
            closing: None,
        }
    }

    pub fn generation(&self) -> u32 {
        self.id as u32
    }

    /// Writes `data` after whatever output is already pending. What the
    /// socket does not take is kept; the error says the connection is
    /// unusable (`Reset`) or the peer is not reading (`OutputOverflow`).
    pub fn send(&mut self, data: &[u8], max_output: usize) -> Result<(), CloseReason> {
        if self.output.is_empty() {
            let written = write_some(&mut self.stream, data)?;
            if written < data.len() {
                self.output.get_mut().extend_from_slice(&data[written..]);
            }
        } else {
            self.output.get_mut().extend_from_slice(data);
            self.flush()?;
        }
        if self.output.len() > max_output {
            return Err(CloseReason::OutputOverflow);
        }
        Ok(())
    }

    /// Writes pending output until it is gone or the socket is full.
    pub fn flush(&mut self) -> Result<(), CloseReason> {
        let Some(pending) = self.output.as_mut() else {
            return Ok(());
        };
        let written = write_some(&mut self.stream, pending)?;
        pending.drain(..written);
        self.output.release_if_empty();
        Ok(())
    }
}

/// Writes as much of `data` as the socket takes now.
fn write_some(stream: &mut TcpStream, data: &[u8]) -> Result<usize, CloseReason> {
    let mut written = 0;
    while written < data.len() {
        match stream.write(&data[written..]) {
            Ok(0) => return Err(CloseReason::Reset),
            Ok(n) => written += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Err(CloseReason::Reset),
        }
    }
    Ok(written)
}

/// Reads what is there, up to `buf.len()`, retrying on `Interrupted`.
pub(crate) fn read_some(stream: &mut TcpStream, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match stream.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            other => return other,
        }
    }
}

/// A byte buffer that takes 8 bytes and no heap while empty.
///
/// A plain `Vec` would take 24 bytes in every idle connection; the extra
/// allocation is paid only by connections that have something buffered.
#[allow(clippy::box_collection)]
#[derive(Debug, Default)]
pub(crate) struct Spill(Option<Box<Vec<u8>>>);

impl Spill {
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |v| v.len())
    }

    pub fn as_mut(&mut self) -> Option<&mut Vec<u8>> {
        self.0.as_deref_mut()
    }

    /// The buffer, created on first use.
    pub fn get_mut(&mut self) -> &mut Vec<u8> {
        self.0.get_or_insert_with(Box::default)
    }

    /// Takes the contents out, leaving nothing allocated.
    pub fn take(&mut self) -> Vec<u8> {
        self.0.take().map(|b| *b).unwrap_or_default()
    }

    /// Keeps `v` if it holds anything; frees it otherwise.
    pub fn put(&mut self, v: Vec<u8>) {
        self.0 = if v.is_empty() {
            None
        } else {
            Some(Box::new(v))
        };
    }

    pub fn release_if_empty(&mut self) {
        if self.is_empty() {
            self.0 = None;
        }
    }
}

/// Counts heartbeats per interval, for `--max-pings`.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct PingWindow {
    start: u64,
    count: u32,
}

impl PingWindow {
    /// Records a heartbeat at `now` and returns how many the peer has sent
    /// in the current window of `interval` ms, this one included.
    pub fn record(&mut self, now: u64, interval: u64) -> u32 {
        if self.count == 0 || now.saturating_sub(self.start) >= interval {
            self.start = now;
            self.count = 0;
        }
        self.count = self.count.saturating_add(1);
        self.count
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ping_window_counts_per_interval() {
        let mut w = PingWindow::default();
        let counts: Vec<u32> = [0, 10, 999, 999, 1000, 1500, 1999, 2000]
            .into_iter()
            .map(|t| w.record(t, 1000))
            .collect();
        // A window starts at the first ping after the previous one ended.
        assert_eq!(counts, [1, 2, 3, 4, 1, 2, 3, 1]);
    }

    #[test]
    fn spill_frees_when_empty() {
        let mut s = Spill::default();
        assert!(s.is_empty());
        s.get_mut().extend_from_slice(b"ab");
        assert_eq!(s.len(), 2);
        let v = s.take();
        assert_eq!(v, b"ab");
        assert!(s.0.is_none());
        s.put(Vec::new());
        assert!(s.0.is_none());
        s.put(v);
        assert_eq!(s.len(), 2);
        s.as_mut().unwrap().clear();
        s.release_if_empty();
        assert!(s.0.is_none());
    }

    #[test]
    fn idle_connection_is_small() {
        // The user-space cost of an idle connection, beside the slab and
        // wheel entries: keep an eye on it (the target is < 200 bytes all in).
        assert!(
            std::mem::size_of::<Conn>() <= 128,
            "{}",
            std::mem::size_of::<Conn>()
        );
    }
}
