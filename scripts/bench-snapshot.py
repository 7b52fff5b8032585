#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Snapshot benchmark: strata against QEMU (Debian's qemu-system-x86, -M
microvm, -cpu host,-arch-capabilities: PVM refuses that MSR) on the same
tiny PVH guest (tests/migration/dirty.c, idle: a counter), side by side in
one run, alternating.

strata saves with QMP migrate file:PATH and restores with --restore PATH;
QEMU saves with migrate "exec:cat > FILE" and restores with -incoming
"exec:cat FILE" (max-bandwidth raised to 64 GiB/s for QEMU's save, as
libvirt does for a save to file; strata's RAM writes have no cap).

Per guest size: save of a stopped VM, live save (and its downtime), file
size (apparent / allocated), and the time from exec to `query-status`
answering "running" after a restore (the control socket polled every
0.2 ms), with the fastest and slowest restore of each.  For 256 MiB also
the sum of PSS of 10 strata clones restored from one file against 10
cold-booted strata.  Medians of ROUNDS runs, ratios strata/QEMU.

Usage: scripts/bench-snapshot.py [ROUNDS] [SIZES]   (default 3 256M,4G;
needs build/ with tests/migration built)
"""
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STRATA = os.path.join(REPO, "build/vmm/strata")
ELF = os.path.join(REPO, "build/tests/migration/mig-idle.elf")
QEMU = shutil.which("qemu-system-x86_64")


class Qmp:
    def __init__(self, path, timeout=30.0):
        t_end = time.monotonic() + timeout
        while True:
            try:
                self.s = socket.socket(socket.AF_UNIX)
                self.s.connect(path)
                break
            except OSError:
                self.s.close()
                if time.monotonic() > t_end:
                    raise
                time.sleep(0.0002)
        self.f = self.s.makefile("rw")
        self.f.readline()
        self.cmd("qmp_capabilities")

    def cmd(self, name, args=None):
        msg = {"execute": name}
        if args is not None:
            msg["arguments"] = args
        self.f.write(json.dumps(msg) + "\n")
        self.f.flush()
        while True:
            r = json.loads(self.f.readline())
            if "event" in r:
                continue
            if "error" in r:
                raise RuntimeError(f"{name}: {r['error']}")
            return r["return"]

    def close(self):
        self.s.close()


def spawn(vmm, w, name, mem, extra):
    sock = os.path.join(w, name + ".qmp")
    log = open(os.path.join(w, name + ".log"), "w")
    if vmm == "strata":
        argv = [STRATA, "run", "--kernel", ELF, "--test-device", "--serial", "none",
                "--memory", mem, "--api-socket", sock] + extra
    else:
        argv = [QEMU, "-accel", "kvm", "-cpu", "host,-arch-capabilities", "-M", "microvm",
                "-m", mem, "-nodefaults", "-no-user-config", "-display", "none",
                "-kernel", ELF, "-qmp", f"unix:{sock},server=on,wait=off"] + extra
    return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT), sock


def stop(p):
    p.terminate()
    try:
        p.wait(10)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def wait_done(q):
    while True:
        r = q.cmd("query-migrate")
        if r.get("status") in ("completed", "failed", "cancelled"):
            if r["status"] != "completed":
                raise RuntimeError(f"save: {r}")
            return r
        time.sleep(0.002)


def save(vmm, q, path, live):
    if not live:
        q.cmd("stop")
    uri = f"file:{path}" if vmm == "strata" else f"exec:cat > {path}"
    if vmm == "qemu":
        q.cmd("migrate-set-parameters", {"max-bandwidth": 64 << 30})
    t0 = time.monotonic()
    q.cmd("migrate", {"uri": uri})
    r = wait_done(q)
    dt = (time.monotonic() - t0) * 1000
    if not live:
        q.cmd("cont")
    return dt, r.get("downtime", 0)


def restore_ms(vmm, w, mem, path, name):
    extra = ["--restore", path] if vmm == "strata" else ["-incoming", f"exec:cat {path}"]
    t0 = time.monotonic()
    p, sock = spawn(vmm, w, name, mem, extra)
    q = Qmp(sock)
    while q.cmd("query-status")["status"] != "running":
        time.sleep(0.0002)
    dt = (time.monotonic() - t0) * 1000
    q.close()
    return dt, p


def pss_kib(pid):
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Pss:"):
                return int(line.split()[1])
    return 0


def one(vmm, w, mem):
    p, sock = spawn(vmm, w, vmm + "-src", mem, [])
    q = Qmp(sock)
    time.sleep(0.3)
    res = {}
    f_stop = os.path.join(w, vmm + "-stopped.snap")
    f_live = os.path.join(w, vmm + "-live.snap")
    res["save stopped ms"], _ = save(vmm, q, f_stop, False)
    if vmm == "qemu":  # a completed QEMU source stays paused (postmigrate): start a fresh one
        q.close(); stop(p)
        p, sock = spawn(vmm, w, vmm + "-src2", mem, [])
        q = Qmp(sock)
        time.sleep(0.3)
    res["save live ms"], res["live downtime ms"] = save(vmm, q, f_live, True)
    q.close()
    stop(p)
    st = os.stat(f_live)
    res["file MiB"] = st.st_size / 2**20
    res["file allocated MiB"] = st.st_blocks * 512 / 2**20
    res["restore to running ms"], r = restore_ms(vmm, w, mem, f_live, vmm + "-restored")
    stop(r)
    for f in (f_stop,):
        os.unlink(f)
    return res, f_live


def clones(w, path, n=10):
    procs = []
    for i in range(n):
        _, p = restore_ms("strata", w, "256M", path, f"clone{i}")
        procs.append(p)
    time.sleep(1)
    c = sum(pss_kib(p.pid) for p in procs)
    for p in procs:
        stop(p)
    procs = []
    for i in range(n):
        p, sock = spawn("strata", w, f"cold{i}", "256M", [])
        Qmp(sock).close()
        procs.append(p)
    time.sleep(1)
    b = sum(pss_kib(p.pid) for p in procs)
    for p in procs:
        stop(p)
    return c, b


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    sizes = (sys.argv[2] if len(sys.argv) > 2 else "256M,4G").split(",")
    for f in (STRATA, ELF):
        if not os.path.exists(f):
            sys.exit(f"bench-snapshot: {f} missing (ninja -C build)")
    if not QEMU:
        sys.exit("bench-snapshot: qemu-system-x86_64 missing (scripts/install-deps.sh)")
    with tempfile.TemporaryDirectory(prefix="bench-snap-") as w:
        for mem in sizes:
            runs = {"strata": [], "qemu": []}
            for _ in range(rounds):
                for vmm in ("strata", "qemu"):
                    res, path = one(vmm, w, mem)
                    runs[vmm].append(res)
                    if vmm == "strata" and mem == "256M":  # the clones' snapshot
                        os.replace(path, os.path.join(w, "clone-base.snap"))
                    else:
                        os.unlink(path)
            print(f"\n== guest RAM {mem}, idle tiny guest, {rounds} round(s), medians ==")
            print(f"{'':26s} {'strata':>10s} {'QEMU 7.2':>10s} {'strata/QEMU':>12s}")
            for k in runs["strata"][0]:
                s = statistics.median(r[k] for r in runs["strata"])
                qv = statistics.median(r[k] for r in runs["qemu"])
                ratio = f"{s / qv:.3f}" if qv else "-"
                print(f"{k:26s} {s:10.1f} {qv:10.1f} {ratio:>12s}")
            # the spread of the restores (a 2-core host's scheduler moves the
            # median of a few rounds: docs/snapshot.md)
            k = "restore to running ms"
            for what, pick in (("fastest", min), ("slowest", max)):
                s = pick(r[k] for r in runs["strata"])
                qv = pick(r[k] for r in runs["qemu"])
                print(f"{'  ' + what:26s} {s:10.1f} {qv:10.1f} {s / qv:12.3f}")
        first = os.path.join(w, "clone-base.snap")
        if os.path.exists(first):
            c, b = clones(w, first)
            print(f"\n10 strata clones from one snapshot: PSS sum {c / 1024:.1f} MiB; "
                  f"10 cold boots: {b / 1024:.1f} MiB (ratio {c / b:.3f})")


if __name__ == "__main__":
    main()
