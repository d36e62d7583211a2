//! Batch mode (`xtop -b`): xentop-compatible text, CSV or JSON lines on stdout,
//! one record per refresh, with no terminal handling.
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use regex::Regex;
use xend::client::Client;

use crate::collector::{Collectors, poll_deadline, url_label};
use crate::columns::{CellCtx, Column, SortSpec};
use crate::effects::Msg;
use crate::error::PollError;
use crate::error::error_chain;
use crate::model::{Counts, CpuMode, DomRow, HostStatus, Store, xentop_state};

/// What batch mode prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// xentop's table.
    Text,
    /// CSV, one row per domain per refresh, with host totals.
    Csv,
    /// One JSON object per refresh, one per line.
    Json,
}

/// Batch mode settings.
#[derive(Clone, Debug)]
pub struct BatchOptions {
    /// Seconds between refreshes.
    pub delay: Duration,
    /// Number of refreshes (`None`: until interrupted or `end_time`).
    pub iterations: Option<u64>,
    /// Network rows under each domain (`-n`).
    pub nets: bool,
    /// Block device rows (`-x`).
    pub vbds: bool,
    /// vCPU rows (`-v`).
    pub vcpus: bool,
    /// Header before every domain (`-r`).
    pub repeat_header: bool,
    /// Full names (`-f`).
    pub full_names: bool,
    /// Domain-0 first whatever the sort (`-z`).
    pub dom0_first: bool,
    /// Output format.
    pub format: Format,
    /// Columns (default: xentop's, plus HOST with several hosts).
    pub fields: Option<Vec<Column>>,
    /// Sort order (default: by name, as xentop).
    pub sort: Option<SortSpec>,
    /// Name filter and inversion.
    pub filter: Option<(Regex, bool)>,
    /// Stop at this time (seconds since the epoch).
    pub end_time: Option<f64>,
    /// CPU% convention.
    pub cpu_mode: CpuMode,
}

/// Why batch mode stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// No host could be read on the first refresh.
    #[error("{0}")]
    Unreachable(String),
    /// Writing the output failed (e.g. a closed pipe).
    #[error("cannot write the output")]
    Write(#[from] std::io::Error),
}

/// An `--end-time` that does not parse.
#[derive(Debug, PartialEq, thiserror::Error)]
#[error(
    "bad --end-time '{0}'; expected +SECS, seconds since the epoch, 'YYYY-MM-DD HH:MM:SS' or HH:MM[:SS] (UTC)"
)]
pub struct BadEndTime(pub String);

