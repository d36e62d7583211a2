//! The application state and what each action does to it.
//!
//! [`App`] never does I/O: handling an action changes the state and queues
//! [`Effect`]s (requests to xend, running an editor, attaching a console) that
//! the runtime carries out, feeding the results back through the `on_*`
//! methods. Drawing ([`crate::ui`]) only reads the state.
use std::cell::Cell;
use std::collections::{BTreeSet, VecDeque};
use std::time::Duration;

use crossterm::event::{KeyCode, KeyEvent, MouseButton, MouseEvent, MouseEventKind};
use ratatui::layout::Rect;
use ratatui_textarea::TextArea;
use regex::Regex;

use crate::action::{Action, View};
use crate::columns::{CellCtx, Column, SortSpec};
use crate::console::ConsolePane;
use crate::keymap::Keymap;
use crate::model::{CpuMode, DomKey, DomRow, Store};
use crate::settings::Settings;
use crate::theme::Theme;

mod keys;
mod results;

/// An operation on a domain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DomOp {
    /// Pause.
    Pause,
    /// Unpause.
    Unpause,
    /// Shut down (poweroff).
    Shutdown,
    /// Reboot.
    Reboot,
    /// Destroy.
    Destroy,
}

impl DomOp {
    /// The verb shown in progress lines.
    pub fn verb(self) -> &'static str {
        match self {
            DomOp::Pause => "pause",
            DomOp::Unpause => "unpause",
            DomOp::Shutdown => "shutdown",
            DomOp::Reboot => "reboot",
            DomOp::Destroy => "destroy",
        }
    }
}

/// Moving a domain out of this xend: into an image or to another xend.
#[derive(Clone, Debug, PartialEq)]
pub enum Move {
    /// `op=save file=FILE`.
    Save(String),
    /// `op=migrate destination=DEST live=0|1`.
    Migrate {
        /// HOST[:PORT] of the destination xend.
        dest: String,
        /// Live (pre-copy).
        live: bool,
    },
}

impl Move {
    /// The verb shown in progress lines.
    pub fn verb(&self) -> &'static str {
        match self {
            Move::Save(_) => "save",
            Move::Migrate { .. } => "migrate",
        }
    }
}

/// A domain an action applies to.
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    /// Host index.
    pub host: usize,
    /// Domain name.
    pub name: String,
    /// Domain id.
    pub id: u32,
    /// State letters (API order).
    pub state: String,
    /// Console port, if any.
    pub console_port: Option<u16>,
}

/// Why a config is being edited.
#[derive(Clone, Debug, PartialEq)]
pub enum EditPurpose {
    /// Changing an existing domain's config.
    Edit {
        /// Host index.
        host: usize,
        /// Domain name.
        dom: String,
    },
    /// Writing a new domain's config.
    New {
        /// Host index.
        host: usize,
    },
}

impl EditPurpose {
    /// What the dialogs call it.
    pub fn describe(&self) -> String {
        match self {
            EditPurpose::Edit { dom, .. } => format!("config of {dom}"),
            EditPurpose::New { .. } => "new domain".to_owned(),
        }
    }
}

/// Something the runtime must do for the app.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    /// Leave.
    Quit,
    /// Poll every host now.
    Refresh,
    /// Change the refresh delay.
    SetDelay(Duration),
    /// Run an operation on a domain; answer with [`App::on_op_done`].
    Op {
        /// Which domain.
        target: Target,
        /// What to do.
        op: DomOp,
    },
    /// Save or migrate a domain; answer with [`App::on_move_done`].
    Move {
        /// Which domain.
        target: Target,
        /// Where it goes.
        how: Move,
    },
    /// Fetch a domain's config (xm form); answer with [`App::on_config_fetched`].
    FetchConfig {
        /// Host index.
        host: usize,
        /// Domain name.
        dom: String,
    },
    /// Open `$VISUAL`/`$EDITOR` on `text`; answer with [`App::on_edited`].
    RunEditor {
        /// Why.
        purpose: EditPurpose,
        /// The text before editing.
        original: String,
        /// The text to edit.
        text: String,
    },
    /// Send a changed config; answer with [`App::on_applied`].
    Apply {
        /// Why.
        purpose: EditPurpose,
        /// Text before editing.
        original: String,
        /// The new config.
        text: String,
    },
    /// Connect the console pane; feed [`App::on_console_data`].
    ConsoleAttach(Target),
    /// Type into the attached console.
    ConsoleSend(Vec<u8>),
    /// Close the console connection.
    ConsoleDetach,
    /// Give the terminal to the console client until it returns.
    ConsoleFull(Target),
    /// Write the settings file.
    SaveSettings(Settings),
    /// Suspend xtop (Ctrl-Z).
    Suspend,
    /// Repaint the whole screen.
    Redraw,
    /// Turn mouse capture on or off.
    SetMouse(bool),
}

