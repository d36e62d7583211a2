//! The end-to-end suite: real xend, real VMMs, real guests and clients, as
//! one test binary (`cargo test -p e2e --test e2e`), one module per area,
//! named as the files were (`cargo test -p e2e --test e2e xend_api` runs
//! one area). A new area is a file here plus one `mod` line below. The
//! harness is the `e2e` library (`tests/src`); what the hypervisor's tests
//! share with it is in the `testkit` crate.
//!
//! All tests of the binary share one process: a test must not change what
//! others see (environment, umask, current directory, signal handlers);
//! per-thread state (a network namespace entered with
//! `testkit::netns::Netns::enter`) is fine, each test runs on its own
//! thread. Tests that must not run side by side with each other (Linux
//! boots, CPU measurements) hold `testkit::heavy()`.

mod clients_hangup;
mod install;
mod linux_boot;
mod linux_fixtures;
mod xen2_compat;
mod xencons_pipe;
mod xend_access;
mod xend_api;
mod xend_bulk;
mod xend_cgroup_tidy;
mod xend_console;
mod xend_console_flood;
mod xend_devices;
mod xend_devices_net;
mod xend_flood;
mod xend_full_disk;
mod xend_hostile_disks;
mod xend_hostile_paths;
mod xend_html;
mod xend_hung_vmm;
mod xend_jail;
mod xend_metrics;
mod xend_migrate;
mod xend_progress;
mod xend_restart;
mod xend_save;
mod xend_save_xtop;
mod xend_sched;
mod xend_supervise;
mod xend_tls;
mod xend_uuid;
mod xendomains;
mod xm_devices;
mod xm_domains;
mod xm_errors;
mod xm_save;
mod xtop_devices;
mod xtop_golden;
mod xtop_modes;
mod xtop_tui;
