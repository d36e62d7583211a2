//! The VMM control protocol: JSON lines over the domain's Unix socket.
//!
//! A client writes one [`Request`] per line and reads one [`Reply`] line per
//! request. Two requests change what the connection carries after their reply:
//! [`Request::Console`] turns it into a raw bidirectional byte stream (guest
//! console output one way, keyboard input the other), and [`Request::Events`]
//! into a stream of [`Event`] lines. Only `xend` (and tests) speak this.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Why a domain shut down (mirrors `guest_abi::ShutdownReason`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// Clean power off.
    Poweroff,
    /// Clean reboot.
    Reboot,
    /// Halt, never restart.
    Halt,
    /// The guest crashed.
    Crash,
}

impl Reason {
    /// The name used on the wire and in xend (`poweroff`, `reboot`, ...).
    pub const fn as_str(self) -> &'static str {
        match self {
            Reason::Poweroff => "poweroff",
            Reason::Reboot => "reboot",
            Reason::Halt => "halt",
            Reason::Crash => "crash",
        }
    }

    /// Parse a reason name.
    pub fn parse(s: &str) -> Option<Reason> {
        match s {
            "poweroff" => Some(Reason::Poweroff),
            "reboot" => Some(Reason::Reboot),
            "halt" => Some(Reason::Halt),
            "crash" => Some(Reason::Crash),
            _ => None,
        }
    }
}

impl From<guest_abi::ShutdownReason> for Reason {
    fn from(r: guest_abi::ShutdownReason) -> Self {
        match r {
            guest_abi::ShutdownReason::Poweroff => Reason::Poweroff,
            guest_abi::ShutdownReason::Reboot => Reason::Reboot,
            guest_abi::ShutdownReason::Halt => Reason::Halt,
            guest_abi::ShutdownReason::Crash => Reason::Crash,
        }
    }
}

impl From<Reason> for guest_abi::ShutdownReason {
    fn from(r: Reason) -> Self {
        match r {
            Reason::Poweroff => guest_abi::ShutdownReason::Poweroff,
            Reason::Reboot => guest_abi::ShutdownReason::Reboot,
            Reason::Halt => guest_abi::ShutdownReason::Halt,
            Reason::Crash => guest_abi::ShutdownReason::Crash,
        }
    }
}

/// The state of a whole domain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    /// At least one vCPU is executing guest code.
    Running,
    /// Every vCPU is blocked in the VMM waiting for an event.
    Blocked,
    /// Paused by the toolstack.
    Paused,
    /// The guest shut down (see `shutdown_reason`); vCPUs are gone.
    Shutdown,
    /// The guest crashed or faulted (see `crash_reason`); kept for inspection.
    Crashed,
}

impl RunState {
    /// True once the guest can no longer run (shutdown or crashed).
    pub const fn is_final(self) -> bool {
        matches!(self, RunState::Shutdown | RunState::Crashed)
    }
}

/// The state of one vCPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VcpuState {
    /// In `KVM_RUN` (or about to enter it).
    Running,
    /// Sleeping in the VMM in a block hypercall.
    Blocked,
    /// Parked by a pause request.
    Paused,
    /// Its thread has ended (domain shut down or crashed).
    Offline,
}

