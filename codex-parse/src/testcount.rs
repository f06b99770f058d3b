//! Test results recognised in a command's output: cargo test and nextest,
//! pytest, go test, jest and vitest. Counts are added up over every
//! summary line found (a workspace prints one `test result:` per crate).

use std::sync::OnceLock;

use regex::Regex;

use crate::model::TestCounts;

/// A word every summary below has: most outputs have none, and one search
/// for them all settles that. Built on its own: the summaries' patterns
/// take milliseconds to build, spent only once an output may have one.
fn any() -> &'static Regex {
    static ANY: OnceLock<Regex> = OnceLock::new();
    ANY.get_or_init(|| {
        Regex::new(r"passed|failed|--- PASS|--- FAIL|Tests").unwrap_or_else(|_| unreachable!())
    })
}

struct Patterns {
    cargo: Regex,
    nextest: Regex,
    pytest: Regex,
    go: Regex,
    jest: Regex,
    vitest: Regex,
}

fn patterns() -> &'static Patterns {
    static PATTERNS: OnceLock<Patterns> = OnceLock::new();
    PATTERNS.get_or_init(|| {
        let re = |pattern: &str| Regex::new(pattern).unwrap_or_else(|_| unreachable!());
        Patterns {
            cargo: re(r"(?m)^test result: \w+\. (\d+) passed; (\d+) failed"),
            nextest: re(
                r"(?m)^\s*Summary \[.*?\] +\d+ tests? run: (\d+) passed(?:.*?, (\d+) failed)?",
            ),
            pytest: re(r"^=+ (.*\b(?:passed|failed)\b.*) in [\d.]+s.*=+\s*$"),
            go: re(r"(?m)^\s*--- (PASS|FAIL):"),
            jest: re(r"(?m)^Tests:\s+(.*\d+ total)"),
            vitest: re(r"(?m)^\s*Tests\s+(.*)\(\d+\)\s*$"),
        }
    })
}

/// The counts in `output`, or `None` if it shows no known test summary.
pub fn recognise(output: &str) -> Option<TestCounts> {
    // Under a terminal, runners colour their summaries.
    let plain;
    let output = if output.contains('\x1b') {
        plain =
            String::from_utf8_lossy(&bg_shared::ansi::render_plain(output.as_bytes())).into_owned();
        plain.as_str()
    } else {
        output
    };
    if !any().is_match(output) {
        return None;
    }
    let p = patterns();
    let number =
        |m: Option<regex::Match>| m.and_then(|m| m.as_str().parse::<u64>().ok()).unwrap_or(0);
    let mut counts = TestCounts::default();
    let mut found = false;
    for caps in p.cargo.captures_iter(output) {
        found = true;
        counts.passed = counts.passed.saturating_add(number(caps.get(1)));
        counts.failed = counts.failed.saturating_add(number(caps.get(2)));
    }
    if !found && let Some(caps) = p.nextest.captures_iter(output).last() {
        found = true;
        counts.passed = counts.passed.saturating_add(number(caps.get(1)));
        counts.failed = counts.failed.saturating_add(number(caps.get(2)));
    }
    for caps in pytest_summaries(output)
        .chain(p.jest.captures_iter(output))
        .chain(p.vitest.captures_iter(output))
    {
        found = true;
        let text = caps.get(1).map_or("", |m| m.as_str());
        counts.passed = counts.passed.saturating_add(count_of(text, "passed"));
        counts.failed = counts.failed.saturating_add(count_of(text, "failed"));
    }
    if !found {
        for caps in p.go.captures_iter(output) {
            found = true;
            match caps.get(1).map(|m| m.as_str()) {
                Some("PASS") => counts.passed = counts.passed.saturating_add(1),
                _ => counts.failed = counts.failed.saturating_add(1),
            }
        }
    }
    found.then_some(counts)
}

/// pytest's summary lines (`=== 2 failed, 5 passed in 0.12s ===`), each
/// matched on its own. The pattern's `\b`s are Unicode word boundaries,
/// which the regex crate's fast engines cannot check on non-ASCII text:
/// over a whole output of accented or CJK text it fell back to its slowest
/// engine. A summary is one line (only its final `\s*$` could reach past
/// the line's end, and it ends there too), so matching the lines that
/// start with `=` and name a count, one by one, finds the same summaries.
fn pytest_summaries(output: &str) -> impl Iterator<Item = regex::Captures<'_>> {
    output
        .split('\n')
        .filter(|line| {
            line.starts_with('=') && (line.contains("passed") || line.contains("failed"))
        })
        .filter_map(|line| patterns().pytest.captures(line))
}

