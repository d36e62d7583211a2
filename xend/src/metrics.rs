//! `GET /metrics`: the bulk snapshot ([`Snapshot`], what `GET
//! /xend/domain?op=stats` serves) in Prometheus' text exposition format 0.0.4.
//!
//! Written by hand rather than with `prometheus-client`: that crate is built
//! around a registry of live metric objects updated as events happen, while
//! every figure here already exists in the snapshot and is only formatted,
//! once per scrape. The format is small (HELP, TYPE, samples, three escapes),
//! and the [`Exposition`] writer keeps its two rules: a family's HELP and TYPE
//! come once, before its samples, and counters end in `_total`.
use std::collections::HashSet;
use std::fmt::Write as _;

use crate::api::{DomainStats, Snapshot};

/// The `Content-Type` of the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A metric family's type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up (resets when the domain restarts); names end in `_total`.
    Counter,
    /// Goes up and down.
    Gauge,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        }
    }
}

/// One family: name, help, type.
#[derive(Clone, Copy, Debug)]
pub struct Family {
    /// Metric name (`[a-zA-Z_:][a-zA-Z0-9_:]*`).
    pub name: &'static str,
    /// One line of help.
    pub help: &'static str,
    /// Counter or gauge.
    pub kind: Kind,
}

const fn counter(name: &'static str, help: &'static str) -> Family {
    Family {
        name,
        help,
        kind: Kind::Counter,
    }
}

const fn gauge(name: &'static str, help: &'static str) -> Family {
    Family {
        name,
        help,
        kind: Kind::Gauge,
    }
}

/// A text exposition being written: each family's HELP and TYPE the first
/// time one of its samples is written; families must not interleave.
#[derive(Default)]
pub struct Exposition {
    out: String,
    seen: HashSet<&'static str>,
    current: Option<&'static str>,
}

impl Exposition {
    /// An empty exposition.
    pub fn new() -> Self {
        Self::default()
    }

    /// Write one sample of `family`.
    pub fn sample(&mut self, family: &Family, labels: &[(&str, &str)], value: Value) {
        debug_assert!(valid_name(family.name), "{}", family.name);
        debug_assert_eq!(
            family.kind == Kind::Counter,
            family.name.ends_with("_total"),
            "counters, and only counters, end in _total: {}",
            family.name
        );
        if self.current != Some(family.name) {
            let fresh = self.seen.insert(family.name);
            debug_assert!(fresh, "family {} written in two places", family.name);
            self.current = Some(family.name);
            let _ = writeln!(
                self.out,
                "# HELP {} {}",
                family.name,
                escape_help(family.help)
            );
            let _ = writeln!(self.out, "# TYPE {} {}", family.name, family.kind.as_str());
        }
        self.out.push_str(family.name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape_label(v));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }

    /// The text.
    pub fn finish(self) -> String {
        self.out
    }
}

/// A sample's value: integers print exactly, floats in Prometheus' spelling.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value {
    /// A count or a byte figure.
    Int(u64),
    /// Seconds and the like.
    Float(f64),
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Value::Int(n) => write!(f, "{n}"),
            Value::Float(x) if x.is_nan() => f.write_str("NaN"),
            Value::Float(x) if x == f64::INFINITY => f.write_str("+Inf"),
            Value::Float(x) if x == f64::NEG_INFINITY => f.write_str("-Inf"),
            Value::Float(x) => write!(f, "{x}"),
        }
    }
}

impl From<u64> for Value {
    fn from(n: u64) -> Self {
        Value::Int(n)
    }
}

impl From<u32> for Value {
    fn from(n: u32) -> Self {
        Value::Int(n.into())
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Int(b.into())
    }
}

impl From<f64> for Value {
    fn from(x: f64) -> Self {
        Value::Float(x)
    }
}

