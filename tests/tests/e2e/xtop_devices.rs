//! xtop's device columns and per-device lines show the real figures of a
//! guest's disk and vif (xend's bulk endpoint, fed by the VMM), inside a
//! network namespace the test creates (never the host's interfaces).

use e2e::netns::Netns;
use e2e::{BOOT, STATE, Xend, prompt, wait_until};
use serde_json::Value;

fn xtop(xend: &Xend, args: &[&str]) -> String {
    let out = xend
        .command("xtop")
        .args(["-H", &xend.base_url()])
        .args(args)
        .output()
        .expect("run xtop");
    assert!(out.status.success(), "xtop {args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn device_columns_and_lines_follow_the_guests_disk_and_network_traffic() {
    if !hypervisor::require_kvm() {
        return;
    }
    let Some(ns) = Netns::enter("xtop") else {
        return;
    };
    let xend = Xend::start();
    let img = xend.images_dir().join("d.img");
    std::fs::File::create(&img)
        .unwrap()
        .set_len(512 * 1024)
        .unwrap();
    let dom = xend.create(&format!(
        "name = 'dv'\nmemory = 16\nextra = 'ip=10.79.0.2/24'\n\
         disk = ['file:{},xvda,w']\nvif = ['mac=aa:00:00:00:51:01, bridge=xtbr0']\n",
        img.display()
    ));
    ns.ip(&["addr", "add", "10.79.0.1/24", "dev", "xtbr0"])
        .unwrap();
    let mut con = xend.console(dom.id);
    con.expect(&prompt("dv"), BOOT);
    let out = con.run("blkwrite xvda 0 100 xtop", STATE);
    assert!(out.contains("wrote 100 sectors"), "{out}");
    let out = con.run("blkread xvda 0 30", STATE);
    assert!(out.contains("checksum"), "{out}");
    let out = con.run("ping 10.79.0.1 5", STATE);
    assert!(out.contains("5 received"), "{out}");
    let api = xend.domain("dv");
    let (tx, rx) = (api.nets[0].tx_bytes, api.nets[0].rx_bytes);
    assert!(tx >= 5 * 98 && rx >= 5 * 98, "{:?}", api.nets);

    // JSON records: the device columns (the bulk cache may be one poll old).
    let d = wait_until(STATE, "xtop to see the traffic", || {
        let line = xtop(&xend, &["--json", "-i", "1", "--filter", "^dv$"]);
        let v: Value = serde_json::from_str(line.trim()).unwrap();
        let d = v["domains"][0].clone();
        (d["vbd_rsect"] == 30 && d["nettx"].as_u64()? * 1024 + 1024 > tx).then_some(d)
    });
    assert_eq!(
        (&d["vbds"], &d["vbd_wsect"], &d["vbd_oo"], &d["nets"]),
        (
            &Value::from(1),
            &Value::from(100),
            &Value::from(0),
            &Value::from(1)
        ),
        "{d}"
    );
    assert!(
        d["vbd_wr"].as_u64().unwrap() >= 1 && d["vbd_rd"].as_u64().unwrap() >= 1,
        "{d}"
    );
    assert_eq!(d["nettx"].as_u64().unwrap(), tx / 1024, "{d}");

    // Batch text with -n and -x: one line per vif and per vbd.
    let text = xtop(&xend, &["-b", "-i", "1", "-n", "-x"]);
    let net = text
        .lines()
        .find(|l| l.starts_with("Net0 RX:"))
        .unwrap_or_else(|| panic!("no Net0 line:\n{text}"));
    let nums: Vec<u64> = net
        .split_whitespace()
        .filter_map(|w| w.trim_end_matches(char::is_alphabetic).parse().ok())
        .collect();
    // Net0 RX: bytes pkts err drop  TX: bytes pkts err drop
    assert_eq!(nums.len(), 8, "{net}");
    assert!(
        nums[0] >= rx && nums[1] >= 5 && nums[4] >= tx && nums[5] >= 5,
        "{net}"
    );
    assert_eq!((nums[2], nums[6]), (0, 0), "{net}");
    let vbd = text
        .lines()
        .find(|l| l.starts_with("VBD file:"))
        .unwrap_or_else(|| panic!("no VBD line:\n{text}"));
    assert!(
        vbd.contains("xvda")
            && vbd.contains("RSECT:         30")
            && vbd.contains("WSECT:        100"),
        "{vbd}"
    );
}
