//! Domain supervision: the domains table, creating domains (one detached VMM
//! process each), watching their events, restart policy, re-adopting running
//! VMMs when xend starts, and the DB records.
//!
//! Invariants:
//! - A domain's DB record is written before its VMM is started and removed only
//!   after its VMM has exited, so after a crash of xend every running VMM has a
//!   record (or is found by its command line) and every record is checked.
//! - Names and ids are unique among live domains; a restart keeps both and the
//!   console listener.
//! - xend never kills a VMM except to destroy its domain; stopping xend leaves
//!   every domain running.
mod actions;
mod adopt;
pub mod confine;
pub mod devices;
mod domain;
mod lifecycle;
pub mod migrate;
pub mod policy;
mod progress;
pub mod sampler;
pub mod save;
pub mod sched;
pub mod spawn;
pub mod stats;
mod versioned;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::config::{DomainConfig, Image};
use crate::console::{ConsoleError, ConsoleHub, Lifetime, LogSpec};
use crate::db::Db;
use crate::events::EventBus;
use crate::settings::Settings;
use crate::vmm_client::VmmError;
pub use domain::{DomState, Domain, Phase, StateGuard};
use spawn::VmmPaths;

/// How long a destroyed VMM may take to exit before it is killed.
const EXIT_GRACE: Duration = Duration::from_secs(10);
/// How long an action waits for a restart or creation under way.
const LIFECYCLE_WAIT: Duration = Duration::from_secs(30);
/// How long the last console output of a destroyed VMM instance may take to drain.
const CONSOLE_DRAIN: Duration = Duration::from_secs(2);

/// How a new domain's first VMM starts.
#[derive(Clone, Debug)]
pub enum Launch {
    /// Boot the config's kernel (paused before its first instruction if
    /// asked: `xm create -p`).
    Boot {
        /// Keep it paused.
        paused: bool,
    },
    /// Resume the saved image `image` (`vmm --restore`), paused if asked.
    Restore {
        /// The image (absolute, inside `save-dir`).
        image: std::path::PathBuf,
        /// Keep it paused.
        paused: bool,
    },
    /// Wait for a migrating domain (`vmm --incoming LISTEN`) that presents `token`.
    Incoming {
        /// `ADDR:PORT` the VMM listens on.
        listen: String,
        /// The one-time token the source VMM must present.
        token: String,
        /// Keep it paused on arrival.
        paused: bool,
    },
}

/// Errors of supervisor operations (rendered by the handlers).
#[derive(Debug, thiserror::Error)]
pub enum SupError {
    /// The name is taken.
    #[error("vm name clash: {0}")]
    NameClash(String),
    /// Another domain has the UUID (409 like a name clash).
    #[error("vm uuid clash: {uuid} is domain {name}'s")]
    UuidClash {
        /// The UUID.
        uuid: uuid::Uuid,
        /// The domain that has it.
        name: String,
    },
    /// The config is not acceptable.
    #[error("{0}")]
    Invalid(String),
    /// A disk, kernel or ramdisk path the policy refuses (403), or a mistake
    /// in one inside the allowed directories (400).
    #[error(transparent)]
    Confine(#[from] confine::ConfineError),
    /// The console port is taken.
    #[error(transparent)]
    Console(#[from] ConsoleError),
    /// The VMM could not be started.
    #[error("cannot start domain {name}: {why}")]
    Spawn {
        /// Domain name.
        name: String,
        /// Why.
        why: String,
    },
    /// The VMM refused or failed a request.
    #[error("domain {name}: {source}")]
    Vmm {
        /// Domain name.
        name: String,
        /// Why.
        #[source]
        source: VmmError,
    },
    /// The domain is being created, restarted or destroyed.
    #[error("domain {0} is busy ({1}); try again")]
    Busy(String, &'static str),
    /// The DB could not be written.
    #[error(transparent)]
    Db(#[from] crate::db::DbError),
    /// Talking to the destination xend of a migration failed.
    #[error(transparent)]
    Peer(#[from] migrate::PeerError),
}

struct Table {
    doms: BTreeMap<u32, Arc<Domain>>,
    /// Names and ids being created (not yet in `doms`).
    reserved_names: Vec<String>,
    reserved_ids: Vec<u32>,
    /// UUIDs of domains being created, with their names.
    reserved_uuids: Vec<(uuid::Uuid, String)>,
}

/// The supervisor: every domain xend knows.
pub struct Supervisor {
    /// The daemon's settings.
    pub settings: Arc<Settings>,
    /// The DB.
    pub db: Db,
    /// The event bus.
    pub events: EventBus,
    /// Every domain's cgroup parent (`None`: no cgroups on this host).
    pub cgroups: Option<crate::cgroup::Cgroups>,
    table: Mutex<Table>,
    stopping: AtomicBool,
    /// Sampler passes finished so far (see [`Supervisor::passes`]).
    passes: tokio::sync::watch::Sender<u64>,
}

impl std::fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Supervisor").finish_non_exhaustive()
    }
}

/// Releases a name/id reservation when creation ends either way.
struct Reservation<'a> {
    sup: &'a Supervisor,
    name: String,
    id: u32,
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        let mut t = self.sup.table();
        t.reserved_names.retain(|n| n != &self.name);
        t.reserved_ids.retain(|i| *i != self.id);
        t.reserved_uuids.retain(|(_, n)| n != &self.name);
    }
}

impl Supervisor {
    /// A supervisor with no domains yet (call [`Supervisor::adopt_all`]).
    pub fn new(settings: Arc<Settings>, db: Db, events: EventBus) -> Arc<Supervisor> {
        crate::vmm_client::set_request_timeout(settings.vmm_timeout);
        let cgroups = sched::detect(settings.cgroup_parent.as_deref());
        Arc::new(Supervisor {
            cgroups,
            settings,
            db,
            events,
            table: Mutex::new(Table {
                doms: BTreeMap::new(),
                reserved_names: Vec::new(),
                reserved_ids: Vec::new(),
                reserved_uuids: Vec::new(),
            }),
            stopping: AtomicBool::new(false),
            passes: tokio::sync::watch::Sender::new(0),
        })
    }