/// `3` from `2 failed, 3 passed` for `passed`.
fn count_of(text: &str, word: &str) -> u64 {
    let words: Vec<&str> = text
        .split(|c: char| c == ',' || c == '|' || c.is_whitespace())
        .filter(|w| !w.is_empty())
        .collect();
    words
        .windows(2)
        .filter(|pair| pair[1] == word)
        .filter_map(|pair| pair[0].parse::<u64>().ok())
        .fold(0u64, u64::saturating_add)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(output: &str) -> Option<(u64, u64)> {
        recognise(output).map(|c| (c.passed, c.failed))
    }

    #[test]
    fn the_usual_runners_are_recognised() {
        let cargo = "running 3 tests\ntest result: ok. 3 passed; 0 failed; 0 ignored\n\
                     test result: FAILED. 1 passed; 2 failed; 0 ignored\n";
        assert_eq!(counts(cargo), Some((4, 2)));
        let nextest = "     Summary [   0.012s] 5 tests run: 4 passed, 1 failed, 0 skipped\n";
        assert_eq!(counts(nextest), Some((4, 1)));
        let pytest = "======= 2 failed, 5 passed in 0.12s =======\n";
        assert_eq!(counts(pytest), Some((5, 2)));
        let go = "=== RUN   TestA\n--- PASS: TestA (0.00s)\n--- FAIL: TestB (0.00s)\nFAIL\n";
        assert_eq!(counts(go), Some((1, 1)));
        let jest = "Tests:       1 failed, 2 skipped, 7 passed, 10 total\n";
        assert_eq!(counts(jest), Some((7, 1)));
        let vitest = " Tests  2 failed | 5 passed (7)\n";
        assert_eq!(counts(vitest), Some((5, 2)));
        let coloured = "\x1b[32mtest result: ok\x1b[0m. 3 passed; 0 failed; 0 ignored\n";
        assert_eq!(counts(coloured), Some((3, 0)));
        let huge = format!(
            "test result: ok. {} passed; 0 failed\ntest result: ok. 5 passed; 0 failed\n",
            u64::MAX
        );
        assert_eq!(counts(&huge), Some((u64::MAX, 0)));
        assert_eq!(counts("hello\nREADME.md\n"), None);
    }

    #[test]
    fn summaries_among_non_ascii_text() {
        let pytest = "Prüfung läuft… 日本語のテスト 🎉\n\
                      ===== 1 failed, 12 passed in 0.31s =====\n\
                      — «fin» —\n";
        assert_eq!(counts(pytest), Some((12, 1)));
        let cargo = "test tests::größe_prüfen ... ok\ntest tests::emoji_🎉 ... ok\n\
                     test result: ok. 2 passed; 0 failed; 0 ignored\n";
        assert_eq!(counts(cargo), Some((2, 0)));
        // A count glued to a word is no pytest count, in any script.
        assert_eq!(counts("=== 3 passedé in 0.1s ===\n"), None);
        assert_eq!(counts("=== 3 passé, 2 failed in 0.1s ===\n"), Some((0, 2)));
    }

    /// pytest's summaries, found line by line, are the ones the pattern
    /// finds in the whole output (as it was matched before).
    #[test]
    fn pytest_lines_are_the_whole_output_matches() {
        let whole =
            Regex::new(r"(?m)^=+ (.*\b(?:passed|failed)\b.*) in [\d.]+s.*=+\s*$").expect("pattern");
        let pieces = [
            "=",
            "== ",
            " ",
            "3 passed",
            "1 failed",
            "passedé",
            "é",
            "日本",
            " in 0.5s ",
            "=",
            "\n",
            "\r",
            "\t",
            "x",
            ",",
            "🎉",
            "=== 2 failed, 1 passed in 1.0s ===",
        ];
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = |below: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            usize::try_from(seed % below as u64).unwrap_or(0)
        };
        let mut found = 0;
        for _ in 0..5_000 {
            let text: String = (0..1 + next(16))
                .map(|_| pieces[next(pieces.len())])
                .collect();
            let ours: Vec<String> = pytest_summaries(&text).map(|c| c[1].to_string()).collect();
            let theirs: Vec<String> = whole
                .captures_iter(&text)
                .map(|c| c[1].to_string())
                .collect();
            assert_eq!(ours, theirs, "{text:?}");
            found += ours.len();
        }
        assert!(found > 100, "too few summaries: {found}");
    }
}
