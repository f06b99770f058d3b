//! `--notify` per project: one project's hook is told of its own tasks only,
//! once per reader, and never takes another project's; `--all` is told of
//! every project's, on a progress of its own. Upgrades: a reader's progress
//! from before scopes, journal lines from before they carried a cwd.

use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::util::*;

/// Two projects beside the state dir, in one state dir: `alpha` is a git
/// repository, notified from a subdirectory to prove the git-root rule;
/// `beta` is a plain directory, its own project, though an empty `.git`
/// lies above both.
struct Projects {
    env: Env,
    alpha: PathBuf,
    /// `alpha/src/deep`, where alpha's hook runs.
    deep: PathBuf,
    beta: PathBuf,
}

const HOOK: [&str; 2] = ["--reader", "claude-code"];
const HOOK_ALL: [&str; 3] = ["--reader", "claude-code", "--all"];

impl Projects {
    fn new() -> Projects {
        let env = Env::new();
        let alpha = env.dir.path().join("alpha");
        let beta = env.dir.path().join("beta");
        // Codex's sandbox may have left an empty `.git` above them all; it
        // makes no project.
        stray_empty_dot_git(env.dir.path());
        git_repo(&alpha);
        fs::create_dir_all(alpha.join("src/deep")).unwrap();
        fs::create_dir_all(&beta).unwrap();
        let deep = alpha.join("src/deep");
        Projects {
            env,
            alpha,
            deep,
            beta,
        }
    }

    /// Launches `script` in `dir`.
    fn launch_in(&self, dir: &Path, script: &str) -> String {
        self.env.launch(&["--cwd", dir.to_str().unwrap(), script])
    }

    /// A task of `dir` that is lost (its supervisor killed, then its
    /// command: argv, not a shell string, so that the pid is the command's).
    fn lost(&self, dir: &Path) -> String {
        let id = self
            .env
            .launch(&["--cwd", dir.to_str().unwrap(), "sleep", "30"]);
        self.env.lose(&id);
        id
    }

    /// A task of `dir` that has ended (`exit N` ends as exited).
    fn finished(&self, dir: &Path, script: &str) -> String {
        let id = self.launch_in(dir, script);
        self.env.wait_state(&id, "exited");
        id
    }

    /// `bg-check --notify --json ARGS` run in `dir`: what it reported.
    fn notify(&self, dir: &Path, args: &[&str]) -> Vec<Value> {
        let mut command = self.env.cmd(BG_CHECK);
        command
            .args(["--notify", "--json"])
            .args(args)
            .current_dir(dir);
        let out = finish(command).success();
        if out.stdout.trim().is_empty() {
            return Vec::new();
        }
        out.json().as_array().unwrap().clone()
    }

    /// The ids `--notify` reports in `dir`, sorted.
    fn ids(&self, dir: &Path, args: &[&str]) -> Vec<String> {
        sorted(
            self.notify(dir, args)
                .iter()
                .map(|n| n["id"].as_str().unwrap().to_string()),
        )
    }
}

fn sorted(ids: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut ids: Vec<String> = ids.into_iter().collect();
    ids.sort();
    ids
}

fn one(id: &str) -> Vec<String> {
    vec![id.to_string()]
}

const NONE: [String; 0] = [];

#[test]
fn notify_tells_each_project_of_its_own_tasks_once_per_reader() {
    let p = Projects::new();
    let a1 = p.finished(&p.alpha.join("src"), "exit 0");
    let b1 = p.finished(&p.beta, "exit 1");
    let elsewhere = p.finished(p.env.dir.path(), "exit 0");
    let told = p.notify(&p.deep, &HOOK);
    assert_eq!(told.len(), 1, "{told:?}");
    assert_eq!(told[0]["id"], a1.as_str());
    assert_eq!(told[0]["cwd"], p.alpha.join("src").to_str().unwrap());
    assert_eq!(p.ids(&p.deep, &HOOK), NONE);
    // A task of alpha ends before beta's hook runs: beta is not told of it,
    // nor does it take it from alpha.
    let a2 = p.finished(&p.alpha, "exit 2");
    assert_eq!(p.ids(&p.beta, &HOOK), one(&b1));
    assert_eq!(p.ids(&p.beta, &HOOK), NONE);
    assert_eq!(p.ids(&p.alpha.join("src"), &HOOK), one(&a2));
    // --all: every project's, once, and the projects' progress stays theirs.
    let every = sorted([a1.clone(), b1, elsewhere, a2.clone()]);
    assert_eq!(p.ids(&p.beta, &HOOK_ALL), every);
    assert_eq!(p.ids(&p.deep, &HOOK_ALL), NONE);
    assert_eq!(p.ids(&p.deep, &HOOK), NONE);
    // Another reader has its own progress in each project.
    assert_eq!(p.ids(&p.deep, &[]), sorted([a1, a2]));
}

