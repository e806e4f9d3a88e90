//! One server as several worker processes on one port (`vigil serve
//! --workers N`): what a worker needs to know to be one of them.
//!
//! # Why
//! One process is one core, and (where open files are capped) a bounded
//! number of sockets. Workers share the port through `SO_REUSEPORT`: the
//! kernel spreads new connections over them, and each is the same
//! single-threaded loop, sharing nothing.
//!
//! # Rules
//! - **Ids are sharded.** Worker `i` of `n` owns the client ids `id` with
//!   [`owner_of`]`(id, n) == i`, and only its presence table holds them, so
//!   one id is online on at most one connection across all workers, and a
//!   takeover is the ordinary takeover inside its owner.
//! - **A HELLO goes to the owner.** A connection whose HELLO names an id
//!   another worker owns is handed over: what was queued for it is written
//!   first, then its socket (`SCM_RIGHTS`), its number, its peer, its
//!   unwritten output and the bytes from its HELLO on go to the owner in one
//!   message on a connected `SOCK_SEQPACKET` Unix socket to the owner
//!   (listening on an abstract name). The owner takes it in under the
//!   same number, with no second `online` event, and replays the bytes.
//!   Connections that never say HELLO stay where they were accepted.
//! - **Numbers are unique across workers**: each worker starts its
//!   connection numbers at its own [`WorkerSlot::first_conn`].
//! - **A failed hand-off closes the connection** (`overloaded`, with its
//!   offline event here), so the client reconnects; it is never served by a
//!   worker that does not own its id.

use std::net::SocketAddr;

/// Where a worker stands among its siblings. Set by the supervisor of
/// `vigil serve --workers` on each worker it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerSlot {
    /// This worker's index, `0..count`.
    pub index: u32,
    /// How many workers share the port.
    pub count: u32,
    /// A name shared by the workers of one server (the supervisor's pid):
    /// their hand-off sockets are named after it.
    pub group: String,
    /// The number of this worker's first connection.
    pub first_conn: u64,
}

impl WorkerSlot {
    /// The abstract Unix socket name of worker `index` of this group.
    pub(crate) fn socket_name(&self, index: u32) -> String {
        format!("vigil-{}-worker-{index}", self.group)
    }
}

/// The worker that owns client id `id` among `count` workers: FNV-1a of
/// the id's bytes, modulo `count` (0 when `count` is 0). Stable across
/// processes and builds.
pub fn owner_of(id: &str, count: u32) -> u32 {
    if count == 0 {
        return 0;
    }
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in id.as_bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (h % u64::from(count)) as u32
}

/// A connection on its way to another worker: the message's payload
/// beside the socket itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Handoff {
    pub number: u64,
    pub peer: SocketAddr,
    /// Output the socket had not taken yet: written first by the owner.
    pub output: Vec<u8>,
    /// The bytes read from the HELLO on, replayed by the owner.
    pub input: Vec<u8>,
}

/// Version byte at the start of a hand-off message.
const VERSION: u8 = 1;

impl Handoff {
    /// `VERSION, number (8, LE), peer length (1), peer text, output length
    /// (4, LE), output, input`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let peer = self.peer.to_string();
        out.clear();
        out.push(VERSION);
        out.extend_from_slice(&self.number.to_le_bytes());
        // A socket address prints in at most 55 bytes.
        out.push(peer.len() as u8);
        out.extend_from_slice(peer.as_bytes());
        out.extend_from_slice(&(self.output.len() as u32).to_le_bytes());
        out.extend_from_slice(&self.output);
        out.extend_from_slice(&self.input);
    }

    /// The hand-off in `data`, or `None` if it is not one this build wrote.
    pub fn decode(data: &[u8]) -> Option<Handoff> {
        let (&version, rest) = data.split_first()?;
        if version != VERSION {
            return None;
        }
        let (number, rest) = rest.split_at_checked(8)?;
        let (&peer_len, rest) = rest.split_first()?;
        let (peer, rest) = rest.split_at_checked(usize::from(peer_len))?;
        let (out_len, rest) = rest.split_at_checked(4)?;
        let out_len = u32::from_le_bytes(out_len.try_into().ok()?) as usize;
        let (output, input) = rest.split_at_checked(out_len)?;
        Some(Handoff {
            number: u64::from_le_bytes(number.try_into().ok()?),
            peer: std::str::from_utf8(peer).ok()?.parse().ok()?,
            output: output.to_vec(),
            input: input.to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_are_stable_and_spread() {
        assert_eq!(owner_of("anything", 1), 0);
        assert_eq!(owner_of("anything", 0), 0);
        // FNV-1a of "a" is 0xaf63dc4c8601ec8c.
        assert_eq!(owner_of("a", 7), (0xaf63_dc4c_8601_ec8c_u64 % 7) as u32);
        let mut per = [0u32; 4];
        for i in 0..4000 {
            per[owner_of(&format!("dev-{i}"), 4) as usize] += 1;
        }
        for n in per {
            assert!((800..1200).contains(&n), "uneven shards: {per:?}");
        }
    }

    #[test]
    fn a_handoff_reads_back_and_bad_ones_are_refused() {
        let h = Handoff {
            number: 2_000_000_000_017,
            peer: "[::1]:40000".parse().unwrap(),
            output: b"PONG 1\n".to_vec(),
            input: b"HELLO dev\nPING 2\n".to_vec(),
        };
        let mut buf = Vec::new();
        h.encode(&mut buf);
        assert_eq!(Handoff::decode(&buf), Some(h.clone()));
        for cut in 0..buf.len() - h.input.len() {
            assert_eq!(Handoff::decode(&buf[..cut]), None, "cut at {cut}");
        }
        buf[0] = 9;
        assert_eq!(Handoff::decode(&buf), None);
        let empty = Handoff {
            output: vec![],
            input: vec![],
            ..h
        };
        empty.encode(&mut buf);
        assert_eq!(Handoff::decode(&buf), Some(empty));
    }
}
