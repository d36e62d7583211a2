//! One cgroup per domain under one parent for all of xend's domains, with
//! the domain's CPU weight and cap, memory limit and task limit.
//!
//! Two backends, chosen once when xend starts:
//! - **cgroup v2** when the unified hierarchy offers `cpu`, `memory` and
//!   `pids` in xend's own cgroup: `<own>/<parent>/dom<ID>` with `cpu.weight`,
//!   `cpu.max`, `memory.max`, `pids.max`; the controllers are enabled through
//!   `cgroup.subtree_control` of xend's cgroup and of the parent.
//! - **cgroup v1** otherwise, when the `cpu`, `memory` and `pids` hierarchies
//!   are mounted: `<hierarchy>/<own>/<parent>/dom<ID>` in each, with
//!   `cpu.shares`, `cpu.cfs_quota_us`/`cpu.cfs_period_us`,
//!   `memory.limit_in_bytes`, `pids.max`.
//!
//! `<own>` is xend's own cgroup in that hierarchy (from `/proc/self/cgroup`),
//! so domains stay inside whatever xend itself was given (a systemd unit's
//! slice, a container's limits). Neither available (no root, nothing
//! mounted): [`Cgroups::detect`] says why, xend logs it once and runs
//! domains without cgroups.
//!
//! The VMM joins its cgroups itself, as its first act (`vmm --cgroup DIR`,
//! before it allocates guest RAM or starts a thread); xend creates them and
//! writes the limits before it starts the VMM, and removes them once the
//! domain is gone.
//!
//! Mappings (Xen's credit scheduler onto the Linux CFS):
//! - weight `W` (1..65535, default 256): v1 `cpu.shares = 4 W` (256 is the
//!   default 1024); v2 `cpu.weight = W * 100 / 256` rounded, within 1..10000
//!   (256 is the default 100; weights above 25600 all give 10000).
//! - cap `C` (percent of one CPU, 0 = none): a 100 ms period with a quota of
//!   `C` ms per period (`cpu.cfs_quota_us = 1000 C`, v2 `cpu.max = "1000C
//!   100000"`); 0 is `-1` (v1) or `max` (v2).
use std::collections::HashSet;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use errchain::error_chain;

/// The period the cap's quota is given in, microseconds (100 ms).
pub const CAP_PERIOD_US: u64 = 100_000;
/// Memory a domain's cgroup allows beyond its guest RAM (`maxmem`): the VMM
/// itself (a few MiB), its device buffers and the page cache of its disks.
pub const MEMORY_OVERHEAD_MIB: u64 = 64;
/// Tasks a VMM may have beyond one per vCPU: its device, console, control
/// and migration threads with room to spare.
pub const PIDS_BASE: u64 = 128;
/// Xen's default credit weight.
pub const DEFAULT_WEIGHT: u32 = 256;

/// Why cgroups cannot be used, or a cgroup operation failed.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// Neither backend is available.
    #[error(
        "no usable cgroups (cgroup v2: {v2}; cgroup v1: {v1}); domains run without CPU weights, caps or limits"
    )]
    Unavailable {
        /// Why not v2.
        v2: Unusable,
        /// Why not v1.
        v1: Unusable,
    },
    /// Writing or creating a cgroup file failed.
    #[error("cannot {what} {path}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// Cause.
        #[source]
        source: io::Error,
    },
}

/// Why one backend cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum Unusable {
    /// No cgroup2 filesystem is mounted.
    #[error("not mounted")]
    NotMounted,
    /// `/proc/self/cgroup` has no `0::` line.
    #[error("xend has no cgroup v2 path")]
    NoV2Path,
    /// A cgroup file could not be read.
    #[error("{}: {source}", path.display())]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// Cause.
        source: io::Error,
    },
    /// xend's v2 cgroup does not offer every controller it needs.
    #[error("{} lacks the {missing} controller(s)", path.display())]
    MissingControllers {
        /// xend's cgroup.
        path: PathBuf,
        /// The missing ones, comma-separated.
        missing: String,
    },
    /// No v1 hierarchy carries a controller.
    #[error("no {0} hierarchy mounted")]
    NoHierarchy(&'static str),
    /// Creating the parent or enabling controllers failed.
    #[error("{}", error_chain(.0))]
    Setup(#[from] Box<CgroupError>),
}

impl From<CgroupError> for Unusable {
    fn from(e: CgroupError) -> Unusable {
        Unusable::Setup(Box::new(e))
    }
}

/// The controllers xend uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ctl {
    Cpu,
    Memory,
    Pids,
}

