//! Per-domain cgroups and the credit scheduler's weight and cap (issue 14
//! items 2-4): real xend, real VMMs on KVM, real cgroups (the v1 hierarchies
//! of this machine and CI), looked at from outside through
//! `/proc/PID/cgroup` and the cgroup files.
use std::path::PathBuf;
use std::time::{Duration, Instant};

use e2e::cgroups;
use e2e::{BOOT, STATE, Xend, wait_for, wait_until};

/// How long a CPU share is measured.
const WINDOW: Duration = Duration::from_secs(5);

fn ready() -> bool {
    hypervisor::require_kvm() && cgroups::require_v1()
}

/// The one VMM of domain `id` (its socket is `<state>/vmm/<id>.sock`).
#[track_caller]
fn vmm_pid(xend: &Xend, id: u32) -> u32 {
    let sock = format!("/vmm/{id}.sock");
    wait_until(STATE, "the domain's VMM", || {
        xend.vmm_processes().into_iter().find(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&sock))
        })
    })
}

/// Domain `id`'s cgroup directory in hierarchy `ctl`, where the harness
/// told xend to put it: `<own cgroup>/<cgroup-parent>/dom<ID>`.
fn expected_dir(xend: &Xend, ctl: &str, id: u32) -> PathBuf {
    cgroups::own_dir(ctl)
        .expect("own cgroup")
        .join(xend.cgroup_parent())
        .join(format!("dom{id}"))
}

#[test]
fn a_domains_vmm_runs_in_its_cgroup_with_its_limits_kept_across_an_xend_restart_and_the_cgroup_goes_with_it()
 {
    if !ready() {
        return;
    }
    let mut xend = Xend::start();
    let dom = xend.create(
        "name = 'cg'\nmemory = 16\nmaxmem = 24\nvcpus = 2\ncpu_weight = 512\ncpu_cap = 150\n",
    );
    let mut con = xend.console(dom.id);
    con.expect(&e2e::prompt("cg"), BOOT);
    let pid = vmm_pid(&xend, dom.id);
    for ctl in ["cpu", "memory", "pids"] {
        assert_eq!(
            cgroups::dir_of(pid, ctl).unwrap(),
            expected_dir(&xend, ctl, dom.id),
            "VMM {pid} in {ctl}"
        );
    }
    let cpu = expected_dir(&xend, "cpu", dom.id);
    let mem = expected_dir(&xend, "memory", dom.id);
    let pids = expected_dir(&xend, "pids", dom.id);
    // Weight 512 is twice the default share; cap 150% is 150 ms per 100 ms.
    assert_eq!(cgroups::read(&cpu, "cpu.shares"), "2048");
    assert_eq!(cgroups::read(&cpu, "cpu.cfs_period_us"), "100000");
    assert_eq!(cgroups::read(&cpu, "cpu.cfs_quota_us"), "150000");
    // maxmem 24 MiB + the 64 MiB overhead budget; 128 tasks + one per vCPU.
    assert_eq!(
        cgroups::read(&mem, "memory.limit_in_bytes"),
        ((24u64 + 64) << 20).to_string()
    );
    assert_eq!(cgroups::read(&pids, "pids.max"), "130");
    // Every thread is in it (the VMM joined before it started any).
    let tasks = cgroups::read(&cpu, "tasks");
    for t in std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
    {
        let tid = t.file_name().to_string_lossy().to_string();
        assert!(
            tasks.lines().any(|l| l == tid),
            "thread {tid} not in {tasks}"
        );
    }
    let stats = xend.domain("cg");
    assert_eq!((stats.cpu_weight, stats.cpu_cap), (Some(512), Some(150)));

    // Set live through the API: the cgroup follows, the stored config keeps it.
    let r = xend
        .act("cg", "sched_credit", &[("weight", "100"), ("cap", "0")])
        .ok();
    assert_eq!(r.json(), serde_json::json!({"weight": 100, "cap": 0}));
    assert_eq!(cgroups::read(&cpu, "cpu.shares"), "400");
    assert_eq!(cgroups::read(&cpu, "cpu.cfs_quota_us"), "-1");
    let cfg = xend.get("/xend/domain/cg?op=config&format=xm").ok().body;
    assert!(cfg.contains("cpu_weight = 100\ncpu_cap = 0\n"), "{cfg}");
    // A maxmem raise raises the memory limit.
    xend.act("cg", "maxmem_set", &[("memory", "40")]).ok();
    assert_eq!(
        cgroups::read(&mem, "memory.limit_in_bytes"),
        ((40u64 + 64) << 20).to_string()
    );

    // xend restarts; the domain keeps its VMM and cgroup, and xend its settings.
    con.close();
    xend.stop();
    xend.restart_foreground();
    assert_eq!(cgroups::dir_of(pid, "cpu").unwrap(), cpu);
    // Nothing else was moved in: a jailed VMM is pid 1 of its own
    // namespace, and that number must never reach the host's cgroups.
    for dir in [&cpu, &mem, &pids] {
        assert_eq!(
            cgroups::read(dir, "cgroup.procs"),
            pid.to_string(),
            "{}",
            dir.display()
        );
    }
    let r = xend.get_json("/xend/domain/cg?op=sched_credit").ok().json();
    assert_eq!(r, serde_json::json!({"weight": 100, "cap": 0}));
    xend.act("cg", "sched_credit", &[("cap", "50")]).ok();
    assert_eq!(cgroups::read(&cpu, "cpu.cfs_quota_us"), "50000");
    assert_eq!(cgroups::read(&cpu, "cpu.shares"), "400");

    // The domain ends: its cgroup goes in every hierarchy.
    xend.act("cg", "destroy", &[]).ok();
    xend.wait_gone("cg");
    wait_for(STATE, "the domain's cgroups to go", || {
        [&cpu, &mem, &pids].iter().all(|d| !d.exists())
    });
}

