//! TLS for the server: the certificate and key it is given, and one rustls
//! `ServerConnection` per accepted connection, boxed in
//! [`Conn::tls`](super::conn::Conn) (8 bytes in every connection, and no
//! heap, when TLS is off).
//!
//! The handshake runs in the event loop like any other input: the bytes a
//! read brings go to rustls, the records it answers with are written at
//! once (see [`crate::tls`]). A handshake has no deadline of its own: the
//! session sees no frame until it is done, so a connection whose handshake
//! stalls is closed by the heartbeat deadline (`timeout`), like a
//! connection that says nothing.
//!
//! # Memory
//! A `ServerConnection` is about 1 KB by itself, and rustls keeps a 4 KB
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
/// certificates. Fails (kind [`ErrorKind::Config`]) on a file that cannot
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
        .map_err(|e| Error::new(ErrorKind::Config, e))
}

/// A new server-side TLS connection whose unsent records are capped at
/// `max_output` bytes (beyond it, a write is refused: `OutputOverflow`).
pub(crate) fn accept(
    config: &Arc<rustls::ServerConfig>,
    max_output: usize,
) -> Result<Box<ServerConnection>, rustls::Error> {
    let mut tls = ServerConnection::new(Arc::clone(config))?;
    tls.set_buffer_limit(Some(max_output));
    Ok(Box::new(tls))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreadable_files_are_config_errors_naming_the_file() {
        let missing = TlsFiles::new("/nonexistent/cert.pem", "/nonexistent/key.pem");
        let e = server_config(&missing).expect_err("no such file");
        assert_eq!(e.kind(), ErrorKind::Config);
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
    fn a_tls_connection_costs_eight_bytes_in_conn() {
        assert_eq!(std::mem::size_of::<Option<Box<ServerConnection>>>(), 8);
    }
}
