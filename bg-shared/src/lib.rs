//! The library every bg-tool stands on: where state lives and how it is kept
//! safe, task ids and records, the supervisor's liveness lock, the completion
//! journal, and (in [`process`], the only module allowed `unsafe`) everything
//! that touches the operating system's process machinery.

pub mod allowlist;
pub mod ansi;
pub mod budget;
pub mod cli;
pub mod cursor;
pub mod error;
pub mod exit;
pub mod fault;
pub mod format;
pub mod fsutil;
pub mod help;
pub mod ids;
pub mod journal;
pub mod lock;
pub mod names;
pub mod notify_state;
pub mod outcome;
pub mod output;
pub mod pattern;
pub mod ports;
pub mod process;
pub mod prune;
pub mod queue;
pub mod record;
pub mod redact;
pub mod select;
pub mod size;
pub mod state_dir;
pub mod summary;
pub mod task;
pub mod time;

pub use error::{Error, IoContext, Result};
