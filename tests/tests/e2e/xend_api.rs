//! xend's HTTP API end to end: every endpoint in SXP and JSON against a real
//! xend running real minios domains, and the error answers.
use e2e::{Accept, BOOT, STATE, Xend, XendOptions, prompt, wait_for};
use xend::api::{ConfigureReply, ConsoleInfo, DomainStats, NodeInfo, Snapshot};

fn sxp(text: &str) -> sxp::Value {
    sxp::parse(text).unwrap_or_else(|e| panic!("not SXP ({e}): {text}"))
}

fn heads(v: &sxp::Value) -> Vec<String> {
    v.rest()
        .iter()
        .filter_map(|x| x.head().map(str::to_string))
        .collect()
}

#[test]
fn node_root_and_host_figures() {
    let xend = Xend::start();
    // SXP is the default for programs.
    let r = xend.get("/xend/").ok();
    assert!(r.content_type.starts_with("application/sxp"), "{r:?}");
    assert_eq!(r.body, "(ls node domain console event vnet)");
    assert_eq!(
        xend.get_json("/xend/").ok().json(),
        serde_json::json!(["node", "domain", "console", "event", "vnet"])
    );

    let node = sxp(&xend.get("/xend/node").ok().body);
    assert_eq!(node.head(), Some("node"));
    assert_eq!(
        heads(&node)[..10],
        [
            "system",
            "host",
            "release",
            "version",
            "machine",
            "cores",
            "hyperthreads_per_core",
            "cpu_mhz",
            "memory",
            "free_memory"
        ]
    );
    let json: NodeInfo = serde_json::from_str(&xend.get_json("/xend/node").ok().body).unwrap();
    // Real host figures.
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
    let total_kib: u64 = meminfo
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(json.memory, total_kib / 1024);
    assert!(json.free_memory > 0 && json.free_memory <= json.memory);
    let cpus = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    assert_eq!(json.nr_cpus as usize, cpus);
    assert_eq!(json.system, "Linux");
    assert_eq!(node.child_value("host"), Some(json.host.as_str()));
    assert_eq!(json.machine, std::env::consts::ARCH);

    // dmesg and the log are text.
    let log = xend.get("/xend/node/log").ok();
    assert!(log.content_type.starts_with("text/plain"));
    assert!(log.body.contains("xend 0.1.0 starting"), "{}", log.body);
    assert!(
        xend.get("/xend/node/dmesg")
            .ok()
            .content_type
            .starts_with("text/plain")
    );
    // Host power ops are not served.
    let r = xend.post("/xend/node", &[("op", "reboot")]).status(501);
    assert_eq!(r.body, "(xend.err 'Operation not implemented: reboot')");
    xend.post("/xend/node", &[]).status(406);
}

