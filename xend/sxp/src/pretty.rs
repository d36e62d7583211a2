//! The pretty printer (`PrettyPrint.prettyprint`, width 80).
//!
//! A list that fits on the rest of the line prints inline. Otherwise its head
//! stays on the `(` line, each further element goes on its own line indented 4
//! from the list's `(`, and the closing `)` goes on its own line under the `(`
//! (a list of one element has no further elements, so it stays `(elem)`):
//!
//! ```text
//! (vm
//!     (name ExampleDomain)
//!     (memory 128)
//!     (device (vbd (uname phy:hda1) (dev hda1) (mode w)))
//! )
//! ```

use crate::Value;
use crate::writer::{str_width, write_value};

/// The line width the pretty printer fills.
pub const WIDTH: usize = 80;

/// Pretty-prints `v` for a width of [`WIDTH`] columns, without a final newline.
/// Reading the result gives `v` back.
pub fn pretty(v: &Value) -> String {
    let mut out = String::new();
    write_pretty(&mut out, v, 0);
    out
}

fn write_pretty(out: &mut String, v: &Value, col: usize) {
    let items = match v {
        // A list of one element has nothing to put on further lines.
        Value::List(items) if items.len() > 1 && !fits(v, WIDTH.saturating_sub(col)) => items,
        Value::List(items) if items.len() == 1 => {
            out.push('(');
            write_pretty(out, &items[0], col + 1);
            out.push(')');
            return;
        }
        _ => {
            write_value(out, v).expect("writing to a String cannot fail");
            return;
        }
    };
    out.push('(');
    write_pretty(out, &items[0], col + 1);
    for item in &items[1..] {
        newline(out, col + 4);
        write_pretty(out, item, col + 4);
    }
    newline(out, col);
    out.push(')');
}

fn newline(out: &mut String, indent: usize) {
    const SPACES: &str = "                                                                ";
    out.push('\n');
    let mut left = indent;
    while left > 0 {
        let n = left.min(SPACES.len());
        out.push_str(&SPACES[..n]);
        left -= n;
    }
}

/// Whether the compact form of `v` is at most `budget` characters. Stops as soon
/// as the budget is exceeded, so each call costs O(budget), not O(size of `v`).
fn fits(v: &Value, budget: usize) -> bool {
    fn used(v: &Value, budget: usize) -> Option<usize> {
        match v {
            Value::Str(s) => {
                // A char is at most 4 bytes and escapes only lengthen: cheap early exit.
                if s.len() / 4 > budget {
                    return None;
                }
                let n = str_width(s);
                (n <= budget).then_some(n)
            }
            Value::List(items) => {
                let mut n = 2 + items.len().saturating_sub(1);
                if n > budget {
                    return None;
                }
                for item in items {
                    n += used(item, budget - n)?;
                }
                Some(n)
            }
        }
    }
    used(v, budget).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fits_measures_quoted_width() {
        let v = crate::parse("(a 'b c')").unwrap();
        assert!(fits(&v, 9));
        assert!(!fits(&v, 8));
    }
}
