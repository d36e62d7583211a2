//! What each [`Action`] does to the state, and the effects it queues.
use std::time::Duration;

use regex::Regex;

use super::mode::destroy_confirm;
use super::{App, DomOp, EditPurpose, Effect, Mode, Move, NEW_TEMPLATE, Prompt, PromptKind};
use crate::action::{Action, acting_actions};
use crate::columns::{Column, SortSpec};
use crate::console::ConsolePane;
use crate::model::DomKey;

impl App {
    /// Does what `action` says.
    pub fn dispatch(&mut self, action: Action) {
        if action.acts() && self.opts.readonly {
            self.set_status(super::READ_ONLY, true);
            return;
        }
        match action {
            Action::Quit => {
                self.quit = true;
                self.effects.push(Effect::Quit);
            }
            Action::Refresh => self.effects.push(Effect::Refresh),
            Action::Redraw => self.effects.push(Effect::Redraw),
            Action::Freeze => {
                self.frozen = match self.frozen.take() {
                    None => Some(Box::new(self.store.clone())),
                    Some(live) => {
                        self.store = *live;
                        self.forget_gone();
                        None
                    }
                };
                self.set_status(
                    if self.frozen.is_some() {
                        "frozen: Z to resume"
                    } else {
                        "updating"
                    },
                    false,
                );
            }
            Action::Up => self.move_selection(-1),
            Action::Down => self.move_selection(1),
            Action::PageUp => self.move_selection(-(self.layout.page_rows.max(1) as isize)),
            Action::PageDown => self.move_selection(self.layout.page_rows.max(1) as isize),
            Action::Home => self.move_selection(isize::MIN / 2),
            Action::End => self.move_selection(isize::MAX / 2),
            Action::SortNext => {
                let cols: Vec<Column> = self.table.columns.clone();
                let i = cols
                    .iter()
                    .position(|c| *c == self.table.sort.column)
                    .map(|i| i + 1)
                    .unwrap_or(0);
                self.table.sort = SortSpec {
                    column: cols[i % cols.len().max(1)],
                    reverse: false,
                };
            }
            Action::Sort(None) | Action::SortReverse => {
                self.table.sort.reverse = !self.table.sort.reverse
            }
            Action::Sort(Some(spec)) => {
                // Pressing a sort key again flips the order.
                if spec.column == self.table.sort.column
                    && !spec.reverse
                    && self.table.sort.reverse == spec.reverse
                {
                    self.table.sort.reverse = !self.table.sort.reverse;
                } else {
                    self.table.sort = spec;
                }
            }
            Action::View(v) => self.table.view = v,
            Action::ToggleNets => self.table.show_nets = !self.table.show_nets,
            Action::ToggleVbds => self.table.show_vbds = !self.table.show_vbds,
            Action::ToggleVcpus => self.table.show_vcpus = !self.table.show_vcpus,
            Action::RepeatHeader => self.table.repeat_header = !self.table.repeat_header,
            Action::CpuMode => self.table.cpu_mode = self.table.cpu_mode.toggled(),
            Action::Detail => self.table.show_detail = !self.table.show_detail,
            Action::Hosts => self.table.hosts_collapsed = !self.table.hosts_collapsed,
            Action::Help => self.mode = Mode::Help { scroll: 0 },
            Action::Prompt => self.open_prompt(PromptKind::Command, String::new()),
            Action::Filter(None) => {
                let cur = self
                    .table
                    .filter
                    .as_ref()
                    .map(|(re, inv)| format!("{}{}", if *inv { "!" } else { "" }, re.as_str()))
                    .unwrap_or_default();
                self.open_prompt(PromptKind::Filter, cur)
            }
            Action::Filter(Some(f)) => self.set_filter(&f),
            Action::Columns => self.mode = Mode::Columns { cursor: 0 },
            Action::ToggleColumn(c) => self.toggle_column(c),
            Action::Delay(None) => {
                self.open_prompt(PromptKind::Delay, format!("{}", self.delay.as_secs_f64()))
            }
            Action::Delay(Some(d)) => {
                self.delay = Duration::from_secs_f64(d);
                self.effects.push(Effect::SetDelay(self.delay));
                self.set_status(format!("refresh every {d} s"), false);
            }
            Action::Tag => {
                if let Some(k) = self.selected_row().map(|r| r.key) {
                    if !self.tagged.remove(&k) {
                        self.tagged.insert(k);
                    }
                    self.move_selection(1);
                }
            }
            Action::TagAll => {
                let keys: Vec<DomKey> = self.visible_rows().iter().map(|r| r.key).collect();
                self.tagged.extend(keys);
            }
            Action::UntagAll => self.tagged.clear(),
            a @ acting_actions!() => self.act_on_domains(a),
            Action::SaveSettings => self.save_settings(),
            Action::Theme(name) => {
                match crate::theme::Theme::load(&name, crate::theme::ColorDepth::detect()) {
                    Ok(t) => {
                        self.theme = t;
                        self.opts.theme_name = name;
                    }
                    Err(e) => self.set_status(e.to_string(), true),
                }
            }
            Action::Mouse => {
                self.mouse = !self.mouse;
                self.effects.push(Effect::SetMouse(self.mouse));
            }
            Action::Suspend => self.effects.push(Effect::Suspend),
        }
    }

