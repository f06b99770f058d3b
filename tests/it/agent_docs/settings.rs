//! claude-code/settings.json and the `json` blocks: the shape Claude Code
//! reads, and its hooks run as Claude Code runs them.

use super::*;

/// The shape Claude Code reads settings in: `env` of strings,
/// `permissions` rules `Tool` or `Tool(specifier)`, and `hooks`: event →
/// [{matcher?, hooks: [{type: "command", command, timeout?}]}].
pub(super) fn check_settings(what: &str, settings: &Value) {
    let top = settings
        .as_object()
        .unwrap_or_else(|| panic!("{what}: not an object"));
    for key in top.keys() {
        assert!(
            ["$schema", "env", "permissions", "hooks"].contains(&key.as_str()),
            "{what}: unexpected key {key}"
        );
    }
    let env = top.get("env").map_or_else(Default::default, |env| {
        env.as_object()
            .unwrap_or_else(|| panic!("{what}: env is not an object"))
            .clone()
    });
    for (key, value) in &env {
        assert!(value.is_string(), "{what}: env.{key} is not a string");
    }
    if let Some(permissions) = top.get("permissions") {
        let permissions = permissions
            .as_object()
            .unwrap_or_else(|| panic!("{what}: permissions is not an object"));
        for (list, rules) in permissions {
            assert!(
                ["allow", "deny", "ask"].contains(&list.as_str()),
                "{what}: unexpected permissions.{list}"
            );
            for rule in rules
                .as_array()
                .unwrap_or_else(|| panic!("{what}: permissions.{list} is not an array"))
            {
                let rule = rule
                    .as_str()
                    .unwrap_or_else(|| panic!("{what}: a rule that is not a string"));
                check_rule(what, rule);
                let runs_anything =
                    rule == "Bash" || rule == "Bash(*)" || rule.starts_with("Bash(bg-run");
                let allowlisted = env
                    .get("BG_ALLOWED_COMMANDS")
                    .and_then(Value::as_str)
                    .is_some_and(|v| !v.is_empty());
                assert!(
                    list != "allow" || !runs_anything || allowlisted,
                    "{what}: allows {rule} without BG_ALLOWED_COMMANDS, which is as wide as Bash(*)"
                );
            }
        }
    }
    if let Some(hooks) = top.get("hooks") {
        let hooks = hooks
            .as_object()
            .unwrap_or_else(|| panic!("{what}: hooks is not an object"));
        for (event, groups) in hooks {
            assert!(
                HOOK_EVENTS.contains(&event.as_str()),
                "{what}: unknown hook event {event}"
            );
            let groups = groups
                .as_array()
                .filter(|g| !g.is_empty())
                .unwrap_or_else(|| panic!("{what}: hooks.{event} is not a non-empty array"));
            for group in groups {
                let group = group
                    .as_object()
                    .unwrap_or_else(|| panic!("{what}: a {event} group is not an object"));
                for key in group.keys() {
                    assert!(
                        ["matcher", "hooks"].contains(&key.as_str()),
                        "{what}: {event} group key {key}"
                    );
                }
                if let Some(matcher) = group.get("matcher") {
                    assert!(
                        matcher.is_string(),
                        "{what}: a {event} matcher is not a string"
                    );
                    assert!(
                        MATCHER_EVENTS.contains(&event.as_str()),
                        "{what}: {event} takes no matcher"
                    );
                }
                let handlers = group["hooks"]
                    .as_array()
                    .filter(|h| !h.is_empty())
                    .unwrap_or_else(|| panic!("{what}: a {event} group without hooks"));
                for handler in handlers {
                    let handler = handler
                        .as_object()
                        .unwrap_or_else(|| panic!("{what}: a {event} hook is not an object"));
                    for key in handler.keys() {
                        assert!(
                            ["type", "command", "timeout"].contains(&key.as_str()),
                            "{what}: {event} hook key {key}"
                        );
                    }
                    assert_eq!(handler["type"], "command", "{what}: {event} hook type");
                    assert!(
                        handler["command"]
                            .as_str()
                            .is_some_and(|c| !c.trim().is_empty()),
                        "{what}: a {event} hook without a command"
                    );
                    if let Some(timeout) = handler.get("timeout") {
                        assert!(
                            timeout.as_u64().is_some_and(|t| t > 0),
                            "{what}: a {event} hook timeout is not a number of seconds"
                        );
                    }
                }
            }
        }
    }
}

