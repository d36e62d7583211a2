//! Drawing: reads the [`App`] and paints a frame. Never collects, never blocks.
use ratatui::Frame;
use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph, Sparkline, Wrap};

use crate::action::{COMMANDS, View};
use crate::app::{App, EditReview, Mode, PromptKind};
use crate::columns::Column;
use crate::model::{Counts, DomRow, HostStatus};

/// Paints the whole screen.
pub fn draw(f: &mut Frame, app: &App) {
    let area = f.area();
    match &app.mode {
        Mode::Console(p) => return draw_console(f, app, p, area),
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
            return;
        }
        Mode::Diff(r) => return draw_diff(f, app, r, area),
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
        return;
    }
    let small = area.height < 12;
    let header_h = if small { 1 } else { header_height(app) };
    let detail_h = if app.show_detail && area.height >= 20 {
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
    draw_table(f.buffer_mut(), app, table);
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
}

fn header_height(app: &App) -> u16 {
    let hosts = app.store.hosts.len() as u16;
    1 + 2 * hosts.min(3)
}

fn fmt_time(t: f64) -> String {
    let secs = t as i64;
    let (h, m, s) = ((secs / 3600) % 24, (secs / 60) % 60, secs % 60);
    format!("{h:02}:{m:02}:{s:02}")
}

fn draw_header(buf: &mut Buffer, app: &App, area: Rect, small: bool) {
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
        title.push_str(match app.cpu_mode {
            crate::model::CpuMode::Xentop => "  [%:1 CPU]",
            crate::model::CpuMode::VirtTop => "  [%:host]",
        });
    } else {
        title.push_str(&format!("   [{}]", app.cpu_mode.label()));
        title.push_str(&format!(
            "   view {}: {}",
            app.view.number(),
            app.view.title()
        ));
    }
    if app.frozen {
        title.push_str("   FROZEN");
    }
    if app.opts.readonly {
        title.push_str("   READ-ONLY");
    }
    buf.set_stringn(area.x, area.y, &title, area.width as usize, t.title);
    if small {
        return;
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

fn spark_char(pct: f64) -> char {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    BARS[((pct / 100.0 * 7.0).round().clamp(0.0, 7.0)) as usize]
}

/// One line of the table area.
enum TableLine<'a> {
    Header,
    Dom(&'a DomRow),
    Extra(&'a DomRow, String),
}

fn table_lines<'a>(app: &App, rows: &[&'a DomRow]) -> Vec<TableLine<'a>> {
    let mut lines = vec![TableLine::Header];
    for (i, r) in rows.iter().enumerate() {
        if app.repeat_header && i > 0 && app.view == View::Domains {
            lines.push(TableLine::Header);
        }
        match app.view {
            View::Domains => {
                lines.push(TableLine::Dom(r));
                if app.show_vcpus {
                    let mut s = String::from("VCPUs(sec): ");
                    for v in &r.dom.vcpu_info {
                        s.push_str(&format!("{:>3}: {:>10}s", v.id, v.cpu_time as u64));
                    }
                    lines.push(TableLine::Extra(r, s));
                }
                if app.show_nets {
                    for n in &r.dom.nets {
                        lines.push(TableLine::Extra(
                            r,
                            format!(
                                "Net{} RX: {:>8}bytes {:>8}pkts {:>8}err {:>8}drop  TX: {:>8}bytes {:>8}pkts {:>8}err {:>8}drop",
                                n.idx, n.rx_bytes, n.rx_packets, n.rx_errors, n.rx_drops, n.tx_bytes, n.tx_packets, n.tx_errors, n.tx_drops
                            ),
                        ));
                    }
                }
                if app.show_vbds {
                    for v in &r.dom.vbds {
                        lines.push(TableLine::Extra(
                            r,
                            format!(
                                "VBD {} {:>4} OO: {:>8}   RD: {:>8}   WR: {:>8}  RSECT: {:>10}  WSECT: {:>10}",
                                v.uname, v.dev, v.oo_req, v.rd_req, v.wr_req, v.rd_sect, v.wr_sect
                            ),
                        ));
                    }
                }
            }
            View::Vcpus => {
                for (i, v) in r.dom.vcpu_info.iter().enumerate() {
                    let aff = if v.affinity.is_empty() {
                        "any".to_owned()
                    } else {
                        join(&v.affinity)
                    };
                    lines.push(TableLine::Extra(
                        r,
                        format!(
                            "{:<16} {:>5} {:>8} {:>10.1} {:>6.1} {:>4} {}",
                            trunc(&r.dom.name, 16),
                            v.id,
                            v.state,
                            v.cpu_time,
                            r.vcpu_pct.get(i).copied().unwrap_or(0.0),
                            v.cpu.map(|c| c.to_string()).unwrap_or_else(|| "-".into()),
                            aff
                        ),
                    ));
                }
            }
            View::Networks => {
                for n in &r.dom.nets {
                    lines.push(TableLine::Extra(
                        r,
                        format!(
                            "{:<16} {:<10} {:<17} {:<8} {:>12} {:>12} {:>9} {:>9} {:>10.0} {:>10.0}",
                            trunc(&r.dom.name, 16),
                            n.vifname,
                            n.mac,
                            n.bridge,
                            n.rx_bytes,
                            n.tx_bytes,
                            n.rx_packets,
                            n.tx_packets,
                            r.net_rx_rate,
                            r.net_tx_rate
                        ),
                    ));
                }
            }
            View::Blocks => {
                for v in &r.dom.vbds {
                    lines.push(TableLine::Extra(
                        r,
                        format!(
                            "{:<16} {:<6} {:<24} {:<3} {:>8} {:>8} {:>10} {:>10} {:>6} {:>8.0} {:>8.0}",
                            trunc(&r.dom.name, 16),
                            v.dev,
                            trunc(&v.uname, 24),
                            v.mode,
                            v.rd_req,
                            v.wr_req,
                            v.rd_sect,
                            v.wr_sect,
                            v.oo_req,
                            r.rd_req_rate,
                            r.wr_req_rate
                        ),
                    ));
                }
            }
            View::HostCpus => {}
        }
    }
    lines
}

