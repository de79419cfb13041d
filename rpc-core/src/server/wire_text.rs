//! Text that came from the wire (service and method names, decoder messages that quote the
//! body), made safe for a log line or an error reply: control characters and escapes are
//! shown escaped, so a newline cannot forge a log line and ANSI sequences do not reach a
//! terminal, and long text is cut, so one request cannot write kilobytes of log or reply.

use std::fmt;

/// Characters of wire text shown before it is cut.
pub(crate) const SHOWN_CHARS: usize = 160;

/// Wire text for a log field or a message: escaped, and cut after [`SHOWN_CHARS`] characters
/// with a note of how many bytes were left out.
pub(crate) struct WireText<'a>(pub &'a str);

impl fmt::Display for WireText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (shown, (at, c)) in self.0.char_indices().enumerate() {
            if shown == SHOWN_CHARS {
                return write!(f, "…(+{} bytes)", self.0.len() - at);
            }
            write!(f, "{}", c.escape_debug())?;
        }
        Ok(())
    }
}

impl fmt::Debug for WireText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newlines_and_escapes_are_shown_escaped() {
        let shown = WireText("a\nINFO forged\u{1b}[31m\"").to_string();
        assert_eq!(shown, "a\\nINFO forged\\u{1b}[31m\\\"");
        assert!(!shown.contains('\n') && !shown.contains('\u{1b}'));
    }

    #[test]
    fn long_text_is_cut_with_the_count_left_out() {
        let long = "é".repeat(1000);
        let shown = format!("{:?}", WireText(&long));
        assert!(shown.starts_with("\"éé"));
        assert!(shown.ends_with(&format!("…(+{} bytes)\"", 2 * (1000 - SHOWN_CHARS))));
        assert!(shown.chars().count() < SHOWN_CHARS + 20);
    }
}
