//! Watching the kernel's address and route changes: a non-blocking
//! `NETLINK_ROUTE` socket in the client's `Poll`, read until `WouldBlock`,
//! parsed by [`crate::client::netlink`]. When the address the connection
//! uses goes away, or the default route changes, the session is told at
//! once ([`Session::handle_network_change`]) instead of finding out at its
//! next unanswered beat.
//!
//! [`Session::handle_network_change`]: crate::client::Session::handle_network_change

use std::io;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, OwnedFd};

use log::{debug, info};
use mio::unix::SourceFd;
use mio::{Interest, Poll};

use super::{Driver, Error, NETLINK};
use crate::client::netlink::{self, NetChange};
use crate::client::session::{NetworkKey, Phase};

/// The socket and the default gateway last seen.
pub(super) struct NetWatch {
    fd: OwnedFd,
    gateway: Option<IpAddr>,
}

impl NetWatch {
    pub(super) fn open(poll: &Poll) -> io::Result<NetWatch> {
        let fd = crate::sys::netlink_route_socket()?;
        poll.registry()
            .register(&mut SourceFd(&fd.as_raw_fd()), NETLINK, Interest::READABLE)?;
        let gateway = std::fs::read_to_string("/proc/net/route")
            .ok()
            .and_then(|t| netlink::default_gateway(&t));
        Ok(NetWatch { fd, gateway })
    }
}

impl Driver {
    /// The main connection is up from `local`: tell the session its network.
    pub(super) fn report_network(&mut self, now: crate::time::Tick, local: Option<IpAddr>) {
        let gateway = self.netlink.as_ref().and_then(|w| w.gateway);
        self.session
            .handle_network(now, NetworkKey { local, gateway });
    }

    /// Reads every pending netlink message and acts on the changes.
    pub(super) fn handle_netlink(&mut self) -> Result<(), Error> {
        let mut buf = [0u8; 8192];
        let mut changed = None;
        let mut address_came = false;
        loop {
            let Some(w) = self.netlink.as_mut() else {
                return Ok(());
            };
            let n = match crate::sys::recv(w.fd.as_raw_fd(), &mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // ENOBUFS: the kernel dropped messages; assume a change.
                    debug!("netlink: {e}");
                    changed.get_or_insert_with(|| format!("netlink: {e}"));
                    continue;
                }
            };
            let local = self
                .conn
                .as_ref()
                .filter(|c| c.connected)
                .and_then(|c| c.stream.local_addr().ok())
                .map(|a| a.ip());
            for change in netlink::parse(buf.get(..n).unwrap_or_default()) {
                debug!("netlink: {change:?}");
                match change {
                    NetChange::AddrRemoved(ip) if Some(ip) == local => {
                        changed.get_or_insert_with(|| format!("local address {ip} removed"));
                    }
                    NetChange::AddrAdded(_) => address_came = true,
                    NetChange::DefaultRoute { added, gateway } => {
                        let new = if added { gateway } else { None };
                        if !added && gateway.is_some() && gateway != w.gateway {
                            continue; // another default route went away
                        }
                        if new != w.gateway {
                            changed.get_or_insert_with(|| {
                                format!(
                                    "default route {} (gateway {})",
                                    if added { "added" } else { "removed" },
                                    gateway.map_or_else(|| "none".to_owned(), |g| g.to_string())
                                )
                            });
                            w.gateway = new;
                        }
                    }
                    NetChange::AddrRemoved(_) => {}
                }
            }
        }
        let now = self.now();
        if let Some(why) = changed {
            info!("network changed: {why}; reconnecting at once");
            self.session.handle_network_change(now);
        } else if address_came && self.session.phase() == Phase::Waiting {
            // A new address while waiting out a backoff: try at once.
            info!("network changed: address added; reconnecting at once");
            self.session.handle_network_change(now);
        }
        self.pump()
    }
}
