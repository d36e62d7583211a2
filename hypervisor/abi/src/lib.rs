//! The paravirtual guest ABI (Xen-style, exit-frugal).
//!
//! Shared by the VMM (`hypervisor`) and every guest (`minios`). `no_std`, no
//! allocation, plain `#[repr(C)]` layouts so both sides agree byte for byte.
//!
//! # The contract in brief
//!
//! * Guest-physical memory is identity mapped by the VMM's boot page tables
//!   (2 MiB pages over all of RAM). The fixed pages below 1 MiB are listed in
//!   [`layout`]. The kernel image is an ELF64 whose `PT_LOAD` segments sit at or
//!   above [`layout::KERNEL_BASE`].
//! * Every vCPU starts in 64-bit long mode at the ELF entry with
//!   `rdi` = [`layout::START_INFO`] and `rsi` = the vCPU index, `rsp` = the top of
//!   that vCPU's boot stack ([`layout::boot_stack_top`]), interrupts disabled.
//! * Hypercalls: `outl` of a 32-bit value to port `HYPERCALL_PORT_BASE + nr`
//!   ([`Hypercall`]). For hypercalls with arguments the value is the
//!   guest-physical address of the argument struct; the VMM checks it is inside
//!   guest RAM before touching it. One hypercall costs one VM exit (12-30 us on
//!   the emulating KVM these machines have), so the design avoids them:
//! * Console: [`ConsoleRings`] (Xen's `xencons_interface` shape). The guest
//!   writes output into `out` and advances `out_prod`; the VMM drains it on every
//!   hypercall exit, on [`Hypercall::ConsoleNotify`], and by polling while any
//!   vCPU is running. So the guest notifies only when the ring is filling up
//!   ([`CONSOLE_NOTIFY_THRESHOLD`]) or before it blocks (blocking drains anyway).
//!   Input arrives in `in`; the VMM sets [`Events::CONSOLE_INPUT`] and wakes the
//!   blocked vCPUs.
//! * Events to the guest are bits in [`StartInfo::events`]; the guest clears a
//!   bit (atomic AND) once it has handled it. A vCPU with nothing to do calls
//!   [`Hypercall::Block`] and sleeps in the VMM, costing no CPU and no exits,
//!   until an event bit is set, another vCPU kicks it, or the deadline passes.
//! * Time: `rdtsc` does not exit; [`StartInfo::tsc_khz`] converts ticks.
//! * Devices (v2): the [`DevicePage`] at [`layout::DEVICES`] lists vbds and
//!   vifs, each with ring pages at [`layout::device_ring`]. A vbd's
//!   [`BlkRing`] takes many requests per [`Hypercall::DeviceNotify`]; a vif
//!   has a TX and an RX [`NetRing`] (RX needs no exit: the VMM fills posted
//!   buffers and sets [`Events::DEVICE`]). Attach and detach set
//!   [`Events::DEVICE_CHANGE`]. Every guest address in a ring is checked by
//!   the VMM: a bad buffer fails that request, corrupt ring indices crash
//!   the domain.
#![no_std]
#![forbid(unsafe_code)]

use core::sync::atomic::{AtomicU32, AtomicU64};

/// Version of this ABI; bumped on any incompatible layout change.
pub const ABI_VERSION: u32 = 2;
/// `StartInfo::magic`: "XTOPGST1" little-endian.
pub const START_INFO_MAGIC: u64 = u64::from_le_bytes(*b"XTOPGST1");

/// Port of hypercall 0; hypercall `nr` is `outl` to `HYPERCALL_PORT_BASE + nr`.
pub const HYPERCALL_PORT_BASE: u16 = 0x500;
/// Highest vCPU count the ABI describes (boot stacks, kick masks are u64).
pub const MAX_VCPUS: u32 = 32;
/// Longest domain name carried in the start-info page (bytes, NUL padded).
pub const NAME_LEN: usize = 64;
/// Longest kernel command line (bytes, NUL padded).
pub const CMDLINE_LEN: usize = 1024;

