//! Console benchmarks against a real xend and a real minios domain.
//!
//! ```text
//! cargo build --release --workspace --bins
//! cargo bench -p console-client --bench console
//! ```
//!
//! - keystroke round trip: type one character and wait for minios to echo it,
//!   through xend's console bridge, the VMM's console ring and the guest shell
//!   and back; once with the library on a TCP socket, once with the `xencons`
//!   binary in a pseudo-terminal (what a person sees). p50, p99, mean.
//! - throughput guest -> client: minios's `spew KIB` prints KIB KiB of text;
//!   bytes received over wall time, from sending the command until
//!   `spew: done` and the prompt arrive (console ring -> VMM -> xend -> TCP).
#[path = "../tests/client/support/pty.rs"]
mod pty;

use std::time::{Duration, Instant};

use console_client::{ConnectOptions, Console};

const ROUND_TRIPS: usize = 400;
/// KiB of text `spew` prints for the throughput run.
const SPEW_KIB: u64 = 16 * 1024;
const T: Duration = Duration::from_secs(60);

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn report(what: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let mean = samples.iter().sum::<Duration>() / samples.len() as u32;
    println!(
        "{what:<44} n={:<5} p50={:>8.3} ms  p99={:>8.3} ms  mean={:>8.3} ms  max={:>8.3} ms",
        samples.len(),
        percentile(&samples, 0.50).as_secs_f64() * 1e3,
        percentile(&samples, 0.99).as_secs_f64() * 1e3,
        mean.as_secs_f64() * 1e3,
        samples.last().unwrap().as_secs_f64() * 1e3,
    );
}

/// Sends a command and waits for its output and the next prompt.
fn sync(con: &mut Console, prompt: &str, tag: &str) {
    con.send(format!("echo {tag}\n").as_bytes()).unwrap();
    con.expect(format!("{tag}\r\n{prompt}").as_bytes(), T)
        .unwrap_or_else(|e| panic!("{e}"));
}

fn keystrokes_library(con: &mut Console, prompt: &str) {
    let mut samples = Vec::with_capacity(ROUND_TRIPS);
    for i in 0..ROUND_TRIPS {
        let c = b'a' + (i % 26) as u8;
        let start = Instant::now();
        con.send(&[c]).unwrap();
        con.expect(&[c], T).unwrap();
        samples.push(start.elapsed());
        if i % 200 == 199 {
            // Ctrl-U drops the line before minios's 256-byte limit.
            con.send(b"\x15").unwrap();
            con.expect(prompt.as_bytes(), T).unwrap();
        }
    }
    con.send(b"\x15").unwrap();
    con.expect(prompt.as_bytes(), T).unwrap();
    report("keystroke round trip (library, TCP)", samples);
}

fn throughput(con: &mut Console, prompt: &str) {
    let start = Instant::now();
    con.send(format!("spew {SPEW_KIB}\n").as_bytes()).unwrap();
    let bytes = con
        .expect(format!("spew: done\r\n{prompt}").as_bytes(), T)
        .unwrap()
        .len();
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{:<44} {bytes} bytes in {secs:.3} s = {:.2} MB/s",
        format!("throughput guest -> client (spew {SPEW_KIB})"),
        bytes as f64 / secs / 1e6,
    );
}

fn keystrokes_xencons(port: u16, token: &str, prompt: &str) {
    let mut term = pty::Pty::open();
    let xencons = e2e::bin("xencons");
    let mut child = term.spawn(
        xencons.to_str().unwrap(),
        &["--token", token, "127.0.0.1", &port.to_string()],
    );
    let mut at = term.wait_for("TO QUIT", T);
    term.type_bytes(b"echo ready\r");
    at = term.wait_for_from(at, &format!("ready\r\n{prompt}"), T);
    let mut samples = Vec::with_capacity(ROUND_TRIPS);
    for i in 0..ROUND_TRIPS {
        let c = (b'a' + (i % 26) as u8) as char;
        let start = Instant::now();
        term.type_bytes(&[c as u8]);
        at = term.wait_for_from(at, &c.to_string(), T);
        samples.push(start.elapsed());
        if i % 200 == 199 {
            term.type_bytes(b"\x15");
            at = term.wait_for_from(at, prompt, T);
        }
    }
    term.type_bytes(b"\x1d");
    term.wait_for_from(at, "REMOTE CONSOLE EXITED", T);
    pty::wait_exit(&mut child, T);
    report("keystroke round trip (xencons in a pty)", samples);
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` runs this too: be quick then.
    if !std::env::args().any(|a| a == "--bench") {
        println!("console bench: run with `cargo bench -p console-client --bench console`");
        return;
    }
    if let Err(why) = hypervisor::kvm_usable() {
        println!("console bench skipped: needs /dev/kvm: {why}");
        return;
    }
    let xend = e2e::Xend::start();
    let dom = xend.create("(vm (name bench) (memory 16) (image (minios)))");
    let prompt = format!("minios@{}# ", dom.name);
    let port = xend.console_port(dom.id);
    let opts = ConnectOptions {
        token: xend.token().map(str::to_string),
        ..ConnectOptions::default()
    };
    let mut con = Console::connect("127.0.0.1", port, &opts).unwrap();
    con.expect(prompt.as_bytes(), T).unwrap();
    sync(&mut con, &prompt, "warm");
    keystrokes_library(&mut con, &prompt);
    throughput(&mut con, &prompt);
    drop(con);
    // One client at a time: wait until xend has seen this one go.
    e2e::wait_for(T, "the console to be free", || {
        xend.get(&format!("/xend/console/{port}"))
            .body
            .contains("(status listening)")
    });
    keystrokes_xencons(port, xend.token().unwrap_or_default(), &prompt);
}
