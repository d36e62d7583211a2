//! Finding running domains again when xend starts: DB records are matched with
//! live VMM processes (by their `--socket` in our state dir). A record whose
//! VMM is gone (host reboot, VMM crash) is stale: it is removed and logged,
//! while `<dbroot>/config/<name>` keeps the config. A VMM without a record
//! (xend died between spawn and record; should not happen, records come first)
//! is adopted with a config rebuilt from what the VMM reports.
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hypervisor::control::proto::DomainInfo;

use super::spawn::{self, VmmPaths};
use super::{Phase, Supervisor};
use crate::config::{DomainConfig, Image};
use crate::console::Lifetime;
use crate::vmm_client::VmmConn;

/// How long a VMM found starting up may take to open its socket.
const STARTING: Duration = Duration::from_secs(30);

impl Supervisor {
    /// Re-adopt every running domain and clean stale records (xend start).
    pub async fn adopt_all(self: &Arc<Self>) {
        let vmm_dir = self.settings.state_dir.join("vmm");
        let _ = self.settings.file_modes.own_dir(&vmm_dir);
        let running = spawn::find_vmms(&vmm_dir);
        let (records, bad) = self.db.load_domains();
        for e in bad {
            tracing::error!("DB: {e}; left in place");
        }
        let mut adopted = BTreeSet::new();
        for (domid, rec) in records {
            let name = rec.child_value("name").unwrap_or("?").to_string();
            let cfg = match rec
                .child("config")
                .and_then(|c| c.rest().first())
                .map(|vm| DomainConfig::parse(&vm.to_string(), &format!("DB record {domid}")))
            {
                Some(Ok(cfg)) => cfg,
                Some(Err(e)) => {
                    tracing::error!("DB record of domain {name} (id {domid}): bad config: {e}");
                    continue;
                }
                None => {
                    tracing::error!("DB record of domain {name} (id {domid}) has no config");
                    continue;
                }
            };
            let paths = VmmPaths::new(&self.settings.state_dir, domid);
            let pids: Vec<u32> = running
                .iter()
                .filter(|(_, s)| *s == paths.socket)
                .map(|(p, _)| *p)
                .collect();
            let restart_time = rec.child_value("restart_time").and_then(|t| t.parse().ok());
            // Records of an older xend have no lifetime: such a domain starts
            // a new console log.
            let lifetime = rec
                .child_value("lifetime")
                .and_then(|t| t.parse().ok())
                .map_or(Lifetime::New, Lifetime::Continue);
            let port = rec
                .child("console")
                .and_then(|c| c.child_value("console_port"))
                .and_then(|p| p.parse().ok());
            if self.abort_stale_incoming(&name, domid, &paths, &pids).await {
                continue;
            }
            if pids.is_empty() && rec.child_value("phase") == Some("restarting") {
                tracing::warn!(
                    "domain {name} (id {domid}) was restarting when xend stopped; finishing the restart"
                );
                match self.resume_restart(domid, cfg, port, lifetime).await {
                    Ok(()) => {
                        adopted.insert(domid);
                    }
                    Err(e) => {
                        tracing::error!("domain {name} (id {domid}): restart failed: {e}");
                        let _ = self.db.remove_domain(domid);
                    }
                }
                continue;
            }
            let found = if pids.is_empty() {
                Found::Gone
            } else {
                wait_socket(&paths, &pids).await
            };
            if found == Found::Silent {
                // A live VMM is never orphaned: its record, socket and id stay.
                tracing::error!(
                    "domain {name} (id {domid}): VMM {pids:?} runs but does not answer on {}; \
                     its record, id and name are kept reserved (stop it with kill {})",
                    paths.socket.display(),
                    pids[0]
                );
                self.reserve_forever(domid, &name);
                adopted.insert(domid);
                continue;
            }
            if found == Found::Gone {
                tracing::warn!(
                    "domain {name} (id {domid}): its VMM is gone (host reboot or crash); \
                     stale runtime record removed, config kept in {}",
                    self.db.config_dir().display()
                );
                let _ = self.db.save_config(&name, &cfg.to_sxp());
                let _ = self.db.remove_domain(domid);
                paths.remove_stale();
                continue;
            }
            match self
                .adopt_one(domid, cfg, restart_time, port, lifetime)
                .await
            {
                Ok(()) => {
                    adopted.insert(domid);
                }
                Err(e) => tracing::error!("domain {name} (id {domid}): cannot re-adopt: {e}"),
            }
        }
        for (pid, sock) in &running {
            let Some(domid) = sock
                .file_stem()
                .and_then(|s| s.to_str())
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            if adopted.contains(&domid) || self.lookup(&domid.to_string()).is_some() {
                continue;
            }
            let paths = VmmPaths::new(&self.settings.state_dir, domid);
            match wait_socket(&paths, &[*pid]).await {
                Found::Answers => {}
                Found::Gone => continue,
                Found::Silent => {
                    self.reserve_forever(domid, "");
                    adopted.insert(domid);
                    continue;
                }
            }
            let info = match VmmConn::connect(&paths.socket).await {
                Ok(mut c) => c.info().await,
                Err(e) => Err(e),
            };
            match info {
                Ok(info) => {
                    let cfg = config_from_info(&info);
                    tracing::warn!(
                        "VMM {pid} runs domain {} (id {domid}) without a DB record; adopting it",
                        info.name
                    );
                    match self.adopt_one(domid, cfg, None, None, Lifetime::New).await {
                        Ok(()) => {
                            adopted.insert(domid);
                        }
                        Err(e) => tracing::error!("cannot adopt VMM {pid}: {e}"),
                    }
                }
                Err(e) => {
                    tracing::error!("VMM {pid} ({}) does not answer: {e}", sock.display());
                    self.reserve_forever(domid, "");
                    adopted.insert(domid);
                }
            }
        }
        // Files of every live VMM stay, adopted or not.
        let live: BTreeSet<u32> = running
            .iter()
            .filter(|(pid, _)| spawn::pid_alive(*pid))
            .filter_map(|(_, sock)| spawn::domid_of_socket(sock))
            .chain(adopted.iter().copied())
            .collect();
        self.clean_stale_files(&live);
        tracing::info!("{} running domain(s) adopted", adopted.len());
    }

