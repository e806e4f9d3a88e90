//! The connection commands Redis clients send when they connect, in
//! Redis's spelling: `HELLO`, `AUTH`, `CLIENT GETNAME|ID|SETINFO`,
//! `SELECT`, `INFO`, `ECHO`, `RESET`. See the parent module's table.
//!
//! Errors are spelled as Redis 7 spells them, because clients look at
//! them to decide what to do: redis-py and others fall back or give up on
//! `NOPROTO`, and treat a wrong-number-of-arguments error as Redis's.

use super::{bulk, Request};
use crate::protocol::{valid_client_id, Command, Frame};

/// `ERR wrong number of arguments for '<name>' command`, per command.
macro_rules! arity {
    ($name:literal) => {
        Command::Error(concat!(
            "ERR wrong number of arguments for '",
            $name,
            "' command"
        ))
    };
}

/// The frame for a request named `HELLO`, `AUTH`, `SELECT`, `INFO`,
/// `ECHO` or `RESET`, or `None` for any other name.
pub(super) fn frame<'a, const N: usize>(r: &Request<'a, N>) -> Option<Frame<'a>> {
    let name = r.argv.first().copied().unwrap_or_default();
    let is = |s: &str| name.eq_ignore_ascii_case(s.as_bytes());
    let command = if is("HELLO") {
        hello(r)
    } else if is("AUTH") {
        auth(r)
    } else if is("SELECT") {
        select(r)
    } else if is("INFO") {
        Command::Info
    } else if is("ECHO") {
        match r.argc {
            2 => Command::Echo(r.argv.get(1).copied().unwrap_or_default()),
            _ => arity!("echo"),
        }
    } else if is("RESET") {
        match r.argc {
            1 => Command::Reset,
            _ => arity!("reset"),
        }
    } else {
        return None;
    };
    Some(Frame::Command(command))
}

/// `CLIENT <sub> ...` for the subcommands other than `SETNAME`: `None`
/// for those vigil does not answer (an unknown command named `CLIENT`).
pub(super) fn client<'a, const N: usize>(r: &Request<'a, N>) -> Option<Frame<'a>> {
    let sub = r.argv.get(1).copied().unwrap_or_default();
    let is = |s: &str| sub.eq_ignore_ascii_case(s.as_bytes());
    let command = if is("GETNAME") {
        match r.argc {
            2 => Command::GetName,
            _ => arity!("client|getname"),
        }
    } else if is("ID") {
        match r.argc {
            2 => Command::Id,
            _ => arity!("client|id"),
        }
    } else if is("SETINFO") {
        let attr = r.argv.get(2).copied().unwrap_or_default();
        match r.argc {
            4 if attr.eq_ignore_ascii_case(b"LIB-NAME")
                || attr.eq_ignore_ascii_case(b"LIB-VER") =>
            {
                Command::Ok
            }
            4 => Command::Error("ERR Unrecognized option"),
            _ => arity!("client|setinfo"),
        }
    } else {
        return None;
    };
    Some(Frame::Command(command))
}

/// `HELLO [protover [AUTH username password] [SETNAME clientname]]`,
/// checked in Redis's order: the version, then the options.
fn hello<'a, const N: usize>(r: &Request<'a, N>) -> Command<'a> {
    let mut version = None;
    if r.argc >= 2 {
        match parse_int(r.argv.get(1).copied().unwrap_or_default()) {
            Some(v @ (2 | 3)) => version = u8::try_from(v).ok(),
            Some(_) => return Command::Error("NOPROTO unsupported protocol version"),
            None => {
                return Command::Error("ERR Protocol version is not an integer or out of range")
            }
        }
    }
    let (mut client_id, mut token) = (None, None);
    let mut at = 2;
    while at < r.argc {
        let Some(&option) = r.argv.get(at) else {
            // More options than a request keeps: not a HELLO a client sends.
            return Command::Error("ERR Syntax error in HELLO option");
        };
        let left = r.argc - at - 1;
        if option.eq_ignore_ascii_case(b"AUTH") && left >= 2 {
            let Some(&password) = r.argv.get(at + 2) else {
                return Command::Error("ERR Syntax error in HELLO option");
            };
            token = Some(password);
            at += 3;
        } else if option.eq_ignore_ascii_case(b"SETNAME") && left >= 1 {
            let name = r.argv.get(at + 1).copied().unwrap_or_default();
            // Printable ASCII is valid UTF-8.
            match std::str::from_utf8(name) {
                Ok(id) if valid_client_id(name) => client_id = Some(id),
                _ => {
                    return Command::Error(
                        "ERR Client names cannot contain spaces, newlines or special characters.",
                    )
                }
            }
            at += 2;
        } else {
            return Command::Error("ERR Syntax error in HELLO option");
        }
    }
    Command::Handshake {
        version,
        client_id,
        token,
    }
}

