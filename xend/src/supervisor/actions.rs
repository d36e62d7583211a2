//! What the API asks of a running domain: destroy, shutdown, pause and the
//! other simple requests, memory, the bulk refresh, and config replacement.
use std::sync::Arc;

use hypervisor::control::proto::{Reason, Request};

use super::{Domain, LIFECYCLE_WAIT, Phase, SupError, Supervisor};
use crate::config::DomainConfig;

impl Supervisor {
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
        {
            let mut st = dom.state();
            st.halted |= reason == Reason::Halt;
            st.requested = Some(reason);
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

    /// Set the maximum memory (MiB) live, counted against the host's memory
    /// like a new domain's, and keep it in the stored config so the next
    /// boot reserves as much (a maximum below the boot memory keeps the
    /// boot memory as the config's maximum: a config's maxmem is never
    /// below its memory).
    pub async fn set_max_memory(&self, dom: &Domain, mib: u64) -> Result<(), SupError> {
        let _life = self.ready(dom).await?;
        self.check_commitment(mib, Some(dom.id))?;
        // The cgroup's memory limit follows: raised before the VMM may use
        // more, lowered once it may not.
        let old = {
            let st = dom.state();
            st.config.maxmem.max(st.config.memory)
        };
        if mib > old {
            self.follow_maxmem(dom, mib);
        }
        dom.request(&Request::SetMaxMem { mib }).await?;
        let new = {
            let mut st = dom.state();
            st.config.maxmem = mib.max(st.config.memory);
            st.config.maxmem
        };
        if new < old {
            self.follow_maxmem(dom, new);
        }
        self.save(dom)?;
        if let Err(e) = self.db.save_config(&dom.name, &dom.state().config.to_sxp()) {
            tracing::warn!(domain = %dom.name, "cannot store the new maxmem in the config: {e}");
        }
        let _ = dom.refresh().await;
        Ok(())
    }

    /// Replace the stored config; apply what can change live. Returns the
    /// fields applied now and those kept for the next boot.
    pub async fn configure(
        &self,
        dom: &Arc<Domain>,
        mut new: DomainConfig,
    ) -> Result<(Vec<String>, Vec<String>), SupError> {
        let _life = dom.lifecycle.lock().await;
        self.ensure_running(dom)?;
        if new.name != dom.name {
            return Err(SupError::Invalid(format!(
                "Invalid parameter: config: the name cannot change (domain {} was given name {})",
                dom.name, new.name
            )));
        }
        // A config without a uuid keeps the domain's; another one is refused.
        match (new.uuid, dom.uuid) {
            (Some(given), Some(own)) if given != own => {
                return Err(SupError::Invalid(format!(
                    "Invalid parameter: config: the uuid cannot change (domain {} has uuid {own}, was given {given})",
                    dom.name
                )));
            }
            (None, own) => new.uuid = own,
            _ => {}
        }
        self.check_host(&new, Some(dom.id))?;
        let old = dom.state().config.clone();
        let mut live = Vec::new();
        let mut next = Vec::new();
        if new.maxmem > old.maxmem {
            self.follow_maxmem(dom, new.maxmem);
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
            self.follow_maxmem(dom, new.maxmem);
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
        let sched = super::sched::SchedCredit::of(&new);
        if sched != super::sched::SchedCredit::of(&old) {
            self.apply_sched(dom, sched)?;
        }
        if new.cpu_weight != old.cpu_weight {
            live.push("cpu_weight".to_string());
        }
        if new.cpu_cap != old.cpu_cap {
            live.push("cpu_cap".to_string());
        }
        if new.console != old.console {
            next.push("console".to_string());
        }
        if new.localtime != old.localtime {
            next.push("localtime".to_string());
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
