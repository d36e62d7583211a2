//! The columns of the domains table: xentop's, in xentop's order, plus ID and
//! HOST. One place knows each column's header, width, cell text and sort order;
//! the TUI, batch mode and CSV/JSON output all use it.
use std::cmp::Ordering;

use crate::model::{CpuMode, DomRow};

/// A column of the domains table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Column {
    /// Host label (several `--host`s).
    Host,
    /// Domain id.
    Id,
    /// Domain name.
    Name,
    /// State letters, xentop order `dsbcpr`.
    State,
    /// CPU seconds.
    CpuSec,
    /// CPU% since the last refresh.
    CpuPct,
    /// Memory, KiB.
    Mem,
    /// Memory as % of the host.
    MemPct,
    /// Maximum memory, KiB.
    MaxMem,
    /// Maximum memory as % of the host.
    MaxMemPct,
    /// vCPUs.
    Vcpus,
    /// Credit-scheduler weight and cap, `WEIGHT/CAP` (not shown by default).
    Sched,
    /// Network interfaces.
    Nets,
    /// KiB sent.
    NetTx,
    /// KiB received.
    NetRx,
    /// Block devices.
    Vbds,
    /// Block out-of-request events.
    VbdOo,
    /// Block read requests.
    VbdRd,
    /// Block write requests.
    VbdWr,
    /// Sectors read.
    VbdRsect,
    /// Sectors written.
    VbdWsect,
    /// The kernel the domain boots (`minios`, or the image's path; not shown
    /// by default in the TUI or the text batch, in CSV and JSON by default).
    Kernel,
    /// What kind of image its VMM loaded (`minios`, `elf`, `bzImage`,
    /// `vmlinux (PVH)`); shown like [`Column::Kernel`].
    Image,
}

/// What a cell needs besides the row.
#[derive(Clone, Copy, Debug)]
pub struct CellCtx {
    /// Host RAM, KiB (for MEM%).
    pub host_mem_kib: u64,
    /// Host CPUs (for the virt-top CPU% convention).
    pub nr_cpus: u32,
    /// Which CPU% convention.
    pub cpu_mode: CpuMode,
    /// Show full names rather than xentop's 10 characters.
    pub full_names: bool,
}

impl Column {
    /// Every column, in display order.
    pub const ALL: [Column; 23] = [
        Column::Host,
        Column::Id,
        Column::Name,
        Column::State,
        Column::CpuSec,
        Column::CpuPct,
        Column::Mem,
        Column::MemPct,
        Column::MaxMem,
        Column::MaxMemPct,
        Column::Vcpus,
        Column::Sched,
        Column::Nets,
        Column::NetTx,
        Column::NetRx,
        Column::Vbds,
        Column::VbdOo,
        Column::VbdRd,
        Column::VbdWr,
        Column::VbdRsect,
        Column::VbdWsect,
        Column::Kernel,
        Column::Image,
    ];

    /// xentop's columns, in xentop's order (what `xtop -b` prints).
    pub const XENTOP: [Column; 18] = [
        Column::Name,
        Column::State,
        Column::CpuSec,
        Column::CpuPct,
        Column::Mem,
        Column::MemPct,
        Column::MaxMem,
        Column::MaxMemPct,
        Column::Vcpus,
        Column::Nets,
        Column::NetTx,
        Column::NetRx,
        Column::Vbds,
        Column::VbdOo,
        Column::VbdRd,
        Column::VbdWr,
        Column::VbdRsect,
        Column::VbdWsect,
    ];