#[test]
fn domain_lifecycle_in_sxp_and_json() {
    if !hypervisor::require_kvm() {
        return;
    }
    let xend = Xend::start();
    // Create from SXP, as a program: 201, Location, the domain sxpr. (An SXP
    // create without `paused` is Xen 2.0's: built paused for the client to
    // unpause; `tests/tests/e2e/xen2_compat.rs` covers that.)
    let r = xend
        .post(
            "/xend/domain",
            &[("op", "create"), ("config", "(vm (name alpha) (memory 16) (maxmem 32) (vcpus 2) (image (minios (args 'quiet=1'))))"), ("paused", "0")],
        )
        .status(201);
    assert!(
        r.location
            .as_deref()
            .is_some_and(|l| l.ends_with("/xend/domain/alpha")),
        "{r:?}"
    );
    let created = sxp(&r.body);
    assert_eq!(created.child_value("id"), Some("1"));
    assert_eq!(created.child_value("name"), Some("alpha"));
    let mut con = xend.console(1);
    con.expect(&prompt("alpha"), BOOT);

    // Create from the xm form, as JSON.
    let beta = xend.create("name = 'beta'\nmemory = 24\nmaxmem = 32\nrestart = 'never'\n");
    assert_eq!(
        (beta.id, beta.name.as_str(), beta.memory, beta.maxmem),
        (2, "beta", 24, 32)
    );
    assert_eq!(beta.restart, "never");

    // List.
    assert_eq!(xend.get("/xend/domain").ok().body, "(Domain-0 alpha beta)");
    assert_eq!(xend.domain_names(), ["Domain-0", "alpha", "beta"]);
    let detail = sxp(&xend
        .request("GET", "/xend/domain", Accept::Sxp, &[("detail", "1")])
        .ok()
        .body);
    assert_eq!(detail.as_list().unwrap().len(), 3);

    // One domain, by name and by id, in the reference's field order.
    let a = sxp(&xend.get("/xend/domain/alpha").ok().body);
    let h = heads(&a);
    assert_eq!(
        h[..10],
        [
            "id",
            "name",
            "memory",
            "maxmem",
            "state",
            "cpu",
            "cpu_time",
            "up_time",
            "start_time",
            "console"
        ]
    );
    // Then Xen 2.0.6's (devices) and (config), then ours.
    assert_eq!(h[10..12], ["devices", "config"]);
    assert_eq!(
        a.child("config").unwrap().rest()[0].child_value("name"),
        Some("alpha")
    );
    let state = a.child_value("state").unwrap();
    // Five letters in SXP, as Xen 2.0 printed (JSON keeps six).
    assert_eq!(state.len(), 5, "{state}");
    assert!(state == "-b---" || state == "r----", "{state}");
    let console = a.child("console").unwrap();
    assert_eq!(
        console.child_value("console_port"),
        Some(xend.console_port(1).to_string().as_str())
    );
    assert_eq!(console.child_value("status"), Some("connected"));
    let by_id = xend.domain("1");
    assert_eq!(by_id.name, "alpha");
    assert_eq!(by_id.vcpus, 2);
    assert_eq!(by_id.vcpu_info.len(), 2);
    assert!(by_id.cpu_time > 0.0 && by_id.up_time > 0.0 && by_id.start_time > 1.6e9);
    assert_eq!(by_id.console_port, Some(xend.console_port(1)));

    // Domain-0 is the host.
    let d0 = sxp(&xend.get("/xend/domain/Domain-0").ok().body);
    assert_eq!(d0.child_value("id"), Some("0"));
    assert!(d0.child("console").is_none() && d0.child("config").is_none());

    // Bulk stats: Domain-0 first, then by id.
    let snap: Snapshot = serde_json::from_str(
        &xend
            .request("GET", "/xend/domain", Accept::Json, &[("op", "stats")])
            .ok()
            .body,
    )
    .unwrap();
    let ids: Vec<u32> = snap.domains.iter().map(|d| d.id).collect();
    assert_eq!(ids, [0, 1, 2]);
    assert_eq!(snap.node.nr_cpus, snap.domains[0].vcpus);
    let s = sxp(&xend
        .request("GET", "/xend/domain", Accept::Sxp, &[("op", "stats")])
        .ok()
        .body);
    assert_eq!(heads(&s), ["time", "xend_version", "node", "domains"]);
    assert_eq!(s.child("domains").unwrap().rest().len(), 3);

    // Stored config, both forms.
    let r = xend
        .request(
            "GET",
            "/xend/domain/alpha",
            Accept::Sxp,
            &[("op", "config")],
        )
        .ok();
    let cfg = sxp(&r.body);
    assert_eq!(cfg.head(), Some("vm"));
    assert_eq!(cfg.child_value("vcpus"), Some("2"));
    let r = xend
        .request(
            "GET",
            "/xend/domain/alpha",
            Accept::Json,
            &[("op", "config"), ("format", "xm")],
        )
        .ok();
    assert!(r.content_type.starts_with("text/plain"));
    assert!(
        r.body.contains("name = \"alpha\"") || r.body.contains("name = 'alpha'"),
        "{}",
        r.body
    );

    // Pause / unpause, in both formats.
    assert_eq!(
        xend.post("/xend/domain/alpha", &[("op", "pause")])
            .ok()
            .body,
        "0"
    );
    xend.wait_domain("alpha", "paused", |d| d.state == "--p---");
    xend.act("alpha", "unpause", &[]).ok();
    xend.wait_domain("alpha", "unpaused", |d| !d.state.contains('p'));
    con.send("uname\n");
    con.expect("minios", BOOT);
    con.expect(&prompt("alpha"), BOOT);

    // Memory and pinning.
    xend.act("alpha", "maxmem_set", &[("memory", "24")]).ok();
    xend.act("alpha", "mem_target_set", &[("target", "12")])
        .ok();
    let d = xend.domain("alpha");
    assert_eq!((d.memory, d.maxmem), (12, 24));
    xend.act("alpha", "pincpu", &[("vcpu", "1"), ("cpumap", "0")])
        .ok();
    let d = xend.domain("alpha");
    assert_eq!(d.vcpu_info[1].affinity, [0]);
    xend.act("alpha", "pincpu", &[("cpu", "1")]).ok();
    assert!(
        xend.domain("alpha")
            .vcpu_info
            .iter()
            .all(|v| v.affinity == [1])
    );

    // Configure: memory applies now, vcpus at the next boot.
    let r = xend
        .act(
            "alpha",
            "configure",
            &[(
                "config",
                "(vm (name alpha) (memory 20) (maxmem 24) (vcpus 1) (image (minios)))",
            )],
        )
        .ok();
    let reply: ConfigureReply = serde_json::from_str(&r.body).unwrap();
    assert!(reply.live.contains(&"memory".to_string()), "{reply:?}");
    assert!(reply.next_boot.contains(&"vcpus".to_string()), "{reply:?}");
    assert!(reply.next_boot.contains(&"image".to_string()), "{reply:?}");
    assert_eq!(xend.domain("alpha").memory, 20);
    let r = xend.post(
        "/xend/domain/alpha",
        &[
            ("op", "configure"),
            (
                "config",
                "name = 'alpha'\nmemory = 20\nmaxmem = 24\nrestart = 'always'\n",
            ),
        ],
    );
    assert_eq!(r.ok().body, "(configure (live restart) (next_boot))");

    // Consoles.
    assert_eq!(
        xend.get("/xend/console").ok().body,
        format!("({} {})", xend.console_port(1), xend.console_port(2))
    );
    let ports: Vec<u16> = serde_json::from_str(&xend.get_json("/xend/console").ok().body).unwrap();
    assert_eq!(ports, [xend.console_port(1), xend.console_port(2)]);
    let c: ConsoleInfo = serde_json::from_str(
        &xend
            .get_json(&format!("/xend/console/{}", xend.console_port(2)))
            .ok()
            .body,
    )
    .unwrap();
    assert_eq!((c.status.as_str(), c.domain), ("listening", 2));
    let c = sxp(&xend
        .get(&format!("/xend/console/{}", xend.console_port(1)))
        .ok()
        .body);
    assert_eq!(c.child_value("status"), Some("connected"));
    assert!(c.child("connected").is_some());

    // dmesg carries the VMM logs.
    let dmesg = xend.get("/xend/node/dmesg").ok().body;
    assert!(dmesg.contains("(d1)") && dmesg.contains("(d2)"), "{dmesg}");
    xend.post("/xend/node/dmesg", &[("op", "clear")]).ok();

    // Shutdown (202, body 0) ends beta (restart never): gone.
    let r = xend.post(
        "/xend/domain/beta",
        &[("op", "shutdown"), ("reason", "poweroff")],
    );
    assert_eq!((r.status, r.body.as_str()), (202, "0"));
    xend.wait_gone("beta");
    // Destroy alpha: its console client is closed.
    xend.post("/xend/domain/alpha", &[("op", "destroy")]).ok();
    assert!(xend.try_domain("alpha").is_none());
    con.expect_closed(STATE);
    assert_eq!(xend.get("/xend/domain").ok().body, "(Domain-0)");
    assert!(
        std::fs::read_dir(xend.db_dir().join("domain"))
            .unwrap()
            .next()
            .is_none()
    );
}

