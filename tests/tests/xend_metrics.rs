//! `GET /metrics`, read by Prometheus' own Python parsers (`prometheus_client`
//! from PyPI: the text format 0.0.4 parser and the stricter OpenMetrics one),
//! with the figures checked against the API's: a paused domain's (its figures
//! stand still), a burning domain's CPU counter that grows, a restart, a
//! disk's requests, xend's own request and VMM-call counters.
use std::io::Write;
use std::process::{Command, Stdio};

use e2e::{BOOT, STATE, Xend, prompt, wait_for};
use serde_json::Value;

/// One sample: `(name, labels, value)`.
type Sample = (String, serde_json::Map<String, Value>, f64);

/// Parse with `prometheus_client`'s parser for `format` (`text` or
/// `openmetrics`) and print every sample as JSON.
const PARSE: &str = r#"
import json, math, sys
fmt = sys.argv[1]
if fmt == "openmetrics":
    from prometheus_client.openmetrics.parser import text_string_to_metric_families
else:
    from prometheus_client.parser import text_string_to_metric_families
out = []
for fam in text_string_to_metric_families(sys.stdin.read()):
    for s in fam.samples:
        v = s.value
        out.append([s.name, s.labels, v if math.isfinite(v) else str(v), fam.type, fam.name])
json.dump(out, sys.stdout)
"#;

/// Whether Python's `prometheus_client` is there; without it the test is
/// skipped, except under CI (`.ci/run` installs it).
fn parser_available() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import prometheus_client"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI needs Python's prometheus_client (pip install prometheus_client)"
        );
        eprintln!("skipped: no Python prometheus_client (pip install prometheus_client)");
    }
    ok
}

#[track_caller]
fn parse(text: &str, format: &str) -> Vec<Sample> {
    let mut child = Command::new("python3")
        .args(["-c", PARSE, format])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the {format} parser refused the exposition: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    rows.into_iter()
        .map(|r| {
            let name = r[0].as_str().unwrap().to_string();
            let labels = r[1].as_object().unwrap().clone();
            let value = r[2].as_f64().unwrap_or(f64::NAN);
            (name, labels, value)
        })
        .collect()
}

#[track_caller]
fn scrape(xend: &Xend, format: &str) -> (String, Vec<Sample>) {
    let accept = match format {
        "openmetrics" => {
            "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"
        }
        _ => "text/plain",
    };
    let resp = reqwest::blocking::Client::new()
        .get(xend.url("/metrics"))
        .header("Authorization", xend.authorization())
        .header("Accept", accept)
        .send()
        .expect("GET /metrics");
    assert_eq!(resp.status().as_u16(), 200);
    let ctype = resp.headers()["content-type"].to_str().unwrap().to_string();
    let want = match format {
        "openmetrics" => "application/openmetrics-text; version=1.0.0",
        _ => "text/plain; version=0.0.4",
    };
    assert!(ctype.starts_with(want), "{ctype}");
    let body = resp.text().unwrap();
    let samples = parse(&body, format);
    (body, samples)
}

fn find<'a>(samples: &'a [Sample], name: &str, labels: &[(&str, &str)]) -> Option<&'a Sample> {
    samples.iter().find(|(n, l, _)| {
        n == name
            && labels
                .iter()
                .all(|(k, v)| l.get(*k).and_then(Value::as_str) == Some(v))
    })
}

#[track_caller]
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    find(samples, name, labels)
        .unwrap_or_else(|| panic!("no {name} {labels:?}"))
        .2
}

fn domain_json(xend: &Xend, name: &str) -> Value {
    let snap = xend.get_json("/xend/domain?op=stats").ok().json();
    snap["domains"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("{name} not in the snapshot"))
}

