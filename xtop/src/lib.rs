//! xtop: the terminal management console for xend (xentop/virt-top mould, plus
//! actions, console attach and config editing), and its batch and script modes.
//!
//! Code map: [`model`] holds the collected data and rates; [`columns`] the
//! table's columns; [`action`] every command; [`keymap`], [`theme`] and
//! [`settings`] the user's files; [`app`] the state machine; [`ui`] the drawing (header, table, detail pane, bars, dialogs, console pane);
//! [`console`] the console pane; [`tui`] the terminal; [`hangup`] notices when it goes away; [`runtime`] the event
//! loop; [`collector`] the tasks that poll xend; [`effects`] carrying out
//! what the app asks (requests to xend, editor, consoles); [`error`] typed
//! errors; [`script`] `--script`, through the same app.
pub mod action;
pub mod app;
pub mod args;
pub mod batch;
pub mod collector;
pub mod columns;
pub mod console;
pub mod effects;
pub mod error;
pub mod hangup;
pub mod keymap;
pub mod model;
pub mod runtime;
pub mod script;
pub mod settings;
pub mod theme;
pub mod tui;
pub mod ui;
#[cfg(test)]
mod ui_tests;
