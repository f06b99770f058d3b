//! Rendering terminal output as plain text: escape sequences removed and
//! carriage-return overwrites resolved, as a terminal would show the line.
//! Works on bytes, so invalid UTF-8 passes through untouched, and as a
//! stream ([`Plain`]), so a log of any size is rendered in bounded memory.
//!
//! Text is never dropped because an escape sequence is broken: what is
//! dropped is only a sequence known to be one. A control sequence (CSI) is
//! made of parameter bytes, so one cut short by a line break loses no text;
//! a string sequence (OSC, DCS, ...) that meets a line break, the end of
//! the input, or grows past [`MAX_STRING`] before its terminator was never a
//! title or a link, and everything after its `ESC` is shown as text. A
//! terminal would swallow it; a reader of the log must not miss the
//! `FAILED: 3 tests` that followed.

const ESC: u8 = 0x1b;
const BEL: u8 = 0x07;
/// CAN and SUB cancel a sequence on a terminal.
const CAN: u8 = 0x18;
const SUB: u8 = 0x1a;
/// A longer CSI is not one: its bytes are shown.
const MAX_CSI: usize = 64;
/// A longer string sequence is not one (a title, a link, a clipboard
/// write): its bytes are shown, and memory stays bounded.
pub const MAX_STRING: usize = 64 * 1024;
/// The most of a line held back waiting for a carriage return that could
/// overwrite it. A longer line is written out as it comes, all of it, and a
/// carriage return after that starts a new line instead.
pub const MAX_HELD_LINE: usize = 1 << 20;

/// Removes ANSI escape sequences (CSI, OSC, DCS and two-byte escapes) and
/// keeps, of each line, only what follows its last carriage return (a
/// progress bar's final state). `\r\n` line endings count as `\n`.
pub fn render_plain(input: &[u8]) -> Vec<u8> {
    let mut plain = Plain::default();
    let mut out = Vec::with_capacity(input.len());
    plain.feed(input, &mut out);
    plain.finish(&mut out);
    out
}

/// [`render_plain`] as a stream: feed the input in pieces of any size, then
/// `finish`. The result does not depend on where the pieces are cut.
#[derive(Debug, Default)]
pub struct Plain {
    state: State,
    /// The bytes after the `ESC` of a sequence in progress, to be shown if
    /// it turns out broken. At most [`MAX_STRING`].
    pending: Vec<u8>,
    lines: Lines,
}

#[derive(Debug, Default, Clone, Copy, PartialEq)]
enum State {
    #[default]
    Text,
    Escape,
    /// `ESC [` ... a final byte in 0x40..=0x7e.
    Csi,
    /// `ESC ]`, `ESC P`, `ESC _`, `ESC ^`, `ESC X`: a string ended by BEL or `ESC \`.
    String,
    StringEscape,
    /// `ESC (`, `ESC )`, `ESC #` and friends take one more byte.
    Charset,
}

impl Plain {
    pub fn feed(&mut self, mut input: &[u8], out: &mut Vec<u8>) {
        while !input.is_empty() {
            if self.state == State::Text {
                let run = memchr::memchr(ESC, input).unwrap_or(input.len());
                self.lines.text(&input[..run], out);
                if run == input.len() {
                    return;
                }
                self.start_escape();
                input = &input[run + 1..];
            } else {
                let byte = input[0];
                input = &input[1..];
                self.escape_byte(byte, out);
            }
        }
    }

