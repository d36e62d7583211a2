//! The compact writer (`sxp.show`): quoting rules and number formatting.

use std::fmt::{self, Write};

use crate::Value;

/// Whether `s` prints without quotes: non-empty and every character an ASCII
/// letter, digit or one of `. - _ : / ~`, or the string `@`.
pub fn is_bare(s: &str) -> bool {
    s == "@"
        || (!s.is_empty()
            && s.bytes().all(|c| {
                c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'_' | b':' | b'/' | b'~')
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
    let quote = quote_for(s);
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

/// The quote [`write_str`] puts around `s` when it is not bare.
fn quote_for(s: &str) -> char {
    if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    }
}

/// The width in characters of what [`write_str`] writes for `s`, without
/// writing it.
pub(crate) fn str_width(s: &str) -> usize {
    if is_bare(s) {
        // Bare strings are ASCII.
        return s.len();
    }
    let quote = quote_for(s);
    2 + s
        .chars()
        .map(|c| match c {
            '\t' | '\n' | '\r' | '\\' => 2,
            c if c == quote => 2,
            c if c.is_control() && (c as u32) <= 0xff => 4,
            _ => 1,
        })
        .sum::<usize>()
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
    let mut s = String::new();
    write_float(&mut s, x);
    s
}

/// A small stack buffer for one formatted number.
struct NumBuf {
    bytes: [u8; 48],
    len: usize,
}

impl Write for NumBuf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        let dst = self.bytes.get_mut(self.len..end).ok_or(fmt::Error)?;
        dst.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// For `1e-4 <= x < 1e12` (where `%.12g` prints the fixed form), `x`
/// rounded to 12 significant digits, half to even, as an integer of exactly
/// 12 digits, with the decimal exponent of its first digit; computed exactly
/// in integers (`x` is `mant * 2^exp2`; `mant * 10^p` fits in 128 bits).
fn digits12(x: f64) -> Option<(u64, i32)> {
    const LOW: u128 = 100_000_000_000; // 10^11
    const HIGH: u128 = 1_000_000_000_000; // 10^12
    if !(1e-4..1e12).contains(&x) {
        return None;
    }
    let bits = x.to_bits();
    let biased = ((bits >> 52) & 0x7ff) as i32;
    // Normal numbers only in this range: mant < 2^53, exp2 in -66..=-13.
    let mant = u128::from((bits & ((1 << 52) - 1)) | (1 << 52));
    let shift = u32::try_from(1075 - biased).ok()?;
    let mut e = x.log10().floor() as i32;
    for _ in 0..3 {
        let p = u32::try_from(11 - e).ok()?;
        let n = mant * 10u128.checked_pow(p)?;
        let mut r = n >> shift;
        let rem = n - (r << shift);
        let half = 1u128 << (shift - 1);
        if rem > half || (rem == half && r % 2 == 1) {
            r += 1;
        }
        if r >= HIGH {
            e += 1;
        } else if r < LOW {
            e -= 1;
        } else {
            return Some((u64::try_from(r).ok()?, e));
        }
    }
    None
}

/// Appends [`format_float`]'s text to `out`, formatting the number once and
/// without a heap allocation of its own.
pub(crate) fn write_float(out: &mut String, x: f64) {
    const DIGITS: i32 = 12;
    if x.is_nan() {
        return out.push_str("nan");
    }
    if x.is_infinite() {
        return out.push_str(if x > 0.0 { "inf" } else { "-inf" });
    }
    if x == 0.0 {
        return out.push_str(if x.is_sign_negative() { "-0" } else { "0" });
    }
    // The 12 significant digits and the decimal exponent of the rounded
    // value, which decides the form; the fixed form has exactly these digits
    // (both round the same exact value to 12 significant digits).
    let mut digits = [b'0'; DIGITS as usize];
    let (n, exp) = match digits12(x.abs()) {
        Some((r, exp)) => {
            let mut r = r;
            for d in digits.iter_mut().rev() {
                *d = b'0' + (r % 10) as u8;
                r /= 10;
            }
            (digits.len(), exp)
        }
        None => {
            // Outside the fast range: let the formatter round (`d.ddddddddddde<exp>`).
            let mut buf = NumBuf {
                bytes: [0; 48],
                len: 0,
            };
            if write!(buf, "{:.*e}", (DIGITS - 1) as usize, x.abs()).is_err() {
                // Cannot happen (at most 18 bytes); fall back to Rust's own form.
                let _ = write!(out, "{x}");
                return;
            }
            let sci = &buf.bytes[..buf.len];
            let e_at = sci.iter().position(|&b| b == b'e').unwrap_or(sci.len());
            let exp: i32 = std::str::from_utf8(&sci[e_at + 1..])
                .ok()
                .and_then(|e| e.parse().ok())
                .unwrap_or(0);
            let mut n = 0;
            for &b in &sci[..e_at] {
                if b.is_ascii_digit() && n < digits.len() {
                    digits[n] = b;
                    n += 1;
                }
            }
            (n, exp)
        }
    };
    // Trailing zeros never print (`%g` strips them, and the point with them).
    let mut sig = n;
    while sig > 1 && digits[sig - 1] == b'0' {
        sig -= 1;
    }
    let digit = |i: usize| char::from(digits[i]);
    if x < 0.0 {
        out.push('-');
    }
    if (-4..DIGITS).contains(&exp) {
        if exp >= 0 {
            let int_len = exp as usize + 1;
            for i in 0..int_len {
                out.push(if i < n { digit(i) } else { '0' });
            }
            if sig > int_len {
                out.push('.');
                (int_len..sig).for_each(|i| out.push(digit(i)));
            }
        } else {
            out.push_str("0.");
            for _ in 0..(-exp - 1) {
                out.push('0');
            }
            (0..sig).for_each(|i| out.push(digit(i)));
        }
    } else {
        out.push(digit(0));
        if sig > 1 {
            out.push('.');
            (1..sig).for_each(|i| out.push(digit(i)));
        }
        out.push('e');
        out.push(if exp < 0 { '-' } else { '+' });
        let _ = write!(out, "{:02}", exp.unsigned_abs());
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
        check_float(-0.000123456789012345, "-0.000123456789012");
        check_float(9.9999999999995, "10");
        check_float(0.1, "0.1");
        check_float(100.0, "100");
        check_float(-1e-300, "-1e-300");
        check_float(123.0e100, "1.23e+102");
        check_float(1764757312.123456, "1764757312.12");
        check_float(0.0001, "0.0001");
        check_float(999999999999.4, "999999999999");
        // Exact halves at the 12th digit round as the formatter does.
        for x in [123456789012.5, 12345678901.25, 0.5, 2.5, 1234.56789012125] {
            assert_eq!(format_float(x), reference_g12(x), "{x:?}");
        }
    }

    proptest::proptest! {
        /// The one-pass formatter agrees with the two-pass definition of `%.12g`.
        #[test]
        fn one_pass_floats_match_the_definition(x in proptest::num::f64::NORMAL | proptest::num::f64::SUBNORMAL) {
            proptest::prop_assert_eq!(format_float(x), reference_g12(x));
        }

        /// The same over the range the integer path serves, including
        /// decimal values with 12 to 14 digits (rounding and carries).
        #[test]
        fn fixed_form_floats_match_the_definition(
            x in 1e-4f64..1e12,
            m in 1u64..100_000_000_000_000,
            k in 0i32..18,
        ) {
            proptest::prop_assert_eq!(format_float(x), reference_g12(x));
            let y = m as f64 / 10f64.powi(k);
            proptest::prop_assert_eq!(format_float(y), reference_g12(y));
            proptest::prop_assert_eq!(format_float(-y), reference_g12(-y));
        }
    }

    /// `%.12g` as first written here: the scientific form decides the
    /// exponent, then the fixed form is formatted again.
    fn reference_g12(x: f64) -> String {
        const DIGITS: i32 = 12;
        let sci = format!("{:.*e}", (DIGITS - 1) as usize, x);
        let (mantissa, exp) = sci.split_once('e').unwrap();
        let exp: i32 = exp.parse().unwrap();
        let strip = |s: String| {
            if s.contains('.') {
                s.trim_end_matches('0').trim_end_matches('.').to_owned()
            } else {
                s
            }
        };
        if (-4..DIGITS).contains(&exp) {
            let decimals = (DIGITS - 1 - exp).max(0) as usize;
            strip(format!("{x:.decimals$}"))
        } else {
            let sign = if exp < 0 { '-' } else { '+' };
            format!("{}e{sign}{:02}", strip(mantissa.to_owned()), exp.abs())
        }
    }
}
