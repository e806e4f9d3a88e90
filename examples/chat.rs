//! A chat server on the line protocol: `HELLO <nick>` joins, every other
//! line goes to everyone online, and joins and leaves (with the reason: a
//! timeout, a takeover, a closed connection) are announced from presence.
//!
//! Run: `cargo run --example chat -- 127.0.0.1:7702`, then in two terminals
//! `nc 127.0.0.1 7702`, say `HELLO ann` (or `HELLO bob`) and talk. Clients
//! that stay silent for 60 s are dropped: `PING` now and then keeps them.

use std::time::Duration;

use vigil::server::{ConnInfo, Context, Handler, Server};
use vigil::CloseReason;

struct Chat;

impl Handler for Chat {
    fn on_message(&mut self, ctx: &mut Context<'_>, conn: &ConnInfo<'_>, message: &[u8]) {
        let Some(nick) = conn.client else {
            ctx.reply(b"* say HELLO <nick> first");
            return;
        };
        if message.is_empty() {
            return;
        }
        let mut line = format!("<{nick}> ").into_bytes();
        line.extend_from_slice(message);
        ctx.broadcast(&line, Some(conn.id));
    }

    fn on_hello(&mut self, ctx: &mut Context<'_>, conn: &ConnInfo<'_>) {
        let nick = conn.client.unwrap_or_default();
        let others: Vec<&str> = ctx
            .online()
            .map(|(n, _)| n)
            .filter(|n| *n != nick)
            .collect();
        ctx.reply(format!("* online: {}", others.join(", ")).as_bytes());
        ctx.broadcast(format!("* {nick} joined").as_bytes(), Some(conn.id));
    }

    fn on_offline(&mut self, ctx: &mut Context<'_>, conn: &ConnInfo<'_>, reason: CloseReason) {
        if let Some(nick) = conn.client {
            // A replaced nick is still online, on its new connection.
            let how = if reason == CloseReason::Replaced {
                "reconnected"
            } else {
                "left"
            };
            ctx.broadcast(format!("* {nick} {how} ({reason})").as_bytes(), None);
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let listen = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:7702".to_owned());
    Server::builder()
        .listen(listen.as_str())
        .interval(Duration::from_secs(40))
        .timeout(Duration::from_secs(60))
        .handle_signals(true)
        .handler(Chat)
        .build()?
        .run()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Lines, Write};
    use std::net::TcpStream;

    fn join(addr: std::net::SocketAddr, hello: &str) -> (TcpStream, Lines<BufReader<TcpStream>>) {
        let mut conn = TcpStream::connect(addr).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        conn.write_all(hello.as_bytes()).unwrap();
        let lines = BufReader::new(conn.try_clone().unwrap()).lines();
        (conn, lines)
    }

    #[test]
    fn nicks_talk_and_come_and_go() {
        let server = Server::builder().listen("127.0.0.1:0").stats_interval(None);
        let server = server.handler(Chat).build().unwrap();
        let (addr, stop) = (server.local_addr(), server.handle());
        let running = std::thread::spawn(move || server.run());
        let next = |l: &mut Lines<BufReader<TcpStream>>| l.next().unwrap().unwrap();

        let (mut ann, mut ann_in) = join(addr, "HELLO ann\n");
        assert!(next(&mut ann_in).starts_with("WELCOME ann"));
        assert_eq!(next(&mut ann_in), "* online: ");
        let (bob, mut bob_in) = join(addr, "HELLO bob\n");
        assert!(next(&mut bob_in).starts_with("WELCOME bob"));
        assert_eq!(next(&mut bob_in), "* online: ann");
        assert_eq!(next(&mut ann_in), "* bob joined");
        ann.write_all(b"hi bob\n").unwrap();
        assert_eq!(next(&mut bob_in), "<ann> hi bob");
        bob.shutdown(std::net::Shutdown::Both).unwrap();
        assert_eq!(next(&mut ann_in), "* bob left (closed)");
        stop.shutdown();
        running.join().unwrap().unwrap();
    }
}
