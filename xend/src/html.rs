//! The browser interface: plain HTML and CSS, no scripts. `/xend/` lists the
//! host and every domain with live figures (the page reloads itself every few
//! seconds) and a form per action; `/xend/domain?op=new` creates a domain from an
//! uploaded or pasted config; `/xend/domain/DOM` shows one domain. The pages
//! are given their data by the handlers; nothing here reads xend's state.
use std::fmt::Write;

use axum::http::StatusCode;

use crate::api::{ConsoleInfo, DomainRecord, DomainStats, NodeInfo};

/// Seconds between reloads of the overview.
pub const REFRESH_SECS: u32 = 5;

/// Escape text for HTML.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:sans-serif;margin:1.5em;color:#222}\
table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #ccc;padding:.3em .6em;text-align:right}\
th{background:#eee}td.l,th.l{text-align:left}form.inline{display:inline}\
button{margin:0 .1em}nav a{margin-right:1em}textarea{width:100%;max-width:50em;font-family:monospace}\
.state{font-family:monospace}.err{color:#a00}";

fn page(title: &str, refresh: Option<u32>, body: &str) -> String {
    let refresh = refresh
        .map(|s| format!("<meta http-equiv=\"refresh\" content=\"{s}\">"))
        .unwrap_or_default();
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">{refresh}\
         <title>{t}</title><style>{STYLE}</style></head><body>\
         <nav><a href=\"/xend/\">Domains</a><a href=\"/xend/domain?op=new\">Create</a>\
         <a href=\"/xend/node\">Node</a><a href=\"/xend/console\">Consoles</a></nav>\
         <h1>{t}</h1>\n{body}\n</body></html>\n",
        t = esc(title)
    )
}

fn action(csrf: &str, dom: &str, op: &str, extra: &[(&str, &str)], label: &str) -> String {
    let mut hidden = format!("<input type=\"hidden\" name=\"op\" value=\"{op}\">");
    for (k, v) in extra {
        let _ = write!(
            hidden,
            "<input type=\"hidden\" name=\"{k}\" value=\"{}\">",
            esc(v)
        );
    }
    format!(
        "<form class=\"inline\" method=\"post\" action=\"/xend/domain/{d}?csrf={csrf}\" id=\"{op}-{d}{suffix}\">{hidden}\
         <button type=\"submit\">{label}</button></form>",
        d = esc(dom),
        suffix = extra
            .first()
            .map(|(_, v)| format!("-{}", esc(v)))
            .unwrap_or_default(),
    )
}

fn actions(csrf: &str, d: &DomainStats) -> String {
    let n = &d.name;
    let mut out = String::new();
    if d.state.contains('p') {
        out.push_str(&action(csrf, n, "unpause", &[], "Unpause"));
    } else {
        out.push_str(&action(csrf, n, "pause", &[], "Pause"));
    }
    out.push_str(&action(
        csrf,
        n,
        "shutdown",
        &[("reason", "poweroff")],
        "Shutdown",
    ));
    out.push_str(&action(
        csrf,
        n,
        "shutdown",
        &[("reason", "reboot")],
        "Reboot",
    ));
    out.push_str(&action(csrf, n, "destroy", &[], "Destroy"));
    out
}

fn domain_rows(csrf: &str, doms: &[DomainStats]) -> String {
    let mut rows = String::from(
        "<table id=\"domains\"><tr><th class=\"l\">Name</th><th>Id</th><th>Mem (MiB)</th>\
         <th>VCPUs</th><th>State</th><th>Time (s)</th><th>Up (s)</th><th>Console</th>\
         <th class=\"l\">Actions</th></tr>\n",
    );
    for d in doms {
        let link = if d.id == 0 {
            esc(&d.name)
        } else {
            format!("<a href=\"/xend/domain/{0}\">{0}</a>", esc(&d.name))
        };
        let _ = writeln!(
            rows,
            "<tr class=\"domain\" data-name=\"{name}\" data-state=\"{state}\"><td class=\"l\">{link}</td><td>{id}</td>\
             <td>{mem}</td><td>{vcpus}</td><td class=\"state\">{state}</td><td>{cpu:.1}</td><td>{up:.0}</td>\
             <td>{con}</td><td class=\"l\">{act}</td></tr>",
            name = esc(&d.name),
            id = d.id,
            mem = d.memory,
            vcpus = d.vcpus,
            state = esc(if d.unresponsive_since.is_some() {
                "hung"
            } else {
                &d.state
            }),
            cpu = d.cpu_time,
            up = d.up_time,
            con = d.console_port.map(|p| p.to_string()).unwrap_or_default(),
            act = if d.id == 0 {
                String::new()
            } else {
                actions(csrf, d)
            },
        );
    }
    rows.push_str("</table>");
    rows
}

/// The overview: host summary and every domain, reloading itself.
pub fn index(csrf: &str, node: &NodeInfo, doms: &[DomainStats]) -> String {
    let body = format!(
        "<p id=\"node\">Host <b>{host}</b>: {cpus} CPUs at {mhz} MHz, {free} of {mem} MiB free; \
         {n} guest domain(s). This page reloads every {REFRESH_SECS} s.</p>\n{table}\n\
         <p><a href=\"/xend/domain?op=new\">Create a domain</a></p>",
        host = esc(&node.host),
        cpus = node.nr_cpus,
        mhz = node.cpu_mhz,
        free = node.free_memory,
        mem = node.memory,
        n = doms.iter().filter(|d| d.id != 0).count(),
        table = domain_rows(csrf, doms),
    );
    page("xend: domains", Some(REFRESH_SECS), &body)
}

/// The create form: upload a config file or paste one (SXP or `key = value`).
pub fn create_form(csrf: &str) -> String {
    let body = format!(
        "<form id=\"create\" method=\"post\" action=\"/xend/domain?csrf={csrf}\" enctype=\"multipart/form-data\">\
        <input type=\"hidden\" name=\"op\" value=\"create\">\
        <p><label>Config file: <input type=\"file\" name=\"config_file\"></label></p>\
        <p><label for=\"config\">Or paste a config (SXP <code>(vm ...)</code> or <code>key = value</code> lines):</label><br>\
        <textarea id=\"config\" name=\"config\" rows=\"12\">name = \"mini\"\nmemory = 16\nvcpus = 1\n</textarea></p>\
        <p><button type=\"submit\">Create</button></p></form>"
    );
    page("xend: create a domain", None, &body)
}

/// One domain: its figures, console and stored config (`config_xm`, the
/// `key = value` form).
pub fn domain(csrf: &str, record: &DomainRecord, config_xm: &str) -> String {
    let d = &record.stats;
    let con = record.console.clone().unwrap_or_default();
    let mut rows = String::from("<table id=\"domain\">");
    let fields: Vec<(&str, String)> = vec![
        ("Id", d.id.to_string()),
        ("Name", d.name.clone()),
        (
            "State",
            match d.unresponsive_note(crate::events::now()) {
                Some(note) => format!("{} ({note})", d.state),
                None => d.state.clone(),
            },
        ),
        (
            "Shutdown reason",
            d.shutdown_reason.clone().unwrap_or_default(),
        ),
        ("Memory (MiB)", d.memory.to_string()),
        ("Max memory (MiB)", d.maxmem.to_string()),
        ("VCPUs", d.vcpus.to_string()),
        (
            "CPU weight",
            d.cpu_weight.map(|w| w.to_string()).unwrap_or_default(),
        ),
        (
            "CPU cap (% of one CPU)",
            match d.cpu_cap {
                Some(0) => "0 (none)".to_owned(),
                Some(c) => c.to_string(),
                None => String::new(),
            },
        ),
        (
            "Kernel",
            if d.image.is_empty() || d.image == d.kernel {
                d.kernel.clone()
            } else {
                format!("{} ({})", d.kernel, d.image)
            },
        ),
        ("CPU time (s)", format!("{:.3}", d.cpu_time)),
        ("Up time (s)", format!("{:.1}", d.up_time)),
        ("Restart", d.restart.clone()),
        (
            "Console",
            format!("port {} ({})", con.console_port, con.status),
        ),
    ];
    for (k, v) in fields {
        let _ = write!(
            rows,
            "<tr><th class=\"l\">{k}</th><td class=\"l\">{}</td></tr>",
            esc(&v)
        );
    }
    rows.push_str("</table>");
    let body = format!(
        "{rows}<p>{acts}</p>{sched}{devs}<h2>Config</h2><pre id=\"config\">{cfg}</pre>",
        acts = actions(csrf, d),
        sched = sched_form(csrf, d),
        devs = devices(d),
        cfg = esc(config_xm)
    );
    page(
        &format!("xend: domain {}", d.name),
        Some(REFRESH_SECS),
        &body,
    )
}

/// The form that sets the domain's CPU weight and cap (`op=sched_credit`).
fn sched_form(csrf: &str, d: &DomainStats) -> String {
    format!(
        "<h2>CPU scheduling</h2><form method=\"post\" action=\"/xend/domain/{n}?csrf={csrf}\" id=\"sched-{n}\">\
         <input type=\"hidden\" name=\"op\" value=\"sched_credit\">\
         <label>Weight (1-65535) <input name=\"weight\" size=\"6\" value=\"{w}\"></label> \
         <label>Cap (% of one CPU, 0 = none, 100 per vCPU) <input name=\"cap\" size=\"5\" value=\"{c}\"></label> \
         <button type=\"submit\">Set</button></form>",
        n = esc(&d.name),
        w = d.cpu_weight.unwrap_or(crate::cgroup::DEFAULT_WEIGHT),
        c = d.cpu_cap.unwrap_or(0),
    )
}

/// The domain's disks and network interfaces with their counters (empty
/// when it has none).
fn devices(d: &DomainStats) -> String {
    let mut out = String::new();
    if !d.vbds.is_empty() {
        out.push_str(
            "<h2>Block devices</h2><table id=\"vbds\"><tr><th>idx</th><th>dev</th>\
             <th class=\"l\">uname</th><th>mode</th><th>rd_req</th><th>wr_req</th>\
             <th>rd_sect</th><th>wr_sect</th><th>oo_req</th></tr>",
        );
        for v in &d.vbds {
            let _ = write!(
                out,
                "<tr><td>{}</td><td>{}</td><td class=\"l\">{}</td><td>{}</td><td>{}</td>\
                 <td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                v.idx,
                esc(&v.dev),
                esc(&v.uname),
                esc(&v.mode),
                v.rd_req,
                v.wr_req,
                v.rd_sect,
                v.wr_sect,
                v.oo_req
            );
        }
        out.push_str("</table>");
    }
    if !d.nets.is_empty() {
        out.push_str(
            "<h2>Network interfaces</h2><table id=\"vifs\"><tr><th>idx</th>\
             <th class=\"l\">vifname</th><th class=\"l\">mac</th><th class=\"l\">bridge</th>\
             <th>tx_bytes</th><th>tx_packets</th><th>rx_bytes</th><th>rx_packets</th>\
             <th>errors</th><th>drops</th></tr>",
        );
        for n in &d.nets {
            let _ = write!(
                out,
                "<tr><td>{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td>\
                 <td class=\"l\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
                 <td>{}</td><td>{}</td></tr>",
                n.idx,
                esc(&n.vifname),
                esc(&n.mac),
                esc(&n.bridge),
                n.tx_bytes,
                n.tx_packets,
                n.rx_bytes,
                n.rx_packets,
                n.tx_errors + n.rx_errors,
                n.tx_drops + n.rx_drops
            );
        }
        out.push_str("</table>");
    }
    out
}

/// The host.
pub fn node(n: &NodeInfo) -> String {
    let mut rows = String::from("<table id=\"node\">");
    let v = serde_json::to_value(n).unwrap_or_default();
    if let Some(map) = v.as_object() {
        for (k, v) in map {
            let v = v
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| v.to_string());
            let _ = write!(
                rows,
                "<tr><th class=\"l\">{}</th><td class=\"l\">{}</td></tr>",
                esc(k),
                esc(&v)
            );
        }
    }
    rows.push_str("</table><p><a href=\"/xend/node/log\">xend log</a> <a href=\"/xend/node/dmesg\">dmesg</a></p>");
    page("xend: node", None, &rows)
}

