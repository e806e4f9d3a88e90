//! The Redis side of RESP2, as a client speaks it: commands out, replies in.
//!
//! Pure: bytes in, values out. Commands are encoded as multibulk arrays of
//! bulk strings (the only form Redis requires of clients). Replies are
//! parsed from a buffer the caller owns: [`parse`] returns `Ok(None)` until
//! a whole reply is there, so a reply split over many reads is fine. A
//! reply is parsed from its start each time more bytes arrive; cluster
//! replies are small (a status, an owner record, a list of node names), so
//! that costs nothing, and [`MAX_REPLY`] bounds the buffering.
//!
//! vigil's server-side RESP codec (`protocol::resp`) parses requests, not
//! replies, and answers in RESP: the two directions share the wire format
//! but nothing else, so this small client half lives here.

use std::fmt;

/// The largest reply accepted, in bytes: larger means a confused stream.
pub const MAX_REPLY: usize = 16 << 20;

/// A Redis reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// `+OK`
    Status(String),
    /// `-ERR ...`
    Error(String),
    /// `:42`
    Int(i64),
    /// `$n` bytes, or `$-1` (`None`).
    Bulk(Option<Vec<u8>>),
    /// `*n` values, or `*-1` (`None`).
    Array(Option<Vec<Value>>),
}

impl Value {
    /// The bytes of a bulk string or status.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bulk(Some(b)) => Some(b),
            Value::Status(s) => Some(s.as_bytes()),
            _ => None,
        }
    }

    /// The text of a bulk string or status, if UTF-8.
    pub fn as_str(&self) -> Option<&str> {
        self.as_bytes().and_then(|b| std::str::from_utf8(b).ok())
    }
}

/// Why a reply stream cannot be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError(pub &'static str);

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad Redis reply: {}", self.0)
    }
}

/// Appends one command to `out`.
pub fn encode(args: &[&[u8]], out: &mut Vec<u8>) {
    out.push(b'*');
    out.extend_from_slice(args.len().to_string().as_bytes());
    out.extend_from_slice(b"\r\n");
    for a in args {
        out.push(b'$');
        out.extend_from_slice(a.len().to_string().as_bytes());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

/// Parses one reply from the front of `input`: the value and the bytes it
/// used, `Ok(None)` if it is not complete yet.
pub fn parse(input: &[u8]) -> Result<Option<(Value, usize)>, ParseError> {
    match parse_at(input, 0, 0)? {
        Some((v, end)) => Ok(Some((v, end))),
        None if input.len() > MAX_REPLY => Err(ParseError("reply too long")),
        None => Ok(None),
    }
}

/// Arrays may nest this deep, no deeper.
const MAX_DEPTH: usize = 8;

fn parse_at(input: &[u8], at: usize, depth: usize) -> Result<Option<(Value, usize)>, ParseError> {
    if depth > MAX_DEPTH {
        return Err(ParseError("arrays nested too deep"));
    }
    let Some(&kind) = input.get(at) else {
        return Ok(None);
    };
    let Some(line_end) = find_crlf(input, at + 1) else {
        return Ok(None);
    };
    let line = &input[at + 1..line_end];
    let next = line_end + 2;
    let text = || std::str::from_utf8(line).map_err(|_| ParseError("not UTF-8"));
    let int =
        || -> Result<i64, ParseError> { text()?.parse().map_err(|_| ParseError("bad integer")) };
    match kind {
        b'+' => Ok(Some((Value::Status(text()?.to_owned()), next))),
        b'-' => Ok(Some((Value::Error(text()?.to_owned()), next))),
        b':' => Ok(Some((Value::Int(int()?), next))),
        b'$' => {
            let n = int()?;
            if n < 0 {
                return Ok(Some((Value::Bulk(None), next)));
            }
            let n = usize::try_from(n).map_err(|_| ParseError("bad length"))?;
            if n > MAX_REPLY {
                return Err(ParseError("bulk string too long"));
            }
            let end = next + n;
            if input.len() < end + 2 {
                return Ok(None);
            }
            if &input[end..end + 2] != b"\r\n" {
                return Err(ParseError("bulk string without CRLF"));
            }
            Ok(Some((
                Value::Bulk(Some(input[next..end].to_vec())),
                end + 2,
            )))
        }
        b'*' => {
            let n = int()?;
            if n < 0 {
                return Ok(Some((Value::Array(None), next)));
            }
            let n = usize::try_from(n).map_err(|_| ParseError("bad length"))?;
            if n > MAX_REPLY / 4 {
                return Err(ParseError("array too long"));
            }
            let mut items = Vec::with_capacity(n.min(1024));
            let mut pos = next;
            for _ in 0..n {
                match parse_at(input, pos, depth + 1)? {
                    Some((v, end)) => {
                        items.push(v);
                        pos = end;
                    }
                    None => return Ok(None),
                }
            }
            Ok(Some((Value::Array(Some(items)), pos)))
        }
        _ => Err(ParseError("unknown reply type")),
    }
}

fn find_crlf(input: &[u8], from: usize) -> Option<usize> {
    input
        .get(from..)?
        .windows(2)
        .position(|w| w == b"\r\n")
        .map(|i| from + i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_multibulk() {
        let mut out = Vec::new();
        encode(&[b"HGET", b"vigil:online", b"dev 1"], &mut out);
        assert_eq!(
            out,
            b"*3\r\n$4\r\nHGET\r\n$12\r\nvigil:online\r\n$5\r\ndev 1\r\n"
        );
    }

    #[test]
    fn replies_of_every_kind_split_anywhere() {
        let stream =
            b"+OK\r\n-ERR no\r\n:42\r\n$3\r\na\r\n\r\n$-1\r\n*2\r\n$1\r\nx\r\n*1\r\n:7\r\n*-1\r\n";
        let expected = [
            Value::Status("OK".into()),
            Value::Error("ERR no".into()),
            Value::Int(42),
            Value::Bulk(Some(b"a\r\n".to_vec())),
            Value::Bulk(None),
            Value::Array(Some(vec![
                Value::Bulk(Some(b"x".to_vec())),
                Value::Array(Some(vec![Value::Int(7)])),
            ])),
            Value::Array(None),
        ];
        for cut in 0..=stream.len() {
            // What a client sees: the bytes of two reads, parsed as they come.
            let mut buf = stream[..cut].to_vec();
            let mut got = Vec::new();
            let mut fed = false;
            loop {
                match parse(&buf).unwrap() {
                    Some((v, used)) => {
                        got.push(v);
                        buf.drain(..used);
                    }
                    None if !fed => {
                        buf.extend_from_slice(&stream[cut..]);
                        fed = true;
                    }
                    None => break,
                }
            }
            assert_eq!(got, expected, "cut at {cut}");
        }
    }

    #[test]
    fn garbage_is_an_error() {
        for bad in [&b"?x\r\n"[..], b":x\r\n", b"$3\r\nabcd\r\n", b"$-x\r\n"] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        let deep = b"*1\r\n".repeat(20);
        assert!(parse(&deep).is_err());
    }
}