    /// The actions that act on domains ([`Action::acts`]; not in read-only mode).
    fn act_on_domains(&mut self, action: Action) {
        match action {
            Action::TogglePause(t) => {
                for target in self.targets(t) {
                    let op = if target.state.contains('p') {
                        DomOp::Unpause
                    } else {
                        DomOp::Pause
                    };
                    self.send_op(target, op);
                }
            }
            Action::Pause(t) => self.ops(t, DomOp::Pause),
            Action::Unpause(t) => self.ops(t, DomOp::Unpause),
            Action::Shutdown(t) => self.ops(t, DomOp::Shutdown),
            Action::Reboot(t) => self.ops(t, DomOp::Reboot),
            Action::Sched { dom, weight, cap } => self.ops(dom, DomOp::Sched { weight, cap }),
            Action::Destroy(t) => {
                let targets = self.targets(t);
                if !targets.is_empty() {
                    self.mode = Mode::Confirm(destroy_confirm(targets));
                }
            }
            Action::Console(t) => {
                if let Some(target) = self.console_target(t) {
                    self.mode = Mode::Console(Box::new(ConsolePane::new(
                        target.clone(),
                        self.opts.escape,
                        &self.opts.escape_label,
                    )));
                    self.effects.push(Effect::ConsoleAttach(target));
                }
            }
            Action::ConsoleFull(t) => {
                if let Some(target) = self.console_target(t) {
                    self.effects.push(Effect::ConsoleFull(target));
                }
            }
            Action::Save(None) => self.open_prompt(PromptKind::Command, "save ".to_owned()),
            Action::Save(Some(file)) => self.send_move(Move::Save(file)),
            Action::Migrate(None) => self.open_prompt(PromptKind::Command, "migrate ".to_owned()),
            Action::Migrate(Some((dest, live))) => self.send_move(Move::Migrate { dest, live }),
            Action::Edit(t) => {
                if let Some(target) = self.targets(t).into_iter().next() {
                    if target.id == 0 {
                        self.set_status("Domain-0 has no config to edit", true);
                        return;
                    }
                    self.set_status(format!("fetching the config of {}…", target.name), false);
                    self.effects.push(Effect::FetchConfig {
                        host: target.host,
                        dom: target.name,
                    });
                }
            }
            Action::New => {
                let host = self.selected_row().map(|r| r.key.host).unwrap_or(0);
                let text = NEW_TEMPLATE.to_owned();
                self.edit_text(EditPurpose::New { host }, String::new(), text);
            }
            // `dispatch` sends only the actions above.
            _ => {}
        }
    }

    pub(super) fn move_selection(&mut self, delta: isize) {
        let rows = self.visible_rows();
        let Some(cur) = self.selected_index(&rows) else {
            return;
        };
        let next = (cur as isize)
            .saturating_add(delta)
            .clamp(0, rows.len() as isize - 1) as usize;
        self.selected = Some(rows[next].key);
    }

    pub(super) fn open_prompt(&mut self, kind: PromptKind, input: String) {
        self.mode = Mode::Prompt(Prompt {
            kind,
            input,
            completions: Vec::new(),
            completion: 0,
        });
    }

    pub(super) fn set_filter(&mut self, f: &str) {
        let (invert, pat) = match f.strip_prefix('!') {
            Some(p) => (true, p),
            None => (false, f),
        };
        if pat.is_empty() {
            self.table.filter = None;
            return;
        }
        match Regex::new(pat) {
            Ok(re) => self.table.filter = Some((re, invert)),
            Err(e) => self.set_status(format!("filter: bad regex: {e}"), true),
        }
    }

    pub(super) fn toggle_column(&mut self, c: Column) {
        if let Some(i) = self.table.columns.iter().position(|x| *x == c) {
            if c != Column::Name {
                self.table.columns.remove(i);
            }
        } else {
            let order = |x: &Column| Column::ALL.iter().position(|y| y == x).unwrap_or(0);
            self.table.columns.push(c);
            self.table.columns.sort_by_key(order);
        }
    }
}