    /// The count of sampler passes finished, which moves after each pass:
    /// what keeps derived views (the bulk reply's rendered entries) warm
    /// reads it, so the model never calls its views.
    pub fn passes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.passes.subscribe()
    }

    fn table(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every domain, by id.
    pub fn domains(&self) -> Vec<Arc<Domain>> {
        self.table().doms.values().cloned().collect()
    }

    /// A domain by name, else by UUID (canonical form), else by id (names
    /// are tried first, as in Xen).
    pub fn lookup(&self, dom: &str) -> Option<Arc<Domain>> {
        let t = self.table();
        if let Some(d) = t.doms.values().find(|d| d.name == dom) {
            return Some(d.clone());
        }
        if crate::config::is_uuid(dom) {
            return t
                .doms
                .values()
                .find(|d| d.uuid.is_some_and(|u| u.to_string() == dom))
                .cloned();
        }
        let id: u32 = dom.parse().ok()?;
        t.doms.get(&id).cloned()
    }

    /// The name of the live domain (other than `except`) with `uuid`, if any.
    fn uuid_owner(&self, t: &Table, uuid: uuid::Uuid, except: Option<u32>) -> Option<String> {
        t.doms
            .values()
            .find(|d| Some(d.id) != except && d.uuid == Some(uuid))
            .map(|d| d.name.clone())
            .or_else(|| {
                t.reserved_uuids
                    .iter()
                    .find(|(u, _)| *u == uuid)
                    .map(|(_, n)| n.clone())
            })
    }

    /// The domain whose console listens on `port`.
    pub fn by_console_port(&self, port: u16) -> Option<Arc<Domain>> {
        self.table()
            .doms
            .values()
            .find(|d| d.console.port == port)
            .cloned()
    }

    /// Stop reacting to VMM events (xend is shutting down; domains keep running).
    pub async fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        for d in self.domains() {
            if let Some(w) = d.state().watcher.take() {
                w.abort();
            }
            d.console.close().await;
        }
        if let Some(cg) = &self.cgroups {
            cg.remove_parents();
        }
    }

