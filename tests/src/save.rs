//! Helpers for the save, restore and migration tests: the minios `tick` and
//! `pattern` commands (guest state that must survive), the API calls, and
//! the checks that a failed operation created or lost nothing.
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

use crate::{Console, Reply, Xend};

/// How long a save, restore or migration may take in tests (guests are slow).
pub const MOVE: Duration = Duration::from_secs(60);

/// Run minios `tick`, expecting its counter to be `n` now; returns the
/// guest's uptime (seconds) it printed.
#[track_caller]
pub fn tick(con: &mut Console, n: u64) -> f64 {
    con.send("tick\n");
    con.expect(&format!("\ntick {n} up "), MOVE);
    let rest = con.expect(" s", MOVE);
    rest.trim_end_matches(" s")
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("tick {n}: bad uptime {rest:?}: {e}"))
}

/// Fill `mib` MiB of guest RAM with the pattern of `seed`.
#[track_caller]
pub fn pattern_write(con: &mut Console, mib: u32, seed: u32) {
    con.send(&format!("pattern write {mib} {seed}\n"));
    con.expect(&format!("pattern: wrote {mib} MiB with seed {seed}"), MOVE);
}

/// Check the pattern; panics with the guest's answer unless it is ok.
#[track_caller]
pub fn pattern_check(con: &mut Console, mib: u32, seed: u32) {
    con.send(&format!("pattern check {mib} {seed}\n"));
    con.expect("\npattern: ", MOVE);
    let verdict = con.expect("\n", MOVE);
    assert!(
        verdict.starts_with(&format!("ok ({mib} MiB)")),
        "pattern check {mib} {seed}: {verdict:?}"
    );
}

/// `<state-dir>/save`, the default `save-dir`.
pub fn save_dir(xend: &Xend) -> PathBuf {
    xend.state_dir().join("save")
}

/// `POST /xend/domain/DOM op=save file=FILE` (JSON).
pub fn save(xend: &Xend, dom: &str, file: &str) -> Reply {
    xend.act(dom, "save", &[("file", file)])
}

/// `POST /xend/domain op=restore file=FILE [paused=1]` (JSON).
pub fn restore(xend: &Xend, file: &str, paused: bool) -> Reply {
    let mut form = vec![("op", "restore"), ("file", file)];
    if paused {
        form.push(("paused", "1"));
    }
    xend.post_json("/xend/domain", &form)
}

/// `POST /xend/domain/DOM op=migrate destination=127.0.0.1:PORT` of `to`'s
/// API, with `to`'s token (JSON).
pub fn migrate(from: &Xend, dom: &str, to: &Xend, live: bool) -> Reply {
    let dest = format!("127.0.0.1:{}", to.api_port());
    let mut form = vec![
        ("destination", dest.as_str()),
        ("live", if live { "1" } else { "0" }),
    ];
    if let Some(t) = to.token() {
        form.push(("token", t));
    }
    from.act(dom, "migrate", &form)
}

/// Asserts `xend` has no domain but Domain-0, no VMM process, no domain
/// record and no VMM runtime file: nothing was created (or left behind).
#[track_caller]
pub fn assert_no_domains(xend: &Xend) {
    assert_eq!(xend.domain_names(), vec!["Domain-0".to_string()]);
    assert!(
        xend.vmm_processes().is_empty(),
        "VMM processes left: {:?}",
        xend.vmm_processes()
    );
    let records: Vec<_> = std::fs::read_dir(xend.db_dir().join("domain"))
        .map(|rd| rd.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(records.is_empty(), "domain records left: {records:?}");
    let runtime: Vec<_> = std::fs::read_dir(xend.state_dir().join("vmm"))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".sock") || n.ends_with(".json"))
                .collect()
        })
        .unwrap_or_default();
    assert!(runtime.is_empty(), "VMM runtime files left: {runtime:?}");
}

/// Run `xm -H URL [--token T] ARGS...` against `xend`.
pub fn xm(xend: &Xend, args: &[&str]) -> Output {
    let mut argv: Vec<String> = vec!["-H".into(), xend.base_url()];
    if let Some(t) = xend.token() {
        argv.extend(["--token".into(), t.into()]);
    }
    argv.extend(args.iter().map(|a| a.to_string()));
    Command::new(crate::bin("xm"))
        .args(&argv)
        .env_remove("XEND_URL")
        .env_remove("XEND_TOKEN")
        .output()
        .expect("run xm")
}
