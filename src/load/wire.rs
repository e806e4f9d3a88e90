//! The worker-to-parent wire format: the lines a worker process writes on
//! its stdout, and the one [`Line`] type that prints and parses them.
//!
//! Pure: text in, text out.
//!
//! # The lines
//! A worker writes any number of progress lines, then its report, then
//! exits. Fields are separated by one space; numbers are decimal `u64`.
//!
//! ```text
//! progress <elapsed_ms> <phase> <online> <sent> <received> <errors> <reconnects> rtt=<buckets> sched=<buckets>
//! report 1
//! count <name> <n>                  one per counter, every counter
//! connect-error <n> <reason>        one per reason a connect failed for
//! close <n> <reason>                one per reason a connection ended for
//! hist <name>[ <value>:<count>]...  `scheduled` and `rtt`: non-empty buckets
//! end
//! ```
//!
//! - `<phase>` is [`Phase::as_str`]. `<buckets>` are the latencies since
//!   the previous progress line (round trip, and from the scheduled send),
//!   as `<value>:<count>` pairs separated by commas (nothing when there
//!   were none): the parent merges them into one histogram, so the p99 it
//!   shows for `--procs` is that of every worker's replies together.
//! - `<name>` of a `count` is a [`Report`] field (`sent`, `hold_ms`, ...).
//! - `<reason>` comes last because it may hold spaces (`BYE timeout`); it
//!   is a [`ReasonName::as_str`](super::reason::ReasonName::as_str)
//!   spelling, and lines for the same reason add up.
//! - A `hist` bucket's value recorded back into a histogram of the same
//!   shape lands in the same bucket, so the parent's merge is exact.
//! - Anything else, or a report cut short, is an error naming the line.
//!
//! [`Line`]'s `Display` prints a line and [`Line::parse`] reads it, side
//! by side below; a test round-trips every kind of line.

use std::fmt::{self, Write as _};

use super::reason;
use super::report::{Latency, Phase, Progress, Report, COUNTERS};

/// Which histogram a `hist` line carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hist {
    /// [`Report::scheduled`].
    Scheduled,
    /// [`Report::rtt`].
    Rtt,
}

impl Hist {
    fn as_str(self) -> &'static str {
        match self {
            Hist::Scheduled => "scheduled",
            Hist::Rtt => "rtt",
        }
    }

    fn parse(s: &str) -> Option<Hist> {
        [Hist::Scheduled, Hist::Rtt]
            .into_iter()
            .find(|h| h.as_str() == s)
    }
}

/// One line a worker writes. See the [module docs](self).
#[derive(Debug, Clone, PartialEq)]
pub enum Line {
    /// `progress ...`: a snapshot.
    Progress(Progress),
    /// `report 1`: a report follows (1 is the format's version).
    Report,
    /// `count <name> <n>`: a counter of the report.
    Count(&'static str, u64),
    /// `connect-error <n> <reason>`.
    ConnectError(u64, String),
    /// `close <n> <reason>`.
    Close(u64, String),
    /// `hist <name> <value>:<count>...`.
    Hist(Hist, Latency),
    /// `end`: the report is complete.
    End,
}

impl fmt::Display for Line {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Line::Progress(p) => {
                write!(
                    f,
                    "progress {} {} {} {} {} {} {} rtt=",
                    p.elapsed_ms,
                    p.phase.as_str(),
                    p.online,
                    p.sent,
                    p.received,
                    p.errors,
                    p.reconnects,
                )?;
                write_buckets(f, &p.rtt)?;
                f.write_str(" sched=")?;
                write_buckets(f, &p.scheduled)
            }
            Line::Report => f.write_str("report 1"),
            Line::Count(name, n) => write!(f, "count {name} {n}"),
            Line::ConnectError(n, reason) => write!(f, "connect-error {n} {reason}"),
            Line::Close(n, reason) => write!(f, "close {n} {reason}"),
            Line::Hist(name, l) => {
                write!(f, "hist {}", name.as_str())?;
                for (value, count) in l.buckets() {
                    write!(f, " {value}:{count}")?;
                }
                Ok(())
            }
            Line::End => f.write_str("end"),
        }
    }
}

