//! What the guest says about values another domain wrote (xenstore keys,
//! backend states): shown bounded ([`Shown`]: a 4 KiB value is not a 4 KiB
//! log line) and at a bounded rate ([`Limit`]: a key flipped hundreds of
//! times a second gives one line a period and a count of the rest).
use core::fmt;

/// Characters of a value shown before it is cut.
pub const SHOWN_CHARS: usize = 48;

/// A value from another domain, for a log line: quoted, escaped as
/// [`Escaped`], cut after [`SHOWN_CHARS`] characters with its length in
/// bytes.
#[derive(Clone, Copy, Debug)]
pub struct Shown<'a>(pub &'a str);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cut = self.0.char_indices().nth(SHOWN_CHARS).map(|(i, _)| i);
        let head = cut.and_then(|i| self.0.get(..i)).unwrap_or(self.0);
        write!(f, "\"{}\"", Escaped(head))?;
        if cut.is_some() {
            write!(f, "... ({} bytes)", self.0.len())?;
        }
        Ok(())
    }
}

/// Text for one line of the console, escaped as `str::escape_default`
/// does (printable ASCII as is; `\t`, `\r`, `\n`, `\'`, `\"`, `\\`;
/// anything else `\u{e9}`) but not cut and not quoted.
///
/// Our own loop: `escape_default`'s formatter is ~1 KiB of image, and
/// `{:?}` on a string (`escape_debug`) links core's Unicode tables, ~3 KiB.
#[derive(Clone, Copy, Debug)]
pub struct Escaped<'a>(pub &'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plain = |b: u8| (b' '..=b'~').contains(&b) && !matches!(b, b'"' | b'\'' | b'\\');
        let mut rest = self.0;
        while let Some(i) = rest.bytes().position(|b| !plain(b)) {
            let Some((run, tail)) = rest.split_at_checked(i) else {
                break; // unreachable: `i` is at an ASCII byte or a char start
            };
            f.write_str(run)?;
            let Some(c) = tail.chars().next() else { break };
            match c {
                '\t' => f.write_str("\\t")?,
                '\r' => f.write_str("\\r")?,
                '\n' => f.write_str("\\n")?,
                '"' | '\'' | '\\' => write!(f, "\\{c}")?,
                _ => write!(f, "\\u{{{:x}}}", u32::from(c))?,
            }
            rest = tail.get(c.len_utf8()..).unwrap_or("");
        }
        f.write_str(rest)
    }
}

/// One log line per period for one kind of refusal; the lines not written
/// are counted and reported with the next one written.
#[derive(Debug, Default)]
pub struct Limit {
    /// Milliseconds (the caller's clock) before which nothing is written;
    /// `None` before the first line.
    next_ms: Option<u64>,
    /// Lines held back since the last one written.
    held: u64,
}

impl Limit {
    /// A limit that has written nothing yet.
    pub const fn new() -> Self {
        Limit {
            next_ms: None,
            held: 0,
        }
    }

    /// Whether to write a line at `now_ms`: `Some(n)` when it may (with `n`
    /// lines held back since the previous one), `None` when it is held back
    /// (and counted). At most one line every `period_ms`.
    pub fn allow(&mut self, now_ms: u64, period_ms: u64) -> Option<u64> {
        if self.next_ms.is_some_and(|next| now_ms < next) {
            self.held = self.held.saturating_add(1);
            return None;
        }
        self.next_ms = Some(now_ms.saturating_add(period_ms));
        Some(core::mem::take(&mut self.held))
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use alloc::format;
    use alloc::string::String;
    use proptest::prelude::*;

    #[test]
    fn short_values_are_shown_whole_and_escaped() {
        assert_eq!(format!("{}", Shown("abc")), "\"abc\"");
        assert_eq!(format!("{}", Shown("")), "\"\"");
        assert_eq!(format!("{}", Shown("a\nb\u{1}")), "\"a\\nb\\u{1}\"");
        assert_eq!(
            format!("{}", Shown("\"\\\té~'")),
            "\"\\\"\\\\\\t\\u{e9}~\\'\""
        );
    }

    proptest! {
        /// `Escaped` writes what `str::escape_default` writes, for any text.
        #[test]
        fn escaped_is_escape_default(v in any::<String>()) {
            prop_assert_eq!(format!("{}", Escaped(&v)), format!("{}", v.escape_default()));
        }
    }

    #[test]
    fn long_values_are_cut_with_their_length() {
        let v = "x".repeat(4096);
        let s = format!("{}", Shown(&v));
        assert_eq!(
            s,
            format!("\"{}\"... (4096 bytes)", "x".repeat(SHOWN_CHARS))
        );
    }

    #[test]
    fn one_line_a_period_and_the_rest_counted() {
        let mut l = Limit::new();
        assert_eq!(l.allow(0, 1000), Some(0));
        for t in 1..500 {
            assert_eq!(l.allow(t, 1000), None);
        }
        assert_eq!(l.allow(1000, 1000), Some(499));
        assert_eq!(l.allow(1500, 1000), None);
        assert_eq!(l.allow(5000, 1000), Some(1));
    }

    proptest! {
        /// Whatever the value, the shown text is bounded and never has a raw
        /// control character (it goes into one console line).
        #[test]
        fn shown_is_bounded_and_one_line(v in any::<String>()) {
            let s = format!("{}", Shown(&v));
            prop_assert!(s.chars().count() <= SHOWN_CHARS * 10 + 40, "{}", s.len());
            prop_assert!(!s.chars().any(|c| c.is_control()));
        }

        /// Over any run of calls, lines written are at most one a period
        /// (plus the first), and written + held = calls.
        #[test]
        fn the_rate_is_bounded(mut times in proptest::collection::vec(0u64..100_000, 1..400)) {
            times.sort_unstable();
            let mut l = Limit::new();
            let (mut written, mut held_reported) = (0u64, 0u64);
            for &t in &times {
                if let Some(n) = l.allow(t, 1000) {
                    written += 1;
                    held_reported += n;
                }
            }
            let span = times[times.len() - 1] - times[0];
            prop_assert!(written <= span / 1000 + 1);
            prop_assert_eq!(written + held_reported + l.held, times.len() as u64);
        }
    }
}
