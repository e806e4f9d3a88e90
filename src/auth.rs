//! Authenticated HELLO: tokens that prove a client may use an id.
//!
//! vigil holds no user database. The application's backend, which knows its
//! users, shares a secret with vigil and mints each client a token for its
//! id; vigil checks the token on `HELLO <id> <token>` and only then lets the
//! connection take the id (and take it over from another connection).
//!
//! # Token format
//! ```text
//! <expiry>.<mac>
//! expiry = the token's last valid second, Unix time, decimal digits (1 to 20)
//! mac    = lowercase hex (64 digits) of HMAC-SHA256(secret, "<expiry>.<id>")
//! ```
//! The signed message starts with the expiry, which holds only digits, so
//! the first `.` splits it from the id without ambiguity, whatever the id.
//! A token is valid while `now <= expiry` (in whole Unix seconds).
//!
//! # Rules
//! - Pure: [`Verifier::check`] takes the wall-clock time from its caller
//!   (the event loop reads it once per turn); it reads no clock itself.
//! - The MAC is compared in constant time (`hmac`'s `verify_slice`, built on
//!   `subtle`), so the time taken says nothing about how much of a guess was
//!   right. Everything compared before it (the shape of the token, the
//!   expiry) is public.
//! - The secret is at least [`MIN_SECRET`] bytes.
//!
//! ```
//! use vigil::auth::Verifier;
//!
//! let v = Verifier::new(b"a secret of sixteen bytes or more").unwrap();
//! let token = v.mint("phone-7", 1_700_000_000);
//! assert_eq!(v.check("phone-7", token.as_bytes(), 1_700_000_000), Ok(()));
//! assert!(v.check("phone-8", token.as_bytes(), 1_700_000_000).is_err());
//! assert!(v.check("phone-7", token.as_bytes(), 1_700_000_001).is_err());
//! ```

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The shortest secret accepted, in bytes.
pub const MIN_SECRET: usize = 16;

/// The longest token accepted, in bytes: 20 digits, a dot, 64 hex digits.
pub const MAX_TOKEN: usize = 20 + 1 + 64;

/// Why a token was refused. Every one of them closes with `BYE unauthorized`;
/// the kind is for the server's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthError {
    /// The HELLO carried no token.
    Missing,
    /// The token is not `<expiry>.<64 hex digits>`.
    Malformed,
    /// The token's expiry has passed.
    Expired,
    /// The MAC does not match the id and expiry under this secret.
    Wrong,
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AuthError::Missing => "no token",
            AuthError::Malformed => "malformed token",
            AuthError::Expired => "expired token",
            AuthError::Wrong => "wrong token",
        })
    }
}

impl std::error::Error for AuthError {}

/// Why a secret cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShortSecret {
    /// The secret's length, in bytes.
    pub len: usize,
}

impl fmt::Display for ShortSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the secret has {} bytes; at least {MIN_SECRET} are needed",
            self.len
        )
    }
}

impl std::error::Error for ShortSecret {}

/// Mints and checks tokens under one secret. See the [module docs](self).
#[derive(Clone)]
pub struct Verifier {
    /// The keyed MAC, ready to be cloned for each token (the key schedule
    /// is done once).
    mac: HmacSha256,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Verifier { secret: <hidden> }")
    }
}

impl Verifier {
    /// A verifier for `secret` (at least [`MIN_SECRET`] bytes).
    pub fn new(secret: &[u8]) -> Result<Verifier, ShortSecret> {
        if secret.len() < MIN_SECRET {
            return Err(ShortSecret { len: secret.len() });
        }
        // HMAC takes a key of any length, so this cannot fail.
        let mac = HmacSha256::new_from_slice(secret).map_err(|_| ShortSecret { len: 0 })?;
        Ok(Verifier { mac })
    }

    /// A verifier for the secret in a file's contents, without trailing
    /// whitespace (so `echo secret > file` works).
    pub fn from_file_contents(contents: &[u8]) -> Result<Verifier, ShortSecret> {
        let end = contents
            .iter()
            .rposition(|b| !b.is_ascii_whitespace())
            .map_or(0, |i| i + 1);
        Verifier::new(&contents[..end])
    }