/// One request on the control socket.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Full statistics: reply [`Payload::Info`].
    Info,
    /// Stop every vCPU; they stay stopped until [`Request::Unpause`].
    Pause,
    /// Let paused vCPUs run again.
    Unpause,
    /// Ask the guest to shut down with `reason` (it cooperates; see `Destroy`).
    Shutdown {
        /// What the guest is asked to do.
        reason: Reason,
    },
    /// Kill the domain now; the VMM process exits after replying.
    Destroy,
    /// Set the balloon target (MiB); must not exceed the maximum.
    SetMemTarget {
        /// New target in MiB.
        mib: u64,
    },
    /// Set the maximum memory (MiB); must be at least the current target.
    SetMaxMem {
        /// New maximum in MiB.
        mib: u64,
    },
    /// Restrict vCPU `vcpu` to the host CPUs in `cpus` (empty = all).
    PinVcpu {
        /// vCPU index.
        vcpu: u32,
        /// Host CPU numbers.
        cpus: Vec<usize>,
    },
    /// After the reply the connection becomes the raw console byte stream. If
    /// `history`, the VMM first replays the last 64 KiB of output. A new attach
    /// takes over from the previous one.
    Console {
        /// Replay buffered output first.
        #[serde(default)]
        history: bool,
    },
    /// After the reply the connection carries one [`Event`] line per state change,
    /// starting with the current state.
    Events,
    /// Save the domain to an image at `path` (absolute; written atomically:
    /// temp file, fsync, rename): `{"op":"save","path":"/var/lib/xend/save/d1"}`.
    /// Reply [`Payload::Saved`]; then the domain ends and the VMM exits
    /// (socket and record removed), as after `destroy`. On failure the domain
    /// runs on.
    Save {
        /// Where the image goes.
        path: String,
    },
    /// Migrate the domain to the VMM waiting with `vmm --incoming HOST:PORT
    /// --incoming-token TOKEN`: `{"op":"migrate","host":"127.0.0.1",
    /// "port":8002,"token":"secret","live":true}`. Stop-and-copy unless
    /// `live` (pre-copy with dirty-page logging). Reply [`Payload::Migrated`]
    /// once the destination runs the domain; then this VMM exits as after
    /// `destroy`. On failure the domain runs on here and the error says why.
    Migrate {
        /// Destination host (name or address).
        host: String,
        /// Destination port.
        port: u16,
        /// The destination's `--incoming-token`.
        token: String,
        /// Pre-copy RAM while the guest runs.
        #[serde(default)]
        live: bool,
    },
    /// Hot-attach a device: `{"op":"device_attach","kind":"vbd","config":
    /// "file:/path,xvdb,w"}` or `{"op":"device_attach","kind":"vif","config":
    /// "mac=aa:00:00:12:34:56,bridge=xenbr0"}`. Reply [`Payload::Device`]; the
    /// guest sees `Events::DEVICE_CHANGE` and rescans.
    DeviceAttach {
        /// Which kind of device.
        kind: DeviceClass,
        /// The device's configuration string (as `vmm --disk` / `--vif`).
        #[serde(default)]
        config: String,
    },
    /// The progress of a save or migration under way: reply
    /// [`Payload::Progress`] (`null` when none is). Answered from counters
    /// alone, so asking never slows the transfer.
    Progress,
    /// Hot-detach device `idx` of `kind` (the `id` in `vbds` / `vifs`):
    /// `{"op":"device_detach","kind":"vbd","idx":1}`.
    DeviceDetach {
        /// Which kind of device.
        kind: DeviceClass,
        /// Its index among the domain's devices of that kind.
        idx: u32,
    },
}

/// The kinds of virtual device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceClass {
    /// A virtual block device.
    Vbd,
    /// A virtual network interface.
    Vif,
}

impl DeviceClass {
    /// `vbd` or `vif`.
    pub const fn as_str(self) -> &'static str {
        match self {
            DeviceClass::Vbd => "vbd",
            DeviceClass::Vif => "vif",
        }
    }
}

/// A reply line: exactly one of `ok` / `error`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reply {
    /// The request succeeded.
    Ok(Payload),
    /// The request failed; the message says why.
    Error(String),
}

/// What a successful reply carries.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Payload {
    /// Nothing to report.
    Done,
    /// Reply to [`Request::Info`].
    Info(Box<DomainInfo>),
    /// Reply to [`Request::DeviceAttach`]: the new device.
    Device(DeviceRef),
    /// Reply to [`Request::Save`].
    Saved(SaveInfo),
    /// Reply to [`Request::Migrate`].
    Migrated(MigrateInfo),
    /// Reply to [`Request::Progress`].
    Progress(Option<TransferProgress>),
}

/// Which long operation is under way.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransferOp {
    /// Writing an image.
    Save,
    /// Sending the domain to another VMM.
    Migrate,
    /// Reading an image into a new domain.
    Restore,
}

impl TransferOp {
    /// `save`, `migrate` or `restore`.
    pub const fn as_str(self) -> &'static str {
        match self {
            TransferOp::Save => "save",
            TransferOp::Migrate => "migrate",
            TransferOp::Restore => "restore",
        }
    }
}

/// Where a long operation is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Stopping the vCPUs and capturing their state.
    Pausing,
    /// Connecting to the destination (migration).
    Connecting,
    /// Live migration: copying RAM while the guest runs.
    Precopy,
    /// Writing or sending RAM with the guest stopped.
    Memory,
    /// Live migration: the last dirty pages, the guest stopped.
    StopCopy,
    /// vCPU, console and device state.
    Devices,
    /// Making the image durable (fsync, rename).
    Sync,
    /// Waiting for the destination to run the domain.
    Handover,
    /// Restore: checking the whole image before creating anything.
    Checking,
    /// Restore: reading the image into the new domain.
    Loading,
    /// Finished: everything is done.
    Done,
}

