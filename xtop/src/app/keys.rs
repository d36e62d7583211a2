//! Key handling inside dialogs and panes: prompt, confirm, field picker,
//! console pane, built-in editor, diff review, rejected edits.
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui_textarea::TextArea;
use regex::Regex;

use super::mode::destroy_confirm;
use super::{
    App, Confirm, DomOp, EditPurpose, EditReview, Effect, Mode, NEW_TEMPLATE, Prompt, PromptKind,
};
use crate::action::{self, Action};
use crate::columns::{Column, SortSpec};
use crate::console::ConsolePane;

impl App {
    // ---- dialogs -----------------------------------------------------------

    pub(super) fn prompt_key(&mut self, mut p: Prompt, key: KeyEvent) {
        match key.code {
            KeyCode::Esc => return,
            KeyCode::Enter => {
                let input = p.input.trim().to_owned();
                match p.kind {
                    PromptKind::Command if input.is_empty() => {}
                    PromptKind::Command => self.run_command(&input),
                    PromptKind::Filter => self.set_filter(&input),
                    PromptKind::Delay => match input.parse::<f64>() {
                        Ok(d) if d > 0.0 && d.is_finite() => self.dispatch(Action::Delay(Some(d))),
                        _ => self.set_status(
                            format!("delay: '{input}' is not a positive number of seconds"),
                            true,
                        ),
                    },
                }
                return;
            }
            KeyCode::Tab if p.kind == PromptKind::Command => {
                if p.completions.is_empty() {
                    let names: Vec<String> =
                        self.store.rows().map(|r| r.dom.name.clone()).collect();
                    p.completions = action::complete(&p.input, &names);
                    p.completion = 0;
                } else {
                    p.completion = (p.completion + 1) % p.completions.len();
                }
                if let Some(c) = p.completions.get(p.completion) {
                    p.input = c.clone();
                }
                if p.completions.len() == 1 {
                    p.completions.clear();
                }
            }
            KeyCode::Backspace => {
                p.input.pop();
                p.completions.clear();
            }
            KeyCode::Char('u') if key.modifiers.contains(KeyModifiers::CONTROL) => p.input.clear(),
            KeyCode::Char(c) if !key.modifiers.contains(KeyModifiers::CONTROL) => {
                p.input.push(c);
                p.completions.clear();
            }
            _ => {}
        }
        if p.kind == PromptKind::Filter {
            // Live filtering while typing; bad regexes just don't apply yet.
            let (inv, pat) = p
                .input
                .strip_prefix('!')
                .map(|x| (true, x))
                .unwrap_or((false, &p.input));
            if pat.is_empty() {
                self.table.filter = None;
            } else if let Ok(re) = Regex::new(pat) {
                self.table.filter = Some((re, inv));
            }
        }
        self.mode = Mode::Prompt(p);
    }

    pub(super) fn confirm_key(&mut self, mut c: Confirm, key: KeyEvent) {
        match key.code {
            KeyCode::Left
            | KeyCode::Right
            | KeyCode::Tab
            | KeyCode::BackTab
            | KeyCode::Char('h')
            | KeyCode::Char('l') => {
                c.ok_focused = !c.ok_focused;
                self.mode = Mode::Confirm(c);
            }
            KeyCode::Char('y') | KeyCode::Char('Y') => self.confirmed(c),
            KeyCode::Enter if c.ok_focused => self.confirmed(c),
            KeyCode::Enter
            | KeyCode::Esc
            | KeyCode::Char('n')
            | KeyCode::Char('N')
            | KeyCode::Char('q') => self.set_status(format!("{} cancelled", c.op.verb()), false),
            _ => self.mode = Mode::Confirm(c),
        }
    }

    /// The user said yes to `c`.
    pub fn confirmed(&mut self, c: Confirm) {
        for t in c.targets {
            self.send_op(t, c.op);
        }
    }

    pub(super) fn columns_key(&mut self, cursor: usize, key: KeyEvent) {
        let n = Column::ALL.len();
        self.mode = match key.code {
            KeyCode::Up | KeyCode::Char('k') => Mode::Columns {
                cursor: (cursor + n - 1) % n,
            },
            KeyCode::Down | KeyCode::Char('j') => Mode::Columns {
                cursor: (cursor + 1) % n,
            },
            KeyCode::Char(' ') => {
                self.toggle_column(Column::ALL[cursor]);
                Mode::Columns { cursor }
            }
            KeyCode::Char('s') | KeyCode::Enter => {
                self.dispatch(Action::Sort(Some(SortSpec {
                    column: Column::ALL[cursor],
                    reverse: false,
                })));
                Mode::Columns { cursor }
            }
            KeyCode::Esc | KeyCode::Char('q') | KeyCode::Char('F') => Mode::Normal,
            _ => Mode::Columns { cursor },
        }
    }