/// What the `/`, `:` or `D` prompt is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PromptKind {
    /// A command line.
    Command,
    /// A filter regex.
    Filter,
    /// The refresh delay.
    Delay,
}

/// An open prompt.
#[derive(Clone, Debug, PartialEq)]
pub struct Prompt {
    /// What it is for.
    pub kind: PromptKind,
    /// Text typed so far.
    pub input: String,
    /// Completions of the last Tab, and which one is shown.
    pub completions: Vec<String>,
    /// Index into `completions`.
    pub completion: usize,
}

/// A yes/no question before something destructive.
#[derive(Clone, Debug, PartialEq)]
pub struct Confirm {
    /// Dialog title.
    pub title: String,
    /// The question, naming the domains.
    pub message: String,
    /// Domains it applies to.
    pub targets: Vec<Target>,
    /// The operation.
    pub op: DomOp,
    /// True when the OK button has focus (the default is Cancel).
    pub ok_focused: bool,
}

/// The screens and dialogs; one at a time on top of the table.
pub enum Mode {
    /// The table.
    Normal,
    /// The key list.
    Help {
        /// First line shown.
        scroll: u16,
    },
    /// A prompt on the bottom line.
    Prompt(Prompt),
    /// A confirm dialog.
    Confirm(Confirm),
    /// The column chooser.
    Columns {
        /// Highlighted entry.
        cursor: usize,
    },
    /// A message (an action's full result or an error).
    Message {
        /// Title.
        title: String,
        /// Lines.
        lines: Vec<String>,
        /// Shown as an error.
        error: bool,
    },
    /// The console pane.
    Console(Box<ConsolePane>),
    /// The built-in editor.
    Editor {
        /// The text area.
        area: Box<TextArea<'static>>,
        /// Why.
        purpose: EditPurpose,
        /// Text before editing.
        original: String,
    },
    /// The diff of an edit, before applying.
    Diff(EditReview),
    /// A rejected edit: the error, then edit again or abandon.
    EditError(EditReview),
}

/// An edited config under review (diff, or the server's error).
#[derive(Clone, Debug, PartialEq)]
pub struct EditReview {
    /// Why.
    pub purpose: EditPurpose,
    /// Text before editing.
    pub original: String,
    /// Text after editing.
    pub edited: String,
    /// The server's error, for [`Mode::EditError`].
    pub message: String,
    /// Focused button: 0 apply (or edit again), 1 edit again (or abandon), 2 abandon.
    pub focus: usize,
}

impl std::fmt::Debug for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match self {
            Mode::Normal => "Normal",
            Mode::Help { .. } => "Help",
            Mode::Prompt(_) => "Prompt",
            Mode::Confirm(_) => "Confirm",
            Mode::Columns { .. } => "Columns",
            Mode::Message { .. } => "Message",
            Mode::Console(_) => "Console",
            Mode::Editor { .. } => "Editor",
            Mode::Diff(_) => "Diff",
            Mode::EditError(_) => "EditError",
        };
        f.write_str(name)
    }
}

/// A line of the status bar.
#[derive(Clone, Debug, PartialEq)]
pub struct Status {
    /// The text.
    pub text: String,
    /// Shown as an error.
    pub error: bool,
}

/// Options fixed at start-up.
#[derive(Clone, Debug)]
pub struct Options {
    /// No action keys, no action commands.
    pub readonly: bool,
    /// Use `$VISUAL`/`$EDITOR` when set (false: always the built-in editor).
    pub external_editor: Option<String>,
    /// Console escape byte.
    pub escape: u8,
    /// How the escape key is written (`Ctrl-]`).
    pub escape_label: String,
    /// Where `W` writes.
    pub settings_path: Option<std::path::PathBuf>,
    /// The theme name (for `W`).
    pub theme_name: String,
}