#[test]
fn notify_tells_of_a_lost_task_only_in_its_project() {
    let p = Projects::new();
    let lost = p.lost(&p.beta);
    assert_eq!(p.ids(&p.deep, &HOOK), NONE);
    assert_eq!(p.ids(&p.beta, &HOOK), one(&lost));
    assert_eq!(p.ids(&p.beta, &HOOK), NONE);
    assert_eq!(p.ids(&p.deep, &HOOK_ALL), one(&lost));
    assert_eq!(p.ids(&p.deep, &HOOK), NONE);
}

/// Upgrading from one progress per reader (`{version, journal_offset,
/// lost_reported, pending}`) tells no project again what the reader was
/// already told, and misses nothing that came after.
#[test]
fn notify_after_upgrading_from_one_progress_per_reader_repeats_nothing() {
    let p = Projects::new();
    let a1 = p.finished(&p.alpha, "exit 0");
    let b1 = p.finished(&p.beta, "exit 0");
    let lost = p.lost(&p.alpha);
    // What the previous version left once it had told of all three.
    let journal = fs::metadata(p.env.state.join("journal.jsonl")).unwrap();
    let readers = p.env.state.join("readers");
    fs::DirBuilder::new().mode(0o700).create(&readers).unwrap();
    let old = json!({"version": 1, "journal_offset": journal.len(),
        "lost_reported": [lost], "pending": null});
    fs::write(readers.join("claude-code.json"), old.to_string()).unwrap();
    let a2 = p.finished(&p.alpha, "exit 0");
    let b2 = p.finished(&p.beta, "exit 0");
    assert_eq!(p.ids(&p.deep, &HOOK), one(&a2), "not {a1} or {lost}");
    assert_eq!(p.ids(&p.beta, &HOOK), one(&b2), "not {b1}");
    assert_eq!(p.ids(&p.beta, &HOOK_ALL), sorted([a2, b2]));
}

/// Journal lines written before they carried a cwd: the task's launch
/// record places them; a task that is gone is only `--all`'s.
#[test]
fn notify_places_an_old_journal_line_by_its_task_and_a_gone_task_only_in_all() {
    let p = Projects::new();
    let a1 = p.finished(&p.alpha.join("src"), "exit 0");
    let b1 = p.finished(&p.beta, "exit 0");
    let journal = p.env.state.join("journal.jsonl");
    let text = fs::read_to_string(&journal).unwrap();
    let mut old = String::new();
    for line in text.lines() {
        let mut entry: Value = serde_json::from_str(line).unwrap();
        let cwd = entry.as_object_mut().unwrap().remove("cwd");
        assert!(cwd.is_some_and(|c| c.is_string()), "no cwd in {line}");
        old.push_str(&format!("{entry}\n"));
    }
    fs::write(&journal, old).unwrap();
    fs::remove_dir_all(p.env.task_dir(&b1)).unwrap();
    assert_eq!(p.ids(&p.deep, &HOOK), one(&a1));
    assert_eq!(p.ids(&p.beta, &HOOK), NONE);
    let all = p.notify(&p.beta, &HOOK_ALL);
    let cwd_of = |id: &str| all.iter().find(|n| n["id"] == id).unwrap()["cwd"].clone();
    assert_eq!(all.len(), 2, "{all:?}");
    assert_eq!(cwd_of(&a1), p.alpha.join("src").to_str().unwrap());
    assert_eq!(cwd_of(&b1), Value::Null);
}

/// Pruning compacts the journal under every scope's offset: each still
/// reads on from the right line.
#[test]
fn notify_scopes_keep_their_place_when_pruning_compacts_the_journal() {
    let p = Projects::new();
    let a1 = p.finished(&p.alpha, "exit 0");
    let b1 = p.finished(&p.beta, "exit 0");
    assert_eq!(p.ids(&p.deep, &HOOK), one(&a1));
    assert_eq!(p.ids(&p.beta, &HOOK), one(&b1));
    assert_eq!(p.ids(&p.beta, &HOOK_ALL), sorted([a1.clone(), b1.clone()]));
    let a2 = p.finished(&p.alpha, "exit 0");
    let b2 = p.finished(&p.beta, "exit 0");
    // a1 and b1 ended long ago: the prune takes their lines, which lie
    // before every scope's offset, and keeps a2's and b2's after them.
    for id in [&a1, &b1] {
        let path = p.env.task_dir(id).join("status.json");
        let mut status: Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        status["ended_at"] = json!("2020-01-01T00:00:00.000Z");
        fs::write(&path, status.to_string()).unwrap();
    }
    let pruned = p.env.run(BG_CHECK, &["--prune", "1h", "--json"]).success();
    assert_eq!(pruned.json()["removed"].as_array().unwrap().len(), 2);
    assert_eq!(p.ids(&p.deep, &HOOK), one(&a2));
    assert_eq!(p.ids(&p.beta, &HOOK), one(&b2));
    assert_eq!(p.ids(&p.beta, &HOOK_ALL), sorted([a2, b2]));
}