/// Parses `--end-time`: `+SECS` from now, seconds since the epoch, or
/// `YYYY-MM-DD HH:MM:SS` / `HH:MM[:SS]` (UTC).
pub fn parse_end_time(s: &str, now: f64) -> Result<f64, BadEndTime> {
    let s = s.trim();
    let bad = || BadEndTime(s.to_owned());
    if let Some(rel) = s.strip_prefix('+') {
        return rel
            .parse::<f64>()
            .ok()
            .filter(|v| *v >= 0.0)
            .map(|v| now + v)
            .ok_or_else(bad);
    }
    if let Ok(v) = s.parse::<f64>() {
        return Ok(v);
    }
    let hms = |t: &str| -> Option<f64> {
        let p: Vec<&str> = t.split(':').collect();
        if !(2..=3).contains(&p.len()) {
            return None;
        }
        let h: u32 = p[0].parse().ok()?;
        let m: u32 = p[1].parse().ok()?;
        let sec: u32 = p.get(2).map(|x| x.parse().ok()).unwrap_or(Some(0))?;
        (h < 24 && m < 60 && sec < 61).then_some((h * 3600 + m * 60 + sec) as f64)
    };
    if let Some((date, time)) = s.split_once([' ', 'T']) {
        let d: Vec<i64> = date.split('-').filter_map(|x| x.parse().ok()).collect();
        if d.len() != 3 {
            return Err(bad());
        }
        let days = days_from_civil(d[0], d[1], d[2]);
        return Ok(days as f64 * 86400.0 + hms(time).ok_or_else(bad)?);
    }
    let t = hms(s).ok_or_else(bad)?;
    let midnight = (now / 86400.0).floor() * 86400.0;
    let at = midnight + t;
    Ok(if at < now { at + 86400.0 } else { at })
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Runs batch mode until the iterations or the end time are reached, or
/// SIGINT/SIGTERM arrives (the current record is completed first).
pub async fn run(
    clients: &[Client],
    opts: &BatchOptions,
    out: &mut dyn Write,
) -> Result<(), BatchError> {
    let stop = Arc::new(AtomicBool::new(false));
    let notify = Arc::new(tokio::sync::Notify::new());
    for kind in [
        tokio::signal::unix::SignalKind::interrupt(),
        tokio::signal::unix::SignalKind::terminate(),
    ] {
        if let Ok(mut sig) = tokio::signal::unix::signal(kind) {
            let (stop, notify) = (stop.clone(), notify.clone());
            tokio::spawn(async move {
                sig.recv().await;
                stop.store(true, Ordering::SeqCst);
                notify.notify_one();
            });
        }
    }
    let mut store = Store::new(
        clients
            .iter()
            .map(|c| (url_label(c.url()), c.url().to_owned())),
    );
    let mut printer = Printer::new(opts, clients.len() > 1);
    let mut i = 0u64;
    // One poller per host (as in the UI), asked to poll at each record: the
    // record prints once every host answered or one delay passed, so a host
    // that is down or slow shows as such (its line says why) and never holds
    // the others' records back. The first record waits up to one poll
    // deadline for each host's first answer.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let collectors = Collectors::on_demand(clients, opts.delay, &tx);
    let first_wait = poll_deadline(opts.delay);
    loop {
        let started = tokio::time::Instant::now();
        let until = started + if i == 0 { first_wait } else { opts.delay };
        collectors.refresh_all();
        let mut answered = vec![false; clients.len()];
        let mut errors = Vec::new();
        while !answered.iter().all(|a| *a) {
            let Ok(Some(Msg::Snapshot(h, r))) = tokio::time::timeout_at(until, rx.recv()).await
            else {
                break;
            };
            answered[h] = true;
            match r {
                Ok(s) => store.ingest(h, s),
                Err(e) => {
                    let msg = error_chain(&e);
                    store.host_down(h, msg.clone());
                    errors.push(msg);
                }
            }
        }
        for (h, _) in answered.iter().enumerate().filter(|(_, a)| !**a) {
            let e = PollError::NoAnswer {
                secs: (until - started).as_secs_f64(),
            };
            store.host_down(h, e.to_string());
            errors.push(format!("{}: {e}", clients[h].url()));
        }
        let all_down = store.hosts.iter().all(|h| h.status != HostStatus::Up);
        if all_down && i == 0 {
            return Err(BatchError::Unreachable(errors.join("; ")));
        }
        for e in &errors {
            eprintln!("xtop: {e}");
        }
        printer.record(&store, out)?;
        out.flush()?;
        i += 1;
        if opts.iterations.is_some_and(|n| i >= n) || stop.load(Ordering::SeqCst) {
            return Ok(());
        }
        // The next record one delay after this one started.
        let mut wait = opts.delay.saturating_sub(started.elapsed());
        if let Some(end) = opts.end_time {
            let left = end - now();
            if left <= 0.0 {
                return Ok(());
            }
            wait = wait.min(Duration::from_secs_f64(left));
        }
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = notify.notified() => return Ok(()),
        }
        if opts.end_time.is_some_and(|end| now() >= end) {
            return Ok(());
        }
    }
}

/// Formats records.
pub struct Printer<'a> {
    opts: &'a BatchOptions,
    fields: Vec<Column>,
    csv_header_done: bool,
}

impl<'a> Printer<'a> {
    /// A printer for `opts` (`multi_host` adds the HOST column by default).
    pub fn new(opts: &'a BatchOptions, multi_host: bool) -> Self {
        let fields = opts.fields.clone().unwrap_or_else(|| {
            let mut f = Column::XENTOP.to_vec();
            // Machine-readable records name domains by id too (xentop's text
            // has no ID column, so the text form stays identical to it).
            // They name the kernel and image kind too (xentop has neither).
            if opts.format != Format::Text {
                f.insert(0, Column::Id);
                f.extend([Column::Kernel, Column::Image]);
            }
            if multi_host {
                f.insert(0, Column::Host);
            }
            f
        });
        Printer {
            opts,
            fields,
            csv_header_done: false,
        }
    }

