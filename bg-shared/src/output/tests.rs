use super::*;
use crate::ansi::render_plain;
use std::io::Write;

fn log(content: &[u8]) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().expect("temp file");
    file.write_all(content).expect("write");
    file
}

fn read(content: &[u8], from: u64, filters: &Filters, running: bool) -> Excerpt {
    let file = log(content);
    read_excerpt(file.path(), from, filters, running).expect("read")
}

#[test]
fn reads_from_the_cursor_and_holds_back_a_half_line_while_running() {
    let all = Filters::default();
    let e = read(b"a\nb\nhal", 2, &all, true);
    assert_eq!((e.bytes.as_slice(), e.next), (&b"b\n"[..], 4));
    let e = read(b"a\nb\nhal", 4, &all, true);
    assert_eq!((e.bytes.as_slice(), e.next), (&b"hal"[..], 7));
    let e = read(b"a\nb\nhal", 2, &all, false);
    assert_eq!(e.bytes, b"b\nhal");
}

#[test]
fn tail_counts_lines_from_the_end() {
    let tail = Filters {
        tail_lines: Some(2),
        ..Filters::default()
    };
    assert_eq!(read(b"1\n2\n3\n4\n", 0, &tail, false).bytes, b"3\n4\n");
    assert_eq!(read(b"1\n2\n3\n4", 0, &tail, false).bytes, b"3\n4");
    assert_eq!(read(b"1\n", 0, &tail, false).bytes, b"1\n");
    let e = read(
        b"1\n2\n3\n4\n",
        4,
        &Filters {
            tail_lines: Some(9),
            ..Filters::default()
        },
        false,
    );
    assert_eq!(e.bytes, b"3\n4\n");
}

#[test]
fn a_range_stops_at_its_end_whatever_the_filters() {
    let until = |end| Filters {
        until: Some(end),
        ..Filters::default()
    };
    let e = read(b"1\n22\n333\n4444\n", 2, &until(9), true);
    assert_eq!(e.bytes, b"22\n333\n");
    assert_eq!(e.next, 9);
    let grep = Filters {
        grep: Regex::new("3|4").ok(),
        ..until(9)
    };
    assert_eq!(read(b"1\n22\n333\n4444\n", 0, &grep, false).bytes, b"333\n");
    // An end before the start reads nothing.
    assert!(read(b"1\n22\n", 4, &until(1), false).bytes.is_empty());
}

#[test]
fn the_cap_keeps_the_newest_whole_lines_and_counts_the_rest() {
    let capped = Filters {
        max_bytes: Some(5),
        ..Filters::default()
    };
    let e = read(b"aaaa\nbb\ncc\n", 0, &capped, false);
    assert_eq!(e.bytes, b"cc\n");
    assert_eq!(e.omitted, 8);
    assert_eq!(e.bytes.len() as u64 + e.omitted, 11);
}

#[test]
fn grep_keeps_matching_lines_within_tail_and_cap() {
    let grep = Filters {
        grep: Regex::new("err").ok(),
        tail_lines: Some(2),
        ..Filters::default()
    };
    let e = read(b"err1\nok\nerr2\nerr3\nerr4-partial", 0, &grep, true);
    assert_eq!(e.bytes, b"err2\nerr3\n");
    assert_eq!(e.next, 18);
    let plain = Filters {
        grep: Regex::new("^done$").ok(),
        plain: true,
        ..Filters::default()
    };
    assert_eq!(
        read(b"\x1b[32mdone\x1b[0m\n", 0, &plain, false).bytes,
        b"done\n"
    );
}

#[test]
fn a_truncated_log_is_read_from_the_start() {
    assert_eq!(
        read(b"new\n", 100, &Filters::default(), false).bytes,
        b"new\n"
    );
}