/// The whole state of the interactive UI.
pub struct App {
    /// Collected data.
    pub store: Store,
    /// Key bindings.
    pub keymap: Keymap,
    /// Styles.
    pub theme: Theme,
    /// Start-up options.
    pub opts: Options,
    /// Settings as loaded (kept for `W`).
    pub settings: Settings,
    /// The open screen or dialog.
    pub mode: Mode,
    /// The current view.
    pub view: View,
    /// Columns shown in the domains view.
    pub columns: Vec<Column>,
    /// Sort order.
    pub sort: SortSpec,
    /// Filter: regex and whether it is inverted.
    pub filter: Option<(Regex, bool)>,
    /// Selected domain.
    pub selected: Option<DomKey>,
    /// Tagged domains.
    pub tagged: BTreeSet<DomKey>,
    /// CPU% convention.
    pub cpu_mode: CpuMode,
    /// Refresh delay.
    pub delay: Duration,
    /// xentop N/B/V expansions.
    pub show_nets: bool,
    /// Block device rows.
    pub show_vbds: bool,
    /// vCPU rows.
    pub show_vcpus: bool,
    /// xentop R.
    pub repeat_header: bool,
    /// The detail pane.
    pub show_detail: bool,
    /// While frozen (`Z`): the live data, still ingesting every snapshot so
    /// rates are right the moment the screen resumes; [`App::store`] is the
    /// frozen picture shown meanwhile.
    pub frozen: Option<Box<Store>>,
    /// Mouse capture on.
    pub mouse: bool,
    /// Operations sent and not answered yet.
    pub pending: usize,
    /// The status line.
    pub status: Option<Status>,
    /// The last event xend reported (shown at the right of the status line).
    pub last_event: Option<String>,
    /// Recent results, newest last.
    pub log: VecDeque<Status>,
    /// Where the table was drawn (for mouse clicks): body area, first row index.
    pub table_area: Cell<(Rect, usize)>,
    /// Column x ranges of the last drawn header: `(x, width, column)`.
    pub header_cells: std::cell::RefCell<Vec<(u16, u16, Column)>>,
    /// The domain drawn on each line of the last table body (for mouse clicks).
    pub line_keys: std::cell::RefCell<Vec<Option<DomKey>>>,
    /// Rows of the last drawn page (for paging).
    pub page_rows: Cell<usize>,
    effects: Vec<Effect>,
    /// Set when the user asked to quit.
    pub quit: bool,
}

/// Columns the domains view shows by default: ID and every xentop column.
pub fn default_columns(multi_host: bool) -> Vec<Column> {
    Column::ALL
        .into_iter()
        .filter(|c| *c != Column::Host || multi_host)
        .collect()
}

impl App {
    /// A new app over `store`.
    pub fn new(
        store: Store,
        keymap: Keymap,
        theme: Theme,
        opts: Options,
        settings: Settings,
    ) -> App {
        let multi = store.hosts.len() > 1;
        let mut columns = settings
            .columns
            .as_ref()
            .and_then(|c| crate::columns::parse_fields(&c.join(",")).ok())
            .unwrap_or_else(|| default_columns(multi));
        if multi && !columns.contains(&Column::Host) {
            columns.insert(0, Column::Host);
        }
        let sort = settings
            .sort
            .as_deref()
            .and_then(SortSpec::parse)
            .unwrap_or_default();
        let delay = Duration::from_secs_f64(settings.delay.unwrap_or(3.0).max(0.1));
        App {
            store,
            keymap,
            theme,
            cpu_mode: settings.cpu_mode.unwrap_or_default(),
            mouse: settings.mouse.unwrap_or(false),
            opts,
            settings,
            mode: Mode::Normal,
            view: View::Domains,
            columns,
            sort,
            filter: None,
            selected: None,
            tagged: BTreeSet::new(),
            delay,
            show_nets: false,
            show_vbds: false,
            show_vcpus: false,
            repeat_header: false,
            show_detail: false,
            frozen: None,
            pending: 0,
            status: None,
            log: VecDeque::new(),
            last_event: None,
            table_area: Cell::new((Rect::default(), 0)),
            header_cells: Default::default(),
            line_keys: Default::default(),
            page_rows: Cell::new(10),
            effects: Vec::new(),
            quit: false,
        }
    }

    /// Takes the effects queued so far.
    pub fn take_effects(&mut self) -> Vec<Effect> {
        std::mem::take(&mut self.effects)
    }

    /// Host labels, by index.
    pub fn host_labels(&self) -> Vec<String> {
        self.store.hosts.iter().map(|h| h.label.clone()).collect()
    }

    /// The rows shown, filtered and sorted.
    pub fn visible_rows(&self) -> Vec<&DomRow> {
        let mut rows: Vec<&DomRow> = self
            .store
            .rows()
            .filter(|r| match &self.filter {
                None => true,
                Some((re, invert)) => re.is_match(&r.dom.name) != *invert,
            })
            .collect();
        self.sort.sort(&mut rows, &self.host_labels());
        rows
    }

