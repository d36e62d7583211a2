//! The data xtop shows: the latest snapshot of each host, rates computed from
//! the previous sample of each domain, and a short history per domain for
//! sparklines.
//!
//! Every rate divides a counter's change by the time between the two samples
//! the counters come from: the VMM's own stamp (`sampled_at.mono`, host
//! `CLOCK_MONOTONIC`) when the record has one, else the snapshot's time (e.g.
//! Domain-0). A sample with the same stamp as the previous one is the same
//! measurement served again: it keeps the previous rates rather than showing
//! a zero or a spike.
//!
//! Collection fills this through [`Store::ingest`]; drawing only reads it.
use std::collections::{HashMap, VecDeque};

use xend::api::{DomainStats, Snapshot};

/// How many samples of history each domain keeps (at 3 s, six minutes).
pub const HISTORY: usize = 120;

/// Identifies a domain across refreshes: the host it runs on and its id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DomKey {
    /// Index of the host in [`Store::hosts`].
    pub host: usize,
    /// Domain id on that host.
    pub id: u32,
}

/// Which CPU% convention to show.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CpuMode {
    /// xentop: share of one physical CPU (a 2-vCPU domain can show 200%).
    #[default]
    Xentop,
    /// virt-top: share of the whole host (100% = every CPU busy).
    VirtTop,
}

impl CpuMode {
    /// The other convention.
    pub fn toggled(self) -> Self {
        match self {
            CpuMode::Xentop => CpuMode::VirtTop,
            CpuMode::VirtTop => CpuMode::Xentop,
        }
    }

    /// How the header names it.
    pub fn label(self) -> &'static str {
        match self {
            CpuMode::Xentop => "CPU% of one CPU (xentop)",
            CpuMode::VirtTop => "CPU% of host (virt-top)",
        }
    }
}

/// Whether a host answers.
#[derive(Clone, Debug, PartialEq)]
pub enum HostStatus {
    /// No answer yet.
    Connecting,
    /// The last poll succeeded.
    Up,
    /// The last poll failed; xtop keeps retrying.
    Down {
        /// The error, as a sentence.
        reason: String,
    },
}

/// One domain as shown: its figures plus rates since the previous refresh.
#[derive(Clone, Debug, PartialEq)]
pub struct DomRow {
    /// Which host and id.
    pub key: DomKey,
    /// The figures from xend.
    pub dom: DomainStats,
    /// CPU use as a share of one CPU, percent (0 on the first sample).
    pub cpu_pct: f64,
    /// CPU% of each vCPU (share of one CPU).
    pub vcpu_pct: Vec<f64>,
    /// Network bytes/s sent by the guest.
    pub net_tx_rate: f64,
    /// Network bytes/s received by the guest.
    pub net_rx_rate: f64,
    /// Disk sectors/s read.
    pub rd_sect_rate: f64,
    /// Disk sectors/s written.
    pub wr_sect_rate: f64,
    /// Block read requests/s.
    pub rd_req_rate: f64,
    /// Block write requests/s.
    pub wr_req_rate: f64,
    /// Console bytes/s written by the guest.
    pub console_out_rate: f64,
    /// Console bytes/s sent to the guest.
    pub console_in_rate: f64,
    /// VM exits/s.
    pub exit_rate: f64,
    /// When the figures were taken (what the next sample's rates divide by).
    pub sampled: SampledAt,
}

/// When a domain's figures were taken, on the clock they can be compared on.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum SampledAt {
    /// The VMM's stamp: host `CLOCK_MONOTONIC`, seconds.
    Vmm(f64),
    /// No stamp (Domain-0, a VMM that has not answered yet): the snapshot's
    /// wall-clock time, seconds since the Unix epoch.
    Snapshot(f64),
}

impl SampledAt {
    /// The time of `dom`'s figures in snapshot `snap_time`.
    pub fn of(dom: &DomainStats, snap_time: f64) -> Self {
        match dom.sampled_at {
            Some(t) => SampledAt::Vmm(t.mono),
            None => SampledAt::Snapshot(snap_time),
        }
    }

