//! Several load processes: the parent splits the run, starts one worker
//! process per share, follows their progress and merges their reports.
//!
//! One process holds at most its open-files limit of sockets (here 20,000
//! less a few), and one event loop uses one core; `--procs P` gets past
//! both. The parent tells each worker its share of the run on the worker's
//! stdin, as [`LoadConfig::encode`] lines, then closes it. The worker
//! ([`run_worker`]) runs [`super::run`] and writes [`Progress`] lines and
//! finally its [`Report`] on stdout, in the line format of
//! [`super::wire`]; its stderr is the parent's. Reports merge exactly
//! (histograms bucket by bucket); live progress merges approximately (the
//! p99 shown is the largest of the workers').
//!
//! The parent is bounded too: should a worker not finish within the time
//! its share needs plus a margin, the parent kills the workers (by the ids
//! it started them with) and fails.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use super::config::LoadConfig;
use super::report::{Phase, Progress, Report};
use super::wire::{self, Output, Reader};
use super::Error;

/// Slack beyond a share's own worst-case run time before the parent gives
/// up on a worker.
const WORKER_MARGIN: Duration = Duration::from_secs(30);

/// What a worker's reader thread passes on.
enum Msg {
    Progress(usize, Box<Progress>),
    Report(usize, Box<Report>),
    /// The worker's stdout ended; `Err` if it wrote something unreadable.
    Ended(usize, Result<(), String>),
}

/// Runs the load in `procs` worker processes, each started from
/// `worker()` (a command that runs [`run_worker`]: `vigil load --worker`),
/// and merges their reports. `on_progress` gets the merged progress about
/// once a second and at each change of the (slowest worker's) phase.
pub fn run_procs(
    config: &LoadConfig,
    procs: usize,
    worker: &dyn Fn() -> Command,
    on_progress: &mut dyn FnMut(&Progress),
) -> Result<Report, Error> {
    // Workers raise their soft limit to the hard one: check against that.
    let (_, hard) =
        crate::sys::nofile_limit().map_err(|e| Error::io("cannot read the open-files limit", e))?;
    config
        .check(procs, hard, crate::sys::ephemeral_ports())
        .map_err(Error::config)?;
    super::driver::check_sources(config)?;

    let shares = config.shares(procs);
    let deadline = Instant::now() + worst_case(config) + WORKER_MARGIN;
    let term = Arc::new(AtomicBool::new(false));
    let mut sig_ids = Vec::new();
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SIGINT from a terminal reaches the workers too (same process
        // group): the parent only has to outlive them to report. SIGTERM is
        // passed on.
        let flag = if sig == libc::SIGTERM {
            Arc::clone(&term)
        } else {
            Arc::new(AtomicBool::new(false))
        };
        match signal_hook::flag::register(sig, flag) {
            Ok(id) => sig_ids.push(id),
            Err(e) => return Err(Error::io("cannot install signal handlers", e)),
        }
    }
    let result = supervise(&shares, worker, on_progress, deadline, &term);
    for id in sig_ids {
        signal_hook::low_level::unregister(id);
    }
    result
}

/// The longest a share can take: ramp, one interval of phase, the hold,
/// and the drain.
fn worst_case(config: &LoadConfig) -> Duration {
    let ramp_ms = config.start_ms(config.conns, u64::MAX);
    Duration::from_millis(ramp_ms) + config.duration + config.reply_timeout
}

