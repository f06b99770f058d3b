//! codex-parse over every real captured stream (tests/fixtures/codex, copied
//! from the captures of the real Codex binaries): the statuses, messages,
//! commands, files, tokens, approvals and stuck signals each one contains,
//! read off the streams by hand.

use std::path::PathBuf;

use serde_json::{Value, json};

use crate::util::*;

pub const CODEX_PARSE: &str = env!("CARGO_BIN_EXE_codex-parse");

pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/codex")
        .join(name)
}

/// `codex-parse STREAM.out.jsonl --input STREAM.in.jsonl --json [ARGS]`.
pub fn parse(stream: &str, args: &[&str]) -> Value {
    let env = Env::new();
    let out = fixture(&format!("{stream}.out.jsonl"));
    let input = fixture(&format!("{stream}.in.jsonl"));
    let mut all = vec![out.to_str().unwrap(), "--json"];
    if input.exists() {
        all.extend(["--input", input.to_str().unwrap()]);
    }
    all.extend(args);
    env.run(CODEX_PARSE, &all).json()
}

/// The fields a test compares, in a fixed shape.
fn brief(request: &Value) -> Value {
    let commands: Vec<Value> = request["commands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| json!([c["command"], c["exit_code"], c["status"]]))
        .collect();
    let files: Vec<Value> = request["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| json!([f["path"], f["kind"]]))
        .collect();
    let tokens = &request["tokens"];
    json!({
        "id": request["id"],
        "status": request["status"],
        "thread": request["thread_id"],
        "message": request["final_message"],
        "commands": commands,
        "files": files,
        "tokens": if tokens.is_null() { Value::Null } else {
            json!([tokens["input"], tokens["cached_input"], tokens["output"], tokens["reasoning_output"]])
        },
    })
}

fn requests(summary: &Value) -> Vec<Value> {
    summary["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(brief)
        .collect()
}

fn reasons(summary: &Value) -> Vec<(String, String)> {
    summary["stuck"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["reason"].as_str().unwrap().to_string(),
                s["request_id"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

const HELLO: &str = "Done. I ran `echo hello && ls` and created hello.txt.";
const FAILED: &str = "The command failed with exit code 1.";
const FAIL_CMD: &str = "echo about to fail; ls /nonexistent-mock-dir; exit 1";

#[test]
fn mcp_server_047_main() {
    let summary = parse("0.47.0-mcp-server-main", &[]);
    assert_eq!(summary["protocol"], "mcp-server");
    let thread = "01a2001d-efc0-7b62-867a-8d2c29234fcc";
    assert_eq!(
        requests(&summary),
        vec![
            json!({"id": "2", "status": "completed", "thread": thread, "message": HELLO,
                "commands": [["bash -lc 'echo hello && ls'", 0, "completed"]],
                "files": [["/home/dev/project/hello.txt", "add"]], "tokens": [12329, 6164, 76, 21]}),
            // The reply's thread is named only in the input; its tokens are
            // its own (0.47 first repeats the thread's previous total).
            json!({"id": "3", "status": "completed", "thread": thread, "message": "Follow-up answer: 42.",
                "commands": [], "files": [], "tokens": [4304, 2152, 22, 7]}),
            json!({"id": "4", "status": "completed", "thread": "01a2001d-f15d-7831-a703-3d938ba3f619",
                "message": FAILED, "commands": [[format!("bash -lc '{FAIL_CMD}'"), 1, "failed"]],
                "files": [], "tokens": [8104, 4052, 49, 14]}),
        ]
    );
    assert_eq!(summary["pending_approvals"], json!([]));
    assert_eq!(summary["stuck"], json!([]));
    assert_eq!(summary["skipped_lines"], 0);
}

#[test]
fn mcp_server_0153_main() {
    let summary = parse("0.153.0-mcp-server-main", &[]);
    let thread = "01a20022-b336-7c41-b68e-4cb8583792ba";
    assert_eq!(
        requests(&summary),
        vec![
            json!({"id": "2", "status": "completed", "thread": thread, "message": HELLO,
                "commands": [["/bin/bash -lc 'echo hello && ls'", 0, "completed"]],
                "files": [["/home/dev/project/hello.txt", "add"]], "tokens": [26995, 13497, 76, 21]}),
            json!({"id": "3", "status": "completed", "thread": thread, "message": "Follow-up answer: 42.",
                "commands": [], "files": [], "tokens": [9239, 4619, 22, 7]}),
            json!({"id": "4", "status": "completed", "thread": "01a20022-b5bf-78b0-af6f-9796663efb1c",
                "message": FAILED, "commands": [[format!("/bin/bash -lc '{FAIL_CMD}'"), 1, "failed"]],
                "files": [], "tokens": [17852, 8926, 49, 14]}),
        ]
    );
    assert_eq!(summary["requests"][0]["duration_ms"], 533);
    assert_eq!(summary["stuck"], json!([]));
}

#[test]
fn mcp_server_approvals_answered_are_not_pending() {
    let approved = parse("0.47.0-mcp-server-approval-approve", &[]);
    let request = &approved["requests"][0];
    assert_eq!(request["status"], "completed");
    assert_eq!(
        brief(request)["commands"],
        json!([[
            "bash -lc 'touch approved.txt && echo touched'",
            0,
            "completed"
        ]])
    );
    assert_eq!(
        brief(request)["files"],
        json!([["/home/dev/project/approved_patch.txt", "add"]])
    );
    assert_eq!(approved["pending_approvals"], json!([]));

    // A denied command never runs and a declined patch changes nothing.
    let denied = parse("0.153.0-mcp-server-approval-deny-struct", &[]);
    let request = &denied["requests"][0];
    assert_eq!(request["status"], "completed");
    assert_eq!(request["commands"], json!([]));
    assert_eq!(request["files"], json!([]));
    assert_eq!(brief(request)["tokens"], json!([29689, 14843, 66, 21]));
    assert_eq!(denied["pending_approvals"], json!([]));
    assert_eq!(denied["stuck"], json!([]));
}

#[test]
fn mcp_server_errors_and_duplicate_ids() {
    let summary = parse("0.47.0-mcp-server-errors", &[]);
    let briefs = requests(&summary);
    let ids: Vec<&str> = briefs.iter().map(|b| b["id"].as_str().unwrap()).collect();
    // Two sessions under one id 3 stay two requests; 5-9 failed at once.
    assert_eq!(ids, ["3", "3", "5", "6", "7", "8", "9"]);
    assert_eq!(briefs[0]["thread"], "01a20022-54e0-7df3-96b1-aa11413c0e9f");
    assert_eq!(briefs[1]["thread"], "01a20022-54df-7721-82d7-88e94877257b");
    for brief in &briefs[..2] {
        assert_eq!(brief["status"], "completed");
        assert_eq!(brief["message"], "Follow-up answer: 42.");
    }
    let errors: Vec<&Value> = summary["requests"].as_array().unwrap()[2..]
        .iter()
        .map(|r| {
            assert_eq!(r["status"], "failed");
            &r["errors"][0]
        })
        .collect();
    assert_eq!(errors[0], "Unknown tool 'no-such-tool'");
    assert_eq!(
        errors[3],
        "Session not found for conversation_id: 00000000-0000-0000-0000-000000000000"
    );
    let stuck = reasons(&summary);
    assert!(
        stuck.contains(&("unanswered".into(), "4".into())),
        "{stuck:?}"
    );
    assert!(
        stuck.contains(&("unanswered".into(), "10".into())),
        "{stuck:?}"
    );
}

#[test]
fn mcp_server_stall_is_aborted_and_never_answered() {
    let summary = parse("0.47.0-mcp-server-stall", &[]);
    let request = brief(&summary["requests"][0]);
    assert_eq!(request["status"], "interrupted");
    assert_eq!(request["message"], Value::Null);
    assert_eq!(request["tokens"], Value::Null);
    assert_eq!(
        reasons(&summary),
        vec![("aborted".to_string(), "1".to_string())]
    );
}

#[test]
fn mcp_server_http400_loses_the_follow_up() {
    let summary = parse("0.153.0-mcp-server-http400", &[]);
    let first = &summary["requests"][0];
    assert_eq!(first["status"], "failed");
    assert!(
        first["errors"][0]
            .as_str()
            .unwrap()
            .contains("mock: bad request for testing")
    );
    assert_eq!(first["tokens"], Value::Null);
    assert_eq!(summary["requests"][1]["status"], "failed");
    assert_eq!(
        reasons(&summary),
        vec![
            ("failed".into(), "1".into()),
            ("lost-follow-up".into(), "2".into())
        ]
    );
}

/// Statuses and final messages of a summary's requests, in order.
fn outcomes(summary: &Value) -> Vec<(String, String, Value)> {
    summary["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let id = r["id"].as_str().unwrap().to_string();
            (
                id,
                r["status"].as_str().unwrap().to_string(),
                r["final_message"].clone(),
            )
        })
        .collect()
}

/// After an interrupt (or a cancelled approval), mcp-server labels the
/// next turn with the aborted request (0.47 all of it, 0.153 its start and
/// the last turn too) and answers it there: each turn goes to the prompt
/// whose turn it is, in the order the input feed sent them.
#[test]
fn mcp_server_turns_after_an_abort_go_to_their_prompts() {
    let answer = json!("The follow-up answer is 42.");
    for stream in [
        "0.47.0-mcp-server-interrupt-prompts",
        "0.47.0-mcp-server-cancel-prompts",
        "0.153.0-mcp-server-interrupt-prompts",
    ] {
        let summary = parse(stream, &[]);
        assert_eq!(
            outcomes(&summary),
            vec![
                ("1".into(), "interrupted".into(), Value::Null),
                ("2".into(), "completed".into(), answer.clone()),
                ("3".into(), "completed".into(), answer.clone()),
            ],
            "{stream}"
        );
        assert_eq!(
            reasons(&summary),
            Vec::<(String, String)>::new(),
            "{stream}"
        );
    }
}

/// 0.153 repeats each turn's prompt: a prompt that never got a turn of its
/// own (one Codex took into a running turn, here written into the feed
/// between two that did) does not shift the turns after it.
#[test]
fn mcp_server_0_153_turns_after_an_abort_go_by_their_prompt_text() {
    let env = Env::new();
    let input =
        std::fs::read_to_string(fixture("0.153.0-mcp-server-interrupt-prompts.in.jsonl")).unwrap();
    let thread = "01a248a9-e142-7763-b09a-a331bc6a5dfe";
    let taken = json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": {
        "name": "codex-reply", "arguments": {"threadId": thread, "prompt": "Taken in."}}});
    let mut lines: Vec<String> = input.lines().map(str::to_string).collect();
    let third = lines.iter().position(|l| l.contains("Once more.")).unwrap();
    lines.insert(third, taken.to_string());
    let feed = env.dir.path().join("in.jsonl");
    std::fs::write(&feed, lines.join("\n") + "\n").unwrap();
    let out = fixture("0.153.0-mcp-server-interrupt-prompts.out.jsonl");
    let summary = env
        .run(
            CODEX_PARSE,
            &[
                out.to_str().unwrap(),
                "--input",
                feed.to_str().unwrap(),
                "--json",
                "--idle",
                "1h",
            ],
        )
        .json();
    let answer = json!("The follow-up answer is 42.");
    let mut outcomes = outcomes(&summary);
    outcomes.sort_by_key(|(id, _, _)| id.parse::<u32>().unwrap());
    assert_eq!(
        outcomes,
        [
            ("1".into(), "interrupted".into(), Value::Null),
            ("2".into(), "completed".into(), answer.clone()),
            ("3".into(), "completed".into(), answer),
            ("9".into(), "running".into(), Value::Null),
        ],
        "{summary}"
    );
}

/// Without the input feed a turn under a request whose own turn is over
/// has no prompt to go to: it is left out, and said so.
#[test]
fn mcp_server_turns_after_an_abort_without_the_input_are_reported() {
    let env = Env::new();
    let out = fixture("0.47.0-mcp-server-interrupt-prompts.out.jsonl");
    let summary = env
        .run(
            CODEX_PARSE,
            &[out.to_str().unwrap(), "--json", "--idle", "1h"],
        )
        .json();
    let first = &outcomes(&summary)[0];
    assert_eq!(first.1, "interrupted", "{summary}");
    assert_eq!(first.2, Value::Null, "{summary}");
    assert!(
        reasons(&summary).contains(&("misattributed".into(), "1".into())),
        "{summary}"
    );
}

/// 0.47 after a failed turn: the reply is answered with the failed turn's
/// completion (no turn id says so; the order does), and its own turn comes
/// under the next request, which is then the lost one.
#[test]
fn mcp_server_0_47_replies_after_a_failed_turn_are_one_behind() {
    let summary = parse("0.47.0-mcp-server-http500-prompts", &[]);
    let outcomes = outcomes(&summary);
    assert_eq!(outcomes[0].1, "failed");
    assert_eq!(
        outcomes[1],
        (
            "2".into(),
            "completed".into(),
            json!("The follow-up answer is 42.")
        )
    );
    assert_eq!(outcomes[2].1, "failed");
    assert_eq!(
        reasons(&summary),
        vec![("lost-follow-up".to_string(), "3".to_string())]
    );
}

#[test]
fn app_server_main_and_approvals() {
    let summary = parse("0.169.0-app-server-main", &[]);
    assert_eq!(summary["protocol"], "app-server");
    let thread = "01a20027-4944-7b92-ad87-c62c1c3d2fa4";
    assert_eq!(
        requests(&summary),
        vec![
            json!({"id": "01a20027-495e-7eb3-b549-f77c0c2a63b3", "status": "completed", "thread": thread,
                "message": HELLO, "commands": [["/bin/bash -lc 'echo hello && ls'", 0, "completed"]],
                "files": [["/home/dev/project/hello.txt", "add"]], "tokens": [29367, 14683, 76, 21]}),
            json!({"id": "01a20027-4b24-75d1-9db4-222eb77e1e9d", "status": "completed", "thread": thread,
                "message": "Follow-up answer: 42.", "commands": [], "files": [], "tokens": [10042, 5021, 22, 7]}),
            json!({"id": "01a20027-4b5a-7990-8624-90d751fe799c", "status": "completed", "thread": thread,
                "message": FAILED, "commands": [[format!("/bin/bash -lc '{FAIL_CMD}'"), 1, "failed"]],
                "files": [], "tokens": [20440, 10219, 49, 14]}),
        ]
    );
    assert_eq!(summary["stuck"], json!([]));

    let accepted = parse("0.169.0-app-server-approval-accept", &[]);
    let request = brief(&accepted["requests"][0]);
    assert_eq!(request["status"], "completed");
    // Accepted, but run inside the read-only sandbox: it failed.
    assert_eq!(
        request["commands"],
        json!([[
            "/bin/bash -lc 'touch approved.txt && echo touched'",
            1,
            "failed"
        ]])
    );
    assert_eq!(
        request["files"],
        json!([["/home/dev/project/approved_patch.txt", "add"]])
    );
    assert_eq!(request["tokens"], json!([29370, 14684, 66, 21]));
    assert_eq!(accepted["pending_approvals"], json!([]));
}

#[test]
fn app_server_errors_and_stall() {
    let summary = parse("0.169.0-app-server-errors", &[]);
    let briefs = requests(&summary);
    assert_eq!(briefs.len(), 2, "{briefs:?}");
    for (brief, tokens) in briefs
        .iter()
        .zip([[9668, 4834, 22, 7], [9806, 4903, 22, 7]])
    {
        assert_eq!(brief["status"], "completed");
        assert_eq!(brief["message"], "Follow-up answer: 42.");
        assert_eq!(brief["tokens"], json!(tokens));
    }
    assert_eq!(summary["stuck"], json!([]));

    let stall = parse("0.169.0-app-server-stall", &[]);
    let turn = &stall["requests"][0];
    assert_eq!(turn["status"], "interrupted");
    assert_eq!(turn["duration_ms"], 20051);
    assert_eq!(
        reasons(&stall),
        vec![(
            "interrupted".into(),
            "01a20027-a90d-7752-9af0-a5886700bbab".into()
        )]
    );
}

#[test]
fn exec_json_current_and_legacy() {
    let main = parse("0.169.0-exec-json-main", &[]);
    assert_eq!(main["protocol"], "exec-json");
    assert_eq!(
        requests(&main),
        vec![
            json!({"id": "turn-1", "status": "completed", "thread": "01a20029-406f-7e11-b73c-f46d8f19504c",
            "message": HELLO, "commands": [["/bin/bash -lc 'echo hello && ls'", 0, "completed"]],
            "files": [["/home/dev/project/hello.txt", "add"]], "tokens": [29404, 14701, 76, 21]})
        ]
    );
    let fail = parse("0.169.0-exec-json-fail", &[]);
    let turn = brief(&fail["requests"][0]);
    assert_eq!(turn["status"], "completed");
    assert_eq!(
        turn["commands"],
        json!([[format!("/bin/bash -lc '{FAIL_CMD}'"), 1, "failed"]])
    );
    assert_eq!(turn["tokens"], json!([19456, 9727, 49, 14]));

    let old = parse("0.47.0-exec-json-main", &[]);
    assert_eq!(
        brief(&old["requests"][0])["tokens"],
        json!([12329, 6164, 76, 0])
    );

    let legacy = parse("0.42.0-exec-json-fail", &[]);
    assert_eq!(legacy["protocol"], "exec-legacy");
    assert_eq!(
        requests(&legacy),
        vec![
            json!({"id": "turn-1", "status": "completed", "thread": null, "message": FAILED,
            "commands": [[format!("bash -lc '{FAIL_CMD}'"), 1, "failed"]], "files": [],
            "tokens": [6438, 3219, 49, 14]})
        ]
    );
    assert_eq!(legacy["stuck"], json!([]));
}

/// exec --json has no version: a release that renames its events must not
/// get a confident, empty summary. The real 0.169 stream with its event
/// types renamed (as 0.144 once did) is said to be of an unknown format,
/// with counts, on stderr, in `--json` and atop the text; the real stream
/// is not; nor is a stream of no Codex format given a summary unsaid.
#[test]
fn an_exec_stream_of_unknown_kinds_is_said_to_be_unknown() {
    let env = Env::new();
    let real = fixture("0.169.0-exec-json-main.out.jsonl");
    let text = std::fs::read_to_string(&real).expect("the fixture");
    let renamed = [
        "turn.started",
        "item.started",
        "item.completed",
        "turn.completed",
    ]
    .iter()
    .fold(text, |text, kind| {
        text.replace(&format!("\"{kind}\""), &format!("\"{kind}.v2\""))
    });
    let drifted = env.dir.path().join("drifted.jsonl");
    std::fs::write(&drifted, renamed).expect("writing the stream");
    let drifted = drifted.to_str().unwrap();

    let out = env.run(CODEX_PARSE, &[drifted, "--json"]).success();
    let unknown = &out.json()["unknown_format"];
    let (lines, unknown_lines) = (unknown["lines"].as_u64(), unknown["unknown_lines"].as_u64());
    assert!(unknown_lines > lines.map(|l| l / 2), "{unknown}");
    assert!(
        unknown["kinds"]["item.completed.v2"].as_u64() > Some(0),
        "{unknown}"
    );
    assert!(
        out.stderr.starts_with("codex-parse: warning: ") && out.stderr.contains("does not know"),
        "{out:?}"
    );
    let text = env.run(CODEX_PARSE, &[drifted]).success();
    assert!(
        text.stdout
            .lines()
            .nth(1)
            .unwrap_or("")
            .starts_with("warning: "),
        "{text:?}"
    );

    let fine = env
        .run(CODEX_PARSE, &[real.to_str().unwrap(), "--json"])
        .success();
    assert!(fine.json().get("unknown_format").is_none(), "{fine:?}");
    assert!(fine.stderr.is_empty(), "{fine:?}");

    let strange = env.dir.path().join("strange.jsonl");
    let lines: String = (0..6)
        .map(|i| format!("{{\"event\":\"tick\",\"n\":{i}}}\n"))
        .collect();
    std::fs::write(&strange, lines).expect("writing the stream");
    let out = env
        .run(CODEX_PARSE, &[strange.to_str().unwrap(), "--json"])
        .success();
    let summary = out.json();
    assert!(summary["protocol"].is_null(), "{summary}");
    assert_eq!(summary["unknown_format"]["unknown_lines"], 6, "{summary}");
}
