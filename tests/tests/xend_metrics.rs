//! `GET /metrics`: Prometheus' text format, behind the token, with figures that
//! move while a domain burns CPU.
use std::collections::{HashMap, HashSet};

use e2e::{STATE, Xend, wait_for};

/// One sample line: `(name, labels, value)`.
type Sample = (String, Vec<(String, String)>, f64);

fn valid_name(name: &str) -> bool {
    let mut c = name.chars();
    c.next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && c.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Parse a text exposition (format 0.0.4), checking as it goes: every
/// sample's family has HELP and TYPE first (once each), names and label names
/// are valid, label values are properly quoted and escaped, counters end in
/// `_total`, values are numbers.
#[track_caller]
fn parse(text: &str) -> Vec<Sample> {
    let mut help = HashSet::new();
    let mut types: HashMap<String, String> = HashMap::new();
    let mut samples = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, _) = rest.split_once(' ').expect("HELP has text");
            assert!(valid_name(name), "{line}");
            assert!(help.insert(name.to_string()), "HELP twice: {line}");
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE has a type");
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "{line}"
            );
            assert!(help.contains(name), "TYPE before HELP: {line}");
            assert!(
                types.insert(name.to_string(), kind.to_string()).is_none(),
                "TYPE twice: {line}"
            );
            continue;
        }
        assert!(!line.is_empty() && !line.starts_with('#'), "{line:?}");
        let name_end = line.find(['{', ' ']).expect("name then value");
        let name = &line[..name_end];
        assert!(valid_name(name), "{line}");
        let kind = types
            .get(name)
            .unwrap_or_else(|| panic!("no TYPE for {line}"));
        assert_eq!(kind == "counter", name.ends_with("_total"), "{line}");
        let rest: Vec<char> = line[name_end..].chars().collect();
        let mut i = 0;
        let mut labels = Vec::new();
        if rest[0] == '{' {
            i = 1;
            loop {
                let mut lname = String::new();
                while rest[i] != '=' {
                    lname.push(rest[i]);
                    i += 1;
                }
                assert!(valid_name(&lname), "label {lname:?} in {line}");
                assert_eq!(rest[i + 1], '"', "{line}");
                i += 2;
                let mut value = String::new();
                loop {
                    match rest[i] {
                        '\\' => {
                            value.push(match rest[i + 1] {
                                '\\' => '\\',
                                '"' => '"',
                                'n' => '\n',
                                c => panic!("bad escape \\{c} in {line}"),
                            });
                            i += 2;
                        }
                        '"' => break,
                        c => {
                            value.push(c);
                            i += 1;
                        }
                    }
                }
                labels.push((lname, value));
                i += 1;
                match rest[i] {
                    ',' => i += 1,
                    '}' => {
                        i += 1;
                        break;
                    }
                    other => panic!("unexpected {other:?} in {line}"),
                }
            }
        }
        let rest: String = rest[i..].iter().collect();
        let value = rest.strip_prefix(' ').expect("space before the value");
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v
                .parse()
                .unwrap_or_else(|e| panic!("value {v:?} ({e}) in {line}")),
        };
        samples.push((name.to_string(), labels, value));
    }
    samples
}

fn find<'a>(samples: &'a [Sample], name: &str, labels: &[(&str, &str)]) -> Option<&'a Sample> {
    samples.iter().find(|(n, l, _)| {
        n == name
            && labels
                .iter()
                .all(|(k, v)| l.iter().any(|(lk, lv)| lk == k && lv == v))
    })
}

fn cpu_seconds(xend: &Xend, name: &str) -> f64 {
    let r = xend.get("/metrics").ok();
    assert!(
        r.content_type.starts_with("text/plain; version=0.0.4"),
        "{}",
        r.content_type
    );
    let samples = parse(&r.body);
    find(
        &samples,
        "xend_domain_cpu_seconds_total",
        &[("domain", name)],
    )
    .unwrap_or_else(|| panic!("no CPU sample for {name}:\n{}", r.body))
    .2
}

