//! Test harness: a temporary state dir per test, commands with deadlines,
//! polling with deadlines (never fixed sleeps), and guards that kill every
//! task and helper process a test started, even when it fails.

use std::collections::HashSet;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use bg_shared::process::{self, Identity};
use serde_json::Value;

pub const BG_RUN: &str = env!("CARGO_BIN_EXE_bg-run");
pub const BG_CHECK: &str = env!("CARGO_BIN_EXE_bg-check");
pub const BG_KILL: &str = env!("CARGO_BIN_EXE_bg-kill");
pub const BG_REMIND: &str = env!("CARGO_BIN_EXE_bg-remind");

/// Generous: a hang shows as hitting this, a pass takes a tiny fraction.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// What a finished command printed.
#[derive(Debug)]
pub struct Outcome {
    pub status: ExitStatus,
    pub stdout: String,
    pub stdout_bytes: Vec<u8>,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Outcome {
    pub fn code(&self) -> i32 {
        self.status.code().unwrap_or(-1)
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|err| panic!("stdout is not JSON ({err}): {self:?}"))
    }

    #[track_caller]
    pub fn success(self) -> Outcome {
        assert_eq!(self.code(), 0, "command failed: {self:?}");
        self
    }
}

/// A temporary state dir; dropping it kills every task recorded in it.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub state: PathBuf,
}

impl Env {
    pub fn new() -> Env {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = dir.path().join("state");
        Env { dir, state }
    }

    /// `program ARGS` started in the background, its output piped (see
    /// `finish_child`), killed by the guard if the test ends first.
    pub fn spawn_piped(&self, program: &str, args: &[&str]) -> Guard {
        let mut command = self.cmd(program);
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        Guard::spawn(command)
    }

    /// A command for one of our binaries (or anything else), pointed at
    /// this state dir, with no allowlist from the outside world.
    pub fn cmd(&self, program: &str) -> Command {
        let mut command = Command::new(program);
        command
            .env("BG_STATE_DIR", &self.state)
            .env_remove("BG_ALLOWED_COMMANDS")
            .env("BG_RUN", BG_RUN)
            .env("BG_CHECK", BG_CHECK)
            .env("BG_KILL", BG_KILL)
            .env("BG_REMIND", BG_REMIND)
            .current_dir(self.dir.path());
        command
    }

    pub fn run(&self, program: &str, args: &[&str]) -> Outcome {
        let mut command = self.cmd(program);
        command.args(args);
        finish(command)
    }

    /// Runs a shell script with $BG_RUN and $BG_CHECK set.
    pub fn sh(&self, script: &str) -> Outcome {
        self.run("sh", &["-c", script])
    }

    /// `bg-run ARGS`, which must succeed; returns the id.
    pub fn launch(&self, args: &[&str]) -> String {
        let out = self.run(BG_RUN, args).success();
        let id = out.stdout.trim().to_string();
        assert!(bg_shared::ids::is_id(&id), "not an id: {out:?}");
        id
    }

    /// The task record, via `bg-check ID --json`.
    pub fn record(&self, id: &str) -> Value {
        self.run(BG_CHECK, &[id, "--json"]).success().json()
    }

    /// `bg-check ARGS`, returning what it printed after the status line.
    pub fn check_output(&self, args: &[&str]) -> Vec<u8> {
        let out = self.run(BG_CHECK, args).success();
        let bytes = out.stdout_bytes;
        let body = bytes
            .iter()
            .position(|b| *b == b'\n')
            .map_or(0, |at| at + 1);
        bytes[body..].to_vec()
    }

    /// Sends `signal` to the process the record names under `key`
    /// (`pid` or `supervisor_pid`).
    pub fn signal(&self, id: &str, key: &str, signal: i32) {
        let pid = self.record(id)[key]
            .as_i64()
            .unwrap_or_else(|| panic!("no {key} for {id}"));
        let signal = bg_shared::process::Signal::from_number(signal).expect("a signal number");
        bg_shared::process::signal_process(pid as i32, signal).expect("signalling");
    }

    /// Kills a task's supervisor and then the task: it ends up lost.
    pub fn lose(&self, id: &str) {
        self.signal(id, "supervisor_pid", 9);
        self.wait_state(id, "unsupervised");
        self.signal(id, "pid", 9);
        self.wait_state(id, "lost");
    }

