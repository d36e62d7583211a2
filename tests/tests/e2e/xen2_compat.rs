//! The real Xen 2.0.6 client against this xend, byte for byte.
//!
//! Every request here is what `tools/python/xen/xend/XendClient.py` of Xen
//! 2.0.6 sends under Python 2.7's `httplib` (captured from the unmodified
//! client; only the port in `Host` differs): no token, no `User-Agent`, no
//! `Accept`, `Accept-Encoding: identity`, a trailing `/` on collection URLs,
//! `urllib.urlencode` forms in dict order and its own multipart encoding
//! (a file part runs straight into the next boundary). The checks are what
//! that client concludes from a reply: it accepts only 200, 201, 202 and
//! 204, raises `XendError(reason phrase)` on anything else without reading
//! the body, and parses the body as SXP only when `Content-Type` is exactly
//! `application/sxp`.
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use e2e::{BOOT, STATE, Xend, XendOptions, bin, prompt, wait_for, wait_until};

/// A reply as the 2.0 client's `httplib` sees it.
#[derive(Debug)]
struct Raw {
    status: u16,
    reason: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl Raw {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// What `SynchXendClientProtocol.xendRequest` returns: `Ok(SXP)` for a
    /// 2xx `application/sxp` reply (`xend.err` bodies raise), `Err(reason)`
    /// for any other status.
    fn conclusion(&self) -> Result<sxp::Value, String> {
        if ![200, 201, 202, 204].contains(&self.status) {
            return Err(self.reason.clone());
        }
        assert_eq!(
            self.header("content-type"),
            Some("application/sxp"),
            "{self:?}"
        );
        let v = sxp::parse(&self.body).unwrap_or_else(|e| panic!("not SXP ({e}): {self:?}"));
        if v.head() == Some("xend.err") {
            return Err(v.rest()[0].to_string());
        }
        Ok(v)
    }

    #[track_caller]
    fn ok(&self) -> sxp::Value {
        self.conclusion()
            .unwrap_or_else(|e| panic!("the 2.0 client says Error: {e}\n{self:?}"))
    }

    #[track_caller]
    fn err(&self, status: u16) -> String {
        assert_eq!(self.status, status, "{self:?}");
        self.conclusion().expect_err("an error")
    }
}

/// Send `request` (a captured 2.0 request with `Host: localhost:PORT`) to
/// `port` and read the reply the way httplib does.
fn send(port: u16, request: &[u8]) -> Raw {
    let request = String::from_utf8_lossy(request).replace("PORT", &port.to_string());
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to xend");
    s.set_read_timeout(Some(STATE)).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = s.read(&mut chunk).expect("read the reply");
        assert!(n > 0, "connection closed before the headers: {buf:?}");
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8(buf[..head_end].to_vec()).expect("ASCII headers");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let mut parts = status_line.splitn(3, ' ');
    assert_eq!(parts.next(), Some("HTTP/1.1"), "{status_line}");
    let status = parts.next().unwrap().parse().unwrap();
    let reason = parts.next().unwrap_or("").to_string();
    let headers: Vec<(String, String)> = lines
        .map(|l| {
            let (k, v) = l.split_once(':').expect("a header line");
            (k.to_string(), v.trim().to_string())
        })
        .collect();
    let mut body = buf[head_end + 4..].to_vec();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .map(|(_, v)| v.parse().unwrap())
        .expect("xend's replies carry Content-Length");
    while body.len() < len {
        let n = s.read(&mut chunk).expect("read the body");
        assert!(n > 0, "connection closed inside the body");
        body.extend_from_slice(&chunk[..n]);
    }
    Raw {
        status,
        reason,
        headers,
        body: String::from_utf8(body).expect("UTF-8 body"),
    }
}

fn get(port: u16, path: &str) -> Raw {
    let req =
        format!("GET {path} HTTP/1.1\r\nHost: localhost:PORT\r\nAccept-Encoding: identity\r\n\r\n");
    send(port, req.as_bytes())
}

/// A 2.0 POST with a body of content type `ctype`.
fn post(port: u16, path: &str, ctype: &str, body: &str) -> Raw {
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: localhost:PORT\r\nAccept-Encoding: identity\r\n\
         Content-Length: {}\r\nContent-Type: {ctype}\r\n\r\n{body}",
        body.len()
    );
    send(port, req.as_bytes())
}