/// Size of the console output ring (guest to host).
pub const CONSOLE_OUT_SIZE: usize = 16 * 1024;
/// Size of the console input ring (host to guest).
pub const CONSOLE_IN_SIZE: usize = 4 * 1024;
/// The guest should notify once this many bytes are waiting in the output ring
/// (at most one exit per 4 KiB of continuous output).
pub const CONSOLE_NOTIFY_THRESHOLD: u32 = 4 * 1024;

/// Fixed guest-physical layout below the kernel.
pub mod layout {
    /// Never mapped as anything useful: catches null pointers in the guest.
    pub const NULL_GUARD: u64 = 0x0;
    /// The GDT the VMM builds (null, code64, data).
    pub const GDT: u64 = 0x1000;
    /// The [`crate::StartInfo`] page.
    pub const START_INFO: u64 = 0x2000;
    /// PML4 of the boot page tables; PDPT follows at +0x1000, then the PDs.
    pub const PML4: u64 = 0x3000;
    /// First page directory (each maps 1 GiB with 2 MiB pages); up to 8 follow.
    pub const PD_BASE: u64 = 0x5000;
    /// Page directories available: guest RAM up to 8 GiB is mapped.
    pub const PD_COUNT: u64 = 8;
    /// The [`crate::ConsoleRings`] (spans 6 pages).
    pub const CONSOLE: u64 = 0x10000;
    /// The [`crate::DevicePage`]: descriptors of the virtual devices (ABI v2).
    pub const DEVICES: u64 = 0x16000;
    /// Device rings: device slot `i` owns the two pages at
    /// [`device_ring`]`(i, 0)` and `(i, 1)`.
    pub const DEVICE_RINGS: u64 = 0x18000;
    /// Boot stacks: vCPU `i` starts with `rsp = boot_stack_top(i)`.
    pub const BOOT_STACKS: u64 = 0x80000;
    /// Bytes of boot stack per vCPU.
    pub const BOOT_STACK_SIZE: u64 = 0x4000;
    /// Lowest address a kernel `PT_LOAD` segment may use (1 MiB).
    pub const KERNEL_BASE: u64 = 0x10_0000;
    /// Smallest guest RAM the layout works with (2 MiB).
    pub const MIN_RAM: u64 = 2 << 20;

    /// Ring page `which` (0 or 1) of device slot `slot`: a vbd uses page 0
    /// for its [`crate::BlkRing`]; a vif uses page 0 for TX and page 1 for RX
    /// ([`crate::NetRing`]).
    pub const fn device_ring(slot: u32, which: u32) -> u64 {
        DEVICE_RINGS + (slot as u64 * 2 + which as u64) * 0x1000
    }

    /// Initial stack pointer of vCPU `index` (16-byte aligned).
    pub const fn boot_stack_top(index: u32) -> u64 {
        BOOT_STACKS + (index as u64 + 1) * BOOT_STACK_SIZE
    }
}

/// Hypercall numbers: `outl` to `HYPERCALL_PORT_BASE + nr`.
#[repr(u16)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hypercall {
    /// Drain the console output ring now. Value ignored.
    ConsoleNotify = 0,
    /// Sleep until an event or the deadline. Value: GPA of [`BlockArgs`].
    Block = 1,
    /// Give up the host CPU once (sched_yield). Value ignored.
    Yield = 2,
    /// The domain is done. Value: a [`ShutdownReason`] as u32 (no struct).
    Shutdown = 3,
    /// The guest no longer needs a range of RAM. Value: GPA of [`MemReleaseArgs`].
    MemRelease = 4,
    /// Wake other vCPUs blocked in [`Hypercall::Block`]. Value: GPA of [`KickArgs`].
    Kick = 5,
    /// Report the guest's view of memory use. Value: GPA of [`MemReportArgs`].
    MemReport = 6,
    /// Requests are waiting on a device's ring (a vbd's requests or a vif's
    /// TX packets). Value: the device slot index (no struct). The VMM
    /// handles everything queued before it returns.
    DeviceNotify = 7,
}