    /// The header text, as xentop prints it.
    pub fn header(self) -> &'static str {
        match self {
            Column::Host => "HOST",
            Column::Id => "ID",
            Column::Name => "NAME",
            Column::State => "STATE",
            Column::CpuSec => "CPU(sec)",
            Column::CpuPct => "CPU(%)",
            Column::Mem => "MEM(k)",
            Column::MemPct => "MEM(%)",
            Column::MaxMem => "MAXMEM(k)",
            Column::MaxMemPct => "MAXMEM(%)",
            Column::Vcpus => "VCPUS",
            Column::Sched => "WEIGHT/CAP",
            Column::Nets => "NETS",
            Column::NetTx => "NETTX(k)",
            Column::NetRx => "NETRX(k)",
            Column::Vbds => "VBDS",
            Column::VbdOo => "VBD_OO",
            Column::VbdRd => "VBD_RD",
            Column::VbdWr => "VBD_WR",
            Column::VbdRsect => "VBD_RSECT",
            Column::VbdWsect => "VBD_WSECT",
            Column::Kernel => "KERNEL",
            Column::Image => "IMAGE",
        }
    }

    /// The short name used by `--fields`, `--sort`, `:sort` and the config file.
    pub fn key(self) -> &'static str {
        match self {
            Column::Host => "host",
            Column::Id => "id",
            Column::Name => "name",
            Column::State => "state",
            Column::CpuSec => "cpu_sec",
            Column::CpuPct => "cpu",
            Column::Mem => "mem",
            Column::MemPct => "mem_pct",
            Column::MaxMem => "maxmem",
            Column::MaxMemPct => "maxmem_pct",
            Column::Vcpus => "vcpus",
            Column::Sched => "sched",
            Column::Nets => "nets",
            Column::NetTx => "nettx",
            Column::NetRx => "netrx",
            Column::Vbds => "vbds",
            Column::VbdOo => "vbd_oo",
            Column::VbdRd => "vbd_rd",
            Column::VbdWr => "vbd_wr",
            Column::VbdRsect => "vbd_rsect",
            Column::VbdWsect => "vbd_wsect",
            Column::Kernel => "kernel",
            Column::Image => "image",
        }
    }

    /// The column named `s` (its key or its header, any case).
    pub fn parse(s: &str) -> Option<Column> {
        let s = s.trim();
        Column::ALL
            .into_iter()
            .find(|c| c.key().eq_ignore_ascii_case(s) || c.header().eq_ignore_ascii_case(s))
            .or(match s.to_ascii_lowercase().as_str() {
                "time" => Some(Column::CpuSec),
                "memory" => Some(Column::Mem),
                _ => None,
            })
    }

    /// xentop's field width (the TUI widens NAME and HOST as needed).
    pub fn width(self) -> usize {
        match self {
            Column::Host => 15,
            Column::Id => 5,
            Column::Name => 10,
            Column::State => 6,
            Column::CpuSec | Column::Mem | Column::MaxMem => 10,
            Column::CpuPct | Column::MemPct => 6,
            Column::MaxMemPct => 9,
            Column::Vcpus => 5,
            Column::Sched => 10,
            Column::Nets | Column::Vbds => 4,
            Column::NetTx | Column::NetRx | Column::VbdOo | Column::VbdRd | Column::VbdWr => 8,
            Column::VbdRsect | Column::VbdWsect => 10,
            Column::Kernel => 24,
            Column::Image => 13,
        }
    }

    /// Text columns are left-aligned in the TUI; numbers right-aligned.
    pub fn is_text(self) -> bool {
        matches!(
            self,
            Column::Host | Column::Name | Column::State | Column::Kernel | Column::Image
        )
    }

    /// The cell text for `row`.
    pub fn cell(self, row: &DomRow, host_label: &str, ctx: &CellCtx) -> String {
        let d = &row.dom;
        let pct_of_host = |kib: u64| {
            if ctx.host_mem_kib == 0 {
                0.0
            } else {
                100.0 * kib as f64 / ctx.host_mem_kib as f64
            }
        };
        match self {
            Column::Host => host_label.to_owned(),
            Column::Id => d.id.to_string(),
            Column::Name => {
                if ctx.full_names {
                    d.name.clone()
                } else {
                    d.name.chars().take(10).collect()
                }
            }
            Column::State => row.xentop_state(),
            Column::CpuSec => format!("{}", d.cpu_time as u64),
            Column::CpuPct => format!("{:.1}", cpu_pct(row, ctx)),
            Column::Mem => d.mem_kib.to_string(),
            Column::MemPct => format!("{:.1}", pct_of_host(d.mem_kib)),
            Column::MaxMem => {
                if d.maxmem_kib == 0 {
                    "no limit".to_owned()
                } else {
                    d.maxmem_kib.to_string()
                }
            }
            Column::MaxMemPct => {
                if d.maxmem_kib == 0 {
                    "n/a".to_owned()
                } else {
                    format!("{:.1}", pct_of_host(d.maxmem_kib))
                }
            }
            Column::Vcpus => d.vcpus.to_string(),
            Column::Sched => match (d.cpu_weight, d.cpu_cap) {
                (Some(w), Some(c)) => format!("{w}/{c}"),
                _ => "-".to_owned(),
            },
            Column::Nets => d.nets.len().to_string(),
            Column::NetTx => (row.net_tx() / 1024).to_string(),
            Column::NetRx => (row.net_rx() / 1024).to_string(),
            Column::Vbds => d.vbds.len().to_string(),
            Column::VbdOo => row.vbd_sum(|v| v.oo_req).to_string(),
            Column::VbdRd => row.vbd_sum(|v| v.rd_req).to_string(),
            Column::VbdWr => row.vbd_sum(|v| v.wr_req).to_string(),
            Column::VbdRsect => row.vbd_sum(|v| v.rd_sect).to_string(),
            Column::VbdWsect => row.vbd_sum(|v| v.wr_sect).to_string(),
            Column::Kernel => d.kernel.clone(),
            Column::Image => d.image.clone(),
        }
    }

    /// Orders two rows by this column (ascending; callers reverse and break ties).
    pub fn compare(self, a: &DomRow, b: &DomRow, hosts: &[String]) -> Ordering {
        let (x, y) = (&a.dom, &b.dom);
        match self {
            Column::Host => hosts.get(a.key.host).cmp(&hosts.get(b.key.host)),
            Column::Id => x.id.cmp(&y.id),
            Column::Name => x.name.cmp(&y.name),
            Column::State => a.xentop_state().cmp(&b.xentop_state()),
            Column::CpuSec => x.cpu_time.total_cmp(&y.cpu_time),
            Column::CpuPct => a.cpu_pct.total_cmp(&b.cpu_pct),
            Column::Mem | Column::MemPct => x.mem_kib.cmp(&y.mem_kib),
            Column::MaxMem | Column::MaxMemPct => x.maxmem_kib.cmp(&y.maxmem_kib),
            Column::Vcpus => x.vcpus.cmp(&y.vcpus),
            Column::Sched => (x.cpu_weight, x.cpu_cap).cmp(&(y.cpu_weight, y.cpu_cap)),
            Column::Nets => x.nets.len().cmp(&y.nets.len()),
            Column::NetTx => a.net_tx().cmp(&b.net_tx()),
            Column::NetRx => a.net_rx().cmp(&b.net_rx()),
            Column::Vbds => x.vbds.len().cmp(&y.vbds.len()),
            Column::VbdOo => a.vbd_sum(|v| v.oo_req).cmp(&b.vbd_sum(|v| v.oo_req)),
            Column::VbdRd => a.vbd_sum(|v| v.rd_req).cmp(&b.vbd_sum(|v| v.rd_req)),
            Column::VbdWr => a.vbd_sum(|v| v.wr_req).cmp(&b.vbd_sum(|v| v.wr_req)),
            Column::VbdRsect => a.vbd_sum(|v| v.rd_sect).cmp(&b.vbd_sum(|v| v.rd_sect)),
            Column::VbdWsect => a.vbd_sum(|v| v.wr_sect).cmp(&b.vbd_sum(|v| v.wr_sect)),
            Column::Kernel => x.kernel.cmp(&y.kernel),
            Column::Image => x.image.cmp(&y.image),
        }
    }

    /// Numbers sort biggest first by default (top-style); text A to Z.
    pub fn descending_by_default(self) -> bool {
        !matches!(
            self,
            Column::Host
                | Column::Id
                | Column::Name
                | Column::State
                | Column::Kernel
                | Column::Image
        )
    }
}