/// `Tool` or `Tool(specifier)`, as Claude Code's permission rules are.
fn check_rule(what: &str, rule: &str) {
    let (tool, specifier) = match rule.split_once('(') {
        Some((tool, rest)) => (tool, rest.strip_suffix(')')),
        None => (rule, Some("")),
    };
    assert!(
        !tool.is_empty()
            && tool.starts_with(|c: char| c.is_ascii_uppercase())
            && tool.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
        "{what}: {rule:?} does not name a tool"
    );
    assert!(
        specifier.is_some_and(|s| !s.contains(')')),
        "{what}: {rule:?} is not Tool(specifier)"
    );
}

fn settings() -> Value {
    serde_json::from_str(&read_doc(SETTINGS)).expect("settings.json is JSON")
}

#[test]
fn settings_have_the_shape_claude_code_reads() {
    let settings = settings();
    check_settings(SETTINGS, &settings);
    let allow = settings["permissions"]["allow"]
        .as_array()
        .expect("an allow list");
    for rule in ["Bash(bg-check:*)", "Bash(bg-remind:*)"] {
        assert!(allow.iter().any(|r| r == rule), "{rule} is not allowed");
    }
    assert!(
        hook_commands(&settings, "UserPromptSubmit")
            .iter()
            .any(|c| c.starts_with("bg-check --notify")),
        "no UserPromptSubmit hook runs bg-check --notify"
    );
    assert!(
        !hook_commands(&settings, "SessionStart").is_empty(),
        "no SessionStart hook"
    );
}

fn hook_commands(settings: &Value, event: &str) -> Vec<String> {
    settings["hooks"][event]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|group| group["hooks"].as_array().into_iter().flatten())
        .filter_map(|hook| hook["command"].as_str().map(str::to_string))
        .collect()
}

/// Runs a hook command as Claude Code does: by a shell, in the project,
/// with the event's JSON on stdin.
fn run_hook(env: &Env, project: &Path, event: &str, command: &str) -> Outcome {
    let input = json!({
        "session_id": "agent-docs-test",
        "transcript_path": "/dev/null",
        "cwd": project,
        "hook_event_name": event,
        "prompt": "carry on",
        "source": "startup",
    });
    let mut shell = in_project(env, project, "/bin/sh");
    shell
        .env("HOOK_INPUT", input.to_string())
        .arg("-c")
        .arg(format!("printf '%s' \"$HOOK_INPUT\" | (\n{command}\n)"));
    finish(shell)
}

/// The notify hook prints a task of its project once when it has finished,
/// then never again, and nothing for a task still running or of another
/// project.
#[test]
fn prompt_hook_reports_each_finished_task_once() {
    let settings = settings();
    let hooks = hook_commands(&settings, "UserPromptSubmit");
    let env = Env::new();
    let project = project(&env);
    let prompt = || -> String {
        hooks
            .iter()
            .map(|hook| {
                run_hook(&env, &project, "UserPromptSubmit", hook)
                    .success()
                    .stdout
            })
            .collect()
    };
    assert_eq!(prompt(), "", "nothing has run yet");

    let failed = env.launch(&[
        "--cwd",
        project.to_str().unwrap(),
        "--name",
        "hooked",
        "echo done; exit 3",
    ]);
    env.wait_state(&failed, "exited");
    // Another project's task is that project's hook's to report.
    let elsewhere = env.launch(&["exit 0"]);
    env.wait_state(&elsewhere, "exited");
    let running = env.launch(&["--cwd", project.to_str().unwrap(), "sleep 30"]);
    let first = prompt();
    assert_eq!(first.lines().count(), 1, "{first:?}");
    assert_eq!(first.matches(&failed).count(), 1, "{first:?}");
    assert!(first.contains(" exited 3 "), "{first:?}");
    assert_eq!(prompt(), "", "a finished task is reported once, not twice");

    env.run(BG_KILL, &[&running]).success();
    let killed = prompt();
    assert_eq!(killed.lines().count(), 1, "{killed:?}");
    assert!(
        killed.starts_with(&format!("{running} killed ")),
        "{killed:?}"
    );
    assert_eq!(prompt(), "");
}

