//! The library every bg-tool stands on: where state lives and how it is kept
//! safe, task ids and records, the supervisor's liveness lock, the completion
//! journal, and (in [`process`], the only module allowed `unsafe`) everything
//! that touches the operating system's process machinery.

pub mod cli;
pub mod error;
pub mod exit;
pub mod fsutil;
pub mod ids;
pub mod journal;
pub mod lock;
pub mod process;
pub mod record;
pub mod state_dir;
pub mod task;
pub mod timefmt;

pub use error::{Error, IoContext, Result};
