//! Drawing: reads the [`App`] and paints a frame. Never collects, never blocks.

mod bars;
mod console;
mod detail;
mod dialogs;
mod header;
mod table;

use bars::{draw_keybar, draw_status};
use console::draw_console;
use detail::draw_detail;
use dialogs::{draw_columns, draw_dialog, draw_diff, draw_help};
use header::draw_header;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout};
use ratatui::widgets::Block;
use table::draw_table;

use crate::app::{App, Mode, TableLayout};

/// Paints the whole screen; returns where the table was drawn (what the
/// runtime passes to [`App::on_layout`]).
pub fn draw(f: &mut Frame, app: &App) -> TableLayout {
    let area = f.area();
    match &app.mode {
        Mode::Console(p) => {
            draw_console(f, app, p, area);
            return app.layout.clone();
        }
        Mode::Editor {
            area: ta, purpose, ..
        } => {
            let block = Block::bordered()
                .title(format!(" Editing the {} ", purpose.describe()))
                .title_bottom(" Ctrl-S save and review · Esc abandon ")
                .border_style(app.theme.dialog_border);
            let inner = block.inner(area);
            f.render_widget(block, area);
            f.render_widget(&**ta, inner);
            return app.layout.clone();
        }
        Mode::Diff(r) => {
            draw_diff(f, app, r, area);
            return app.layout.clone();
        }
        _ => {}
    }
    if area.width < 20 || area.height < 4 {
        let msg = "xtop: terminal too small";
        for (i, chunk) in msg
            .as_bytes()
            .chunks(area.width.max(1) as usize)
            .enumerate()
            .take(area.height as usize)
        {
            let line = String::from_utf8_lossy(chunk);
            f.buffer_mut().set_stringn(
                area.x,
                area.y + i as u16,
                line,
                area.width as usize,
                app.theme.error,
            );
        }
        return app.layout.clone();
    }
    let small = area.height < 12;
    let header_h = if small { 1 } else { header_height(app) };
    let detail_h = if app.table.show_detail && area.height >= 20 {
        9
    } else {
        0
    };
    let [header, table, detail, status, keybar] = Layout::vertical([
        Constraint::Length(header_h),
        Constraint::Min(1),
        Constraint::Length(detail_h),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(area);
    draw_header(f.buffer_mut(), app, header, small);
    let layout = draw_table(f.buffer_mut(), app, table);
    if detail_h > 0 {
        draw_detail(f, app, detail);
    }
    draw_status(f.buffer_mut(), app, status);
    draw_keybar(f.buffer_mut(), app, keybar);
    match &app.mode {
        Mode::Help { scroll } => draw_help(f, app, *scroll, area),
        Mode::Confirm(c) => {
            let buttons = [("Cancel", !c.ok_focused), (c.title.as_str(), c.ok_focused)];
            draw_dialog(
                f,
                app,
                &c.title,
                std::slice::from_ref(&c.message),
                &buttons,
                area,
                true,
            );
        }
        Mode::Columns { cursor } => draw_columns(f, app, *cursor, area),
        Mode::Message {
            title,
            lines,
            error,
        } => {
            draw_dialog(f, app, title, lines, &[("OK", true)], area, *error);
        }
        Mode::EditError(r) => {
            let mut lines = vec![format!("xend rejected the {}:", r.purpose.describe())];
            lines.extend(r.message.lines().map(str::to_owned));
            lines.push(String::new());
            lines.push("Your edit is kept: edit again to fix it.".into());
            let buttons = [("Edit again", r.focus == 0), ("Abandon", r.focus != 0)];
            draw_dialog(f, app, "Config rejected", &lines, &buttons, area, true);
        }
        _ => {}
    }
    layout
}

fn header_height(app: &App) -> u16 {
    let hosts = app.store.hosts.len() as u16;
    if app.table.hosts_collapsed {
        // One line per host, at most MAX_HOST_LINES (the last one then
        // counts the rest).
        1 + hosts.min(header::MAX_HOST_LINES)
    } else {
        1 + 2 * hosts.min(3)
    }
}

fn fmt_time(t: f64) -> String {
    let secs = t as i64;
    let (h, m, s) = ((secs / 3600) % 24, (secs / 60) % 60, secs % 60);
    format!("{h:02}:{m:02}:{s:02}")
}
