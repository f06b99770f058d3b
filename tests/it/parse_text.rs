//! codex-parse on the text models really write: secrets and test summaries
//! inside accented words, CJK, emoji, curly quotes and dashes, in every
//! protocol. Redaction and test counting check word boundaries by hand
//! there (the regex engine's fast paths cannot), so these are the cases
//! that break first.

use std::fs;

use serde_json::{Value, json};

use crate::parse_streams::CODEX_PARSE;
use crate::util::*;

/// Messages with a secret each, and what the summary must show of them.
const SECRETS: [(&str, &str); 6] = [
    (
        "密钥：sk-proj-Zq8xLm2Pw9Rt4Yv7Nb3Kc6Hd1Fg5Js0A。请妥善保管。",
        "密钥：[REDACTED]。请妥善保管。",
    ),
    (
        "Here 🔑sk-proj-Zq8xLm2Pw9Rt4Yv7Nb3Kc6Hd1Fg5Js0A ✅ done",
        "Here 🔑[REDACTED] ✅ done",
    ),
    (
        "La clé « AKIAZQ8XLM2PW9RT4YV7 » est révoquée.",
        "La clé « [REDACTED] » est révoquée.",
    ),
    (
        "Café prêt — export OPENAI_API_KEY=Zq8xLm2Pw9Rt4Yv7 — à toi",
        "Café prêt — export OPENAI_API_KEY=[REDACTED] — à toi",
    ),
    (
        "Größe geprüft — naïve token: Zq8xLm2Pw9Rt4Yv7 überall ersetzt",
        "Größe geprüft — naïve token: [REDACTED] überall ersetzt",
    ),
    (
        "日本語のメモ：Authorization: Bearer Zq8xLm2Pw9Rt4Yv7Nb3Kc6 😅",
        "日本語のメモ：Authorization: Bearer [REDACTED] 😅",
    ),
];
const LEAKS: [&str; 3] = ["Zq8xLm2Pw9Rt4Yv7", "AKIAZQ8X", "sk-proj-Zq8"];

/// A command output with a test summary after non-ASCII text, its runner
/// and the counts it shows.
const OUTPUTS: [(&str, u64, u64); 4] = [
    (
        "test tests::größe_prüfen ... ok\ntest tests::emoji_🎉 ... ok\n\ntest result: ok. 12 passed; 0 failed; 0 ignored\n",
        12,
        0,
    ),
    (
        "Prüfung läuft… 日本語のテスト — «fin»\n===== 1 failed, 12 passed in 0.31s (0:00:00) — Prüfung ✅ =====\n",
        12,
        1,
    ),
    (
        "Résumé des tests 🚀\nTests:       2 failed, 12 passed, 14 total\n",
        12,
        2,
    ),
    (
        "=== RUN   TestÜber\n--- PASS: TestÜber (0.00s)\n=== RUN   Test日本\n--- FAIL: Test日本 (0.00s)\n",
        1,
        1,
    ),
];