/// What a grep should print, computed the obvious way, all in memory.
fn reference_grep(content: &[u8], from: usize, filters: &Filters) -> (Vec<u8>, u64) {
    let pattern = filters.grep.as_ref().expect("a pattern");
    let shown = |line: &[u8]| {
        if filters.plain {
            render_plain(line)
        } else {
            line.to_vec()
        }
    };
    let matched: Vec<Vec<u8>> = content[from..]
        .split_inclusive(|b| *b == b'\n')
        .filter(|line| line_matches(pattern, &shown(&line[..line.len().min(MAX_LINE)])))
        .map(shown)
        .collect();
    let tail = filters.tail_lines.unwrap_or(usize::MAX).min(matched.len());
    let candidates = &matched[matched.len() - tail..];
    let max = filters.max_bytes.unwrap_or(u64::MAX);
    let (mut kept, mut omitted, mut used) = (Vec::new(), 0, 0u64);
    for (i, line) in candidates.iter().enumerate().rev() {
        let len = line.len() as u64;
        if used + len <= max && omitted == 0 {
            used += len;
            kept.insert(0, line.clone());
        } else if i + 1 == candidates.len() {
            let cut = usize::try_from(len - max).expect("a small cut");
            omitted += cut as u64;
            kept.insert(0, line[cut..].to_vec());
        } else {
            omitted += len;
        }
    }
    (kept.concat(), omitted)
}

#[test]
fn grep_streams_what_an_in_memory_grep_would_print() {
    let mut content = Vec::new();
    for i in 0..3000 {
        let line = match i % 7 {
            0 => format!("error {i}\n"),
            1 => format!("\x1b[31merror\x1b[0m {i}\r\n"),
            2 => format!("10%\rerror {i} done\n"),
            3 => format!("{}error\n", "x".repeat(i % 200)),
            _ => format!("ok {i}\n"),
        };
        content.extend_from_slice(line.as_bytes());
    }
    content.extend_from_slice(b"error without newline");
    let file = log(&content);
    let error = Regex::new("^error").ok();
    for plain in [false, true] {
        for tail in [None, Some(0), Some(1), Some(5), Some(700)] {
            for max in [
                None,
                Some(0),
                Some(3),
                Some(100),
                Some(30_000),
                Some(300_000),
            ] {
                for from in [0, 1, 20_000] {
                    let filters = Filters {
                        grep: error.clone(),
                        plain,
                        tail_lines: tail,
                        max_bytes: max,
                        until: None,
                    };
                    let got = read_excerpt(file.path(), from, &filters, false).expect("read");
                    let (bytes, omitted) = reference_grep(&content, from as usize, &filters);
                    let case = format!("plain {plain} tail {tail:?} max {max:?} from {from}");
                    assert_eq!(got.omitted, omitted, "{case}");
                    assert!(got.bytes == bytes, "{case}");
                }
            }
        }
    }
}

#[test]
fn a_giant_matching_line_is_printed_whole_or_cut_by_the_cap_alone() {
    let giant = [
        b"error ".as_slice(),
        &vec![b'x'; 3 * MAX_LINE],
        b"\x1b[0m end\n",
    ]
    .concat();
    let content = [b"a\n".as_slice(), &giant, b"b\nerror 2\n"].concat();
    let file = log(&content);
    let error = Regex::new("^error").ok();
    for plain in [false, true] {
        for max in [None, Some(10), Some(MAX_LINE as u64 * 2)] {
            let filters = Filters {
                grep: error.clone(),
                plain,
                tail_lines: None,
                max_bytes: max,
                until: None,
            };
            let got = read_excerpt(file.path(), 0, &filters, false).expect("read");
            let (bytes, omitted) = reference_grep(&content, 0, &filters);
            assert_eq!(got.omitted, omitted, "plain {plain} max {max:?}");
            assert!(got.bytes == bytes, "plain {plain} max {max:?}");
        }
    }
}

#[test]
fn plain_ranges_stream_like_a_whole_rendering() {
    let mut content = Vec::new();
    for i in 0..20_000 {
        content.extend_from_slice(format!("\x1b[1m{i}\x1b[0m\r{i}%\r\n").as_bytes());
    }
    let file = log(&content);
    let filters = Filters {
        plain: true,
        ..Filters::default()
    };
    let got = read_excerpt(file.path(), 0, &filters, false).expect("read");
    assert_eq!(got.bytes, render_plain(&content));
    assert_eq!(got.next, content.len() as u64);
}

