//! Keys to commands: the embedded default map (`preset/keymap.toml`) overlaid
//! by the user's `[keys]` table.
use std::collections::BTreeMap;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use crate::action::{Action, ParseError};

/// The default key map, embedded.
pub const DEFAULT_KEYMAP: &str = include_str!("../preset/keymap.toml");

/// What can be wrong with a key map.
#[derive(Debug, thiserror::Error)]
pub enum KeymapError {
    /// The TOML does not parse or has unknown fields.
    #[error("key map: {0}")]
    Toml(#[from] toml::de::Error),
    /// A key name is not understood.
    #[error(
        "key map: unknown key name '{0}'; expected a character, ctrl-X, alt-X, up, down, enter, esc, f1..f12, ..."
    )]
    BadKey(String),
    /// A command does not parse.
    #[error("key map: key '{key}': {source}")]
    BadCommand {
        /// The key.
        key: String,
        /// Why the command is wrong.
        #[source]
        source: ParseError,
    },
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct KeymapFile {
    keys: BTreeMap<String, String>,
}

/// A key binding: the key as written and the command it runs.
#[derive(Clone, Debug, PartialEq)]
pub struct Binding {
    /// Key name, canonical form.
    pub key: String,
    /// The command line.
    pub command: String,
    /// The parsed command.
    pub action: Action,
}

/// The key map in force.
#[derive(Clone, Debug)]
pub struct Keymap {
    bindings: BTreeMap<String, Binding>,
}

impl Keymap {
    /// The default map overlaid by `user` (key -> command; `""` unbinds). With
    /// `readonly`, keys whose command changes domains are left unbound.
    pub fn new(user: &BTreeMap<String, String>, readonly: bool) -> Result<Self, KeymapError> {
        let preset: KeymapFile = toml::from_str(DEFAULT_KEYMAP)?;
        let mut bindings = BTreeMap::new();
        for (key, command) in preset.keys.iter().chain(user.iter()) {
            let key = canonical_key(key).ok_or_else(|| KeymapError::BadKey(key.clone()))?;
            if command.trim().is_empty() {
                bindings.remove(&key);
                continue;
            }
            let action = Action::parse(command).map_err(|source| KeymapError::BadCommand {
                key: key.clone(),
                source,
            })?;
            if readonly && action.acts() {
                bindings.remove(&key);
                continue;
            }
            bindings.insert(
                key.clone(),
                Binding {
                    key,
                    command: command.clone(),
                    action,
                },
            );
        }
        Ok(Keymap { bindings })
    }

    /// The action bound to `ev`, if any.
    pub fn lookup(&self, ev: &KeyEvent) -> Option<&Action> {
        self.bindings.get(&key_name(ev)?).map(|b| &b.action)
    }

    /// Every binding, sorted by key.
    pub fn bindings(&self) -> impl Iterator<Item = &Binding> {
        self.bindings.values()
    }

    /// The first key bound to exactly `command`, for the key bar.
    pub fn key_for(&self, command: &str) -> Option<&str> {
        let mut keys: Vec<&Binding> = self
            .bindings
            .values()
            .filter(|b| b.command == command)
            .collect();
        // Prefer single characters (what the key bar shows best).
        keys.sort_by_key(|b| (b.key.chars().count() != 1, b.key.clone()));
        keys.first().map(|b| b.key.as_str())
    }
}

/// The canonical name of a key as written in a key map (`Ctrl-L` -> `ctrl-l`).
pub fn canonical_key(s: &str) -> Option<String> {
    if s.chars().count() == 1 {
        return Some(if s == " " {
            "space".to_owned()
        } else {
            s.to_owned()
        });
    }
    let lower = s.to_ascii_lowercase();
    for prefix in ["ctrl-", "alt-"] {
        if let Some(rest) = lower.strip_prefix(prefix) {
            let rest_orig = &s[prefix.len()..];
            let inner = if rest_orig.chars().count() == 1 {
                rest_orig.to_owned()
            } else {
                canonical_key(rest)?
            };
            let inner = if prefix == "ctrl-" {
                inner.to_ascii_lowercase()
            } else {
                inner
            };
            return Some(format!("{prefix}{inner}"));
        }
    }
    const NAMED: &[&str] = &[
        "up",
        "down",
        "left",
        "right",
        "pageup",
        "pagedown",
        "home",
        "end",
        "enter",
        "esc",
        "tab",
        "backtab",
        "backspace",
        "delete",
        "insert",
        "space",
    ];
    if NAMED.contains(&lower.as_str()) {
        return Some(lower);
    }
    if let Some(n) = lower.strip_prefix('f').and_then(|n| n.parse::<u8>().ok())
        && (1..=12).contains(&n)
    {
        return Some(lower);
    }
    None
}