/// `--max-bytes` keeps the newest of the scope's lines, and the omission
/// line counts and points to the scope's own list.
#[test]
fn notify_caps_a_projects_lines_and_counts_only_its_own() {
    let p = Projects::new();
    let padding = "x".repeat(80);
    let mut alpha = Vec::new();
    for i in 0..5 {
        alpha.push(p.finished(&p.alpha, &format!("true # {i} {padding}")));
    }
    for i in 0..3 {
        p.finished(&p.beta, &format!("true # {i} {padding}"));
    }
    let capped = |args: &[&str]| {
        let mut command = p.env.cmd(BG_CHECK);
        command.args(["--notify", "--max-bytes", "250"]).args(args);
        command.current_dir(&p.deep);
        finish(command).success().stdout
    };
    let text = capped(&HOOK);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert_eq!(
        lines[0],
        "[... 3 earlier finished tasks omitted; bg-check lists them]"
    );
    assert!(lines[1].starts_with(&alpha[3]) && lines[2].starts_with(&alpha[4]));
    let text = capped(&HOOK_ALL);
    assert!(
        text.starts_with("[... 6 earlier finished tasks omitted; bg-check --all lists them]\n"),
        "{text}"
    );
}

/// Ten notifiers in each of two projects at once, one reader: each
/// project's tasks are told once between its ten, and only there.
#[test]
fn notify_racing_in_two_projects_tells_each_task_once_in_its_project() {
    let p = Projects::new();
    let launch = |dir: &Path| -> Vec<String> {
        (0..8)
            .map(|i| p.launch_in(dir, &format!("exit {}", i % 3)))
            .collect()
    };
    let (alpha, beta) = (launch(&p.alpha.join("src")), launch(&p.beta));
    for id in alpha.iter().chain(&beta) {
        p.env.wait_record(id, |r| r["state"] == "exited");
    }
    let out = p.env.dir.path().join("out");
    fs::create_dir(&out).unwrap();
    let mut race = p.env.cmd("sh");
    race.env("ALPHA", &p.deep)
        .env("BETA", &p.beta)
        .env("OUT", &out);
    race.args([
        "-c",
        r#"for i in 1 2 3 4 5 6 7 8 9 10; do
             (cd "$ALPHA" && "$BG_CHECK" --notify > "$OUT/alpha.$i") &
             (cd "$BETA" && "$BG_CHECK" --notify > "$OUT/beta.$i") &
           done; wait"#,
    ]);
    finish(race).success();
    let told = |project: &str| {
        let ids = (1..=10).flat_map(|i| {
            let text = fs::read_to_string(out.join(format!("{project}.{i}"))).unwrap();
            let ids: Vec<String> = text
                .lines()
                .map(|l| l[..l.find(' ').unwrap()].into())
                .collect();
            ids
        });
        sorted(ids)
    };
    assert_eq!(told("alpha"), sorted(alpha), "each of alpha's tasks once");
    assert_eq!(told("beta"), sorted(beta), "each of beta's tasks once");
}

/// Each project of a reader has its own lock: a notifier stuck printing
/// (its consumer never reads) holds up its own project's, which return at
/// once with nothing, but no other project's; its delivery is made again.
#[test]
#[cfg_attr(feature = "portable", ignore = "linux-only: reads /proc/PID/wchan")]
fn notify_stuck_in_one_project_holds_up_no_other_project_of_the_reader() {
    let p = Projects::new();
    // More than a pipe holds: the notifier blocks writing it.
    let comment = "x".repeat(4000);
    let ids: Vec<String> = (0..24)
        .map(|i| p.launch_in(&p.alpha, &format!("true # {i} {comment}")))
        .collect();
    for id in &ids {
        p.env.wait_state(id, "exited");
    }
    let mut command = p.env.cmd(BG_CHECK);
    command
        .args(["--notify", "--json"])
        .args(HOOK)
        .current_dir(&p.deep);
    command.stdout(std::process::Stdio::piped());
    let stuck = Guard::spawn(command);
    crate::faults::wait_blocked_writing(stuck.pid()).expect("the notifier never blocked");
    let b1 = p.finished(&p.beta, "exit 0");
    assert_eq!(p.ids(&p.beta, &HOOK), one(&b1));
    assert_eq!(
        p.ids(&p.deep, &HOOK),
        NONE,
        "alpha's notifier at work delivers"
    );
    drop(stuck);
    assert_eq!(p.ids(&p.deep, &HOOK), sorted(ids));
}