    /// Ends the input: a string sequence still open was never one, and its
    /// bytes are shown; the last line is written out.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if matches!(self.state, State::String | State::StringEscape) {
            self.show_pending(out);
        }
        self.state = State::Text;
        self.pending.clear();
        self.lines.finish(out);
    }

    fn start_escape(&mut self) {
        self.state = State::Escape;
        self.pending.clear();
    }

    fn escape_byte(&mut self, byte: u8, out: &mut Vec<u8>) {
        self.pending.push(byte);
        self.state = match (self.state, byte) {
            (_, ESC) if self.state != State::String => {
                // A new sequence: the unfinished one was only parameters.
                self.start_escape();
                State::Escape
            }
            (State::Escape, b'[') => State::Csi,
            (State::Escape, b']' | b'P' | b'_' | b'^' | b'X') => State::String,
            (State::Escape, b' '..=b'/') => State::Charset,
            (State::Escape | State::Charset, b'0'..=b'~') => State::Text,
            (State::Csi, 0x40..=0x7e) => State::Text,
            (State::Csi, 0x20..=0x3f) if self.pending.len() <= MAX_CSI => State::Csi,
            (State::Csi, 0x20..=0x3f) => return self.broken(out),
            (State::String, BEL) => State::Text,
            (State::String, ESC) => State::StringEscape,
            (State::String, b'\n' | CAN | SUB) => return self.broken_string(byte, out),
            (State::String, _) if self.pending.len() > MAX_STRING => return self.broken(out),
            (State::String, _) => State::String,
            (State::StringEscape, b'\\') => State::Text,
            (State::StringEscape, _) => {
                // ESC ends the string, as on a terminal, and starts a new sequence.
                self.start_escape();
                return self.escape_byte(byte, out);
            }
            // Anything else cuts the sequence short: the byte is text.
            (_, _) => {
                self.state = State::Text;
                return self.lines.text(&[byte], out);
            }
        };
    }

    /// A string sequence cut by `byte`: its bytes are text, and so is `byte`.
    fn broken_string(&mut self, byte: u8, out: &mut Vec<u8>) {
        self.pending.pop();
        self.show_pending(out);
        self.state = State::Text;
        self.lines.text(&[byte], out);
    }

    /// A sequence too long to be one: its bytes so far are text.
    fn broken(&mut self, out: &mut Vec<u8>) {
        self.show_pending(out);
        self.state = State::Text;
    }

    fn show_pending(&mut self, out: &mut Vec<u8>) {
        let pending = std::mem::take(&mut self.pending);
        self.lines.text(&pending, out);
    }
}

/// Carriage returns resolved: the current line's visible text since its
/// last `\r`, held until its newline (up to [`MAX_HELD_LINE`]).
#[derive(Debug, Default)]
struct Lines {
    line: Vec<u8>,
    /// A `\r` was seen: the next visible byte overwrites the line, unless
    /// it is the `\n` of a `\r\n`.
    overwrite: bool,
    /// Part of this line was already written out (it was too long to hold).
    spilled: bool,
}

impl Lines {
    fn text(&mut self, mut run: &[u8], out: &mut Vec<u8>) {
        while let Some(at) = memchr::memchr2(b'\r', b'\n', run) {
            if run[at] == b'\r' {
                self.visible(&run[..at], out);
                self.overwrite = true;
            } else {
                if self.line.is_empty() && !self.overwrite {
                    out.extend_from_slice(&run[..=at]);
                } else {
                    self.visible(&run[..at], out);
                    out.append(&mut self.line);
                    out.push(b'\n');
                }
                self.overwrite = false;
                self.spilled = false;
            }
            run = &run[at + 1..];
        }
        self.visible(run, out);
    }

    fn visible(&mut self, bytes: &[u8], out: &mut Vec<u8>) {
        if bytes.is_empty() {
            return;
        }
        if self.overwrite {
            self.overwrite = false;
            if self.spilled {
                // What was written cannot be taken back: start a new line.
                out.push(b'\n');
                self.spilled = false;
            }
            self.line.clear();
        }
        if self.spilled {
            out.extend_from_slice(bytes);
            return;
        }
        self.line.extend_from_slice(bytes);
        if self.line.len() > MAX_HELD_LINE {
            out.append(&mut self.line);
            self.spilled = true;
        }
    }

