//! Which tasks a call means: ids, prefixes and names given one by one, every
//! running task of a name, or every running task (of this project or all).

use bg_shared::Result;
use bg_shared::process::{Identity, Pid, proc_info};
use bg_shared::select;
use bg_shared::state_dir::StateDir;
use bg_shared::task::{Task, TaskPaths};

use crate::Cli;
use crate::report::Report;

/// The tasks to stop, each once. A selector that names no task is reported
/// (and the others are still stopped).
pub fn choose(state: Option<&StateDir>, cli: &Cli, report: &mut Report) -> Result<Vec<TaskPaths>> {
    let mut chosen: Vec<TaskPaths> = Vec::new();
    let mut add = |paths: TaskPaths| {
        if !chosen.iter().any(|c| c.id == paths.id) {
            chosen.push(paths);
        }
    };
    for selector in &cli.tasks {
        match select::find(state, selector) {
            Ok(paths) => add(paths),
            Err(err) => report.error(None, &err),
        }
    }
    let needs_list = cli.all || cli.all_projects || !cli.names.is_empty();
    let tasks = match state {
        Some(state) if needs_list => select::load_all(state, "bg-kill")?,
        _ => Vec::new(),
    };
    for name in &cli.names {
        let named: Vec<&Task> = tasks
            .iter()
            .filter(|t| t.launch.name.as_deref() == Some(name.as_str()))
            .collect();
        if named.is_empty() {
            report.error(None, &select::no_task(name));
        } else if !named.iter().any(|t| t.state.is_live()) {
            let newest = named
                .iter()
                .max_by(|a, b| a.launch.launch_order().cmp(&b.launch.launch_order()));
            if let Some(newest) = newest {
                report.not_running(newest);
            }
        }
        for task in named.into_iter().filter(|t| t.state.is_live()) {
            add(task.paths.clone());
        }
    }
    if cli.all || cli.all_projects {
        let root = if cli.all_projects {
            None
        } else {
            Some(select::project_root()?)
        };
        for task in tasks.iter().filter(|t| t.state.is_live()) {
            if root
                .as_ref()
                .is_some_and(|root| !select::in_project(task, root))
            {
                continue;
            }
            if runs_inside(task) {
                bg_shared::cli::warn(
                    "bg-kill",
                    &format!(
                        "left task {} alone: this bg-kill runs inside it",
                        task.paths.id
                    ),
                );
                continue;
            }
            add(task.paths.clone());
        }
    }
    Ok(chosen)
}

/// True if this process is part of the task (started from inside it), so
/// that `--all` does not stop the very agent or script that asked.
fn runs_inside(task: &Task) -> bool {
    if std::env::var("BG_TASK_ID").is_ok_and(|id| id == task.paths.id.as_str()) {
        return true;
    }
    let roots: Vec<Identity> = [task.leader(), task.supervisor()]
        .into_iter()
        .flatten()
        .collect();
    let mut pid = std::process::id() as Pid;
    while let Some(info) = proc_info(pid).filter(|_| pid > 1) {
        if roots
            .iter()
            .any(|r| r.pid == info.pid && r.start_time == info.start_time)
        {
            return true;
        }
        pid = info.ppid;
    }
    false
}
