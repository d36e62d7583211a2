//! The xm/xl `key = value` file syntax: one assignment per line, values are
//! quoted strings (`'..'` or `".."`, Python escapes), whole numbers, or lists of
//! strings `[ 'a', "b" ]` that may span lines; `#` starts a comment.
//!
//! This module only reads the syntax; `domain_xm` gives the keys their meaning.

use super::error::{ConfigError, Pos};

/// A value as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum XmValue {
    /// A quoted string.
    Str(String),
    /// A whole number.
    Int(i64),
    /// A list of strings, each with its position.
    List(Vec<(String, Pos)>),
}

/// One `key = value` line.
#[derive(Clone, Debug)]
pub(crate) struct Entry {
    pub key: String,
    pub key_pos: Pos,
    pub value: XmValue,
    pub value_pos: Pos,
}

const VALUE_FORMS: &str =
    "a quoted string ('...' or \"...\"), a whole number, or a list of strings [ '...', ... ]";

/// Reads every entry of an xm file.
pub(crate) fn parse(text: &str, origin: &str) -> Result<Vec<Entry>, ConfigError> {
    let mut lexer = Lexer {
        src: text,
        pos: 0,
        line: 1,
        col: 1,
        origin,
    };
    let mut entries = Vec::new();
    loop {
        lexer.skip_blank(true);
        let Some(c) = lexer.peek() else { break };
        let key_pos = lexer.here();
        if !(c.is_ascii_alphabetic() || c == '_') {
            return Err(lexer.err(
                key_pos,
                format!("expected a line key = value, found {}", found_char(c)),
            ));
        }
        let key = lexer
            .take_while(|c| c.is_ascii_alphanumeric() || c == '_')
            .to_owned();
        lexer.skip_blank(false);
        if lexer.peek() != Some('=') {
            let what = lexer
                .peek()
                .map_or("the end of the line".to_owned(), found_char);
            let what = if what == "'\\n'" {
                "the end of the line".to_owned()
            } else {
                what
            };
            return Err(lexer.err(
                lexer.here(),
                format!("expected = after {key} (e.g. {key} = VALUE), found {what}"),
            ));
        }
        lexer.bump();
        lexer.skip_blank(false);
        let value_pos = lexer.here();
        let value = lexer.value(&key)?;
        lexer.skip_blank(false);
        match lexer.peek() {
            None | Some('\n') | Some('#') | Some(';') => {
                if lexer.peek() == Some(';') {
                    lexer.bump();
                }
            }
            Some(c) => {
                return Err(lexer.err(
                    lexer.here(),
                    format!(
                        "unexpected {} after the value of {key}: write one key = value per line",
                        found_char(c)
                    ),
                ));
            }
        }
        entries.push(Entry {
            key,
            key_pos,
            value,
            value_pos,
        });
    }
    Ok(entries)
}

/// Reads one value from `text` (for `VAR=VAL` overrides written as xm values).
pub(crate) fn parse_value(text: &str, key: &str, origin: &str) -> Result<XmValue, ConfigError> {
    let mut lexer = Lexer {
        src: text,
        pos: 0,
        line: 1,
        col: 1,
        origin,
    };
    lexer.skip_blank(true);
    let value = lexer.value(key)?;
    lexer.skip_blank(true);
    if let Some(c) = lexer.peek() {
        return Err(lexer.err(
            lexer.here(),
            format!("unexpected {} after the value of {key}", found_char(c)),
        ));
    }
    Ok(value)
}

fn found_char(c: char) -> String {
    format!("{c:?}")
}

/// `s` as a double-quoted xm string that reads back as `s`.
pub(crate) fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

struct Lexer<'a> {
    src: &'a str,
    pos: usize,
    line: u32,
    col: u32,
    origin: &'a str,
}

impl<'a> Lexer<'a> {
    fn peek(&self) -> Option<char> {
        self.src[self.pos..].chars().next()
    }

    fn peek_at(&self, n: usize) -> Option<char> {
        self.src[self.pos..].chars().nth(n)
    }

    fn here(&self) -> Pos {
        Pos::new(self.line, self.col)
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        if c == '\n' {
            self.line += 1;
            self.col = 1;
        } else {
            self.col += 1;
        }
        Some(c)
    }

    fn err(&self, pos: Pos, message: impl Into<String>) -> ConfigError {
        ConfigError::at(self.origin, pos, message)
    }

