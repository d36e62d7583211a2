//! `vmm`'s command line (here, not in the binary, so the man page and the
//! shell completions can be generated from it).
use std::path::PathBuf;

use clap::Parser;

/// Run one domain on KVM (one VMM process per domain, started by xend).
#[derive(Debug, Parser)]
#[command(version)]
pub struct Args {
    /// Domain name (with --restore/--incoming: overrides the image's).
    #[arg(long, required_unless_present_any = ["restore", "incoming"])]
    pub name: Option<String>,
    /// Domain id (with --restore/--incoming: overrides the image's).
    #[arg(long, required_unless_present_any = ["restore", "incoming"])]
    pub domid: Option<u32>,
    /// RAM at boot, MiB.
    #[arg(long, required_unless_present_any = ["restore", "incoming"])]
    pub memory: Option<u64>,
    /// Maximum RAM, MiB (default: --memory).
    #[arg(long)]
    pub maxmem: Option<u64>,
    /// Number of vCPUs.
    #[arg(long, default_value_t = 1)]
    pub vcpus: u32,
    /// `minios` (built in) or the path of an ELF64 kernel built for our ABI.
    #[arg(long, default_value = "minios")]
    pub kernel: String,
    /// Kernel command line.
    #[arg(long, default_value = "")]
    pub cmdline: String,
    /// Initial ramdisk for a Linux kernel (bzImage or PVH vmlinux).
    #[arg(long, value_name = "PATH")]
    pub ramdisk: Option<String>,
    /// Pin every vCPU to this host CPU.
    #[arg(long)]
    pub cpu: Option<usize>,
    /// Control socket path (mode 0600).
    #[arg(long)]
    pub socket: Option<PathBuf>,
    /// Runtime record (JSON) written once the socket is ready.
    #[arg(long)]
    pub record: Option<PathBuf>,
    /// Log file (default: stderr).
    #[arg(long)]
    pub log: Option<PathBuf>,
    /// Run in the background in its own session; print the pid once ready.
    #[arg(long, conflicts_with = "stdio")]
    pub detach: bool,
    /// Console on stdin/stdout.
    #[arg(long)]
    pub stdio: bool,
    /// Exit when the guest shuts down or crashes (exit code 0 for a clean
    /// shutdown, 2 for a crash) instead of waiting for `destroy`.
    #[arg(long)]
    pub exit_on_shutdown: bool,
    /// A virtual disk, `file:PATH,DEV,MODE[,direct]` or `phy:/dev/X,DEV,MODE`
    /// (MODE r, w or w!). Repeatable.
    #[arg(long = "disk", value_name = "SPEC")]
    pub disks: Vec<String>,
    /// A virtual network interface, `mac=aa:00:00:12:34:56,bridge=BR` (both
    /// optional; a random aa:00:00 MAC without mac=). Repeatable.
    #[arg(long = "vif", value_name = "SPEC")]
    pub vifs: Vec<String>,
    /// Restore the domain saved in FILE instead of booting a kernel (memory,
    /// vCPUs, kernel come from the image; --name/--domid override).
    #[arg(
        long,
        value_name = "FILE",
        conflicts_with_all = ["incoming", "memory", "maxmem", "vcpus", "kernel", "cmdline", "ramdisk"]
    )]
    pub restore: Option<PathBuf>,
    /// Receive a migrating domain: listen on ADDR:PORT for one source, which
    /// must present --incoming-token. Ready (for --detach) once listening.
    #[arg(
        long,
        value_name = "ADDR:PORT",
        requires = "incoming_token",
        conflicts_with_all = ["memory", "maxmem", "vcpus", "kernel", "cmdline", "ramdisk"]
    )]
    pub incoming: Option<String>,
    /// The token a migration source must present (or env VMM_INCOMING_TOKEN).
    #[arg(
        long,
        value_name = "TOKEN",
        env = "VMM_INCOMING_TOKEN",
        hide_env_values = true
    )]
    pub incoming_token: Option<String>,
    /// Start the domain (booted, restored or migrated in) paused: its vCPUs
    /// wait for `unpause`.
    #[arg(long)]
    pub paused: bool,
    /// Jail the VMM once the domain is built: new mount, pid, ipc and uts
    /// namespaces, an empty read-only root mounted on DIR (created if
    /// missing), no capabilities, `--jail-uid`/`--jail-gid`, and a seccomp
    /// filter per thread (see docs/jail.md). xend passes this for every
    /// domain unless `(vmm-jail no)`.
    #[arg(long, value_name = "DIR", requires_all = ["jail_uid", "jail_gid"])]
    pub jail_dir: Option<PathBuf>,
    /// The uid the jailed VMM runs as (not 0).
    #[arg(long, value_name = "UID", requires = "jail_dir")]
    pub jail_uid: Option<u32>,
    /// The gid the jailed VMM runs as (not 0).
    #[arg(long, value_name = "GID", requires = "jail_dir")]
    pub jail_gid: Option<u32>,
    /// Join the cgroup directory DIR (write the VMM's pid to
    /// DIR/cgroup.procs) before anything else; repeatable, one per cgroup v1
    /// hierarchy. xend passes the domain's cgroups.
    #[arg(long = "cgroup", value_name = "DIR")]
    pub cgroups: Vec<PathBuf>,
}

impl Args {
    /// The jail asked for on the command line, if any.
    pub fn jail(&self) -> Option<crate::jail::JailConfig> {
        Some(crate::jail::JailConfig {
            dir: self.jail_dir.clone()?,
            uid: self.jail_uid?,
            gid: self.jail_gid?,
        })
    }
}
