//! A task's whole process tree, and signals that reach exactly the
//! processes meant. The tree is the task's process group, every descendant
//! of its supervisor (a subreaper, so orphans that left the group or started
//! their own session are re-parented to it) or of the group's members, and
//! every later process started with the task's `BG_TASK_ID` in its
//! environment (what escaped while no supervisor was there to adopt it).
//! A process found is pinned by a pidfd before its start time is checked,
//! so a signal never reaches a newcomer that was given a dead process's pid.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{
    Identity, Pid, ProcInfo, Signal, all_processes, os, proc_info, signal_group, signal_process,
};

/// How a caller finds a task's processes.
#[derive(Debug, Clone)]
pub struct TaskTree {
    /// The command's first process; its pid is the group's id.
    pub leader: Identity,
    /// The task's session, where recorded: group members must be in it.
    pub session: Option<Pid>,
    /// The supervisor, if it is alive: its descendants are the task's.
    pub supervisor: Option<Identity>,
    /// `BG_TASK_ID=<id>`, the mark every process of the task inherits.
    pub env_mark: Vec<u8>,
}

/// What [`TaskTree::find`] saw at one moment.
#[derive(Debug, Default)]
pub struct Found {
    /// Live processes of the task, never the supervisor or the caller.
    pub processes: Vec<ProcInfo>,
    /// The group id, when signalling the whole group is known to reach only
    /// the task (and not the caller): it also reaches a child forked after
    /// the listing.
    pub group: Option<Pid>,
}

impl TaskTree {
    pub fn new(
        leader: Identity,
        session: Option<Pid>,
        supervisor: Option<Identity>,
        task_id: &str,
    ) -> TaskTree {
        TaskTree {
            leader,
            session,
            supervisor,
            env_mark: format!("BG_TASK_ID={task_id}").into_bytes(),
        }
    }

    /// Lists the task's live processes now; `others` confirms which
    /// processes are other tasks' supervisors.
    pub fn find(&self, others: SupervisorCheck<'_>) -> Found {
        let all = all_processes();
        let me = std::process::id() as Pid;
        let supervisor = self.supervisor.as_ref().filter(|s| s.is_alive());
        let leader_slot = proc_info(self.leader.pid);
        let stranger_leads = leader_slot.is_some_and(|p| p.start_time != self.leader.start_time);
        let members: Vec<Pid> = if stranger_leads {
            Vec::new()
        } else {
            all.iter()
                .filter(|p| super::is_member(p, &self.leader, self.session))
                .map(|p| p.pid)
                .collect()
        };
        let marked = all.iter().filter(|p| {
            p.start_time >= self.leader.start_time
                && p.pid != me
                && os::environ_has(p.pid, &self.env_mark)
                && !is_other_supervisor(p, others)
        });
        let mut roots: Vec<Pid> = members.clone();
        roots.extend(marked.map(|p| p.pid));
        roots.extend(supervisor.map(|s| s.pid));
        let mut tree = descendants_in(&all, &roots, others);
        tree.extend(all.iter().filter(|p| roots.contains(&p.pid)).copied());
        // The leader is known by its recorded identity, even where processes
        // cannot be listed (the portable layer): there it is all that is
        // pinned, and what a grace is waited out on.
        if self.leader.is_alive() {
            tree.extend(leader_slot);
        }
        let excluded = |pid: Pid| pid <= 1 || pid == me || supervisor.is_some_and(|s| s.pid == pid);
        tree.retain(|p| !p.zombie && !excluded(p.pid));
        tree.sort_by_key(|p| p.pid);
        tree.dedup_by_key(|p| p.pid);
        // While the leader's pid is taken by the leader (alive or unreaped)
        // or the group still has members, the group id cannot name anyone
        // else's group. The caller's own group is never signalled whole.
        let group_is_ours = !stranger_leads && (leader_slot.is_some() || !members.is_empty());
        let my_group = proc_info(me).map(|p| p.pgid);
        Found {
            processes: tree,
            group: (group_is_ours && my_group != Some(self.leader.pid)).then_some(self.leader.pid),
        }
    }
}

