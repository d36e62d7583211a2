//! Dialogs and overlays: confirm/message, help, field picker, diff review.
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph, Wrap};

use crate::action::COMMANDS;
use crate::app::{App, EditReview};
use crate::columns::Column;

/// A `w` x `h` rectangle centred in `area` (clipped to it).
pub(super) fn centered(area: Rect, w: u16, h: u16) -> Rect {
    let w = w.min(area.width);
    let h = h.min(area.height);
    Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    }
}

/// A bordered dialog with wrapped lines and a row of buttons.
pub(super) fn draw_dialog(
    f: &mut Frame,
    app: &App,
    title: &str,
    lines: &[String],
    buttons: &[(&str, bool)],
    area: Rect,
    error: bool,
) {
    let t = &app.theme;
    let width = lines
        .iter()
        .map(|l| l.chars().count())
        .max()
        .unwrap_or(20)
        .clamp(30, 76) as u16
        + 4;
    let wrapped: u16 = lines
        .iter()
        .map(|l| (l.chars().count() as u16 / (width - 4)) + 1)
        .sum();
    let rect = centered(area, width, wrapped + 4);
    f.render_widget(Clear, rect);
    let border = if error { t.error } else { t.dialog_border };
    let block = Block::bordered()
        .title(format!(" {title} "))
        .border_style(border)
        .style(t.dialog);
    let inner = block.inner(rect);
    f.render_widget(block, rect);
    let [body, _, bar] = Layout::vertical([
        Constraint::Min(1),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(inner);
    f.render_widget(
        Paragraph::new(lines.join("\n"))
            .wrap(Wrap { trim: false })
            .style(t.dialog),
        body,
    );
    let spans: Vec<Span> = buttons
        .iter()
        .flat_map(|(label, focused)| {
            [
                Span::styled(format!("[ {label} ]"), t.button(*focused)),
                Span::raw("  "),
            ]
        })
        .collect();
    f.render_widget(Paragraph::new(Line::from(spans)).centered(), bar);
}

/// The help overlay: every binding, the console keys, every command.
pub(super) fn draw_help(f: &mut Frame, app: &App, scroll: u16, area: Rect) {
    let t = &app.theme;
    let rect = centered(area, 86, area.height.saturating_sub(2).max(3));
    f.render_widget(Clear, rect);
    let mut lines: Vec<Line> = vec![Line::styled(
        "Keys (any key closes; ↑/↓ scroll). Every key runs a command you can also type at ':'.",
        t.dim,
    )];
    for b in app.keymap.bindings() {
        let help = COMMANDS
            .iter()
            .find(|c| b.command.split_whitespace().next() == Some(c.name))
            .map(|c| c.help)
            .unwrap_or("");
        lines.push(Line::from(vec![
            Span::styled(format!("{:>10} ", b.key), t.key),
            Span::styled(format!(" {:<16}", b.command), t.dialog),
            Span::styled(help.to_owned(), t.dim),
        ]));
    }
    lines.push(Line::styled("Console pane:", t.dialog_border));
    for (k, h) in [
        (app.opts.escape_label.as_str(), "detach (back to the table)"),
        ("F2", "pause/unpause"),
        ("F3", "shutdown"),
        ("F4", "reboot"),
        ("F8", "destroy (asks first)"),
        ("Shift-PgUp/Dn", "scroll back"),
    ] {
        lines.push(Line::from(vec![
            Span::styled(format!("{k:>14} "), t.key),
            Span::styled(format!(" {h}"), t.dim),
        ]));
    }
    lines.push(Line::styled(
        "Dialogs: ←/→ choose, Enter confirms, Esc cancels. Editor: Ctrl-S save, Esc abandon.",
        t.dim,
    ));
    lines.push(Line::styled("Commands only at ':' — ", t.dim));
    for c in COMMANDS {
        lines.push(Line::from(vec![
            Span::styled(
                format!("{:>24} ", format!("{} {}", c.name, c.args)),
                t.prompt,
            ),
            Span::styled(format!(" {}", c.help), t.dim),
        ]));
    }
    let block = Block::bordered()
        .title(" Help ")
        .border_style(t.dialog_border)
        .style(t.dialog);
    f.render_widget(Paragraph::new(lines).block(block).scroll((scroll, 0)), rect);
}

/// The field picker.
pub(super) fn draw_columns(f: &mut Frame, app: &App, cursor: usize, area: Rect) {
    let t = &app.theme;
    let rect = centered(area, 44, Column::ALL.len() as u16 + 3);
    f.render_widget(Clear, rect);
    let lines: Vec<Line> = Column::ALL
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let on = app.table.columns.contains(c);
            let sort = if app.table.sort.column == *c {
                " (sort)"
            } else {
                ""
            };
            let text = format!(
                "[{}] {:<10} {}{sort}",
                if on { 'x' } else { ' ' },
                c.header(),
                c.key()
            );
            let style = if i == cursor {
                t.button_focused
            } else {
                t.dialog
            };
            Line::styled(text, style)
        })
        .collect();
    let block = Block::bordered()
        .title(" Fields ")
        .title_bottom(" Space show/hide · s sort · Esc close ")
        .border_style(t.dialog_border)
        .style(t.dialog);
    f.render_widget(Paragraph::new(lines).block(block), rect);
}

/// The review screen of an edited config: a coloured diff and the buttons.
pub(super) fn draw_diff(f: &mut Frame, app: &App, r: &EditReview, area: Rect) {
    let t = &app.theme;
    let diff = similar::TextDiff::from_lines(&r.original, &r.edited);
    let mut lines: Vec<Line> = Vec::new();
    for change in diff.iter_all_changes() {
        let (sign, style) = match change.tag() {
            similar::ChangeTag::Delete => ("-", t.diff_remove),
            similar::ChangeTag::Insert => ("+", t.diff_add),
            similar::ChangeTag::Equal => (" ", t.dim),
        };
        lines.push(Line::styled(
            format!("{sign} {}", change.value().trim_end_matches('\n')),
            style,
        ));
    }
    let [body, bar] = Layout::vertical([Constraint::Min(1), Constraint::Length(1)]).areas(area);
    let verb = match r.purpose {
        crate::app::EditPurpose::New { .. } => "Create",
        crate::app::EditPurpose::Edit { .. } => "Apply",
    };
    let block = Block::bordered()
        .title(format!(" Review the {} ", r.purpose.describe()))
        .title_bottom(" y/Enter apply · e edit again · Esc abandon ")
        .border_style(t.dialog_border);
    f.render_widget(Paragraph::new(lines).block(block), body);
    let spans: Vec<Span> = [verb, "Edit again", "Abandon"]
        .iter()
        .enumerate()
        .flat_map(|(i, l)| {
            [
                Span::styled(format!("[ {l} ]"), t.button(r.focus == i)),
                Span::raw("  "),
            ]
        })
        .collect();
    f.render_widget(Paragraph::new(Line::from(spans)).centered(), bar);
}