fn supervise(
    shares: &[LoadConfig],
    worker: &dyn Fn() -> Command,
    on_progress: &mut dyn FnMut(&Progress),
    deadline: Instant,
    term: &AtomicBool,
) -> Result<Report, Error> {
    let (tx, rx) = mpsc::channel();
    let mut children: Vec<Child> = Vec::with_capacity(shares.len());
    let kill_all = |children: &mut Vec<Child>| {
        for child in children.iter_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    };
    for (k, share) in shares.iter().enumerate() {
        let mut cmd = worker();
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = match cmd.spawn() {
            Ok(child) => child,
            Err(e) => {
                kill_all(&mut children);
                return Err(Error::io(format!("cannot start worker {k}"), e));
            }
        };
        let fed = child
            .stdin
            .take()
            .map(|mut stdin| stdin.write_all(share.encode().as_bytes()));
        let stdout = child.stdout.take();
        children.push(child);
        match (fed, stdout) {
            (Some(Ok(())), Some(stdout)) => {
                let tx = tx.clone();
                thread::spawn(move || read_worker(k, stdout, &tx));
            }
            (Some(Err(e)), _) => {
                kill_all(&mut children);
                return Err(Error::io(format!("cannot send worker {k} its share"), e));
            }
            _ => {
                kill_all(&mut children);
                return Err(Error::worker(format!("worker {k} has no pipes")));
            }
        }
    }
    drop(tx);

    let procs = shares.len();
    let mut latest: Vec<Option<Progress>> = vec![None; procs];
    // The latencies the workers reported since the last line shown.
    let mut window = Progress::new(0, Phase::Ramp);
    let mut reports: Vec<Option<Report>> = vec![None; procs];
    let mut ended = 0;
    let mut shown_phase = Phase::Ramp;
    let mut last_shown = Instant::now();
    let mut forwarded = false;
    while ended < procs {
        if term.load(Ordering::Relaxed) && !forwarded {
            forwarded = true;
            for child in &children {
                // A child we started and have not waited for: its pid is
                // still its own.
                let _ = crate::sys::send_signal(child.id(), libc::SIGTERM);
            }
        }
        if Instant::now() >= deadline {
            kill_all(&mut children);
            return Err(Error::worker(
                "the workers did not finish in time: killed them".to_owned(),
            ));
        }
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(Msg::Progress(k, mut p)) => {
                // Every reply since the last shown line counts once, in
                // whichever worker's line it came.
                window.rtt.add(&p.rtt);
                window.scheduled.add(&p.scheduled);
                p.rtt.clear();
                p.scheduled.clear();
                if let Some(slot) = latest.get_mut(k) {
                    *slot = Some(*p);
                }
                if latest.iter().all(Option::is_some) {
                    let mut m = Progress::new(0, Phase::Done);
                    latest.iter().flatten().for_each(|p| m.merge(p));
                    if m.phase != shown_phase || last_shown.elapsed() >= Duration::from_millis(950)
                    {
                        m.rtt = std::mem::take(&mut window.rtt);
                        m.scheduled = std::mem::take(&mut window.scheduled);
                        shown_phase = m.phase;
                        last_shown = Instant::now();
                        on_progress(&m);
                    }
                }
            }
            Ok(Msg::Report(k, r)) => {
                if let Some(slot) = reports.get_mut(k) {
                    *slot = Some(*r);
                }
            }
            Ok(Msg::Ended(k, outcome)) => {
                ended += 1;
                if let Err(e) = outcome {
                    kill_all(&mut children);
                    return Err(Error::worker(format!("worker {k}: {e}")));
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }

    let mut total = Report::new();
    total.procs = 0;
    for (k, child) in children.iter_mut().enumerate() {
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(10)),
                Ok(None) => {
                    kill_all(&mut children);
                    return Err(Error::worker(format!("worker {k} did not exit")));
                }
                Err(e) => return Err(Error::io(format!("cannot wait for worker {k}"), e)),
            }
        };
        if !status.success() {
            kill_all(&mut children);
            return Err(Error::worker(format!("worker {k} failed ({status})")));
        }
        match reports.get(k) {
            Some(Some(r)) => total.merge(r),
            _ => return Err(Error::worker(format!("worker {k} exited without a report"))),
        }
    }
    Ok(total)
}

/// Reads one worker's stdout, line by line, until it ends.
fn read_worker(k: usize, stdout: impl Read, tx: &mpsc::Sender<Msg>) {
    let mut reader = Reader::new();
    let mut outcome = Ok(());
    for line in BufReader::new(stdout).lines() {
        let read = match line {
            Ok(line) => reader.handle_line(&line),
            Err(e) => Err(format!("cannot read its output: {e}")),
        };
        match read {
            Ok(None) => {}
            Ok(Some(Output::Progress(p))) => {
                let _ = tx.send(Msg::Progress(k, p));
            }
            Ok(Some(Output::Report(r))) => {
                let _ = tx.send(Msg::Report(k, r));
            }
            Err(e) => {
                outcome = Err(e);
                break;
            }
        }
    }
    if outcome.is_ok() {
        outcome = reader.finish();
    }
    let _ = tx.send(Msg::Ended(k, outcome));
}

/// The worker side: reads its share from stdin, runs it, writes progress
/// and the report to stdout.
pub fn run_worker() -> Result<(), Error> {
    let mut text = String::new();
    io::stdin()
        .take(64 * 1024)
        .read_to_string(&mut text)
        .map_err(|e| Error::io("cannot read the worker config on stdin", e))?;
    let config = LoadConfig::decode(&text).map_err(Error::config)?;
    let stdout = io::stdout();
    let report = super::run(&config, &mut |p| {
        let mut out = stdout.lock();
        // A parent that went away cannot be told; the run ends by itself.
        let _ = writeln!(out, "{}", wire::progress_line(p)).and_then(|()| out.flush());
    })?;
    let mut out = stdout.lock();
    out.write_all(wire::report_text(&report).as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| Error::io("cannot write the report", e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::millis_floor;

    #[test]
    fn a_share_is_given_time_for_its_ramp_hold_and_drain() {
        let mut c = LoadConfig::new("127.0.0.1:1".parse().unwrap(), 1000);
        c.connect_rate = 100.0;
        c.interval = Duration::from_secs(1);
        c.duration = Duration::from_secs(5);
        c.reply_timeout = Duration::from_secs(2);
        // 10 s of ramp, under 1 s of phase, 5 s of hold, 2 s of drain.
        let w = worst_case(&c);
        assert!(
            w >= Duration::from_millis(17_999) && w <= Duration::from_secs(18),
            "{w:?}"
        );
        assert_eq!(millis_floor(w) / 1000, 17);
    }
}
