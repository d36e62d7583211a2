//! The data xtop shows: the latest snapshot of each host, rates computed from
//! the previous one, and a short history per domain for sparklines.
//!
//! Collection fills this through [`Store::ingest`]; drawing only reads it.
use std::collections::{HashMap, VecDeque};

use xend::api::{DomainStats, Snapshot};

/// How many samples of history each domain keeps (at 3 s, six minutes).
pub const HISTORY: usize = 120;

/// Rates are computed over at least this many seconds: xend's counters move in
/// steps, so two snapshots taken close together (a refresh right after an
/// event) would show a burst or a zero.
pub const MIN_RATE_WINDOW: f64 = 0.9;

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
}

impl DomRow {
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
    /// The snapshot rates are measured from (at least [`MIN_RATE_WINDOW`] old).
    base: Option<(f64, Vec<DomRow>)>,
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
                base: None,
            })
            .collect();
        Store {
            hosts,
            history: HashMap::new(),
        }
    }

    /// Takes a new snapshot of host `host`: computes rates against the previous
    /// one and extends the history.
    pub fn ingest(&mut self, host: usize, snap: Snapshot) {
        let Some(h) = self.hosts.get_mut(host) else {
            return;
        };
        let (base_time, base_rows) = match &h.base {
            Some((t, rows)) => (*t, rows.as_slice()),
            None => (snap.time, &[][..]),
        };
        let dt = snap.time - base_time;
        // Too close to the base: keep showing the last rates, measure later.
        let measure = dt >= MIN_RATE_WINDOW;
        let base: HashMap<u32, &DomRow> = base_rows.iter().map(|r| (r.dom.id, r)).collect();
        let shown: HashMap<u32, &DomRow> = h.rows.iter().map(|r| (r.dom.id, r)).collect();
        let mut rows = Vec::with_capacity(snap.domains.len());
        for dom in &snap.domains {
            let key = DomKey { host, id: dom.id };
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
            };
            let same = |p: &&&DomRow| p.dom.name == dom.name;
            if measure && let Some(p) = base.get(&dom.id).filter(same) {
                let rate = |now: f64, before: f64| ((now - before) / dt).max(0.0);
                row.cpu_pct = 100.0 * rate(dom.cpu_time, p.dom.cpu_time);
                for (i, v) in dom.vcpu_info.iter().enumerate() {
                    if let Some(pv) = p.dom.vcpu_info.iter().find(|pv| pv.id == v.id) {
                        row.vcpu_pct[i] = 100.0 * rate(v.cpu_time, pv.cpu_time);
                    }
                }
                let f = |x: u64| x as f64;
                row.net_tx_rate = rate(f(row.net_tx()), f(p.net_tx()));
                row.net_rx_rate = rate(f(row.net_rx()), f(p.net_rx()));
                row.rd_sect_rate = rate(f(row.vbd_sum(|v| v.rd_sect)), f(p.vbd_sum(|v| v.rd_sect)));
                row.wr_sect_rate = rate(f(row.vbd_sum(|v| v.wr_sect)), f(p.vbd_sum(|v| v.wr_sect)));
                row.rd_req_rate = rate(f(row.vbd_sum(|v| v.rd_req)), f(p.vbd_sum(|v| v.rd_req)));
                row.wr_req_rate = rate(f(row.vbd_sum(|v| v.wr_req)), f(p.vbd_sum(|v| v.wr_req)));
            } else if !measure && let Some(p) = shown.get(&dom.id).filter(same) {
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
            }
            rows.push(row);
        }
        let cpus = snap.node.nr_cpus.max(1) as f64;
        if measure {
            let host_pct = rows
                .iter()
                .filter(|r| r.dom.id != 0)
                .map(|r| r.cpu_pct)
                .sum::<f64>()
                / cpus;
            push_capped(&mut h.cpu_history, host_pct);
        }
        // History: drop domains that went away, extend the others.
        self.history
            .retain(|k, _| k.host != host || rows.iter().any(|r| r.key == *k));
        if measure || h.base.is_none() {
            for row in &rows {
                self.history.entry(row.key).or_default().push(row);
            }
            h.base = Some((snap.time, rows.clone()));
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
    use xend::api::{NetStats, NodeInfo, VbdStats, VcpuStats};

    /// A snapshot at `time` with domains `(id, name, state, cpu_time)`.
    pub fn snap(time: f64, doms: &[(u32, &str, &str, f64)]) -> Snapshot {
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
        // A snapshot right after (an event-driven refresh) keeps the rates.
        s.ingest(
            0,
            snap(
                102.2,
                &[(0, "Domain-0", "r-----", 10.0), (1, "a", "-b----", 2.0)],
            ),
        );
        assert!((s.hosts[0].rows[1].cpu_pct - 50.0).abs() < 1e-9);
        assert_eq!(s.history[&s.hosts[0].rows[1].key].cpu.len(), 2);
        // The next one measures from the last base (102.0), not from 102.2.
        s.ingest(
            0,
            snap(
                104.0,
                &[(0, "Domain-0", "r-----", 10.0), (1, "a", "-b----", 4.0)],
            ),
        );
        assert!((s.hosts[0].rows[1].cpu_pct - 100.0).abs() < 1e-9);
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
