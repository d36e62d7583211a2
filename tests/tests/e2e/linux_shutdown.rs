//! Host-requested reboot and shutdown of a Linux guest through xend, end
//! to end, in one domain booting the keyboard-path test kernel
//! (`e2e::linux::kernel_cad`: tests/linux/kernel-cad.config):
//!
//! 1. It boots: the i8042 and AT keyboard drivers probe our i8042
//!    (`input: AT Raw Set 2 keyboard`: raw set 2, the probe's replies
//!    arrived by IRQ 1) and the root is mounted.
//! 2. `xm reboot` presses Ctrl-Alt-Del on the i8042: the kernel (no init
//!    took Ctrl-Alt-Del over) restarts at once, its reset reaches the VMM
//!    through the i8042's reset line, and xend, which asked for a reboot,
//!    restarts the domain: a second boot banner on the same console, the
//!    restart counted.
//! 3. `xm shutdown` presses it again: the guest answers with the same reset,
//!    which xend turns into the poweroff it asked for (reason `poweroff`),
//!    so `on_poweroff` (destroy) applies: the domain is gone and its VMM
//!    process exited, where a reset would have restarted it.
//!
//! No network: the milestones are the keyboard and the root mount. One
//! Linux boot at a time (`e2e::heavy`), 150 s per milestone on this loaded,
//! emulating KVM.
use std::time::Duration;

use e2e::linux::{self, xm};
use e2e::{STATE, Xend, wait_for};

/// Deadline per console milestone.
const MILESTONE: Duration = Duration::from_secs(150);
/// What the atkbd driver prints once it has probed the keyboard.
const KEYBOARD: &str = "input: AT Raw Set 2 keyboard";
/// The last milestone of a boot.
const ROOT: &str = "VFS: Mounted root (ext2 filesystem)";

/// Wait for `line` on the console, with xend's log in the failure message.
fn expect(con: &mut e2e::Console, xend: &Xend, line: &str) {
    let got =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| con.expect(line, MILESTONE)));
    if let Err(e) = got {
        eprintln!("xend's output:\n{}", xend.output());
        std::panic::resume_unwind(e);
    }
    eprintln!("linuxcad: {line}");
}

#[test]
fn xm_reboot_and_xm_shutdown_reach_a_linux_guest_through_ctrl_alt_del() {
    if !hypervisor::require_kvm() {
        return;
    }
    // Two Linux boots side by side starve each other on 2 cores.
    let _heavy = e2e::heavy();
    let kernel = linux::kernel_cad().vmlinux;
    let xend = linux::create(&kernel, "linuxcad", |root| {
        format!(
            "kernel = \"{}\"\n\
             memory = 128\n\
             name = \"linuxcad\"\n\
             vcpus = 1\n\
             disk = [ 'file:{},vda,w' ]\n\
             root = \"/dev/vda rw\"\n\
             restart = 'onreboot'\n\
             extra = \"{} {}\"\n",
            kernel.display(),
            root.display(),
            linux::BOOT_ARGS,
            linux::CAD_ARGS,
        )
    });
    let first = xend.domain("linuxcad");
    let mut con = xend.console(first.id);
    expect(&mut con, &xend, "Linux version ");
    expect(&mut con, &xend, KEYBOARD);
    expect(&mut con, &xend, ROOT);

    // xm reboot: Ctrl-Alt-Del, the kernel restarts, xend boots it again.
    xm(&xend, &["reboot", "linuxcad"]);
    expect(&mut con, &xend, "reboot: Restarting system");
    expect(&mut con, &xend, "Linux version ");
    let again = xend.domain("linuxcad");
    assert_eq!(again.id, first.id, "the same domain");
    assert!(again.start_time > first.start_time, "{again:?}");
    assert_eq!(again.restarts, 1, "{again:?}");
    expect(&mut con, &xend, KEYBOARD);
    expect(&mut con, &xend, ROOT);

    // xm shutdown: the same keys and the same reset, now a poweroff.
    let pids = xend.vmm_pids();
    assert_eq!(pids.len(), 1, "one VMM: {pids:?}");
    xm(&xend, &["shutdown", "linuxcad"]);
    expect(&mut con, &xend, "reboot: Restarting system");
    xend.wait_gone("linuxcad");
    wait_for(STATE, "the VMM process to exit", || {
        !e2e::pid_alive(pids[0])
    });
    let log = xend.output();
    assert!(
        log.contains("answered a requested poweroff with a reset: poweroff")
            && log.contains("ended (poweroff)"),
        "{log}"
    );
}
