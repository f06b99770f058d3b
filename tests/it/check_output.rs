//! bg-check ID: new output since the reader's last check, exactly once,
//! and the ways to cut it down (tail, grep, plain text, the byte cap).

use std::fs;
use std::io::Read;
use std::process::Stdio;

use crate::util::*;

fn lines(bytes: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(bytes)
        .lines()
        .map(str::to_string)
        .collect()
}

fn numbered(range: std::ops::RangeInclusive<u32>) -> Vec<String> {
    range.map(|i| format!("line{i}")).collect()
}

/// A task printing line1..line30 that stops at 10 and 20 until a gate file exists.
fn gated_task(env: &Env) -> String {
    env.launch(&[r#"i=1; while [ $i -le 30 ]; do echo line$i;
        if [ $i = 10 ] || [ $i = 20 ]; then while [ ! -e gate$i ]; do sleep 0.01; done; fi
        i=$((i+1)); done"#])
}

fn wait_for_line(env: &Env, id: &str, line: &str) {
    let path = env.task_dir(id).join("output.log");
    poll(DEADLINE, || {
        fs::read_to_string(&path)
            .ok()
            .filter(|t| t.contains(&format!("{line}\n")))
    })
    .unwrap_or_else(|| panic!("{line} never appeared"));
}

#[test]
fn successive_checks_return_each_line_once_in_order() {
    let env = Env::new();
    let id = gated_task(&env);
    wait_for_line(&env, &id, "line10");
    let first = env.run(BG_CHECK, &[&id]).success();
    assert!(
        first.stdout.starts_with(&format!("{id} running for ")),
        "{first:?}"
    );
    assert_eq!(lines(&first.stdout_bytes)[1..], numbered(1..=10));
    assert!(
        env.check_output(&[&id]).is_empty(),
        "nothing new, nothing shown"
    );
    fs::write(env.dir.path().join("gate10"), "").unwrap();
    wait_for_line(&env, &id, "line20");
    assert_eq!(lines(&env.check_output(&[&id])), numbered(11..=20));
    fs::write(env.dir.path().join("gate20"), "").unwrap();
    env.wait_state(&id, "exited");
    assert_eq!(lines(&env.check_output(&[&id])), numbered(21..=30));
}

#[test]
fn each_reader_has_its_own_cursor() {
    let env = Env::new();
    let id = gated_task(&env);
    wait_for_line(&env, &id, "line10");
    assert_eq!(
        lines(&env.check_output(&[&id, "--reader", "a"])),
        numbered(1..=10)
    );
    fs::write(env.dir.path().join("gate10"), "").unwrap();
    fs::write(env.dir.path().join("gate20"), "").unwrap();
    env.wait_state(&id, "exited");
    assert_eq!(
        lines(&env.check_output(&[&id, "--reader", "a"])),
        numbered(11..=30)
    );
    assert_eq!(
        lines(&env.check_output(&[&id, "--reader", "b"])),
        numbered(1..=30)
    );
    assert_eq!(
        lines(&env.check_output(&[&id, "--all-output", "--reader", "a"])),
        numbered(1..=30)
    );
}

#[test]
fn checks_racing_a_writer_and_each_other_lose_and_repeat_nothing() {
    let env = Env::new();
    let id = env.launch(&[
        "i=1; while [ $i -le 4000 ]; do echo line$i; [ $((i % 100)) = 0 ] && sleep 0.02; i=$((i+1)); done",
    ]);
    // Four concurrent checkers, each checking repeatedly while the task writes.
    let script = format!(
        r#"for n in 1 2 3 4; do ( k=0; while "$BG_CHECK" {id} --max-bytes 0 > out.$n.$k; do k=$((k+1))
             "$BG_CHECK" {id} --json | grep -q '"state":"running"' || break; done ) & done; wait"#
    );
    env.sh(&script).success();
    let mut seen: Vec<String> = Vec::new();
    let mut fruitful_checks = 0;
    for entry in fs::read_dir(env.dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("out.")
        {
            let shown: Vec<String> = lines(&fs::read(&path).unwrap())
                .into_iter()
                .skip(1)
                .collect();
            fruitful_checks += usize::from(!shown.is_empty());
            seen.extend(shown);
        }
    }
    assert!(
        fruitful_checks >= 4,
        "the checks did not overlap the writing"
    );
    seen.extend(lines(&env.check_output(&[&id, "--max-bytes", "0"])));
    let mut numbers: Vec<u32> = seen.iter().map(|l| l[4..].parse().unwrap()).collect();
    assert_eq!(numbers.len(), 4000, "lines were lost or repeated");
    numbers.sort_unstable();
    assert_eq!(numbers, (1..=4000).collect::<Vec<_>>());
}

#[test]
fn tail_grep_and_strip_ansi_shape_the_output() {
    let env = Env::new();
    let id = env.launch(&[
        r#"printf 'one\ntwo\n\033[1;31merror: red\033[0m\nfour\n10%%\r50%%\r100%%\nlast\r\n'"#,
    ]);
    env.wait_state(&id, "exited");
    let all = |extra: &[&str]| {
        let mut args = vec![id.as_str(), "--all-output"];
        args.extend_from_slice(extra);
        env.check_output(&args)
    };
    assert_eq!(all(&["--tail", "2"]), b"10%\r50%\r100%\nlast\r\n");
    assert_eq!(all(&["--strip-ansi", "--tail", "2"]), b"100%\nlast\n");
    assert_eq!(all(&["--grep", "^error"]), b"");
    assert_eq!(all(&["--grep", "^error", "--strip-ansi"]), b"error: red\n");
    assert_eq!(
        all(&["--grep", "o"]),
        b"one\ntwo\n\x1b[1;31merror: red\x1b[0m\nfour\n"
    );
    assert_eq!(all(&["--grep", "o", "--tail", "1"]), b"four\n");
    let bad = env.run(BG_CHECK, &[&id, "--grep", "("]);
    assert_eq!(bad.code(), 2);
    assert!(
        bad.stderr.starts_with("bg-check: --grep: invalid regex"),
        "{bad:?}"
    );
}

#[test]
fn invalid_utf8_passes_through_as_bytes() {
    let env = Env::new();
    let id = env.launch(&[r"printf 'ok \377\376 done\n'"]);
    env.wait_state(&id, "exited");
    assert_eq!(env.check_output(&[&id]), b"ok \xff\xfe done\n");
    assert_eq!(
        env.check_output(&[&id, "--all-output", "--strip-ansi", "--grep", "done"]),
        b"ok \xff\xfe done\n"
    );
}

#[test]
fn the_cap_announces_what_it_left_out() {
    let env = Env::new();
    let id = env.launch(&["seq 1 100000"]);
    let record = env.wait_state(&id, "exited");
    let path = record["output_path"].as_str().unwrap();
    let total = fs::metadata(path).unwrap().len();
    let out = env.check_output(&[&id, "--max-bytes", "1000"]);
    let text = String::from_utf8(out).unwrap();
    let (marker, shown) = text.split_once('\n').unwrap();
    let omitted: u64 = marker
        .strip_prefix("[... ")
        .and_then(|m| m.strip_suffix(&format!(" bytes omitted; full output: {path}]")))
        .unwrap_or_else(|| panic!("bad marker {marker:?}"))
        .parse()
        .unwrap();
    assert!(shown.len() <= 1000);
    assert_eq!(
        omitted + shown.len() as u64,
        total,
        "bytes vanished without notice"
    );
    assert!(shown.ends_with("99999\n100000\n"));
    assert!(
        shown.lines().next().unwrap().parse::<u32>().is_ok(),
        "starts mid-line"
    );
    // The default cap is about 30 KB; --max-bytes 0 lifts it.
    let default = env.check_output(&[&id, "--all-output"]);
    assert!(
        default.len() < 31_000 && default.starts_with(b"[... "),
        "{}",
        default.len()
    );
    assert_eq!(
        env.check_output(&[&id, "--all-output", "--max-bytes", "0"])
            .len() as u64,
        total
    );
}

#[test]
fn very_long_lines_are_capped_too() {
    let env = Env::new();
    let id = env.launch(&["head -c 300000 /dev/zero | tr '\\0' x; echo; echo end"]);
    env.wait_state(&id, "exited");
    let out = env.check_output(&[&id]);
    assert!(out.starts_with(b"[... "));
    assert!(out.len() < 31_000);
    assert!(out.ends_with(b"xxxx\nend\n"));
    let grep = env.check_output(&[&id, "--all-output", "--grep", "x", "--max-bytes", "100"]);
    assert!(
        grep.starts_with(b"[... "),
        "{:?}",
        String::from_utf8_lossy(&grep)
    );
    assert!(grep.ends_with(&[b'x'; 50]) || grep.ends_with(b"x\n"));
}

#[test]
fn the_tail_of_a_huge_log_is_read_without_reading_the_log() {
    let env = Env::new();
    let id = env.launch(&["true"]);
    let record = env.wait_state(&id, "exited");
    // A 1 GiB log (sparse, so the test costs no disk) ending in two lines.
    let path = record["output_path"].as_str().unwrap().to_string();
    let log = fs::OpenOptions::new().append(true).open(&path).unwrap();
    log.set_len(1 << 30).unwrap();
    drop(log);
    fs::OpenOptions::new().append(true).open(&path).unwrap();
    std::io::Write::write_all(
        &mut fs::OpenOptions::new().append(true).open(&path).unwrap(),
        b"\nlast but one\nlast\n",
    )
    .unwrap();
    let mut command = env.cmd(BG_CHECK);
    command.args([&id, "--tail", "2"]).stdout(Stdio::piped());
    let mut child = command.spawn().unwrap();
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    // Read the finished child's I/O counters before reaping it.
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::wait::waitid(
        nix::sys::wait::Id::Pid(pid),
        nix::sys::wait::WaitPidFlag::WEXITED | nix::sys::wait::WaitPidFlag::WNOWAIT,
    )
    .unwrap();
    let io = fs::read_to_string(format!("/proc/{pid}/io")).unwrap();
    assert!(child.wait().unwrap().success());
    assert!(out.ends_with("last but one\nlast\n"), "{out:?}");
    let read: u64 = io
        .lines()
        .find_map(|l| l.strip_prefix("rchar: "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        read < 4 << 20,
        "read {read} bytes of a 1 GiB log to show two lines"
    );
}

#[test]
fn a_deleted_output_log_is_reported_clearly() {
    let env = Env::new();
    let id = env.launch(&["echo hi"]);
    env.wait_state(&id, "exited");
    fs::remove_file(env.task_dir(&id).join("output.log")).unwrap();
    let out = env.run(BG_CHECK, &[&id]);
    assert_eq!(out.code(), 2, "{out:?}");
    assert!(
        out.stderr.starts_with("bg-check: the output of task"),
        "{out:?}"
    );
    assert!(out.stderr.contains("was deleted"), "{out:?}");
    // The record itself is still there.
    assert_eq!(env.record(&id)["exit_code"], 0);
}
