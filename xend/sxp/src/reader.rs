//! The reader (`sxp.Parser`), with positions.
//!
//! The reader is iterative (an explicit stack of open lists), so hostile input
//! cannot overflow the call stack; nesting deeper than [`MAX_DEPTH`] is an error.

use crate::Value;

/// The deepest list nesting the reader accepts.
pub const MAX_DEPTH: usize = 256;

/// A syntax error, at a 1-based line and column (columns count characters).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{line}:{col}: {message}")]
pub struct ParseError {
    /// Line of the offending character (1-based).
    pub line: u32,
    /// Column of the offending character (1-based, in characters).
    pub col: u32,
    /// What was wrong and what was expected.
    pub message: String,
}

/// A value read with the position where it starts (for a list, its `(`; for a
/// quoted string, its opening quote).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spanned {
    /// The value.
    pub kind: SpannedKind,
    /// Line where the value starts (1-based).
    pub line: u32,
    /// Column where the value starts (1-based, in characters).
    pub col: u32,
}

/// The two shapes of a [`Spanned`] value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SpannedKind {
    /// An atom or quoted string.
    Str(String),
    /// A list, each element with its own position.
    List(Vec<Spanned>),
}

impl Spanned {
    /// The value without positions.
    pub fn to_value(&self) -> Value {
        match &self.kind {
            SpannedKind::Str(s) => Value::Str(s.clone()),
            SpannedKind::List(items) => Value::List(items.iter().map(Spanned::to_value).collect()),
        }
    }

    /// The value without positions, consuming `self`.
    pub fn into_value(self) -> Value {
        match self.kind {
            SpannedKind::Str(s) => Value::Str(s),
            SpannedKind::List(items) => {
                Value::List(items.into_iter().map(Spanned::into_value).collect())
            }
        }
    }

    /// The string, if this is a string.
    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            SpannedKind::Str(s) => Some(s),
            SpannedKind::List(_) => None,
        }
    }

    /// The elements, if this is a list.
    pub fn as_list(&self) -> Option<&[Spanned]> {
        match &self.kind {
            SpannedKind::Str(_) => None,
            SpannedKind::List(items) => Some(items),
        }
    }

    /// The first element of a list, if it is a string.
    pub fn head(&self) -> Option<&str> {
        self.as_list()?.first()?.as_str()
    }

    /// The elements after the head; empty for strings and empty lists.
    pub fn rest(&self) -> &[Spanned] {
        match &self.kind {
            SpannedKind::List(items) if !items.is_empty() => &items[1..],
            _ => &[],
        }
    }

    /// The first element after the head that is a list whose head is `key`.
    pub fn child(&self, key: &str) -> Option<&Spanned> {
        self.rest().iter().find(|v| v.head() == Some(key))
    }
}

/// Reads exactly one value. No value, or anything after the first value other
/// than whitespace and comments, is an error.
pub fn parse(text: &str) -> Result<Value, ParseError> {
    parse_spanned(text).map(Spanned::into_value)
}

/// Reads every value in `text` (none is fine).
pub fn parse_all(text: &str) -> Result<Vec<Value>, ParseError> {
    Ok(parse_all_spanned(text)?
        .into_iter()
        .map(Spanned::into_value)
        .collect())
}

/// Reads exactly one value, with positions.
pub fn parse_spanned(text: &str) -> Result<Spanned, ParseError> {
    let mut reader = Reader::new(text);
    let values = reader.read_all()?;
    let mut values = values.into_iter();
    match (values.next(), values.next()) {
        (Some(v), None) => Ok(v),
        (None, _) => Err(ParseError {
            line: reader.line,
            col: reader.col,
            message: "expected an SXP value, found end of input".into(),
        }),
        (Some(_), Some(extra)) => Err(ParseError {
            line: extra.line,
            col: extra.col,
            message: "expected one SXP value, but another value starts here".into(),
        }),
    }
}

/// Reads every value in `text`, with positions.
pub fn parse_all_spanned(text: &str) -> Result<Vec<Spanned>, ParseError> {
    Reader::new(text).read_all()
}

/// SXP whitespace: space, tab, newline, VT, FF, CR.
fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\x0b' | '\x0c' | '\r')
}

/// Characters that end an atom.
fn ends_atom(c: char) -> bool {
    is_space(c) || matches!(c, '#' | '(' | ')') || c.is_control()
}

struct Reader<'a> {
    src: &'a str,
    pos: usize,
    line: u32,
    col: u32,
}

struct Open {
    line: u32,
    col: u32,
    items: Vec<Spanned>,
}

