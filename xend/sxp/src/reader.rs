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
    let mut values = Reader::new(text).read_all::<Value>()?;
    match values.pop() {
        Some(v) if values.is_empty() => Ok(v),
        // Read again with positions, only to say where the error is.
        _ => parse_spanned(text).map(Spanned::into_value),
    }
}

/// Reads every value in `text` (none is fine).
pub fn parse_all(text: &str) -> Result<Vec<Value>, ParseError> {
    Reader::new(text).read_all()
}

/// Reads exactly one value, with positions.
pub fn parse_spanned(text: &str) -> Result<Spanned, ParseError> {
    let mut reader = Reader::new(text);
    let values = reader.read_all::<Spanned>()?;
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

/// What the reader builds: [`Value`]s, or [`Spanned`]s when the caller wants
/// positions (errors in config files). Building `Value`s directly saves
/// a second pass over big replies (`xm list -l` over hundreds of domains).
trait Node: Sized {
    fn atom(s: String, line: u32, col: u32) -> Self;
    fn list(items: Vec<Self>, line: u32, col: u32) -> Self;
}

impl Node for Value {
    fn atom(s: String, _: u32, _: u32) -> Self {
        Value::Str(s)
    }

    fn list(items: Vec<Self>, _: u32, _: u32) -> Self {
        Value::List(items)
    }
}

impl Node for Spanned {
    fn atom(s: String, line: u32, col: u32) -> Self {
        Spanned {
            kind: SpannedKind::Str(s),
            line,
            col,
        }
    }

    fn list(items: Vec<Self>, line: u32, col: u32) -> Self {
        Spanned {
            kind: SpannedKind::List(items),
            line,
            col,
        }
    }
}

/// Whether `b` is an ASCII byte that ends an atom: SXP whitespace, another
/// control character, a space, `#` or a parenthesis.
fn ends_atom_ascii(b: u8) -> bool {
    b <= b' ' || b == 0x7f || matches!(b, b'#' | b'(' | b')')
}

/// The number of characters in `bytes` (whole UTF-8 sequences): the bytes
/// that are not continuation bytes.
fn chars_in(bytes: &[u8]) -> u32 {
    let n = bytes.iter().filter(|&&b| b & 0xc0 != 0x80).count();
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// The reader works on bytes (every byte it looks for is ASCII, so every
/// place it stops is a character boundary) and counts characters for
/// columns as it goes.
struct Reader<'a> {
    text: &'a str,
    pos: usize,
    line: u32,
    col: u32,
}

struct Open<N> {
    line: u32,
    col: u32,
    items: Vec<N>,
}

impl<'a> Reader<'a> {
    fn new(text: &'a str) -> Self {
        Reader {
            text,
            pos: 0,
            line: 1,
            col: 1,
        }
    }

    fn byte_at(&self, pos: usize) -> Option<u8> {
        self.text.as_bytes().get(pos).copied()
    }

    /// The character at the read position (`pos` is always a boundary).
    fn char_here(&self) -> Option<char> {
        self.text[self.pos..].chars().next()
    }

    /// Moves the read position to `end` over bytes holding no newline.
    fn skip_to(&mut self, end: usize) {
        self.col = self
            .col
            .saturating_add(chars_in(&self.text.as_bytes()[self.pos..end]));
        self.pos = end;
    }

    /// Moves past one newline byte.
    fn newline(&mut self) {
        self.pos += 1;
        self.line = self.line.saturating_add(1);
        self.col = 1;
    }

    fn error(&self, line: u32, col: u32, message: impl Into<String>) -> ParseError {
        ParseError {
            line,
            col,
            message: message.into(),
        }
    }

    fn read_all<N: Node>(&mut self) -> Result<Vec<N>, ParseError> {
        let mut top = Vec::new();
        let mut stack: Vec<Open<N>> = Vec::new();
        loop {
            let (line, col) = (self.line, self.col);
            let Some(b) = self.byte_at(self.pos) else {
                break;
            };
            let value = match b {
                b' ' | b'\t' | b'\x0b' | b'\x0c' | b'\r' => {
                    self.skip_to(self.pos + 1);
                    continue;
                }
                b'\n' => {
                    self.newline();
                    continue;
                }
                b'#' => {
                    let rest = &self.text.as_bytes()[self.pos..];
                    match rest.iter().position(|&b| b == b'\n') {
                        Some(n) => {
                            self.skip_to(self.pos + n);
                            self.newline();
                        }
                        None => self.skip_to(self.text.len()),
                    }
                    continue;
                }
                b'(' => {
                    if stack.len() >= MAX_DEPTH {
                        return Err(self.error(
                            line,
                            col,
                            format!("lists are nested deeper than {MAX_DEPTH} levels"),
                        ));
                    }
                    self.skip_to(self.pos + 1);
                    stack.push(Open {
                        line,
                        col,
                        items: Vec::new(),
                    });
                    continue;
                }
                b')' => {
                    self.skip_to(self.pos + 1);
                    let Some(open) = stack.pop() else {
                        return Err(self.error(line, col, "unexpected ')': no list is open"));
                    };
                    N::list(open.items, open.line, open.col)
                }
                b'"' | b'\'' => self.read_string(line, col)?,
                b'\x04' if stack.is_empty() => break,
                _ => {
                    let c = self.char_here().expect("a byte starts a character here");
                    if c.is_control() {
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
                    self.read_atom(line, col)
                }
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

    /// An atom: everything up to whitespace, a control character, `#` or a
    /// parenthesis.
    fn read_atom<N: Node>(&mut self, line: u32, col: u32) -> N {
        let start = self.pos;
        let bytes = self.text.as_bytes();
        let mut end = start;
        while let Some(&b) = bytes.get(end) {
            if b.is_ascii() {
                if ends_atom_ascii(b) {
                    break;
                }
                end += 1;
            } else {
                let c = self.text[end..].chars().next().expect("a boundary");
                if c.is_control() {
                    break;
                }
                end += c.len_utf8();
            }
        }
        self.skip_to(end);
        N::atom(self.text[start..end].to_owned(), line, col)
    }

    fn read_string<N: Node>(&mut self, line: u32, col: u32) -> Result<N, ParseError> {
        let quote = self.text.as_bytes()[self.pos];
        self.skip_to(self.pos + 1);
        let eof = |r: &Self| {
            r.error(
                line,
                col,
                format!(
                    "unexpected EOF: the string opened here is not closed (missing {})",
                    quote as char
                ),
            )
        };
        let mut s = String::new();
        loop {
            // Copy the run of plain characters in one go.
            let rest = &self.text.as_bytes()[self.pos..];
            let run = rest
                .iter()
                .position(|&b| b == quote || b == b'\\' || b == b'\n')
                .unwrap_or(rest.len());
            s.push_str(&self.text[self.pos..self.pos + run]);
            self.skip_to(self.pos + run);
            let Some(b) = self.byte_at(self.pos) else {
                return Err(eof(self));
            };
            if b == quote {
                self.skip_to(self.pos + 1);
                break;
            }
            if b == b'\n' {
                s.push('\n');
                self.newline();
                continue;
            }
            // A backslash.
            self.skip_to(self.pos + 1);
            let Some(e) = self.byte_at(self.pos) else {
                return Err(eof(self));
            };
            let simple = match e {
                b'a' => Some('\x07'),
                b'b' => Some('\x08'),
                b't' => Some('\t'),
                b'n' => Some('\n'),
                b'v' => Some('\x0b'),
                b'f' => Some('\x0c'),
                b'r' => Some('\r'),
                b'\\' | b'\'' | b'"' => Some(e as char),
                _ => None,
            };
            if let Some(decoded) = simple {
                self.skip_to(self.pos + 1);
                s.push(decoded);
                continue;
            }
            let digit = |pos: usize, radix: u32| {
                self.byte_at(pos)
                    .and_then(|b| char::from(b).to_digit(radix))
            };
            if e == b'x' {
                if let (Some(hi), Some(lo)) = (digit(self.pos + 1, 16), digit(self.pos + 2, 16)) {
                    self.skip_to(self.pos + 3);
                    s.push(char::from_u32(hi * 16 + lo).expect("a byte value is a char"));
                    continue;
                }
            } else if let Some(first) = digit(self.pos, 8) {
                let mut n = first;
                let mut len = 1;
                while len < 3 {
                    match digit(self.pos + len, 8) {
                        Some(d) => {
                            n = n * 8 + d;
                            len += 1;
                        }
                        None => break,
                    }
                }
                self.skip_to(self.pos + len);
                s.push(char::from_u32(n).expect("an octal escape is below 0o1000"));
                continue;
            }
            // An unknown escape (or a malformed \x) keeps the backslash; the next
            // character is read normally.
            s.push('\\');
        }
        Ok(N::atom(s, line, col))
    }
}