/// CPU% in the chosen convention.
pub fn cpu_pct(row: &DomRow, ctx: &CellCtx) -> f64 {
    match ctx.cpu_mode {
        CpuMode::Xentop => row.cpu_pct,
        CpuMode::VirtTop => row.cpu_pct / ctx.nr_cpus.max(1) as f64,
    }
}

/// A sort order: a column and a direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SortSpec {
    /// The column.
    pub column: Column,
    /// Reverse of the column's natural order.
    pub reverse: bool,
}

impl SortSpec {
    /// Parses `[-]FIELD` (`-` reverses).
    pub fn parse(s: &str) -> Option<SortSpec> {
        let (reverse, name) = match s.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, s.strip_prefix('+').unwrap_or(s)),
        };
        Column::parse(name).map(|column| SortSpec { column, reverse })
    }

    /// Sorts `rows` in place: stable, ties broken by host then id so rows don't jump.
    pub fn sort(&self, rows: &mut [&DomRow], hosts: &[String]) {
        let desc = self.column.descending_by_default() != self.reverse;
        rows.sort_by(|a, b| {
            let o = self.column.compare(a, b, hosts);
            let o = if desc { o.reverse() } else { o };
            o.then(a.key.cmp(&b.key))
        });
    }

    /// `[-]key` form.
    pub fn to_spec_string(self) -> String {
        format!(
            "{}{}",
            if self.reverse { "-" } else { "" },
            self.column.key()
        )
    }
}

