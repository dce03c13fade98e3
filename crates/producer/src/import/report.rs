//! What the import tells its user: refused rows on standard error (the
//! first [`MAX_PRINTED`] problems, then a count), a progress line every
//! second while standard error is a terminal, and a closing summary.

use std::{
    io::{IsTerminal, Write},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::{input::RowProblem, publish::Acknowledged};

/// Problems printed before the rest are only counted.
pub const MAX_PRINTED: usize = 100;

/// Prints refused rows as `FILE:LINE: field `name`: reason`.
#[derive(Debug, Default)]
pub struct Refusals {
    /// Rows refused.
    pub rows: u64,
    /// Problems printed, and not printed past the cap.
    printed: usize,
    unprinted: u64,
    lines: Vec<String>,
    /// Print as found (the command) or only collect (tests).
    quiet: bool,
    /// Standard error is a terminal: clear the progress line first.
    terminal: bool,
}

impl Refusals {
    /// Prints problems to standard error as they are found.
    pub fn new() -> Self {
        Self {
            terminal: std::io::stderr().is_terminal(),
            ..Self::default()
        }
    }

    /// Collects the lines instead of printing them.
    pub fn quiet() -> Self {
        Self {
            quiet: true,
            ..Self::default()
        }
    }

    pub fn refuse(&mut self, file: &str, line: u64, problems: &[RowProblem]) {
        self.rows += 1;
        for problem in problems {
            if self.printed >= MAX_PRINTED {
                self.unprinted += 1;
                continue;
            }
            self.printed += 1;
            let text = format_problem(file, line, problem);
            if !self.quiet {
                let clear = if self.terminal { "\r\x1b[2K" } else { "" };
                eprintln!("{clear}{text}");
            }
            self.lines.push(text);
        }
    }

    /// The lines printed (or collected).
    pub fn lines(&self) -> &[String] {
        &self.lines
    }

    /// Closes the list with the count of problems not printed.
    pub fn close(&self) {
        if self.unprinted > 0 && !self.quiet {
            eprintln!(
                "... and {} more problems not shown ({} rows refused in all)",
                self.unprinted, self.rows
            );
        }
    }
}

/// `FILE:LINE: field `name`: reason`, or `FILE:LINE: reason` for a problem
/// of the row as a whole.
pub fn format_problem(file: &str, line: u64, problem: &RowProblem) -> String {
    if problem.field.is_empty() {
        format!("{file}:{line}: {}", problem.reason)
    } else {
        format!(
            "{file}:{line}: field `{}`: {}",
            problem.field, problem.reason
        )
    }
}

/// Counters the progress line and the summary read.
#[derive(Debug, Default)]
pub struct Counters {
    /// Rows read while checking the inputs.
    pub checked: AtomicU64,
    /// Rows read while publishing.
    pub read: AtomicU64,
    pub acknowledged: Arc<Acknowledged>,
}

/// The closing summary.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Summary {
    pub files: usize,
    /// Rows read (blank lines are not rows).
    pub read: u64,
    /// Rows whose events were published (as panes, and raw if young enough).
    pub accepted: u64,
    pub refused: u64,
    /// Raw events published and acknowledged.
    pub published_raw: u64,
    /// Panes published and acknowledged (a pane may be published in more
    /// than one version).
    pub published_panes: u64,
    /// Accepted rows too old to be kept raw: counted in the rollups only.
    pub skipped_raw: u64,
    /// `--all-or-nothing` and some row was refused: nothing was published.
    pub nothing_published: bool,
    pub elapsed_seconds: f64,
    pub events_per_second: f64,
    /// Each input's digest, which its panes and generated ids derive from.
    pub digests: Vec<(String, String)>,
}

impl Summary {
    pub fn finish(&mut self, elapsed: Duration) {
        self.elapsed_seconds = elapsed.as_secs_f64();
        self.events_per_second = self.accepted as f64 / self.elapsed_seconds.max(1e-9);
    }

    /// One line for people.
    pub fn line(&self) -> String {
        format!(
            "import: {} rows read from {} file(s), {} refused; published {} raw events and {} panes{}; {} rows too old for the raw tables (rollups only); {:.0} events/s, {:.1} s",
            self.read,
            self.files,
            self.refused,
            self.published_raw,
            self.published_panes,
            if self.nothing_published {
                " (nothing: --all-or-nothing and rows were refused)"
            } else {
                ""
            },
            self.skipped_raw,
            self.events_per_second,
            self.elapsed_seconds,
        )
    }
}

/// Prints a progress line every second on standard error while it is a
/// terminal; stops when the token is cancelled.
pub fn progress(
    counters: Arc<Counters>,
    stop: CancellationToken,
) -> Option<tokio::task::JoinHandle<()>> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let started = Instant::now();
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.tick().await;
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                _ = tick.tick() => {}
            }
            let read = counters.read.load(Ordering::Relaxed);
            let line = if read == 0 {
                format!(
                    "checking: {} rows ({:.0} s)",
                    counters.checked.load(Ordering::Relaxed),
                    started.elapsed().as_secs_f64()
                )
            } else {
                format!(
                    "publishing: {read} rows read, {} raw events and {} panes acknowledged ({:.0} s)",
                    counters.acknowledged.raw.load(Ordering::Relaxed),
                    counters.acknowledged.panes.load(Ordering::Relaxed),
                    started.elapsed().as_secs_f64()
                )
            };
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K{line}");
            let _ = err.flush();
        }
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[2K");
        let _ = err.flush();
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_name_file_line_field_and_reason_and_stop_at_the_cap() {
        let mut refusals = Refusals::quiet();
        refusals.refuse(
            "history.ndjson",
            7,
            &[
                RowProblem::new("response_time_ms", "must not be negative, got -4"),
                RowProblem::new("", "invalid json: EOF while parsing"),
            ],
        );
        assert_eq!(
            refusals.lines(),
            [
                "history.ndjson:7: field `response_time_ms`: must not be negative, got -4",
                "history.ndjson:7: invalid json: EOF while parsing"
            ]
        );
        for line in 0..200 {
            refusals.refuse("f", line, &[RowProblem::new("tool", "missing field")]);
        }
        assert_eq!(refusals.rows, 201);
        assert_eq!(refusals.lines().len(), MAX_PRINTED);
        assert_eq!(refusals.unprinted, 102);
    }
}