impl Line {
    /// Reads a line that `Display` printed; `None` for anything else.
    pub fn parse(line: &str) -> Option<Line> {
        let (kind, rest) = line.split_once(' ').unwrap_or((line, ""));
        let num = |s: &str| s.parse::<u64>().ok();
        Some(match kind {
            "progress" => {
                let fields: Vec<&str> = rest.split(' ').collect();
                let [elapsed, phase, online, sent, received, errors, reconnects, rtt, sched] =
                    fields[..]
                else {
                    return None;
                };
                let mut p = Progress::new(num(elapsed)?, Phase::parse(phase)?);
                p.online = num(online)?;
                p.sent = num(sent)?;
                p.received = num(received)?;
                p.errors = num(errors)?;
                p.reconnects = num(reconnects)?;
                p.rtt = parse_buckets(rtt.strip_prefix("rtt=")?)?;
                p.scheduled = parse_buckets(sched.strip_prefix("sched=")?)?;
                Line::Progress(p)
            }
            "report" if rest == "1" => Line::Report,
            "count" => {
                let (name, n) = rest.split_once(' ')?;
                let counter = COUNTERS.iter().find(|c| c.name == name)?;
                Line::Count(counter.name, num(n)?)
            }
            "connect-error" | "close" => {
                let (n, reason) = rest.split_once(' ')?;
                let (n, reason) = (num(n)?, reason.to_owned());
                if !reason::is_name(&reason) {
                    return None;
                }
                if kind == "close" {
                    Line::Close(n, reason)
                } else {
                    Line::ConnectError(n, reason)
                }
            }
            "hist" => {
                let (name, pairs) = rest.split_once(' ').unwrap_or((rest, ""));
                let mut l = Latency::new();
                for pair in pairs.split_whitespace() {
                    let (value, count) = pair.split_once(':')?;
                    l.record_bucket(num(value)?, num(count)?)?;
                }
                Line::Hist(Hist::parse(name)?, l)
            }
            "end" if rest.is_empty() => Line::End,
            _ => return None,
        })
    }
}

/// Writes `l`'s non-empty buckets as `<value>:<count>` pairs, separated
/// by commas.
fn write_buckets(f: &mut fmt::Formatter<'_>, l: &Latency) -> fmt::Result {
    for (i, (value, count)) in l.buckets().enumerate() {
        let sep = if i == 0 { "" } else { "," };
        write!(f, "{sep}{value}:{count}")?;
    }
    Ok(())
}

/// Reads what [`write_buckets`] wrote.
fn parse_buckets(text: &str) -> Option<Latency> {
    let mut l = Latency::new();
    for pair in text.split(',').filter(|p| !p.is_empty()) {
        let (value, count) = pair.split_once(':')?;
        l.record_bucket(value.parse().ok()?, count.parse().ok()?)?;
    }
    Some(l)
}

/// The progress line of `p`, without its newline.
pub fn progress_line(p: &Progress) -> String {
    Line::Progress(p.clone()).to_string()
}

/// The lines of a report, from `report 1` to `end`, each with its newline.
pub fn report_text(r: &Report) -> String {
    let mut lines = vec![Line::Report];
    lines.extend(COUNTERS.iter().map(|c| Line::Count(c.name, (c.get)(r))));
    lines.extend(
        r.connect_errors
            .iter()
            .map(|(reason, n)| Line::ConnectError(*n, reason.clone())),
    );
    lines.extend(
        r.closes
            .iter()
            .map(|(reason, n)| Line::Close(*n, reason.clone())),
    );
    lines.push(Line::Hist(Hist::Scheduled, r.scheduled.clone()));
    lines.push(Line::Hist(Hist::Rtt, r.rtt.clone()));
    lines.push(Line::End);
    let mut s = String::new();
    for line in lines {
        let _ = writeln!(s, "{line}");
    }
    s
}

/// What a worker's output amounts to, line by line.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// A progress snapshot.
    Progress(Box<Progress>),
    /// The worker's complete report.
    Report(Box<Report>),
}

/// Reads a worker's stdout one line at a time: [`handle_line`] each, then
/// [`finish`] when it ends.
///
/// [`handle_line`]: Reader::handle_line
/// [`finish`]: Reader::finish
#[derive(Debug, Default)]
pub struct Reader {
    /// The report being read, between `report 1` and `end`.
    report: Option<Report>,
}

impl Reader {
    /// A reader expecting progress lines or a report.
    pub fn new() -> Reader {
        Reader::default()
    }

    /// Takes one line (without its newline): what it completes, if
    /// anything; an error names a line that does not belong here.
    pub fn handle_line(&mut self, text: &str) -> Result<Option<Output>, String> {
        let line = Line::parse(text);
        let Some(report) = self.report.as_mut() else {
            return match line {
                Some(Line::Progress(p)) => Ok(Some(Output::Progress(Box::new(p)))),
                Some(Line::Report) => {
                    self.report = Some(Report {
                        procs: 0,
                        ..Report::default()
                    });
                    Ok(None)
                }
                _ if text.starts_with("progress ") => Err(format!("bad progress line {text:?}")),
                _ => Err(format!("unexpected output {text:?}")),
            };
        };
        match line {
            Some(Line::Count(name, n)) => {
                if let Some(c) = COUNTERS.iter().find(|c| c.name == name) {
                    *(c.get_mut)(report) = n;
                }
            }
            Some(Line::ConnectError(n, reason)) => {
                *report.connect_errors.entry(reason).or_default() += n;
            }
            Some(Line::Close(n, reason)) => *report.closes.entry(reason).or_default() += n,
            Some(Line::Hist(Hist::Scheduled, l)) => report.scheduled = l,
            Some(Line::Hist(Hist::Rtt, l)) => report.rtt = l,
            Some(Line::End) => {
                return Ok(self.report.take().map(|r| Output::Report(Box::new(r))));
            }
            Some(Line::Progress(_) | Line::Report) | None => {
                return Err(format!("bad report line {text:?}"))
            }
        }
        Ok(None)
    }

