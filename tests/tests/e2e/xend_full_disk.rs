//! A full disk under xend's DB (issue 11, item 1): nothing is lost and
//! nothing is duplicated. The DB lives on a tiny tmpfs mounted inside a
//! mount namespace this test makes (the host's mounts are untouched); xend
//! and its VMMs run in that namespace.
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use e2e::{Xend, XendOptions};

/// A private mount namespace with a small tmpfs at `dir`, kept alive by a
/// sleeping holder process; killed on drop.
struct TinyFs {
    holder: Child,
    dir: PathBuf,
}

impl TinyFs {
    fn new(dir: &Path, kib: u32) -> TinyFs {
        std::fs::create_dir_all(dir).unwrap();
        let mut holder = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "--", "sh", "-c"])
            .arg("mount -t tmpfs -o size=\"$1\"k,mode=0700 tmpfs \"$2\" && echo ready && exec sleep 3600")
            .args(["sh", &kib.to_string(), dir.to_str().unwrap()])
            .stdout(Stdio::piped())
            .spawn()
            .expect("run unshare");
        let mut line = String::new();
        BufReader::new(holder.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready", "the tmpfs could not be mounted");
        TinyFs {
            holder,
            dir: dir.to_path_buf(),
        }
    }

    /// `nsenter -t HOLDER -m --`: what runs a command inside the namespace.
    fn prefix(&self) -> Vec<String> {
        ["nsenter", "-t", &self.holder.id().to_string(), "-m", "--"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    /// Runs a shell command inside the namespace.
    fn sh(&self, script: &str) -> Output {
        let prefix = self.prefix();
        Command::new(&prefix[0])
            .args(&prefix[1..])
            .args(["sh", "-c", script])
            .output()
            .unwrap()
    }

    /// Fills the filesystem to the last byte.
    fn fill(&self) {
        self.sh(&format!("cat /dev/zero > {}/fill", self.dir.display()));
        let out = self.sh(&format!("df -k {} | tail -1", self.dir.display()));
        let df = String::from_utf8_lossy(&out.stdout).to_string();
        let avail: u64 = df
            .split_whitespace()
            .nth(3)
            .and_then(|a| a.parse().ok())
            .unwrap_or(1);
        assert_eq!(avail, 0, "the tmpfs is full: {df}");
    }

    fn free(&self) {
        let out = self.sh(&format!("rm -f {}/fill", self.dir.display()));
        assert!(out.status.success(), "{out:?}");
    }

    /// The domain records in the DB, by id.
    fn records(&self) -> Vec<u32> {
        let out = self.sh(&format!("ls {}/domain", self.dir.display()));
        let mut ids: Vec<u32> = String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .filter_map(|n| n.parse().ok())
            .collect();
        ids.sort();
        ids
    }
}

impl Drop for TinyFs {
    fn drop(&mut self) {
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

fn ids_and_names(xend: &Xend) -> Vec<(u32, String)> {
    let mut v: Vec<(u32, String)> = xend.get_json("/xend/domain?op=stats").ok().json()["domains"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["id"] != 0)
        .map(|d| {
            (
                d["id"].as_u64().unwrap() as u32,
                d["name"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn a_full_db_loses_no_domain_and_duplicates_none_across_restarts() {
    if !hypervisor::require_kvm() {
        return;
    }
    let base = tempfile::tempdir().unwrap();
    let db = base.path().join("db");
    let fs = TinyFs::new(&db, 512);
    let mut xend = Xend::start_with(XendOptions {
        dbroot: Some(db.clone()),
        command_prefix: fs.prefix(),
        ..XendOptions::default()
    });
    for name in ["a", "b", "c"] {
        xend.create(&format!("name = '{name}'\nmemory = 16\n"));
    }
    let before = ids_and_names(&xend);
    assert_eq!(before.len(), 3);
    assert_eq!(
        fs.records(),
        before.iter().map(|(i, _)| *i).collect::<Vec<_>>()
    );

    // Full: a create fails with the cause, and starts nothing.
    fs.fill();
    let r = xend.post_json(
        "/xend/domain",
        &[("op", "create"), ("config", "name = 'd'\nmemory = 16\n")],
    );
    assert_eq!(r.status, 507, "{}", r.body);
    assert!(r.body.contains("No space left on device"), "{}", r.body);
    assert_eq!(
        xend.vmm_pids().len(),
        3,
        "no VMM started for the refused domain"
    );

    // Restarts while full: every running domain is found again, each once,
    // with its socket kept.
    for round in 0..2 {
        xend.stop();
        xend.restart_foreground();
        assert_eq!(ids_and_names(&xend), before, "after restart {round}");
        assert_eq!(xend.vmm_pids().len(), 3, "after restart {round}");
        for (id, name) in &before {
            assert!(
                xend.state_dir().join(format!("vmm/{id}.sock")).exists(),
                "the socket of {name} survived restart {round}"
            );
            xend.act(name, "pause", &[]).ok();
            xend.act(name, "unpause", &[]).ok();
        }
    }
    // A name that runs is not created twice, full disk or not.
    let r = xend.post_json(
        "/xend/domain",
        &[("op", "create"), ("config", "name = 'a'\nmemory = 16\n")],
    );
    assert_eq!(r.status, 409, "{}", r.body);

    // Space again: a new domain gets an id no live VMM holds; the DB and
    // the running VMMs agree.
    fs.free();
    let d = xend.create("name = 'd'\nmemory = 16\n");
    assert!(
        before.iter().all(|(id, _)| *id != d.id),
        "id {} reused",
        d.id
    );
    xend.stop();
    xend.restart_foreground();
    let after = ids_and_names(&xend);
    assert_eq!(after.len(), 4, "{after:?}");
    assert_eq!(xend.vmm_pids().len(), 4);
    assert_eq!(
        fs.records(),
        after.iter().map(|(i, _)| *i).collect::<Vec<_>>()
    );
}
