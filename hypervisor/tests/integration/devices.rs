//! Virtual block devices on the real `vmm` and minios: a guest's writes
//! land in the host file, read-only is enforced, a read-write disk is
//! refused to a second VMM (unless `w!`), hot attach and detach, exact
//! statistics, and bad ring descriptors from a hostile guest.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::{Console, Vm, asm, wait_until, write_guest};
use hypervisor::control::proto::{DeviceClass, DeviceRef, Payload, Reply, Request, RunState};

/// Generous: minios runs under an emulating KVM here.
const T: Duration = Duration::from_secs(60);

fn disk(dir: &Path, name: &str, bytes: u64) -> String {
    let p = dir.join(name);
    let f = std::fs::File::create(&p).unwrap();
    f.set_len(bytes).unwrap();
    p.to_string_lossy().into_owned()
}

fn boot(name: &str, extra: &[&str]) -> (Vm, Console) {
    let mut args = vec!["--memory", "32"];
    args.extend_from_slice(extra);
    let vm = Vm::start(name, &args);
    let mut con = Console::attach(&vm.socket, true);
    con.expect(&format!("minios@{name}# "), T);
    (vm, con)
}

/// Run a shell command and wait for `needle` in its output.
fn run(con: &mut Console, cmd: &str, needle: &str) -> String {
    con.run(cmd, needle, T)
}

/// `PATTERN` repeated over one 512-byte sector (what `blkwrite` writes).
fn sector_of(pattern: &str) -> Vec<u8> {
    pattern.bytes().cycle().take(512).collect()
}

