//! Ports: the TCP ports a task's tree listens on (`bg-check ID`,
//! `bg-check --ports`), and readiness by port (`bg-run --ready-port`,
//! `--ready-http`), with the refusal of a port someone already holds.

use std::fs;
use std::net::TcpListener;
use std::process::Command;

use serde_json::Value;

use crate::util::*;

/// A port nobody listens on now (the kernel's pick, let go at once).
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding port 0");
    listener.local_addr().expect("its address").port()
}

/// The ports a record lists.
fn ports_of(record: &Value) -> Vec<u64> {
    record["ports"]
        .as_array()
        .map(|ports| ports.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default()
}

/// `bg-check --ports --json` (with `args`) run in `cwd`.
fn port_rows(env: &Env, args: &[&str], cwd: &std::path::Path) -> Vec<Value> {
    let mut command = env.cmd(BG_CHECK);
    command
        .arg("--ports")
        .arg("--json")
        .args(args)
        .current_dir(cwd);
    let out = finish(command).success();
    out.json().as_array().cloned().unwrap_or_default()
}

/// bg-run started in the background, with its stdout kept.
fn bg_run_in_background(env: &Env, args: &[&str]) -> Guard {
    env.spawn_piped(BG_RUN, args)
}

/// Waits for a background bg-run to exit; its code and what it printed.
fn exit_of(run: Guard) -> (i32, String, String) {
    let out = finish_child(run);
    (out.code(), out.stdout, out.stderr)
}

/// The one task of the state dir, once it is running.
fn the_running_task(env: &Env) -> Value {
    poll(DEADLINE, || {
        let ids = env.task_ids();
        let id = ids.first()?;
        let record = env.run(BG_CHECK, &[id, "--json"]);
        (record.code() == 0 && record.json()["state"] == "running").then(|| record.json())
    })
    .expect("a running task")
}

#[test]
#[cfg_attr(
    feature = "portable",
    ignore = "linux-only: sockets are listed from /proc"
)]
fn an_http_server_shows_its_port_in_the_record_and_in_the_ports_list() {
    let env = Env::new();
    let id = env.launch(&[
        "--name",
        "web",
        "python3",
        "-m",
        "http.server",
        "0",
        "--bind",
        "127.0.0.1",
    ]);
    // Port 0: the kernel picks, and the record says which.
    let record = env.wait_record(&id, |r| !ports_of(r).is_empty());
    let port = ports_of(&record)[0];
    assert_eq!(ports_of(&record), vec![port], "{record}");
    let said = env.wait_record(&id, |r| output_of(r).contains("Serving HTTP"));
    assert!(
        output_of(&said).contains(&format!("port {port} ")),
        "python says another port than {port}: {}",
        output_of(&said)
    );
    let status = env.run(BG_CHECK, &[&id]).success();
    let first = status.stdout.lines().next().unwrap_or_default().to_string();
    assert!(first.contains(&format!("on port {port}:")), "{first}");
    let rows = port_rows(&env, &[], env.dir.path());
    let row = rows
        .iter()
        .find(|r| r["id"] == id.as_str())
        .expect("the task's row");
    assert_eq!(
        (row["port"].as_u64(), &row["name"]),
        (Some(port), &Value::from("web"))
    );
    assert_eq!(row["address"], "127.0.0.1");
    assert_eq!(row["pids"], serde_json::json!([record["pid"]]), "{row}");
    // Scoped as the list is: another project sees it only with --all.
    let elsewhere = tempfile::tempdir().expect("tempdir");
    assert!(port_rows(&env, &[], elsewhere.path()).is_empty());
    assert_eq!(port_rows(&env, &["--all"], elsewhere.path()).len(), 1);
    // Once the task has ended, it listens on nothing.
    env.run(BG_KILL, &[&id]).success();
    assert_eq!(ports_of(&env.record(&id)), Vec::<u64>::new());
    assert!(port_rows(&env, &[], env.dir.path()).is_empty());
}

/// A task whose leader forks a child that leaves the group (`setsid`) and
/// listens; the leader holds no socket. The child writes `<pid> <port>`.
const FORKED_LISTENER: &str = r#"
import os, socket, time
if os.fork() == 0:
    os.setsid()
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    with open("child.tmp", "w") as f:
        f.write(f"{os.getpid()} {s.getsockname()[1]}")
    os.rename("child.tmp", "child")
time.sleep(120)
"#;

