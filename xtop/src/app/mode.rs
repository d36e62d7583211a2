//! The screens and dialogs shown on top of the table ([`Mode`]), and what
//! each one holds.
use ratatui_textarea::TextArea;

use super::effect::{DomOp, EditPurpose, Target};
use crate::console::ConsolePane;

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

/// The destroy dialog for `targets` (Cancel focused).
pub(super) fn destroy_confirm(targets: Vec<Target>) -> Confirm {
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
