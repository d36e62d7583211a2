//! Reading a domain config for `xm create`, with `VAR=VAL` overrides.
//!
//! A config is either SXP (`(vm ...)`) or xm's `key = value` text; xend
//! accepts both and validates them. `VAR=VAL` arguments replace the value of
//! `VAR` (or add it): in `key = value` text the assignment line (and the rest
//! of a multi-line list) is replaced; in SXP the `(VAR ...)` field of the
//! `(vm ...)` list is.
use std::path::{Path, PathBuf};

use crate::error::{Result, XmError};

/// Where configs named without a directory are also looked for, as in Xen.
pub const CONFIG_DIR: &str = "/etc/xen";

/// Reads `CONFIG`: the path as given, else `/etc/xen/CONFIG` for a bare name.
pub fn read(config: &str) -> Result<(PathBuf, String)> {
    let given = PathBuf::from(config);
    match std::fs::read_to_string(&given) {
        Ok(text) => Ok((given, text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !config.contains('/') => {
            let fallback = Path::new(CONFIG_DIR).join(config);
            std::fs::read_to_string(&fallback)
                .map(|text| (fallback, text))
                .map_err(|_| XmError::ReadConfig {
                    path: given,
                    source: e,
                })
        }
        Err(source) => Err(XmError::ReadConfig {
            path: given,
            source,
        }),
    }
}

/// True when the text is an SXP config (its first token is `(`).
pub fn is_sxp(text: &str) -> bool {
    text.lines()
        .map(str::trim_start)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .is_some_and(|l| l.starts_with('('))
}

/// One `VAR=VAL` argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Var {
    /// The key.
    pub name: String,
    /// The value as typed.
    pub value: String,
}

/// Parses `VAR=VAL`.
pub fn parse_var(arg: &str) -> Result<Var> {
    let bad = || {
        XmError::BadVariable(format!(
            "invalid variable '{arg}': expected NAME=VALUE, e.g. memory=64 or name=web1"
        ))
    };
    let (name, value) = arg.split_once('=').ok_or_else(bad)?;
    let name = name.trim();
    let valid = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return Err(bad());
    }
    Ok(Var {
        name: name.to_string(),
        value: value.to_string(),
    })
}

/// Applies the overrides to a config text of either form.
pub fn apply(text: &str, vars: &[Var]) -> Result<String> {
    if vars.is_empty() {
        return Ok(text.to_string());
    }
    if is_sxp(text) {
        apply_sxp(text, vars)
    } else {
        Ok(vars.iter().fold(text.to_string(), |t, v| apply_kv(&t, v)))
    }
}

/// The value written in `key = value` form: numbers, lists and quoted
/// strings as typed, anything else as a double-quoted string.
fn kv_value(value: &str) -> String {
    let v = value.trim();
    let literal = v.parse::<f64>().is_ok()
        || (v.starts_with('[') && v.ends_with(']'))
        || (v.len() >= 2
            && ((v.starts_with('"') && v.ends_with('"'))
                || (v.starts_with('\'') && v.ends_with('\''))));
    if literal {
        v.to_string()
    } else {
        format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

fn apply_kv(text: &str, var: &Var) -> String {
    let line = format!("{} = {}", var.name, kv_value(&var.value));
    let mut out: Vec<String> = Vec::new();
    let mut replaced = false;
    let mut skipping_depth = 0i32;
    for l in text.lines() {
        if skipping_depth > 0 {
            skipping_depth += bracket_depth(l);
            continue;
        }
        let key = l.split_once('=').map(|(k, _)| k.trim());
        if key == Some(var.name.as_str()) && !l.trim_start().starts_with('#') {
            if !replaced {
                out.push(line.clone());
                replaced = true;
            }
            skipping_depth = bracket_depth(l).max(0);
            continue;
        }
        out.push(l.to_string());
    }
    if !replaced {
        out.push(line);
    }
    let mut joined = out.join("\n");
    joined.push('\n');
    joined
}

/// `[` minus `]` on a line, outside quotes and comments.
fn bracket_depth(line: &str) -> i32 {
    let mut depth = 0;
    let mut quote = None;
    for c in line.chars() {
        match (quote, c) {
            (None, '#') => break,
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '[') => depth += 1,
            (None, ']') => depth -= 1,
            _ => {}
        }
    }
    depth
}

fn apply_sxp(text: &str, vars: &[Var]) -> Result<String> {
    let mut vm = sxp::parse(text).map_err(|e| {
        XmError::BadVariable(format!("cannot apply variables to the SXP config: {e}"))
    })?;
    let sxp::Value::List(items) = &mut vm else {
        return Err(XmError::BadVariable(
            "cannot apply variables: the SXP config is not a (vm ...) list".into(),
        ));
    };
    for var in vars {
        let value = sxp::parse(&var.value).unwrap_or_else(|_| sxp::Value::str(var.value.clone()));
        let field = sxp::Value::pair(var.name.clone(), value);
        match items
            .iter_mut()
            .skip(1)
            .find(|i| i.head() == Some(var.name.as_str()))
        {
            Some(slot) => *slot = field,
            None => items.push(field),
        }
    }
    Ok(format!("{}\n", sxp::pretty(&vm)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(args: &[&str]) -> Vec<Var> {
        args.iter().map(|a| parse_var(a).unwrap()).collect()
    }

    #[test]
    fn kv_overrides_replace_or_append() {
        let text = "# web\nname = \"a\"\nmemory = 32\ndisk = [ 'phy:x,x,w',\n   'phy:y,y,r' ]\nvcpus = 1\n";
        let out = apply(
            text,
            &vars(&["memory=64", "name=b c", "disk=[]", "restart=never"]),
        )
        .unwrap();
        assert_eq!(
            out,
            "# web\nname = \"b c\"\nmemory = 64\ndisk = []\nvcpus = 1\nrestart = \"never\"\n"
        );
    }

    #[test]
    fn sxp_overrides() {
        let out = apply("(vm (name a) (memory 32))", &vars(&["memory=64", "cpu=1"])).unwrap();
        assert_eq!(out, "(vm (name a) (memory 64) (cpu 1))\n");
        assert!(is_sxp("# c\n\n  (vm)"));
        assert!(!is_sxp("name = \"x\""));
    }

    #[test]
    fn bad_variables_are_named() {
        for bad in ["memory", "=3", "1x=2", "a-b=3"] {
            let e = parse_var(bad).unwrap_err().to_string();
            assert!(
                e.contains(&format!("'{bad}'")) && e.contains("NAME=VALUE"),
                "{e}"
            );
        }
    }
}
