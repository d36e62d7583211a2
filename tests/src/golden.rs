//! Masking for golden-output tests: replace the volatile parts of a
//! command's output (times, memory figures, host values, ports) by fixed
//! placeholders, after checking that each masked part has the expected kind
//! (so masking never hides a wrong value, only a changing one), then compare
//! the whole text.
use std::ops::Range;

/// What a masked value must look like.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A whole number (optionally negative).
    Int,
    /// A decimal number.
    Float,
    /// Any non-empty text.
    Text,
    /// Empty or a whole number (an optional column such as `Console`).
    OptInt,
}

impl Kind {
    fn accepts(self, value: &str) -> bool {
        match self {
            Kind::Int => value.parse::<i64>().is_ok(),
            Kind::Float => value.parse::<f64>().is_ok_and(f64::is_finite),
            Kind::Text => !value.is_empty(),
            Kind::OptInt => value.is_empty() || value.parse::<i64>().is_ok(),
        }
    }
}

/// A fixed-width column of a table: the characters `cols` of a row.
#[derive(Clone, Debug)]
pub struct Column {
    /// Character positions of the column.
    pub cols: Range<usize>,
    /// What the value must be.
    pub kind: Kind,
    /// What replaces it (right-aligned in the column; the row keeps its width).
    pub placeholder: &'static str,
}

/// Masks `columns` in every line of `text` after the first `skip` lines.
/// Panics (naming the line) when a masked value is not of its kind.
#[track_caller]
pub fn mask_columns(text: &str, skip: usize, columns: &[Column]) -> String {
    let mut out = String::new();
    for (n, line) in text.lines().enumerate() {
        if n < skip {
            out.push_str(line);
            out.push('\n');
            continue;
        }
        let mut chars: Vec<char> = line.chars().collect();
        for c in columns {
            let end = c.cols.end.min(chars.len());
            let start = c.cols.start.min(end);
            let value: String = chars[start..end].iter().collect();
            let trimmed = value.trim();
            assert!(
                c.kind.accepts(trimmed),
                "line {}: column {:?} holds {trimmed:?}, expected {:?}: {line:?}",
                n + 1,
                c.cols,
                c.kind
            );
            let width = end - start;
            let masked = if width == 0 {
                String::new()
            } else {
                format!("{:>width$}", c.placeholder)
            };
            chars.splice(start..end, masked.chars());
        }
        out.push_str(&chars.into_iter().collect::<String>());
        out.push('\n');
    }
    out
}

/// Masks the values of `key: value` lines (as `xm info` prints them, `%-23s:
/// value`) whose key is listed, checking each value's kind.
#[track_caller]
pub fn mask_values(text: &str, keys: &[(&str, Kind)]) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let masked = line.split_once(": ").and_then(|(key, value)| {
            let (_, kind) = keys.iter().find(|(k, _)| *k == key.trim())?;
            assert!(
                kind.accepts(value.trim()),
                "{}: {value:?} is not {kind:?}",
                key.trim()
            );
            Some(format!("{key}: <{}>", key.trim()))
        });
        out.push_str(masked.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}

/// Masks the value of every `(key VALUE...)` in SXP text for the listed keys
/// (every atom up to the closing parenthesis, each checked against the kind):
/// `(cpu_time 2.99)` becomes `(cpu_time <cpu_time>)`, `(affinity 0 1)`
/// becomes `(affinity <affinity>)`.
#[track_caller]
pub fn mask_sxp(text: &str, keys: &[(&str, Kind)]) -> String {
    let mut out = text.to_string();
    for (key, kind) in keys {
        let open = format!("({key} ");
        let mut from = 0;
        while let Some(pos) = out[from..].find(&open) {
            let start = from + pos + open.len();
            let len = out[start..].find([')', '(']).unwrap_or(out.len() - start);
            if out.as_bytes().get(start + len) == Some(&b'(') {
                // A nested list, not an atom value: leave it.
                from = start;
                continue;
            }
            let value = &out[start..start + len];
            assert!(
                !value.trim().is_empty() && value.split_whitespace().all(|v| kind.accepts(v)),
                "({key} {value}) is not {kind:?}"
            );
            let placeholder = format!("<{key}>");
            out.replace_range(start..start + len, &placeholder);
            from = start + placeholder.len();
        }
    }
    out
}

/// SXP text with its layout removed (each run of whitespace becomes one
/// space, no space before `)`), for comparing pretty-printed output whose line
/// breaks depend on the width of masked values.
pub fn flatten_sxp(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace(" )", ")")
}

/// Compares output with the expected text and panics with a line diff.
#[track_caller]
pub fn assert_golden(actual: &str, expected: &str) {
    if actual == expected {
        return;
    }
    let mut diff = String::new();
    let a: Vec<&str> = actual.lines().collect();
    let e: Vec<&str> = expected.lines().collect();
    for i in 0..a.len().max(e.len()) {
        match (e.get(i), a.get(i)) {
            (Some(x), Some(y)) if x == y => diff.push_str(&format!("  {x}\n")),
            (x, y) => {
                if let Some(x) = x {
                    diff.push_str(&format!("- {x:?}\n"));
                }
                if let Some(y) = y {
                    diff.push_str(&format!("+ {y:?}\n"));
                }
            }
        }
    }
    panic!("output differs from the golden text (- expected, + actual):\n{diff}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_keep_their_width() {
        let cols = [Column {
            cols: 4..9,
            kind: Kind::Float,
            placeholder: "T",
        }];
        assert_eq!(
            mask_columns("head\nab    3.0 z\nab  172.2 z", 1, &cols),
            "head\nab      T z\nab      T z\n"
        );
    }

    #[test]
    #[should_panic(expected = "expected Float")]
    fn columns_check_the_kind() {
        let cols = [Column {
            cols: 0..3,
            kind: Kind::Float,
            placeholder: "T",
        }];
        mask_columns("abc", 0, &cols);
    }

    #[test]
    fn values_and_sxp() {
        assert_eq!(
            mask_values("host   : box\nsystem : Linux", &[("host", Kind::Text)]),
            "host   : <host>\nsystem : Linux\n"
        );
        assert_eq!(
            mask_sxp(
                "(d (cpu_time 2.5) (x (cpu_time 1)))",
                &[("cpu_time", Kind::Float)]
            ),
            "(d (cpu_time <cpu_time>) (x (cpu_time <cpu_time>)))"
        );
    }
}
