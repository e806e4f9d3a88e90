//! The stdin reader of `vigil client`: a helper thread that blocks on stdin
//! and hands the loop whole lines through a bounded channel, waking it with
//! a mio [`Waker`] (see the [driver docs](super), "Stdin", for why a thread).

use std::io::{self, BufRead, Read};
use std::sync::mpsc::SyncSender;
use std::sync::Arc;

use mio::Waker;

/// What the stdin reader hands the loop.
#[derive(Debug)]
pub(super) enum Input {
    Line(Vec<u8>),
    TooLong,
    Eof,
    Failed(io::Error),
}

/// What [`read_line`] found.
#[derive(Debug, PartialEq, Eq)]
enum ReadLine {
    Line,
    TooLong,
    Eof,
}

/// Reads one line into `line`, without its `\n` or `\r\n`. A line over
/// `max` bytes is skipped to its end and reported as too long, so a
/// newline-free stream cannot make the reader buffer without bound. The
/// last line may lack its ending.
fn read_line(r: &mut impl BufRead, line: &mut Vec<u8>, max: usize) -> io::Result<ReadLine> {
    line.clear();
    let limit = max as u64 + 2;
    let n = r.by_ref().take(limit).read_until(b'\n', line)?;
    if n == 0 {
        return Ok(ReadLine::Eof);
    }
    if line.last() == Some(&b'\n') {
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
    } else if n as u64 == limit {
        // Skip the rest of the over-long line, a bounded piece at a time.
        let mut skipped = Vec::new();
        loop {
            skipped.clear();
            let n = r.by_ref().take(4096).read_until(b'\n', &mut skipped)?;
            if n == 0 || skipped.last() == Some(&b'\n') {
                break;
            }
        }
        line.clear();
        return Ok(ReadLine::TooLong);
    }
    if line.len() > max {
        line.clear();
        return Ok(ReadLine::TooLong);
    }
    Ok(ReadLine::Line)
}

/// Starts the reader thread: it sends each line of stdin (at most `max`
/// bytes) through `tx` and wakes the loop with `waker`, until end of input,
/// a read error, or the loop's end (the receiver dropped).
pub(super) fn spawn_stdin_reader(
    tx: SyncSender<Input>,
    waker: Arc<Waker>,
    max: usize,
) -> io::Result<()> {
    std::thread::Builder::new()
        .name("vigil-stdin".to_owned())
        .spawn(move || {
            let stdin = io::stdin();
            let mut stdin = stdin.lock();
            let mut line = Vec::new();
            loop {
                let input = match read_line(&mut stdin, &mut line, max) {
                    Ok(ReadLine::Line) => Input::Line(std::mem::take(&mut line)),
                    Ok(ReadLine::TooLong) => Input::TooLong,
                    Ok(ReadLine::Eof) => Input::Eof,
                    Err(e) => Input::Failed(e),
                };
                let last = matches!(input, Input::Eof | Input::Failed(_));
                // The loop is gone when the receiver is: nothing to do.
                if tx.send(input).is_err() {
                    return;
                }
                let _ = waker.wake();
                if last {
                    return;
                }
            }
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check_lines(input: &[u8], max: usize, expected: &[&str]) {
        let mut r = io::Cursor::new(input);
        let mut line = Vec::new();
        let mut got = Vec::new();
        loop {
            match read_line(&mut r, &mut line, max).expect("cursor reads") {
                ReadLine::Eof => break,
                ReadLine::TooLong => got.push("<too long>".to_owned()),
                ReadLine::Line => got.push(String::from_utf8_lossy(&line).into_owned()),
            }
        }
        assert_eq!(got, expected);
    }

    #[test]
    fn stdin_lines() {
        check_lines(b"", 4, &[]);
        check_lines(b"a\nb\r\n\nlast", 4, &["a", "b", "", "last"]);
        check_lines(
            b"abcd\nabcd\r\nabcde\nok\n",
            4,
            &["abcd", "abcd", "<too long>", "ok"],
        );
        check_lines(b"abcdefghijklmnopqrstuvwxyz\nok", 4, &["<too long>", "ok"]);
        check_lines(b"abcdefghijklmnopqrstuvwxyz", 4, &["<too long>"]);
        let long = vec![b'x'; 20_000];
        check_lines(&long, 4, &["<too long>"]);
    }
}
