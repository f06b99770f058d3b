//! The one way a task's end is recorded, whoever records it: bg-run for a
//! command that could not start, the supervisor when the command ends,
//! bg-kill for a task whose supervisor is gone. Each says how the task
//! ended as an [`End`]; [`record_end`] turns it into `status.json` and a
//! journal line, in the order readers rely on (docs/ARCHITECTURE.md, "The
//! life of a task").

use std::time::{Duration, SystemTime};

use crate::exit::ExitCode;
use std::collections::HashSet;

use crate::fsutil::{Reserved, read_json, write_json_atomic};
use crate::ids::TaskId;
use crate::journal::{self, JournalLock};
use crate::process::Pid;
use crate::record::{
    EndReason, JournalEntry, LaunchRecord, MAX_LEFTOVER_PIDS, RECORD_VERSION, StatusRecord,
    TaskState,
};
use crate::state_dir::StateDir;
use crate::task::TaskPaths;
use crate::{IoContext, Result, lock, time};

/// How a task ended, as its recorder knows it.
#[derive(Debug, Clone)]
pub struct End {
    pub state: TaskState,
    pub reason: EndReason,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub ended_at: SystemTime,
    /// How long it ran, where known.
    pub duration: Option<Duration>,
    /// Members of the task's tree still alive when it was recorded.
    pub leftovers: Vec<Pid>,
    /// Why the command could not start.
    pub error: Option<String>,
    /// What the task wrote and its output cap dropped, where known.
    pub output: Option<crate::output::cap::Totals>,
}

impl End {
    /// A command that could not be started, with the shell's code for it.
    pub fn failed_to_start(code: ExitCode, message: String) -> End {
        End {
            state: TaskState::FailedToStart,
            reason: EndReason::SpawnError,
            exit_code: Some(code.code()),
            signal: None,
            ended_at: SystemTime::now(),
            duration: Some(Duration::ZERO),
            leftovers: Vec::new(),
            error: Some(message),
            output: None,
        }
    }

    /// A queued task that ends without ever starting (`cancelled`,
    /// `skipped`): no exit code, no signal, no run time.
    pub fn never_started(state: TaskState, reason: EndReason, message: String) -> End {
        End {
            state,
            reason,
            exit_code: None,
            signal: None,
            ended_at: SystemTime::now(),
            duration: None,
            leftovers: Vec::new(),
            error: Some(message),
            output: None,
        }
    }

    fn status_record(&self) -> StatusRecord {
        StatusRecord {
            version: RECORD_VERSION,
            state: self.state,
            reason: self.reason,
            exit_code: self.exit_code,
            signal: self.signal,
            ended_at: time::rfc3339(self.ended_at),
            duration_ms: self.duration.map(time::millis),
            group_alive: !self.leftovers.is_empty(),
            leftover_pids: self
                .leftovers
                .iter()
                .copied()
                .take(MAX_LEFTOVER_PIDS)
                .collect(),
            error: self.error.clone(),
            output_bytes: self.output.map(|o| o.written),
            output_dropped_bytes: self.output.map(|o| o.dropped),
        }
    }
}

/// Where a task's records are, and the space set aside for its status.
pub struct Recorder<'a> {
    pub state: &'a StateDir,
    pub paths: &'a TaskPaths,
    pub launch: &'a LaunchRecord,
    /// The status record's reserved space, if its holder is the recorder;
    /// otherwise a reserve left on disk (by a dead supervisor) is freed
    /// first, so that a full disk still takes the record.
    pub reserve: Option<Reserved>,
}

/// What [`record_end`] wrote.
#[must_use = "the journal line may have failed"]
pub struct Recorded {
    pub status: StatusRecord,
    /// The journal line: its failure leaves the outcome recorded (readers
    /// of the task see it) but unannounced to `--notify`, so each caller
    /// says what it means for its own exit.
    pub journal: Result<()>,
}

/// Records how a task ended: `status.json` (durably, before anyone can be
/// told), then the journal line `--notify` reads. A command that never
/// started has no launch record yet: its output file, status and launch
/// record are written in that order, so no reader ever finds the task
/// without its outcome. An error means the outcome is not on disk.
pub fn record_end(recorder: Recorder<'_>, end: &End) -> Result<Recorded> {
    let Recorder {
        state,
        paths,
        launch,
        reserve,
    } = recorder;
    let status = end.status_record();
    let never_started = end.reason == EndReason::SpawnError;
    // Made at launch; made here for a task that was never launched.
    let unjournaled = paths.unjournaled();
    if !unjournaled.exists() {
        let _ = crate::fsutil::create_new_private(&unjournaled);
    }
    if never_started {
        // Every task has an output file, if only an empty one.
        crate::fsutil::private_options()
            .append(true)
            .create(true)
            .open(paths.output())
            .context(|| format!("creating {}", paths.output().display()))?;
    }
    write_status(paths, &status, reserve)?;
    if never_started {
        write_json_atomic(&paths.meta(), launch)?;
    }
    let journal = journal::append(state, &JournalEntry::of(launch, &status));
    if journal.is_ok() {
        // Best effort: a marker left behind only makes --notify look again.
        let _ = std::fs::remove_file(&unjournaled);
    }
    crate::summary::note_end(state, paths);
    Ok(Recorded { status, journal })
}

fn write_status(paths: &TaskPaths, status: &StatusRecord, reserve: Option<Reserved>) -> Result<()> {
    let target = paths.status();
    match reserve {
        // Should the reserve fail, the plain way may still find room.
        Some(reserve) => reserve
            .commit_json(&target, status)
            .or_else(|_| write_json_atomic(&target, status)),
        None => {
            // Best effort: the reserve is only there to be given up.
            let _ = std::fs::remove_file(paths.status_reserve());
            write_json_atomic(&target, status)
        }
    }
}

/// Writes the journal lines that recorders could not (a full disk, a crash
/// between status and journal), so that every ended task reaches
/// `--notify`, once: a task whose line is already there only loses its
/// marker. Tasks whose recorder still holds their lock are left to it.
/// The caller holds the journal's lock, and lists the task ids (`--notify`
/// lists them once for this and for its lost tasks).
pub fn settle_unjournaled(state: &StateDir, held: &JournalLock, ids: &[TaskId]) -> Result<usize> {
    let mut journaled: Option<HashSet<String>> = None;
    let mut settled = 0;
    for id in ids {
        let paths = TaskPaths::new(state, id.clone());
        if !paths.unjournaled().exists() || !paths.status().exists() {
            continue;
        }
        if lock::is_held(&paths.lock())? {
            continue;
        }
        let records = LaunchRecord::read(&paths.meta())
            .ok()
            .flatten()
            .zip(read_json::<StatusRecord>(&paths.status()).ok().flatten());
        let Some((launch, status)) = records else {
            continue;
        };
        let known = match &mut journaled {
            Some(known) => known,
            None => journaled.insert(journal::ids(state, held)?),
        };
        if !known.contains(paths.id.as_str()) {
            journal::append_held(state, held, &JournalEntry::of(&launch, &status))?;
            known.insert(paths.id.to_string());
            settled += 1;
        }
        let _ = std::fs::remove_file(paths.unjournaled());
    }
    Ok(settled)
}
