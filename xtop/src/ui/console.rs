//! The full-screen console pane.
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};

use crate::app::App;

/// The console pane: title with the escape and power keys, the emulated screen, a state line.
pub(super) fn draw_console(f: &mut Frame, app: &App, p: &crate::console::ConsolePane, area: Rect) {
    let t = &app.theme;
    let [top, body, bottom] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(1),
        Constraint::Length(1),
    ])
    .areas(area);
    let state = app
        .store
        .find(&p.target.name)
        .map(|r| r.xentop_state())
        .unwrap_or_else(|| "gone".into());
    let title = format!(
        " console {} (id {}) port {} [{state}] │ {} detach │ F2 pause/unpause F3 shutdown F4 reboot F8 destroy │ Shift-PgUp/Dn scroll ",
        p.target.name,
        p.target.id,
        p.target.console_port.unwrap_or(0),
        p.escape_label
    );
    f.buffer_mut().set_style(top, t.table_header);
    f.buffer_mut()
        .set_stringn(top.x, top.y, title, top.width as usize, t.table_header);
    f.render_widget(
        tui_term::widget::PseudoTerminal::new(p.parser.screen()),
        body,
    );
    let (text, style) = match (&p.closed, &app.status) {
        (Some(reason), _) => (
            format!(
                "console closed: {reason} — {} returns to the table",
                p.escape_label
            ),
            t.error,
        ),
        (None, _) if p.scroll > 0 => (
            format!(
                "scrolled back {} lines (Shift-PgDn, or type to return)",
                p.scroll
            ),
            t.prompt,
        ),
        (None, Some(s)) => (s.text.clone(), if s.error { t.error } else { t.ok }),
        (None, None) => (format!("connected, {} bytes received", p.received), t.dim),
    };
    f.buffer_mut()
        .set_stringn(bottom.x, bottom.y, text, bottom.width as usize, style);
}