impl<'a> Reader<'a> {
    fn new(src: &'a str) -> Self {
        Reader {
            src,
            pos: 0,
            line: 1,
            col: 1,
        }
    }

    fn peek(&self) -> Option<char> {
        self.src[self.pos..].chars().next()
    }

    fn peek_at(&self, n: usize) -> Option<char> {
        self.src[self.pos..].chars().nth(n)
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

    fn error(&self, line: u32, col: u32, message: impl Into<String>) -> ParseError {
        ParseError {
            line,
            col,
            message: message.into(),
        }
    }

    fn read_all(&mut self) -> Result<Vec<Spanned>, ParseError> {
        let mut top = Vec::new();
        let mut stack: Vec<Open> = Vec::new();
        loop {
            let (line, col) = (self.line, self.col);
            let Some(c) = self.peek() else { break };
            let value = match c {
                c if is_space(c) => {
                    self.bump();
                    continue;
                }
                '#' => {
                    while let Some(c) = self.bump() {
                        if c == '\n' {
                            break;
                        }
                    }
                    continue;
                }
                '(' => {
                    if stack.len() >= MAX_DEPTH {
                        return Err(self.error(
                            line,
                            col,
                            format!("lists are nested deeper than {MAX_DEPTH} levels"),
                        ));
                    }
                    self.bump();
                    stack.push(Open {
                        line,
                        col,
                        items: Vec::new(),
                    });
                    continue;
                }
                ')' => {
                    self.bump();
                    let Some(open) = stack.pop() else {
                        return Err(self.error(line, col, "unexpected ')': no list is open"));
                    };
                    Spanned {
                        kind: SpannedKind::List(open.items),
                        line: open.line,
                        col: open.col,
                    }
                }
                '"' | '\'' => self.read_string(line, col)?,
                '\x04' if stack.is_empty() => break,
                c if c.is_control() => {
                    return Err(self.error(
                        line,
                        col,
                        format!(
                            "unexpected control character U+{:04X}; quote it in a string as \\x{:02x}",
                            c as u32,
                            (c as u32) & 0xff
                        ),
                    ));
                }
                _ => self.read_atom(line, col),
            };
            match stack.last_mut() {
                Some(open) => open.items.push(value),
                None => top.push(value),
            }
        }
        if let Some(open) = stack.last() {
            return Err(self.error(
                open.line,
                open.col,
                "unexpected EOF: the list opened here is not closed (missing ')')",
            ));
        }
        Ok(top)
    }

    fn read_atom(&mut self, line: u32, col: u32) -> Spanned {
        let start = self.pos;
        while let Some(c) = self.peek() {
            if ends_atom(c) {
                break;
            }
            self.bump();
        }
        Spanned {
            kind: SpannedKind::Str(self.src[start..self.pos].to_owned()),
            line,
            col,
        }
    }

    fn read_string(&mut self, line: u32, col: u32) -> Result<Spanned, ParseError> {
        let quote = self.bump().expect("read_string starts at a quote");
        let eof = |r: &Self| {
            r.error(
                line,
                col,
                format!("unexpected EOF: the string opened here is not closed (missing {quote})"),
            )
        };
        let mut s = String::new();
        loop {
            let Some(c) = self.bump() else {
                return Err(eof(self));
            };
            if c == quote {
                break;
            }
            if c != '\\' {
                s.push(c);
                continue;
            }
            let Some(e) = self.peek() else {
                return Err(eof(self));
            };
            let simple = match e {
                'a' => Some('\x07'),
                'b' => Some('\x08'),
                't' => Some('\t'),
                'n' => Some('\n'),
                'v' => Some('\x0b'),
                'f' => Some('\x0c'),
                'r' => Some('\r'),
                '\\' | '\'' | '"' => Some(e),
                _ => None,
            };
            if let Some(decoded) = simple {
                self.bump();
                s.push(decoded);
                continue;
            }
            if e == 'x' {
                let hex = (
                    self.peek_at(1).and_then(|c| c.to_digit(16)),
                    self.peek_at(2).and_then(|c| c.to_digit(16)),
                );
                if let (Some(hi), Some(lo)) = hex {
                    self.bump();
                    self.bump();
                    self.bump();
                    s.push(char::from_u32(hi * 16 + lo).expect("a byte value is a char"));
                    continue;
                }
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
                continue;
            }
            // An unknown escape (or a malformed \x) keeps the backslash; the next
            // character is read normally.
            s.push('\\');
        }
        Ok(Spanned {
            kind: SpannedKind::Str(s),
            line,
            col,
        })
    }
}
