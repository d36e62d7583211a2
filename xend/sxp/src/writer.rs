//! The compact writer (`sxp.show`): quoting rules and number formatting.

use std::fmt::{self, Write};

use crate::Value;

/// Whether `s` prints without quotes: non-empty and every character an ASCII
/// letter, digit or one of `. - _ : / ~`, or the string `@`.
pub fn is_bare(s: &str) -> bool {
    s == "@"
        || (!s.is_empty()
            && s.chars().all(|c| {
                c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':' | '/' | '~')
            }))
}

/// Writes `s` as SXP: bare when [`is_bare`], otherwise quoted with `'` (or `"`
/// when it contains `'` but no `"`), escaping `\t \n \r \\`, the quote, and other
/// control characters as `\xNN`. Other characters, non-ASCII included, are
/// written as they are (the reader takes them literally inside quotes).
pub(crate) fn write_str(out: &mut impl Write, s: &str) -> fmt::Result {
    if is_bare(s) {
        return out.write_str(s);
    }
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    out.write_char(quote)?;
    for c in s.chars() {
        match c {
            '\t' => out.write_str("\\t")?,
            '\n' => out.write_str("\\n")?,
            '\r' => out.write_str("\\r")?,
            '\\' => out.write_str("\\\\")?,
            c if c == quote => {
                out.write_char('\\')?;
                out.write_char(c)?;
            }
            c if c.is_control() && (c as u32) <= 0xff => write!(out, "\\x{:02x}", c as u32)?,
            c => out.write_char(c)?,
        }
    }
    out.write_char(quote)
}

/// Writes `v` in the compact one-line form.
pub(crate) fn write_value(out: &mut impl Write, v: &Value) -> fmt::Result {
    match v {
        Value::Str(s) => write_str(out, s),
        Value::List(items) => {
            out.write_char('(')?;
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.write_char(' ')?;
                }
                write_value(out, item)?;
            }
            out.write_char(')')
        }
    }
}

impl fmt::Display for Value {
    /// `sxp.show`: the compact one-line form, e.g. `(vm (name a) (root '/dev/sda1 ro'))`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_value(f, self)
    }
}

/// Formats a float with up to 12 significant digits, like Python's `'%.12g' % x`:
/// `2.996813645`, `1234.56789012`, `1104537600.12`, `1e-05`, `1e+20`, `0`.
pub fn format_float(x: f64) -> String {
    const DIGITS: i32 = 12;
    if x.is_nan() {
        return "nan".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if x == 0.0 {
        return if x.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    // Round to 12 significant digits first; the exponent of the rounded value decides the form.
    let sci = format!("{:.*e}", (DIGITS - 1) as usize, x);
    let (mantissa, exp) = sci.split_once('e').expect("`{:e}` output has an exponent");
    let exp: i32 = exp.parse().expect("`{:e}` exponent is an integer");
    if (-4..DIGITS).contains(&exp) {
        let decimals = (DIGITS - 1 - exp).max(0) as usize;
        strip_zeros(format!("{x:.decimals$}"))
    } else {
        let sign = if exp < 0 { '-' } else { '+' };
        format!(
            "{}e{sign}{:02}",
            strip_zeros(mantissa.to_owned()),
            exp.abs()
        )
    }
}

fn strip_zeros(s: String) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check_float(x: f64, want: &str) {
        assert_eq!(format_float(x), want, "format_float({x:?})");
    }

    #[test]
    fn floats_print_like_percent_12g() {
        check_float(2.996813645, "2.996813645");
        check_float(1234.56789012, "1234.56789012");
        check_float(1104537600.12, "1104537600.12");
        check_float(1.0, "1");
        check_float(-2.5, "-2.5");
        check_float(0.0, "0");
        check_float(0.0001, "0.0001");
        check_float(0.00001, "1e-05");
        check_float(1e20, "1e+20");
        check_float(123456789012.0, "123456789012");
        check_float(1234567890123.0, "1.23456789012e+12");
        check_float(1.0 / 3.0, "0.333333333333");
        check_float(2.0 / 3.0, "0.666666666667");
        check_float(999999999999.5, "1e+12");
        check_float(1.5e-300, "1.5e-300");
        check_float(f64::INFINITY, "inf");
    }
}
