//! bg-run under the real host: the model's Bash call gets the task id back
//! at once, while the task goes on running, where a plain `cmd &` holds the
//! call until the command ends (its output pipe stays open).

use std::time::Duration;

use super::model::{Script, Step, call_id, prompt};
use super::{JS, NATIVE, World};

/// Far below the task's 30 s: the call does not wait for the task.
const AT_ONCE: Duration = Duration::from_secs(10);

/// From the mock's answer carrying a call to the host's request carrying
/// its result: how long the host spent on the call.
fn round_trip(world: &World, id: &str) -> Duration {
    let exchanges = world.mock.exchanges();
    let answered = exchanges
        .iter()
        .find(|e| e.call.as_deref() == Some(id))
        .and_then(|e| e.answered)
        .expect("the call was answered");
    let returned = exchanges
        .iter()
        .find(|e| super::model::tool_result(&e.body, id).is_some())
        .expect("the result came back")
        .at;
    returned.saturating_duration_since(answered)
}

fn bg_run_returns_at_once(version: &'static str) {
    let script = Script::new().prompt(
        "bgrun",
        vec![
            Step::bash("bg-run --name srv 'sleep 30'", "Start the server task"),
            Step::bash("sleep 5 &", "Sleep in the background with &"),
            Step::say("Started."),
        ],
    );
    let Some(world) = World::new(version, script) else {
        return;
    };
    let mut host = world.headless();
    world.send(&mut host, &prompt("bgrun"));
    let printed = world.wait_result(&call_id("bgrun", 0));
    let took = round_trip(&world, &call_id("bgrun", 0));
    let id = printed.trim();
    assert!(
        bg_shared::ids::is_id(id),
        "bg-run printed no id: {printed:?}"
    );
    assert!(took < AT_ONCE, "bg-run held the Bash call for {took:?}");
    let record = world.env.record(id);
    assert_eq!(record["state"], "running", "{record}");
    let said = world.wait_result(&call_id("bgrun", 1));
    let plain = round_trip(&world, &call_id("bgrun", 1));
    eprintln!(
        "claude {version}: `bg-run --name srv 'sleep 30'` came back in {took:?}; \
         `sleep 5 &` held the call {plain:?} and returned {said:?}"
    );
}

#[test]
fn bg_run_returns_at_once_2_1_7() {
    bg_run_returns_at_once(JS);
}

#[test]
fn bg_run_returns_at_once_2_1_332() {
    bg_run_returns_at_once(NATIVE);
}
