//! An error and its causes as one line, the form every binary of the
//! workspace prints (`vmm: kernel image /x is not ...: <cause>`) and xend
//! puts in its API errors.
//!
//! Error messages in this workspace do not repeat their source (see
//! docs/architecture.md, "Error handling"), so the chain is every message
//! joined by `: `. A cause whose message the line already ends with (a
//! wrapper that does print its source, `#[error(transparent)]`-like
//! wrappers) is not repeated.
//!
//! Messages carry what others chose (a path, a name, a guest's words), so
//! the line is [`printable`]: control characters escaped, one line that
//! sends no terminal escapes. Every place that prints text from others to a
//! terminal or a log uses [`printable`] too.
use std::borrow::Cow;
use std::error::Error;

/// Whether [`printable`] escapes `c`: control characters (C0, DEL, C1),
/// Unicode line and paragraph separators, and bidirectional overrides and
/// isolates (which reorder what a reader sees).
fn escaped(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

fn push_escaped(out: &mut String, c: char) {
    use std::fmt::Write as _;
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        c if c.is_ascii_control() => {
            let _ = write!(out, "\\x{:02x}", c as u32);
        }
        c => {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
    }
}

/// `text` as one line that sends no terminal escapes: `\n`, `\r`, `\t`,
/// other ASCII controls as `\xHH`, C1 controls, line separators and
/// bidirectional controls as `\u{...}`; everything else unchanged.
/// Backslashes are not doubled: text can look like an escape, never become
/// a new line.
pub fn printable(text: &str) -> Cow<'_, str> {
    if !text.contains(escaped) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if escaped(c) {
            push_escaped(&mut out, c);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// [`printable`] for bytes that may not be UTF-8: invalid bytes as `\xHH`.
pub fn printable_bytes(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(bytes.len() + 8);
    for chunk in bytes.utf8_chunks() {
        out.push_str(&printable(chunk.valid()));
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out
}

/// `e`'s message and those of its sources, outermost first, joined by `: `.
pub fn error_chain(e: &dyn Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(err) = cur {
        let text = err.to_string();
        if !text.is_empty() && !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cur = err.source();
    }
    match printable(&out) {
        Cow::Borrowed(_) => out,
        Cow::Owned(escaped) => escaped,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_nothing_else_changes() {
        assert!(matches!(printable("/boot/vmlinuz é"), Cow::Borrowed(_)));
        assert_eq!(
            printable("/k\u{1b}]0;PWNED\u{7}\n[0.0] forged"),
            "/k\\x1b]0;PWNED\\x07\\n[0.0] forged"
        );
        assert_eq!(
            printable("a\u{9b}b\tc\u{7f}\u{202e}d\u{2028}"),
            "a\\u{9b}b\\tc\\x7f\\u{202e}d\\u{2028}"
        );
        assert_eq!(printable_bytes(b"ok\xff\x1b\n"), "ok\\xff\\x1b\\n");
    }

    #[test]
    fn an_error_line_is_printable() {
        let e = E(
            "bad kernel /k\u{1b}[2J",
            Some(Box::new(E("line\nbreak", None))),
        );
        assert_eq!(error_chain(&e), "bad kernel /k\\x1b[2J: line\\nbreak");
    }

    #[derive(Debug)]
    struct E(&'static str, Option<Box<E>>);

    impl std::fmt::Display for E {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }

    impl Error for E {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            self.1.as_deref().map(|e| e as &(dyn Error + 'static))
        }
    }

    #[test]
    fn every_cause_joined_outermost_first() {
        let e = E(
            "cannot save domain web",
            Some(Box::new(E(
                "writing /s/web.img",
                Some(Box::new(E("No space left on device (os error 28)", None))),
            ))),
        );
        assert_eq!(
            error_chain(&e),
            "cannot save domain web: writing /s/web.img: No space left on device (os error 28)"
        );
    }

    #[test]
    fn a_cause_the_line_already_ends_with_is_not_repeated() {
        let e = E(
            "domain web: connection refused",
            Some(Box::new(E(
                "connection refused",
                Some(Box::new(E("", None))),
            ))),
        );
        assert_eq!(error_chain(&e), "domain web: connection refused");
        assert_eq!(error_chain(&E("alone", None)), "alone");
    }
}
