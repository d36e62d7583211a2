//! The one error type of the config formats.

/// A config that cannot be used: where it is wrong and why.
///
/// Displays as `origin:line:col: message`, or `origin: message` when the error
/// is about the whole input (`line == 0`), e.g. a file that cannot be read or a
/// command-line `VAR=VAL` override.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{origin}{}: {message}", position(*.line, *.col))]
pub struct ConfigError {
    /// Where the text came from: a file name, `<request>`, a command-line argument.
    pub origin: String,
    /// Line of the offending value (1-based); 0 when there is no position.
    pub line: u32,
    /// Column of the offending value (1-based, in characters); 0 when there is no position.
    pub col: u32,
    /// What was found and the expected form.
    pub message: String,
}

fn position(line: u32, col: u32) -> String {
    if line == 0 {
        String::new()
    } else {
        format!(":{line}:{col}")
    }
}

impl ConfigError {
    /// An error at a position of `origin`.
    pub(crate) fn at(origin: &str, pos: Pos, message: impl Into<String>) -> ConfigError {
        ConfigError {
            origin: origin.to_owned(),
            line: pos.line,
            col: pos.col,
            message: message.into(),
        }
    }

    /// An SXP syntax error in `origin`.
    pub(crate) fn syntax(origin: &str, e: sxp::ParseError) -> ConfigError {
        ConfigError {
            origin: origin.to_owned(),
            line: e.line,
            col: e.col,
            message: e.message,
        }
    }
}

/// A 1-based line and column; `Pos::NONE` (0:0) for values that came from
/// nowhere in particular (a config built in code).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Pos {
    /// Line (1-based), 0 for none.
    pub line: u32,
    /// Column (1-based), 0 for none.
    pub col: u32,
}

impl Pos {
    /// No position.
    pub const NONE: Pos = Pos { line: 0, col: 0 };

    /// A position.
    pub fn new(line: u32, col: u32) -> Pos {
        Pos { line, col }
    }

    /// Where a spanned SXP value starts.
    pub fn of(v: &sxp::Spanned) -> Pos {
        Pos {
            line: v.line,
            col: v.col,
        }
    }
}