const CONTROLLERS: [Ctl; 3] = [Ctl::Cpu, Ctl::Memory, Ctl::Pids];

impl Ctl {
    fn name(self) -> &'static str {
        match self {
            Ctl::Cpu => "cpu",
            Ctl::Memory => "memory",
            Ctl::Pids => "pids",
        }
    }
}

/// Which cgroup version is in use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    /// The unified hierarchy.
    V2,
    /// One hierarchy per controller.
    V1,
}

/// The limits of one domain's cgroup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Credit weight, 1..65535.
    pub weight: u32,
    /// Cap, percent of one CPU; 0 is none.
    pub cap: u32,
    /// Memory limit, bytes.
    pub memory_bytes: u64,
    /// Task limit.
    pub pids: u64,
}

impl Limits {
    /// The limits of a domain with `maxmem_mib` of guest RAM and `vcpus`.
    pub fn new(weight: u32, cap: u32, maxmem_mib: u64, vcpus: u32) -> Limits {
        Limits {
            weight,
            cap,
            memory_bytes: memory_bytes(maxmem_mib),
            pids: PIDS_BASE + u64::from(vcpus),
        }
    }
}

/// The memory limit of a domain with `maxmem_mib` of guest RAM.
pub fn memory_bytes(maxmem_mib: u64) -> u64 {
    (maxmem_mib + MEMORY_OVERHEAD_MIB) << 20
}

/// v1 `cpu.shares` for a credit weight.
pub fn v1_shares(weight: u32) -> u64 {
    u64::from(weight) * 4
}

/// v2 `cpu.weight` for a credit weight.
pub fn v2_weight(weight: u32) -> u64 {
    ((u64::from(weight) * 100 + 128) / 256).clamp(1, 10_000)
}

/// The CFS quota per [`CAP_PERIOD_US`] for a cap; `None` is no cap.
pub fn cap_quota_us(cap: u32) -> Option<u64> {
    (cap > 0).then(|| u64::from(cap) * CAP_PERIOD_US / 100)
}

/// One hierarchy xend uses: its parent directory and the controllers it has.
#[derive(Clone, Debug)]
struct Hier {
    parent: PathBuf,
    ctls: Vec<Ctl>,
}

/// xend's cgroups: where the parent is in each hierarchy used.
#[derive(Clone, Debug)]
pub struct Cgroups {
    version: Version,
    hiers: Vec<Hier>,
    /// Domains whose cgroup is being removed in the background (their VMM
    /// is gone); held while a domain cgroup is created or removed, so a new
    /// domain given the same id takes its cgroup over instead of losing it.
    pending: Arc<Mutex<HashSet<u32>>>,
}

impl Cgroups {
    /// Find a usable backend (v2 first) and create the parent `name` under
    /// xend's own cgroup in each hierarchy.
    ///
    /// The parent is only made to prove it can be: it is then removed again
    /// when it holds no domain (see [`Cgroups::tidy`]), and made for good
    /// with the first domain's cgroup ([`Cgroups::create`]).
    pub fn detect(name: &str) -> Result<Cgroups, CgroupError> {
        let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let own = fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        let found = match Cgroups::v2(&mountinfo, &own, name) {
            Ok(c) => Ok(c),
            Err(v2) => match Cgroups::v1(&mountinfo, &own, name) {
                Ok(c) => Ok(c),
                Err(v1) => Err(CgroupError::Unavailable { v2, v1 }),
            },
        };
        let cg = found?;
        cg.tidy();
        Ok(cg)
    }