#[test]
fn bad_weights_and_caps_are_refused_with_reasons_and_the_2_0_ops_map_onto_them() {
    if !ready() {
        return;
    }
    let xend = Xend::start();
    let dom = xend.create("name = 'bad'\nmemory = 16\n");
    let cpu = expected_dir(&xend, "cpu", dom.id);
    wait_for(STATE, "the domain's cgroup", || cpu.exists());
    for (params, reason) in [
        (vec![("weight", "0")], "Invalid parameter: weight"),
        (vec![("weight", "65536")], "Invalid parameter: weight"),
        (vec![("weight", "heavy")], "Invalid parameter: weight"),
        (vec![("cap", "101")], "between 0 (no cap) and 100"),
        (vec![("cap", "-1")], "Invalid parameter: cap"),
        (vec![("cap", "50%")], "Invalid parameter: cap"),
    ] {
        let r = xend.act("bad", "sched_credit", &params).status(400);
        assert!(r.body.contains(reason), "{params:?}: {}", r.body);
    }
    // Nothing changed.
    assert_eq!(cgroups::read(&cpu, "cpu.shares"), "1024");
    assert_eq!(cgroups::read(&cpu, "cpu.cfs_quota_us"), "-1");
    // In a config too.
    for (cfg, reason) in [
        (
            "name = 'b2'\nmemory = 16\ncpu_cap = 500\n",
            "cpu_cap must be",
        ),
        (
            "name = 'b2'\nmemory = 16\ncpu_weight = 0\n",
            "cpu_weight must be",
        ),
        ("name = 'b2'\nmemory = 16\ncpu_cap = 'lots'\n", "cpu_cap"),
    ] {
        let r = xend
            .post_json("/xend/domain", &[("op", "create"), ("config", cfg)])
            .status(400);
        assert!(r.body.contains(reason), "{cfg}: {}", r.body);
    }

    // Xen 2.0: BVT's mcuadv is an inverse weight (10 is 256), atropos's
    // slice per period a cap; SXP answers as a 2.0 client reads them.
    let r = xend.act_sxp("bad", "cpu_bvt_set", &[("mcuadv", "5"), ("warpback", "0")]);
    assert_eq!(r.ok().body.trim(), "(sched_credit (weight 512) (cap 0))");
    assert_eq!(cgroups::read(&cpu, "cpu.shares"), "2048");
    let r = xend.act_sxp(
        "bad",
        "cpu_atropos_set",
        &[
            ("period", "20000000"),
            ("slice", "5000000"),
            ("latency", "0"),
            ("xtratime", "0"),
        ],
    );
    assert_eq!(r.ok().body.trim(), "(sched_credit (weight 512) (cap 25))");
    assert_eq!(cgroups::read(&cpu, "cpu.cfs_quota_us"), "25000");
    // xm sched-credit: sets, prints Xen 3.2's table, refuses bad values.
    let xm = |args: &[&str]| xend.command("xm").args(args).output().expect("run xm");
    let out = xm(&["sched-credit", "-d", "bad", "-w", "300", "-c", "20"]);
    assert!(out.status.success(), "{out:?}");
    let out = xm(&["sched-credit", "-d", "bad"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text,
        format!(
            "Name                                ID Weight  Cap\n\
             bad                               {:>4}    300   20\n",
            dom.id
        )
    );
    let out = xm(&["sched-credit", "-d", "bad", "-c", "101"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("Error: ") && err.contains("cap"), "{err}");
    assert_eq!(cgroups::read(&cpu, "cpu.cfs_quota_us"), "20000");

    // The node's round-robin slice: accepted, ignored, and says why.
    let r = xend
        .post(
            "/xend/node",
            &[("op", "cpu_rrobin_slice_set"), ("slice", "1")],
        )
        .ok();
    assert!(
        r.body.contains("ignored: KVM has no round-robin scheduler"),
        "{}",
        r.body
    );
}

/// Give this xend's parent cgroup the largest CPU share. On a loaded
/// machine (the CI host builds in parallel) a guest must get the CPU it
/// asks for, so that only its cap, or its weight against its sibling, is
/// what holds it back.
fn favour(xend: &Xend) {
    let parent = cgroups::own_dir("cpu").unwrap().join(xend.cgroup_parent());
    std::fs::write(parent.join("cpu.shares"), "262144").unwrap();
}

/// Wait until the busy domain's console says it is burning.
fn burning(xend: &Xend, id: u32) {
    let mut con = xend.console(id);
    con.expect("burn: ", BOOT);
    con.close();
}

#[test]
fn a_busy_domain_capped_at_50_percent_stays_under_55_percent_of_a_cpu() {
    if !ready() {
        return;
    }
    // CPU shares measured: never beside a Linux boot or another measurement.
    let _heavy = e2e::heavy();
    let xend = Xend::start();
    let dom = xend.create(
        "(vm (name capped) (memory 16) (cpu_cap 50) (image (minios (args 'autorun=burn 100000'))))",
    );
    favour(&xend);
    burning(&xend, dom.id);
    let pid = vmm_pid(&xend, dom.id);
    let cpu = expected_dir(&xend, "cpu", dom.id);
    let throttled = cgroups::cpu_stat(&cpu, "nr_throttled");
    let used = cgroups::cpu_seconds(pid);
    let start = Instant::now();
    std::thread::sleep(WINDOW);
    let share = (cgroups::cpu_seconds(pid) - used) / start.elapsed().as_secs_f64();
    let throttled = cgroups::cpu_stat(&cpu, "nr_throttled") - throttled;
    eprintln!(
        "capped at 50%: {:.1}% of a CPU, throttled {throttled} times",
        share * 100.0
    );
    assert!(share <= 0.55, "{:.1}% of a CPU", share * 100.0);
    // It was busy and the cap is what held it back.
    assert!(throttled > 0, "never throttled: the guest was not busy");
    assert!(
        share >= 0.2,
        "only {:.1}%: the guest was not busy",
        share * 100.0
    );
}

#[test]
fn two_busy_domains_on_one_cpu_split_it_by_their_weights() {
    if !ready() {
        return;
    }
    // CPU shares measured: never beside a Linux boot or another measurement.
    let _heavy = e2e::heavy();
    let xend = Xend::start();
    let cfg = |name: &str, weight: u32| {
        format!(
            "(vm (name {name}) (memory 16) (cpu 0) (cpu_weight {weight}) (image (minios (args 'autorun=burn 100000'))))"
        )
    };
    let heavy = xend.create(&cfg("heavy", 512));
    let light = xend.create(&cfg("light", 256));
    // The parent exists from the first domain on.
    favour(&xend);
    burning(&xend, heavy.id);
    burning(&xend, light.id);
    let (hp, lp) = (vmm_pid(&xend, heavy.id), vmm_pid(&xend, light.id));
    let (h0, l0) = (cgroups::cpu_seconds(hp), cgroups::cpu_seconds(lp));
    std::thread::sleep(WINDOW);
    let (h, l) = (cgroups::cpu_seconds(hp) - h0, cgroups::cpu_seconds(lp) - l0);
    eprintln!("weights 512:256 on CPU 0: {h:.2} s : {l:.2} s");
    assert!(l > 0.1, "the light domain did not run ({l:.2} s)");
    let ratio = h / l;
    assert!(
        (1.6..=2.8).contains(&ratio),
        "split {h:.2} s : {l:.2} s = {ratio:.2}"
    );
}
