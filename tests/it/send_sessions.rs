//! codex-send sessions against the fake Codex: round trips with approvals,
//! new threads, answers for the session, cancels, and concurrent answers.

use std::fs;
use std::process::Stdio;

use serde_json::{Value, json};

use crate::parse_streams::CODEX_PARSE;
use crate::send::*;
use crate::util::*;

#[test]
fn an_app_server_session_round_trip_with_an_approval() {
    let env = Env::new();
    let id = start(&env, &[]);
    let turn = env
        .run(CODEX_SEND, &["--task", &id, "hello"])
        .success()
        .stdout;
    assert_eq!(turn.trim(), "turn-1");
    let waited = env.run(
        CODEX_PARSE,
        &["--task", &id, "--wait", "turn-1", "--timeout", "20s"],
    );
    assert_eq!(waited.code(), 0, "{waited:?}");
    env.run(CODEX_SEND, &["--task", &id, "[approve] touch it"])
        .success();
    let asked = poll(DEADLINE, || pending(&env, &id).first().cloned()).expect("an approval");
    assert_eq!(asked["request_id"], "0");
    // Not pending: refused, and nothing written.
    let input = env.task_dir(&id).join("input");
    let before = fs::read(&input).unwrap();
    let wrong = env.run(CODEX_SEND, &["--task", &id, "--approve", "7"]);
    assert_eq!(wrong.code(), 1, "{wrong:?}");
    assert!(
        wrong
            .stderr
            .starts_with("codex-send: server request 7 is not pending"),
        "{wrong:?}"
    );
    assert_eq!(fs::read(&input).unwrap(), before);
    env.run(CODEX_SEND, &["--task", &id, "--approve", "0"])
        .success();
    let done = env.run(
        CODEX_PARSE,
        &["--task", &id, "--wait", "turn-2", "--timeout", "20s"],
    );
    assert_eq!(done.code(), 0, "{done:?}");
    let summary = env.run(CODEX_PARSE, &["--task", &id, "--json"]).json();
    assert_eq!(
        summary["requests"][1]["final_message"],
        "decision: \"accept\""
    );
    assert_eq!(
        summary["requests"][1]["thread_id"],
        summary["requests"][0]["thread_id"]
    );
    let sent = lines_of(&fs::read_to_string(&input).unwrap());
    let thread_starts = sent
        .iter()
        .filter(|l| l["method"] == "thread/start")
        .count();
    assert_eq!(thread_starts, 1, "the second prompt continues the thread");
    assert_eq!(
        sent.last().unwrap(),
        &json!({"id": 0, "result": {"decision": "accept"}})
    );
    let again = env.run(CODEX_SEND, &["--task", &id, "--approve", "0"]);
    assert_eq!(again.code(), 1, "answered already: {again:?}");
    // A turn waiting on an approval is interrupted by its turn id.
    env.run(CODEX_SEND, &["--task", &id, "[approve] once more"])
        .success();
    poll(DEADLINE, || pending(&env, &id).first().cloned()).expect("an approval");
    env.run(CODEX_SEND, &["--task", &id, "--interrupt"])
        .success();
    let sent = lines_of(&fs::read_to_string(&input).unwrap());
    let interrupt = sent.last().unwrap();
    assert_eq!(interrupt["method"], "turn/interrupt");
    assert_eq!(interrupt["params"]["turnId"], "turn-3");
    assert_eq!(
        interrupt["params"]["threadId"],
        summary["requests"][0]["thread_id"]
    );
    let stopped = poll(DEADLINE, || {
        let summary = env.run(CODEX_PARSE, &["--task", &id, "--json"]).json();
        (summary["requests"][2]["status"] == "interrupted").then_some(())
    });
    assert!(stopped.is_some(), "the turn ends interrupted");
    let idle = env.run(CODEX_SEND, &["--task", &id, "--interrupt"]);
    assert_eq!(idle.code(), 1, "nothing runs: {idle:?}");
    assert!(idle.stderr.contains("nothing is running"), "{idle:?}");
}

