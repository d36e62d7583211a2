#!/usr/bin/env python3
"""Jail cost: `vmm --detach` start to the minios prompt, jailed vs unjailed,
and the VMM's RSS at the prompt. Run as root on a host with /dev/kvm:
    cargo build -p hypervisor --bin vmm && python3 hypervisor/benches/jail_start.py [RUNS]
Runs alternate between the two modes (so load changes hit both alike) and
the medians of RUNS (default 9) per mode are printed, with the load average
before and after, and the time the VMM logs for the jail's own steps ("jailed: ... (X ms; set-up
before the build Y ms)": namespaces, capability bounding set and the filters
compiled before the build; root swap, uid/gid drop and filter on the main
thread after it)."""
import json, os, re, socket, statistics, subprocess, sys, tempfile, time

VMM = os.environ.get("VMM", "target/debug/vmm")
RUNS = int(sys.argv[1]) if len(sys.argv) > 1 else 9


def one(jailed, i):
    d = tempfile.mkdtemp(prefix="jailbench")
    sock = f"{d}/s.sock"
    domid = 900 + 2 * i + jailed
    args = [VMM, "--detach", "--name", "b", "--domid", str(domid), "--memory", "16",
            "--socket", sock, "--record", f"{d}/r.json", "--log", f"{d}/log"]
    if jailed:
        args += ["--jail-dir", f"{d}/jail", "--jail-uid", str(290000 + domid),
                 "--jail-gid", str(290000 + domid)]
    t0 = time.monotonic()
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL)
    ready = time.monotonic() - t0
    s = socket.socket(socket.AF_UNIX)
    s.connect(sock)
    s.sendall(b'{"op":"console","history":true}\n')
    seen = b""
    while not seen.endswith(b"# "):
        seen += s.recv(4096)
    prompt = time.monotonic() - t0
    pid = json.load(open(f"{d}/r.json"))["pid"]
    rss = int(open(f"/proc/{pid}/status").read().split("VmRSS:")[1].split()[0])
    c = socket.socket(socket.AF_UNIX)
    c.connect(sock)
    c.sendall(b'{"op":"destroy"}\n')
    c.recv(100)
    deadline = time.monotonic() + 30
    while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
        time.sleep(0.01)
    m = re.search(r"seccomp on \(([0-9.]+) ms; set-up before the build ([0-9.]+) ms\)",
                  open(f"{d}/log").read())
    subprocess.run(["rm", "-rf", d])
    return ready, prompt, rss, (float(m.group(1)) + float(m.group(2))) if m else None


load0 = open("/proc/loadavg").read().split()[:3]
res = {False: [], True: []}
for i in range(RUNS):
    for jailed in (False, True):
        res[jailed].append(one(jailed, i))
load1 = open("/proc/loadavg").read().split()[:3]
print(f"{RUNS} runs each, alternating; load average {' '.join(load0)} before, {' '.join(load1)} after")
for jailed in (False, True):
    r = res[jailed]
    line = (f"{'jailed  ' if jailed else 'unjailed'}: ready {statistics.median(x[0] for x in r)*1000:.1f} ms, "
            f"prompt {statistics.median(x[1] for x in r)*1000:.1f} ms, RSS {statistics.median(x[2] for x in r)} KiB")
    if jailed and all(x[3] is not None for x in r):
        line += f", in the jail's own steps {statistics.median(x[3] for x in r):.2f} ms"
    print(line)
u, j = res[False], res[True]
print(f"jail adds (median of pairwise differences): ready "
      f"{statistics.median(b[0]-a[0] for a, b in zip(u, j))*1000:+.1f} ms, prompt "
      f"{statistics.median(b[1]-a[1] for a, b in zip(u, j))*1000:+.1f} ms, RSS "
      f"{statistics.median(b[2]-a[2] for a, b in zip(u, j)):+.0f} KiB")