fn form(port: u16, path: &str, body: &str) -> Raw {
    post(port, path, "application/x-www-form-urlencoded", body)
}

/// `xend_domain_create(FILENAME)` (`xm create -F FILE`): Xen's multipart
/// encoding, the file part first (Python 2.7's dict order), its bytes running
/// straight into the next boundary.
fn create_from_file(port: u16, file: &str, text: &str) -> Raw {
    let b = "66c8f4e2629b6b22";
    let body = format!(
        "--{b}\r\nContent-Disposition: form-data; name=\"config\"; filename=\"{file}\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n{text}--{b}\r\n\
         Content-Disposition: form-data; name=\"op\"\r\n\r\ncreate\r\n--{b}--\r\n"
    );
    post(
        port,
        "/xend/domain",
        &format!("multipart/form-data; boundary={b}"),
        &body,
    )
}

/// `urllib.urlencode` of a config, as `xm create FILE` sends it (its config
/// made into SXP text).
fn urlencode(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        match b {
            b' ' => out.push('+'),
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'.' | b'-' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn xend() -> Xend {
    // 2.0 clients send no token.
    Xend::start_with(XendOptions {
        token: None,
        ..Default::default()
    })
}

fn heads(v: &sxp::Value) -> Vec<&str> {
    v.rest().iter().filter_map(|x| x.head()).collect()
}

#[test]
fn collections_with_a_trailing_slash_as_xend_client_names_them() {
    let xend = xend();
    let port = xend.api_port();
    // The exact bytes of xend_node(), xend_domains(), xend_consoles(),
    // xend_vnets().
    let node = get(port, "/xend/node/").ok();
    assert_eq!(node.head(), Some("node"));
    assert_eq!(node.child_value("system"), Some("Linux"));
    assert_eq!(get(port, "/xend/domain/").ok().to_string(), "(Domain-0)");
    let detail = get(port, "/xend/domain/?detail=1").ok();
    assert_eq!(detail.as_list().map(|l| l.len()), Some(1), "{detail}");
    assert_eq!(get(port, "/xend/console/").ok().to_string(), "()");
    assert_eq!(get(port, "/xend/vnet/").ok().to_string(), "()");
    // xend_domain(0): the host as a 2.0 domain record.
    let d0 = get(port, "/xend/domain/0").ok();
    assert_eq!(d0.child_value("name"), Some("Domain-0"));
    assert_eq!(d0.child_value("state").map(str::len), Some(5), "{d0}");
    // A POST to a collection with its slash (2.0's asynchronous client keeps
    // it) reaches the same handler.
    let r = form(port, "/xend/domain/", "op=explode");
    assert_eq!(r.err(501), "Operation not implemented: explode");
}

#[test]
fn error_messages_are_in_the_reason_phrase() {
    let xend = xend();
    let port = xend.api_port();
    // xend_domain('nosuch'): 404, and the message where the 2.0 client looks.
    let r = get(port, "/xend/domain/nosuch");
    assert_eq!(r.err(404), "invalid domain:nosuch");
    // The body still says it, for modern clients.
    assert_eq!(r.body, "(xend.err 'invalid domain:nosuch')");
    // A config with an error: its line:column message, on one line.
    let cfg = "(vm (name web)\n    (memory lots) (image (minios)))";
    let r = form(
        port,
        "/xend/domain",
        &format!("config={}&op=create", urlencode(cfg)),
    );
    let reason = r.err(400);
    assert!(reason.starts_with("config:2:"), "{reason}");
    assert!(reason.contains("memory"), "{reason}");
    assert!(!reason.contains('\n') && reason.len() <= 200, "{reason}");
    // A broken multipart body, still one line.
    let r = post(
        port,
        "/xend/domain",
        "multipart/form-data; boundary=abc",
        "no parts here",
    );
    assert_eq!(
        r.err(400),
        "Bad multipart body: the body has no part (no boundary line)"
    );
    // 2.0's node scheduler op: accepted, a stated no-op.
    let r = form(port, "/xend/node", "slice=1&op=cpu_rrobin_slice_set");
    let why = r.ok();
    assert!(
        why.to_string()
            .contains("cpu_rrobin_slice_set: ignored: KVM has no round-robin scheduler"),
        "{why}"
    );
}

/// Xen 2.0.6's `tools/examples/xend-config.sxp`, every setting and comment,
/// with the ports moved to free ones.
const STOCK_CONFIG: &str = "# Xend configuration file.

# Port xend should use for the HTTP interface.
(xend-port         API_PORT)

# Port xend should use for the event interface.
(xend-event-port   EVENT_PORT)

# Address xend should listen on for HTTP connections.
# Specifying 'localhost' prevents remote connections.
# Specifying the empty string '' allows all connections.
(xend-address      'localhost')

# The port xend should start from when allocating a port
# for a domain console.
(console-port-base 9600)

# Address xend should listen on for console connections.
# Specifying 'localhost' prevents remote connections.
# Specifying the empty string '' allows all connections.
(console-address   'localhost')

## Use the following if VIF traffic is routed.
# The script used to start/stop networking for xend.
#(network-script     network-route)
# The default script used to control virtual interfaces.
#(vif-script         vif-route)

## Use the following if VIF traffic is bridged.
# The script used to start/stop networking for xend.
(network-script    network)
# The default bridge that virtual interfaces should be connected to.
(vif-bridge        xen-br0)
# The default script used to control virtual interfaces.
(vif-script        vif-bridge)

# Whether iptables should be set up to prevent IP spoofing for
# virtual interfaces. Specify 'yes' or 'no'.
(vif-antispoof     no)

# Setup script for file-backed block devices
(block-file block-file)

# Setup script for enbd-backed block devices
(block-enbd block-enbd)

";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A xend this test started itself; killed (by its pid) on drop.
struct Own(Child);

impl Drop for Own {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn xen_2_0_6_stock_xend_config_starts_xend() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (api, event) = (free_port(), free_port());
    // The stock file, then only where this xend keeps its files (a 2.0
    // install has them at their defaults) and the opt-out 2.0 clients need.
    let text = format!(
        "{}(logfile {})\n(dbroot {})\n(state-dir {})\n(token-file {})\n(vmm-path {})\n\
         (xend-tcp-auth none)\n",
        STOCK_CONFIG
            .replace("API_PORT", &api.to_string())
            .replace("EVENT_PORT", &event.to_string()),
        d.join("xend.log").display(),
        d.join("db").display(),
        d.join("state").display(),
        d.join("token").display(),
        bin("vmm").display(),
    );
    let config = d.join("xend-config.sxp");
    std::fs::write(&config, text).unwrap();
    let out = std::fs::File::create(d.join("xend.out")).unwrap();
    let child = Command::new(bin("xend"))
        .arg("--config")
        .arg(&config)
        .arg("foreground")
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .expect("spawn xend");
    let mut xend = Own(child);
    let output = |d: &Path| {
        std::fs::read_to_string(d.join("xend.out")).unwrap_or_default()
            + &std::fs::read_to_string(d.join("xend.log")).unwrap_or_default()
    };
    wait_for(STATE, "xend on the stock config to answer", || {
        if let Ok(Some(status)) = xend.0.try_wait() {
            panic!("xend exited ({status}):\n{}", output(d));
        }
        TcpStream::connect(("127.0.0.1", api)).is_ok()
    });
    // It serves the 2.0 client on the stock address (localhost).
    assert_eq!(get(api, "/xend/node/").ok().head(), Some("node"));
    // Each key it does not use is a warning naming where it was.
    let origin = config.display().to_string();
    wait_for(STATE, "the warnings in the log", || {
        output(d).contains(&format!("{origin}:45:1: unknown key block-enbd ignored"))
    });
    let log = output(d);
    for (line, key) in [(39, "vif-antispoof"), (42, "block-file")] {
        assert!(
            log.contains(&format!("{origin}:{line}:1: unknown key {key} ignored")),
            "{log}"
        );
    }
    let _ = xend.0.try_wait();
}

#[test]
fn xm_create_and_create_p_as_xen_2_0_sequences_them() {
    if !hypervisor::require_kvm() {
        return;
    }
    let xend = xend();
    let port = xend.api_port();

    // `xm create -F web.sxp`: multipart create, then (no -p) unpause.
    let cfg = "(vm (name web)\n    (memory 16)\n    (image (minios)))\n";
    let r = create_from_file(port, "/tmp/web.sxp", cfg);
    assert_eq!((r.status, r.reason.as_str()), (201, "Created"), "{r:?}");
    let created = r.ok();
    assert_eq!(created.child_value("name"), Some("web"));
    // What xm create prints from the reply: the console port.
    let console_port: u16 = created
        .child("console")
        .and_then(|c| c.child_value("console_port"))
        .and_then(|p| p.parse().ok())
        .expect("console_port in the create reply");
    let id: u32 = created.child_value("id").unwrap().parse().unwrap();
    assert_eq!(console_port, xend.console_port(id));
    // 2.0's create leaves the domain paused for xm to unpause.
    assert_eq!(created.child_value("state"), Some("--p--"), "{created}");
    let r = form(port, "/xend/domain/web", "op=unpause");
    r.ok();
    let mut con = xend.console(id);
    con.expect(&prompt("web"), BOOT);

    // `xm create -p` (urlencoded SXP, as xm create FILE sends it): no
    // unpause, so it stays paused; xm unpause later starts it.
    let cfg = "(vm (name web2) (memory 16) (image (minios)))";
    let r = form(
        port,
        "/xend/domain",
        &format!("config={}&op=create", urlencode(cfg)),
    );
    let created = r.ok();
    assert_eq!(r.status, 201);
    let id2: u32 = created.child_value("id").unwrap().parse().unwrap();
    // Still paused a request later (SXP five letters, JSON six).
    let rec = get(port, "/xend/domain/web2").ok();
    assert_eq!(rec.child_value("state"), Some("--p--"), "{rec}");
    let d = xend.domain("web2");
    assert_eq!(d.state, "--p---", "{d:?}");
    form(port, "/xend/domain/web2", "op=unpause").ok();
    let mut con2 = xend.console(id2);
    con2.expect(&prompt("web2"), BOOT);

    // A name clash: the 2.0 client says "Error: vm name clash: web".
    let r = create_from_file(
        port,
        "/tmp/web.sxp",
        "(vm (name web) (memory 16) (image (minios)))\n",
    );
    assert_eq!(r.err(409), "vm name clash: web");

    // The domain record, Xen 2.0.6's XendDomainInfo.sxpr() order first.
    let rec = wait_until(STATE, "web's record with the CPU it ran on", || {
        let rec = get(port, "/xend/domain/web").ok();
        (rec.child_value("cpu") != Some("-1")).then_some(rec)
    });
    let h = heads(&rec);
    assert_eq!(
        h[..12],
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
            "console",
            "devices",
            "config"
        ],
        "{rec}"
    );
    let state = rec.child_value("state").unwrap();
    assert!(["r----", "-b---"].contains(&state), "{rec}");
    let cpu: i64 = rec.child_value("cpu").unwrap().parse().unwrap();
    let nr_cpus: i64 = get(port, "/xend/node/")
        .ok()
        .child_value("nr_cpus")
        .unwrap()
        .parse()
        .unwrap();
    assert!((0..nr_cpus).contains(&cpu), "{rec}");
    assert_eq!(rec.child("devices").unwrap().to_string(), "(devices)");
    // What 2.0's xm list reads from it: %-16s %3d %7d %3d %5s %7.1f.
    for key in ["memory", "cpu_time"] {
        let v = rec.child_value(key).unwrap();
        assert!(v.parse::<f64>().is_ok(), "{key} {v}");
    }

    // The 2.0 domain scheduler ops map onto the credit scheduler: BVT's
    // mcuadv as an inverse weight, atropos's slice per period as a cap.
    let r = form(
        port,
        "/xend/domain/web",
        "warpback=0&warpvalue=0&warpu=0&warpl=0&mcuadv=5&op=cpu_bvt_set",
    );
    assert_eq!(r.ok().to_string(), "(sched_credit (weight 512) (cap 0))");
    let r = form(
        port,
        "/xend/domain/web",
        "xtratime=1&latency=1&slice=1&period=2&op=cpu_atropos_set",
    );
    assert_eq!(r.ok().to_string(), "(sched_credit (weight 512) (cap 50))");
    let reason = form(port, "/xend/domain/web", "op=cpu_fbvt_set").err(400);
    assert!(reason.contains("mcuadv"), "{reason}");
    con.close();
    con2.close();
    form(port, "/xend/domain/web", "reason=halt&op=destroy").ok();
    form(port, "/xend/domain/web2", "reason=halt&op=destroy").ok();
    xend.wait_gone("web");
    xend.wait_gone("web2");
}

#[test]
fn the_event_port_speaks_xen_2_0s_protocol() {
    if !hypervisor::require_kvm() {
        return;
    }
    let xend = xend();
    let mut port = e2e::EventPort::connect(&xend);
    // (help) lists the requests; replies are (ok VALUE).
    port.send("(help)\n");
    let help = port.expect_line("(ok (help quit info", STATE);
    assert!(
        help.contains("sys.subscribe") && help.contains("sys.inject"),
        "{help}"
    );
    // An unknown request and 2.0's Python debugging switches: (err ...).
    port.send("(bogus)\n");
    port.expect_line(
        "(err (type XendError) (value 'Invalid operation: bogus'))",
        STATE,
    );
    port.send("(traceon)\n");
    // (pretty-printed as 2.0 did: a reply wider than 80 columns spans lines)
    port.expect_line("(type XendError)", STATE);
    port.expect_line("'traceon: xend is not a Python process to trace", STATE);
    // Injection over TCP is off by default, and says where it is allowed.
    port.send("(sys.inject (site.backup (detail ok)))\n");
    port.expect_line("'sys.inject: events are injected by local clients", STATE);

    // Subscribed to everything: a domain's life as 2.0's events.
    let dom = xend.create("(vm (name ev) (memory 16) (image (minios)))");
    let mut con = xend.console(dom.id);
    con.expect(&prompt("ev"), BOOT);
    port.expect_line(
        &format!("(event xend.domain.create (ev {}))", dom.id),
        STATE,
    );
    // (info): every console.
    port.send("(info)\n");
    port.expect_line("(info", STATE);
    port.expect_line("(console", STATE);
    port.expect_line(
        &format!("(console_port {})", xend.console_port(dom.id)),
        STATE,
    );
    // Only what is subscribed to, with 2.0's patterns.
    port.send("(sys.subscribe xend.domain.?)\n");
    port.expect_line("(ok (ok))", STATE);
    let pause = format!("(event xend.domain.pause (ev {}))", dom.id);
    xend.act("ev", "pause", &[]).ok();
    port.expect_line(&pause, STATE);
    port.send("(sys.subscribe xend.domain.unpause)\n");
    port.expect_line("(ok (ok))", STATE);
    xend.act("ev", "pause", &[]).ok();
    xend.act("ev", "unpause", &[]).ok();
    // The pause in between is not sent: the next event line is the unpause.
    let line = port.expect_line("(event ", STATE);
    assert_eq!(line, format!("(event xend.domain.unpause (ev {}))", dom.id));
    // (quit) closes the connection.
    port.send("(quit)\n");
    port.expect_closed(STATE);
    con.close();
    xend.act("ev", "destroy", &[]).ok();
    xend.wait_gone("ev");
}