#[test]
fn both_parsers_read_the_figures_the_api_shows() {
    if !parser_available() || !hypervisor::require_kvm() {
        return;
    }
    let xend = Xend::start();
    // Without the token: refused, like every route (and counted).
    let anon = reqwest::blocking::get(xend.url("/metrics")).expect("GET /metrics");
    assert_eq!(anon.status().as_u16(), 401);

    let img = xend.images_dir().join("m.img");
    std::fs::File::create(&img)
        .unwrap()
        .set_len(256 * 1024)
        .unwrap();
    let uuid = "3d0c35b2-6c0e-4c7a-9a57-1f6a1e1b0c01";
    let cfg = format!(
        "name = 'still'\nuuid = '{uuid}'\nmemory = 16\nmaxmem = 32\nvcpus = 2\nrestart = 'onreboot'\ndisk = ['file:{},xvda,w']\n",
        img.display()
    );
    let dom = xend.create(&cfg);
    let id = dom.id.to_string();
    let mut con = xend.console(dom.id);
    con.expect(&prompt("still"), BOOT);
    let out = con.run("blkwrite xvda 0 8 metrics", STATE);
    assert!(out.contains("wrote 8 sectors"), "{out}");
    // A reboot the restart policy follows: one restart.
    xend.act("still", "shutdown", &[("reason", "reboot")]).ok();
    wait_for(STATE, "the restart", || {
        domain_json(&xend, "still")["restarts"].as_u64() == Some(1)
    });
    con.expect(&prompt("still"), BOOT);
    let out = con.run("blkwrite xvda 0 8 metrics", STATE);
    assert!(out.contains("wrote 8 sectors"), "{out}");
    // Paused, its figures stand still: the scrape and the API must agree.
    xend.act("still", "pause", &[]).ok();
    wait_for(STATE, "paused", || {
        domain_json(&xend, "still")["state"]
            .as_str()
            .unwrap()
            .contains('p')
    });

    for format in ["text", "openmetrics"] {
        let api = domain_json(&xend, "still");
        let (body, s) = scrape(&xend, format);
        let me = [("domain", "still"), ("domid", id.as_str()), ("uuid", uuid)];
        let f = |name: &str| value(&s, name, &me);
        assert_eq!(f("xend_domain_memory_bytes"), 16.0 * 1048576.0, "{body}");
        assert_eq!(f("xend_domain_memory_max_bytes"), 32.0 * 1048576.0);
        assert_eq!(
            f("xend_domain_memory_bytes"),
            api["mem_kib"].as_f64().unwrap() * 1024.0
        );
        assert_eq!(f("xend_domain_vcpus"), 2.0);
        assert_eq!(f("xend_domain_restarts_total"), 1.0);
        assert_eq!(f("xend_domain_unresponsive"), 0.0);
        assert_eq!(
            f("xend_domain_cpu_seconds_total"),
            api["cpu_time"].as_f64().unwrap()
        );
        assert!(f("xend_domain_cpu_seconds_total") > 0.0);
        assert_eq!(
            f("xend_domain_vm_exits_total"),
            api["exits"].as_f64().unwrap()
        );
        let by_kind: f64 = s
            .iter()
            .filter(|(n, l, _)| n == "xend_domain_vm_exits_by_kind_total" && l["domain"] == "still")
            .map(|(_, l, v)| {
                assert!(!l["kind"].as_str().unwrap().is_empty());
                v
            })
            .sum();
        assert_eq!(by_kind, f("xend_domain_vm_exits_total"), "{body}");
        assert_eq!(
            f("xend_domain_console_output_bytes_total"),
            api["console_bytes_out"].as_f64().unwrap()
        );
        assert!(f("xend_domain_console_input_bytes_total") > 0.0, "we typed");
        for v in api["vcpu_info"].as_array().unwrap() {
            let vcpu = v["id"].to_string();
            let labels = [("domain", "still"), ("vcpu", vcpu.as_str())];
            assert_eq!(
                value(&s, "xend_domain_vcpu_cpu_seconds_total", &labels),
                v["cpu_time"].as_f64().unwrap()
            );
        }
        let paused = [("domain", "still"), ("state", "paused")];
        assert_eq!(value(&s, "xend_domain_state", &paused), 1.0);
        let running = [("domain", "still"), ("state", "running")];
        assert_eq!(value(&s, "xend_domain_state", &running), 0.0);
        // The disk's figures are the VMM's (since the restart: 8 sectors written).
        let disk = [("domain", "still"), ("device", "xvda")];
        let vbd = &api["vbds"][0];
        assert_eq!(
            value(&s, "xend_domain_vbd_write_sectors_total", &disk),
            vbd["wr_sect"].as_f64().unwrap()
        );
        assert!(value(&s, "xend_domain_vbd_write_sectors_total", &disk) >= 8.0);
        assert_eq!(
            value(&s, "xend_domain_vbd_write_requests_total", &disk),
            vbd["wr_req"].as_f64().unwrap()
        );
        assert_eq!(value(&s, "xend_domains", &[]), 1.0);
        assert!(value(&s, "xend_node_memory_bytes", &[]) > 0.0);
        assert!(value(&s, "xend_node_cpus", &[]) >= 1.0);
        assert!(find(&s, "xend_build_info", &[]).is_some(), "{body}");
        // xend's own: the refused scrape, the domain route, VMM calls.
        assert!(
            value(
                &s,
                "xend_http_requests_total",
                &[("route", "/metrics"), ("status", "401")]
            ) >= 1.0,
            "{body}"
        );
        // The shutdown (202) and the pause, by their route's pattern.
        let posts: f64 = s
            .iter()
            .filter(|(n, l, _)| {
                n == "xend_http_requests_total"
                    && l["route"] == "/xend/domain/{dom}"
                    && l["method"] == "POST"
            })
            .map(|(_, _, v)| v)
            .sum();
        assert!(posts >= 2.0, "{body}");
        assert!(
            value(
                &s,
                "xend_http_request_duration_seconds_count",
                &[("route", "/xend/domain")]
            ) >= 1.0
        );
        assert!(value(&s, "xend_vmm_calls_total", &[("call", "info")]) >= 1.0);
        assert!(value(&s, "xend_vmm_calls_total", &[("call", "pause")]) >= 1.0);
    }

    // A burning domain's CPU counter grows between scrapes.
    xend.create("(vm (name hot) (memory 16) (image (minios (args 'autorun=burn 100000'))))");
    let cpu = || {
        let (_, s) = scrape(&xend, "text");
        find(&s, "xend_domain_cpu_seconds_total", &[("domain", "hot")]).map_or(0.0, |x| x.2)
    };
    wait_for(STATE, "a first CPU figure", || cpu() > 0.0);
    let first = cpu();
    wait_for(STATE, "the CPU counter to grow", || cpu() > first);
    xend.act("hot", "destroy", &[]).ok();
    xend.act("still", "destroy", &[]).ok();
}
