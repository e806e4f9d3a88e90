//! How a server joins a cluster: [`ClusterOptions`] and [`who`].

use super::*;

/// How a server joins a cluster: what `vigil serve --cluster` sets.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClusterOptions {
    /// Redis, as `HOST:PORT`.
    pub redis: String,
    /// This node's id; default `HOST:PORT` of its first listening address.
    pub node_id: Option<String>,
    /// Prefix of every key and channel. Default `vigil:`.
    pub prefix: String,
}

impl ClusterOptions {
    /// Redis at `url`: `redis://HOST:PORT` or `HOST:PORT`.
    pub fn parse(url: &str) -> Result<ClusterOptions, String> {
        let addr = match url.split_once("://") {
            Some(("redis", rest)) => rest,
            Some((scheme, _)) => {
                return Err(format!(
                    "unsupported cluster engine {scheme:?} in {url:?}: expected redis://HOST:PORT"
                ))
            }
            None => url,
        };
        let addr = addr.trim_end_matches('/');
        if addr.is_empty() || !addr.contains(':') {
            return Err(format!(
                "invalid cluster address {url:?}: expected redis://HOST:PORT"
            ));
        }
        Ok(ClusterOptions {
            redis: addr.to_owned(),
            node_id: None,
            prefix: "vigil:".to_owned(),
        })
    }
}

/// Asks Redis who holds client id `id`: its owner record (JSON), or `None`
/// when it is offline in the whole cluster. Blocking, with `timeout` for
/// the connect and each read and write: for command-line tools, not for the
/// event loop.
pub fn who(
    options: &ClusterOptions,
    id: &str,
    timeout: std::time::Duration,
) -> Result<Option<String>, crate::Error> {
    use crate::error::{Error, ErrorKind};
    use std::io::{Read, Write};
    let io = |what: &str, e: std::io::Error| {
        Error::with_source(
            ErrorKind::Io,
            format!("{what} Redis at {}", options.redis),
            e,
        )
    };
    let addr = crate::addr::resolve(options.redis.as_str())?[0];
    let mut stream = std::net::TcpStream::connect_timeout(&addr, timeout)
        .map_err(|e| io("cannot connect to", e))?;
    stream
        .set_read_timeout(Some(timeout))
        .map_err(|e| io("cannot set up", e))?;
    stream
        .set_write_timeout(Some(timeout))
        .map_err(|e| io("cannot set up", e))?;
    let mut out = Vec::new();
    let key = format!("{}online", options.prefix);
    resp::encode(&[b"HGET", key.as_bytes(), id.as_bytes()], &mut out);
    stream
        .write_all(&out)
        .map_err(|e| io("cannot write to", e))?;
    let mut input = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let bad = |e: resp::ParseError| Error::new(ErrorKind::Io, e.to_string());
        if let Some((value, _)) = resp::parse(&input).map_err(bad)? {
            return match value {
                Value::Bulk(Some(b)) => Ok(Some(String::from_utf8_lossy(&b).into_owned())),
                Value::Bulk(None) => Ok(None),
                Value::Error(e) => Err(Error::new(ErrorKind::Io, format!("Redis: {e}"))),
                other => Err(Error::new(
                    ErrorKind::Io,
                    format!("unexpected reply {other:?}"),
                )),
            };
        }
        let n = stream
            .read(&mut buf)
            .map_err(|e| io("cannot read from", e))?;
        if n == 0 {
            return Err(Error::new(ErrorKind::Io, "Redis closed the connection"));
        }
        input.extend_from_slice(&buf[..n]);
    }
}