/// The name of a pressed key, in key-map form.
pub fn key_name(ev: &KeyEvent) -> Option<String> {
    let base = match ev.code {
        KeyCode::Char(' ') => "space".to_owned(),
        KeyCode::Char(c) => {
            if ev.modifiers.contains(KeyModifiers::CONTROL) {
                c.to_ascii_lowercase().to_string()
            } else {
                c.to_string()
            }
        }
        KeyCode::Up => "up".into(),
        KeyCode::Down => "down".into(),
        KeyCode::Left => "left".into(),
        KeyCode::Right => "right".into(),
        KeyCode::PageUp => "pageup".into(),
        KeyCode::PageDown => "pagedown".into(),
        KeyCode::Home => "home".into(),
        KeyCode::End => "end".into(),
        KeyCode::Enter => "enter".into(),
        KeyCode::Esc => "esc".into(),
        KeyCode::Tab => "tab".into(),
        KeyCode::BackTab => "backtab".into(),
        KeyCode::Backspace => "backspace".into(),
        KeyCode::Delete => "delete".into(),
        KeyCode::Insert => "insert".into(),
        KeyCode::F(n) => format!("f{n}"),
        _ => return None,
    };
    let mut name = base;
    if ev.modifiers.contains(KeyModifiers::ALT) {
        name = format!("alt-{name}");
    }
    if ev.modifiers.contains(KeyModifiers::CONTROL) {
        name = format!("ctrl-{name}");
    }
    Some(name)
}

/// Parses an escape key spec like `ctrl-]` or `^]` into the byte it sends.
pub fn escape_byte(spec: &str) -> Option<u8> {
    let s = spec.trim();
    let c = s
        .strip_prefix('^')
        .or_else(|| s.strip_prefix("ctrl-"))
        .or_else(|| s.strip_prefix("Ctrl-"))
        .or_else(|| s.strip_prefix("C-"))?;
    let mut chars = c.chars();
    let ch = chars.next()?;
    if chars.next().is_some() {
        return None;
    }
    let up = ch.to_ascii_uppercase() as u32;
    (0x40..=0x5f).contains(&up).then(|| (up - 0x40) as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(code: KeyCode, m: KeyModifiers) -> KeyEvent {
        KeyEvent::new(code, m)
    }

    #[test]
    fn default_map_loads_and_binds_the_xentop_keys() {
        let km = Keymap::new(&BTreeMap::new(), false).unwrap();
        #[track_caller]
        fn check(km: &Keymap, ev: KeyEvent, want: Action) {
            assert_eq!(km.lookup(&ev), Some(&want));
        }
        let none = KeyModifiers::NONE;
        check(&km, key(KeyCode::Char('q'), none), Action::Quit);
        check(
            &km,
            key(KeyCode::Char('S'), KeyModifiers::SHIFT),
            Action::SortNext,
        );
        check(
            &km,
            key(KeyCode::Char('l'), KeyModifiers::CONTROL),
            Action::Redraw,
        );
        check(
            &km,
            key(KeyCode::Char('p'), none),
            Action::TogglePause(None),
        );
        check(&km, key(KeyCode::Char(' '), none), Action::Tag);
        check(&km, key(KeyCode::Esc, none), Action::Quit);
        check(
            &km,
            key(KeyCode::Char('N'), KeyModifiers::SHIFT),
            Action::ToggleNets,
        );
        assert_eq!(km.key_for("toggle-pause"), Some("p"));
    }

    #[test]
    fn user_keys_overlay_and_unbind() {
        let user: BTreeMap<String, String> = [
            ("x".to_owned(), "destroy".to_owned()),
            ("d".to_owned(), String::new()),
        ]
        .into();
        let km = Keymap::new(&user, false).unwrap();
        assert_eq!(
            km.lookup(&key(KeyCode::Char('x'), KeyModifiers::NONE)),
            Some(&Action::Destroy(None))
        );
        assert_eq!(
            km.lookup(&key(KeyCode::Char('d'), KeyModifiers::NONE)),
            None
        );
        let bad: BTreeMap<String, String> = [("x".to_owned(), "explode".to_owned())].into();
        let err = Keymap::new(&bad, false).unwrap_err().to_string();
        assert_eq!(
            err,
            "key map: key 'x': unknown command 'explode'; type ? for the list"
        );
        let bad: BTreeMap<String, String> = [("hyper-x".to_owned(), "quit".to_owned())].into();
        assert!(
            Keymap::new(&bad, false)
                .unwrap_err()
                .to_string()
                .contains("'hyper-x'")
        );
    }

    #[test]
    fn readonly_leaves_action_keys_unbound() {
        let km = Keymap::new(&BTreeMap::new(), true).unwrap();
        for c in ['p', 's', 'r', 'd', 'c', 'C', 'e', 'n'] {
            assert_eq!(
                km.lookup(&key(KeyCode::Char(c), KeyModifiers::NONE)),
                None,
                "{c}"
            );
        }
        assert!(km.bindings().all(|b| !b.action.acts()));
        assert_eq!(
            km.lookup(&key(KeyCode::Char('q'), KeyModifiers::NONE)),
            Some(&Action::Quit)
        );
    }

    #[test]
    fn escape_keys() {
        assert_eq!(escape_byte("ctrl-]"), Some(0x1d));
        assert_eq!(escape_byte("^X"), Some(0x18));
        assert_eq!(escape_byte("^x"), Some(0x18));
        assert_eq!(escape_byte("x"), None);
    }
}
