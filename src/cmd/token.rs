//! `vigil token`: mints a token for `HELLO <id> <token>` (for testing, and
//! as the reference for a backend that mints its own; see the README).

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use vigil::duration::parse_duration;

/// Flags of `vigil token`.
#[derive(Args, Debug)]
pub struct TokenArgs {
    /// File holding the shared secret (at least 16 bytes; trailing whitespace is ignored).
    #[arg(env = "VIGIL_TOKEN_AUTH_SECRET", long, value_name = "FILE")]
    auth_secret: String,
    /// The client id the token is for.
    #[arg(env = "VIGIL_TOKEN_ID", long, value_name = "ID")]
    id: String,
    /// How long the token stays valid: ms, s, m, h or d (e.g. 10m, 24h, 30d).
    #[arg(env = "VIGIL_TOKEN_TTL", long, value_name = "D", value_parser = parse_ttl, default_value = "24h")]
    ttl: Duration,
}

/// A duration as the other flags take it, or whole hours (`24h`) or days
/// (`30d`), which token lifetimes are usually counted in.
fn parse_ttl(s: &str) -> Result<Duration, String> {
    let long = |n: &str, secs: u64| {
        n.parse::<u64>()
            .ok()
            .filter(|_| n.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|n| n.checked_mul(secs))
            .map(Duration::from_secs)
            .ok_or_else(|| format!("invalid duration {s:?}"))
    };
    if let Some(n) = s.strip_suffix('h') {
        return long(n, 3600);
    }
    if let Some(n) = s.strip_suffix('d') {
        return long(n, 86_400);
    }
    parse_duration(s).map_err(|e| e.to_string())
}

/// Prints the token on stdout: 0 then, 2 for an unusable id, 1 when the
/// secret cannot be read.
pub fn run(args: TokenArgs) -> ExitCode {
    if !vigil::protocol::valid_client_id(args.id.as_bytes()) {
        vigil::logging::fatal(
            "vigil token: the client id must be 1 to 128 printable ASCII characters without spaces",
        );
        return ExitCode::from(2);
    }
    match vigil::auth::load_secret(args.auth_secret.as_ref()) {
        Ok(v) => {
            let expiry = vigil::auth::unix_now().saturating_add(args.ttl.as_secs());
            println!("{}", v.mint(&args.id, expiry));
            ExitCode::SUCCESS
        }
        Err(e) => {
            vigil::logging::fatal(&format!("vigil token: {e}"));
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifetimes_parse() {
        assert_eq!(parse_ttl("24h"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_ttl("2d"), Ok(Duration::from_secs(172_800)));
        assert_eq!(parse_ttl("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_ttl("10m"), Ok(Duration::from_secs(600)));
        for bad in ["h", "d", "-1h", "+1h", "1.5h", "99999999999999999999d", "x"] {
            assert!(parse_ttl(bad).is_err(), "{bad}");
        }
    }
}