impl Hypercall {
    /// Every hypercall, in number order.
    pub const ALL: [Hypercall; 8] = [
        Hypercall::ConsoleNotify,
        Hypercall::Block,
        Hypercall::Yield,
        Hypercall::Shutdown,
        Hypercall::MemRelease,
        Hypercall::Kick,
        Hypercall::MemReport,
        Hypercall::DeviceNotify,
    ];

    /// The hypercall behind an I/O port, if any.
    pub fn from_port(port: u16) -> Option<Hypercall> {
        let nr = port.checked_sub(HYPERCALL_PORT_BASE)?;
        Self::ALL.get(usize::from(nr)).copied()
    }

    /// The I/O port of this hypercall.
    pub const fn port(self) -> u16 {
        HYPERCALL_PORT_BASE + self as u16
    }

    /// Short name, for exit statistics.
    pub const fn name(self) -> &'static str {
        match self {
            Hypercall::ConsoleNotify => "console_notify",
            Hypercall::Block => "block",
            Hypercall::Yield => "yield",
            Hypercall::Shutdown => "shutdown",
            Hypercall::MemRelease => "mem_release",
            Hypercall::Kick => "kick",
            Hypercall::MemReport => "mem_report",
            Hypercall::DeviceNotify => "device_notify",
        }
    }
}

/// Why a domain stopped (Xen's shutdown codes, plus crash).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShutdownReason {
    /// Clean power off.
    Poweroff = 0,
    /// Clean reboot: the toolstack may restart the domain.
    Reboot = 1,
    /// Halt: stop and do not restart.
    Halt = 2,
    /// The guest crashed (or asked to be treated as crashed).
    Crash = 3,
}

impl ShutdownReason {
    /// Decode a reason sent by a guest.
    pub fn from_u32(v: u32) -> Option<ShutdownReason> {
        match v {
            0 => Some(ShutdownReason::Poweroff),
            1 => Some(ShutdownReason::Reboot),
            2 => Some(ShutdownReason::Halt),
            3 => Some(ShutdownReason::Crash),
            _ => None,
        }
    }

    /// The toolstack's name for the reason.
    pub const fn name(self) -> &'static str {
        match self {
            ShutdownReason::Poweroff => "poweroff",
            ShutdownReason::Reboot => "reboot",
            ShutdownReason::Halt => "halt",
            ShutdownReason::Crash => "crash",
        }
    }
}

bitflags::bitflags! {
    /// Bits of [`StartInfo::events`], set by the VMM, cleared by the guest.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Events: u32 {
        /// The host asks for a shutdown; the reason is in
        /// [`StartInfo::shutdown_request`].
        const SHUTDOWN_REQUEST = 1 << 0;
        /// Bytes arrived in the console input ring.
        const CONSOLE_INPUT = 1 << 1;
        /// The host changed [`StartInfo::mem_target_kib`] (balloon target).
        const MEM_TARGET = 1 << 2;
        /// A device made progress: block responses or received packets are
        /// waiting in a ring.
        const DEVICE = 1 << 3;
        /// A device was attached or detached: rescan the [`DevicePage`].
        const DEVICE_CHANGE = 1 << 4;
    }
}

/// Argument of [`Hypercall::Block`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct BlockArgs {
    /// Sleep at most this many nanoseconds; `u64::MAX` means no deadline.
    pub timeout_ns: u64,
    /// Wake as soon as any of these [`Events`] bits is set.
    pub event_mask: u32,
    /// Padding, must be zero.
    pub _pad: u32,
}

/// Argument of [`Hypercall::MemRelease`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct MemReleaseArgs {
    /// Page-aligned guest-physical start.
    pub gpa: u64,
    /// Length in bytes, a multiple of 4 KiB.
    pub len: u64,
}

/// Argument of [`Hypercall::Kick`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct KickArgs {
    /// Bit `i` wakes vCPU `i`.
    pub vcpu_mask: u64,
}

