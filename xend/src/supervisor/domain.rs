//! One domain: its identity, console, mutable state and control connection.
use std::time::{Duration, Instant};

use hypervisor::control::proto::{DomainInfo, Request, RunState};
use tokio::task::JoinHandle;

use super::SupError;
use super::spawn::VmmPaths;
use super::versioned::{Versioned, VersionedGuard};
use crate::api::{ConsoleInfo, DomainRecord, DomainStats};
use crate::config::DomainConfig;
use crate::console::ConsoleHub;
use crate::db::DomainEntry;
use crate::vmm_client::{VmmConn, VmmError};
use std::sync::Arc;

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
    /// Being saved to an image (the VMM ends when the image is written).
    Saving,
    /// Migrating to another xend (the VMM ends once the destination runs it).
    Migrating,
    /// Waiting for a migrating domain to arrive from another xend.
    Incoming,
}

impl Phase {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Phase::Creating => "being created",
            Phase::Running => "running",
            Phase::Restarting => "restarting",
            Phase::Dying => "being destroyed",
            Phase::Saving => "being saved",
            Phase::Migrating => "migrating",
            Phase::Incoming => "arriving by migration",
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
    pub(super) refreshing: bool,
    /// A halt was requested: no restart whatever the guest does.
    pub halted: bool,
    /// The shutdown xend last asked of this instance (cleared when it
    /// restarts): a reset answering a poweroff is a poweroff
    /// ([`super::policy::effective_reason`]).
    pub requested: Option<hypervisor::control::proto::Reason>,
    /// Wall-clock time of the last restart.
    pub restart_time: Option<f64>,
    /// Restarts by the restart policy since xend started (`/metrics`).
    pub restarts: u64,
    /// Pid of the current VMM.
    pub pid: Option<u32>,
    /// Bumped for each VMM instance; stale watchers check it.
    pub(super) generation: u64,
    pub(super) watcher: Option<JoinHandle<()>>,
    /// Memory target set live, MiB (overrides the config's until reboot).
    pub live_memory: Option<u64>,
    /// Wall-clock time the VMM last answered a request (any answer, a
    /// refusal included).
    pub last_answer: Option<f64>,
    /// Wall-clock time the VMM first missed a deadline, while it has not
    /// answered since (it is hung, stopped or overloaded).
    pub unresponsive_since: Option<f64>,
    /// State in the last event from the VMM. Pause/unpause events are
    /// derived from it alone: `info` may already show a state (refreshed
    /// after an action) whose event has not arrived yet.
    pub(super) event_state: Option<RunState>,
    /// The save, restore or migration under way.
    pub progress: Option<crate::api::OpProgress>,
}

/// A domain's locked state.
pub type StateGuard<'a> = VersionedGuard<'a, DomState>;

/// One domain.
#[derive(Debug)]
pub struct Domain {
    /// Domain id (never changes).
    pub id: u32,
    /// Domain name (never changes).
    pub name: String,
    /// Domain UUID (never changes; every domain xend creates has one, a
    /// domain re-adopted from a record of an older xend may not).
    pub uuid: Option<uuid::Uuid>,
    /// Its console.
    pub console: Arc<ConsoleHub>,
    /// Runtime files of its VMM.
    pub paths: VmmPaths,
    /// Its state, versioned: `crate::bulk` re-renders a domain only when
    /// the version moved, so every change must go through [`Domain::state`].
    st: Versioned<DomState>,
    pub(super) ctl: tokio::sync::Mutex<Option<VmmConn>>,
    pub(super) lifecycle: tokio::sync::Mutex<()>,
}

impl Domain {
    /// A domain entering the table in `phase`, with no VMM attached yet.
    pub(super) fn new(
        id: u32,
        config: DomainConfig,
        console: Arc<ConsoleHub>,
        paths: VmmPaths,
        phase: Phase,
        restart_time: Option<f64>,
    ) -> Arc<Domain> {
        Arc::new(Domain {
            id,
            name: config.name.clone(),
            uuid: config.uuid,
            console,
            paths,
            st: Versioned::new(DomState {
                config,
                phase,
                info: None,
                info_at: None,
                refreshing: false,
                halted: false,
                requested: None,
                restart_time,
                restarts: 0,
                pid: None,
                generation: 0,
                watcher: None,
                live_memory: None,
                last_answer: None,
                unresponsive_since: None,
                event_state: None,
                progress: None,
            }),
            ctl: tokio::sync::Mutex::new(None),
            lifecycle: tokio::sync::Mutex::new(()),
        })
    }

