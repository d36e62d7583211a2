//! A domain's cgroup and its credit-scheduler settings: created with limits
//! before its VMM starts, weight and cap changed live, the memory limit
//! following a maxmem change, removed when the domain is gone, taken back
//! by a restarted xend (see [`crate::cgroup`] for the mappings).
use std::sync::Arc;
use std::time::Duration;

use super::{Domain, SupError, Supervisor};
use crate::cgroup::{self, Cgroups, DEFAULT_WEIGHT, Limits};
use crate::config::DomainConfig;

/// How long a gone domain's cgroup is retried for removal (in the
/// background) before it is logged and left.
const REMOVE_WAIT: Duration = Duration::from_secs(60);

pub use crate::api::SchedCredit;

impl SchedCredit {
    /// The settings of `cfg` (the defaults for what it leaves unset).
    pub fn of(cfg: &DomainConfig) -> SchedCredit {
        SchedCredit {
            weight: cfg.cpu_weight.unwrap_or(DEFAULT_WEIGHT),
            cap: cfg.cpu_cap.unwrap_or(0),
        }
    }
}

/// The cgroup limits of a domain with `cfg`.
pub fn limits(cfg: &DomainConfig) -> Limits {
    let s = SchedCredit::of(cfg);
    Limits::new(s.weight, s.cap, cfg.maxmem.max(cfg.memory), cfg.vcpus)
}

/// Find the cgroups xend uses (`cgroup-parent`), saying once in the log
/// what they are or why there are none.
pub fn detect(parent: Option<&str>) -> Option<Cgroups> {
    let Some(parent) = parent else {
        tracing::warn!(
            "cgroups are off ((cgroup-parent none)): domains run without CPU weights, caps or memory limits"
        );
        return None;
    };
    match Cgroups::detect(parent) {
        Ok(c) => {
            tracing::info!("domains get a cgroup each: {}", c.describe());
            Some(c)
        }
        Err(e) => {
            tracing::warn!("{}", errchain::error_chain(&e));
            None
        }
    }
}

impl Supervisor {
    /// Create `dom`'s cgroup with the limits of `cfg` and return the VMM
    /// arguments that make it join them (`--cgroup DIR` per hierarchy);
    /// nothing without cgroups.
    pub(super) fn cgroup_args(
        &self,
        dom: &Domain,
        cfg: &DomainConfig,
    ) -> Result<Vec<String>, SupError> {
        let Some(cg) = &self.cgroups else {
            return Ok(Vec::new());
        };
        cg.create(dom.id, &limits(cfg))
            .map_err(|e| SupError::Spawn {
                name: dom.name.clone(),
                why: errchain::error_chain(&e),
            })?;
        Ok(cg
            .dirs(dom.id)
            .into_iter()
            .flat_map(|d| ["--cgroup".to_string(), d.display().to_string()])
            .collect())
    }

    /// A re-adopted domain's VMM keeps its cgroup; one started before xend
    /// used cgroups (or under another `cgroup-parent`) is moved into its
    /// cgroup now. The limits are written again from the stored config.
    pub(super) fn adopt_cgroup(&self, dom: &Domain) {
        let Some(cg) = &self.cgroups else { return };
        let (cfg, pid) = {
            let st = dom.state();
            (st.config.clone(), st.pid)
        };
        let Some(pid) = pid else { return };
        if !super::spawn::is_vmm(pid, &dom.paths.socket) {
            tracing::warn!(
                "domain {} (id {}): pid {pid} is not its VMM; not moved into its cgroup",
                dom.name,
                dom.id
            );
            return;
        }
        let placed = cg.create(dom.id, &limits(&cfg)).and_then(|()| {
            if cg.holds(dom.id, pid) {
                Ok(false)
            } else {
                cg.place(dom.id, pid).map(|()| true)
            }
        });
        match placed {
            Ok(true) => tracing::info!(
                "domain {} (id {}): its VMM {pid} moved into its cgroup",
                dom.name,
                dom.id
            ),
            Ok(false) => {}
            Err(e) => tracing::warn!(
                "domain {} (id {}): {}",
                dom.name,
                dom.id,
                errchain::error_chain(&e)
            ),
        }
    }

    /// Remove `dom`'s cgroup (its VMM is gone), in the background.
    pub(super) fn remove_cgroup(&self, dom: &Domain) {
        if let Some(cg) = &self.cgroups {
            cg.remove_in_background(dom.id, REMOVE_WAIT);
        }
    }

    /// `dom`'s weight and cap.
    pub fn sched_credit(&self, dom: &Domain) -> SchedCredit {
        SchedCredit::of(&dom.state().config)
    }

    /// Set `dom`'s weight and/or cap (`None` keeps it): checked, applied to
    /// its cgroup, kept in its stored config. Returns the new settings.
    pub async fn set_sched_credit(
        self: &Arc<Self>,
        dom: &Arc<Domain>,
        weight: Option<u32>,
        cap: Option<u32>,
    ) -> Result<SchedCredit, SupError> {
        let _life = self.ready(dom).await?;
        let mut cfg = dom.state().config.clone();
        if let Some(w) = weight {
            crate::config::cpu_weight(w)
                .map_err(|e| SupError::Invalid(format!("Invalid parameter: weight: {e}")))?;
            cfg.cpu_weight = Some(w);
        }
        if let Some(c) = cap {
            crate::config::cpu_cap(c, cfg.vcpus)
                .map_err(|e| SupError::Invalid(format!("Invalid parameter: cap: {e}")))?;
            cfg.cpu_cap = Some(c);
        }
        let s = SchedCredit::of(&cfg);
        self.apply_sched(dom, s)?;
        dom.state().config = cfg;
        self.save(dom)?;
        let _ = self.db.save_config(&dom.name, &dom.state().config.to_sxp());
        self.events.domain(
            "xend.domain.sched",
            dom.id,
            &dom.name,
            Some(format!("weight {} cap {}", s.weight, s.cap)),
        );
        Ok(s)
    }

    /// Write `s` to `dom`'s cgroup (nothing without cgroups).
    pub(super) fn apply_sched(&self, dom: &Domain, s: SchedCredit) -> Result<(), SupError> {
        if let Some(cg) = &self.cgroups {
            cg.set_cpu(dom.id, s.weight, s.cap)
                .map_err(|e| SupError::Spawn {
                    name: dom.name.clone(),
                    why: errchain::error_chain(&e),
                })?;
        }
        Ok(())
    }

    /// Set the cgroup memory limit for `maxmem_mib` of guest RAM.
    pub(super) fn follow_maxmem(&self, dom: &Domain, maxmem_mib: u64) {
        if let Some(cg) = &self.cgroups
            && let Err(e) = cg.set_memory(dom.id, cgroup::memory_bytes(maxmem_mib))
        {
            tracing::warn!(
                "domain {} (id {}): {}",
                dom.name,
                dom.id,
                errchain::error_chain(&e)
            );
        }
    }
}
