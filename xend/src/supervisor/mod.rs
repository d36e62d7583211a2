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
mod adopt;
pub mod policy;
pub mod spawn;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use hypervisor::control::proto::{DomainInfo, Event, Reason, Request, RunState};
use tokio::task::JoinHandle;

use crate::api::DomainStats;
use crate::config::{DomainConfig, Image};
use crate::console::{ConsoleError, ConsoleHub};
use crate::db::Db;
use crate::events::{EventBus, now};
use crate::settings::Settings;
use crate::vmm_client::{VmmConn, VmmError};
use policy::Decision;
use spawn::VmmPaths;

/// How long a destroyed VMM may take to exit before it is killed.
const EXIT_GRACE: Duration = Duration::from_secs(10);
/// How long an action waits for a restart or creation under way.
const LIFECYCLE_WAIT: Duration = Duration::from_secs(30);
/// How long the last console output of a destroyed VMM instance may take to drain.
const CONSOLE_DRAIN: Duration = Duration::from_secs(2);
/// Cached figures older than this are refreshed when the bulk endpoint reads.
const STALE: Duration = Duration::from_millis(500);

/// Errors of supervisor operations (rendered by the handlers).
#[derive(Debug, thiserror::Error)]
pub enum SupError {
    /// The name is taken.
    #[error("vm name clash: {0}")]
    NameClash(String),
    /// The config is not acceptable.
    #[error("{0}")]
    Invalid(String),
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
}

/// Where a domain is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Its VMM is being started.
    Creating,
    /// Its VMM runs (the guest may have shut down, if preserved).
    Running,
    /// Being rebuilt after a reboot.
    Restarting,
    /// Being destroyed.
    Dying,
}

impl Phase {
    fn as_str(self) -> &'static str {
        match self {
            Phase::Creating => "being created",
            Phase::Running => "running",
            Phase::Restarting => "restarting",
            Phase::Dying => "being destroyed",
        }
    }
}

/// Mutable state of one domain.
#[derive(Debug)]
pub struct DomState {
    /// The stored config (what the next boot uses).
    pub config: DomainConfig,
    /// Lifecycle phase.
    pub phase: Phase,
    /// Latest figures from the VMM.
    pub info: Option<DomainInfo>,
    /// When `info` was read.
    pub info_at: Option<Instant>,
    /// A refresh of `info` is under way.
    refreshing: bool,
    /// A halt was requested: no restart whatever the guest does.
    pub halted: bool,
    /// Wall-clock time of the last restart.
    pub restart_time: Option<f64>,
    /// Pid of the current VMM.
    pub pid: Option<u32>,
    /// Bumped for each VMM instance; stale watchers check it.
    generation: u64,
    watcher: Option<JoinHandle<()>>,
    /// Memory target set live, MiB (overrides the config's until reboot).
    pub live_memory: Option<u64>,
}

/// One domain.
#[derive(Debug)]
pub struct Domain {
    /// Domain id (never changes).
    pub id: u32,
    /// Domain name (never changes).
    pub name: String,
    /// Its console.
    pub console: Arc<ConsoleHub>,
    /// Runtime files of its VMM.
    pub paths: VmmPaths,
    st: Mutex<DomState>,
    ctl: tokio::sync::Mutex<Option<VmmConn>>,
    lifecycle: tokio::sync::Mutex<()>,
}

impl Domain {
    /// Lock the mutable state.
    pub fn state(&self) -> MutexGuard<'_, DomState> {
        self.st.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Send one request on the control connection (reconnecting if needed).
    pub async fn request(
        &self,
        req: &Request,
    ) -> Result<hypervisor::control::proto::Payload, SupError> {
        let mut ctl = self.ctl.lock().await;
        for attempt in 0..2 {
            if ctl.is_none() {
                match VmmConn::connect(&self.paths.socket).await {
                    Ok(c) => *ctl = Some(c),
                    Err(source) => {
                        return Err(SupError::Vmm {
                            name: self.name.clone(),
                            source,
                        });
                    }
                }
            }
            let conn = ctl.as_mut().expect("connected");
            match conn.request(req).await {
                Ok(p) => return Ok(p),
                Err(VmmError::Refused(e)) => {
                    return Err(SupError::Vmm {
                        name: self.name.clone(),
                        source: VmmError::Refused(e),
                    });
                }
                Err(source) => {
                    *ctl = None;
                    if attempt == 1 {
                        return Err(SupError::Vmm {
                            name: self.name.clone(),
                            source,
                        });
                    }
                }
            }
        }
        unreachable!("the loop returns")
    }

