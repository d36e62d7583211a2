//! Which domains an action applies to (named, tagged or selected), and the
//! operations, moves and settings writes queued for them.
use super::{App, DomOp, Effect, Move, Target};
use crate::model::DomRow;

impl App {
    /// The domains an action applies to: the named one, else the tagged ones,
    /// else the selected one.
    pub fn targets(&mut self, named: Option<String>) -> Vec<Target> {
        let to_target = |r: &DomRow| Target {
            host: r.key.host,
            name: r.dom.name.clone(),
            id: r.dom.id,
            state: r.dom.state.clone(),
            console_port: r.dom.console_port,
        };
        if let Some(name) = named {
            return match self.store.find(&name) {
                Some(r) => vec![to_target(r)],
                None => {
                    self.set_status(format!("no domain '{name}'"), true);
                    Vec::new()
                }
            };
        }
        if !self.tagged.is_empty() {
            let t: Vec<Target> = self
                .tagged
                .iter()
                .filter_map(|k| self.store.row(*k))
                .map(to_target)
                .collect();
            if !t.is_empty() {
                return t;
            }
        }
        match self.selected_row() {
            Some(r) => vec![to_target(r)],
            None => {
                self.set_status("no domain selected", true);
                Vec::new()
            }
        }
    }

    pub(super) fn console_target(&mut self, named: Option<String>) -> Option<Target> {
        let target = match named {
            Some(n) => self.targets(Some(n)).into_iter().next(),
            None => self.selected_row().map(|r| Target {
                host: r.key.host,
                name: r.dom.name.clone(),
                id: r.dom.id,
                state: r.dom.state.clone(),
                console_port: r.dom.console_port,
            }),
        }?;
        if target.console_port.is_none() {
            self.set_status(format!("{} has no console", target.name), true);
            return None;
        }
        Some(target)
    }

    pub(super) fn ops(&mut self, named: Option<String>, op: DomOp) {
        for t in self.targets(named) {
            self.send_op(t, op);
        }
    }

    /// Save or migrate the selected domain (one at a time: an image or a
    /// destination holds one domain).
    pub(super) fn send_move(&mut self, how: Move) {
        let targets = self.targets(None);
        let [target] = targets.as_slice() else {
            let why = if targets.is_empty() {
                "no domain selected"
            } else {
                "one domain at a time: untag the others"
            };
            self.set_status(format!("{}: {why}", how.verb()), true);
            return;
        };
        if target.id == 0 {
            self.set_status(format!("{}: Domain-0 is the host", how.verb()), true);
            return;
        }
        self.pending += 1;
        self.set_status(format!("{} {}…", how.verb(), target.name), false);
        self.effects.push(Effect::Move {
            target: target.clone(),
            how,
        });
    }

    pub(super) fn send_op(&mut self, target: Target, op: DomOp) {
        self.pending += 1;
        self.set_status(format!("{} {}…", op.verb(), target.name), false);
        self.effects.push(Effect::Op { target, op });
    }

    pub(super) fn save_settings(&mut self) {
        let mut s = self.settings.clone();
        s.theme = Some(self.opts.theme_name.clone());
        s.delay = Some(self.delay.as_secs_f64());
        s.sort = Some(self.table.sort.to_spec_string());
        s.columns = Some(
            self.table
                .columns
                .iter()
                .map(|c| c.key().to_owned())
                .collect(),
        );
        s.cpu_mode = Some(self.table.cpu_mode);
        s.mouse = Some(self.mouse);
        self.settings = s.clone();
        self.effects.push(Effect::SaveSettings(s));
    }
}
