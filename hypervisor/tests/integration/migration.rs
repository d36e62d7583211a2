//! Migration between two real `vmm` processes on this machine, with the real
//! minios on KVM: stop-and-copy and live (with a guest dirtying memory), and
//! failures (wrong token, a destination that dies mid-stream, a destination
//! that refuses the stream) that leave the domain running on the source.
use crate::common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

use crate::common::{Console, Dest, Vm, free_port, wait_until};
use hypervisor::control::client::VmmClient;
use hypervisor::control::proto::{MigrateInfo, Payload, Request, RunState};

/// Generous: minios runs under an emulating KVM here.
const T: Duration = Duration::from_secs(60);
const TOKEN: &str = "s3cret-token";

/// The uptime printed by `tick` number `n`.
#[track_caller]
fn tick(con: &mut Console, n: u64) -> f64 {
    let out = con.run("tick", &format!("tick {n} up "), T);
    let line = out
        .lines()
        .find(|l| l.starts_with("tick "))
        .unwrap()
        .to_string();
    let out = if line.ends_with(" s") {
        line
    } else {
        con.run("", " s\r\n", T)
            .lines()
            .next()
            .map(|rest| format!("{line}{rest}"))
            .unwrap()
    };
    out.trim_start_matches(&format!("tick {n} up "))
        .trim_end_matches(" s")
        .parse()
        .unwrap_or_else(|e| panic!("{out:?}: {e}"))
}

fn migrate(vm: &Vm, port: u16, token: &str, live: bool) -> Result<MigrateInfo, String> {
    let req = Request::Migrate {
        host: "127.0.0.1".into(),
        port,
        token: token.into(),
        live,
    };
    match VmmClient::connect(&vm.socket).unwrap().request(&req) {
        Ok(Payload::Migrated(info)) => Ok(info),
        Ok(other) => panic!("migrate replied {other:?}"),
        Err(e) => Err(e.to_string()),
    }
}

#[test]
fn stop_and_copy_moves_the_running_guest_to_the_destination() {
    if !hypervisor::require_kvm() {
        return;
    }
    let (mut vm, mut con) = common::boot("mover", 64, 2, T);
    tick(&mut con, 1);
    con.run("pattern write 8 77", "pattern: wrote 8 MiB", T);
    let up_before = tick(&mut con, 2);
    let dest = Dest::start(TOKEN, &[]);

    // A wrong token is refused; the destination keeps waiting for the
    // right source and the domain keeps running here.
    let err = migrate(&vm, dest.port, "wrong", false).unwrap_err();
    assert!(err.contains("wrong migration token"), "{err}");
    assert!(dest.alive());
    tick(&mut con, 3);

    let started = Instant::now();
    let info = migrate(&vm, dest.port, TOKEN, false).unwrap();
    assert!(!info.live);
    assert_eq!(info.rounds, 0);
    assert!(info.pages_sent >= 2048, "{info:?}");
    assert!(info.downtime_seconds > 0.0 && info.downtime_seconds <= info.total_seconds);
    vm.exits("the source VMM", T);

    let mut con = Console::attach(&dest.socket, true);
    // History moved with the domain.
    con.expect("tick 3 up", T);
    let up_after = tick(&mut con, 4);
    assert!(
        up_after >= up_before,
        "uptime went back: {up_before} -> {up_after}"
    );
    assert!(
        up_after <= up_before + started.elapsed().as_secs_f64() + 30.0,
        "uptime jumped: {up_before} -> {up_after}"
    );
    con.run("pattern check 8 77", "pattern: ok (8 MiB)", T);
    let i = VmmClient::connect(&dest.socket).unwrap().info().unwrap();
    assert_eq!((i.name.as_str(), i.domid), ("mover", 7));
    assert_eq!(i.vmm.pid as i32, dest.pid);
    let record = std::fs::read_to_string(dest.dir.path().join("dst.json")).unwrap();
    assert!(record.contains("\"mover\""), "{record}");
    assert!(
        dest.log().contains("migrated in from 127.0.0.1"),
        "{}",
        dest.log()
    );
}