    /// Polls the record until `done` holds, failing at the deadline.
    #[track_caller]
    pub fn wait_record(&self, id: &str, done: impl Fn(&Value) -> bool) -> Value {
        let mut last = Value::Null;
        let found = poll(DEADLINE, || {
            last = self.record(id);
            done(&last).then(|| last.clone())
        });
        found.unwrap_or_else(|| {
            panic!("task {id} never reached the expected state; last record: {last}")
        })
    }

    #[track_caller]
    pub fn wait_state(&self, id: &str, state: &str) -> Value {
        self.wait_record(id, |r| r["state"] == state)
    }

    /// The recorded start time of the task's leader.
    pub fn task_start_time(&self, id: &str) -> u64 {
        let meta = fs::read_to_string(self.task_dir(id).join("meta.json")).expect("meta.json");
        let meta: Value = serde_json::from_str(&meta).expect("meta.json is JSON");
        meta["pid_start_time"].as_u64().expect("a start time")
    }

    pub fn task_dir(&self, id: &str) -> PathBuf {
        self.state.join("tasks").join(id)
    }

    /// Kills the state dir's queue dispatcher, if one runs (as named by
    /// its `dispatcher.json`, and only if that process still is it).
    pub fn kill_dispatcher(&self) -> bool {
        let Ok(text) = fs::read_to_string(self.state.join("dispatcher.json")) else {
            return false;
        };
        let Ok(who) = serde_json::from_str::<Value>(&text) else {
            return false;
        };
        let (Some(pid), Some(start_time)) = (who["pid"].as_i64(), who["start_time"].as_u64())
        else {
            return false;
        };
        let identity = Identity {
            pid: pid as i32,
            start_time,
            boot_id: who["boot_id"].as_str().map(str::to_string),
        };
        identity.is_alive() && process::signal_process(identity.pid, process::Signal::KILL).is_ok()
    }

    /// True once no dispatcher holds the state dir's `dispatcher.lock`
    /// (within [`DEADLINE`]).
    pub fn dispatcher_gone(&self) -> bool {
        let lock = self.state.join("dispatcher.lock");
        poll(DEADLINE, || {
            fs::File::open(&lock).ok()?.try_lock().is_ok().then_some(())
        })
        .is_some()
    }

    pub fn task_ids(&self) -> Vec<String> {
        let Ok(entries) = fs::read_dir(self.state.join("tasks")) else {
            return Vec::new();
        };
        entries
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|name| bg_shared::ids::is_id(name))
            .collect()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        // First the dispatcher, or it would start queued tasks meanwhile.
        self.kill_dispatcher();
        for id in self.task_ids() {
            kill_task(&self.task_dir(&id));
            // What escaped the group (a `setsid` child) carries the mark.
            for pid in task_processes(&id) {
                let _ = process::signal_process(pid, process::Signal::KILL);
            }
        }
    }
}

/// Live processes started with `BG_TASK_ID=<id>` in their environment:
/// every process of the task, wherever it went.
pub fn task_processes(id: &str) -> Vec<i32> {
    marked(format!("BG_TASK_ID={id}").as_bytes())
}

/// Live processes with `mark` (`NAME=value`) in their environment, read
/// from /proc itself: the process layer lists nothing on its portable
/// build, and a test must stop what it started on either (a leaked Codex
/// session holds an inotify instance, of which a user has 128).
pub fn marked(mark: &[u8]) -> Vec<i32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .filter(|pid: &i32| {
            // A zombie's environment reads empty: it never matches.
            fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| env.split(|b| *b == 0).any(|e| e == mark))
        })
        .collect()
}

/// Kills a task's group and supervisor, but only processes whose recorded
/// identity (pid and start time) still matches.
pub fn kill_task(dir: &Path) {
    let Ok(text) = fs::read_to_string(dir.join("meta.json")) else {
        return;
    };
    let Ok(meta) = serde_json::from_str::<Value>(&text) else {
        return;
    };
    let boot_id = meta["boot_id"].as_str().map(str::to_string);
    for (pid, start) in [
        ("supervisor_pid", "supervisor_start_time"),
        ("pid", "pid_start_time"),
    ] {
        let (Some(pid), Some(start_time)) = (meta[pid].as_i64(), meta[start].as_u64()) else {
            continue;
        };
        let identity = Identity {
            pid: pid as i32,
            start_time,
            boot_id: boot_id.clone(),
        };
        if identity.is_alive() {
            let _ = process::signal_group(identity.pid, process::Signal::KILL);
            let _ = process::signal_process(identity.pid, process::Signal::KILL);
        }
    }
}