/// minios's `blkread` checksum: FNV-1a over little-endian u64 words.
fn checksum(data: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for chunk in data.chunks(8) {
        let mut w = [0u8; 8];
        w[..chunk.len()].copy_from_slice(chunk);
        h ^= u64::from_le_bytes(w);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[test]
fn guest_writes_a_pattern_the_host_file_holds_and_stats_match() {
    if !hypervisor::require_kvm() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = disk(dir.path(), "d.img", 1 << 20);
    let spec = format!("file:{path},xvda,w");
    let (vm, mut con) = boot("blk", &["--disk", &spec]);
    assert!(
        con.text().contains("minios: disk xvda: 2048 sectors"),
        "{}",
        con.text()
    );
    run(
        &mut con,
        "disks",
        "xvda: 2048 sectors of 512 bytes (1024 KiB), read-write",
    );

    run(
        &mut con,
        "blkwrite xvda 8 100 xtop-disk!",
        "blkwrite: xvda wrote 100 sectors at 8",
    );
    let data = std::fs::read(&path).unwrap();
    let sector = sector_of("xtop-disk!");
    for s in 8..108 {
        assert_eq!(&data[s * 512..(s + 1) * 512], &sector[..], "sector {s}");
    }
    assert!(
        data[..8 * 512].iter().all(|&b| b == 0),
        "sectors before 8 untouched"
    );
    assert!(
        data[108 * 512..].iter().all(|&b| b == 0),
        "sectors after 107 untouched"
    );

    run(
        &mut con,
        "blkverify xvda 8 100 xtop-disk!",
        "blkverify: xvda 100 sectors at 8: ok",
    );
    run(
        &mut con,
        "blkverify xvda 7 2 xtop-disk!",
        "blkverify: xvda: mismatch at sector 7",
    );
    let want = format!("checksum {:016x}", checksum(&data[..200 * 512]));
    run(&mut con, "blkread xvda 0 200", &want);

    // Past the end: refused, counted as out-of-space.
    run(
        &mut con,
        "blkwrite xvda 2040 16 x",
        "beyond the end of the device",
    );

    let info = vm.info();
    let v = &info.vbds[0];
    assert_eq!((v.id, v.dev.as_str(), v.mode.as_str()), (0, "xvda", "w"));
    assert_eq!(v.uname, format!("file:{path}"));
    assert_eq!(v.sectors, 2048);
    // 16 KiB (32-sector) requests: 100 sectors = 4 requests.
    assert_eq!((v.wr_req, v.wr_sect), (4, 100), "{v:?}");
    // verify 100 (4 req) + verify 2 (1) + read 200 (7).
    assert_eq!((v.rd_req, v.rd_sect), (12, 302), "{v:?}");
    assert_eq!((v.oo_req, v.errors), (1, 0), "{v:?}");
    // Batching: far fewer notifies than requests.
    let notifies = info.exits.get("device_notify").copied().unwrap_or(0);
    assert!(
        notifies <= 5,
        "{notifies} notifies for 17 requests: {:?}",
        info.exits
    );
}

#[test]
fn read_only_disk_refuses_guest_writes() {
    if !hypervisor::require_kvm() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ro.img");
    let original: Vec<u8> = (0..64 * 1024u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&path, &original).unwrap();
    let spec = format!("file:{},xvda,r", path.display());
    let (vm, mut con) = boot("rodisk", &["--disk", &spec]);
    run(
        &mut con,
        "disks",
        "xvda: 128 sectors of 512 bytes (64 KiB), read-only",
    );
    run(
        &mut con,
        "blkwrite xvda 0 4 overwrite",
        "blkwrite: xvda: error -2 (read-only device)",
    );
    let want = format!("checksum {:016x}", checksum(&original));
    run(&mut con, "blkread xvda 0 128", &want);
    assert_eq!(std::fs::read(&path).unwrap(), original, "the file changed");
    let v = &vm.info().vbds[0];
    assert_eq!(
        (v.mode.as_str(), v.wr_req, v.wr_sect, v.errors),
        ("r", 0, 0, 1),
        "{v:?}"
    );
    assert_eq!(v.rd_sect, 128);
}

/// Start a second `vmm` with `disk` and return (succeeded, stderr).
fn second_vmm(dir: &Path, name: &str, disk: &str) -> (bool, String, Option<std::process::Child>) {
    let socket = dir.join(format!("{name}.sock"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_vmm"))
        .args([
            "--name", name, "--domid", "8", "--memory", "16", "--disk", disk, "--socket",
        ])
        .arg(&socket)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let ok = wait_until(T, "the second vmm to start or fail", || {
        if let Ok(Some(_)) = child.try_wait() {
            return Some(false);
        }
        // The socket listens before the devices open: only an answered
        // request means the domain runs.
        let mut c = hypervisor::control::client::VmmClient::connect(&socket).ok()?;
        c.info().ok().map(|_| true)
    });
    if ok {
        return (true, String::new(), Some(child));
    }
    let out = child.wait_with_output().unwrap();
    (
        false,
        String::from_utf8_lossy(&out.stderr).into_owned(),
        None,
    )
}

#[test]
fn read_write_disk_is_refused_to_a_second_vmm_unless_shared() {
    if !hypervisor::require_kvm() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = disk(dir.path(), "shared.img", 64 * 1024);
    let (_vm, _con) = boot("owner", &["--disk", &format!("file:{path},xvda,w")]);

    let (ok, err, _) = second_vmm(dir.path(), "thief", &format!("file:{path},xvda,w"));
    assert!(!ok, "a second read-write user was let in");
    assert!(
        err.contains(&format!("disk {path} is in use by another domain")) && err.contains("w!"),
        "{err}"
    );
    let (ok, err, _) = second_vmm(dir.path(), "reader", &format!("file:{path},xvda,r"));
    assert!(!ok, "a reader was let in next to a writer");
    assert!(err.contains(&format!("disk {path} is in use")), "{err}");

    let (ok, err, child) = second_vmm(dir.path(), "sharer", &format!("file:{path},xvda,w!"));
    assert!(ok, "w! must be allowed: {err}");
    let mut child = child.unwrap();
    let _ = child.kill();
    let _ = child.wait();
}

fn request(vm: &Vm, req: Request) -> Reply {
    match vm.client().request(&req) {
        Ok(p) => Reply::Ok(p),
        Err(e) => Reply::Error(e.to_string()),
    }
}

#[test]
fn disks_attach_and_detach_while_running() {
    if !hypervisor::require_kvm() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = disk(dir.path(), "hot.img", 256 * 1024);
    let (vm, mut con) = boot("hotplug", &[]);
    run(&mut con, "disks", "disks: none");

    let reply = request(
        &vm,
        Request::DeviceAttach {
            kind: DeviceClass::Vbd,
            config: format!("file:{path},xvdb,w"),
        },
    );
    let want = DeviceRef {
        kind: DeviceClass::Vbd,
        idx: 0,
        name: "xvdb".into(),
    };
    assert_eq!(reply, Reply::Ok(Payload::Device(want)));
    run(&mut con, "disks", "xvdb: 512 sectors");
    run(
        &mut con,
        "blkwrite xvdb 1 3 hot",
        "blkwrite: xvdb wrote 3 sectors at 1",
    );
    let data = std::fs::read(&path).unwrap();
    assert_eq!(&data[512..1024], &sector_of("hot")[..]);
    assert_eq!(vm.info().vbds[0].wr_sect, 3);

    // A bad config is refused with the reason, and nothing changes.
    let reply = request(
        &vm,
        Request::DeviceAttach {
            kind: DeviceClass::Vbd,
            config: format!("file:{path},xvdc,rw"),
        },
    );
    assert!(
        matches!(&reply, Reply::Error(e) if e.contains("mode 'rw' is unknown")),
        "{reply:?}"
    );

    let reply = request(
        &vm,
        Request::DeviceDetach {
            kind: DeviceClass::Vbd,
            idx: 0,
        },
    );
    assert_eq!(reply, Reply::Ok(Payload::Done));
    run(&mut con, "disks", "disks: none");
    run(&mut con, "blkwrite xvdb 1 3 gone", "xvdb: no such disk");
    assert!(vm.info().vbds.is_empty());
    let reply = request(
        &vm,
        Request::DeviceDetach {
            kind: DeviceClass::Vbd,
            idx: 0,
        },
    );
    assert!(
        matches!(&reply, Reply::Error(e) if e.contains("no vbd with index 0")),
        "{reply:?}"
    );

    // The detached disk's lock is gone: another VMM may now take it.
    let (ok, err, child) = second_vmm(dir.path(), "next", &format!("file:{path},xvda,w"));
    assert!(ok, "the lock outlived the detach: {err}");
    let mut child = child.unwrap();
    let _ = child.kill();
    let _ = child.wait();
}

/// vbd slot 0's ring in a domain booted with one disk.
const RING: u32 = 0x18000;
const NOTIFY_PORT: u16 = 0x507;

fn notify_slot0() -> Vec<u8> {
    let mut code = asm::mov_dx(NOTIFY_PORT);
    code.extend(asm::mov_eax(0));
    code.push(asm::OUT_EAX);
    code
}

#[test]
fn a_request_with_a_wild_buffer_fails_alone() {
    if !hypervisor::require_kvm() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = disk(dir.path(), "w.img", 64 * 1024);
    // Slot 0: write 512 bytes from far outside RAM; publish it; notify; hlt.
    let slot = RING + 16;
    let mut code = Vec::new();
    code.extend(asm::store32(slot + 8, 0)); // sector
    code.extend(asm::store32(slot + 16, 0xf000_0000)); // gpa (RAM is 16 MiB)
    code.extend(asm::store32(slot + 24, 512)); // len
    code.extend(asm::store32(slot + 28, 1)); // op = write
    code.extend(asm::store32(RING, 1)); // req_prod
    code.extend(notify_slot0());
    code.push(asm::HLT);
    let kernel = write_guest(dir.path(), "wild.elf", &code);
    let vm = Vm::start(
        "wild",
        &[
            "--memory",
            "16",
            "--kernel",
            &kernel,
            "--disk",
            &format!("file:{path},xvda,w"),
        ],
    );
    let info = wait_until(T, "the request to fail", || {
        let i = vm.info();
        (i.vbds[0].errors == 1).then_some(i)
    });
    assert!(!info.state.is_final(), "{info:?}");
    assert_eq!(info.vbds[0].wr_req, 0);
    assert!(std::fs::read(&path).unwrap().iter().all(|&b| b == 0));
}

#[test]
fn a_corrupt_ring_index_crashes_only_the_domain() {
    if !hypervisor::require_kvm() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = disk(dir.path(), "c.img", 64 * 1024);
    let mut code = asm::store32(RING, 1000); // req_prod far ahead of rsp_prod
    code.extend(notify_slot0());
    code.push(asm::HLT);
    let kernel = write_guest(dir.path(), "corrupt.elf", &code);
    let vm = Vm::start(
        "corrupt",
        &[
            "--memory",
            "16",
            "--kernel",
            &kernel,
            "--disk",
            &format!("file:{path},xvda,w"),
        ],
    );
    let info = vm.wait_state(RunState::Crashed, T);
    let reason = info.crash_reason.unwrap_or_default();
    assert!(
        reason.contains("vbd xvda: request producer 1000"),
        "{reason}"
    );
    // The VMM still answers and can be destroyed.
    assert_eq!(request(&vm, Request::Destroy), Reply::Ok(Payload::Done));
}

#[test]
fn an_o_direct_disk_round_trips() {
    if !hypervisor::require_kvm() {
        return;
    }
    // O_DIRECT needs a file system that supports it (not tmpfs): put the
    // image next to the test binary's target dir.
    let base = std::env::current_exe().unwrap();
    let dir = tempfile::tempdir_in(base.parent().unwrap()).unwrap();
    let path = disk(dir.path(), "direct.img", 1 << 20);
    let spec = format!("file:{path},xvda,w,direct");
    let (vm, mut con) = boot("direct", &["--disk", &spec]);
    run(
        &mut con,
        "blkwrite xvda 16 40 direct-io",
        "blkwrite: xvda wrote 40 sectors at 16",
    );
    run(
        &mut con,
        "blkverify xvda 16 40 direct-io",
        "blkverify: xvda 40 sectors at 16: ok",
    );
    let data = std::fs::read(&path).unwrap();
    assert_eq!(&data[16 * 512..17 * 512], &sector_of("direct-io")[..]);
    let v = &vm.info().vbds[0];
    assert_eq!((v.wr_sect, v.rd_sect, v.errors), (40, 40, 0), "{v:?}");
}