    /// Fresh figures from the VMM (stored in the cache).
    pub async fn refresh(&self) -> Result<(), SupError> {
        let info = match self.request(&Request::Info).await? {
            hypervisor::control::proto::Payload::Info(i) => *i,
            other => {
                return Err(SupError::Vmm {
                    name: self.name.clone(),
                    source: VmmError::Bad(format!("expected info, got {other:?}")),
                });
            }
        };
        let mut st = self.state();
        st.info = Some(info);
        st.info_at = Some(Instant::now());
        Ok(())
    }

    /// The domain's stats from the cache (plus its config).
    pub fn stats(&self) -> DomainStats {
        let st = self.state();
        crate::render::domain_stats(self, &st)
    }

    /// The domain record stored in the DB.
    pub fn record(&self) -> sxp::Value {
        let st = self.state();
        crate::render::db_record(self, &st)
    }
}

struct Table {
    doms: BTreeMap<u32, Arc<Domain>>,
    /// Names and ids being created (not yet in `doms`).
    reserved_names: Vec<String>,
    reserved_ids: Vec<u32>,
}

/// The supervisor: every domain xend knows.
pub struct Supervisor {
    /// The daemon's settings.
    pub settings: Arc<Settings>,
    /// The DB.
    pub db: Db,
    /// The event bus.
    pub events: EventBus,
    table: Mutex<Table>,
    stopping: AtomicBool,
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
    }
}

impl Supervisor {
    /// A supervisor with no domains yet (call [`Supervisor::adopt_all`]).
    pub fn new(settings: Arc<Settings>, db: Db, events: EventBus) -> Arc<Supervisor> {
        Arc::new(Supervisor {
            settings,
            db,
            events,
            table: Mutex::new(Table {
                doms: BTreeMap::new(),
                reserved_names: Vec::new(),
                reserved_ids: Vec::new(),
            }),
            stopping: AtomicBool::new(false),
        })
    }

