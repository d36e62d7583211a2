//! `GET /metrics` with the `prometheus-client` crate: xend's own counters
//! (HTTP requests by route and status, request durations, VMM calls and their
//! failures), kept in process-wide families, plus the bulk snapshot
//! ([`Snapshot`], what `GET /xend/domain?op=stats` serves) turned into metric
//! families by a [`Collector`] at each scrape. OpenMetrics text when the
//! scraper asks for it (`Accept: application/openmetrics-text`, as Prometheus
//! does), else Prometheus' text format 0.0.4.
//!
//! **Invariant: a scrape reads the cache `op=stats` reads and never waits on
//! a VMM;** every label value of xend's own families comes from a bounded set
//! (a route pattern, a known method, a status, a control request's name), so
//! no client can grow them.
use std::sync::LazyLock;
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

use crate::api::{DomainStats, Snapshot};

/// The `Content-Type` of Prometheus' text format 0.0.4.
pub const CONTENT_TYPE_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";
/// The `Content-Type` of the OpenMetrics text format.
pub const CONTENT_TYPE_OPENMETRICS: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Which text format a scrape gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Prometheus' text format 0.0.4 (the default).
    Text,
    /// OpenMetrics 1.0 text (ends with `# EOF`).
    OpenMetrics,
}

impl Format {
    /// The format an `Accept` header asks for.
    pub fn from_accept(accept: Option<&str>) -> Format {
        match accept {
            Some(a) if a.contains("application/openmetrics-text") => Format::OpenMetrics,
            _ => Format::Text,
        }
    }

    /// Its `Content-Type`.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Text => CONTENT_TYPE_TEXT,
            Format::OpenMetrics => CONTENT_TYPE_OPENMETRICS,
        }
    }
}

