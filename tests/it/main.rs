#![allow(clippy::unwrap_used)]
//! Integration tests: they run the real binaries against temporary state
//! directories, with guards that kill whatever the tests started.

mod util;

mod run_bad_input;
mod run_launch;
mod run_lifecycle;
mod run_options;

mod check_list;
mod check_output;
mod check_pace;
mod check_wait;
mod faults_output;
mod index;
mod notify_scope;
mod output_cap;
mod ports;
mod queue;
mod queue_faults;
mod restart;

mod faults;
mod kill;
mod remind;

mod budget;

mod claude;
mod e2e;
mod faults_send;
mod parse_modes;
mod parse_streams;
mod parse_text;
mod send;
mod send_sessions;
mod send_settings;

mod agent_docs;
mod generated_docs;