/// Argument of [`Hypercall::MemReport`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct MemReportArgs {
    /// KiB the guest kernel considers in use.
    pub used_kib: u64,
}

/// The start-info page at [`layout::START_INFO`], filled in by the VMM before
/// the first vCPU runs. Fields below `events` are read-only for the guest.
#[repr(C)]
#[derive(Debug)]
pub struct StartInfo {
    /// [`START_INFO_MAGIC`].
    pub magic: u64,
    /// [`ABI_VERSION`].
    pub abi_version: u32,
    /// Domain id given by the toolstack.
    pub domid: u32,
    /// Number of vCPUs that will start at the entry point.
    pub nr_vcpus: u32,
    /// Padding.
    pub _pad0: u32,
    /// RAM the domain starts with, bytes (the toolstack's `memory`).
    pub mem_bytes: u64,
    /// Guest RAM mapped now, bytes: the most the balloon target may give
    /// the guest. At boot the domain's maxmem (all of it identity mapped);
    /// the host raises it (after mapping the new RAM) when the toolstack
    /// raises maxmem, before it sets a target above the old value.
    pub max_mem_bytes: AtomicU64,
    /// TSC frequency in kHz (from KVM), to turn `rdtsc` into time.
    pub tsc_khz: u64,
    /// Host wall clock at boot, nanoseconds since the Unix epoch.
    pub boot_wallclock_ns: u64,
    /// Guest-physical address of the [`ConsoleRings`].
    pub console_gpa: u64,
    /// Lowest guest-physical address above the loaded kernel image.
    pub kernel_end: u64,
    /// Domain name, UTF-8, NUL padded.
    pub name: [u8; NAME_LEN],
    /// Kernel command line, UTF-8, NUL padded.
    pub cmdline: [u8; CMDLINE_LEN],
    /// Pending [`Events`] bits. The VMM ORs bits in; the guest ANDs them out.
    pub events: AtomicU32,
    /// Reason of a pending shutdown request (a [`ShutdownReason`] as u32).
    pub shutdown_request: AtomicU32,
    /// Balloon target in KiB, set by the host (see [`Events::MEM_TARGET`]).
    pub mem_target_kib: AtomicU64,
    /// Ticks the guest subtracts (wrapping) from `rdtsc` to get its clock.
    /// Zero at boot; after a restore or migration the VMM adds however far
    /// the hardware TSC moved while the domain was away, so guest time
    /// continues with no gap even where KVM cannot set the guest TSC (the
    /// paravirtual-clock answer Xen uses). Written before any vCPU runs.
    pub tsc_adjust: AtomicU64,
}

/// The shared console page(s) at [`StartInfo::console_gpa`].
///
/// Indices are free-running u32 counters; the byte for index `i` lives at
/// `i % SIZE`. Producer writes data, then publishes the index (release);
/// consumer reads the index (acquire), then the data.
#[repr(C)]
#[derive(Debug)]
pub struct ConsoleRings {
    /// Output: consumed up to here by the host.
    pub out_cons: AtomicU32,
    /// Output: produced up to here by the guest.
    pub out_prod: AtomicU32,
    /// Input: consumed up to here by the guest.
    pub in_cons: AtomicU32,
    /// Input: produced up to here by the host.
    pub in_prod: AtomicU32,
    /// Output bytes (guest to host).
    pub out: [u8; CONSOLE_OUT_SIZE],
    /// Input bytes (host to guest).
    pub in_: [u8; CONSOLE_IN_SIZE],
}

/// Device slots in the [`DevicePage`].
pub const MAX_DEVICES: usize = 16;
/// Longest device name in a [`DeviceDesc`] (`xvda`, `eth0`), NUL padded.
pub const DEVICE_NAME_LEN: usize = 16;

/// What sits in a device slot ([`DeviceDesc::kind`]).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceKind {
    /// An empty slot.
    None = 0,
    /// A virtual block device ([`BlkRing`]).
    Vbd = 1,
    /// A virtual network interface (two [`NetRing`]s).
    Vif = 2,
}

