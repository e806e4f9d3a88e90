//! A small real network for fault tests: three network namespaces joined by
//! veth pairs, built and torn down with `ip`, `nft` and `sysctl`.
//!
//! ```text
//!   client ns               router ns                     server ns
//!   eth0 198.18.1.2/24 ── ethc 198.18.1.1/24
//!                           eths 198.18.2.1/24 ────────── eth0 198.18.2.2/24
//!                                                          (and 198.18.2.3)
//! ```
//!
//! - Only addresses from 198.18.0.0/15 (RFC 2544's benchmarking range) are
//!   used, and every route points inside it: nothing can leave the test's
//!   namespaces.
//! - The router forwards (`net.ipv4.ip_forward=1` in its namespace only).
//!   Its nftables table `inet vigil` has a `forward` chain that jumps to an
//!   empty `faults` chain; faults are rules added there ([`Net::partition`],
//!   [`Net::drop_from_client`], …) and [`Net::heal`] flushes it.
//! - With [`Net::with_nat`] the router is a carrier-grade NAT: it
//!   masquerades the client behind 198.18.2.1, forgets an established flow
//!   idle for the given seconds (`nf_conntrack_tcp_timeout_established`, a
//!   per-namespace sysctl, read back to check it took), refuses to pick up
//!   a flow it has forgotten (`nf_conntrack_tcp_loose=0`) and drops what it
//!   cannot match (`ct state invalid drop`), silently, as mobile carriers do.
//! - Names carry the test process's id and a counter (`vigil-t<pid>-<n>-c`),
//!   so parallel tests and parallel runs never collide; interfaces are
//!   created directly inside their namespaces, so their names never meet in
//!   the host's. Dropping a [`Net`] deletes the namespaces, and with them the
//!   veths, the nftables rules and the conntrack state; namespaces left by a
//!   test process that was killed are swept at the next run.
//! - Processes run in a namespace with `ip netns exec`, which `exec`s the
//!   program in place (no fork), so the child's pid is the program's and
//!   signals reach it; [`Proc`] checks that, watches its log with the tests'
//!   shared [`LogChild`] (so it needs `mod util;` beside `mod netlab;`), and
//!   kills the process when dropped (and the kernel kills it if the test process dies first:
//!   `PR_SET_PDEATHSIG`). Code of the test itself runs in a namespace on a
//!   thread of its own that calls `setns`, which moves only that thread:
//!   [`Net::in_ns`], and [`load::Load`] for 1,000 sessions in one loop.
//!
//! A test that cannot build the network (not root, no `ip`) fails with a
//! message saying so; it never passes silently.
#![allow(dead_code)]

pub mod load;

use crate::util::LogChild;

use std::fs::File;
use std::io::Write;
use std::ops::{Deref, DerefMut};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Once;
use std::thread;
use std::time::{Duration, Instant};

/// The client's address.
pub const CLIENT_ADDR: &str = "198.18.1.2";
/// The router's address on the client's side.
pub const ROUTER_CLIENT_SIDE: &str = "198.18.1.1";
/// The router's address on the server's side: the NAT's public address.
pub const ROUTER_SERVER_SIDE: &str = "198.18.2.1";
/// The server's address.
pub const SERVER_ADDR: &str = "198.18.2.2";
/// A second server address, on the same interface of the server namespace.
pub const SERVER_ADDR_2: &str = "198.18.2.3";

/// How long any single wait may take before the test fails.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// One of the three namespaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ns {
    Client,
    Router,
    Server,
}

/// The three namespaces, their links and the router's rules. Deleted on drop.
pub struct Net {
    names: [String; 3],
    nat_timeout_s: Option<u32>,
}

static SWEEP: Once = Once::new();
static COUNTER: AtomicUsize = AtomicUsize::new(0);
const PREFIX: &str = "vigil-t";

