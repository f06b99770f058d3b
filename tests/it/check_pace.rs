//! `bg-check --follow --pace`, the feed for an agent host that batches and
//! rate-limits a command's lines (Claude Code's Monitor), and `--range`,
//! which shows what a paced feed had to skip.

use std::fs;
use std::io::Read;
use std::process::Stdio;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use crate::util::*;

/// Claude Code's Monitor: lines arriving within 200 ms are one event, an
/// event is cut at 3,000 characters, and events past a budget of 10,
/// refilled one every 2 s, are dropped.
const HOST_JOIN: Duration = Duration::from_millis(200);
const HOST_EVENT_CHARS: usize = 3000;
const HOST_BUDGET: f64 = 10.0;
const HOST_REFILL: Duration = Duration::from_secs(2);

/// What a follower printed, as it arrived.
struct Feed {
    chunks: Vec<(Instant, Vec<u8>)>,
    code: i32,
}

/// Runs a paced follow of `id` to its end, recording when each piece of
/// its output arrived.
fn paced_follow(env: &Env, id: &str) -> Feed {
    let mut command = env.cmd(BG_CHECK);
    command.args([id, "--follow", "--pace", "--reader", "monitor"]);
    command.stdout(Stdio::piped()).stderr(Stdio::null());
    let mut guard = Guard::spawn(command);
    let stdout = guard.0.stdout.take().expect("stdout");
    let reader = thread::spawn(move || read_chunks(stdout));
    let status = poll(DEADLINE * 2, || guard.0.try_wait().ok().flatten())
        .expect("the paced follow did not end");
    Feed {
        chunks: reader.join().expect("reader"),
        code: status.code().unwrap_or(-1),
    }
}

fn read_chunks(mut pipe: impl Read) -> Vec<(Instant, Vec<u8>)> {
    let mut chunks = Vec::new();
    let mut buf = vec![0; 64 * 1024];
    while let Ok(n @ 1..) = pipe.read(&mut buf) {
        chunks.push((Instant::now(), buf[..n].to_vec()));
    }
    chunks
}

/// The chunks joined into events as the host joins them.
fn host_events(chunks: &[(Instant, Vec<u8>)]) -> Vec<(Instant, String)> {
    let mut events: Vec<(Instant, Instant, String)> = Vec::new();
    for (at, bytes) in chunks {
        let text = String::from_utf8_lossy(bytes);
        match events.last_mut() {
            Some((_, last, event)) if *at - *last < HOST_JOIN => {
                *last = *at;
                event.push_str(&text);
            }
            _ => events.push((*at, *at, text.into_owned())),
        }
    }
    events.into_iter().map(|(at, _, text)| (at, text)).collect()
}

/// The events the host's budget would have dropped.
fn dropped_by_budget(events: &[(Instant, String)]) -> usize {
    let Some(start) = events.first().map(|(at, _)| *at) else {
        return 0;
    };
    let (mut tokens, mut refilled, mut dropped) = (HOST_BUDGET, start, 0);
    for (at, _) in events {
        let gained = (*at - refilled).as_secs_f64() / HOST_REFILL.as_secs_f64();
        tokens = (tokens + gained).min(HOST_BUDGET);
        refilled = *at;
        if tokens >= 1.0 {
            tokens -= 1.0;
        } else {
            dropped += 1;
        }
    }
    dropped
}

/// Line numbers of `line N:` lines.
fn numbers<'a>(lines: impl IntoIterator<Item = &'a str>) -> Vec<u32> {
    lines
        .into_iter()
        .filter_map(|l| l.strip_prefix("line ")?.split(':').next()?.parse().ok())
        .collect()
}

/// The lines a summary says were skipped, got by running the command it
/// names: `[... N lines skipped, ...: all but the last K lines of CMD]`.
fn skipped_lines(env: &Env, summary: &str) -> Vec<u32> {
    let (_, rest) = summary.split_once("all but the last ").expect("a summary");
    let (kept, rest) = rest.split_once(" lines of ").expect("a summary");
    let kept: usize = kept.parse().expect("a count");
    let command = rest.strip_suffix(']').expect("a summary");
    let words = shlex::split(command).expect("a shell command");
    assert_eq!(words[0], "bg-check", "{summary}");
    let args: Vec<&str> = words[1..].iter().map(String::as_str).collect();
    let shown = env.run(BG_CHECK, &args).success().stdout;
    // Its first line is the task's status line.
    let output: Vec<&str> = shown.lines().skip(1).collect();
    numbers(output[..output.len() - kept].iter().copied())
}

