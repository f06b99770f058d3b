//! The shipped skill: the host lists it, and a Skill call loads SKILL.md's
//! text into the conversation as written.

use std::fs;
use std::path::Path;

use super::model::{Script, Step, call_id, host_strings, prompt, tool_result};
use super::{JS, NATIVE, World};

/// SKILL.md's headings: its body, not the description the listing shows.
fn headings() -> Vec<String> {
    let skill = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/agents/claude-code/SKILL.md");
    let text = fs::read_to_string(skill).expect("reading SKILL.md");
    text.lines()
        .filter(|line| line.starts_with("# ") || line.starts_with("## "))
        .map(str::to_string)
        .collect()
}

fn skill_loads(version: &'static str) {
    let script = Script::new().prompt("skill", vec![Step::skill("bg-tools"), Step::say("Loaded.")]);
    let Some(world) = World::new(version, script) else {
        return;
    };
    let mut host = world.headless();
    world.send(&mut host, &prompt("skill"));
    let id = call_id("skill", 0);
    let result = world.wait_result(&id);
    let first = world.mock.main_requests().remove(0).body;
    assert!(
        first.to_string().contains("bg-tools"),
        "the skill is listed: {first:#}"
    );
    let loaded = world.wait_for("the request after the Skill call", |mock| {
        mock.main_requests()
            .into_iter()
            .map(|e| e.body)
            .find(|body| tool_result(body, &id).is_some())
    });
    let texts = host_strings(&loaded);
    let headings = headings();
    assert!(
        headings.len() > 3,
        "SKILL.md has its headings: {headings:?}"
    );
    for heading in &headings {
        assert!(
            texts.iter().any(|t| t.lines().any(|line| line == heading)),
            "{heading:?} is not in what the host sent after the Skill call: {loaded:#}"
        );
    }
    eprintln!("claude {version}: the Skill call's result: {result:?}");
}

#[test]
fn skill_loads_2_1_7() {
    skill_loads(JS);
}

#[test]
fn skill_loads_2_1_332() {
    skill_loads(NATIVE);
}
