//! The data xend serves and its clients (xtop, xm, scripts) read.
//!
//! These are the JSON shapes of the API (`Accept: application/json`); the SXP
//! forms carry the same fields under the same names, in the same order
//! (reference section 2 for domains, section 3 for the node). Names follow the
//! SXP spelling (`cpu_time`, `maxmem`, `console_port`, ...).
use serde::{Deserialize, Serialize};

/// The line a console port writes, before closing, to a client that sent no
/// valid token line (consoles are raw bytes: this is their one message).
pub const CONSOLE_REFUSAL: &str = "Authentication failed\r\n";

/// The host (`GET /xend/node`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// Kernel name (`Linux`).
    pub system: String,
    /// Host name.
    pub host: String,
    /// Kernel release.
    pub release: String,
    /// Kernel version string.
    pub version: String,
    /// Machine (`x86_64`).
    pub machine: String,
    /// Physical cores.
    pub cores: u32,
    /// Hardware threads per core.
    pub hyperthreads_per_core: u32,
    /// CPU clock, MHz.
    pub cpu_mhz: u32,
    /// Host RAM, MiB.
    pub memory: u64,
    /// Free host RAM, MiB.
    pub free_memory: u64,
    /// Logical CPUs.
    pub nr_cpus: u32,
    /// Hypervisor major version.
    pub xen_major: u32,
    /// Hypervisor minor version.
    pub xen_minor: u32,
    /// Hypervisor extra version (e.g. `.0-kvm`).
    pub xen_extra: String,
    /// Capabilities (e.g. `hvm-3.0-x86_64-kvm`).
    pub xen_caps: String,
}

/// One vCPU of a domain.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct VcpuStats {
    /// vCPU index.
    pub id: u32,
    /// CPU seconds consumed.
    pub cpu_time: f64,
    /// `running`, `blocked`, `paused` or `offline`.
    pub state: String,
    /// Host CPUs it may run on (empty = all).
    pub affinity: Vec<usize>,
    /// Host CPU it last ran on.
    pub cpu: Option<usize>,
}

/// One virtual network interface (counters since boot).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NetStats {
    /// Interface index within the domain.
    pub idx: u32,
    /// Host-side name, e.g. `vif5.0`.
    pub vifname: String,
    /// MAC address.
    pub mac: String,
    /// Bridge it is attached to.
    pub bridge: String,
    /// Bytes sent by the guest.
    pub tx_bytes: u64,
    /// Packets sent by the guest.
    pub tx_packets: u64,
    /// Transmit errors.
    pub tx_errors: u64,
    /// Transmit drops.
    pub tx_drops: u64,
    /// Bytes received by the guest.
    pub rx_bytes: u64,
    /// Packets received by the guest.
    pub rx_packets: u64,
    /// Receive errors.
    pub rx_errors: u64,
    /// Receive drops.
    pub rx_drops: u64,
}

/// One virtual block device (counters since boot).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct VbdStats {
    /// Index within the domain.
    pub idx: u32,
    /// Guest device name, e.g. `xvda`.
    pub dev: String,
    /// Backing, e.g. `file:/srv/d.img`.
    pub uname: String,
    /// `r`, `w` or `w!`.
    pub mode: String,
    /// Out-of-space / out-of-request events.
    pub oo_req: u64,
    /// Read requests.
    pub rd_req: u64,
    /// Write requests.
    pub wr_req: u64,
    /// Sectors read.
    pub rd_sect: u64,
    /// Sectors written.
    pub wr_sect: u64,
}

/// A domain's credit-scheduler settings (`op=sched_credit`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchedCredit {
    /// Relative weight, 1..65535 (Xen's default 256).
    pub weight: u32,
    /// Percent of one CPU; 0 is no cap (above 100 for several vCPUs).
    pub cap: u32,
}