    async fn adopt_one(
        self: &Arc<Self>,
        domid: u32,
        mut cfg: DomainConfig,
        restart_time: Option<f64>,
        port: Option<u16>,
        lifetime: Lifetime,
    ) -> Result<(), super::SupError> {
        if self.lookup(&cfg.name).is_some() {
            return Err(super::SupError::NameClash(cfg.name));
        }
        // A record of an xend from before UUIDs: the domain gets one now (the
        // record written below keeps it).
        cfg.uuid.get_or_insert_with(uuid::Uuid::new_v4);
        let dom = self
            .domain_with_console(domid, cfg, port, lifetime, Phase::Running, restart_time)
            .await?;
        let _life = dom.lifecycle.lock().await;
        self.table().doms.insert(domid, dom.clone());
        if let Err(e) = self.attach(&dom, true).await {
            self.table().doms.remove(&domid);
            dom.console.close().await;
            return Err(e);
        }
        self.adopt_cgroup(&dom);
        // The VMM is the truth: a record that cannot be written (a full
        // disk) leaves the old one, and the domain adopted all the same.
        if let Err(e) = self.save(&dom) {
            tracing::error!(
                "domain {} (id {domid}) adopted, but its record was not updated: {}",
                dom.name,
                errchain::error_chain(&e)
            );
        }
        drop(_life);
        tracing::info!(
            "re-adopted domain {} (id {domid}), console on port {}",
            dom.name,
            dom.console.port
        );
        Ok(())
    }

    /// A VMM still waiting for an incoming migration (started with
    /// `--incoming`, no VMM record yet: the domain has not arrived) when xend
    /// starts: nobody will adopt what arrives, so kill it and drop the record.
    /// The source then sees its migration fail and keeps the domain. Returns
    /// true when it did so.
    async fn abort_stale_incoming(
        &self,
        name: &str,
        domid: u32,
        paths: &VmmPaths,
        pids: &[u32],
    ) -> bool {
        use nix::sys::signal::{Signal, kill};
        let signal = |pid: u32, sig| kill(nix::unistd::Pid::from_raw(pid as i32), sig);
        let waiting: Vec<u32> = pids
            .iter()
            .copied()
            .filter(|p| spawn::cmdline(*p).is_some_and(|a| a.iter().any(|x| x == "--incoming")))
            .collect();
        if waiting.is_empty() {
            return false;
        }
        // Freeze them first: the record (written atomically once the domain
        // runs) then either exists or will not appear.
        for pid in &waiting {
            let _ = signal(*pid, Signal::SIGSTOP);
        }
        if paths.record.exists() {
            for pid in &waiting {
                let _ = signal(*pid, Signal::SIGCONT);
            }
            return false;
        }
        tracing::warn!(
            "domain {name} (id {domid}) was waiting for a migration when xend stopped; aborting it"
        );
        for pid in waiting {
            let _ = signal(pid, Signal::SIGKILL);
            spawn::wait_exit(pid, super::EXIT_GRACE).await;
        }
        paths.remove_stale();
        let _ = self.db.remove_domain(domid);
        true
    }