/// Runs a command; panics with its output when it fails.
#[track_caller]
fn run(program: &str, args: &[&str]) -> Output {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "netns test harness: cannot run `{program}`: {e}. \
                 These tests need iproute2 and nftables (scripts/install-deps.sh installs them) and root."
            )
        });
    if !out.status.success() {
        panic!(
            "netns test harness: `{program} {}` failed ({}): {}{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out
}

/// Runs a command with `stdin` as its input; panics when it fails.
#[track_caller]
fn run_with_input(program: &str, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("netns test harness: cannot run `{program}`: {e}"));
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    let out = child.wait_with_output().expect("wait");
    if !out.status.success() {
        panic!(
            "netns test harness: `{program} {}` failed ({}): {}\ninput:\n{stdin}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out
}

/// Fails the test, clearly, when the network cannot be built here.
#[track_caller]
fn require_root_and_tools() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert!(
        euid == 0,
        "netns tests need root (euid is {euid}): they create network namespaces, veth pairs and \
         nftables rules. Run them as root (CI does), e.g. `sudo -E cargo test --test netns`."
    );
    for tool in ["ip", "nft", "sysctl", "ss"] {
        let found = Command::new(tool)
            .arg("-V")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok();
        assert!(
            found,
            "netns tests need `{tool}` on PATH: run scripts/install-deps.sh (iproute2, nftables, procps)"
        );
    }
}

/// The pid in a name made by this module (`vigil-t<pid>-...`), if it is
/// one and that process is gone.
fn dead_owner(name: &str) -> bool {
    let Some(rest) = name.strip_prefix(PREFIX) else {
        return false;
    };
    rest.split('-')
        .next()
        .and_then(|p| p.parse::<u32>().ok())
        .is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists())
}