#[test]
fn an_mcp_server_session_continues_its_thread_and_denies_in_its_version_s_shape() {
    let env = Env::new();
    let mut command = env.cmd(CODEX_SEND);
    command
        .args(["--start", "--protocol", "mcp", "--codex", &fake_codex()])
        .env("FAKE_CODEX_VERSION", "0.153.0");
    let id = finish(command).success().stdout.trim().to_string();
    let refused = env.run(
        CODEX_SEND,
        &["--task", &id, "--approval-policy", "untrusted", "hi"],
    );
    assert_eq!(
        refused.code(),
        2,
        "0.153 takes only on-request/never: {refused:?}"
    );
    assert_eq!(
        env.run(CODEX_SEND, &["--task", &id, "first"])
            .success()
            .stdout
            .trim(),
        "1"
    );
    assert_eq!(
        env.run(CODEX_SEND, &["--task", &id, "[approve] second"])
            .success()
            .stdout
            .trim(),
        "2"
    );
    poll(DEADLINE, || pending(&env, &id).first().cloned()).expect("an approval");
    env.run(
        CODEX_SEND,
        &["--task", &id, "--deny", "0", "--reason", "no"],
    )
    .success();
    let done = env.run(
        CODEX_PARSE,
        &["--task", &id, "--wait", "2", "--timeout", "20s"],
    );
    assert_eq!(done.code(), 0, "{done:?}");
    let sent = lines_of(&fs::read_to_string(env.task_dir(&id).join("input")).unwrap());
    assert_eq!(sent[3]["params"]["name"], "codex-reply");
    assert_eq!(
        sent[3]["params"]["arguments"]["threadId"],
        "01a20027-4944-7b92-ad87-c62c1c3d2fa4"
    );
    assert_eq!(
        sent[4]["result"],
        json!({"decision": {"denied": {"rejection": "no"}}})
    );
    let idle = env.run(CODEX_SEND, &["--task", &id, "--interrupt"]);
    assert_eq!(idle.code(), 1, "nothing runs: {idle:?}");
}

#[test]
fn new_thread_in_an_app_server_session_takes_the_prompts_that_follow() {
    let env = Env::new();
    let id = start(&env, &[]);
    assert_eq!(to_task(&env, &id, &["first"]), "turn-1");
    let second = to_task(&env, &id, &["--new-thread"]);
    assert_eq!(to_task(&env, &id, &["on the second"]), "turn-2");
    assert_eq!(
        to_task(&env, &id, &["--new-thread", "on a third"]),
        "turn-3"
    );
    assert_eq!(to_task(&env, &id, &["still the third"]), "turn-4");
    let turns: Vec<Value> = (1..=4)
        .map(|n| ended(&env, &id, &format!("turn-{n}")))
        .collect();
    let sent = sent(&env, &id);
    let starts = with_method(&sent, "thread/start");
    assert_eq!(starts.len(), 3, "a thread/start each: {sent:?}");
    // Each turn/start goes to the thread the last thread/start created.
    let on: Vec<&Value> = with_method(&sent, "turn/start")
        .iter()
        .map(|l| &l["params"]["threadId"])
        .collect();
    let threads: Vec<&Value> = turns.iter().map(|t| &t["thread_id"]).collect();
    assert_eq!(on, threads, "the turns ran where they were sent");
    assert_eq!(threads[1], second.as_str(), "--new-thread prints its id");
    assert_ne!(threads[0], threads[1]);
    assert_ne!(threads[1], threads[2]);
    assert_eq!(threads[2], threads[3]);
    assert_eq!(turns[3]["final_message"], "echo: still the third");
}

#[test]
fn new_thread_in_an_mcp_server_session_starts_a_conversation() {
    let env = Env::new();
    let id = start_version(&env, "0.153.0", &["--protocol", "mcp"]);
    assert_eq!(to_task(&env, &id, &["first"]), "1");
    assert_eq!(to_task(&env, &id, &["second"]), "2");
    // mcp-server has no empty conversation: refused, nothing written.
    let before = sent(&env, &id);
    let alone = env.run(CODEX_SEND, &["--task", &id, "--new-thread"]);
    assert_eq!(alone.code(), 2, "{alone:?}");
    assert!(alone.stderr.contains("with its first prompt"), "{alone:?}");
    assert_eq!(sent(&env, &id), before);
    assert_eq!(to_task(&env, &id, &["--new-thread", "third"]), "3");
    assert_eq!(to_task(&env, &id, &["fourth"]), "4");
    let requests: Vec<Value> = ["1", "2", "3", "4"]
        .iter()
        .map(|r| ended(&env, &id, r))
        .collect();
    let calls: Vec<Value> = sent(&env, &id)
        .into_iter()
        .filter(|l| l["method"] == "tools/call")
        .collect();
    let tools: Vec<&Value> = calls.iter().map(|c| &c["params"]["name"]).collect();
    assert_eq!(tools, ["codex", "codex-reply", "codex", "codex-reply"]);
    let (old, new) = (&requests[0]["thread_id"], &requests[2]["thread_id"]);
    assert_ne!(old, new, "--new-thread is a new conversation");
    assert_eq!(calls[1]["params"]["arguments"]["threadId"], *old);
    assert_eq!(calls[3]["params"]["arguments"]["threadId"], *new);
    assert_eq!(requests[3]["thread_id"], *new);
    assert_eq!(requests[3]["final_message"], "echo: fourth");
}

