//! A protocol of your own, on both ends: the server speaks it through
//! [`vigil::protocol::Protocol`], and `vigil load` drives it through
//! [`vigil::protocol::client::ClientProtocol`], all from the library.
//!
//! The protocol ("tagged"): lines, framed like the line protocol.
//!
//! | client sends   | server answers                          |
//! |----------------|-----------------------------------------|
//! | `login <id>`   | `hi <id> <interval_ms> <timeout_ms>`    |
//! | `hb <tag>`     | `ok <tag>`                              |
//! | anything else  | (a message)                             |
//! |                | `bye <reason>` before closing           |
//!
//! Run: `cargo run --release --example custom_load -- 2000 5s` (connections,
//! hold): it starts the server on 127.0.0.1 in a thread, loads it, prints
//! the report.

use std::time::Duration;

use vigil::load::render::format_table;
use vigil::load::{self, LoadConfig, Report};
use vigil::protocol::client::{ClientCodec, ClientProtocol, MessageError, ServerFrame};
use vigil::protocol::line::split_line;
use vigil::protocol::{valid_client_id, CloseReason, DecodeError, Frame, Protocol, Reply};

const MAX_LINE: usize = 256;

/// The server's half.
struct TaggedServer;

impl Protocol for TaggedServer {
    fn decode<'a>(&self, input: &'a [u8]) -> Result<Option<(Frame<'a>, usize)>, DecodeError> {
        let Some((line, used)) = split_line(input, MAX_LINE)? else {
            return Ok(None);
        };
        let frame = if let Some(tag) = line.strip_prefix(b"hb ") {
            Frame::Ping { token: Some(tag) }
        } else if let Some(id) = line.strip_prefix(b"login ") {
            match std::str::from_utf8(id) {
                Ok(client_id) if valid_client_id(id) => Frame::Hello {
                    client_id,
                    token: None,
                },
                _ => return Err(DecodeError::BadFrame("login needs a client id")),
            }
        } else {
            Frame::Message(line)
        };
        Ok(Some((frame, used)))
    }

    fn encode(&self, reply: &Reply<'_>, out: &mut Vec<u8>) {
        let text = match *reply {
            Reply::Pong { token } => {
                out.extend_from_slice(b"ok ");
                out.extend_from_slice(token.unwrap_or_default());
                out.push(b'\n');
                return;
            }
            Reply::Welcome {
                client_id,
                interval_ms,
                timeout_ms,
            } => format!("hi {client_id} {interval_ms} {timeout_ms}\n"),
            Reply::Bye(reason) => format!("bye {reason}\n"),
            Reply::Quit => "bye closed\n".to_owned(),
            // This protocol has no connection commands, and its server
            // never pings (it does not say `can_ping`).
            Reply::Unknown { .. } | Reply::Command { .. } | Reply::Ping => return,
            Reply::Message(m) => {
                out.extend_from_slice(m);
                out.push(b'\n');
                return;
            }
        };
        out.extend_from_slice(text.as_bytes());
    }

    fn max_frame(&self) -> usize {
        MAX_LINE + 2
    }

    fn name(&self) -> &'static str {
        "tagged"
    }
}

/// The client's half: what every load session speaks.
#[derive(Debug)]
struct TaggedClient;

