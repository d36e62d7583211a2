//! xtop-bench: how much xtop costs per refresh, how much memory it holds, and
//! how long a key press takes to become a request. No timing is asserted.
//!
//! ```text
//! xtop-bench [-H URL] [--create N] [--domains N] [--iterations K]
//! ```
//! - Without `-H`: a synthetic snapshot of `--domains` domains (default 500)
//!   in the API's JSON shape; "collect" is JSON decode + rates + history.
//! - With `-H URL`: the real bulk endpoint of that xend ("collect" includes the
//!   HTTP request); `--create N` first tops it up to N minios domains (16 MiB,
//!   named `bench-I`) and destroys them at the end.
//!
//! Rendering goes through ratatui's crossterm backend into a sink (200x60), so
//! it includes the diff and the escape sequences a terminal would get.
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::backend::CrosstermBackend;
use ratatui::layout::Rect;
use ratatui::{Terminal, TerminalOptions, Viewport};
use xend::api::{DomainStats, NetStats, NodeInfo, SampleTime, Snapshot, VbdStats, VcpuStats};
use xend::client::Client;
use xtop::app::{App, Effect, Options};
use xtop::keymap::Keymap;
use xtop::model::Store;
use xtop::settings::Settings;
use xtop::theme::{ColorDepth, Theme};

#[derive(Parser, Debug)]
struct Args {
    /// Measure against this xend instead of synthetic data.
    #[arg(short = 'H', long = "host")]
    host: Option<String>,
    /// With -H: create minios domains until there are N (destroyed afterwards).
    #[arg(long)]
    create: Option<usize>,
    /// Synthetic domains.
    #[arg(long, default_value_t = 500)]
    domains: usize,
    /// Refreshes to measure.
    #[arg(long, default_value_t = 200)]
    iterations: usize,
}

/// User + system CPU time of this process, from /proc/self/stat.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = f.get(11).and_then(|u| u.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0);
    Duration::from_secs_f64(ticks as f64 / 100.0)
}

