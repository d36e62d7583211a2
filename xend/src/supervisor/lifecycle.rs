//! A domain's VMM instances: starting and attaching to one, following its
//! events, applying the restart policy when the guest ends, restarting and
//! destroying.
use std::sync::Arc;

use hypervisor::control::proto::{Event, Reason, Request, RunState};

use super::policy::{self, Decision};
use super::{CONSOLE_DRAIN, Domain, EXIT_GRACE, Launch, Phase, SupError, Supervisor, spawn};
use crate::events::now;
use crate::vmm_client::VmmConn;

impl Supervisor {
    /// Start a VMM for `dom` from its stored config and attach to it.
    pub(super) async fn start_instance(
        self: &Arc<Self>,
        dom: &Arc<Domain>,
    ) -> Result<(), SupError> {
        self.start_instance_with(dom, &Launch::Boot { paused: false })
            .await
    }

    /// Start a VMM for `dom` as `launch` says; attach to it unless it waits
    /// for an incoming migration.
    pub(super) async fn start_instance_with(
        self: &Arc<Self>,
        dom: &Arc<Domain>,
        launch: &Launch,
    ) -> Result<(), SupError> {
        let cfg = dom.state().config.clone();
        let mut env = Vec::new();
        let args = match launch {
            Launch::Boot { paused } => {
                // Checked again at every boot (a restart, a reboot): the
                // VMM loads the canonical path, whatever a symlink says now.
                let image = self.confined_kernel(&cfg)?;
                let mut a = spawn::vmm_args(
                    &cfg,
                    image.as_ref().map(|(k, _)| k.as_path()),
                    dom.id,
                    &dom.paths,
                );
                if let Some((_, Some(ramdisk))) = &image {
                    a.push("--ramdisk".into());
                    a.push(ramdisk.display().to_string());
                }
                if *paused {
                    a.push("--paused".into());
                }
                a
            }
            Launch::Restore { image, paused } => {
                let mut a = spawn::common_args(&cfg, dom.id, &dom.paths);
                a.push("--restore".into());
                a.push(image.display().to_string());
                if *paused {
                    a.push("--paused".into());
                }
                a
            }
            Launch::Incoming {
                listen,
                token,
                paused,
            } => {
                let mut a = spawn::common_args(&cfg, dom.id, &dom.paths);
                a.push("--incoming".into());
                a.push(listen.clone());
                if *paused {
                    a.push("--paused".into());
                }
                env.push(("VMM_INCOMING_TOKEN", token.as_str()));
                a
            }
        };
        // Disks and vifs go with every launch (a restored or migrated
        // domain gets its devices back in their slots).
        let mut args = args;
        args.extend(self.device_args(&cfg)?);
        args.extend(self.cgroup_args(dom, &cfg)?);
        match self.settings.vmm_jail {
            Some(base) => args.extend(spawn::jail_args(&dom.paths, base, dom.id)),
            None => tracing::warn!(
                "domain {} (id {}): its VMM is not jailed ((vmm-jail no))",
                dom.name,
                dom.id
            ),
        }
        let vmm_dir = dom.paths.socket.parent().expect("vmm dir");
        self.settings
            .file_modes
            .dir_all(vmm_dir)
            .map_err(|e| SupError::Spawn {
                name: dom.name.clone(),
                why: format!("cannot create {}: {e}", dom.paths.socket.display()),
            })?;
        dom.paths.remove_stale();
        let report = |p| self.report_progress(dom, super::progress::from_vmm(&p));
        let pid = spawn::spawn_reporting(&self.settings.vmm_path, &args, &env, report)
            .await
            .map_err(|e| {
                let why = errchain::error_chain(&e);
                match launch {
                    Launch::Restore { image, .. } if why.contains("is refused") => {
                        SupError::Invalid(format!(
                            "Invalid parameter: file: {}: {}",
                            image.display(),
                            why.trim_start_matches("vmm: ")
                        ))
                    }
                    // The VMM refused the config (a disk it cannot open or use,
                    // one another domain holds): the client's config is at fault.
                    _ if spawn::is_config_refusal(&why) => SupError::Invalid(format!(
                        "Invalid parameter: config: {}",
                        why.trim_start_matches("vmm: ")
                    )),
                    _ => SupError::Spawn {
                        name: dom.name.clone(),
                        why,
                    },
                }
            })?;
        {
            let mut st = dom.state();
            st.pid = Some(pid);
            st.live_memory = None;
            st.unresponsive_since = None;
        }
        if matches!(launch, Launch::Incoming { .. }) {
            return Ok(());
        }
        self.attach(dom, true).await?;
        self.remember_macs(dom);
        Ok(())
    }