type Labels3 = [(&'static str, String); 3];
type Labels1 = [(&'static str, String); 1];
type Labels2 = [(&'static str, String); 2];
type HistogramFamily = Family<Labels1, Histogram, fn() -> Histogram>;

/// xend's own figures, for the life of the process.
#[derive(Debug)]
struct Own {
    requests: Family<Labels3, Counter>,
    durations: HistogramFamily,
    vmm_calls: Family<Labels1, Counter>,
    vmm_failures: Family<Labels2, Counter>,
}

fn request_histogram() -> Histogram {
    // 100 us to about 1.6 s.
    Histogram::new(exponential_buckets(0.0001, 2.0, 15))
}

static OWN: LazyLock<Own> = LazyLock::new(|| Own {
    requests: Family::default(),
    durations: Family::new_with_constructor(request_histogram as fn() -> Histogram),
    vmm_calls: Family::default(),
    vmm_failures: Family::default(),
});

/// A request method as a label: the standard ones, else `other` (a client
/// may send any token as a method).
fn method_label(m: &str) -> &'static str {
    const KNOWN: [&str; 9] = [
        "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "CONNECT", "TRACE",
    ];
    KNOWN.into_iter().find(|k| *k == m).unwrap_or("other")
}

/// Count one answered HTTP request. `route` is the route's pattern
/// (`/xend/domain/{dom}`), or `None` for a path no route matched.
pub fn observe_request(route: Option<&str>, method: &str, status: u16, took: Duration) {
    let route = route.unwrap_or("unmatched").to_string();
    OWN.requests
        .get_or_create(&[
            ("route", route.clone()),
            ("method", method_label(method).to_string()),
            ("status", status.to_string()),
        ])
        .inc();
    OWN.durations
        .get_or_create(&[("route", route)])
        .observe(took.as_secs_f64());
}

/// Count one call to a VMM's control socket (`call` is the request's name:
/// `info`, `pause`, `save`, ..., or `connect`) and, if it failed, why
/// (`timeout`, `closed`, `io`, `bad_reply`, `refused`).
pub fn observe_vmm_call(call: &'static str, failure: Option<&'static str>) {
    OWN.vmm_calls
        .get_or_create(&[("call", call.to_string())])
        .inc();
    if let Some(reason) = failure {
        OWN.vmm_failures
            .get_or_create(&[("call", call.to_string()), ("reason", reason.to_string())])
            .inc();
    }
}

/// The six state letters of a domain (`rbpscd`), as label values.
pub const STATES: [&str; 6] = [
    "running", "blocked", "paused", "shutdown", "crashed", "dying",
];

/// The whole exposition: xend's own families and `snap`'s.
pub fn render(snap: Snapshot, format: Format) -> String {
    let mut reg = Registry::default();
    reg.register(
        "xend_http_requests",
        "HTTP requests xend answered, by route pattern, method and status",
        OWN.requests.clone(),
    );
    reg.register_with_unit(
        "xend_http_request_duration",
        "Time from a request's arrival to its response's head, by route pattern",
        Unit::Seconds,
        OWN.durations.clone(),
    );
    reg.register(
        "xend_vmm_calls",
        "Requests xend sent to VMM control sockets, by request",
        OWN.vmm_calls.clone(),
    );
    reg.register(
        "xend_vmm_call_failures",
        "VMM requests that failed, by request and reason (timeout, closed, io, bad_reply, refused)",
        OWN.vmm_failures.clone(),
    );
    reg.register_collector(Box::new(SnapshotCollector(snap)));
    let mut out = String::new();
    let done = match format {
        Format::Text => prometheus_client::encoding::prometheus_text::encode(&mut out, &reg),
        Format::OpenMetrics => prometheus_client::encoding::text::encode(&mut out, &reg),
    };
    // Writing into a String does not fail; a collector error would be ours.
    if let Err(e) = done {
        tracing::error!("metrics encoding failed: {e}");
    }
    out
}

/// The bulk snapshot as metric families.
#[derive(Debug)]
struct SnapshotCollector(Snapshot);

/// A domain's identity labels.
fn ident(d: &DomainStats) -> Vec<(&'static str, String)> {
    vec![
        ("domain", d.name.clone()),
        ("domid", d.id.to_string()),
        ("uuid", d.uuid.clone().unwrap_or_default()),
    ]
}

fn with(
    mut labels: Vec<(&'static str, String)>,
    k: &'static str,
    v: String,
) -> Vec<(&'static str, String)> {
    labels.push((k, v));
    labels
}

/// One family of samples, written at once.
struct Fam {
    name: &'static str,
    help: &'static str,
    unit: Option<Unit>,
    samples: Vec<(Vec<(&'static str, String)>, Val)>,
}

#[derive(Clone, Copy)]
enum Val {
    Counter(f64),
    CounterInt(u64),
    Gauge(i64),
}

impl Fam {
    fn new(name: &'static str, help: &'static str, unit: Option<Unit>) -> Self {
        Fam {
            name,
            help,
            unit,
            samples: Vec::new(),
        }
    }

    fn push(&mut self, labels: Vec<(&'static str, String)>, v: Val) {
        self.samples.push((labels, v));
    }

    fn encode(self, enc: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some((_, first)) = self.samples.first() else {
            return Ok(());
        };
        let kind = match first {
            Val::Counter(_) | Val::CounterInt(_) => ConstCounter::new(0u64).metric_type(),
            Val::Gauge(_) => ConstGauge::new(0i64).metric_type(),
        };
        let mut m = enc.encode_descriptor(self.name, self.help, self.unit.as_ref(), kind)?;
        for (labels, v) in &self.samples {
            let fam = m.encode_family(labels)?;
            match *v {
                Val::Counter(x) => ConstCounter::new(x).encode(fam)?,
                Val::CounterInt(n) => ConstCounter::new(n).encode(fam)?,
                Val::Gauge(n) => ConstGauge::new(n).encode(fam)?,
            }
        }
        Ok(())
    }
}

fn int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Collector for SnapshotCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let snap = &self.0;
        let mut build = Fam::new(
            "xend_build_info",
            "xend's version, as a label; the value is always 1",
            None,
        );
        build.push(vec![("version", snap.xend_version.clone())], Val::Gauge(1));
        build.encode(&mut enc)?;
        let guests = snap.domains.iter().filter(|d| d.id != 0).count() as u64;
        let node: [(&'static str, &'static str, Option<Unit>, u64); 4] = [
            (
                "xend_domains",
                "Domains xend runs (Domain-0, the host, not counted)",
                None,
                guests,
            ),
            (
                "xend_node_memory",
                "Host RAM",
                Some(Unit::Bytes),
                snap.node.memory.saturating_mul(1 << 20),
            ),
            (
                "xend_node_free_memory",
                "Free host RAM",
                Some(Unit::Bytes),
                snap.node.free_memory.saturating_mul(1 << 20),
            ),
            (
                "xend_node_cpus",
                "Logical CPUs of the host",
                None,
                snap.node.nr_cpus.into(),
            ),
        ];
        for (name, help, unit, v) in node {
            let mut f = Fam::new(name, help, unit);
            f.push(Vec::new(), Val::Gauge(int(v)));
            f.encode(&mut enc)?;
        }

        type PerDomain = (
            &'static str,
            &'static str,
            Option<Unit>,
            fn(&DomainStats) -> Val,
        );
        let per_domain: [PerDomain; 9] = [
            (
                "xend_domain_cpu",
                "CPU time the domain consumed, all vCPUs",
                Some(Unit::Seconds),
                |d| Val::Counter(d.cpu_time),
            ),
            (
                "xend_domain_memory",
                "Memory backing the guest (its current target)",
                Some(Unit::Bytes),
                |d| Val::Gauge(int(d.mem_kib.saturating_mul(1024))),
            ),
            (
                "xend_domain_memory_max",
                "The domain's maximum memory",
                Some(Unit::Bytes),
                |d| Val::Gauge(int(d.maxmem_kib.saturating_mul(1024))),
            ),
            ("xend_domain_vcpus", "vCPUs of the domain", None, |d| {
                Val::Gauge(d.vcpus.into())
            }),
            (
                "xend_domain_vm_exits",
                "VM exits since the domain booted, all kinds",
                None,
                |d| Val::CounterInt(d.exits),
            ),
            (
                "xend_domain_console_input",
                "Bytes sent to the guest's console",
                Some(Unit::Bytes),
                |d| Val::CounterInt(d.console_bytes_in),
            ),
            (
                "xend_domain_console_output",
                "Bytes the guest wrote to its console",
                Some(Unit::Bytes),
                |d| Val::CounterInt(d.console_bytes_out),
            ),
            (
                "xend_domain_restarts",
                "Times xend restarted the domain by its restart policy since xend started",
                None,
                |d| Val::CounterInt(d.restarts),
            ),
            (
                "xend_domain_unresponsive",
                "1 while the domain's VMM misses its deadlines (vmm-timeout); its figures are then stale",
                None,
                |d| Val::Gauge(d.unresponsive_since.is_some().into()),
            ),
        ];
        for (name, help, unit, value) in per_domain {
            let mut f = Fam::new(name, help, unit);
            for d in &snap.domains {
                f.push(ident(d), value(d));
            }
            f.encode(&mut enc)?;
        }

        let mut vcpu = Fam::new(
            "xend_domain_vcpu_cpu",
            "CPU time one vCPU consumed",
            Some(Unit::Seconds),
        );
        let mut state = Fam::new(
            "xend_domain_state",
            "1 for each state letter (rbpscd) the domain shows, 0 for the others",
            None,
        );
        let mut exits = Fam::new(
            "xend_domain_vm_exits_by_kind",
            "VM exits since the domain booted, by kind (io, hypercall.block, mmio, ...)",
            None,
        );
        for d in &snap.domains {
            for v in &d.vcpu_info {
                vcpu.push(
                    with(ident(d), "vcpu", v.id.to_string()),
                    Val::Counter(v.cpu_time),
                );
            }
            let letters = d.state.as_bytes();
            for (i, s) in STATES.iter().enumerate() {
                let on = letters.get(i).is_some_and(|&c| c != b'-');
                state.push(
                    with(ident(d), "state", s.to_string()),
                    Val::Gauge(on.into()),
                );
            }
            for (kind, n) in &d.exits_by_kind {
                exits.push(with(ident(d), "kind", kind.clone()), Val::CounterInt(*n));
            }
        }
        vcpu.encode(&mut enc)?;
        state.encode(&mut enc)?;
        exits.encode(&mut enc)?;

        type VbdField = fn(&crate::api::VbdStats) -> u64;
        let vbd: [(&'static str, &'static str, VbdField); 4] = [
            (
                "xend_domain_vbd_read_requests",
                "Read requests of a virtual block device",
                |v| v.rd_req,
            ),
            (
                "xend_domain_vbd_write_requests",
                "Write requests of a virtual block device",
                |v| v.wr_req,
            ),
            (
                "xend_domain_vbd_read_sectors",
                "512-byte sectors read from a virtual block device",
                |v| v.rd_sect,
            ),
            (
                "xend_domain_vbd_write_sectors",
                "512-byte sectors written to a virtual block device",
                |v| v.wr_sect,
            ),
        ];
        for (name, help, field) in vbd {
            let mut f = Fam::new(name, help, None);
            for d in &snap.domains {
                for v in &d.vbds {
                    f.push(
                        with(ident(d), "device", v.dev.clone()),
                        Val::CounterInt(field(v)),
                    );
                }
            }
            f.encode(&mut enc)?;
        }

        type VifField = fn(&crate::api::NetStats) -> u64;
        let vif: [(&'static str, &'static str, Option<Unit>, VifField); 8] = [
            (
                "xend_domain_vif_receive",
                "Bytes a virtual network interface received (towards the guest)",
                Some(Unit::Bytes),
                |n| n.rx_bytes,
            ),
            (
                "xend_domain_vif_receive_packets",
                "Packets a virtual network interface received (towards the guest)",
                None,
                |n| n.rx_packets,
            ),
            (
                "xend_domain_vif_transmit",
                "Bytes a virtual network interface sent (from the guest)",
                Some(Unit::Bytes),
                |n| n.tx_bytes,
            ),
            (
                "xend_domain_vif_transmit_packets",
                "Packets a virtual network interface sent (from the guest)",
                None,
                |n| n.tx_packets,
            ),
            (
                "xend_domain_vif_receive_errors",
                "Receive errors of a virtual network interface",
                None,
                |n| n.rx_errors,
            ),
            (
                "xend_domain_vif_transmit_errors",
                "Transmit errors of a virtual network interface",
                None,
                |n| n.tx_errors,
            ),
            (
                "xend_domain_vif_receive_drops",
                "Received packets a virtual network interface dropped",
                None,
                |n| n.rx_drops,
            ),
            (
                "xend_domain_vif_transmit_drops",
                "Packets to send a virtual network interface dropped",
                None,
                |n| n.tx_drops,
            ),
        ];
        for (name, help, unit, field) in vif {
            let mut f = Fam::new(name, help, unit);
            for d in &snap.domains {
                for n in &d.nets {
                    let dev = if n.vifname.is_empty() {
                        format!("vif{}.{}", d.id, n.idx)
                    } else {
                        n.vifname.clone()
                    };
                    f.push(with(ident(d), "device", dev), Val::CounterInt(field(n)));
                }
            }
            f.encode(&mut enc)?;
        }
        Ok(())
    }
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
                    uuid: Some("6f1c3a5e-0000-4000-8000-000000000007".into()),
                    state: "--p---".into(),
                    cpu_time: 1.5,
                    mem_kib: 1024,
                    maxmem_kib: 2048,
                    vcpus: 2,
                    exits: 9,
                    exits_by_kind: [("io".to_string(), 4), ("mmio".to_string(), 5)].into(),
                    restarts: 3,
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
    fn label_values_are_escaped() {
        let text = render(snapshot(), Format::Text);
        assert!(
            text.contains(
                "xend_domain_cpu_seconds_total{domain=\"we\\\"ird\\\\na\\nme\",domid=\"7\",uuid=\"6f1c3a5e-0000-4000-8000-000000000007\"} 1.5\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn figures_in_their_units() {
        let text = render(snapshot(), Format::Text);
        for want in [
            "xend_build_info{version=\"0.1.0\"} 1\n",
            "xend_domains 1\n",
            "xend_node_memory_bytes 2097152\n",
            "xend_node_free_memory_bytes 1048576\n",
            "xend_node_cpus 4\n",
            "xend_domain_state{domain=\"Domain-0\",domid=\"0\",uuid=\"\",state=\"running\"} 1\n",
            "xend_domain_state{domain=\"Domain-0\",domid=\"0\",uuid=\"\",state=\"paused\"} 0\n",
            "state=\"paused\"} 1\n",
            "xend_domain_memory_bytes{domain=\"Domain-0\"",
            "uuid=\"6f1c3a5e-0000-4000-8000-000000000007\"} 1048576\n",
            "uuid=\"6f1c3a5e-0000-4000-8000-000000000007\"} 2097152\n",
            "xend_domain_unresponsive{domain=\"Domain-0\",domid=\"0\",uuid=\"\"} 0\n",
            "device=\"xvda\"} 3\n",
            "kind=\"mmio\"} 5\n",
            "xend_domain_restarts_total{domain=\"we",
            "000000000007\",device=\"vif7.0\"} 100\n",
        ] {
            assert!(text.contains(want), "{want} not in\n{text}");
        }
        assert!(text.contains("xend_domain_vm_exits_total{"), "{text}");
        assert!(
            text.contains("xend_domain_vif_receive_bytes_total{"),
            "{text}"
        );
    }

    #[test]
    fn openmetrics_when_asked_and_ends_with_eof() {
        assert_eq!(Format::from_accept(None), Format::Text);
        assert_eq!(Format::from_accept(Some("text/plain")), Format::Text);
        let prom = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5";
        assert_eq!(Format::from_accept(Some(prom)), Format::OpenMetrics);
        let text = render(snapshot(), Format::OpenMetrics);
        assert!(text.ends_with("# EOF\n"), "{text}");
        assert!(
            text.contains("# TYPE xend_domain_cpu_seconds counter\n"),
            "{text}"
        );
        assert!(
            text.contains("# UNIT xend_domain_cpu_seconds seconds\n"),
            "{text}"
        );
    }

    #[test]
    fn own_families_have_bounded_labels() {
        observe_request(
            Some("/xend/domain/{dom}"),
            "GET",
            200,
            Duration::from_millis(2),
        );
        observe_request(None, "FROB", 404, Duration::from_millis(1));
        observe_vmm_call("pause", Some("timeout"));
        let text = render(snapshot(), Format::Text);
        for want in [
            "xend_http_requests_total{route=\"/xend/domain/{dom}\",method=\"GET\",status=\"200\"}",
            "xend_http_requests_total{route=\"unmatched\",method=\"other\",status=\"404\"}",
            "xend_http_request_duration_seconds_bucket{route=\"/xend/domain/{dom}\",le=\"",
            "xend_vmm_calls_total{call=\"pause\"}",
            "xend_vmm_call_failures_total{call=\"pause\",reason=\"timeout\"}",
        ] {
            assert!(text.contains(want), "{want} not in\n{text}");
        }
    }
}