#[test]
fn errors_name_what_was_wrong() {
    if !hypervisor::require_kvm() {
        return;
    }
    let xend = Xend::start_with(XendOptions {
        max_request_bytes: Some(4096),
        ..XendOptions::default()
    });
    #[track_caller]
    fn check(r: e2e::Reply, status: u16, message: &str) {
        assert_eq!(r.status, status, "{}", r.body);
        let quoted = sxp::Value::str(message).to_string();
        let want = if sxp::is_bare(message) {
            format!("(xend.err '{message}')")
        } else {
            format!("(xend.err {quoted})")
        };
        assert_eq!(r.body, want);
    }
    // Unknown domain: 404 in SXP and JSON.
    check(xend.get("/xend/domain/nope"), 404, "invalid domain:nope");
    let r = xend.get_json("/xend/domain/nope");
    assert_eq!(r.status, 404);
    assert_eq!(
        r.json(),
        serde_json::json!({"error": "invalid domain:nope"})
    );
    // Missing and unknown ops.
    check(xend.post("/xend/domain", &[]), 406, "Missing parameter: op");
    check(
        xend.post("/xend/domain", &[("op", "frobnicate")]),
        501,
        "Operation not implemented: frobnicate",
    );
    // The same on the endpoints that have one op (vnet create, event
    // stream and inject).
    check(xend.post("/xend/vnet", &[]), 406, "Missing parameter: op");
    check(xend.get("/xend/event"), 406, "Missing parameter: op");
    check(xend.post("/xend/event", &[]), 406, "Missing parameter: op");
    for (get, path) in [
        (false, "/xend/vnet"),
        (true, "/xend/event"),
        (false, "/xend/event"),
    ] {
        let r = if get {
            xend.get(&format!("{path}?op=frobnicate"))
        } else {
            xend.post(path, &[("op", "frobnicate")])
        };
        check(r, 501, "Operation not implemented: frobnicate");
    }
    check(
        xend.post("/xend/domain", &[("op", "restore"), ("file", "")]),
        400,
        "Invalid parameter: file: the file name is empty",
    );
    check(
        xend.post("/xend/domain", &[("op", "create")]),
        400,
        "Missing parameter: config",
    );

    // Config errors carry line:column.
    let r = xend.post(
        "/xend/domain",
        &[("op", "create"), ("config", "name = 'x'\nmemory = lots\n")],
    );
    assert_eq!(r.status, 400);
    assert!(r.body.contains("config:2:10"), "{}", r.body);
    let r = xend.post(
        "/xend/domain",
        &[
            ("op", "create"),
            (
                "config",
                "(vm (name x)\n  (memory 16)\n  (vcpus many) (image (minios)))",
            ),
        ],
    );
    assert_eq!(r.status, 400);
    assert!(
        r.body.contains("config:3:") && r.body.contains("vcpus"),
        "{}",
        r.body
    );
    let r = xend.post(
        "/xend/domain",
        &[
            ("op", "create"),
            ("config", "(vm (name 9bad) (memory 16) (image (minios)))"),
        ],
    );
    assert_eq!(r.status, 400, "{}", r.body);
    let r = xend.post(
        "/xend/domain",
        &[
            ("op", "create"),
            (
                "config",
                "(vm (name x) (memory 16) (restart sometimes) (image (minios)))",
            ),
        ],
    );
    assert!(r.status == 400 && r.body.contains("restart"), "{}", r.body);
    // Absurd sizes.
    let r = xend.post(
        "/xend/domain",
        &[
            ("op", "create"),
            ("config", "name='x'\nmemory=16\nvcpus=4000\n"),
        ],
    );
    assert_eq!(r.status, 400, "{}", r.body);
    let free = xend.get_json("/xend/node").ok().json()["free_memory"]
        .as_u64()
        .unwrap();
    // Below the one memory limit (8192 MiB), the host's free memory decides.
    if free < 8192 {
        let cfg = format!("name='x'\nmemory={}\n", free + 1);
        let r = xend.post("/xend/domain", &[("op", "create"), ("config", &cfg)]);
        assert!(
            r.status == 400 && r.body.contains("free memory"),
            "{}",
            r.body
        );
    }
    // Host paths: only a kernel image inside kernel-dirs (403 elsewhere,
    // whether or not it exists), and there it must exist and be a file.
    let images = xend.images_dir();
    let kernel = |path: &str| {
        xend.post(
            "/xend/domain",
            &[
                ("op", "create"),
                (
                    "config",
                    &format!("(vm (name k) (memory 16) (image (linux (kernel {path}))))"),
                ),
            ],
        )
    };
    for outside in ["/nonexistent/vmlinuz", "/tmp"] {
        check(
            kernel(outside),
            403,
            &format!(
                "kernel {outside} is outside the allowed kernel directories ({}); add its directory to kernel-dirs in xend-config.sxp",
                images.display()
            ),
        );
    }
    let missing = images.join("vmlinuz");
    check(
        kernel(&missing.display().to_string()),
        400,
        &format!("Kernel image does not exist: {}", missing.display()),
    );
    check(
        kernel(&images.display().to_string()),
        400,
        &format!("Kernel image is not a regular file: {}", images.display()),
    );
    // Body cap.
    let big = "#".repeat(8192);
    let r = xend.post("/xend/domain", &[("op", "create"), ("config", &big)]);
    assert_eq!(r.status, 413, "{}", r.body);
    assert!(r.body.contains("max-request-bytes"), "{}", r.body);
    // Garbage does not hurt.
    let r = xend.post_raw(
        "/xend/domain",
        "multipart/form-data; boundary=zz",
        b"--zz\r\nnonsense".to_vec(),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    let r = xend.post_raw(
        "/xend/domain",
        "application/x-www-form-urlencoded",
        vec![0xff, b'=', 0xfe, b'&', b'%'],
    );
    assert!(r.status >= 400, "{}", r.body);

    // A console port that is taken fails the create.
    let taken = xend.api_port();
    check(
        xend.post(
            "/xend/domain",
            &[
                ("op", "create"),
                (
                    "config",
                    &format!("(vm (name cp) (memory 16) (console {taken}) (image (minios)))"),
                ),
            ],
        ),
        409,
        &format!("console port in use: {taken}"),
    );
    assert!(xend.try_domain("cp").is_none());
    check(
        xend.post(
            "/xend/domain",
            &[
                ("op", "create"),
                (
                    "config",
                    "(vm (name cp) (memory 16) (console 80) (image (minios)))",
                ),
            ],
        ),
        400,
        "Invalid parameter: console: port 80 is privileged; use 1024-65535",
    );
    // Name clash.
    let dom = xend.create("(vm (name dup) (memory 16) (image (minios)))");
    check(
        xend.post(
            "/xend/domain",
            &[("op", "create"), ("config", "name = 'dup'\nmemory = 16\n")],
        ),
        409,
        "vm name clash: dup",
    );
    // Bad action parameters.
    check(
        xend.act_sxp("dup", "shutdown", &[("reason", "nap")]),
        400,
        "Invalid parameter: reason: \"nap\": expected poweroff, reboot, halt",
    );
    check(
        xend.act_sxp("dup", "mem_target_set", &[]),
        400,
        "Missing parameter: target",
    );
    check(
        xend.act_sxp("dup", "mem_target_set", &[("target", "lots")]),
        400,
        "Invalid parameter: target: \"lots\" is not a valid number",
    );
    check(
        xend.act_sxp("dup", "save", &[("file", "")]),
        400,
        "Invalid parameter: file: the file name is empty",
    );
    check(
        xend.act_sxp("dup", "migrate", &[("destination", "no host")]),
        400,
        "Invalid parameter: destination: \"no host\": expected HOST or HOST:PORT",
    );
    check(
        xend.act_sxp("dup", "device_create", &[]),
        400,
        "Missing parameter: config",
    );
    check(
        xend.act_sxp("dup", "pincpu", &[("cpumap", "999")]),
        400,
        &format!(
            "Invalid parameter: cpumap: \"999\": this host has CPUs 0-{}",
            xend.get_json("/xend/node").ok().json()["nr_cpus"]
                .as_u64()
                .unwrap()
                - 1
        ),
    );
    let r = xend.act_sxp(
        "dup",
        "configure",
        &[("config", "(vm (name other) (memory 16) (image (minios)))")],
    );
    assert!(
        r.status == 400 && r.body.contains("name cannot change"),
        "{}",
        r.body
    );
    check(xend.get("/xend/vnet/7"), 404, "no such vnet: 7");
    check(
        xend.post("/xend/vnet", &[("op", "create")]),
        400,
        "Missing parameter: config",
    );
    check(xend.get("/xend/console/1"), 404, "no console on port 1");
    // The domain is unharmed by all of this.
    let d: DomainStats = xend.domain(&dom.id.to_string());
    assert_eq!(d.name, "dup");
}

#[test]
fn events_reach_the_stream_and_the_event_port() {
    if !hypervisor::require_kvm() {
        return;
    }
    use std::io::{BufRead, BufReader};
    let xend = Xend::start();
    let mut port = e2e::EventPort::connect(&xend);
    let resp = reqwest::blocking::Client::new()
        .get(xend.url("/xend/event?op=stream"))
        .header("Accept", "application/json")
        .header("Authorization", xend.authorization())
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut stream = BufReader::new(resp);
    let sxp_resp = reqwest::blocking::Client::new()
        .get(xend.url("/xend/event?op=stream"))
        .header("Authorization", xend.authorization())
        .send()
        .unwrap();
    assert!(
        sxp_resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/sxp")
    );
    let mut sxp_stream = BufReader::new(sxp_resp);
    // Injected events reach every subscriber.
    // The event port subscribes once its connection is accepted: inject until
    // the subscriber sees one.
    wait_for(STATE, "the event port subscription", || {
        xend.post_local(
            "/xend/event",
            &[("op", "inject"), ("event", "(event test.hello (detail x))")],
        )
        .ok();
        port.try_line(
            "(event test.hello (test.hello (detail x)))",
            std::time::Duration::from_millis(100),
        )
        .is_some()
    });
    let dom = xend.create("(vm (name ev) (memory 16) (image (minios)))");
    xend.act("ev", "pause", &[]).ok();
    xend.act("ev", "destroy", &[]).ok();
    let mut seen = Vec::new();
    while !seen
        .iter()
        .any(|e: &xend::api::XendEvent| e.event == "xend.domain.destroy")
    {
        let mut line = String::new();
        assert!(
            stream.read_line(&mut line).unwrap() > 0,
            "stream ended; seen {seen:?}"
        );
        seen.push(serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}")));
    }
    assert_eq!(seen[0].event, "test.hello");
    assert_eq!(seen[0].detail.as_deref(), Some("x"));
    let seen: Vec<_> = seen
        .into_iter()
        .filter(|e| e.event != "test.hello")
        .collect();
    let names: Vec<&str> = seen.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(
        names,
        [
            "xend.domain.create",
            "xend.domain.pause",
            "xend.domain.destroy"
        ]
    );
    assert!(
        seen.iter()
            .all(|e| e.domid == Some(dom.id) && e.name.as_deref() == Some("ev"))
    );
    let mut line = String::new();
    while !line.starts_with("(event xend.domain.create") {
        line.clear();
        assert!(sxp_stream.read_line(&mut line).unwrap() > 0);
    }
    assert!(
        line.starts_with("(event xend.domain.create (domid 1) (name ev) (time "),
        "{line}"
    );
    // The event port speaks Xen 2.0: (event NAME (DOMNAME DOMID [DETAIL])).
    port.expect_line("(event xend.domain.create (ev 1", STATE);
    port.expect_line("(event xend.domain.pause (ev 1", STATE);
    port.expect_line("(event xend.domain.destroy (ev 1", STATE);
    let r = xend.post_local("/xend/event", &[("op", "inject"), ("event", "(unclosed")]);
    assert_eq!(r.status, 400, "{}", r.body);
}

#[test]
fn token_guards_the_api_consoles_and_events() {
    if !hypervisor::require_kvm() {
        return;
    }
    let xend = Xend::start_with(XendOptions {
        token: Some("s3cret-token".into()),
        ..XendOptions::default()
    });
    let plain = reqwest::blocking::Client::new();
    let r = plain.get(xend.url("/xend/node")).send().unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.text().unwrap().contains("Authentication required"));
    let r = plain
        .get(xend.url("/xend/node"))
        .header("Authorization", "Bearer wrong")
        .send()
        .unwrap();
    assert_eq!(r.status(), 401);
    // Browsers pass it once in the query; it is kept in a cookie.
    let r = plain
        .get(xend.url("/xend/?token=s3cret-token"))
        .header("Accept", "text/html")
        .header("User-Agent", "Mozilla/5.0")
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
    let cookie = cookie.split(';').next().unwrap().to_string();
    assert_eq!(cookie, "xend_token=s3cret-token");
    let r = plain
        .get(xend.url("/xend/node"))
        .header("Cookie", &cookie)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    // The harness sends the token.
    let dom = xend.create("(vm (name tok) (memory 16) (image (minios)))");
    let mut con = xend.console(dom.id);
    con.expect(&prompt("tok"), BOOT);
    // A console client without the token is turned away.
    let mut bad = e2e::Console::connect(xend.console_port(dom.id), Some("nope")).unwrap();
    assert!(bad.expect_closed(STATE).contains("Authentication failed"));
    let mut events = e2e::Console::connect(xend.event_port(), Some("nope")).unwrap();
    assert!(
        events
            .expect_closed(STATE)
            .contains("Authentication failed")
    );
}

