//! A network namespace a test creates and enters (the calling thread only),
//! so that xend, the VMMs it starts, their TAPs and bridges, and the test's
//! own sockets all live there: network tests never touch the host's
//! interfaces.
//!
//! Enter it before starting [`crate::Xend`]: processes spawned from the
//! thread, and the HTTP client's worker thread created by `Xend::start`,
//! inherit the namespace. Declare it before the `Xend` so that xend and its
//! VMMs are gone before the namespace is deleted.
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use nix::sched::{CloneFlags, setns};

/// The namespace; deleted on drop.
pub struct Netns {
    name: String,
}

/// Run `ip ARGS`; stdout, or the error with `ip`'s message.
pub fn ip(args: &[&str]) -> Result<String, String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run ip: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Netns {
    /// Create `e2e-TAG-PID-N` (N counts the namespaces this process made,
    /// so tests running side by side with the same tag never collide) with
    /// its loopback up and move this thread into it. `None` (with the
    /// reason printed) when namespaces cannot be made here, e.g. without
    /// root; under CI that is a failure.
    pub fn enter(tag: &str) -> Option<Netns> {
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
        let file = std::fs::File::open(format!("/run/netns/{}", ns.name)).expect("netns file");
        setns(&file, CloneFlags::CLONE_NEWNET).expect("setns into the test's namespace");
        // No IPv6 chatter (router solicitations, MLD) on the test's links:
        // packet counts then follow only the traffic a test sends.
        // (/proc/sys/net is this thread's namespace now.)
        for conf in ["all", "default"] {
            let _ = std::fs::write(format!("/proc/sys/net/ipv6/conf/{conf}/disable_ipv6"), "1");
        }
        Some(ns)
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Run `ip -n NAME ARGS`.
    pub fn ip(&self, args: &[&str]) -> Result<String, String> {
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