#[test]
fn live_migration_copies_memory_a_busy_guest_keeps_writing() {
    if !hypervisor::require_kvm() {
        return;
    }
    let (mut vm, mut con) = common::boot("livebusy", 96, 2, T);
    tick(&mut con, 1);
    con.run("pattern write 16 5", "pattern: wrote 16 MiB", T);
    let dest = Dest::start(TOKEN, &[]);
    // Rewrite 48 MiB with another seed while the migration runs: the guest
    // dirties pages the first pass has already sent.
    con.send("pattern write 48 6\n");
    con.expect("pattern write 48 6\r\n", T);
    let info = migrate(&vm, dest.port, TOKEN, true).unwrap();
    assert!(info.live);
    // The guest dirtied pages while the first pass ran: at least one more
    // round went out before the pause, and the final round was smaller.
    assert!(info.rounds >= 1, "{info:?}");
    assert!(info.final_pages < info.pages_sent, "{info:?}");
    assert!(info.downtime_seconds <= info.total_seconds);
    vm.exits("the source VMM", T);

    let mut con = Console::attach(&dest.socket, true);
    con.expect("pattern: wrote 48 MiB with seed 6", T);
    // Reading 48 MiB faults in every page the stream filled: one run on a
    // loaded host finished the check correctly after 22 s of vCPU time and
    // more than T of wall time, so this step gets a longer deadline.
    con.run(
        "pattern check 48 6",
        "pattern: ok (48 MiB)",
        Duration::from_secs(240),
    );
    tick(&mut con, 2);
}

#[test]
fn a_paused_domain_migrates_and_stays_paused() {
    if !hypervisor::require_kvm() {
        return;
    }
    let (mut vm, mut con) = common::boot("pausedmove", 32, 2, T);
    tick(&mut con, 1);
    vm.client().request(&Request::Pause).unwrap();
    let dest = Dest::start(TOKEN, &[]);
    let info = migrate(&vm, dest.port, TOKEN, true).unwrap();
    assert!(!info.live, "a paused domain needs no pre-copy");
    vm.exits("the source VMM", T);
    let mut c = VmmClient::connect(&dest.socket).unwrap();
    assert_eq!(c.info().unwrap().state, RunState::Paused);
    c.request(&Request::Unpause).unwrap();
    let mut con = Console::attach(&dest.socket, false);
    tick(&mut con, 2);
}

/// Read a whole image stream (header, records up to and including the end
/// record) from a reader.
trait ReadFramed {
    fn read_to_end_framed(&mut self, out: &mut Vec<u8>);
}

impl<R: Read> ReadFramed for R {
    fn read_to_end_framed(&mut self, out: &mut Vec<u8>) {
        let mut take = |n: usize, out: &mut Vec<u8>| -> Vec<u8> {
            let mut b = vec![0u8; n];
            self.read_exact(&mut b).unwrap();
            out.extend_from_slice(&b);
            b
        };
        take(32, out);
        loop {
            let head = take(12, out);
            let len = u64::from_le_bytes(head[4..12].try_into().unwrap()) as usize;
            take(len, out);
            if &head[..4] == b"END " {
                return;
            }
        }
    }
}

/// A destination that accepts the token, reads `take` bytes of the stream,
/// then does `end` (drop the connection, or answer an error line).
fn fake_destination(
    take: usize,
    answer: Option<&'static str>,
) -> (u16, std::thread::JoinHandle<usize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let t = std::thread::spawn(move || {
        let (conn, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(conn.try_clone().unwrap());
        let mut greeting = String::new();
        reader.read_line(&mut greeting).unwrap();
        assert!(greeting.starts_with("XENRMIGRATE 1 "), "{greeting:?}");
        let mut w = conn.try_clone().unwrap();
        w.write_all(b"ok\n").unwrap();
        let mut got = 0;
        let mut buf = vec![0u8; 65536];
        while got < take {
            match reader.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(k) => got += k,
            }
        }
        if let Some(line) = answer {
            // Follow the framing to the end record, then refuse the stream.
            let mut rest = Vec::new();
            reader.read_to_end_framed(&mut rest);
            got += rest.len();
            w.write_all(line.as_bytes()).unwrap();
        }
        // Dropping the connection here is the destination dying.
        got
    });
    (port, t)
}