/// Everything about one domain: `GET /xend/domain/DOM` and each row of the bulk
/// endpoint. Domain-0 (the host) has id 0, no console and no config.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DomainStats {
    /// Domain id.
    pub id: u32,
    /// Domain name.
    pub name: String,
    /// Domain UUID, canonical lowercase form (`None` for Domain-0, and for a
    /// domain re-adopted without a config).
    #[serde(default)]
    pub uuid: Option<String>,
    /// Memory target, MiB.
    pub memory: u64,
    /// Maximum memory, MiB.
    pub maxmem: u64,
    /// Six letters `rbpscd`, `-` where unset (e.g. `-b----`).
    pub state: String,
    /// Set when shut down: `poweroff`, `reboot`, `halt`, `crash`.
    pub shutdown_reason: Option<String>,
    /// Why the domain crashed, when it did.
    pub crash_reason: Option<String>,
    /// Host CPU the domain is pinned to (`cpu` config), if any.
    pub cpu: Option<i64>,
    /// Credit-scheduler weight (`None` for Domain-0).
    #[serde(default)]
    pub cpu_weight: Option<u32>,
    /// Credit-scheduler cap, percent of one CPU, 0 = none (`None` for
    /// Domain-0).
    #[serde(default)]
    pub cpu_cap: Option<u32>,
    /// CPU seconds consumed (all vCPUs).
    pub cpu_time: f64,
    /// Seconds since the domain (re)started.
    pub up_time: f64,
    /// Start time, seconds since the Unix epoch.
    pub start_time: f64,
    /// Number of vCPUs.
    pub vcpus: u32,
    /// Per-vCPU figures.
    pub vcpu_info: Vec<VcpuStats>,
    /// The kernel the domain boots: `minios` for the built-in guest, else
    /// the image's path (empty for Domain-0).
    #[serde(default)]
    pub kernel: String,
    /// What kind of image its VMM loaded: `minios`, `elf` (our guest ABI),
    /// `bzImage` or `vmlinux (PVH)`; empty until the VMM answers.
    #[serde(default)]
    pub image: String,
    /// Memory currently backing the guest, KiB (what xentop's MEM(k) shows).
    pub mem_kib: u64,
    /// Maximum memory, KiB (xentop's MAXMEM(k)).
    pub maxmem_kib: u64,
    /// Console TCP port, if the domain has a console.
    pub console_port: Option<u16>,
    /// Restart mode: `onreboot`, `always` or `never`.
    pub restart: String,
    /// Bytes the guest wrote to its console.
    pub console_bytes_out: u64,
    /// Bytes sent to the guest console.
    pub console_bytes_in: u64,
    /// VM exits since boot.
    pub exits: u64,
    /// VM exits since boot by kind (`io`, `hypercall.block`, `mmio`, ...).
    #[serde(default)]
    pub exits_by_kind: std::collections::BTreeMap<String, u64>,
    /// Times xend restarted the domain (its restart policy) since xend started.
    #[serde(default)]
    pub restarts: u64,
    /// VMM process memory beyond guest RAM, KiB.
    pub vmm_overhead_kib: u64,
    /// Network interfaces.
    pub nets: Vec<NetStats>,
    /// Block devices.
    pub vbds: Vec<VbdStats>,
    /// When the VMM took the figures above (its monotonic and wall clocks).
    /// Rates are computed between two samples' `mono`; `None` for Domain-0
    /// and for a domain whose VMM has not answered yet.
    #[serde(default)]
    pub sampled_at: Option<SampleTime>,
    /// Wall-clock time (seconds since the Unix epoch) the domain's VMM last
    /// answered xend; the figures above are from then.
    pub last_answer: Option<f64>,
    /// Set while the VMM is unresponsive: when it first missed a deadline
    /// (`vmm-timeout`). The figures are stale; the state letters are the last
    /// known ones.
    pub unresponsive_since: Option<f64>,
    /// The save, restore or migration under way, while it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<OpProgress>,
}