#[test]
#[cfg_attr(
    feature = "portable",
    ignore = "linux-only: sockets are listed from /proc"
)]
fn a_child_that_left_the_group_shows_its_port() {
    let env = Env::new();
    let id = env.launch(&["python3", "-c", FORKED_LISTENER]);
    let said = poll(DEADLINE, || {
        fs::read_to_string(env.dir.path().join("child")).ok()
    })
    .expect("the child's pid and port");
    let (child, port) = said.split_once(' ').expect("<pid> <port>");
    let (child, port): (i64, u64) = (child.parse().unwrap(), port.parse().unwrap());
    let record = env.wait_record(&id, |r| !ports_of(r).is_empty());
    assert_eq!(ports_of(&record), vec![port], "{record}");
    assert_ne!(record["pid"].as_i64(), Some(child));
    let rows = port_rows(&env, &[], env.dir.path());
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["pids"], serde_json::json!([child]), "{rows:?}");
}

/// Waits for a `gate` file, then listens on the port given as argv[1].
const GATED_LISTENER: &str = r#"
import os, socket, sys, time
print("waiting for the gate", flush=True)
while not os.path.exists("gate"):
    time.sleep(0.01)
s = socket.socket()
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen()
print("listening", flush=True)
time.sleep(120)
"#;

#[test]
fn ready_port_returns_only_once_the_task_listens() {
    let env = Env::new();
    let port = free_port().to_string();
    let run = bg_run_in_background(
        &env,
        &[
            "--ready-port",
            &port,
            "python3",
            "-c",
            GATED_LISTENER,
            &port,
        ],
    );
    let record = the_running_task(&env);
    env.wait_record(record["id"].as_str().unwrap(), |r| {
        output_of(r).contains("waiting for the gate")
    });
    let mut run = run;
    assert!(
        run.0.try_wait().expect("bg-run's status").is_none(),
        "bg-run returned before the task listened"
    );
    fs::write(env.dir.path().join("gate"), "").unwrap();
    let (code, stdout, stderr) = exit_of(run);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout.trim(), record["id"].as_str().unwrap());
    // It returned because the task listened, not for the gate alone.
    let listening = env.record(stdout.trim());
    assert!(output_of(&listening).contains("listening"), "{listening}");
}

#[test]
fn ready_port_times_out_with_124_and_fails_when_the_task_ends_first() {
    let env = Env::new();
    let port = free_port().to_string();
    let late = [
        "--ready-port",
        &port,
        "--ready-timeout",
        "0.3",
        "sleep",
        "30",
    ];
    let out = env.run(BG_RUN, &late);
    assert_eq!(out.code(), 124, "{out:?}");
    assert!(
        out.stderr
            .contains(&format!("did not listen on port {port}")),
        "{out:?}"
    );
    assert_eq!(env.record(out.stdout.trim())["state"], "running");
    // A missed wake-up at the end would show as 124 after 10 s.
    let ends = ["--ready-port", &port, "--ready-timeout", "10", "exit 3"];
    let out = env.run(BG_RUN, &ends);
    assert_eq!(out.code(), 1, "{out:?}");
    assert!(out.stderr.contains("exited 3"), "{out:?}");
}

/// Answers 503 until a `gate` file exists, then 200; port in argv[1].
const GATED_HTTP: &str = r#"
import os, sys, http.server
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if os.path.exists("gate") else 503)
        self.end_headers()
        self.wfile.write(b"hello")
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
"#;

#[test]
fn ready_http_waits_for_an_answer_below_500() {
    let env = Env::new();
    let port = free_port().to_string();
    let url = format!("http://localhost:{port}/health");
    let run = bg_run_in_background(
        &env,
        &["--ready-http", &url, "python3", "-c", GATED_HTTP, &port],
    );
    let record = the_running_task(&env);
    let id = record["id"].as_str().unwrap().to_string();
    // The server logs each request: bg-run has asked, and been told 503.
    env.wait_record(&id, |r| {
        output_of(r).contains("\"GET /health HTTP/1.1\" 503")
    });
    let mut run = run;
    assert!(
        run.0.try_wait().expect("bg-run's status").is_none(),
        "bg-run returned on a 503"
    );
    fs::write(env.dir.path().join("gate"), "").unwrap();
    let (code, stdout, stderr) = exit_of(run);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout.trim(), id);
    assert!(output_of(&env.record(&id)).contains("\" 200 "));
}

