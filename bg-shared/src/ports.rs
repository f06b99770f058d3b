//! The TCP ports a task listens on (docs/ARCHITECTURE.md, "Ports"), so
//! that "which port did the dev server take?" is one command, `bg-run
//! --ready-port` knows when the task is ready, and a port someone else
//! already holds is refused before a task that wants it starts.
//!
//! A task's processes are its tree as bg-kill finds it
//! (`process::TaskTree`): its group, what its supervisor adopted, what
//! carries its `BG_TASK_ID`. The process layer lists the listening
//! sockets of each network namespace they are in and the sockets each
//! process holds; a socket is theirs when one of them holds its inode.
//! Where sockets cannot be listed (the portable layer), a task has no
//! ports to show, and readiness and refusals fall back to connecting.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::time::Duration;

use serde::Serialize;

use crate::process::{self, Pid, TaskTree};
use crate::record::{LaunchRecord, TaskState};
use crate::state_dir::StateDir;
use crate::task::{self, Task};

/// One port a task listens on, at one address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Listener {
    pub port: u16,
    /// The local address: `0.0.0.0` or `::` for every interface.
    pub address: String,
    /// The task's processes that hold the socket (a forked worker shares
    /// its parent's): lowest first.
    pub pids: Vec<Pid>,
}

/// True where the OS lets us list listening sockets (not the portable layer).
pub fn can_list() -> bool {
    static CAN: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *CAN.get_or_init(|| {
        process::listening_sockets(std::process::id() as Pid).map_or_else(
            |err| err.kind() != std::io::ErrorKind::Unsupported,
            |_| true,
        )
    })
}

/// The live processes of a task now; none for a task that has ended or
/// has not started.
pub fn task_processes(task: &Task) -> Vec<Pid> {
    if !task.state.is_live() || task.state == TaskState::Queued {
        return Vec::new();
    }
    let Some(leader) = task.leader() else {
        return Vec::new();
    };
    let supervisor = (task.state == TaskState::Running)
        .then(|| task.supervisor())
        .flatten();
    let tree = TaskTree::new(
        leader,
        task.launch.session_id,
        supervisor,
        task.paths.id.as_str(),
    );
    let others = task::other_supervisors(task.paths.tasks_dir());
    tree.find(&others).processes.iter().map(|p| p.pid).collect()
}

/// What the task's processes listen on now, by port, then address.
pub fn of_task(task: &Task) -> Vec<Listener> {
    of_processes(&task_processes(task))
}

/// What these processes listen on, by port, then address. Processes that
/// cannot be read (another user's) hold nothing, as far as we can tell.
pub fn of_processes(pids: &[Pid]) -> Vec<Listener> {
    let mut holders: BTreeMap<u64, Vec<Pid>> = BTreeMap::new();
    let mut namespaces: BTreeMap<Option<u64>, Pid> = BTreeMap::new();
    for pid in pids {
        let inodes = process::socket_inodes(*pid);
        if inodes.is_empty() {
            continue;
        }
        namespaces
            .entry(process::net_namespace(*pid))
            .or_insert(*pid);
        for inode in inodes {
            holders.entry(inode).or_default().push(*pid);
        }
    }
    let mut found: BTreeMap<(u16, String), Vec<Pid>> = BTreeMap::new();
    for reader in namespaces.values() {
        for socket in process::listening_sockets(*reader).unwrap_or_default() {
            if let Some(pids) = holders.get(&socket.inode) {
                let entry = found
                    .entry((socket.port, socket.address.to_string()))
                    .or_default();
                entry.extend(pids);
            }
        }
    }
    found
        .into_iter()
        .map(|((port, address), mut pids)| {
            pids.sort_unstable();
            pids.dedup();
            Listener {
                port,
                address,
                pids,
            }
        })
        .collect()
}

/// The port numbers of `listeners`, each once, lowest first.
pub fn numbers(listeners: &[Listener]) -> Vec<u16> {
    let mut ports: Vec<u16> = listeners.iter().map(|l| l.port).collect();
    ports.dedup();
    ports
}

/// True once a process of the task listens on `port`. Where sockets
/// cannot be listed, true once something answers on the port at a
/// loopback address (a launch refuses a port already in use, so that is
/// the task, short of a race).
pub fn task_listens_on(task: &Task, port: u16) -> bool {
    if !can_list() {
        return task.leader().is_some() && connects(port);
    }
    of_task(task).iter().any(|l| l.port == port)
}

/// True if something accepts a TCP connection on `port` at 127.0.0.1 or
/// ::1 (the connection is closed at once, without a byte sent).
pub fn connects(port: u16) -> bool {
    let timeout = Duration::from_millis(500);
    [
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(Ipv6Addr::LOCALHOST),
    ]
    .into_iter()
    .any(|ip| TcpStream::connect_timeout(&SocketAddr::new(ip, port), timeout).is_ok())
}

/// Who listens on a port already, in our network namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortUse {
    Free,
    /// Something listens. The holders we can see (none when they are
    /// another user's processes, or where sockets cannot be listed).
    Held(Vec<Holder>),
}

/// A process that listens on a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub pid: Pid,
    /// Its command name (`comm`), if it can be read.
    pub command: Option<String>,
    /// The task it belongs to (its `BG_TASK_ID`), and that task's name
    /// where this state dir has a record of it.
    pub task: Option<(String, Option<String>)>,
}

/// Who listens on `port` now: every process is looked at, so this is for
/// a launch that asked for a port, not for every launch.
pub fn holders(port: u16, state: &StateDir) -> PortUse {
    let me = std::process::id() as Pid;
    let sockets = match process::listening_sockets(me) {
        Ok(sockets) => sockets,
        Err(_) if connects(port) => return PortUse::Held(Vec::new()),
        Err(_) => return PortUse::Free,
    };
    let inodes: Vec<u64> = sockets
        .iter()
        .filter(|s| s.port == port)
        .map(|s| s.inode)
        .collect();
    if inodes.is_empty() {
        return PortUse::Free;
    }
    let held = process::all_processes()
        .into_iter()
        .filter(|p| !p.zombie && p.pid != me)
        .filter(|p| {
            process::socket_inodes(p.pid)
                .iter()
                .any(|i| inodes.contains(i))
        })
        .map(|p| Holder {
            pid: p.pid,
            command: process::command_name(p.pid),
            task: process::task_mark(p.pid).map(|id| {
                let name = task_name(state, &id);
                (id, name)
            }),
        })
        .collect();
    PortUse::Held(held)
}

/// The name of task `id` in this state dir, if it has a record and a name.
fn task_name(state: &StateDir, id: &str) -> Option<String> {
    let id = crate::ids::TaskId::parse(id).ok()?;
    let meta = state.task_dir(&id).join("meta.json");
    LaunchRecord::read(&meta).ok()??.name
}
