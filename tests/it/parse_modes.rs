//! codex-parse's modes and its handling of bad input: pending approvals and
//! --stuck, messages assembled from deltas, redaction, --wait and --follow
//! on a growing stream, --task, and streams full of noise.

use std::fs;
use std::io::{Read, Write};
use std::process::Stdio;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::parse_streams::{CODEX_PARSE, fixture};
use crate::util::*;

/// The first `n` lines of a fixture stream.
fn head(stream: &str, n: usize) -> String {
    let text = fs::read_to_string(fixture(&format!("{stream}.out.jsonl"))).unwrap();
    text.lines().take(n).map(|l| format!("{l}\n")).collect()
}

fn line_of(stream: &str, needle: &str) -> usize {
    let text = fs::read_to_string(fixture(&format!("{stream}.out.jsonl"))).unwrap();
    text.lines()
        .position(|l| l.contains(needle))
        .expect("needle in stream")
        + 1
}

fn write(env: &Env, name: &str, content: &[u8]) -> String {
    let path = env.dir.path().join(name);
    fs::write(&path, content).unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn an_unanswered_approval_is_pending_and_stuck() {
    let env = Env::new();
    for (stream, needle, kind, command) in [
        (
            "0.47.0-mcp-server-approval-approve",
            "elicitation/create",
            "exec",
            "bash -lc 'touch approved.txt && echo touched'",
        ),
        (
            "0.169.0-app-server-approval-accept",
            "requestApproval",
            "exec",
            "/bin/bash -lc 'touch approved.txt && echo touched'",
        ),
    ] {
        let path = write(
            &env,
            "cut.jsonl",
            head(stream, line_of(stream, needle)).as_bytes(),
        );
        let out = env.run(CODEX_PARSE, &[&path, "--json"]).success();
        let summary = out.json();
        assert_eq!(
            summary["requests"][0]["status"], "waiting-approval",
            "{stream}"
        );
        let pending = &summary["pending_approvals"];
        assert_eq!(pending.as_array().unwrap().len(), 1, "{stream}: {pending}");
        assert_eq!(pending[0]["request_id"], "0");
        assert_eq!(pending[0]["kind"], kind);
        assert_eq!(pending[0]["command"], command);
        let stuck = env.run(CODEX_PARSE, &[&path, "--stuck"]);
        assert_eq!(stuck.code(), 1, "{stuck:?}");
        assert!(
            stuck.stdout.contains("stuck: waiting-approval"),
            "{stuck:?}"
        );
        let approvals = env.run(CODEX_PARSE, &[&path, "--approvals"]).success();
        assert!(
            approvals.stdout.contains("codex-send --approve 0"),
            "{approvals:?}"
        );
    }
    // The whole stream: answered, nothing stuck, exit 0.
    let whole = fixture("0.169.0-app-server-main.out.jsonl");
    assert_eq!(
        env.run(CODEX_PARSE, &[whole.to_str().unwrap(), "--stuck"])
            .code(),
        0
    );
}

#[test]
fn a_message_cut_off_before_its_final_event_comes_from_its_deltas() {
    let env = Env::new();
    let stream = "0.153.0-mcp-server-main";
    let cut = line_of(stream, r#""type":"agent_message","#) - 1;
    let path = write(&env, "cut.jsonl", head(stream, cut).as_bytes());
    let out = env
        .run(CODEX_PARSE, &[&path, "--messages", "--json"])
        .success();
    let messages = out.json();
    let last = messages.as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["request_id"], "2");
    assert_eq!(
        last["text"],
        "Done. I ran `echo hello && ls` and created hello.txt."
    );
    let summary = env.run(CODEX_PARSE, &[&path, "--json"]).success().json();
    assert_eq!(summary["requests"][0]["status"], "running");
}

#[test]
fn last_request_and_tokens_select_what_is_shown() {
    let env = Env::new();
    let path = fixture("0.153.0-mcp-server-main.out.jsonl");
    let path = path.to_str().unwrap();
    let last = env
        .run(CODEX_PARSE, &[path, "--last", "1", "--json"])
        .success()
        .json();
    let ids: Vec<&Value> = last["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["id"])
        .collect();
    assert_eq!(ids, [&json!("4")]);
    let one = env
        .run(CODEX_PARSE, &[path, "--request", "3", "--json"])
        .success()
        .json();
    assert_eq!(one["requests"][0]["final_message"], "Follow-up answer: 42.");
    let messages = env
        .run(CODEX_PARSE, &[path, "--messages", "--last", "2"])
        .success();
    assert_eq!(
        messages.stdout,
        "[3] Follow-up answer: 42.\n[4] The command failed with exit code 1.\n"
    );
    let tokens = env.run(CODEX_PARSE, &[path, "--tokens"]).success();
    assert!(
        tokens
            .stdout
            .contains("[2] tokens: 26995 in (13497 cached)"),
        "{tokens:?}"
    );
    let missing = env.run(CODEX_PARSE, &[path, "--request", "99"]);
    assert_eq!(missing.code(), 1, "{missing:?}");
    let reasoning = env.run(CODEX_PARSE, &[path, "--reasoning"]).success();
    assert!(reasoning.stdout.starts_with("[2] "), "{reasoning:?}");
}

#[test]
fn noise_bad_bytes_and_huge_lines_are_skipped_and_counted() {
    let env = Env::new();
    let mut stream = b"\x1b[2m2026-11-22T00:00:00Z\x1b[0m INFO codex starting\n".to_vec();
    stream.extend_from_slice(head("0.169.0-exec-json-main", 5).as_bytes());
    stream.extend_from_slice(b"this is not json\n\xff\xfe\x00 invalid utf-8\n");
    stream.extend_from_slice(
        b"{\"type\":\"item.completed\",\"item\":{\"type\":\"mystery\",\"id\":\"x\"}}\n",
    );
    stream.extend_from_slice(b"{\"type\":\"item.completed\",\"item\":{\"text\":\"\xff\xfe\",\"type\":\"agent_message\"}}\n");
    stream.extend_from_slice(b"[1,2,3]\n");
    let mut huge =
        b"{\"type\":\"item.completed\",\"item\":{\"type\":\"reasoning\",\"text\":\"".to_vec();
    huge.extend(std::iter::repeat_n(b'x', 8 << 20));
    huge.extend_from_slice(b"\"}}\n");
    stream.extend_from_slice(&huge);
    stream.extend_from_slice(
        head("0.169.0-exec-json-main", 10)
            .lines()
            .skip(5)
            .collect::<Vec<_>>()
            .join("\n")
            .as_bytes(),
    );
    stream.extend_from_slice(b"\n{\"type\":\"turn.started\"");
    let path = write(&env, "noisy.jsonl", &stream);
    let out = env.run(CODEX_PARSE, &[&path, "--json"]).success();
    let summary = out.json();
    // Banner, non-JSON, invalid UTF-8, bad UTF-8 inside a string, an array,
    // and the partial last line.
    assert_eq!(summary["skipped_lines"], 6, "{}", out.stdout.len());
    assert_eq!(summary["requests"][0]["status"], "completed");
    assert_eq!(
        summary["requests"][0]["final_message"],
        "Done. I ran `echo hello && ls` and created hello.txt."
    );

    // Arbitrary bytes: never a crash.
    let garbage: Vec<u8> = (0..200_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let path = write(&env, "garbage.bin", &garbage);
    let out = env.run(CODEX_PARSE, &[&path, "--json"]).success();
    assert!(out.json()["skipped_lines"].as_u64().unwrap() > 0);
}

#[test]
fn secrets_are_redacted_unless_asked() {
    let env = Env::new();
    let secret = "sk-proj-abcdefghijklmnopqrstuvwxyz0123";
    let lines = [
        json!({"type": "thread.started", "thread_id": "t1"}),
        json!({"type": "turn.started"}),
        json!({"type": "item.completed", "item": {"id": "item_0", "type": "command_execution",
            "command": "curl -H 'Authorization: Bearer abcdefghijkl0123456789' https://bob:hunter2@example.com",
            "aggregated_output": "", "exit_code": 0, "status": "completed"}}),
        json!({"type": "item.completed", "item": {"id": "item_1", "type": "agent_message",
            "text": format!("I set OPENAI_API_KEY={secret} and GITHUB_TOKEN=ghp_abcdefghijklmnopqrstuvwxyz0123456789")}}),
        json!({"type": "turn.completed", "usage": {"input_tokens": 1, "output_tokens": 1}}),
    ];
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    let path = write(&env, "secrets.jsonl", text.as_bytes());
    for args in [
        vec![path.as_str()],
        vec![path.as_str(), "--json"],
        vec![path.as_str(), "--messages"],
    ] {
        let out = env.run(CODEX_PARSE, &args).success();
        for leaked in [secret, "hunter2", "abcdefghijkl", "ghp_abc"] {
            assert!(
                !out.stdout.contains(leaked),
                "{args:?} leaked {leaked}: {}",
                out.stdout
            );
        }
        assert!(out.stdout.contains("[REDACTED]"), "{args:?}");
    }
    let json = env.run(CODEX_PARSE, &[&path, "--json"]).success().json();
    assert!(
        json["requests"][0]["final_message"]
            .as_str()
            .unwrap()
            .contains("OPENAI_API_KEY=[REDACTED]")
    );
    let raw = env.run(CODEX_PARSE, &[&path, "--no-redact"]).success();
    assert!(raw.stdout.contains(secret));
}

#[test]
#[cfg_attr(
    feature = "portable",
    ignore = "linux-only: expects --wait asleep in poll(2) on an inotify watch (/proc/<pid>/wchan)"
)]
fn wait_returns_when_the_request_ends_on_a_growing_stream() {
    let env = Env::new();
    let stream = "0.153.0-mcp-server-main";
    let all = fs::read_to_string(fixture(&format!("{stream}.out.jsonl"))).unwrap();
    let cut = line_of(stream, r#"{"jsonrpc":"2.0","id":2,"result""#) - 1;
    let path = env.dir.path().join("growing.jsonl");
    fs::write(&path, head(stream, cut)).unwrap();
    let mut command = env.cmd(CODEX_PARSE);
    command
        .args([path.to_str().unwrap(), "--wait", "2", "--timeout", "20s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut waiter = Guard::spawn(command);
    // Once it has read what is there and gone to sleep, it must still be
    // waiting: request 2 has no result yet.
    let pid = waiter.pid();
    poll(DEADLINE, || {
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let wchan = fs::read_to_string(format!("/proc/{pid}/wchan")).unwrap_or_default();
        (stat.rsplit_once(") ")?.1.starts_with('S') && wchan.contains("poll")).then_some(())
    })
    .expect("--wait never went to sleep");
    assert!(
        waiter.0.try_wait().unwrap().is_none(),
        "--wait returned before the request ended"
    );
    let mut file = fs::OpenOptions::new().append(true).open(&path).unwrap();
    let rest: String = all.lines().skip(cut).map(|l| format!("{l}\n")).collect();
    file.write_all(rest.as_bytes()).unwrap();
    let status =
        poll(DEADLINE, || waiter.0.try_wait().ok().flatten()).expect("--wait never returned");
    assert_eq!(status.code(), Some(0));

    let timeout = env.run(
        CODEX_PARSE,
        &[
            fixture("0.47.0-mcp-server-stall.out.jsonl")
                .to_str()
                .unwrap(),
            "--wait",
            "1",
            "--timeout",
            "0.3",
        ],
    );
    assert_eq!(
        timeout.code(),
        1,
        "an aborted request has ended: {timeout:?}"
    );
    let path = env.dir.path().join("open.jsonl");
    fs::write(&path, head(stream, 10)).unwrap();
    let timeout = env.run(
        CODEX_PARSE,
        &[path.to_str().unwrap(), "--wait", "2", "--timeout", "0.3"],
    );
    assert_eq!(timeout.code(), 124, "{timeout:?}");
}

#[test]
fn task_reads_a_sessions_output_and_follow_prints_events() {
    let env = Env::new();
    let stream = fixture("0.169.0-app-server-main.out.jsonl");
    let id = env.launch(&["cat", stream.to_str().unwrap()]);
    env.wait_state(&id, "exited");
    let summary = env
        .run(CODEX_PARSE, &["--task", &id, "--json"])
        .success()
        .json();
    assert_eq!(summary["protocol"], "app-server");
    assert_eq!(summary["requests"].as_array().unwrap().len(), 3);
    let follow = env.run(CODEX_PARSE, &["--task", &id, "--follow"]).success();
    assert!(follow.stdout.lines().count() > 20, "{follow:?}");
    assert!(follow.stdout.contains("turn/completed"), "{follow:?}");
    let unknown = env.run(CODEX_PARSE, &["--task", "abcdef12"]);
    assert_eq!(unknown.code(), 1, "{unknown:?}");
}

#[test]
fn bad_arguments_are_refused() {
    let env = Env::new();
    let stream = fixture("0.169.0-app-server-main.out.jsonl");
    let stream = stream.to_str().unwrap();
    for args in [
        vec![],
        vec![stream, "--protocol", "carrier-pigeon"],
        vec![stream, "--idle", "soon"],
        vec![stream, "--timeout", "3"],
        vec!["/no/such/file"],
        vec!["--task", "../x"],
    ] {
        let out = env.run(CODEX_PARSE, &args);
        assert_eq!(out.code(), 2, "{args:?}: {out:?}");
        assert!(out.stderr.starts_with("codex-parse: "), "{args:?}: {out:?}");
    }
    // A forced protocol that does not fit finds nothing, and says so plainly.
    let forced = env
        .run(CODEX_PARSE, &[stream, "--protocol", "exec", "--json"])
        .success();
    assert_eq!(forced.json()["requests"], json!([]));
}

/// A stream of mcp-server events built from (request id, thread, msg) triples.
fn mcp_events(events: &[(u64, &str, Value)]) -> String {
    events
        .iter()
        .map(|(id, thread, msg)| {
            let line = if msg.get("result").is_some() {
                json!({"jsonrpc": "2.0", "id": id, "result": msg["result"]})
            } else {
                json!({"jsonrpc": "2.0", "method": "codex/event",
                    "params": {"_meta": {"requestId": id, "threadId": thread}, "id": "", "msg": msg}})
            };
            format!("{line}\n")
        })
        .collect()
}

#[test]
fn reused_ids_deltas_and_cut_lines_are_read_right() {
    let env = Env::new();
    let result = |thread: &str, text: &str| json!({"result": {"structuredContent": {"threadId": thread, "content": text}, "content": [{"type": "text", "text": text}]}});
    // Two sessions under one id, interleaved, each answered in turn.
    let stream = mcp_events(&[
        (2, "A", json!({"type": "task_started", "turn_id": "ta"})),
        (2, "B", json!({"type": "task_started", "turn_id": "tb"})),
        (
            2,
            "B",
            json!({"type": "agent_message", "message": "from B"}),
        ),
        (
            2,
            "A",
            json!({"type": "agent_message", "message": "from A"}),
        ),
        (
            2,
            "B",
            json!({"type": "task_complete", "last_agent_message": "from B"}),
        ),
        (2, "B", result("B", "from B")),
        (
            2,
            "A",
            json!({"type": "task_complete", "last_agent_message": "from A"}),
        ),
        (2, "A", result("A", "from A")),
    ]);
    let path = write(&env, "dup.jsonl", stream.as_bytes());
    let summary = env.run(CODEX_PARSE, &[&path, "--json"]).success().json();
    let seen: Vec<(Value, Value, Value)> = summary["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["thread_id"].clone(),
                r["status"].clone(),
                r["final_message"].clone(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            (json!("A"), json!("completed"), json!("from A")),
            (json!("B"), json!("completed"), json!("from B")),
        ]
    );

    // Deltas under both names (0.57 to 0.116) are not doubled; a token
    // count cut off at the end of the stream does not hide the last whole one.
    let tokens = |n: u64| json!({"type": "token_count", "info": {"total_token_usage": {"input_tokens": n, "output_tokens": 1}}});
    let mut stream = mcp_events(&[
        (3, "C", json!({"type": "task_started"})),
        (
            3,
            "C",
            json!({"type": "agent_message_delta", "delta": "Hel"}),
        ),
        (
            3,
            "C",
            json!({"type": "agent_message_content_delta", "delta": "Hel"}),
        ),
        (
            3,
            "C",
            json!({"type": "agent_message_delta", "delta": "lo"}),
        ),
        (
            3,
            "C",
            json!({"type": "agent_message_content_delta", "delta": "lo"}),
        ),
        (3, "C", tokens(100)),
    ]);
    let cut = mcp_events(&[(3, "C", tokens(200))]);
    stream.push_str(&cut[..cut.len() / 2]);
    let path = write(&env, "deltas.jsonl", stream.as_bytes());
    let summary = env.run(CODEX_PARSE, &[&path, "--json"]).success().json();
    let request = &summary["requests"][0];
    assert_eq!(request["final_message"], "Hello");
    assert_eq!(request["tokens"]["input"], 100);
    assert_eq!(summary["skipped_lines"], 1);
}

#[test]
fn declined_patches_change_nothing_and_denials_settle_approvals() {
    let env = Env::new();
    let stream = "0.169.0-app-server-approval-accept";
    let text = fs::read_to_string(fixture(&format!("{stream}.out.jsonl"))).unwrap();
    let declined: String = text
        .lines()
        .map(|l| {
            if l.contains("\"fileChange\"") && l.contains("item/completed") {
                l.replace("\"status\":\"completed\"", "\"status\":\"declined\"")
            } else {
                l.to_string()
            }
        })
        .map(|l| l + "\n")
        .collect();
    let path = write(&env, "declined.jsonl", declined.as_bytes());
    let summary = env.run(CODEX_PARSE, &[&path, "--json"]).success().json();
    assert_eq!(summary["requests"][0]["files"], json!([]));

    // 0.153: once Codex goes on after a denied command, nothing is pending,
    // though the denial left no begin or end behind.
    let stream = "0.153.0-mcp-server-approval-deny-struct";
    let cut = line_of(stream, "patch_apply_begin");
    let path = write(&env, "denied.jsonl", head(stream, cut).as_bytes());
    let summary = env.run(CODEX_PARSE, &[&path, "--json"]).success().json();
    assert_eq!(summary["pending_approvals"], json!([]), "{summary}");
}

#[test]
fn wait_on_stdin_keeps_its_timeout_and_inputs_must_exist() {
    let env = Env::new();
    let mut command = env.cmd(CODEX_PARSE);
    command
        .args(["-", "--wait", "2", "--timeout", "0.5"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut waiter = Guard::spawn(command);
    // stdin stays open and silent: the timeout must still end the wait.
    let _stdin = waiter.0.stdin.take();
    let status =
        poll(DEADLINE, || waiter.0.try_wait().ok().flatten()).expect("--wait ignored its timeout");
    assert_eq!(status.code(), Some(124));

    let stream = fixture("0.169.0-app-server-main.out.jsonl");
    let missing = env.run(
        CODEX_PARSE,
        &[stream.to_str().unwrap(), "--input", "/no/such/input"],
    );
    assert_eq!(missing.code(), 2, "{missing:?}");
    assert!(missing.stderr.contains("/no/such/input"), "{missing:?}");
}

#[test]
fn a_long_message_is_redacted_before_it_is_shortened() {
    let env = Env::new();
    let secret = "sk-proj-A1b2C3d4E5f6G7h8I9j0K1l2M3n4";
    let message = format!("{} {secret} and DB_PASSWORD=\"hunter2\"", "x".repeat(380));
    let stream = mcp_events(&[
        (2, "T", json!({"type": "task_started"})),
        (2, "T", json!({"type": "agent_message", "message": message})),
    ]);
    let path = write(&env, "long.jsonl", stream.as_bytes());
    let out = env.run(CODEX_PARSE, &[&path]).success();
    assert!(!out.stdout.contains("sk-proj-A1b2"), "{}", out.stdout);
    let messages = env.run(CODEX_PARSE, &[&path, "--messages"]).success();
    assert!(!messages.stdout.contains("hunter2"), "{}", messages.stdout);
    assert!(!messages.stdout.contains("A1b2C3"), "{}", messages.stdout);
}

#[test]
fn retries_show_until_progress_comes() {
    let env = Env::new();
    let line =
        |method: &str, params: Value| format!("{}\n", json!({"method": method, "params": params}));
    let turn = json!({"threadId": "T", "turnId": "U"});
    let mut stream = line(
        "turn/started",
        json!({"threadId": "T", "turn": {"id": "U"}}),
    );
    stream.push_str(&line(
        "error",
        json!({"threadId": "T", "turnId": "U", "willRetry": true,
            "error": {"message": "Reconnecting... 1/5"}}),
    ));
    let path = write(&env, "retrying.jsonl", stream.as_bytes());
    let stuck = env.run(CODEX_PARSE, &[&path, "--stuck", "--json"]);
    assert_eq!(stuck.code(), 1, "{stuck:?}");
    assert_eq!(stuck.json()[0]["reason"], "retrying");

    // Output arriving afterwards (a noise line, never fully parsed) is progress.
    let mut delta = turn.clone();
    delta["delta"] = json!("compiling...\n");
    stream.push_str(&line("item/commandExecution/outputDelta", delta));
    let path = write(&env, "progress.jsonl", stream.as_bytes());
    let stuck = env.run(CODEX_PARSE, &[&path, "--stuck", "--json"]);
    assert_eq!(stuck.code(), 0, "{stuck:?}");
}

#[test]
fn a_last_line_without_its_newline_still_ends_a_wait() {
    let env = Env::new();
    let stream = "0.153.0-mcp-server-main";
    let upto = line_of(stream, r#"{"jsonrpc":"2.0","id":2,"result""#);
    let text = head(stream, upto);
    let path = write(&env, "no-newline.jsonl", text.trim_end().as_bytes());
    let out = env.run(CODEX_PARSE, &[&path, "--wait", "2", "--timeout", "5"]);
    assert_eq!(out.code(), 0, "{out:?}");
    assert!(out.elapsed < std::time::Duration::from_secs(4), "{out:?}");
}

#[test]
fn app_server_silence_is_measured_by_emitted_at_ms() {
    let env = Env::new();
    let ten_minutes_ago = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
        - 600_000;
    let stream = format!(
        "{}\n",
        json!({"method": "turn/started", "emittedAtMs": ten_minutes_ago,
            "params": {"threadId": "T", "turn": {"id": "U"}}})
    );
    let mut command = env.cmd(CODEX_PARSE);
    command
        .args(["-", "--stuck", "--idle", "1m", "--json"])
        .stdin(Stdio::piped());
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = Guard::spawn(command);
    let mut stdin = child.0.stdin.take().unwrap();
    stdin.write_all(stream.as_bytes()).unwrap();
    drop(stdin);
    let status = poll(DEADLINE, || child.0.try_wait().ok().flatten()).expect("still running");
    let mut out = String::new();
    child
        .0
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert_eq!(status.code(), Some(1), "{out}");
    let stuck: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(stuck[0]["reason"], "silent", "{out}");
    assert_eq!(stuck[0]["request_id"], "U");
}
