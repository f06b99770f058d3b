//! The one way a user's regex is compiled (`bg-check --grep`, `bg-run
//! --ready`), with its cost bounded. The regex crate never backtracks, but a
//! search costs up to the haystack's length times the compiled program's
//! size: `.{0,1000}.{0,1000}.{0,1000}Z` compiles to ~10 MB and took 19.5 s
//! of CPU on 200 KB of log, and `--ready` matched it against every line
//! until its timeout. A program capped at [`SIZE_LIMIT`] keeps every
//! accepted pattern cheap per byte; anything larger is refused up front.

use regex::Error as RegexError;
use regex::bytes::{Regex, RegexBuilder};

use crate::{Error, Result};

/// The most a compiled pattern may take. Ordinary patterns (`error|FAIL`,
/// `^test .* ok$`, `\w+\s+\d{1,5}`, even `.{0,1000}Z`) take a few KB to a
/// few hundred; three chained `.{0,1000}` take about 10 MB.
pub const SIZE_LIMIT: usize = 1 << 20;
/// The lazy DFA's cache: memory, not refusal. When it fills up, the
/// search falls back to the (bounded, by [`SIZE_LIMIT`]) NFA simulation.
pub const DFA_SIZE_LIMIT: usize = 2 << 20;

/// Compiles `pattern` for `option` (`--grep`, `--ready`), or says why not:
/// `--grep: invalid regex: ...` or `--grep: pattern too large ...`, both
/// usage errors (exit 2).
pub fn compile(option: &str, pattern: &str) -> Result<Regex> {
    RegexBuilder::new(pattern)
        .size_limit(SIZE_LIMIT)
        .dfa_size_limit(DFA_SIZE_LIMIT)
        .build()
        .map_err(|err| match err {
            RegexError::CompiledTooBig(_) => Error::usage(format!(
                "{option}: pattern too large: compiled, it would exceed {} KiB, and matching it \
                 could take minutes of CPU; use smaller repetition counts (e.g. .* for .{{0,1000}})",
                SIZE_LIMIT >> 10
            )),
            other => Error::usage(format!("{option}: invalid regex: {other}")),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_patterns_compile_and_match() {
        for pattern in [
            "error|FAIL",
            "^test .* ok$",
            r"\w+\s+\d{1,5}",
            ".{0,1000}Z",
            "(?i)error: .{0,200}failed",
        ] {
            let regex = compile("--grep", pattern).expect(pattern);
            assert!(!regex.is_match(b"nothing to see"), "{pattern}");
        }
    }

    #[test]
    fn huge_programs_are_refused_and_bad_syntax_is_invalid() {
        let err = compile("--grep", ".{0,1000}.{0,1000}.{0,1000}Z").expect_err("too large");
        assert!(
            err.to_string().starts_with("--grep: pattern too large"),
            "{err}"
        );
        assert_eq!(err.exit_code(), crate::exit::ExitCode::TROUBLE);
        let err = compile("--ready", "(").expect_err("invalid");
        assert!(
            err.to_string().starts_with("--ready: invalid regex"),
            "{err}"
        );
    }
}