#[test]
fn refuses_to_listen_beyond_loopback_without_authentication() {
    let xend = Xend::start();
    let cfg = std::fs::read_to_string(xend.config_path()).unwrap();
    let path = xend.dir().join("open.sxp");
    std::fs::write(
        &path,
        cfg.replace("(xend-address 127.0.0.1)", "(xend-address 0.0.0.0)")
            + "(xend-tcp-auth none)\n",
    )
    .unwrap();
    let out = std::process::Command::new(e2e::bin("xend"))
        .arg("--config")
        .arg(&path)
        .arg("foreground")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("0.0.0.0 is not a loopback address and xend-tcp-auth is none"),
        "{err}"
    );
    // A token file others can read is refused too.
    let token = xend.dir().join("tok");
    std::fs::write(&token, "abc\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).unwrap();
    let other = cfg.replace(
        &format!("(token-file {})", xend.token_file().display()),
        &format!("(token-file {})", token.display()),
    );
    let other = other.replace(
        &format!("(state-dir {})", xend.state_dir().display()),
        &format!("(state-dir {})", xend.dir().join("state2").display()),
    );
    std::fs::write(&path, other).unwrap();
    let out = std::process::Command::new(e2e::bin("xend"))
        .arg("--config")
        .arg(&path)
        .arg("foreground")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is mode 0644"), "{err}");
}