#[test]
fn an_app_server_session_approves_for_the_session_and_cancels() {
    let env = Env::new();
    let id = start(&env, &[]);
    assert_eq!(to_task(&env, &id, &["[approve] one"]), "turn-1");
    assert_eq!(asked(&env, &id)["kind"], "exec");
    to_task(&env, &id, &["--approve-for-session", "0"]);
    let reply = json!({"id": 0, "result": {"decision": "acceptForSession"}});
    assert_eq!(sent(&env, &id).last(), Some(&reply));
    let one = ended(&env, &id, "turn-1");
    assert_eq!(one["final_message"], "decision: \"acceptForSession\"");
    // Codex took it for the session: it does not ask again.
    assert_eq!(to_task(&env, &id, &["[approve] two"]), "turn-2");
    assert_eq!(ended(&env, &id, "turn-2")["status"], "completed");
    assert_eq!(pending(&env, &id), Vec::<Value>::new());
    // A patch approval, cancelled: the turn ends interrupted.
    assert_eq!(to_task(&env, &id, &["[approve-patch] three"]), "turn-3");
    let patch = asked(&env, &id);
    assert_eq!(
        (&patch["kind"], &patch["request_id"]),
        (&json!("patch"), &json!("1"))
    );
    to_task(&env, &id, &["--cancel", "1"]);
    let reply = json!({"id": 1, "result": {"decision": "cancel"}});
    assert_eq!(sent(&env, &id).last(), Some(&reply));
    assert_eq!(ended(&env, &id, "turn-3")["status"], "interrupted");
    let again = env.run(CODEX_SEND, &["--task", &id, "--cancel", "1"]);
    assert_eq!(again.code(), 1, "not pending any more: {again:?}");
    // The thread stays usable; a denied patch is declined (no reason
    // field in app-server's answer).
    assert_eq!(to_task(&env, &id, &["[approve-patch] four"]), "turn-4");
    asked(&env, &id);
    to_task(&env, &id, &["--deny", "2", "--reason", "not now"]);
    let reply = json!({"id": 2, "result": {"decision": "decline"}});
    assert_eq!(sent(&env, &id).last(), Some(&reply));
    let four = ended(&env, &id, "turn-4");
    assert_eq!(four["final_message"], "decision: \"decline\"");
    assert_eq!(four["thread_id"], one["thread_id"]);
}

#[test]
fn an_mcp_server_session_approves_for_the_session_and_cancels() {
    let env = Env::new();
    let id = start_version(&env, "0.153.0", &["--protocol", "mcp"]);
    assert_eq!(to_task(&env, &id, &["[approve] a"]), "1");
    assert_eq!(asked(&env, &id)["request_id"], "0");
    to_task(&env, &id, &["--approve-for-session", "0"]);
    let reply = json!({"jsonrpc": "2.0", "id": 0, "result": {"decision": "approved_for_session"}});
    assert_eq!(sent(&env, &id).last(), Some(&reply));
    let first = ended(&env, &id, "1");
    assert_eq!(first["final_message"], "decision: \"approved_for_session\"");
    assert_eq!(to_task(&env, &id, &["[approve] b"]), "2");
    assert_eq!(ended(&env, &id, "2")["final_message"], "echo: [approve] b");
    // Cancelled: Codex aborts the turn and never answers the call.
    assert_eq!(to_task(&env, &id, &["[approve-patch] c"]), "3");
    assert_eq!(asked(&env, &id)["kind"], "patch");
    to_task(&env, &id, &["--cancel", "1"]);
    let reply = json!({"jsonrpc": "2.0", "id": 1, "result": {"decision": "abort"}});
    assert_eq!(sent(&env, &id).last(), Some(&reply));
    assert_eq!(ended(&env, &id, "3")["status"], "interrupted");
    let idle = env.run(CODEX_SEND, &["--task", &id, "--interrupt"]);
    assert_eq!(idle.code(), 1, "nothing runs after the abort: {idle:?}");
    assert_eq!(to_task(&env, &id, &["d"]), "4");
    let last = ended(&env, &id, "4");
    assert_eq!(last["final_message"], "echo: d");
    assert_eq!(last["thread_id"], first["thread_id"]);
}