/// How far a save, restore or migration of a domain is: in a domain's
/// record while it runs, and in `xend.domain.progress` events.
///
/// A save or migration counts guest RAM bytes looked at (whether they went
/// out as data or as zeros); a restore counts image bytes read (the image is
/// read twice, checked then loaded, so its total is twice the file). A live
/// migration's total grows by each round's dirty pages as the round starts.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct OpProgress {
    /// `save`, `restore` or `migrate`.
    pub op: String,
    /// Where it is: `pausing`, `connecting`, `precopy`, `memory`,
    /// `stop_copy`, `devices`, `sync`, `handover`, `checking`, `loading`,
    /// then `done`.
    pub phase: String,
    /// Bytes done.
    pub done_bytes: u64,
    /// Bytes to do, as known now.
    pub total_bytes: u64,
    /// Live migration: the pre-copy round (0 = the first full pass; the
    /// stop-and-copy round comes last).
    #[serde(default)]
    pub round: u32,
    /// Live migration: the dirty pages (4 KiB) the current round sends.
    #[serde(default)]
    pub dirty_pages: u64,
    /// Since the operation began, seconds.
    pub seconds: f64,
}

impl OpProgress {
    /// Percent done, 0 to 100 (100 once `phase` is `done`).
    pub fn percent(&self) -> f64 {
        if self.phase == "done" {
            return 100.0;
        }
        if self.total_bytes == 0 {
            return 0.0;
        }
        (self.done_bytes as f64 * 100.0 / self.total_bytes as f64).min(100.0)
    }

    /// One line for people: `save memory 37% (94.5 of 256.0 MiB)`, with
    /// `round 2, 1234 dirty pages` for a live migration.
    pub fn summary(&self) -> String {
        let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
        let mut s = format!(
            "{} {} {:.0}% ({:.1} of {:.1} MiB)",
            self.op,
            self.phase,
            self.percent(),
            mib(self.done_bytes),
            mib(self.total_bytes)
        );
        if self.round > 0 || self.phase == "precopy" {
            s.push_str(&format!(
                ", round {}, {} dirty pages",
                self.round, self.dirty_pages
            ));
        }
        s
    }
}

impl DomainStats {
    /// What clients show for an unresponsive VMM, as of wall-clock `now`:
    /// `VMM unresponsive for 12 s (since 08:01:02 UTC, last answer 08:01:00 UTC)`;
    /// `None` while it answers.
    pub fn unresponsive_note(&self, now: f64) -> Option<String> {
        let since = self.unresponsive_since?;
        let last = self
            .last_answer
            .map(|t| format!(", last answer {}", utc_clock(t)))
            .unwrap_or_default();
        Some(format!(
            "VMM unresponsive for {:.0} s (since {}{last})",
            (now - since).max(0.0),
            utc_clock(since)
        ))
    }
}

/// `HH:MM:SS UTC` of a time in seconds since the Unix epoch.
pub fn utc_clock(t: f64) -> String {
    let s = t.max(0.0) as u64 % 86_400;
    format!("{:02}:{:02}:{:02} UTC", s / 3600, s / 60 % 60, s % 60)
}

/// When a VMM took a sample, on two clocks (the VMM's own stamp, carried
/// through unchanged; defined here so client builds need no `hypervisor`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SampleTime {
    /// Host `CLOCK_MONOTONIC`, seconds (comparable between domains on one
    /// host, never between hosts).
    pub mono: f64,
    /// Wall clock, seconds since the Unix epoch.
    pub wall: f64,
}

/// The bulk endpoint (`GET /xend/domain?op=stats`): the host and every domain in
/// one response, which is what xtop polls once per refresh.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Wall-clock time the snapshot was taken, seconds since the Unix epoch.
    pub time: f64,
    /// xend's version.
    pub xend_version: String,
    /// The host.
    pub node: NodeInfo,
    /// Every domain, Domain-0 first, then by id.
    pub domains: Vec<DomainStats>,
}