    /// A token for `id`, valid up to and including Unix second `expiry`.
    pub fn mint(&self, id: &str, expiry: u64) -> String {
        let expiry = expiry.to_string();
        let tag = self.tag(expiry.as_bytes(), id.as_bytes()).finalize();
        let mut token = expiry;
        token.push('.');
        for b in tag.into_bytes() {
            token.push(char::from(HEX[usize::from(b >> 4)]));
            token.push(char::from(HEX[usize::from(b & 0xf)]));
        }
        token
    }

    /// Whether `token` lets a client use `id` at Unix second `now`.
    pub fn check(&self, id: &str, token: &[u8], now: u64) -> Result<(), AuthError> {
        if token.len() > MAX_TOKEN {
            return Err(AuthError::Malformed);
        }
        let dot = token
            .iter()
            .position(|&b| b == b'.')
            .ok_or(AuthError::Malformed)?;
        let (expiry_text, hex) = (&token[..dot], &token[dot + 1..]);
        let expiry = parse_expiry(expiry_text).ok_or(AuthError::Malformed)?;
        let mut given = [0u8; 32];
        if !decode_hex(hex, &mut given) {
            return Err(AuthError::Malformed);
        }
        // The MAC first, so an expired forgery is "wrong", not "expired":
        // only a real token's holder learns that it expired.
        self.tag(expiry_text, id.as_bytes())
            .verify_slice(&given)
            .map_err(|_| AuthError::Wrong)?;
        if now > expiry {
            return Err(AuthError::Expired);
        }
        Ok(())
    }

    fn tag(&self, expiry: &[u8], id: &[u8]) -> HmacSha256 {
        let mut mac = self.mac.clone();
        mac.update(expiry);
        mac.update(b".");
        mac.update(id);
        mac
    }
}

/// The verifier for the secret in file `path`, for binaries (`--auth-secret
/// FILE`). The one function here that does I/O.
pub fn load_secret(path: &std::path::Path) -> Result<Verifier, String> {
    let contents = std::fs::read(path)
        .map_err(|e| format!("cannot read the secret file {}: {e}", path.display()))?;
    Verifier::from_file_contents(&contents).map_err(|e| format!("{}: {e}", path.display()))
}

/// Wall-clock time in whole Unix seconds (0 before 1970): what token
/// expiries are counted in. Read by the event loop once per turn and by
/// binaries that mint tokens; [`Verifier`] itself never reads it.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// 1 to 20 decimal digits, no sign, fitting a `u64`.
fn parse_expiry(text: &[u8]) -> Option<u64> {
    if text.is_empty() || text.len() > 20 || !text.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(text).ok()?.parse().ok()
}