/// The session hook lists the project's live tasks, which the host has
/// forgotten across sessions.
#[test]
fn session_hook_lists_live_tasks() {
    let settings = settings();
    let hooks = hook_commands(&settings, "SessionStart");
    let env = Env::new();
    let project = project(&env);
    let start = || -> String {
        hooks
            .iter()
            .map(|hook| {
                run_hook(&env, &project, "SessionStart", hook)
                    .success()
                    .stdout
            })
            .collect()
    };
    assert_eq!(start(), "", "no tasks, no output");
    let server = env.launch(&[
        "--cwd",
        project.to_str().unwrap(),
        "--name",
        "server",
        "sleep 30",
    ]);
    let done = env.launch(&["--cwd", project.to_str().unwrap(), "true"]);
    env.wait_state(&done, "exited");
    let listed = start();
    assert!(
        listed.contains(&server) && listed.contains("running"),
        "{listed:?}"
    );
    assert!(
        !listed.contains(&done),
        "a finished task is not live: {listed:?}"
    );
    env.run(BG_KILL, &[&server]).success();
    assert_eq!(start(), "");
}

/// A UserPromptSubmit hook exiting 2 blocks and erases the prompt: a
/// failing bg-check (a refused state dir, or none on PATH) must not.
#[test]
fn hooks_never_block_the_prompt() {
    let settings = settings();
    let env = Env::new();
    let project = project(&env);
    fs::create_dir_all(&env.state).unwrap();
    fs::set_permissions(&env.state, fs::Permissions::from_mode(0o777)).unwrap();
    assert_eq!(
        env.run(BG_CHECK, &["--notify"]).code(),
        2,
        "a refused state dir"
    );
    let empty = env.dir.path().join("empty-path");
    fs::create_dir_all(&empty).unwrap();
    for event in ["UserPromptSubmit", "SessionStart"] {
        for hook in hook_commands(&settings, event) {
            let refused = run_hook(&env, &project, event, &hook);
            assert_eq!(refused.code(), 1, "{event}: {hook}: {refused:?}");
            let mut missing = in_project(&env, &project, "/bin/sh");
            missing
                .env("PATH", &empty)
                .arg("-c")
                .arg(format!("(\n{hook}\n)"));
            let missing = finish(missing);
            assert_eq!(missing.code(), 1, "{event} without bg-check: {missing:?}");
        }
    }
}

#[test]
fn skill_front_matter_is_what_claude_code_reads() {
    let text = read_doc("claude-code/SKILL.md");
    let rest = text
        .strip_prefix("---\n")
        .expect("SKILL.md starts with a --- line");
    let (front, body) = rest
        .split_once("\n---\n")
        .expect("the front matter ends with a --- line");
    assert!(
        !body.trim().is_empty(),
        "no instructions after the front matter"
    );
    let mut fields = BTreeMap::new();
    for line in front.lines() {
        let (key, value) = line
            .split_once(": ")
            .unwrap_or_else(|| panic!("not `key: value` on one line: {line:?}"));
        assert!(fields.insert(key, value.trim()).is_none(), "{key} twice");
    }
    assert_eq!(
        fields.keys().copied().collect::<Vec<_>>(),
        ["description", "name"],
        "front matter fields"
    );
    let name = fields["name"];
    assert!(
        (1..=64).contains(&name.len())
            && name.split('-').all(|part| !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())),
        "a skill name is lowercase letters, digits and single inner hyphens: {name:?}"
    );
    let description = fields["description"];
    assert!(
        (1..=1024).contains(&description.len()),
        "a description of 1 to 1024 characters"
    );
    // A YAML plain scalar: no leading indicator, no `: ` or ` #`, and no
    // angle brackets, which skill front matter may not hold.
    assert!(
        !description.starts_with(|c: char| "-?:,[]{}#&*!|>'\"%@`".contains(c))
            && !description.contains(": ")
            && !description.contains(" #")
            && !description.contains(['<', '>']),
        "the description is not a plain YAML scalar: {description:?}"
    );
    assert!(
        read_doc("README.md").contains(&format!(".claude/skills/{name}/SKILL.md")),
        "the README installs the skill under its name"
    );
}
