//! The main table in each view, its header line, and the host CPU view.
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Modifier;

use crate::action::View;
use crate::app::{App, TableLayout};
use crate::columns::Column;
use crate::model::DomRow;

/// One line of the table area.
enum TableLine<'a> {
    Header,
    Dom(&'a DomRow),
    Extra(&'a DomRow, String),
}

fn table_lines<'a>(app: &App, rows: &[&'a DomRow]) -> Vec<TableLine<'a>> {
    let mut lines = vec![TableLine::Header];
    for (i, r) in rows.iter().enumerate() {
        if app.table.repeat_header && i > 0 && app.table.view == View::Domains {
            lines.push(TableLine::Header);
        }
        match app.table.view {
            View::Domains => {
                lines.push(TableLine::Dom(r));
                if app.table.show_vcpus {
                    let mut s = String::from("VCPUs(sec): ");
                    for v in &r.dom.vcpu_info {
                        s.push_str(&format!("{:>3}: {:>10}s", v.id, v.cpu_time as u64));
                    }
                    lines.push(TableLine::Extra(r, s));
                }
                if app.table.show_nets {
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
                if app.table.show_vbds {
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
    app.table
        .columns
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

/// The table of the current view, keeping the selected row in sight;
/// returns where it drew it (unchanged for a view without domain lines).
pub(super) fn draw_table(buf: &mut Buffer, app: &App, area: Rect) -> TableLayout {
    if area.height == 0 {
        return app.layout.clone();
    }
    let t = &app.theme;
    let rows = app.visible_rows();
    if app.table.view == View::HostCpus {
        draw_host_cpus(buf, app, &rows, area);
        return app.layout.clone();
    }
    let widths = column_widths(app, &rows);
    let lines = table_lines(app, &rows);
    let sel = app.selected_index(&rows).map(|i| rows[i].key);
    let body_h = area.height.saturating_sub(1) as usize;
    // Keep the selected row in view.
    let sel_line = lines
        .iter()
        .position(|l| matches!(l, TableLine::Dom(r) | TableLine::Extra(r, _) if Some(r.key) == sel))
        .unwrap_or(0);
    let prev_first = app.layout.first;
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
    let header_cells = draw_header_line(buf, app, &widths, Rect { height: 1, ..area });
    let hosts = app.host_labels();
    let line_keys = lines
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
                let style = if Some(r.key) == sel && app.table.view != View::Domains {
                    t.selected
                } else {
                    t.dim
                };
                if app.table.view != View::Domains {
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
        let msg = if app.table.filter.is_some() {
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
    TableLayout {
        body,
        first,
        header_cells,
        line_keys,
        page_rows: body_h.max(1),
    }
}

/// Draws a header line; returns the x range of each column drawn.
fn draw_header_line(
    buf: &mut Buffer,
    app: &App,
    widths: &[(Column, usize)],
    area: Rect,
) -> Vec<(u16, u16, Column)> {
    let t = &app.theme;
    buf.set_style(area, t.table_header);
    if app.table.view != View::Domains {
        buf.set_stringn(
            area.x,
            area.y,
            view_header(app.table.view),
            area.width as usize,
            t.table_header,
        );
        return Vec::new();
    }
    let mut cells = Vec::new();
    let mut x = area.x;
    for (c, w) in widths {
        if x >= area.right() {
            break;
        }
        let mark = if *c == app.table.sort.column {
            let desc = c.descending_by_default() != app.table.sort.reverse;
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
        let style = if *c == app.table.sort.column {
            t.table_header.add_modifier(Modifier::UNDERLINED)
        } else {
            t.table_header
        };
        buf.set_stringn(x, area.y, &text, (area.right() - x) as usize, style);
        cells.push((x, *w as u16, *c));
        x = x.saturating_add(*w as u16 + 1);
    }
    cells
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
