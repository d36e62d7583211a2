//! Save, restore and migration through xend's API with real VMMs and minios
//! guests (a bench binary; no timing is asserted). Figures are what an API
//! client sees, from sending the request to the reply:
//!
//! - `op=save` and `op=restore` for 64 and 256 MiB domains with 3/4 of their
//!   RAM written by the guest (image MB/s), median of 3;
//! - `op=migrate` between two xends on this host, stop-and-copy and live, for
//!   a 256 MiB domain: total time and the guest's downtime (from the reply).
//!
//! Run: `cargo build --release --bins && cargo bench -p e2e --bench xend_save`.
use std::time::{Duration, Instant};

use e2e::save::{MOVE, pattern_write, tick};
use e2e::{BOOT, Xend, prompt};

const ROUNDS: usize = 3;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Creates `name` with `mib` MiB and has the guest write 3/4 of it.
fn create_touched(xend: &Xend, name: &str, mib: u32) -> u32 {
    let d = xend.create(&format!(
        "(vm (name {name}) (memory {mib}) (image (minios)))"
    ));
    let mut con = xend.console(d.id);
    con.expect(&prompt(name), BOOT);
    pattern_write(&mut con, mib * 3 / 4, 1);
    d.id
}

fn timed(f: impl FnOnce() -> e2e::Reply) -> (Duration, serde_json::Value) {
    let t = Instant::now();
    let r = f().ok();
    (t.elapsed(), r.json())
}

fn save_restore(xend: &Xend, mib: u32) {
    let name = format!("s{mib}");
    create_touched(xend, &name, mib);
    let (mut saves, mut restores, mut bytes) = (Vec::new(), Vec::new(), 0u64);
    for round in 0..ROUNDS {
        let file = format!("{name}-{round}.img");
        let (t, r) = timed(|| e2e::save::save(xend, &name, &file));
        bytes = r["image_bytes"].as_u64().unwrap();
        saves.push(t.as_secs_f64());
        let (t, r) = timed(|| e2e::save::restore(xend, &file, false));
        restores.push(t.as_secs_f64());
        let id = r["id"].as_u64().unwrap() as u32;
        let mut con = xend.console(id);
        tick(&mut con, round as u64 + 1);
    }
    let (s, r) = (median(saves), median(restores));
    let mb = bytes as f64 / 1e6;
    println!(
        "{mib:>4} MiB domain, image {mb:.1} MB: save {:.0} ms ({:.0} MB/s), restore {:.0} ms ({:.0} MB/s)",
        s * 1e3,
        mb / s,
        r * 1e3,
        mb / r
    );
    xend.act(&name, "destroy", &[]).ok();
}

fn migrate(a: &Xend, b: &Xend, mib: u32) {
    let name = format!("m{mib}");
    create_touched(a, &name, mib);
    let (mut from, mut to) = (a, b);
    for live in [false, true, false, true] {
        let (t, r) = timed(|| e2e::save::migrate(from, &name, to, live));
        let id = r["domid"].as_u64().unwrap() as u32;
        let mut con = to.console(id);
        con.echo("arrived", MOVE);
        println!(
            "{mib:>4} MiB migrate {:<15} total {:>6.0} ms, downtime {:>7.1} ms, {:.1} MB, {} pre-copy rounds",
            if live { "live" } else { "stop-and-copy" },
            t.as_secs_f64() * 1e3,
            r["downtime_seconds"].as_f64().unwrap() * 1e3,
            r["bytes"].as_u64().unwrap() as f64 / 1e6,
            r["rounds"]
        );
        std::mem::swap(&mut from, &mut to);
    }
}

fn main() {
    if !hypervisor::require_kvm() {
        return;
    }
    let a = Xend::start();
    let b = Xend::start();
    for mib in [64, 256] {
        save_restore(&a, mib);
    }
    migrate(&a, &b, 256);
}