/// A helper process killed (with its group) when the test ends.
pub struct Guard(pub Child);

impl Guard {
    pub fn spawn(mut command: Command) -> Guard {
        use std::os::unix::process::CommandExt;
        command.process_group(0);
        Guard(command.spawn().expect("spawning helper"))
    }

    pub fn pid(&self) -> i32 {
        self.0.id() as i32
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        // Only while the child is unreaped does its pid (the group's id) stay
        // ours: once reaped, the number may already name another test's group.
        if let Ok(None) = self.0.try_wait() {
            let _ = process::signal_group(self.pid(), process::Signal::KILL);
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Where a stuck process and its children are blocked, for a failure message.
fn blocked_where(pid: i32) -> String {
    let mut report = Vec::new();
    let mut pids = vec![pid];
    pids.extend(
        process::descendants(pid, &|_, _| true)
            .iter()
            .map(|p| p.pid),
    );
    for pid in pids {
        let read =
            |what: &str| fs::read_to_string(format!("/proc/{pid}/{what}")).unwrap_or_default();
        let stat = read("stat");
        let state = stat.rsplit_once(") ").map_or("?", |(_, rest)| &rest[..1]);
        let comm = read("comm");
        report.push(format!(
            "{pid} {} state {state} in {}",
            comm.trim(),
            read("wchan")
        ));
    }
    report.join("; ")
}

/// Runs a command to completion (and its pipes to EOF) within [`DEADLINE`].
pub fn finish(mut command: Command) -> Outcome {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = Guard::spawn(command);
    let stdout = read_in_background(child.0.stdout.take());
    let stderr = read_in_background(child.0.stderr.take());
    let status = poll(DEADLINE, || child.0.try_wait().ok().flatten()).unwrap_or_else(|| {
        panic!(
            "command still running after {DEADLINE:?}: {}",
            blocked_where(child.pid())
        )
    });
    let (stdout_bytes, stderr) = (join_output(stdout), join_output(stderr));
    Outcome {
        status,
        stdout: String::from_utf8_lossy(&stdout_bytes).into_owned(),
        stdout_bytes,
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
        elapsed: started.elapsed(),
    }
}

type Reader = thread::JoinHandle<Vec<u8>>;

fn read_in_background(pipe: Option<impl Read + Send + 'static>) -> Option<Reader> {
    pipe.map(|mut pipe| {
        thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            bytes
        })
    })
}

/// Joins a reader, failing if the pipe is still held open at the deadline.
fn join_output(reader: Option<Reader>) -> Vec<u8> {
    let Some(reader) = reader else {
        return Vec::new();
    };
    poll(DEADLINE, || reader.is_finished().then_some(()))
        .expect("an output pipe was still held open at the deadline");
    reader.join().unwrap_or_default()
}

/// Calls `probe` until it returns `Some`, or gives up at the deadline.
pub fn poll<T>(deadline: Duration, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + deadline;
    let mut pause = Duration::from_millis(1);
    loop {
        if let Some(value) = probe() {
            return Some(value);
        }
        if Instant::now() >= end {
            return None;
        }
        thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(25));
    }
}

/// Everything a task has printed so far, as text.
pub fn output_of(record: &Value) -> String {
    let path = record["output_path"]
        .as_str()
        .expect("record has an output_path");
    fs::read_to_string(path).unwrap_or_else(|err| panic!("reading {path}: {err}"))
}

/// True while a process with this pid exists and is not a zombie.
pub fn alive(pid: i64) -> bool {
    process::proc_info(pid as i32).is_some_and(|p| !p.zombie)
}

/// Makes `dir` the top of a git repository, as far as finding one goes
/// (`.git/HEAD`), without needing git installed.
pub fn git_repo(dir: &Path) {
    fs::create_dir_all(dir.join(".git")).expect("making .git");
    fs::write(dir.join(".git/HEAD"), "ref: refs/heads/main\n").expect("writing .git/HEAD");
}

/// Leaves an empty `.git` in `dir`, as Codex's Linux sandbox does in `/tmp`
/// (openai/codex #31599): not a repository, and no project root.
pub fn stray_empty_dot_git(dir: &Path) {
    fs::create_dir_all(dir.join(".git")).expect("making an empty .git");
}

