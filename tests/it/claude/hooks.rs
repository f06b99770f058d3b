//! The shipped UserPromptSubmit hook (`bg-check --notify --reader
//! claude-code`): a task that has ended is told to the model with the next
//! prompt, in one line, and never again.

use super::model::{Script, Step, call_id, host_strings, prompt};
use super::{JS, NATIVE, World};

fn hook_line_arrives_once(version: &'static str) {
    let script = Script::new()
        .prompt(
            "hookstart",
            vec![
                Step::bash("bg-run --name quick 'exit 4'", "Start a quick task"),
                Step::say("Started."),
            ],
        )
        .prompt("hooknext", vec![Step::say("Next.")])
        .prompt("hooklast", vec![Step::say("Last.")]);
    let Some(world) = World::new(version, script) else {
        return;
    };
    let mut host = world.headless();
    world.send(&mut host, &prompt("hookstart"));
    let id = world
        .wait_result(&call_id("hookstart", 0))
        .trim()
        .to_string();
    assert!(bg_shared::ids::is_id(&id), "bg-run printed no id: {id:?}");
    world.env.wait_state(&id, "exited");
    let line = format!("{id} exited 4");
    world.send(&mut host, &prompt("hooknext"));
    let next = world.wait_text("[mock:hooknext]");
    let count = |body| {
        host_strings(body)
            .iter()
            .map(|s| s.matches(&line).count())
            .sum::<usize>()
    };
    assert_eq!(
        count(&next),
        1,
        "the hook's line came with the next prompt: {next:#}"
    );
    world.send(&mut host, &prompt("hooklast"));
    let last = world.wait_text("[mock:hooklast]");
    assert_eq!(
        count(&last),
        1,
        "the hook's line came once in all: {last:#}"
    );
    let told = host_strings(&next)
        .into_iter()
        .find(|s| s.contains(&line))
        .unwrap_or_default();
    eprintln!("claude {version} passed the hook's output on as: {told:?}");
}

#[test]
fn hook_line_arrives_once_2_1_7() {
    hook_line_arrives_once(JS);
}

#[test]
fn hook_line_arrives_once_2_1_332() {
    hook_line_arrives_once(NATIVE);
}