    /// Connect to `dom`'s running VMM: control, console and event connections.
    pub(super) async fn attach(
        self: &Arc<Self>,
        dom: &Arc<Domain>,
        history: bool,
    ) -> Result<(), SupError> {
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
                // Only a pid that is this domain's VMM: xend signals it and
                // moves it between cgroups, and a VMM's own word is not
                // enough for that.
                st.pid = st
                    .info
                    .as_ref()
                    .map(|i| i.vmm.pid)
                    .filter(|pid| spawn::is_vmm(*pid, &dom.paths.socket));
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

    pub(super) fn on_event(
        self: &Arc<Self>,
        dom: &Arc<Domain>,
        generation: u64,
        ev: &Event,
        first: bool,
    ) {
        let prev = {
            let mut st = dom.state();
            if st.generation != generation {
                return;
            }
            // What xend knew before this event: the last event, else the
            // last info (a pause that happened before the event stream's
            // first message is still a pause).
            let known = st.event_state.or_else(|| st.info.as_ref().map(|i| i.state));
            st.event_state = Some(ev.state);
            let prev = known;
            if let Some(info) = st.info.as_mut() {
                info.state = ev.state;
                info.shutdown_reason = ev.shutdown_reason;
                info.crash_reason = ev.crash_reason.clone();
            }
            prev
        };
        let was_paused = prev == Some(RunState::Paused);
        // On the stream's first message only a change from what xend knew
        // counts (a re-adopted paused domain is not a new pause).
        let changed = !first || prev.is_some_and(|p| p != ev.state);
        match ev.state {
            RunState::Paused if !was_paused && changed => {
                self.events
                    .domain("xend.domain.pause", dom.id, &dom.name, None);
            }
            RunState::Running | RunState::Blocked if was_paused && changed => {
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

    pub(super) fn on_vmm_gone(self: &Arc<Self>, dom: &Arc<Domain>, generation: u64) {
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
        let why = dom
            .paths
            .seccomp_violation()
            .unwrap_or_else(|| "VMM exited".into());
        tracing::error!(
            "domain {} (id {}): its VMM exited unexpectedly: {why}",
            dom.name,
            dom.id
        );
        if let Some(info) = dom.state().info.as_mut() {
            info.state = RunState::Crashed;
            info.crash_reason = Some(why.clone());
        }
        self.events
            .domain("xend.domain.crash", dom.id, &dom.name, Some(why));
        self.spawn_exit(dom, generation, Reason::Crash);
    }

    pub(super) fn spawn_exit(self: &Arc<Self>, dom: &Arc<Domain>, generation: u64, reason: Reason) {
        let sup = self.clone();
        let dom = dom.clone();
        tokio::spawn(async move { sup.handle_exit(&dom, generation, reason).await });
    }

    /// The guest ended: apply the restart policy.
    pub(super) async fn handle_exit(
        self: &Arc<Self>,
        dom: &Arc<Domain>,
        generation: u64,
        reason: Reason,
    ) {
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
    pub(super) async fn restart_locked(self: &Arc<Self>, dom: &Arc<Domain>) {
        dom.state().phase = Phase::Restarting;
        if let Err(e) = self.save(dom) {
            tracing::error!("domain {}: {e}", dom.name);
        }
        self.stop_instance(dom).await;
        {
            let mut st = dom.state();
            st.restart_time = Some(now());
            st.restarts += 1;
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
                self.forget(dom).await;
                self.events
                    .domain("xend.domain.died", dom.id, &dom.name, Some(e.to_string()));
            }
        }
    }

    /// Destroy the current VMM instance and wait for its process to end.
    pub(super) async fn stop_instance(&self, dom: &Arc<Domain>) {
        if let Some(w) = dom.state().watcher.take() {
            w.abort();
        }
        // The pid xend knows, else the live VMM serving this domain's socket.
        let pid = dom.state().pid.take().or_else(|| {
            let dir = dom.paths.socket.parent()?;
            spawn::find_vmms(dir)
                .into_iter()
                .find(|(_, sock)| *sock == dom.paths.socket)
                .map(|(pid, _)| pid)
        });
        // A VMM already marked unresponsive is not asked: it gets SIGTERM,
        // then SIGKILL, at once.
        let answered = !dom.unresponsive()
            && match dom.request(&Request::Destroy).await {
                Ok(_) => true,
                Err(e) => {
                    tracing::debug!("domain {}: destroy: {e}", dom.name);
                    !dom.unresponsive()
                }
            };
        // A request still waiting on a hung VMM holds the connection until
        // its deadline and drops it itself: do not wait for it.
        if let Ok(mut ctl) = dom.ctl.try_lock() {
            *ctl = None;
        }
        if let Some(pid) = pid {
            let grace = if answered {
                EXIT_GRACE
            } else {
                std::time::Duration::ZERO
            };
            match spawn::end_vmm(pid, &dom.paths.socket, grace).await {
                spawn::Ending::Exited => {}
                how => tracing::warn!("domain {} (id {}): VMM {pid} {how:?}", dom.name, dom.id),
            }
        }
        // The instance's last words (e.g. "minios: reboot") reach the console.
        dom.console.finish_vmm(CONSOLE_DRAIN).await;
        dom.paths.remove_stale();
    }

    pub(super) async fn destroy_locked(self: &Arc<Self>, dom: &Arc<Domain>, event: &str) {
        dom.state().phase = Phase::Dying;
        self.stop_instance(dom).await;
        self.forget(dom).await;
        tracing::info!("domain {} (id {}) destroyed", dom.name, dom.id);
        self.events.domain(event, dom.id, &dom.name, None);
    }
}
