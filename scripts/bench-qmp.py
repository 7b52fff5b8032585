#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""QMP round-trip latency and throughput of a running strata (or QEMU).

    scripts/bench-qmp.py /path/to/qmp.sock [--requests N]

Prints the round-trip latency (one request in flight) of query-status and
query-mtree, and requests/s of query-status with 1 and 16 clients (each
client one request in flight, clients in separate processes).
"""
import argparse
import json
import multiprocessing
import socket
import statistics
import time


def connect(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    f = s.makefile("rb")
    greeting = json.loads(f.readline())
    assert "QMP" in greeting, greeting
    s.sendall(b'{"execute":"qmp_capabilities"}\n')
    reply = json.loads(f.readline())
    assert "return" in reply, reply
    return s, f


def call(s, f, line):
    s.sendall(line)
    while True:
        m = json.loads(f.readline())
        if "event" not in m:
            if "return" not in m:
                raise RuntimeError(m)
            return m


def latency(path, cmd, n):
    s, f = connect(path)
    line = json.dumps({"execute": cmd}).encode() + b"\n"
    for _ in range(min(100, n)):
        call(s, f, line)    # warm up
    samples = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        call(s, f, line)
        samples.append((time.perf_counter_ns() - t0) / 1000.0)
    s.close()
    samples.sort()
    return (statistics.mean(samples), samples[len(samples) // 2],
            samples[int(len(samples) * 0.99) - 1])


def worker(path, n, start, q):
    s, f = connect(path)
    line = b'{"execute":"query-status"}\n'
    start.wait()
    t0 = time.perf_counter()
    for _ in range(n):
        call(s, f, line)
    q.put((t0, time.perf_counter()))
    s.close()


def throughput(path, clients, n):
    start = multiprocessing.Event()
    q = multiprocessing.Queue()
    ps = [multiprocessing.Process(target=worker, args=(path, n, start, q))
          for _ in range(clients)]
    for p in ps:
        p.start()
    time.sleep(0.2)     # let every client connect and negotiate
    start.set()
    spans = [q.get() for _ in ps]
    for p in ps:
        p.join()
    t0 = min(a for a, _ in spans)
    t1 = max(b for _, b in spans)
    return clients * n / (t1 - t0)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("socket")
    ap.add_argument("--requests", type=int, default=5000)
    a = ap.parse_args()
    for cmd in ("query-status", "query-mtree"):
        mean, p50, p99 = latency(a.socket, cmd, a.requests)
        print(f"{cmd:14s} round trip: mean {mean:7.1f} us  p50 {p50:7.1f} us  "
              f"p99 {p99:7.1f} us  ({a.requests} requests)")
    for clients in (1, 16):
        rps = throughput(a.socket, clients, a.requests // clients * 2)
        print(f"query-status throughput, {clients:2d} client(s): {rps:9.0f} requests/s")


if __name__ == "__main__":
    main()
