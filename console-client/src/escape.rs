//! The escape key that ends an interactive console session.
//!
//! Written in caret notation as on the command line of `xencons -e ^X`:
//! `^]` (the default, 0x1d), `^A`..`^Z`, `^@`, `^[`, `^\`, `^^`, `^_` and `^?`
//! (DEL). Letters may be lower case.
use std::fmt;
use std::str::FromStr;

/// Errors from [`EscapeKey::parse`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EscapeError {
    /// The text is not `^` followed by one character of `@A-Z[\]^_?`.
    #[error(
        "invalid escape key '{0}': expected caret notation such as ^] or ^X (a ^ followed by one of @A-Z[\\]^_?)"
    )]
    Invalid(String),
}

/// A control character that ends an interactive session when typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EscapeKey(u8);

impl EscapeKey {
    /// Ctrl-], the escape key of the reference client.
    pub const DEFAULT: EscapeKey = EscapeKey(0x1d);

    /// Parses caret notation (`^]`, `^X`, `^x`, `^?`).
    pub fn parse(text: &str) -> Result<Self, EscapeError> {
        let invalid = || EscapeError::Invalid(text.to_string());
        let mut chars = text.chars();
        if chars.next() != Some('^') {
            return Err(invalid());
        }
        let c = chars.next().ok_or_else(invalid)?;
        if chars.next().is_some() {
            return Err(invalid());
        }
        let c = c.to_ascii_uppercase();
        match c {
            '?' => Ok(EscapeKey(0x7f)),
            '@'..='_' => Ok(EscapeKey(c as u8 & 0x1f)),
            _ => Err(invalid()),
        }
    }

    /// The key for a control byte (0x00-0x1f or 0x7f), e.g. from a key map.
    pub fn from_byte(byte: u8) -> Option<Self> {
        (byte < 0x20 || byte == 0x7f).then_some(EscapeKey(byte))
    }

    /// The byte the terminal sends for this key.
    pub fn byte(self) -> u8 {
        self.0
    }

    /// The key as the banner names it: `CTRL-]`, `CTRL-X`, `CTRL-?`.
    pub fn key_name(self) -> String {
        format!("CTRL-{}", self.caret_char())
    }

    fn caret_char(self) -> char {
        if self.0 == 0x7f {
            '?'
        } else {
            (self.0 | 0x40) as char
        }
    }
}

impl Default for EscapeKey {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl fmt::Display for EscapeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "^{}", self.caret_char())
    }
}

impl FromStr for EscapeKey {
    type Err = EscapeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(text: &str, byte: u8, name: &str) {
        let key = EscapeKey::parse(text).unwrap();
        assert_eq!(key.byte(), byte, "{text}");
        assert_eq!(key.key_name(), name, "{text}");
        assert_eq!(EscapeKey::parse(&key.to_string()).unwrap(), key);
    }

    #[test]
    fn parses_caret_notation() {
        check("^]", 0x1d, "CTRL-]");
        check("^X", 0x18, "CTRL-X");
        check("^x", 0x18, "CTRL-X");
        check("^A", 0x01, "CTRL-A");
        check("^@", 0x00, "CTRL-@");
        check("^_", 0x1f, "CTRL-_");
        check("^?", 0x7f, "CTRL-?");
        assert_eq!(
            EscapeKey::from_byte(0x18),
            Some(EscapeKey::parse("^X").unwrap())
        );
        assert_eq!(EscapeKey::from_byte(b'x'), None);
        assert_eq!(EscapeKey::default().byte(), 0x1d);
    }

    #[test]
    fn rejects_other_text() {
        for bad in ["", "^", "x", "]", "^XY", "^1", "^ ", "^{", "ctrl-x"] {
            let err = EscapeKey::parse(bad).unwrap_err();
            assert_eq!(err, EscapeError::Invalid(bad.to_string()));
            assert!(err.to_string().contains("caret notation"), "{err}");
        }
    }
}
