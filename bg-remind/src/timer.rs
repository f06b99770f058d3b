//! `bg-remind DUR [MESSAGE]`: sleep, then say what was due.

use std::time::{Duration, SystemTime};

use bg_shared::exit::ExitCode;
use bg_shared::{Result, cli, time};
use serde::Serialize;

#[derive(Debug, Serialize)]
struct Fired {
    message: String,
    set_at: String,
    due_at: String,
    fired_at: String,
    delay_ms: u64,
}

pub fn run(delay: Duration, message: &str, json: bool) -> Result<ExitCode> {
    let set_at = SystemTime::now();
    // A monotonic sleep, as sleep(1): the clock being set does not move it.
    std::thread::sleep(delay);
    let fired = Fired {
        message: message.to_string(),
        set_at: time::rfc3339(set_at),
        due_at: time::rfc3339(set_at + delay),
        fired_at: time::now_rfc3339(),
        delay_ms: time::millis(delay),
    };
    let text = if json {
        cli::json_line(&fired)?
    } else {
        format!(
            "reminder due {} (set {} earlier): {message}\n",
            seconds(&fired.due_at),
            time::human_duration(fired.delay_ms)
        )
    };
    cli::write_stdout(&text)?;
    Ok(ExitCode::SUCCESS)
}

/// `2026-11-22T00:59:15Z` from `2026-11-22T00:59:15.123Z`: people read
/// reminders to the second.
fn seconds(rfc3339: &str) -> String {
    match rfc3339.split_once('.') {
        Some((whole, _)) => format!("{whole}Z"),
        None => rfc3339.to_string(),
    }
}