impl Default for SortSpec {
    fn default() -> Self {
        SortSpec {
            column: Column::Id,
            reverse: false,
        }
    }
}

/// Parses a comma-separated field list (`--fields`, config `columns`).
pub fn parse_fields(s: &str) -> Result<Vec<Column>, UnknownField> {
    s.split(',')
        .filter(|f| !f.trim().is_empty())
        .map(|f| Column::parse(f).ok_or_else(|| UnknownField(f.trim().to_owned())))
        .collect()
}

/// A field name that is no column.
#[derive(Debug, PartialEq, thiserror::Error)]
#[error("unknown field '{0}'; expected one of {keys}", keys = Column::ALL.map(|c| c.key()).join(", "))]
pub struct UnknownField(pub String);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Store, tests::snap};

    #[test]
    fn every_column_parses_by_key_and_header() {
        for c in Column::ALL {
            assert_eq!(Column::parse(c.key()), Some(c));
            assert_eq!(Column::parse(c.header()), Some(c));
        }
        assert!(
            parse_fields("name,bogus")
                .unwrap_err()
                .to_string()
                .contains("unknown field 'bogus'; expected one of host, id, name")
        );
    }

    #[test]
    fn sort_is_stable_and_reversible() {
        let mut s = Store::new([("h".to_owned(), "u".to_owned())]);
        s.ingest(
            0,
            snap(
                1.0,
                &[
                    (0, "Domain-0", "r-----", 5.0),
                    (1, "b", "-b----", 5.0),
                    (2, "a", "-b----", 9.0),
                ],
            ),
        );
        let hosts = vec!["h".to_owned()];
        let mut rows: Vec<_> = s.rows().collect();
        SortSpec::parse("cpu_sec").unwrap().sort(&mut rows, &hosts);
        let ids: Vec<u32> = rows.iter().map(|r| r.dom.id).collect();
        assert_eq!(ids, [2, 0, 1], "biggest first, ties by id");
        SortSpec::parse("-cpu_sec").unwrap().sort(&mut rows, &hosts);
        let ids: Vec<u32> = rows.iter().map(|r| r.dom.id).collect();
        assert_eq!(ids, [0, 1, 2]);
        SortSpec::parse("name").unwrap().sort(&mut rows, &hosts);
        let names: Vec<&str> = rows.iter().map(|r| r.dom.name.as_str()).collect();
        assert_eq!(names, ["Domain-0", "a", "b"]);
    }
}
