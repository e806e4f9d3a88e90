//! TLS end to end: `vigil serve --tls-cert --tls-key` with a client no one
//! here wrote (`openssl s_client`), with `vigil client --tls` and
//! `vigil load --tls`, and the bad inputs: garbage instead of a
//! ClientHello, a handshake that stalls, certificates that do not check out.
//! Certificates are made at test time by scripts/gen-test-certs.sh (openssl).

mod util;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use util::{LogChild, Serve, PATIENCE};

/// A CA, and a certificate for localhost and 127.0.0.1 signed by it, made
/// once per test run.
fn certs() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("tls-certs-{}", std::process::id()));
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/gen-test-certs.sh");
        let status = Command::new("bash")
            .arg(script)
            .arg(&dir)
            .status()
            .expect("run gen-test-certs.sh (needs openssl)");
        assert!(status.success(), "gen-test-certs.sh failed");
        dir
    })
}

fn file(name: &str) -> String {
    certs().join(name).display().to_string()
}

/// `vigil serve` with TLS and `extra` flags.
#[track_caller]
fn serve_tls(extra: &[&str]) -> Serve {
    let (cert, key) = (file("cert.pem"), file("key.pem"));
    let mut args = vec!["--tls-cert", &cert, "--tls-key", &key];
    args.extend_from_slice(extra);
    Serve::start(&args)
}

/// `openssl s_client` connected to `server`, checking its certificate
/// against the test CA; its stdout lines arrive on a channel.
struct SClient {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
}