    fn take_while(&mut self, f: impl Fn(char) -> bool) -> &'a str {
        let start = self.pos;
        while self.peek().is_some_and(&f) {
            self.bump();
        }
        &self.src[start..self.pos]
    }

    /// Skips spaces, tabs, CRs and comments; newlines too when `newlines`.
    /// A comment is skipped up to (not including) its newline.
    fn skip_blank(&mut self, newlines: bool) {
        while let Some(c) = self.peek() {
            match c {
                ' ' | '\t' | '\r' | '\x0c' => {
                    self.bump();
                }
                '\n' if newlines => {
                    self.bump();
                }
                '#' => {
                    self.take_while(|c| c != '\n');
                }
                _ => break,
            }
        }
    }

    fn value(&mut self, key: &str) -> Result<XmValue, ConfigError> {
        let pos = self.here();
        match self.peek() {
            Some('\'' | '"') => Ok(XmValue::Str(self.string()?)),
            Some('[') => self.list(key),
            Some(c) if c.is_ascii_digit() || c == '-' || c == '+' => {
                let word =
                    self.take_while(|c| !(c.is_whitespace() || matches!(c, '#' | ',' | ']' | ';')));
                word.parse().map(XmValue::Int).map_err(|_| {
                    self.err(
                        pos,
                        format!("{key} = {word}: expected {VALUE_FORMS}, found {word}"),
                    )
                })
            }
            None | Some('\n') | Some('#') => {
                Err(self.err(pos, format!("{key} has no value: expected {VALUE_FORMS}")))
            }
            Some(_) => {
                let word = self.take_while(|c| !(c.is_whitespace() || c == '#'));
                Err(self.err(
                    pos,
                    format!("expected {VALUE_FORMS} for {key}, found {word} (quote strings: {key} = \"{word}\")"),
                ))
            }
        }
    }

    fn list(&mut self, key: &str) -> Result<XmValue, ConfigError> {
        let open = self.here();
        self.bump();
        let mut items = Vec::new();
        loop {
            self.skip_blank(true);
            let pos = self.here();
            match self.peek() {
                None => {
                    return Err(self.err(
                        open,
                        format!("the list of {key} opened here is not closed (missing ])"),
                    ));
                }
                Some(']') => {
                    self.bump();
                    return Ok(XmValue::List(items));
                }
                Some('\'' | '"') => items.push((self.string()?, pos)),
                Some(_) => {
                    let word =
                        self.take_while(|c| !(c.is_whitespace() || matches!(c, '#' | ',' | ']')));
                    let word = if word.is_empty() {
                        self.peek().map(found_char).unwrap_or_default()
                    } else {
                        word.to_owned()
                    };
                    return Err(self.err(
                        pos,
                        format!("entries of {key} must be quoted strings (e.g. {key} = [ '...', '...' ]), found {word}"),
                    ));
                }
            }
            self.skip_blank(true);
            match self.peek() {
                Some(',') => {
                    self.bump();
                }
                Some(']') | None => {}
                Some(c) => {
                    return Err(self.err(
                        self.here(),
                        format!(
                            "expected , or ] in the list of {key}, found {}",
                            found_char(c)
                        ),
                    ));
                }
            }
        }
    }

    /// A quoted string with Python's escapes; it must close on its line.
    fn string(&mut self) -> Result<String, ConfigError> {
        let open = self.here();
        let quote = self.bump().expect("string() starts at a quote");
        let unclosed = |l: &Self| {
            l.err(
                open,
                format!("string not closed: add {quote} before the end of the line"),
            )
        };
        let mut s = String::new();
        loop {
            match self.peek() {
                None | Some('\n') => return Err(unclosed(self)),
                Some(c) if c == quote => {
                    self.bump();
                    return Ok(s);
                }
                Some('\\') => {
                    self.bump();
                    let Some(e) = self.peek() else {
                        return Err(unclosed(self));
                    };
                    let simple = match e {
                        '\\' | '\'' | '"' => Some(e),
                        'n' => Some('\n'),
                        't' => Some('\t'),
                        'r' => Some('\r'),
                        'a' => Some('\x07'),
                        'b' => Some('\x08'),
                        'f' => Some('\x0c'),
                        'v' => Some('\x0b'),
                        _ => None,
                    };
                    if let Some(c) = simple {
                        self.bump();
                        s.push(c);
                    } else if let (Some('x'), Some(hi), Some(lo)) = (
                        Some(e),
                        self.peek_at(1).and_then(|c| c.to_digit(16)),
                        self.peek_at(2).and_then(|c| c.to_digit(16)),
                    ) {
                        self.bump();
                        self.bump();
                        self.bump();
                        s.push(char::from_u32(hi * 16 + lo).expect("a byte value is a char"));
                    } else if let Some(first) = e.to_digit(8) {
                        self.bump();
                        let mut n = first;
                        for _ in 0..2 {
                            match self.peek().and_then(|c| c.to_digit(8)) {
                                Some(d) => {
                                    self.bump();
                                    n = n * 8 + d;
                                }
                                None => break,
                            }
                        }
                        s.push(char::from_u32(n).expect("an octal escape is below 0o1000"));
                    } else {
                        // Python keeps unknown escapes (and a newline after `\` is not a
                        // continuation here: the string must close on its line).
                        s.push('\\');
                    }
                }
                Some(c) => {
                    self.bump();
                    s.push(c);
                }
            }
        }
    }
}