/// Exactly `2 * out.len()` lowercase hex digits.
fn decode_hex(text: &[u8], out: &mut [u8]) -> bool {
    fn digit(b: u8) -> Option<u8> {
        match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            _ => None,
        }
    }
    if text.len() != out.len() * 2 {
        return false;
    }
    for (o, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
        match (digit(pair[0]), digit(pair[1])) {
            (Some(hi), Some(lo)) => *o = hi << 4 | lo,
            _ => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef-test-secret";

    fn v() -> Verifier {
        Verifier::new(SECRET).unwrap()
    }

    #[track_caller]
    fn check(id: &str, token: &[u8], now: u64, expected: Result<(), AuthError>) {
        assert_eq!(
            v().check(id, token, now),
            expected,
            "{id} {:?} at {now}",
            String::from_utf8_lossy(token)
        );
    }

    #[test]
    fn a_known_vector_matches_an_independent_hmac() {
        // Computed with Python: hmac.new(SECRET, b"1700000000.dev-1",
        // hashlib.sha256).hexdigest(), so the README's snippet agrees.
        let token = v().mint("dev-1", 1_700_000_000);
        assert_eq!(
            token,
            "1700000000.bca871657e72a8482e4d8a50b1c3fc2931a12689c3c27c265498a2a0852f66d4"
        );
        assert_eq!(token.len(), 11 + 64);
    }

    #[test]
    fn expiry_boundaries() {
        let t = v().mint("dev", 1000);
        check("dev", t.as_bytes(), 0, Ok(()));
        check("dev", t.as_bytes(), 999, Ok(()));
        check("dev", t.as_bytes(), 1000, Ok(()));
        check("dev", t.as_bytes(), 1001, Err(AuthError::Expired));
        check("dev", t.as_bytes(), u64::MAX, Err(AuthError::Expired));
        let forever = v().mint("dev", u64::MAX);
        check("dev", forever.as_bytes(), u64::MAX, Ok(()));
        let zero = v().mint("dev", 0);
        check("dev", zero.as_bytes(), 0, Ok(()));
        check("dev", zero.as_bytes(), 1, Err(AuthError::Expired));
    }

    #[test]
    fn wrong_id_secret_or_expiry_is_wrong() {
        let t = v().mint("dev", 1000);
        check("dev2", t.as_bytes(), 0, Err(AuthError::Wrong));
        check("de", t.as_bytes(), 0, Err(AuthError::Wrong));
        let other = Verifier::new(b"another secret, also long").unwrap();
        assert_eq!(other.check("dev", t.as_bytes(), 0), Err(AuthError::Wrong));
        // The expiry is signed: pushing it later breaks the MAC.
        let later = t.replacen("1000", "9000", 1);
        check("dev", later.as_bytes(), 0, Err(AuthError::Wrong));
        // A leading zero is another message, so another MAC.
        let padded = format!("0{t}");
        check("dev", padded.as_bytes(), 0, Err(AuthError::Wrong));
        // Each hex digit matters.
        for i in 5..t.len() {
            let mut b = t.clone().into_bytes();
            b[i] = if b[i] == b'0' { b'1' } else { b'0' };
            check("dev", &b, 0, Err(AuthError::Wrong));
        }
        // An expired forgery says "wrong", not "expired".
        check("dev", later.as_bytes(), 10_000, Err(AuthError::Wrong));
    }

    #[test]
    fn the_id_and_expiry_cannot_be_shifted() {
        // "1.2" + "." + "x" would read as "1" + "." + "2.x" if the expiry
        // could hold a dot; it cannot, so the token for one is no good for
        // the other.
        let t = v().mint("2.x", 1);
        let shifted = format!("12{}", &t[1..]);
        check("x", shifted.as_bytes(), 0, Err(AuthError::Wrong));
    }

    #[test]
    fn malformed_tokens() {
        let t = v().mint("dev", 1000);
        let mac = &t[5..];
        for bad in [
            String::new(),
            ".".to_owned(),
            "1000".to_owned(),
            format!("1000{mac}"),
            format!(".{mac}"),
            format!("-1.{mac}"),
            format!("+1.{mac}"),
            format!("1 .{mac}"),
            format!("99999999999999999999.{mac}"), // 20 digits, > u64::MAX
            format!("100000000000000000000.{mac}"), // 21 digits
            format!("1000.{}", &mac[..63]),
            format!("1000.{mac}0"),
            format!("1000.{}", mac.to_uppercase()),
            format!("1000.{}g", &mac[..63]),
            format!("1000.{mac}.1"),
            "x".repeat(MAX_TOKEN + 1),
        ] {
            check("dev", bad.as_bytes(), 0, Err(AuthError::Malformed));
        }
        check("dev", b"1000.\xff\xfe", 0, Err(AuthError::Malformed));
    }

    #[test]
    fn secrets_are_long_enough_and_trimmed() {
        assert_eq!(Verifier::new(b"short").err(), Some(ShortSecret { len: 5 }));
        assert!(Verifier::new(&[b'x'; MIN_SECRET - 1]).is_err());
        assert!(Verifier::new(&[b'x'; MIN_SECRET]).is_ok());
        let mut file = SECRET.to_vec();
        file.extend_from_slice(b"\n\n ");
        let from_file = Verifier::from_file_contents(&file).unwrap();
        assert_eq!(from_file.mint("a", 5), v().mint("a", 5));
        assert!(Verifier::from_file_contents(b"   \n").is_err());
        assert!(!format!("{:?}", v()).contains("test-secret"));
    }
}
