//! An error and its causes as one line, the form every binary of the
//! workspace prints (`vmm: kernel image /x is not ...: <cause>`) and xend
//! puts in its API errors.
//!
//! Error messages in this workspace do not repeat their source (see
//! docs/architecture.md, "Error handling"), so the chain is every message
//! joined by `: `. A cause whose message the line already ends with (a
//! wrapper that does print its source, `#[error(transparent)]`-like
//! wrappers) is not repeated.
use std::error::Error;

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
    out
}

#[cfg(test)]
mod tests {
    use super::*;

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
