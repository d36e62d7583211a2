//! Save and restore through the real `vmm` binary with the real minios on
//! KVM: the guest runs on from where it stopped (counter, uptime, memory,
//! console history), `--paused` restores stay paused, and bad images are
//! refused before anything is created.
use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::{Console, Vm, wait_until};
use hypervisor::control::client::VmmClient;
use hypervisor::control::proto::{Request, RunState, VcpuState};

/// Generous: minios runs under an emulating KVM here.
const T: Duration = Duration::from_secs(60);

/// Run `tick`, expecting the counter to reach `n`; returns the uptime (s).
#[track_caller]
fn tick(con: &mut Console, n: u64) -> f64 {
    let from = con.seen.len();
    con.send("tick\n");
    let needle = format!("tick {n} up ");
    con.expect(&needle, T);
    // Then the rest of that line.
    let start = from + con.text()[from..].find(&needle).unwrap() + needle.len();
    wait_until(T, "the uptime after the tick", || {
        let text = con.text();
        if let Some(end) = text[start..].find(" s") {
            return Some(text[start..start + end].parse::<f64>().unwrap());
        }
        con.pump();
        None
    })
}

fn restore(name: &str, image: &Path, extra: &[&str]) -> Vm {
    let mut args = vec!["--restore", image.to_str().unwrap()];
    args.extend_from_slice(extra);
    Vm::start(name, &args)
}

#[test]
fn saved_guest_runs_on_after_restore_with_counter_uptime_memory_and_history() {
    if !hypervisor::require_kvm() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("saved.img");
    let (mut vm, mut con) = common::boot("saver", 64, 2, T);
    tick(&mut con, 1);
    con.run("pattern write 8 42", "pattern: wrote 8 MiB", T);
    con.run("echo before the save", "\nbefore the save", T);
    let up_before = tick(&mut con, 2);
    let saved_at = Instant::now();
    let info = vm.save(&image, T);
    assert_eq!(info.vcpus, 2);
    assert!(
        info.ram_pages >= 2048,
        "8 MiB of pattern are {} pages",
        info.ram_pages
    );
    assert!(
        info.ram_pages < 64 * 256 / 2,
        "untouched RAM was saved: {} pages",
        info.ram_pages
    );
    assert_eq!(std::fs::metadata(&image).unwrap().len(), info.image_bytes);
    assert!(
        std::fs::read_dir(dir.path()).unwrap().count() == 1,
        "a temp file was left next to the image"
    );

    // Keep the domain saved for a while: none of that time may show in the
    // guest's clock afterwards (no gap, no reset).
    let away = Duration::from_secs(2);
    while saved_at.elapsed() < away {
        assert!(image.exists());
    }
    let vm = restore("saver", &image, &[]);
    let mut con = Console::attach(&vm.socket, true);
    // The console history came along.
    con.expect("before the save", T);
    let up_after = tick(&mut con, 3);
    assert!(
        up_after >= up_before,
        "uptime went back from {up_before} to {up_after}"
    );
    assert!(
        up_after - up_before < away.as_secs_f64() / 2.0,
        "the {away:?} the domain spent saved shows in its clock: uptime {up_before} -> {up_after}"
    );
    con.run("pattern check 8 42", "pattern: ok (8 MiB)", T);
    let wrong = con.run("pattern check 8 43", "pattern: ", T);
    assert!(wrong.contains("mismatch"), "{wrong}");
    let i = vm.info();
    assert_eq!((i.name.as_str(), i.domid), ("saver", 7));
    assert_eq!(i.memory.configured_kib, 64 * 1024);
    assert_eq!(i.vcpus.len(), 2);
    assert!(vm.log().contains("restored saver from"), "{}", vm.log());
}

#[test]
fn restore_paused_stays_paused_until_unpause_and_takes_new_name_and_id() {
    if !hypervisor::require_kvm() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("p.img");
    let (mut vm, mut con) = common::boot("pauser", 32, 1, T);
    tick(&mut con, 1);
    vm.save(&image, T);

    let vm = restore("renamed", &image, &["--paused"]);
    let i = vm.info();
    assert_eq!(i.state, RunState::Paused);
    assert_eq!((i.name.as_str(), i.domid), ("renamed", 7));
    // Each vCPU thread parks at its gate as soon as it starts.
    let i = wait_until(T, "every vCPU to park", || {
        let i = vm.info();
        i.vcpus
            .iter()
            .all(|v| v.state == VcpuState::Paused)
            .then_some(i)
    });
    let mut con = Console::attach(&vm.socket, false);
    con.send("tick\n");
    // For half a second, nothing runs: no echo of the typed command and no
    // VM exit (reads poll every 50 ms; a running guest echoes at once).
    let exits = |i: &hypervisor::control::proto::DomainInfo| -> u64 {
        i.vcpus.iter().map(|v| v.exits).sum()
    };
    let watch_until = Instant::now() + Duration::from_millis(500);
    while Instant::now() < watch_until {
        con.pump();
        assert!(
            con.seen.is_empty(),
            "a paused guest echoed {:?}",
            con.text()
        );
    }
    let later = vm.info();
    assert_eq!(later.state, RunState::Paused);
    assert_eq!(exits(&later), exits(&i), "a paused domain took VM exits");
    vm.client().request(&Request::Unpause).unwrap();
    // The tick typed while paused runs now, and the counter went on from 1.
    con.expect("tick 2 up ", T);
    // The guest sees its new name (start-info was updated).
    con.expect("minios@renamed# ", T);
}

