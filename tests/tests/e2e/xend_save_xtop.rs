//! xtop's save and migrate (keys `X` and `m`, which open the `:save` and
//! `:migrate` prompts) in a pseudo-terminal against real xends and a real
//! minios domain; every result is checked through the API.
use std::time::Duration;

use e2e::pty::Pty;
use e2e::save::{MOVE, assert_no_domains, save_dir, tick};
use e2e::{Xend, prompt, wait_for};

const SCREEN: Duration = Duration::from_secs(20);

/// xtop on a 40x160 pty against `xend`, showing only `name`.
fn xtop(xend: &Xend, name: &str) -> Pty {
    let config = xend.dir().join("xtop-config.toml");
    let home = xend.dir().to_str().unwrap().to_owned();
    let filter = format!("^{name}$");
    let url = xend.base_url();
    let args = ["-H", url.as_str(), "-d", "0.5", "--filter", filter.as_str()];
    let xend_config = xend.config_path();
    let env = [
        ("XTOP_CONFIG", config.to_str().unwrap()),
        ("HOME", home.as_str()),
        ("XEND_CONFIG", xend_config.to_str().unwrap()),
    ];
    let pty = Pty::spawn(&e2e::bin("xtop"), &args, &env, 40, 160);
    pty.wait_until(SCREEN, "the domain row", |s| {
        s.lines().any(|l| l.contains(&format!(" {name} ")))
    });
    pty
}

#[test]
fn x_saves_the_selected_domain_and_m_migrates_it() {
    if !hypervisor::require_kvm() {
        return;
    }
    // Two xends sharing a token file: the source's token opens the destination.
    let (a, b) = Xend::start_pair();
    let (dom, mut con) = a.create_booted("mover");
    tick(&mut con, 1);

    // m: migrate live to b; the status line shows the downtime.
    let mut pty = xtop(&a, "mover");
    pty.send(b"m");
    pty.wait_for(":migrate ", SCREEN);
    pty.send(format!("127.0.0.1:{} live\r", b.api_port()).as_bytes());
    pty.wait_for(
        &format!("migrated mover to 127.0.0.1:{} as id", b.api_port()),
        MOVE,
    );
    pty.wait_for("live (downtime ", SCREEN);
    con.expect_closed(MOVE);
    assert_no_domains(&a);
    let on_b = b.domain("mover");
    let mut con = b.console(on_b.id);
    con.expect(&prompt("mover"), MOVE);
    tick(&mut con, 2);
    pty.send(b"q");
    assert!(pty.wait_exit(SCREEN).success());

    // X: save on b; the domain ends and the image is in b's save-dir.
    let mut pty = xtop(&b, "mover");
    pty.send(b"X");
    pty.wait_for(":save ", SCREEN);
    pty.send(b"mover.img\r");
    pty.wait_for("saved mover to ", MOVE);
    con.expect_closed(MOVE);
    wait_for(MOVE, "mover gone from b", || {
        b.try_domain("mover").is_none()
    });
    assert!(save_dir(&b).join("mover.img").is_file());
    pty.send(b"q");
    assert!(pty.wait_exit(SCREEN).success());
    let _ = dom;
}