impl DeviceKind {
    /// Decode [`DeviceDesc::kind`].
    pub fn from_u32(v: u32) -> Option<DeviceKind> {
        match v {
            0 => Some(DeviceKind::None),
            1 => Some(DeviceKind::Vbd),
            2 => Some(DeviceKind::Vif),
            _ => None,
        }
    }
}

/// [`DeviceDesc::flags`] of a vbd: writes fail with [`BLK_ERR_READ_ONLY`].
pub const VBD_READ_ONLY: u32 = 1;

/// One device, as the VMM describes it to the guest.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct DeviceDesc {
    /// A [`DeviceKind`] as u32.
    pub kind: u32,
    /// The toolstack's index of the device among those of its kind.
    pub id: u32,
    /// vbd: the [`BlkRing`]; vif: the TX [`NetRing`] (guest to host).
    pub ring_gpa: u64,
    /// vif: the RX [`NetRing`] (host to guest); vbd: 0.
    pub ring2_gpa: u64,
    /// Slots in each ring ([`BLK_RING_SLOTS`] or [`NET_RING_SLOTS`]).
    pub ring_slots: u32,
    /// vbd: [`VBD_READ_ONLY`].
    pub flags: u32,
    /// vbd: size in sectors.
    pub sectors: u64,
    /// vbd: bytes per sector (512).
    pub sector_size: u32,
    /// vif: largest frame payload (1500).
    pub mtu: u32,
    /// vif: the guest's MAC address.
    pub mac: [u8; 6],
    /// Padding.
    pub _pad: [u8; 2],
    /// Device name in the guest (`xvda`, `eth0`), UTF-8, NUL padded.
    pub name: [u8; DEVICE_NAME_LEN],
}

/// The device page at [`layout::DEVICES`].
///
/// The VMM changes descriptors only with `generation` odd (seqlock): the
/// guest reads an even generation, copies what it needs, and retries if the
/// generation changed meanwhile. Attach and detach bump it and raise
/// [`Events::DEVICE_CHANGE`].
#[repr(C)]
#[derive(Debug)]
pub struct DevicePage {
    /// Bumped before and after every change (odd while one is under way).
    pub generation: AtomicU32,
    /// [`MAX_DEVICES`].
    pub nr_slots: u32,
    /// The slots; slot `i` uses the ring pages [`layout::device_ring`]`(i, _)`.
    pub devices: [DeviceDesc; MAX_DEVICES],
}

/// Request slots in a [`BlkRing`].
pub const BLK_RING_SLOTS: usize = 64;
/// Largest buffer of one block request, bytes.
pub const BLK_MAX_IO: u32 = 128 * 1024;
/// [`BlkSlot::op`]: read sectors into the buffer.
pub const BLK_OP_READ: u32 = 0;
/// [`BlkSlot::op`]: write the buffer to sectors.
pub const BLK_OP_WRITE: u32 = 1;
/// [`BlkSlot::op`]: make earlier writes durable (no buffer).
pub const BLK_OP_FLUSH: u32 = 2;
/// [`BlkSlot::status`]: done.
pub const BLK_OK: i32 = 0;
/// [`BlkSlot::status`]: the host's I/O failed.
pub const BLK_ERR_IO: i32 = -1;
/// [`BlkSlot::status`]: a write to a read-only device.
pub const BLK_ERR_READ_ONLY: i32 = -2;
/// [`BlkSlot::status`]: sectors beyond the end of the device.
pub const BLK_ERR_RANGE: i32 = -3;
/// [`BlkSlot::status`]: a bad descriptor (buffer outside RAM, length not a
/// whole number of sectors, zero or above [`BLK_MAX_IO`], unknown op).
pub const BLK_ERR_BAD: i32 = -4;
/// [`BlkSlot::status`] while the request is in flight.
pub const BLK_PENDING: i32 = 1;

