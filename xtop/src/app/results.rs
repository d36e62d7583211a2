//! Results coming back from the runtime: snapshots, events, finished
//! operations, fetched and applied configs, console output.
use std::collections::BTreeSet;

use super::{App, ApplyOutcome, DomOp, EditPurpose, EditReview, Effect, Mode, Move, Target};
use crate::effects::Msg;
use crate::error::{ActionError, PollError, error_chain};
use crate::model::DomKey;

impl App {
    /// A result from the runtime: a snapshot, an event, a finished request.
    /// Console output is the caller's to match to its session first.
    pub fn on_msg(&mut self, msg: Msg) {
        match msg {
            Msg::Snapshot(h, r) => self.on_snapshot(h, r),
            Msg::Event(h, ev) => self.on_event(h, &ev),
            Msg::OpDone(t, op, r) => self.on_op_done(&t, op, r),
            Msg::MoveDone(t, how, r) => self.on_move_done(&t, &how, r),
            Msg::ConfigFetched(h, dom, r) => self.on_config_fetched(h, dom, r),
            Msg::Applied(p, o, e, r) => self.on_applied(p, o, e, r),
            Msg::ConsoleData(_, data) => self.on_console_data(&data),
            Msg::ConsoleClosed(_, why) => self.on_console_closed(why),
            Msg::Hangup => self.dispatch(crate::action::Action::Quit),
        }
    }

    /// A new snapshot (or a failure) from host `host`.
    pub fn on_snapshot(&mut self, host: usize, result: Result<xend::api::Snapshot, PollError>) {
        match (result, &mut self.frozen) {
            (Ok(s), None) => self.store.ingest(host, s),
            (Ok(s), Some(live)) => live.ingest(host, s),
            (Err(e), live) => {
                let reason = error_chain(&e);
                // Shown even while frozen, as the header's host line.
                if let Some(live) = live {
                    live.host_down(host, reason.clone());
                }
                self.store.host_down(host, reason);
            }
        }
        self.forget_gone();
    }

    /// Drops tags and the selection of domains no longer shown.
    pub(super) fn forget_gone(&mut self) {
        let keys: BTreeSet<DomKey> = self.store.rows().map(|r| r.key).collect();
        self.tagged.retain(|k| keys.contains(k));
        if self.selected.is_none_or(|k| !keys.contains(&k)) {
            let first = self.visible_rows().first().map(|r| r.key);
            self.selected = first;
        }
    }

    /// xend reported an event (the collector refreshes at once as well).
    /// A progress event also updates its domain's row at once (live store,
    /// shown unless frozen), so a save or migration moves between polls.
    pub fn on_event(&mut self, host: usize, ev: &xend::api::XendEvent) {
        if ev.event == "xend.domain.progress"
            && let (Some(id), Some(p)) = (ev.domid, &ev.progress)
        {
            let running = (p.phase != "done").then(|| p.clone());
            let live = match &mut self.frozen {
                Some(live) => live,
                None => &mut self.store,
            };
            live.set_progress(host, id, running);
            // The progress shows in the status line and the detail pane;
            // the event line would repeat it ten times a second.
            return;
        }
        let what = ev.event.strip_prefix("xend.").unwrap_or(&ev.event);
        let mut text = what.to_owned();
        if let Some(name) = &ev.name {
            text.push(' ');
            text.push_str(name);
        }
        if let Some(d) = &ev.detail {
            text.push_str(&format!(" ({d})"));
        }
        if self.store.hosts.len() > 1
            && let Some(h) = self.store.hosts.get(host)
        {
            text = format!("{}: {text}", h.label);
        }
        self.last_event = Some(text);
    }

    /// An operation finished.
    pub fn on_op_done(&mut self, target: &Target, op: DomOp, result: Result<(), ActionError>) {
        self.pending = self.pending.saturating_sub(1);
        match result {
            Ok(()) => {
                let what = match op {
                    DomOp::Pause => "paused",
                    DomOp::Unpause => "unpaused",
                    DomOp::Shutdown => "asked to shut down",
                    DomOp::Reboot => "asked to reboot",
                    DomOp::Destroy => "destroyed",
                };
                self.set_status(format!("{} {what}", target.name), false);
                self.effects.push(Effect::Refresh);
            }
            Err(e) => {
                let line = format!("{} {} failed: {}", op.verb(), target.name, error_chain(&e));
                self.set_status(line.clone(), true);
                if !matches!(self.mode, Mode::Console(_)) {
                    self.mode = Mode::Message {
                        title: format!("{} failed", op.verb()),
                        lines: vec![line],
                        error: true,
                    };
                }
            }
        }
    }

