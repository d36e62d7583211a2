#!/usr/bin/env python3
"""Jail cost: `vmm --detach` start to the minios prompt, jailed vs unjailed,
and the VMM's RSS at the prompt. Run as root on a host with /dev/kvm:
    cargo build -p hypervisor --bin vmm && python3 hypervisor/benches/jail_start.py [RUNS]
Prints the median of RUNS (default 9) per mode."""
import json, os, socket, statistics, subprocess, sys, tempfile, time

VMM = os.environ.get("VMM", "target/debug/vmm")
RUNS = int(sys.argv[1]) if len(sys.argv) > 1 else 9


def one(jailed, i):
    d = tempfile.mkdtemp(prefix="jailbench")
    sock = f"{d}/s.sock"
    args = [VMM, "--detach", "--name", "b", "--domid", str(900 + i), "--memory", "16",
            "--socket", sock, "--record", f"{d}/r.json", "--log", f"{d}/log"]
    if jailed:
        args += ["--jail-dir", f"{d}/jail", "--jail-uid", str(290000 + i), "--jail-gid", str(290000 + i)]
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
    while os.path.exists(f"/proc/{pid}"):
        time.sleep(0.01)
    subprocess.run(["rm", "-rf", d])
    return ready, prompt, rss


for jailed in (False, True):
    r = [one(jailed, i) for i in range(RUNS)]
    print(f"{'jailed  ' if jailed else 'unjailed'}: ready {statistics.median(x[0] for x in r)*1000:.1f} ms, "
          f"prompt {statistics.median(x[1] for x in r)*1000:.1f} ms, RSS {statistics.median(x[2] for x in r)} KiB")
