//! Each tool's help beyond its options (examples, notes, exit status,
//! environment), kept as data so that `--help` and the man pages (rendered
//! by `cargo xtask docs`) say the same thing, and tests can check that
//! every example parses.

/// One tool's help text.
pub struct Help {
    /// A command line, and what it does ("" when the line says it all).
    /// A description may hold newlines.
    pub examples: &'static [(&'static str, &'static str)],
    /// Paragraphs after the examples.
    pub notes: &'static [&'static str],
    /// An exit code (or a range, "128+N"), and what it means.
    pub exit_status: &'static [(&'static str, &'static str)],
    /// An environment variable, and what it sets.
    pub environment: &'static [(&'static str, &'static str)],
}

/// Where descriptions start in `--help`: a longer command line gets its
/// description on the next line.
const COLUMN: usize = 40;

impl Help {
    /// The text `--help` prints after the options.
    pub fn after_help(&self) -> String {
        let mut out = String::from("Examples:\n");
        for (command, what) in self.examples {
            out.push_str(&format!("  {command}"));
            let mut lines = what.lines();
            match lines.next() {
                Some(first) if command.len() + 4 <= COLUMN => {
                    let pad = COLUMN - 2 - command.len();
                    out.push_str(&format!("{:pad$}{first}\n", ""));
                }
                Some(first) => out.push_str(&format!("\n{:COLUMN$}{first}\n", "")),
                None => out.push('\n'),
            }
            for line in lines {
                out.push_str(&format!("{:COLUMN$}{line}\n", ""));
            }
        }
        for note in self.notes {
            out.push_str(&format!("\n{note}\n"));
        }
        out.push_str("\nExit status:\n");
        out.push_str(&table(self.exit_status));
        if !self.environment.is_empty() {
            out.push_str("\nEnvironment:\n");
            out.push_str(&table(self.environment));
        }
        out.trim_end().to_string()
    }
}

/// Two columns, the second two spaces after the longest key.
fn table(rows: &[(&str, &str)]) -> String {
    let width = rows.iter().map(|(key, _)| key.len()).max().unwrap_or(0);
    rows.iter()
        .map(|(key, meaning)| format!("  {key:width$}  {meaning}\n"))
        .collect()
}

/// The variable every tool reads.
pub const STATE_DIR_ENV: (&str, &str) = ("BG_STATE_DIR", "the state directory (see --state-dir)");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_line_up_or_go_below() {
        let help = Help {
            examples: &[
                ("tool a", "short"),
                (
                    "tool --a-very-long-option-list --and-more",
                    "below\nand more",
                ),
            ],
            notes: &["A note."],
            exit_status: &[("0", "ok"), ("128+N", "killed by signal N")],
            environment: &[],
        };
        let text = help.after_help();
        assert!(text.contains(&format!("  tool a{}short\n", " ".repeat(32))));
        assert!(text.contains(&format!("--and-more\n{}below\n", " ".repeat(40))));
        assert!(text.contains(&format!("{}and more\n", " ".repeat(40))));
        assert!(text.contains("\n\nA note.\n"));
        assert!(text.ends_with("  128+N  killed by signal N"));
        assert!(text.contains("  0      ok\n"));
        assert!(!text.contains("Environment"));
    }
}