    /// A save or migration finished; `result` is the summary line (with the
    /// image size or the migration's downtime) or the error.
    pub fn on_move_done(
        &mut self,
        target: &Target,
        how: &Move,
        result: Result<String, ActionError>,
    ) {
        self.pending = self.pending.saturating_sub(1);
        match result {
            Ok(summary) => {
                self.set_status(summary, false);
                self.effects.push(Effect::Refresh);
            }
            Err(e) => {
                let line = format!("{} {} failed: {}", how.verb(), target.name, error_chain(&e));
                self.set_status(line.clone(), true);
                if !matches!(self.mode, Mode::Console(_)) {
                    self.mode = Mode::Message {
                        title: format!("{} failed", how.verb()),
                        lines: vec![line],
                        error: true,
                    };
                }
            }
        }
    }

    /// The config to edit arrived.
    pub fn on_config_fetched(
        &mut self,
        host: usize,
        dom: String,
        result: Result<String, ActionError>,
    ) {
        match result {
            Ok(text) => {
                self.status = None;
                self.edit_text(EditPurpose::Edit { host, dom }, text.clone(), text)
            }
            Err(e) => {
                let line = format!("cannot fetch the config of {dom}: {}", error_chain(&e));
                self.set_status(line.clone(), true);
                self.mode = Mode::Message {
                    title: "edit".into(),
                    lines: vec![line],
                    error: true,
                };
            }
        }
    }

    /// The external editor returned.
    pub fn on_edited(
        &mut self,
        purpose: EditPurpose,
        original: String,
        result: Result<String, ActionError>,
    ) {
        match result {
            Ok(edited) => self.edited(purpose, original, edited),
            Err(e) => {
                let e = error_chain(&e);
                self.set_status(format!("editor: {e}"), true);
                self.mode = Mode::Message {
                    title: "editor failed".into(),
                    lines: vec![e],
                    error: true,
                };
            }
        }
    }

    /// A config was applied (or rejected).
    pub fn on_applied(
        &mut self,
        purpose: EditPurpose,
        original: String,
        edited: String,
        result: Result<ApplyOutcome, ActionError>,
    ) {
        self.pending = self.pending.saturating_sub(1);
        match result {
            Ok(outcome) => {
                let lines = outcome.lines();
                self.set_status(lines.join("; "), false);
                self.mode = Mode::Message {
                    title: format!("{}: applied", purpose.describe()),
                    lines,
                    error: false,
                };
                self.effects.push(Effect::Refresh);
            }
            Err(e) => {
                let message = error_chain(&e);
                self.set_status(format!("{}: rejected: {message}", purpose.describe()), true);
                self.mode = Mode::EditError(EditReview {
                    purpose,
                    original,
                    edited,
                    message,
                    focus: 0,
                });
            }
        }
    }

    /// Console output arrived.
    pub fn on_console_data(&mut self, data: &[u8]) {
        if let Mode::Console(p) = &mut self.mode {
            p.feed(data);
        }
    }

    /// The console connection ended or failed.
    pub fn on_console_closed(&mut self, reason: String) {
        if let Mode::Console(p) = &mut self.mode {
            p.closed = Some(reason);
        }
    }

    /// The full-screen console session ended.
    pub fn on_console_full_done(&mut self, result: Result<String, ActionError>) {
        match result {
            Ok(msg) => self.set_status(msg, false),
            Err(e) => self.set_status(error_chain(&e), true),
        }
    }

    /// The settings file was written (or not).
    pub fn on_settings_saved(&mut self, result: Result<String, ActionError>) {
        match result {
            Ok(path) => self.set_status(format!("settings saved to {path}"), false),
            Err(e) => self.set_status(error_chain(&e), true),
        }
    }

    /// The terminal has a new size.
    pub fn on_resize(&mut self, width: u16, height: u16) {
        if let Mode::Console(p) = &mut self.mode {
            p.resize(height.saturating_sub(2).max(1), width.max(1));
        }
    }
}
