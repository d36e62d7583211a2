//! The detail pane of the selected domain, with sparklines.
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::widgets::{Block, Paragraph, Sparkline};

use crate::app::App;

/// Width of the facts column.
const FACTS_WIDTH: usize = 44;

/// `kernel KIND PATH` in at most `width` characters: a long path keeps its
/// end (the file name and the directory above it) behind an ellipsis. The
/// built-in minios reads `kernel minios (built-in)`; Domain-0 has none.
fn kernel_line(kernel: &str, image: &str, width: usize) -> String {
    match kernel {
        "" => String::new(),
        "minios" => "kernel minios (built-in)".into(),
        path => {
            let head = if image.is_empty() {
                "kernel ".to_string()
            } else {
                format!("kernel {image} ")
            };
            let room = width.saturating_sub(head.chars().count());
            let n = path.chars().count();
            if n <= room {
                format!("{head}{path}")
            } else {
                let tail: String = path.chars().skip(n + 1 - room.max(1)).collect();
                format!("{head}\u{2026}{tail}")
            }
        }
    }
}

/// A rate for the 44-column facts: `950`, `12.3k`, `4.5M`.
fn rate(x: f64) -> String {
    match x {
        x if x >= 1e6 => format!("{:.1}M", x / 1e6),
        x if x >= 1e4 => format!("{:.0}k", x / 1e3),
        x if x >= 1e3 => format!("{:.1}k", x / 1e3),
        x => format!("{x:.0}"),
    }
}

/// The selected domain's facts and its CPU, memory, network and disk sparklines.
pub(super) fn draw_detail(f: &mut Frame, app: &App, area: Rect) {
    let t = &app.theme;
    let Some(r) = app.selected_row() else { return };
    let d = &r.dom;
    let block = Block::bordered()
        .title(match &d.uuid {
            // The UUID in the title: the facts column has no line to spare.
            Some(uuid) => format!(" {} (id {}) uuid {uuid} ", d.name, d.id),
            None => format!(" {} (id {}) ", d.name, d.id),
        })
        .border_style(t.dialog_border);
    let inner = block.inner(area);
    f.render_widget(block, area);
    let [facts, graphs] =
        Layout::horizontal([Constraint::Length(FACTS_WIDTH as u16), Constraint::Min(10)])
            .areas(inner);
    let up = d.up_time as u64;
    // "For how long" as of the snapshot the row came from.
    let snapshot_time = app
        .store
        .hosts
        .get(r.key.host)
        .and_then(|h| h.snapshot.as_ref())
        .map(|s| s.time)
        .unwrap_or_default();
    let lines = [
        format!("state {}  restart {}", r.xentop_state(), d.restart),
        // The uptime shares the memory line: the 7-line pane has no other.
        format!(
            "memory {} MiB  max {}  up {}d {:02}:{:02}:{:02}",
            d.memory,
            d.maxmem,
            up / 86400,
            up / 3600 % 24,
            up / 60 % 60,
            up % 60
        ),
        format!(
            "vcpus {}  pinned {}  exits {}/s",
            d.vcpus,
            d.cpu.map(|c| c.to_string()).unwrap_or_else(|| "no".into()),
            rate(r.exit_rate)
        ),
        kernel_line(&d.kernel, &d.image, FACTS_WIDTH),
        format!(
            "console port {}  out {}B/s in {}B/s",
            d.console_port
                .map(|p| p.to_string())
                .unwrap_or_else(|| "-".into()),
            rate(r.console_out_rate),
            rate(r.console_in_rate)
        ),
        format!(
            "devices: {} vif, {} vbd{}",
            d.nets.len(),
            d.vbds.len(),
            d.vbds
                .first()
                .map(|v| format!(" ({} {})", v.dev, v.uname))
                .unwrap_or_default()
        ),
        d.shutdown_reason
            .as_ref()
            .map(|s| format!("shutdown: {s}"))
            .unwrap_or_default(),
    ];
    // Two short lines (the facts column is 44 wide) right under the state:
    // they matter more than the facts the 7-line pane then cuts.
    let hung = d.unresponsive_since.map(|since| {
        let clock = |t: f64| xend::api::utc_clock(t).trim_end_matches(" UTC").to_owned();
        let last = d
            .last_answer
            .map(|t| format!(", last answer {}", clock(t)))
            .unwrap_or_default();
        [
            format!(
                "VMM unresponsive for {:.0} s",
                (snapshot_time - since).max(0.0)
            ),
            format!("since {}{last} UTC", clock(since)),
        ]
    });
    let mut lines = lines.to_vec();
    if let Some(hung) = hung {
        lines.splice(1..1, hung);
    }
    // A save, restore or migration under way, right under the state.
    if let Some(p) = &d.progress {
        let mib = |b: u64| b as f64 / 1048576.0;
        let mut shown = vec![format!(
            "{} {} {:.0}% {:.1}/{:.1} MiB",
            p.op,
            p.phase,
            p.percent(),
            mib(p.done_bytes),
            mib(p.total_bytes)
        )];
        if p.round > 0 || p.phase == "precopy" {
            shown.push(format!(
                "round {}, {} dirty pages, {:.1} s",
                p.round, p.dirty_pages, p.seconds
            ));
        }
        lines.splice(1..1, shown);
    }
    f.render_widget(Paragraph::new(lines.join("\n")).style(t.row), facts);
    let Some(h) = app.store.history.get(&r.key) else {
        return;
    };
    let rows = Layout::vertical([Constraint::Length(2); 4]).split(graphs);
    let take = graphs.width.saturating_sub(22) as usize;
    let tail = |v: Vec<u64>| -> Vec<u64> { v[v.len().saturating_sub(take)..].to_vec() };
    let series: [(String, Vec<u64>, Style); 4] = [
        (
            format!("CPU {:>6.1}%", r.cpu_pct),
            tail(h.cpu.iter().map(|v| (*v * 10.0) as u64).collect()),
            t.spark_cpu,
        ),
        (
            format!("MEM {:>6}M", d.mem_kib / 1024),
            tail(h.mem.iter().copied().collect()),
            t.spark_mem,
        ),
        (
            format!("NET {:>6.0}B/s", r.net_tx_rate + r.net_rx_rate),
            tail(h.net.iter().map(|v| *v as u64).collect()),
            t.spark_net,
        ),
        (
            format!("DSK {:>6.0}s/s", r.rd_sect_rate + r.wr_sect_rate),
            tail(h.disk.iter().map(|v| *v as u64).collect()),
            t.spark_disk,
        ),
    ];
    for ((label, data, style), area) in series.into_iter().zip(rows.iter()) {
        let [l, g] = Layout::horizontal([Constraint::Length(20), Constraint::Min(1)]).areas(*area);
        f.render_widget(Paragraph::new(label).style(style), l);
        f.render_widget(Sparkline::default().data(&data).style(style), g);
    }
}
