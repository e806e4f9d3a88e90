//! TLS for the server: the certificate and key it is given, and one rustls
//! `ServerConnection` per accepted connection, boxed in [`TlsConns`], a
//! table beside the slab indexed by the same key. With TLS off the table is
//! empty: a plain connection pays nothing for TLS, not even a field in
//! [`Conn`](super::conn::Conn).
//!
//! The handshake runs in the event loop like any other input: the bytes a
//! read brings go to rustls, the records it answers with are written at
//! once (see [`crate::tls`]). A handshake has no deadline of its own: the
//! session sees no frame until it is done, so a connection whose handshake
//! stalls is closed by the heartbeat deadline (`timeout`), like a
//! connection that says nothing.
//!
//! # Memory
//! A `ServerConnection` is 1,168 bytes by itself (boxed), its traffic keys
//! and record layer live on the heap beside it, and rustls keeps a 4 KB
//! receive buffer once a connection has read anything, idle or not (it
//! shrinks it to 4 KB but never frees it); its send and plaintext queues
//! hold nothing while idle. BENCHMARKS.md has the measured cost of an idle
//! TLS connection next to a plain one.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::ServerConnection;

use crate::error::{Error, ErrorKind};

/// The certificate chain and private key a server presents (PEM files).
///
/// ```no_run
/// use vigil::server::{Server, TlsFiles};
///
/// let server = Server::builder()
///     .listen("0.0.0.0:7700")
///     .tls(TlsFiles::new("cert.pem", "key.pem"))
///     .build()?;
/// # Ok::<(), vigil::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, the server's own certificate first.
    pub cert: PathBuf,
    /// The private key of the first certificate (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

impl TlsFiles {
    /// The chain in `cert` and the key in `key`.
    pub fn new(cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> TlsFiles {
        TlsFiles {
            cert: cert.into(),
            key: key.into(),
        }
    }
}

/// The rustls server settings for `files`: TLS 1.2 and 1.3, no client
/// certificates. Fails (kind [`ErrorKind::Io`]: the flags were right, the
/// files are not, so `vigil serve` exits 1, not 2) on a file that cannot
/// be read, holds no certificate or key, or a key that does not match.
pub(crate) fn server_config(files: &TlsFiles) -> Result<Arc<rustls::ServerConfig>, Error> {
    let config = || -> Result<rustls::ServerConfig, String> {
        let certs = crate::tls::load_certs(&files.cert)?;
        let key = crate::tls::load_key(&files.key)?;
        rustls::ServerConfig::builder_with_provider(crate::tls::provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS settings: {e}"))?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| {
                format!(
                    "TLS certificate {} with key {}: {e}",
                    files.cert.display(),
                    files.key.display()
                )
            })
    };
    config()
        .map(Arc::new)
        .map_err(|e| Error::new(ErrorKind::Io, e))
}

/// The TLS connection of every connection, by slab key: one 8-byte slot
/// per key ever used while TLS is on; nothing at all while it is off.
#[derive(Default)]
pub(crate) struct TlsConns {
    config: Option<Arc<rustls::ServerConfig>>,
    slots: Vec<Option<Box<ServerConnection>>>,
}

impl TlsConns {
    /// Connections accepted from now on speak TLS with `config` (`None`:
    /// plain TCP).
    pub fn new(config: Option<Arc<rustls::ServerConfig>>) -> TlsConns {
        TlsConns {
            config,
            slots: Vec::new(),
        }
    }

    /// Starts TLS for the connection taking slab key `key`, when TLS is on;
    /// its unsent records are capped at `max_output` bytes (past the cap a
    /// write is refused: `OutputOverflow`).
    pub fn accept(&mut self, key: usize, max_output: usize) -> Result<(), rustls::Error> {
        let Some(config) = &self.config else {
            return Ok(());
        };
        let mut tls = ServerConnection::new(Arc::clone(config))?;
        tls.set_buffer_limit(Some(max_output));
        if self.slots.len() <= key {
            self.slots.resize_with(key + 1, || None);
        }
        if let Some(slot) = self.slots.get_mut(key) {
            *slot = Some(Box::new(tls));
        }
        Ok(())
    }

    /// The TLS connection in front of slab key `key`, if any.
    pub fn get_mut(&mut self, key: usize) -> Option<&mut ServerConnection> {
        self.slots.get_mut(key)?.as_deref_mut()
    }

    /// Drops the TLS connection of `key` (removed from the slab).
    pub fn remove(&mut self, key: usize) {
        if let Some(slot) = self.slots.get_mut(key) {
            *slot = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreadable_files_are_errors_naming_the_file() {
        let missing = TlsFiles::new("/nonexistent/cert.pem", "/nonexistent/key.pem");
        let e = server_config(&missing).expect_err("no such file");
        assert_eq!(e.kind(), ErrorKind::Io);
        assert!(e.to_string().contains("/nonexistent/cert.pem"), "{e}");
        // A file that is not PEM holds no certificate.
        let not_pem = TlsFiles::new("Cargo.toml", "Cargo.toml");
        let e = server_config(&not_pem).expect_err("not PEM");
        assert!(
            e.to_string().contains("no certificate in Cargo.toml"),
            "{e}"
        );
    }

    #[test]
    fn the_table_is_empty_when_tls_is_off_and_follows_keys_when_on() {
        let mut off = TlsConns::new(None);
        assert_eq!(off.accept(5, 100), Ok(()));
        assert!(off.get_mut(5).is_none());
        assert_eq!(off.slots.capacity(), 0, "TLS off allocates nothing");

        let config = rustls::ServerConfig::builder_with_provider(crate::tls::provider())
            .with_safe_default_protocol_versions()
            .expect("ring supports the defaults")
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(rustls::server::ResolvesServerCertUsingSni::new()));
        let mut on = TlsConns::new(Some(Arc::new(config)));
        assert_eq!(on.accept(3, 100), Ok(()));
        assert!(on.get_mut(3).is_some());
        assert!(on.get_mut(2).is_none());
        assert!(on.get_mut(4).is_none());
        on.remove(3);
        assert!(
            on.get_mut(3).is_none(),
            "a reused key starts without TLS state"
        );
        on.remove(99);
        assert_eq!(std::mem::size_of::<Option<Box<ServerConnection>>>(), 8);
    }
}
