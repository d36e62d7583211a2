//! Golden output of `xtop -b`, `--csv` and `--json` against a real xend with
//! a real minios domain. Volatile figures (host memory, CPU time, rates,
//! timestamps) are masked after checking their kind; everything else, every
//! fixed figure of the domain included, must match exactly.
use std::ops::Range;

use e2e::Xend;
use e2e::golden::{Column, Kind, assert_golden, mask_columns};
use serde_json::{Value, json};

/// The xentop header `xtop -b` prints (column widths as xentop's).
const HEADER: &str = "      NAME  STATE   CPU(sec) CPU(%)     MEM(k) MEM(%)  MAXMEM(k) MAXMEM(%) VCPUS NETS NETTX(k) NETRX(k) VBDS   VBD_OO   VBD_RD   VBD_WR  VBD_RSECT  VBD_WSECT";

fn xtop(xend: &Xend, args: &[&str]) -> String {
    let out = xend
        .command("xtop")
        .args(["-H", &xend.base_url()])
        .args(args)
        .output()
        .expect("run xtop");
    assert!(out.status.success(), "xtop {args:?}: {out:?}");
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The characters of the header's column `label` (right-aligned columns: from
/// the end of the previous label to the end of this one).
fn col(label: &str) -> Range<usize> {
    let end = HEADER
        .find(label)
        .unwrap_or_else(|| panic!("no {label} in the header"))
        + label.len();
    let start = HEADER[..end - label.len()].trim_end().len();
    start..end
}

fn masked(label: &str, kind: Kind, placeholder: &'static str) -> Column {
    Column {
        cols: col(label),
        kind,
        placeholder,
    }
}

#[test]
fn batch_csv_and_json_match_their_golden_forms() {
    if !hypervisor::require_kvm() {
        return;
    }
    let xend = Xend::start();
    let dom = xend.create("name = \"gold\"\nmemory = 16\nmaxmem = 32\nvcpus = 2\n");
    let id = dom.id;

    // xentop's text: header, Domain-0 first (-z), then the domain.
    let text = xtop(&xend, &["-b", "-i", "1", "-z"]);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    let host = [
        masked("CPU(sec)", Kind::Int, "S"),
        masked("CPU(%)", Kind::Float, "P"),
        masked("MEM(k)", Kind::Int, "M"),
        masked("MEM(%)", Kind::Float, "P"),
        masked("MAXMEM(k)", Kind::Int, "M"),
        masked("VCPUS", Kind::Int, "N"),
    ];
    let guest = [
        masked("STATE", Kind::Text, "ST"),
        masked("CPU(sec)", Kind::Int, "S"),
        masked("CPU(%)", Kind::Float, "P"),
        masked("MEM(%)", Kind::Float, "P"),
        masked("MAXMEM(%)", Kind::Float, "P"),
    ];
    let got = format!(
        "{}\n{}{}",
        lines[0],
        mask_columns(lines[1], 0, &host),
        mask_columns(lines[2], 0, &guest)
    );
    assert_golden(
        &got,
        &format!(
            "{HEADER}\n\
             \x20 Domain-0 -----r          S      P          M      P          M     100.0     N    0        0        0    0        0        0        0          0          0\n\
             \x20     gold     ST          S      P      16384      P      32768         P     2    0        0        0    0        0        0        0          0          0\n"
        ),
    );
    let state = lines[2][col("STATE")].trim();
    assert!(
        ["--b---", "-----r"].contains(&state),
        "gold's state {state:?}"
    );

    // CSV: host totals, then the domain's fields, id first.
    let csv = xtop(&xend, &["--csv", "-", "-i", "1", "--filter", "^gold$"]);
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(
        rows[0],
        "time,host_url,host_domains,host_cpu_pct,host_mem_total_k,host_mem_free_k,host_cpus,\
         id,name,state,cpu_sec,cpu,mem,mem_pct,maxmem,maxmem_pct,vcpus,nets,nettx,netrx,vbds,vbd_oo,vbd_rd,vbd_wr,vbd_rsect,vbd_wsect,kernel,image"
    );
    assert_eq!(rows.len(), 2, "{csv}");
    let mut cells: Vec<String> = rows[1].split(',').map(str::to_owned).collect();
    for (i, kind) in [
        (0, "f"),
        (3, "f"),
        (4, "i"),
        (5, "i"),
        (6, "i"),
        (10, "i"),
        (11, "f"),
        (13, "f"),
        (15, "f"),
    ] {
        let ok = match kind {
            "i" => cells[i].parse::<u64>().is_ok(),
            _ => cells[i].parse::<f64>().is_ok_and(f64::is_finite),
        };
        assert!(
            ok,
            "CSV cell {i} {:?} is not a number: {}",
            cells[i], rows[1]
        );
        cells[i] = "#".into();
    }
    assert!(
        ["--b---", "-----r"].contains(&cells[9].as_str()),
        "{}",
        rows[1]
    );
    cells[9] = "ST".into();
    assert_golden(
        &cells.join(","),
        &format!(
            "#,{},2,#,#,#,#,{id},gold,ST,#,#,16384,#,32768,#,2,0,0,0,0,0,0,0,0,0,minios,minios",
            xend.base_url()
        ),
    );

    // JSON: one object per refresh; counters are integers.
    let line = xtop(&xend, &["--json", "-i", "1", "--sort", "-id"]);
    let mut v: Value = serde_json::from_str(line.trim()).unwrap();
    let gold = &mut v["domains"][0];
    for key in ["cpu", "cpu_sec", "mem_pct", "maxmem_pct"] {
        assert!(gold[key].is_number(), "{key}: {gold}");
        gold[key] = json!("#");
    }
    assert!(
        ["--b---", "-----r"].contains(&gold["state"].as_str().unwrap()),
        "{gold}"
    );
    gold["state"] = json!("ST");
    assert_eq!(
        *gold,
        json!({
            "id": id, "name": "gold", "state": "ST", "cpu_sec": "#", "cpu": "#",
            "mem": 16384, "mem_pct": "#", "maxmem": 32768, "maxmem_pct": "#", "vcpus": 2,
            "nets": 0, "nettx": 0, "netrx": 0, "vbds": 0, "vbd_oo": 0, "vbd_rd": 0,
            "vbd_wr": 0, "vbd_rsect": 0, "vbd_wsect": 0, "kernel": "minios", "image": "minios"
        })
    );
    assert_eq!(v["domains"][1]["name"], "Domain-0");
    assert_eq!(v["domains"][1]["id"], 0);
    let host = &v["hosts"][0];
    assert_eq!(
        (
            host["url"].as_str(),
            host["up"].as_bool(),
            host["domains"].as_u64()
        ),
        (Some(xend.base_url().as_str()), Some(true), Some(2))
    );
}