    /// Lock the mutable state. Every mutable access through the guard moves
    /// the state's version ([`StateGuard::version`]).
    pub fn state(&self) -> StateGuard<'_> {
        self.st.lock()
    }

    /// Send one request on the control connection (reconnecting if needed).
    /// The whole call, waiting for the connection included, ends by the
    /// deadline ([`crate::vmm_client::request_timeout`], `vmm-timeout`); a VMM
    /// that misses it is marked unresponsive until it answers again.
    pub async fn request(
        &self,
        req: &Request,
    ) -> Result<hypervisor::control::proto::Payload, SupError> {
        let limit = crate::vmm_client::request_timeout();
        let result = self.request_by(req, limit).await;
        self.note_answer(&result);
        result.map_err(|source| SupError::Vmm {
            name: self.name.clone(),
            source,
        })
    }

    async fn request_by(
        &self,
        req: &Request,
        limit: Duration,
    ) -> Result<hypervisor::control::proto::Payload, VmmError> {
        let deadline = tokio::time::Instant::now() + limit;
        let mut ctl = tokio::time::timeout_at(deadline, self.ctl.lock())
            .await
            .map_err(|_| VmmError::Timeout(limit))?;
        for attempt in 0..2 {
            if ctl.is_none() {
                let conn = tokio::time::timeout_at(deadline, VmmConn::connect(&self.paths.socket))
                    .await
                    .map_err(|_| VmmError::Timeout(limit))?
                    .map_err(|e| match e {
                        VmmError::Timeout(_) => VmmError::Timeout(limit),
                        e => e,
                    })?;
                *ctl = Some(conn);
            }
            let conn = ctl.as_mut().expect("connected");
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match conn.request_within(req, left).await {
                Ok(p) => return Ok(p),
                Err(e @ VmmError::Refused(_)) => return Err(e),
                Err(VmmError::Timeout(_)) => {
                    // A late reply would be read as the next request's.
                    *ctl = None;
                    return Err(VmmError::Timeout(limit));
                }
                Err(e) => {
                    *ctl = None;
                    if attempt == 1 {
                        return Err(e);
                    }
                }
            }
        }
        unreachable!("the loop returns")
    }

    /// Record whether the VMM answered: any reply (a refusal too) clears
    /// the unresponsive mark; a missed deadline sets it.
    fn note_answer<T>(&self, result: &Result<T, VmmError>) {
        let now = crate::events::now();
        let mut st = self.state();
        match result {
            Ok(_) | Err(VmmError::Refused(_)) => {
                st.last_answer = Some(now);
                if let Some(since) = st.unresponsive_since.take() {
                    tracing::info!(
                        "domain {} (id {}): its VMM answers again (unresponsive for {:.1} s)",
                        self.name,
                        self.id,
                        now - since
                    );
                }
            }
            Err(VmmError::Timeout(limit)) if st.unresponsive_since.is_none() => {
                st.unresponsive_since = Some(now);
                tracing::warn!(
                    "domain {} (id {}): its VMM did not answer within {}; marked unresponsive",
                    self.name,
                    self.id,
                    crate::vmm_client::seconds(*limit)
                );
            }
            Err(_) => {}
        }
    }

    /// True while the VMM is marked unresponsive.
    pub fn unresponsive(&self) -> bool {
        self.state().unresponsive_since.is_some()
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
        super::stats::domain_stats(self, &st)
    }

    /// The domain's stats and the version of the state they come from;
    /// `None` for the stats when the version is still `seen` (nothing they
    /// are made of has changed since: the identity and console port never
    /// change, the rest is in the versioned state).
    pub fn stats_since(&self, seen: Option<u64>) -> (u64, Option<DomainStats>) {
        let st = self.state();
        let version = st.version();
        if seen == Some(version) {
            return (version, None);
        }
        (version, Some(super::stats::domain_stats(self, &st)))
    }

    /// The version of the domain's state, its console's fields and, unless
    /// both are still `seen`, the full record made from them (everything
    /// else in a record never changes).
    pub fn record_since(
        &self,
        seen: Option<(u64, &ConsoleInfo)>,
    ) -> (u64, ConsoleInfo, Option<DomainRecord>) {
        let st = self.state();
        let version = st.version();
        let console = self.console.info();
        if seen == Some((version, &console)) {
            return (version, console, None);
        }
        let record = super::stats::domain_record_with(self, &st, console.clone());
        (version, console, Some(record))
    }

    /// The domain's full record (stats, console, restart state, config).
    pub fn record(&self) -> DomainRecord {
        let st = self.state();
        super::stats::domain_record(self, &st)
    }

    /// What the DB keeps of the domain.
    pub fn db_entry(&self) -> DomainEntry {
        let st = self.state();
        DomainEntry {
            record: super::stats::domain_record(self, &st),
            lifetime: self.console.lifetime,
            restarting: st.phase == Phase::Restarting,
        }
    }
}
