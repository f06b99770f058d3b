//! Injected faults, so that tests can show what a crash between two steps
//! leaves behind: `BG_FAULT=<point>` makes a debug build die at that point
//! (it KILLs itself), or stall there for `BG_FAULT_STALL_MS`. Release
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
}

impl Point {
    fn name(self) -> &'static str {
        match self {
            Point::SupervisorAfterSpawn => "supervisor-after-spawn",
            Point::AutoPrune => "auto-prune",
            Point::SupervisorReap => "supervisor-reap",
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

/// Waits here for `BG_FAULT_STALL_MS` if `BG_FAULT` names this point.
pub fn stall(point: Point) {
    if cfg!(debug_assertions) && is_armed(point) {
        let ms = std::env::var("BG_FAULT_STALL_MS")
            .ok()
            .and_then(|ms| ms.parse().ok())
            .unwrap_or(0);
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
}

fn is_armed(point: Point) -> bool {
    std::env::var_os("BG_FAULT").is_some_and(|armed| armed == point.name())
}
