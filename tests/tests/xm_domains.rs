//! xm against a real xend and real minios domains: golden output of `list`,
//! `list -l` and `info` (volatile figures masked), and every action checked
//! through the API.
use std::process::{Command, Output};

use e2e::golden::{Column, Kind, assert_golden, flatten_sxp, mask_columns, mask_sxp, mask_values};
use e2e::{STATE, Xend, wait_for};

struct Xm<'a> {
    xend: &'a Xend,
}

impl Xm<'_> {
    fn run(&self, args: &[&str]) -> Output {
        // Global options go before the command.
        let mut argv: Vec<String> = vec!["-H".into(), self.xend.base_url()];
        if let Some(t) = self.xend.token() {
            argv.extend(["--token".into(), t.into()]);
        }
        argv.extend(args.iter().map(|a| a.to_string()));
        Command::new(e2e::bin("xm"))
            .args(&argv)
            .env_remove("XEND_URL")
            .env_remove("XEND_TOKEN")
            .output()
            .expect("run xm")
    }

    /// Runs xm, asserts success and an empty stderr, returns stdout.
    #[track_caller]
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "xm {args:?} failed: {out:?}\n{}",
            self.xend.output()
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

/// Writes an xm config file into the xend's temp dir.
fn config(xend: &Xend, name: &str, text: &str) -> String {
    let path = xend.dir().join(format!("{name}.cfg"));
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

/// Creates `name` with `xm create`, checks the reference's line, waits for the
/// minios prompt on its console; returns its id.
#[track_caller]
fn create(xm: &Xm, name: &str, extra: &[&str], more_config: &str) -> u32 {
    let cfg = config(
        xm.xend,
        name,
        &format!("name = \"{name}\"\nmemory = 16\n{more_config}"),
    );
    let mut args = vec!["create"];
    args.extend_from_slice(extra);
    args.push(&cfg);
    let out = xm.ok(&args);
    let dom = xm.xend.domain(name);
    assert_eq!(
        out,
        format!(
            "Started domain {name}, console on port {}\n",
            xm.xend.console_port(dom.id)
        )
    );
    assert_eq!(dom.console_port, Some(xm.xend.console_port(dom.id)));
    dom.id
}

#[track_caller]
fn wait_prompt(xend: &Xend, id: u32, name: &str) {
    let mut con = xend.console(id);
    con.expect(&format!("minios@{name}# "), e2e::BOOT);
}

/// The columns of `%-16s %3d  %7d  %3d  %5s  %7.1f    %4s` that change
/// from run to run: memory (Domain-0's is the host's), CPU, state, time.
fn list_mask(text: &str) -> String {
    mask_columns(
        text,
        1,
        &[
            Column {
                cols: 22..29,
                kind: Kind::Int,
                placeholder: "MEM",
            },
            Column {
                cols: 31..34,
                kind: Kind::Int,
                placeholder: "C",
            },
            Column {
                cols: 36..41,
                kind: Kind::Text,
                placeholder: "STATE",
            },
            Column {
                cols: 43..50,
                kind: Kind::Float,
                placeholder: "TIME",
            },
        ],
    )
}

/// The State column of each row, for checks the mask leaves out.
fn states(list: &str) -> Vec<String> {
    list.lines()
        .skip(1)
        .map(|l| l.chars().skip(36).take(5).collect())
        .collect()
}

#[test]
fn list_list_long_and_info_golden() {
    if !hypervisor::require_kvm() {
        return;
    }
    let xend = Xend::start();
    let xm = Xm { xend: &xend };
    let id = create(&xm, "web1", &[], "");
    wait_prompt(&xend, id, "web1");
    let port = xend.console_port(id);

    let list = xm.ok(&["list"]);
    assert_golden(
        &list_mask(&list),
        &format!(
            "Name              Id  Mem(MB)  CPU  State  Time(s)  Console\n\
             Domain-0           0      MEM    C  STATE     TIME        \n\
             web1             {id:>3}      MEM    C  STATE     TIME    {port:>4}\n"
        ),
    );
    let st = states(&list);
    assert!(st[0].starts_with('r') && st[0].len() == 5, "{st:?}");
    assert!(["r----", "-b---"].contains(&st[1].as_str()), "{st:?}");
    // web1's memory is its config's, not masked away.
    assert_eq!(&list.lines().nth(2).unwrap()[22..29], "     16");

    // One domain, by name and by id.
    let one = xm.ok(&["list", "web1"]);
    assert_eq!(one.lines().count(), 2);
    assert_eq!(
        list_mask(&one),
        list_mask(&xm.ok(&["list", &id.to_string()]))
    );

    // --json: the API's DomainStats.
    let json: serde_json::Value = serde_json::from_str(&xm.ok(&["list", "--json"])).unwrap();
    let names: Vec<&str> = json
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Domain-0", "web1"]);

    // -l: the server's SXP, pretty-printed.
    let long = xm.ok(&["list", "-l", "web1"]);
    let raw = xend.get("/xend/domain/web1").ok().body;
    assert!(long.starts_with("(domain\n    (id "), "{long}");
    assert!(raw.starts_with("(domain (id "), "{raw}");
    check_pretty(&long);
    assert_golden(&mask_long(&long), &golden_long(id, port));
    // Without DOM: every domain, Domain-0 first, in the same form.
    let all = xm.ok(&["list", "-l"]);
    let (d0, rest) = all.split_once(")\n(domain\n").expect("two domains");
    assert!(
        d0.starts_with("(domain\n    (id 0)\n    (name Domain-0)\n"),
        "{all}"
    );
    assert_golden(
        &mask_long(&format!("(domain\n{rest}")),
        &golden_long(id, port),
    );

    let info = xm.ok(&["info"]);
    assert_golden(&mask_info(&info), GOLDEN_INFO);
    let node: serde_json::Value = serde_json::from_str(&xm.ok(&["info", "--json"])).unwrap();
    assert_eq!(node["system"], "Linux");
}

/// `xm list -l`: masks what changes from run to run and host to host, and
/// flattens the layout (where the pretty printer breaks lines depends on the
/// width of the masked values; the layout itself is checked by
/// [`check_pretty`]).
fn mask_long(text: &str) -> String {
    flatten_sxp(&mask_sxp(
        text,
        &[
            ("cpu_time", Kind::Float),
            ("up_time", Kind::Float),
            ("start_time", Kind::Float),
            ("state", Kind::Text),
            ("status", Kind::Text),
            ("cpu", Kind::Int),
            ("affinity", Kind::Int),
            ("console_bytes_out", Kind::Int),
            ("console_bytes_in", Kind::Int),
            ("exits", Kind::Int),
            ("vmm_overhead_kib", Kind::Int),
            ("uuid", Kind::Text),
            ("mono", Kind::Float),
            ("wall", Kind::Float),
        ],
    ))
}

/// The layout of the 80-column pretty printer: a list that does not fit has
/// its head on the `(` line, one element per line indented 4 more, and `)`
/// alone under the `(`.
#[track_caller]
fn check_pretty(text: &str) {
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.first(), Some(&"(domain"), "{text}");
    assert_eq!(lines.last(), Some(&")"), "{text}");
    for l in &lines {
        let indent = l.len() - l.trim_start().len();
        assert_eq!(indent % 4, 0, "indent of {l:?}");
        assert!(l.len() <= 80, "line longer than 80: {l:?}");
        let t = l.trim_start();
        assert!(t.starts_with('(') || t == ")", "{l:?}");
    }
}