impl SClient {
    #[track_caller]
    fn connect(server: &Serve) -> SClient {
        let mut child = Command::new("openssl")
            .args(["s_client", "-quiet", "-verify_return_error", "-connect"])
            .arg(server.addr.to_string())
            .args(["-servername", "localhost", "-CAfile"])
            .arg(file("ca.pem"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn openssl s_client");
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        SClient {
            child,
            stdin,
            lines,
        }
    }

    #[track_caller]
    fn send(&mut self, text: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin.write_all(text.as_bytes()).expect("write to s_client");
        stdin.flush().expect("flush s_client");
    }

    /// The next line the server sent, within [`PATIENCE`].
    #[track_caller]
    fn line(&mut self) -> String {
        self.lines
            .recv_timeout(PATIENCE)
            .expect("a line from the server through openssl s_client")
    }
}

impl Drop for SClient {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn openssl_s_client_says_hello_and_ping() {
    let server = serve_tls(&["--interval", "20s", "--timeout", "30s"]);
    let mut s = SClient::connect(&server);
    s.send("HELLO dev1\n");
    assert_eq!(s.line(), "WELCOME dev1 interval=20000 timeout=30000");
    s.send("PING\nPING 7\n");
    assert_eq!(s.line(), "PONG");
    assert_eq!(s.line(), "PONG 7");
}

#[test]
fn vigil_client_tls_is_welcomed_and_a_wrong_ca_is_refused() {
    let server = serve_tls(&["--interval", "300ms", "--timeout", "2s"]);
    let port = server.addr.port();
    let client = |extra: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_vigil"));
        cmd.args(["client", "--server", &format!("localhost:{port}")])
            .args(["--id", "tls-client", "--tls"])
            .args(extra)
            .env("RUST_LOG", "info")
            .stdin(Stdio::piped())
            .stdout(Stdio::null());
        LogChild::spawn("vigil client", &mut cmd)
    };
    let ca = file("ca.pem");
    let good = client(&["--ca", &ca]);
    let started = good.started();
    good.wait_line(&["welcomed by"], started, PATIENCE);
    // It keeps beating through TLS: still online after several timeouts'
    // worth of heartbeats, with no reconnect.
    thread::sleep(Duration::from_millis(2500));
    assert!(good.find("reconnecting").is_empty(), "{:?}", good.lines());
    assert!(server.log().iter().all(|l| !l.contains("BYE")));

    // A certificate signed by a CA the client does not trust (the server's
    // own certificate as the only root: not a CA) is refused, said at warn,
    // and the client is never welcomed.
    let cert = file("cert.pem");
    let bad = client(&["--ca", &cert]);
    bad.wait_line(&["invalid peer certificate"], bad.started(), PATIENCE);
    assert!(bad.find("welcomed").is_empty());
    // A name the certificate does not carry is refused too.
    let wrong_name = client(&["--ca", &ca, "--tls-name", "example.org"]);
    wrong_name.wait_line(
        &["invalid peer certificate: certificate not valid for name"],
        wrong_name.started(),
        PATIENCE,
    );
    assert!(wrong_name.find("welcomed").is_empty());
}

#[test]
fn vigil_load_tls_with_three_hundred_connections() {
    let server = serve_tls(&["--interval", "1s", "--timeout", "5s"]);
    let out = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["load", "--server", &server.addr.to_string()])
        .args(["--tls", "--ca", &file("ca.pem")])
        .args(["--conns", "300", "--interval", "1s", "--duration", "3s"])
        .args(["--connect-rate", "1000", "--json"])
        .stderr(Stdio::null())
        .output()
        .expect("run vigil load");
    assert!(out.status.success(), "{:?}", out.status);
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("vigil load --json prints JSON");
    let c = &report["connections"];
    assert_eq!(c["welcomed"], 300, "{report}");
    assert_eq!(c["online_at_end"], 300, "{report}");
    assert_eq!(c["reconnects"], 0, "{report}");
    let h = &report["heartbeats"];
    let sent = h["sent"].as_u64().expect("sent");
    // 300 connections beating every second for the 3 s hold.
    assert!(sent >= 900, "{report}");
    assert_eq!(h["received"], sent, "{report}");
    assert_eq!(h["missing"], 0, "{report}");
    assert_eq!(report["errors"], 0, "{report}");
}

/// Reads until the server closes the connection; how long after `start`.
#[track_caller]
fn closed_after(peer: &mut TcpStream, start: Instant) -> Duration {
    peer.set_read_timeout(Some(PATIENCE)).expect("timeout");
    let mut buf = [0; 4096];
    loop {
        match peer.read(&mut buf) {
            Ok(0) => return start.elapsed(),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return start.elapsed(),
            Err(e) => panic!("not closed within {PATIENCE:?}: {e}"),
        }
    }
}

#[test]
fn garbage_instead_of_a_client_hello_is_closed_and_others_go_on() {
    let server = serve_tls(&["--interval", "20s", "--timeout", "30s"]);
    let mut bystander = SClient::connect(&server);
    bystander.send("HELLO bystander\n");
    assert!(bystander.line().starts_with("WELCOME bystander"));
    for garbage in [
        &b"HELLO plain-text\nPING\n"[..],
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        // A handshake record header announcing more than TLS allows.
        &[0x16, 0x03, 0x01, 0xff, 0xff, 0x01],
        &[0u8; 64],
    ] {
        let mut peer = TcpStream::connect(server.addr).expect("connect");
        peer.write_all(garbage).expect("write garbage");
        let took = closed_after(&mut peer, Instant::now());
        assert!(
            took < Duration::from_secs(2),
            "{garbage:?}: closed after {took:?}"
        );
    }
    bystander.send("PING\n");
    assert_eq!(bystander.line(), "PONG");
}

/// A rustls client connection that trusts the test CA, for `localhost`.
fn rustls_client() -> rustls::ClientConnection {
    let mut roots = rustls::RootCertStore::empty();
    let ca = std::fs::read(file("ca.pem")).expect("ca.pem");
    let ca = rustls_pki_types::pem::PemObject::from_pem_slice(&ca).expect("PEM");
    roots.add(ca).expect("CA");
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = "localhost".try_into().expect("name");
    rustls::ClientConnection::new(Arc::new(config), name).expect("client")
}

/// The first flight of a real TLS client: its ClientHello.
fn client_hello() -> Vec<u8> {
    let mut conn = rustls_client();
    let mut hello = Vec::new();
    conn.write_tls(&mut hello).expect("ClientHello");
    hello
}

#[test]
fn a_handshake_that_stalls_is_closed_by_the_deadline_and_not_before() {
    let server = serve_tls(&["--interval", "500ms", "--timeout", "1s", "--tick", "10ms"]);
    let hello = client_hello();
    assert!(hello.len() > 100, "{}", hello.len());

    let start = Instant::now();
    // Half a ClientHello, then nothing.
    let mut half = TcpStream::connect(server.addr).expect("connect");
    half.write_all(&hello[..hello.len() / 2]).expect("write");
    // A whole ClientHello, the server's answer unread, then nothing: the
    // handshake waits for the client's Finished forever.
    let mut whole = TcpStream::connect(server.addr).expect("connect");
    whole.write_all(&hello).expect("write");
    // Bytes trickled one at a time, each well within the timeout, never
    // make a frame: they do not keep the connection open.
    let mut trickle = TcpStream::connect(server.addr).expect("connect");
    let mut watched = trickle.try_clone().expect("clone");
    let watcher = thread::spawn(move || closed_after(&mut watched, start));
    let trickler = thread::spawn(move || {
        for b in hello.iter().take(20) {
            if trickle.write_all(&[*b]).is_err() {
                break;
            }
            thread::sleep(Duration::from_millis(100));
        }
        trickle
    });

    for (what, peer) in [("half", &mut half), ("whole", &mut whole)] {
        let took = closed_after(peer, start);
        assert!(
            took >= Duration::from_millis(800) && took < Duration::from_secs(3),
            "{what}: closed after {took:?}, the timeout is 1s"
        );
    }
    let took = watcher.join().expect("watcher");
    assert!(
        took >= Duration::from_millis(800) && took < Duration::from_secs(2),
        "trickle: closed after {took:?}, the timeout is 1s (the trickle lasts 2s)"
    );
    let _ = trickler.join();
    // A real client is served meanwhile and afterwards.
    let mut s = SClient::connect(&server);
    s.send("HELLO after\n");
    assert!(s.line().starts_with("WELCOME after"));
}

#[test]
fn a_tls_peer_that_never_reads_is_cut_off_at_the_output_cap() {
    let server = serve_tls(&[
        "--max-output",
        "65536",
        "--interval",
        "20s",
        "--timeout",
        "30s",
    ]);
    let mut bystander = SClient::connect(&server);
    let mut tcp = TcpStream::connect(server.addr).expect("connect");
    let mut hog = rustls_client();
    while hog.is_handshaking() {
        hog.complete_io(&mut tcp).expect("handshake");
    }
    tcp.set_write_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let ping = format!("PING {}\n", "t".repeat(1000));
    let start = Instant::now();
    // Pings, never reading the pongs: the kernel buffers fill, then what
    // rustls holds for the socket grows past the cap.
    'hog: while start.elapsed() < Duration::from_secs(20) {
        hog.writer().write_all(ping.as_bytes()).expect("plaintext");
        while hog.wants_write() {
            if hog.write_tls(&mut tcp).is_err() {
                break 'hog;
            }
        }
        if server
            .log()
            .iter()
            .any(|l| l.contains("offline: output-overflow"))
        {
            break;
        }
    }
    server.wait_log("offline: output-overflow");
    bystander.send("HELLO bystander\n");
    assert!(bystander.line().starts_with("WELCOME bystander"));
}

#[test]
fn bad_tls_flags_and_files_are_refused_at_start() {
    let vigil = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_vigil"))
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .output()
            .expect("run vigil serve")
    };
    let (cert, key, ca) = (file("cert.pem"), file("key.pem"), file("ca.pem"));
    // One without the other is a usage error.
    let only_cert = vigil(&["--tls-cert", &cert]);
    assert_eq!(only_cert.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&only_cert.stderr).contains("--tls-key"));
    // A missing file, a file without a certificate, a key that is not the
    // certificate's: each named, exit 1, before listening.
    for (args, needle) in [
        (
            vec!["--tls-cert", "/nonexistent.pem", "--tls-key", &key],
            "/nonexistent.pem",
        ),
        (
            vec!["--tls-cert", &key, "--tls-key", &key],
            "no certificate in",
        ),
        (vec!["--tls-cert", &cert, "--tls-key", &cert], "private key"),
        (
            vec!["--tls-cert", &ca, "--tls-key", &key],
            "TLS certificate",
        ),
    ] {
        let out = vigil(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(!err.contains("listening on"), "{args:?}: {err}");
    }
}
