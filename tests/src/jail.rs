//! What a jailed VMM looks like from the host (issue 14), for the tests of
//! both machines: every thread filtered, unprivileged and without
//! capabilities, and a root holding nothing of the host's.
use std::collections::BTreeMap;
use std::path::Path;

use crate::{STATE, Xend, wait_until};

/// The live VMM of domain `domid` (its command line names `<id>.sock`).
pub fn vmm_pid(xend: &Xend, domid: u32) -> u32 {
    let sock = format!("/{domid}.sock");
    wait_until(STATE, "the domain's VMM process", || {
        xend.vmm_processes().into_iter().find(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|raw| String::from_utf8_lossy(&raw).contains(&sock))
                .unwrap_or(false)
        })
    })
}

/// Each thread's name and the fields of its `/proc/PID/task/TID/status`.
pub fn thread_status(pid: u32) -> Vec<(String, BTreeMap<String, String>)> {
    let mut out = Vec::new();
    for t in std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
    {
        let Ok(text) = std::fs::read_to_string(t.path().join("status")) else {
            continue;
        };
        let fields: BTreeMap<String, String> = text
            .lines()
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.to_string(), v.trim().to_string()))
            .collect();
        out.push((fields["Name"].clone(), fields));
    }
    out
}

/// Check that VMM `pid` of domain `domid` is jailed: the threads named in
/// `want` exist, and every thread has a seccomp filter (`Seccomp: 2`),
/// `NoNewPrivs: 1`, no capability (effective, permitted, bounding), and
/// uid and gid `200000 + domid` (real, effective, saved, filesystem);
/// its root holds only its own `/proc`, in which it is alone (pid 1), and
/// no host file. Returns the thread names.
pub fn assert_jailed(pid: u32, domid: u32, want: &[&str]) -> Vec<String> {
    let threads = thread_status(pid);
    let names: Vec<String> = threads.iter().map(|(n, _)| n.clone()).collect();
    for w in want {
        assert!(names.iter().any(|n| n == w), "no {w} thread in {names:?}");
    }
    let id = (200_000 + domid).to_string();
    for (name, f) in &threads {
        assert_eq!(f["Seccomp"], "2", "{name}: {f:?}");
        assert_eq!(f["NoNewPrivs"], "1", "{name}: {f:?}");
        for set in ["CapEff", "CapPrm", "CapBnd", "CapInh", "CapAmb"] {
            assert_eq!(f[set], "0000000000000000", "{name} {set}: {f:?}");
        }
        for ids in ["Uid", "Gid"] {
            let v: Vec<&str> = f[ids].split_whitespace().collect();
            assert!(
                v.len() == 4 && v.iter().all(|u| *u == id),
                "{name} {ids}: {v:?}"
            );
        }
        assert_eq!(f["Groups"], "", "{name}: supplementary groups");
    }

    // Its root is the jail: a read-only tmpfs holding only its /proc.
    let root = Path::new("/proc").join(pid.to_string()).join("root");
    let entries: Vec<String> = std::fs::read_dir(&root)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(entries, ["proc"], "the jail's root holds more than /proc");
    for host_file in ["etc/passwd", "dev/kvm", "bin/sh", "tmp", "var", "sys"] {
        assert!(
            !root.join(host_file).exists(),
            "{host_file} is visible in the jail"
        );
    }
    // Its /proc shows no other process (its own pid namespace, pid 1).
    let procs: Vec<String> = std::fs::read_dir(root.join("proc"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.chars().all(|c| c.is_ascii_digit()))
        .collect();
    assert_eq!(procs, ["1"]);
    names
}
