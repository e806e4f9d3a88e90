//! Reading the kernel's routing messages (`NETLINK_ROUTE`, Linux): which
//! local addresses came and went, and how the default route changed.
//! Pure: bytes in, [`NetChange`]s out; the driver owns the socket.
//!
//! A datagram holds one or more messages, each an `nlmsghdr` (length u32,
//! type u16, flags u16, sequence u32, port u32, native byte order), its
//! body, and padding to 4 bytes. Address messages (`RTM_NEWADDR`,
//! `RTM_DELADDR`) carry an `ifaddrmsg` (family, prefix length, flags, scope:
//! u8 each; interface index u32) and attributes; route messages
//! (`RTM_NEWROUTE`, `RTM_DELROUTE`) an `rtmsg` (family, dst_len, src_len,
//! tos, table, protocol, scope, type: u8 each; flags u32) and attributes.
//! An attribute is length u16, type u16, data, padded to 4 bytes.
//!
//! Anything malformed (a length that runs past the buffer or is shorter
//! than its header) ends the parse with what was read so far: nothing the
//! kernel (or anyone) sends can make it panic or loop.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A change the client cares about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetChange {
    /// A local address was added.
    AddrAdded(IpAddr),
    /// A local address went away.
    AddrRemoved(IpAddr),
    /// A default route of the main table was added (`true`) or removed,
    /// with its gateway if it has one.
    DefaultRoute {
        /// Added, or removed.
        added: bool,
        /// Its gateway.
        gateway: Option<IpAddr>,
    },
}

const NLMSG_HDRLEN: usize = 16;
const RTM_NEWADDR: u16 = 20;
const RTM_DELADDR: u16 = 21;
const RTM_NEWROUTE: u16 = 24;
const RTM_DELROUTE: u16 = 25;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const RTA_DST: u16 = 1;
const RTA_GATEWAY: u16 = 5;
const RTA_TABLE: u16 = 15;
const RT_TABLE_MAIN: u32 = 254;
const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn align4(n: usize) -> usize {
    n.saturating_add(3) & !3
}

/// The attributes in `b`: (type, data). Stops at the first malformed one.
fn attrs(b: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    let mut rest = b;
    std::iter::from_fn(move || {
        let len = usize::from(u16_at(rest, 0)?);
        let kind = u16_at(rest, 2)? & 0x3fff;
        let data = rest.get(4..len)?;
        rest = rest.get(align4(len)..).unwrap_or_default();
        Some((kind, data))
    })
}

fn ip(family: u8, data: &[u8]) -> Option<IpAddr> {
    match family {
        AF_INET => Some(IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(data).ok()?))),
        AF_INET6 => Some(IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(data).ok()?))),
        _ => None,
    }
}

/// The changes in one datagram read from a `NETLINK_ROUTE` socket.
pub fn parse(buf: &[u8]) -> Vec<NetChange> {
    let mut out = Vec::new();
    let mut rest = buf;
    while let (Some(len), Some(kind)) = (u32_at(rest, 0), u16_at(rest, 4)) {
        let len = len as usize;
        let Some(body) = rest.get(NLMSG_HDRLEN..len) else {
            break;
        };
        match kind {
            RTM_NEWADDR | RTM_DELADDR => {
                if let Some(c) = addr_change(kind == RTM_NEWADDR, body) {
                    out.push(c);
                }
            }
            RTM_NEWROUTE | RTM_DELROUTE => {
                if let Some(c) = route_change(kind == RTM_NEWROUTE, body) {
                    out.push(c);
                }
            }
            _ => {}
        }
        rest = rest.get(align4(len)..).unwrap_or_default();
    }
    out
}

fn addr_change(added: bool, body: &[u8]) -> Option<NetChange> {
    let family = *body.first()?;
    let mut address = None;
    let mut local = None;
    for (kind, data) in attrs(body.get(8..)?) {
        match kind {
            IFA_ADDRESS => address = ip(family, data),
            IFA_LOCAL => local = ip(family, data),
            _ => {}
        }
    }
    // On point-to-point links IFA_ADDRESS is the peer: the local one wins.
    let a = local.or(address)?;
    Some(if added {
        NetChange::AddrAdded(a)
    } else {
        NetChange::AddrRemoved(a)
    })
}

fn route_change(added: bool, body: &[u8]) -> Option<NetChange> {
    let family = *body.first()?;
    let dst_len = *body.get(1)?;
    let mut table = u32::from(*body.get(4)?);
    let mut gateway = None;
    let mut has_dst = false;
    for (kind, data) in attrs(body.get(12..)?) {
        match kind {
            RTA_TABLE => table = u32_at(data, 0).unwrap_or(table),
            RTA_GATEWAY => gateway = ip(family, data),
            RTA_DST => has_dst = true,
            _ => {}
        }
    }
    (dst_len == 0 && !has_dst && table == RT_TABLE_MAIN)
        .then_some(NetChange::DefaultRoute { added, gateway })
}

/// The IPv4 default gateway in `/proc/net/route`'s text, if any.
pub fn default_gateway(proc_net_route: &str) -> Option<IpAddr> {
    proc_net_route.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        // Iface Destination Gateway Flags ... Mask
        let (dst, gw) = (f.get(1)?, f.get(2)?);
        if *dst != "00000000" {
            return None;
        }
        let gw = u32::from_str_radix(gw, 16).ok()?;
        // The kernel prints the address's bytes as a native-endian u32.
        Some(IpAddr::V4(Ipv4Addr::from(gw.to_ne_bytes())))
    })
}

#[cfg(test)]
mod tests;