fn status_kib(key: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

fn synthetic(n: usize, t: f64) -> Snapshot {
    let dom = |i: usize| DomainStats {
        id: i as u32,
        name: if i == 0 {
            "Domain-0".into()
        } else {
            format!("guest-{i:04}")
        },
        memory: 16,
        maxmem: 16,
        state: if i.is_multiple_of(7) {
            "r-----".into()
        } else {
            "-b----".into()
        },
        cpu_time: t * (i % 5) as f64 * 0.01,
        up_time: t,
        vcpus: 1,
        vcpu_info: vec![VcpuStats {
            id: 0,
            cpu_time: t * 0.01,
            state: "blocked".into(),
            affinity: vec![],
            cpu: Some(i % 2),
        }],
        mem_kib: 16384,
        maxmem_kib: 16384,
        console_port: Some(9600 + i as u16),
        restart: "onreboot".into(),
        nets: vec![NetStats {
            vifname: format!("vif{i}.0"),
            tx_bytes: (t * 100.0) as u64,
            ..Default::default()
        }],
        vbds: vec![VbdStats {
            dev: "xvda".into(),
            rd_sect: (t * 8.0) as u64,
            ..Default::default()
        }],
        // Stamped like a VMM's sample (Domain-0 has none), so rates take
        // the path they take against a real xend.
        sampled_at: (i != 0).then_some(SampleTime { mono: t, wall: t }),
        ..Default::default()
    };
    Snapshot {
        time: t,
        xend_version: "bench".into(),
        node: NodeInfo {
            nr_cpus: 2,
            memory: 24000,
            free_memory: 16000,
            cpu_mhz: 2600,
            ..Default::default()
        },
        domains: (0..n).map(dom).collect(),
    }
}

fn new_app() -> anyhow::Result<App> {
    let opts = Options {
        readonly: false,
        external_editor: None,
        escape: 0x1d,
        escape_label: "Ctrl-]".into(),
        settings_path: None,
        theme_name: "dark".into(),
    };
    Ok(App::new(
        Store::new([("bench".to_owned(), "http://bench".to_owned())]),
        Keymap::new(&BTreeMap::new(), false)?,
        Theme::load("dark", ColorDepth::Ansi256)?,
        opts,
        Settings::default(),
    ))
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let client = args
        .host
        .as_deref()
        .map(|h| {
            Client::connect(&xend::client::ClientOptions {
                url: Some(h.to_owned()),
                ..Default::default()
            })
        })
        .transpose()?;
    let mut created = Vec::new();
    if let (Some(c), Some(n)) = (&client, args.create) {
        let have = rt.block_on(c.snapshot())?.domains.len() - 1;
        let start = Instant::now();
        for i in have..n {
            let name = format!("bench-{i}");
            rt.block_on(c.create(&format!("(vm (name {name}) (memory 16) (image (minios)))")))
                .with_context(|| format!("creating {name}"))?;
            created.push(name);
        }
        println!(
            "created {} domains in {:.1} s",
            created.len(),
            start.elapsed().as_secs_f64()
        );
    }

    let mut app = new_app()?;
    let backend = CrosstermBackend::new(std::io::sink());
    let mut term = Terminal::with_options(
        backend,
        TerminalOptions {
            viewport: Viewport::Fixed(Rect::new(0, 0, 200, 60)),
        },
    )?;
    let rss_before = status_kib("VmRSS:");

    // Collect + render, one refresh at a time.
    let mut collect = Duration::ZERO;
    let mut render = Duration::ZERO;
    let (mut cpu_collect, mut cpu_render) = (Duration::ZERO, Duration::ZERO);
    let mut n_domains = 0;
    for i in 0..args.iterations {
        let bytes = match &client {
            Some(_) => Vec::new(),
            None => serde_json::to_vec(&synthetic(args.domains, 1000.0 + i as f64))?,
        };
        let (c0, w0) = (cpu_time(), Instant::now());
        let snap = match &client {
            Some(c) => rt.block_on(c.snapshot())?,
            None => serde_json::from_slice::<Snapshot>(&bytes)?,
        };
        n_domains = snap.domains.len();
        app.on_snapshot(0, Ok(snap));
        let (c1, w1) = (cpu_time(), Instant::now());
        let mut layout = None;
        term.draw(|f| layout = Some(xtop::ui::draw(f, &app)))?;
        if let Some(l) = layout {
            app.on_layout(l);
        }
        let (c2, w2) = (cpu_time(), Instant::now());
        collect += w1 - w0;
        render += w2 - w1;
        cpu_collect += c1.saturating_sub(c0);
        cpu_render += c2.saturating_sub(c1);
    }
    let k = args.iterations as u32;
    let source = if client.is_some() {
        "live xend (HTTP + JSON decode)"
    } else {
        "synthetic (JSON decode)"
    };
    println!("refresh with {n_domains} domains, {source}, {k} refreshes, 200x60 screen:");
    println!(
        "  collect (fetch, decode, rates, history): wall {} / refresh, CPU {} / refresh",
        ms(collect / k),
        ms(cpu_collect / k)
    );
    println!(
        "  render (layout, sort, diff, escapes):    wall {} / refresh, CPU {} / refresh",
        ms(render / k),
        ms(cpu_render / k)
    );
    println!(
        "  total CPU per refresh: {}",
        ms((cpu_collect + cpu_render) / k)
    );
    println!(
        "  resident memory: {} KiB now, {} KiB peak (was {} KiB before the first refresh)",
        status_kib("VmRSS:"),
        status_kib("VmHWM:"),
        rss_before
    );

    // Key press to request: a listener stamps when each request arrives.
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let (tx, rx) = mpsc::channel::<Instant>();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut rd = BufReader::new(conn.try_clone().unwrap());
                let mut wr = conn;
                loop {
                    let mut line = String::new();
                    if rd.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let _ = tx.send(Instant::now());
                    let mut len = 0usize;
                    loop {
                        let mut h = String::new();
                        if rd.read_line(&mut h).unwrap_or(0) == 0 {
                            return;
                        }
                        if h == "\r\n" {
                            break;
                        }
                        if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                            len = v.trim().parse().unwrap_or(0);
                        }
                    }
                    let mut body = vec![0u8; len];
                    let _ = rd.read_exact(&mut body);
                    let _ = wr.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
                }
            });
        }
    });
    let stub = Client::new(&format!("http://127.0.0.1:{port}"), None)?;
    let mut lat = Vec::new();
    let p = KeyEvent::new(KeyCode::Char('p'), KeyModifiers::NONE);
    for _ in 0..200 {
        let t0 = Instant::now();
        app.on_key(p);
        for e in app.take_effects() {
            if let Effect::Op { target, op } = e {
                let stub = stub.clone();
                rt.spawn(async move { xtop::effects::do_op(&stub, &target.name, op).await });
            }
        }
        let arrived = rx
            .recv_timeout(Duration::from_secs(5))
            .context("no request arrived")?;
        lat.push(arrived - t0);
        app.pending = 0;
    }
    lat.sort();
    println!(
        "key press to request on the wire (p toggles pause, {} domains loaded): p50 {}, p99 {}, max {}",
        n_domains,
        ms(pct(&lat, 0.5)),
        ms(pct(&lat, 0.99)),
        ms(*lat.last().unwrap())
    );

    if let Some(c) = &client {
        // Key press to xend's answer, against the real xend (pause/unpause a real domain).
        let target = rt
            .block_on(c.snapshot())?
            .domains
            .iter()
            .find(|d| d.id != 0)
            .map(|d| d.name.clone());
        if let Some(name) = target {
            let mut rtt = Vec::new();
            for i in 0..40 {
                let t0 = Instant::now();
                let r = if i % 2 == 0 {
                    rt.block_on(c.pause(&name))
                } else {
                    rt.block_on(c.unpause(&name))
                };
                r?;
                rtt.push(t0.elapsed());
            }
            rtt.sort();
            println!(
                "pause/unpause round trip to the real xend ({name}): p50 {}, p99 {}",
                ms(pct(&rtt, 0.5)),
                ms(pct(&rtt, 0.99))
            );
        }
        for name in &created {
            let _ = rt.block_on(c.destroy(name));
        }
    }
    Ok(())
}