#[test]
#[cfg_attr(
    feature = "portable",
    ignore = "linux-only: who holds a port is found in /proc"
)]
fn a_port_held_by_another_task_is_refused_naming_that_task() {
    let env = Env::new();
    let port = free_port().to_string();
    let serve = ["python3", "-m", "http.server", &port, "--bind", "127.0.0.1"];
    let mut args = vec!["--name", "holder", "--unique", "--ready-port", &port];
    args.extend(serve);
    let mut json = vec!["--json"];
    json.extend(&args);
    // With a readiness by port, bg-run's record says where it listens.
    let record = env.run(BG_RUN, &json).success().json();
    assert_eq!(
        ports_of(&record),
        vec![port.parse::<u64>().unwrap()],
        "{record}"
    );
    let holder = record["id"].as_str().unwrap().to_string();
    assert_eq!(env.task_ids().len(), 1);
    let url = format!("http://127.0.0.1:{port}/");
    for flag in [
        ["--ready-port", port.as_str()],
        ["--ready-http", url.as_str()],
    ] {
        let out = env.run(BG_RUN, &[flag[0], flag[1], "sleep", "30"]);
        assert_eq!(out.code(), 2, "{out:?}");
        let said = &out.stderr;
        assert!(said.starts_with("bg-run: "), "{out:?}");
        for needle in [
            format!("port {port} is already in use"),
            format!("of task {holder} ('holder')"),
            "pid ".into(),
        ] {
            assert!(said.contains(&needle), "no {needle:?} in {said:?}");
        }
        assert!(out.stdout.is_empty(), "{out:?}");
    }
    assert_eq!(env.task_ids().len(), 1, "a refused launch created a task");
    // --unique comes first: the running task is returned, not refused.
    let again = env.run(BG_RUN, &args).success();
    assert_eq!(again.stdout.trim(), holder);
    assert_eq!(env.task_ids().len(), 1);
}

#[test]
fn a_port_held_outside_any_task_is_refused_and_creates_nothing() {
    let env = Env::new();
    let held = TcpListener::bind("127.0.0.1:0").expect("binding port 0");
    let port = held.local_addr().expect("its address").port().to_string();
    let out = env.run(BG_RUN, &["--ready-port", &port, "sleep", "30"]);
    assert_eq!(out.code(), 2, "{out:?}");
    let needle = format!("bg-run: --ready-port: port {port} is already in use");
    assert!(out.stderr.starts_with(&needle), "{out:?}");
    if cfg!(not(feature = "portable")) {
        // This test's own process holds it, and is no task.
        let pid = format!("pid {} (", std::process::id());
        assert!(out.stderr.contains(&pid), "no {pid:?} in {out:?}");
        assert!(!out.stderr.contains("of task"), "{out:?}");
    }
    assert!(env.task_ids().is_empty());
}

#[test]
fn bad_ready_ports_and_urls_are_refused_and_create_nothing() {
    let env = Env::new();
    let cases: [(&[&str], &str); 9] = [
        (&["--ready-port", "0"], "not a TCP port"),
        (&["--ready-port", "70000"], "not a TCP port"),
        (&["--ready-port", "abc"], "not a port number"),
        (
            &["--ready-http", "https://localhost:3000/"],
            "only plain http://",
        ),
        (&["--ready-http", "ftp://127.0.0.1/"], "only plain http://"),
        (
            &["--ready-http", "http://example.com/"],
            "not a local address",
        ),
        (
            &["--ready-http", "http://10.1.2.3:80/"],
            "not a local address",
        ),
        (&["--ready-http", "localhost:3000"], "not an http:// URL"),
        (
            &["--ready", "x", "--ready-port", "3000"],
            "cannot be used with",
        ),
    ];
    for (flags, needle) in cases {
        let mut command = Command::new(BG_RUN);
        command
            .env("BG_STATE_DIR", &env.state)
            .args(flags)
            .args(["sleep", "30"]);
        let out = finish(command);
        assert_eq!(out.code(), 2, "{flags:?}: {out:?}");
        assert!(out.stderr.starts_with("bg-run: "), "{out:?}");
        assert!(
            out.stderr.contains(needle),
            "{flags:?}: no {needle:?} in {out:?}"
        );
        assert!(out.stdout.is_empty(), "{out:?}");
    }
    assert!(env.task_ids().is_empty());
}