    /// Seconds from `earlier` to `self`, when both are on the same clock.
    pub fn since(self, earlier: SampledAt) -> Option<f64> {
        match (self, earlier) {
            (SampledAt::Vmm(a), SampledAt::Vmm(b))
            | (SampledAt::Snapshot(a), SampledAt::Snapshot(b)) => Some(a - b),
            _ => None,
        }
    }
}

/// What a new sample of a domain means for its rates.
enum Measure<'a> {
    /// No earlier sample of this domain (new, restarted with a new id, an id
    /// reused by another name, or the clock changed): rates start at 0.
    First,
    /// The same measurement as before (same stamp): keep the previous rates.
    Same(&'a DomRow),
    /// An older measurement than the one shown: keep the row shown.
    Stale(&'a DomRow),
    /// A new measurement `dt` seconds after the previous one.
    New(&'a DomRow, f64),
}

impl DomRow {
    /// The row for `dom` sampled at `sampled`, with its rates.
    fn measured(key: DomKey, dom: &DomainStats, sampled: SampledAt, measure: Measure<'_>) -> Self {
        let mut row = DomRow {
            key,
            dom: dom.clone(),
            cpu_pct: 0.0,
            vcpu_pct: vec![0.0; dom.vcpu_info.len()],
            net_tx_rate: 0.0,
            net_rx_rate: 0.0,
            rd_sect_rate: 0.0,
            wr_sect_rate: 0.0,
            rd_req_rate: 0.0,
            wr_req_rate: 0.0,
            console_out_rate: 0.0,
            console_in_rate: 0.0,
            exit_rate: 0.0,
            sampled,
        };
        match measure {
            Measure::First => {}
            Measure::Stale(p) => return p.clone(),
            Measure::Same(p) => {
                row.cpu_pct = p.cpu_pct;
                if p.vcpu_pct.len() == row.vcpu_pct.len() {
                    row.vcpu_pct.clone_from(&p.vcpu_pct);
                }
                row.net_tx_rate = p.net_tx_rate;
                row.net_rx_rate = p.net_rx_rate;
                row.rd_sect_rate = p.rd_sect_rate;
                row.wr_sect_rate = p.wr_sect_rate;
                row.rd_req_rate = p.rd_req_rate;
                row.wr_req_rate = p.wr_req_rate;
                row.console_out_rate = p.console_out_rate;
                row.console_in_rate = p.console_in_rate;
                row.exit_rate = p.exit_rate;
                // Keep the stamp the rates were measured at.
                row.sampled = p.sampled;
            }
            Measure::New(p, dt) => {
                // Counters only grow; one that went back (a guest reboot
                // resets device counters) shows 0, never a negative rate.
                let rate = |now: f64, before: f64| ((now - before) / dt).max(0.0);
                let f = |x: u64| x as f64;
                row.cpu_pct = 100.0 * rate(dom.cpu_time, p.dom.cpu_time);
                for (i, v) in dom.vcpu_info.iter().enumerate() {
                    if let Some(pv) = p.dom.vcpu_info.iter().find(|pv| pv.id == v.id) {
                        row.vcpu_pct[i] = 100.0 * rate(v.cpu_time, pv.cpu_time);
                    }
                }
                row.net_tx_rate = rate(f(row.net_tx()), f(p.net_tx()));
                row.net_rx_rate = rate(f(row.net_rx()), f(p.net_rx()));
                row.rd_sect_rate = rate(f(row.vbd_sum(|v| v.rd_sect)), f(p.vbd_sum(|v| v.rd_sect)));
                row.wr_sect_rate = rate(f(row.vbd_sum(|v| v.wr_sect)), f(p.vbd_sum(|v| v.wr_sect)));
                row.rd_req_rate = rate(f(row.vbd_sum(|v| v.rd_req)), f(p.vbd_sum(|v| v.rd_req)));
                row.wr_req_rate = rate(f(row.vbd_sum(|v| v.wr_req)), f(p.vbd_sum(|v| v.wr_req)));
                row.console_out_rate = rate(f(dom.console_bytes_out), f(p.dom.console_bytes_out));
                row.console_in_rate = rate(f(dom.console_bytes_in), f(p.dom.console_bytes_in));
                row.exit_rate = rate(f(dom.exits), f(p.dom.exits));
            }
        }
        row
    }

    /// Bytes sent by the guest, all interfaces.
    pub fn net_tx(&self) -> u64 {
        self.dom.nets.iter().map(|n| n.tx_bytes).sum()
    }
    /// Bytes received by the guest, all interfaces.
    pub fn net_rx(&self) -> u64 {
        self.dom.nets.iter().map(|n| n.rx_bytes).sum()
    }
    /// Sum of one block-device counter.
    pub fn vbd_sum(&self, f: impl Fn(&xend::api::VbdStats) -> u64) -> u64 {
        self.dom.vbds.iter().map(f).sum()
    }
    /// True when the state letters include `letter`.
    pub fn has_state(&self, letter: char) -> bool {
        self.dom.state.contains(letter)
    }
    /// State in xentop's order `dsbcpr`, `-` where unset; [`HUNG`] while the
    /// domain's VMM does not answer (its letters would be stale).
    pub fn xentop_state(&self) -> String {
        if self.dom.unresponsive_since.is_some() {
            return HUNG.to_string();
        }
        xentop_state(&self.dom.state)
    }
}

/// The state cell of a domain whose VMM does not answer.
pub const HUNG: &str = "?hung?";

/// Turns the API's `rbpscd` letters into xentop's `dsbcpr` order.
pub fn xentop_state(state: &str) -> String {
    ['d', 's', 'b', 'c', 'p', 'r']
        .iter()
        .map(|&c| if state.contains(c) { c } else { '-' })
        .collect()
}

/// A domain's recent history, one sample per refresh.
#[derive(Clone, Debug, Default)]
pub struct History {
    /// CPU% (share of one CPU).
    pub cpu: VecDeque<f64>,
    /// Memory, KiB.
    pub mem: VecDeque<u64>,
    /// Network bytes/s (tx + rx).
    pub net: VecDeque<f64>,
    /// Disk sectors/s (read + write).
    pub disk: VecDeque<f64>,
}

impl History {
    fn push(&mut self, row: &DomRow) {
        push_capped(&mut self.cpu, row.cpu_pct);
        push_capped(&mut self.mem, row.dom.mem_kib);
        push_capped(&mut self.net, row.net_tx_rate + row.net_rx_rate);
        push_capped(&mut self.disk, row.rd_sect_rate + row.wr_sect_rate);
    }
}

fn push_capped<T>(q: &mut VecDeque<T>, v: T) {
    if q.len() == HISTORY {
        q.pop_front();
    }
    q.push_back(v);
}

/// One host: where it is, whether it answers, and its latest figures.
#[derive(Clone, Debug)]
pub struct Host {
    /// What the HOST column shows (host:port of the URL).
    pub label: String,
    /// The xend URL.
    pub url: String,
    /// Whether the last poll worked.
    pub status: HostStatus,
    /// The latest snapshot (kept while the host is down, to show stale data).
    pub snapshot: Option<Snapshot>,
    /// Domains of the latest snapshot with their rates.
    pub rows: Vec<DomRow>,
    /// Host CPU% history (share of the whole host), for the header sparkline.
    pub cpu_history: VecDeque<f64>,
}

/// Everything collected so far, for every host.
#[derive(Clone, Debug, Default)]
pub struct Store {
    /// The hosts, in the order given on the command line.
    pub hosts: Vec<Host>,
    /// Per-domain history.
    pub history: HashMap<DomKey, History>,
}

impl Store {
    /// A store for the given `(label, url)` hosts, none polled yet.
    pub fn new(hosts: impl IntoIterator<Item = (String, String)>) -> Self {
        let hosts = hosts
            .into_iter()
            .map(|(label, url)| Host {
                label,
                url,
                status: HostStatus::Connecting,
                snapshot: None,
                rows: Vec::new(),
                cpu_history: VecDeque::new(),
            })
            .collect();
        Store {
            hosts,
            history: HashMap::new(),
        }
    }

    /// Takes a new snapshot of host `host`: computes each domain's rates
    /// against its previous sample and extends the history of the domains
    /// that have a new one.
    pub fn ingest(&mut self, host: usize, snap: Snapshot) {
        let Some(h) = self.hosts.get_mut(host) else {
            return;
        };
        let prev: HashMap<u32, &DomRow> = h.rows.iter().map(|r| (r.dom.id, r)).collect();
        let mut rows = Vec::with_capacity(snap.domains.len());
        let mut fresh = Vec::with_capacity(snap.domains.len());
        // Whether some guest has a new rate (the host CPU% moves).
        let mut measured = false;
        for dom in &snap.domains {
            let sampled = SampledAt::of(dom, snap.time);
            let measure = match prev.get(&dom.id).filter(|p| p.dom.name == dom.name) {
                None => Measure::First,
                Some(p) => match sampled.since(p.sampled) {
                    Some(dt) if dt > 0.0 => Measure::New(p, dt),
                    Some(0.0) => Measure::Same(p),
                    // An older stamp than the last (a reordered answer):
                    // keep showing the newer sample.
                    Some(_) => Measure::Stale(p),
                    None => Measure::First,
                },
            };
            fresh.push(!matches!(measure, Measure::Same(_) | Measure::Stale(_)));
            measured |= dom.id != 0 && matches!(measure, Measure::New(..));
            rows.push(DomRow::measured(
                DomKey { host, id: dom.id },
                dom,
                sampled,
                measure,
            ));
        }
        // The host's CPU%: when some guest has a new rate (with no guest, 0
        // at every refresh after the first).
        let no_guests = rows.iter().all(|r| r.dom.id == 0);
        if measured || (no_guests && h.snapshot.is_some()) {
            let cpus = snap.node.nr_cpus.max(1) as f64;
            let host_pct = rows
                .iter()
                .filter(|r| r.dom.id != 0)
                .map(|r| r.cpu_pct)
                .sum::<f64>()
                / cpus;
            push_capped(&mut h.cpu_history, host_pct);
        }
        // History: drop domains that went away, extend those with a new sample.
        self.history
            .retain(|k, _| k.host != host || rows.iter().any(|r| r.key == *k));
        for (row, fresh) in rows.iter().zip(fresh) {
            if fresh {
                self.history.entry(row.key).or_default().push(row);
            }
        }
        h.rows = rows;
        h.snapshot = Some(snap);
        h.status = HostStatus::Up;
    }

    /// Records that polling host `host` failed.
    pub fn host_down(&mut self, host: usize, reason: String) {
        if let Some(h) = self.hosts.get_mut(host) {
            h.status = HostStatus::Down { reason };
        }
    }

    /// Domain `id` of host `host` reports `progress` (from an event, newer
    /// than the last snapshot; the next snapshot has xend's own).
    pub fn set_progress(&mut self, host: usize, id: u32, progress: Option<xend::api::OpProgress>) {
        if let Some(r) = self
            .hosts
            .get_mut(host)
            .and_then(|h| h.rows.iter_mut().find(|r| r.key.id == id))
        {
            r.dom.progress = progress;
        }
    }

    /// The domains with a save, restore or migration under way.
    pub fn transfers(&self) -> impl Iterator<Item = (&DomRow, &xend::api::OpProgress)> {
        self.rows()
            .filter_map(|r| r.dom.progress.as_ref().map(|p| (r, p)))
    }

    /// Every domain row of every host.
    pub fn rows(&self) -> impl Iterator<Item = &DomRow> {
        self.hosts.iter().flat_map(|h| h.rows.iter())
    }

    /// The row for `key`.
    pub fn row(&self, key: DomKey) -> Option<&DomRow> {
        self.hosts.get(key.host)?.rows.iter().find(|r| r.key == key)
    }

    /// Finds a domain by name or id (first host that has it).
    pub fn find(&self, dom: &str) -> Option<&DomRow> {
        self.rows()
            .find(|r| r.dom.name == dom)
            .or_else(|| self.rows().find(|r| r.dom.id.to_string() == dom))
    }

    /// Number of host CPUs (first host that answered), at least 1.
    pub fn nr_cpus(&self, host: usize) -> u32 {
        self.hosts
            .get(host)
            .and_then(|h| h.snapshot.as_ref())
            .map(|s| s.node.nr_cpus.max(1))
            .unwrap_or(1)
    }
}

/// xentop's summary counts for one host.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Domains.
    pub total: usize,
    /// Running.
    pub running: usize,
    /// Blocked.
    pub blocked: usize,
    /// Paused.
    pub paused: usize,
    /// Crashed.
    pub crashed: usize,
    /// Dying.
    pub dying: usize,
    /// Shut down.
    pub shutdown: usize,
}

impl Counts {
    /// Counts the states of `rows`.
    pub fn of<'a>(rows: impl IntoIterator<Item = &'a DomRow>) -> Self {
        let mut c = Counts::default();
        for r in rows {
            c.total += 1;
            c.running += r.has_state('r') as usize;
            c.blocked += r.has_state('b') as usize;
            c.paused += r.has_state('p') as usize;
            c.crashed += r.has_state('c') as usize;
            c.dying += r.has_state('d') as usize;
            c.shutdown += r.has_state('s') as usize;
        }
        c
    }
}

