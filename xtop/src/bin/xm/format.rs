//! Text formats of xm's tables, as Xen printed them.
//!
//! `xm list` keeps the exact 2.0 layout. Its State column is five wide, as
//! Xen 2's five letters `rbpsc` were; xend reports Xen 3's six (`rbpscd`), so
//! xm prints the first five and drops `d` (dying): a dying domain is gone a
//! moment later, and the column keeps its 2.0 width for scripts that cut it.
use xend::api::DomainStats;

/// The `xm list` header.
pub const LIST_HEADER: &str = "Name              Id  Mem(MB)  CPU  State  Time(s)  Console";

/// The five-letter 2.0 state of a six-letter state (`-b----` -> `-b---`).
pub fn state5(state: &str) -> String {
    let mut s: String = state.chars().take(5).collect();
    while s.chars().count() < 5 {
        s.push('-');
    }
    s
}

/// The CPU column: the host CPU the first vCPU last ran on, else the pinned
/// CPU, else -1 (not known).
pub fn cpu_column(d: &DomainStats) -> i64 {
    d.vcpu_info
        .first()
        .and_then(|v| v.cpu)
        .map(|c| c as i64)
        .or(d.cpu)
        .unwrap_or(-1)
}

/// What the State column shows for a domain whose VMM does not answer: its
/// letters would be stale, so a word no script mistakes for a state.
pub const HUNG: &str = "hung";

/// One `xm list` row: `%-16s %3d  %7d  %3d  %5s  %7.1f    %4s`. A domain
/// whose VMM is unresponsive shows [`HUNG`] as its state.
pub fn list_row(d: &DomainStats) -> String {
    let console = d.console_port.map(|p| p.to_string()).unwrap_or_default();
    let state = if d.unresponsive_since.is_some() {
        HUNG.to_string()
    } else {
        state5(&d.state)
    };
    format!(
        "{:<16} {:>3}  {:>7}  {:>3}  {:>5}  {:>7.1}    {:>4}",
        d.name,
        d.id,
        d.memory,
        cpu_column(d),
        state,
        d.cpu_time,
        console
    )
}

/// The `xm vcpu-list` header (Xen 3 layout).
pub const VCPU_HEADER: &str =
    "Name                                ID  VCPU   CPU State   Time(s) CPU Affinity";

/// `xm vcpu-list` rows of one domain: `%-32s %5d %5d %5s %5s %9.1f %s`.
pub fn vcpu_rows(d: &DomainStats) -> Vec<String> {
    d.vcpu_info
        .iter()
        .map(|v| {
            let cpu = v.cpu.map(|c| c.to_string()).unwrap_or_else(|| "-".into());
            let state = match v.state.as_str() {
                "running" => "r--",
                "blocked" => "-b-",
                "paused" => "--p",
                _ => "---",
            };
            format!(
                "{:<32} {:>5} {:>5} {:>5} {:>5} {:>9.1} {}",
                d.name,
                d.id,
                v.id,
                cpu,
                state,
                v.cpu_time,
                cpu_set(&v.affinity)
            )
        })
        .collect()
}

/// A CPU set as Xen writes it: `any cpu`, or ranges like `0-2,4`.
pub fn cpu_set(cpus: &[usize]) -> String {
    if cpus.is_empty() {
        return "any cpu".into();
    }
    let mut sorted = cpus.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut parts = Vec::new();
    let mut i = 0;
    while i < sorted.len() {
        let start = sorted[i];
        let mut end = start;
        while i + 1 < sorted.len() && sorted[i + 1] == end + 1 {
            i += 1;
            end = sorted[i];
        }
        parts.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
        i += 1;
    }
    parts.join(",")
}

/// A CPU list that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("invalid CPU list '{0}': expected e.g. 0, 0-2,4 or all")]
pub struct BadCpuSet(String);

