//! `--follow --pace`: a feed for an agent host that turns a command's
//! output lines into events for the model, batching and rate-limiting them
//! (Claude Code's Monitor tool; docs/ARCHITECTURE.md, "A paced follow").
//!
//! Such a host joins the lines that arrive close together into one event,
//! cuts long lines and long events, and drops events past a budget, the
//! last one (the task's status) included. A paced follow never lets it:
//! it prints batches, each one write of at most [`BATCH_BYTES`], at most
//! as often as the host's budget refills; lines that do not fit in a batch
//! are summarised in one line with the command that shows them; and the
//! status line goes out in the last batch. The reader's cursor moves past
//! a batch only [`DELIVERED_AFTER`] it was printed, so a monitor that the
//! host stops and the model starts again repeats a batch the host may not
//! have passed on, rather than skipping it.

use std::collections::VecDeque;
use std::io::Write;
use std::time::{Duration, Instant};

use bg_shared::cursor::{self, Cursor};
use bg_shared::exit::ExitCode;
use bg_shared::output::Filters;
use bg_shared::process::DirWatcher;
use bg_shared::task::{self, Task, TaskPaths};
use bg_shared::{IoContext, Result, format, time};

use crate::Cli;
use crate::show::{Output, open_output, timed_out};

/// The most bytes one batch (one write, one event) holds: Claude Code cuts
/// an event at 3,000 characters, and what it cuts is lost.
pub const BATCH_BYTES: usize = 2500;
/// The most bytes of one line a batch shows (the host cuts at 500).
pub const LINE_BYTES: usize = 480;
/// Batches printed one after another before pacing starts, well within
/// the host's budget of 10 events: every event wakes the model, so a
/// flood is better read as a few full batches than as many small ones.
const BURST: u32 = 3;
/// One more batch may be printed per this long: the host refills its
/// budget by one event every 2 s.
const REFILL: Duration = Duration::from_millis(2500);
/// Batches are at least this far apart, so that the host (which joins
/// lines that arrive within 200 ms) never joins two into one event longer
/// than it keeps.
const MIN_GAP: Duration = Duration::from_millis(500);
/// A batch counts as delivered, and the cursor moves past it, this long
/// after it was printed: the host has read and passed it on by then.
const DELIVERED_AFTER: Duration = Duration::from_secs(1);
/// The most new output read for one batch (the newest part of it).
const READ_BYTES: u64 = 1 << 20;

/// A token bucket that mirrors the host's, with a margin.
struct Pacer {
    tokens: u32,
    /// When the last token was added (or the bucket was last full).
    refilled_at: Instant,
    last_batch: Option<Instant>,
}

impl Pacer {
    fn new(now: Instant) -> Pacer {
        Pacer {
            tokens: BURST,
            refilled_at: now,
            last_batch: None,
        }
    }

    fn refill(&mut self, now: Instant) {
        while self.tokens < BURST && now >= self.refilled_at + REFILL {
            self.tokens += 1;
            self.refilled_at += REFILL;
        }
        if self.tokens == BURST {
            self.refilled_at = now;
        }
    }

    /// When the next batch may be printed.
    fn next_turn(&mut self, now: Instant) -> Instant {
        self.refill(now);
        let token = if self.tokens > 0 {
            now
        } else {
            self.refilled_at + REFILL
        };
        let gap = self.last_batch.map_or(now, |at| at + MIN_GAP);
        token.max(gap)
    }

    fn spend(&mut self, now: Instant) {
        self.refill(now);
        self.tokens = self.tokens.saturating_sub(1);
        self.last_batch = Some(now);
    }
}

/// One batch: its text and the output offset it reads up to.
struct Batch {
    text: String,
    next: u64,
}

/// A paced `--follow` in progress.
struct Feed<'a> {
    paths: &'a TaskPaths,
    cli: &'a Cli,
    filters: Filters,
    pacer: Pacer,
    activity: DirWatcher,
    deadline: Option<Instant>,
    /// Where this feed has printed up to.
    printed_to: u64,
    /// Offsets printed and not yet counted as delivered, oldest first.
    undelivered: VecDeque<(Instant, u64)>,
    /// The output is gone, and that was said once.
    warned: bool,
    unsaved_warned: bool,
}

/// Follows the task's output, paced, until it ends.
pub fn follow(paths: &TaskPaths, cli: &Cli, filters: &Filters) -> Result<ExitCode> {
    let mut feed = Feed::new(paths, cli, filters)?;
    loop {
        let turn = feed.pacer.next_turn(Instant::now());
        feed.sleep_until(turn)?;
        let task = Task::load_existing(paths.clone())?;
        if !task.state.is_live() {
            return feed.finish(&task);
        }
        if let Some(batch) = feed.take(&task, 0)? {
            feed.print(&batch.text, batch.next)?;
        }
        if feed.deadline.is_some_and(|d| Instant::now() >= d) {
            feed.deliver_all();
            return Ok(timed_out(paths));
        }
        feed.wait_for_output()?;
    }
}

