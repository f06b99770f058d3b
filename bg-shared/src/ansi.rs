//! Rendering terminal output as plain text: escape sequences removed and
//! carriage-return overwrites resolved, as a terminal would show the line.
//! Works on bytes, so invalid UTF-8 passes through untouched.

const ESC: u8 = 0x1b;
const BEL: u8 = 0x07;

/// Removes ANSI escape sequences (CSI, OSC, DCS and two-byte escapes) and
/// keeps, of each line, only what follows its last carriage return (a
/// progress bar's final state). `\r\n` line endings count as `\n`.
pub fn render_plain(input: &[u8]) -> Vec<u8> {
    let stripped = strip_escapes(input);
    let mut out = Vec::with_capacity(stripped.len());
    for line in stripped.split_inclusive(|b| *b == b'\n') {
        let (body, newline) = match line.strip_suffix(b"\n") {
            Some(body) => (body.strip_suffix(b"\r").unwrap_or(body), true),
            None => (line, false),
        };
        let visible = match memchr::memrchr(b'\r', body) {
            Some(at) => &body[at + 1..],
            None => body,
        };
        out.extend_from_slice(visible);
        if newline {
            out.push(b'\n');
        }
    }
    out
}

#[derive(Clone, Copy, PartialEq)]
enum State {
    Text,
    Escape,
    /// `ESC [` ... a final byte in 0x40..=0x7e.
    Csi,
    /// `ESC ]`, `ESC P`, `ESC _`, `ESC ^`: a string ended by BEL or `ESC \`.
    String,
    StringEscape,
    /// `ESC (`, `ESC )` and friends take one more byte.
    Charset,
}

fn strip_escapes(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut state = State::Text;
    for &byte in input {
        state = match (state, byte) {
            (State::Text, ESC) => State::Escape,
            (State::Text, _) => {
                out.push(byte);
                State::Text
            }
            (State::Escape, b'[') => State::Csi,
            (State::Escape, b']' | b'P' | b'_' | b'^' | b'X') => State::String,
            (State::Escape, b'(' | b')' | b'*' | b'+' | b'#' | b'%') => State::Charset,
            (State::Escape, ESC) => State::Escape,
            (State::Escape, _) => State::Text,
            (State::Csi, 0x40..=0x7e) => State::Text,
            (State::Csi, _) => State::Csi,
            (State::String, BEL) => State::Text,
            (State::String, ESC) => State::StringEscape,
            (State::String, _) => State::String,
            (State::StringEscape, b'\\') => State::Text,
            (State::StringEscape, _) => State::String,
            (State::Charset, _) => State::Text,
        };
    }
    out
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
}
