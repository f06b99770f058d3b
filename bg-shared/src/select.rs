//! Which tasks a user means: every task directory, an id, a unique id
//! prefix or a name, the live tasks of a name, and the tasks of the current
//! project (those whose cwd is inside its git root, else inside the current
//! directory).

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::ids::{self, TaskId};
use crate::record::{LaunchRecord, ShownRecord, TaskRecord};
use crate::state_dir::StateDir;
use crate::task::{Task, TaskPaths};
use crate::{Error, IoContext, Result, cli, lock, names, summary};

/// Ids of every task directory, unordered. Entries that are not well-formed
/// id directories (temp files, symlinks, strays) are ignored.
pub fn list_ids(state: &StateDir) -> Result<Vec<TaskId>> {
    Ok(list_dirs(state)?.into_iter().map(|(id, _)| id).collect())
}

/// [`list_ids`] with each directory's inode number: one `readdir`, no
/// `stat` (unless the file system does not give entries' types).
pub fn list_dirs(state: &StateDir) -> Result<Vec<(TaskId, u64)>> {
    use std::os::unix::fs::DirEntryExt;
    let mut ids = Vec::new();
    for entry in crate::fsutil::list_dir(&state.tasks_dir())? {
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        if let Some(name) = entry.file_name().to_str()
            && is_dir
            && let Ok(id) = TaskId::parse(name)
        {
            ids.push((id, entry.ino()));
        }
    }
    Ok(ids)
}

/// Finds the task a user means, the one way every tool does: an exact id,
/// else a name (the newest task of that name), else a unique id prefix.
/// Malformed input is refused before any file is touched; a state
/// directory that does not exist yet (`None`) holds no task.
pub fn find(state: Option<&StateDir>, selector: &str) -> Result<TaskPaths> {
    ids::check_selector(selector)?;
    match state {
        Some(state) => resolve(state, selector),
        None => Err(no_task(selector)),
    }
}

/// What a selector that names no task gets: a negative answer.
pub fn no_task(selector: &str) -> Error {
    Error::NotFound(format!("no task with id or name '{selector}'"))
}

fn resolve(state: &StateDir, selector: &str) -> Result<TaskPaths> {
    if let Ok(id) = TaskId::parse(selector)
        && is_dir(&state.task_dir(&id))
    {
        return Ok(TaskPaths::new(state, id));
    }
    if let Some(paths) = names::newest(state, selector) {
        return Ok(paths);
    }
    let before = names::read_raw(state, selector);
    let all = list_ids(state)?;
    let (newest, unrecorded) = newest_named(state, &all, selector);
    if let Some((launch, paths)) = newest {
        let newest = Some(names::Entry::of(&launch, &paths.id));
        let scanned = names::Scanned {
            before,
            newest,
            unrecorded,
        };
        names::repair(state, selector, &scanned);
        return Ok(paths);
    }
    let matches: Vec<TaskId> = if ids::is_id_prefix(selector) {
        all.into_iter()
            .filter(|id| id.as_str().starts_with(selector))
            .collect()
    } else {
        Vec::new()
    };
    match matches.as_slice() {
        [] => Err(no_task(selector)),
        [only] => Ok(TaskPaths::new(state, only.clone())),
        _ => Err(ambiguous(state, selector, matches)),
    }
}

fn is_dir(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|m| m.is_dir())
}

/// The newest task named `name`, by every record (what the name index
/// is checked against and mended from), and how many task directories had
/// no record yet (launches that may be in progress).
fn newest_named(
    state: &StateDir,
    ids: &[TaskId],
    name: &str,
) -> (Option<(LaunchRecord, TaskPaths)>, usize) {
    let mut unrecorded = 0;
    let newest = ids
        .iter()
        .filter_map(|id| {
            let paths = TaskPaths::new(state, id.clone());
            let launch = match LaunchRecord::read(&paths.meta()) {
                Ok(Some(launch)) => launch,
                Ok(None) => {
                    unrecorded += 1;
                    return None;
                }
                Err(_) => return None,
            };
            (launch.name.as_deref() == Some(name)).then_some((launch, paths))
        })
        .max_by(|a, b| a.0.launch_order().cmp(&b.0.launch_order()));
    (newest, unrecorded)
}

fn ambiguous(state: &StateDir, selector: &str, mut matches: Vec<TaskId>) -> Error {
    matches.sort();
    let candidates = matches
        .into_iter()
        .map(|id| {
            let paths = TaskPaths::new(state, id.clone());
            match LaunchRecord::read(&paths.meta()) {
                Ok(Some(launch)) => format!(
                    "  {id}  {}  {}",
                    launch.name.as_deref().unwrap_or("-"),
                    launch.command
                ),
                _ => format!("  {id}  (no readable record)"),
            }
        })
        .collect();
    Error::Ambiguous {
        input: selector.to_string(),
        candidates,
    }
}