    fn stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// Check what the host must provide for `cfg`: disks, kernel and ramdisk
    /// the confinement policy allows (`disk-dirs`, `kernel-dirs`: 403
    /// otherwise), memory that fits (now, and with every domain's memory
    /// committed), an unprivileged console port, a kernel image that exists
    /// and is readable. `replacing` is the domain whose config `cfg` replaces.
    pub fn check_host(&self, cfg: &DomainConfig, replacing: Option<u32>) -> Result<(), SupError> {
        cfg.validate()
            .map_err(|e| SupError::Invalid(e.to_string()))?;
        devices::check(cfg, &self.settings.confinement)?;
        self.confined_kernel(cfg)?;
        if let Some(cpu) = cfg.cpu.filter(|c| *c >= 0) {
            let nr = crate::hostinfo::node_info().nr_cpus;
            if cpu >= i64::from(nr) {
                return Err(SupError::Invalid(format!(
                    "Invalid parameter: cpu: {cpu}: this host has {nr} CPUs (0-{}); use one of them or -1 for no pinning",
                    nr.saturating_sub(1)
                )));
            }
        }
        let (_, free) = crate::hostinfo::memory_mib();
        if free > 0 && cfg.memory > free {
            return Err(SupError::Invalid(format!(
                "Invalid parameter: memory: {} MiB does not fit in the host's free memory ({free} MiB)",
                cfg.memory
            )));
        }
        self.check_commitment(cfg.maxmem.max(cfg.memory), replacing)?;
        if let Some(port) = cfg.console.filter(|p| *p < 1024) {
            return Err(SupError::Invalid(format!(
                "Invalid parameter: console: port {port} is privileged; use 1024-65535"
            )));
        }
        Ok(())
    }

    /// Refuse `wanted` MiB of maximum memory for a domain (a new one, or
    /// `replacing`'s new maximum) when, with every other domain's maximum,
    /// it would commit more than the host's memory.
    pub(crate) fn check_commitment(
        &self,
        wanted: u64,
        replacing: Option<u32>,
    ) -> Result<(), SupError> {
        let (total, _) = crate::hostinfo::memory_mib();
        let committed: u64 = self
            .domains()
            .iter()
            .filter(|d| Some(d.id) != replacing)
            .map(|d| {
                let st = d.state();
                st.config.maxmem.max(st.config.memory)
            })
            .sum();
        if total > 0 && committed + wanted > total {
            return Err(SupError::Invalid(format!(
                "Invalid parameter: memory: {wanted} MiB more would commit {} MiB of the host's {total} MiB",
                committed + wanted
            )));
        }
        Ok(())
    }

    /// The canonical kernel and ramdisk paths of `cfg` (`None` for the
    /// built-in minios), once the policy allows both (see [`confine`]).
    pub fn confined_kernel(
        &self,
        cfg: &DomainConfig,
    ) -> Result<Option<(PathBuf, Option<PathBuf>)>, SupError> {
        let Image::Linux {
            kernel, ramdisk, ..
        } = &cfg.image
        else {
            return Ok(None);
        };
        let policy = &self.settings.confinement;
        let kernel = policy.kernel("kernel", kernel)?;
        let ramdisk = match ramdisk {
            Some(r) => Some(policy.kernel("ramdisk", r)?),
            None => None,
        };
        Ok(Some((kernel, ramdisk)))
    }

    /// Create and start a domain from `cfg`.
    pub async fn create(
        self: &Arc<Self>,
        cfg: DomainConfig,
        paused: bool,
    ) -> Result<Arc<Domain>, SupError> {
        self.create_with(cfg, Launch::Boot { paused }).await
    }