/// One block request; the VMM writes `status` in place when it is done.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct BlkSlot {
    /// The guest's tag, untouched by the VMM.
    pub id: u64,
    /// First sector.
    pub sector: u64,
    /// Guest-physical address of the buffer.
    pub gpa: u64,
    /// Buffer length in bytes (a multiple of the sector size).
    pub len: u32,
    /// `BLK_OP_*`.
    pub op: u32,
    /// `BLK_*` status, written by the VMM before it advances `rsp_prod`.
    pub status: i32,
    /// Padding.
    pub _pad: u32,
}

/// A vbd's ring (one page). The guest fills slots `req_prod % SLOTS`,
/// publishes `req_prod` (release) and notifies once per batch
/// ([`Hypercall::DeviceNotify`]); the VMM handles requests in order, writes
/// each `status`, and publishes `rsp_prod`. The guest keeps at most
/// [`BLK_RING_SLOTS`] requests outstanding (`req_prod - rsp_prod`).
#[repr(C)]
#[derive(Debug)]
pub struct BlkRing {
    /// Requests published by the guest.
    pub req_prod: AtomicU32,
    /// Requests completed by the VMM.
    pub rsp_prod: AtomicU32,
    /// Padding.
    pub _pad: [u32; 2],
    /// The requests.
    pub slots: [BlkSlot; BLK_RING_SLOTS],
}

/// Slots in each [`NetRing`].
pub const NET_RING_SLOTS: usize = 128;
/// Default MTU of a vif.
pub const NET_MTU: u32 = 1500;
/// Largest Ethernet frame on a vif (MTU + 14-byte header, no FCS).
pub const NET_MAX_FRAME: u32 = NET_MTU + 14;
/// [`NetSlot::status`]: done.
pub const NET_OK: i32 = 0;
/// [`NetSlot::status`]: the frame was dropped (bad descriptor or host error).
pub const NET_ERR: i32 = -1;

/// One packet buffer.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct NetSlot {
    /// Guest-physical address of the buffer.
    pub gpa: u64,
    /// TX: frame length. RX: buffer capacity from the guest; the VMM
    /// overwrites it with the frame length.
    pub len: u32,
    /// `NET_OK` / `NET_ERR`, written by the VMM before it advances `cons`.
    pub status: i32,
}

/// One direction of a vif (one page). The guest fills `slots[prod % SLOTS]`
/// (TX: a frame; RX: an empty buffer) and publishes `prod`; the VMM takes
/// slots in order, writes `len`/`status`, and publishes `cons`. TX needs a
/// [`Hypercall::DeviceNotify`] per batch; RX needs none: the VMM fills posted
/// buffers as frames arrive and raises [`Events::DEVICE`] (no exit).
#[repr(C)]
#[derive(Debug)]
pub struct NetRing {
    /// Slots published by the guest.
    pub prod: AtomicU32,
    /// Slots completed by the VMM.
    pub cons: AtomicU32,
    /// Padding.
    pub _pad: [u32; 2],
    /// The buffers.
    pub slots: [NetSlot; NET_RING_SLOTS],
}

/// Byte offsets of the fields the VMM accesses through guest memory.
pub mod offsets {
    use core::mem::offset_of;

    use super::{
        BlkRing, BlkSlot, ConsoleRings, DeviceDesc, DevicePage, NetRing, NetSlot, StartInfo,
    };

