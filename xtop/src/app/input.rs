//! Keys and mouse on the table, and the `:` command line: each becomes an
//! [`Action`] for [`App::dispatch`]; keys inside dialogs go to `keys`.
use crossterm::event::{KeyCode, KeyEvent, MouseButton, MouseEvent, MouseEventKind};

use super::{App, Mode};
use crate::action::Action;
use crate::columns::SortSpec;

impl App {
    // ---- input -------------------------------------------------------------

    /// Handles a key press.
    pub fn on_key(&mut self, key: KeyEvent) {
        match std::mem::replace(&mut self.mode, Mode::Normal) {
            Mode::Normal => {
                self.mode = Mode::Normal;
                if let Some(action) = self.keymap.lookup(&key).cloned() {
                    self.dispatch(action);
                }
            }
            Mode::Help { scroll } => {
                self.mode = match key.code {
                    KeyCode::Down | KeyCode::Char('j') => Mode::Help {
                        scroll: scroll.saturating_add(1),
                    },
                    KeyCode::Up | KeyCode::Char('k') => Mode::Help {
                        scroll: scroll.saturating_sub(1),
                    },
                    KeyCode::PageDown => Mode::Help {
                        scroll: scroll.saturating_add(10),
                    },
                    KeyCode::PageUp => Mode::Help {
                        scroll: scroll.saturating_sub(10),
                    },
                    _ => Mode::Normal,
                }
            }
            Mode::Prompt(p) => self.prompt_key(p, key),
            Mode::Confirm(c) => self.confirm_key(c, key),
            Mode::Columns { cursor } => self.columns_key(cursor, key),
            Mode::Message {
                title,
                lines,
                error,
            } => {
                if !matches!(
                    key.code,
                    KeyCode::Enter | KeyCode::Esc | KeyCode::Char('q') | KeyCode::Char(' ')
                ) {
                    self.mode = Mode::Message {
                        title,
                        lines,
                        error,
                    };
                }
            }
            Mode::Console(pane) => self.console_key(pane, key),
            Mode::Editor {
                area,
                purpose,
                original,
            } => self.editor_key(area, purpose, original, key),
            Mode::Diff(r) => self.diff_key(r, key),
            Mode::EditError(r) => self.edit_error_key(r, key),
        }
    }

    /// Handles a mouse event (only when mouse capture is on).
    pub fn on_mouse(&mut self, ev: MouseEvent) {
        if !matches!(self.mode, Mode::Normal) {
            return;
        }
        let area = self.layout.body;
        match ev.kind {
            MouseEventKind::Down(MouseButton::Left) => {
                if ev.row + 1 == area.y {
                    let hit = self
                        .layout
                        .header_cells
                        .iter()
                        .find(|(x, w, _)| ev.column >= *x && ev.column < x + w)
                        .map(|(_, _, c)| *c);
                    if let Some(c) = hit {
                        let reverse = self.table.sort.column == c && !self.table.sort.reverse;
                        self.dispatch(Action::Sort(Some(SortSpec { column: c, reverse })));
                    }
                } else if ev.row >= area.y && ev.row < area.y + area.height {
                    let line = (ev.row - area.y) as usize;
                    let key = self.layout.line_keys.get(line).copied().flatten();
                    if let Some(k) = key {
                        self.selected = Some(k);
                    }
                }
            }
            MouseEventKind::ScrollDown => self.dispatch(Action::Down),
            MouseEventKind::ScrollUp => self.dispatch(Action::Up),
            _ => {}
        }
    }

    /// Runs a command line (the `:` prompt; script mode uses [`Action::parse`] too).
    pub fn run_command(&mut self, line: &str) {
        match Action::parse(line) {
            Ok(a) if a.acts() && self.opts.readonly => self.set_status(
                format!("{}: not allowed in read-only mode", line.trim()),
                true,
            ),
            Ok(a) => self.dispatch(a),
            Err(e) => self.set_status(e.to_string(), true),
        }
    }
}
