//! TLS as a transport, with rustls (the `ring` provider).
//!
//! rustls is sans-IO: a connection object takes the bytes the socket gave
//! (`read` calls `read_tls` and `process_new_packets`), hands back the
//! plaintext, and holds the records it wants sent until `flush` writes
//! them. The loops that own the sockets (the server's, `vigil client`'s and
//! `vigil load`'s) call these three functions where they would call
//! `read`/`write` on the socket; sessions and codecs never see TLS.
//!
//! # Rules
//! - `read` returns what a socket read returns: `Ok(n > 0)` plaintext,
//!   `Ok(0)` the end of the stream (a `close_notify` or a TCP FIN), or an
//!   error, `WouldBlock` included. It fills `buf` from as many socket reads
//!   as it takes, and returns less than `buf.len()` only when the socket
//!   said `WouldBlock` or reached its end, so a caller that skips the read
//!   after a short one (edge-triggered epoll) never leaves bytes behind.
//! - Records the handshake produces are written as soon as they exist
//!   (inside `read`); whatever the socket does not take waits in rustls
//!   for the next `flush` (on a writable event).
//! - Bad TLS input (garbage instead of a ClientHello, a bad record) is an
//!   `InvalidData` error, after a best-effort alert to the peer.
//!
//! # Memory
//! rustls keeps a receive buffer in each connection once it has read
//! anything: shrunk back to 4 KB when empty, never freed, and no call
//! releases it. Its send and plaintext queues are empty while idle. So an
//! idle TLS connection does hold a buffer, unlike a plain one; the measured
//! cost is in BENCHMARKS.md.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::ConnectionCommon;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};

/// How `vigil client` and `vigil load` check the server's certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsClient {
    /// PEM file of the certificate authorities to trust; `None` (the
    /// default): the system's (`/etc/ssl/certs`, as OpenSSL finds them).
    pub ca: Option<PathBuf>,
    /// The name the server's certificate must carry; `None` (the default):
    /// the host of the server address (a DNS name or an IP address).
    pub name: Option<String>,
}

/// The one crypto provider: ring.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Every certificate in a PEM file, in order.
pub(crate) fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("cannot read certificates from {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("no certificate in {}", path.display()));
    }
    Ok(certs)
}

/// The first private key in a PEM file (PKCS#8, PKCS#1 or SEC1).
pub(crate) fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_file(path)
        .map_err(|e| format!("cannot read a private key from {}: {e}", path.display()))
}

impl TlsClient {
    /// The rustls client settings: the roots to trust, TLS 1.2 and 1.3.
    pub(crate) fn config(&self) -> Result<Arc<rustls::ClientConfig>, String> {
        let mut roots = rustls::RootCertStore::empty();
        match &self.ca {
            Some(path) => {
                for cert in load_certs(path)? {
                    roots
                        .add(cert)
                        .map_err(|e| format!("bad CA certificate in {}: {e}", path.display()))?;
                }
            }
            None => {
                let found = rustls_native_certs::load_native_certs();
                let (added, _) = roots.add_parsable_certificates(found.certs);
                if added == 0 {
                    return Err(
                        "no system CA certificates found: give the server's CA with --ca FILE"
                            .to_owned(),
                    );
                }
            }
        }
        let config = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS settings: {e}"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Arc::new(config))
    }

    /// The name to check the certificate of `server` (`HOST:PORT`) against.
    pub(crate) fn server_name(&self, server: &str) -> Result<ServerName<'static>, String> {
        let name = match &self.name {
            Some(name) => name.as_str(),
            None => host_of(server),
        };
        ServerName::try_from(name.to_owned())
            .map_err(|e| format!("--tls-name: {name:?} is not a DNS name or IP address: {e}"))
    }
}

/// The host part of `HOST:PORT` or `[V6]:PORT`: the name a server's
/// certificate is checked against when none is given.
pub fn host_of(server: &str) -> &str {
    let host = server
        .trim()
        .rsplit_once(':')
        .map_or(server.trim(), |(h, _)| h);
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
}

/// Reads plaintext into `buf`: see the module's rules.
pub(crate) fn read<D>(
    tls: &mut ConnectionCommon<D>,
    sock: &mut (impl Read + Write),
    buf: &mut [u8],
) -> io::Result<usize> {
    let mut filled = 0;
    loop {
        // What rustls already decrypted goes first.
        match tls.reader().read(buf.get_mut(filled..).unwrap_or_default()) {
            Ok(0) if filled < buf.len() => return Ok(filled), // close_notify
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            // The socket ended without a close_notify: an end all the same
            // (the protocols frame their own messages, so no truncation
            // can pass for a whole message).
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(filled),
            Err(e) => return Err(e),
        }
        if filled == buf.len() {
            return Ok(filled);
        }
        match tls.read_tls(sock) {
            Ok(0) => return Ok(filled),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && filled > 0 => return Ok(filled),
            Err(e) => return Err(e),
        }
        if let Err(e) = tls.process_new_packets() {
            // rustls queued an alert saying why: try to send it.
            let _ = flush(tls, sock);
            return Err(io::Error::new(io::ErrorKind::InvalidData, e));
        }
        flush(tls, sock)?;
    }
}

/// Encrypts `data` (or holds it until the handshake is done) and writes
/// what the socket takes. Returns how much of `data` rustls accepted: less
/// than all of it when its buffer limit is reached; `WouldBlock` if none.
pub(crate) fn write<D>(
    tls: &mut ConnectionCommon<D>,
    sock: &mut impl Write,
    data: &[u8],
) -> io::Result<usize> {
    let n = tls.writer().write(data)?;
    flush(tls, sock)?;
    if n == 0 && !data.is_empty() {
        return Err(io::ErrorKind::WouldBlock.into());
    }
    Ok(n)
}

/// Writes the records rustls holds until there are none or the socket is
/// full.
pub(crate) fn flush<D>(tls: &mut ConnectionCommon<D>, sock: &mut impl Write) -> io::Result<()> {
    while tls.wants_write() {
        match tls.write_tls(sock) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// A socket seen through a TLS connection, as an `io::Write` for the
/// client's write loop ([`crate::client::transmit`]).
pub(crate) struct Writer<'a, D, S> {
    pub tls: &'a mut ConnectionCommon<D>,
    pub sock: &'a mut S,
}

impl<D, S: Write> Write for Writer<'_, D, S> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        write(self.tls, self.sock, data)
    }

    fn flush(&mut self) -> io::Result<()> {
        flush(self.tls, self.sock)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_is_taken_from_the_server_address() {
        assert_eq!(host_of("localhost:7700"), "localhost");
        assert_eq!(host_of("127.0.0.1:7700"), "127.0.0.1");
        assert_eq!(host_of("[::1]:7700"), "::1");
        assert_eq!(host_of(" example.org:1 "), "example.org");
        let tls = TlsClient::default();
        assert!(tls.server_name("[::1]:7700").is_ok());
        assert!(tls.server_name("bad name!:7700").is_err());
        let named = TlsClient {
            name: Some("vigil.test".to_owned()),
            ca: None,
        };
        assert_eq!(
            named
                .server_name("127.0.0.1:1")
                .map(|n| n.to_str().into_owned()),
            Ok("vigil.test".to_owned())
        );
    }
}
