//! Acting on a queued task: starting it (the same path as `bg-run`),
//! skipping it, and syncing what bg-run left unsynced when it queued it.

use std::time::Duration;

use bg_shared::exit::ExitCode;
use bg_shared::fsutil::write_atomic_unsynced;
use bg_shared::outcome::End;
use bg_shared::queue::{self, Entry};
use bg_shared::record::{EndReason, TaskState};
use bg_shared::task::{Task, TaskPaths};
use bg_shared::{Error, Result, cli, lock, time};

use super::{BUSY_RETRY, Dispatcher, Pass, TROUBLE_RETRY};
use crate::handshake::Heard;
use crate::launch::{MIN_FREE_BYTES, TaskFiles, start_supervised};
use crate::stored::StoredSpec;

impl Dispatcher {
    /// Syncs what bg-run wrote when it queued the task and did not wait to
    /// sync (its records, its entry), the first time the task is seen.
    pub(super) fn make_durable(&self, paths: &TaskPaths) {
        let written = [paths.meta(), paths.dir.join(crate::stored::FILE)];
        let synced = bg_shared::fsutil::sync_written(&paths.dir, &written)
            .and_then(|()| bg_shared::fsutil::fsync_dir(&self.state.queued_dir()));
        if let Err(err) = synced {
            self.note(&format!("task {}: {}", paths.id, cli::error_chain(&err)));
        }
    }

    /// Ends a task whose `--after-ok` dependency did not succeed, under its
    /// lock (bg-kill may be cancelling it). False if the lock was busy: it
    /// is tried again shortly.
    pub(super) fn skip(&self, task: &Task, why: String) -> Result<bool> {
        let Some(_held) = lock::try_take(&task.paths.lock(), 3, Duration::from_millis(5))? else {
            return Ok(false);
        };
        if let Some(again) = queue::still_queued(&task.paths)? {
            let end = End::never_started(TaskState::Skipped, EndReason::DependencyFailed, why);
            queue::record_never_started(&self.state, &again, &end)?;
        }
        Ok(true)
    }

    /// Starts a queued task: takes its lock, marks it taken (from then on
    /// it is never queued again, whatever the start does), moves its entry
    /// to `started/`, and hands it to a supervisor. True if it started.
    pub(super) fn start(&self, entry: &Entry, paths: &TaskPaths, pass: &mut Pass) -> Result<bool> {
        let paths = paths.clone();
        // As bg-run refuses a launch: a task started on a full disk would
        // lose its records; queued, it waits for room.
        let room = bg_shared::fsutil::ensure_free_space(self.state.root(), MIN_FREE_BYTES);
        if room.is_err() {
            pass.waiting += 1;
            pass.recheck_within(TROUBLE_RETRY);
            return Ok(false);
        }
        let Some(held) = lock::try_take(&paths.lock(), 3, Duration::from_millis(5))? else {
            pass.waiting += 1;
            pass.recheck_within(BUSY_RETRY);
            return Ok(false);
        };
        let Some(task) = queue::still_queued(&paths)? else {
            return Ok(false);
        };
        let stored = StoredSpec::read(&paths.dir);
        let mut launch = task.launch;
        launch.dispatched_at = Some(time::now_rfc3339());
        // Not synced here: the supervisor syncs the record it publishes
        // over this one, as for any launch (bg-run's launch path).
        write_atomic_unsynced(&paths.meta(), &bg_shared::fsutil::json_bytes(&launch)?)?;
        if entry.queue.is_some() {
            // Holds its slot until it ends.
            queue::add_entry(&self.state.started_dir(), entry)?;
        }
        queue::remove_entry(&self.state.queued_dir(), entry)?;
        // It holds the caller's environment: gone once taken.
        let _ = std::fs::remove_file(paths.dir.join(crate::stored::FILE));
        pass.watch.push(paths.clone());
        bg_shared::fault::crash(bg_shared::fault::Point::DispatcherAfterClaim);
        bg_shared::fault::stall(bg_shared::fault::Point::DispatcherStallAfterClaim);
        let spec = match stored {
            Ok(stored) => stored.into_spec(),
            Err(err) => return self.fail_unreadable(&paths, launch, &err, held),
        };
        let files = TaskFiles::of_queued(&paths, held)?;
        match start_supervised(&self.state, &paths, spec, launch, files) {
            Ok(Heard::Started) | Ok(Heard::Failed(_)) => {}
            Err(err) => self.note(&format!("task {}: {}", paths.id, cli::error_chain(&err))),
        }
        Ok(true)
    }

    /// A task whose stored spec cannot be read cannot start: recorded so.
    fn fail_unreadable(
        &self,
        paths: &TaskPaths,
        launch: bg_shared::record::LaunchRecord,
        err: &Error,
        _held: std::fs::File,
    ) -> Result<bool> {
        let message = format!(
            "its queued launch spec is unreadable: {}",
            cli::error_chain(err)
        );
        self.note(&format!("task {}: {message}", paths.id));
        let end = End::failed_to_start(ExitCode::LAUNCHER_FAILED, message);
        let recorder = bg_shared::outcome::Recorder {
            state: &self.state,
            paths,
            launch: &launch,
            reserve: None,
        };
        let _ = bg_shared::outcome::record_end(recorder, &end)?.journal;
        Ok(true)
    }
}