    /// Remove what an earlier xend with this parent left empty: each
    /// `dom<ID>` cgroup that holds no process, then the parent if it is
    /// empty. The kernel refuses to remove a cgroup that holds a process or
    /// a child, so a parent holding the domains of a running xend (or of a
    /// restarted one, whose VMMs ran on) is left as it is; parents of other
    /// names are never looked at.
    pub fn tidy(&self) {
        let _held = self.pending();
        for h in &self.hiers {
            let Ok(children) = fs::read_dir(&h.parent) else {
                continue;
            };
            for c in children.flatten() {
                let name = c.file_name();
                let is_domain = name.to_str().is_some_and(|n| {
                    n.strip_prefix("dom")
                        .is_some_and(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()))
                });
                if is_domain && fs::remove_dir(c.path()).is_ok() {
                    tracing::info!(
                        "removed the empty cgroup {} an earlier xend left",
                        c.path().display()
                    );
                }
            }
            let _ = fs::remove_dir(&h.parent);
        }
    }

    fn pending(&self) -> MutexGuard<'_, HashSet<u32>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn v2(mountinfo: &str, own: &str, name: &str) -> Result<Cgroups, Unusable> {
        let mount = mounts(mountinfo)
            .find(|m| m.fstype == "cgroup2")
            .ok_or(Unusable::NotMounted)?
            .point;
        let own = own
            .lines()
            .find_map(|l| l.strip_prefix("0::"))
            .ok_or(Unusable::NoV2Path)?;
        let base = mount.join(own.trim_start_matches('/'));
        let available = fs::read_to_string(base.join("cgroup.controllers")).map_err(|source| {
            Unusable::Unreadable {
                path: base.join("cgroup.controllers"),
                source,
            }
        })?;
        let missing: Vec<&str> = CONTROLLERS
            .iter()
            .map(|c| c.name())
            .filter(|c| !available.split_whitespace().any(|a| a == *c))
            .collect();
        if !missing.is_empty() {
            return Err(Unusable::MissingControllers {
                path: base,
                missing: missing.join(", "),
            });
        }
        let parent = base.join(name);
        let enable = |dir: &Path| write(&dir.join("cgroup.subtree_control"), "+cpu +memory +pids");
        enable(&base)?;
        mkdir(&parent)?;
        enable(&parent)?;
        Ok(Cgroups {
            version: Version::V2,
            hiers: vec![Hier {
                parent,
                ctls: CONTROLLERS.to_vec(),
            }],
            pending: Arc::default(),
        })
    }

    fn v1(mountinfo: &str, own: &str, name: &str) -> Result<Cgroups, Unusable> {
        let mut hiers = Vec::new();
        for ctl in CONTROLLERS {
            let mount = mounts(mountinfo)
                .find(|m| m.fstype == "cgroup" && m.options.split(',').any(|o| o == ctl.name()))
                .ok_or(Unusable::NoHierarchy(ctl.name()))?
                .point;
            let path = own
                .lines()
                .find_map(|l| {
                    let mut f = l.splitn(3, ':');
                    let (_, ctls, path) = (f.next()?, f.next()?, f.next()?);
                    ctls.split(',').any(|c| c == ctl.name()).then_some(path)
                })
                .unwrap_or("/");
            let parent = mount.join(path.trim_start_matches('/')).join(name);
            mkdir(&parent)?;
            match hiers.iter_mut().find(|h: &&mut Hier| h.parent == parent) {
                Some(h) => h.ctls.push(ctl),
                None => hiers.push(Hier {
                    parent,
                    ctls: vec![ctl],
                }),
            }
        }
        Ok(Cgroups {
            version: Version::V1,
            hiers,
            pending: Arc::default(),
        })
    }

    /// Which version is in use.
    pub fn version(&self) -> Version {
        self.version
    }

    /// What is used, for the log: `cgroup v1: cpu in /sys/...; ...`.
    pub fn describe(&self) -> String {
        let v = match self.version {
            Version::V2 => "v2",
            Version::V1 => "v1",
        };
        let parts: Vec<String> = self
            .hiers
            .iter()
            .map(|h| {
                let c: Vec<&str> = h.ctls.iter().map(|c| c.name()).collect();
                format!("{} in {}", c.join(","), h.parent.display())
            })
            .collect();
        format!("cgroup {v}: {}", parts.join("; "))
    }

    /// The directories of domain `domid`'s cgroup, one per hierarchy (what
    /// the VMM joins with `--cgroup`).
    pub fn dirs(&self, domid: u32) -> Vec<PathBuf> {
        self.hiers
            .iter()
            .map(|h| h.parent.join(format!("dom{domid}")))
            .collect()
    }

    fn dir_of(&self, domid: u32, ctl: Ctl) -> Option<PathBuf> {
        self.hiers
            .iter()
            .find(|h| h.ctls.contains(&ctl))
            .map(|h| h.parent.join(format!("dom{domid}")))
    }

    /// Create domain `domid`'s cgroup (kept if it exists: a restart, a
    /// re-adopted domain) and write `limits`.
    /// The parent is made first when missing (v2: with the controllers
    /// enabled for its children).
    pub fn create(&self, domid: u32, limits: &Limits) -> Result<(), CgroupError> {
        let mut pending = self.pending();
        // A cgroup still waiting for removal is this domain's now.
        pending.remove(&domid);
        for h in &self.hiers {
            mkdir(&h.parent)?;
            if self.version == Version::V2 {
                write(
                    &h.parent.join("cgroup.subtree_control"),
                    "+cpu +memory +pids",
                )?;
            }
        }
        for dir in self.dirs(domid) {
            mkdir(&dir)?;
        }
        drop(pending);
        self.set_cpu(domid, limits.weight, limits.cap)?;
        self.set_memory(domid, limits.memory_bytes)?;
        self.set_pids(domid, limits.pids)
    }

    /// Write the weight and cap of domain `domid`.
    pub fn set_cpu(&self, domid: u32, weight: u32, cap: u32) -> Result<(), CgroupError> {
        let Some(dir) = self.dir_of(domid, Ctl::Cpu) else {
            return Ok(());
        };
        match self.version {
            Version::V2 => {
                write(&dir.join("cpu.weight"), &v2_weight(weight).to_string())?;
                let quota = cap_quota_us(cap).map_or("max".to_string(), |q| q.to_string());
                write(&dir.join("cpu.max"), &format!("{quota} {CAP_PERIOD_US}"))
            }
            Version::V1 => {
                write(&dir.join("cpu.shares"), &v1_shares(weight).to_string())?;
                write(&dir.join("cpu.cfs_period_us"), &CAP_PERIOD_US.to_string())?;
                let quota = cap_quota_us(cap).map_or("-1".to_string(), |q| q.to_string());
                write(&dir.join("cpu.cfs_quota_us"), &quota)
            }
        }
    }

    /// Write the memory limit of domain `domid`.
    pub fn set_memory(&self, domid: u32, bytes: u64) -> Result<(), CgroupError> {
        let Some(dir) = self.dir_of(domid, Ctl::Memory) else {
            return Ok(());
        };
        let file = match self.version {
            Version::V2 => "memory.max",
            Version::V1 => "memory.limit_in_bytes",
        };
        write(&dir.join(file), &bytes.to_string())
    }

    fn set_pids(&self, domid: u32, pids: u64) -> Result<(), CgroupError> {
        let Some(dir) = self.dir_of(domid, Ctl::Pids) else {
            return Ok(());
        };
        write(&dir.join("pids.max"), &pids.to_string())
    }

    /// Move process `pid` (every thread) into domain `domid`'s cgroup: a
    /// re-adopted VMM started before xend used cgroups.
    pub fn place(&self, domid: u32, pid: u32) -> Result<(), CgroupError> {
        for dir in self.dirs(domid) {
            write(&dir.join("cgroup.procs"), &pid.to_string())?;
        }
        Ok(())
    }

    /// True when process `pid` is in domain `domid`'s cgroup in every
    /// hierarchy.
    pub fn holds(&self, domid: u32, pid: u32) -> bool {
        self.dirs(domid).iter().all(|dir| {
            fs::read_to_string(dir.join("cgroup.procs"))
                .is_ok_and(|procs| procs.lines().any(|l| l.trim() == pid.to_string()))
        })
    }

    /// Remove domain `domid`'s cgroup once its VMM is gone, in the
    /// background: this returns at once (a destroy does not wait for it).
    /// The last threads of an exiting VMM, or anything else put in the
    /// cgroup, may hold it: retried, less and less often, for up to
    /// `within`; what is still there then is logged once and left. A new
    /// domain created with the same id meanwhile takes the cgroup over.
    pub fn remove_in_background(&self, domid: u32, within: Duration) {
        self.pending().insert(domid);
        let me = self.clone();
        tokio::spawn(async move {
            let deadline = Instant::now() + within;
            let mut pause = Duration::from_millis(10);
            loop {
                let left = {
                    let mut pending = me.pending();
                    if !pending.contains(&domid) {
                        return;
                    }
                    let left = me.try_remove(domid);
                    if left.is_none() || Instant::now() >= deadline {
                        pending.remove(&domid);
                    }
                    left
                };
                match left {
                    None => return,
                    Some((dir, e)) if Instant::now() >= deadline => {
                        tracing::warn!(
                            "cannot remove cgroup {} within {within:?} of its domain's end: {e}; left in place",
                            dir.display()
                        );
                        return;
                    }
                    Some(_) => {
                        tokio::time::sleep(pause).await;
                        pause = (pause * 2).min(Duration::from_secs(1));
                    }
                }
            }
        });
    }

    /// One attempt at removing domain `domid`'s cgroup in every hierarchy:
    /// the first directory still there and why.
    fn try_remove(&self, domid: u32) -> Option<(PathBuf, io::Error)> {
        let mut left = None;
        for dir in self.dirs(domid) {
            match fs::remove_dir(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    left.get_or_insert((dir, e));
                }
            }
        }
        left
    }

    /// xend stops: one last try for the cgroups still being removed, then
    /// the parents go when no domain cgroup is left in them; a parent still
    /// holding domains (they run on) is kept.
    pub fn remove_parents(&self) {
        let mut pending = self.pending();
        for id in pending.drain() {
            if let Some((dir, e)) = self.try_remove(id) {
                tracing::warn!("cannot remove cgroup {}: {e}; left in place", dir.display());
            }
        }
        for h in &self.hiers {
            let _ = fs::remove_dir(&h.parent);
        }
    }
}