impl ClientProtocol for TaggedClient {
    fn name(&self) -> &'static str {
        "tagged"
    }

    fn decode<'a>(
        &self,
        input: &'a [u8],
        limit: usize,
    ) -> Result<Option<(ServerFrame<'a>, usize)>, DecodeError> {
        let Some((line, used)) = split_line(input, limit)? else {
            return Ok(None);
        };
        let frame = if let Some(tag) = line.strip_prefix(b"ok ") {
            ServerFrame::Pong { token: Some(tag) }
        } else if let Some(rest) = line.strip_prefix(b"hi ") {
            // `<id> <interval_ms> <timeout_ms>`
            let mut words = std::str::from_utf8(rest).unwrap_or("").split(' ').skip(1);
            let mut ms = || words.next().and_then(|w| w.parse::<u64>().ok());
            match (ms(), ms()) {
                (Some(interval), timeout) if interval > 0 => ServerFrame::Welcome {
                    interval_ms: Some(interval),
                    timeout_ms: timeout,
                },
                _ => return Err(DecodeError::BadFrame("hi without an interval")),
            }
        } else if let Some(reason) = line.strip_prefix(b"bye ") {
            ServerFrame::Bye {
                reason: std::str::from_utf8(reason)
                    .ok()
                    .and_then(CloseReason::parse),
            }
        } else {
            ServerFrame::Message(line)
        };
        Ok(Some((frame, used)))
    }

    fn max_incomplete(&self, limit: usize) -> usize {
        limit.max(1) + 1
    }

    /// This protocol carries no token (`carries_token` is false).
    fn encode_hello(&self, client_id: &str, _token: Option<&str>, out: &mut Vec<u8>) {
        out.extend_from_slice(format!("login {client_id}\n").as_bytes());
    }

    fn encode_ping(&self, seq: u64, out: &mut Vec<u8>) {
        out.extend_from_slice(format!("hb {seq}\n").as_bytes());
    }

    fn check_message(&self, message: &[u8]) -> Result<(), MessageError> {
        if message.contains(&b'\n') {
            Err(MessageError::NotOneLine)
        } else if message.starts_with(b"hb ") || message.starts_with(b"login ") {
            Err(MessageError::Command)
        } else {
            Ok(())
        }
    }

    fn encode_message(&self, message: &[u8], out: &mut Vec<u8>) {
        out.extend_from_slice(message);
        out.push(b'\n');
    }
}

/// Starts a tagged server, loads it with `conns` sessions beating every
/// `interval` for `hold`, stops it, and returns the report.
fn run(
    conns: usize,
    interval: Duration,
    hold: Duration,
) -> Result<(LoadConfig, Report), Box<dyn std::error::Error>> {
    let server = vigil::Server::builder()
        .listen("127.0.0.1:0")
        .interval(interval)
        .timeout(interval * 3)
        .stats_interval(None)
        .protocol(TaggedServer)
        .build()?;
    let (addr, stop) = (server.local_addr(), server.handle());
    let running = std::thread::spawn(move || server.run());

    let mut config = LoadConfig::new(addr, conns);
    config.interval = interval;
    config.duration = hold;
    config.connect_rate = 5_000.0;
    // One codec for the whole run, shared by every session.
    config.protocol = ClientCodec::leak(TaggedClient);
    let report = load::run(&config, &mut |p| {
        eprintln!(
            "{:.1}s: {} online, {} replies",
            p.elapsed_ms as f64 / 1000.0,
            p.online,
            p.received
        )
    });
    stop.shutdown();
    let _ = running.join();
    Ok((config, report?))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let conns = args.next().map_or(Ok(200), |a| a.parse())?;
    let hold = match args.next() {
        Some(a) => vigil::duration::parse_duration(&a)?,
        None => Duration::from_secs(3),
    };
    let (config, report) = run(conns, Duration::from_millis(500), hold)?;
    print!("{}", format_table(&config, &report));
    if report.errors() > 0 {
        return Err(format!("{} errors", report.errors()).into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_load_generator_speaks_a_protocol_of_ones_own() {
        let (_, r) = run(20, Duration::from_millis(100), Duration::from_secs(1)).unwrap();
        assert_eq!(r.errors(), 0, "{r:?}");
        assert_eq!((r.connects, r.welcomes), (20, 20));
        // Every ping answered, each by its own tag: about 10 a second each.
        assert_eq!(r.sent, r.received);
        assert!(r.received >= 20 * 8, "{}", r.received);
        assert_eq!(r.rtt.count(), r.received);
    }
}