/// Every descendant of `roots` in a process listing (not the roots), short
/// of other tasks: a `bg-run` started inside a task forks its supervisor,
/// which ours adopts once that bg-run exits, but that task is its own, meant to
/// outlive its caller, and neither it nor what it supervises is ours.
pub fn descendants_in(
    all: &[ProcInfo],
    roots: &[Pid],
    others: SupervisorCheck<'_>,
) -> Vec<ProcInfo> {
    let mut found: Vec<ProcInfo> = Vec::new();
    let mut frontier = roots.to_vec();
    while let Some(parent) = frontier.pop() {
        for child in all.iter().filter(|p| {
            p.ppid == parent && !roots.contains(&p.pid) && !is_other_supervisor(p, others)
        }) {
            if !found.iter().any(|f| f.pid == child.pid) {
                found.push(*child);
                frontier.push(child.pid);
            }
        }
    }
    found
}

/// The name a supervisor gives itself: `bg-run <id>`.
pub const SUPERVISOR_NAME_PREFIX: &str = "bg-run ";

/// Says whether a process that names itself `bg-run <id>` really is the
/// supervisor of task `<id>`, by the identity its task's record gives: any
/// process may take the name, and a task's own process that did so must
/// not be passed over as another task.
pub type SupervisorCheck<'a> = &'a dyn Fn(&ProcInfo, &str) -> bool;

/// True if `p` is another task's supervisor: it has the name, and `check`
/// confirms it.
fn is_other_supervisor(p: &ProcInfo, check: SupervisorCheck<'_>) -> bool {
    claimed_task(p.pid).is_some_and(|id| check(p, &id))
}

/// The task id a process claims by its name (`bg-run <id>`), if any.
fn claimed_task(pid: Pid) -> Option<String> {
    let name = os::command_name(pid)?;
    let id = name.strip_prefix(SUPERVISOR_NAME_PREFIX)?;
    (!id.is_empty() && id.bytes().all(|b| b.is_ascii_hexdigit())).then(|| id.to_string())
}

/// One process, held so that signals reach it or nobody.
#[derive(Debug)]
pub struct Pinned {
    pub info: ProcInfo,
    /// Where the kernel has pidfds; elsewhere the start time is re-checked
    /// before each signal, which leaves a tiny window for a reused pid.
    pidfd: Option<OwnedFd>,
}

impl Pinned {
    /// Pins the process `info` describes, if it is still that process.
    pub fn pin(info: &ProcInfo) -> Option<Pinned> {
        let pidfd = match os::pidfd_open(info.pid) {
            Ok(Some(pidfd)) => Some(pidfd),
            Ok(None) => return None,
            Err(_) => None,
        };
        // Checked after the pidfd was opened: if the pid was reused before
        // that, the start time differs and the pidfd is dropped unused.
        let pinned = Pinned { info: *info, pidfd };
        pinned.is_same().then_some(pinned)
    }

    /// Pins the live process with this identity, if it still exists.
    pub fn of(identity: &Identity) -> Option<Pinned> {
        let info = proc_info(identity.pid).filter(|p| p.start_time == identity.start_time)?;
        if !identity.is_alive() {
            return None;
        }
        Pinned::pin(&info)
    }

    /// True while the pinned process is still the one we found.
    fn is_same(&self) -> bool {
        proc_info(self.info.pid)
            .is_some_and(|now| now.start_time == self.info.start_time && !now.zombie)
    }

    /// Sends `signal`; `Ok(false)` if the process has ended.
    pub fn signal(&self, signal: Signal) -> io::Result<bool> {
        match &self.pidfd {
            Some(pidfd) => os::pidfd_signal(pidfd.as_fd(), signal.number()),
            None if self.is_same() => signal_process(self.info.pid, signal),
            None => Ok(false),
        }
    }
}