#[test]
fn an_old_mcp_server_session_gets_conversation_ids_and_plain_denials() {
    let env = Env::new();
    // 0.47: the version picks mcp-server (no app-server v2 before 0.57).
    let id = start_version(&env, "0.47.0", &[]);
    let refused = env.run(
        CODEX_SEND,
        &["--task", &id, "--developer-instructions", "x", "hi"],
    );
    assert_eq!(refused.code(), 2, "0.47 would drop them: {refused:?}");
    assert!(
        refused.stderr.contains("no developer instructions"),
        "{refused:?}"
    );
    assert_eq!(sent(&env, &id).len(), 2, "only the handshake");
    let settings = ["--approval-policy", "on-failure", "[settings] first"];
    assert_eq!(to_task(&env, &id, &settings), "1");
    let first = ended(&env, &id, "1");
    let applied: Value = serde_json::from_str(first["final_message"].as_str().unwrap()).unwrap();
    assert_eq!(applied["approval-policy"], "on-failure");
    assert_eq!(to_task(&env, &id, &["[approve] second"]), "2");
    asked(&env, &id);
    to_task(&env, &id, &["--deny", "0", "--reason", "no"]);
    let sent = sent(&env, &id);
    let reply = &sent[3]["params"]["arguments"];
    assert_eq!(reply["conversationId"], first["thread_id"]);
    assert_eq!(reply.get("threadId"), None);
    assert_eq!(sent[4]["result"], json!({"decision": "denied"}));
    let second = ended(&env, &id, "2");
    assert_eq!(second["final_message"], "decision: \"denied\"");
}

/// Processes other than `except` blocked on a flock of this file (Linux:
/// `/proc/locks` lists them with `->`, by pid and device:inode).
fn lock_waiters(path: &std::path::Path, except: i64) -> usize {
    use std::os::unix::fs::MetadataExt;
    let inode = format!(":{}", fs::metadata(path).unwrap().ino());
    let except = except.to_string();
    let locks = fs::read_to_string("/proc/locks").unwrap_or_default();
    locks
        .lines()
        .filter(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            let on_file = words.iter().position(|w| w.ends_with(&inode));
            l.contains("->") && on_file.is_some_and(|at| at > 0 && words[at - 1] != except)
        })
        .count()
}

#[test]
fn concurrent_answers_to_one_approval_write_one_reply() {
    let env = Env::new();
    let id = start(&env, &[]);
    to_task(&env, &id, &["[approve] once"]);
    asked(&env, &id);
    // Six answers held at the input feed's lock until all have started:
    // the check that the request is pending must happen under that lock.
    let input = fs::File::open(env.task_dir(&id).join("input")).unwrap();
    input.lock().unwrap();
    let answers: Vec<Guard> = (0..6)
        .map(|_| {
            let mut command = env.cmd(CODEX_SEND);
            command.args(["--task", &id, "--approve", "0"]);
            command.stdout(Stdio::null()).stderr(Stdio::null());
            Guard::spawn(command)
        })
        .collect();
    let path = env.task_dir(&id).join("input");
    // The session's own feeder may wait on the lock too: it is not counted.
    let supervisor = env.record(&id)["supervisor_pid"].as_i64().unwrap();
    poll(DEADLINE, || {
        (lock_waiters(&path, supervisor) == 6).then_some(())
    })
    .expect("six waiting");
    input.unlock().unwrap();
    let codes: Vec<i32> = answers
        .into_iter()
        .map(|mut a| a.0.wait().unwrap().code().unwrap_or(-1))
        .collect();
    assert_eq!(codes.iter().filter(|c| **c == 0).count(), 1, "{codes:?}");
    assert_eq!(codes.iter().filter(|c| **c == 1).count(), 5, "{codes:?}");
    let replies = sent(&env, &id)
        .into_iter()
        .filter(|l| l["id"] == 0 && l.get("result").is_some());
    assert_eq!(replies.count(), 1);
    assert_eq!(ended(&env, &id, "turn-1")["status"], "completed");
}

#[test]
fn a_start_refused_by_the_allowlist_keeps_its_launch_code() {
    let env = Env::new();
    let mut command = env.cmd(CODEX_SEND);
    command
        .env("BG_ALLOWED_COMMANDS", "make")
        .args(["--start", "--codex", &fake_codex()]);
    let refused = finish(command);
    assert_eq!(refused.code(), 126, "{refused:?}");
    assert!(
        refused
            .stderr
            .contains("codex-send: bg-run could not start"),
        "{refused:?}"
    );
    assert!(env.task_ids().is_empty(), "no session was recorded");
}
