//! What the app asks the runtime to do ([`Effect`]), the values those
//! requests carry (targets, operations, edit purposes), and what applying a
//! config did ([`ApplyOutcome`]).
use std::time::Duration;

use crate::settings::Settings;

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
    /// Set the credit-scheduler weight and/or cap (`None` keeps it).
    Sched {
        /// Weight, 1..65535.
        weight: Option<u32>,
        /// Cap, percent of one CPU (0 = none).
        cap: Option<u32>,
    },
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
            DomOp::Sched { .. } => "sched",
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