fn join(v: &[usize]) -> String {
    v.iter()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

fn trunc(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

fn view_header(view: View) -> String {
    match view {
        View::Vcpus => format!(
            "{:<16} {:>5} {:>8} {:>10} {:>6} {:>4} {}",
            "NAME", "VCPU", "STATE", "CPU(sec)", "CPU(%)", "CPU", "AFFINITY"
        ),
        View::Networks => format!(
            "{:<16} {:<10} {:<17} {:<8} {:>12} {:>12} {:>9} {:>9} {:>10} {:>10}",
            "NAME", "VIF", "MAC", "BRIDGE", "RXBY", "TXBY", "RXPK", "TXPK", "RXBY/s", "TXBY/s"
        ),
        View::Blocks => format!(
            "{:<16} {:<6} {:<24} {:<3} {:>8} {:>8} {:>10} {:>10} {:>6} {:>8} {:>8}",
            "NAME",
            "DEV",
            "BACKING",
            "MOD",
            "RDRQ",
            "WRRQ",
            "RSECT",
            "WSECT",
            "OO",
            "RDRQ/s",
            "WRRQ/s"
        ),
        View::HostCpus => format!("{:<8} {:>7} {}", "CPU", "USE(%)", "VCPUS (domain/vcpu)"),
        View::Domains => String::new(),
    }
}

/// Column widths for the domains view: xentop's, NAME and HOST widened to fit.
fn column_widths(app: &App, rows: &[&DomRow]) -> Vec<(Column, usize)> {
    app.columns
        .iter()
        .map(|&c| {
            let w = match c {
                Column::Name => rows
                    .iter()
                    .map(|r| r.dom.name.chars().count())
                    .max()
                    .unwrap_or(4)
                    .clamp(4, 24),
                Column::Host => app
                    .store
                    .hosts
                    .iter()
                    .map(|h| h.label.chars().count())
                    .max()
                    .unwrap_or(4)
                    .clamp(4, 24),
                c => c.width().max(c.header().len()),
            };
            (c, w)
        })
        .collect()
}

fn draw_table(buf: &mut Buffer, app: &App, area: Rect) {
    if area.height == 0 {
        return;
    }
    let t = &app.theme;
    let rows = app.visible_rows();
    if app.view == View::HostCpus {
        return draw_host_cpus(buf, app, &rows, area);
    }
    let widths = column_widths(app, &rows);
    let lines = table_lines(app, &rows);
    let sel = app.selected_index(&rows).map(|i| rows[i].key);
    let body_h = area.height.saturating_sub(1) as usize;
    app.page_rows.set(body_h.max(1));
    // Keep the selected row in view.
    let sel_line = lines
        .iter()
        .position(|l| matches!(l, TableLine::Dom(r) | TableLine::Extra(r, _) if Some(r.key) == sel))
        .unwrap_or(0);
    let (_, prev_first) = app.table_area.get();
    let mut first = prev_first.min(lines.len().saturating_sub(1)).max(1);
    if sel_line < first {
        first = sel_line.max(1);
    } else if sel_line >= first + body_h {
        first = sel_line + 1 - body_h;
    }
    // Header line (fixed), then lines[first..].
    let body = Rect {
        y: area.y + 1,
        height: area.height - 1,
        ..area
    };
    app.table_area.set((body, first));
    draw_header_line(buf, app, &widths, Rect { height: 1, ..area });
    let hosts = app.host_labels();
    *app.line_keys.borrow_mut() = lines
        .iter()
        .skip(first)
        .take(body_h)
        .map(|l| match l {
            TableLine::Header => None,
            TableLine::Dom(r) | TableLine::Extra(r, _) => Some(r.key),
        })
        .collect();
    for (i, line) in lines.iter().skip(first).take(body_h).enumerate() {
        let y = body.y + i as u16;
        match line {
            TableLine::Header => {
                draw_header_line(
                    buf,
                    app,
                    &widths,
                    Rect {
                        y,
                        height: 1,
                        ..area
                    },
                );
            }
            TableLine::Dom(r) => {
                let selected = Some(r.key) == sel;
                let tagged = app.tagged.contains(&r.key);
                let base = if selected {
                    t.selected
                } else if tagged {
                    t.tagged
                } else {
                    t.row
                };
                buf.set_style(
                    Rect {
                        y,
                        height: 1,
                        ..area
                    },
                    base,
                );
                let mut x = area.x;
                let ctx = app.cell_ctx(r.key.host, true);
                for (c, w) in &widths {
                    if x >= area.right() {
                        break;
                    }
                    let mut text = c.cell(
                        r,
                        hosts.get(r.key.host).map(String::as_str).unwrap_or(""),
                        &ctx,
                    );
                    if *c == Column::Name && tagged {
                        text = format!("*{text}");
                    }
                    let text = if c.is_text() {
                        format!("{:<w$}", trunc(&text, *w))
                    } else {
                        format!("{text:>w$}")
                    };
                    let mut style = base;
                    if *c == Column::State && !selected {
                        style = style.patch(t.state(&text));
                    }
                    let avail = (area.right() - x) as usize;
                    buf.set_stringn(x, y, &text, avail, style);
                    x = x.saturating_add(*w as u16 + 1);
                }
            }
            TableLine::Extra(r, text) => {
                let style = if Some(r.key) == sel && app.view != View::Domains {
                    t.selected
                } else {
                    t.dim
                };
                if app.view != View::Domains {
                    buf.set_style(
                        Rect {
                            y,
                            height: 1,
                            ..area
                        },
                        style,
                    );
                }
                buf.set_stringn(area.x, y, text, area.width as usize, style);
            }
        }
    }
    if rows.is_empty() {
        let msg = if app.filter.is_some() {
            "no domain matches the filter (/ to change it)"
        } else {
            "no domains"
        };
        buf.set_stringn(
            area.x,
            area.y + 1.min(area.height - 1),
            msg,
            area.width as usize,
            t.dim,
        );
    }
}

fn draw_header_line(buf: &mut Buffer, app: &App, widths: &[(Column, usize)], area: Rect) {
    let t = &app.theme;
    buf.set_style(area, t.table_header);
    if app.view != View::Domains {
        buf.set_stringn(
            area.x,
            area.y,
            view_header(app.view),
            area.width as usize,
            t.table_header,
        );
        return;
    }
    let mut cells = Vec::new();
    let mut x = area.x;
    for (c, w) in widths {
        if x >= area.right() {
            break;
        }
        let mark = if *c == app.sort.column {
            let desc = c.descending_by_default() != app.sort.reverse;
            if desc { "▼" } else { "▲" }
        } else {
            ""
        };
        let h = format!("{}{mark}", c.header());
        let text = if c.is_text() {
            format!("{h:<w$}")
        } else {
            format!("{h:>w$}")
        };
        let style = if *c == app.sort.column {
            t.table_header.add_modifier(Modifier::UNDERLINED)
        } else {
            t.table_header
        };
        buf.set_stringn(x, area.y, &text, (area.right() - x) as usize, style);
        cells.push((x, *w as u16, *c));
        x = x.saturating_add(*w as u16 + 1);
    }
    *app.header_cells.borrow_mut() = cells;
}

fn draw_host_cpus(buf: &mut Buffer, app: &App, rows: &[&DomRow], area: Rect) {
    let t = &app.theme;
    buf.set_style(Rect { height: 1, ..area }, t.table_header);
    buf.set_stringn(
        area.x,
        area.y,
        view_header(View::HostCpus),
        area.width as usize,
        t.table_header,
    );
    let mut y = area.y + 1;
    for (hi, h) in app.store.hosts.iter().enumerate() {
        let n = app.store.nr_cpus(hi) as usize;
        for cpu in 0..n {
            if y >= area.bottom() {
                return;
            }
            let mut use_pct = 0.0;
            let mut on = Vec::new();
            for r in rows.iter().filter(|r| r.key.host == hi) {
                for (i, v) in r.dom.vcpu_info.iter().enumerate() {
                    if v.cpu == Some(cpu) {
                        use_pct += r.vcpu_pct.get(i).copied().unwrap_or(0.0);
                        on.push(format!("{}/{}", r.dom.name, v.id));
                    }
                }
            }
            let label = if app.store.hosts.len() > 1 {
                format!("{}:{cpu}", h.label)
            } else {
                cpu.to_string()
            };
            let line = format!("{label:<8} {use_pct:>7.1} {}", on.join(" "));
            buf.set_stringn(area.x, y, line, area.width as usize, t.row);
            y += 1;
        }
    }
}

fn draw_detail(f: &mut Frame, app: &App, area: Rect) {
    let t = &app.theme;
    let Some(r) = app.selected_row() else { return };
    let d = &r.dom;
    let block = Block::bordered()
        .title(format!(" {} (id {}) ", d.name, d.id))
        .border_style(t.dialog_border);
    let inner = block.inner(area);
    f.render_widget(block, area);
    let [facts, graphs] =
        Layout::horizontal([Constraint::Length(44), Constraint::Min(10)]).areas(inner);
    let up = d.up_time as u64;
    let lines = [
        format!("state {}  restart {}", r.xentop_state(), d.restart),
        format!("memory {} MiB  maxmem {} MiB", d.memory, d.maxmem),
        format!(
            "vcpus {}  pinned {}",
            d.vcpus,
            d.cpu.map(|c| c.to_string()).unwrap_or_else(|| "no".into())
        ),
        format!(
            "console port {}",
            d.console_port
                .map(|p| p.to_string())
                .unwrap_or_else(|| "-".into())
        ),
        format!(
            "uptime {}d {:02}:{:02}:{:02}",
            up / 86400,
            up / 3600 % 24,
            up / 60 % 60,
            up % 60
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

fn draw_status(buf: &mut Buffer, app: &App, area: Rect) {
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
    if let Some((re, inv)) = &app.filter {
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

fn draw_keybar(buf: &mut Buffer, app: &App, area: Rect) {
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

fn centered(area: Rect, w: u16, h: u16) -> Rect {
    let w = w.min(area.width);
    let h = h.min(area.height);
    Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    }
}

fn draw_dialog(
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

fn draw_help(f: &mut Frame, app: &App, scroll: u16, area: Rect) {
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

fn draw_columns(f: &mut Frame, app: &App, cursor: usize, area: Rect) {
    let t = &app.theme;
    let rect = centered(area, 44, Column::ALL.len() as u16 + 3);
    f.render_widget(Clear, rect);
    let lines: Vec<Line> = Column::ALL
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let on = app.columns.contains(c);
            let sort = if app.sort.column == *c { " (sort)" } else { "" };
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

fn draw_console(f: &mut Frame, app: &App, p: &crate::console::ConsolePane, area: Rect) {
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

fn draw_diff(f: &mut Frame, app: &App, r: &EditReview, area: Rect) {
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