/// Waits for a spawned tool to exit; its status and what it printed.
pub fn finish_child(mut guard: Guard) -> Outcome {
    let child: &mut Child = &mut guard.0;
    let started = Instant::now();
    let status = poll(DEADLINE, || child.try_wait().ok().flatten()).expect("still running");
    let mut stdout = String::new();
    let mut stderr = String::new();
    if let Some(mut out) = child.stdout.take() {
        out.read_to_string(&mut stdout).unwrap();
    }
    if let Some(mut err) = child.stderr.take() {
        err.read_to_string(&mut stderr).unwrap();
    }
    Outcome {
        status,
        stdout_bytes: stdout.clone().into_bytes(),
        stdout,
        stderr,
        elapsed: started.elapsed(),
    }
}

pub fn distinct(ids: &[String]) -> usize {
    ids.iter().collect::<HashSet<_>>().len()
}

/// A small tmpfs, so the disk can really be full. Needs mount rights (root,
/// as `.ci/run` has); `None` where it cannot be mounted, and the caller
/// skips, saying so.
pub struct SmallDisk {
    pub path: PathBuf,
}

impl SmallDisk {
    pub fn mount(env: &Env, size: &str) -> Option<SmallDisk> {
        let path = env.dir.path().join("disk");
        fs::create_dir(&path).ok()?;
        let mounted = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "bg-tools-test",
            ])
            .arg(&path)
            .status()
            .ok()?
            .success();
        if !mounted {
            // CI runs as root: there a full-disk test must run, not pass empty.
            assert!(
                std::env::var_os("CI").is_none(),
                "cannot mount a tmpfs under CI=true (needs root)"
            );
            eprintln!("skipped: cannot mount a tmpfs here (needs root)");
        }
        mounted.then_some(SmallDisk { path })
    }

    /// Fills what is left of the disk.
    pub fn fill(&self) {
        let filler = self.path.join("filler");
        let _ = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "cat /dev/zero > '{}' 2>/dev/null",
                filler.display()
            ))
            .status();
    }

    /// Fills the disk but for about `left` bytes (tmpfs counts whole pages).
    #[allow(dead_code)] // for the fault sweeps
    pub fn fill_leaving(&self, left: u64) {
        let free = bg_shared::process::free_bytes(&self.path).expect("free space");
        let pages = free.saturating_sub(left) / 4096;
        let _ = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "dd if=/dev/zero bs=4096 count={pages} 2>/dev/null >> '{}'",
                self.path.join("filler").display()
            ))
            .status();
    }

    /// Gives back what [`SmallDisk::fill`] took.
    #[allow(dead_code)] // for the tests that free the space again
    pub fn free(&self) {
        let _ = fs::remove_file(self.path.join("filler"));
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// Runs the command given as arguments with stdout to /dev/null, and prints
/// as JSON its exit status, and, read when it has ended but before it is
/// reaped (waitid WNOWAIT, then wait4), the bytes it wrote, its peak
/// resident memory, its CPU time, and the wall time: what only its parent
/// can know, and without other children's usage mixed in.
const MEASURE: &str = r#"
import json, os, subprocess, sys, time
started = time.monotonic()
child = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)
os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)
io = dict(l.split(": ") for l in open(f"/proc/{child.pid}/io").read().splitlines())
_, status, usage = os.wait4(child.pid, 0)
print(json.dumps({"code": os.waitstatus_to_exitcode(status), "written": int(io["wchar"]),
    "peak_rss_kib": usage.ru_maxrss, "cpu_s": usage.ru_utime + usage.ru_stime,
    "wall_s": time.monotonic() - started}))
"#;

/// What a command used, from [`MEASURE`].
#[derive(Debug)]
pub struct Usage {
    pub code: i64,
    /// Bytes it wrote (wchar).
    pub written: u64,
    /// Peak resident memory (ru_maxrss), in KiB.
    pub peak_rss_kib: u64,
    /// User and system CPU time, in seconds.
    pub cpu_s: f64,
    pub wall_s: f64,
}

impl Env {
    /// Runs `program ARGS` (stdout to /dev/null) and says what it used.
    pub fn measure(&self, program: &str, args: &[&str]) -> Usage {
        let mut all = vec!["-c", MEASURE, program];
        all.extend_from_slice(args);
        let json = self.run("python3", &all).success().json();
        Usage {
            code: json["code"].as_i64().unwrap(),
            written: json["written"].as_u64().unwrap(),
            peak_rss_kib: json["peak_rss_kib"].as_u64().unwrap(),
            cpu_s: json["cpu_s"].as_f64().unwrap(),
            wall_s: json["wall_s"].as_f64().unwrap(),
        }
    }
}