    pub(super) fn console_key(&mut self, mut pane: Box<ConsolePane>, key: KeyEvent) {
        let bytes = crate::console::key_bytes(&key);
        if bytes.as_deref() == Some(&[pane.escape][..]) {
            self.effects.push(Effect::ConsoleDetach);
            self.set_status(format!("detached from {}", pane.target.name), false);
            return;
        }
        let shift = key.modifiers.contains(KeyModifiers::SHIFT);
        let target = pane.target.clone();
        match key.code {
            KeyCode::PageUp if shift => pane.scroll_by(10),
            KeyCode::PageDown if shift => pane.scroll_by(-10),
            KeyCode::F(2) => {
                let op = if self
                    .store
                    .find(&target.name)
                    .is_some_and(|r| r.has_state('p'))
                {
                    DomOp::Unpause
                } else {
                    DomOp::Pause
                };
                self.send_op(target, op);
            }
            KeyCode::F(3) => self.send_op(target, DomOp::Shutdown),
            KeyCode::F(4) => self.send_op(target, DomOp::Reboot),
            KeyCode::F(8) => {
                // Destroy from the console asks first, then returns to the table.
                self.effects.push(Effect::ConsoleDetach);
                self.mode = Mode::Confirm(destroy_confirm(vec![target]));
                return;
            }
            _ => {
                if let Some(b) = bytes {
                    pane.scroll = 0;
                    self.effects.push(Effect::ConsoleSend(b));
                }
            }
        }
        self.mode = Mode::Console(pane);
    }

    pub(super) fn editor_key(
        &mut self,
        mut area: Box<TextArea<'static>>,
        purpose: EditPurpose,
        original: String,
        key: KeyEvent,
    ) {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        match key.code {
            KeyCode::Char('s') if ctrl => {
                let edited = area.lines().join("\n") + "\n";
                self.edited(purpose, original, edited);
            }
            KeyCode::Esc => self.set_status(format!("{}: abandoned", purpose.describe()), false),
            _ => {
                area.input(crate::console::textarea_input(&key));
                self.mode = Mode::Editor {
                    area,
                    purpose,
                    original,
                };
            }
        }
    }

    pub(super) fn diff_key(&mut self, mut r: EditReview, key: KeyEvent) {
        match key.code {
            KeyCode::Left | KeyCode::BackTab => r.focus = (r.focus + 2) % 3,
            KeyCode::Right | KeyCode::Tab => r.focus = (r.focus + 1) % 3,
            KeyCode::Char('y') | KeyCode::Char('a') => return self.apply(r),
            KeyCode::Char('e') => return self.edit_text(r.purpose, r.original, r.edited),
            KeyCode::Esc | KeyCode::Char('q') => {
                return self.set_status(format!("{}: abandoned", r.purpose.describe()), false);
            }
            KeyCode::Enter => {
                return match r.focus {
                    0 => self.apply(r),
                    1 => self.edit_text(r.purpose, r.original, r.edited),
                    _ => self.set_status(format!("{}: abandoned", r.purpose.describe()), false),
                };
            }
            _ => {}
        }
        self.mode = Mode::Diff(r);
    }

    pub(super) fn edit_error_key(&mut self, mut r: EditReview, key: KeyEvent) {
        match key.code {
            KeyCode::Left | KeyCode::Right | KeyCode::Tab | KeyCode::BackTab => {
                r.focus = 1 - r.focus.min(1)
            }
            KeyCode::Char('e') => return self.edit_text(r.purpose, r.original, r.edited),
            KeyCode::Esc | KeyCode::Char('q') => {
                return self.set_status(format!("{}: abandoned", r.purpose.describe()), false);
            }
            KeyCode::Enter if r.focus == 0 => {
                return self.edit_text(r.purpose, r.original, r.edited);
            }
            KeyCode::Enter => {
                return self.set_status(format!("{}: abandoned", r.purpose.describe()), false);
            }
            _ => {}
        }
        self.mode = Mode::EditError(r);
    }

    /// Creates a domain from `text` on host `host`, as `n` does once the new
    /// config is reviewed (scripts' `create`).
    pub fn create(&mut self, host: usize, text: String) {
        if self.opts.readonly {
            self.set_status(super::READ_ONLY, true);
            return;
        }
        self.apply(EditReview {
            purpose: EditPurpose::New { host },
            original: String::new(),
            edited: text,
            message: String::new(),
            focus: 0,
        });
    }

    pub(super) fn apply(&mut self, r: EditReview) {
        self.set_status(format!("applying the {}…", r.purpose.describe()), false);
        self.pending += 1;
        self.effects.push(Effect::Apply {
            purpose: r.purpose,
            original: r.original,
            text: r.edited,
        });
    }

    /// Opens `text` in the external editor, or the built-in one.
    pub(super) fn edit_text(&mut self, purpose: EditPurpose, original: String, text: String) {
        if self.opts.external_editor.is_some() {
            self.effects.push(Effect::RunEditor {
                purpose,
                original,
                text,
            });
        } else {
            let mut area = TextArea::from(text.lines().map(str::to_owned).collect::<Vec<_>>());
            area.set_line_number_style(self.theme.dim);
            self.mode = Mode::Editor {
                area: Box::new(area),
                purpose,
                original,
            };
        }
    }

    pub(super) fn edited(&mut self, purpose: EditPurpose, original: String, edited: String) {
        if edited.trim() == original.trim() {
            self.set_status(format!("{}: no changes", purpose.describe()), false);
            return;
        }
        if matches!(purpose, EditPurpose::New { .. }) && edited.trim() == NEW_TEMPLATE.trim() {
            self.set_status("new domain: template unchanged, nothing created", false);
            return;
        }
        self.mode = Mode::Diff(EditReview {
            purpose,
            original,
            edited,
            message: String::new(),
            focus: 0,
        });
    }
}
