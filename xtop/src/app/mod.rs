//! The application state and what each action does to it.
//!
//! [`App`] never does I/O: handling an action changes the state and queues
//! [`Effect`]s (requests to xend, running an editor, attaching a console) that
//! the runtime ([`crate::effects`]) carries out, feeding the results back
//! through the `on_*` methods ([`results`]). Keys, the `:` prompt and
//! `--script` all end in [`App::dispatch`]. Drawing ([`crate::ui`]) only reads
//! the state and returns where it drew the table ([`TableLayout`]), which the
//! runtime hands back with [`App::on_layout`] for mouse clicks and paging.
//!
//! Files: [`effect`] the effect types, [`mode`] the dialogs, [`layout`] the
//! drawn table's geometry, `input` keys and mouse on the table, `dispatch`
//! what each action does, `targets` which domains an action applies to,
//! `keys` keys inside dialogs, [`results`] results coming back.
use std::collections::{BTreeSet, VecDeque};
use std::time::Duration;

use regex::Regex;

use crate::action::View;
use crate::columns::{CellCtx, Column, SortSpec};
use crate::keymap::Keymap;
use crate::model::{CpuMode, DomKey, DomRow, Store};
use crate::settings::Settings;
use crate::theme::Theme;

mod dispatch;
pub mod effect;
mod input;
mod keys;
pub mod layout;
pub mod mode;
pub mod results;
mod targets;
mod template;

pub use effect::{ApplyOutcome, DomOp, EditPurpose, Effect, Move, Target};

/// What `--readonly` answers an action (a key, a dispatched action, a
/// script command).
pub const READ_ONLY: &str = "read-only mode: actions are disabled";
pub use layout::TableLayout;
pub use mode::{Confirm, EditReview, Mode, Prompt, PromptKind};
pub use template::NEW_TEMPLATE;

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

/// How the table is shown: which view, columns, order, filter and rows.
#[derive(Clone, Debug)]
pub struct TableView {
    /// The current view.
    pub view: View,
    /// Columns shown in the domains view.
    pub columns: Vec<Column>,
    /// Sort order.
    pub sort: SortSpec,
    /// Filter: regex and whether it is inverted.
    pub filter: Option<(Regex, bool)>,
    /// CPU% convention.
    pub cpu_mode: CpuMode,
    /// xentop N: network rows.
    pub show_nets: bool,
    /// xentop B: block device rows.
    pub show_vbds: bool,
    /// xentop V: vCPU rows.
    pub show_vcpus: bool,
    /// xentop R.
    pub repeat_header: bool,
    /// The detail pane.
    pub show_detail: bool,
    /// The header's host groups collapsed to one line per host (the
    /// default with more than three hosts).
    pub hosts_collapsed: bool,
}

/// The whole state of the interactive UI.
pub struct App {
    /// Collected data (the frozen picture while [`App::frozen`]).
    pub store: Store,
    /// While frozen (`Z`): the live data, still ingesting every snapshot so
    /// rates are right the moment the screen resumes.
    pub frozen: Option<Box<Store>>,
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
    /// How the table is shown.
    pub table: TableView,
    /// Selected domain.
    pub selected: Option<DomKey>,
    /// Tagged domains.
    pub tagged: BTreeSet<DomKey>,
    /// Refresh delay.
    pub delay: Duration,
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
    /// Where the last frame drew the table (from [`App::on_layout`]).
    pub layout: TableLayout,
    effects: Vec<Effect>,
    /// Set when the user asked to quit.
    pub quit: bool,
}

/// Columns the domains view shows by default: ID and every xentop column
/// (WEIGHT/CAP, KERNEL and IMAGE are one `F` or `:column` away).
pub fn default_columns(multi_host: bool) -> Vec<Column> {
    Column::ALL
        .into_iter()
        .filter(|c| {
            (*c != Column::Host || multi_host)
                && !matches!(c, Column::Sched | Column::Kernel | Column::Image)
        })
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
        let store_hosts = store.hosts.len();
        let multi = store_hosts > 1;
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
        let cpu_mode = settings.cpu_mode.unwrap_or_default();
        App {
            store,
            keymap,
            theme,
            mouse: settings.mouse.unwrap_or(false),
            opts,
            settings,
            mode: Mode::Normal,
            table: TableView {
                view: View::Domains,
                columns,
                sort,
                filter: None,
                cpu_mode,
                show_nets: false,
                show_vbds: false,
                show_vcpus: false,
                repeat_header: false,
                show_detail: false,
                hosts_collapsed: multi && store_hosts > 3,
            },
            selected: None,
            tagged: BTreeSet::new(),
            delay,
            frozen: None,
            pending: 0,
            status: None,
            log: VecDeque::new(),
            last_event: None,
            layout: TableLayout::default(),
            effects: Vec::new(),
            quit: false,
        }
    }

    /// Where the last frame drew the table (the runtime passes what
    /// [`crate::ui::draw`] returned).
    pub fn on_layout(&mut self, layout: TableLayout) {
        self.layout = layout;
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
            .filter(|r| match &self.table.filter {
                None => true,
                Some((re, invert)) => re.is_match(&r.dom.name) != *invert,
            })
            .collect();
        self.table.sort.sort(&mut rows, &self.host_labels());
        rows
    }

    /// Cell context for host `host`.
    pub fn cell_ctx(&self, host: usize, full_names: bool) -> CellCtx {
        let snap = self.store.hosts.get(host).and_then(|h| h.snapshot.as_ref());
        CellCtx {
            host_mem_kib: snap.map(|s| s.node.memory * 1024).unwrap_or(0),
            nr_cpus: self.store.nr_cpus(host),
            cpu_mode: self.table.cpu_mode,
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

    pub(crate) fn set_status(&mut self, text: impl Into<String>, error: bool) {
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
}