    /// Start a new instance of a domain whose restart was cut short (the
    /// same domain: it keeps its console log).
    async fn resume_restart(
        self: &Arc<Self>,
        domid: u32,
        cfg: DomainConfig,
        port: Option<u16>,
        lifetime: Lifetime,
    ) -> Result<(), super::SupError> {
        let dom = self
            .domain_with_console(
                domid,
                cfg,
                port,
                lifetime,
                Phase::Restarting,
                Some(crate::events::now()),
            )
            .await?;
        let _life = dom.lifecycle.lock().await;
        self.table().doms.insert(domid, dom.clone());
        if let Err(e) = self.start_instance(&dom).await {
            self.forget(&dom).await;
            return Err(e);
        }
        dom.state().phase = Phase::Running;
        self.save(&dom)?;
        drop(_life);
        self.events
            .domain("xend.domain.restart", domid, &dom.name, None);
        Ok(())
    }

    /// Keep `domid` (and `name`, when known) from ever being handed out
    /// again by this xend: a live VMM holds them that xend cannot manage.
    fn reserve_forever(&self, domid: u32, name: &str) {
        let mut t = self.table();
        t.reserved_ids.push(domid);
        if !name.is_empty() {
            t.reserved_names.push(name.to_string());
        }
    }

    /// Remove VMM records and sockets in the state dir that belong to no live
    /// VMM (`live`: the ids of every VMM process found, adopted or not).
    fn clean_stale_files(&self, live: &BTreeSet<u32>) {
        let dir = self.settings.state_dir.join("vmm");
        let Ok(rd) = std::fs::read_dir(&dir) else {
            return;
        };
        for e in rd.flatten() {
            let path = e.path();
            let Some(id) = path
                .file_stem()
                .and_then(|s| s.to_str())
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            let ext = path.extension().and_then(|x| x.to_str()).unwrap_or("");
            if (ext == "json" || ext == "sock") && !live.contains(&id) {
                tracing::warn!("removing stale VMM file {}", path.display());
                let _ = std::fs::remove_file(&path);
            }
        }
    }
}

/// Wait until the socket accepts connections while one of `pids` lives and
/// is young enough to be still starting.
/// What became of a VMM found at start-up while xend waited for its socket.
#[derive(Debug, PartialEq, Eq)]
enum Found {
    /// Its socket answers.
    Answers,
    /// It exited meanwhile (a VMM still starting when the xend creating it
    /// died gives up): its record is stale like that of a VMM already gone.
    Gone,
    /// It runs, but its socket has not answered within [`STARTING`].
    Silent,
}

async fn wait_socket(paths: &VmmPaths, pids: &[u32]) -> Found {
    let deadline = Instant::now() + STARTING;
    loop {
        if tokio::net::UnixStream::connect(&paths.socket).await.is_ok() {
            return Found::Answers;
        }
        if !pids.iter().any(|p| spawn::pid_alive(*p)) {
            return Found::Gone;
        }
        let starting = pids
            .iter()
            .any(|p| spawn::process_age(*p).is_some_and(|age| age < STARTING));
        if !starting || Instant::now() >= deadline {
            tracing::error!(
                "VMM {pids:?} runs but its socket {} does not answer; leaving it alone",
                paths.socket.display()
            );
            return Found::Silent;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A config matching what a VMM runs (for a VMM found without a DB record).
fn config_from_info(info: &DomainInfo) -> DomainConfig {
    let mut cfg = DomainConfig::new(
        info.name.clone(),
        (info.memory.configured_kib / 1024).max(1),
    );
    cfg.maxmem = (info.memory.max_kib / 1024).max(cfg.memory);
    cfg.vcpus = info.vcpus.len().max(1) as u32;
    let args = (!info.cmdline.is_empty()).then(|| info.cmdline.clone());
    cfg.image = if info.kernel == "minios" {
        Image::Minios { args }
    } else {
        Image::Linux {
            kernel: info.kernel.clone().into(),
            ramdisk: None,
            root: None,
            args,
        }
    };
    cfg
}
