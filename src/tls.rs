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
    use std::collections::VecDeque;

    /// One end of an in-memory socket pair: reads what the other end wrote,
    /// at most `max_read` bytes a call, `WouldBlock` when there is nothing
    /// and the other end has not closed, `Ok(0)` when it has.
    struct End<'a> {
        inbox: &'a mut VecDeque<u8>,
        outbox: &'a mut VecDeque<u8>,
        peer_closed: bool,
        max_read: usize,
        reads: usize,
    }

    impl Read for End<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.reads += 1;
            if self.inbox.is_empty() {
                return if self.peer_closed {
                    Ok(0)
                } else {
                    Err(io::ErrorKind::WouldBlock.into())
                };
            }
            let n = buf.len().min(self.max_read).min(self.inbox.len());
            for (b, x) in buf.iter_mut().zip(self.inbox.drain(..n)) {
                *b = x;
            }
            Ok(n)
        }
    }

    impl Write for End<'_> {
        fn write(&mut self, data: &[u8]) -> io::Result<usize> {
            self.outbox.extend(data);
            Ok(data.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// A server and a client connection for `localhost`, with a certificate
    /// made in memory, and the two directions of the wire between them.
    struct Pair {
        server: rustls::ServerConnection,
        client: rustls::ClientConnection,
        to_server: VecDeque<u8>,
        to_client: VecDeque<u8>,
    }

    impl Pair {
        fn new() -> Pair {
            let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])
                .expect("certificate");
            let der = cert.cert.der().clone();
            let key = PrivateKeyDer::try_from(cert.key_pair.serialize_der()).expect("key");
            let server = rustls::ServerConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .expect("versions")
                .with_no_client_auth()
                .with_single_cert(vec![der.clone()], key)
                .expect("server config");
            let mut roots = rustls::RootCertStore::empty();
            roots.add(der).expect("root");
            let client = rustls::ClientConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .expect("versions")
                .with_root_certificates(roots)
                .with_no_client_auth();
            let name = ServerName::try_from("localhost").expect("name");
            Pair {
                server: rustls::ServerConnection::new(Arc::new(server)).expect("server"),
                client: rustls::ClientConnection::new(Arc::new(client), name).expect("client"),
                to_server: VecDeque::new(),
                to_client: VecDeque::new(),
            }
        }

        /// The server's end of the wire, handing out `max_read` bytes a read.
        fn server_end(&mut self, max_read: usize) -> (&mut rustls::ServerConnection, End<'_>) {
            let end = End {
                inbox: &mut self.to_server,
                outbox: &mut self.to_client,
                peer_closed: false,
                max_read,
                reads: 0,
            };
            (&mut self.server, end)
        }

        /// The client writes `data` (held by rustls until the handshake is
        /// done); both sides run the handshake through `read` and `flush`
        /// only, until the server has `data`'s plaintext, which it returns.
        fn handshake_with(&mut self, data: &[u8]) -> Vec<u8> {
            let mut got = Vec::new();
            let mut buf = [0; 1024];
            let mut end = End {
                inbox: &mut self.to_client,
                outbox: &mut self.to_server,
                peer_closed: false,
                max_read: usize::MAX,
                reads: 0,
            };
            assert_eq!(
                write(&mut self.client, &mut end, data).ok(),
                Some(data.len())
            );
            for _ in 0..10 {
                let mut end = End {
                    inbox: &mut self.to_client,
                    outbox: &mut self.to_server,
                    peer_closed: false,
                    max_read: usize::MAX,
                    reads: 0,
                };
                match read(&mut self.client, &mut end, &mut buf) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    other => panic!("the client read {other:?}"),
                }
                flush(&mut self.client, &mut end).expect("client flush");
                let (server, mut end) = self.server_end(usize::MAX);
                match read(server, &mut end, &mut buf) {
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => panic!("the server read {e}"),
                }
                if got.len() == data.len() {
                    return got;
                }
            }
            panic!("no plaintext after 10 round trips: {got:?}");
        }

        /// The client sends `data` (after the handshake).
        fn client_sends(&mut self, data: &[u8]) {
            let mut end = End {
                inbox: &mut self.to_client,
                outbox: &mut self.to_server,
                peer_closed: false,
                max_read: usize::MAX,
                reads: 0,
            };
            self.client.set_buffer_limit(None);
            assert_eq!(
                write(&mut self.client, &mut end, data).ok(),
                Some(data.len())
            );
        }
    }

    #[test]
    fn the_handshake_runs_on_reads_and_what_was_written_before_it_arrives() {
        let mut pair = Pair::new();
        assert_eq!(pair.handshake_with(b"HELLO dev\n"), b"HELLO dev\n");
        assert!(!pair.server.is_handshaking());
        assert!(!pair.client.is_handshaking());
    }

    #[test]
    fn a_read_is_short_only_when_the_socket_is_drained() {
        let mut pair = Pair::new();
        pair.handshake_with(b"x");
        // 100,000 bytes of plaintext, handed out 4 KB a socket read (as
        // rustls reads): the first read fills the 64 KB buffer, from many
        // socket reads; the second returns the rest, short because the
        // socket said WouldBlock; the third says WouldBlock itself.
        let sent: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        pair.client_sends(&sent);
        let mut buf = vec![0; 64 * 1024];
        let mut got = Vec::new();
        let (server, mut end) = pair.server_end(4096);
        assert_eq!(read(server, &mut end, &mut buf).ok(), Some(buf.len()));
        assert!(end.reads > 10, "{} socket reads", end.reads);
        got.extend_from_slice(&buf);
        let n = read(server, &mut end, &mut buf).expect("the rest");
        assert!(n < buf.len() && n > 0, "{n}");
        assert!(
            end.inbox.is_empty(),
            "short only once the socket is drained"
        );
        got.extend_from_slice(&buf[..n]);
        assert_eq!(got, sent);
        let e = read(server, &mut end, &mut buf).expect_err("nothing left");
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        // A buffer smaller than what is decrypted takes it in turns.
        pair.client_sends(b"PING\nPING\n");
        let (server, mut end) = pair.server_end(4096);
        let mut small = [0; 4];
        assert_eq!(read(server, &mut end, &mut small).ok(), Some(4));
        assert_eq!(&small, b"PING");
        let mut rest = [0; 16];
        assert_eq!(read(server, &mut end, &mut rest).ok(), Some(6));
        assert_eq!(&rest[..6], b"\nPING\n");
    }

    #[test]
    fn a_close_notify_and_a_bare_fin_both_end_the_stream() {
        let mut pair = Pair::new();
        pair.handshake_with(b"x");
        pair.client_sends(b"last\n");
        pair.client.send_close_notify();
        let mut out = End {
            inbox: &mut VecDeque::new(),
            outbox: &mut pair.to_server,
            peer_closed: false,
            max_read: usize::MAX,
            reads: 0,
        };
        flush(&mut pair.client, &mut out).expect("flush");
        let mut buf = [0; 64];
        let (server, mut end) = pair.server_end(usize::MAX);
        assert_eq!(read(server, &mut end, &mut buf).ok(), Some(5));
        assert_eq!(read(server, &mut end, &mut buf).ok(), Some(0));

        let mut pair = Pair::new();
        pair.handshake_with(b"x");
        let (server, mut end) = pair.server_end(usize::MAX);
        end.peer_closed = true;
        assert_eq!(read(server, &mut end, &mut buf).ok(), Some(0));
    }

    #[test]
    fn garbage_is_invalid_data_and_the_peer_is_told_why() {
        for garbage in [
            &b"HELLO plain\n"[..],
            &[0x16, 0x03, 0x01, 0xff, 0xff, 0x01],
            &[0; 16],
        ] {
            let mut pair = Pair::new();
            pair.to_server.extend(garbage);
            let mut buf = [0; 64];
            let (server, mut end) = pair.server_end(usize::MAX);
            let e = read(server, &mut end, &mut buf).expect_err("not TLS");
            assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{garbage:?}");
            // An alert record (content type 21) went back.
            assert_eq!(pair.to_client.front(), Some(&21), "{garbage:?}");
        }
    }

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