/// Run `vmm` expecting it to refuse to start; returns its error output.
fn refused(args: &[&str], dir: &Path) -> String {
    let socket = dir.join("r.sock");
    let record = dir.join("r.json");
    let log = dir.join("r.log");
    let out = Command::new(env!("CARGO_BIN_EXE_vmm"))
        .args(args)
        .arg("--socket")
        .arg(&socket)
        .arg("--record")
        .arg(&record)
        .arg("--log")
        .arg(&log)
        .output()
        .unwrap();
    assert!(!out.status.success(), "vmm {args:?} started");
    assert!(!socket.exists(), "socket left behind by {args:?}");
    assert!(!record.exists(), "record left behind by {args:?}");
    // Without --detach the error goes to the log (stderr is redirected
    // there); with it, the parent prints it on its stderr.
    let log = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(!log.contains("restored"), "{log}");
    format!("{}{log}", String::from_utf8_lossy(&out.stderr))
}

#[test]
fn corrupted_and_truncated_images_are_refused_and_leave_nothing_behind() {
    if !hypervisor::require_kvm() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.img");
    let (mut vm, mut con) = common::boot("victim", 32, 1, T);
    con.run("pattern write 2 1", "pattern: wrote", T);
    vm.save(&good, T);
    let bytes = std::fs::read(&good).unwrap();
    let variant = |name: &str, data: &[u8]| -> PathBuf {
        let p = dir.path().join(name);
        std::fs::write(&p, data).unwrap();
        p
    };

    let mut flipped = bytes.clone();
    flipped[bytes.len() / 2] ^= 0x01;
    let p = variant("flipped.img", &flipped);
    let err = refused(&["--restore", p.to_str().unwrap()], dir.path());
    assert!(
        err.contains("flipped.img is refused") && err.contains("corrupted"),
        "{err}"
    );

    let p = variant("short.img", &bytes[..bytes.len() / 3]);
    let err = refused(&["--restore", p.to_str().unwrap()], dir.path());
    assert!(err.contains("truncated"), "{err}");

    let p = variant("no-end.img", &bytes[..bytes.len() - 1]);
    let err = refused(&["--restore", p.to_str().unwrap()], dir.path());
    assert!(err.contains("truncated"), "{err}");

    let mut magic = bytes.clone();
    magic[0] = b'Y';
    let p = variant("magic.img", &magic);
    let err = refused(&["--restore", p.to_str().unwrap()], dir.path());
    assert!(err.contains("not a domain image"), "{err}");

    let mut version = bytes.clone();
    version[8] = 9;
    let p = variant("version.img", &version);
    let err = refused(&["--restore", p.to_str().unwrap()], dir.path());
    assert!(err.contains("format version 9 is not supported"), "{err}");

    let p = variant("empty.img", &[]);
    let err = refused(&["--restore", p.to_str().unwrap()], dir.path());
    assert!(err.contains("truncated"), "{err}");

    let err = refused(&["--restore", "/nonexistent/x.img"], dir.path());
    assert!(
        err.contains("cannot open image /nonexistent/x.img"),
        "{err}"
    );

    // --detach reports the refusal from the parent, with exit status 1.
    let p = variant("flipped2.img", &flipped);
    let err = refused(&["--restore", p.to_str().unwrap(), "--detach"], dir.path());
    assert!(err.contains("corrupted"), "{err}");

    // Sizes and kernel come from the image, not the command line.
    let err = refused(
        &["--restore", good.to_str().unwrap(), "--memory", "64"],
        dir.path(),
    );
    assert!(err.contains("cannot be used with"), "{err}");

    // The good image still restores.
    let vm = restore("victim", &good, &[]);
    let mut con = Console::attach(&vm.socket, false);
    con.run("pattern check 2 1", "pattern: ok", T);
}