    /// Cell context for host `host`.
    pub fn cell_ctx(&self, host: usize, full_names: bool) -> CellCtx {
        let snap = self.store.hosts.get(host).and_then(|h| h.snapshot.as_ref());
        CellCtx {
            host_mem_kib: snap.map(|s| s.node.memory * 1024).unwrap_or(0),
            nr_cpus: self.store.nr_cpus(host),
            cpu_mode: self.cpu_mode,
            full_names,
        }
    }

    /// Index of the selected row among `rows` (the first row if none).
    pub fn selected_index(&self, rows: &[&DomRow]) -> Option<usize> {
        if rows.is_empty() {
            return None;
        }
        Some(
            self.selected
                .and_then(|k| rows.iter().position(|r| r.key == k))
                .unwrap_or(0),
        )
    }

    /// The selected row.
    pub fn selected_row(&self) -> Option<&DomRow> {
        let rows = self.visible_rows();
        self.selected_index(&rows).map(|i| rows[i])
    }

    fn set_status(&mut self, text: impl Into<String>, error: bool) {
        let s = Status {
            text: text.into(),
            error,
        };
        self.log.push_back(s.clone());
        if self.log.len() > 50 {
            self.log.pop_front();
        }
        self.status = Some(s);
    }

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
        let (area, _) = self.table_area.get();
        match ev.kind {
            MouseEventKind::Down(MouseButton::Left) => {
                if ev.row + 1 == area.y {
                    let hit = self
                        .header_cells
                        .borrow()
                        .iter()
                        .find(|(x, w, _)| ev.column >= *x && ev.column < x + w)
                        .map(|(_, _, c)| *c);
                    if let Some(c) = hit {
                        let reverse = self.sort.column == c && !self.sort.reverse;
                        self.dispatch(Action::Sort(Some(SortSpec { column: c, reverse })));
                    }
                } else if ev.row >= area.y && ev.row < area.y + area.height {
                    let line = (ev.row - area.y) as usize;
                    let key = self.line_keys.borrow().get(line).copied().flatten();
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

    /// Does what `action` says.
    pub fn dispatch(&mut self, action: Action) {
        if action.acts() && self.opts.readonly {
            self.set_status("read-only mode: actions are disabled", true);
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
            Action::PageUp => self.move_selection(-(self.page_rows.get().max(1) as isize)),
            Action::PageDown => self.move_selection(self.page_rows.get().max(1) as isize),
            Action::Home => self.move_selection(isize::MIN / 2),
            Action::End => self.move_selection(isize::MAX / 2),
            Action::SortNext => {
                let cols: Vec<Column> = self.columns.clone();
                let i = cols
                    .iter()
                    .position(|c| *c == self.sort.column)
                    .map(|i| i + 1)
                    .unwrap_or(0);
                self.sort = SortSpec {
                    column: cols[i % cols.len().max(1)],
                    reverse: false,
                };
            }
            Action::Sort(None) | Action::SortReverse => self.sort.reverse = !self.sort.reverse,
            Action::Sort(Some(spec)) => {
                // Pressing a sort key again flips the order.
                if spec.column == self.sort.column
                    && !spec.reverse
                    && self.sort.reverse == spec.reverse
                {
                    self.sort.reverse = !self.sort.reverse;
                } else {
                    self.sort = spec;
                }
            }
            Action::View(v) => self.view = v,
            Action::ToggleNets => self.show_nets = !self.show_nets,
            Action::ToggleVbds => self.show_vbds = !self.show_vbds,
            Action::ToggleVcpus => self.show_vcpus = !self.show_vcpus,
            Action::RepeatHeader => self.repeat_header = !self.repeat_header,
            Action::CpuMode => self.cpu_mode = self.cpu_mode.toggled(),
            Action::Detail => self.show_detail = !self.show_detail,
            Action::Help => self.mode = Mode::Help { scroll: 0 },
            Action::Prompt => self.open_prompt(PromptKind::Command, String::new()),
            Action::Filter(None) => {
                let cur = self
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

    fn move_selection(&mut self, delta: isize) {
        let rows = self.visible_rows();
        let Some(cur) = self.selected_index(&rows) else {
            return;
        };
        let next = (cur as isize)
            .saturating_add(delta)
            .clamp(0, rows.len() as isize - 1) as usize;
        self.selected = Some(rows[next].key);
    }

    fn open_prompt(&mut self, kind: PromptKind, input: String) {
        self.mode = Mode::Prompt(Prompt {
            kind,
            input,
            completions: Vec::new(),
            completion: 0,
        });
    }

    fn set_filter(&mut self, f: &str) {
        let (invert, pat) = match f.strip_prefix('!') {
            Some(p) => (true, p),
            None => (false, f),
        };
        if pat.is_empty() {
            self.filter = None;
            return;
        }
        match Regex::new(pat) {
            Ok(re) => self.filter = Some((re, invert)),
            Err(e) => self.set_status(format!("filter: bad regex: {e}"), true),
        }
    }

    fn toggle_column(&mut self, c: Column) {
        if let Some(i) = self.columns.iter().position(|x| *x == c) {
            if c != Column::Name {
                self.columns.remove(i);
            }
        } else {
            let order = |x: &Column| Column::ALL.iter().position(|y| y == x).unwrap_or(0);
            self.columns.push(c);
            self.columns.sort_by_key(order);
        }
    }

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

    fn console_target(&mut self, named: Option<String>) -> Option<Target> {
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

    fn ops(&mut self, named: Option<String>, op: DomOp) {
        for t in self.targets(named) {
            self.send_op(t, op);
        }
    }

    /// Save or migrate the selected domain (one at a time: an image or a
    /// destination holds one domain).
    fn send_move(&mut self, how: Move) {
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

    fn send_op(&mut self, target: Target, op: DomOp) {
        self.pending += 1;
        self.set_status(format!("{} {}…", op.verb(), target.name), false);
        self.effects.push(Effect::Op { target, op });
    }

    fn save_settings(&mut self) {
        let mut s = self.settings.clone();
        s.theme = Some(self.opts.theme_name.clone());
        s.delay = Some(self.delay.as_secs_f64());
        s.sort = Some(self.sort.to_spec_string());
        s.columns = Some(self.columns.iter().map(|c| c.key().to_owned()).collect());
        s.cpu_mode = Some(self.cpu_mode);
        s.mouse = Some(self.mouse);
        self.settings = s.clone();
        self.effects.push(Effect::SaveSettings(s));
    }
}

/// What applying a config did.
#[derive(Clone, Debug, PartialEq)]
pub enum ApplyOutcome {
    /// An existing domain was reconfigured.
    Configured(xend::client::ConfigureResult),
    /// A new domain was created.
    Created {
        /// Its name.
        name: String,
        /// Its id.
        id: u32,
        /// Its console port.
        console_port: Option<u16>,
    },
}

impl ApplyOutcome {
    /// The result in full, one line per fact.
    pub fn lines(&self) -> Vec<String> {
        match self {
            ApplyOutcome::Configured(r) => {
                let list = |v: &[String]| {
                    if v.is_empty() {
                        "nothing".to_owned()
                    } else {
                        v.join(", ")
                    }
                };
                vec![
                    format!("Applied now (live): {}", list(&r.live)),
                    format!("Stored for the next boot: {}", list(&r.next_boot)),
                ]
            }
            ApplyOutcome::Created {
                name,
                id,
                console_port,
            } => vec![format!(
                "Started domain {name} (id {id}){}",
                console_port
                    .map(|p| format!(", console on port {p}"))
                    .unwrap_or_default()
            )],
        }
    }
}

fn destroy_confirm(targets: Vec<Target>) -> Confirm {
    let names: Vec<&str> = targets.iter().map(|t| t.name.as_str()).collect();
    let message = if names.len() == 1 {
        format!(
            "Destroy domain {} (id {})? It stops at once, without shutting down.",
            names[0], targets[0].id
        )
    } else {
        format!(
            "Destroy {} domains: {}? They stop at once.",
            names.len(),
            names.join(", ")
        )
    };
    Confirm {
        title: "Destroy".into(),
        message,
        targets,
        op: DomOp::Destroy,
        ok_focused: false,
    }
}

/// The template `n` opens.
pub const NEW_TEMPLATE: &str = r#"# New domain. Edit, save and quit to create it; leave it unchanged to cancel.
# Lines are `key = value`; strings in quotes; `#` starts a comment.

# Name: letters, digits and _-.:+ ; must not start with a digit, - or . (no ..).
name = "newdom"

# Memory target and maximum, MiB.
memory = 32
# maxmem = 64

# Virtual CPUs, and an optional host CPU to pin to.
vcpus = 1
# cpu = 0

# No `kernel` line boots the built-in minios guest; its command line can run
# commands at boot, e.g. extra = "autorun=echo hello".
# extra = ""

# What to do when the guest stops: onreboot (restart on reboot), always, never.
restart = "onreboot"
"#;