    /// The output ended: an error if it ended inside a report.
    pub fn finish(self) -> Result<(), String> {
        match self.report {
            Some(_) => Err("its report ends early".to_owned()),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::report::tests::sample;

    /// Feeds `text` to a fresh reader: what it read, or the first error.
    fn read(text: &str) -> Result<Vec<Output>, String> {
        let mut reader = Reader::new();
        let mut out = Vec::new();
        for line in text.lines() {
            out.extend(reader.handle_line(line)?);
        }
        reader.finish()?;
        Ok(out)
    }

    fn progress() -> Progress {
        let mut p = Progress::new(1500, Phase::Hold);
        (p.online, p.sent, p.received, p.errors, p.reconnects) = (10, 100, 99, 2, 3);
        p.rtt.record(120);
        p.rtt.record(120);
        p.rtt.record(4_000_000);
        p
    }

    #[test]
    fn every_kind_of_line_prints_and_parses_back() {
        let mut l = Latency::new();
        for v in [1, 20, 20, 3_000_000] {
            l.record(v);
        }
        let lines = [
            Line::Progress(progress()),
            Line::Report,
            Line::Count("hold_ms", u64::MAX),
            Line::ConnectError(3, "connection-refused".to_owned()),
            Line::Close(1, "BYE (unknown reason)".to_owned()),
            Line::Hist(Hist::Scheduled, l),
            Line::Hist(Hist::Rtt, Latency::new()),
            Line::End,
        ];
        for line in lines {
            let text = line.to_string();
            assert!(!text.contains('\n'), "{text}");
            assert_eq!(Line::parse(&text), Some(line), "{text}");
        }
        assert_eq!(
            progress_line(&progress()),
            "progress 1500 hold 10 100 99 2 3 rtt=120:2,4001791:1 sched="
        );
        assert_eq!(
            Line::Hist(Hist::Rtt, Latency::new()).to_string(),
            "hist rtt"
        );
    }

    #[test]
    fn a_report_reads_back_exactly() {
        let mut r = sample(3, 1_000);
        r.closes.insert("BYE (unknown reason)".to_owned(), 1);
        let text = format!("{}\n{}", progress_line(&progress()), report_text(&r));
        assert_eq!(text.lines().nth(1), Some("report 1"));
        assert_eq!(text.lines().last(), Some("end"));
        assert_eq!(
            read(&text),
            Ok(vec![
                Output::Progress(Box::new(progress())),
                Output::Report(Box::new(r))
            ])
        );
        // An empty report too.
        assert_eq!(
            read(&report_text(&Report::new())),
            Ok(vec![Output::Report(Box::new(Report::new()))])
        );
    }

    #[test]
    fn lines_that_do_not_belong_are_refused_by_name() {
        let report = |line: &str| format!("report 1\n{line}\nend\n");
        for (text, error) in [
            ("progress 1 hold 1 1 1 1 1 rtt=", "bad progress line"),
            (
                "progress 1 hold 1 1 1 1 1 rtt= sched= x",
                "bad progress line",
            ),
            ("progress 1 nope 1 1 1 1 1 rtt= sched=", "bad progress line"),
            ("progress x hold 1 1 1 1 1 rtt= sched=", "bad progress line"),
            ("progress 1 hold 1 1 1 1 1 sched= rtt=", "bad progress line"),
            (
                "progress 1 hold 1 1 1 1 1 rtt=1 sched=",
                "bad progress line",
            ),
            (
                "progress 1 hold 1 1 1 1 1 rtt=1:x sched=",
                "bad progress line",
            ),
            (
                "progress 1 hold 1 1 1 1 1 rtt= sched=99999999999999:1",
                "bad progress line",
            ),
            ("report 2", "unexpected output"),
            ("count sent 1", "unexpected output"),
            ("end", "unexpected output"),
            ("\n", "unexpected output"),
            (&report("count nope 1"), "bad report line \"count nope 1\""),
            (&report("count sent x"), "bad report line"),
            (&report("close x y"), "bad report line"),
            (&report("close 1 not a reason"), "bad report line"),
            (&report("hist rtt 1:x"), "bad report line"),
            (&report("hist rtt 99999999999999:1"), "bad report line"),
            (&report("hist other 1:1"), "bad report line"),
            (
                &report("progress 1 hold 1 1 1 1 1 rtt= sched="),
                "bad report line",
            ),
            (&report("report 1"), "bad report line"),
            (&report("what"), "bad report line"),
            ("report 1\ncount sent 1\n", "its report ends early"),
        ] {
            let e = read(text).expect_err(text);
            assert!(e.contains(error), "{text:?}: {e}");
        }
    }
}