    fn rows<'s>(&self, store: &'s Store) -> Vec<&'s DomRow> {
        let mut rows: Vec<&DomRow> = store
            .rows()
            .filter(|r| match &self.opts.filter {
                None => true,
                Some((re, inv)) => re.is_match(&r.dom.name) != *inv,
            })
            .collect();
        let labels: Vec<String> = store.hosts.iter().map(|h| h.label.clone()).collect();
        let sort = self.opts.sort.unwrap_or(SortSpec {
            column: Column::Name,
            reverse: false,
        });
        sort.sort(&mut rows, &labels);
        if self.opts.dom0_first {
            rows.sort_by_key(|r| r.dom.id != 0);
        }
        rows
    }

    fn ctx(&self, store: &Store, host: usize) -> CellCtx {
        let snap = store.hosts.get(host).and_then(|h| h.snapshot.as_ref());
        CellCtx {
            host_mem_kib: snap.map(|s| s.node.memory * 1024).unwrap_or(0),
            nr_cpus: store.nr_cpus(host),
            cpu_mode: self.opts.cpu_mode,
            full_names: self.opts.full_names,
        }
    }

    /// Writes one record.
    pub fn record(&mut self, store: &Store, out: &mut dyn Write) -> std::io::Result<()> {
        match self.opts.format {
            Format::Text => self.text(store, out),
            Format::Csv => self.csv(store, out),
            Format::Json => self.json(store, out),
        }
    }

    fn header(&self) -> String {
        self.fields
            .iter()
            .map(|c| format!("{:>w$}", c.header(), w = c.width()))
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn text(&self, store: &Store, out: &mut dyn Write) -> std::io::Result<()> {
        let rows = self.rows(store);
        writeln!(out, "{}", self.header())?;
        for (i, r) in rows.iter().enumerate() {
            if self.opts.repeat_header && i > 0 {
                writeln!(out, "{}", self.header())?;
            }
            let label = &store.hosts[r.key.host].label;
            let ctx = self.ctx(store, r.key.host);
            let line: Vec<String> = self
                .fields
                .iter()
                .map(|c| {
                    let cell = c.cell(r, label, &ctx);
                    format!("{:>w$}", errchain::printable(&cell), w = c.width())
                })
                .collect();
            writeln!(out, "{}", line.join(" "))?;
            if self.opts.vcpus {
                let mut s = String::from("VCPUs(sec): ");
                for v in &r.dom.vcpu_info {
                    s.push_str(&format!("{:>3}: {:>10}s", v.id, v.cpu_time as u64));
                }
                writeln!(out, "{s}")?;
            }
            if self.opts.nets {
                for n in &r.dom.nets {
                    writeln!(
                        out,
                        "Net{} RX: {:>8}bytes {:>8}pkts {:>8}err {:>8}drop  TX: {:>8}bytes {:>8}pkts {:>8}err {:>8}drop",
                        n.idx,
                        n.rx_bytes,
                        n.rx_packets,
                        n.rx_errors,
                        n.rx_drops,
                        n.tx_bytes,
                        n.tx_packets,
                        n.tx_errors,
                        n.tx_drops
                    )?;
                }
            }
            if self.opts.vbds {
                for v in &r.dom.vbds {
                    writeln!(
                        out,
                        "VBD {} {:>4} OO: {:>8}   RD: {:>8}   WR: {:>8}  RSECT: {:>10}  WSECT: {:>10}",
                        errchain::printable(&v.uname),
                        errchain::printable(&v.dev),
                        v.oo_req,
                        v.rd_req,
                        v.wr_req,
                        v.rd_sect,
                        v.wr_sect
                    )?;
                }
            }
        }
        Ok(())
    }

    fn csv(&mut self, store: &Store, out: &mut dyn Write) -> std::io::Result<()> {
        const HOST_COLS: [&str; 7] = [
            "time",
            "host_url",
            "host_domains",
            "host_cpu_pct",
            "host_mem_total_k",
            "host_mem_free_k",
            "host_cpus",
        ];
        if !self.csv_header_done {
            let mut h: Vec<String> = HOST_COLS.iter().map(|s| (*s).to_owned()).collect();
            h.extend(
                self.fields
                    .iter()
                    .filter(|c| **c != Column::Host)
                    .map(|c| c.key().to_owned()),
            );
            writeln!(out, "{}", h.join(","))?;
            self.csv_header_done = true;
        }
        for r in self.rows(store) {
            let host = &store.hosts[r.key.host];
            let Some(snap) = &host.snapshot else { continue };
            let ctx = self.ctx(store, r.key.host);
            let mut cells = vec![
                format!("{:.3}", snap.time),
                host.url.clone(),
                host.rows.len().to_string(),
                format!("{:.1}", host.cpu_history.back().copied().unwrap_or(0.0)),
                (snap.node.memory * 1024).to_string(),
                (snap.node.free_memory * 1024).to_string(),
                snap.node.nr_cpus.to_string(),
            ];
            cells.extend(self.fields.iter().filter(|c| **c != Column::Host).map(|c| {
                csv_field(&c.cell(
                    r,
                    &host.label,
                    &CellCtx {
                        full_names: true,
                        ..ctx
                    },
                ))
            }));
            writeln!(out, "{}", cells.join(","))?;
        }
        Ok(())
    }

    fn json(&self, store: &Store, out: &mut dyn Write) -> std::io::Result<()> {
        use serde_json::{Map, Value, json};
        let hosts: Vec<Value> = store
            .hosts
            .iter()
            .map(|h| {
                let counts = Counts::of(h.rows.iter());
                let mut v = json!({
                    "url": h.url,
                    "up": h.status == HostStatus::Up,
                    "domains": counts.total,
                    "running": counts.running,
                    "blocked": counts.blocked,
                    "paused": counts.paused,
                    "crashed": counts.crashed,
                    "dying": counts.dying,
                    "shutdown": counts.shutdown,
                    "cpu_pct": h.cpu_history.back().copied().unwrap_or(0.0),
                });
                if let Some(s) = &h.snapshot {
                    v["time"] = json!(s.time);
                    v["xend_version"] = json!(s.xend_version);
                    v["node"] = serde_json::to_value(&s.node).unwrap_or(Value::Null);
                }
                if let HostStatus::Down { reason } = &h.status {
                    v["error"] = json!(reason);
                }
                v
            })
            .collect();
        let doms: Vec<Value> = self
            .rows(store)
            .iter()
            .map(|r| {
                let ctx = self.ctx(store, r.key.host);
                let mut m = Map::new();
                for c in &self.fields {
                    let v = match c {
                        Column::Host => json!(store.hosts[r.key.host].url),
                        Column::Id => json!(r.dom.id),
                        Column::Name => json!(r.dom.name),
                        Column::State => json!(xentop_state(&r.dom.state)),
                        Column::CpuSec => json!(r.dom.cpu_time),
                        Column::CpuPct => json!(crate::columns::cpu_pct(r, &ctx)),
                        Column::Kernel => json!(r.dom.kernel),
                        Column::Image => json!(r.dom.image),
                        other => {
                            let text = other.cell(r, "", &ctx);
                            // Counters stay integers; rates and percentages are floats.
                            if let Ok(n) = text.parse::<i64>() {
                                json!(n)
                            } else {
                                text.parse::<f64>().map(|f| json!(f)).unwrap_or(json!(text))
                            }
                        }
                    };
                    m.insert(c.key().to_owned(), v);
                }
                Value::Object(m)
            })
            .collect();
        let record = json!({ "time": now(), "hosts": hosts, "domains": doms });
        writeln!(out, "{record}")
    }
}