/// Deletes the namespaces and temporary directories of test processes that
/// no longer exist (a run killed before its guards could clean up).
fn sweep_stale() {
    if let Ok(dir) = std::fs::read_dir(std::env::temp_dir()) {
        for entry in dir.flatten() {
            if dead_owner(&entry.file_name().to_string_lossy()) {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        if dead_owner(name) {
            let _ = Command::new("ip").args(["netns", "del", name]).status();
        }
    }
}

impl Net {
    /// A routed network: client, router, server.
    #[track_caller]
    pub fn new() -> Net {
        Net::build(None)
    }

    /// A network whose router is a NAT that silently forgets flows idle for
    /// `idle_timeout_s` seconds.
    #[track_caller]
    pub fn with_nat(idle_timeout_s: u32) -> Net {
        Net::build(Some(idle_timeout_s))
    }

    #[track_caller]
    fn build(nat_timeout_s: Option<u32>) -> Net {
        require_root_and_tools();
        SWEEP.call_once(sweep_stale);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let base = format!("{PREFIX}{}-{n}", std::process::id());
        let names = [
            format!("{base}-c"),
            format!("{base}-r"),
            format!("{base}-s"),
        ];
        // From here on the guard deletes whatever was created if a step fails.
        let mut net = Net {
            names: [String::new(), String::new(), String::new()],
            nat_timeout_s,
        };
        for (i, name) in names.iter().enumerate() {
            run("ip", &["netns", "add", name]);
            net.names[i] = name.clone();
        }
        let [c, r, s] = [&names[0], &names[1], &names[2]].map(String::as_str);
        run(
            "ip",
            &[
                "link", "add", "eth0", "netns", c, "type", "veth", "peer", "name", "ethc", "netns",
                r,
            ],
        );
        run(
            "ip",
            &[
                "link", "add", "eth0", "netns", s, "type", "veth", "peer", "name", "eths", "netns",
                r,
            ],
        );
        let ip = |ns: &str, args: &[&str]| {
            let mut all = vec!["-n", ns];
            all.extend_from_slice(args);
            run("ip", &all);
        };
        for ns in [c, r, s] {
            ip(ns, &["link", "set", "lo", "up"]);
        }
        ip(c, &["addr", "add", "198.18.1.2/24", "dev", "eth0"]);
        ip(c, &["link", "set", "eth0", "up"]);
        ip(
            c,
            &["route", "add", "198.18.0.0/15", "via", ROUTER_CLIENT_SIDE],
        );
        ip(r, &["addr", "add", "198.18.1.1/24", "dev", "ethc"]);
        ip(r, &["addr", "add", "198.18.2.1/24", "dev", "eths"]);
        ip(r, &["link", "set", "ethc", "up"]);
        ip(r, &["link", "set", "eths", "up"]);
        ip(s, &["addr", "add", "198.18.2.2/24", "dev", "eth0"]);
        ip(s, &["addr", "add", "198.18.2.3/24", "dev", "eth0"]);
        ip(s, &["link", "set", "eth0", "up"]);
        ip(
            s,
            &["route", "add", "198.18.0.0/15", "via", ROUTER_SERVER_SIDE],
        );
        net.sysctl(Ns::Router, "net.ipv4.ip_forward", "1");

        let mut rules = String::from(
            "table inet vigil {\n\
             \x20 chain faults {\n  }\n\
             \x20 chain forward {\n    type filter hook forward priority filter; policy accept;\n",
        );
        if nat_timeout_s.is_some() {
            rules.push_str("    ct state invalid drop\n");
        }
        rules.push_str("    jump faults\n  }\n");
        if nat_timeout_s.is_some() {
            // Packets of a forgotten flow addressed to the NAT itself are
            // dropped too, rather than answered with a reset.
            rules.push_str(
                "  chain input {\n    type filter hook input priority filter; policy accept;\n    ct state invalid drop\n  }\n",
            );
        }
        rules.push_str("}\n");
        if nat_timeout_s.is_some() {
            rules.push_str(
                "table ip vigil_nat {\n  chain postrouting {\n    type nat hook postrouting priority srcnat; policy accept;\n    oifname \"eths\" masquerade\n  }\n}\n",
            );
        }
        net.nft(&rules);
        if let Some(t) = nat_timeout_s {
            // conntrack's sysctls exist per namespace once the rules above
            // have loaded conntrack into it.
            net.sysctl(
                Ns::Router,
                "net.netfilter.nf_conntrack_tcp_timeout_established",
                &t.to_string(),
            );
            net.sysctl(Ns::Router, "net.netfilter.nf_conntrack_tcp_loose", "0");
        }
        // The path works before any test relies on it.
        net.wait_path();
        net
    }

    /// The namespace's name.
    pub fn name(&self, ns: Ns) -> &str {
        match ns {
            Ns::Client => &self.names[0],
            Ns::Router => &self.names[1],
            Ns::Server => &self.names[2],
        }
    }

    /// Sets a sysctl inside a namespace and checks it took there.
    #[track_caller]
    pub fn sysctl(&self, ns: Ns, key: &str, value: &str) {
        let name = self.name(ns).to_owned();
        run(
            "ip",
            &[
                "netns",
                "exec",
                &name,
                "sysctl",
                "-qw",
                &format!("{key}={value}"),
            ],
        );
        let got = self.read_sysctl(ns, key);
        assert_eq!(got, value, "sysctl {key} in {name}");
    }

    /// Reads a sysctl inside a namespace.
    #[track_caller]
    pub fn read_sysctl(&self, ns: Ns, key: &str) -> String {
        let out = run("ip", &["netns", "exec", self.name(ns), "sysctl", "-n", key]);
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Loads an nftables script into the router.
    #[track_caller]
    pub fn nft(&self, script: &str) {
        run_with_input(
            "ip",
            &["netns", "exec", self.name(Ns::Router), "nft", "-f", "-"],
            script,
        );
    }

    /// Drops everything both ways: a partition.
    pub fn partition(&self) {
        self.nft("add rule inet vigil faults iifname \"ethc\" drop\nadd rule inet vigil faults iifname \"eths\" drop\n");
    }

    /// Drops what the client sends; the server's packets still get through.
    pub fn drop_from_client(&self) {
        self.nft("add rule inet vigil faults iifname \"ethc\" drop\n");
    }

    /// Drops what the server sends; the client's packets still get through.
    pub fn drop_from_server(&self) {
        self.nft("add rule inet vigil faults iifname \"eths\" drop\n");
    }

    /// Removes every fault.
    pub fn heal(&self) {
        self.nft("flush chain inet vigil faults\n");
    }

    /// Waits until the client reaches the server through the router.
    #[track_caller]
    fn wait_path(&self) {
        let start = Instant::now();
        loop {
            let ok = Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    self.name(Ns::Client),
                    "ping",
                    "-c1",
                    "-W1",
                    "-q",
                    SERVER_ADDR,
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "netns test harness: {CLIENT_ADDR} cannot reach {SERVER_ADDR} through the router"
            );
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// `ss` inside a namespace: TCP sockets, numeric, no header, with this
    /// filter (e.g. `state established sport = :7700`).
    #[track_caller]
    pub fn ss(&self, ns: Ns, filter: &str) -> Vec<String> {
        let mut args = vec!["netns", "exec", self.name(ns), "ss", "-Htan"];
        args.extend(filter.split_whitespace());
        let out = run("ip", &args);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// Runs `f` on a new thread inside a namespace, and returns its result.
    pub fn in_ns<T: Send + 'static>(&self, ns: Ns, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/run/netns/{}", self.name(ns));
        thread::spawn(move || {
            let file = File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
            // SAFETY: a valid namespace descriptor; setns only changes the
            // calling thread's network namespace.
            let r = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(r, 0, "setns {path}: {}", std::io::Error::last_os_error());
            f()
        })
        .join()
        .expect("namespace thread")
    }

    /// A `Command` that runs `program` inside a namespace.
    pub fn command(&self, ns: Ns, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", self.name(ns), program]);
        cmd
    }

    /// Whether this is a NAT network.
    pub fn nat_timeout_s(&self) -> Option<u32> {
        self.nat_timeout_s
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for name in self.names.iter().filter(|n| !n.is_empty()) {
            let ok = Command::new("ip")
                .args(["netns", "del", name])
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if !ok {
                eprintln!("netns test harness: could not delete namespace {name}");
            }
        }
    }
}

/// A `vigil` process running in a namespace: a [`LogChild`] (its log lines
/// stamped with the test's clock as they arrive, waits bounded by this
/// module's [`PATIENCE`], killed by its pid when dropped) whose pid is
/// vigil's own.
pub struct Proc(LogChild);

impl Deref for Proc {
    type Target = LogChild;
    fn deref(&self) -> &LogChild {
        &self.0
    }
}

impl DerefMut for Proc {
    fn deref_mut(&mut self) -> &mut LogChild {
        &mut self.0
    }
}

impl Proc {
    /// Starts `vigil ARGS...` in `ns`, with `RUST_LOG=debug`.
    #[track_caller]
    pub fn vigil(net: &Net, ns: Ns, name: &str, args: &[&str]) -> Proc {
        let mut cmd = net.command(ns, env!("CARGO_BIN_EXE_vigil"));
        cmd.args(args)
            .env("RUST_LOG", "debug")
            // A client's stdin stays open (and silent) for its whole life.
            .stdin(Stdio::piped())
            .stdout(Stdio::null());
        // Should the test process be killed before its guards run, the
        // kernel kills this child too (the signal survives both execs).
        // SAFETY: prctl is async-signal-safe and touches no memory of ours.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let proc = Proc(LogChild::spawn(name, &mut cmd).patience(PATIENCE));
        // `ip netns exec` execs in place: the pid we signal is vigil's.
        let start = Instant::now();
        loop {
            let comm =
                std::fs::read_to_string(format!("/proc/{}/comm", proc.pid())).unwrap_or_default();
            if comm.trim() == "vigil" {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "{name}: `ip netns exec` did not exec vigil in place (comm {comm:?})"
            );
            thread::sleep(Duration::from_millis(5));
        }
        proc
    }

    /// Starts `vigil serve --listen ADDR ARGS...` and waits until it listens.
    #[track_caller]
    pub fn serve(net: &Net, name: &str, listen: &str, args: &[&str]) -> Proc {
        let mut all = vec!["serve", "--listen", listen];
        all.extend_from_slice(args);
        let p = Proc::vigil(net, Ns::Server, name, &all);
        p.wait_for("listening on", p.started());
        p
    }

    /// Starts `vigil client --server SERVERS --id ID --quiet ARGS...`.
    #[track_caller]
    pub fn client(net: &Net, id: &str, servers: &str, args: &[&str]) -> Proc {
        let mut all = vec!["client", "--server", servers, "--id", id, "--quiet"];
        all.extend_from_slice(args);
        Proc::vigil(net, Ns::Client, id, &all)
    }

    /// SIGTERM, then waits (bounded) for the exit; true if it exited 0.
    #[track_caller]
    pub fn stop(&mut self) -> bool {
        self.terminate().success()
    }
}

/// A directory for one test's files, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(what: &str) -> TempDir {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("{PREFIX}{}-{n}-{what}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    pub fn file(&self, name: &str) -> String {
        self.0.join(name).to_string_lossy().into_owned()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
