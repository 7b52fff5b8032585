#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Real QMP clients' opening sequences (tests/qmp/replays/*.txt), replayed
byte for byte against strata and checked against QEMU 7.2's replies to the
same bytes (tests/qmp/replays/*.qemu-7.2.json, recorded with `record` from
QEMU 7.2 -M microvm with one virtio-blk disk; lists are kept to their first
element, query-qmp-schema's to the first entry of each meta-type).

A reply has QEMU's shape when: it is a return where QEMU returned (an error
of the same class where QEMU failed), with the request's id; a return of
the same JSON type; every key of QEMU's objects present (recursively, the
first element of lists), but for the keys a `#! missing` directive names;
HMP text with QEMU's CR LF line ends.  `#! error CLASS` marks a command
strata does not have (the error it must answer instead).

Usage:
  replay_clients.py check STRATA GUEST_ELF   (label kvm; exit 77 without /dev/kvm)
  replay_clients.py record QEMU              (rewrites the .qemu-7.2.json files)
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPLAYS = os.path.join(HERE, "replays")
UUID = "6b2f3c1e-8d4a-4c55-9f0e-1a2b3c4d5e6f"


def load_replay(path):
    """[(request bytes, directives)], the line end ("\\r\\n" with `#! eol crlf`)."""
    reqs, pending, eol = [], {}, "\n"
    for line in open(path, encoding="utf-8"):
        line = line.rstrip("\n")
        if line.startswith("#!"):
            word, _, rest = line[2:].strip().partition(" ")
            if word == "eol":
                eol = "\r\n" if rest.strip() == "crlf" else "\n"
            elif word == "error":
                pending["error"] = rest.strip()
            elif word == "missing":
                pending.setdefault("missing", set()).update(k for k in rest.split(",") if k)
            else:
                raise SystemExit(f"{path}: unknown directive '{line}'")
        elif line.startswith("#") or not line.strip():
            continue
        else:
            reqs.append((line, pending))
            pending = {}
    return [(r + eol, d) for r, d in reqs]


class Conn:
    def __init__(self, path, deadline_s=30.0):
        end = time.monotonic() + deadline_s
        while True:
            try:
                self.s = socket.socket(socket.AF_UNIX)
                self.s.connect(path)
                break
            except OSError:
                self.s.close()
                if time.monotonic() > end:
                    raise
                time.sleep(0.02)
        self.s.settimeout(30)
        self.buf = b""

    def read(self):
        """The next message that is not an event."""
        while True:
            while b"\n" not in self.buf:
                b = self.s.recv(1 << 16)
                if not b:
                    raise EOFError("the VMM closed the connection")
                self.buf += b
            line, _, self.buf = self.buf.partition(b"\n")
            m = json.loads(line)
            if "event" not in m:
                return m

    def send(self, raw):
        self.s.sendall(raw.encode())


def session(sock, replay):
    c = Conn(sock)
    replies = [c.read()]  # the greeting
    for raw, _ in replay:
        c.send(raw)
        replies.append(c.read())
    c.s.close()
    return replies


def shape(q, s, path, missing, errs):
    num = (int, float)
    if isinstance(q, bool) or isinstance(s, bool):
        if type(q) is not type(s):
            errs.append(f"{path}: {type(s).__name__}, QEMU's is {type(q).__name__}")
        return
    if isinstance(q, num) and isinstance(s, num):
        return
    if type(q) is not type(s):
        errs.append(f"{path}: {type(s).__name__}, QEMU's is {type(q).__name__}")
        return
    if isinstance(q, dict):
        for k, v in q.items():
            if k not in s:
                if k not in missing:
                    errs.append(f"{path}.{k}: missing")
            else:
                shape(v, s[k], f"{path}.{k}", missing, errs)
    elif isinstance(q, list) and q and s:
        if all(isinstance(e, dict) and "meta-type" in e for e in q):
            # query-qmp-schema: each kind of entry against one of its kind
            for e in q:
                mine = [x for x in s if isinstance(x, dict) and x.get("meta-type") == e["meta-type"]]
                if mine:
                    shape(e, mine[0], f"{path}[{e['meta-type']}]", missing, errs)
                elif e["meta-type"] not in ("enum", "alternate"):
                    # (strata's arguments are str/int/bool/arrays: no enum
                    # or alternate types to describe)
                    errs.append(f"{path}: no entry of meta-type {e['meta-type']}")
        else:
            shape(q[0], s[0], f"{path}[0]", missing, errs)
    elif isinstance(q, str) and "\r\n" in q and s and "\r\n" not in s:
        errs.append(f"{path}: HMP text without QEMU's CR LF line ends: {s[:60]!r}")


def compare(name, replay, qemu, strata):
    errs = []
    shape(qemu[0], strata[0], "greeting", set(), errs)
    for (raw, d), q, s in zip(replay, qemu[1:], strata[1:]):
        req = json.loads(raw)
        what = req["execute"]
        if what == "human-monitor-command":
            what += " " + repr(req["arguments"]["command-line"])
        before = len(errs)
        if s.get("id") != req.get("id"):
            errs.append(f"{what}: id {s.get('id')!r}, the request's is {req.get('id')!r}")
        if "error" in d:
            cls = s.get("error", {}).get("class")
            if cls != d["error"]:
                errs.append(f"{what}: expected error {d['error']}, got {json.dumps(s)[:200]}")
        elif "error" in q:
            cls = s.get("error", {}).get("class")
            if cls != q["error"]["class"]:
                errs.append(f"{what}: QEMU answers error {q['error']['class']}, strata "
                            f"{json.dumps(s)[:200]}")
        elif "return" not in s:
            errs.append(f"{what}: QEMU returns, strata answers {json.dumps(s)[:200]}")
        else:
            shape(q["return"], s["return"], what, d.get("missing", set()), errs)
        print(f"  {'ok  ' if len(errs) == before else 'FAIL'} {what}")
    return errs


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def run_vmm(argv, sock, tmp):
    log = open(os.path.join(tmp, "vmm.log"), "w")
    p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                         start_new_session=True)
    return p


def stop_vmm(p):
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except OSError:
        pass
    p.wait()


def disk(tmp):
    d = os.path.join(tmp, "disk.img")
    with open(d, "wb") as f:
        f.truncate(8 << 20)
    return d


def reduce(v):
    """What the comparison reads of a reply: lists cut to their first element
    (query-qmp-schema's to the first entry of each meta-type)."""
    if isinstance(v, dict):
        return {k: reduce(x) for k, x in v.items()}
    if isinstance(v, list):
        if v and all(isinstance(e, dict) and "meta-type" in e for e in v):
            seen = {}
            for e in v:
                seen.setdefault(e["meta-type"], e)
            return [reduce(e) for e in seen.values()]
        return [reduce(v[0])] if v else []
    return v


def replay_files():
    return sorted(f[:-4] for f in os.listdir(REPLAYS) if f.endswith(".txt"))


def record(qemu):
    for name in replay_files():
        replay = load_replay(os.path.join(REPLAYS, name + ".txt"))
        tmp = tempfile.mkdtemp(prefix="strata-qmp-record-")
        sock = os.path.join(tmp, "qmp.sock")
        argv = [qemu, "-M", "microvm", "-accel", "tcg", "-nodefaults", "-display", "none",
                "-m", "256M", "-smp", "1", "-name", "replay", "-uuid", UUID,
                "-drive", f"file={disk(tmp)},if=none,id=disk0,format=raw",
                "-device", "virtio-blk-device,drive=disk0",
                "-qmp", f"unix:{sock},server=on,wait=off"]
        p = run_vmm(argv, sock, tmp)
        try:
            replies = session(sock, replay)
        finally:
            stop_vmm(p)
            shutil.rmtree(tmp, ignore_errors=True)
        out = os.path.join(REPLAYS, name + ".qemu-7.2.json")
        with open(out, "w") as f:
            json.dump([reduce(r) for r in replies], f, indent=1, sort_keys=True)
            f.write("\n")
        print(f"recorded {out}: {len(replies)} replies")
    return 0


def check(strata, elf):
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        print("SKIP: no usable /dev/kvm here (strata needs it; the bed has no QEMU replies to "
              "compare with: this check runs on hosts with /dev/kvm)")
        return 77
    failed = 0
    for name in replay_files():
        replay = load_replay(os.path.join(REPLAYS, name + ".txt"))
        with open(os.path.join(REPLAYS, name + ".qemu-7.2.json")) as f:
            qemu = json.load(f)
        if len(qemu) != len(replay) + 1:
            print(f"FAIL {name}: the recorded QEMU replies do not match the replay (record again)")
            failed += 1
            continue
        tmp = tempfile.mkdtemp(prefix="strata-qmp-replay-")
        sock = os.path.join(tmp, "qmp.sock")
        argv = [strata, "run", "--test-device", "--kernel", elf, "--memory", "256M",
                "--serial", "none", "--name", "replay", "--uuid", UUID,
                "--disk", f"path={disk(tmp)}", "--api-socket", sock]
        p = run_vmm(argv, sock, tmp)
        print(f"== {name} ({len(replay)} requests)")
        try:
            replies = session(sock, replay)
            errs = compare(name, replay, qemu, replies)
        except (OSError, EOFError, ValueError) as e:
            errs = [f"the session broke: {e}"]
            with open(os.path.join(tmp, "vmm.log")) as f:
                errs.append(f.read()[-2000:])
        finally:
            stop_vmm(p)
            shutil.rmtree(tmp, ignore_errors=True)
        for e in errs:
            print(f"  {e}")
        if errs:
            failed += 1
    print("PASS" if not failed else f"FAIL: {failed} replay(s) differ from QEMU 7.2's shape")
    return 1 if failed else 0


def main():
    if len(sys.argv) >= 3 and sys.argv[1] == "record":
        return record(sys.argv[2])
    if len(sys.argv) >= 4 and sys.argv[1] == "check":
        return check(sys.argv[2], sys.argv[3])
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main())