#[test]
fn a_log_is_opened_only_as_a_regular_file_of_its_own() {
    let dir = tempfile::tempdir().expect("temp dir");
    let target = log(b"not yours\n");
    let link = dir.path().join("output.log");
    std::os::unix::fs::symlink(target.path(), &link).expect("symlink");
    let err = Reading::open(&link, 0, &Filters::default(), false).err();
    let err = err.expect("a symlink is refused");
    assert!(
        err.to_string()
            .ends_with("is a symlink, which is never followed"),
        "{err}"
    );
    let why = unavailable(&err, "abc123", &link).expect("said in words");
    assert!(
        why.starts_with("the output of task abc123 is not shown: "),
        "{why}"
    );
    let err = open_log(dir.path()).expect_err("a directory is refused");
    assert!(
        crate::cli::error_chain(&err).ends_with("not a regular file"),
        "{err}"
    );
}

/// A log of 100 numbered lines of 9 bytes, with an output cap's record.
fn capped_log() -> (tempfile::TempDir, std::path::PathBuf, cap::CapFile) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("output.log");
    let lines: Vec<u8> = (0..100)
        .flat_map(|n| format!("line {n:03}\n").into_bytes())
        .collect();
    std::fs::write(&path, &lines).expect("write");
    let layout = cap::Layout {
        cap: 1000,
        ..cap::Layout::default()
    };
    let record = cap::CapFile::create(&dir.path().join(cap::FILE), &layout).expect("cap");
    (dir, path, record)
}

/// What the supervisor does: publishes `[90, 450)` as dropped, then
/// frees it (here: zeros, as a punched hole reads).
fn drop_middle(path: &Path, record: &cap::CapFile) {
    let layout = cap::Layout {
        cap: 1000,
        head_end: 90,
        drop_end: 450,
        ..cap::Layout::default()
    };
    record.publish(&layout).expect("publish");
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .expect("open");
    std::os::unix::fs::FileExt::write_all_at(&file, &[0; 360], 90).expect("zeros");
}

#[test]
fn bytes_dropped_while_a_read_streams_become_the_marker_never_zeros() {
    let (_dir, path, record) = capped_log();
    let reading = Reading::open(&path, 0, &Filters::default(), false).expect("plan");
    drop_middle(&path, &record);
    let mut shown = Vec::new();
    reading.write_to(&mut shown).expect("stream");
    let marker = b"[... 360 bytes dropped by the output cap (1000 B) ...]\n";
    let at = shown.windows(marker.len()).position(|w| w == marker);
    assert_eq!(at, Some(90), "{}", String::from_utf8_lossy(&shown));
    assert!(!shown.contains(&0));
    assert_eq!(
        &shown[90 + marker.len()..],
        &std::fs::read(&path).expect("log")[450..]
    );
}

#[test]
fn a_planned_read_meets_a_drop_as_a_failed_read_and_a_stream_skips_it() {
    let (_dir, path, record) = capped_log();
    let (source, from) = source::Source::open(&path, 0).expect("view");
    drop_middle(&path, &record);
    assert!(matches!(source.read_at(from, 64), Ok(bytes) if bytes.len() == 64));
    assert!(matches!(source.read_at(80, 64), Err(Error::OutputOutrun)));
    let mut stream = OutputStream::open(&path, true).expect("stream");
    let mut text = String::new();
    std::io::Read::read_to_string(&mut stream, &mut text).expect("read");
    assert!(text.starts_with("line 000\n"));
    assert!(
        text.contains(
            "line 009\n[... 360 bytes dropped by the output cap (1000 B) ...]\nline 050\n"
        )
    );
    assert!(text.ends_with("line 099\n") && !text.contains('\0'));
    // A reader whose cursor was inside the range is told what it missed.
    let e = read_excerpt(&path, 300, &Filters::default(), false).expect("read");
    assert!(e.bytes.starts_with(b"[... 150 bytes dropped"));
    assert_eq!(e.next, 900);
}