/// 400 numbered lines, non-ASCII among them, at about 100 a second, in
/// bursts: more than a host that takes one event per 2 s can pass on.
#[test]
fn a_paced_follow_passes_every_line_or_names_it_and_always_the_status() {
    let env = Env::new();
    let script = "for b in $(seq 0 19); do for i in $(seq 1 20); do \
                  echo \"line $((b * 20 + i)): ünïcode ✓ $(printf '%060d' 0)\"; done; \
                  sleep 0.2; done; exit 3";
    let id = env.launch(&["--name", "feed", script]);
    let feed = paced_follow(&env, &id);
    assert_eq!(feed.code, 3, "the task's exit status");

    let events = host_events(&feed.chunks);
    for (_, event) in &events {
        assert!(event.chars().count() <= HOST_EVENT_CHARS, "{event}");
    }
    assert_eq!(dropped_by_budget(&events), 0, "{} events", events.len());
    let text: String = events.iter().map(|(_, e)| e.as_str()).collect();
    let last = text.lines().last().expect("a status line");
    assert!(last.starts_with(&format!("{id} (feed) exited 3")), "{last}");

    let mut seen = numbers(text.lines());
    let summaries: Vec<&str> = text.lines().filter(|l| l.starts_with("[... ")).collect();
    assert!(
        !summaries.is_empty(),
        "400 lines in 4 s needed no summary?\n{text}"
    );
    for summary in &summaries {
        seen.extend(skipped_lines(&env, summary));
    }
    seen.sort_unstable();
    assert_eq!(seen, (1..=400).collect::<Vec<u32>>(), "every line once");
}

/// A line printed just before the host stops the monitor may never have
/// reached the model: the cursor moves past it only a while after it was
/// printed, so a monitor started again shows it again.
#[test]
fn a_paced_follow_counts_a_batch_as_delivered_only_after_a_while() {
    let env = Env::new();
    let gate = env.dir.path().join("gate");
    let script = format!(
        "echo first; while [ ! -e '{}' ]; do sleep 0.05; done; echo second",
        gate.display()
    );
    let id = env.launch(&[&script]);
    let cursor = env.task_dir(&id).join("cursor.monitor.json");
    let saved = || {
        let text = fs::read_to_string(&cursor).ok()?;
        serde_json::from_str::<serde_json::Value>(&text).ok()?["offset"].as_u64()
    };

    // Stopped right after it printed: nothing counted as delivered, and a
    // monitor started again shows the line again. (A machine so loaded
    // that the stop came late proves nothing either way.)
    let (at, stopped) = follow_until_first(&env, &id);
    if stopped - at < Duration::from_millis(700) {
        assert_eq!(saved().unwrap_or(0), 0, "the cursor moved at once");
        follow_until_first(&env, &id);
    }
    // Left running, it counts the batch once it is a second old.
    let mut command = env.cmd(BG_CHECK);
    command.args([&id, "--follow", "--pace", "--reader", "monitor"]);
    command.stdout(Stdio::null());
    let follower = Guard::spawn(command);
    poll(DEADLINE, || (saved() == Some(6)).then_some(()))
        .expect("the cursor never moved past the delivered line");
    drop(follower);

    fs::write(&gate, "").expect("opening the gate");
    let rest = paced_follow(&env, &id);
    let text: String = rest
        .chunks
        .iter()
        .map(|(_, b)| String::from_utf8_lossy(b).into_owned())
        .collect();
    assert!(
        !text.lines().any(|l| l == "first"),
        "shown twice after delivery: {text}"
    );
    assert!(text.starts_with("second\n"), "{text}");
}

/// Starts a paced follow, waits for `first`, and kills it at once; when
/// the line arrived and when the follower was gone.
fn follow_until_first(env: &Env, id: &str) -> (Instant, Instant) {
    let mut command = env.cmd(BG_CHECK);
    command.args([id, "--follow", "--pace", "--reader", "monitor"]);
    command.stdout(Stdio::piped());
    let mut guard = Guard::spawn(command);
    let mut stdout = guard.0.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut buf = [0; 64];
        if let Ok(n @ 1..) = stdout.read(&mut buf) {
            let _ = tx.send((Instant::now(), buf[..n].to_vec()));
        }
    });
    let (at, bytes) = rx.recv_timeout(DEADLINE).expect("no output");
    assert_eq!(bytes, b"first\n", "the first batch");
    drop(guard);
    (at, Instant::now())
}

#[test]
fn a_range_prints_what_it_names_and_leaves_the_cursor() {
    let env = Env::new();
    let id = env.launch(&["printf 'aaa\\nbbb\\nccc\\n'"]);
    env.wait_state(&id, "exited");
    let out = env.run(BG_CHECK, &[&id, "--range", "4-8"]).success();
    assert_eq!(out.stdout.lines().skip(1).collect::<Vec<_>>(), ["bbb"]);
    let grep = env.run(BG_CHECK, &[&id, "--range", "0-12", "--grep", "a|c"]);
    assert_eq!(
        grep.success().stdout.lines().skip(1).collect::<Vec<_>>(),
        ["aaa", "ccc"]
    );
    // The reader's place is untouched: a plain check shows everything.
    let all = env.run(BG_CHECK, &[&id]).success();
    assert_eq!(all.stdout.lines().skip(1).count(), 3, "{all:?}");

    for bad in ["8-4", "x", "4-", "-4", "1-2-3"] {
        let out = env.run(BG_CHECK, &[&id, "--range", bad]);
        assert_eq!(out.code(), 2, "{bad}: {out:?}");
        assert!(out.stderr.starts_with("bg-check: "), "{bad}: {out:?}");
    }
    let out = env.run(BG_CHECK, &[&id, "--range", "0-4", "--follow"]);
    assert_eq!(out.code(), 2, "{out:?}");
}
