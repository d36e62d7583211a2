//! Writing SXP without building a [`Value`] first.
//!
//! A producer (xend's domain record, the bulk snapshot) describes its output
//! once, against [`Sink`]; [`TextSink`] writes it straight into the compact
//! text form (what `Value`'s `Display` prints, byte for byte, without the
//! tree and its allocations), [`ValueSink`] builds the [`Value`] for callers
//! that inspect or extend it.
use crate::Value;
use crate::writer::{write_float, write_str};

/// Where an SXP producer writes. Lists are opened and closed explicitly;
/// atoms go into the innermost open list.
pub trait Sink {
    /// Open a list with no head yet.
    fn begin(&mut self);
    /// Close the innermost open list.
    fn end(&mut self);
    /// A string atom.
    fn atom(&mut self, s: &str);
    /// An unsigned integer atom, in decimal.
    fn uint(&mut self, n: u64);
    /// A signed integer atom, in decimal.
    fn int(&mut self, n: i64);
    /// A float atom, formatted as [`crate::format_float`] does.
    fn float(&mut self, x: f64);
    /// An existing value, as it is.
    fn value(&mut self, v: &Value);

    /// Open a list whose head is `head`: `(head`.
    fn open(&mut self, head: &str) {
        self.begin();
        self.atom(head);
    }
    /// `(key value)` with a string value.
    fn pair_str(&mut self, key: &str, v: &str) {
        self.open(key);
        self.atom(v);
        self.end();
    }
    /// `(key n)`.
    fn pair_uint(&mut self, key: &str, n: u64) {
        self.open(key);
        self.uint(n);
        self.end();
    }
    /// `(key n)`.
    fn pair_int(&mut self, key: &str, n: i64) {
        self.open(key);
        self.int(n);
        self.end();
    }
    /// `(key x)`.
    fn pair_float(&mut self, key: &str, x: f64) {
        self.open(key);
        self.float(x);
        self.end();
    }
}

/// Writes the compact one-line form (`sxp.show`) into a `String`.
#[derive(Debug, Default)]
pub struct TextSink {
    out: String,
    /// The next item needs a space before it.
    sep: bool,
}

impl TextSink {
    /// A sink writing into a buffer of `capacity` bytes to start with.
    pub fn with_capacity(capacity: usize) -> TextSink {
        TextSink {
            out: String::with_capacity(capacity),
            sep: false,
        }
    }

    /// The text written so far.
    pub fn finish(self) -> String {
        self.out
    }

    /// One value already in the compact form (what a `TextSink` wrote for
    /// it), copied as it is: a producer that keeps rendered values splices
    /// them in without writing them again. `item` must be exactly one
    /// complete value; nothing here checks it.
    pub fn raw(&mut self, item: &str) {
        self.space();
        self.out.push_str(item);
    }

    fn space(&mut self) {
        if self.sep {
            self.out.push(' ');
        }
        self.sep = true;
    }
}

impl Sink for TextSink {
    fn begin(&mut self) {
        self.space();
        self.out.push('(');
        self.sep = false;
    }

    fn end(&mut self) {
        self.out.push(')');
        self.sep = true;
    }

    fn atom(&mut self, s: &str) {
        self.space();
        // Writing into a String cannot fail.
        let _ = write_str(&mut self.out, s);
    }

    fn uint(&mut self, n: u64) {
        self.space();
        self.out.push_str(itoa::Buffer::new().format(n));
    }

    fn int(&mut self, n: i64) {
        self.space();
        self.out.push_str(itoa::Buffer::new().format(n));
    }

    fn float(&mut self, x: f64) {
        self.space();
        write_float(&mut self.out, x);
    }

    fn value(&mut self, v: &Value) {
        self.space();
        let _ = crate::writer::write_value(&mut self.out, v);
    }
}

/// Builds a [`Value`].
#[derive(Debug, Default)]
pub struct ValueSink {
    /// Open lists, innermost last.
    open: Vec<Vec<Value>>,
    /// Values completed at the top level.
    done: Vec<Value>,
}

impl ValueSink {
    /// An empty sink.
    pub fn new() -> ValueSink {
        ValueSink::default()
    }

    /// The first value completed at the top level (an empty list if none;
    /// lists left open are closed).
    pub fn finish(mut self) -> Value {
        while !self.open.is_empty() {
            self.end();
        }
        self.done
            .into_iter()
            .next()
            .unwrap_or(Value::List(Vec::new()))
    }

    fn push(&mut self, v: Value) {
        match self.open.last_mut() {
            Some(list) => list.push(v),
            None => self.done.push(v),
        }
    }
}

impl Sink for ValueSink {
    fn begin(&mut self) {
        self.open.push(Vec::new());
    }

    fn end(&mut self) {
        if let Some(items) = self.open.pop() {
            self.push(Value::List(items));
        }
    }

    fn atom(&mut self, s: &str) {
        self.push(Value::str(s));
    }

    fn uint(&mut self, n: u64) {
        self.push(Value::from(n));
    }

    fn int(&mut self, n: i64) {
        self.push(Value::from(n));
    }

    fn float(&mut self, x: f64) {
        self.push(Value::from(x));
    }

    fn value(&mut self, v: &Value) {
        self.push(v.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn produce(s: &mut impl Sink) {
        s.open("domain");
        s.pair_uint("id", 7);
        s.pair_str("name", "web server");
        s.pair_int("cpu", -1);
        s.pair_float("cpu_time", 2.0 / 3.0);
        s.open("devices");
        s.end();
        s.value(&Value::list([Value::str("vm"), Value::pair("name", "x")]));
        s.begin();
        s.end();
        s.end();
    }

    #[test]
    fn text_and_value_sinks_agree_with_the_compact_writer() {
        let mut t = TextSink::default();
        produce(&mut t);
        let mut v = ValueSink::new();
        produce(&mut v);
        let value = v.finish();
        assert_eq!(t.finish(), value.to_string());
        assert_eq!(
            value.to_string(),
            "(domain (id 7) (name 'web server') (cpu -1) (cpu_time 0.666666666667) (devices) (vm (name x)) ())"
        );
    }

    #[test]
    fn a_spliced_value_reads_as_if_written_in_place() {
        let mut item = TextSink::default();
        item.open("domain");
        item.pair_uint("id", 7);
        item.end();
        let item = item.finish();
        let mut spliced = TextSink::default();
        let mut direct = TextSink::default();
        for s in [&mut spliced, &mut direct] {
            s.open("domains");
            s.pair_uint("n", 2);
        }
        spliced.raw(&item);
        spliced.raw(&item);
        for _ in 0..2 {
            direct.open("domain");
            direct.pair_uint("id", 7);
            direct.end();
        }
        for s in [&mut spliced, &mut direct] {
            s.end();
        }
        let text = spliced.finish();
        assert_eq!(text, direct.finish());
        assert_eq!(text, "(domains (n 2) (domain (id 7)) (domain (id 7)))");
        let mut first = TextSink::default();
        first.begin();
        first.raw(&item);
        first.end();
        assert_eq!(first.finish(), "((domain (id 7)))");
    }

    #[test]
    fn top_level_values_are_separated_by_a_space() {
        let mut t = TextSink::default();
        t.pair_uint("a", 1);
        t.atom("b");
        assert_eq!(t.finish(), "(a 1) b");
    }
}