#[test]
fn a_save_that_cannot_be_written_leaves_the_domain_running() {
    if !hypervisor::require_kvm() {
        return;
    }
    let (vm, mut con) = common::boot("stayer", 32, 1, T);
    tick(&mut con, 1);
    for (path, why) in [
        ("relative.img", "must be an absolute path"),
        (
            "/nonexistent-dir/x.img",
            "cannot save into /nonexistent-dir",
        ),
        ("/", "must be an absolute path to a file"),
    ] {
        let err = VmmClient::connect(&vm.socket)
            .unwrap()
            .request(&Request::Save { path: path.into() })
            .unwrap_err()
            .to_string();
        assert!(err.contains(why), "{path}: {err}");
    }
    // Malformed requests get errors, not a save.
    {
        use std::io::{BufRead, BufReader, Write};
        let mut raw = std::os::unix::net::UnixStream::connect(&vm.socket).unwrap();
        let mut lines = BufReader::new(raw.try_clone().unwrap());
        for bad in [
            r#"{"op":"save"}"#,
            r#"{"op":"save","path":7}"#,
            r#"{"op":"migrate","host":"127.0.0.1"}"#,
            r#"{"op":"migrate","host":"127.0.0.1","port":99999,"token":"t"}"#,
        ] {
            writeln!(raw, "{bad}").unwrap();
            let mut reply = String::new();
            lines.read_line(&mut reply).unwrap();
            assert!(
                reply.starts_with(r#"{"error":"bad request"#),
                "{bad}: {reply}"
            );
        }
    }
    assert_ne!(vm.info().state, RunState::Paused);
    tick(&mut con, 2);
    // A toolstack pause survives a failed save too.
    vm.client().request(&Request::Pause).unwrap();
    assert!(
        vm.client()
            .request(&Request::Save {
                path: "/nonexistent-dir/y".into()
            })
            .is_err()
    );
    assert_eq!(vm.info().state, RunState::Paused);
}

#[test]
fn a_domain_with_a_disk_restores_with_its_ring_and_data() {
    if !hypervisor::require_kvm() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let disk = dir.path().join("d.img");
    std::fs::write(&disk, vec![0u8; 1 << 20]).unwrap();
    let spec = format!("file:{},xvda,w", disk.display());
    let image = dir.path().join("withdisk.img");
    let vm = Vm::start("disky", &["--memory", "32", "--disk", &spec]);
    let mut con = Console::attach(&vm.socket, true);
    con.expect("minios@disky# ", T);
    con.blkwrite("xvda", 8, 16, "before-save", T);
    let mut vm = vm;
    vm.save(&image, T);

    // Devices are not in the image: the toolstack passes the same --disk.
    let vm = restore("disky", &image, &["--disk", &spec]);
    let mut con = Console::attach(&vm.socket, false);
    con.blkverify("xvda", 8, 16, "before-save", T);
    // The restored ring keeps going where the saved one stopped.
    con.blkwrite("xvda", 100, 4, "after-restore", T);
    con.blkverify("xvda", 100, 4, "after-restore", T);
    let data = std::fs::read(&disk).unwrap();
    assert_eq!(&data[100 * 512..100 * 512 + 13], b"after-restore");
}

#[test]
fn a_save_in_the_middle_of_a_two_vcpu_burn_resumes_the_burn() {
    if !hypervisor::require_kvm() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("burn.img");
    let (mut vm, mut con) = common::boot("burning", 32, 2, T);
    con.run("burn 3 2", "burn: 2 vCPUs for 3 s", T);
    // Both vCPUs are in guest code (kicked out of KVM_RUN for the capture).
    wait_until(T, "both vCPUs burning", || {
        let i = vm.info();
        i.vcpus
            .iter()
            .all(|v| v.state == VcpuState::Running)
            .then_some(())
    });
    vm.save(&image, T);
    let vm = restore("burning", &image, &[]);
    let mut con = Console::attach(&vm.socket, true);
    con.expect("burn: done", T);
    let i = vm.info();
    assert!(
        i.vcpus.iter().all(|v| v.cpu_time_ns > 100_000_000),
        "both vCPUs went on burning after the restore: {:?}",
        i.vcpus
    );
    tick(&mut con, 1);
}

#[test]
fn a_domain_booted_paused_starts_only_on_unpause() {
    if !hypervisor::require_kvm() {
        return;
    }
    let vm = Vm::start("bootpaused", &["--memory", "16", "--paused"]);
    let i = vm.info();
    assert_eq!(i.state, RunState::Paused);
    // The guest never ran: no output, no exits.
    assert_eq!(i.console.bytes_out, 0);
    assert_eq!(i.vcpus.iter().map(|v| v.exits).sum::<u64>(), 0);
    let mut con = Console::attach(&vm.socket, true);
    vm.client().request(&Request::Unpause).unwrap();
    con.expect("minios@bootpaused# ", T);
}
