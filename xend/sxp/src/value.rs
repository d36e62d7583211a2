//! The SXP value: a string or a list of values.

/// One SXP value. The reader only ever produces these two shapes; numbers are
/// strings (`(memory 64)` holds the string `"64"`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Value {
    /// An atom or a quoted string (the two are the same value once read).
    Str(String),
    /// A parenthesised list.
    List(Vec<Value>),
}

impl Value {
    /// A string value.
    pub fn str(s: impl Into<String>) -> Value {
        Value::Str(s.into())
    }

    /// A list value.
    pub fn list(items: impl IntoIterator<Item = Value>) -> Value {
        Value::List(items.into_iter().collect())
    }

    /// A two-element list `(key value)`, the common SXP "field" shape.
    pub fn pair(key: impl Into<String>, value: impl Into<Value>) -> Value {
        Value::List(vec![Value::Str(key.into()), value.into()])
    }

    /// The string, if this is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            Value::List(_) => None,
        }
    }

    /// The elements, if this is a list.
    pub fn as_list(&self) -> Option<&[Value]> {
        match self {
            Value::Str(_) => None,
            Value::List(items) => Some(items),
        }
    }

    /// The first element of a list, if it is a string (`sxp.name`).
    pub fn head(&self) -> Option<&str> {
        self.as_list()?.first()?.as_str()
    }

    /// The elements after the head; empty for strings and empty lists.
    pub fn rest(&self) -> &[Value] {
        match self {
            Value::List(items) if !items.is_empty() => &items[1..],
            _ => &[],
        }
    }

    /// The first element after the head that is a list whose head is `key`
    /// (`sxp.child`).
    pub fn child(&self, key: &str) -> Option<&Value> {
        self.rest().iter().find(|v| v.head() == Some(key))
    }

    /// Every element after the head that is a list whose head is `key`
    /// (`sxp.children` with a name).
    pub fn children<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a Value> {
        self.rest().iter().filter(move |v| v.head() == Some(key))
    }

    /// For a child `(key v ...)`, the string `v` (`sxp.child_value`).
    pub fn child_value(&self, key: &str) -> Option<&str> {
        self.child(key)?.rest().first()?.as_str()
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::Str(s.to_owned())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::Str(s)
    }
}

impl From<&String> for Value {
    fn from(s: &String) -> Value {
        Value::Str(s.clone())
    }
}

impl From<Vec<Value>> for Value {
    fn from(items: Vec<Value>) -> Value {
        Value::List(items)
    }
}

macro_rules! from_integer {
    ($($t:ty),*) => {$(
        impl From<$t> for Value {
            /// The integer in decimal, as `sxp.show` prints it.
            fn from(n: $t) -> Value {
                Value::Str(n.to_string())
            }
        }
    )*};
}
from_integer!(u8, u16, u32, u64, usize, i8, i16, i32, i64, isize);

impl From<f64> for Value {
    /// The float with up to 12 significant digits, like Python's `%.12g`.
    fn from(x: f64) -> Value {
        Value::Str(crate::writer::format_float(x))
    }
}

impl From<f32> for Value {
    fn from(x: f32) -> Value {
        Value::from(f64::from(x))
    }
}