/// Live tasks named `name` (for `--unique`), newest last. Tasks the
/// summary holds are finished, and are not read (`--unique` holds
/// `names.lock` meanwhile, which every named launch waits for).
pub fn live_named(state: &StateDir, name: &str) -> Result<Vec<Task>> {
    let (dirs, known) = dirs_and_summary(state);
    let dirs = dirs?;
    let finished = summary::lines_in_force(&known, &dirs, |_, _: summary::ShownLine<'_>| Some(()));
    let mut live = Vec::new();
    for ((id, _), finished) in dirs.into_iter().zip(finished) {
        if finished.is_some() {
            continue;
        }
        let paths = TaskPaths::new(state, id);
        let Ok(Some(launch)) = LaunchRecord::read(&paths.meta()) else {
            continue;
        };
        if launch.name.as_deref() != Some(name) {
            continue;
        }
        if let Ok(Some(task)) = Task::load(paths)
            && task.state.is_live()
        {
            live.push(task);
        }
    }
    live.sort_by(|a, b| a.launch.launch_order().cmp(&b.launch.launch_order()));
    Ok(live)
}

/// Every readable task; unreadable ones are reported (as `tool`) and skipped.
pub fn load_all(state: &StateDir, tool: &str) -> Result<Vec<Task>> {
    let mut tasks = Vec::new();
    for id in list_ids(state)? {
        if let Some(task) = load_or_warn(TaskPaths::new(state, id), tool) {
            tasks.push(task);
        }
    }
    Ok(tasks)
}

fn load_or_warn(paths: TaskPaths, tool: &str) -> Option<Task> {
    let id = paths.id.clone();
    match Task::load(paths) {
        Ok(task) => task,
        Err(err) => {
            let why = cli::error_chain(&err);
            cli::warn(tool, &format!("skipping task {id}: {why}"));
            None
        }
    }
}

/// A task as a list shows it: its public record and its launch order.
pub struct Listed {
    /// Boxed: lists of many are sorted and filtered, which moves them.
    pub record: Box<TaskRecord>,
    pub order: (u64, String),
}

/// The public record of every readable task, as [`load_all`] would give
/// them, but finished tasks come from the summary (`summary`) when it has
/// them: one file read instead of several per task. What it lacks is
/// loaded from the task's files and then added to it, best effort.
pub fn list_records(state: &StateDir, tool: &str) -> Result<Vec<Listed>> {
    let (dirs, known) = dirs_and_summary(state);
    let dirs = dirs?;
    let from_line = |id: &TaskId, line: summary::Line| {
        let order = (line.seq, line.created_at.clone());
        let record = Box::new(line.into_record(&TaskPaths::new(state, id.clone()))?);
        Some(Listed { record, order })
    };
    let from_task = |task: &Task| {
        let (seq, created) = task.launch.launch_order();
        Listed {
            record: Box::new(task.record()),
            order: (seq, created.to_string()),
        }
    };
    Ok(list_part(state, &known, &dirs, tool, from_line, from_task))
}

/// What `show` makes of every readable task it keeps (`None` drops it),
/// with the task's launch order: [`list_records`] for a table, which needs
/// only what [`ShownRecord`] holds. Finished tasks are read from the
/// summary in part, and shown by several threads at once.
pub fn list_shown<R: Send>(
    state: &StateDir,
    tool: &str,
    show: impl Fn(&ShownRecord<'_>) -> Option<R> + Sync,
) -> Result<Vec<(R, (u64, String))>> {
    let (dirs, known) = dirs_and_summary(state);
    let dirs = dirs?;
    let from_line = |_: &TaskId, line: summary::ShownLine<'_>| {
        let order = (line.seq, line.created_at);
        // A line that forgets its task: the task is loaded.
        Some(show(&line.record?).map(|row| (row, order)))
    };
    let from_task = |task: &Task| {
        let (seq, created) = task.launch.launch_order();
        let record = task.record();
        show(&ShownRecord::from(&record)).map(|row| (row, (seq, created.to_string())))
    };
    let shown = list_part(state, &known, &dirs, tool, from_line, from_task);
    Ok(shown.into_iter().flatten().collect())
}

/// The task directories and the summary, read at once: two reads that
/// wait on each other for nothing (a list of thousands reads megabytes).
fn dirs_and_summary(state: &StateDir) -> (Result<Vec<(TaskId, u64)>>, summary::Summary) {
    std::thread::scope(|scope| {
        let reading = scope.spawn(|| summary::Summary::read(state));
        let dirs = list_dirs(state);
        // A reader that failed reads nothing: every task is loaded.
        (dirs, reading.join().unwrap_or_default())
    })
}

/// Lists task directories: from the summary where it has them (records
/// read as `R`, made into a `T` by `from_line`, which says `None` to have the task
/// loaded instead), else from their files (`from_task`), and then adds
/// the lines the summary lacks, best effort (a summary that cannot be
/// written is only slower).
fn list_part<'a, R, T>(
    state: &StateDir,
    known: &'a summary::Summary,
    dirs: &[(TaskId, u64)],
    tool: &str,
    from_line: impl Fn(&TaskId, summary::LineOf<R>) -> Option<T> + Sync,
    from_task: impl Fn(&Task) -> T,
) -> Vec<T>
where
    R: serde::Deserialize<'a>,
    T: Send,
{
    let mut listed = Vec::with_capacity(dirs.len());
    let mut missing = MissingLines::default();
    let from_summary = summary::lines_in_force(known, dirs, from_line);
    for ((id, ino), found) in dirs.iter().zip(from_summary) {
        if let Some(found) = found {
            listed.push(found);
            continue;
        }
        let paths = TaskPaths::new(state, id.clone());
        let hold = lock::try_shared(&paths.lock());
        let Some(task) = load_or_warn(paths, tool) else {
            continue;
        };
        if let Some(hold) = hold {
            missing.add(state, summary::Line::of(&task, *ino), hold);
        }
        listed.push(from_task(&task));
    }
    missing.append(state);
    listed
}

