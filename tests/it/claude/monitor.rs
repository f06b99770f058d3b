//! `bg-check NAME --follow` under the Monitor tool (2.1.332; 2.1.7 has no
//! Monitor): what of a task's numbered lines reaches the model, in which
//! batches, and whether the status line does.
//!
//! The contract: the model gets every line, or an explicit summary of the
//! ones it does not get, and always the status line. The host joins the
//! lines of 200 ms into one event, keeps 10 events in a bucket that refills
//! one per 2 s, drops what does not fit (telling only how many events, and
//! only when a later event gets through), and sends the lines still pending
//! when the command exits only if the bucket has a token: so a plain
//! follow loses lines at 5 lines/s, and may lose its status line.

use std::time::Instant;

use regex::Regex;

use super::model::{Script, Step, host_strings, prompt};
use super::{NATIVE, World};

const DESCRIPTION: &str = "numbered lines of feed";

/// The monitor's notifications in a request, in order.
fn notifications(body: &serde_json::Value) -> Vec<String> {
    host_strings(body)
        .into_iter()
        .filter(|text| {
            text.contains(&format!("Monitor event: \"{DESCRIPTION}\""))
                || text.contains(&format!("Monitor \"{DESCRIPTION}\""))
        })
        .collect()
}

/// What reached the model of the monitor: each event's lines, in order,
/// with when the host sent it (the first request that held it). The last
/// request holds the whole conversation, so each event once.
fn events(world: &World, started: Instant) -> Vec<(f64, Vec<String>)> {
    let requests = world.mock.main_requests();
    let Some(last) = requests.last() else {
        return Vec::new();
    };
    let counts: Vec<(Instant, usize)> = requests
        .iter()
        .map(|e| (e.at, notifications(&e.body).len()))
        .collect();
    notifications(&last.body)
        .iter()
        .enumerate()
        .filter_map(|(k, text)| {
            let at = counts
                .iter()
                .find(|(_, n)| *n > k)
                .map_or(last.at, |(at, _)| *at);
            let at = at.saturating_duration_since(started).as_secs_f64();
            // An end with no lines left to pass on has no <event>.
            let event = between(text, "<event>", "</event>")
                .or_else(|| between(text, "<summary>", "</summary>"))?;
            Some((at, event.lines().map(str::to_string).collect()))
        })
        .collect()
}

/// `lines` numbered lines at `per_second`, each padded with `pad` more
/// characters, followed under Monitor by `follow`.
fn follow_under_monitor(per_second: u32, lines: u32, pad: usize, follow: &str) {
    let sleep = 1.0 / f64::from(per_second);
    let padding = "ü".repeat(pad);
    let task = format!(
        "bg-run --name feed 'for i in $(seq 1 {lines}); do echo \"line $i {padding}\"; sleep {sleep}; done'"
    );
    let script = Script::new().prompt(
        "monitor",
        vec![
            Step::bash(&task, "Start a task printing numbered lines"),
            Step::monitor(follow, DESCRIPTION),
            Step::say("Watching."),
        ],
    );
    let Some(world) = World::new(NATIVE, script) else {
        return;
    };
    let started = Instant::now();
    let mut host = world.headless();
    world.send(&mut host, &prompt("monitor"));
    world.wait_text(&format!("<summary>Monitor \"{DESCRIPTION}\""));
    let events = events(&world, started);
    eprintln!("`{follow}` at {per_second} lines/s, {lines} lines, reached the model as:");
    for (at, event) in &events {
        eprintln!("  +{at:.1}s {} line(s): {event:?}", event.len());
    }
    let all: Vec<&String> = events.iter().flat_map(|(_, e)| e).collect();
    // The host trims each line: an unpadded one loses its trailing space.
    let numbered = Regex::new(r"^line (\d+)( ü*)?$").expect("a regex");
    let mut got: Vec<u32> = all
        .iter()
        .filter_map(|l| numbered.captures(l)?[1].parse().ok())
        .collect();
    got.sort_unstable();
    got.dedup();
    let summary = Regex::new(r"^\[\.\.\. (\d+) lines.* skipped").expect("a regex");
    let summed: u32 = all
        .iter()
        .filter_map(|l| summary.captures(l)?[1].parse::<u32>().ok())
        .sum();
    let status = all.iter().any(|l| l.contains("(feed) exited 0 after"));
    eprintln!(
        "  {} of {lines} lines, {summed} summed up as skipped, status line: {status}",
        got.len()
    );
    assert!(
        status,
        "the status line never reached the model: {events:?}"
    );
    assert!(
        got.len() as u32 + summed >= lines,
        "lines lost without a word: {} delivered, {summed} summed up, of {lines}: {events:?}",
        got.len()
    );
}

fn between<'a>(text: &'a str, open: &str, close: &str) -> Option<&'a str> {
    let start = text.find(open)? + open.len();
    let end = start + text[start..].find(close)?;
    Some(&text[start..end])
}

#[test]
#[ignore = "a plain --follow is not paced and loses lines under Monitor: the reason for --pace; run with --ignored to see it"]
fn follow_at_5_lines_a_second_reaches_the_model() {
    follow_under_monitor(5, 20, 0, "bg-check feed --follow --reader monitor");
}

#[test]
#[ignore = "a plain --follow is not paced and loses lines under Monitor: the reason for --pace; run with --ignored to see it"]
fn follow_at_50_lines_a_second_reaches_the_model() {
    follow_under_monitor(50, 200, 0, "bg-check feed --follow --reader monitor");
}

#[test]
fn paced_follow_at_5_lines_a_second_reaches_the_model() {
    follow_under_monitor(5, 20, 0, "bg-check feed --follow --pace --reader monitor");
}

#[test]
fn paced_follow_at_50_lines_a_second_reaches_the_model() {
    follow_under_monitor(50, 200, 0, "bg-check feed --follow --pace --reader monitor");
}

/// Lines of 100 characters (non-ASCII) at 50 a second are more than the
/// host passes on: the feed sums up what it skips, with the command that
/// shows it, and the status line still comes.
#[test]
fn paced_follow_of_long_lines_sums_up_what_it_skips() {
    follow_under_monitor(
        50,
        200,
        90,
        "bg-check feed --follow --pace --reader monitor",
    );
}