    /// `StartInfo::events`.
    pub const EVENTS: usize = offset_of!(StartInfo, events);
    /// `StartInfo::shutdown_request`.
    pub const SHUTDOWN_REQUEST: usize = offset_of!(StartInfo, shutdown_request);
    /// `StartInfo::mem_target_kib`.
    pub const MEM_TARGET_KIB: usize = offset_of!(StartInfo, mem_target_kib);
    /// `StartInfo::tsc_adjust`.
    pub const TSC_ADJUST: usize = offset_of!(StartInfo, tsc_adjust);
    /// `ConsoleRings::out_cons`.
    pub const OUT_CONS: usize = offset_of!(ConsoleRings, out_cons);
    /// `ConsoleRings::out_prod`.
    pub const OUT_PROD: usize = offset_of!(ConsoleRings, out_prod);
    /// `ConsoleRings::in_cons`.
    pub const IN_CONS: usize = offset_of!(ConsoleRings, in_cons);
    /// `ConsoleRings::in_prod`.
    pub const IN_PROD: usize = offset_of!(ConsoleRings, in_prod);
    /// `ConsoleRings::out`.
    pub const OUT: usize = offset_of!(ConsoleRings, out);
    /// `ConsoleRings::in_`.
    pub const IN: usize = offset_of!(ConsoleRings, in_);
    /// `DevicePage::generation`.
    pub const DEV_GENERATION: usize = offset_of!(DevicePage, generation);
    /// `DevicePage::devices`.
    pub const DEV_DESCS: usize = offset_of!(DevicePage, devices);
    /// Size of one [`DeviceDesc`].
    pub const DEV_DESC_SIZE: usize = size_of::<DeviceDesc>();
    /// `BlkRing::req_prod`.
    pub const BLK_REQ_PROD: usize = offset_of!(BlkRing, req_prod);
    /// `BlkRing::rsp_prod`.
    pub const BLK_RSP_PROD: usize = offset_of!(BlkRing, rsp_prod);
    /// `BlkRing::slots`.
    pub const BLK_SLOTS: usize = offset_of!(BlkRing, slots);
    /// Size of one [`BlkSlot`].
    pub const BLK_SLOT_SIZE: usize = size_of::<BlkSlot>();
    /// `BlkSlot::status`.
    pub const BLK_SLOT_STATUS: usize = offset_of!(BlkSlot, status);
    /// `NetRing::prod`.
    pub const NET_PROD: usize = offset_of!(NetRing, prod);
    /// `NetRing::cons`.
    pub const NET_CONS: usize = offset_of!(NetRing, cons);
    /// `NetRing::slots`.
    pub const NET_SLOTS: usize = offset_of!(NetRing, slots);
    /// Size of one [`NetSlot`].
    pub const NET_SLOT_SIZE: usize = size_of::<NetSlot>();
}

const _: () = {
    assert!(core::mem::size_of::<StartInfo>() <= 4096);
    assert!(layout::CONSOLE + core::mem::size_of::<ConsoleRings>() as u64 <= layout::BOOT_STACKS);
    assert!(layout::boot_stack_top(MAX_VCPUS - 1) <= layout::KERNEL_BASE);
    assert!(layout::PD_BASE + layout::PD_COUNT * 0x1000 <= layout::CONSOLE);
    assert!(layout::CONSOLE + core::mem::size_of::<ConsoleRings>() as u64 <= layout::DEVICES);
    assert!(core::mem::size_of::<DevicePage>() <= 0x1000);
    assert!(layout::DEVICES + 0x1000 <= layout::DEVICE_RINGS);
    assert!(layout::device_ring(MAX_DEVICES as u32 - 1, 1) + 0x1000 <= layout::BOOT_STACKS);
    assert!(core::mem::size_of::<BlkRing>() <= 0x1000);
    assert!(core::mem::size_of::<NetRing>() <= 0x1000);
    assert!(core::mem::size_of::<DeviceDesc>() == 72);
    assert!(core::mem::size_of::<BlkSlot>() == 40);
    assert!(core::mem::size_of::<NetSlot>() == 16);
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hypercall_ports_round_trip() {
        for h in Hypercall::ALL {
            assert_eq!(Hypercall::from_port(h.port()), Some(h));
        }
        assert_eq!(Hypercall::from_port(0x4ff), None);
        assert_eq!(
            Hypercall::from_port(0x500 + Hypercall::ALL.len() as u16),
            None
        );
    }

    #[test]
    fn shutdown_reasons_decode() {
        for r in [
            ShutdownReason::Poweroff,
            ShutdownReason::Reboot,
            ShutdownReason::Halt,
            ShutdownReason::Crash,
        ] {
            assert_eq!(ShutdownReason::from_u32(r as u32), Some(r));
        }
        assert_eq!(ShutdownReason::from_u32(4), None);
    }
}
