//! Commands that only read: list, vcpu-list, info, consoles, help (and
//! sched-credit, which also sets).
use std::io::Write;

use xend::api::DomainStats;

use crate::Xm;
use crate::error::{Result, XmError};
use crate::{args, commands, format};

/// The domains named, or all of them (Domain-0 first).
async fn domains(xm: &Xm, doms: &[String]) -> Result<Vec<DomainStats>> {
    if doms.is_empty() {
        return Ok(xm.client.snapshot().await?.domains);
    }
    let mut out = Vec::new();
    for d in doms {
        out.push(xm.client.domain(d).await?);
    }
    Ok(out)
}

/// Parses a reply of xend as SXP.
pub fn parse_sxp(what: &str, text: &str) -> Result<sxp::Value> {
    sxp::parse(text).map_err(|source| XmError::BadSxp {
        what: what.to_string(),
        source,
    })
}

/// `xm list [-l] [--json] [DOM...]`.
pub async fn list(xm: &Xm, a: args::List) -> Result<()> {
    if a.long && a.doms.is_empty() {
        // Every domain's SXP in one request, as Xen 2 asked for it.
        let text = xm.sxp.get(&["domain"], &[("detail", "1")]).await?;
        let all = parse_sxp("domain?detail=1", &text)?;
        // Buffered: line by line, 500 domains took a thousand writes.
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        for d in all.as_list().unwrap_or_default() {
            writeln!(out, "{}", sxp::pretty(d)).ok();
        }
        out.flush().ok();
        return Ok(());
    }
    let doms = domains(xm, &a.doms).await?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if a.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&doms)?).ok();
    } else if a.state {
        for d in &doms {
            writeln!(out, "{} {} {}", d.name, d.id, d.state).ok();
        }
    } else if a.long {
        for d in &doms {
            let text = xm.sxp.get(&["domain", &d.id.to_string()], &[]).await?;
            let value = parse_sxp(&format!("domain {}", d.name), &text)?;
            writeln!(out, "{}", sxp::pretty(&value)).ok();
        }
    } else {
        writeln!(out, "{}", format::LIST_HEADER).ok();
        for d in &doms {
            writeln!(out, "{}", format::list_row(d)).ok();
        }
        out.flush().ok();
        // Stale figures are pointed out where scripts do not read them.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or_default();
        for d in &doms {
            if let Some(note) = d.unresponsive_note(now) {
                eprintln!(
                    "Warning: {} (id {}): {note}; its figures are stale (xm destroy {} ends it)",
                    d.name, d.id, d.name
                );
            }
        }
    }
    out.flush().ok();
    Ok(())
}

/// `xm vcpu-list [DOM...]`.
pub async fn vcpu_list(xm: &Xm, a: args::Doms) -> Result<()> {
    let doms = domains(xm, &a.doms).await?;
    println!("{}", format::VCPU_HEADER);
    for d in &doms {
        for row in format::vcpu_rows(d) {
            println!("{row}");
        }
    }
    Ok(())
}

/// `xm sched-credit [-d DOM [-w W] [-c CAP]]`: set what is given, else
/// print the weight and cap of the domain (or of every domain but Domain-0,
/// which has none).
pub async fn sched_credit(xm: &Xm, a: args::SchedCredit) -> Result<()> {
    let rows = match &a.dom {
        Some(dom) if a.weight.is_some() || a.cap.is_some() => {
            xm.client.sched_credit(dom, a.weight, a.cap).await?;
            return Ok(());
        }
        Some(dom) => {
            let d = xm.client.domain(dom).await?;
            let s = xm.client.sched_credit(dom, None, None).await?;
            vec![(d.name, d.id, s.weight, s.cap)]
        }
        None => xm
            .client
            .snapshot()
            .await?
            .domains
            .into_iter()
            .filter_map(|d| Some((d.name, d.id, d.cpu_weight?, d.cpu_cap?)))
            .collect(),
    };
    println!("{}", format::SCHED_HEADER);
    for (name, id, weight, cap) in rows {
        println!("{}", format::sched_row(&name, id, weight, cap));
    }
    Ok(())
}

/// `xm info [--json]`: the node's fields in xend's order, `%-23s: value`.
pub async fn info(xm: &Xm, a: args::Info) -> Result<()> {
    if a.json {
        let node = xm.client.node().await?;
        println!("{}", serde_json::to_string_pretty(&node)?);
        return Ok(());
    }
    let text = xm.sxp.get(&["node"], &[]).await?;
    let node = parse_sxp("node", &text)?;
    for field in node.rest() {
        let Some(key) = field.head() else { continue };
        let value = field
            .rest()
            .iter()
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
            .collect::<Vec<_>>()
            .join(" ");
        println!("{}", format::info_line(key, &value));
    }
    Ok(())
}

/// `xm consoles`: one line per console, as Xen 2 printed them.
pub async fn consoles(xm: &Xm) -> Result<()> {
    let ports = xm.client.consoles().await?;
    println!(
        "{:<8} {:<12} {:<12} {:<24}",
        "Id", "Domain", "Port", "Connected"
    );
    for port in ports {
        let text = xm.sxp.get(&["console", &port.to_string()], &[]).await?;
        let c = parse_sxp(&format!("console {port}"), &text)?;
        let field = |k: &str| c.child_value(k).unwrap_or("?").to_string();
        let connected = c
            .child("connected")
            .map(|v| {
                v.rest()
                    .iter()
                    .filter_map(|x| x.as_str())
                    .collect::<Vec<_>>()
                    .join(":")
            })
            .unwrap_or_default();
        println!(
            "{:<8} {:<12} {:<12} {:<24}",
            field("id"),
            field("domain"),
            field("console_port"),
            connected
        );
    }
    Ok(())
}

/// `xm help [COMMAND]`.
pub fn help(command: Option<&str>) -> Result<()> {
    match command {
        None => print!("{}", commands::help()),
        Some(typed) => {
            let c = commands::resolve(typed)?;
            println!("xm {} {}\n\n{}", c.name, c.args, c.help);
        }
    }
    Ok(())
}