#[test]
fn failed_migrations_leave_the_domain_running_on_the_source() {
    if !hypervisor::require_kvm() {
        return;
    }
    let (vm, mut con) = common::boot("survivor", 64, 2, T);
    tick(&mut con, 1);
    con.run("pattern write 16 3", "pattern: wrote 16 MiB", T);

    // Nobody listening.
    let err = migrate(&vm, free_port(), TOKEN, false).unwrap_err();
    assert!(err.contains("cannot connect to 127.0.0.1:"), "{err}");
    tick(&mut con, 2);

    // The destination dies 1 MiB into the stream (stop-and-copy, then live).
    for (n, live) in [(3, false), (4, true)] {
        let (port, dest) = fake_destination(1 << 20, None);
        let err = migrate(&vm, port, TOKEN, live).unwrap_err();
        assert!(
            err.contains("connection to the other VMM failed") || err.contains("unexpected reply"),
            "{err}"
        );
        assert!(dest.join().unwrap() >= 1 << 20);
        assert_ne!(vm.info().state, RunState::Paused);
        tick(&mut con, n);
    }

    // The destination reads everything, then refuses it.
    let (port, dest) = fake_destination(0, Some("error: no room here\n"));
    let err = migrate(&vm, port, TOKEN, false).unwrap_err();
    assert!(err.contains("the destination said: no room here"), "{err}");
    dest.join().unwrap();
    tick(&mut con, 5);
    con.run("pattern check 16 3", "pattern: ok", T);
    assert!(
        vm.log().contains("failed; the domain runs on here"),
        "{}",
        vm.log()
    );
}

#[test]
fn a_destination_refuses_a_broken_stream_and_removes_its_socket() {
    if !hypervisor::require_kvm() {
        return;
    }
    let dest = Dest::start(TOKEN, &[]);
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", dest.port)).unwrap();
    conn.write_all(format!("XENRMIGRATE 1 {TOKEN}\n").as_bytes())
        .unwrap();
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert_eq!(line, "ok\n");
    conn.write_all(b"NOTANIMAGE-AT-ALL-NOT-EVEN-CLOSE\n")
        .unwrap();
    line.clear();
    reader.read_line(&mut line).unwrap();
    assert!(
        line.starts_with("error: ") && line.contains("not a domain image"),
        "{line:?}"
    );
    wait_until(T, "the destination to exit", || {
        (!dest.alive()).then_some(())
    });
    assert!(!dest.socket.exists());
    assert!(!dest.dir.path().join("dst.json").exists());
}

#[test]
fn while_a_migration_holds_the_domain_it_cannot_be_unpaused_or_moved_twice() {
    if !hypervisor::require_kvm() {
        return;
    }
    let (vm, mut con) = common::boot("held", 64, 2, T);
    con.run("pattern write 16 4", "pattern: wrote 16 MiB", T);
    // A destination that takes the token and then stops reading.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (release, released) = std::sync::mpsc::channel::<()>();
    let stalled = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut greeting = [0u8; 64];
        let _ = conn.read(&mut greeting).unwrap();
        conn.write_all(b"ok\n").unwrap();
        released.recv().unwrap();
        // Dropping the connection with unread data: the source sees a reset.
    });
    let socket = vm.socket.clone();
    let mover = std::thread::spawn(move || {
        let req = Request::Migrate {
            host: "127.0.0.1".into(),
            port,
            token: TOKEN.into(),
            live: false,
        };
        VmmClient::connect(&socket).unwrap().request(&req)
    });
    // Stop-and-copy pauses first, then blocks writing 16 MiB nobody reads.
    wait_until(T, "the migration to pause the domain", || {
        (vm.info().state == RunState::Paused).then_some(())
    });
    let mut c = vm.client();
    let err = c.request(&Request::Unpause).unwrap_err().to_string();
    assert!(err.contains("cannot be unpaused now"), "{err}");
    let err = migrate(&vm, port, TOKEN, false).unwrap_err();
    assert!(err.contains("already under way"), "{err}");
    let err = c
        .request(&Request::Save {
            path: "/tmp/never.img".into(),
        })
        .unwrap_err()
        .to_string();
    assert!(err.contains("already under way"), "{err}");

    release.send(()).unwrap();
    stalled.join().unwrap();
    let reply = mover.join().unwrap();
    assert!(reply.is_err(), "{reply:?}");
    wait_until(T, "the domain to run again", || {
        (vm.info().state != RunState::Paused).then_some(())
    });
    con.run("pattern check 16 4", "pattern: ok", T);
}