    fn finish(&mut self, out: &mut Vec<u8>) {
        out.append(&mut self.line);
        self.overwrite = false;
        self.spilled = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_colours_titles_and_charsets_but_keeps_tabs_and_bytes() {
        let input = b"\x1b[1;32mok\x1b[0m\tdone \x1b]0;title\x07x\x1b(By \xff\xfe\n";
        assert_eq!(render_plain(input), b"ok\tdone xy \xff\xfe\n");
    }

    #[test]
    fn carriage_returns_keep_the_last_overwrite() {
        let input = b"10%\r50%\r100%\nnext\r\nlast\rLAST";
        assert_eq!(render_plain(input), b"100%\nnext\nLAST");
    }

    #[test]
    fn unterminated_sequences_swallow_nothing_after_them_wrongly() {
        assert_eq!(render_plain(b"a\x1b[31"), b"a");
        assert_eq!(
            render_plain(b"\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\!"),
            b"link!"
        );
    }

    #[test]
    fn a_string_sequence_cut_by_a_line_break_or_the_end_is_shown() {
        assert_eq!(
            render_plain(b"run\x1b]0;tests\nFAILED: 3 tests\n"),
            b"run]0;tests\nFAILED: 3 tests\n"
        );
        assert_eq!(
            render_plain(b"ok\n\x1bPno end FAILED: 3 tests"),
            b"ok\nPno end FAILED: 3 tests"
        );
        assert_eq!(render_plain(b"a\x1b]0;x\x18b\n"), b"a]0;x\x18b\n");
        // An ESC inside a string ends it, as on a terminal.
        assert_eq!(render_plain(b"\x1b]0;t\x1b[1mbold\n"), b"bold\n");
    }

    #[test]
    fn a_broken_control_sequence_keeps_the_line_after_it() {
        assert_eq!(
            render_plain(b"x\x1b[12\nFAILED: 3 tests\n"),
            b"x\nFAILED: 3 tests\n"
        );
        assert_eq!(
            render_plain(b"a\x1b\nb\x1b(\nc\x1b\xffd\n"),
            b"a\nb\nc\xffd\n"
        );
        let long = [b"\x1b[".as_slice(), &[b'1'; 100], b"FAILED\n"].concat();
        let shown = render_plain(&long);
        assert!(shown.ends_with(b"FAILED\n"), "{shown:?}");
    }

    #[test]
    fn an_endless_string_sequence_is_shown_and_bounded() {
        let mut input = b"\x1b]0;".to_vec();
        input.extend(std::iter::repeat_n(b'x', MAX_STRING * 2));
        input.extend_from_slice(b" FAILED\n");
        let shown = render_plain(&input);
        assert!(shown.ends_with(b" FAILED\n"));
        assert_eq!(shown.len(), input.len() - 1, "only the ESC goes");
    }

    #[test]
    fn any_split_renders_the_same() {
        let input: &[u8] =
            b"a\x1b[1;31mred\x1b[0m\r\nb\x1b]0;t\x07c\rC\n\x1b]0;broken\nd\x1b(Be\x1b[9";
        let whole = render_plain(input);
        for cut in 0..=input.len() {
            let mut plain = Plain::default();
            let mut out = Vec::new();
            plain.feed(&input[..cut], &mut out);
            plain.feed(&input[cut..], &mut out);
            plain.finish(&mut out);
            assert_eq!(out, whole, "cut at {cut}");
        }
        let mut plain = Plain::default();
        let mut out = Vec::new();
        for byte in input {
            plain.feed(std::slice::from_ref(byte), &mut out);
        }
        plain.finish(&mut out);
        assert_eq!(out, whole, "byte by byte");
    }

    #[test]
    fn a_giant_line_is_not_held_whole() {
        let mut plain = Plain::default();
        let mut out = Vec::new();
        let chunk = vec![b'x'; 64 * 1024];
        for _ in 0..64 {
            plain.feed(&chunk, &mut out);
            assert!(plain.lines.line.len() <= MAX_HELD_LINE);
        }
        plain.feed(b"\rover\n", &mut out);
        plain.finish(&mut out);
        assert_eq!(out.len(), 64 * chunk.len() + "\nover\n".len());
        assert!(out.ends_with(b"x\nover\n"));
    }
}