struct Mount<'a> {
    point: PathBuf,
    fstype: &'a str,
    options: &'a str,
}

/// The mounts of `/proc/self/mountinfo`: mount point (field 5), and after
/// the ` - ` separator the filesystem type and its super options.
fn mounts(mountinfo: &str) -> impl Iterator<Item = Mount<'_>> {
    mountinfo.lines().filter_map(|line| {
        let (pre, post) = line.split_once(" - ")?;
        let point = pre.split_whitespace().nth(4)?;
        let mut post = post.split_whitespace();
        let fstype = post.next()?;
        let _source = post.next()?;
        let options = post.next().unwrap_or("");
        Some(Mount {
            point: PathBuf::from(unescape(point)),
            fstype,
            options,
        })
    })
}

/// Mountinfo's octal escapes (`\040` for a space).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && let Some(Ok(n)) = s.get(i + 1..i + 4).map(|o| u8::from_str_radix(o, 8))
        {
            out.push(n);
            i += 4;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn mkdir(dir: &Path) -> Result<(), CgroupError> {
    match fs::create_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(source) => Err(CgroupError::Io {
            what: "create cgroup",
            path: dir.to_path_buf(),
            source,
        }),
    }
}

fn write(path: &Path, value: &str) -> Result<(), CgroupError> {
    fs::OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|mut f| f.write_all(value.as_bytes()))
        .map_err(|source| CgroupError::Io {
            what: "write",
            path: path.to_path_buf(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_and_caps_map_onto_the_cfs_knobs() {
        assert_eq!(v1_shares(DEFAULT_WEIGHT), 1024);
        assert_eq!(v1_shares(512), 2048);
        assert_eq!(v1_shares(1), 4);
        assert_eq!(v1_shares(65535), 262_140);
        assert_eq!(v2_weight(DEFAULT_WEIGHT), 100);
        assert_eq!(v2_weight(512), 200);
        assert_eq!(v2_weight(1), 1);
        assert_eq!(v2_weight(65535), 10_000);
        assert_eq!(cap_quota_us(0), None);
        assert_eq!(cap_quota_us(50), Some(50_000));
        assert_eq!(cap_quota_us(250), Some(250_000));
        assert_eq!(memory_bytes(32), 96 << 20);
        assert_eq!(Limits::new(256, 0, 32, 2).pids, PIDS_BASE + 2);
    }

    #[test]
    fn mountinfo_gives_mount_points_types_and_controllers() {
        let info = "\
30 25 0:26 / /sys/fs/cgroup/cpu rw,relatime shared:9 - cgroup cgroup rw,cpu
31 25 0:27 / /sys/fs/cgroup/unified rw,relatime shared:10 - cgroup2 cgroup2 rw
32 25 0:28 / /mnt/with\\040space rw - ext4 /dev/sda1 rw
";
        let m: Vec<Mount> = mounts(info).collect();
        assert_eq!(m[0].point, Path::new("/sys/fs/cgroup/cpu"));
        assert_eq!((m[0].fstype, m[0].options), ("cgroup", "rw,cpu"));
        assert_eq!(m[1].fstype, "cgroup2");
        assert_eq!(m[2].point, Path::new("/mnt/with space"));
    }
}