impl<'a> Feed<'a> {
    fn new(paths: &'a TaskPaths, cli: &'a Cli, filters: &Filters) -> Result<Feed<'a>> {
        let from = Cursor::lock(paths, &cli.reader)?.offset();
        Ok(Feed {
            paths,
            cli,
            // Plain text, the newest part of what is new: escape sequences
            // would only spend the batch's bytes.
            filters: Filters {
                grep: filters.grep.clone(),
                plain: true,
                tail_lines: None,
                max_bytes: Some(READ_BYTES),
                until: None,
            },
            pacer: Pacer::new(Instant::now()),
            activity: paths
                .watch()
                .context(|| format!("watching {}", paths.dir.display()))?,
            deadline: cli.timeout.and_then(time::deadline),
            printed_to: from,
            undelivered: VecDeque::new(),
            warned: false,
            unsaved_warned: false,
        })
    }

    /// What is new, as one batch that leaves `reserve` bytes free.
    fn take(&mut self, task: &Task, reserve: usize) -> Result<Option<Batch>> {
        let from = self.printed_to;
        let reading = match open_output(task, from, &self.filters)? {
            Output::Read(reading) => reading,
            Output::Removed(note) | Output::Unavailable(note) => {
                return Ok(self.note_once(note, from));
            }
        };
        let (omitted, next) = (reading.omitted(), reading.next());
        let mut bytes = Vec::new();
        reading.write_to(&mut bytes)?;
        if bytes.is_empty() && omitted == 0 {
            // Filtered out, or nothing new: nothing for the host to take.
            if next != from {
                self.printed_to = next;
                self.undelivered.push_back((Instant::now(), next));
            }
            return Ok(None);
        }
        let text = String::from_utf8_lossy(&bytes);
        let lines: Vec<String> = text.lines().map(shown_line).collect();
        let budget = BATCH_BYTES.saturating_sub(reserve);
        let text = self.compose(&lines, omitted, budget, (from, next));
        Ok(Some(Batch { text, next }))
    }

    /// The newest lines that fit in `budget`, after a line that sums up
    /// the ones that do not and names the command that shows them all.
    fn compose(&self, lines: &[String], omitted: u64, budget: usize, span: (u64, u64)) -> String {
        let fits = |room: usize| {
            let mut used = 0;
            lines
                .iter()
                .rev()
                .take_while(|line| {
                    used += line.len() + 1;
                    used <= room
                })
                .count()
        };
        let whole: usize = lines.iter().map(|line| line.len() + 1).sum();
        if omitted == 0 && whole <= budget {
            return lines.iter().map(|line| format!("{line}\n")).collect();
        }
        // The longest the summary can be: its counts are at most these.
        let longest = self.summary(lines.len(), lines.len(), omitted, span).len();
        let kept = fits(budget.saturating_sub(longest));
        let skipped = lines.len() - kept;
        let mut text = self.summary(skipped, kept, omitted, span);
        for line in &lines[skipped..] {
            text.push_str(line);
            text.push('\n');
        }
        text
    }

    fn summary(&self, skipped: usize, kept: usize, omitted: u64, span: (u64, u64)) -> String {
        let (from, next) = span;
        let before = if omitted > 0 {
            format!(" and {omitted} bytes before them")
        } else {
            String::new()
        };
        let mut words = vec![
            "bg-check".to_string(),
            self.paths.id.to_string(),
            "--range".into(),
            format!("{from}-{next}"),
            "--strip-ansi".into(),
        ];
        if let Some(pattern) = &self.cli.grep {
            words.extend(["--grep".into(), pattern.clone()]);
        }
        if let Some(dir) = &self.cli.state_dir {
            words.extend(["--state-dir".into(), dir.to_string_lossy().into_owned()]);
        }
        let command = format::shell_join(words.iter().map(|w| format::printable(w)));
        format!(
            "[... {skipped} lines{before} skipped, too many to pass on: \
             all but the last {kept} lines of {command}]\n"
        )
    }

    /// A log that is gone or was removed is said once, in a batch.
    fn note_once(&mut self, note: String, from: u64) -> Option<Batch> {
        if std::mem::replace(&mut self.warned, true) {
            return None;
        }
        Some(Batch {
            text: format!("[{}]\n", format::printable(&note)),
            next: from,
        })
    }

    /// Prints a batch in one write, and notes it as not yet delivered.
    fn print(&mut self, text: &str, next: u64) -> Result<()> {
        let mut out = std::io::stdout().lock();
        out.write_all(text.as_bytes())
            .and_then(|()| out.flush())
            .context(|| "writing to stdout".into())?;
        let now = Instant::now();
        self.pacer.spend(now);
        self.printed_to = next;
        self.undelivered.push_back((now, next));
        Ok(())
    }

    /// The last batch with the status line, in one write; the task's exit
    /// status.
    fn finish(&mut self, task: &Task) -> Result<ExitCode> {
        let status = format!("{}\n", format::status_line(&task.record()));
        let batch = self.take(task, status.len())?;
        let (mut text, next) = match batch {
            Some(batch) => (batch.text, batch.next),
            None => (String::new(), self.printed_to),
        };
        text.push_str(&status);
        self.print(&text, next)?;
        self.deliver_all();
        Ok(task::exit_status(task, "bg-check"))
    }

    /// Sleeps until `when`, moving the cursor past what was delivered.
    fn sleep_until(&mut self, when: Instant) -> Result<()> {
        loop {
            self.deliver_due(Instant::now());
            let now = Instant::now();
            if now >= when {
                return Ok(());
            }
            let until = self.next_delivery().map_or(when, |d| d.min(when));
            std::thread::sleep(until.saturating_duration_since(now));
        }
    }

    /// Sleeps until new output, the task's end, the deadline, or a batch
    /// due to count as delivered.
    fn wait_for_output(&mut self) -> Result<()> {
        let wake = [self.deadline, self.next_delivery()]
            .into_iter()
            .flatten()
            .min();
        let timeout = wake.map(|w| w.saturating_duration_since(Instant::now()));
        self.activity
            .wait(timeout)
            .context(|| "waiting for output".into())?;
        Ok(())
    }

    fn next_delivery(&self) -> Option<Instant> {
        self.undelivered
            .front()
            .map(|(at, _)| *at + DELIVERED_AFTER)
    }

    fn deliver_due(&mut self, now: Instant) {
        let mut delivered = None;
        while let Some(&(at, next)) = self.undelivered.front() {
            if now < at + DELIVERED_AFTER {
                break;
            }
            delivered = Some(next);
            self.undelivered.pop_front();
        }
        if let Some(next) = delivered {
            self.save_cursor(next);
        }
    }

    /// On a normal end: the host reads the pipe to its end.
    fn deliver_all(&mut self) {
        if let Some(&(_, next)) = self.undelivered.back() {
            self.undelivered.clear();
            self.save_cursor(next);
        }
    }

    fn save_cursor(&mut self, next: u64) {
        let saved = Cursor::lock(self.paths, &self.cli.reader).and_then(|c| c.set(next));
        if let Err(err) = saved
            && !std::mem::replace(&mut self.unsaved_warned, true)
        {
            cursor::warn_unsaved(&err);
        }
    }
}

