//! What bg-kill says: a line per task stopped on stdout (or one JSON array),
//! a `bg-kill: ...` line on stderr for each task it could not stop, and an
//! exit code that is the worst of them.

use bg_shared::exit::ExitCode;
use bg_shared::format::status_line;
use bg_shared::ids::TaskId;
use bg_shared::process::proc_info;
use bg_shared::record::TaskRecord;
use bg_shared::task::Task;
use bg_shared::{Error, Result, cli, time};
use serde::Serialize;

use crate::stop::{Done, Hit, Outcome, Plan};

/// One task's line of the `--json` array.
#[derive(Debug, Serialize)]
struct Entry {
    id: Option<String>,
    /// `killed`, `cancelled`, `signalled`, `not-running`, `ended-first`,
    /// `unrecorded`, `error`.
    result: &'static str,
    signal: Option<i32>,
    signal_name: Option<String>,
    grace_ms: Option<u64>,
    /// Every process the signal was sent to.
    signalled: Vec<Hit>,
    /// Those still running after the grace, which were KILLed.
    killed_after_grace: Vec<Hit>,
    /// The task's record after the kill.
    task: Option<TaskRecord>,
    error: Option<String>,
}

impl Entry {
    fn bare(id: Option<String>, result: &'static str) -> Entry {
        Entry {
            id,
            result,
            signal: None,
            signal_name: None,
            grace_ms: None,
            signalled: Vec::new(),
            killed_after_grace: Vec::new(),
            task: None,
            error: None,
        }
    }
}

pub struct Report {
    json: bool,
    entries: Vec<Entry>,
    text: String,
    code: ExitCode,
}

impl Report {
    pub fn new(json: bool) -> Report {
        Report {
            json,
            entries: Vec::new(),
            text: String::new(),
            code: ExitCode::SUCCESS,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn fail(&mut self, code: ExitCode, message: &str) {
        cli::say(&format!("bg-kill: {message}"));
        // Trouble outranks a negative answer, which outranks success.
        self.code = self.code.max(code.min(ExitCode::TROUBLE));
    }

    /// `--all` or `--all-projects` found nothing running: a negative answer.
    pub fn nothing_to_stop(&mut self) {
        self.fail(ExitCode::NEGATIVE, "no running tasks");
    }

    pub fn error(&mut self, id: Option<TaskId>, err: &Error) {
        let message = cli::error_chain(err);
        let mut entry = Entry::bare(id.map(|id| id.to_string()), "error");
        entry.error = Some(message.clone());
        self.entries.push(entry);
        self.fail(err.exit_code(), &message);
    }

    pub fn not_running(&mut self, task: &Task) {
        let record = task.record();
        let mut message = format!("not running: {}", status_line(&record));
        if let Some(pid) = reused_pid(task) {
            message.push_str(&format!(
                " (its pid {pid} now belongs to another process, which was left alone)"
            ));
        }
        self.fail(ExitCode::NEGATIVE, &message);
        let mut entry = Entry::bare(Some(record.id.clone()), "not-running");
        entry.task = Some(record);
        self.entries.push(entry);
    }

    /// A queued task, cancelled before it started.
    pub fn cancelled(&mut self, task: &Task) {
        let record = task.record();
        self.text.push_str(&format!("{}\n", status_line(&record)));
        let mut entry = Entry::bare(Some(record.id.clone()), "cancelled");
        entry.task = Some(record);
        self.entries.push(entry);
    }

    pub fn done(&mut self, done: &Done, plan: &Plan) {
        let record = done.task.record();
        let result = match done.outcome {
            Outcome::Killed => {
                self.text.push_str(&format!(
                    "{} ({})\n",
                    status_line(&record),
                    detail(done, plan)
                ));
                "killed"
            }
            Outcome::Signalled => {
                self.text.push_str(&format!(
                    "signalled {}: {}\n",
                    record.id,
                    detail(done, plan)
                ));
                "signalled"
            }
            Outcome::EndedFirst => {
                self.fail(
                    ExitCode::NEGATIVE,
                    &format!(
                        "ended on its own before the signal: {}",
                        status_line(&record)
                    ),
                );
                "ended-first"
            }
            Outcome::Unrecorded => {
                self.fail(
                    ExitCode::TROUBLE,
                    &format!(
                        "task {}: its processes were stopped, but its supervisor has not recorded the end",
                        record.id
                    ),
                );
                "unrecorded"
            }
        };
        self.entries.push(Entry {
            signal: Some(plan.signal.number()),
            signal_name: Some(plan.signal.name()),
            grace_ms: Some(time::millis(plan.grace)),
            signalled: done.signalled.clone(),
            killed_after_grace: done.killed.clone(),
            task: Some(record),
            ..Entry::bare(Some(done.task.paths.id.to_string()), result)
        });
    }

    /// Prints the results; returns the exit code.
    pub fn print(self) -> Result<ExitCode> {
        if self.json {
            cli::write_stdout(&cli::json_line(&self.entries)?)?;
        } else {
            cli::write_stdout(&self.text)?;
        }
        Ok(self.code)
    }
}

/// The recorded pid of a task that is not running, if a live process now
/// has it: the case a bare-pid kill would get wrong.
fn reused_pid(task: &Task) -> Option<i32> {
    let leader = task.leader()?;
    let now = proc_info(leader.pid)?;
    (now.start_time != leader.start_time && !now.zombie).then_some(leader.pid)
}

/// `SIGTERM to 3 processes, then SIGKILL to 1 after the 5.0s grace`.
fn detail(done: &Done, plan: &Plan) -> String {
    let count = |n: usize| match n {
        1 => "1 process".to_string(),
        n => format!("{n} processes"),
    };
    if done.signalled.is_empty() && done.killed.is_empty() && done.task.launch.restart.is_some() {
        return "between two runs: not restarted".into();
    }
    let mut text = format!("{} to {}", plan.signal.name(), count(done.signalled.len()));
    if !done.killed.is_empty() {
        text.push_str(&format!(
            ", then SIGKILL to {} after the {} grace",
            count(done.killed.len()),
            time::human_duration(time::millis(plan.grace))
        ));
    }
    text
}
