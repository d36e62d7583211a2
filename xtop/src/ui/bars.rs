//! The status line (or prompt) and the key bar.
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Modifier;

use crate::app::{App, Mode, PromptKind};

/// The status line, or the open prompt with its completions.
pub(super) fn draw_status(buf: &mut Buffer, app: &App, area: Rect) {
    let t = &app.theme;
    if let Mode::Prompt(p) = &app.mode {
        let (lead, hint) = match p.kind {
            PromptKind::Command => (":", "Tab completes · Enter runs · Esc cancels"),
            PromptKind::Filter => ("/", "regex on names, ! inverts, empty clears · Enter · Esc"),
            PromptKind::Delay => ("delay (s): ", "Enter sets · Esc cancels"),
        };
        let text = format!("{lead}{}", p.input);
        buf.set_stringn(area.x, area.y, &text, area.width as usize, t.prompt);
        let cx = area.x + (text.chars().count() as u16).min(area.width.saturating_sub(1));
        buf.set_stringn(
            cx,
            area.y,
            " ",
            1,
            t.prompt.add_modifier(Modifier::REVERSED),
        );
        let comps = if p.completions.len() > 1 {
            p.completions.join("  ")
        } else {
            hint.to_owned()
        };
        let x = cx + 2;
        if x < area.right() {
            buf.set_stringn(x, area.y, comps, (area.right() - x) as usize, t.dim);
        }
        return;
    }
    let mut text = String::new();
    if app.pending > 0 {
        text.push_str(&format!("[{} pending] ", app.pending));
    }
    if !app.tagged.is_empty() {
        text.push_str(&format!("[{} tagged] ", app.tagged.len()));
    }
    // Each save, restore or migration under way (host, then id order).
    for (r, p) in app.store.transfers() {
        text.push_str(&format!("[{} {} {:.0}%", p.op, r.dom.name, p.percent()));
        if p.round > 0 || p.phase == "precopy" {
            text.push_str(&format!(" round {}", p.round));
        }
        text.push_str("] ");
    }
    if let Some((re, inv)) = &app.table.filter {
        text.push_str(&format!(
            "[filter {}{}] ",
            if *inv { "!" } else { "" },
            re.as_str()
        ));
    }
    let style = match &app.status {
        Some(s) if s.error => t.error,
        Some(_) => t.ok,
        None => t.dim,
    };
    if let Some(s) = &app.status {
        text.push_str(&s.text);
    }
    let (end, _) = buf.set_stringn(area.x, area.y, &text, area.width as usize, style);
    if let Some(ev) = &app.last_event {
        let label = format!("event: {ev}");
        let w = label.chars().count() as u16;
        if end + 2 + w <= area.right() {
            buf.set_stringn(area.right() - w, area.y, label, w as usize, t.dim);
        }
    }
}

/// The key bar entries: command and label.
const KEYBAR: &[(&str, &str)] = &[
    ("help", "Help"),
    ("toggle-pause", "Pause"),
    ("shutdown", "Shutdown"),
    ("reboot", "Reboot"),
    ("destroy", "Destroy"),
    ("console", "Console"),
    ("edit", "Edit"),
    ("new", "New"),
    ("tag", "Tag"),
    ("filter", "Filter"),
    ("prompt", "Cmd"),
    ("columns", "Fields"),
    ("sort-next", "Sort"),
    ("detail", "Detail"),
    ("quit", "Quit"),
];

/// The key bar: the key bound to each main command and its label.
pub(super) fn draw_keybar(buf: &mut Buffer, app: &App, area: Rect) {
    let t = &app.theme;
    let mut x = area.x;
    for (cmd, label) in KEYBAR {
        let Some(key) = app.keymap.key_for(cmd) else {
            continue;
        };
        let key = if key == "space" {
            "Spc"
        } else if key == "enter" {
            "Ent"
        } else {
            key
        };
        let need = key.chars().count() + label.len() + 1;
        if (x as usize + need) > area.right() as usize {
            break;
        }
        let (nx, _) = buf.set_stringn(x, area.y, key, area.width as usize, t.key);
        let (nx, _) = buf.set_stringn(nx, area.y, label, (area.right() - nx) as usize, t.key_label);
        x = nx + 1;
    }
}
