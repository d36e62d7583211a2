//! Throughput of the reader, writer and pretty printer on what xend serves most:
//! the bulk stats reply with N domain sxprs (reference section 2 shape).
//! Run: `cargo bench -p sxp`. Prints the median of 31 runs per case.

use std::time::{Duration, Instant};

use sxp::{Value, parse, pretty};

fn domain(id: u32) -> Value {
    parse(&format!(
        "(domain (id {id}) (name guest{id}) (memory 63) (maxmem 64) (state -b---) (cpu 0) \
         (cpu_time 2.996813645) (up_time 1234.56789012) (start_time 1104537600.12) \
         (console (status listening) (id 13) (domain {id}) (local_port 13) (remote_port 1) (console_port {})) \
         (devices (vif (idx 0) (vif 0) (mac aa:00:00:12:34:56) (vifname vif{id}.0) (bridge xen-br0))) \
         (config (vm (name guest{id}) (memory 64) (image (linux (kernel /boot/vmlinuz) (root '/dev/sda1 ro'))) \
         (device (vbd (uname file:/x) (dev sda1) (mode w))))))",
        9600 + id
    ))
    .expect("the sample domain sxpr reads")
}

fn median(mut f: impl FnMut()) -> Duration {
    let mut times: Vec<Duration> = (0..31)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    times.sort();
    times[times.len() / 2]
}

fn main() {
    for n in [1u32, 100, 500] {
        let snapshot =
            Value::list(std::iter::once(Value::str("domains")).chain((0..n).map(domain)));
        let compact = snapshot.to_string();
        let pretty_text = pretty(&snapshot);
        let show = median(|| {
            std::hint::black_box(snapshot.to_string());
        });
        let pp = median(|| {
            std::hint::black_box(pretty(&snapshot));
        });
        let read = median(|| {
            std::hint::black_box(parse(&compact).unwrap());
        });
        println!(
            "{n:>4} domains ({:>7} bytes compact, {:>7} pretty): show {:>9.1?}  pretty {:>9.1?}  parse {:>9.1?}",
            compact.len(),
            pretty_text.len(),
            show,
            pp,
            read
        );
    }
}