impl Phase {
    /// The name used on the wire and in xend (`memory`, `stop_copy`, ...).
    pub const fn as_str(self) -> &'static str {
        match self {
            Phase::Pausing => "pausing",
            Phase::Connecting => "connecting",
            Phase::Precopy => "precopy",
            Phase::Memory => "memory",
            Phase::StopCopy => "stop_copy",
            Phase::Devices => "devices",
            Phase::Sync => "sync",
            Phase::Handover => "handover",
            Phase::Checking => "checking",
            Phase::Loading => "loading",
            Phase::Done => "done",
        }
    }
}

/// How far a save, migration or restore is ([`crate::progress`] explains
/// what the byte counts are).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct TransferProgress {
    /// The operation.
    pub op: TransferOp,
    /// Where it is.
    pub phase: Phase,
    /// Bytes done.
    pub done_bytes: u64,
    /// Bytes to do, as known now (a live migration's grows each round).
    pub total_bytes: u64,
    /// Live migration: the pre-copy round (0 = the first full pass).
    pub round: u32,
    /// Live migration: dirty pages the current round sends.
    pub dirty_pages: u64,
    /// Since the operation began, seconds.
    pub seconds: f64,
}

/// What a save wrote.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SaveInfo {
    /// The image file.
    pub path: String,
    /// Size of the image, bytes.
    pub image_bytes: u64,
    /// Guest RAM pages written (4 KiB each; zero and untouched pages are not).
    pub ram_pages: u64,
    /// vCPUs saved.
    pub vcpus: u32,
    /// From the request to the image on disk, seconds.
    pub seconds: f64,
    /// Writing the image (after the pause and state capture), seconds.
    pub write_seconds: f64,
}

/// How a migration went.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MigrateInfo {
    /// `host:port` of the destination.
    pub destination: String,
    /// Live (pre-copy) or stop-and-copy.
    pub live: bool,
    /// From the request to the destination's "running", seconds.
    pub total_seconds: f64,
    /// From the pause here to the destination's "running", seconds.
    pub downtime_seconds: f64,
    /// Bytes sent.
    pub bytes: u64,
    /// Pre-copy rounds while the guest ran (0 for stop-and-copy).
    pub rounds: u32,
    /// RAM pages sent in all (with data or as zero).
    pub pages_sent: u64,
    /// RAM pages sent after the pause.
    pub final_pages: u64,
}

/// A device of a domain, as [`Request::DeviceAttach`] reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceRef {
    /// Its kind.
    pub kind: DeviceClass,
    /// Its index among the domain's devices of that kind (for detach).
    pub idx: u32,
    /// Guest device name (`xvdb`) or host interface name (`vif3.1`).
    pub name: String,
}

/// A state change, sent on an [`Request::Events`] connection.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// The new state.
    pub state: RunState,
    /// Set when `state` is `shutdown`.
    pub shutdown_reason: Option<Reason>,
    /// Set when `state` is `crashed`.
    pub crash_reason: Option<String>,
    /// Wall-clock time of the change, seconds since the Unix epoch.
    pub time: f64,
}

/// Statistics of one vCPU.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VcpuInfo {
    /// vCPU index.
    pub id: u32,
    /// Host CPU time consumed by the vCPU thread, nanoseconds.
    pub cpu_time_ns: u64,
    /// Where the vCPU is now.
    pub state: VcpuState,
    /// Host CPUs it may run on.
    pub affinity: Vec<usize>,
    /// Host CPU it last ran on, if known.
    pub cpu: Option<usize>,
    /// VM exits taken by this vCPU.
    pub exits: u64,
}

/// Memory figures, KiB.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MemoryInfo {
    /// RAM the guest was booted with.
    pub configured_kib: u64,
    /// Maximum the domain may grow to.
    pub max_kib: u64,
    /// Balloon target set by the toolstack.
    pub target_kib: u64,
    /// Guest RAM actually backed by host pages (touched by the guest).
    pub touched_kib: u64,
    /// What the guest kernel last reported as in use (0 if never).
    pub guest_used_kib: u64,
}

/// Console byte counters.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ConsoleStats {
    /// Bytes the guest wrote.
    pub bytes_out: u64,
    /// Bytes sent to the guest.
    pub bytes_in: u64,
}

/// When a sample was taken, on two clocks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SampleTime {
    /// `CLOCK_MONOTONIC`, seconds (host-wide; comparable between domains on
    /// one host, never between hosts).
    pub mono: f64,
    /// Wall clock, seconds since the Unix epoch.
    pub wall: f64,
}

