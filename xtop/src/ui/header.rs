//! The header: title, per-host summary lines, host CPU history.
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;

use super::*;
use crate::app::App;
use crate::model::{Counts, HostStatus};

/// The title line and, per host, the summary lines or why it is unreachable.
pub(super) fn draw_header(buf: &mut Buffer, app: &App, area: Rect, small: bool) {
    if area.height == 0 {
        return;
    }
    let t = &app.theme;
    let first = app.store.hosts.iter().find_map(|h| h.snapshot.as_ref());
    let time = first
        .map(|s| fmt_time(s.time))
        .unwrap_or_else(|| "--:--:--".into());
    let version = first
        .map(|s| {
            format!(
                "Xen {}.{}{}",
                s.node.xen_major, s.node.xen_minor, s.node.xen_extra
            )
        })
        .unwrap_or_default();
    let mut title = format!("xtop - {time}   {version}");
    if small {
        title.push_str(match app.table.cpu_mode {
            crate::model::CpuMode::Xentop => "  [%:1 CPU]",
            crate::model::CpuMode::VirtTop => "  [%:host]",
        });
    } else {
        title.push_str(&format!("   [{}]", app.table.cpu_mode.label()));
        title.push_str(&format!(
            "   view {}: {}",
            app.table.view.number(),
            app.table.view.title()
        ));
    }
    if app.frozen.is_some() {
        title.push_str("   FROZEN");
    }
    if app.opts.readonly {
        title.push_str("   READ-ONLY");
    }
    buf.set_stringn(area.x, area.y, &title, area.width as usize, t.title);
    if small {
        return;
    }
    if app.table.hosts_collapsed {
        return draw_host_lines(buf, app, area);
    }
    let mut y = area.y + 1;
    for h in app.store.hosts.iter().take(3) {
        if y + 1 > area.y + area.height {
            break;
        }
        let prefix = if app.store.hosts.len() > 1 {
            format!("{}: ", h.label)
        } else {
            String::new()
        };
        match &h.status {
            HostStatus::Down { reason } => {
                let l1 = format!("{prefix}xend at {} is unreachable: {reason}", h.url);
                let l2 = format!(
                    "retrying every {:.1} s{}",
                    app.delay.as_secs_f64(),
                    if h.snapshot.is_some() {
                        " (figures below are stale)"
                    } else {
                        ""
                    }
                );
                buf.set_stringn(area.x, y, l1, area.width as usize, t.error);
                buf.set_stringn(area.x, y + 1, l2, area.width as usize, t.error);
            }
            HostStatus::Connecting => {
                buf.set_stringn(
                    area.x,
                    y,
                    format!("{prefix}connecting to xend at {}…", h.url),
                    area.width as usize,
                    t.summary,
                );
            }
            HostStatus::Up => {
                let counts = Counts::of(h.rows.iter());
                buf.set_stringn(
                    area.x,
                    y,
                    format!("{prefix}{counts}"),
                    area.width as usize,
                    t.summary,
                );
                if let Some(s) = &h.snapshot {
                    let total = s.node.memory * 1024;
                    let free = s.node.free_memory * 1024;
                    let hist: String = h
                        .cpu_history
                        .iter()
                        .rev()
                        .take(12)
                        .rev()
                        .map(|p| spark_char(*p))
                        .collect();
                    let line = format!(
                        "Mem: {total}k total, {}k used, {free}k free    CPUs: {} @ {}MHz   host CPU {:.1}% {hist}",
                        total.saturating_sub(free),
                        s.node.nr_cpus,
                        s.node.cpu_mhz,
                        h.cpu_history.back().copied().unwrap_or(0.0)
                    );
                    buf.set_stringn(area.x, y + 1, line, area.width as usize, t.summary);
                }
            }
        }
        y += 2;
    }
}

/// Most host lines the collapsed header shows.
pub(super) const MAX_HOST_LINES: u16 = 10;

/// The collapsed header: one line per host, hosts that do not answer first
/// (with why), then the others; `+N more` when they do not all fit.
fn draw_host_lines(buf: &mut Buffer, app: &App, area: Rect) {
    let t = &app.theme;
    let room = area.height.saturating_sub(1) as usize;
    let mut hosts: Vec<&crate::model::Host> = app.store.hosts.iter().collect();
    hosts.sort_by_key(|h| h.status == HostStatus::Up);
    let shown = if hosts.len() > room {
        room.saturating_sub(1)
    } else {
        hosts.len()
    };
    for (i, h) in hosts.iter().take(shown).enumerate() {
        let y = area.y + 1 + i as u16;
        let (line, style) = match &h.status {
            HostStatus::Down { reason } => (
                format!(
                    "{}: unreachable: {reason} (retrying every {:.1} s)",
                    h.label,
                    app.delay.as_secs_f64()
                ),
                t.error,
            ),
            HostStatus::Connecting => (format!("{}: connecting to {}…", h.label, h.url), t.summary),
            HostStatus::Up => {
                let c = Counts::of(h.rows.iter());
                let mem = h
                    .snapshot
                    .as_ref()
                    .map(|s| {
                        format!(
                            "   Mem {}M used of {}M",
                            s.node.memory.saturating_sub(s.node.free_memory),
                            s.node.memory
                        )
                    })
                    .unwrap_or_default();
                (
                    format!(
                        "{}: {} domains, {} running, {} paused, {} crashed   host CPU {:.1}%{mem}",
                        h.label,
                        c.total,
                        c.running,
                        c.paused,
                        c.crashed,
                        h.cpu_history.back().copied().unwrap_or(0.0)
                    ),
                    t.summary,
                )
            }
        };
        buf.set_stringn(area.x, y, line, area.width as usize, style);
    }
    if shown < hosts.len() {
        let rest = &hosts[shown..];
        let down = rest.iter().filter(|h| h.status != HostStatus::Up).count();
        let line = format!("+{} more hosts ({down} not answering)", rest.len());
        let y = area.y + 1 + shown as u16;
        buf.set_stringn(area.x, y, line, area.width as usize, t.summary);
    }
}

fn spark_char(pct: f64) -> char {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    BARS[((pct / 100.0 * 7.0).round().clamp(0.0, 7.0)) as usize]
}