/// The consoles, with their domains' names.
pub fn consoles(csrf: &str, consoles: &[(String, ConsoleInfo)]) -> String {
    let mut rows = String::from(
        "<table><tr><th class=\"l\">Domain</th><th>Port</th><th class=\"l\">Status</th><th></th></tr>",
    );
    for (name, c) in consoles {
        let _ = write!(
            rows,
            "<tr><td class=\"l\">{}</td><td>{}</td><td class=\"l\">{}</td><td>\
             <form class=\"inline\" method=\"post\" action=\"/xend/console/{}?csrf={}\">\
             <input type=\"hidden\" name=\"op\" value=\"disconnect\"><button>Disconnect</button></form></td></tr>",
            esc(name),
            c.console_port,
            esc(&c.status),
            c.console_port,
            csrf
        );
    }
    rows.push_str("</table>");
    page("xend: consoles", None, &rows)
}

/// An error page.
pub fn error_page(status: StatusCode, message: &str) -> String {
    page(
        &format!("Error {}", status.as_u16()),
        None,
        &format!("<p class=\"err\" id=\"error\">{}</p>", esc(message)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dom(id: u32, name: &str) -> DomainStats {
        DomainStats {
            id,
            name: name.into(),
            ..DomainStats::default()
        }
    }

    #[test]
    fn the_overview_counts_guests_only_and_survives_an_empty_list() {
        let node = NodeInfo::default();
        let page = index("c", &node, &[dom(0, "Domain-0"), dom(3, "web")]);
        assert!(page.contains("1 guest domain(s)"), "{page}");
        let page = index("c", &node, &[]);
        assert!(page.contains("0 guest domain(s)"), "{page}");
    }
}
