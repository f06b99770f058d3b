//! `bg-remind --task` as a background Bash call: when the task ends, the
//! host wakes the model with a task notification that carries the task's
//! exit code, since bg-remind exits with it.
//!
//! 2.1.332 wakes a headless session (its stdin open). 2.1.7 does not: its
//! headless loop takes a queued notification only with the next message on
//! stdin, so there the interactive host, on a terminal, is the one that
//! wakes the model.

use std::fs;

use super::model::{Script, Step, call_id, host_strings, prompt};
use super::{JS, NATIVE, World};
use crate::util::{DEADLINE, poll};

const DESCRIPTION: &str = "Wait for fails to end";

/// What both versions say when a background command exits 3.
fn summary() -> String {
    format!("<summary>Background command \"{DESCRIPTION}\" failed with exit code 3</summary>")
}

fn remind_wakes_with_the_exit_code(version: &'static str) {
    let script = Script::new().prompt(
        "remind",
        vec![
            Step::bash(
                "bg-run --name fails 'sleep 2; exit 3'",
                "Start a task that fails",
            ),
            Step::background(
                "bg-remind --task fails 'fails has ended'",
                DESCRIPTION,
                60_000,
            ),
            Step::say("I will be woken when it ends."),
            Step::say("It failed with exit code 3.").after("failed with exit code 3"),
        ],
    );
    let Some(world) = World::new(version, script) else {
        return;
    };
    let mut host = if version == JS {
        world.interactive()
    } else {
        world.headless()
    };
    world.send(&mut host, &prompt("remind"));
    let woken = poll(DEADLINE, || {
        let requests = world.mock.main_requests();
        requests
            .into_iter()
            .map(|e| e.body)
            .find(|body| host_strings(body).iter().any(|s| s.contains(&summary())))
    })
    .unwrap_or_else(|| {
        let last = world.mock.last_main().unwrap_or_default();
        panic!(
            "no wake-up; the host's screen: {}\nits last request: {last:#}",
            host.screen()
        )
    });
    // No prompt came after the first: the host woke the model itself.
    let notification = host_strings(&woken)
        .into_iter()
        .find(|s| s.contains(&summary()))
        .expect("the notification");
    let path = between(&notification, "<output-file>", "</output-file>").expect("an output file");
    let printed = fs::read_to_string(path).expect("reading bg-remind's output file");
    assert!(printed.contains("fails has ended"), "{printed}");
    assert!(printed.contains("(fails) exited 3"), "{printed}");
    assert!(
        world
            .wait_result(&call_id("remind", 1))
            .contains("background")
    );
    eprintln!("claude {version} woke the model with: {notification}");
}

fn between<'a>(text: &'a str, open: &str, close: &str) -> Option<&'a str> {
    let start = text.find(open)? + open.len();
    let end = start + text[start..].find(close)?;
    Some(&text[start..end])
}

#[test]
fn remind_wakes_with_the_exit_code_2_1_7() {
    remind_wakes_with_the_exit_code(JS);
}

#[test]
fn remind_wakes_with_the_exit_code_2_1_332() {
    remind_wakes_with_the_exit_code(NATIVE);
}