/// `AUTH [username] password`, answered as a Redis whose default user has
/// no password: the one-argument form says so, the default user is let in
/// with any password, and any other user is refused.
fn auth<'a, const N: usize>(r: &Request<'a, N>) -> Command<'a> {
    match r.argc {
        2 => Command::Error(
            "ERR AUTH <password> called without any password configured for the default user. \
             Are you sure your configuration is correct?",
        ),
        3 if r.argv.get(1).copied().unwrap_or_default() == b"default" => Command::Ok,
        3 => Command::Error("WRONGPASS invalid username-password pair or user is disabled."),
        _ => arity!("auth"),
    }
}

/// `SELECT index`: vigil has one database, 0.
fn select<'a, const N: usize>(r: &Request<'a, N>) -> Command<'a> {
    if r.argc != 2 {
        return arity!("select");
    }
    match parse_int(r.argv.get(1).copied().unwrap_or_default()) {
        Some(0) => Command::Ok,
        Some(_) => Command::Error("ERR DB index is out of range"),
        None => Command::Error("ERR value is not an integer or out of range"),
    }
}

/// A decimal integer as Redis reads one (an optional `-`, digits, no
/// spaces, no leading `+`), within `i64`.
fn parse_int(s: &[u8]) -> Option<i64> {
    std::str::from_utf8(s)
        .ok()
        .filter(|t| !t.starts_with('+'))
        .and_then(|t| t.parse().ok())
}

/// The server's description: `INFO`'s one section.
fn info_text() -> String {
    format!(
        "# Server\r\nvigil_version:{}\r\nredis_mode:standalone\r\nloading:0\r\n",
        env!("CARGO_PKG_VERSION")
    )
}

/// Appends the answer to `command` for a connection with this number,
/// client id and negotiated protocol `version` (0 or 2: RESP2; 3: RESP3).
pub(super) fn encode(
    command: &Command<'_>,
    number: u64,
    client_id: Option<&str>,
    version: u8,
    out: &mut Vec<u8>,
) {
    use std::io::Write;
    let resp3 = version == 3;
    // Writing into a Vec cannot fail.
    match *command {
        Command::Handshake { .. } => {
            // Seven keys and values: a map in RESP3; RESP2 has no maps, so
            // a flat array of fourteen.
            out.extend_from_slice(if resp3 { b"%7\r\n" } else { b"*14\r\n" });
            for (key, value) in [("server", "vigil"), ("version", env!("CARGO_PKG_VERSION"))] {
                bulk(key.as_bytes(), out);
                bulk(value.as_bytes(), out);
            }
            bulk(b"proto", out);
            let _ = write!(out, ":{}\r\n", if resp3 { 3 } else { 2 });
            bulk(b"id", out);
            let _ = write!(out, ":{number}\r\n");
            for (key, value) in [("mode", "standalone"), ("role", "master")] {
                bulk(key.as_bytes(), out);
                bulk(value.as_bytes(), out);
            }
            bulk(b"modules", out);
            out.extend_from_slice(b"*0\r\n");
        }
        Command::Reset => out.extend_from_slice(b"+RESET\r\n"),
        Command::GetName => match client_id {
            Some(id) => bulk(id.as_bytes(), out),
            None if resp3 => out.extend_from_slice(b"_\r\n"),
            None => out.extend_from_slice(b"$-1\r\n"),
        },
        Command::Id => {
            let _ = write!(out, ":{number}\r\n");
        }
        Command::Info => {
            let text = info_text();
            if resp3 {
                // A verbatim string, as Redis answers INFO in RESP3.
                let _ = write!(out, "={}\r\ntxt:{text}\r\n", text.len() + 4);
            } else {
                bulk(text.as_bytes(), out);
            }
        }
        Command::Echo(data) => bulk(data, out),
        Command::Ok => out.extend_from_slice(b"+OK\r\n"),
        Command::Error(message) => {
            out.push(b'-');
            out.extend_from_slice(message.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }
}
