//! Waits longer than the host allows a background call (issue 19): the call
//! sets `timeout`, bg-remind's `--timeout` is a little shorter, and when it
//! runs out the model is woken with exit 124 and one line that says the
//! task still runs and gives the command that waits again. Here the host's
//! limit is a few seconds instead of 2 hours, and the model follows the
//! line it was given: the second wait ends with the task's own status.

use std::fs;

use super::model::{Script, Step, host_strings, prompt};
use super::{NATIVE, World};

const FIRST: &str = "Wait for slow, first try";
const SECOND: &str = "Wait for slow again";

fn notification(world: &World, description: &str, code: i32) -> String {
    let summary = format!(
        "<summary>Background command \"{description}\" failed with exit code {code}</summary>"
    );
    let woken = world.wait_text(&summary);
    host_strings(&woken)
        .into_iter()
        .find(|s| s.contains(&summary))
        .expect("the notification")
}

/// What the background command printed, from the file the notification names.
fn printed(notification: &str) -> String {
    let start = notification.find("<output-file>").expect("an output file") + 13;
    let end = start
        + notification[start..]
            .find("</output-file>")
            .expect("its end");
    fs::read_to_string(&notification[start..end]).expect("reading the output file")
}

#[test]
fn a_wait_past_the_host_limit_says_how_to_wait_again_2_1_332() {
    let gate = "slow-may-end";
    let task = format!("bg-run --name slow 'while [ ! -e {gate} ]; do sleep 0.1; done; exit 5'");
    let wait = "bg-remind --task slow --timeout 2s 'slow ended'";
    // The model is scripted, so it cannot read the line and run what it
    // says: the test checks the line names exactly this command.
    let again = "bg-remind --task ID --timeout 2s 'slow ended'";
    let script = Script::new().prompt(
        "wait",
        vec![
            Step::bash(&task, "Start a slow task"),
            Step::background(wait, FIRST, 6_000),
            Step::say("Waiting."),
            Step::bash(&format!("touch {gate}"), "Let slow end").after("exit code 124"),
            Step::background(&again.replace("ID", "slow"), SECOND, 6_000),
            Step::say("Waiting again."),
            Step::say("slow failed with 5.").after("exit code 5"),
        ],
    );
    let Some(world) = World::new(NATIVE, script) else {
        return;
    };
    let mut host = world.headless();
    host.prompt(&prompt("wait"));

    let first = printed(&notification(&world, FIRST, 124));
    let line = first.lines().next().expect("a first line");
    let id = line
        .strip_prefix("still running: task ")
        .and_then(|rest| rest.split(' ').next())
        .unwrap_or_else(|| panic!("{first}"));
    let expected = format!(
        "still running: task {id} (slow) did not end within 2s; to wait again: {}",
        again.replace("ID", id)
    );
    assert_eq!(line, expected, "{first}");
    let message_alone = first.lines().any(|l| l == "slow ended");
    assert!(!message_alone, "the message is for the end: {first}");

    let second = printed(&notification(&world, SECOND, 5));
    assert_eq!(second.lines().next(), Some("slow ended"), "{second}");
    assert!(second.contains("(slow) exited 5"), "{second}");
}

/// Why the docs say every background call sets `timeout`, and why bg-remind
/// gives up first: a call the host stops at its limit ends with no exit
/// code and none of bg-remind's words, only the host's.
#[test]
fn a_wait_the_host_stops_tells_the_model_nothing_of_the_task_2_1_332() {
    const STOPPED: &str = "Wait for slow without a limit";
    let script = Script::new().prompt(
        "stop",
        vec![
            Step::bash("bg-run --name slow 'sleep 60'", "Start a slow task"),
            Step::background("bg-remind --task slow 'slow ended'", STOPPED, 3_000),
            Step::say("Waiting."),
            Step::say("Stopped.").after("background time limit"),
        ],
    );
    let Some(world) = World::new(NATIVE, script) else {
        return;
    };
    let mut host = world.headless();
    host.prompt(&prompt("stop"));
    let woken = world.wait_text("background time limit");
    let said = host_strings(&woken)
        .into_iter()
        .find(|s| s.contains("background time limit"))
        .expect("the notification");
    eprintln!("claude {NATIVE} stopped the wait with: {said}");
    assert!(!said.contains("exit code"), "{said}");
}