/// Every `count N up S s` line in `text`, in order.
fn count_lines(text: &str) -> Vec<(u64, f64)> {
    text.lines()
        .filter_map(|l| {
            let rest = l.trim().strip_prefix("count ")?;
            let (n, up) = rest.split_once(" up ")?;
            Some((n.parse().ok()?, up.strip_suffix(" s")?.parse().ok()?))
        })
        .collect()
}

#[test]
fn a_counting_guest_keeps_counting_across_a_live_migration() {
    if !hypervisor::require_kvm() {
        return;
    }
    let (mut vm, mut con) = common::boot("counter", 32, 2, T);
    con.run("count", "count 3 up ", T);
    let dest = Dest::start(TOKEN, &[]);
    let info = migrate(&vm, dest.port, TOKEN, true).unwrap();
    assert!(info.live);
    vm.exits("the source VMM", T);
    let last_here = count_lines(&con.text()).last().map_or(0, |c| c.0);

    // The count goes on at the destination, then Ctrl-C stops it there.
    let mut con = Console::attach(&dest.socket, true);
    con.expect(&format!("count {} up ", last_here + 3), T);
    con.send("\x03");
    con.expect("count: stopped at ", T);
    let counts = count_lines(&con.text());
    assert!(counts.len() as u64 >= last_here + 3, "{counts:?}");
    for (i, pair) in counts.windows(2).enumerate() {
        assert_eq!(
            pair[1].0,
            pair[0].0 + 1,
            "count skipped or restarted at {i}: {counts:?}"
        );
        assert!(
            pair[1].1 >= pair[0].1,
            "uptime went back at {i}: {counts:?}"
        );
    }
    assert_eq!(counts[0].0, 1, "{counts:?}");
}

#[test]
fn a_domain_with_a_disk_migrates_and_its_data_and_ring_follow() {
    if !hypervisor::require_kvm() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let disk = dir.path().join("d.img");
    std::fs::write(&disk, vec![0u8; 1 << 20]).unwrap();
    let spec = format!("file:{},xvda,w", disk.display());
    let mut vm = Vm::start("diskmove", &["--memory", "32", "--disk", &spec]);
    let mut con = Console::attach(&vm.socket, true);
    con.expect("minios@diskmove# ", T);
    con.blkwrite("xvda", 8, 16, "moving-disk", T);

    // The source still holds its exclusive lock while it hands over: a
    // destination asking for `w` is refused and the domain stays here.
    let dest = Dest::start(TOKEN, &["--disk", &spec]);
    let err = migrate(&vm, dest.port, TOKEN, true).unwrap_err();
    assert!(err.contains("is in use by another domain"), "{err}");
    assert_ne!(vm.info().state, RunState::Paused);
    con.blkverify("xvda", 8, 16, "moving-disk", T);

    // On the same host the destination takes it over with `w!` (the source
    // is paused, so their writes never overlap).
    let shared = format!("file:{},xvda,w!", disk.display());
    let dest = Dest::start(TOKEN, &["--disk", &shared]);
    migrate(&vm, dest.port, TOKEN, true).unwrap();
    vm.exits("the source VMM", T);
    let mut con = Console::attach(&dest.socket, false);
    con.blkverify("xvda", 8, 16, "moving-disk", T);
    con.blkwrite("xvda", 200, 2, "arrived", T);
    let data = std::fs::read(&disk).unwrap();
    assert_eq!(&data[200 * 512..200 * 512 + 7], b"arrived");
}