#[test]
fn the_parser_checks_what_it_should() {
    let ok = "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"q\\\"\\\\\\n\",y=\"2\"} 3\n";
    let s = parse(ok);
    assert_eq!(
        s[0].1,
        vec![("x".into(), "q\"\\\n".into()), ("y".into(), "2".into())]
    );
    for bad in [
        "a 1\n",
        "# HELP a A.\n# TYPE a counter\na 1\n",
        "# HELP a A.\n# TYPE a gauge\na{x=\"\\t\"} 1\n",
        "# HELP a A.\n# TYPE a gauge\n# HELP a A.\n",
    ] {
        assert!(
            std::panic::catch_unwind(|| parse(bad)).is_err(),
            "accepted {bad:?}"
        );
    }
}

#[test]
fn metrics_of_a_running_domain_in_the_text_format() {
    if !hypervisor::require_kvm() {
        return;
    }
    let xend = Xend::start();
    // Without the token: refused, like every route.
    let anon = reqwest::blocking::get(xend.url("/metrics")).expect("GET /metrics");
    assert_eq!(anon.status().as_u16(), 401);

    let dom =
        xend.create("(vm (name hot) (memory 16) (image (minios (args 'autorun=burn 100000'))))");
    let id = dom.id.to_string();
    wait_for(STATE, "a first CPU figure", || {
        cpu_seconds(&xend, "hot") > 0.0
    });
    let first = cpu_seconds(&xend, "hot");
    wait_for(STATE, "the CPU counter to grow", || {
        cpu_seconds(&xend, "hot") > first
    });

    let body = xend.get("/metrics").ok().body;
    let s = parse(&body);
    let of_hot = [("domain", "hot"), ("domid", id.as_str())];
    for name in [
        "xend_domain_cpu_seconds_total",
        "xend_domain_memory_bytes",
        "xend_domain_memory_max_bytes",
        "xend_domain_vcpus",
        "xend_domain_vm_exits_total",
        "xend_domain_console_input_bytes_total",
        "xend_domain_console_output_bytes_total",
        "xend_domain_unresponsive",
    ] {
        assert!(find(&s, name, &of_hot).is_some(), "{name} for hot:\n{body}");
    }
    assert_eq!(
        find(&s, "xend_domain_memory_bytes", &of_hot).unwrap().2,
        16.0 * 1024.0 * 1024.0
    );
    assert_eq!(
        find(&s, "xend_domain_unresponsive", &of_hot).unwrap().2,
        0.0
    );
    let running = [("domain", "hot"), ("state", "running")];
    let blocked = [("domain", "hot"), ("state", "blocked")];
    let on = find(&s, "xend_domain_state", &running).unwrap().2
        + find(&s, "xend_domain_state", &blocked).unwrap().2;
    assert_eq!(on, 1.0, "running or blocked:\n{body}");
    assert!(
        find(&s, "xend_domain_console_output_bytes_total", &of_hot)
            .unwrap()
            .2
            > 0.0,
        "minios writes its banner:\n{body}"
    );
    assert!(
        find(&s, "xend_domain_vm_exits_total", &of_hot).unwrap().2 > 0.0,
        "{body}"
    );
    assert_eq!(find(&s, "xend_domains", &[]).unwrap().2, 1.0);
    assert!(find(&s, "xend_node_memory_bytes", &[]).unwrap().2 > 0.0);
    assert!(find(&s, "xend_node_cpus", &[]).unwrap().2 >= 1.0);
    let build = find(&s, "xend_build_info", &[]).expect("build info");
    assert!(build.1.iter().any(|(k, _)| k == "version"), "{body}");
    // The figures are the bulk endpoint's.
    let snap = xend.get_json("/xend/domain?op=stats").ok().json();
    let hot = snap["domains"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "hot")
        .expect("hot in the snapshot");
    assert_eq!(
        find(&s, "xend_domain_vcpus", &of_hot).unwrap().2,
        hot["vcpus"].as_f64().unwrap()
    );
    xend.act("hot", "destroy", &[]);
}
