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
            pytest: re(r"(?m)^=+ (.*\b(?:passed|failed)\b.*) in [\d.]+s.*=+\s*$"),
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
    for caps in p
        .pytest
        .captures_iter(output)
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
}