fn golden_long(id: u32, port: u16) -> String {
    flatten_sxp(
        &GOLDEN_LONG
            .replace("<id>", &id.to_string())
            .replace("<port>", &port.to_string()),
    )
}

const GOLDEN_LONG: &str = "
(domain
    (id <id>)
    (name web1)
    (memory 16)
    (maxmem 16)
    (state <state>)
    (cpu <cpu>)
    (cpu_time <cpu_time>)
    (up_time <up_time>)
    (start_time <start_time>)
    (console
        (status <status>)
        (id <id>)
        (domain <id>)
        (local_port <id>)
        (remote_port 1)
        (console_port <port>)
    )
    (devices)
    (config
        (vm (name web1) (uuid <uuid>) (memory 16) (maxmem 16) (vcpus 1) (restart onreboot) (image (minios)))
    )
    (vcpus 1)
    (vcpu_info
        (vcpu (id 0) (cpu_time <cpu_time>) (state <state>) (affinity <affinity>) (cpu <cpu>))
    )
    (restart onreboot)
    (mem_kib 16384)
    (maxmem_kib 16384)
    (console_port <port>)
    (console_bytes_out <console_bytes_out>)
    (console_bytes_in <console_bytes_in>)
    (exits <exits>)
    (vmm_overhead_kib <vmm_overhead_kib>)
    (uuid <uuid>)
    (sampled_at (mono <mono>) (wall <wall>))
)
";