/// A line as a batch shows it: control characters made visible, cut at
/// [`LINE_BYTES`] (on a character boundary) with a mark.
fn shown_line(line: &str) -> String {
    let line = format::printable(line);
    if line.len() <= LINE_BYTES {
        return line.into_owned();
    }
    let mut end = LINE_BYTES;
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    format!("{} [... {} bytes cut]", &line[..end], line.len() - end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bucket_allows_a_burst_then_one_batch_per_refill() {
        let start = Instant::now();
        let mut pacer = Pacer::new(start);
        let mut now = start;
        let mut times = Vec::new();
        while now < start + Duration::from_secs(120) {
            now = pacer.next_turn(now);
            pacer.spend(now);
            times.push(now - start);
        }
        let burst = times
            .iter()
            .filter(|t| **t <= MIN_GAP * (BURST - 1))
            .count();
        assert_eq!(burst, BURST as usize, "{times:?}");
        assert!(
            times.windows(2).all(|w| w[1] - w[0] >= MIN_GAP),
            "{times:?}"
        );
        // Over a long run, less than the host's refill of one per 2 s.
        assert!(
            times.len() <= BURST as usize + 120 / 2 - 10,
            "{} batches",
            times.len()
        );
    }

    #[test]
    fn long_lines_are_cut_on_a_character_boundary() {
        let line = "é".repeat(400);
        let shown = shown_line(&line);
        assert!(shown.len() < LINE_BYTES + 40, "{}", shown.len());
        assert!(shown.ends_with(" bytes cut]"), "{shown}");
        assert_eq!(shown_line("\x1b[31mred"), "\\e[31mred");
    }
}