#[test]
fn concurrent_creates_with_one_name_give_one_domain() {
    if !hypervisor::require_kvm() {
        return;
    }
    let xend = Xend::start();
    let base = xend.base_url();
    let auth = xend.authorization();
    let results: Vec<(u16, String)> = (0..4)
        .map(|_| {
            let base = base.clone();
            let auth = auth.clone();
            std::thread::spawn(move || {
                let r = reqwest::blocking::Client::new()
                    .post(format!("{base}/xend/domain"))
                    .header("Authorization", auth)
                    .form(&[
                        ("op", "create"),
                        ("config", "(vm (name race) (memory 16) (image (minios)))"),
                    ])
                    .send()
                    .unwrap();
                (r.status().as_u16(), r.text().unwrap())
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().unwrap())
        .collect();
    assert_eq!(
        results.iter().filter(|(s, _)| *s == 201).count(),
        1,
        "{results:?}"
    );
    for (status, body) in results.iter().filter(|(s, _)| *s != 201) {
        assert_eq!(
            (*status, body.as_str()),
            (409, "(xend.err 'vm name clash: race')")
        );
    }
    assert_eq!(xend.domain_names(), ["Domain-0", "race"]);
}

#[test]
fn malformed_requests_do_not_hurt_xend() {
    use std::io::{Read, Write};
    let xend = Xend::start_with(XendOptions {
        max_request_bytes: Some(64 * 1024),
        ..XendOptions::default()
    });
    // Each case carries the token after its request line, so that what it
    // sends reaches the handlers.
    let auth = format!("\r\nAuthorization: {}\r\n", xend.authorization());
    let raw = |bytes: &[u8]| {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", xend.api_port())).unwrap();
        s.set_read_timeout(Some(STATE)).unwrap();
        let text = String::from_utf8_lossy(bytes).replacen("\r\n", &auth, 1);
        let _ = s.write_all(text.as_bytes());
        let _ = s.shutdown(std::net::Shutdown::Write);
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    };
    let deep = format!("config={}", "(".repeat(20_000));
    let cases: Vec<Vec<u8>> = vec![
        b"GARBAGE\r\n\r\n".to_vec(),
        b"GET /xend/domain/%ff%fe HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".to_vec(),
        format!("GET /xend/{} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", "a".repeat(50_000)).into_bytes(),
        b"POST /xend/domain HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\n\r\nop=cr".to_vec(),
        b"POST /xend/domain HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 99999999\r\n\r\nop=".to_vec(),
        format!(
            "POST /xend/domain HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\nop=create&{deep}",
            deep.len() + 10
        )
        .into_bytes(),
        b"POST /xend/event HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 26\r\n\r\nop=inject&event=((((((((((".to_vec(),
        b"DELETE /xend/domain HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".to_vec(),
        b"GET /xend/console/99999999999 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".to_vec(),
        b"POST /xend/domain/x?op=pincpu&cpumap=0-99999999999 HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n".to_vec(),
    ];
    for case in &cases {
        raw(case);
        assert!(
            xend.answers(),
            "xend stopped answering after {:?}",
            String::from_utf8_lossy(&case[..case.len().min(80)])
        );
    }
    // A config nested beyond the reader's limit is a clear 400.
    let r = xend.post(
        "/xend/domain",
        &[("op", "create"), ("config", &"(".repeat(20_000))],
    );
    assert_eq!(r.status, 400, "{}", r.body);
    let r = xend.request("DELETE", "/xend/domain", Accept::Sxp, &[]);
    assert_eq!(r.status, 405);
    assert_eq!(xend.get("/xend/domain").ok().body, "(Domain-0)");
}

#[test]
fn xend_config_from_the_environment() {
    let xend = Xend::start();
    let out = std::process::Command::new(e2e::bin("xend"))
        .arg("status")
        .env("XEND_CONFIG", xend.config_path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("xend is running (pid {})", xend.pid().unwrap())),
        "{text}"
    );
    assert!(text.contains(&xend.base_url()), "{text}");
    // A config file with an unknown key is refused with its position.
    let bad = xend.dir().join("bad.sxp");
    std::fs::write(&bad, "(xend-port 1)\n(xend-adress 0.0.0.0)\n").unwrap();
    let out = std::process::Command::new(e2e::bin("xend"))
        .args(["--config", bad.to_str().unwrap(), "status"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.sxp:2:") && err.contains("xend-adress"),
        "{err}"
    );
}