fn mask_info(text: &str) -> String {
    mask_values(
        text,
        &[
            ("host", Kind::Text),
            ("release", Kind::Text),
            ("version", Kind::Text),
            ("cores", Kind::Int),
            ("hyperthreads_per_core", Kind::Int),
            ("cpu_mhz", Kind::Int),
            ("memory", Kind::Int),
            ("free_memory", Kind::Int),
            ("nr_cpus", Kind::Int),
        ],
    )
}

const GOLDEN_INFO: &str = "\
system                 : Linux
host                   : <host>
release                : <release>
version                : <version>
machine                : x86_64
cores                  : <cores>
hyperthreads_per_core  : <hyperthreads_per_core>
cpu_mhz                : <cpu_mhz>
memory                 : <memory>
free_memory            : <free_memory>
nr_cpus                : <nr_cpus>
xen_major              : 3
xen_minor              : 0
xen_extra              : -kvm
xen_caps               : xen-3.0-x86_64-kvm
";

#[test]
fn actions_round_trip_through_the_api() {
    if !hypervisor::require_kvm() {
        return;
    }
    let xend = Xend::start();
    let xm = Xm { xend: &xend };

    // create -p leaves it paused before its first instruction: the guest
    // has printed nothing until it is unpaused.
    let id = create(&xm, "web2", &["-p"], "maxmem = 48\n");
    let d = xend.wait_domain("web2", "web2 paused", |d| d.state.contains('p'));
    assert_eq!(d.console_bytes_out, 0, "the paused guest ran: {d:?}");
    xm.ok(&["unpause", "web2"]);
    xend.wait_domain("web2", "web2 running", |d| !d.state.contains('p'));
    wait_prompt(&xend, id, "web2");
    xm.ok(&["pause", "web2"]);
    xend.wait_domain("web2", "web2 paused", |d| d.state.contains('p'));
    // A unique prefix of the command works the same.
    xm.ok(&["unp", &id.to_string()]);
    xend.wait_domain("web2", "web2 running", |d| !d.state.contains('p'));

    xm.ok(&["maxmem", "web2", "32"]);
    xend.wait_domain("web2", "maxmem 32", |d| d.maxmem == 32);
    // Above the boot maxmem (48) too: the VMM maps more RAM.
    xm.ok(&["maxmem", "web2", "64"]);
    xend.wait_domain("web2", "maxmem 64", |d| d.maxmem == 64);
    let out = xm.run(&["maxmem", "web2", "9000"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("Error: ") && err.contains("9000"), "{err}");
    xm.ok(&["mem-set", "web2", "12"]);
    xend.wait_domain("web2", "memory target 12", |d| d.memory == 12);

    xm.ok(&["vcpu-pin", "web2", "0", "0"]);
    xend.wait_domain("web2", "vcpu 0 pinned to cpu 0", |d| {
        d.vcpu_info.first().is_some_and(|v| v.affinity == [0])
    });
    let vcpus = xm.ok(&["vcpu-list", "web2"]);
    let row = vcpus.lines().nth(1).unwrap();
    assert!(row.starts_with("web2 ") && row.ends_with(" 0"), "{vcpus}");

    assert_eq!(xm.ok(&["domid", "web2"]), format!("{id}\n"));
    assert_eq!(xm.ok(&["domname", &id.to_string()]), "web2\n");

    let consoles = xm.ok(&["consoles"]);
    assert!(
        consoles.starts_with("Id       Domain       Port"),
        "{consoles}"
    );
    assert!(
        consoles.contains(&xend.console_port(id).to_string()),
        "{consoles}"
    );

    // shutdown -w returns once the domain is gone.
    assert_eq!(
        xm.ok(&["shutdown", "-w", "web2"]),
        "Domain web2 terminated\n"
    );
    assert!(xend.try_domain("web2").is_none());

    // destroy.
    let id3 = create(&xm, "web3", &[], "");
    xm.ok(&["destroy", "web3"]);
    xend.wait_gone(&id3.to_string());
}

#[test]
fn create_dry_run_variables_and_shutdown_all() {
    if !hypervisor::require_kvm() {
        return;
    }
    let xend = Xend::start();
    let xm = Xm { xend: &xend };
    let cfg = config(&xend, "base", "name = \"base\"\nmemory = 16\n");
    let dry = xm.ok(&["create", "-n", &cfg, "memory=24", "name=dry"]);
    assert!(
        dry.starts_with("(vm\n    (name dry)\n    (memory 24)"),
        "{dry}"
    );
    assert_eq!(xend.domain_names(), ["Domain-0"], "-n creates nothing");

    let out = xm.ok(&["create", &cfg, "name=v1", "memory=20"]);
    let d = xend.domain("v1");
    assert_eq!(
        out,
        format!(
            "Started domain v1, console on port {}\n",
            xend.console_port(d.id)
        )
    );
    assert_eq!(d.memory, 20);
    let out = xm.ok(&["create", &cfg, "name=v2"]);
    assert!(out.starts_with("Started domain v2, "), "{out}");
    wait_prompt(&xend, d.id, "v1");

    let out = xm.ok(&["shutdown", "-a", "-w"]);
    assert_eq!(
        out,
        "Domain v1 terminated\nDomain v2 terminated\nAll domains terminated\n"
    );
    wait_for(STATE, "only Domain-0 left", || {
        xend.domain_names() == ["Domain-0"]
    });
}

#[test]
fn reboot_waits_for_the_restart() {
    if !hypervisor::require_kvm() {
        return;
    }
    let xend = Xend::start();
    let xm = Xm { xend: &xend };
    let id = create(&xm, "rb", &[], "");
    wait_prompt(&xend, id, "rb");
    let before = xend.domain("rb");
    assert_eq!(xm.ok(&["reboot", "-w", "rb"]), "Domain rb rebooted\n");
    let after = xend.domain("rb");
    assert_eq!(after.id, before.id, "a restart keeps the id");
    assert_ne!(after.start_time, before.start_time);
    // The console kept its history across the restart: the old shell saw the
    // request, then the new instance booted to a new prompt.
    let mut con = xend.console(id);
    con.expect("minios: shutdown requested", e2e::BOOT);
    con.expect(&e2e::boot_banner(), e2e::BOOT);
    con.expect("minios@rb# ", e2e::BOOT);
}

#[test]
fn dmesg_log_and_call() {
    if !hypervisor::require_kvm() {
        return;
    }
    let xend = Xend::start();
    let xm = Xm { xend: &xend };
    let id = create(&xm, "lg", &[], "");
    let dmesg = xm.ok(&["dmesg"]);
    assert!(
        dmesg.contains(&format!("domain lg (id {id}) started")),
        "{dmesg}"
    );
    xm.ok(&["dmesg", "-c"]);
    assert!(
        !xm.ok(&["dmesg"]).contains("domain lg"),
        "dmesg -c cleared it"
    );
    let log = xm.ok(&["log"]);
    assert!(log.contains("created domain lg"), "{log}");

    // call: Xen 2 XendClient names, with or without the xend_ prefix.
    xm.ok(&["call", "xend_domain_pause", "lg"]);
    xend.wait_domain("lg", "lg paused", |d| d.state.contains('p'));
    xm.ok(&["call", "domain_unpause", &id.to_string()]);
    xend.wait_domain("lg", "lg running", |d| !d.state.contains('p'));
    assert_eq!(xm.ok(&["call", "domains"]), "(Domain-0 lg)\n");
    let node = xm.ok(&["call", "node"]);
    assert!(node.starts_with("(node\n    (system Linux)\n"), "{node}");
    // Device commands (a domain without devices; attaching is in xm_devices.rs).
    assert_eq!(xm.ok(&["vif-list", "lg"]), "");
    assert_eq!(xm.ok(&["vbd-l", "lg"]), "");
    let out = xm.run(&["vbd-destroy", "lg", "xvda"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "Error: Invalid parameter: idx: domain lg has no vbd xvda\n"
    );
    let out = xm.run(&["call", "domain_frob", "lg"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "Error: unknown function 'domain_frob'; `xm call help` lists them\n"
    );
}
