//! xend's cgroups are tidied without making anyone wait: a destroy replies
//! while something still holds the domain's cgroup (it is removed in the
//! background once free), and xend removes an empty parent of its own at
//! start-up, never one holding a running domain or another xend's parent.
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use e2e::{BOOT, Xend, XendOptions, cgroups, wait_until};

const CTLS: [&str; 3] = ["cpu", "memory", "pids"];

fn ready() -> bool {
    hypervisor::require_kvm() && cgroups::require_v1()
}

fn parent_dir(ctl: &str, parent: &str) -> PathBuf {
    cgroups::own_dir(ctl).expect("own cgroup").join(parent)
}

/// Ends (SIGKILL) and reaps the process it holds when dropped.
struct Holder(std::process::Child);

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn destroy_replies_at_once_while_the_domains_cgroup_is_held_and_it_goes_once_free() {
    if !ready() {
        return;
    }
    let xend = Xend::start();
    let (dom, con) = xend.create_booted("held");
    con.close();
    let dir = parent_dir("cpu", xend.cgroup_parent()).join(format!("dom{}", dom.id));
    assert!(dir.is_dir(), "{}", dir.display());
    // A process of the test's in the domain's cgroup: the kernel refuses
    // to remove a cgroup while it holds one.
    let holder = Holder(Command::new("sleep").arg("600").spawn().unwrap());
    std::fs::write(dir.join("cgroup.procs"), holder.0.id().to_string()).unwrap();

    let started = Instant::now();
    let r = xend.act("held", "destroy", &[]);
    let took = started.elapsed();
    assert!(r.status < 300, "destroy: {} {}", r.status, r.body);
    // It waited up to 5 s for the cgroup before (REMOVE_WAIT).
    assert!(
        took < Duration::from_secs(4),
        "destroy took {took:?} with the cgroup held"
    );
    xend.wait_gone("held");
    assert!(dir.is_dir(), "the held cgroup cannot have gone yet");

    drop(holder);
    wait_until(BOOT, "the freed cgroup to be removed", || {
        (!dir.exists()).then_some(())
    });
    assert!(xend.answers());
}

#[test]
fn an_empty_parent_of_its_own_goes_at_start_up_but_not_a_busy_one_or_anothers() {
    if !ready() {
        return;
    }
    let name = format!("e2e-tidy-{}", std::process::id());
    let other = format!("{name}-other");
    /// Removes the test's parents however the test ends.
    struct Cleanup(String, String);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            cgroups::remove_parent(&self.1);
            cgroups::remove_parent(&self.0);
        }
    }
    let _cleanup = Cleanup(name.clone(), other.clone());
    // What an xend killed after its domains ended leaves: its parent with
    // an empty domain cgroup; beside it another xend's (empty) parent.
    for ctl in CTLS {
        std::fs::create_dir_all(parent_dir(ctl, &name).join("dom41")).unwrap();
        std::fs::create_dir_all(parent_dir(ctl, &other)).unwrap();
    }
    let opts = || XendOptions {
        extra_config: format!("(cgroup-parent {name})"),
        ..XendOptions::default()
    };
    let mut first = Xend::start_with(opts());
    for ctl in CTLS {
        assert!(
            !parent_dir(ctl, &name).exists(),
            "{ctl}: the stale parent is still there\n{}",
            first.output()
        );
        assert!(
            parent_dir(ctl, &other).is_dir(),
            "{ctl}: another's parent went"
        );
    }

    // A parent holding a running domain stays when another xend with the
    // same parent starts (or a restarted one: its VMMs ran on).
    let (dom, mut con) = first.create_booted("busy");
    con.close();
    let second = Xend::start_with(opts());
    assert!(second.answers());
    for ctl in CTLS {
        assert!(
            parent_dir(ctl, &name)
                .join(format!("dom{}", dom.id))
                .is_dir(),
            "{ctl}: a running domain's cgroup went\n{}",
            second.output()
        );
    }
    drop(second);
    con = first.console(dom.id);
    con.run("echo still-running", BOOT);
    con.close();

    // At stop, as before: the domain gone, the parent goes too.
    first.act("busy", "destroy", &[]);
    first.wait_gone("busy");
    let freed = parent_dir("cpu", &name).join(format!("dom{}", dom.id));
    wait_until(BOOT, "the domain's cgroup to be removed", || {
        (!freed.exists()).then_some(())
    });
    first.stop();
    for ctl in CTLS {
        assert!(
            !parent_dir(ctl, &name).exists(),
            "{ctl}: parent left at stop"
        );
        assert!(parent_dir(ctl, &other).is_dir());
    }
}