/// Waits until every pinned process has ended, or `timeout` passes; keeps
/// in `pinned` the ones still running. Where there are pidfds the kernel
/// wakes us.
pub fn wait_all_exit(pinned: &mut Vec<Pinned>, timeout: Duration) -> io::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        pinned.retain(Pinned::is_same);
        let left = deadline.saturating_duration_since(Instant::now());
        if pinned.is_empty() || left.is_zero() {
            return Ok(());
        }
        if pinned.iter().any(|p| p.pidfd.is_none()) {
            std::thread::sleep(left.min(Duration::from_millis(20)));
            continue;
        }
        let fds: Vec<_> = pinned
            .iter()
            .filter_map(|p| p.pidfd.as_ref().map(AsFd::as_fd))
            .collect();
        let ended = os::pidfds_ended(&fds, left)?;
        let mut ended = ended.into_iter();
        pinned.retain(|_| !ended.next().unwrap_or(false));
    }
}

/// Signals the group (when it is safely ours) and each pinned process:
/// the group signal also reaches a child forked after the listing.
pub fn signal_found(found: &Found, pinned: &[Pinned], signal: Signal) -> usize {
    if let Some(group) = found.group {
        let _ = signal_group(group, signal);
    }
    pinned
        .iter()
        .filter(|p| p.signal(signal).unwrap_or(false))
        .count()
}

/// Kills what a daemon that died before recording its task left running,
/// so that nothing of the task runs where no tool can find it: every
/// process of the daemon's session (which only the task's processes share)
/// and every process marked with the task's id, started no earlier than
/// `since` (so that a later session given the same number is not touched).
/// Returns how many were killed.
pub fn kill_unrecorded(session: Pid, task_id: &str, since: u64) -> usize {
    let mark = format!("BG_TASK_ID={task_id}").into_bytes();
    let me = std::process::id() as Pid;
    all_processes()
        .iter()
        .filter(|p| p.start_time >= since && !p.zombie && p.pid != me)
        .filter(|p| p.sid == session || os::environ_has(p.pid, &mark))
        .filter_map(Pinned::pin)
        .filter(|p| p.signal(Signal::KILL).unwrap_or(false))
        .count()
}

/// The value of `BG_TASK_ID` in the environment `pid` was started with:
/// the task it belongs to, wherever it went. Only our own processes can
/// be read; others say `None`.
pub fn task_mark(pid: Pid) -> Option<String> {
    let value = os::environ_value(pid, b"BG_TASK_ID")?;
    String::from_utf8(value).ok()
}

/// How long a listing of marked processes is reused: a list of many lost
/// tasks reads every process's environment once, not once per task.
const MARKS_REUSED_FOR: Duration = Duration::from_millis(250);

/// When processes were listed, and each one's `BG_TASK_ID`.
type MarkListing = (Instant, Vec<(ProcInfo, Vec<u8>)>);

/// Live processes started with `BG_TASK_ID=<task_id>`, no earlier than
/// `since`: what escaped a task's group (a `setsid` child) carries the mark.
pub fn marked(task_id: &str, since: u64, others: SupervisorCheck<'_>) -> Vec<ProcInfo> {
    static MARKS: Mutex<Option<MarkListing>> = Mutex::new(None);
    let Ok(mut marks) = MARKS.lock() else {
        return Vec::new();
    };
    let fresh = marks
        .as_ref()
        .is_some_and(|(at, _)| at.elapsed() < MARKS_REUSED_FOR);
    if !fresh {
        let listing = all_processes()
            .into_iter()
            .filter(|p| !p.zombie)
            .filter_map(|p| Some((p, os::environ_value(p.pid, b"BG_TASK_ID")?)))
            .collect();
        *marks = Some((Instant::now(), listing));
    }
    let me = std::process::id() as Pid;
    marks
        .as_ref()
        .map(|(_, listing)| {
            listing
                .iter()
                .filter(|(p, id)| id == task_id.as_bytes() && p.start_time >= since && p.pid != me)
                .map(|(p, _)| *p)
                .filter(|p| !is_other_supervisor(p, others))
                .filter(|p| {
                    proc_info(p.pid)
                        .is_some_and(|now| now.start_time == p.start_time && !now.zombie)
                })
                .collect()
        })
        .unwrap_or_default()
}