/// One CSV field: control characters escaped (the record stays one line
/// and sends no terminal escapes), quoted when it holds `,` or `"`.
fn csv_field(s: &str) -> String {
    let s = errchain::printable(s);
    if s.contains([',', '"']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::tests::snap;

    fn opts(format: Format) -> BatchOptions {
        BatchOptions {
            delay: Duration::from_secs(1),
            iterations: Some(1),
            nets: false,
            vbds: false,
            vcpus: false,
            repeat_header: false,
            full_names: false,
            dom0_first: true,
            format,
            fields: None,
            sort: None,
            filter: None,
            end_time: None,
            cpu_mode: CpuMode::Xentop,
        }
    }

    fn store() -> Store {
        let mut s = Store::new([("h:1".to_owned(), "http://h:1".to_owned())]);
        s.ingest(
            0,
            snap(
                10.0,
                &[
                    (0, "Domain-0", "r-----", 1.0),
                    (2, "zeta", "-b----", 1.0),
                    (1, "a-very-long-name", "--p---", 1.0),
                ],
            ),
        );
        s.ingest(
            0,
            snap(
                12.0,
                &[
                    (0, "Domain-0", "r-----", 2.0),
                    (2, "zeta", "-b----", 1.5),
                    (1, "a-very-long-name", "--p---", 1.0),
                ],
            ),
        );
        s
    }

    fn print(o: &BatchOptions, s: &Store) -> String {
        let mut out = Vec::new();
        Printer::new(o, false).record(s, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn text_is_xentop_shaped() {
        let text = print(&opts(Format::Text), &store());
        let expected = "      NAME  STATE   CPU(sec) CPU(%)     MEM(k) MEM(%)  MAXMEM(k) MAXMEM(%) VCPUS NETS NETTX(k) NETRX(k) VBDS   VBD_OO   VBD_RD   VBD_WR  VBD_RSECT  VBD_WSECT
  Domain-0 -----r          2   50.0      65536    1.6     131072       3.1     1    1        1        3    1        0        0        0         20          0
a-very-lon ----p-          1    0.0      65536    1.6     131072       3.1     1    1        0        1    1        0        0        0         10          0
      zeta --b---          1   25.0      65536    1.6     131072       3.1     1    1        1        2    1        0        0        0         15          0
";
        assert_eq!(text, expected);
    }

    #[test]
    fn xentop_flags() {
        let mut o = opts(Format::Text);
        o.full_names = true;
        o.repeat_header = true;
        o.vcpus = true;
        o.nets = true;
        o.vbds = true;
        o.filter = Some((Regex::new("^a-").unwrap(), false));
        let text = print(&o, &store());
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 5, "{text}");
        assert!(
            lines[1].starts_with("a-very-long-name ----p-"),
            "-f keeps the whole name: {}",
            lines[1]
        );
        assert_eq!(lines[2], "VCPUs(sec):   0:          1s");
        assert!(
            lines[3].starts_with("Net0 RX:     2000bytes"),
            "{}",
            lines[3]
        );
        assert!(
            lines[4].starts_with("VBD  xvda OO:        0   RD:        0"),
            "{}",
            lines[4]
        );
        o.filter = Some((Regex::new("^a-").unwrap(), true));
        o.vcpus = false;
        o.nets = false;
        o.vbds = false;
        let text = print(&o, &store());
        assert_eq!(
            text.matches("NAME").count(),
            2,
            "-r: a header before each domain:\n{text}"
        );
    }

    #[test]
    fn csv_and_json() {
        let mut o = opts(Format::Csv);
        o.fields = Some(crate::columns::parse_fields("id,name,cpu").unwrap());
        let csv = print(&o, &store());
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(
            lines[0],
            "time,host_url,host_domains,host_cpu_pct,host_mem_total_k,host_mem_free_k,host_cpus,id,name,cpu"
        );
        assert_eq!(
            lines[1],
            "12.000,http://h:1,3,12.5,4194304,1048576,2,0,Domain-0,50.0"
        );
        assert_eq!(
            lines[2],
            "12.000,http://h:1,3,12.5,4194304,1048576,2,1,a-very-long-name,0.0"
        );
        o.format = Format::Json;
        let json: serde_json::Value = serde_json::from_str(print(&o, &store()).trim()).unwrap();
        assert_eq!(json["domains"][2]["name"], "zeta");
        assert_eq!(json["domains"][2]["cpu"], 25.0);
        assert_eq!(json["hosts"][0]["domains"], 3);
        assert_eq!(json["hosts"][0]["paused"], 1);
    }

    #[test]
    fn csv_and_json_name_the_kernel_by_default() {
        let mut s = Store::new([("h:1".to_owned(), "http://h:1".to_owned())]);
        let mut sn = snap(
            10.0,
            &[(0, "Domain-0", "r-----", 1.0), (1, "lx", "-b----", 1.0)],
        );
        sn.domains[1].kernel = "/var/lib/xen/k, \"6.1\"/bzImage".into();
        sn.domains[1].image = "bzImage".into();
        s.ingest(0, sn);
        let csv = print(&opts(Format::Csv), &s);
        let lines: Vec<&str> = csv.lines().collect();
        assert!(
            lines[0].ends_with(",vbd_wsect,kernel,image"),
            "{}",
            lines[0]
        );
        assert!(
            lines[1].ends_with(",0,,"),
            "Domain-0 has none: {}",
            lines[1]
        );
        assert!(
            lines[2].ends_with(",\"/var/lib/xen/k, \"\"6.1\"\"/bzImage\",bzImage"),
            "{}",
            lines[2]
        );
        let json: serde_json::Value =
            serde_json::from_str(print(&opts(Format::Json), &s).trim()).unwrap();
        assert_eq!(
            json["domains"][1]["kernel"],
            "/var/lib/xen/k, \"6.1\"/bzImage"
        );
        assert_eq!(json["domains"][1]["image"], "bzImage");
        assert_eq!(json["domains"][0]["kernel"], "");
        // xentop's text has neither; --fields picks them anywhere.
        let text = print(&opts(Format::Text), &s);
        assert!(
            !text.contains("KERNEL") && !text.contains("bzImage"),
            "{text}"
        );
        let mut o = opts(Format::Text);
        o.fields = Some(crate::columns::parse_fields("name,image").unwrap());
        assert!(print(&o, &s).contains("bzImage"));
    }

    #[test]
    fn text_and_csv_escape_control_characters_from_xend() {
        // A kernel file may be named anything but '/' and NUL: it must not
        // reach the terminal as an escape sequence, nor split a record.
        let mut s = Store::new([("h:1".to_owned(), "http://h:1".to_owned())]);
        let mut sn = snap(
            10.0,
            &[(0, "Domain-0", "r-----", 1.0), (1, "lx", "-b----", 1.0)],
        );
        sn.domains[1].kernel = "/k\u{1b}]0;PWNED\u{7}\nforged".into();
        s.ingest(0, sn);
        let mut text_opts = opts(Format::Text);
        text_opts.fields = Some(crate::columns::parse_fields("name,kernel").unwrap());
        for (o, what) in [(text_opts, "text"), (opts(Format::Csv), "csv")] {
            let out = print(&o, &s);
            assert!(
                !out.contains(|c: char| c.is_control() && c != '\n'),
                "{what}: {out:?}"
            );
            assert!(
                out.contains("/k\\x1b]0;PWNED\\x07\\nforged"),
                "{what}: {out}"
            );
            assert!(!out.lines().any(|l| l.starts_with("forged")), "{what}");
        }
        // JSON keeps the real path (serde_json escapes it).
        let json: serde_json::Value =
            serde_json::from_str(print(&opts(Format::Json), &s).trim()).unwrap();
        assert_eq!(
            json["domains"][1]["kernel"],
            "/k\u{1b}]0;PWNED\u{7}\nforged"
        );
    }

    #[test]
    fn end_times() {
        assert_eq!(parse_end_time("+5", 100.0), Ok(105.0));
        assert_eq!(parse_end_time("2026-01-02 03:04:05", 0.0), Ok(1767323045.0));
        assert_eq!(
            parse_end_time("01:00", 86400.0 * 3.0 + 7200.0),
            Ok(86400.0 * 4.0 + 3600.0)
        );
        assert!(
            parse_end_time("soon", 0.0)
                .unwrap_err()
                .to_string()
                .contains("bad --end-time 'soon'")
        );
    }
}
