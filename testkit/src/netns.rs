//! A network namespace a test creates, so that the VMMs (and xend) it
//! starts, their TAPs and bridges, and the test's own sockets all live
//! there: network tests never touch the host's interfaces.
//!
//! [`Netns::enter`] also moves the calling thread into it: processes spawned
//! from that thread (and threads it creates afterwards) inherit the
//! namespace. Each test runs on its own thread, so entering is safe with
//! other tests of the same binary running beside it. Declare the `Netns`
//! before anything running inside it, so that those are gone before the
//! namespace is deleted.
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use nix::sched::{CloneFlags, setns};

/// What went wrong running `ip` or joining a namespace.
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    /// `ip` could not be run at all.
    #[error("cannot run ip")]
    Spawn(#[source] std::io::Error),
    /// `ip` ran and failed; its stderr.
    #[error("ip {args}: {stderr}")]
    Ip {
        /// The arguments, space-separated.
        args: String,
        /// What `ip` said.
        stderr: String,
    },
    /// The namespace's file under `/run/netns` could not be opened.
    #[error("cannot open /run/netns/{0}")]
    Open(String, #[source] std::io::Error),
    /// `setns(2)` failed.
    #[error("cannot join network namespace {0}")]
    Setns(String, #[source] nix::Error),
}

/// Run `ip ARGS`; its stdout.
pub fn ip(args: &[&str]) -> Result<String, NetnsError> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(NetnsError::Spawn)?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(NetnsError::Ip {
            args: args.join(" "),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// The namespace; deleted on drop.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Create `e2e-TAG-PID-N` (N counts the namespaces this process made,
    /// so tests running side by side with the same tag never collide) with
    /// its loopback up. `None` (with the reason printed) when namespaces
    /// cannot be made here, e.g. without root; under CI (`CI` set) that is a
    /// failure.
    pub fn create(tag: &str) -> Option<Netns> {
        static MADE: AtomicU32 = AtomicU32::new(0);
        let n = MADE.fetch_add(1, Ordering::Relaxed);
        let name = format!("e2e-{tag}-{}-{n}", std::process::id());
        if let Err(e) = ip(&["netns", "add", &name]) {
            let why = format!("cannot create a network namespace ({e}); network tests need root");
            assert!(std::env::var_os("CI").is_none(), "{why}");
            eprintln!("skipped: {why}");
            return None;
        }
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"]).expect("loopback up");
        Some(ns)
    }

    /// [`Netns::create`], then move this thread into the namespace (with
    /// IPv6 off in it, so packet counts follow only the traffic a test sends).
    pub fn enter(tag: &str) -> Option<Netns> {
        let ns = Netns::create(tag)?;
        ns.join().expect("setns into the test's namespace");
        // No IPv6 chatter (router solicitations, MLD) on the test's links.
        // (/proc/sys/net is this thread's namespace now.)
        for conf in ["all", "default"] {
            let _ = std::fs::write(format!("/proc/sys/net/ipv6/conf/{conf}/disable_ipv6"), "1");
        }
        Some(ns)
    }

    /// Move the calling thread into the namespace (e.g. a helper thread that
    /// opens a raw socket there).
    pub fn join(&self) -> Result<(), NetnsError> {
        let path = format!("/run/netns/{}", self.name);
        let file =
            std::fs::File::open(&path).map_err(|e| NetnsError::Open(self.name.clone(), e))?;
        setns(&file, CloneFlags::CLONE_NEWNET).map_err(|e| NetnsError::Setns(self.name.clone(), e))
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Run `ip -n NAME ARGS`.
    pub fn ip(&self, args: &[&str]) -> Result<String, NetnsError> {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        ip(&all)
    }

    /// Whether interface `name` exists in the namespace.
    pub fn has_link(&self, name: &str) -> bool {
        self.ip(&["link", "show", "dev", name]).is_ok()
    }

    /// The interfaces enslaved to bridge `bridge`, sorted.
    pub fn bridge_ports(&self, bridge: &str) -> Vec<String> {
        let out = self
            .ip(&["-o", "link", "show", "master", bridge])
            .unwrap_or_default();
        let mut ports: Vec<String> = out
            .lines()
            .filter_map(|l| l.split(": ").nth(1))
            .map(|n| n.split('@').next().unwrap_or(n).to_string())
            .collect();
        ports.sort();
        ports
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.name]);
    }
}