/// The lines a list adds for the finished tasks the summary lacked. A
/// line is the task's record for good (the list trusts it), so it is only
/// made from a task read while nobody writes its records (a shared hold
/// of its lock, which its recorder holds exclusively), and appended before
/// that hold is let go: a record caught between two of its recorder's
/// writes never becomes a line. Appended in batches, so that a first list
/// of a hundred thousand tasks holds a bounded number of files open.
#[derive(Default)]
struct MissingLines {
    lines: Vec<summary::Line>,
    holds: Vec<fs::File>,
}

impl MissingLines {
    const BATCH: usize = 256;

    fn add(&mut self, state: &StateDir, line: Option<summary::Line>, hold: fs::File) {
        let Some(line) = line else {
            return;
        };
        self.lines.push(line);
        self.holds.push(hold);
        if self.lines.len() >= Self::BATCH {
            self.append(state);
        }
    }

    /// Best effort: a summary that cannot be written is only slower.
    fn append(&mut self, state: &StateDir) {
        let _ = summary::append(state, &self.lines, false);
        self.lines.clear();
        self.holds.clear();
    }
}

/// The current project: the git root above the current directory, else the
/// directory itself.
pub fn project_root() -> Result<PathBuf> {
    let cwd = std::env::current_dir().context(|| "reading the current directory".into())?;
    let root = cwd.ancestors().find(|dir| is_git_root(dir)).unwrap_or(&cwd);
    Ok(root.to_path_buf())
}

/// True if `dir` is the top of a git work tree, as git itself would find
/// it: `dir/.git` is a directory holding `HEAD`, or a `gitdir:` file (a
/// linked worktree or a submodule). An empty `.git` is not a repository:
/// Codex's Linux sandbox leaves empty `.git` directories behind in `/tmp`
/// and workspace roots (openai/codex #31599, #33813), and taking one for a
/// repository would merge every directory under it into one project.
fn is_git_root(dir: &Path) -> bool {
    let dot_git = dir.join(".git");
    match fs::metadata(&dot_git) {
        Ok(meta) if meta.is_dir() => dot_git.join("HEAD").is_file(),
        Ok(meta) if meta.is_file() => is_gitdir_file(&dot_git),
        _ => false,
    }
}

/// True if the file at `path` starts with git's `gitdir: ` link.
fn is_gitdir_file(path: &Path) -> bool {
    let mut start = [0u8; 8];
    fs::File::open(path)
        .and_then(|mut file| file.read_exact(&mut start))
        .is_ok_and(|()| &start == b"gitdir: ")
}

/// True if the task was started inside `root` (a project's directory tree).
pub fn in_project(task: &Task, root: &Path) -> bool {
    cwd_in_project(&task.launch.cwd, root)
}

/// True if a launch cwd, as records keep it, is inside `root`: the one
/// rule for the list, bg-kill and `--notify`, which often has only the
/// journal line's cwd.
pub fn cwd_in_project(cwd: &str, root: &Path) -> bool {
    Path::new(cwd).starts_with(root)
}
