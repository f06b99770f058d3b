//! What the dispatcher leaves for people: who it is (`dispatcher.json`)
//! and its troubles (`dispatcher.log`), since it has no terminal.

use std::io::Write;
use std::path::Path;

use bg_shared::{cli, process, time};

use super::Dispatcher;

/// The dispatcher's log is cut back when it grows past this.
const MAX_LOG_BYTES: u64 = 256 * 1024;

impl Dispatcher {
    /// Leaves `dispatcher.json`: which process dispatches (for people, and
    /// for tools that must stop it), valid while `dispatcher.lock` is held.
    pub(super) fn say_who(&self) {
        let me = process::Identity::of(std::process::id() as process::Pid);
        let who = serde_json::json!({
            "version": bg_shared::record::RECORD_VERSION,
            "pid": me.as_ref().map(|me| me.pid),
            "start_time": me.as_ref().map(|me| me.start_time),
            "boot_id": process::boot_id(),
            "started_at": time::now_rfc3339(),
        });
        let path = self.state.root().join("dispatcher.json");
        if let Err(err) = bg_shared::fsutil::write_json_atomic(&path, &who) {
            self.note(&format!(
                "cannot write {}: {}",
                path.display(),
                cli::error_chain(&err)
            ));
        }
    }

    /// Appends a line to `dispatcher.log`, the one place its troubles can
    /// be read (it has no terminal); cut back when it grows too long.
    pub(super) fn note(&self, message: &str) {
        note_in(&self.log, message);
    }
}

/// Appends a line to the dispatcher's log at `log`, cut back to nothing
/// once it grows past [`MAX_LOG_BYTES`].
pub(super) fn note_in(log: &Path, message: &str) {
    let too_long = std::fs::metadata(log).is_ok_and(|m| m.len() > MAX_LOG_BYTES);
    let file = bg_shared::fsutil::private_options()
        .append(true)
        .create(true)
        .truncate(false)
        .open(log);
    if let Ok(mut file) = file {
        if too_long {
            let _ = file.set_len(0);
        }
        let _ = writeln!(file, "{} {message}", time::now_rfc3339());
    }
}