    /// Create a domain whose first VMM starts as `launch` says: booted,
    /// restored from an image, or waiting for a migration. For
    /// [`Launch::Incoming`] the domain stays in [`Phase::Incoming`] until the
    /// migrated domain runs (see `migrate.rs`).
    pub async fn create_with(
        self: &Arc<Self>,
        mut cfg: DomainConfig,
        launch: Launch,
    ) -> Result<Arc<Domain>, SupError> {
        self.check_host(&cfg, None)?;
        // Every domain has a UUID from now on; it is kept in the stored
        // config, so restarts, save/restore and migration keep it.
        let uuid = *cfg.uuid.get_or_insert_with(uuid::Uuid::new_v4);
        // Ids any live VMM holds (managed or not) are never reused.
        let max_running = spawn::live_domids(&self.settings.state_dir.join("vmm"))
            .into_iter()
            .max()
            .unwrap_or(0);
        let (id, _res) = {
            let mut t = self.table();
            if t.doms.values().any(|d| d.name == cfg.name) || t.reserved_names.contains(&cfg.name) {
                return Err(SupError::NameClash(cfg.name.clone()));
            }
            if let Some(name) = self.uuid_owner(&t, uuid, None) {
                return Err(SupError::UuidClash { uuid, name });
            }
            let max_live = t.doms.keys().copied().max().unwrap_or(0);
            let max_res = t.reserved_ids.iter().copied().max().unwrap_or(0);
            let id = max_live.max(max_res).max(max_running) + 1;
            t.reserved_names.push(cfg.name.clone());
            t.reserved_ids.push(id);
            t.reserved_uuids.push((uuid, cfg.name.clone()));
            (
                id,
                Reservation {
                    sup: self,
                    name: cfg.name.clone(),
                    id,
                },
            )
        };
        let phase = match launch {
            Launch::Incoming { .. } => Phase::Incoming,
            _ => Phase::Creating,
        };
        let dom = self
            .domain_with_console(id, cfg, None, Lifetime::New, phase, None)
            .await?;
        let _life = dom.lifecycle.lock().await;
        // Record first: a crash from here on leaves a record to check.
        if let Err(e) = self.save(&dom) {
            dom.console.close().await;
            return Err(e);
        }
        let _ = self.db.save_config(&dom.name, &dom.state().config.to_sxp());
        self.table().doms.insert(id, dom.clone());
        drop(_res);
        if let Err(e) = self.start_instance_with(&dom, &launch).await {
            tracing::error!("{e}");
            self.stop_instance(&dom).await;
            self.forget(&dom).await;
            return Err(e);
        }
        let event = match &launch {
            Launch::Boot { .. } => "xend.domain.create",
            Launch::Restore { .. } => "xend.domain.restore",
            Launch::Incoming { .. } => {
                tracing::info!(
                    "domain {} (id {id}) waits for its migration, console on port {}",
                    dom.name,
                    dom.console.port
                );
                drop(_life);
                self.spawn_incoming_wait(&dom);
                return Ok(dom);
            }
        };
        dom.state().phase = Phase::Running;
        tracing::info!(
            "created domain {} (id {id}), console on port {}",
            dom.name,
            dom.console.port
        );
        let detail = match &launch {
            Launch::Restore { image, .. } => {
                // The image is read twice (checked, then loaded).
                let read = std::fs::metadata(image).map_or(0, |m| 2 * m.len());
                self.finish_progress(&dom, "restore", read, 0.0);
                Some(image.display().to_string())
            }
            _ => None,
        };
        self.events.domain(event, id, &dom.name, detail);
        drop(_life);
        Ok(dom)
    }

    fn console_port(&self, cfg: &DomainConfig, id: u32) -> u16 {
        cfg.console
            .unwrap_or_else(|| self.settings.console_base.saturating_add(id as u16))
    }

    /// Listen on domain `id`'s console port; its log is the one of `lifetime`
    /// (a new domain gets a new log: see [`crate::console`]).
    async fn bind_console(
        &self,
        port: u16,
        id: u32,
        name: &str,
        lifetime: Lifetime,
    ) -> Result<Arc<ConsoleHub>, SupError> {
        let log = LogSpec {
            dir: self.settings.state_dir.join("console"),
            lifetime,
            modes: self.settings.file_modes,
        };
        Ok(ConsoleHub::bind(
            (&self.settings.console_address, port),
            id,
            name,
            &log,
            (
                self.settings.token.clone(),
                self.settings.tls_server.clone(),
            ),
            self.events.clone(),
        )
        .await?)
    }

    /// Domain `id`'s record in `phase`, its console listening on `port`
    /// (by default [`Self::console_port`]) with the log of `lifetime`.
    async fn domain_with_console(
        &self,
        id: u32,
        cfg: DomainConfig,
        port: Option<u16>,
        lifetime: Lifetime,
        phase: Phase,
        restart_time: Option<f64>,
    ) -> Result<Arc<Domain>, SupError> {
        let port = port.unwrap_or_else(|| self.console_port(&cfg, id));
        let console = self.bind_console(port, id, &cfg.name, lifetime).await?;
        Ok(Domain::new(
            id,
            cfg,
            console,
            VmmPaths::new(&self.settings.state_dir, id),
            phase,
            restart_time,
        ))
    }

    /// Write the domain's DB record.
    pub fn save(&self, dom: &Domain) -> Result<(), SupError> {
        self.db.save_entry(dom.id, &dom.db_entry())?;
        Ok(())
    }

    /// Remove a domain that never started or is gone: table, record, console.
    async fn forget(&self, dom: &Arc<Domain>) {
        dom.console.close().await;
        if let Some(w) = dom.state().watcher.take() {
            w.abort();
        }
        self.table().doms.remove(&dom.id);
        if let Err(e) = self.db.remove_domain(dom.id) {
            tracing::error!("domain {}: {e}", dom.name);
        }
        dom.paths.remove_stale();
        self.remove_cgroup(dom);
    }
}
