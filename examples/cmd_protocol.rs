//! The Java seed's protocol as a vigil protocol: lines `CMD:<name> <body>`.
//!
//! `CMD:LOGIN <id>` logs in (vigil's HELLO: presence and takeover), and
//! `CMD:KEEPLIVE <n>` is the heartbeat, answered `CMD:KEEPLIVE 1`, which is
//! what the seed's receive thread checks for. Any other command is a message.
//!
//! Run: `cargo run --example cmd_protocol -- 127.0.0.1:7701`, then
//! `printf 'CMD:LOGIN phone\nCMD:KEEPLIVE 0\n' | nc -q 1 127.0.0.1 7701`.

use vigil::protocol::{valid_client_id, DecodeError, Frame, LineProtocol, Protocol, Reply};

/// `CMD:` lines, at most `max_line` bytes, framed like the line protocol.
struct CmdProtocol {
    lines: LineProtocol,
}

impl Protocol for CmdProtocol {
    fn decode<'a>(&self, input: &'a [u8]) -> Result<Option<(Frame<'a>, usize)>, DecodeError> {
        // Reuse the line framing (length limit, CRLF), then read the line.
        let Some((frame, used)) = self.lines.decode(input)? else {
            return Ok(None);
        };
        let line = match frame {
            Frame::Message(line) => line,
            other => return Ok(Some((other, used))), // PING/HELLO still work
        };
        let Some(cmd) = line.strip_prefix(b"CMD:") else {
            return Ok(Some((Frame::Message(line), used)));
        };
        let (name, body) = match cmd.iter().position(|&b| b == b' ') {
            Some(sp) => (&cmd[..sp], cmd[sp + 1..].trim_ascii()),
            None => (cmd, &b""[..]),
        };
        let frame = match name {
            b"KEEPLIVE" => Frame::Ping { token: None },
            b"LOGIN" if valid_client_id(body) => Frame::Hello {
                client_id: std::str::from_utf8(body).map_err(|_| DecodeError::BadFrame("id"))?,
                token: None,
            },
            b"LOGIN" => return Err(DecodeError::BadFrame("CMD:LOGIN needs a client id")),
            _ => Frame::Message(line),
        };
        Ok(Some((frame, used)))
    }

    fn encode(&self, reply: &Reply<'_>, out: &mut Vec<u8>) {
        match reply {
            Reply::Pong { .. } => out.extend_from_slice(b"CMD:KEEPLIVE 1\n"),
            Reply::Welcome {
                client_id,
                interval_ms,
                ..
            } => out.extend_from_slice(format!("CMD:LOGIN {client_id} {interval_ms}\n").as_bytes()),
            Reply::Bye(reason) => out.extend_from_slice(format!("CMD:BYE {reason}\n").as_bytes()),
            other => self.lines.encode(other, out),
        }
    }

    fn max_frame(&self) -> usize {
        self.lines.max_frame()
    }

    fn name(&self) -> &'static str {
        "cmd"
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let listen = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:7701".to_owned());
    let protocol = CmdProtocol {
        lines: LineProtocol::new(1024),
    };
    let server = vigil::Server::builder()
        .listen(listen.as_str())
        .handle_signals(true);
    server.protocol(protocol).build()?.run()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};

    #[test]
    fn the_java_seed_logs_in_and_keeps_alive() {
        let protocol = CmdProtocol {
            lines: LineProtocol::new(64),
        };
        let server = vigil::Server::builder()
            .listen("127.0.0.1:0")
            .protocol(protocol);
        let server = server.stats_interval(None).build().unwrap();
        let (addr, stop) = (server.local_addr(), server.handle());
        let running = std::thread::spawn(move || server.run());
        let mut conn = std::net::TcpStream::connect(addr).unwrap();
        conn.write_all(b"CMD:LOGIN phone\r\nCMD:KEEPLIVE 0\nCMD:CHAT hi\nCMD:KEEPLIVE 1\n")
            .unwrap();
        let mut lines = BufReader::new(conn.try_clone().unwrap()).lines();
        let mut next = || lines.next().unwrap().unwrap();
        assert_eq!(next(), "CMD:LOGIN phone 30000");
        assert_eq!(next(), "CMD:KEEPLIVE 1");
        assert_eq!(next(), "CMD:KEEPLIVE 1");
        conn.write_all(b"CMD:LOGIN \n").unwrap();
        assert_eq!(next(), "CMD:BYE bad-frame");
        stop.shutdown();
        let stats = running.join().unwrap().unwrap();
        assert_eq!((stats.heartbeats, stats.frames), (2, 4));
    }
}