impl SampleTime {
    /// The current time on both clocks.
    pub fn now() -> Self {
        let wall = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        Self {
            mono: crate::stats::monotonic_secs(),
            wall,
        }
    }
}

/// The VMM process's own cost.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VmmInfo {
    /// Process id of the VMM.
    pub pid: u32,
    /// Resident set of the whole process, KiB.
    pub rss_kib: u64,
    /// Resident memory beyond touched guest RAM, KiB.
    pub overhead_kib: u64,
}

/// Everything the VMM knows about its domain.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DomainInfo {
    /// Domain id.
    pub domid: u32,
    /// Domain name.
    pub name: String,
    /// Domain state.
    pub state: RunState,
    /// Set when `state` is `shutdown`.
    pub shutdown_reason: Option<Reason>,
    /// Set when `state` is `crashed`.
    pub crash_reason: Option<String>,
    /// Kernel loaded (`minios` for the built-in one, else a path).
    pub kernel: String,
    /// What kind of image that is: `minios`, `elf` (our guest ABI),
    /// `bzImage` or `vmlinux (PVH)` (Linux).
    #[serde(default)]
    pub image: String,
    /// Kernel command line.
    pub cmdline: String,
    /// Wall-clock boot time, seconds since the Unix epoch.
    pub start_time: f64,
    /// Seconds since boot.
    pub up_time: f64,
    /// When the VMM took these figures. Rates divide by the gap between two
    /// samples' `sampled_at.mono`, never by when an answer arrived.
    #[serde(default)]
    pub sampled_at: SampleTime,
    /// Sum of all vCPU times, nanoseconds.
    pub cpu_time_ns: u64,
    /// Per-vCPU figures.
    pub vcpus: Vec<VcpuInfo>,
    /// Memory figures.
    pub memory: MemoryInfo,
    /// Console counters.
    pub console: ConsoleStats,
    /// VM exits by kind (`io`, `hypercall.block`, `mmio`, ...).
    pub exits: BTreeMap<String, u64>,
    /// The VMM process.
    pub vmm: VmmInfo,
    /// Virtual block devices, by `id`.
    #[serde(default)]
    pub vbds: Vec<VbdInfo>,
    /// Virtual network interfaces, by `id`.
    #[serde(default)]
    pub vifs: Vec<VifInfo>,
}

/// One virtual block device and its counters (Xen's VBD_* figures).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct VbdInfo {
    /// Index among the domain's vbds (what `device_detach` takes).
    pub id: u32,
    /// Name in the guest (`xvda`).
    pub dev: String,
    /// Backend as configured (`file:/path`, `phy:/dev/sdb`).
    pub uname: String,
    /// `r`, `w` or `w!`.
    pub mode: String,
    /// Size in sectors.
    pub sectors: u64,
    /// Bytes per sector.
    pub sector_size: u32,
    /// Read requests completed.
    pub rd_req: u64,
    /// Write requests completed.
    pub wr_req: u64,
    /// Sectors read.
    pub rd_sect: u64,
    /// Sectors written.
    pub wr_sect: u64,
    /// Flush requests completed.
    pub flush_req: u64,
    /// Requests refused for lack of space (beyond the end of the device, or
    /// the host ran out of room).
    pub oo_req: u64,
    /// Requests that failed otherwise (bad descriptor, read-only, I/O error).
    pub errors: u64,
}

/// One virtual network interface and its counters, from the guest's side:
/// `tx_*` is what the guest sent, `rx_*` what it received.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct VifInfo {
    /// Index among the domain's vifs (`N` in `vifD.N`).
    pub id: u32,
    /// Host-side TAP interface (`vif3.0`).
    pub ifname: String,
    /// The guest's MAC address.
    pub mac: String,
    /// Bridge the TAP is attached to, if any.
    pub bridge: Option<String>,
    /// MTU.
    pub mtu: u32,
    /// Bytes sent by the guest.
    pub tx_bytes: u64,
    /// Frames sent by the guest.
    pub tx_packets: u64,
    /// Frames the guest sent that were malformed (bad descriptor).
    pub tx_errors: u64,
    /// Frames the guest sent that the host could not take.
    pub tx_drops: u64,
    /// Bytes delivered to the guest.
    pub rx_bytes: u64,
    /// Frames delivered to the guest.
    pub rx_packets: u64,
    /// Frames lost to a bad receive buffer the guest posted.
    pub rx_errors: u64,
    /// Frames dropped because the guest had no receive buffer posted (or was
    /// paused).
    pub rx_drops: u64,
}