/// An event (`GET /xend/event?op=stream` lines; the event port speaks SXP).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct XendEvent {
    /// Event name, e.g. `xend.domain.create`, `xend.domain.pause`.
    pub event: String,
    /// Domain id, when the event is about a domain.
    pub domid: Option<u32>,
    /// Domain name, when the event is about a domain.
    pub name: Option<String>,
    /// Extra detail (e.g. the shutdown reason).
    pub detail: Option<String>,
    /// Seconds since the Unix epoch.
    pub time: f64,
    /// `xend.domain.progress`: how far the operation is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<OpProgress>,
}

/// One console (`GET /xend/console/PORT`; also inside a domain's sxpr).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ConsoleInfo {
    /// `new`, `listening`, `connected` or `closed`.
    pub status: String,
    /// Console id (the domain id here).
    pub id: u32,
    /// Domain id.
    pub domain: u32,
    /// Local channel port (the domain id here).
    pub local_port: u32,
    /// Remote channel port.
    pub remote_port: u32,
    /// The TCP port clients connect to.
    pub console_port: u16,
    /// `HOST:PORT` of the connected client, if any.
    pub connected: Option<String>,
}

/// What `op=configure` did (`POST /xend/domain/DOM op=configure config=...`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigureReply {
    /// Fields applied to the running domain now.
    pub live: Vec<String>,
    /// Fields stored for the next boot.
    pub next_boot: Vec<String>,
}

/// What `op=save` did (`POST /xend/domain/DOM op=save file=NAME`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SaveReply {
    /// The domain saved (it has ended).
    pub name: String,
    /// The image written (absolute, inside `save-dir`).
    pub file: String,
    /// Size of the image, bytes.
    pub image_bytes: u64,
    /// From the request to the image on disk, seconds.
    pub seconds: f64,
}

/// What `op=migrate` did (`POST /xend/domain/DOM op=migrate destination=HOST[:PORT]`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MigrateReply {
    /// The domain migrated (it has left this xend).
    pub name: String,
    /// `HOST:PORT` of the destination xend.
    pub destination: String,
    /// The domain's id on the destination.
    pub domid: u32,
    /// Live (pre-copy) or stop-and-copy.
    pub live: bool,
    /// From the request to the destination running the domain, seconds.
    pub total_seconds: f64,
    /// How long the guest did not run, seconds.
    pub downtime_seconds: f64,
    /// Bytes sent between the VMMs.
    pub bytes: u64,
    /// Pre-copy rounds while the guest ran (0 for stop-and-copy).
    pub rounds: u32,
}

/// What a destination xend answers to `op=migrate_receive`: where its
/// waiting VMM listens and the one-time token it expects.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MigrateReceive {
    /// The id the domain gets on the destination.
    pub domid: u32,
    /// The domain's name.
    pub name: String,
    /// TCP port the waiting VMM listens on.
    pub port: u16,
    /// The token the source VMM must present.
    pub token: String,
}

/// A domain's restart bookkeeping, as Xen 2.0's record showed it.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct RestartInfo {
    /// `booting` while a restart is under way (2.0 also had `pending`, for a
    /// restart waiting on a dead domain; ours restart at once).
    pub state: Option<&'static str>,
    /// When the domain last restarted (seconds since the epoch).
    pub time: Option<f64>,
}

/// Everything a domain's full SXP record holds (`GET /xend/domain/DOM`,
/// `?detail=1`, the DB): its stats plus what only that record shows.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DomainRecord {
    /// The figures and identity.
    pub stats: DomainStats,
    /// Its console (none for Domain-0).
    pub console: Option<ConsoleInfo>,
    /// Restart bookkeeping.
    pub restart: RestartInfo,
    /// The stored config, in its SXP form.
    pub config: Option<sxp::Value>,
}