    fn table(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every domain, by id.
    pub fn domains(&self) -> Vec<Arc<Domain>> {
        self.table().doms.values().cloned().collect()
    }

    /// A domain by name, else by id (names are tried first, as in Xen).
    pub fn lookup(&self, dom: &str) -> Option<Arc<Domain>> {
        let t = self.table();
        if let Some(d) = t.doms.values().find(|d| d.name == dom) {
            return Some(d.clone());
        }
        let id: u32 = dom.parse().ok()?;
        t.doms.get(&id).cloned()
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
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        for d in self.domains() {
            if let Some(w) = d.state().watcher.take() {
                w.abort();
            }
            d.console.close();
        }
    }

    fn stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// Check what the host must provide for `cfg`: memory that fits (now, and
    /// with every domain's memory committed), an unprivileged console port, a
    /// kernel image that exists and is readable. `replacing` is the domain whose
    /// config `cfg` replaces.
    pub fn check_host(&self, cfg: &DomainConfig, replacing: Option<u32>) -> Result<(), SupError> {
        cfg.validate()
            .map_err(|e| SupError::Invalid(e.to_string()))?;
        let (total, free) = crate::hostinfo::memory_mib();
        if free > 0 && cfg.memory > free {
            return Err(SupError::Invalid(format!(
                "Invalid parameter: memory: {} MiB does not fit in the host's free memory ({free} MiB)",
                cfg.memory
            )));
        }
        let committed: u64 = self
            .domains()
            .iter()
            .filter(|d| Some(d.id) != replacing)
            .map(|d| {
                let st = d.state();
                st.config.maxmem.max(st.config.memory)
            })
            .sum();
        let wanted = cfg.maxmem.max(cfg.memory);
        if total > 0 && committed + wanted > total {
            return Err(SupError::Invalid(format!(
                "Invalid parameter: memory: {wanted} MiB more would commit {} MiB of the host's {total} MiB",
                committed + wanted
            )));
        }
        if let Some(port) = cfg.console.filter(|p| *p < 1024) {
            return Err(SupError::Invalid(format!(
                "Invalid parameter: console: port {port} is privileged; use 1024-65535"
            )));
        }
        if let Image::Linux { kernel, .. } = &cfg.image {
            check_kernel(kernel)?;
        }
        Ok(())
    }

    /// Create and start a domain from `cfg`.
    pub async fn create(self: &Arc<Self>, cfg: DomainConfig) -> Result<Arc<Domain>, SupError> {
        self.check_host(&cfg, None)?;
        let (id, _res) = {
            let mut t = self.table();
            if t.doms.values().any(|d| d.name == cfg.name) || t.reserved_names.contains(&cfg.name) {
                return Err(SupError::NameClash(cfg.name.clone()));
            }
            let max_live = t.doms.keys().copied().max().unwrap_or(0);
            let max_res = t.reserved_ids.iter().copied().max().unwrap_or(0);
            let id = max_live.max(max_res) + 1;
            t.reserved_names.push(cfg.name.clone());
            t.reserved_ids.push(id);
            (
                id,
                Reservation {
                    sup: self,
                    name: cfg.name.clone(),
                    id,
                },
            )
        };
        let port = self.console_port(&cfg, id);
        let console = self.bind_console(port, id, &cfg.name).await?;
        let dom = Arc::new(Domain {
            id,
            name: cfg.name.clone(),
            console,
            paths: VmmPaths::new(&self.settings.state_dir, id),
            st: Mutex::new(DomState {
                config: cfg,
                phase: Phase::Creating,
                info: None,
                info_at: None,
                refreshing: false,
                halted: false,
                restart_time: None,
                pid: None,
                generation: 0,
                watcher: None,
                live_memory: None,
            }),
            ctl: tokio::sync::Mutex::new(None),
            lifecycle: tokio::sync::Mutex::new(()),
        });
        let _life = dom.lifecycle.lock().await;
        // Record first: a crash from here on leaves a record to check.
        if let Err(e) = self.save(&dom) {
            dom.console.close();
            return Err(e);
        }
        let _ = self.db.save_config(&dom.name, &dom.state().config.to_sxp());
        self.table().doms.insert(id, dom.clone());
        drop(_res);
        if let Err(e) = self.start_instance(&dom).await {
            tracing::error!("{e}");
            self.stop_instance(&dom).await;
            self.forget(&dom);
            return Err(e);
        }
        dom.state().phase = Phase::Running;
        tracing::info!(
            "created domain {} (id {id}), console on port {port}",
            dom.name
        );
        self.events
            .domain("xend.domain.create", id, &dom.name, None);
        drop(_life);
        Ok(dom)
    }

    fn console_port(&self, cfg: &DomainConfig, id: u32) -> u16 {
        cfg.console
            .unwrap_or_else(|| self.settings.console_base.saturating_add(id as u16))
    }

    async fn bind_console(
        &self,
        port: u16,
        id: u32,
        name: &str,
    ) -> Result<Arc<ConsoleHub>, SupError> {
        let log = self
            .settings
            .state_dir
            .join("console")
            .join(format!("{id}.log"));
        Ok(ConsoleHub::bind(
            &self.settings.console_address,
            port,
            id,
            name,
            &log,
            self.settings.token.clone(),
            self.events.clone(),
        )
        .await?)
    }

    /// Write the domain's DB record.
    pub fn save(&self, dom: &Domain) -> Result<(), SupError> {
        self.db.save_domain(dom.id, &dom.record())?;
        Ok(())
    }

    /// Remove a domain that never started or is gone: table, record, console.
    fn forget(&self, dom: &Arc<Domain>) {
        dom.console.close();
        if let Some(w) = dom.state().watcher.take() {
            w.abort();
        }
        self.table().doms.remove(&dom.id);
        if let Err(e) = self.db.remove_domain(dom.id) {
            tracing::error!("domain {}: {e}", dom.name);
        }
        dom.paths.remove_stale();
    }

    /// Start a VMM for `dom` from its stored config and attach to it.
    async fn start_instance(self: &Arc<Self>, dom: &Arc<Domain>) -> Result<(), SupError> {
        let cfg = dom.state().config.clone();
        let args = spawn::vmm_args(&cfg, dom.id, &dom.paths);
        std::fs::create_dir_all(dom.paths.socket.parent().expect("vmm dir")).map_err(|e| {
            SupError::Spawn {
                name: dom.name.clone(),
                why: format!("cannot create {}: {e}", dom.paths.socket.display()),
            }
        })?;
        dom.paths.remove_stale();
        let pid = spawn::spawn(&self.settings.vmm_path, &args)
            .await
            .map_err(|why| SupError::Spawn {
                name: dom.name.clone(),
                why,
            })?;
        {
            let mut st = dom.state();
            st.pid = Some(pid);
            st.live_memory = None;
        }
        self.attach(dom, true).await
    }

    /// Connect to `dom`'s running VMM: control, console and event connections.
    async fn attach(self: &Arc<Self>, dom: &Arc<Domain>, history: bool) -> Result<(), SupError> {
        let vmm_err = |source| SupError::Vmm {
            name: dom.name.clone(),
            source,
        };
        *dom.ctl.lock().await = None;
        dom.refresh().await?;
        let console = VmmConn::connect(&dom.paths.socket)
            .await
            .map_err(vmm_err)?
            .into_console(history)
            .await
            .map_err(vmm_err)?;
        dom.console.attach_vmm(console);
        let mut events = VmmConn::connect(&dom.paths.socket)
            .await
            .map_err(vmm_err)?
            .into_events()
            .await
            .map_err(vmm_err)?;
        let generation = {
            let mut st = dom.state();
            st.generation += 1;
            if st.pid.is_none() {
                st.pid = st.info.as_ref().map(|i| i.vmm.pid);
            }
            st.generation
        };
        let sup = self.clone();
        let d = dom.clone();
        let watcher = tokio::spawn(async move {
            let mut first = true;
            loop {
                match events.next().await {
                    Some(Ok(ev)) => {
                        sup.on_event(&d, generation, &ev, first);
                        first = false;
                    }
                    Some(Err(e)) => {
                        tracing::warn!("domain {}: bad event: {e}", d.name);
                    }
                    None => break,
                }
            }
            sup.on_vmm_gone(&d, generation);
        });
        if let Some(old) = dom.state().watcher.replace(watcher) {
            old.abort();
        }
        Ok(())
    }

    fn on_event(self: &Arc<Self>, dom: &Arc<Domain>, generation: u64, ev: &Event, first: bool) {
        let prev = {
            let mut st = dom.state();
            if st.generation != generation {
                return;
            }
            let prev = st.info.as_ref().map(|i| i.state);
            if let Some(info) = st.info.as_mut() {
                info.state = ev.state;
                info.shutdown_reason = ev.shutdown_reason;
                info.crash_reason = ev.crash_reason.clone();
            }
            prev
        };
        let was_paused = prev == Some(RunState::Paused);
        match ev.state {
            RunState::Paused if !was_paused && !first => {
                self.events
                    .domain("xend.domain.pause", dom.id, &dom.name, None);
            }
            RunState::Running | RunState::Blocked if was_paused && !first => {
                self.events
                    .domain("xend.domain.unpause", dom.id, &dom.name, None);
            }
            RunState::Shutdown | RunState::Crashed => {
                let reason = if ev.state == RunState::Crashed {
                    Reason::Crash
                } else {
                    ev.shutdown_reason.unwrap_or(Reason::Poweroff)
                };
                let name = if reason == Reason::Crash {
                    "xend.domain.crash"
                } else {
                    "xend.domain.shutdown"
                };
                let detail = match reason {
                    Reason::Crash => ev.crash_reason.clone().or(Some("crash".into())),
                    r => Some(r.as_str().to_string()),
                };
                self.events.domain(name, dom.id, &dom.name, detail);
                if reason == Reason::Reboot {
                    self.events
                        .domain("xend.domain.reboot", dom.id, &dom.name, None);
                }
                self.spawn_exit(dom, generation, reason);
            }
            _ => {}
        }
    }

    fn on_vmm_gone(self: &Arc<Self>, dom: &Arc<Domain>, generation: u64) {
        if self.stopping() {
            return;
        }
        let (same, phase, final_state) = {
            let st = dom.state();
            (
                st.generation == generation,
                st.phase,
                st.info.as_ref().is_some_and(|i| i.state.is_final()),
            )
        };
        if !same || phase != Phase::Running || final_state {
            return;
        }
        tracing::error!(
            "domain {} (id {}): its VMM exited unexpectedly",
            dom.name,
            dom.id
        );
        if let Some(info) = dom.state().info.as_mut() {
            info.state = RunState::Crashed;
            info.crash_reason = Some("VMM exited".into());
        }
        self.events.domain(
            "xend.domain.crash",
            dom.id,
            &dom.name,
            Some("VMM exited".into()),
        );
        self.spawn_exit(dom, generation, Reason::Crash);
    }

    fn spawn_exit(self: &Arc<Self>, dom: &Arc<Domain>, generation: u64, reason: Reason) {
        let sup = self.clone();
        let dom = dom.clone();
        tokio::spawn(async move { sup.handle_exit(&dom, generation, reason).await });
    }

    /// The guest ended: apply the restart policy.
    async fn handle_exit(self: &Arc<Self>, dom: &Arc<Domain>, generation: u64, reason: Reason) {
        let _life = dom.lifecycle.lock().await;
        if self.stopping() {
            return;
        }
        let (decision, phase) = {
            let st = dom.state();
            if st.generation != generation {
                return;
            }
            let since = st.restart_time.map(|t| now() - t);
            (
                policy::decide(
                    &st.config,
                    reason,
                    st.halted,
                    since,
                    self.settings.min_restart_time,
                ),
                st.phase,
            )
        };
        if phase != Phase::Running {
            return;
        }
        tracing::info!(
            "domain {} (id {}) ended ({}): {decision:?}",
            dom.name,
            dom.id,
            reason.as_str()
        );
        match decision {
            Decision::Preserve => {}
            Decision::Destroy => self.destroy_locked(dom, "xend.domain.died").await,
            Decision::TooFast => {
                tracing::error!("VM {} restarting too fast", dom.name);
                self.events.domain(
                    "xend.domain.died",
                    dom.id,
                    &dom.name,
                    Some(format!("VM {} restarting too fast", dom.name)),
                );
                self.destroy_locked(dom, "xend.domain.destroy").await;
            }
            Decision::Restart => self.restart_locked(dom).await,
        }
    }

    /// Rebuild `dom` (lifecycle lock held): same id, name and console.
    async fn restart_locked(self: &Arc<Self>, dom: &Arc<Domain>) {
        dom.state().phase = Phase::Restarting;
        self.stop_instance(dom).await;
        {
            let mut st = dom.state();
            st.restart_time = Some(now());
            st.halted = false;
            st.info = None;
        }
        match self.start_instance(dom).await {
            Ok(()) => {
                dom.state().phase = Phase::Running;
                if let Err(e) = self.save(dom) {
                    tracing::error!("domain {}: {e}", dom.name);
                }
                tracing::info!("restarted domain {} (id {})", dom.name, dom.id);
                self.events
                    .domain("xend.domain.restart", dom.id, &dom.name, None);
            }
            Err(e) => {
                tracing::error!("restart of domain {} failed: {e}", dom.name);
                self.stop_instance(dom).await;
                self.forget(dom);
                self.events
                    .domain("xend.domain.died", dom.id, &dom.name, Some(e.to_string()));
            }
        }
    }

    /// Destroy the current VMM instance and wait for its process to end.
    async fn stop_instance(&self, dom: &Arc<Domain>) {
        if let Some(w) = dom.state().watcher.take() {
            w.abort();
        }
        let pid = dom.state().pid.take();
        if let Err(e) = dom.request(&Request::Destroy).await {
            tracing::debug!("domain {}: destroy: {e}", dom.name);
        }
        *dom.ctl.lock().await = None;
        if let Some(pid) = pid {
            spawn::wait_exit(pid, EXIT_GRACE).await;
        }
        // The instance's last words (e.g. "minios: reboot") reach the console.
        dom.console.finish_vmm(CONSOLE_DRAIN).await;
        dom.paths.remove_stale();
    }

    async fn destroy_locked(self: &Arc<Self>, dom: &Arc<Domain>, event: &str) {
        dom.state().phase = Phase::Dying;
        self.stop_instance(dom).await;
        self.forget(dom);
        tracing::info!("domain {} (id {}) destroyed", dom.name, dom.id);
        self.events.domain(event, dom.id, &dom.name, None);
    }

    /// Destroy `dom` now (`op=destroy`); with `reason=reboot` rebuild it.
    pub async fn destroy(
        self: &Arc<Self>,
        dom: &Arc<Domain>,
        reboot: bool,
    ) -> Result<(), SupError> {
        let _life = dom.lifecycle.lock().await;
        let phase = dom.state().phase;
        if phase == Phase::Dying || self.lookup(&dom.id.to_string()).is_none() {
            return Ok(());
        }
        if reboot {
            self.restart_locked(dom).await;
        } else {
            self.destroy_locked(dom, "xend.domain.destroy").await;
        }
        Ok(())
    }

    /// Ask the guest to shut down; `halt` cancels any restart.
    pub async fn shutdown(&self, dom: &Domain, reason: Reason) -> Result<(), SupError> {
        let _life = self.ready(dom).await?;
        if reason == Reason::Halt {
            dom.state().halted = true;
        }
        dom.request(&Request::Shutdown { reason }).await?;
        Ok(())
    }

    /// Wait until no creation, restart or destruction of `dom` is under way,
    /// then hold that off while the caller acts; `Busy` unless it is running.
    pub async fn ready<'a>(
        &self,
        dom: &'a Domain,
    ) -> Result<tokio::sync::MutexGuard<'a, ()>, SupError> {
        let guard = tokio::time::timeout(LIFECYCLE_WAIT, dom.lifecycle.lock())
            .await
            .map_err(|_| SupError::Busy(dom.name.clone(), dom.state().phase.as_str()))?;
        self.ensure_running(dom)?;
        Ok(guard)
    }

    /// Fail with `Busy` unless the domain is in its running phase.
    pub fn ensure_running(&self, dom: &Domain) -> Result<(), SupError> {
        let phase = dom.state().phase;
        if phase != Phase::Running {
            return Err(SupError::Busy(dom.name.clone(), phase.as_str()));
        }
        Ok(())
    }

    /// A simple request (pause, unpause, memory, pinning) followed by a refresh.
    pub async fn simple(&self, dom: &Domain, req: Request) -> Result<(), SupError> {
        let _life = self.ready(dom).await?;
        dom.request(&req).await?;
        let _ = dom.refresh().await;
        Ok(())
    }

    /// Set the memory target (MiB) and remember it.
    pub async fn set_memory(&self, dom: &Domain, mib: u64) -> Result<(), SupError> {
        self.simple(dom, Request::SetMemTarget { mib }).await?;
        dom.state().live_memory = Some(mib);
        Ok(())
    }

    /// Refresh the figures of every domain whose cache is stale, in the
    /// background (the bulk endpoint answers from the cache at once).
    pub fn refresh_stale(&self) {
        for d in self.domains() {
            let go = {
                let mut st = d.state();
                let stale = st.info_at.is_none_or(|t| t.elapsed() > STALE);
                if stale && !st.refreshing && st.phase == Phase::Running {
                    st.refreshing = true;
                    true
                } else {
                    false
                }
            };
            if go {
                tokio::spawn(async move {
                    let _ = d.refresh().await;
                    d.state().refreshing = false;
                });
            }
        }
    }

    /// Replace the stored config; apply what can change live. Returns the
    /// fields applied now and those kept for the next boot.
    pub async fn configure(
        &self,
        dom: &Arc<Domain>,
        new: DomainConfig,
    ) -> Result<(Vec<String>, Vec<String>), SupError> {
        let _life = dom.lifecycle.lock().await;
        self.ensure_running(dom)?;
        if new.name != dom.name {
            return Err(SupError::Invalid(format!(
                "Invalid parameter: config: the name cannot change (domain {} was given name {})",
                dom.name, new.name
            )));
        }
        self.check_host(&new, Some(dom.id))?;
        let old = dom.state().config.clone();
        let mut live = Vec::new();
        let mut next = Vec::new();
        if new.maxmem > old.maxmem {
            dom.request(&Request::SetMaxMem { mib: new.maxmem }).await?;
            live.push("maxmem".to_string());
        }
        if new.memory != old.memory {
            dom.request(&Request::SetMemTarget { mib: new.memory })
                .await?;
            dom.state().live_memory = Some(new.memory);
            live.push("memory".to_string());
        }
        if new.maxmem < old.maxmem {
            dom.request(&Request::SetMaxMem { mib: new.maxmem }).await?;
            live.push("maxmem".to_string());
        }
        if new.cpu != old.cpu {
            let cpus: Vec<usize> = new
                .cpu
                .filter(|c| *c >= 0)
                .map(|c| c as usize)
                .into_iter()
                .collect();
            for vcpu in 0..old.vcpus {
                dom.request(&Request::PinVcpu {
                    vcpu,
                    cpus: cpus.clone(),
                })
                .await?;
            }
            live.push("cpu".to_string());
        }
        if new.restart != old.restart {
            live.push("restart".to_string());
        }
        for (k, a, b) in [
            ("on_poweroff", new.on_poweroff, old.on_poweroff),
            ("on_reboot", new.on_reboot, old.on_reboot),
            ("on_crash", new.on_crash, old.on_crash),
        ] {
            if a != b {
                live.push(k.to_string());
            }
        }
        if new.vcpus != old.vcpus {
            next.push("vcpus".to_string());
        }
        if new.cpu_weight != old.cpu_weight {
            next.push("cpu_weight".to_string());
        }
        if new.console != old.console {
            next.push("console".to_string());
        }
        if new.image != old.image {
            next.push("image".to_string());
        }
        if new.devices != old.devices {
            next.push("device".to_string());
        }
        dom.state().config = new;
        self.save(dom)?;
        let _ = self.db.save_config(&dom.name, &dom.state().config.to_sxp());
        let _ = dom.refresh().await;
        self.events.domain(
            "xend.domain.config",
            dom.id,
            &dom.name,
            Some(format!(
                "live: {}; next boot: {}",
                live.join(" "),
                next.join(" ")
            )),
        );
        Ok((live, next))
    }
}

/// The kernel image an API client names must be a readable regular file.
pub fn check_kernel(path: &std::path::Path) -> Result<(), SupError> {
    let shown = path.display();
    let meta = std::fs::metadata(path)
        .map_err(|_| SupError::Invalid(format!("Kernel image does not exist: {shown}")))?;
    if !meta.is_file() {
        return Err(SupError::Invalid(format!(
            "Kernel image is not a regular file: {shown}"
        )));
    }
    std::fs::File::open(path)
        .map_err(|e| SupError::Invalid(format!("Kernel image is not readable: {shown}: {e}")))?;
    Ok(())
}