impl std::fmt::Display for Counts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} domains: {} running, {} blocked, {} paused, {} crashed, {} dying, {} shutdown",
            self.total,
            self.running,
            self.blocked,
            self.paused,
            self.crashed,
            self.dying,
            self.shutdown
        )
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use xend::api::{NetStats, NodeInfo, SampleTime, VbdStats, VcpuStats};

    /// A snapshot at `time` with domains `(id, name, state, cpu_time)`, no
    /// VMM stamps (rates fall back to the snapshot time).
    pub fn snap(time: f64, doms: &[(u32, &str, &str, f64)]) -> Snapshot {
        snap_at(time, None, doms)
    }

    /// Like [`snap`], every domain but Domain-0 stamped at `mono`.
    pub fn snap_at(time: f64, mono: Option<f64>, doms: &[(u32, &str, &str, f64)]) -> Snapshot {
        Snapshot {
            time,
            xend_version: "0.1.0".into(),
            node: NodeInfo {
                host: "testhost".into(),
                nr_cpus: 2,
                cores: 2,
                cpu_mhz: 2400,
                memory: 4096,
                free_memory: 1024,
                xen_major: 3,
                xen_minor: 0,
                xen_extra: ".0-kvm".into(),
                ..Default::default()
            },
            domains: doms
                .iter()
                .map(|&(id, name, state, cpu)| DomainStats {
                    id,
                    name: name.into(),
                    memory: 64,
                    maxmem: 128,
                    state: state.into(),
                    cpu_time: cpu,
                    vcpus: 1,
                    vcpu_info: vec![VcpuStats {
                        id: 0,
                        cpu_time: cpu,
                        state: "running".into(),
                        affinity: vec![],
                        cpu: Some(0),
                    }],
                    mem_kib: 65536,
                    maxmem_kib: 131072,
                    console_port: (id != 0).then_some(9600 + id as u16),
                    restart: "onreboot".into(),
                    nets: vec![NetStats {
                        idx: 0,
                        vifname: format!("vif{id}.0"),
                        tx_bytes: (cpu * 1000.0) as u64,
                        rx_bytes: (cpu * 2000.0) as u64,
                        ..Default::default()
                    }],
                    vbds: vec![VbdStats {
                        dev: "xvda".into(),
                        rd_sect: (cpu * 10.0) as u64,
                        ..Default::default()
                    }],
                    console_bytes_out: (cpu * 100.0) as u64,
                    exits: (cpu * 7000.0) as u64,
                    sampled_at: mono
                        .filter(|_| id != 0)
                        .map(|mono| SampleTime { mono, wall: time }),
                    ..Default::default()
                })
                .collect(),
        }
    }

    #[test]
    fn rates_come_from_deltas() {
        let mut s = Store::new([("h".to_owned(), "http://h".to_owned())]);
        s.ingest(
            0,
            snap(
                100.0,
                &[(0, "Domain-0", "r-----", 10.0), (1, "a", "-b----", 1.0)],
            ),
        );
        assert_eq!(s.hosts[0].rows[1].cpu_pct, 0.0, "first sample shows 0");
        s.ingest(
            0,
            snap(
                102.0,
                &[(0, "Domain-0", "r-----", 10.0), (1, "a", "-b----", 2.0)],
            ),
        );
        let a = &s.hosts[0].rows[1];
        assert!((a.cpu_pct - 50.0).abs() < 1e-9, "{}", a.cpu_pct);
        assert!((a.net_tx_rate - 500.0).abs() < 1e-9);
        assert_eq!(s.history[&a.key].cpu.len(), 2);
        assert_eq!(s.hosts[0].cpu_history.back().copied(), Some(25.0));
    }

    /// The rows of host 0 by name.
    fn row<'a>(s: &'a Store, name: &str) -> &'a DomRow {
        s.hosts[0].rows.iter().find(|r| r.dom.name == name).unwrap()
    }

    #[test]
    fn rates_divide_by_the_vmm_stamps_not_the_snapshot_times() {
        let mut s = Store::new([("h".to_owned(), "http://h".to_owned())]);
        let doms = |cpu: f64| [(0, "Domain-0", "r-----", 10.0), (1, "a", "-b----", cpu)];
        // xend answered 3 s apart, but the VMM's samples are 1 s apart.
        s.ingest(0, snap_at(100.0, Some(50.0), &doms(1.0)));
        s.ingest(0, snap_at(103.0, Some(51.0), &doms(1.5)));
        let a = row(&s, "a");
        assert!((a.cpu_pct - 50.0).abs() < 1e-9, "{}", a.cpu_pct);
        assert!((a.vcpu_pct[0] - 50.0).abs() < 1e-9);
        assert!((a.net_tx_rate - 500.0).abs() < 1e-9);
        assert!((a.net_rx_rate - 1000.0).abs() < 1e-9);
        assert!((a.rd_sect_rate - 5.0).abs() < 1e-9);
        assert!((a.console_out_rate - 50.0).abs() < 1e-9);
        assert!((a.exit_rate - 3500.0).abs() < 1e-9);
        // Irregular gaps: 0.2 s of VMM time in 5 s of xend time, then 4 s in 0.5 s.
        s.ingest(0, snap_at(108.0, Some(51.2), &doms(1.6)));
        assert!((row(&s, "a").cpu_pct - 50.0).abs() < 1e-9);
        s.ingest(0, snap_at(108.5, Some(55.2), &doms(3.6)));
        assert!((row(&s, "a").cpu_pct - 50.0).abs() < 1e-9);
        assert_eq!(s.history[&row(&s, "a").key].cpu.len(), 4);
    }

    #[test]
    fn the_same_stamp_twice_keeps_the_rates_and_adds_no_history() {
        let mut s = Store::new([("h".to_owned(), "http://h".to_owned())]);
        let doms = |cpu: f64| [(0, "Domain-0", "r-----", 10.0), (1, "a", "-b----", cpu)];
        s.ingest(0, snap_at(100.0, Some(50.0), &doms(1.0)));
        s.ingest(0, snap_at(101.0, Some(51.0), &doms(2.0)));
        assert!((row(&s, "a").cpu_pct - 100.0).abs() < 1e-9);
        let host_points = s.hosts[0].cpu_history.len();
        // xend served the same sample again (a refresh right after an event):
        // no zero, no spike, no new history point.
        for t in [101.2, 101.4] {
            s.ingest(0, snap_at(t, Some(51.0), &doms(2.0)));
            let a = row(&s, "a");
            assert!((a.cpu_pct - 100.0).abs() < 1e-9, "{}", a.cpu_pct);
            assert!((a.net_tx_rate - 1000.0).abs() < 1e-9);
            assert_eq!(s.history[&a.key].cpu.len(), 2);
            assert_eq!(s.hosts[0].cpu_history.len(), host_points);
        }
        // The next sample measures from the stamp the figures came from.
        s.ingest(0, snap_at(104.0, Some(53.0), &doms(3.0)));
        assert!((row(&s, "a").cpu_pct - 50.0).abs() < 1e-9);
        // A stale answer (older stamp) is no new measurement either.
        s.ingest(0, snap_at(104.5, Some(52.0), &doms(2.5)));
        assert!((row(&s, "a").cpu_pct - 50.0).abs() < 1e-9);
        s.ingest(0, snap_at(105.0, Some(54.0), &doms(3.5)));
        assert!((row(&s, "a").cpu_pct - 50.0).abs() < 1e-9);
    }

    #[test]
    fn domain0_without_a_stamp_uses_the_snapshot_time() {
        let mut s = Store::new([("h".to_owned(), "http://h".to_owned())]);
        s.ingest(
            0,
            snap_at(100.0, Some(7.0), &[(0, "Domain-0", "r-----", 10.0)]),
        );
        s.ingest(
            0,
            snap_at(104.0, Some(7.0), &[(0, "Domain-0", "r-----", 12.0)]),
        );
        assert!((row(&s, "Domain-0").cpu_pct - 50.0).abs() < 1e-9);
        // A domain whose VMM starts stamping: the clocks differ, no rate yet.
        s.ingest(0, snap(1.0, &[(1, "a", "-b----", 1.0)]));
        s.ingest(0, snap_at(2.0, Some(7.0), &[(1, "a", "-b----", 9.0)]));
        assert_eq!(row(&s, "a").cpu_pct, 0.0);
        s.ingest(0, snap_at(3.0, Some(8.0), &[(1, "a", "-b----", 9.5)]));
        assert!((row(&s, "a").cpu_pct - 50.0).abs() < 1e-9);
    }

    #[test]
    fn a_domain_restarted_with_a_new_id_starts_from_zero() {
        let mut s = Store::new([("h".to_owned(), "http://h".to_owned())]);
        s.ingest(0, snap_at(1.0, Some(10.0), &[(1, "a", "-b----", 40.0)]));
        s.ingest(0, snap_at(2.0, Some(11.0), &[(1, "a", "-b----", 41.0)]));
        let old = row(&s, "a").key;
        assert!((row(&s, "a").cpu_pct - 100.0).abs() < 1e-9);
        // Restarted: a new id, counters from zero; no rate against the old
        // process's counters, and the old id's history goes.
        s.ingest(0, snap_at(3.0, Some(12.0), &[(2, "a", "-b----", 0.5)]));
        let a = row(&s, "a");
        assert_eq!((a.key.id, a.cpu_pct, a.exit_rate), (2, 0.0, 0.0));
        assert!(!s.history.contains_key(&old));
        assert_eq!(s.history[&a.key].cpu.len(), 1);
        s.ingest(0, snap_at(4.0, Some(14.0), &[(2, "a", "-b----", 1.5)]));
        assert!((row(&s, "a").cpu_pct - 50.0).abs() < 1e-9);
    }

    #[test]
    fn a_new_domain_with_a_reused_id_starts_from_zero() {
        let mut s = Store::new([("h".to_owned(), "http://h".to_owned())]);
        s.ingest(0, snap(1.0, &[(1, "a", "-b----", 1.0)]));
        s.ingest(0, snap(2.0, &[(1, "b", "-b----", 5.0)]));
        assert_eq!(s.hosts[0].rows[0].cpu_pct, 0.0);
    }

    #[test]
    fn states_and_counts() {
        assert_eq!(xentop_state("-b----"), "--b---");
        assert_eq!(xentop_state("r-p---"), "----pr");
        let mut s = Store::new([("h".to_owned(), "http://h".to_owned())]);
        s.ingest(
            0,
            snap(
                1.0,
                &[(0, "Domain-0", "r-----", 1.0), (1, "a", "--p---", 1.0)],
            ),
        );
        let c = Counts::of(s.rows());
        assert_eq!(
            c.to_string(),
            "2 domains: 1 running, 0 blocked, 1 paused, 0 crashed, 0 dying, 0 shutdown"
        );
    }
}
