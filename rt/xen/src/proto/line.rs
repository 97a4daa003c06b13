//! Line editing for console input: printable bytes are kept and echoed,
//! backspace/delete erase the last one, Enter (CR or LF) ends the line, Ctrl-U
//! clears it. Bytes beyond the buffer are dropped (and not echoed), so a long
//! burst of input can never overflow it.

/// What to do after feeding one byte.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Step {
    /// Nothing to show.
    Quiet,
    /// Show these bytes (the echo of the input, or the erase sequence).
    Echo(&'static [u8]),
    /// Show the byte that was typed.
    EchoByte(u8),
    /// Erase `n` characters on the terminal (`n` times "\x08 \x08").
    Erase(usize),
    /// The line is complete (`len` bytes).
    Done(usize),
}

/// A line being typed, in a caller's buffer.
#[derive(Debug)]
pub struct LineEditor<'a> {
    buf: &'a mut [u8],
    len: usize,
    /// A CR just ended a line: swallow the LF of a CRLF pair.
    after_cr: bool,
}

impl<'a> LineEditor<'a> {
    /// An empty line in `buf`.
    pub fn new(buf: &'a mut [u8]) -> Self {
        LineEditor {
            buf,
            len: 0,
            after_cr: false,
        }
    }

    /// An empty line in `buf` that follows a line ended by CR (`after_cr`):
    /// a leading LF is the rest of that CRLF, not an empty line.
    pub fn after(buf: &'a mut [u8], after_cr: bool) -> Self {
        LineEditor {
            buf,
            len: 0,
            after_cr,
        }
    }

    /// Whether the last line ended with CR (pass to [`Self::after`]).
    pub fn ended_with_cr(&self) -> bool {
        self.after_cr
    }

    /// The line so far.
    pub fn line(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// Feeds one input byte.
    pub fn feed(&mut self, b: u8) -> Step {
        let after_cr = core::mem::replace(&mut self.after_cr, false);
        match b {
            b'\n' if after_cr => Step::Quiet,
            b'\r' | b'\n' => {
                self.after_cr = b == b'\r';
                Step::Done(self.len)
            }
            0x08 | 0x7f => {
                if self.len == 0 {
                    return Step::Quiet;
                }
                self.len -= 1;
                Step::Erase(1)
            }
            0x15 => Step::Erase(core::mem::take(&mut self.len)),
            0x20..=0x7e | 0x80..=0xff if self.len < self.buf.len() => {
                self.buf[self.len] = b;
                self.len += 1;
                Step::EchoByte(b)
            }
            b'\t' if self.len < self.buf.len() => {
                self.buf[self.len] = b' ';
                self.len += 1;
                Step::Echo(b" ")
            }
            _ => Step::Quiet,
        }
    }

    /// Starts a new line in the same buffer.
    pub fn clear(&mut self) {
        self.len = 0;
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use proptest::prelude::*;

    fn typed(input: &[u8], cap: usize) -> (std::vec::Vec<u8>, std::vec::Vec<Step>) {
        let mut buf = std::vec![0u8; cap];
        let mut e = LineEditor::new(&mut buf);
        let mut steps = std::vec::Vec::new();
        for &b in input {
            let s = e.feed(b);
            steps.push(s);
            if let Step::Done(_) = s {
                break;
            }
        }
        (e.line().to_vec(), steps)
    }

    #[test]
    fn backspace_and_kill_edit_the_line() {
        assert_eq!(typed(b"helo\x7flo\r", 80).0, b"hello");
        assert_eq!(typed(b"abc\x08\x08x\n", 80).0, b"ax");
        assert_eq!(typed(b"\x7f\x7fok\r", 80).0, b"ok", "backspace on empty");
        assert_eq!(typed(b"junk\x15echo hi\r", 80).0, b"echo hi");
        let (_, steps) = typed(b"ab\x15", 80);
        assert_eq!(steps[2], Step::Erase(2));
    }

    #[test]
    fn a_long_line_is_cut_at_the_buffer_not_overflowed() {
        let (line, steps) = typed(&[b'x'; 100], 8);
        assert_eq!(line, b"xxxxxxxx");
        assert_eq!(
            steps
                .iter()
                .filter(|s| matches!(s, Step::EchoByte(_)))
                .count(),
            8
        );
    }

    #[test]
    fn crlf_ends_one_line_not_two() {
        let mut buf = [0u8; 16];
        let mut e = LineEditor::new(&mut buf);
        for &b in b"a\r" {
            e.feed(b);
        }
        e.clear();
        assert_eq!(e.feed(b'\n'), Step::Quiet);
        assert_eq!(e.feed(b'\n'), Step::Done(0), "a second LF is an empty line");
    }

    proptest! {
        /// Any byte stream: no panic, the line never exceeds the buffer, and
        /// it holds only printable bytes.
        #[test]
        fn any_input_is_safe(input in prop::collection::vec(any::<u8>(), 0..400), cap in 1usize..64) {
            let (line, _) = typed(&input, cap);
            prop_assert!(line.len() <= cap);
            prop_assert!(line.iter().all(|&b| b >= 0x20 && b != 0x7f));
        }
    }
}
