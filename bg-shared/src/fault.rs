//! Injected faults, so that tests can show what a crash between two steps
//! leaves behind: `BG_FAULT=<point>` makes a debug build die at that point
//! (it KILLs itself), or stall there: until the file `BG_FAULT_GATE`
//! exists, or for `BG_FAULT_STALL_MS` (at most, with a gate). Release
//! builds compile every point to nothing.

/// Where a process may be made to die or stall.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Point {
    /// The supervisor, once the command is forked and before its launch
    /// record is published.
    SupervisorAfterSpawn,
    /// Automatic pruning, as it starts.
    AutoPrune,
    /// The supervisor, woken by a child's end, before it reaps.
    SupervisorReap,
    /// The queue's dispatcher, once it has taken a queued task (recorded
    /// `dispatched_at`) and before it hands the task to a supervisor.
    DispatcherAfterClaim,
    /// The same place, to stall there (the task's lock held, no pid yet).
    DispatcherStallAfterClaim,
    /// Not a place but a pretence: the state dir's filesystem cannot punch
    /// holes, so the output cap takes its other way.
    NoPunchHole,
    /// The supervisor of a restarted task, once the delay has passed and
    /// before the next run starts.
    SupervisorBeforeRestart,
    /// A pretence: the record of a restart cannot be written.
    RecordRestart,
}

impl Point {
    fn name(self) -> &'static str {
        match self {
            Point::SupervisorAfterSpawn => "supervisor-after-spawn",
            Point::AutoPrune => "auto-prune",
            Point::SupervisorReap => "supervisor-reap",
            Point::DispatcherAfterClaim => "dispatcher-after-claim",
            Point::DispatcherStallAfterClaim => "dispatcher-stall-after-claim",
            Point::NoPunchHole => "no-punch-hole",
            Point::SupervisorBeforeRestart => "supervisor-before-restart",
            Point::RecordRestart => "record-restart",
        }
    }
}

/// Dies here if `BG_FAULT` names this point.
pub fn crash(point: Point) {
    if cfg!(debug_assertions) && is_armed(point) {
        let me = std::process::id() as crate::process::Pid;
        let _ = crate::process::signal_process(me, crate::process::Signal::KILL);
    }
}

/// Waits here if `BG_FAULT` names this point: until `BG_FAULT_GATE`
/// exists (checked every 10 ms), or for `BG_FAULT_STALL_MS`, whichever
/// comes first (10 s with a gate and no time).
pub fn stall(point: Point) {
    if !(cfg!(debug_assertions) && is_armed(point)) {
        return;
    }
    let gate = std::env::var_os("BG_FAULT_GATE").map(std::path::PathBuf::from);
    let ms = std::env::var("BG_FAULT_STALL_MS")
        .ok()
        .and_then(|ms| ms.parse().ok())
        .unwrap_or(if gate.is_some() { 10_000 } else { 0 });
    let until = std::time::Instant::now() + std::time::Duration::from_millis(ms);
    let step = std::time::Duration::from_millis(10);
    while std::time::Instant::now() < until && !gate.as_ref().is_some_and(|g| g.exists()) {
        std::thread::sleep(step.min(until.saturating_duration_since(std::time::Instant::now())));
    }
}

/// Whether `BG_FAULT` names this point (always false in release builds).
pub fn pretends(point: Point) -> bool {
    cfg!(debug_assertions) && is_armed(point)
}

fn is_armed(point: Point) -> bool {
    std::env::var_os("BG_FAULT").is_some_and(|armed| armed == point.name())
}