/// Parses a CPU set: `0`, `0-2,4`, or `all` (the empty set = every CPU).
pub fn parse_cpu_set(text: &str) -> Result<Vec<usize>, BadCpuSet> {
    let bad = || BadCpuSet(text.to_owned());
    if text == "all" {
        return Ok(Vec::new());
    }
    let mut cpus = Vec::new();
    for part in text.split(',') {
        let part = part.trim();
        match part.split_once('-') {
            Some((a, b)) => {
                let a: usize = a.trim().parse().map_err(|_| bad())?;
                let b: usize = b.trim().parse().map_err(|_| bad())?;
                if a > b {
                    return Err(bad());
                }
                cpus.extend(a..=b);
            }
            None => cpus.push(part.parse().map_err(|_| bad())?),
        }
    }
    Ok(cpus)
}

/// The header of `xm sched-credit`, Xen 3.2's.
pub const SCHED_HEADER: &str = "Name                                ID Weight  Cap";

/// One row of `xm sched-credit`: `%-33s %4d %6d %4d`.
pub fn sched_row(name: &str, id: u32, weight: u32, cap: u32) -> String {
    format!("{name:<33} {id:>4} {weight:>6} {cap:>4}")
}

/// One `xm info` line: `%-23s: value`.
pub fn info_line(key: &str, value: &str) -> String {
    format!("{key:<23}: {value}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dom(name: &str, id: u32, state: &str, port: Option<u16>) -> DomainStats {
        DomainStats {
            name: name.into(),
            id,
            memory: 63,
            state: state.into(),
            cpu_time: 2.96,
            console_port: port,
            cpu: Some(0),
            ..DomainStats::default()
        }
    }

    #[test]
    fn sched_rows_match_xen_3_2s_layout() {
        assert_eq!(
            sched_row("Domain-0", 0, 256, 0),
            "Domain-0                             0    256    0"
        );
        assert_eq!(SCHED_HEADER.len(), sched_row("x", 1, 2, 3).len());
    }

    #[test]
    fn list_rows_match_the_2_0_layout() {
        // The reference's own example rows.
        let mut d0 = dom("Domain-0", 0, "r-----", None);
        d0.memory = 251;
        d0.cpu_time = 172.2;
        assert_eq!(
            list_row(&d0),
            "Domain-0           0      251    0  r----    172.2        "
        );
        assert_eq!(
            list_row(&dom("ttylinux", 5, "-b----", Some(9605))),
            "ttylinux           5       63    0  -b---      3.0    9605"
        );
        assert_eq!(state5("--p---"), "--p--");
        assert_eq!(state5("---s-d"), "---s-");
        assert_eq!(state5("r"), "r----");
        let mut hung = dom("ttylinux", 5, "-b----", Some(9605));
        hung.unresponsive_since = Some(100.0);
        assert_eq!(
            list_row(&hung),
            "ttylinux           5       63    0   hung      3.0    9605"
        );
    }

    #[test]
    fn cpu_sets() {
        assert_eq!(cpu_set(&[]), "any cpu");
        assert_eq!(cpu_set(&[3, 0, 1, 2, 5]), "0-3,5");
        assert_eq!(parse_cpu_set("0-2,4").unwrap(), vec![0, 1, 2, 4]);
        assert_eq!(parse_cpu_set("all").unwrap(), Vec::<usize>::new());
        assert!(parse_cpu_set("2-1").is_err());
        assert!(parse_cpu_set("x").unwrap_err().to_string().contains("'x'"));
    }

    #[test]
    fn vcpu_rows_use_the_xen_3_layout() {
        let mut d = dom("web1", 3, "-b----", Some(9603));
        d.vcpu_info = vec![
            xend::api::VcpuStats {
                id: 0,
                cpu_time: 1.25,
                state: "blocked".into(),
                affinity: vec![],
                cpu: Some(1),
            },
            xend::api::VcpuStats {
                id: 1,
                cpu_time: 0.0,
                state: "paused".into(),
                affinity: vec![0, 1],
                cpu: None,
            },
        ];
        assert_eq!(
            vcpu_rows(&d),
            [
                "web1                                 3     0     1   -b-       1.2 any cpu",
                "web1                                 3     1     -   --p       0.0 0-1",
            ]
        );
        assert_eq!(cpu_column(&d), 1);
    }

    #[test]
    fn info_lines() {
        assert_eq!(
            info_line("system", "Linux"),
            "system                 : Linux"
        );
    }
}