/// Whether `name` is a valid metric (or label) name.
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// A label value: `\`, `"` and newline escaped.
pub fn escape_label(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

/// HELP text: `\` and newline escaped.
pub fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

/// The six state letters of a domain (`rbpscd`), as label values.
pub const STATES: [&str; 6] = [
    "running", "blocked", "paused", "shutdown", "crashed", "dying",
];

const BUILD_INFO: Family = gauge(
    "xend_build_info",
    "xend's version, as a label; the value is always 1.",
);
const DOMAINS: Family = gauge(
    "xend_domains",
    "Domains xend runs (Domain-0, the host, not counted).",
);
const NODE_MEMORY: Family = gauge("xend_node_memory_bytes", "Host RAM.");
const NODE_FREE: Family = gauge("xend_node_free_memory_bytes", "Free host RAM.");
const NODE_CPUS: Family = gauge("xend_node_cpus", "Logical CPUs of the host.");
const CPU: Family = counter(
    "xend_domain_cpu_seconds_total",
    "CPU time the domain consumed, all vCPUs.",
);
const VCPU_CPU: Family = counter(
    "xend_domain_vcpu_cpu_seconds_total",
    "CPU time one vCPU consumed.",
);
const MEMORY: Family = gauge(
    "xend_domain_memory_bytes",
    "Memory backing the guest (its target).",
);
const MAXMEM: Family = gauge(
    "xend_domain_memory_max_bytes",
    "The domain's maximum memory.",
);
const VCPUS: Family = gauge("xend_domain_vcpus", "vCPUs of the domain.");
const STATE: Family = gauge(
    "xend_domain_state",
    "1 for each state letter (rbpscd) the domain shows, 0 for the others.",
);
const EXITS: Family = counter(
    "xend_domain_vm_exits_total",
    "VM exits since the domain booted.",
);
const CONSOLE_IN: Family = counter(
    "xend_domain_console_input_bytes_total",
    "Bytes sent to the guest's console.",
);
const CONSOLE_OUT: Family = counter(
    "xend_domain_console_output_bytes_total",
    "Bytes the guest wrote to its console.",
);
const UNRESPONSIVE: Family = gauge(
    "xend_domain_unresponsive",
    "1 while the domain's VMM misses its deadlines (vmm-timeout); its figures are then stale.",
);
const VBD_RD_REQ: Family = counter(
    "xend_domain_vbd_read_requests_total",
    "Read requests of a virtual block device.",
);
const VBD_WR_REQ: Family = counter(
    "xend_domain_vbd_write_requests_total",
    "Write requests of a virtual block device.",
);
const VBD_RD_SECT: Family = counter(
    "xend_domain_vbd_read_sectors_total",
    "512-byte sectors read from a virtual block device.",
);
const VBD_WR_SECT: Family = counter(
    "xend_domain_vbd_write_sectors_total",
    "512-byte sectors written to a virtual block device.",
);
const VIF_RX_BYTES: Family = counter(
    "xend_domain_vif_receive_bytes_total",
    "Bytes a virtual network interface received (towards the guest).",
);
const VIF_RX_PACKETS: Family = counter(
    "xend_domain_vif_receive_packets_total",
    "Packets a virtual network interface received (towards the guest).",
);
const VIF_TX_BYTES: Family = counter(
    "xend_domain_vif_transmit_bytes_total",
    "Bytes a virtual network interface sent (from the guest).",
);
const VIF_TX_PACKETS: Family = counter(
    "xend_domain_vif_transmit_packets_total",
    "Packets a virtual network interface sent (from the guest).",
);
const VIF_RX_ERRORS: Family = counter(
    "xend_domain_vif_receive_errors_total",
    "Receive errors of a virtual network interface.",
);
const VIF_TX_ERRORS: Family = counter(
    "xend_domain_vif_transmit_errors_total",
    "Transmit errors of a virtual network interface.",
);
const VIF_RX_DROPS: Family = counter(
    "xend_domain_vif_receive_drops_total",
    "Received packets a virtual network interface dropped.",
);
const VIF_TX_DROPS: Family = counter(
    "xend_domain_vif_transmit_drops_total",
    "Packets to send a virtual network interface dropped.",
);

/// The whole exposition of one snapshot.
pub fn render(snap: &Snapshot) -> String {
    let mut e = Exposition::new();
    e.sample(
        &BUILD_INFO,
        &[("version", &snap.xend_version)],
        Value::Int(1),
    );
    let guests = snap.domains.iter().filter(|d| d.id != 0).count() as u64;
    e.sample(&DOMAINS, &[], guests.into());
    let mib = |m: u64| Value::Int(m.saturating_mul(1 << 20));
    e.sample(&NODE_MEMORY, &[], mib(snap.node.memory));
    e.sample(&NODE_FREE, &[], mib(snap.node.free_memory));
    e.sample(&NODE_CPUS, &[], snap.node.nr_cpus.into());

    let ids: Vec<String> = snap.domains.iter().map(|d| d.id.to_string()).collect();
    let doms: Vec<(&DomainStats, &str)> = snap
        .domains
        .iter()
        .zip(ids.iter().map(String::as_str))
        .collect();
    // One family at a time, every domain in it.
    let per_domain = |e: &mut Exposition, f: &Family, v: &dyn Fn(&DomainStats) -> Value| {
        for (d, id) in &doms {
            e.sample(f, &[("domain", &d.name), ("domid", id)], v(d));
        }
    };
    per_domain(&mut e, &CPU, &|d| d.cpu_time.into());
    for (d, id) in &doms {
        for v in &d.vcpu_info {
            let vcpu = v.id.to_string();
            e.sample(
                &VCPU_CPU,
                &[("domain", &d.name), ("domid", id), ("vcpu", &vcpu)],
                v.cpu_time.into(),
            );
        }
    }
    per_domain(&mut e, &MEMORY, &|d| {
        Value::Int(d.mem_kib.saturating_mul(1024))
    });
    per_domain(&mut e, &MAXMEM, &|d| {
        Value::Int(d.maxmem_kib.saturating_mul(1024))
    });
    per_domain(&mut e, &VCPUS, &|d| d.vcpus.into());
    for (d, id) in &doms {
        let letters = d.state.as_bytes();
        for (i, state) in STATES.iter().enumerate() {
            let on = letters.get(i).is_some_and(|&c| c != b'-');
            e.sample(
                &STATE,
                &[("domain", &d.name), ("domid", id), ("state", state)],
                on.into(),
            );
        }
    }
    per_domain(&mut e, &EXITS, &|d| d.exits.into());
    per_domain(&mut e, &CONSOLE_IN, &|d| d.console_bytes_in.into());
    per_domain(&mut e, &CONSOLE_OUT, &|d| d.console_bytes_out.into());
    per_domain(&mut e, &UNRESPONSIVE, &|d| {
        d.unresponsive_since.is_some().into()
    });

    type VbdField = fn(&crate::api::VbdStats) -> u64;
    let vbd: [(&Family, VbdField); 4] = [
        (&VBD_RD_REQ, |v| v.rd_req),
        (&VBD_WR_REQ, |v| v.wr_req),
        (&VBD_RD_SECT, |v| v.rd_sect),
        (&VBD_WR_SECT, |v| v.wr_sect),
    ];
    for (f, field) in vbd {
        for (d, id) in &doms {
            for v in &d.vbds {
                e.sample(
                    f,
                    &[("domain", &d.name), ("domid", id), ("device", &v.dev)],
                    field(v).into(),
                );
            }
        }
    }
    type VifField = fn(&crate::api::NetStats) -> u64;
    let vif: [(&Family, VifField); 8] = [
        (&VIF_RX_BYTES, |n| n.rx_bytes),
        (&VIF_RX_PACKETS, |n| n.rx_packets),
        (&VIF_TX_BYTES, |n| n.tx_bytes),
        (&VIF_TX_PACKETS, |n| n.tx_packets),
        (&VIF_RX_ERRORS, |n| n.rx_errors),
        (&VIF_TX_ERRORS, |n| n.tx_errors),
        (&VIF_RX_DROPS, |n| n.rx_drops),
        (&VIF_TX_DROPS, |n| n.tx_drops),
    ];
    for (f, field) in vif {
        for (d, id) in &doms {
            for n in &d.nets {
                let dev = if n.vifname.is_empty() {
                    format!("vif{}.{}", d.id, n.idx)
                } else {
                    n.vifname.clone()
                };
                e.sample(
                    f,
                    &[("domain", &d.name), ("domid", id), ("device", &dev)],
                    field(n).into(),
                );
            }
        }
    }
    e.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{NetStats, NodeInfo, VbdStats};

    fn snapshot() -> Snapshot {
        Snapshot {
            time: 0.0,
            xend_version: "0.1.0".into(),
            node: NodeInfo {
                memory: 2,
                free_memory: 1,
                nr_cpus: 4,
                ..NodeInfo::default()
            },
            domains: vec![
                DomainStats {
                    id: 0,
                    name: "Domain-0".into(),
                    state: "r-----".into(),
                    ..DomainStats::default()
                },
                DomainStats {
                    id: 7,
                    name: "we\"ird\\na\nme".into(),
                    state: "--p---".into(),
                    cpu_time: 1.5,
                    mem_kib: 1024,
                    maxmem_kib: 2048,
                    vcpus: 2,
                    exits: 9,
                    unresponsive_since: Some(1.0),
                    vbds: vec![VbdStats {
                        dev: "xvda".into(),
                        rd_req: 3,
                        ..VbdStats::default()
                    }],
                    nets: vec![NetStats {
                        vifname: "vif7.0".into(),
                        rx_bytes: 100,
                        ..NetStats::default()
                    }],
                    ..DomainStats::default()
                },
            ],
        }
    }

    #[test]
    fn label_values_and_help_are_escaped() {
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        assert_eq!(escape_help("a\\b\nc \"q\""), "a\\\\b\\nc \"q\"");
        let text = render(&snapshot());
        assert!(
            text.contains(
                "xend_domain_cpu_seconds_total{domain=\"we\\\"ird\\\\na\\nme\",domid=\"7\"} 1.5\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn each_family_has_help_and_type_once_before_its_samples() {
        let text = render(&snapshot());
        let mut described = HashSet::new();
        let mut typed = std::collections::HashMap::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let name = rest.split(' ').next().unwrap();
                assert!(described.insert(name.to_string()), "HELP twice: {name}");
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                let mut it = rest.split(' ');
                let (name, kind) = (it.next().unwrap(), it.next().unwrap());
                assert!(
                    typed.insert(name.to_string(), kind.to_string()).is_none(),
                    "TYPE twice: {name}"
                );
            } else {
                let name = line.split(['{', ' ']).next().unwrap();
                assert!(valid_name(name), "{line}");
                assert!(described.contains(name), "no HELP before {line}");
                let kind = &typed[name];
                assert_eq!(
                    kind == "counter",
                    name.ends_with("_total"),
                    "counters end in _total: {line}"
                );
            }
        }
        assert!(typed.len() > 20, "{text}");
    }

    #[test]
    fn figures_in_their_units() {
        let text = render(&snapshot());
        for want in [
            "xend_build_info{version=\"0.1.0\"} 1\n",
            "xend_domains 1\n",
            "xend_node_memory_bytes 2097152\n",
            "xend_node_free_memory_bytes 1048576\n",
            "xend_node_cpus 4\n",
            "xend_domain_state{domain=\"Domain-0\",domid=\"0\",state=\"running\"} 1\n",
            "xend_domain_state{domain=\"Domain-0\",domid=\"0\",state=\"paused\"} 0\n",
            "domid=\"7\",state=\"paused\"} 1\n",
            "domid=\"7\"} 1048576\n",
            "domid=\"7\"} 2097152\n",
            "xend_domain_unresponsive{domain=\"Domain-0\",domid=\"0\"} 0\n",
            "domid=\"7\",device=\"xvda\"} 3\n",
            "xend_domain_vif_receive_bytes_total{domain=\"we\\\"ird\\\\na\\nme\",domid=\"7\",device=\"vif7.0\"} 100\n",
        ] {
            assert!(text.contains(want), "{want} not in\n{text}");
        }
        assert!(text.contains("xend_domain_vm_exits_total{"), "{text}");
    }

    #[test]
    fn floats_in_prometheus_spelling() {
        assert_eq!(Value::Float(f64::INFINITY).to_string(), "+Inf");
        assert_eq!(Value::Float(f64::NEG_INFINITY).to_string(), "-Inf");
        assert_eq!(Value::Float(f64::NAN).to_string(), "NaN");
        assert_eq!(Value::Float(2.0).to_string(), "2");
        assert_eq!(Value::Float(0.25).to_string(), "0.25");
    }

    #[test]
    fn names() {
        assert!(valid_name("xend_a:b_1"));
        assert!(!valid_name("1abc"));
        assert!(!valid_name("a-b"));
        assert!(!valid_name(""));
    }
}