fn write(env: &Env, name: &str, lines: &[Value]) -> String {
    let path = env.dir.path().join(name);
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

/// An mcp-server stream in the 0.47 shape: one request per message, its
/// text streamed in deltas of a few characters (the final event comes only
/// for the odd ones: the others are assembled from their deltas), and one
/// command per output.
fn mcp_stream(env: &Env, messages: &[&str], outputs: &[&str]) -> String {
    let event = |id: usize, msg: Value| {
        json!({"jsonrpc": "2.0", "method": "codex/event",
               "params": {"_meta": {"requestId": id + 2}, "id": "", "msg": msg}})
    };
    let mut lines = Vec::new();
    for (n, message) in messages.iter().enumerate() {
        lines.push(event(n, json!({"type": "task_started"})));
        if let Some(output) = outputs.get(n) {
            let call = json!({"type": "exec_command_end", "call_id": format!("c{n}"),
                "stdout": output, "stderr": "", "aggregated_output": output, "exit_code": 0,
                "duration": {"secs": 0, "nanos": 1}, "formatted_output": output});
            lines.push(event(n, call));
        }
        let chars: Vec<char> = message.chars().collect();
        for piece in chars.chunks(3) {
            let delta: String = piece.iter().collect();
            lines.push(event(
                n,
                json!({"type": "agent_message_delta", "delta": delta}),
            ));
        }
        if n % 2 == 1 {
            lines.push(event(
                n,
                json!({"type": "agent_message", "message": message}),
            ));
        }
        lines.push(event(
            n,
            json!({"type": "task_complete", "last_agent_message": null}),
        ));
    }
    write(env, "mcp.jsonl", &lines)
}

/// The same in an app-server stream, one turn per message.
fn app_stream(env: &Env, messages: &[&str], outputs: &[&str]) -> String {
    let mut lines = Vec::new();
    for (n, message) in messages.iter().enumerate() {
        let turn = format!("turn-{n}");
        let note = |method: &str, params: Value| {
            let mut params = params;
            params["threadId"] = json!("thread-1");
            params["turnId"] = json!(turn);
            json!({"method": method, "params": params})
        };
        lines.push(note(
            "turn/started",
            json!({"turn": {"id": turn, "status": "inProgress"}}),
        ));
        if let Some(output) = outputs.get(n) {
            let item = json!({"type": "commandExecution", "id": format!("c{n}"),
                "command": "cargo test", "status": "completed", "aggregatedOutput": output,
                "exitCode": 0});
            lines.push(note("item/completed", json!({"item": item})));
        }
        let item = json!({"type": "agentMessage", "id": format!("m{n}"), "text": message});
        lines.push(note("item/completed", json!({"item": item})));
        let done = json!({"turn": {"id": turn, "status": "completed", "items": []}});
        lines.push(note("turn/completed", done));
    }
    write(env, "app.jsonl", &lines)
}

/// The same in an exec --json stream.
fn exec_stream(env: &Env, messages: &[&str], outputs: &[&str]) -> String {
    let mut lines = vec![json!({"type": "thread.started", "thread_id": "t1"})];
    for (n, message) in messages.iter().enumerate() {
        lines.push(json!({"type": "turn.started"}));
        if let Some(output) = outputs.get(n) {
            lines.push(
                json!({"type": "item.completed", "item": {"id": format!("item_{n}"),
                "type": "command_execution", "command": "cargo test",
                "aggregated_output": output, "exit_code": 0, "status": "completed"}}),
            );
        }
        lines.push(
            json!({"type": "item.completed", "item": {"id": format!("msg_{n}"),
            "type": "agent_message", "text": message}}),
        );
        lines.push(
            json!({"type": "turn.completed", "usage": {"input_tokens": 1, "output_tokens": 1}}),
        );
    }
    write(env, "exec.jsonl", &lines)
}

type Stream = fn(&Env, &[&str], &[&str]) -> String;
const STREAMS: [(&str, Stream); 3] = [
    ("mcp-server", mcp_stream),
    ("app-server", app_stream),
    ("exec-json", exec_stream),
];

#[test]
fn secrets_inside_non_ascii_text_are_redacted_in_every_protocol() {
    let env = Env::new();
    let messages: Vec<&str> = SECRETS.iter().map(|(message, _)| *message).collect();
    for (protocol, stream) in STREAMS {
        let path = stream(&env, &messages, &[]);
        let summary = env.run(CODEX_PARSE, &[&path, "--json"]).success().json();
        assert_eq!(summary["protocol"], protocol);
        let finals = final_messages(&summary);
        let expected: Vec<&str> = SECRETS.iter().map(|(_, shown)| *shown).collect();
        assert_eq!(finals, expected, "{protocol}");
        for args in [vec![path.as_str()], vec![path.as_str(), "--messages"]] {
            let out = env.run(CODEX_PARSE, &args).success();
            for leak in LEAKS {
                assert!(
                    !out.stdout.contains(leak),
                    "{protocol} {args:?}: {}",
                    out.stdout
                );
            }
            assert!(
                out.stdout.contains("密钥：[REDACTED]。"),
                "{protocol} {args:?}"
            );
        }
        let raw = env.run(CODEX_PARSE, &[&path, "--no-redact", "--json"]);
        assert!(
            raw.success().stdout.contains("🔑sk-proj-Zq8x"),
            "{protocol}"
        );
    }
}

#[test]
fn test_summaries_after_non_ascii_text_are_counted_in_every_protocol() {
    let env = Env::new();
    let outputs: Vec<&str> = OUTPUTS.iter().map(|(output, ..)| *output).collect();
    let messages = ["Prüfe… 🧪"; OUTPUTS.len()];
    for (protocol, stream) in STREAMS {
        let path = stream(&env, &messages, &outputs);
        let summary = env.run(CODEX_PARSE, &[&path, "--json"]).success().json();
        assert_eq!(summary["protocol"], protocol);
        let counts: Vec<(u64, u64)> = summary["requests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let tests = &r["tests"];
                (
                    tests["passed"].as_u64().unwrap_or(0),
                    tests["failed"].as_u64().unwrap_or(0),
                )
            })
            .collect();
        let expected: Vec<(u64, u64)> = OUTPUTS.iter().map(|(_, p, f)| (*p, *f)).collect();
        assert_eq!(counts, expected, "{protocol}: {summary}");
        let text = env.run(CODEX_PARSE, &[&path]).success().stdout;
        assert!(
            text.contains("tests: 12 passed, 1 failed"),
            "{protocol}: {text}"
        );
    }
}

/// A message that ends in a key word (`token=`, `password:`) has nothing
/// after it to redact; `--json` stays JSON (the closing quote was once
/// taken for a quoted value's opening one, and `,"` redacted).
#[test]
fn json_output_stays_json_when_a_message_ends_in_a_key_word() {
    let env = Env::new();
    let messages = ["set token=", "the password:", "APP_SECRET="];
    for (protocol, stream) in STREAMS {
        let path = stream(&env, &messages, &[]);
        for args in [
            vec![path.as_str(), "--json"],
            vec![path.as_str(), "--messages", "--json"],
        ] {
            let out = env.run(CODEX_PARSE, &args).success();
            let parsed: Result<Value, _> = serde_json::from_str(&out.stdout);
            assert!(parsed.is_ok(), "{protocol} {args:?}: {}", out.stdout);
        }
        let summary = env.run(CODEX_PARSE, &[&path, "--json"]).success().json();
        let finals = final_messages(&summary);
        assert_eq!(finals, messages, "{protocol}");
    }
}

/// Each request's final message, `(none)` where it has none.
fn final_messages(summary: &Value) -> Vec<&str> {
    summary["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["final_message"].as_str().unwrap_or("(none)"))
        .collect()
}
